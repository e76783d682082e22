//! Errors of torrent operations, and of the actor's blocking jobs.

use std::fmt;

use crate::metainfo::MetaInfoError;
use crate::store::StoreError;

/// Why a torrent operation failed or the torrent stopped.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// The torrent actor has ended.
    #[error("the torrent has stopped")]
    Stopped,
    /// No such file in the torrent.
    #[error("no file {0} in the torrent")]
    NoSuchFile(usize),
    /// A piece index past the end of the torrent.
    #[error("no piece {0} in the torrent")]
    NoSuchPiece(u32),
    /// The piece holds bytes of skipped files only: it is not downloaded.
    #[error("piece {0} is not selected (its files are skipped)")]
    NotSelected(u32),
    /// A magnet link's metadata is still being fetched.
    #[error("the metadata is not known yet")]
    MetadataPending,
    /// A file selection that does not fit the torrent.
    #[error("invalid file selection: {0}")]
    Selection(String),
    /// Storage failed; the torrent stopped.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}

/// Why a magnet's metadata phase ended without a torrent to run.
#[derive(Debug, thiserror::Error)]
pub(crate) enum MetadataPhaseError {
    /// The info dictionary matched the info-hash but is not a valid torrent.
    #[error("the fetched metadata is not a valid torrent: {0}")]
    Invalid(#[from] MetaInfoError),
    /// The store factory failed.
    #[error("cannot create the storage: {0}")]
    Store(#[from] StoreError),
}

/// A blocking job of the torrent actor, by what it does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Job {
    /// Finding the pieces already in the store.
    Check,
    /// Writing blocks and verifying pieces (a batch of one writer lane).
    Disk(usize),
    /// Finalizing the store once complete.
    Finalize,
    /// Writing the resume record.
    SaveResume,
    /// Telling the store the file selection.
    StoreSelection,
}

impl fmt::Display for Job {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Check => f.write_str("check"),
            Self::Disk(lane) => write!(f, "writes and verifications (lane {lane})"),
            Self::Finalize => f.write_str("finalize"),
            Self::SaveResume => f.write_str("resume record"),
            Self::StoreSelection => f.write_str("file selection"),
        }
    }
}

/// A blocking job that failed: the store refused, or the job itself ended
/// without a result (it panicked).
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// The store returned an error.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job panicked or was cancelled.
    #[error("the {job} job ended without a result: {cause}")]
    Lost {
        /// Which job.
        job: Job,
        /// The panic or cancellation, in words.
        cause: String,
    },
}
