//! The mainline DHT (BEP 5, IPv4): a trackerless source of peers.
//!
//! [`DhtHandle::spawn`] binds one UDP socket and starts the DHT actor, which
//! answers other nodes' queries (`ping`, `find_node`, `get_peers`,
//! `announce_peer`), keeps a routing table of k-buckets, stores peers
//! announced to it, and runs iterative lookups for the handle:
//! [`DhtHandle::get_peers`] and [`DhtHandle::announce`].
//!
//! # Layout
//! - [`krpc`]: the message codec (pure).
//! - `node`: ids, XOR distance, compact formats; `routing`: the k-bucket
//!   table; `lookup`: the iterative lookup state machine; `peers`: tokens,
//!   stored peers and rate limits; `state`: the persisted routing table. All
//!   pure, with the time passed in.
//! - `actor`: the task owning the socket and all of the above.
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
pub mod krpc;
mod lookup;
mod node;
mod peers;
mod routing;
mod security;
mod socket;
mod state;

pub use error::DhtError;
pub use node::{NodeId, NodeInfo};
pub use routing::K;
pub use security::{id_matches_ip, secure_id};
pub use state::{SavedState, StateError};

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dht::command::DhtCommand;
use crate::dht::socket::DhtSocket;
use crate::types::InfoHash;
use crate::utp::SharedUdp;

/// Well-known public DHT routers (`host:port`), for a program to resolve and
/// put in [`DhtConfig::bootstrap`]. The library never contacts them by itself.
pub const PUBLIC_ROUTERS: &[&str] = &[
    "router.bittorrent.com:6881",
    "dht.transmissionbt.com:6881",
    "router.utorrent.com:6881",
    "dht.libtorrent.org:25401",
];

/// Resolves `host:port` names (such as [`PUBLIC_ROUTERS`]) to IPv4 socket
/// addresses, skipping names that do not resolve. This does DNS lookups;
/// numeric addresses resolve without any.
pub async fn resolve_bootstrap(names: &[&str]) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for name in names {
        match tokio::net::lookup_host(*name).await {
            Ok(addrs) => {
                for addr in addrs.filter(SocketAddr::is_ipv4) {
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
    /// Addresses to bootstrap from (default: none; see [`PUBLIC_ROUTERS`]).
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
}

impl Default for DhtConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([0, 0, 0, 0], 6881)),
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
    /// Nodes in the routing table.
    pub routing_table_size: usize,
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

/// A cloneable handle to a running DHT. The DHT runs until its cancellation
/// token fires or the last handle is dropped; either way it saves its state.
#[derive(Clone, Debug)]
pub struct DhtHandle {
    tx: mpsc::Sender<DhtCommand>,
    local_addr: SocketAddr,
    node_id: NodeId,
}

impl DhtHandle {
    /// Capacity of the actor's command mailbox.
    const MAILBOX: usize = 64;

    /// Binds the socket, loads the state file (an unreadable one is logged and
    /// ignored), starts the actor and, if it knows any node, a bootstrap
    /// lookup. Returns the handle and the task, which ends when `cancel` fires
    /// or every handle is dropped (after saving state).
    ///
    /// # Errors
    /// The IO error if the socket cannot be bound.
    pub async fn spawn(
        config: DhtConfig,
        cancel: CancellationToken,
    ) -> io::Result<(DhtHandle, JoinHandle<()>)> {
        let socket = UdpSocket::bind(config.bind).await?;
        Self::spawn_on(config, DhtSocket::Own(socket), cancel).await
    }

    /// [`spawn`](Self::spawn) on the session's UDP port, shared with uTP
    /// (`config.bind` is not used).
    ///
    /// # Errors
    /// None in practice (the socket is bound already).
    pub(crate) async fn spawn_shared(
        config: DhtConfig,
        shared: SharedUdp,
        cancel: CancellationToken,
    ) -> io::Result<(DhtHandle, JoinHandle<()>)> {
        Self::spawn_on(config, DhtSocket::Shared(shared), cancel).await
    }

    async fn spawn_on(
        config: DhtConfig,
        socket: DhtSocket,
        cancel: CancellationToken,
    ) -> io::Result<(DhtHandle, JoinHandle<()>)> {
        let local_addr = socket.local_addr()?;
        let saved = match &config.state_file {
            Some(path) => match state::load(path).await {
                Ok(saved) => saved,
                Err(e) => {
                    log::warn!("dht: ignoring state file {}: {e}", path.display());
                    None
                }
            },
            None => None,
        };
        let node_id = config
            .node_id
            .or(saved.as_ref().map(|s| s.node_id))
            .unwrap_or_else(NodeId::random);
        let (tx, rx) = mpsc::channel(Self::MAILBOX);
        log::info!("dht: node {} listening on {local_addr}", node_id.short());
        let task = tokio::spawn(actor::run(actor::Init {
            config,
            socket,
            node_id,
            saved_nodes: saved.map(|s| s.nodes).unwrap_or_default(),
            rx,
            cancel,
        }));
        Ok((
            DhtHandle {
                tx,
                local_addr,
                node_id,
            },
            task,
        ))
    }

    /// The bound UDP address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Our node id at start ([`DhtStats::node_id`] is the current one: BEP 42
    /// may replace it once our external IP is known).
    pub fn node_id(&self) -> NodeId {
        self.node_id
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> DhtCommand,
    ) -> Result<T, DhtError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(make(reply))
            .await
            .map_err(|_| DhtError::Stopped)?;
        rx.await.map_err(|_| DhtError::Stopped)
    }

    /// Looks up our own id, starting from the routing table and the
    /// configured bootstrap addresses, and returns the routing table size
    /// afterwards.
    ///
    /// # Errors
    /// [`DhtError::NoNodes`] with nothing to start from, [`DhtError::Busy`],
    /// [`DhtError::Stopped`].
    pub async fn bootstrap(&self) -> Result<usize, DhtError> {
        self.request(|reply| DhtCommand::Bootstrap { reply })
            .await?
    }

    /// Runs a `get_peers` lookup and returns the peers found (possibly none).
    ///
    /// # Errors
    /// [`DhtError::NoNodes`] with nothing to start from, [`DhtError::Busy`],
    /// [`DhtError::Stopped`].
    pub async fn get_peers(&self, info_hash: InfoHash) -> Result<Vec<SocketAddr>, DhtError> {
        self.request(|reply| DhtCommand::GetPeers { info_hash, reply })
            .await?
    }

    /// Runs a `get_peers` lookup, then sends `announce_peer` to the (up to
    /// [`K`]) closest nodes that gave a token. `port` is our TCP peer port;
    /// `0` asks the nodes to use our UDP source port instead (`implied_port`).
    ///
    /// # Errors
    /// [`DhtError::NoNodes`] with nothing to start from, [`DhtError::Busy`],
    /// [`DhtError::Stopped`].
    pub async fn announce(&self, info_hash: InfoHash, port: u16) -> Result<Announced, DhtError> {
        let port = (port != 0).then_some(port);
        self.request(|reply| DhtCommand::Announce {
            info_hash,
            port,
            reply,
        })
        .await?
    }

    /// Number of nodes in the routing table (0 if the DHT has stopped).
    pub async fn routing_table_size(&self) -> usize {
        self.stats()
            .await
            .map(|s| s.routing_table_size)
            .unwrap_or(0)
    }

    /// Counters of the running DHT.
    ///
    /// # Errors
    /// [`DhtError::Stopped`].
    pub async fn stats(&self) -> Result<DhtStats, DhtError> {
        self.request(|reply| DhtCommand::Stats { reply }).await
    }
}
