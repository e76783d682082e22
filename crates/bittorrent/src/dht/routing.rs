//! The routing table (BEP 5): k-buckets over the id space, split only where
//! our own id lies, with good/questionable/bad node states. Pure: the caller
//! passes the time.
//!
//! Invariants: bucket `i < last` holds the nodes whose distance to our id has
//! exactly `i` leading zero bits; the last bucket holds every node with at least
//! `last` leading zero bits (it is the one containing our own id, the only one
//! that splits). No bucket holds more than [`K`] nodes; an id appears at most
//! once; our own id never appears.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::dht::node::{NodeId, NodeInfo, ID_LEN};

/// Bucket size and lookup width (BEP 5's k).
pub const K: usize = 8;
/// A node that has not been heard from for this long is questionable.
pub const GOOD_FOR: Duration = Duration::from_secs(15 * 60);
/// Consecutive unanswered queries after which a node is bad.
pub const MAX_FAILURES: u8 = 2;
/// Replacement candidates remembered per full bucket.
const REPLACEMENTS: usize = K;

/// BEP 5 node states.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Answered one of our queries in the last 15 minutes, or answered once and
    /// queried us in the last 15 minutes.
    Good,
    /// Not heard from recently (or never answered yet).
    Questionable,
    /// Failed to answer [`MAX_FAILURES`] queries in a row.
    Bad,
}

/// One node in a bucket.
#[derive(Clone, Debug)]
struct Entry {
    info: NodeInfo,
    last_response: Option<Instant>,
    last_query: Option<Instant>,
    failures: u8,
}

impl Entry {
    fn state(&self, now: Instant) -> NodeState {
        if self.failures >= MAX_FAILURES {
            return NodeState::Bad;
        }
        let recent =
            |t: Option<Instant>| t.is_some_and(|t| now.saturating_duration_since(t) < GOOD_FOR);
        if recent(self.last_response) || (self.last_response.is_some() && recent(self.last_query)) {
            NodeState::Good
        } else {
            NodeState::Questionable
        }
    }

    fn last_seen(&self) -> Option<Instant> {
        self.last_response.max(self.last_query)
    }

    /// A known node was heard from again (`response`: it answered us), maybe
    /// at another address: that moves it only once it has gone bad, and only
    /// when it answers (a node id cannot be moved by whoever claims it).
    fn refresh(&mut self, addr: SocketAddr, response: Option<Instant>, now: Instant) -> Insert {
        if self.info.addr != addr {
            if self.state(now) != NodeState::Bad || response.is_none() {
                return Insert::Rejected;
            }
            self.info.addr = addr;
        }
        if response.is_some() {
            self.last_response = response;
            self.failures = 0;
        }
        Insert::Updated
    }
}

#[derive(Clone, Debug)]
struct Bucket {
    nodes: Vec<Entry>,
    replacements: Vec<Entry>,
    last_changed: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Self {
        Self {
            nodes: Vec::with_capacity(K),
            replacements: Vec::new(),
            last_changed: now,
        }
    }

    /// Puts `entry` in a free slot or in place of a bad node; `false` when
    /// every slot holds a good or questionable node.
    fn take(&mut self, entry: &Entry, now: Instant) -> bool {
        let slot = if self.nodes.len() < K {
            self.nodes.push(entry.clone());
            true
        } else if let Some(bad) = self
            .nodes
            .iter()
            .position(|e| e.state(now) == NodeState::Bad)
        {
            self.nodes[bad] = entry.clone();
            true
        } else {
            false
        };
        if slot {
            self.last_changed = now;
        }
        slot
    }

    /// A full bucket that cannot split: a node that answered us waits among
    /// the replacements (the oldest one leaves), and the least recently seen
    /// questionable node is worth a ping.
    fn full(&mut self, entry: Entry, now: Instant) -> Insert {
        let ping = self
            .nodes
            .iter()
            .filter(|e| e.state(now) == NodeState::Questionable)
            .min_by_key(|e| e.last_seen())
            .map(|e| e.info);
        if entry.last_response.is_some() {
            self.replacements.retain(|r| r.info.id != entry.info.id);
            if self.replacements.len() >= REPLACEMENTS {
                self.replacements.remove(0);
            }
            self.replacements.push(entry);
        }
        Insert::Full { ping }
    }
}

/// What [`RoutingTable::insert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Insert {
    /// A new node took a free slot (or a bad node's).
    Added,
    /// The node was already there; its times were updated.
    Updated,
    /// The bucket is full of good or questionable nodes. The node is kept as a
    /// replacement; `ping` is a questionable node worth pinging (if it fails,
    /// a replacement takes its place).
    Full {
        /// The least recently seen questionable node of the bucket, if any.
        ping: Option<NodeInfo>,
    },
    /// Our own id, or a known id at a different address.
    Rejected,
}

