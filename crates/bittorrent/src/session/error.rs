//! Errors of session operations.

use crate::types::InfoHash;

/// Why a session operation failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum SessionError {
    /// The session has shut down; its actor is gone.
    #[error("the session has stopped")]
    Stopped,
    /// The torrent is already in the session.
    #[error("torrent {0} is already in the session")]
    DuplicateTorrent(InfoHash),
}
