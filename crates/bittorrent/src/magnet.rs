//! Magnet links (BEP 9): `magnet:?xt=urn:btih:<info-hash>&dn=<name>&tr=<tracker>&x.pe=<peer>`.
//!
//! # What is accepted
//! - The scheme `magnet:` in any case, followed by `?` and `&`-separated `key=value` pairs.
//!   A `#fragment` is ignored.
//! - `xt`: the first `urn:btih:` value names the torrent, as 40 hex digits or 32 base32
//!   characters (RFC 4648 alphabet, no padding), in any case. Other `xt` values (such as the
//!   v2 `urn:btmh:`) are accepted and ignored. Numbered keys (`xt.1`, `tr.2`, …) count as
//!   their base key.
//! - `dn`: the display name; `+` means a space and `%XX` escapes are decoded. A name that is
//!   not UTF-8 after decoding is decoded lossily.
//! - `tr`: tracker URLs, percent-decoded (`+` is kept), in order, without duplicates. A URL
//!   that is empty or not UTF-8 after decoding is skipped.
//! - `x.pe`: peer addresses. Only literal `a.b.c.d:port` and `[v6]:port` addresses with a
//!   non-zero port are kept (a host name would need a DNS lookup, which this pure module
//!   does not do); anything else is skipped. Duplicates are dropped.
//! - Unknown keys and pairs without `=` are ignored. At most [`MAX_TRACKERS`] trackers and
//!   [`MAX_PEERS`] peers are kept.
//!
//! [`Magnet::to_uri`] writes the canonical form: lowercase hex `btih`, then `dn`, every `tr`
//! and every `x.pe`, each value percent-encoded.

use std::collections::HashSet;
use std::net::SocketAddr;

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::types::InfoHash;

/// Most tracker URLs kept from one magnet link.
pub const MAX_TRACKERS: usize = 100;

/// Most peer addresses kept from one magnet link.
pub const MAX_PEERS: usize = 200;

/// Everything but the RFC 3986 unreserved characters is escaped in [`Magnet::to_uri`].
const VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The `xt` prefix of a v1 info-hash.
const BTIH: &str = "urn:btih:";

/// A parsed magnet link.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Magnet {
    /// The v1 info-hash from `xt=urn:btih:`.
    pub info_hash: InfoHash,
    /// The display name (`dn`), if any.
    pub name: Option<String>,
    /// Tracker URLs (`tr`), in order of appearance, without duplicates.
    pub trackers: Vec<String>,
    /// Peer addresses (`x.pe`) given as literal IP addresses.
    pub peers: Vec<SocketAddr>,
}

/// Why a string is not a usable magnet link.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MagnetError {
    /// The string does not start with `magnet:?`.
    #[error("not a magnet link (expected 'magnet:?')")]
    NotAMagnet,
    /// No `xt=urn:btih:` parameter.
    #[error("magnet link has no 'xt=urn:btih:' info-hash")]
    MissingInfoHash,
    /// The `btih` value is neither 40 hex digits nor 32 base32 characters.
    #[error("invalid btih info-hash {value:?}: expected 40 hex or 32 base32 characters")]
    InvalidInfoHash {
        /// The offending value (at most 64 characters of it).
        value: String,
    },
}

impl Magnet {
    /// A magnet link with only an info-hash.
    pub fn new(info_hash: InfoHash) -> Self {
        Self {
            info_hash,
            name: None,
            trackers: Vec::new(),
            peers: Vec::new(),
        }
    }

    /// Parses a magnet link (see the module docs for what is accepted).
    ///
    /// # Errors
    /// [`MagnetError::NotAMagnet`] without the `magnet:?` prefix,
    /// [`MagnetError::MissingInfoHash`] without a `urn:btih:` `xt`, and
    /// [`MagnetError::InvalidInfoHash`] when the first `btih` value is malformed.
    pub fn parse(uri: &str) -> Result<Self, MagnetError> {
        let mut fields = Fields::default();
        for pair in query_of(uri)?.split('&') {
            if let Some((key, raw)) = pair.split_once('=') {
                fields.add(base_key(key), raw)?;
            }
        }
        Ok(Self {
            info_hash: fields.info_hash.ok_or(MagnetError::MissingInfoHash)?,
            name: fields.name,
            trackers: fields.trackers,
            peers: fields.peers,
        })
    }

