//! Messages into the torrent actor: commands from handles, events from peers.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_util::codec::Framed;

use crate::bitfield::Bitfield;
use crate::picker::{PickMode, Priority};
use crate::torrent::{StreamParts, TorrentError, TorrentStats};
use crate::types::{BlockInfo, PeerId};
use crate::wire::{Handshake, HandshakeCodec};

/// A request from a [`TorrentHandle`](crate::torrent::TorrentHandle).
pub(crate) enum TorrentCommand {
    /// Report statistics.
    Stats {
        reply: oneshot::Sender<TorrentStats>,
    },
    /// Connect to these peers.
    AddPeers { peers: Vec<SocketAddr> },
    /// A connection accepted by the session's listener, handshake read.
    Inbound {
        addr: SocketAddr,
        conn: Framed<TcpStream, HandshakeCodec>,
        handshake: Handshake,
    },
    /// Reply once piece `piece` is verified, and make it (and a read-ahead
    /// window after it) urgent meanwhile, on behalf of streaming reader `reader`.
    /// Answers `Err` at once for a piece of skipped files only.
    WaitPiece {
        piece: u32,
        reader: u64,
        reply: oneshot::Sender<Result<(), &'static str>>,
    },
    /// A streaming reader is gone: its read-ahead window is no longer urgent.
    ReaderGone { reader: u64 },
    /// The metainfo and store, for opening a streaming reader.
    OpenParts {
        reply: oneshot::Sender<Option<StreamParts>>,
    },
    /// Report each file's priority.
    FilePriorities {
        reply: oneshot::Sender<Vec<Priority>>,
    },
    /// Change each file's priority.
    SetFilePriorities {
        priorities: Vec<Priority>,
        reply: oneshot::Sender<Result<(), TorrentError>>,
    },
    /// Change how pieces are chosen.
    SetMode { mode: PickMode },
    /// Disconnect everyone, stop announcing.
    Pause,
    /// Undo [`TorrentCommand::Pause`].
    Resume,
}

/// What a peer actor reports to its torrent. Peers send these with
/// `send().await`, so a busy torrent slows its peers' reading (TCP
/// backpressure) instead of losing blocks; the torrent never awaits a peer.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    /// The handshake completed.
    Connected { addr: SocketAddr, peer_id: PeerId },
    /// The peer's bitfield (validated against the piece count).
    Bitfield {
        addr: SocketAddr,
        bitfield: Bitfield,
    },
    /// The peer has a new piece (index validated).
    Have { addr: SocketAddr, piece: u32 },
    /// The peer choked us: our outstanding requests are void.
    Choked { addr: SocketAddr },
    /// The peer unchoked us.
    Unchoked { addr: SocketAddr },
    /// The peer is (not) interested in our pieces.
    Interest { addr: SocketAddr, interested: bool },
    /// A block arrived.
    Block {
        addr: SocketAddr,
        block: BlockInfo,
        data: Bytes,
    },
    /// Peers learnt through peer exchange (BEP 11).
    Pex {
        addr: SocketAddr,
        added: Vec<SocketAddr>,
    },
    /// We sent the peer this many payload bytes.
    Uploaded { addr: SocketAddr, bytes: u64 },
    /// The connection ended (or never started).
    Disconnected { addr: SocketAddr, reason: String },
}
