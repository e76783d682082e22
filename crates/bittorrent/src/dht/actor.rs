//! The DHT actor: one task owning the UDP socket, the routing table, the
//! stored peers, our outstanding queries and the running lookups.
//!
//! Invariants: every entry of `outstanding` is a query we sent and has a
//! deadline; it leaves the map exactly once (answer, error or timeout), and
//! that event is forwarded to its lookup (if still running). A lookup is in
//! `lookups` until it replies to its requester.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::dht::command::DhtCommand;
use crate::dht::krpc::{Body, ErrorCode, ErrorMessage, Message, Query, Response, MAX_DATAGRAM};
use crate::dht::lookup::{Ask, Lookup};
use crate::dht::node::{NodeId, NodeInfo};
use crate::dht::peers::{PeerStore, RateLimiter, Tokens};
use crate::dht::routing::{Insert, RoutingTable, K};
use crate::dht::state::{self, SavedState};
use crate::dht::{Announced, DhtConfig, DhtError, DhtStats};
use crate::types::InfoHash;

/// How often timers (token rotation, expiry, refresh, saving) are checked.
const MAINTENANCE: Duration = Duration::from_secs(5);
/// A table with fewer than [`K`] nodes re-bootstraps at most this often.
const REBOOTSTRAP: Duration = Duration::from_secs(60);
/// Most peers sent in one `get_peers` response (keeps it well under 1500 bytes).
const MAX_VALUES_SENT: usize = 50;
/// Most source IPs the rate limiter tracks.
const RATE_LIMIT_IPS: usize = 10_000;

/// What the actor starts from.
pub(crate) struct Init {
    pub(crate) config: DhtConfig,
    pub(crate) socket: UdpSocket,
    pub(crate) node_id: NodeId,
    pub(crate) saved_nodes: Vec<NodeInfo>,
    pub(crate) rx: mpsc::Receiver<DhtCommand>,
    pub(crate) cancel: CancellationToken,
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
    socket: UdpSocket,
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
                    stored_hashes,
                    stored_peers,
                    outstanding_queries: self.outstanding.len(),
                    lookups: self.lookups.len(),
                    rate_limited: self.rate_limited,
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

    /// Sends a query and records it as outstanding; `false` if the cap on
    /// outstanding queries is reached or the send failed.
    async fn send_query(
        &mut self,
        addr: SocketAddr,
        id: Option<NodeId>,
        query: Query,
        purpose: Purpose,
    ) -> bool {
        if self.outstanding.len() >= self.config.max_outstanding {
            return false;
        }
        let mut tid = self.next_tid;
        while self.outstanding.contains_key(&tid) {
            tid = tid.wrapping_add(1);
        }
        self.next_tid = tid.wrapping_add(1);
        log::trace!("dht: {addr}: -> {}", query.method());
        let msg = Message {
            tid: tid.to_be_bytes().to_vec(),
            body: Body::Query(query),
        };
        if !self.send(&msg, addr).await {
            return false;
        }
        let deadline = Instant::now() + self.config.query_timeout;
        self.outstanding.insert(
            tid,
            Outstanding {
                addr,
                id,
                purpose,
                deadline,
            },
        );
        true
    }

    fn pinging(&self, addr: SocketAddr) -> bool {
        self.outstanding
            .values()
            .any(|o| o.addr == addr && matches!(o.purpose, Purpose::Ping))
    }

    async fn ping(&mut self, node: NodeInfo) {
        if !self.pinging(node.addr) {
            let query = Query::Ping { id: self.own };
            self.send_query(node.addr, Some(node.id), query, Purpose::Ping)
                .await;
        }
    }

