//! The mainline DHT (BEP 5, with BEP 32 for IPv6 and BEP 42's node ids): a
//! trackerless source of peers.
//!
//! [`DhtHandle::spawn`] binds one UDP socket (two with
//! [`DhtConfig::bind_v6`]: an IPv4 and an IPv6 node) and starts a DHT actor
//! on each, which answers other nodes' queries (`ping`, `find_node`,
//! `get_peers`, `announce_peer`), keeps a routing table of k-buckets of its
//! address family, stores peers announced to it, and runs iterative lookups
//! for the handle: [`DhtHandle::get_peers`] and [`DhtHandle::announce`] ask
//! every node and merge what they found.
//!
//! # Layout
//! - [`krpc`]: the message codec (pure).
//! - `node`: ids, XOR distance, compact formats; `routing`: the k-bucket
//!   table; `lookup`: the iterative lookup state machine; `peers`: tokens,
//!   stored peers and rate limits; `state`: the persisted routing table;
//!   `security`: BEP 42 ids and the external-IP vote. All pure, with the
//!   time passed in.
//! - `actor`: the task owning one socket and all of the above;
//!   `handle`: [`DhtHandle`], one actor per address family.
//!
//! # Bootstrap
//! The library knows no public nodes by itself: [`DhtConfig::bootstrap`] is
//! empty by default, and the DHT starts from it and from the state file only.
//! [`PUBLIC_ROUTERS`] lists the well-known routers for a program to resolve
//! (with [`resolve_bootstrap`]) and pass in.
//!
//! # Example
//! ```no_run
//! use bittorrent::dht::{DhtConfig, DhtHandle};
//! use bittorrent::types::InfoHash;
//! use tokio_util::sync::CancellationToken;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = DhtConfig {
//!     bootstrap: bittorrent::dht::resolve_bootstrap(bittorrent::dht::PUBLIC_ROUTERS).await,
//!     ..DhtConfig::default()
//! };
//! let cancel = CancellationToken::new();
//! let (dht, task) = DhtHandle::spawn(config, cancel.clone()).await?;
//! dht.bootstrap().await?;
//! let peers = dht.get_peers(InfoHash([0; 20])).await?;
//! println!("{} peers", peers.len());
//! cancel.cancel();
//! task.await?;
//! # Ok(()) }
//! ```

mod actor;
mod command;
mod error;
mod handle;
pub mod krpc;
mod lookup;
mod node;
mod peers;
mod routing;
mod security;
mod socket;
mod state;

pub use error::DhtError;
pub use handle::DhtHandle;
pub use node::{NodeId, NodeInfo};
pub use routing::K;
pub use security::{id_matches_ip, secure_id};
pub use state::{SavedState, StateError};

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Well-known public DHT routers (`host:port`), for a program to resolve and
/// put in [`DhtConfig::bootstrap`]. The library never contacts them by itself.
pub const PUBLIC_ROUTERS: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Resolves `host:port` names (such as [`PUBLIC_ROUTERS`]) to socket
/// addresses (IPv4 and IPv6: each node takes those of its family), skipping
/// names that do not resolve. This does DNS lookups;
/// numeric addresses resolve without any.
pub async fn resolve_bootstrap(names: &[&str]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names {
        match tokio::net::lookup_host(*name).await {
            Ok(addrs) => {
                for addr in addrs {
                    if !out.contains(&addr) {
                        out.push(addr);
                    }
                }
            }
            Err(e) => log::debug!("dht: cannot resolve {name}: {e}"),
        }
    }
    out
}

/// Per-source-IP limit on incoming queries (a token bucket).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RateLimit {
    /// Sustained queries per second.
    pub per_second: f64,
    /// Queries allowed in one burst.
    pub burst: u32,
}

