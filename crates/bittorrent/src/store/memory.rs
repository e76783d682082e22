//! [`MemoryStore`]: the whole torrent in one buffer, for tests and embedders.

use std::sync::{Mutex, MutexGuard};

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::recovery::Recovery;
use crate::store::{Layout, Store, StoreError};

/// Keeps the torrent's bytes in memory.
#[derive(Debug)]
pub struct MemoryStore {
    /// Piece geometry only; the file list is empty and unused.
    geometry: Layout,
    data: Mutex<Vec<u8>>,
    /// Pieces written since the store was made: the only ones a start-up
    /// check needs to hash (the rest are still zeros).
    written: Mutex<Bitfield>,
}

impl MemoryStore {
    /// An all-zero store the size of `meta`'s torrent.
    pub fn new(meta: &MetaInfo) -> Self {
        Self::with_geometry(meta.piece_length, meta.total_length)
    }

    /// An all-zero store of `total_length` bytes in pieces of `piece_length`.
    pub fn with_geometry(piece_length: u32, total_length: u64) -> Self {
        Self {
            geometry: Layout {
                piece_length,
                total_length,
                files: Vec::new(),
            },
            data: Mutex::new(vec![0; total_length as usize]),
            written: Mutex::new(Bitfield::new(
                total_length.div_ceil(u64::from(piece_length.max(1))) as usize,
            )),
        }
    }

    /// A copy of the stored bytes.
    pub fn contents(&self) -> Vec<u8> {
        self.data().clone()
    }

    /// The buffer. A panic in another thread while holding the lock cannot
    /// leave it half-resized (only byte copies happen under it), so a poisoned
    /// lock is still usable.
    fn data(&self) -> MutexGuard<'_, Vec<u8>> {
        self.data
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The buffer range of `length` bytes at `begin` in piece `index`.
    fn range(&self, index: u32, begin: u32, length: u64) -> Option<std::ops::Range<usize>> {
        let piece_start = self.geometry.piece_offset(index)?;
        let end_in_piece = u64::from(begin).checked_add(length)?;
        if end_in_piece > u64::from(self.geometry.piece_len(index)) {
            return None;
        }
        let start = usize::try_from(piece_start + u64::from(begin)).ok()?;
        let end = usize::try_from(piece_start + end_in_piece).ok()?;
        Some(start..end)
    }
}

impl Store for MemoryStore {
    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        if total != u64::from(self.geometry.piece_len(index)) {
            return Err(StoreError::OutOfRange {
                index,
                begin: 0,
                length: total,
            });
        }
        self.write_blocks(index, 0, blocks)
    }

    /// Any write marks the piece for the next check's hashing.
    fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let out_of_range = || StoreError::OutOfRange {
            index,
            begin,
            length: total,
        };
        let range = self.range(index, begin, total).ok_or_else(out_of_range)?;
        let mut data = self.data();
        let dest = data.get_mut(range).ok_or_else(out_of_range)?;
        // The block lengths sum to `dest.len()` (checked above): no slice
        // below can go out of bounds.
        let mut pos = 0;
        for block in blocks {
            dest[pos..pos + block.len()].copy_from_slice(block);
            pos += block.len();
        }
        drop(data);
        self.written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .set(index as usize);
        Ok(())
    }

    /// Hashes only the pieces written so far: a new store has nothing to
    /// check.
    fn recover(&self, piece_count: usize) -> Recovery {
        let written = self
            .written
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone();
        if written.len() != piece_count {
            return Recovery::check_all(piece_count);
        }
        Recovery {
            trusted: Bitfield::new(piece_count),
            to_hash: written,
            exact: false,
        }
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        let out_of_range = || StoreError::OutOfRange {
            index,
            begin,
            length: u64::from(length),
        };
        let range = self
            .range(index, begin, u64::from(length))
            .ok_or_else(out_of_range)?;
        let data = self.data();
        let bytes = data.get(range).ok_or_else(out_of_range)?;
        Ok(Bytes::copy_from_slice(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(store: &MemoryStore, index: u32) -> Vec<u8> {
        let len = store.geometry.piece_len(index) as usize;
        (0..len).map(|i| (index as usize * 31 + i) as u8).collect()
    }

    #[test]
    fn a_start_up_check_hashes_only_written_pieces() {
        let store = MemoryStore::with_geometry(16, 40);
        let fresh = store.recover(3);
        assert_eq!(fresh.to_hash.count_ones(), 0);
        assert_eq!(fresh.trusted.count_ones(), 0);
        store
            .write_piece(1, &[Bytes::from(piece(&store, 1))])
            .unwrap();
        let after = store.recover(3);
        assert!(after.to_hash.get(1));
        assert_eq!(after.to_hash.count_ones(), 1);
        assert_eq!(
            store.recover(4).to_hash.count_ones(),
            4,
            "a wrong count checks all"
        );
    }

    #[test]
    fn round_trip() {
        let store = MemoryStore::with_geometry(16, 40);
        // Written in reverse, each piece split into uneven blocks.
        for index in (0..3).rev() {
            let bytes = piece(&store, index);
            let (a, b) = bytes.split_at(bytes.len() / 3);
            store
                .write_piece(
                    index,
                    &[Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)],
                )
                .unwrap();
        }
        let expected: Vec<u8> = (0..3).flat_map(|i| piece(&store, i)).collect();
        assert_eq!(store.contents(), expected);
        assert_eq!(store.read_block(0, 0, 16).unwrap(), expected[..16]);
        assert_eq!(store.read_block(1, 3, 5).unwrap(), expected[19..24]);
        assert_eq!(store.read_block(2, 0, 8).unwrap(), expected[32..40]);
        assert_eq!(store.read_block(2, 8, 0).unwrap(), Bytes::new());
        store.finalize().unwrap();
    }

    fn err<T>(r: Result<T, StoreError>) -> bool {
        matches!(r, Err(StoreError::OutOfRange { .. }))
    }

    #[test]
    fn out_of_range() {
        let store = MemoryStore::with_geometry(16, 40);
        assert!(err(store.read_block(0, 10, 7)));
        assert!(err(store.read_block(2, 0, 9)));
        assert!(err(store.read_block(3, 0, 1)));
        assert!(err(store.read_block(u32::MAX, u32::MAX, u32::MAX)));
        // Wrong piece sizes and indexes.
        assert!(err(store.write_piece(0, &[Bytes::from(vec![1; 15])])));
        assert!(err(store.write_piece(2, &[Bytes::from(vec![1; 16])])));
        assert!(err(store.write_piece(3, &[Bytes::from(vec![1; 16])])));
        assert!(err(store.write_piece(3, &[])));
        // Nothing was written by the failed calls.
        assert_eq!(store.contents(), vec![0; 40]);
    }
}
