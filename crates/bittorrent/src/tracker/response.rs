//! Parsing announce responses (dictionary and compact peer lists). Pure.
//!
//! The body is first checked to be exactly one well-formed bencoded value
//! with bounded nesting (so hostile input cannot overflow the stack of the
//! recursive serde decoder), then decoded into a typed struct with
//! `serde_bencode`. `peers` may be a compact byte string or a list of
//! dictionaries, so it is decoded as a generic bencode value and converted by
//! hand.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use serde::Deserialize;
use serde_bencode::value::Value;

use crate::tracker::TrackerError;

/// The interval used when a response has no `interval` key (30 minutes).
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30 * 60);

/// The smallest `interval` / `min interval` a response can report; smaller
/// (zero, negative) values are raised to it. The announcer applies its own,
/// larger floor (`AnnouncerConfig::min_announce_interval`).
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// The largest `interval` / `min interval` a response can report (2 hours);
/// larger values are lowered to it so a broken tracker cannot silence us.
pub const MAX_INTERVAL: Duration = Duration::from_secs(2 * 60 * 60);

/// How deeply lists and dictionaries may nest in a response. Real responses
/// use three levels (response dict, peer list, peer dict).
const MAX_DEPTH: usize = 32;

/// A successful announce response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce.
    pub interval: Duration,
    /// The tracker's minimum announce interval, if it set one.
    pub min_interval: Option<Duration>,
    /// Peers (compact IPv4 `peers`, compact IPv6 `peers6`, or dictionaries).
    pub peers: Vec<SocketAddr>,
    /// `tracker id` to echo in later announces.
    pub tracker_id: Option<String>,
    /// `warning message`, if any.
    pub warning: Option<String>,
    /// Seeders, if reported.
    pub complete: Option<u32>,
    /// Leechers, if reported.
    pub incomplete: Option<u32>,
}

/// The response dictionary as `serde_bencode` sees it. Unknown keys are
/// ignored.
#[derive(Deserialize)]
struct RawResponse {
    #[serde(rename = "failure reason", default)]
    failure_reason: Option<Text>,
    #[serde(rename = "warning message", default)]
    warning_message: Option<Text>,
    #[serde(default)]
    interval: Option<i64>,
    #[serde(rename = "min interval", default)]
    min_interval: Option<i64>,
    #[serde(rename = "tracker id", default)]
    tracker_id: Option<Text>,
    #[serde(default)]
    complete: Option<i64>,
    #[serde(default)]
    incomplete: Option<i64>,
    /// A compact byte string or a list of dictionaries.
    #[serde(default)]
    peers: Option<Value>,
    /// A compact byte string (a `Value` so a list is not taken for bytes).
    #[serde(default)]
    peers6: Option<Value>,
}

/// A bencode byte string holding text. Unlike `serde_bytes::ByteBuf`, a list
/// of integers is not accepted in its place.
struct Text(Vec<u8>);

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct TextVisitor;

        impl serde::de::Visitor<'_> for TextVisitor {
            type Value = Text;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a byte string")
            }

            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Text, E> {
                Ok(Text(v.to_vec()))
            }

            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(v.as_bytes().to_vec()))
            }
        }

        deserializer.deserialize_bytes(TextVisitor)
    }
}

/// Just the `failure reason`, for responses whose other keys are malformed
/// (a failing tracker need not send a valid `interval`).
#[derive(Deserialize)]
struct FailureOnly {
    #[serde(rename = "failure reason", default)]
    failure_reason: Option<Text>,
}

