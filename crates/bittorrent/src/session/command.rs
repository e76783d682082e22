//! Commands a [`SessionHandle`](crate::session::SessionHandle) (or the
//! listener) sends to the session actor.

use std::net::SocketAddr;

use tokio::sync::oneshot;
use tokio_util::codec::Framed;

use crate::limits::{QueueConfig, QueueMove, ShareLimits};
use crate::peer::transport::PeerStream;
use crate::session::{SessionError, SessionStats};
use crate::torrent::{Torrent, TorrentHandle};
use crate::types::InfoHash;
use crate::wire::{Handshake, HandshakeCodec};

/// A request to the session actor.
pub(crate) enum SessionCommand {
    /// Start a torrent; reply with its handle when asked to.
    AddTorrent {
        torrent: Box<Torrent>,
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
    /// The session's counters.
    Stats {
        reply: oneshot::Sender<SessionStats>,
    },
    /// Stop a torrent and forget it; its data stays in its store.
    RemoveTorrent {
        info_hash: InfoHash,
        reply: oneshot::Sender<bool>,
    },
    /// Change the session's share limits.
    SetShareLimits { limits: ShareLimits },
    /// Change the queue's limits.
    SetQueue { queue: QueueConfig },
    /// Move a torrent in the queue; reply whether it was there.
    MoveInQueue {
        info_hash: InfoHash,
        to: QueueMove,
        reply: oneshot::Sender<bool>,
    },
    /// A connection accepted by the listener, handshake read.
    Inbound {
        addr: SocketAddr,
        conn: Framed<PeerStream, HandshakeCodec>,
        handshake: Handshake,
    },
}
