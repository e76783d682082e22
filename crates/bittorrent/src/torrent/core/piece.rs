//! Pieces being assembled in memory until every block is in, and who sent
//! their blocks.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::types::{BlockInfo, BLOCK_SIZE};
use crate::webseed::WebSeedId;

/// Who sent a block: a peer, or a web seed (whose pieces come whole, so a
/// piece it sent that fails its hash check is its fault alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Contributor {
    /// A peer connection.
    Peer(SocketAddr),
    /// A web seed (BEP 19).
    WebSeed(WebSeedId),
}

impl From<SocketAddr> for Contributor {
    fn from(addr: SocketAddr) -> Self {
        Self::Peer(addr)
    }
}

impl fmt::Display for Contributor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(addr) => write!(f, "{addr}"),
            Self::WebSeed(id) => write!(f, "web seed #{}", id.0),
        }
    }
}

/// The blocks of one partially downloaded piece and who sent each.
#[derive(Debug)]
pub(crate) struct PieceBuffer {
    blocks: Vec<Option<(Bytes, Contributor)>>,
    received: usize,
}

impl PieceBuffer {
    /// An empty buffer for a piece of `piece_len` bytes.
    pub(crate) fn new(piece_len: u32) -> Self {
        let count = piece_len.div_ceil(BLOCK_SIZE) as usize;
        Self {
            blocks: vec![None; count],
            received: 0,
        }
    }

    /// Stores a block (the picker has already checked its geometry). Returns
    /// true when every block is present.
    pub(crate) fn insert(&mut self, block: BlockInfo, data: Bytes, from: Contributor) -> bool {
        if let Some(slot) = self.blocks.get_mut(block.index_in_piece()) {
            if slot.is_none() {
                *slot = Some((data, from));
                self.received += 1;
            }
        }
        self.is_complete()
    }

    /// True when every block is present.
    pub(crate) fn is_complete(&self) -> bool {
        self.received == self.blocks.len()
    }

    /// The blocks in order with their senders, once complete.
    pub(crate) fn into_blocks(self) -> Option<Vec<(Bytes, Contributor)>> {
        self.blocks.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_when_every_block_is_in_and_keeps_senders() {
        let a = Contributor::from(SocketAddr::from(([127, 0, 0, 1], 1)));
        let b = Contributor::WebSeed(WebSeedId(0));
        let mut p = PieceBuffer::new(BLOCK_SIZE + 10);
        let first = BlockInfo {
            piece: 0,
            begin: 0,
            length: BLOCK_SIZE,
        };
        let last = BlockInfo {
            piece: 0,
            begin: BLOCK_SIZE,
            length: 10,
        };
        assert!(!p.insert(first, Bytes::from(vec![1; BLOCK_SIZE as usize]), a));
        assert!(
            !p.insert(first, Bytes::from(vec![9; BLOCK_SIZE as usize]), b),
            "first copy kept"
        );
        assert!(p.insert(last, Bytes::from(vec![2; 10]), b));
        let blocks = p.into_blocks().unwrap();
        assert_eq!(blocks[0].1, a);
        assert_eq!(blocks[0].0[0], 1);
        assert_eq!(blocks[1].1, b);
    }
}
