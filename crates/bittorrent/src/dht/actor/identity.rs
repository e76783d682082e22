//! Our node id and external IP (BEP 42): responders tell us how they see
//! us; once enough agree on an external IP that our id does not match, we
//! take an id derived from it and rebuild the routing table around it.

use std::net::SocketAddr;
use std::time::Instant;

use crate::dht::actor::{Actor, Goal, Kind};
use crate::dht::node::NodeId;
use crate::dht::security::{id_matches_ip, secure_id};

impl Actor {
    /// A responder (at `voter`) saw us as `requester` (the `ip` of its
    /// response).
    pub(super) async fn requester_seen(&mut self, voter: SocketAddr, requester: SocketAddr) {
        self.votes.vote(voter.ip(), requester.ip());
        let leader = self.votes.leader(self.local_addr.is_ipv6());
        if leader.is_none() || leader == self.external_ip {
            return;
        }
        self.external_ip = leader;
        let Some(ip) = leader else {
            return;
        };
        log::info!("dht: responders see our external IP as {ip}");
        if self.config.node_id.is_some() || id_matches_ip(&self.own, ip) {
            return;
        }
        self.change_id(secure_id(ip, rand::random())).await;
    }

    /// Takes a new node id: the routing table is rebuilt around it, and a
    /// lookup of it fills the new near buckets.
    async fn change_id(&mut self, id: NodeId) {
        log::info!(
            "dht: node {} takes the id {} (BEP 42, from our external IP)",
            self.own.short(),
            id.short()
        );
        let now = Instant::now();
        self.own = id;
        self.table = self.table.rebuilt(id, now);
        self.start_lookup(id, Kind::FindNode, Goal::Refresh).await;
    }
}