/// Parses the body of an announce response.
///
/// Lenient where real trackers differ, strict where the data would be wrong:
/// - a missing `interval` means [`DEFAULT_INTERVAL`]; `interval` and
///   `min interval` are clamped to [`MIN_INTERVAL`]..=[`MAX_INTERVAL`];
/// - missing `peers`/`peers6` mean no peers; a compact string whose length is
///   not a multiple of 6 (18 for `peers6`) has its trailing partial record
///   ignored;
/// - dictionary peers whose `ip` is not an IPv4/IPv6 literal (e.g. a host
///   name), or whose `port` is missing or out of range, are skipped, as are
///   peers with port 0; duplicates are dropped, order is kept;
/// - `complete`/`incomplete` outside the `u32` range are reported as absent;
/// - texts (`failure reason`, `warning message`, `tracker id`) are decoded as
///   lossy UTF-8.
///
/// # Errors
/// [`TrackerError::Failure`] for a `failure reason`, [`TrackerError::Decode`]
/// for anything that is not a valid response: not a dictionary, truncated,
/// trailing bytes, nesting deeper than 32 levels, or a key with the wrong type.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    if body.first() != Some(&b'd') {
        return Err(decode_error("response is not a bencoded dictionary"));
    }
    check_structure(body).map_err(decode_error)?;

    let raw: RawResponse = match serde_bencode::from_bytes(body) {
        Ok(raw) => raw,
        Err(e) => {
            // Report a failure reason even if the rest is malformed.
            if let Ok(FailureOnly {
                failure_reason: Some(reason),
            }) = serde_bencode::from_bytes(body)
            {
                return Err(TrackerError::Failure(lossy(&reason.0)));
            }
            return Err(decode_error(format!("malformed response: {e}")));
        }
    };
    if let Some(reason) = raw.failure_reason {
        return Err(TrackerError::Failure(lossy(&reason.0)));
    }

    let mut peers = Vec::new();
    match raw.peers {
        None => {}
        Some(Value::Bytes(compact)) => peers.extend(compact_v4(&compact)),
        Some(Value::List(list)) => peers.extend(list.iter().filter_map(dict_peer)),
        Some(_) => return Err(decode_error("`peers` is neither a byte string nor a list")),
    }
    match raw.peers6 {
        None => {}
        Some(Value::Bytes(compact)) => peers.extend(compact_v6(&compact)),
        Some(_) => return Err(decode_error("`peers6` is not a byte string")),
    }
    // A dual-stack tracker may list IPv4 peers as IPv4-mapped IPv6 addresses.
    for peer in &mut peers {
        peer.set_ip(peer.ip().to_canonical());
    }
    let mut seen = HashSet::new();
    peers.retain(|p| p.port() != 0 && seen.insert(*p));

    Ok(AnnounceResponse {
        interval: raw.interval.map_or(DEFAULT_INTERVAL, clamp_interval),
        min_interval: raw.min_interval.map(clamp_interval),
        peers,
        tracker_id: raw.tracker_id.map(|id| lossy(&id.0)),
        warning: raw.warning_message.map(|w| lossy(&w.0)),
        complete: raw.complete.and_then(|n| u32::try_from(n).ok()),
        incomplete: raw.incomplete.and_then(|n| u32::try_from(n).ok()),
    })
}

fn decode_error(msg: impl Into<String>) -> TrackerError {
    TrackerError::Decode(msg.into())
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub(crate) fn clamp_interval(secs: i64) -> Duration {
    let secs = u64::try_from(secs).unwrap_or(0);
    Duration::from_secs(secs).clamp(MIN_INTERVAL, MAX_INTERVAL)
}

/// BEP 23: 4 address bytes and 2 port bytes (big-endian) per peer.
fn compact_v4(bytes: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(6).map(|rec| {
        let ip = Ipv4Addr::new(rec[0], rec[1], rec[2], rec[3]);
        SocketAddr::new(IpAddr::V4(ip), u16::from_be_bytes([rec[4], rec[5]]))
    })
}

/// BEP 7: 16 address bytes and 2 port bytes (big-endian) per peer.
fn compact_v6(bytes: &[u8]) -> impl Iterator<Item = SocketAddr> + '_ {
    bytes.chunks_exact(18).map(|rec| {
        let mut octets = [0u8; 16];
        octets.copy_from_slice(&rec[..16]);
        let port = u16::from_be_bytes([rec[16], rec[17]]);
        SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port)
    })
}

