//! The Fast extension (BEP 6) on one connection, pure: whether both sides
//! set the bit, our allowed-fast set for the peer, the requests we sent it
//! (so a reject can be checked against them), what it allowed us, and
//! counters of what was exchanged.
//!
//! When the extension is in force every request gets exactly one answer, a
//! block or a reject, even a cancelled one; a choke no longer voids
//! requests. A reject for a request we never sent is a protocol error.

use std::collections::{HashSet, VecDeque};
use std::fmt;
use std::net::IpAddr;

use sha1::{Digest, Sha1};

use crate::peer::PeerError;
use crate::types::{BlockInfo, InfoHash};

/// Size of the allowed-fast set we give a peer (BEP 6's *k*).
pub(crate) const ALLOWED_FAST_K: usize = 10;
/// Allowed-fast pieces we take from one peer; more are ignored (libtorrent
/// offers 5, BEP 6 suggests 10).
pub(crate) const MAX_ALLOWED_IN: usize = 64;
/// Cancelled requests remembered for a reject that may still come; the
/// oldest is forgotten beyond this (a peer that answers a cancel with
/// nothing would otherwise grow the set for ever).
const MAX_CANCELLED: usize = 512;

/// The allowed-fast set of BEP 6 for a peer at `ip` (its IPv4 address, the
/// last octet masked off), `pieces` pieces and `k` wanted: the canonical
/// SHA-1 chain over the address and the info-hash. BEP 6 has no provision
/// for IPv6: an IPv6 peer gets no set (empty), except an IPv4-mapped
/// address, which counts as its IPv4 address. `k` is capped at `pieces`.
pub(crate) fn allowed_fast_set(
    info_hash: &InfoHash,
    ip: IpAddr,
    pieces: u32,
    k: usize,
) -> Vec<u32> {
    let v4 = match ip {
        IpAddr::V4(v4) => v4,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4,
            None => return Vec::new(),
        },
    };
    let k = k.min(pieces as usize);
    let mut set = Vec::with_capacity(k);
    let mut x = Vec::with_capacity(24);
    x.extend_from_slice(&(u32::from(v4) & 0xffff_ff00).to_be_bytes());
    x.extend_from_slice(&info_hash.0);
    while set.len() < k {
        let hash: [u8; 20] = Sha1::digest(&x).into();
        for word in hash.chunks_exact(4) {
            if set.len() == k {
                break;
            }
            let y = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            let index = y % pieces;
            if !set.contains(&index) {
                set.push(index);
            }
        }
        x.clear();
        x.extend_from_slice(&hash);
    }
    set
}

/// What one connection exchanged under the Fast extension.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FastCounters {
    pub have_all_sent: u32,
    pub have_none_sent: u32,
    pub have_all_received: u32,
    pub have_none_received: u32,
    pub rejects_sent: u32,
    pub rejects_received: u32,
    pub allowed_fast_sent: u32,
    pub allowed_fast_received: u32,
    pub suggests_received: u32,
    /// Requests served while we choked the peer (allowed-fast pieces).
    pub served_choked: u32,
}

impl fmt::Display for FastCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "have_all sent={} received={}, have_none sent={} received={}, \
             reject sent={} received={}, allowed_fast sent={} received={}, \
             suggest received={}, served while choked={}",
            self.have_all_sent,
            self.have_all_received,
            self.have_none_sent,
            self.have_none_received,
            self.rejects_sent,
            self.rejects_received,
            self.allowed_fast_sent,
            self.allowed_fast_received,
            self.suggests_received,
            self.served_choked,
        )
    }
}

/// The Fast extension's state on one connection.
#[derive(Debug, Default)]
pub(crate) struct Fast {
    /// Both handshakes set the bit.
    enabled: bool,
    /// Our allowed-fast set for the peer, and whether each was sent.
    ours: Vec<(u32, bool)>,
    /// Bytes we may still serve the peer while we choke it.
    choked_budget: u64,
    /// Requests we sent and the peer has not answered (block or reject).
    requested: HashSet<BlockInfo>,
    /// Of those, the ones we cancelled, oldest first.
    cancelled: VecDeque<BlockInfo>,
    /// Pieces the peer allowed us to fetch while it chokes us.
    allowed_in: HashSet<u32>,
    /// What was exchanged.
    pub counters: FastCounters,
}

