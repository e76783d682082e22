//! Mapping between the torrent's byte stream, pieces and files. Pure.

use crate::metainfo::{FileEntry, MetaInfo};

/// A contiguous run of bytes inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSlice {
    /// Index into [`Layout::files`].
    pub file: usize,
    /// Offset inside that file.
    pub offset: u64,
    /// Length of the run.
    pub length: u64,
}

/// The piece geometry and file list of a torrent.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Bytes per piece (all but the last).
    pub piece_length: u32,
    /// Total bytes.
    pub total_length: u64,
    /// Files in torrent order, with offsets.
    pub files: Vec<FileEntry>,
}

impl Layout {
    /// The layout of a torrent.
    pub fn from_meta_info(meta: &MetaInfo) -> Self {
        Self {
            piece_length: meta.piece_length,
            total_length: meta.total_length,
            files: meta.files.clone(),
        }
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> usize {
        todo!()
    }

    /// Length of piece `index`.
    pub fn piece_len(&self, index: u32) -> u32 {
        let _ = index;
        todo!()
    }

    /// The file runs covering `length` bytes at `begin` inside piece `index`,
    /// in order, skipping zero-length files. `None` if the range leaves the
    /// piece or the torrent.
    pub fn slices(&self, index: u32, begin: u32, length: u64) -> Option<Vec<FileSlice>> {
        let _ = (index, begin, length);
        todo!()
    }
}
