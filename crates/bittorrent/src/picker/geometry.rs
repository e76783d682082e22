//! Piece and block geometry: lengths, block addresses, byte counts. The
//! last piece and its last block may be short.

use crate::picker::Picker;
use crate::types::{BlockInfo, BLOCK_SIZE};

impl Picker {
    /// Geometry: length of piece `index` (0 out of range).
    pub fn piece_len(&self, index: u32) -> u32 {
        let i = index as usize;
        if i >= self.piece_count {
            return 0;
        }
        if i + 1 < self.piece_count {
            return self.piece_length;
        }
        let before = u64::from(self.piece_length) * (self.piece_count as u64 - 1);
        let last = self.total_length.saturating_sub(before);
        u32::try_from(last)
            .unwrap_or(u32::MAX)
            .min(self.piece_length)
    }

    /// Geometry: number of blocks of piece `index` (0 out of range).
    pub fn blocks_in_piece(&self, index: u32) -> u32 {
        self.piece_len(index).div_ceil(BLOCK_SIZE)
    }

    #[cfg(test)]
    /// Geometry: the address of block `block` (0-based) of piece `index`,
    /// or `None` if there is no such block.
    pub fn block_info(&self, index: u32, block: u32) -> Option<BlockInfo> {
        let piece_len = self.piece_len(index);
        (block < piece_len.div_ceil(BLOCK_SIZE)).then(|| make_block(index, block, piece_len))
    }

    /// Bytes of `pieces` pieces, of which the last piece is one if
    /// `with_last`.
    pub(super) fn bytes_of(&self, pieces: usize, with_last: bool) -> u64 {
        let Some(last) = self.piece_count.checked_sub(1) else {
            return 0;
        };
        let full = pieces.saturating_sub(usize::from(with_last)) as u64;
        let last_len = if with_last {
            u64::from(self.piece_len(last as u32))
        } else {
            0
        };
        full * u64::from(self.piece_length) + last_len
    }

    /// Index of `block` inside its piece if its geometry is exactly ours.
    pub(super) fn block_index(&self, block: BlockInfo) -> Option<usize> {
        let piece_len = self.piece_len(block.piece);
        if piece_len == 0 || block.begin % BLOCK_SIZE != 0 || block.begin >= piece_len {
            return None;
        }
        let expected = BLOCK_SIZE.min(piece_len - block.begin);
        (block.length == expected).then(|| block.index_in_piece())
    }
}

/// Address of block `b` of a piece of `piece_len` bytes (the last block may
/// be short).
pub(super) fn make_block(piece: u32, b: u32, piece_len: u32) -> BlockInfo {
    let begin = b * BLOCK_SIZE;
    BlockInfo {
        piece,
        begin,
        length: BLOCK_SIZE.min(piece_len - begin),
    }
}