impl Fast {
    /// The state after the handshakes: in force when both set the bit. Our
    /// allowed-fast set for a peer at `ip` is computed then; while we choke
    /// the peer we serve at most two copies of it.
    pub(crate) fn negotiate(
        ours: bool,
        theirs: bool,
        info_hash: &InfoHash,
        ip: IpAddr,
        pieces: u32,
        piece_length: u32,
    ) -> Self {
        let enabled = ours && theirs;
        let set = if enabled {
            allowed_fast_set(info_hash, ip, pieces, ALLOWED_FAST_K)
        } else {
            Vec::new()
        };
        let choked_budget = 2 * set.len() as u64 * u64::from(piece_length);
        Self {
            enabled,
            ours: set.into_iter().map(|p| (p, false)).collect(),
            choked_budget,
            ..Self::default()
        }
    }

    /// Whether the extension is in force.
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// Whether `piece` is in our allowed-fast set for the peer.
    pub(crate) fn is_allowed(&self, piece: u32) -> bool {
        self.ours.iter().any(|&(p, _)| p == piece)
    }

    /// Pieces of our allowed-fast set that `have` says we have and the peer
    /// was not told of yet; marks them told.
    pub(crate) fn allowed_to_send(&mut self, have: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut out = Vec::new();
        for (piece, sent) in &mut self.ours {
            if !*sent && have(*piece) {
                *sent = true;
                out.push(*piece);
            }
        }
        self.counters.allowed_fast_sent += out.len() as u32;
        out
    }

    /// Whether a peer that has `peer_pieces` pieces may get `piece` while
    /// we choke it: an allowed-fast piece, to a starting peer (at most the
    /// set's size of pieces, as BEP 6's reference implementation does).
    pub(crate) fn may_serve_choked(&self, piece: u32, peer_pieces: usize) -> bool {
        peer_pieces <= self.ours.len() && self.is_allowed(piece)
    }

    /// Whether to serve `block` while we choke the peer: as
    /// [`may_serve_choked`](Self::may_serve_choked), within the budget
    /// (charged here).
    pub(crate) fn serve_choked(&mut self, block: BlockInfo, peer_pieces: usize) -> bool {
        let len = u64::from(block.length);
        if !self.may_serve_choked(block.piece, peer_pieces) || self.choked_budget < len {
            return false;
        }
        self.choked_budget -= len;
        self.counters.served_choked += 1;
        true
    }

    /// We sent these requests.
    pub(crate) fn sent_requests(&mut self, blocks: &[BlockInfo]) {
        if self.enabled {
            self.requested.extend(blocks.iter().copied());
        }
    }

    /// We cancelled a request: the peer still answers it (block or reject).
    pub(crate) fn sent_cancel(&mut self, block: BlockInfo) {
        if !self.enabled || !self.requested.contains(&block) {
            return;
        }
        self.cancelled.push_back(block);
        if self.cancelled.len() > MAX_CANCELLED {
            if let Some(old) = self.cancelled.pop_front() {
                self.requested.remove(&old);
            }
        }
    }

    /// A block arrived: its request is answered.
    pub(crate) fn block_arrived(&mut self, block: BlockInfo) {
        if self.enabled {
            self.requested.remove(&block);
        }
    }

    /// The peer rejected `block`.
    ///
    /// # Errors
    /// [`PeerError::FastProtocol`] when we have no request for it
    /// outstanding (never sent, or already answered).
    pub(crate) fn rejected(&mut self, block: BlockInfo) -> Result<(), PeerError> {
        if !self.requested.remove(&block) {
            return Err(PeerError::FastProtocol("reject for a request never sent"));
        }
        self.counters.rejects_received += 1;
        Ok(())
    }

    /// The peer allowed us `piece` (index validated). Whether it is news
    /// for the torrent (new, and within [`MAX_ALLOWED_IN`]).
    pub(crate) fn allowed_in(&mut self, piece: u32) -> bool {
        self.counters.allowed_fast_received += 1;
        self.allowed_in.len() < MAX_ALLOWED_IN && self.allowed_in.insert(piece)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    const AA: InfoHash = InfoHash([0xaa; 20]);

    fn ip(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(a, b, c, d))
    }

    #[test]
    fn bep6_vectors() {
        // BEP 6's examples: 1313 pieces, info-hash aa..aa, node 80.4.4.200.
        let seven = allowed_fast_set(&AA, ip(80, 4, 4, 200), 1313, 7);
        assert_eq!(seven, [1059, 431, 808, 1217, 287, 376, 1188]);
        let nine = allowed_fast_set(&AA, ip(80, 4, 4, 200), 1313, 9);
        assert_eq!(nine, [1059, 431, 808, 1217, 287, 376, 1188, 353, 508]);
        // The last octet does not count; the third does.
        assert_eq!(allowed_fast_set(&AA, ip(80, 4, 4, 1), 1313, 9), nine);
        assert_ne!(allowed_fast_set(&AA, ip(80, 4, 5, 200), 1313, 9), nine);
    }