/// One `{ip, port, peer id}` dictionary of a non-compact peer list, if it
/// names a literal address and a valid port.
fn dict_peer(entry: &Value) -> Option<SocketAddr> {
    let Value::Dict(dict) = entry else {
        return None;
    };
    let Some(Value::Bytes(ip)) = dict.get(b"ip".as_slice()) else {
        return None;
    };
    let Some(Value::Int(port)) = dict.get(b"port".as_slice()) else {
        return None;
    };
    let ip = std::str::from_utf8(ip).ok()?;
    let ip = ip
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(ip);
    let ip: IpAddr = ip.parse().ok()?;
    let port = u16::try_from(*port).ok()?;
    Some(SocketAddr::new(ip, port))
}

/// Checks that `body` is exactly one well-formed bencoded value with lists
/// and dictionaries nested at most [`MAX_DEPTH`] deep. Dictionary key types
/// and order are left to the typed decoder.
fn check_structure(body: &[u8]) -> Result<(), String> {
    let mut pos = 0usize;
    let mut depth = 0usize;
    loop {
        let Some(&byte) = body.get(pos) else {
            return Err(truncated());
        };
        match byte {
            b'i' => pos = skip_integer(body, pos)?,
            b'0'..=b'9' => pos = skip_string(body, pos)?,
            b'l' | b'd' => {
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                pos += 1;
                continue;
            }
            b'e' => {
                if depth == 0 {
                    return Err(format!("unexpected end marker at byte {pos}"));
                }
                depth -= 1;
                pos += 1;
            }
            other => return Err(format!("unexpected byte 0x{other:02x} at byte {pos}")),
        }
        if depth == 0 {
            break;
        }
    }
    if pos != body.len() {
        return Err(format!(
            "{} trailing bytes after the response",
            body.len() - pos
        ));
    }
    Ok(())
}

fn truncated() -> String {
    "truncated response".to_string()
}

/// The position after the integer `i...e` at `pos` (its digits are left to
/// the typed decoder).
fn skip_integer(body: &[u8], pos: usize) -> Result<usize, String> {
    let len = body[pos..]
        .iter()
        .position(|&b| b == b'e')
        .ok_or_else(truncated)?;
    Ok(pos + len + 1)
}

