//! An iterative lookup (BEP 5 / Kademlia) as a pure state machine: the actor
//! asks it whom to query next, and feeds back answers and failures.
//!
//! The lookup keeps candidates sorted by distance to the target. It queries
//! the closest not-yet-asked candidates among the `k` closest live ones, at
//! most `alpha` at a time, and is done when the `k` closest live candidates
//! have all answered (or nothing is left to ask): no closer node is coming.
//! Each address is asked at most once.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

use crate::dht::node::{NodeId, NodeInfo};

/// Most candidates remembered (the farthest are dropped).
const MAX_CANDIDATES: usize = 128;
/// Most distinct peers collected from `values`.
const MAX_PEERS: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Status {
    Fresh,
    Asked,
    Answered,
    Failed,
}

#[derive(Clone, Debug)]
struct Candidate {
    info: NodeInfo,
    status: Status,
    token: Option<Vec<u8>>,
}

/// One node to query: its address and, unless it is a bootstrap address, its id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ask {
    /// Where to send the query.
    pub addr: SocketAddr,
    /// The id we expect to answer (`None` for bootstrap addresses).
    pub id: Option<NodeId>,
}

/// The state of one iterative lookup.
#[derive(Clone, Debug)]
pub struct Lookup {
    target: NodeId,
    own: NodeId,
    k: usize,
    /// Keyed by distance to the target (unique per id).
    candidates: BTreeMap<NodeId, Candidate>,
    /// Bootstrap addresses whose ids we do not know, asked first.
    seeds: Vec<SocketAddr>,
    asked: HashSet<SocketAddr>,
    in_flight: usize,
    peers: Vec<SocketAddr>,
    seen_peers: HashSet<SocketAddr>,
}

impl Lookup {
    /// A lookup for `target` run by node `own`, starting from known `nodes`
    /// and bare `seeds` addresses.
    pub fn new(
        target: NodeId,
        own: NodeId,
        k: usize,
        nodes: &[NodeInfo],
        seeds: &[SocketAddr],
    ) -> Self {
        let mut lookup = Self {
            target,
            own,
            k: k.max(1),
            candidates: BTreeMap::new(),
            seeds: Vec::new(),
            asked: HashSet::new(),
            in_flight: 0,
            peers: Vec::new(),
            seen_peers: HashSet::new(),
        };
        for node in nodes {
            lookup.add(*node);
        }
        for seed in seeds {
            if !lookup.seeds.contains(seed) && !nodes.iter().any(|n| n.addr == *seed) {
                lookup.seeds.push(*seed);
            }
        }
        lookup
    }

    /// The target id.
    pub fn target(&self) -> NodeId {
        self.target
    }

    fn add(&mut self, info: NodeInfo) {
        if info.id == self.own || info.addr.port() == 0 || info.addr.ip().is_unspecified() {
            return;
        }
        let key = self.target.distance(&info.id);
        if self.candidates.contains_key(&key) {
            return;
        }
        if self.candidates.len() >= MAX_CANDIDATES {
            match self.candidates.last_key_value() {
                Some((far, _)) if *far > key => {
                    let far = *far;
                    self.candidates.remove(&far);
                }
                _ => return,
            }
        }
        let status = if self.asked.contains(&info.addr) {
            Status::Failed
        } else {
            Status::Fresh
        };
        self.candidates.insert(
            key,
            Candidate {
                info,
                status,
                token: None,
            },
        );
    }

    /// The next nodes to query, at most `budget` and keeping at most `alpha`
    /// in flight; they count as asked.
    pub fn next(&mut self, alpha: usize, budget: usize) -> Vec<Ask> {
        let mut out = Vec::new();
        let mut room = alpha.saturating_sub(self.in_flight).min(budget);
        while room > 0 {
            let Some(seed) = self.seeds.pop() else {
                break;
            };
            if self.asked.insert(seed) {
                out.push(Ask {
                    addr: seed,
                    id: None,
                });
                self.in_flight += 1;
                room -= 1;
            }
        }
        let mut live = 0;
        for candidate in self.candidates.values_mut() {
            if room == 0 || live >= self.k {
                break;
            }
            match candidate.status {
                Status::Failed => continue,
                Status::Fresh => {
                    if !self.asked.insert(candidate.info.addr) {
                        // Another id at an address already asked.
                        candidate.status = Status::Failed;
                        continue;
                    }
                    candidate.status = Status::Asked;
                    out.push(Ask {
                        addr: candidate.info.addr,
                        id: Some(candidate.info.id),
                    });
                    self.in_flight += 1;
                    room -= 1;
                }
                Status::Asked | Status::Answered => {}
            }
            live += 1;
        }
        out
    }

