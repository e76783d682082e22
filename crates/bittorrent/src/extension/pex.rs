//! BEP 11 `ut_pex`: peer exchange.
//!
//! A message is a dictionary of compact address strings: `added` / `dropped` (6 bytes per
//! IPv4 peer) and `added6` / `dropped6` (18 bytes per IPv6 peer), with one flag byte per
//! added peer in `added.f` / `added6.f`. All keys are optional.
//!
//! # Limits
//! BEP 11 asks senders for at most [`MAX_SENT`] added and [`MAX_SENT`] dropped peers per
//! message and at most one message a minute ([`PEX_INTERVAL`]); [`PexState`] follows both,
//! for each address family apart (`added` and `added6` each hold up to [`MAX_SENT`]).
//! The decoder accepts more but keeps at most [`MAX_DECODED`] added and [`MAX_DECODED`]
//! dropped peers of each family (a flood of IPv4 entries cannot crowd out the IPv6 ones).
//! A compact string whose length is not a multiple of its entry size is an error; a
//! missing or short flags string gives the remaining peers flags 0. Added peers with port
//! 0 are skipped. An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) in `added6`/`dropped6`
//! is read as the IPv4 address it stands for, and sent in `added`/`dropped`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use crate::bencode::{self, Value};
use crate::extension::{encode_dict, get_bytes, ExtensionError};

/// Most added (and, separately, dropped) peers of one address family [`PexState`] puts
/// in one message.
pub const MAX_SENT: usize = 50;

/// Most added (and, separately, dropped) peers of one address family kept from one
/// decoded message.
pub const MAX_DECODED: usize = 200;

/// Least time between two PEX messages to the same peer.
pub const PEX_INTERVAL: Duration = Duration::from_secs(60);

const V4_LEN: usize = 6;
const V6_LEN: usize = 18;

/// The flag byte of an added peer (BEP 11).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PexFlags(pub u8);

impl PexFlags {
    /// The peer prefers encrypted connections.
    pub const PREFERS_ENCRYPTION: u8 = 0x01;
    /// The peer is a seed (or upload-only).
    pub const SEED: u8 = 0x02;
    /// The peer supports uTP.
    pub const UTP: u8 = 0x04;
    /// The peer supports the holepunch extension.
    pub const HOLEPUNCH: u8 = 0x08;
    /// The peer is reachable: we connected to it (outgoing connection).
    pub const REACHABLE: u8 = 0x10;

    /// Whether every bit of `flag` is set.
    pub fn contains(self, flag: u8) -> bool {
        self.0 & flag == flag
    }
}

/// An added peer with its flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PexPeer {
    /// Its address.
    pub addr: SocketAddr,
    /// What the sender knows about it.
    pub flags: PexFlags,
}

/// A `ut_pex` message; IPv4 and IPv6 peers together (split by family on the wire).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PexMessage {
    /// Peers the sender connected to since its last message.
    pub added: Vec<PexPeer>,
    /// Peers the sender disconnected from since its last message.
    pub dropped: Vec<SocketAddr>,
}

