//! Persistence of pieces behind the [`Store`] trait.
//!
//! The engine writes each block as it arrives ([`Store::write_blocks`]), hashes
//! the piece as its blocks go by (reading back what it could not hash while
//! hot), and tells the store which pieces verified ([`Store::piece_verified`]):
//! only those are ever read for peers or readers, or recorded as had. Store
//! methods are blocking; the engine calls them from `spawn_blocking`, never on
//! an async worker thread, and writes one torrent's blocks from one thread at
//! a time.

mod file;
mod handles;
mod journal;
mod layout;
mod memory;
mod parts;
mod paths;
mod probe;
mod record;
mod runs;
mod shares;

pub use file::{FileStore, RESUME_DIR};
pub use layout::{FileSlice, Layout};
pub use memory::MemoryStore;

use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::recovery::Recovery;

/// Where verified pieces are kept. Implementations must be safe to call from
/// several blocking threads at once.
pub trait Store: Send + Sync + 'static {
    /// Writes bytes of piece `index` at offset `begin`: `blocks` in order,
    /// their concatenation one contiguous run. The piece is not verified
    /// yet: its data may be wrong and rewritten later, and a store must not
    /// count it as had (nor list it in a resume record) until
    /// [`Store::piece_verified`] names it. A torrent writes from two threads
    /// at once, never to the same piece at once.
    ///
    /// # Errors
    /// Any IO error, or a range that does not fit the piece.
    fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError>;

    /// Piece `index`, as written, matched its SHA-1: from now on it is had
    /// (a store keeping a resume record lists it). The default does nothing.
    ///
    /// # Errors
    /// Any IO error.
    fn piece_verified(&self, index: u32) -> Result<(), StoreError> {
        let _ = index;
        Ok(())
    }

    /// Writes a whole piece known to be good: [`Store::write_blocks`] at
    /// offset 0, then [`Store::piece_verified`]. `blocks` are the piece's
    /// bytes in order; their concatenation is exactly the piece.
    ///
    /// # Errors
    /// Any IO error, or an index/length that does not fit the torrent.
    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        self.write_blocks(index, 0, blocks)?;
        self.piece_verified(index)
    }

    /// Reads `length` bytes at offset `begin` of piece `index`.
    ///
    /// # Errors
    /// Any IO error, or a range outside the piece.
    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError>;

    /// Reads `buf.len()` bytes at offset `begin` of piece `index` into `buf`:
    /// the upload path reuses its buffers, with no allocation and no zeroing
    /// per read. The default goes through [`Store::read_block`].
    ///
    /// # Errors
    /// As [`Store::read_block`]; a read of another length is
    /// [`StoreError::WrongLength`].
    fn read_into(&self, index: u32, begin: u32, buf: &mut [u8]) -> Result<(), StoreError> {
        let length = u32::try_from(buf.len()).map_err(|_| StoreError::OutOfRange {
            index,
            begin,
            length: buf.len() as u64,
        })?;
        let data = self.read_block(index, begin, length)?;
        if data.len() != buf.len() {
            return Err(StoreError::WrongLength {
                index,
                begin,
                expected: length,
                got: data.len(),
            });
        }
        buf.copy_from_slice(&data);
        Ok(())
    }

    /// Where `length` bytes at offset `begin` of piece `index` lie on disk:
    /// the open files and offsets holding them, in order, so that an upload
    /// can send them from the page cache without reading them into memory
    /// (sendfile(2)). `Ok(None)` means not available: the default, and the
    /// answer for bytes not all in files (a pad file's zeros); the caller
    /// then reads with [`Store::read_into`].
    ///
    /// Unlike the other methods, this one is called on an async task: it
    /// must not do IO beyond opening a file (ideally once, then cached).
    ///
    /// # Errors
    /// A range outside the piece; a file that cannot be opened, or is not
    /// there ([`StoreError::ShortRead`]).
    fn file_runs(
        &self,
        index: u32,
        begin: u32,
        length: u32,
    ) -> Result<Option<Vec<FileRun>>, StoreError> {
        let _ = (index, begin, length);
        Ok(None)
    }

    /// Called once when every wanted piece is verified: create what no piece
    /// touched (zero-length files), flush buffers.
    ///
    /// # Errors
    /// Any IO error.
    fn finalize(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Which of the torrent's files are wanted: one flag per file, in
    /// [`Layout::files`] order (all are wanted until this is called). The
    /// engine calls it from a blocking thread before the first piece is read
    /// or written, and whenever the selection changes.
    ///
    /// Unwanted files still receive their share of pieces that straddle a
    /// wanted file (a piece is verified and served whole). A store may keep
    /// those shares out of sight, but must read them back, and must move
    /// them into place when the file becomes wanted again.
    ///
    /// # Errors
    /// A flag count that is not the file count; any IO error while moving
    /// data.
    fn set_wanted_files(&self, wanted: &[bool]) -> Result<(), StoreError> {
        let _ = wanted;
        Ok(())
    }

    /// What a start can trust of the `piece_count` pieces already stored,
    /// and what it must hash (see [`crate::recovery`]). Called once, from a
    /// blocking thread, after [`Store::set_wanted_files`] and before
    /// anything is read or written. The default hashes every piece.
    fn recover(&self, piece_count: usize) -> Recovery {
        Recovery::check_all(piece_count)
    }

    /// Records that the pieces in `have` are verified and stored. Called
    /// from a blocking thread after the start-up check, then at most about
    /// once a second while pieces complete, and at completion and shutdown.
    /// A store may also record the pieces it is told are verified by itself,
    /// more often.
    ///
    /// # Errors
    /// Any IO error (the engine logs it and goes on).
    fn save_resume(&self, have: &Bitfield) -> Result<(), StoreError> {
        let _ = have;
        Ok(())
    }
}

