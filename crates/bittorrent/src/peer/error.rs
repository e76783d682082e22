//! Why a peer connection ended.

use crate::bitfield::BitfieldError;
use crate::types::{BlockInfo, InfoHash};
use crate::wire::WireError;

/// Why a peer connection ended. Each ends that peer only.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// TCP connect failed.
    #[error("connect failed: {0}")]
    Connect(std::io::Error),
    /// The MSE/PE encryption handshake failed.
    #[error(transparent)]
    Encryption(#[from] crate::mse::MseError),
    /// Connect plus handshake took too long.
    #[error("handshake timed out")]
    HandshakeTimeout,
    /// A protocol or socket error.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// The peer's handshake names another torrent.
    #[error("peer answered for torrent {0}")]
    WrongInfoHash(InfoHash),
    /// We connected to ourselves.
    #[error("connected to ourselves")]
    SelfConnection,
    /// A malformed bitfield.
    #[error("bad bitfield: {0}")]
    Bitfield(#[from] BitfieldError),
    /// A piece index past the end of the torrent.
    #[error("piece index {0} out of range")]
    PieceOutOfRange(u32),
    /// The peer asked for something we cannot or will not serve.
    #[error("bad request {block:?}: {why}")]
    BadRequest {
        /// The request.
        block: BlockInfo,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A Fast-extension message (BEP 6) on a connection where both sides
    /// did not set the Fast bit.
    #[error("fast-extension message id {0} without the extension")]
    FastNotNegotiated(u8),
    /// A Fast-extension message breaking BEP 6's rules (a reject for a
    /// request never sent, a have-all or have-none that is not the peer's
    /// first word on its pieces).
    #[error("fast extension: {0}")]
    FastProtocol(&'static str),
    /// The peer queued more requests than we accept.
    #[error("more than {0} requests queued")]
    RequestFlood(usize),
    /// Reading a block to serve failed.
    #[error("cannot read a block to serve: {0}")]
    Store(#[from] crate::store::StoreError),
    /// The blocking task reading blocks to serve panicked or was cancelled.
    #[error("the task reading blocks to serve failed: {0}")]
    ReadTask(tokio::task::JoinError),
    /// Nothing received for too long.
    #[error("peer silent for {0} s")]
    Idle(u64),
    /// The peer closed the connection.
    #[error("connection closed by peer")]
    Closed,
}