impl PexMessage {
    /// Whether the message carries nothing.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.dropped.is_empty()
    }

    /// Decodes a `ut_pex` body (after the extended id byte).
    ///
    /// # Errors
    /// [`ExtensionError::Bencode`] when the body is not exactly one bencoded value,
    /// [`ExtensionError::NotADict`] when it is not a dictionary and
    /// [`ExtensionError::CompactLength`] for a compact string of a bad length.
    pub fn decode(body: &[u8]) -> Result<Self, ExtensionError> {
        let root = bencode::decode(body)?;
        if root.value.as_dict().is_none() {
            return Err(ExtensionError::NotADict);
        }
        let compact = |key: &'static str, entry: usize| -> Result<&[u8], ExtensionError> {
            let bytes = get_bytes(&root, key.as_bytes()).unwrap_or_default();
            if bytes.len() % entry != 0 {
                return Err(ExtensionError::CompactLength {
                    key,
                    len: bytes.len(),
                    entry,
                });
            }
            Ok(bytes)
        };
        let added4 = compact("added", V4_LEN)?;
        let added6 = compact("added6", V6_LEN)?;
        let dropped4 = compact("dropped", V4_LEN)?;
        let dropped6 = compact("dropped6", V6_LEN)?;
        let flags4 = get_bytes(&root, b"added.f").unwrap_or_default();
        let flags6 = get_bytes(&root, b"added6.f").unwrap_or_default();

        let with_flags = |addrs: &[u8], entry: usize, flags: &[u8]| {
            addrs
                .chunks_exact(entry)
                .enumerate()
                .filter_map(|(i, chunk)| {
                    let addr = addr_from_compact(chunk)?;
                    let flags = PexFlags(flags.get(i).copied().unwrap_or(0));
                    Some(PexPeer { addr, flags })
                })
                .filter(|p| p.addr.port() != 0)
                .take(MAX_DECODED)
                .collect::<Vec<_>>()
        };
        let mut added = with_flags(added4, V4_LEN, flags4);
        added.extend(with_flags(added6, V6_LEN, flags6));

        let dropped_of = |addrs: &[u8], entry: usize| {
            addrs
                .chunks_exact(entry)
                .filter_map(addr_from_compact)
                .take(MAX_DECODED)
                .collect::<Vec<_>>()
        };
        let mut dropped = dropped_of(dropped4, V4_LEN);
        dropped.extend(dropped_of(dropped6, V6_LEN));
        Ok(Self { added, dropped })
    }

    /// Encodes a `ut_pex` body. Empty lists are left out; `added.f` / `added6.f` are
    /// written whenever `added` / `added6` are.
    pub fn encode(&self) -> Vec<u8> {
        let mut added4 = Vec::new();
        let mut flags4 = Vec::new();
        let mut added6 = Vec::new();
        let mut flags6 = Vec::new();
        for peer in &self.added {
            if peer.addr.ip().to_canonical().is_ipv4() {
                push_compact(&mut added4, peer.addr);
                flags4.push(peer.flags.0);
            } else {
                push_compact(&mut added6, peer.addr);
                flags6.push(peer.flags.0);
            }
        }
        let mut dropped4 = Vec::new();
        let mut dropped6 = Vec::new();
        for &addr in &self.dropped {
            let out = if addr.ip().to_canonical().is_ipv4() {
                &mut dropped4
            } else {
                &mut dropped6
            };
            push_compact(out, addr);
        }

        let mut entries: Vec<(&[u8], Value<'_>)> = Vec::new();
        if !added4.is_empty() {
            entries.push((b"added", Value::Bytes(&added4)));
            entries.push((b"added.f", Value::Bytes(&flags4)));
        }
        if !added6.is_empty() {
            entries.push((b"added6", Value::Bytes(&added6)));
            entries.push((b"added6.f", Value::Bytes(&flags6)));
        }
        if !dropped4.is_empty() {
            entries.push((b"dropped", Value::Bytes(&dropped4)));
        }
        if !dropped6.is_empty() {
            entries.push((b"dropped6", Value::Bytes(&dropped6)));
        }
        encode_dict(entries)
    }
}

/// An address from 6 (IPv4) or 18 (IPv6) compact bytes: address then big-endian port. An
/// IPv4-mapped IPv6 address becomes its IPv4 address.
fn addr_from_compact(chunk: &[u8]) -> Option<SocketAddr> {
    let split = chunk.len().checked_sub(2)?;
    let (ip, port) = chunk.split_at(split);
    let port = u16::from_be_bytes(<[u8; 2]>::try_from(port).ok()?);
    let ip = if let Ok(v4) = <[u8; 4]>::try_from(ip) {
        IpAddr::V4(Ipv4Addr::from(v4))
    } else {
        IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(ip).ok()?)).to_canonical()
    };
    Some(SocketAddr::new(ip, port))
}