    async fn start_lookup(&mut self, target: NodeId, kind: Kind, goal: Goal) {
        if self.lookups.len() >= self.config.max_lookups {
            goal.fail(DhtError::Busy);
            return;
        }
        let now = Instant::now();
        let nodes = self.table.closest(&target, 2 * K, now);
        let bootstrap = matches!(goal, Goal::Bootstrap(_));
        let seeds: Vec<SocketAddr> = if bootstrap || nodes.len() < K {
            let local = self.local_addr;
            self.config
                .bootstrap
                .iter()
                .copied()
                .filter(|a| *a != local && a.is_ipv4() == local.is_ipv4())
                .collect()
        } else {
            Vec::new()
        };
        if nodes.is_empty() && seeds.is_empty() {
            goal.fail(DhtError::NoNodes);
            return;
        }
        if bootstrap {
            self.last_bootstrap = Some(now);
        }
        let id = self.next_lookup;
        self.next_lookup += 1;
        log::debug!(
            "dht: lookup {id} for {} from {} nodes, {} seeds",
            target.short(),
            nodes.len(),
            seeds.len()
        );
        let lookup = Lookup::new(target, self.own, K, &nodes, &seeds);
        self.lookups.insert(
            id,
            Active {
                lookup,
                kind,
                goal,
                announcing: None,
            },
        );
        self.pump(id).await;
    }

    /// Sends the next queries of a lookup, and finishes it once it converged.
    async fn pump(&mut self, id: u64) {
        loop {
            let budget = self
                .config
                .max_outstanding
                .saturating_sub(self.outstanding.len());
            let alpha = self.config.alpha;
            let Some(active) = self.lookups.get_mut(&id) else {
                return;
            };
            if active.announcing.is_some() {
                return;
            }
            let asks = active.lookup.next(alpha, budget);
            if asks.is_empty() {
                break;
            }
            let target = active.lookup.target();
            let query = match active.kind {
                Kind::FindNode => Query::FindNode {
                    id: self.own,
                    target,
                },
                Kind::GetPeers => Query::GetPeers {
                    id: self.own,
                    info_hash: InfoHash(target.0),
                },
            };
            for ask in asks {
                let sent = self
                    .send_query(ask.addr, ask.id, query.clone(), Purpose::Lookup(id))
                    .await;
                if !sent {
                    if let Some(active) = self.lookups.get_mut(&id) {
                        active.lookup.failed(ask);
                    }
                }
            }
        }
        if self.lookups.get(&id).is_some_and(|a| a.lookup.is_done()) {
            self.finish(id).await;
        }
    }

    async fn pump_all(&mut self) {
        let ids: Vec<u64> = self.lookups.keys().copied().collect();
        for id in ids {
            self.pump(id).await;
        }
    }

    /// A lookup converged: reply, or start its announce phase.
    async fn finish(&mut self, id: u64) {
        let Some(active) = self.lookups.get(&id) else {
            return;
        };
        if let (Goal::Announce { port, .. }, None) = (&active.goal, &active.announcing) {
            let port = *port;
            let info_hash = InfoHash(active.lookup.target().0);
            let targets: Vec<(NodeInfo, Vec<u8>)> = active
                .lookup
                .closest_answered()
                .into_iter()
                .filter_map(|(node, token)| Some((node, token?)))
                .collect();
            let mut sent = 0;
            for (node, token) in targets {
                let query = Query::AnnouncePeer {
                    id: self.own,
                    info_hash,
                    port: port.unwrap_or(self.local_addr.port()),
                    implied_port: port.is_none(),
                    token,
                };
                if self
                    .send_query(node.addr, Some(node.id), query, Purpose::Announce(id))
                    .await
                {
                    sent += 1;
                }
            }
            if sent > 0 {
                if let Some(active) = self.lookups.get_mut(&id) {
                    active.announcing = Some(Announcing {
                        pending: sent,
                        accepted: 0,
                    });
                }
                return;
            }
        }
        if let Some(active) = self.lookups.remove(&id) {
            self.complete(id, active);
        }
    }

