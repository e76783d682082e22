//! Path checks and atomic writes for the stores under a download directory.

use std::collections::HashSet;
use std::path::{Component, Path};

use crate::store::{Layout, StoreError};

/// [`crate::fsio::write_atomically`], its error as a [`StoreError::Io`].
pub(super) fn write_atomically(path: &Path, bytes: &[u8], sync: bool) -> Result<(), StoreError> {
    crate::fsio::write_atomically(path, bytes, sync).map_err(|e| StoreError::Io {
        op: e.op,
        path: e.path,
        source: e.source,
    })
}

/// Checks that every non-pad path stays under the download directory and
/// that no two files collide (same path, or a file where another needs a
/// directory). Pad files are never touched on disk, so their paths are not
/// checked.
pub(super) fn check_paths(layout: &Layout) -> Result<(), StoreError> {
    let mut files = HashSet::new();
    let mut dirs = HashSet::new();
    for entry in layout.files.iter().filter(|f| !f.pad) {
        let path = entry.path.as_path();
        let safe = path.components().next().is_some()
            && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(StoreError::UnsafePath {
                path: path.to_path_buf(),
            });
        }
        if dirs.contains(path) || !files.insert(path) {
            return Err(StoreError::InvalidLayout(format!(
                "two files at {}",
                path.display()
            )));
        }
        for dir in path.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                break;
            }
            if files.contains(dir) {
                return Err(StoreError::InvalidLayout(format!(
                    "{} is both a file and a directory",
                    dir.display()
                )));
            }
            if !dirs.insert(dir) {
                break; // Its ancestors were seen with it.
            }
        }
    }
    Ok(())
}