/// DHT settings.
#[derive(Clone, Debug)]
pub struct DhtConfig {
    /// The UDP address to bind (default `0.0.0.0:6881`; port 0 picks one).
    pub bind: SocketAddr,
    /// A second node, on IPv6 (BEP 32), bound here (e.g. `[::]:6881`;
    /// port 0 picks one), beside the one on `bind` when that is IPv4. On the
    /// session's shared UDP port, when that socket is dual-stack, the IPv6
    /// node shares it instead. Its state file is `state_file` with the
    /// extension `state6`. `None` (the default): no IPv6 node.
    pub bind_v6: Option<SocketAddr>,
    /// Addresses to bootstrap from, IPv4 and IPv6: each node takes those of
    /// its family (default: none; see [`PUBLIC_ROUTERS`]).
    pub bootstrap: Vec<SocketAddr>,
    /// Where the routing table and node id are kept across restarts; `None`
    /// keeps nothing.
    pub state_file: Option<PathBuf>,
    /// Our node id, kept whatever our external IP. `None` takes the state
    /// file's, else a random one, and replaces it by one derived from our
    /// external IP (BEP 42) once responders agree on that IP.
    pub node_id: Option<NodeId>,
    /// Time to wait for an answer to one query.
    pub query_timeout: Duration,
    /// Most of our queries in flight at once.
    pub max_outstanding: usize,
    /// Most lookups running at once ([`DhtError::Busy`] beyond).
    pub max_lookups: usize,
    /// Parallel queries per lookup (Kademlia's alpha).
    pub alpha: usize,
    /// Limit on queries from each source IP; beyond it they are dropped
    /// unanswered.
    pub rate_limit: RateLimit,
    /// How long an announced peer is kept.
    pub peer_ttl: Duration,
    /// Most torrents we store peers for.
    pub max_stored_hashes: usize,
    /// Most peers stored per torrent.
    pub max_peers_per_hash: usize,
    /// How often the token secret changes (a token is valid for one to two
    /// periods).
    pub token_rotation: Duration,
    /// A bucket unchanged for this long is refreshed by a lookup.
    pub refresh_interval: Duration,
    /// How often the state file is written (also on shutdown).
    pub save_interval: Duration,
    /// A read-only node (BEP 43): our queries carry `ro` = 1, so other nodes
    /// keep us out of their routing tables, and we answer no query (nor with
    /// an error). For a node that cannot be reached or must save traffic.
    /// Default false.
    pub read_only: bool,
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 6881)),
            bind_v6: None,
            bootstrap: Vec::new(),
            state_file: None,
            node_id: None,
            query_timeout: Duration::from_secs(2),
            max_outstanding: 256,
            max_lookups: 32,
            alpha: 3,
            rate_limit: RateLimit {
                per_second: 20.0,
                burst: 50,
            },
            peer_ttl: Duration::from_secs(30 * 60),
            max_stored_hashes: 2000,
            max_peers_per_hash: 200,
            token_rotation: Duration::from_secs(5 * 60),
            refresh_interval: Duration::from_secs(15 * 60),
            save_interval: Duration::from_secs(5 * 60),
            read_only: false,
        }
    }
}

/// The outcome of [`DhtHandle::announce`].
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Announced {
    /// Peers found by the `get_peers` lookup that preceded the announce.
    pub peers: Vec<SocketAddr>,
    /// Nodes that accepted our `announce_peer`.
    pub nodes: usize,
}

/// Counters of a running DHT.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct DhtStats {
    /// Our node id.
    pub node_id: NodeId,
    /// Nodes in the routing tables (IPv4 and IPv6).
    pub routing_table_size: usize,
    /// Of those, nodes in the IPv6 routing table (BEP 32).
    pub ipv6_nodes: usize,
    /// Torrents we store announced peers for.
    pub stored_hashes: usize,
    /// Announced peers stored, over all torrents.
    pub stored_peers: usize,
    /// Our queries awaiting an answer.
    pub outstanding_queries: usize,
    /// Lookups running.
    pub lookups: usize,
    /// Incoming queries dropped by the rate limit.
    pub rate_limited: u64,
    /// Our external IP, once enough responders agree on it (BEP 42).
    pub external_ip: Option<IpAddr>,
}
