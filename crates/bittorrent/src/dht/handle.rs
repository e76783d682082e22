//! [`DhtHandle`]: starting the DHT's nodes (one per address family, BEP 32)
//! and asking them. Each node is an actor with its own socket (or its half
//! of the session's shared one) and routing table; the handle asks every
//! node and merges the answers.

use std::io;
use std::net::SocketAddr;

use futures::future::join_all;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::dht::command::DhtCommand;
use crate::dht::socket::DhtSocket;
use crate::dht::{actor, state, Announced, DhtConfig, DhtError, DhtStats, NodeId};
use crate::types::InfoHash;
use crate::utp::SharedUdp;

/// A cloneable handle to a running DHT: one node, or two (IPv4 and IPv6,
/// with [`DhtConfig::bind_v6`]). The DHT runs until its cancellation token
/// fires or the last handle is dropped; either way it saves its state.
#[derive(Clone, Debug)]
pub struct DhtHandle {
    /// The first node (on [`DhtConfig::bind`] or the shared port), then the
    /// IPv6 one if any.
    nodes: Vec<Node>,
}

#[derive(Clone, Debug)]
struct Node {
    tx: mpsc::Sender<DhtCommand>,
    local_addr: SocketAddr,
    node_id: NodeId,
}

impl DhtHandle {
    /// Capacity of each actor's command mailbox.
    const MAILBOX: usize = 64;

    /// Binds the socket (and the IPv6 one of [`DhtConfig::bind_v6`]: one that
    /// cannot be bound is logged and left out), loads the state file (an
    /// unreadable one is logged and ignored), starts the actors and, if they
    /// know any node, a bootstrap lookup. Returns the handle and the task,
    /// which ends when `cancel` fires or every handle is dropped (after
    /// saving state).
    ///
    /// # Errors
    /// The IO error if the socket of [`DhtConfig::bind`] cannot be bound.
    pub async fn spawn(
        config: DhtConfig,
        cancel: CancellationToken,
    ) -> io::Result<(DhtHandle, JoinHandle<()>)> {
        let socket = DhtSocket::bind(config.bind)?;
        let mut sockets = vec![socket];
        sockets.extend(second_socket(&config, &sockets[0]));
        Self::spawn_on(config, sockets, cancel).await
    }

    /// [`spawn`](Self::spawn) on the session's UDP port, shared with uTP
    /// (`config.bind` is not used). On a dual-stack port with
    /// [`DhtConfig::bind_v6`] set, the IPv6 node shares it too.
    ///
    /// # Errors
    /// None in practice (the socket is bound already).
    pub(crate) async fn spawn_shared(
        config: DhtConfig,
        shared: SharedUdp,
        cancel: CancellationToken,
    ) -> io::Result<(DhtHandle, JoinHandle<()>)> {
        let sockets = if shared.is_dual_stack() && config.bind_v6.is_some() {
            let (v4, v6) = shared.split_ipv6();
            vec![DhtSocket::Shared(v4), DhtSocket::Shared(v6)]
        } else {
            let first = DhtSocket::Shared(shared);
            let second = second_socket(&config, &first);
            std::iter::once(first).chain(second).collect()
        };
        Self::spawn_on(config, sockets, cancel).await
    }

    async fn spawn_on(
        config: DhtConfig,
        sockets: Vec<DhtSocket>,
        cancel: CancellationToken,
    ) -> io::Result<(DhtHandle, JoinHandle<()>)> {
        let mut nodes = Vec::new();
        let mut tasks = Vec::new();
        // Each node publishes its table for the other (BEP 32's `want`).
        let tables: Vec<_> = sockets.iter().map(|_| watch::channel(Vec::new())).collect();
        let receivers: Vec<_> = tables.iter().map(|(_, rx)| rx.clone()).collect();
        let count = sockets.len();
        for (i, (socket, (publish, _))) in sockets.into_iter().zip(tables).enumerate() {
            let mut config = config.clone();
            // The second node keeps its own state: its id and its table.
            if i > 0 {
                config.state_file = config.state_file.map(|p| p.with_extension("state6"));
            }
            let other = (count == 2).then(|| receivers[1 - i].clone());
            let tables = (publish, other);
            let (node, task) = spawn_node(config, socket, tables, cancel.clone()).await?;
            nodes.push(node);
            tasks.push(task);
        }
        let task = tokio::spawn(async move {
            join_all(tasks).await;
        });
        Ok((DhtHandle { nodes }, task))
    }

    /// The bound UDP address of the first node.
    pub fn local_addr(&self) -> SocketAddr {
        self.nodes[0].local_addr
    }

