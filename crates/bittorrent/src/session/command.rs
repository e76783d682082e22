//! Commands a [`SessionHandle`](crate::session::SessionHandle) sends to the session actor.

use tokio::sync::oneshot;

use crate::session::SessionError;
use crate::torrent::{Torrent, TorrentHandle};
use crate::types::InfoHash;

/// A request to the session actor.
pub(crate) enum SessionCommand {
    /// Start a torrent; reply with its handle when asked to.
    AddTorrent {
        torrent: Torrent,
        reply: Option<oneshot::Sender<Result<TorrentHandle, SessionError>>>,
    },
    /// Look up one torrent.
    GetTorrent {
        info_hash: InfoHash,
        reply: oneshot::Sender<Option<TorrentHandle>>,
    },
    /// List every torrent.
    ListTorrents {
        reply: oneshot::Sender<Vec<TorrentHandle>>,
    },
}
