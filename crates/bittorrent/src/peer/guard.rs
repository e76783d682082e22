//! What a remote peer may cost us: the peer actor asks the guard about every
//! message before acting on it, and the guard decides in O(1) (amortised)
//! whether it is news for the torrent, noise to drop, or abuse. Pure: time
//! comes in as `now`.
//!
//! - Only news reaches the torrent: a `have` of a piece the peer already
//!   announced, and a choke, unchoke, interested or not-interested that does
//!   not change the state, are dropped here.
//! - Every message but a block costs the peer tokens from a per-peer
//!   [`Budget`], weighted by what it costs us (state changes that make the
//!   torrent work cost most, bytes cost by size). A peer in debt is not read
//!   from until it is out of debt: a flood slows only the flooder (TCP
//!   backpressure), and never the torrent.
//! - A bitfield that is not the first message, or not the first bitfield, is
//!   not refused, although BEP 3 allows it only first: aria2 1.36 sends
//!   `interested` before its bitfield (with a strict rule, both aria2 seeding
//!   interop tests fail). Only the pieces a later bitfield adds reach the
//!   torrent, as `have`s, each piece at most once per connection; the diff is
//!   charged to the budget, so repeating it costs the torrent nothing.
//! - Fast extension (BEP 6): its messages from a peer without it are a
//!   protocol error. A have-all or have-none stands for a bitfield (full or
//!   empty, with the pieces announced before it) and is allowed once, as the
//!   first word on the peer's pieces: after a bitfield or another of them it
//!   is a protocol error. Suggest and allowed-fast indices are checked.
//! - Peer exchange: at most one message taken per [`PEX_MIN_INTERVAL`],
//!   at most [`PEX_MAX_ADDED`] addresses of each family (IPv4, IPv6) from it.
//! - Metadata requests (BEP 9): at most two copies of our info dictionary
//!   (plus [`METADATA_SLACK`] pieces) served per connection, each piece
//!   charged by its size; later requests are rejected.

use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::extension::METADATA_PIECE_SIZE;
use crate::peer::budget::Budget;
use crate::peer::PeerError;
use crate::wire::Message;

/// Tokens a peer earns per second.
pub(crate) const RATE: u32 = 1000;
/// Tokens a peer may spend at once (and starts with).
pub(crate) const BURST: u32 = 4000;
/// Cost of a choke or unchoke that changes the state (the torrent voids or
/// refills a pipeline): with [`RATE`], about 20 flips a second at most.
const COST_CHOKE: u32 = 50;
/// Cost of an interest change (the torrent may unchoke).
const COST_INTEREST: u32 = 10;
/// Cost of a message that changes nothing (duplicate have, keep-alive,
/// a repeated state, a cancel, a request we drop).
const COST_NOISE: u32 = 1;
/// Extra cost per KiB of a message's payload (extension, unknown ids).
const COST_PER_KIB: u32 = 2;
/// Pieces of a late bitfield diffed per token.
const DIFF_PIECES_PER_TOKEN: usize = 256;
/// Peer exchange messages taken at most this often.
pub(crate) const PEX_MIN_INTERVAL: Duration = Duration::from_secs(30);
/// Addresses of each family taken from one PEX message (BEP 11 asks senders
/// for at most 50).
pub(crate) const PEX_MAX_ADDED: usize = 50;
/// Metadata pieces served per connection beyond two copies of the info
/// dictionary (a few re-requests).
pub(crate) const METADATA_SLACK: u32 = 16;
/// Cost of serving one 16 KiB metadata piece.
const COST_METADATA: u32 = 16;

/// What to do with a message the guard has seen.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Act on it as usual.
    Pass,
    /// Nothing new: drop it.
    Drop,
    /// The peer's first bitfield (with any pieces it announced before it):
    /// hand it to the torrent whole.
    Bitfield(Bitfield),
    /// A later bitfield: only these pieces are news.
    Added(Vec<u32>),
}

/// One connection's view of what the peer told us, and its budget.
#[derive(Debug)]
pub(crate) struct Guard {
    /// Pieces the torrent has been told the peer has.
    has: Bitfield,
    /// How many (`has.count_ones()`, kept up to date).
    has_count: usize,
    bitfield_seen: bool,
    /// The Fast extension is in force.
    fast: bool,
    choking_us: bool,
    interested: bool,
    budget: Budget,
    last_pex: Option<Instant>,
    metadata_served: u32,
    /// Metadata pieces this connection may be served.
    metadata_max: u32,
}