    /// The canonical magnet URI: `magnet:?xt=urn:btih:<lowercase hex>`, then `dn`, each `tr`
    /// and each `x.pe`, values percent-encoded. [`Magnet::parse`] reads it back unchanged.
    pub fn to_uri(&self) -> String {
        let mut uri = format!("magnet:?xt={BTIH}{}", self.info_hash.to_hex());
        if let Some(name) = &self.name {
            uri.push_str("&dn=");
            uri.extend(utf8_percent_encode(name, VALUE));
        }
        for tracker in &self.trackers {
            uri.push_str("&tr=");
            uri.extend(utf8_percent_encode(tracker, VALUE));
        }
        for peer in &self.peers {
            uri.push_str("&x.pe=");
            uri.extend(utf8_percent_encode(&peer.to_string(), VALUE));
        }
        uri
    }
}

impl std::str::FromStr for Magnet {
    type Err = MagnetError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The `key=value` pairs of a magnet link: what follows `magnet:?` (any case
/// of the scheme), without a `#fragment`.
fn query_of(uri: &str) -> Result<&str, MagnetError> {
    let uri = uri.trim();
    let query = match (uri.get(..7), uri.get(7..)) {
        (Some(scheme), Some(rest)) if scheme.eq_ignore_ascii_case("magnet:") => {
            rest.strip_prefix('?').ok_or(MagnetError::NotAMagnet)?
        }
        _ => return Err(MagnetError::NotAMagnet),
    };
    Ok(query.split('#').next().unwrap_or_default())
}

/// The fields of a magnet link as its pairs are read.
#[derive(Default)]
struct Fields {
    info_hash: Option<InfoHash>,
    name: Option<String>,
    trackers: Vec<String>,
    seen_trackers: HashSet<String>,
    peers: Vec<SocketAddr>,
    seen_peers: HashSet<SocketAddr>,
}

impl Fields {
    /// Reads one pair (`key` without its number); unknown keys are ignored.
    fn add(&mut self, key: &str, raw: &str) -> Result<(), MagnetError> {
        match key {
            "xt" if self.info_hash.is_none() => {
                let value = percent_decode_str(raw).decode_utf8_lossy();
                if let Some(hash) = strip_prefix_ignore_case(&value, BTIH) {
                    self.info_hash = Some(parse_btih(hash)?);
                }
            }
            "dn" if self.name.is_none() => {
                let spaced = raw.replace('+', " ");
                self.name = Some(percent_decode_str(&spaced).decode_utf8_lossy().into_owned());
            }
            "tr" => self.add_tracker(raw),
            "x.pe" => self.add_peer(raw),
            _ => {}
        }
        Ok(())
    }

    /// A tracker URL that is UTF-8 and not empty once decoded, and new.
    fn add_tracker(&mut self, raw: &str) {
        let Ok(url) = percent_decode_str(raw).decode_utf8() else {
            return;
        };
        let url = url.trim();
        if !url.is_empty()
            && self.trackers.len() < MAX_TRACKERS
            && self.seen_trackers.insert(url.to_owned())
        {
            self.trackers.push(url.to_owned());
        }
    }

    /// A literal peer address with a non-zero port, if new.
    fn add_peer(&mut self, raw: &str) {
        let Ok(text) = percent_decode_str(raw).decode_utf8() else {
            return;
        };
        if let Ok(addr) = text.trim().parse::<SocketAddr>() {
            if addr.port() != 0 && self.peers.len() < MAX_PEERS && self.seen_peers.insert(addr) {
                self.peers.push(addr);
            }
        }
    }
}

/// `xt.1` → `xt`, `tr.12` → `tr`; other keys (including `x.pe`) unchanged.
fn base_key(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => key,
    }
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        s.get(prefix.len()..)
    } else {
        None
    }
}

/// Parses the hash part of a `urn:btih:` value (40 hex or 32 base32 characters).
fn parse_btih(value: &str) -> Result<InfoHash, MagnetError> {
    let hash = match value.len() {
        40 => InfoHash::from_hex(value),
        32 => base32_decode_20(value.as_bytes()).map(InfoHash),
        _ => None,
    };
    hash.ok_or_else(|| MagnetError::InvalidInfoHash {
        value: value.chars().take(64).collect(),
    })
}

