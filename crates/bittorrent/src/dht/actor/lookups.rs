//! Lookups (BEP 5 iterative `find_node` / `get_peers`): starting them,
//! sending their next queries, the `announce_peer` phase, and replying to
//! whoever waits.

use std::net::SocketAddr;
use std::time::Instant;

use crate::dht::actor::{Active, Actor, Announcing, Goal, Kind, Purpose};
use crate::dht::krpc::{Query, Want};
use crate::dht::lookup::Lookup;
use crate::dht::node::{NodeId, NodeInfo};
use crate::dht::routing::K;
use crate::dht::{Announced, DhtError};
use crate::types::InfoHash;

impl Actor {
    pub(super) async fn start_lookup(&mut self, target: NodeId, kind: Kind, goal: Goal) {
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
                    want: Want::default(),
                },
                Kind::GetPeers => Query::GetPeers {
                    id: self.own,
                    info_hash: InfoHash(target.0),
                    want: Want::default(),
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

    pub(super) async fn pump_all(&mut self) {
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
            let sent = self.send_announces(id, port).await;
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

    /// Sends `announce_peer` to the closest nodes of lookup `id` that gave
    /// us a token (`port`, or the implied port when `None`); how many were
    /// sent.
    async fn send_announces(&mut self, id: u64, port: Option<u16>) -> usize {
        let Some(active) = self.lookups.get(&id) else {
            return 0;
        };
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
        sent
    }

    fn complete(&self, id: u64, active: Active) {
        let peers = active.lookup.peers().to_vec();
        log::debug!("dht: lookup {id} done, {} peers", peers.len());
        match active.goal {
            Goal::Bootstrap(reply) => {
                self.publish_table(Instant::now());
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
    pub(super) fn announce_result(&mut self, id: u64, accepted: bool) {
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
}
