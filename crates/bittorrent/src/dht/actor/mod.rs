//! The DHT actor: one task owning the UDP socket, the routing table, the
//! stored peers, our outstanding queries and the running lookups.
//!
//! Invariants: every entry of `outstanding` is a query we sent and has a
//! deadline; it leaves the map exactly once (answer, error or timeout), and
//! that event is forwarded to its lookup (if still running). A lookup is in
//! `lookups` until it replies to its requester.
//!
//! This file holds the state, the run loop and the timers; the actor's other
//! jobs are split by file: `outgoing` (our queries in flight and their
//! answers), `lookups` (lookups and their announce phase), `incoming`
//! (answering other nodes' queries).

mod identity;
mod incoming;
mod lookups;
mod outgoing;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::dht::command::DhtCommand;
use crate::dht::krpc::{Body, Message, MAX_DATAGRAM};
use crate::dht::lookup::Lookup;
use crate::dht::node::{NodeId, NodeInfo};
use crate::dht::peers::{PeerStore, RateLimiter, Tokens};
use crate::dht::routing::{RoutingTable, K};
use crate::dht::security::IpVotes;
use crate::dht::socket::DhtSocket;
use crate::dht::state::{self, SavedState};
use crate::dht::{Announced, DhtConfig, DhtError, DhtStats};

/// How often timers (token rotation, expiry, refresh, saving) are checked.
const MAINTENANCE: Duration = Duration::from_secs(5);
/// A table with fewer than [`K`] nodes re-bootstraps at most this often.
const REBOOTSTRAP: Duration = Duration::from_secs(60);
/// Most peers sent in one `get_peers` response (keeps it well under 1500 bytes).
const MAX_VALUES_SENT: usize = 50;
/// Most source IPs the rate limiter tracks.
const RATE_LIMIT_IPS: usize = 10_000;

/// Where a node publishes its table's nodes, and the other family's node's
/// published table, if there is such a node (BEP 32's `want`).
pub(crate) type Tables = (
    watch::Sender<Vec<NodeInfo>>,
    Option<watch::Receiver<Vec<NodeInfo>>>,
);

/// What the actor starts from.
pub(crate) struct Init {
    pub(crate) config: DhtConfig,
    pub(crate) socket: DhtSocket,
    pub(crate) node_id: NodeId,
    pub(crate) saved_nodes: Vec<NodeInfo>,
    pub(crate) rx: mpsc::Receiver<DhtCommand>,
    pub(crate) cancel: CancellationToken,
    /// Where this node publishes its table's nodes, and the other family's
    /// node's table (BEP 32: answering a `want` for that family).
    pub(crate) tables: Tables,
}

/// Why we sent a query.
#[derive(Clone, Copy, Debug)]
enum Purpose {
    /// A step of lookup `id`.
    Lookup(u64),
    /// An `announce_peer` of lookup `id`.
    Announce(u64),
    /// A liveness check (a questionable node, or a node that queried us).
    Ping,
}

struct Outstanding {
    addr: SocketAddr,
    id: Option<NodeId>,
    purpose: Purpose,
    deadline: Instant,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    FindNode,
    GetPeers,
}

/// Who waits for a lookup, and what happens when it converges.
enum Goal {
    Bootstrap(Option<oneshot::Sender<Result<usize, DhtError>>>),
    Refresh,
    GetPeers(oneshot::Sender<Result<Vec<SocketAddr>, DhtError>>),
    Announce {
        port: Option<u16>,
        reply: oneshot::Sender<Result<Announced, DhtError>>,
    },
}

impl Goal {
    fn fail(self, err: DhtError) {
        match self {
            Goal::Bootstrap(Some(reply)) => drop(reply.send(Err(err))),
            Goal::Bootstrap(None) | Goal::Refresh => {}
            Goal::GetPeers(reply) => drop(reply.send(Err(err))),
            Goal::Announce { reply, .. } => drop(reply.send(Err(err))),
        }
    }
}

/// Progress of the `announce_peer` phase.
struct Announcing {
    pending: usize,
    accepted: usize,
}