fn push_compact(out: &mut Vec<u8>, addr: SocketAddr) {
    match addr.ip().to_canonical() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// What one peer has been told by PEX; produces the next message.
///
/// Invariant: `sent` is exactly the set of peers announced as added to this peer and not
/// since announced as dropped.
#[derive(Clone, Debug, Default)]
pub struct PexState {
    sent: BTreeSet<SocketAddr>,
    last_sent: Option<Instant>,
}

impl PexState {
    /// A state for a new connection: nothing told yet; the first message may go at once.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next message for this peer, given every peer we are connected to now (without
    /// the recipient itself: the caller filters it out).
    ///
    /// Returns `None` when a message went out less than [`PEX_INTERVAL`] before `now`,
    /// or when nothing changed. Otherwise the message holds at most [`MAX_SENT`] added
    /// and [`MAX_SENT`] dropped peers of each address family (lowest addresses first); the
    /// rest follow in later messages.
    pub fn next_message(
        &mut self,
        now: Instant,
        connected: impl IntoIterator<Item = PexPeer>,
    ) -> Option<PexMessage> {
        if let Some(last) = self.last_sent {
            if now.saturating_duration_since(last) < PEX_INTERVAL {
                return None;
            }
        }
        let current: BTreeMap<SocketAddr, PexFlags> =
            connected.into_iter().map(|p| (p.addr, p.flags)).collect();
        let mut added: Vec<PexPeer> = Vec::new();
        let mut dropped: Vec<SocketAddr> = Vec::new();
        for v4 in [true, false] {
            let family = |addr: &SocketAddr| addr.ip().to_canonical().is_ipv4() == v4;
            added.extend(
                current
                    .iter()
                    .filter(|(addr, _)| family(addr) && !self.sent.contains(addr))
                    .take(MAX_SENT)
                    .map(|(&addr, &flags)| PexPeer { addr, flags }),
            );
            dropped.extend(
                self.sent
                    .iter()
                    .filter(|addr| family(addr) && !current.contains_key(addr))
                    .take(MAX_SENT)
                    .copied(),
            );
        }
        let message = PexMessage { added, dropped };
        if message.is_empty() {
            return None;
        }
        for peer in &message.added {
            self.sent.insert(peer.addr);
        }
        for addr in &message.dropped {
            self.sent.remove(addr);
        }
        self.last_sent = Some(now);
        Some(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    fn peer(s: &str, flags: u8) -> PexPeer {
        PexPeer {
            addr: addr(s),
            flags: PexFlags(flags),
        }
    }

    #[test]
    fn decode_compact_v4_and_v6() {
        let mut body =
            b"d5:added12:\x0a\x00\x00\x01\x1a\xe1\xc0\xa8\x01\x02\x00\x507:added.f2:\x12\x01"
                .to_vec();
        body.extend_from_slice(b"6:added618:");
        body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        body.extend_from_slice(b"\x1a\xe28:added6.f1:\x047:dropped6:\x01\x01\x01\x01\x00\x01");
        body.extend_from_slice(b"8:dropped618:");
        body.extend_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        body.extend_from_slice(b"\x00\x02e");
        let msg = PexMessage::decode(&body).unwrap();
        assert_eq!(
            msg.added,
            [
                peer("10.0.0.1:6881", 0x12),
                peer("192.168.1.2:80", 0x01),
                peer("[::1]:6882", 0x04)
            ]
        );
        assert!(msg.added[0]
            .flags
            .contains(PexFlags::SEED | PexFlags::REACHABLE));
        assert!(!msg.added[0].flags.contains(PexFlags::UTP));
        assert_eq!(msg.dropped, [addr("1.1.1.1:1"), addr("[2001:db8::1]:2")]);
        // Our encoding of it is canonical and identical.
        assert_eq!(msg.encode(), body);
    }

    #[test]
    fn missing_or_short_flags_default_to_zero() {
        let body = b"d5:added12:\x01\x02\x03\x04\x00\x01\x05\x06\x07\x08\x00\x027:added.f1:\x02e";
        let msg = PexMessage::decode(body).unwrap();
        assert_eq!(msg.added, [peer("1.2.3.4:1", 2), peer("5.6.7.8:2", 0)]);
        let msg = PexMessage::decode(b"d5:added6:\x01\x02\x03\x04\x00\x017:added.fi1ee").unwrap();
        assert_eq!(msg.added, [peer("1.2.3.4:1", 0)]);
    }

    #[test]
    fn empty_and_unknown_keys() {
        assert_eq!(PexMessage::decode(b"de"), Ok(PexMessage::default()));
        assert_eq!(PexMessage::default().encode(), b"de");
        let msg = PexMessage::decode(b"d5:addedi3e3:fooi1ee").unwrap();
        assert!(msg.is_empty());
    }

    #[test]
    fn port_zero_added_peers_are_skipped() {
        let msg = PexMessage::decode(b"d5:added6:\x01\x02\x03\x04\x00\x00e").unwrap();
        assert!(msg.added.is_empty());
    }

    #[test]
    fn decode_errors() {
        assert_eq!(PexMessage::decode(b"le"), Err(ExtensionError::NotADict));
        assert!(matches!(
            PexMessage::decode(b"dee"),
            Err(ExtensionError::Bencode(_))
        ));
        assert_eq!(
            PexMessage::decode(b"d5:added5:abcdee"),
            Err(ExtensionError::CompactLength {
                key: "added",
                len: 5,
                entry: 6
            })
        );
        assert_eq!(
            PexMessage::decode(b"d8:dropped66:abcdefe"),
            Err(ExtensionError::CompactLength {
                key: "dropped6",
                len: 6,
                entry: 18
            })
        );
    }

    #[test]
    fn decode_caps_what_it_keeps() {
        let n = 300;
        let mut compact = Vec::new();
        for i in 0..n {
            push_compact(
                &mut compact,
                SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1)),
            );
        }
        let mut body = format!("d5:added{}:", compact.len()).into_bytes();
        body.extend_from_slice(&compact);
        body.extend_from_slice(format!("7:dropped{}:", compact.len()).as_bytes());
        body.extend_from_slice(&compact);
        body.push(b'e');
        let msg = PexMessage::decode(&body).unwrap();
        assert_eq!(msg.added.len(), MAX_DECODED);
        assert_eq!(msg.dropped.len(), MAX_DECODED);
        assert_eq!(msg.added[0].addr, addr("10.0.0.0:1"));
    }

    #[test]
    fn decode_caps_each_family_apart() {
        let mut v4 = Vec::new();
        for i in 0..300u16 {
            push_compact(
                &mut v4,
                SocketAddr::from(([10, 0, (i >> 8) as u8, i as u8], 1)),
            );
        }
        let mut v6 = Vec::new();
        for i in 1..=3u16 {
            push_compact(
                &mut v6,
                SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i), 2)),
            );
        }
        let mut body = format!("d5:added{}:", v4.len()).into_bytes();
        body.extend_from_slice(&v4);
        body.extend_from_slice(format!("6:added6{}:", v6.len()).as_bytes());
        body.extend_from_slice(&v6);
        body.extend_from_slice(format!("7:dropped{}:", v4.len()).as_bytes());
        body.extend_from_slice(&v4);
        body.extend_from_slice(format!("8:dropped6{}:", v6.len()).as_bytes());
        body.extend_from_slice(&v6);
        body.push(b'e');
        let msg = PexMessage::decode(&body).unwrap();
        assert_eq!(msg.added.len(), MAX_DECODED + 3);
        assert_eq!(msg.dropped.len(), MAX_DECODED + 3);
        assert_eq!(msg.added[MAX_DECODED].addr, addr("[2001:db8::1]:2"));
        assert_eq!(msg.dropped[MAX_DECODED + 2], addr("[2001:db8::3]:2"));
    }

    #[test]
    fn v4_mapped_entries_are_ipv4() {
        let mapped: Ipv6Addr = "::ffff:10.1.2.3".parse().unwrap();
        let mut body = b"d6:added618:".to_vec();
        body.extend_from_slice(&mapped.octets());
        body.extend_from_slice(b"\x1a\xe18:added6.f1:\x028:dropped618:");
        body.extend_from_slice(&mapped.octets());
        body.extend_from_slice(b"\x00\x07e");
        let msg = PexMessage::decode(&body).unwrap();
        assert_eq!(msg.added, [peer("10.1.2.3:6881", 0x02)]);
        assert_eq!(msg.dropped, [addr("10.1.2.3:7")]);
        // And a mapped address of ours goes out in the IPv4 keys.
        let ours = PexMessage {
            added: vec![peer("[::ffff:10.1.2.3]:6881", 0x02)],
            dropped: vec![addr("[::ffff:10.1.2.3]:7")],
        };
        assert_eq!(
            ours.encode(),
            b"d5:added6:\x0a\x01\x02\x03\x1a\xe17:added.f1:\x027:dropped6:\x0a\x01\x02\x03\x00\x07e"
        );
    }

    #[test]
    fn encode_round_trip_mixed_families() {
        let msg = PexMessage {
            added: vec![peer("[fe80::1]:9", 0x10), peer("9.8.7.6:5", 0x03)],
            dropped: vec![addr("[::2]:3"), addr("4.4.4.4:4")],
        };
        let decoded = PexMessage::decode(&msg.encode()).unwrap();
        // IPv4 entries come first after the round trip.
        assert_eq!(decoded.added, [msg.added[1], msg.added[0]]);
        assert_eq!(decoded.dropped, [msg.dropped[1], msg.dropped[0]]);
    }

    #[test]
    fn state_diffs() {
        let t0 = Instant::now();
        let mut state = PexState::new();
        let a = peer("1.1.1.1:1", PexFlags::REACHABLE);
        let b = peer("2.2.2.2:2", 0);
        let c = peer("[::3]:3", PexFlags::SEED);

        let first = state.next_message(t0, [b, a]).unwrap();
        assert_eq!(first.added, [a, b]);
        assert!(first.dropped.is_empty());

        // Too early, even though something changed.
        assert_eq!(
            state.next_message(t0 + Duration::from_secs(59), [a, c]),
            None
        );

        let t1 = t0 + PEX_INTERVAL;
        let second = state.next_message(t1, [a, c]).unwrap();
        assert_eq!(second.added, [c]);
        assert_eq!(second.dropped, [b.addr]);

        // Nothing changed: no message, and the clock is not reset.
        let t2 = t1 + PEX_INTERVAL;
        assert_eq!(state.next_message(t2, [c, a]), None);
        let third = state
            .next_message(t2 + Duration::from_secs(1), [c])
            .unwrap();
        assert_eq!(third.added, []);
        assert_eq!(third.dropped, [a.addr]);

        // A peer that left and came back is announced again.
        let t3 = t2 + Duration::from_secs(1) + PEX_INTERVAL;
        let fourth = state.next_message(t3, [a, c]).unwrap();
        assert_eq!(fourth.added, [a]);
    }

    #[test]
    fn state_empty_start_sends_nothing() {
        let t0 = Instant::now();
        let mut state = PexState::new();
        assert_eq!(state.next_message(t0, []), None);
        // No message went out, so a change right after is sent immediately.
        let a = peer("1.1.1.1:1", 0);
        assert_eq!(state.next_message(t0, [a]).unwrap().added, [a]);
    }

    #[test]
    fn state_caps_and_carries_over() {
        let t0 = Instant::now();
        let mut state = PexState::new();
        let peers: Vec<PexPeer> = (0..120u8)
            .map(|i| PexPeer {
                addr: SocketAddr::from(([10, 0, 0, i], 1000)),
                flags: PexFlags(0),
            })
            .collect();
        let mut told = BTreeSet::new();
        let mut t = t0;
        for expected in [50, 50, 20] {
            let msg = state.next_message(t, peers.iter().copied()).unwrap();
            assert_eq!(msg.added.len(), expected);
            assert!(msg.encode().len() < 50 * 7 + 64);
            for p in msg.added {
                assert!(told.insert(p.addr), "{} announced twice", p.addr);
            }
            t += PEX_INTERVAL;
        }
        assert_eq!(told.len(), 120);
        assert_eq!(state.next_message(t, peers.iter().copied()), None);

        // All of them leave: dropped in batches of 50 too.
        let mut dropped = 0;
        while let Some(msg) = state.next_message(t, []) {
            assert!(msg.dropped.len() <= MAX_SENT);
            assert!(msg.added.is_empty());
            dropped += msg.dropped.len();
            t += PEX_INTERVAL;
        }
        assert_eq!(dropped, 120);
    }

    #[test]
    fn state_caps_each_family_apart() {
        let t0 = Instant::now();
        let mut state = PexState::new();
        let v4 = (0..60u8).map(|i| peer(&format!("10.0.0.{i}:1"), 0));
        let v6 = (1..=60u16).map(|i| PexPeer {
            addr: SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i), 1)),
            flags: PexFlags(0),
        });
        let all: Vec<PexPeer> = v4.chain(v6).collect();
        let first = state.next_message(t0, all.iter().copied()).unwrap();
        let first4 = first.added.iter().filter(|p| p.addr.is_ipv4()).count();
        let first6 = first.added.len() - first4;
        assert_eq!((first4, first6), (MAX_SENT, MAX_SENT));
        let body = first.encode();
        let decoded = PexMessage::decode(&body).unwrap();
        assert_eq!(decoded.added.len(), 2 * MAX_SENT);
        let second = state
            .next_message(t0 + PEX_INTERVAL, all.iter().copied())
            .unwrap();
        assert_eq!(second.added.len(), 20);
        // Every IPv6 peer leaves: 50 dropped6, then 10.
        let v4_only: Vec<PexPeer> = all.iter().copied().filter(|p| p.addr.is_ipv4()).collect();
        let t2 = t0 + 2 * PEX_INTERVAL;
        let third = state.next_message(t2, v4_only.iter().copied()).unwrap();
        assert_eq!(third.dropped.len(), MAX_SENT);
        assert!(third.dropped.iter().all(SocketAddr::is_ipv6));
    }

    #[test]
    fn state_duplicate_addresses_are_merged() {
        let mut state = PexState::new();
        let a = peer("1.1.1.1:1", 0);
        let msg = state.next_message(Instant::now(), [a, a, a]).unwrap();
        assert_eq!(msg.added, [a]);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = PexMessage::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_compact(
            key in proptest::sample::select(
                vec!["added", "added.f", "added6", "added6.f", "dropped", "dropped6"]),
            value in proptest::collection::vec(proptest::num::u8::ANY, 0..80),
        ) {
            let mut body = format!("d{}:{key}{}:", key.len(), value.len()).into_bytes();
            body.extend_from_slice(&value);
            body.push(b'e');
            let _ = PexMessage::decode(&body);
        }
    }
}
