//! Small value types shared by every layer: identifiers and block addresses.

use std::fmt;

/// Size of a block, the unit of a `request`/`piece` exchange (16 KiB, as every
/// real client uses).
pub const BLOCK_SIZE: u32 = 16 * 1024;

/// The SHA-1 of a torrent's bencoded `info` dictionary, exactly as it appears in
/// the .torrent file. It names the torrent everywhere: handshakes, trackers,
/// the session's torrent map.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InfoHash(pub [u8; 20]);

impl InfoHash {
    /// The 40-character lowercase hex form used in magnet links and logs.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses a 40-character hex string.
    ///
    /// # Errors
    /// Returns `None` if the string is not exactly 40 hex digits.
    pub fn from_hex(s: &str) -> Option<Self> {
        let mut out = [0u8; 20];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(Self(out))
    }

    /// The first eight hex digits, for log prefixes.
    pub fn short(&self) -> String {
        hex::encode(&self.0[..4])
    }
}

impl fmt::Display for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for InfoHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InfoHash({})", self.to_hex())
    }
}

/// A 20-byte peer id. Ours follows the Azureus convention: `-BT0001-` and
/// twelve random bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PeerId(pub [u8; 20]);

impl PeerId {
    /// The client prefix of our peer ids (Azureus style, version 0.0.0.1).
    pub const PREFIX: &'static [u8; 8] = b"-BT0001-";

    /// A fresh random peer id with our client prefix.
    pub fn generate() -> Self {
        let mut id = [0u8; 20];
        id[..8].copy_from_slice(Self::PREFIX);
        // Printable characters keep logs and tracker URLs readable.
        const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        for b in &mut id[8..] {
            *b = ALPHABET[rand::random::<usize>() % ALPHABET.len()];
        }
        Self(id)
    }
}

impl fmt::Debug for PeerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PeerId({})",
            String::from_utf8_lossy(&self.0).escape_debug()
        )
    }
}

/// The address of one block: a byte range inside a piece.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, PartialOrd, Ord)]
pub struct BlockInfo {
    /// Zero-based piece index.
    pub piece: u32,
    /// Byte offset of the block inside the piece.
    pub begin: u32,
    /// Length of the block in bytes (at most [`BLOCK_SIZE`] for our requests).
    pub length: u32,
}

impl BlockInfo {
    /// The block's index inside its piece (`begin / BLOCK_SIZE`).
    pub fn index_in_piece(&self) -> usize {
        (self.begin / BLOCK_SIZE) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_hash_hex_round_trip() {
        let h = InfoHash([0xab; 20]);
        assert_eq!(h.to_hex(), "ab".repeat(20));
        assert_eq!(InfoHash::from_hex(&h.to_hex()), Some(h));
        assert_eq!(InfoHash::from_hex("abc"), None);
        assert_eq!(h.short(), "abababab");
    }

    #[test]
    fn peer_id_has_prefix_and_is_random() {
        let a = PeerId::generate();
        let b = PeerId::generate();
        assert_eq!(&a.0[..8], PeerId::PREFIX);
        assert_ne!(a, b);
    }
}
