//! Answering the queries other nodes send us.

use std::net::SocketAddr;
use std::time::Instant;

use crate::dht::actor::{Actor, MAX_VALUES_SENT};
use crate::dht::krpc::{Body, ErrorCode, ErrorMessage, Message, Query, Response, Want};
use crate::dht::node::{NodeId, NodeInfo};
use crate::dht::routing::K;
use crate::types::InfoHash;

impl Actor {
    /// Answers `query`; a `read_only` querier (BEP 43) is answered but kept
    /// out of the routing table (not refreshed, not pinged to be added).
    pub(super) async fn on_query(
        &mut self,
        tid: Vec<u8>,
        query: Query,
        read_only: bool,
        from: SocketAddr,
    ) {
        let now = Instant::now();
        if !self.limiter.allow(from.ip(), now) {
            self.rate_limited += 1;
            log::trace!("dht: {from}: rate limited {}", query.method());
            return;
        }
        log::trace!("dht: {from}: <- {}", query.method());
        let sender = query.id();
        if !read_only {
            self.table.heard_query(&sender, now);
        }
        let body = match query {
            Query::Ping { .. } => Body::Response(self.response(from)),
            Query::FindNode { target, want, .. } => Body::Response(Response {
                nodes: self.closest_for(&target, want, now),
                ..self.response(from)
            }),
            Query::GetPeers {
                info_hash, want, ..
            } => {
                let values =
                    self.store
                        .peers(&info_hash, MAX_VALUES_SENT, self.config.peer_ttl, now);
                Body::Response(Response {
                    nodes: self.closest_for(&info_hash.into(), want, now),
                    values,
                    token: Some(self.tokens.token_for(from.ip()).to_vec()),
                    ..self.response(from)
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
                self.on_announce_peer(info_hash, port, &token, from, now)
            }
        };
        let answer = Message {
            tid,
            body,
            read_only: false,
        };
        self.send(&answer, from).await;
        // A node that queries us is worth knowing (unless read-only): verify
        // it answers first.
        if !read_only && self.table.would_accept(&sender, now) {
            self.ping(NodeInfo {
                id: sender,
                addr: from,
            })
            .await;
        }
    }

    /// Stores the peer of a valid `announce_peer` (a token we gave `from`,
    /// a non-zero port); the answer to send.
    fn on_announce_peer(
        &mut self,
        info_hash: InfoHash,
        port: u16,
        token: &[u8],
        from: SocketAddr,
        now: Instant,
    ) -> Body {
        if !self.tokens.verify(from.ip(), token) {
            log::debug!("dht: {from}: announce_peer with a bad token");
            return protocol_error("bad token");
        }
        if port == 0 {
            return protocol_error("invalid port");
        }
        let peer = SocketAddr::new(from.ip(), port);
        if self.store.announce(info_hash, peer, now) {
            log::debug!("dht: [{}] {peer} announced", info_hash.short());
        }
        Body::Response(self.response(from))
    }

    /// A response carrying our id and, as BEP 42 asks, the requester's
    /// address as we see it.
    fn response(&self, from: SocketAddr) -> Response {
        Response {
            id: self.own,
            requester: Some(from),
            ..Response::default()
        }
    }

    /// The `K` closest nodes of each address family the query's `want`
    /// (BEP 32) asks for; without `want`, of ours (the one it came over).
    /// The other family's come from that node's table as last published.
    fn closest_for(&self, target: &NodeId, want: Want, now: Instant) -> Vec<NodeInfo> {
        let v6 = self.local_addr.is_ipv6();
        let mut nodes = Vec::new();
        if want.allows(v6, v6) {
            nodes = self.table.closest(target, 2 * K, now);
            nodes.retain(|n| n.addr.is_ipv6() == v6);
            nodes.truncate(K);
        }
        if let Some(other) = self.tables.1.as_ref().filter(|_| want.allows(!v6, v6)) {
            let mut theirs: Vec<NodeInfo> = other
                .borrow()
                .iter()
                .filter(|n| n.addr.is_ipv6() != v6)
                .copied()
                .collect();
            theirs.sort_by_key(|n| target.distance(&n.id));
            theirs.truncate(K);
            nodes.extend(theirs);
        }
        nodes
    }
}

fn protocol_error(message: &str) -> Body {
    Body::Error(ErrorMessage {
        code: ErrorCode::Protocol,
        message: message.to_string(),
    })
}