    /// A queried node answered with its id, closer `nodes`, peers (`values`)
    /// and maybe a token.
    pub fn answered(
        &mut self,
        asked: Ask,
        id: NodeId,
        nodes: &[NodeInfo],
        values: &[SocketAddr],
        token: Option<Vec<u8>>,
    ) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(expected) = asked.id.filter(|e| *e != id) {
            // It answered under another id: the one we expected is not there.
            if let Some(c) = self.candidates.get_mut(&self.target.distance(&expected)) {
                c.status = Status::Failed;
            }
        }
        if id != self.own {
            let key = self.target.distance(&id);
            let info = NodeInfo {
                id,
                addr: asked.addr,
            };
            let candidate = self.candidates.entry(key).or_insert(Candidate {
                info,
                status: Status::Answered,
                token: None,
            });
            if candidate.info.addr == asked.addr {
                candidate.status = Status::Answered;
                candidate.token = token;
            }
        }
        for node in nodes {
            self.add(*node);
        }
        for peer in values {
            if self.peers.len() >= MAX_PEERS {
                break;
            }
            if peer.port() != 0 && self.seen_peers.insert(*peer) {
                self.peers.push(*peer);
            }
        }
    }

    /// A queried node did not answer (timeout or error).
    pub fn failed(&mut self, asked: Ask) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(id) = asked.id {
            if let Some(c) = self.candidates.get_mut(&self.target.distance(&id)) {
                c.status = Status::Failed;
            }
        }
    }

    /// Whether the lookup has converged: the `k` closest live candidates
    /// have all answered, or nothing is in flight and nothing is left to ask.
    pub fn is_done(&self) -> bool {
        if !self.seeds.is_empty() {
            return false;
        }
        let top: Vec<&Candidate> = self
            .candidates
            .values()
            .filter(|c| c.status != Status::Failed)
            .take(self.k)
            .collect();
        let all_answered = top.iter().all(|c| c.status == Status::Answered);
        all_answered && (top.len() == self.k || self.in_flight == 0)
    }

    /// Peers collected so far, in the order found.
    pub fn peers(&self) -> &[SocketAddr] {
        &self.peers
    }

    /// Up to `k` closest nodes that answered, with their tokens.
    pub fn closest_answered(&self) -> Vec<(NodeInfo, Option<Vec<u8>>)> {
        self.candidates
            .values()
            .filter(|c| c.status == Status::Answered)
            .take(self.k)
            .map(|c| (c.info, c.token.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(first: u8, port: u16) -> NodeInfo {
        let mut id = [0u8; 20];
        id[0] = first;
        NodeInfo {
            id: NodeId(id),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    #[test]
    fn converges_on_closer_nodes() {
        let target = NodeId([0; 20]);
        let own = node(0xff, 1).id;
        let start = [node(0x80, 2), node(0x40, 3)];
        let mut lookup = Lookup::new(target, own, 2, &start, &[]);
        let asks = lookup.next(3, 100);
        assert_eq!(asks.len(), 2);
        assert!(lookup.next(3, 100).is_empty(), "everything asked");
        assert!(!lookup.is_done());
        // The 0x40 node knows closer ones.
        let closer = [node(0x10, 4), node(0x08, 5)];
        lookup.answered(
            asks[0],
            asks[0].id.unwrap(),
            &closer,
            &[],
            Some(b"t".to_vec()),
        );
        lookup.answered(asks[1], asks[1].id.unwrap(), &[], &[], None);
        assert!(!lookup.is_done());
        let asks = lookup.next(3, 100);
        assert_eq!(
            asks.iter().map(|a| a.addr.port()).collect::<Vec<_>>(),
            vec![5, 4]
        );
        lookup.answered(
            asks[0],
            asks[0].id.unwrap(),
            &[],
            &["10.0.0.1:80".parse().unwrap()],
            None,
        );
        assert!(
            !lookup.is_done(),
            "0x10 still in flight and among the 2 closest"
        );
        lookup.failed(asks[1]);
        // 0x10 failed: the two closest live are 0x08 (answered) and 0x40 (answered).
        assert!(lookup.is_done());
        assert_eq!(
            lookup.peers(),
            &["10.0.0.1:80".parse::<SocketAddr>().unwrap()]
        );
        let closest = lookup.closest_answered();
        assert_eq!(closest.len(), 2);
        assert_eq!(closest[0].0.addr.port(), 5);
        assert_eq!(closest[1].1, Some(b"t".to_vec()));
    }

    #[test]
    fn seeds_are_asked_first_and_learn_their_ids() {
        let target = NodeId([0; 20]);
        let seed: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let mut lookup = Lookup::new(target, NodeId([0xff; 20]), 8, &[], &[seed]);
        assert!(!lookup.is_done());
        let asks = lookup.next(3, 100);
        assert_eq!(
            asks,
            vec![Ask {
                addr: seed,
                id: None
            }]
        );
        lookup.answered(asks[0], node(0x01, 9).id, &[], &[], None);
        assert!(lookup.is_done());
        assert_eq!(lookup.closest_answered()[0].0, node(0x01, 9));
    }

    #[test]
    fn respects_alpha_budget_and_asks_each_address_once() {
        let target = NodeId([0; 20]);
        let nodes: Vec<NodeInfo> = (1..=10).map(|i| node(i, 100 + u16::from(i))).collect();
        let mut lookup = Lookup::new(target, NodeId([0xff; 20]), 8, &nodes, &[]);
        assert_eq!(lookup.next(3, 2).len(), 2);
        assert_eq!(lookup.next(3, 100).len(), 1);
        assert!(lookup.next(3, 100).is_empty());
        // A different id at an address already asked is never asked.
        let mut lookup = Lookup::new(
            target,
            NodeId([0xff; 20]),
            8,
            &[node(1, 5), node(2, 5)],
            &[],
        );
        assert_eq!(lookup.next(3, 100).len(), 1);
        let asks = lookup.next(3, 100);
        assert!(asks.is_empty());
    }

    #[test]
    fn nothing_to_ask_is_done() {
        let mut lookup = Lookup::new(NodeId([0; 20]), NodeId([1; 20]), 8, &[], &[]);
        assert!(lookup.next(3, 10).is_empty());
        assert!(lookup.is_done());
    }
}
