//! What a peer actor reports to its torrent.

use std::fmt;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::peer::PeerError;
use crate::types::{BlockInfo, PeerId};

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
    /// The peer choked us. Without the Fast extension our outstanding
    /// requests are void; with it (`fast`) they stand until the peer serves
    /// or rejects each.
    Choked { addr: SocketAddr, fast: bool },
    /// The peer rejected a request of ours (BEP 6; checked against the
    /// requests we sent it).
    Rejected { addr: SocketAddr, block: BlockInfo },
    /// The peer serves this piece even while it chokes us (BEP 6; index
    /// validated, each piece once, bounded per connection).
    AllowedFast { addr: SocketAddr, piece: u32 },
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
    Disconnected {
        addr: SocketAddr,
        reason: DisconnectReason,
    },
}

/// Why a connection ended. It decides whether the address is retried at
/// once or backs off.
#[derive(Debug)]
pub(crate) enum DisconnectReason {
    /// We closed it: the torrent asked (duplicate, seed to seed, pause, ban,
    /// too slow) or the session is stopping. No backoff.
    Local,
    /// It failed: no connection, a protocol error, or the peer closed it.
    Failed(PeerError),
}

impl DisconnectReason {
    /// Whether the address should wait before it is dialled again.
    pub(crate) fn backs_off(&self) -> bool {
        matches!(self, Self::Failed(_))
    }

    /// Whether the connection reached ourselves (our own peer id answered).
    pub(crate) fn is_self_connection(&self) -> bool {
        matches!(self, Self::Failed(PeerError::SelfConnection))
    }
}

impl fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Local => f.write_str("closed"),
            Self::Failed(e) => e.fmt(f),
        }
    }
}
