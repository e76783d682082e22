//! [`MemoryStore`]: the whole torrent in one buffer, for tests and embedders.

use bytes::Bytes;

use crate::metainfo::MetaInfo;
use crate::store::{Store, StoreError};

/// Keeps the torrent's bytes in memory.
#[derive(Debug)]
pub struct MemoryStore {
    piece_length: u32,
    data: std::sync::Mutex<Vec<u8>>,
}

impl MemoryStore {
    /// An all-zero store the size of `meta`'s torrent.
    pub fn new(meta: &MetaInfo) -> Self {
        Self::with_geometry(meta.piece_length, meta.total_length)
    }

    /// An all-zero store of `total_length` bytes in pieces of `piece_length`.
    pub fn with_geometry(piece_length: u32, total_length: u64) -> Self {
        Self {
            piece_length,
            data: std::sync::Mutex::new(vec![0; total_length as usize]),
        }
    }

    /// A copy of the stored bytes.
    pub fn contents(&self) -> Vec<u8> {
        todo!()
    }
}

impl Store for MemoryStore {
    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let _ = (index, blocks, self.piece_length);
        todo!()
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        let _ = (index, begin, length);
        todo!()
    }
}