impl Guard {
    /// A guard for a torrent of `pieces` pieces whose info dictionary is
    /// `info_len` bytes long, at connection time.
    pub(crate) fn new(pieces: usize, info_len: usize, now: Instant) -> Self {
        let info_pieces = info_len.div_ceil(METADATA_PIECE_SIZE);
        let copies = u32::try_from(2 * info_pieces).unwrap_or(u32::MAX / 2);
        Self {
            has: Bitfield::new(pieces),
            has_count: 0,
            bitfield_seen: false,
            fast: false,
            choking_us: true,
            interested: false,
            budget: Budget::new(RATE, BURST, now),
            last_pex: None,
            metadata_served: 0,
            metadata_max: copies.saturating_add(METADATA_SLACK),
        }
    }

    /// How many pieces the peer announced (a starting peer has few).
    pub(crate) fn peer_pieces(&self) -> usize {
        self.has_count
    }

    /// Whether the Fast extension is in force (both handshakes set it).
    pub(crate) fn set_fast(&mut self, fast: bool) {
        self.fast = fast;
    }

    /// Decides about one message from the peer and charges it.
    ///
    /// # Errors
    /// [`PeerError::PieceOutOfRange`] for a `have` (or suggest, allowed-fast)
    /// past the end, the errors of [`Bitfield::from_bytes`] for a malformed
    /// bitfield, [`PeerError::FastNotNegotiated`] for a Fast-extension
    /// message without the extension, [`PeerError::FastProtocol`] for a
    /// have-all or have-none after the peer's bitfield.
    pub(crate) fn inbound(&mut self, msg: &Message, now: Instant) -> Result<Verdict, PeerError> {
        let (cost, verdict) = match msg {
            Message::Piece { .. } | Message::Request(_) => (0, Verdict::Pass),
            Message::KeepAlive | Message::Port(_) | Message::Cancel(_) => {
                (COST_NOISE, Verdict::Pass)
            }
            Message::Choke => Self::flip(&mut self.choking_us, true, COST_CHOKE),
            Message::Unchoke => Self::flip(&mut self.choking_us, false, COST_CHOKE),
            Message::Interested => Self::flip(&mut self.interested, true, COST_INTEREST),
            Message::NotInterested => Self::flip(&mut self.interested, false, COST_INTEREST),
            Message::Have(piece) => self.have(*piece)?,
            Message::Bitfield(bytes) => self.bitfield(bytes)?,
            Message::Suggest(_)
            | Message::HaveAll
            | Message::HaveNone
            | Message::RejectRequest(_)
            | Message::AllowedFast(_) => self.fast_message(msg)?,
            Message::Extended { payload, .. } | Message::Unknown { payload, .. } => {
                (COST_NOISE + Self::size_cost(payload.len()), Verdict::Pass)
            }
        };
        self.budget.spend(cost, now);
        Ok(verdict)
    }

    /// Charges a request we will not serve (we choke the peer, or it is
    /// already queued).
    pub(crate) fn wasted_request(&mut self, now: Instant) {
        self.budget.spend(COST_NOISE, now);
    }

    /// When reading from the peer may go on: `None` now; else the peer is in
    /// debt and its socket is left alone until then.
    pub(crate) fn ready_at(&self, now: Instant) -> Option<Instant> {
        self.budget.ready_at(now)
    }

    /// Whether to take a PEX message now (at most one per
    /// [`PEX_MIN_INTERVAL`]).
    pub(crate) fn take_pex(&mut self, now: Instant) -> bool {
        let due = self
            .last_pex
            .is_none_or(|last| now.saturating_duration_since(last) >= PEX_MIN_INTERVAL);
        if due {
            self.last_pex = Some(now);
        }
        due
    }

    /// Whether to serve a metadata piece (else reject it). A served piece is
    /// charged by its size.
    pub(crate) fn serve_metadata(&mut self, now: Instant) -> bool {
        if self.metadata_served >= self.metadata_max {
            return false;
        }
        self.metadata_served += 1;
        self.budget.spend(COST_METADATA, now);
        true
    }

    /// A BEP 6 message: only with the extension; have-all and have-none
    /// only as the first word on the peer's pieces; indices in range.
    fn fast_message(&mut self, msg: &Message) -> Result<(u32, Verdict), PeerError> {
        if !self.fast {
            return Err(PeerError::FastNotNegotiated(msg.id().unwrap_or_default()));
        }
        match msg {
            Message::HaveAll | Message::HaveNone => {
                if self.bitfield_seen {
                    return Err(PeerError::FastProtocol(
                        "have-all/none after its pieces' list",
                    ));
                }
                self.bitfield_seen = true;
                if *msg == Message::HaveAll {
                    self.has = Bitfield::full(self.has.len());
                    self.has_count = self.has.len();
                }
                Ok((COST_NOISE, Verdict::Bitfield(self.has.clone())))
            }
            Message::Suggest(piece) | Message::AllowedFast(piece)
                if *piece as usize >= self.has.len() =>
            {
                Err(PeerError::PieceOutOfRange(*piece))
            }
            _ => Ok((COST_NOISE, Verdict::Pass)),
        }
    }