    #[test]
    fn small_torrents_ipv6_and_mapped_addresses() {
        // k is capped by the piece count (no endless search for distinct
        // indices), and every index is in range.
        let mut all = allowed_fast_set(&AA, ip(10, 0, 0, 1), 3, 10);
        all.sort_unstable();
        assert_eq!(all, [0, 1, 2]);
        assert!(allowed_fast_set(&AA, ip(10, 0, 0, 1), 0, 10).is_empty());
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert!(allowed_fast_set(&AA, v6, 1313, 10).is_empty());
        let mapped = IpAddr::V6(Ipv4Addr::new(80, 4, 4, 200).to_ipv6_mapped());
        assert_eq!(
            allowed_fast_set(&AA, mapped, 1313, 7),
            [1059, 431, 808, 1217, 287, 376, 1188]
        );
    }

    fn block(piece: u32, begin: u32) -> BlockInfo {
        BlockInfo {
            piece,
            begin,
            length: 16384,
        }
    }

    fn fast(theirs: bool) -> Fast {
        Fast::negotiate(true, theirs, &AA, ip(80, 4, 4, 200), 1313, 32768)
    }

    #[test]
    fn only_both_bits_enable_it() {
        assert!(fast(true).enabled());
        assert!(!fast(false).enabled());
        assert!(!Fast::negotiate(false, true, &AA, ip(1, 2, 3, 4), 9, 9).enabled());
        assert!(fast(false).ours.is_empty());
    }

    #[test]
    fn a_reject_must_match_an_outstanding_request() {
        let mut f = fast(true);
        f.sent_requests(&[block(1, 0), block(1, 16384), block(2, 0)]);
        f.rejected(block(1, 0)).unwrap();
        assert!(f.rejected(block(1, 0)).is_err(), "answered twice");
        assert!(f.rejected(block(9, 0)).is_err(), "never sent");
        f.block_arrived(block(2, 0));
        assert!(
            f.rejected(block(2, 0)).is_err(),
            "already answered by a block"
        );
        // A cancelled request may still be rejected.
        f.sent_cancel(block(1, 16384));
        f.rejected(block(1, 16384)).unwrap();
        assert_eq!(f.counters.rejects_received, 2);
    }

    #[test]
    fn cancelled_requests_nobody_answers_are_forgotten_in_bounds() {
        let mut f = fast(true);
        let blocks: Vec<BlockInfo> = (0..2000).map(|i| block(i, 0)).collect();
        f.sent_requests(&blocks);
        for &b in &blocks {
            f.sent_cancel(b);
        }
        assert_eq!(f.cancelled.len(), MAX_CANCELLED);
        assert_eq!(f.requested.len(), MAX_CANCELLED);
        assert!(f.rejected(block(1999, 0)).is_ok());
        assert!(f.rejected(block(0, 0)).is_err(), "the oldest was forgotten");
    }

    #[test]
    fn allowed_fast_sets_are_sent_once_and_served_within_a_budget() {
        let mut f = fast(true);
        let set: Vec<u32> = f.ours.iter().map(|&(p, _)| p).collect();
        assert_eq!(set.len(), ALLOWED_FAST_K);
        // We have the first three only: they go out, then the rest once had.
        let first = f.allowed_to_send(|p| set[..3].contains(&p));
        assert_eq!(first, set[..3]);
        assert!(f.allowed_to_send(|p| set[..3].contains(&p)).is_empty());
        assert_eq!(f.allowed_to_send(|_| true), set[3..]);
        assert_eq!(f.counters.allowed_fast_sent, 10);
        // Two copies of the set, 2 blocks per piece: 40 blocks, then no more.
        assert!(!f.serve_choked(block(set_complement(&set), 0), 0));
        let starter = ALLOWED_FAST_K;
        assert!(
            !f.serve_choked(block(set[0], 0), starter + 1),
            "not a starter"
        );
        let served = (0..100)
            .filter(|_| f.serve_choked(block(set[0], 0), starter))
            .count();
        assert_eq!(served, 2 * ALLOWED_FAST_K * 2);
    }

    fn set_complement(set: &[u32]) -> u32 {
        (0..).find(|p| !set.contains(p)).unwrap_or_default()
    }

    #[test]
    fn allowed_pieces_from_the_peer_are_news_once_and_bounded() {
        let mut f = fast(true);
        assert!(f.allowed_in(5));
        assert!(!f.allowed_in(5));
        let news = (100..200).filter(|&p| f.allowed_in(p)).count();
        assert_eq!(news, MAX_ALLOWED_IN - 1);
        assert_eq!(f.counters.allowed_fast_received, 102);
    }
}