/// The position after the string `<length>:<bytes>` at `pos`.
fn skip_string(body: &[u8], pos: usize) -> Result<usize, String> {
    let digits = body[pos..]
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(truncated)?;
    let len_text = &body[pos..pos + digits];
    if !len_text.iter().all(u8::is_ascii_digit) {
        return Err(format!("invalid string length at byte {pos}"));
    }
    let len: usize = std::str::from_utf8(len_text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("invalid string length at byte {pos}"))?;
    let start = pos + digits + 1;
    if body.len() - start < len {
        return Err(truncated());
    }
    Ok(start + len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &[u8]) -> AnnounceResponse {
        match parse_announce_response(body) {
            Ok(r) => r,
            Err(e) => panic!("{e} for {}", String::from_utf8_lossy(body)),
        }
    }

    fn decode_err(body: &[u8]) -> String {
        match parse_announce_response(body) {
            Err(TrackerError::Decode(msg)) => msg,
            other => panic!("expected Decode, got {other:?}"),
        }
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn compact_peers_and_counts() {
        let mut body =
            b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali900e5:peers12:"
                .to_vec();
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0x00, 0x50]);
        body.push(b'e');
        let r = parse(&body);
        assert_eq!(r.interval, Duration::from_secs(1800));
        assert_eq!(r.min_interval, Some(Duration::from_secs(900)));
        assert_eq!(r.peers, vec![addr("127.0.0.1:6881"), addr("10.0.0.2:80")]);
        assert_eq!(r.complete, Some(5));
        assert_eq!(r.incomplete, Some(3));
        assert_eq!(r.tracker_id, None);
        assert_eq!(r.warning, None);
    }

    #[test]
    fn dictionary_peers_skip_hostnames_and_bad_ports() {
        let body = b"d8:intervali60e5:peersl\
            d2:ip9:127.0.0.17:peer id20:aaaaaaaaaaaaaaaaaaaa4:porti6881ee\
            d2:ip3:::14:porti51413ee\
            d2:ip11:example.com4:porti80ee\
            d2:ip8:10.0.0.14:porti0ee\
            d2:ip8:10.0.0.14:porti70000ee\
            d2:ip8:10.0.0.1e\
            i5e\
            d2:ip5:[::2]4:porti1ee\
            ee";
        let r = parse(body);
        assert_eq!(
            r.peers,
            vec![addr("127.0.0.1:6881"), addr("[::1]:51413"), addr("[::2]:1")]
        );
    }

    #[test]
    fn peers6_v4_mapped_is_ipv4_and_deduplicated() {
        let mapped: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
        let mut body = b"d8:intervali60e5:peers6:\x0a\x00\x00\x01\x1a\xe16:peers636:".to_vec();
        for port in [6881u16, 6882] {
            body.extend_from_slice(&mapped.octets());
            body.extend_from_slice(&port.to_be_bytes());
        }
        body.push(b'e');
        assert_eq!(
            parse(&body).peers,
            vec![addr("10.0.0.1:6881"), addr("10.0.0.1:6882")]
        );
    }

    #[test]
    fn peers_and_peers6_together() {
        let mut body =
            b"d8:intervali60e5:peers12:\x7f\x00\x00\x01\x1a\xe1\x7f\x00\x00\x02\x00\x016:peers636:"
                .to_vec();
        for (ip, port) in [("::1", 51413u16), ("2001:db8::7", 1)] {
            body.extend_from_slice(&ip.parse::<Ipv6Addr>().unwrap().octets());
            body.extend_from_slice(&port.to_be_bytes());
        }
        body.push(b'e');
        assert_eq!(
            parse(&body).peers,
            vec![
                addr("127.0.0.1:6881"),
                addr("127.0.0.2:1"),
                addr("[::1]:51413"),
                addr("[2001:db8::7]:1")
            ]
        );
    }

    #[test]
    fn peers6_compact() {
        let mut body = b"d8:intervali60e5:peers0:6:peers618:".to_vec();
        let mut rec = [0u8; 18];
        rec[15] = 1;
        rec[16] = 0x1a;
        rec[17] = 0xe1;
        body.extend_from_slice(&rec);
        body.push(b'e');
        assert_eq!(parse(&body).peers, vec![addr("[::1]:6881")]);
    }

    #[test]
    fn odd_compact_length_uses_whole_records() {
        let mut body = b"d8:intervali60e5:peers8:".to_vec();
        body.extend_from_slice(&[1, 2, 3, 4, 0, 9, 0xff, 0xff]);
        body.push(b'e');
        assert_eq!(parse(&body).peers, vec![addr("1.2.3.4:9")]);
    }

    #[test]
    fn compact_port_zero_and_duplicates_are_dropped() {
        let mut body = b"d8:intervali60e5:peers18:".to_vec();
        body.extend_from_slice(&[1, 2, 3, 4, 0, 0, 1, 2, 3, 4, 0, 9, 1, 2, 3, 4, 0, 9]);
        body.push(b'e');
        assert_eq!(parse(&body).peers, vec![addr("1.2.3.4:9")]);
    }

    #[test]
    fn failure_reason() {
        let r = parse_announce_response(b"d14:failure reason12:unregisterede");
        assert!(
            matches!(r, Err(TrackerError::Failure(ref m)) if m == "unregistered"),
            "{r:?}"
        );
        // Non-UTF-8 text is decoded lossily.
        let r = parse_announce_response(b"d14:failure reason3:a\xffbe");
        assert!(
            matches!(r, Err(TrackerError::Failure(ref m)) if m == "a\u{fffd}b"),
            "{r:?}"
        );
        // A failure with otherwise malformed keys is still a failure.
        let r = parse_announce_response(b"d14:failure reason3:bad8:interval3:abce");
        assert!(
            matches!(r, Err(TrackerError::Failure(ref m)) if m == "bad"),
            "{r:?}"
        );
    }

    #[test]
    fn warning_and_tracker_id() {
        let r = parse(b"d8:intervali60e10:tracker id3:xyz15:warning message4:slowe");
        assert_eq!(r.tracker_id.as_deref(), Some("xyz"));
        assert_eq!(r.warning.as_deref(), Some("slow"));
        assert!(r.peers.is_empty());
    }

    #[test]
    fn intervals_default_and_clamp() {
        assert_eq!(parse(b"de").interval, DEFAULT_INTERVAL);
        assert_eq!(parse(b"d8:intervali0ee").interval, MIN_INTERVAL);
        assert_eq!(parse(b"d8:intervali-5ee").interval, MIN_INTERVAL);
        assert_eq!(parse(b"d8:intervali99999999ee").interval, MAX_INTERVAL);
        assert_eq!(
            parse(b"d8:intervali60e12:min intervali-1ee").min_interval,
            Some(MIN_INTERVAL)
        );
        let r = parse(b"d8:completei-1e10:incompletei99999999999ee");
        assert_eq!((r.complete, r.incomplete), (None, None));
    }

    #[test]
    fn unknown_keys_are_ignored() {
        let r = parse(b"d8:intervali60e5:extrald1:xli1eeee7:zzzzzzzi3ee");
        assert_eq!(r.interval, Duration::from_secs(60));
    }

    #[test]
    fn garbage_is_a_decode_error() {
        assert!(decode_err(b"").contains("not a bencoded dictionary"));
        assert!(decode_err(b"<html>oops</html>").contains("not a bencoded dictionary"));
        assert!(decode_err(b"li1ee").contains("not a bencoded dictionary"));
        assert!(decode_err(b"dxe").contains("unexpected byte"));
        assert!(decode_err(b"d8:intervali60eejunk").contains("trailing"));
    }

    #[test]
    fn truncated_is_a_decode_error() {
        assert!(decode_err(b"d8:intervali60e").contains("truncated"));
        assert!(decode_err(b"d8:intervali60").contains("truncated"));
        assert!(decode_err(b"d5:peers10:abce").contains("truncated"));
        assert!(decode_err(b"d5:peers99999999999999999999999:e").contains("length"));
    }

    #[test]
    fn wrong_types_are_a_decode_error() {
        assert!(decode_err(b"d8:interval2:60e").contains("malformed"));
        assert!(decode_err(b"d5:peersi5ee").contains("`peers`"));
        assert!(decode_err(b"d6:peers6li1eee").contains("`peers6`"));
        assert!(decode_err(b"d10:tracker idli1eee").contains("malformed"));
        // A dictionary key must be a string.
        assert!(decode_err(b"di1ei2ee").contains("malformed"));
    }

    #[test]
    fn deep_nesting_is_rejected_without_recursion() {
        let mut body = b"d1:x".to_vec();
        body.extend(std::iter::repeat_n(b'l', 100_000));
        body.extend(std::iter::repeat_n(b'e', 100_001));
        assert!(decode_err(&body).contains("nesting"));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(body in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = parse_announce_response(&body);
        }

        #[test]
        fn random_dictionaries_never_panic(
            body in "d([0-9]{1,2}:[a-z ]{0,12}|i-?[0-9]{0,4}e|l|d|e|5:peers|8:interval|6:peers6){0,12}e?"
        ) {
            let _ = parse_announce_response(body.as_bytes());
        }
    }
}