    /// The bound UDP address of every node (IPv4, then IPv6).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.nodes.iter().map(|n| n.local_addr).collect()
    }

    /// The first node's id at start ([`DhtStats::node_id`] is the current
    /// one: BEP 42 may replace it once our external IP is known).
    pub fn node_id(&self) -> NodeId {
        self.nodes[0].node_id
    }

    /// Sends a command to every node; their answers, in node order.
    async fn ask_all<T>(
        &self,
        make: impl Fn(oneshot::Sender<T>) -> DhtCommand,
    ) -> Vec<Result<T, DhtError>> {
        join_all(self.nodes.iter().map(|node| {
            let (reply, rx) = oneshot::channel();
            let cmd = make(reply);
            async move {
                node.tx.send(cmd).await.map_err(|_| DhtError::Stopped)?;
                rx.await.map_err(|_| DhtError::Stopped)
            }
        }))
        .await
    }

    /// Looks up our own id on every node, starting from the routing table and
    /// the configured bootstrap addresses, and returns the number of nodes in
    /// the routing tables afterwards.
    ///
    /// # Errors
    /// When every node fails: [`DhtError::NoNodes`] with nothing to start
    /// from, [`DhtError::Busy`], [`DhtError::Stopped`].
    pub async fn bootstrap(&self) -> Result<usize, DhtError> {
        let answers = self.ask_all(|reply| DhtCommand::Bootstrap { reply }).await;
        merge(flatten(answers), |a: usize, b| a + b)
    }

    /// Runs a `get_peers` lookup on every node and returns the peers found
    /// (possibly none), IPv4 and IPv6.
    ///
    /// # Errors
    /// When every node fails: [`DhtError::NoNodes`] with nothing to start
    /// from, [`DhtError::Busy`], [`DhtError::Stopped`].
    pub async fn get_peers(&self, info_hash: InfoHash) -> Result<Vec<SocketAddr>, DhtError> {
        let answers = self
            .ask_all(|reply| DhtCommand::GetPeers { info_hash, reply })
            .await;
        merge(flatten(answers), |mut a: Vec<SocketAddr>, b| {
            a.extend(b);
            a
        })
    }

    /// Runs a `get_peers` lookup on every node, then sends `announce_peer` to
    /// the (up to [`K`](crate::dht::K)) closest nodes that gave a token.
    /// `port` is our TCP peer port; `0` asks the nodes to use our UDP source
    /// port instead (`implied_port`).
    ///
    /// # Errors
    /// When every node fails: [`DhtError::NoNodes`] with nothing to start
    /// from, [`DhtError::Busy`], [`DhtError::Stopped`].
    pub async fn announce(&self, info_hash: InfoHash, port: u16) -> Result<Announced, DhtError> {
        let port = (port != 0).then_some(port);
        let answers = self
            .ask_all(|reply| DhtCommand::Announce {
                info_hash,
                port,
                reply,
            })
            .await;
        merge(flatten(answers), |mut a: Announced, b| {
            a.peers.extend(b.peers);
            a.nodes += b.nodes;
            a
        })
    }

    /// Number of nodes in the routing tables (0 if the DHT has stopped).
    pub async fn routing_table_size(&self) -> usize {
        self.stats()
            .await
            .map(|s| s.routing_table_size)
            .unwrap_or(0)
    }

    /// Counters of the running DHT: the first node's, with the counts summed
    /// over every node.
    ///
    /// # Errors
    /// [`DhtError::Stopped`] when no node answers.
    pub async fn stats(&self) -> Result<DhtStats, DhtError> {
        let answers = self.ask_all(|reply| DhtCommand::Stats { reply }).await;
        merge(answers, |mut a: DhtStats, b| {
            a.routing_table_size += b.routing_table_size;
            a.ipv6_nodes += b.ipv6_nodes;
            a.stored_hashes += b.stored_hashes;
            a.stored_peers += b.stored_peers;
            a.outstanding_queries += b.outstanding_queries;
            a.lookups += b.lookups;
            a.rate_limited += b.rate_limited;
            a
        })
    }
}

/// The answers of commands whose reply is itself a result.
fn flatten<T>(answers: Vec<Result<Result<T, DhtError>, DhtError>>) -> Vec<Result<T, DhtError>> {
    answers.into_iter().map(|a| a.and_then(|r| r)).collect()
}

/// The answers of every node folded with `add`, skipping the failed ones;
/// the first error when all failed.
fn merge<T>(answers: Vec<Result<T, DhtError>>, add: impl Fn(T, T) -> T) -> Result<T, DhtError> {
    let mut sum: Option<T> = None;
    let mut first_error = None;
    for answer in answers {
        match answer {
            Ok(value) => {
                sum = Some(match sum {
                    Some(total) => add(total, value),
                    None => value,
                })
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    sum.ok_or(first_error.unwrap_or(DhtError::Stopped))
}

/// The IPv6 node's socket of [`DhtConfig::bind_v6`], when the first node is
/// not IPv6 already; one that cannot be bound is logged and left out.
fn second_socket(config: &DhtConfig, first: &DhtSocket) -> Option<DhtSocket> {
    let addr = config.bind_v6?;
    if first.local_addr().is_ok_and(|a| a.is_ipv6()) {
        return None;
    }
    match DhtSocket::bind(addr) {
        Ok(socket) => Some(socket),
        Err(e) => {
            log::warn!("dht: no IPv6 node: cannot bind UDP {addr}: {e}");
            None
        }
    }
}

/// Loads the node's state and starts its actor.
async fn spawn_node(
    config: DhtConfig,
    socket: DhtSocket,
    tables: actor::Tables,
    cancel: CancellationToken,
) -> io::Result<(Node, JoinHandle<()>)> {
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
    let (tx, rx) = mpsc::channel(DhtHandle::MAILBOX);
    log::info!("dht: node {} listening on {local_addr}", node_id.short());
    let task = tokio::spawn(actor::run(actor::Init {
        config,
        socket,
        node_id,
        saved_nodes: saved.map(|s| s.nodes).unwrap_or_default(),
        rx,
        cancel,
        tables,
    }));
    let node = Node {
        tx,
        local_addr,
        node_id,
    };
    Ok((node, task))
}
