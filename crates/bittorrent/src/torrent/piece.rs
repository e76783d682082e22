//! Pieces being assembled in memory until every block is in.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::types::{BlockInfo, BLOCK_SIZE};

/// The blocks of one partially downloaded piece and who sent them.
#[derive(Debug)]
pub(crate) struct PieceBuffer {
    blocks: Vec<Option<Bytes>>,
    received: usize,
    /// Peers that sent at least one block of this piece (to blame on a hash failure).
    pub(crate) contributors: Vec<SocketAddr>,
}

impl PieceBuffer {
    /// An empty buffer for a piece of `piece_len` bytes.
    pub(crate) fn new(piece_len: u32) -> Self {
        let count = piece_len.div_ceil(BLOCK_SIZE) as usize;
        Self {
            blocks: vec![None; count],
            received: 0,
            contributors: Vec::new(),
        }
    }

    /// Stores a block (the picker has already checked its geometry). Returns
    /// true when every block is present.
    pub(crate) fn insert(&mut self, block: BlockInfo, data: Bytes, from: SocketAddr) -> bool {
        if let Some(slot) = self.blocks.get_mut(block.index_in_piece()) {
            if slot.is_none() {
                *slot = Some(data);
                self.received += 1;
            }
        }
        if !self.contributors.contains(&from) {
            self.contributors.push(from);
        }
        self.is_complete()
    }

    /// True when every block is present.
    pub(crate) fn is_complete(&self) -> bool {
        self.received == self.blocks.len()
    }

    /// The blocks in order, once complete.
    pub(crate) fn into_blocks(self) -> Option<Vec<Bytes>> {
        self.blocks.into_iter().collect()
    }
}