/// Decodes exactly 32 RFC 4648 base32 characters (any case, no padding) into 20 bytes.
fn base32_decode_20(input: &[u8]) -> Option<[u8; 20]> {
    if input.len() != 32 {
        return None;
    }
    let mut out = [0u8; 20];
    // Eight characters carry 40 bits: five bytes.
    for (chunk, bytes) in input.chunks_exact(8).zip(out.chunks_exact_mut(5)) {
        let mut bits: u64 = 0;
        for &c in chunk {
            let v = match c.to_ascii_uppercase() {
                c @ b'A'..=b'Z' => c - b'A',
                c @ b'2'..=b'7' => c - b'2' + 26,
                _ => return None,
            };
            bits = (bits << 5) | u64::from(v);
        }
        for (i, b) in bytes.iter_mut().enumerate() {
            *b = (bits >> (32 - 8 * i)) as u8;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a";
    /// `HEX` in base32 (computed with Python's `base64.b32encode`).
    const B32: &str = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK";

    fn hash() -> InfoHash {
        InfoHash::from_hex(HEX).unwrap()
    }

    #[test]
    fn hex_info_hash_any_case() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", HEX.to_uppercase())).unwrap();
        assert_eq!(m, Magnet::new(hash()));
        let m = Magnet::parse(&format!("MAGNET:?xt=URN:BTIH:{HEX}")).unwrap();
        assert_eq!(m.info_hash, hash());
    }

    #[test]
    fn base32_info_hash_any_case() {
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{B32}")).unwrap();
        assert_eq!(m.info_hash, hash());
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{}", B32.to_lowercase())).unwrap();
        assert_eq!(m.info_hash, hash());
    }

    #[test]
    fn base32_edge_values() {
        assert_eq!(base32_decode_20(&[b'A'; 32]), Some([0u8; 20]));
        assert_eq!(base32_decode_20(&[b'7'; 32]), Some([0xff; 20]));
        // RFC 4648 test vector: "fooba" = MZXW6YTB.
        let mut input = *b"MZXW6YTBAAAAAAAAAAAAAAAAAAAAAAAA";
        let out = base32_decode_20(&input).unwrap();
        assert_eq!(&out[..5], b"fooba");
        input[3] = b'1'; // not in the alphabet
        assert_eq!(base32_decode_20(&input), None);
        input[3] = b'=';
        assert_eq!(base32_decode_20(&input), None);
    }

    #[test]
    fn display_name_decoding() {
        let m =
            Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=My%20File+v2%2B.iso")).unwrap();
        assert_eq!(m.name.as_deref(), Some("My File v2+.iso"));
        let m = Magnet::parse(&format!("magnet:?dn=%C3%A9t%C3%A9&xt=urn:btih:{HEX}")).unwrap();
        assert_eq!(m.name.as_deref(), Some("été"));
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=%FFx")).unwrap();
        assert_eq!(m.name.as_deref(), Some("\u{fffd}x"));
        let m = Magnet::parse(&format!("magnet:?xt=urn:btih:{HEX}&dn=a&dn=b")).unwrap();
        assert_eq!(m.name.as_deref(), Some("a"));
    }

    #[test]
    fn trackers_in_order_deduplicated() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&tr=http%3A%2F%2Fa.example%2Fannounce\
             &tr=udp://b.example:80&tr.1=http%3A%2F%2Fa.example%2Fannounce&tr=&tr=%FF\
             &tr=http://c.example/a?x=1+2"
        );
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(
            m.trackers,
            [
                "http://a.example/announce",
                "udp://b.example:80",
                "http://c.example/a?x=1+2"
            ]
        );
    }

    #[test]
    fn tracker_count_is_capped() {
        let mut uri = format!("magnet:?xt=urn:btih:{HEX}");
        for i in 0..MAX_TRACKERS + 10 {
            uri.push_str(&format!("&tr=http://t{i}/"));
        }
        assert_eq!(Magnet::parse(&uri).unwrap().trackers.len(), MAX_TRACKERS);
    }

    #[test]
    fn peers_v4_and_v6_literal_only() {
        let uri = format!(
            "magnet:?xt=urn:btih:{HEX}&x.pe=10.0.0.1:6881&x.pe=%5B2001%3Adb8%3A%3A1%5D%3A51413\
             &x.pe=[::1]:7000&x.pe=host.example:6881&x.pe=10.0.0.1:6881&x.pe=10.0.0.2:0\
             &x.pe=10.0.0.3"
        );
        let m = Magnet::parse(&uri).unwrap();
        let expected: Vec<SocketAddr> = ["10.0.0.1:6881", "[2001:db8::1]:51413", "[::1]:7000"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        assert_eq!(m.peers, expected);
    }

    #[test]
    fn first_btih_wins_and_btmh_is_ignored() {
        let other = "00".repeat(20);
        let uri = format!(
            "magnet:?xt=urn:btmh:1220{}&xt=urn:btih:{HEX}&xt.2=urn:btih:{other}",
            "ab".repeat(32)
        );
        assert_eq!(Magnet::parse(&uri).unwrap().info_hash, hash());
        let uri = format!("magnet:?xt.1=urn%3Abtih%3A{HEX}");
        assert_eq!(Magnet::parse(&uri).unwrap().info_hash, hash());
    }

    #[test]
    fn unknown_params_and_fragments_ignored() {
        let uri = format!("magnet:?foo=bar&xl=123&&novalue&xt=urn:btih:{HEX}&ws=x#frag&dn=no");
        let m = Magnet::parse(&uri).unwrap();
        assert_eq!(m, Magnet::new(hash()));
    }

    #[test]
    fn malformed_inputs() {
        assert_eq!(Magnet::parse(""), Err(MagnetError::NotAMagnet));
        assert_eq!(Magnet::parse("magnet"), Err(MagnetError::NotAMagnet));
        assert_eq!(
            Magnet::parse(&format!("http://x/?xt=urn:btih:{HEX}")),
            Err(MagnetError::NotAMagnet)
        );
        assert_eq!(
            Magnet::parse(&format!("magnet:xt=urn:btih:{HEX}")),
            Err(MagnetError::NotAMagnet)
        );
        assert_eq!(Magnet::parse("magnet:?"), Err(MagnetError::MissingInfoHash));
        assert_eq!(
            Magnet::parse("magnet:?dn=x&xt=urn:btmh:1220abcd"),
            Err(MagnetError::MissingInfoHash)
        );
        for bad in [
            &HEX[..39],
            &format!("{HEX}0"),
            &format!("{}zz", &HEX[..38]),
            "",
            "é",
        ] {
            let err = Magnet::parse(&format!("magnet:?xt=urn:btih:{bad}")).unwrap_err();
            assert!(
                matches!(err, MagnetError::InvalidInfoHash { .. }),
                "{bad}: {err:?}"
            );
        }
        let bad32 = format!("{}1", &B32[..31]);
        assert!(matches!(
            Magnet::parse(&format!("magnet:?xt=urn:btih:{bad32}")),
            Err(MagnetError::InvalidInfoHash { .. })
        ));
        // A very long bad value is truncated in the error.
        let long = "x".repeat(1000);
        let Err(MagnetError::InvalidInfoHash { value }) =
            Magnet::parse(&format!("magnet:?xt=urn:btih:{long}"))
        else {
            panic!("expected InvalidInfoHash");
        };
        assert_eq!(value.len(), 64);
        // Multi-byte characters right after the scheme do not panic.
        assert_eq!(Magnet::parse("magneé:?"), Err(MagnetError::NotAMagnet));
    }

    #[test]
    fn to_uri_is_canonical_and_round_trips() {
        let m = Magnet {
            info_hash: hash(),
            name: Some("a b&c=d+é".into()),
            trackers: vec!["http://t.example/ann?x=1&y=2".into(), "udp://u:80".into()],
            peers: vec!["1.2.3.4:5".parse().unwrap(), "[::1]:6881".parse().unwrap()],
        };
        let uri = m.to_uri();
        assert_eq!(
            uri,
            format!(
                "magnet:?xt=urn:btih:{HEX}&dn=a%20b%26c%3Dd%2B%C3%A9\
                 &tr=http%3A%2F%2Ft.example%2Fann%3Fx%3D1%26y%3D2&tr=udp%3A%2F%2Fu%3A80\
                 &x.pe=1.2.3.4%3A5&x.pe=%5B%3A%3A1%5D%3A6881"
            )
        );
        assert_eq!(Magnet::parse(&uri), Ok(m));
        assert_eq!(
            Magnet::new(hash()).to_uri(),
            format!("magnet:?xt=urn:btih:{HEX}")
        );
        assert_eq!(uri.parse::<Magnet>().unwrap().info_hash, hash());
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in ".{0,200}") {
            let _ = Magnet::parse(&s);
            let _ = Magnet::parse(&format!("magnet:?{s}"));
        }

        #[test]
        fn round_trip(
            hash in proptest::array::uniform20(proptest::num::u8::ANY),
            name in proptest::option::of(".{0,20}"),
            trackers in proptest::collection::vec("[a-z:/&=+%?é ]{1,20}", 0..4),
        ) {
            let mut m = Magnet::new(InfoHash(hash));
            m.name = name;
            for t in trackers {
                let t = t.trim().to_owned();
                if !t.is_empty() && !m.trackers.contains(&t) {
                    m.trackers.push(t);
                }
            }
            proptest::prop_assert_eq!(Magnet::parse(&m.to_uri()), Ok(m));
        }
    }
}
