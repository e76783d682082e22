//! Why a torrent could not be made.

use std::io;
use std::path::PathBuf;

/// Why [`TorrentBuilder::build`](crate::create::TorrentBuilder::build) failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The path given does not exist (or cannot be inspected).
    #[error("cannot read {}: {source}", path.display())]
    Missing {
        /// The path that was asked for.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// A symbolic link: refused rather than followed, so that a torrent never
    /// holds data from outside the folder, nor the same data twice.
    #[error("{} is a symbolic link; links are not followed (give its target instead)", path.display())]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// Neither a regular file nor a folder (a device, socket or FIFO).
    #[error("{} is not a regular file or folder", path.display())]
    SpecialFile {
        /// The offending path.
        path: PathBuf,
    },
    /// No bytes to share: an empty file, or a folder with no non-empty file.
    #[error("{} holds no data: a torrent needs at least one non-empty file", path.display())]
    Empty {
        /// The path given.
        path: PathBuf,
    },
    /// The torrent's name cannot be derived from the path (e.g. `/`).
    #[error("cannot name a torrent after {}", path.display())]
    NoName {
        /// The path given.
        path: PathBuf,
    },
    /// A piece length that is not a power of two in the allowed range.
    #[error("piece size {length} is not a power of two between {min} and {max} bytes")]
    PieceLength {
        /// The length asked for.
        length: u64,
        /// The smallest allowed length.
        min: u32,
        /// The largest allowed length.
        max: u32,
    },
    /// More pieces than a torrent may hold (see
    /// [`MAX_PIECES`](crate::metainfo::MAX_PIECES)); a larger piece size helps.
    #[error(
        "{count} pieces is more than the {max} a torrent may hold; choose a larger piece size"
    )]
    TooManyPieces {
        /// The piece count the content needs.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// Reading a directory or a file failed.
    #[error("cannot read {}: {source}", path.display())]
    Io {
        /// The file or folder being read.
        path: PathBuf,
        /// What the file system said.
        #[source]
        source: io::Error,
    },
    /// A file's length changed while it was being hashed.
    #[error("{} changed while it was being hashed (expected {expected} bytes)", path.display())]
    Changed {
        /// The file.
        path: PathBuf,
        /// The length it had when the folder was scanned.
        expected: u64,
    },
}