    fn flip(state: &mut bool, to: bool, cost: u32) -> (u32, Verdict) {
        if *state == to {
            return (COST_NOISE, Verdict::Drop);
        }
        *state = to;
        (cost, Verdict::Pass)
    }

    fn size_cost(len: usize) -> u32 {
        u32::try_from(len / 1024).unwrap_or(u32::MAX / 4) * COST_PER_KIB
    }

    /// A new piece is news (free: there are only so many pieces); a
    /// duplicate is noise.
    fn have(&mut self, piece: u32) -> Result<(u32, Verdict), PeerError> {
        if piece as usize >= self.has.len() {
            return Err(PeerError::PieceOutOfRange(piece));
        }
        if self.has.set(piece as usize) {
            self.has_count += 1;
            Ok((0, Verdict::Pass))
        } else {
            Ok((COST_NOISE, Verdict::Drop))
        }
    }

    fn bitfield(&mut self, bytes: &[u8]) -> Result<(u32, Verdict), PeerError> {
        let theirs = Bitfield::from_bytes(bytes, self.has.len())?;
        if !self.bitfield_seen {
            self.bitfield_seen = true;
            // Pieces announced by `have` before it stay announced.
            for piece in theirs.iter_ones() {
                self.has_count += usize::from(self.has.set(piece));
            }
            return Ok((COST_NOISE, Verdict::Bitfield(self.has.clone())));
        }
        let mut added = Vec::new();
        for (i, (&new, &old)) in theirs
            .as_bytes()
            .iter()
            .zip(self.has.as_bytes())
            .enumerate()
        {
            let mut bits = new & !old;
            while bits != 0 {
                let bit = bits.leading_zeros() as usize;
                bits &= !(0x80 >> bit);
                added.push((i * 8 + bit) as u32);
            }
        }
        for &piece in &added {
            self.has.set(piece as usize);
        }
        self.has_count += added.len();
        let cost = COST_NOISE + (self.has.len() / DIFF_PIECES_PER_TOKEN) as u32;
        Ok((cost, Verdict::Added(added)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn bits(pieces: usize, set: &[usize]) -> Message {
        let mut b = Bitfield::new(pieces);
        for &i in set {
            b.set(i);
        }
        Message::Bitfield(Bytes::copy_from_slice(b.as_bytes()))
    }

    #[test]
    fn only_news_passes() {
        let now = Instant::now();
        let mut g = Guard::new(100, 0, now);
        assert_eq!(g.inbound(&Message::Have(3), now).unwrap(), Verdict::Pass);
        assert_eq!(g.inbound(&Message::Have(3), now).unwrap(), Verdict::Drop);
        assert!(matches!(
            g.inbound(&Message::Have(100), now),
            Err(PeerError::PieceOutOfRange(100))
        ));
        // We start choked and uninterested-in: the first choke is no news.
        assert_eq!(g.inbound(&Message::Choke, now).unwrap(), Verdict::Drop);
        assert_eq!(g.inbound(&Message::Unchoke, now).unwrap(), Verdict::Pass);
        assert_eq!(g.inbound(&Message::Unchoke, now).unwrap(), Verdict::Drop);
        assert_eq!(
            g.inbound(&Message::NotInterested, now).unwrap(),
            Verdict::Drop
        );
        assert_eq!(g.inbound(&Message::Interested, now).unwrap(), Verdict::Pass);
        assert_eq!(g.inbound(&Message::Interested, now).unwrap(), Verdict::Drop);
    }

    #[test]
    fn the_first_bitfield_keeps_earlier_haves_and_later_ones_add_only_news() {
        let now = Instant::now();
        let mut g = Guard::new(20, 0, now);
        g.inbound(&Message::Have(19), now).unwrap();
        let Verdict::Bitfield(first) = g.inbound(&bits(20, &[0, 1]), now).unwrap() else {
            panic!("the first bitfield goes through whole");
        };
        assert_eq!(first.iter_ones().collect::<Vec<_>>(), [0, 1, 19]);
        assert_eq!(g.peer_pieces(), 3);
        // Pieces taken away are ignored, pieces added are news once.
        let v = g.inbound(&bits(20, &[1, 2, 9, 19]), now).unwrap();
        assert_eq!(v, Verdict::Added(vec![2, 9]));
        assert_eq!(
            g.inbound(&bits(20, &[2, 9]), now).unwrap(),
            Verdict::Added(vec![])
        );
        assert_eq!(g.inbound(&Message::Have(9), now).unwrap(), Verdict::Drop);
        assert_eq!(g.peer_pieces(), 5);
        assert!(g
            .inbound(&Message::Bitfield(Bytes::from_static(&[0; 9])), now)
            .is_err());
    }

    #[test]
    fn fast_messages_need_the_extension_and_have_all_or_none_come_once_first() {
        let now = Instant::now();
        let reject = Message::RejectRequest(crate::types::BlockInfo {
            piece: 0,
            begin: 0,
            length: 16384,
        });
        for msg in [
            Message::HaveAll,
            Message::HaveNone,
            Message::Suggest(1),
            Message::AllowedFast(1),
            reject.clone(),
        ] {
            let mut g = Guard::new(20, 0, now);
            assert!(
                matches!(g.inbound(&msg, now), Err(PeerError::FastNotNegotiated(_))),
                "{msg:?} without the extension"
            );
        }
        // Have-all stands for a full bitfield; haves before it are kept.
        let mut g = Guard::new(20, 0, now);
        g.set_fast(true);
        let Verdict::Bitfield(all) = g.inbound(&Message::HaveAll, now).unwrap() else {
            panic!("have-all is a bitfield");
        };
        assert!(all.is_full());
        assert_eq!(g.peer_pieces(), 20);
        assert!(g.inbound(&Message::HaveAll, now).is_err(), "only once");
        assert!(g.inbound(&Message::HaveNone, now).is_err());
        let mut g = Guard::new(20, 0, now);
        g.set_fast(true);
        g.inbound(&Message::Have(4), now).unwrap();
        let Verdict::Bitfield(none) = g.inbound(&Message::HaveNone, now).unwrap() else {
            panic!("have-none is a bitfield");
        };
        assert_eq!(none.iter_ones().collect::<Vec<_>>(), [4]);
        // After a bitfield, have-all is a protocol error.
        let mut g = Guard::new(20, 0, now);
        g.set_fast(true);
        g.inbound(&bits(20, &[1]), now).unwrap();
        assert!(matches!(
            g.inbound(&Message::HaveAll, now),
            Err(PeerError::FastProtocol(_))
        ));
        // Indices are checked; rejects pass (the actor checks them).
        assert!(g.inbound(&Message::AllowedFast(20), now).is_err());
        assert!(g.inbound(&Message::Suggest(20), now).is_err());
        assert_eq!(
            g.inbound(&Message::AllowedFast(19), now).unwrap(),
            Verdict::Pass
        );
        assert_eq!(g.inbound(&reject, now).unwrap(), Verdict::Pass);
    }

    #[test]
    fn floods_run_into_debt_and_the_rate_holds() {
        let t0 = Instant::now();
        let mut g = Guard::new(10, 0, t0);
        let mut now = t0;
        let mut taken = 0u64;
        while now < t0 + Duration::from_secs(5) {
            g.inbound(&Message::KeepAlive, now).unwrap();
            taken += 1;
            if let Some(ready) = g.ready_at(now) {
                now = ready;
            }
        }
        let most = u64::from(RATE) * 5 + u64::from(BURST) + 1;
        assert!(taken <= most, "{taken} keep-alives in 5 s");
        // A choke flip costs more than noise: fewer flips fit in the same time.
        let mut g = Guard::new(10, 0, t0);
        let mut now = t0;
        let mut flips = 0u64;
        while now < t0 + Duration::from_secs(5) {
            let msg = if flips % 2 == 0 {
                Message::Unchoke
            } else {
                Message::Choke
            };
            assert_eq!(g.inbound(&msg, now).unwrap(), Verdict::Pass);
            flips += 1;
            if let Some(ready) = g.ready_at(now) {
                now = ready;
            }
        }
        let most = (u64::from(RATE) * 5 + u64::from(BURST)) / u64::from(COST_CHOKE) + 1;
        assert!(flips <= most, "{flips} flips in 5 s");
    }

    #[test]
    fn big_payloads_cost_by_size() {
        let now = Instant::now();
        let mut g = Guard::new(10, 0, now);
        let big = Message::Unknown {
            id: 99,
            payload: Bytes::from(vec![0u8; 64 * 1024]),
        };
        for _ in 0..BURST / (64 * COST_PER_KIB) {
            assert_eq!(g.inbound(&big, now).unwrap(), Verdict::Pass);
        }
        g.inbound(&big, now).unwrap();
        assert!(g.ready_at(now).is_some(), "the burst is spent");
    }

    #[test]
    fn pex_is_taken_at_most_every_interval_and_metadata_serving_is_bounded() {
        let t0 = Instant::now();
        // An info dictionary of 3 pieces (the last one short).
        let mut g = Guard::new(10, 2 * METADATA_PIECE_SIZE + 1, t0);
        assert!(g.take_pex(t0));
        assert!(!g.take_pex(t0 + Duration::from_secs(1)));
        assert!(g.take_pex(t0 + PEX_MIN_INTERVAL));
        let most = 2 * 3 + METADATA_SLACK;
        let served = (0..most + 100).filter(|_| g.serve_metadata(t0)).count();
        assert_eq!(served as u32, most, "two copies and the slack");
    }
}
