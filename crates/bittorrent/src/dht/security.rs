//! BEP 42, the DHT security extension: a node id tied to the node's external
//! IP address, and the vote that tells a node its external IP. Pure.
//!
//! The first 21 bits of a node id must be those of
//! `crc32c((ip & mask) | r << 29)` (IPv4; for IPv6 the high 64 bits of the
//! address, `r << 61`), where `r` is the low 3 bits of the id's last byte.
//! Nodes on local addresses (loopback, private, link-local) are exempt.
//!
//! Our choice, as libtorrent's default: ids are not enforced. Every node's
//! queries are served, and announces go to the closest nodes that gave a
//! token whatever their ids. What we do is make our own id valid once
//! responders agree on our external IP (see [`IpVotes`]).

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::dht::node::{NodeId, ID_LEN};

/// The bits of an IPv4 address that count.
const V4_MASK: [u8; 4] = [0x03, 0x0f, 0x3f, 0xff];
/// The bits of the high 64 bits of an IPv6 address that count.
const V6_MASK: [u8; 8] = [0x01, 0x03, 0x07, 0x0f, 0x1f, 0x3f, 0x7f, 0xff];

/// Distinct responders that must agree before we believe an external IP.
pub const MIN_VOTES: usize = 3;
/// Responders whose last report is remembered (the oldest leaves first).
const MAX_VOTERS: usize = 50;

/// The CRC32C of `ip`'s masked bytes with `r` (0..=7) in the top 3 bits.
fn prefix_crc(ip: IpAddr, r: u8) -> u32 {
    let mut bytes = [0u8; 8];
    let len = match ip {
        IpAddr::V4(v4) => {
            for (b, (o, m)) in bytes.iter_mut().zip(v4.octets().iter().zip(V4_MASK)) {
                *b = o & m;
            }
            4
        }
        IpAddr::V6(v6) => {
            for (b, (o, m)) in bytes.iter_mut().zip(v6.octets().iter().zip(V6_MASK)) {
                *b = o & m;
            }
            8
        }
    };
    bytes[0] |= (r & 0x07) << 5;
    crc32c::crc32c(&bytes[..len])
}

/// The id BEP 42 derives for `ip` from 20 random bytes: the last byte is the
/// `rand` of the BEP (its low 3 bits are `r`), the first 21 bits come from
/// the CRC32C, and the other bits are the random bytes'.
pub fn secure_id(ip: IpAddr, random: [u8; ID_LEN]) -> NodeId {
    let mut id = random;
    let crc = prefix_crc(ip, id[ID_LEN - 1]).to_be_bytes();
    id[0] = crc[0];
    id[1] = crc[1];
    id[2] = (crc[2] & 0xf8) | (id[2] & 0x07);
    NodeId(id)
}

/// Whether `id` is valid for a node at `ip` (always, on a local address).
pub fn id_matches_ip(id: &NodeId, ip: IpAddr) -> bool {
    if is_exempt(ip) {
        return true;
    }
    let crc = prefix_crc(ip, id.0[ID_LEN - 1]).to_be_bytes();
    id.0[0] == crc[0] && id.0[1] == crc[1] && id.0[2] & 0xf8 == crc[2] & 0xf8
}

/// Addresses exempt from the id rule: loopback, private, link-local (and
/// IPv6 unique-local, link-local and loopback), the unspecified address.
pub fn is_exempt(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback() || v4.is_private() || v4.is_link_local() || v4.is_unspecified()
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || first & 0xfe00 == 0xfc00
                || first & 0xffc0 == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_exempt(v4.into()))
        }
    }
}

/// What responders say our external IP is (BEP 42's `ip` field): the last
/// report of each of the recent responders, one vote each.
#[derive(Clone, Debug, Default)]
pub struct IpVotes {
    /// (responder, what it reported), oldest first; one entry per responder.
    votes: VecDeque<(IpAddr, IpAddr)>,
}

impl IpVotes {
    /// Records that `voter` saw us as `reported`.
    pub fn vote(&mut self, voter: IpAddr, reported: IpAddr) {
        self.votes.retain(|(v, _)| *v != voter);
        if self.votes.len() >= MAX_VOTERS {
            self.votes.pop_front();
        }
        self.votes.push_back((voter, reported));
    }

