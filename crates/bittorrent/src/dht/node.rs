//! Node ids, XOR distance and the compact node/peer formats of BEP 5.
//!
//! The compact formats are address-family aware so IPv6 (BEP 32: 38-byte
//! nodes, 18-byte peers) needs no new types.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};

use crate::types::InfoHash;

/// Length of a node id (and of an info-hash) in bytes.
pub const ID_LEN: usize = 20;
/// Length of one IPv4 compact node entry: id, address, port.
pub const COMPACT_NODE_V4: usize = ID_LEN + 6;
/// Length of one IPv6 compact node entry (BEP 32).
pub const COMPACT_NODE_V6: usize = ID_LEN + 18;

/// A 160-bit DHT node id. Ordering is numeric (big-endian), so the ordering of
/// [`NodeId::distance`] values is the ordering of XOR distances.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct NodeId(pub [u8; ID_LEN]);

impl NodeId {
    /// A fresh uniformly random id.
    pub fn random() -> Self {
        Self(rand::random())
    }

    /// The XOR distance between two ids, itself an id-sized number.
    pub fn distance(&self, other: &NodeId) -> NodeId {
        let mut out = [0u8; ID_LEN];
        for (o, (a, b)) in out.iter_mut().zip(self.0.iter().zip(other.0.iter())) {
            *o = a ^ b;
        }
        NodeId(out)
    }

    /// Number of leading zero bits (160 for the zero id).
    pub fn leading_zeros(&self) -> usize {
        let mut n = 0;
        for byte in self.0 {
            if byte == 0 {
                n += 8;
            } else {
                return n + byte.leading_zeros() as usize;
            }
        }
        n
    }

    /// The id from a byte slice of exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// A random id that shares exactly the first `prefix` bits with `self`
    /// (bit `prefix` differs); with `prefix >= 160` it is `self`.
    pub fn random_with_prefix(&self, prefix: usize) -> NodeId {
        if prefix >= ID_LEN * 8 {
            return *self;
        }
        let mut out: [u8; ID_LEN] = rand::random();
        let whole = prefix / 8;
        out[..whole].copy_from_slice(&self.0[..whole]);
        let bit = prefix % 8;
        // Keep the first `bit` bits of byte `whole`, flip the next one.
        let keep = if bit == 0 { 0u8 } else { 0xffu8 << (8 - bit) };
        let flip = 0x80u8 >> bit;
        out[whole] =
            (self.0[whole] & keep) | (!self.0[whole] & flip) | (out[whole] & !keep & !flip);
        NodeId(out)
    }

    /// The first eight hex digits, for log prefixes.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl From<InfoHash> for NodeId {
    fn from(h: InfoHash) -> Self {
        NodeId(h.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", hex::encode(self.0))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// A node's contact: its id and UDP address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct NodeInfo {
    /// The node's id.
    pub id: NodeId,
    /// Its UDP address.
    pub addr: SocketAddr,
}

/// Appends the compact form of `addr` (4 or 16 address bytes, then the port
/// big-endian).
pub fn put_compact_addr(addr: &SocketAddr, out: &mut Vec<u8>) {
    match addr.ip() {
        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
    }
    out.extend_from_slice(&addr.port().to_be_bytes());
}

/// Parses a 6-byte (IPv4) or 18-byte (IPv6) compact address.
pub fn parse_compact_addr(bytes: &[u8]) -> Option<SocketAddr> {
    match bytes.len() {
        6 => {
            let ip = Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]);
            let port = u16::from_be_bytes([bytes[4], bytes[5]]);
            Some(SocketAddr::V4(SocketAddrV4::new(ip, port)))
        }
        18 => {
            let octets: [u8; 16] = bytes[..16].try_into().ok()?;
            let port = u16::from_be_bytes([bytes[16], bytes[17]]);
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(octets),
                port,
                0,
                0,
            )))
        }
        _ => None,
    }
}

/// Encodes the nodes of one address family (`v6` selects which) in compact
/// form, skipping the others.
pub fn encode_nodes(nodes: &[NodeInfo], v6: bool) -> Vec<u8> {
    let size = if v6 { COMPACT_NODE_V6 } else { COMPACT_NODE_V4 };
    let mut out = Vec::with_capacity(nodes.len() * size);
    for node in nodes.iter().filter(|n| n.addr.is_ipv6() == v6) {
        out.extend_from_slice(&node.id.0);
        put_compact_addr(&node.addr, &mut out);
    }
    out
}

/// Decodes a compact node list whose entries are `entry_len` bytes long
/// ([`COMPACT_NODE_V4`] or [`COMPACT_NODE_V6`]); `None` if the length is not
/// a multiple of it.
pub fn decode_nodes(bytes: &[u8], entry_len: usize) -> Option<Vec<NodeInfo>> {
    if entry_len <= ID_LEN || bytes.len() % entry_len != 0 {
        return None;
    }
    bytes
        .chunks_exact(entry_len)
        .map(|chunk| {
            Some(NodeInfo {
                id: NodeId::from_slice(&chunk[..ID_LEN])?,
                addr: parse_compact_addr(&chunk[ID_LEN..])?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_and_leading_zeros() {
        let a = NodeId([0u8; 20]);
        let mut b = [0u8; 20];
        b[1] = 0x10;
        let b = NodeId(b);
        assert_eq!(a.distance(&b), b);
        assert_eq!(b.distance(&b), a);
        assert_eq!(a.leading_zeros(), 160);
        assert_eq!(b.leading_zeros(), 11);
        assert!(a.distance(&b) > a.distance(&a));
    }

    #[test]
    fn random_with_prefix_shares_exactly_the_prefix() {
        let own = NodeId::random();
        for prefix in [0, 1, 7, 8, 9, 63, 100, 159] {
            let id = own.random_with_prefix(prefix);
            assert_eq!(own.distance(&id).leading_zeros(), prefix, "prefix {prefix}");
        }
        assert_eq!(own.random_with_prefix(160), own);
    }

    #[test]
    fn compact_nodes_round_trip() {
        let nodes = vec![
            NodeInfo {
                id: NodeId([1; 20]),
                addr: "127.0.0.1:6881".parse().unwrap(),
            },
            NodeInfo {
                id: NodeId([2; 20]),
                addr: "[::1]:6882".parse().unwrap(),
            },
        ];
        let v4 = encode_nodes(&nodes, false);
        assert_eq!(v4.len(), 26);
        assert_eq!(&v4[20..], &[127, 0, 0, 1, 0x1a, 0xe1]);
        assert_eq!(decode_nodes(&v4, COMPACT_NODE_V4).unwrap(), nodes[..1]);
        let v6 = encode_nodes(&nodes, true);
        assert_eq!(decode_nodes(&v6, COMPACT_NODE_V6).unwrap(), nodes[1..]);
        assert_eq!(decode_nodes(&v4[..25], COMPACT_NODE_V4), None);
    }
}
