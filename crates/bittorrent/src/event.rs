//! Events a session publishes to embedders.

use std::net::SocketAddr;

use tokio::sync::broadcast;

use crate::portmap::{MapTransport, PortMapProtocol};
use crate::torrent::TorrentStats;
use crate::types::InfoHash;

/// Something that happened in the session. Watch them with an
/// [`EventReceiver`]; no polling is needed.
///
/// Events are kept small (the large [`TorrentStats`] is boxed): the
/// session's broadcast buffer preallocates a slot for each of its
/// thousands of events.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum Event {
    /// A torrent was added and its actor started.
    TorrentAdded {
        /// The torrent.
        info_hash: InfoHash,
        /// Its name.
        name: String,
    },
    /// A magnet's info dictionary was fetched and verified; the torrent now
    /// proceeds as if loaded from a file.
    MetadataReceived {
        /// The torrent.
        info_hash: InfoHash,
        /// Its name from the metadata.
        name: String,
    },
    /// The data already in the store was checked; the torrent starts
    /// downloading (or seeding, if it is complete).
    TorrentChecked {
        /// The torrent.
        info_hash: InfoHash,
        /// Pieces found valid.
        pieces_have: usize,
    },
    /// The torrent was paused.
    TorrentPaused {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// The torrent reached its share limit (ratio or seeding time) and was
    /// paused; an embedder whose policy is to remove such torrents removes
    /// it now.
    ShareLimitReached {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// The torrent was resumed.
    TorrentResumed {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// The torrent was removed from the session (its data stays on disk).
    TorrentRemoved {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// A piece passed its hash check and was stored.
    PieceVerified {
        /// The torrent.
        info_hash: InfoHash,
        /// Piece index.
        piece: u32,
    },
    /// A piece failed its hash check and will be downloaded again.
    PieceFailed {
        /// The torrent.
        info_hash: InfoHash,
        /// Piece index.
        piece: u32,
    },
    /// Every wanted piece of the torrent is verified and stored.
    TorrentComplete {
        /// The torrent.
        info_hash: InfoHash,
    },
    /// A peer completed the handshake.
    PeerConnected {
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's address.
        addr: SocketAddr,
    },
    /// A peer connection ended (or could not be made).
    PeerDisconnected {
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's address.
        addr: SocketAddr,
        /// Why, in words.
        reason: String,
    },
    /// A tracker answered an announce.
    TrackerAnnounced {
        /// The torrent.
        info_hash: InfoHash,
        /// The tracker.
        url: String,
        /// Number of peers it returned.
        peers: usize,
    },
    /// A tracker announce failed, or the tracker sent a warning.
    TrackerError {
        /// The torrent.
        info_hash: InfoHash,
        /// The tracker.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A web seed (BEP 19) failed: a request failed (it is retried after a
    /// backoff, or given up when `dropped`), or a piece it sent failed its
    /// hash check (then it is always dropped). The download goes on from the
    /// other sources.
    WebSeedFailed {
        /// The torrent.
        info_hash: InfoHash,
        /// The web seed's URL, as the torrent lists it.
        url: String,
        /// What went wrong.
        error: String,
        /// The web seed is given up for this session.
        dropped: bool,
    },
    /// Periodic statistics of a torrent: about once a second, or every five
    /// minutes while it is quiet (no peers, nothing to do: an idle seed, a paused or
    /// queued torrent).
    Stats {
        /// The torrent.
        info_hash: InfoHash,
        /// Its counters (boxed: see [`Event`]).
        stats: Box<TorrentStats>,
    },
    /// The torrent stopped because of an error: its storage failed (it stays
    /// in the session in state
    /// [`Error`](crate::torrent::TorrentState::Error) until resumed), or a
    /// magnet's store could not be made (its torrent ends).
    TorrentError {
        /// The torrent.
        info_hash: InfoHash,
        /// What went wrong.
        message: String,
    },
    /// A session-level error (e.g. a duplicate torrent was refused).
    Error {
        /// What went wrong.
        message: String,
    },
    /// The gateway forwards `external` to our `internal_port` (a new
    /// mapping, or one whose external address changed on renewal).
    PortMapped {
        /// The protocol that mapped it.
        protocol: PortMapProtocol,
        /// TCP or UDP.
        transport: MapTransport,
        /// Our listen port.
        internal_port: u16,
        /// The gateway's external address and port.
        external: SocketAddr,
    },
    /// Mapping (or renewing) a port failed with every configured protocol;
    /// retried later.
    PortMappingFailed {
        /// TCP or UDP.
        transport: MapTransport,
        /// What each protocol answered.
        message: String,
    },
}

/// Receives a session's [`Event`]s. Each receiver sees every event published
/// after it was created; one that falls more than a few thousand events behind
/// skips the oldest (with a warning in the log).
#[derive(Debug)]
pub struct EventReceiver {
    rx: broadcast::Receiver<Event>,
}

impl EventReceiver {
    pub(crate) fn new(rx: broadcast::Receiver<Event>) -> Self {
        Self { rx }
    }

    /// The next event, or `None` once the session has ended.
    pub async fn recv(&mut self) -> Option<Event> {
        loop {
            match self.rx.recv().await {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    log::warn!("event receiver lagged; {n} events skipped");
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
