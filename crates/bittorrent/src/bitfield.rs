//! A fixed-length set of piece indices, in the wire's bit order (the high bit
//! of byte 0 is piece 0).

/// Which pieces a peer (or we) have. The length in bits is the torrent's piece
/// count; the spare bits of the last byte are always zero.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Bitfield {
    bytes: Vec<u8>,
    len: usize,
    ones: usize,
}

/// Why a received bitfield was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BitfieldError {
    /// The payload is not `ceil(pieces / 8)` bytes long.
    #[error("bitfield is {got} bytes, expected {expected} for {pieces} pieces")]
    WrongLength {
        /// Bytes received.
        got: usize,
        /// Bytes expected.
        expected: usize,
        /// Piece count of the torrent.
        pieces: usize,
    },
    /// A bit past the last piece is set.
    #[error("bitfield has spare bits set past piece {pieces}")]
    SpareBitsSet {
        /// Piece count of the torrent.
        pieces: usize,
    },
}

impl Bitfield {
    /// An empty bitfield for `len` pieces.
    pub fn new(len: usize) -> Self {
        Self {
            bytes: vec![0; len.div_ceil(8)],
            len,
            ones: 0,
        }
    }

    /// A bitfield for `len` pieces with every bit set.
    pub fn full(len: usize) -> Self {
        let mut b = Self::new(len);
        for i in 0..len {
            b.set(i);
        }
        b
    }

    /// Validates and adopts a bitfield received from a peer.
    ///
    /// # Errors
    /// The payload must be exactly `ceil(len / 8)` bytes with the spare bits
    /// clear.
    pub fn from_bytes(bytes: &[u8], len: usize) -> Result<Self, BitfieldError> {
        let expected = len.div_ceil(8);
        if bytes.len() != expected {
            return Err(BitfieldError::WrongLength {
                got: bytes.len(),
                expected,
                pieces: len,
            });
        }
        if len % 8 != 0 {
            let spare_mask = 0xffu8 >> (len % 8);
            if bytes[expected - 1] & spare_mask != 0 {
                return Err(BitfieldError::SpareBitsSet { pieces: len });
            }
        }
        let ones = bytes.iter().map(|b| b.count_ones() as usize).sum();
        Ok(Self {
            bytes: bytes.to_vec(),
            len,
            ones,
        })
    }

    /// Number of pieces the bitfield covers.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if the bitfield covers no pieces.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether piece `i` is set; out-of-range indices are never set.
    pub fn get(&self, i: usize) -> bool {
        i < self.len && self.bytes[i / 8] & (0x80 >> (i % 8)) != 0
    }

    /// Sets piece `i`. Returns true if it was not set before; out-of-range
    /// indices are ignored (and return false).
    pub fn set(&mut self, i: usize) -> bool {
        if i >= self.len || self.get(i) {
            return false;
        }
        self.bytes[i / 8] |= 0x80 >> (i % 8);
        self.ones += 1;
        true
    }

    /// Clears piece `i`. Returns true if it was set.
    pub fn clear(&mut self, i: usize) -> bool {
        if !self.get(i) {
            return false;
        }
        self.bytes[i / 8] &= !(0x80 >> (i % 8));
        self.ones -= 1;
        true
    }

    /// Number of pieces set.
    pub fn count_ones(&self) -> usize {
        self.ones
    }

    /// True if every piece is set.
    pub fn is_full(&self) -> bool {
        self.ones == self.len
    }

    /// Indices of the set pieces, ascending.
    pub fn iter_ones(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.len).filter(move |&i| self.get(i))
    }

    /// The wire form (for a `bitfield` message).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_get_clear_count() {
        let mut b = Bitfield::new(10);
        assert_eq!(b.as_bytes().len(), 2);
        assert!(b.set(0));
        assert!(!b.set(0));
        assert!(b.set(9));
        assert!(!b.set(10), "out of range is ignored");
        assert_eq!(b.as_bytes(), &[0x80, 0x40]);
        assert_eq!(b.count_ones(), 2);
        assert_eq!(b.iter_ones().collect::<Vec<_>>(), vec![0, 9]);
        assert!(b.clear(0));
        assert!(!b.clear(0));
        assert_eq!(b.count_ones(), 1);
        assert!(!b.get(100));
    }

    #[test]
    fn from_bytes_validates_length_and_spare_bits() {
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xc0], 10)
                .unwrap()
                .count_ones(),
            10
        );
        assert!(Bitfield::from_bytes(&[0xff, 0xc0], 10).unwrap().is_full());
        assert_eq!(
            Bitfield::from_bytes(&[0xff], 10),
            Err(BitfieldError::WrongLength {
                got: 1,
                expected: 2,
                pieces: 10
            })
        );
        assert_eq!(
            Bitfield::from_bytes(&[0xff, 0xe0], 10),
            Err(BitfieldError::SpareBitsSet { pieces: 10 })
        );
        assert!(Bitfield::from_bytes(&[0xff], 8).unwrap().is_full());
    }

    #[test]
    fn full_has_every_bit() {
        let b = Bitfield::full(13);
        assert!(b.is_full());
        assert_eq!(b.as_bytes(), &[0xff, 0xf8]);
    }
}
