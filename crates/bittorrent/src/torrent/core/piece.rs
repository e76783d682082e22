//! Who sent a piece's blocks.

use std::fmt;
use std::net::SocketAddr;

use crate::webseed::WebSeedId;

/// Who sent a block: a peer, or a web seed (whose pieces come whole, so a
/// piece it sent that fails its hash check is its fault alone).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Contributor {
    /// A peer connection.
    Peer(SocketAddr),
    /// A web seed (BEP 19).
    WebSeed(WebSeedId),
}

impl From<SocketAddr> for Contributor {
    fn from(addr: SocketAddr) -> Self {
        Self::Peer(addr)
    }
}

impl fmt::Display for Contributor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Peer(addr) => write!(f, "{addr}"),
            Self::WebSeed(id) => write!(f, "web seed #{}", id.0),
        }
    }
}
