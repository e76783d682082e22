//! [`FileStore`]: pieces written into the torrent's files on disk.

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::metainfo::MetaInfo;
use crate::store::{Layout, Store, StoreError};

/// Writes a torrent's files under a download directory: a single-file torrent
/// becomes `dir/name`, a multi-file torrent `dir/name/...`.
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    layout: Layout,
}

impl FileStore {
    /// A store for `meta`'s files under `dir`. Touches nothing on disk yet.
    ///
    /// # Errors
    /// Reserved for layout checks; currently infallible in practice.
    pub fn from_meta_info(dir: impl AsRef<Path>, meta: &MetaInfo) -> Result<Self, StoreError> {
        Ok(Self {
            root: dir.as_ref().to_path_buf(),
            layout: Layout::from_meta_info(meta),
        })
    }
}

impl Store for FileStore {
    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let _ = (index, blocks, &self.root, &self.layout);
        todo!()
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        let _ = (index, begin, length);
        todo!()
    }
}
