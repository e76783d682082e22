//! Errors of torrent operations.

use crate::store::StoreError;

/// Why a torrent operation failed or the torrent stopped.
#[derive(Debug, thiserror::Error)]
pub enum TorrentError {
    /// The torrent actor has ended.
    #[error("the torrent has stopped")]
    Stopped,
    /// Storage failed; the torrent stopped.
    #[error("storage error: {0}")]
    Store(#[from] StoreError),
}
