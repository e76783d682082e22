//! Commands from the torrent to a peer actor.

use crate::extension::PexMessage;
use crate::types::BlockInfo;

/// What the torrent tells a peer actor to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerCommand {
    /// Request these blocks (one `request` message each, flushed together).
    Request(Vec<BlockInfo>),
    /// Cancel a request (endgame duplicate arrived elsewhere).
    Cancel(BlockInfo),
    /// Announce a newly verified piece.
    Have(u32),
    /// Send `interested` (true) or `not interested` (false).
    Interested(bool),
    /// Choke (true) or unchoke (false) the peer. Choking drops its queued
    /// requests, as BEP 3 specifies; with the Fast extension (BEP 6) it
    /// rejects them instead, except those for allowed-fast pieces.
    Choke(bool),
    /// Send a `ut_pex` message (dropped if the peer does not support it).
    Pex(PexMessage),
}
