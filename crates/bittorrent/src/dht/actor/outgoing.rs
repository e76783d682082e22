//! Our queries in flight: sending them, matching answers to them, and
//! counting the unanswered ones as failed.

use std::collections::hash_map::Entry;
use std::net::SocketAddr;
use std::time::Instant;

use crate::dht::actor::{Actor, Outstanding, Purpose};
use crate::dht::krpc::{Body, ErrorMessage, Message, Query, Response};
use crate::dht::lookup::Ask;
use crate::dht::node::{NodeId, NodeInfo};
use crate::dht::routing::Insert;

impl Actor {
    /// Sends a query and records it as outstanding; `false` if the cap on
    /// outstanding queries is reached or the send failed.
    pub(super) async fn send_query(
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
            read_only: self.config.read_only,
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

    pub(super) async fn ping(&mut self, node: NodeInfo) {
        if !self.pinging(node.addr) {
            let query = Query::Ping { id: self.own };
            self.send_query(node.addr, Some(node.id), query, Purpose::Ping)
                .await;
        }
    }

    /// An answer (response or error) to one of our queries.
    pub(super) async fn on_answer(
        &mut self,
        tid: &[u8],
        answer: Result<Response, ErrorMessage>,
        from: SocketAddr,
    ) {
        let Some(out) = self.take_outstanding(tid, from) else {
            return;
        };
        let ask = Ask {
            addr: out.addr,
            id: out.id,
        };
        match answer {
            Ok(response) => self.on_response(out.purpose, ask, response, from).await,
            Err(error) => {
                log::debug!(
                    "dht: {from}: error {} {:?}",
                    error.code.code(),
                    error.message
                );
                self.query_failed(out.purpose, ask);
            }
        }
        self.pump_all().await;
    }

    /// The outstanding query that `tid` answers, if the answer comes from the
    /// address we asked.
    fn take_outstanding(&mut self, tid: &[u8], from: SocketAddr) -> Option<Outstanding> {
        let tid = <[u8; 4]>::try_from(tid).ok()?;
        match self.outstanding.entry(u32::from_be_bytes(tid)) {
            Entry::Occupied(e) if e.get().addr == from => Some(e.remove()),
            _ => {
                log::trace!("dht: {from}: unexpected answer");
                None
            }
        }
    }

    /// A response: the node is alive (and may push out a stale one, which we
    /// ping); the nodes of our address family and the values it sent go to
    /// the lookup that asked.
    async fn on_response(
        &mut self,
        purpose: Purpose,
        ask: Ask,
        mut response: Response,
        from: SocketAddr,
    ) {
        let node = NodeInfo {
            id: response.id,
            addr: from,
        };
        if let Insert::Full { ping: Some(stale) } = self.table.heard_response(node, Instant::now())
        {
            self.ping(stale).await;
        }
        if let Some(requester) = response.requester {
            self.requester_seen(from, requester).await;
        }
        let v4 = self.local_addr.is_ipv4();
        response.nodes.retain(|n| n.addr.is_ipv4() == v4);
        match purpose {
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

    /// A query answered with an error or not at all: its lookup or announce
    /// phase counts it as failed.
    fn query_failed(&mut self, purpose: Purpose, ask: Ask) {
        match purpose {
            Purpose::Lookup(id) => {
                if let Some(active) = self.lookups.get_mut(&id) {
                    active.lookup.failed(ask);
                }
            }
            Purpose::Announce(id) => self.announce_result(id, false),
            Purpose::Ping => {}
        }
    }

    /// Queries past their deadline count as unanswered.
    pub(super) async fn expire(&mut self) {
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
            let ask = Ask {
                addr: out.addr,
                id: out.id,
            };
            self.query_failed(out.purpose, ask);
        }
        self.pump_all().await;
    }
}
