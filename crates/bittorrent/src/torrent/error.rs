//! Errors of torrent operations.

use crate::store::StoreError;

/// Why a torrent operation failed or the torrent stopped.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// The torrent actor has ended.
    #[error("the torrent has stopped")]
    Stopped,
    /// No such file in the torrent (or its metadata is not known yet).
    #[error("no file {0} in the torrent")]
    NoSuchFile(usize),
    /// A file selection that does not fit the torrent.
    #[error("invalid file selection: {0}")]
    Selection(String),
    /// Storage failed; the torrent stopped.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}