    /// The address of the family `v6` reported by the most responders, if at
    /// least [`MIN_VOTES`] agree and no other address has as many.
    pub fn leader(&self, v6: bool) -> Option<IpAddr> {
        let mut counts: Vec<(IpAddr, usize)> = Vec::new();
        for (_, ip) in self.votes.iter().filter(|(_, ip)| ip.is_ipv6() == v6) {
            match counts.iter_mut().find(|(a, _)| a == ip) {
                Some((_, n)) => *n += 1,
                None => counts.push((*ip, 1)),
            }
        }
        counts.sort_by_key(|c| std::cmp::Reverse(c.1));
        match counts.as_slice() {
            [(ip, n), rest @ ..] if *n >= MIN_VOTES && rest.first().is_none_or(|r| r.1 < *n) => {
                Some(*ip)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vectors of BEP 42: IP, `rand`, and the example id.
    const VECTORS: &[(&str, u8, &str)] = &[
        (
            "124.31.75.21",
            1,
            "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401",
        ),
        (
            "21.75.31.124",
            86,
            "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256",
        ),
        (
            "65.23.51.170",
            22,
            "a5d43220bc8f112a3d426c84764f8c2a1150e616",
        ),
        (
            "84.124.73.14",
            65,
            "1b0321dd1bb1fe518101ceef99462b947a01ff41",
        ),
        (
            "43.213.53.83",
            90,
            "e56f6cbf5b7c4be0237986d5243b87aa6d51305a",
        ),
    ];

    fn id(hex_id: &str) -> NodeId {
        NodeId(hex::decode(hex_id).unwrap().try_into().unwrap())
    }

    #[test]
    fn bep42_test_vectors() {
        for (ip, rand, example) in VECTORS {
            let ip: IpAddr = ip.parse().unwrap();
            let example = id(example);
            assert!(id_matches_ip(&example, ip), "{ip}");
            // Made from the example's own random bits, our id is the example.
            let mut random = example.0;
            random[ID_LEN - 1] = *rand;
            assert_eq!(secure_id(ip, random), example, "{ip}");
            // From other random bits: the same 21-bit prefix and last byte.
            let made = secure_id(ip, [0x5a; ID_LEN]);
            let mut random = [0x5a; ID_LEN];
            random[ID_LEN - 1] = *rand;
            let made_r = secure_id(ip, random);
            assert_eq!(made_r.0[..2], example.0[..2], "{ip}");
            assert_eq!(made_r.0[2] & 0xf8, example.0[2] & 0xf8, "{ip}");
            assert_eq!(made_r.0[ID_LEN - 1], *rand);
            assert!(id_matches_ip(&made, ip));
        }
    }

    #[test]
    fn ids_of_other_ips_do_not_match() {
        let (ip, _, example) = VECTORS[0];
        let ip: IpAddr = ip.parse().unwrap();
        let example = id(example);
        assert!(!id_matches_ip(&example, VECTORS[1].0.parse().unwrap()));
        // One bit of the 21-bit prefix flipped.
        let mut bad = example;
        bad.0[2] ^= 0x08;
        assert!(!id_matches_ip(&bad, ip));
        // The random low bits of byte 2 do not count.
        let mut fine = example;
        fine.0[2] ^= 0x07;
        assert!(id_matches_ip(&fine, ip));
        // A different r in the last byte changes the prefix.
        let mut other_r = example;
        other_r.0[ID_LEN - 1] ^= 0x01;
        assert!(!id_matches_ip(&other_r, ip));
    }

    #[test]
    fn ipv6_ids_use_the_high_64_bits() {
        let ip: IpAddr = "2001:db8:1234:5678:9abc::1".parse().unwrap();
        let made = secure_id(ip, rand::random());
        assert!(id_matches_ip(&made, ip));
        let same_prefix: IpAddr = "2001:db8:1234:5678:ffff::2".parse().unwrap();
        assert!(id_matches_ip(&made, same_prefix), "low 64 bits ignored");
        let other: IpAddr = "2001:db8:1234:5679::1".parse().unwrap();
        assert!(!id_matches_ip(&made, other));
    }

    #[test]
    fn local_addresses_are_exempt() {
        let any = NodeId([0xab; ID_LEN]);
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
        ] {
            assert!(id_matches_ip(&any, ip.parse().unwrap()), "{ip}");
        }
        assert!(!is_exempt("8.8.8.8".parse().unwrap()));
        assert!(!is_exempt("2001:db8::1".parse().unwrap()));
    }

    #[test]
    fn votes_need_agreeing_distinct_responders() {
        let ours: IpAddr = "203.0.113.7".parse().unwrap();
        let liar: IpAddr = "198.51.100.1".parse().unwrap();
        let voter = |i: u8| IpAddr::from([192, 0, 2, i]);
        let mut votes = IpVotes::default();
        votes.vote(voter(1), ours);
        votes.vote(voter(1), ours);
        votes.vote(voter(1), ours);
        assert_eq!(votes.leader(false), None, "one responder, one vote");
        votes.vote(voter(2), ours);
        votes.vote(voter(3), liar);
        assert_eq!(votes.leader(false), None, "two votes are not enough");
        votes.vote(voter(4), ours);
        assert_eq!(votes.leader(false), Some(ours));
        assert_eq!(votes.leader(true), None, "per address family");
        // A tie is no decision.
        for i in 5..7 {
            votes.vote(voter(i), liar);
        }
        assert_eq!(votes.leader(false), None);
        // Responders changing their minds count once each.
        votes.vote(voter(3), ours);
        assert_eq!(votes.leader(false), Some(ours));
        // Memory is bounded: the oldest voters leave.
        for i in 0..200u8 {
            votes.vote(IpAddr::from([198, 18, 0, i]), liar);
        }
        assert_eq!(votes.votes.len(), MAX_VOTERS);
        assert_eq!(votes.leader(false), Some(liar));
    }
}