/// A shared store is a store: an embedder can keep an `Arc` to the store it
/// hands to a torrent (to read what was written, for instance).
impl<S: Store> Store for std::sync::Arc<S> {
    fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        (**self).write_blocks(index, begin, blocks)
    }

    fn piece_verified(&self, index: u32) -> Result<(), StoreError> {
        (**self).piece_verified(index)
    }

    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        (**self).write_piece(index, blocks)
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        (**self).read_block(index, begin, length)
    }

    fn read_into(&self, index: u32, begin: u32, buf: &mut [u8]) -> Result<(), StoreError> {
        (**self).read_into(index, begin, buf)
    }

    fn file_runs(
        &self,
        index: u32,
        begin: u32,
        length: u32,
    ) -> Result<Option<Vec<FileRun>>, StoreError> {
        (**self).file_runs(index, begin, length)
    }

    fn finalize(&self) -> Result<(), StoreError> {
        (**self).finalize()
    }

    fn set_wanted_files(&self, wanted: &[bool]) -> Result<(), StoreError> {
        (**self).set_wanted_files(wanted)
    }

    fn recover(&self, piece_count: usize) -> Recovery {
        (**self).recover(piece_count)
    }

    fn save_resume(&self, have: &Bitfield) -> Result<(), StoreError> {
        (**self).save_resume(have)
    }
}

/// A run of bytes in an open file: where (part of) a block lies on disk,
/// for an upload sent straight from the page cache ([`Store::file_runs`]).
#[derive(Debug, Clone)]
pub struct FileRun {
    /// The open file.
    pub file: Arc<File>,
    /// Offset of the run in the file.
    pub offset: u64,
    /// Bytes in the run.
    pub len: u64,
}

/// Reads like [`Store::read_block`], and refuses an answer of another length
/// than asked, so a faulty store cannot make a caller slice past its data.
///
/// # Errors
/// The store's error, or [`StoreError::WrongLength`].
pub fn read_exact(
    store: &dyn Store,
    index: u32,
    begin: u32,
    length: u32,
) -> Result<Bytes, StoreError> {
    let data = store.read_block(index, begin, length)?;
    if data.len() != length as usize {
        return Err(StoreError::WrongLength {
            index,
            begin,
            expected: length,
            got: data.len(),
        });
    }
    Ok(data)
}

/// Errors of a [`Store`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An IO error on a file.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done ("create", "write", "read", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file on disk is missing or shorter than the range being read: that
    /// part of the torrent was never written.
    #[error("short read {path}: {length} bytes at offset {offset} are not on disk")]
    ShortRead {
        /// The file.
        path: PathBuf,
        /// Offset in the file of the requested run.
        offset: u64,
        /// Length of the requested run.
        length: u64,
    },
    /// A file path that could escape the download directory (absolute, `..`,
    /// empty, ...). Metainfo parsing rejects these already; the store checks
    /// again before touching the disk.
    #[error("unsafe file path in torrent: {path}")]
    UnsafePath {
        /// The offending relative path.
        path: PathBuf,
    },
    /// The torrent's files do not tile its byte stream, or two files share a
    /// path.
    #[error("invalid file layout: {0}")]
    InvalidLayout(String),
    /// A store returned another number of bytes than asked for (a faulty
    /// [`Store`] implementation): an error, never a panic.
    #[error("store returned {got} bytes for piece {index} at offset {begin}, not {expected}")]
    WrongLength {
        /// Piece index.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// Bytes asked for.
        expected: u32,
        /// Bytes returned.
        got: usize,
    },
    /// A piece index or byte range outside the torrent.
    #[error("range out of bounds: piece {index}, offset {begin}, length {length}")]
    OutOfRange {
        /// Piece index.
        index: u32,
        /// Offset in the piece.
        begin: u32,
        /// Length.
        length: u64,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A store that answers every read with `len` bytes, whatever was asked.
    struct Faulty {
        len: usize,
    }

    impl Store for Faulty {
        fn write_blocks(&self, _: u32, _: u32, _: &[Bytes]) -> Result<(), StoreError> {
            Ok(())
        }

        fn read_block(&self, _: u32, _: u32, _: u32) -> Result<Bytes, StoreError> {
            Ok(Bytes::from(vec![0u8; self.len]))
        }
    }

    #[test]
    fn a_read_of_the_wrong_length_is_an_error() {
        for len in [0, 10, 17] {
            let got = read_exact(&Faulty { len }, 1, 2, 16);
            assert!(
                matches!(got, Err(StoreError::WrongLength { expected: 16, got, .. }) if got == len),
                "{len}: {got:?}"
            );
        }
        assert_eq!(read_exact(&Faulty { len: 16 }, 1, 2, 16).unwrap().len(), 16);
    }
}