    fn complete(&self, id: u64, active: Active) {
        let peers = active.lookup.peers().to_vec();
        log::debug!("dht: lookup {id} done, {} peers", peers.len());
        match active.goal {
            Goal::Bootstrap(reply) => {
                log::info!(
                    "dht: node {} bootstrapped, {} nodes in the routing table",
                    self.own.short(),
                    self.table.len()
                );
                if let Some(reply) = reply {
                    let _ = reply.send(Ok(self.table.len()));
                }
            }
            Goal::Refresh => {}
            Goal::GetPeers(reply) => {
                let _ = reply.send(Ok(peers));
            }
            Goal::Announce { reply, .. } => {
                let nodes = active.announcing.map_or(0, |a| a.accepted);
                let _ = reply.send(Ok(Announced { peers, nodes }));
            }
        }
    }

    /// One `announce_peer` of lookup `id` was answered (`accepted`) or not.
    fn announce_result(&mut self, id: u64, accepted: bool) {
        let Some(active) = self.lookups.get_mut(&id) else {
            return;
        };
        let Some(progress) = active.announcing.as_mut() else {
            return;
        };
        progress.pending = progress.pending.saturating_sub(1);
        if accepted {
            progress.accepted += 1;
        }
        if progress.pending == 0 {
            if let Some(active) = self.lookups.remove(&id) {
                self.complete(id, active);
            }
        }
    }

    async fn on_datagram(&mut self, bytes: &[u8], from: SocketAddr) {
        if from.port() == 0 {
            return;
        }
        match Message::decode(bytes) {
            Ok(Message {
                tid,
                body: Body::Query(query),
            }) => self.on_query(tid, query, from).await,
            Ok(Message {
                tid,
                body: Body::Response(response),
            }) => self.on_answer(&tid, Ok(response), from).await,
            Ok(Message {
                tid,
                body: Body::Error(error),
            }) => self.on_answer(&tid, Err(error), from).await,
            Err(e) => {
                log::trace!("dht: {from}: bad datagram: {e}");
                if let Some(reply) = e.error_reply() {
                    if self.limiter.allow(from.ip(), Instant::now()) {
                        self.send(&reply, from).await;
                    } else {
                        self.rate_limited += 1;
                    }
                }
            }
        }
    }

    async fn on_query(&mut self, tid: Vec<u8>, query: Query, from: SocketAddr) {
        let now = Instant::now();
        if !self.limiter.allow(from.ip(), now) {
            self.rate_limited += 1;
            log::trace!("dht: {from}: rate limited {}", query.method());
            return;
        }
        log::trace!("dht: {from}: <- {}", query.method());
        let sender = query.id();
        self.table.heard_query(&sender, now);
        let body = match query {
            Query::Ping { .. } => Body::Response(self.response()),
            Query::FindNode { target, .. } => Body::Response(Response {
                nodes: self.closest_for(&target, now),
                ..self.response()
            }),
            Query::GetPeers { info_hash, .. } => {
                let values =
                    self.store
                        .peers(&info_hash, MAX_VALUES_SENT, self.config.peer_ttl, now);
                Body::Response(Response {
                    nodes: self.closest_for(&info_hash.into(), now),
                    values,
                    token: Some(self.tokens.token_for(from.ip()).to_vec()),
                    ..self.response()
                })
            }
            Query::AnnouncePeer {
                info_hash,
                port,
                implied_port,
                token,
                ..
            } => {
                let port = if implied_port { from.port() } else { port };
                if !self.tokens.verify(from.ip(), &token) {
                    log::debug!("dht: {from}: announce_peer with a bad token");
                    protocol_error("bad token")
                } else if port == 0 {
                    protocol_error("invalid port")
                } else {
                    let peer = SocketAddr::new(from.ip(), port);
                    if self.store.announce(info_hash, peer, now) {
                        log::debug!("dht: [{}] {peer} announced", info_hash.short());
                    }
                    Body::Response(self.response())
                }
            }
        };
        self.send(&Message { tid, body }, from).await;
        // A node that queries us is worth knowing: verify it answers first.
        if self.table.would_accept(&sender, now) {
            self.ping(NodeInfo {
                id: sender,
                addr: from,
            })
            .await;
        }
    }