struct Active {
    lookup: Lookup,
    kind: Kind,
    goal: Goal,
    announcing: Option<Announcing>,
}

struct Actor {
    config: DhtConfig,
    socket: DhtSocket,
    local_addr: SocketAddr,
    own: NodeId,
    table: RoutingTable,
    tokens: Tokens,
    store: PeerStore,
    limiter: RateLimiter,
    outstanding: HashMap<u32, Outstanding>,
    next_tid: u32,
    lookups: HashMap<u64, Active>,
    next_lookup: u64,
    last_bootstrap: Option<Instant>,
    last_save: Instant,
    rate_limited: u64,
    /// What responders say our address is (BEP 42).
    votes: IpVotes,
    /// The external IP most responders agree on.
    external_ip: Option<IpAddr>,
    /// Ours to publish, and the other family's node's table.
    tables: Tables,
}

/// Runs the DHT until cancelled or every handle is dropped, then saves state.
pub(crate) async fn run(init: Init) {
    let Init {
        config,
        socket,
        node_id,
        saved_nodes,
        mut rx,
        cancel,
        tables,
    } = init;
    let now = Instant::now();
    let local_addr = socket
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut table = RoutingTable::new(node_id, now);
    for node in saved_nodes
        .into_iter()
        .filter(|n| n.addr.is_ipv4() == local_addr.is_ipv4())
    {
        table.add_unverified(node, now);
    }
    let mut actor = Actor {
        store: PeerStore::new(config.max_stored_hashes, config.max_peers_per_hash),
        limiter: RateLimiter::new(
            config.rate_limit.per_second,
            f64::from(config.rate_limit.burst),
            RATE_LIMIT_IPS,
        ),
        config,
        socket,
        local_addr,
        own: node_id,
        table,
        tokens: Tokens::new(now),
        outstanding: HashMap::new(),
        next_tid: rand::random(),
        lookups: HashMap::new(),
        next_lookup: 0,
        last_bootstrap: None,
        last_save: now,
        rate_limited: 0,
        votes: IpVotes::default(),
        external_ip: None,
        tables,
    };
    if !actor.table.is_empty() || !actor.config.bootstrap.is_empty() {
        actor
            .start_lookup(node_id, Kind::FindNode, Goal::Bootstrap(None))
            .await;
    }
    actor.run_loop(&mut rx, &cancel).await;
    log::info!("dht: node {} stopping", actor.own.short());
    actor.save_state().await;
}

