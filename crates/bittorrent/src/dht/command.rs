//! Commands a [`DhtHandle`](crate::dht::DhtHandle) sends to the DHT actor.

use std::net::SocketAddr;

use tokio::sync::oneshot;

use crate::dht::{Announced, DhtError, DhtStats};
use crate::types::InfoHash;

/// A request to the DHT actor.
pub(crate) enum DhtCommand {
    /// Look up our own id from the table and the bootstrap addresses; reply
    /// with the table size afterwards.
    Bootstrap {
        reply: oneshot::Sender<Result<usize, DhtError>>,
    },
    /// Find peers of a torrent.
    GetPeers {
        info_hash: InfoHash,
        reply: oneshot::Sender<Result<Vec<SocketAddr>, DhtError>>,
    },
    /// Find peers and announce ourselves (`port: None` = implied port).
    Announce {
        info_hash: InfoHash,
        port: Option<u16>,
        reply: oneshot::Sender<Result<Announced, DhtError>>,
    },
    /// Counters.
    Stats { reply: oneshot::Sender<DhtStats> },
}