    fn response(&self) -> Response {
        Response {
            id: self.own,
            ..Response::default()
        }
    }

    /// The `K` closest nodes of our address family.
    fn closest_for(&self, target: &NodeId, now: Instant) -> Vec<NodeInfo> {
        let v4 = self.local_addr.is_ipv4();
        let mut nodes = self.table.closest(target, 2 * K, now);
        nodes.retain(|n| n.addr.is_ipv4() == v4);
        nodes.truncate(K);
        nodes
    }

    /// An answer (response or error) to one of our queries.
    async fn on_answer(
        &mut self,
        tid: &[u8],
        answer: Result<Response, ErrorMessage>,
        from: SocketAddr,
    ) {
        let Ok(tid) = <[u8; 4]>::try_from(tid) else {
            return;
        };
        let out = match self.outstanding.entry(u32::from_be_bytes(tid)) {
            Entry::Occupied(e) if e.get().addr == from => e.remove(),
            _ => {
                log::trace!("dht: {from}: unexpected answer");
                return;
            }
        };
        let now = Instant::now();
        let ask = Ask {
            addr: out.addr,
            id: out.id,
        };
        match answer {
            Ok(mut response) => {
                let node = NodeInfo {
                    id: response.id,
                    addr: from,
                };
                if let Insert::Full { ping: Some(stale) } = self.table.heard_response(node, now) {
                    self.ping(stale).await;
                }
                let v4 = self.local_addr.is_ipv4();
                response.nodes.retain(|n| n.addr.is_ipv4() == v4);
                match out.purpose {
                    Purpose::Lookup(id) => {
                        if let Some(active) = self.lookups.get_mut(&id) {
                            active.lookup.answered(
                                ask,
                                response.id,
                                &response.nodes,
                                &response.values,
                                response.token,
                            );
                        }
                    }
                    Purpose::Announce(id) => self.announce_result(id, true),
                    Purpose::Ping => {}
                }
            }
            Err(error) => {
                log::debug!(
                    "dht: {from}: error {} {:?}",
                    error.code.code(),
                    error.message
                );
                match out.purpose {
                    Purpose::Lookup(id) => {
                        if let Some(active) = self.lookups.get_mut(&id) {
                            active.lookup.failed(ask);
                        }
                    }
                    Purpose::Announce(id) => self.announce_result(id, false),
                    Purpose::Ping => {}
                }
            }
        }
        self.pump_all().await;
    }

    /// Queries past their deadline count as unanswered.
    async fn expire(&mut self) {
        let now = Instant::now();
        let expired: Vec<u32> = self
            .outstanding
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(tid, _)| *tid)
            .collect();
        if expired.is_empty() {
            return;
        }
        for tid in expired {
            let Some(out) = self.outstanding.remove(&tid) else {
                continue;
            };
            log::trace!("dht: {}: query timed out", out.addr);
            if let Some(id) = out.id {
                if self.table.failed(&id, now) {
                    log::debug!("dht: {}: node {} is bad", out.addr, id.short());
                }
            }
            match out.purpose {
                Purpose::Lookup(id) => {
                    if let Some(active) = self.lookups.get_mut(&id) {
                        active.lookup.failed(Ask {
                            addr: out.addr,
                            id: out.id,
                        });
                    }
                }
                Purpose::Announce(id) => self.announce_result(id, false),
                Purpose::Ping => {}
            }
        }
        self.pump_all().await;
    }

    async fn maintenance(&mut self) {
        let now = Instant::now();
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

fn protocol_error(message: &str) -> Body {
    Body::Error(ErrorMessage {
        code: ErrorCode::Protocol,
        message: message.to_string(),
    })
}