impl Actor {
    async fn run_loop(&mut self, rx: &mut mpsc::Receiver<DhtCommand>, cancel: &CancellationToken) {
        // One byte more than we accept, to tell an over-long datagram apart.
        let mut buf = vec![0u8; MAX_DATAGRAM + 1];
        let mut tick = tokio::time::interval(MAINTENANCE);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let deadline = tokio::time::Instant::from_std(self.next_deadline());
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd).await,
                    None => break,
                },
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        let len = len.min(buf.len());
                        self.on_datagram(&buf[..len], from).await;
                    }
                    // E.g. an ICMP error surfacing on some platforms: not fatal.
                    Err(e) => log::debug!("dht: receive error: {e}"),
                },
                _ = tokio::time::sleep_until(deadline) => self.expire().await,
                _ = tick.tick() => self.maintenance().await,
            }
        }
    }

    fn next_deadline(&self) -> Instant {
        self.outstanding
            .values()
            .map(|o| o.deadline)
            .min()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600))
    }

    async fn on_command(&mut self, cmd: DhtCommand) {
        match cmd {
            DhtCommand::Bootstrap { reply } => {
                self.start_lookup(self.own, Kind::FindNode, Goal::Bootstrap(Some(reply)))
                    .await
            }
            DhtCommand::GetPeers { info_hash, reply } => {
                self.start_lookup(info_hash.into(), Kind::GetPeers, Goal::GetPeers(reply))
                    .await
            }
            DhtCommand::Announce {
                info_hash,
                port,
                reply,
            } => {
                let goal = Goal::Announce { port, reply };
                self.start_lookup(info_hash.into(), Kind::GetPeers, goal)
                    .await
            }
            DhtCommand::Stats { reply } => {
                let (stored_hashes, stored_peers) = self.store.counts();
                let _ = reply.send(DhtStats {
                    node_id: self.own,
                    routing_table_size: self.table.len(),
                    ipv6_nodes: if self.local_addr.is_ipv6() {
                        self.table.len()
                    } else {
                        0
                    },
                    stored_hashes,
                    stored_peers,
                    outstanding_queries: self.outstanding.len(),
                    lookups: self.lookups.len(),
                    rate_limited: self.rate_limited,
                    external_ip: self.external_ip,
                });
            }
        }
    }

    async fn send(&self, msg: &Message, to: SocketAddr) -> bool {
        match self.socket.send_to(&msg.encode(), to).await {
            Ok(_) => true,
            Err(e) => {
                log::debug!("dht: {to}: send failed: {e}");
                false
            }
        }
    }

    async fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        // A dual-stack socket may bring the other family: its node answers.
        if from.port() == 0 || from.is_ipv6() != self.local_addr.is_ipv6() {
            return;
        }
        match Message::decode(bytes) {
            // BEP 43: a read-only node answers no query.
            Ok(Message {
                body: Body::Query(query),
                ..
            }) if self.config.read_only => {
                log::trace!("dht: {from}: <- {} (read-only: unanswered)", query.method());
            }
            Ok(Message {
                tid,
                body: Body::Query(query),
                read_only,
            }) => self.on_query(tid, query, read_only, from).await,
            Ok(Message {
                tid,
                body: Body::Response(response),
                ..
            }) => self.on_answer(&tid, Ok(response), from).await,
            Ok(Message {
                tid,
                body: Body::Error(error),
                ..
            }) => self.on_answer(&tid, Err(error), from).await,
            Err(e) => {
                log::trace!("dht: {from}: bad datagram: {e}");
                let reply = e.error_reply().filter(|_| !self.config.read_only);
                if let Some(reply) = reply {
                    if self.limiter.allow(from.ip(), Instant::now()) {
                        self.send(&reply, from).await;
                    } else {
                        self.rate_limited += 1;
                    }
                }
            }
        }
    }
    async fn maintenance(&mut self) {
        let now = Instant::now();
        self.publish_table(now);
        self.tokens.rotate_if_due(self.config.token_rotation, now);
        self.store.expire(self.config.peer_ttl, now);
        let can_rebootstrap = self
            .last_bootstrap
            .is_none_or(|t| now.saturating_duration_since(t) >= REBOOTSTRAP);
        if self.table.len() < K && can_rebootstrap && !self.config.bootstrap.is_empty() {
            self.start_lookup(self.own, Kind::FindNode, Goal::Bootstrap(None))
                .await;
        } else if self.lookups.len() < self.config.max_lookups / 2 {
            if let Some(target) = self.table.refresh_target(self.config.refresh_interval, now) {
                log::debug!("dht: refreshing bucket around {}", target.short());
                self.start_lookup(target, Kind::FindNode, Goal::Refresh)
                    .await;
            }
        }
        if self.config.state_file.is_some()
            && now.saturating_duration_since(self.last_save) >= self.config.save_interval
        {
            self.save_state().await;
        }
    }

    /// Publishes the table's nodes for the other family's node, if any.
    fn publish_table(&self, now: Instant) {
        if self.tables.0.receiver_count() > 0 {
            self.tables.0.send_replace(self.table.nodes(now));
        }
    }

    async fn save_state(&mut self) {
        self.last_save = Instant::now();
        let Some(path) = &self.config.state_file else {
            return;
        };
        let saved = SavedState {
            node_id: self.own,
            nodes: self.table.nodes(Instant::now()),
        };
        match state::save(path, &saved).await {
            Ok(()) => log::debug!(
                "dht: saved {} nodes to {}",
                saved.nodes.len(),
                path.display()
            ),
            Err(e) => log::error!("dht: cannot save state to {}: {e}", path.display()),
        }
    }
}
