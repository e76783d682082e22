//! The [`FileStore`]'s selection handling: where a run of a piece goes when
//! its file is unwanted (the part file), and moving shares out of the part
//! file when a file is selected again.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::store::parts::PartFile;
use crate::store::{FileSlice, FileStore, StoreError};

/// Where one file run of a piece is read or written.
pub(super) struct Target<'a> {
    /// `None` when reading from a part file that does not exist.
    pub(super) file: Option<Arc<File>>,
    /// Offset in `file`.
    pub(super) offset: u64,
    /// For error messages.
    pub(super) path: &'a Path,
    /// The run is in the part file, not in its own file.
    pub(super) in_parts: bool,
}

impl FileStore {
    /// Where `slice` (a run of piece `piece`) lives: in the part file when
    /// its file is unwanted (writing) or the part file holds it (reading),
    /// otherwise in the file itself.
    pub(super) fn target(
        &self,
        piece: u32,
        slice: FileSlice,
        write: bool,
    ) -> Result<Target<'_>, StoreError> {
        if let Some(parts) = &self.parts {
            let in_parts = if write {
                !self.wanted[slice.file].load(Ordering::Relaxed)
            } else {
                parts.holds(piece, slice.file)
            };
            if in_parts {
                return Ok(Target {
                    file: parts.handle(write)?,
                    offset: self.layout.files[slice.file].offset + slice.offset,
                    path: parts.path(),
                    in_parts,
                });
            }
        }
        Ok(Target {
            file: Some(self.file(slice.file, write)?),
            offset: slice.offset,
            path: &self.paths[slice.file],
            in_parts: false,
        })
    }

    /// Offset in the torrent's byte stream just past `file`'s share of
    /// `piece` (where that share ends in the part file).
    pub(super) fn share_end(&self, piece: u32, file: usize) -> u64 {
        let entry = &self.layout.files[file];
        let piece_end = self
            .layout
            .piece_offset(piece)
            .map_or(0, |start| start + u64::from(self.layout.piece_len(piece)));
        piece_end.min(entry.offset + entry.length)
    }

    /// Moves `file`'s shares out of the part file into the file itself.
    pub(super) fn move_out_of_parts(
        &self,
        parts: &PartFile,
        file: usize,
    ) -> Result<(), StoreError> {
        let pieces = parts.pieces_of(file);
        if pieces.is_empty() {
            return Ok(());
        }
        let Some(source) = parts.handle(false)? else {
            // The index names data that is gone; the resume check finds
            // the part file damaged and pieces are hashed again.
            log::warn!("part file {} is missing", parts.path().display());
            return Ok(());
        };
        self.before_write();
        let dest = self.file(file, true)?;
        let offset_in_stream = self.layout.files[file].offset;
        for &piece in &pieces {
            let len = u64::from(self.layout.piece_len(piece));
            let slices = self.layout.slices(piece, 0, len).unwrap_or_default();
            for slice in slices.into_iter().filter(|s| s.file == file) {
                // At most one piece long.
                let mut buf = vec![0u8; slice.length as usize];
                source
                    .read_exact_at(&mut buf, offset_in_stream + slice.offset)
                    .map_err(|source| StoreError::Io {
                        op: "read",
                        path: parts.path().to_path_buf(),
                        source,
                    })?;
                dest.write_all_at(&buf, slice.offset)
                    .map_err(|source| StoreError::Io {
                        op: "write",
                        path: self.paths[file].clone(),
                        source,
                    })?;
            }
        }
        self.written[file].store(true, Ordering::Relaxed);
        self.restamp(file);
        self.restamp(self.parts_slot());
        log::debug!(
            "moved {} piece share(s) of {} out of the part file",
            pieces.len(),
            self.paths[file].display()
        );
        parts.remove(&pieces, file)
    }
}