/// The routing table of one DHT node.
#[derive(Clone, Debug)]
pub struct RoutingTable {
    own: NodeId,
    buckets: Vec<Bucket>,
}

impl RoutingTable {
    /// An empty table around our id.
    pub fn new(own: NodeId, now: Instant) -> Self {
        Self {
            own,
            buckets: vec![Bucket::new(now)],
        }
    }

    /// Number of nodes (all states).
    pub fn len(&self) -> usize {
        self.buckets.iter().map(|b| b.nodes.len()).sum()
    }

    /// Whether the table has no node.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Number of buckets.
    #[cfg(test)]
    fn bucket_count(&self) -> usize {
        self.buckets.len()
    }

    /// Every node that is not bad (for persistence).
    pub fn nodes(&self, now: Instant) -> Vec<NodeInfo> {
        self.buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.state(now) != NodeState::Bad)
            .map(|e| e.info)
            .collect()
    }

    /// The state of a node, if it is in the table.
    #[cfg(test)]
    fn state(&self, id: &NodeId, now: Instant) -> Option<NodeState> {
        self.find(id)
            .map(|(b, i)| self.buckets[b].nodes[i].state(now))
    }

    fn bucket_index(&self, id: &NodeId) -> usize {
        self.own
            .distance(id)
            .leading_zeros()
            .min(self.buckets.len() - 1)
    }

    fn find(&self, id: &NodeId) -> Option<(usize, usize)> {
        let b = self.bucket_index(id);
        let i = self.buckets[b]
            .nodes
            .iter()
            .position(|e| e.info.id == *id)?;
        Some((b, i))
    }

    /// A node answered one of our queries: add it or mark it good.
    pub fn heard_response(&mut self, info: NodeInfo, now: Instant) -> Insert {
        self.insert(info, Some(now), now)
    }

    /// Adds a node we have not talked to yet (loaded from the state file);
    /// it is questionable until it answers.
    pub fn add_unverified(&mut self, info: NodeInfo, now: Instant) -> Insert {
        self.insert(info, None, now)
    }

    /// A node queried us: refresh it if we know it (BEP 5: good again if it
    /// has ever answered us).
    pub fn heard_query(&mut self, id: &NodeId, now: Instant) {
        if let Some((b, i)) = self.find(id) {
            self.buckets[b].nodes[i].last_query = Some(now);
        }
    }

    /// Whether [`RoutingTable::heard_response`] would add this unknown node
    /// right away (a free slot, a bad node to replace, or a splittable bucket).
    pub fn would_accept(&self, id: &NodeId, now: Instant) -> bool {
        if *id == self.own || self.find(id).is_some() {
            return false;
        }
        let b = self.bucket_index(id);
        let bucket = &self.buckets[b];
        bucket.nodes.len() < K
            || bucket.nodes.iter().any(|e| e.state(now) == NodeState::Bad)
            || (b == self.buckets.len() - 1 && self.buckets.len() < ID_LEN * 8)
    }

    /// Adds or refreshes a node; `response` is when it answered us, `None`
    /// for a node we have not talked to yet.
    fn insert(&mut self, info: NodeInfo, response: Option<Instant>, now: Instant) -> Insert {
        if info.id == self.own {
            return Insert::Rejected;
        }
        if let Some((b, i)) = self.find(&info.id) {
            return self.buckets[b].nodes[i].refresh(info.addr, response, now);
        }
        let entry = Entry {
            info,
            last_response: response,
            last_query: None,
            failures: 0,
        };
        self.insert_new(entry, now)
    }

    /// Puts an unknown node in its bucket, splitting as needed.
    fn insert_new(&mut self, entry: Entry, now: Instant) -> Insert {
        let info = entry.info;
        loop {
            let b = self.bucket_index(&info.id);
            let can_split = b == self.buckets.len() - 1 && self.buckets.len() < ID_LEN * 8;
            let bucket = &mut self.buckets[b];
            if bucket.take(&entry, now) {
                return Insert::Added;
            }
            if can_split {
                self.split(now);
                continue;
            }
            return bucket.full(entry, now);
        }
    }

    /// Splits the last bucket: nodes sharing one more bit with our id move to
    /// a new last bucket.
    fn split(&mut self, now: Instant) {
        let new_index = self.buckets.len();
        let own = self.own;
        let moves = |e: &Entry| own.distance(&e.info.id).leading_zeros() >= new_index;
        let mut new = Bucket::new(now);
        let Some(old) = self.buckets.last_mut() else {
            return;
        };
        let (stay, go): (Vec<Entry>, Vec<Entry>) = old.nodes.drain(..).partition(|e| !moves(e));
        old.nodes = stay;
        new.nodes = go;
        let (stay, go): (Vec<Entry>, Vec<Entry>) =
            old.replacements.drain(..).partition(|e| !moves(e));
        old.replacements = stay;
        new.replacements = go;
        self.buckets.push(new);
    }

    /// The same nodes in a table around another own id (BEP 42 gave us a
    /// new one): each keeps its times and failures, replacements included;
    /// those that no longer fit are left out, and our new id never appears.
    pub fn rebuilt(&self, own: NodeId, now: Instant) -> RoutingTable {
        let mut table = RoutingTable::new(own, now);
        let entries = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter().chain(b.replacements.iter()));
        for entry in entries {
            if entry.info.id != own && table.find(&entry.info.id).is_none() {
                table.insert_new(entry.clone(), now);
            }
        }
        table
    }

    /// A query to this node went unanswered. Once it is bad, the newest
    /// replacement of its bucket (if any) takes its place. Returns whether
    /// the node is now bad.
    pub fn failed(&mut self, id: &NodeId, now: Instant) -> bool {
        let Some((b, i)) = self.find(id) else {
            return false;
        };
        let bucket = &mut self.buckets[b];
        let entry = &mut bucket.nodes[i];
        entry.failures = entry.failures.saturating_add(1);
        if entry.state(now) != NodeState::Bad {
            return false;
        }
        if let Some(replacement) = bucket.replacements.pop() {
            bucket.nodes[i] = replacement;
            bucket.last_changed = now;
        }
        true
    }

    /// Up to `n` nodes that are not bad, closest to `target` first.
    pub fn closest(&self, target: &NodeId, n: usize, now: Instant) -> Vec<NodeInfo> {
        let mut all: Vec<&Entry> = self
            .buckets
            .iter()
            .flat_map(|b| b.nodes.iter())
            .filter(|e| e.state(now) != NodeState::Bad)
            .collect();
        all.sort_by_key(|e| target.distance(&e.info.id));
        all.into_iter().take(n).map(|e| e.info).collect()
    }

    /// A random target inside one bucket that has not changed for `age`,
    /// marking that bucket as refreshed; `None` if every bucket is fresh.
    pub fn refresh_target(&mut self, age: Duration, now: Instant) -> Option<NodeId> {
        let last = self.buckets.len() - 1;
        let (index, bucket) = self
            .buckets
            .iter_mut()
            .enumerate()
            .find(|(_, b)| now.saturating_duration_since(b.last_changed) >= age)?;
        bucket.last_changed = now;
        // The last bucket covers every prefix length from `last` on; any id in
        // it will do, so aim next to our own id.
        let prefix = if index == last { ID_LEN * 8 - 1 } else { index };
        Some(self.own.random_with_prefix(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;

    fn info(id: NodeId, port: u16) -> NodeInfo {
        NodeInfo {
            id,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn own_id_is_rejected_and_nodes_are_added_once() {
        let now = Instant::now();
        let own = NodeId::random();
        let mut t = RoutingTable::new(own, now);
        assert_eq!(t.heard_response(info(own, 1), now), Insert::Rejected);
        let other = NodeId::random();
        assert_eq!(t.heard_response(info(other, 1), now), Insert::Added);
        assert_eq!(t.heard_response(info(other, 1), now), Insert::Updated);
        assert_eq!(t.heard_response(info(other, 2), now), Insert::Rejected);
        assert_eq!(t.len(), 1);
        assert_eq!(t.state(&other, now), Some(NodeState::Good));
    }

    #[test]
    fn buckets_split_around_own_id() {
        let now = Instant::now();
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, now);
        // 16 far nodes (first bit set): the first bucket splits once, then
        // the far bucket (prefix 0) is full and takes no more.
        let mut port = 1;
        let mut far = Vec::new();
        for _ in 0..16 {
            let id = own.random_with_prefix(0);
            far.push(t.heard_response(info(id, port), now));
            port += 1;
        }
        assert_eq!(t.bucket_count(), 2);
        assert_eq!(far.iter().filter(|i| **i == Insert::Added).count(), K);
        assert!(matches!(far[K], Insert::Full { ping: None }));
        // Near nodes still fit: the bucket holding our id keeps splitting.
        for prefix in 1..40 {
            let id = own.random_with_prefix(prefix);
            assert_eq!(t.heard_response(info(id, port), now), Insert::Added);
            port += 1;
        }
        assert_eq!(t.len(), K + 39);
        // Invariant: no bucket over K, every node in its bucket.
        for (i, b) in t.buckets.iter().enumerate() {
            assert!(b.nodes.len() <= K);
            for e in &b.nodes {
                assert_eq!(t.bucket_index(&e.info.id), i);
            }
        }
    }

    #[test]
    fn states_follow_bep5() {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId::random(), now);
        let a = NodeId::random();
        t.heard_response(info(a, 1), now);
        let later = now + GOOD_FOR + Duration::from_secs(1);
        assert_eq!(t.state(&a, later), Some(NodeState::Questionable));
        t.heard_query(&a, later);
        assert_eq!(t.state(&a, later), Some(NodeState::Good));
        assert!(!t.failed(&a, later));
        assert!(t.failed(&a, later));
        assert_eq!(t.state(&a, later), Some(NodeState::Bad));
        assert!(t.closest(&a, 8, later).is_empty());
        // An unverified node is questionable until it answers.
        let b = NodeId::random();
        t.add_unverified(info(b, 2), now);
        assert_eq!(t.state(&b, now), Some(NodeState::Questionable));
        t.heard_response(info(b, 2), now);
        assert_eq!(t.state(&b, now), Some(NodeState::Good));
    }

    #[test]
    fn bad_nodes_are_replaced() {
        let now = Instant::now();
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, now);
        // Fill the far bucket after the first split.
        let mut ids = Vec::new();
        for port in 0..K as u16 * 2 {
            let id = own.random_with_prefix(0);
            t.heard_response(info(id, port + 1), now);
            ids.push(id);
        }
        let in_table: Vec<NodeId> = ids
            .iter()
            .copied()
            .filter(|id| t.state(id, now).is_some())
            .collect();
        assert_eq!(in_table.len(), K);
        let later = now + GOOD_FOR + Duration::from_secs(1);
        let newcomer = own.random_with_prefix(0);
        // Full of questionable nodes: the newcomer waits, a ping is suggested.
        let Insert::Full { ping: Some(victim) } = t.heard_response(info(newcomer, 999), later)
        else {
            panic!("expected a ping suggestion");
        };
        assert!(t.state(&newcomer, later).is_none());
        t.failed(&victim.id, later);
        assert!(t.failed(&victim.id, later));
        // The newest replacement took the bad node's slot.
        assert_eq!(t.state(&newcomer, later), Some(NodeState::Good));
        assert!(t.state(&victim.id, later).is_none());
    }

    #[test]
    fn rebuilt_around_a_new_id_keeps_the_nodes_and_their_states() {
        let now = Instant::now();
        let own = NodeId([0; 20]);
        let mut t = RoutingTable::new(own, now);
        let mut ids = Vec::new();
        // Fewer than K nodes: every one fits in either table.
        for port in 1..K as u16 {
            let id = NodeId::random();
            t.heard_response(info(id, port), now);
            ids.push(id);
        }
        let unverified = NodeId::random();
        t.add_unverified(info(unverified, 99), now);
        let new_own = ids[0];
        let r = t.rebuilt(new_own, now);
        assert!(r.state(&new_own, now).is_none(), "our new id is not a node");
        for id in t
            .nodes(now)
            .iter()
            .map(|n| n.id)
            .filter(|id| *id != new_own)
        {
            assert_eq!(r.state(&id, now), t.state(&id, now), "{id:?}");
        }
        assert_eq!(r.len(), t.len() - 1);
        assert_eq!(r.state(&unverified, now), Some(NodeState::Questionable));
    }

    #[test]
    fn closest_is_sorted_by_distance() {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId::random(), now);
        for port in 0..100 {
            t.heard_response(info(NodeId::random(), port), now);
        }
        let target = NodeId::random();
        let closest = t.closest(&target, K, now);
        assert_eq!(closest.len(), K);
        for w in closest.windows(2) {
            assert!(target.distance(&w[0].id) < target.distance(&w[1].id));
        }
        let best = t
            .nodes(now)
            .into_iter()
            .min_by_key(|n| target.distance(&n.id))
            .unwrap();
        assert_eq!(closest[0], best);
    }

    #[test]
    fn refresh_targets_stale_buckets_once() {
        let now = Instant::now();
        let mut t = RoutingTable::new(NodeId::random(), now);
        assert!(t.refresh_target(Duration::from_secs(60), now).is_none());
        let later = now + Duration::from_secs(61);
        assert!(t.refresh_target(Duration::from_secs(60), later).is_some());
        assert!(t.refresh_target(Duration::from_secs(60), later).is_none());
    }
}
