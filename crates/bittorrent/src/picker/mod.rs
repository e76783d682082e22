//! Which block to request next: rarest-first piece selection with random
//! first pieces, strict completion of started pieces, priorities, and endgame.
//! Pure state; the torrent actor owns one.
//!
//! # Piece states
//! Every piece is in exactly one of four states (see `PieceState`):
//!
//! - **missing**: no block of it is requested or received;
//! - **partial**: at least one block is requested or received, but not all
//!   blocks are received. Only partial pieces carry per-block state
//!   (`Free`, `Requested(n)`, `Received`); the torrent buffers them in RAM;
//! - **complete**: every block is received, the torrent is hashing it;
//! - **verified**: the hash matched, the piece is in [`Picker::have`].
//!
//! The invariant is enforced by keeping the state in one `Vec<PieceState>`
//! and moving pieces only through the private transition helpers
//! (`start_piece`, `make_missing`, `make_verified`), which also keep the
//! derived bitfields and counters in step.
//!
//! # Pick modes
//! [`PickMode`] decides how the *next new piece* is chosen and whether
//! deadlines count (set with [`Picker::set_mode`]):
//!
//! - [`PickMode::RarestFirst`] (default): random first pieces, then rarest
//!   first. Deadlines are kept but **ignored**: this is the swarm-friendly
//!   mode, and a torrent that stops streaming only has to switch modes.
//! - [`PickMode::Sequential`]: the lowest-index wanted piece first (`High`
//!   pieces still before `Normal` ones, `Skip` never), plus deadlines as in
//!   `Streaming` (a reader that seeks ahead must not wait for everything
//!   before it).
//! - [`PickMode::Streaming`]: exactly `RarestFirst`, plus deadlines: pieces
//!   with a deadline ("urgent") come before everything else. The torrent
//!   keeps deadlines on a read-ahead window in front of the reader.
//!
//! # Deadlines (time-critical pieces)
//! [`Picker::set_deadline`] makes a piece urgent. A deadline exists only on
//! a wanted, unverified piece: it is refused on `Skip`, verified and
//! out-of-range pieces, dropped when the piece is verified or set to `Skip`
//! (and not restored if it is wanted again), and kept when the piece fails
//! its hash check. In `Streaming` and `Sequential` modes, [`Picker::pick_at`]
//! treats urgent pieces so:
//!
//! - earliest deadline first, before partial pieces and `High` pieces, and
//!   regardless of the partial-piece cap;
//! - a deadline is **near** when `now + URGENT_NEAR >= deadline` (also
//!   when it has passed);
//! - **fast peers first**: the torrent says whether the peer is among its
//!   fastest. A fast peer gets free blocks of every urgent piece it has. A
//!   slow peer gets free blocks of an urgent piece only once its deadline
//!   is near, i.e. when no fast peer took them in time; until then the
//!   piece is reserved (a slow peer gets no block of it, not even through
//!   the partial-first or rarest-first steps);
//! - near the deadline a fast peer also gets **duplicates**: blocks of the
//!   piece already requested from someone else (never from itself), as
//!   long as fewer than [`Picker::MAX_URGENT_REQUESTERS`] peers have them,
//!   so a slow peer cannot stall the reader. The torrent cancels the other
//!   copies when a block arrives, as in endgame (see
//!   [`Picker::may_have_duplicates`]).
//!
//! [`Picker::pick`] is `pick_at` for a fast peer with no notion of time: in
//! `Streaming` mode it puts urgent pieces first but never hands out
//! urgent duplicates.
//!
//! # Order of a [`Picker::pick_at`]
//! 0. `Streaming` mode with deadlines: urgent pieces, as above.
//! 1. Free blocks of partial pieces the peer has: `High` pieces before
//!    `Normal` ones, the oldest started first. Finishing started pieces
//!    bounds the memory the torrent spends on buffers. But below the cap
//!    (not `Sequential`), a piece others have waits for them while the peer
//!    has rarer ones (a lone seed's upload goes to what only it has); the
//!    peer takes it after step 2 if its pipeline still has room.
//! 2. New pieces the peer has: `High` before `Normal`, never `Skip`. In
//!    `Sequential` mode the lowest index. Otherwise, while fewer than
//!    [`Picker::RANDOM_FIRST_PIECES`] pieces are started or verified, a
//!    random one (a new downloader gets something to trade quickly);
//!    afterwards the rarest one (lowest availability), ties broken at
//!    random. One call may start several pieces when `max` is large.
//! 3. Endgame: once no wanted block is free anywhere, blocks requested from
//!    other peers (never one already in flight to this peer, never a received
//!    one), fewest requesters first, so the last pieces do not wait on the
//!    slowest peer. Endgame ignores deadlines, speed and the urgent
//!    duplicate limit.
//!
//! # Cost
//! Startable pieces are kept ordered by (priority, availability) in
//! `rarity::RarityOrder`, so an availability change is `O(1)` and starting a
//! piece usually is too (it costs the pieces skipped because the peer lacks
//! them). A pick is `O(partial pieces + blocks returned)` besides; endgame
//! picks scan the requested blocks of partial pieces. Without deadlines
//! (or outside `Streaming` mode) the urgent step costs one comparison.
//! Deadlines are few (a read-ahead window): a sorted `Vec`, so setting one
//! is `O(deadlines)` and the urgent step `O(deadlines + their blocks)`.
//! `Sequential` mode keeps a cursor below which no piece is startable.
//!
//! # Where future features plug in
//! Which new piece to start is decided in one place, `Picker::choose_new_piece`.
//! Per-file priorities map onto [`Picker::set_priorities`]. Web seeds get
//! runs of whole pieces from [`Picker::pick_run`] (`runs.rs`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::picker::rarity::{bucket, RarityOrder};
use crate::random::Random;
use crate::types::BlockInfo;

mod deadlines;
mod geometry;
mod pick;
mod rarity;
mod runs;
mod state;

/// Download priority of a piece. `Skip` pieces are never requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Not wanted.
    Skip,
    /// Rarest-first.
    #[default]
    Normal,
    /// Picked before every `Normal` piece.
    High,
}

/// How new pieces are chosen, and whether deadlines count (see the module
/// docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PickMode {
    /// Random first pieces, then rarest first. Deadlines are ignored.
    #[default]
    RarestFirst,
    /// Lowest-index wanted piece first (`High` before `Normal`), after
    /// pieces with a deadline (earliest first).
    Sequential,
    /// `RarestFirst`, plus pieces with a deadline first (earliest first).
    Streaming,
}

/// What [`Picker::block_received`] made of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// First copy of a block we requested. `piece_complete` is true when every
    /// block of its piece has now arrived (the piece is ready to verify).
    Fresh {
        /// All blocks of the piece are in.
        piece_complete: bool,
    },
    /// We already had this block (an endgame duplicate, or a late arrival).
    Duplicate,
    /// Not a block we asked anyone for (wrong geometry, piece we have, ...).
    Unexpected,
}

/// The one state a piece is in (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PieceState {
    /// Nothing requested nor received.
    Missing,
    /// Some blocks requested or received; its blocks are in `Picker::partials`.
    Partial,
    /// Every block received, awaiting the hash check.
    Complete,
    /// Hash checked and stored.
    Verified,
}

/// State of one block of a partial piece.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BlockState {
    /// Nobody is asked for it.
    Free,
    /// Requested from this many peers (more than one only in endgame; never 0).
    Requested(u32),
    /// Arrived.
    Received,
}

/// Per-block bookkeeping of a partial piece, with counts kept in step with
/// `blocks` so no scan is needed to classify the piece.
#[derive(Debug)]
struct PartialPiece {
    blocks: Vec<BlockState>,
    free: u32,
    requested: u32,
    received: u32,
}

/// Piece and block bookkeeping for one torrent.
///
/// Geometry (piece count, lengths) comes from validated metainfo and is
/// trusted; everything a peer can influence (bitfields, indices, block
/// addresses) is checked, and bogus values are ignored or reported as
/// [`Received::Unexpected`], never a panic.
#[derive(Debug)]
pub struct Picker {
    piece_count: usize,
    piece_length: u32,
    total_length: u64,
    /// The single source of truth for a piece's state.
    state: Vec<PieceState>,
    priority: Vec<Priority>,
    /// How many connected peers have each piece (saturating).
    availability: Vec<u32>,
    /// Verified pieces (`state == Verified`).
    have: Bitfield,
    /// Pieces not `Skip` and not verified: what makes a peer interesting.
    wanted: Bitfield,
    /// Pieces not `Skip` and `Missing`: the candidates to start, by rarity.
    rarity: RarityOrder,
    /// Block state of the partial pieces (`state == Partial`).
    partials: HashMap<u32, PartialPiece>,
    /// Partial pieces, oldest started first.
    order: Vec<u32>,
    /// Pieces in `Missing` state (any priority).
    missing_count: usize,
    /// Free blocks in partial pieces that are not `Skip`.
    free_wanted_in_partials: usize,
    /// Cap on partial pieces (see [`Picker::set_max_partial_pieces`]).
    max_partial: usize,
    mode: PickMode,
    /// Deadlines, sorted by (deadline, piece); at most one per piece, only
    /// on wanted unverified pieces.
    deadlines: Vec<(Instant, u32)>,
    /// Pieces in `deadlines`, for `O(1)` membership.
    urgent: Bitfield,
    /// No piece below this index is startable (in `rarity`): where the
    /// `Sequential` scan starts.
    seq_hint: usize,
    rng: Random,
}

impl Picker {
    /// Random pieces picked before switching to rarest-first.
    pub const RANDOM_FIRST_PIECES: usize = 4;

    /// A deadline is near when `now + URGENT_NEAR >= deadline`: slow peers
    /// may then take its free blocks, and fast peers duplicates. Half the
    /// torrent's first read deadline (500 ms): blocks are duplicated only
    /// for a piece still missing 250 ms after a reader asked for it.
    pub const URGENT_NEAR: Duration = Duration::from_millis(250);

    /// Most peers an urgent block is requested from at once by the urgent
    /// step (endgame may add more).
    pub const MAX_URGENT_REQUESTERS: u32 = 2;

    /// A picker for `piece_count` pieces of `piece_length` bytes (the last one
    /// shorter), nothing had yet.
    pub fn new(piece_count: usize, piece_length: u32, total_length: u64) -> Self {
        let mut wanted = Bitfield::new(piece_count);
        let mut rarity = RarityOrder::new(piece_count);
        for i in 0..piece_count {
            wanted.set(i);
            rarity.insert(i as u32, NORMAL, 0);
        }
        Self {
            piece_count,
            piece_length,
            total_length,
            state: vec![PieceState::Missing; piece_count],
            priority: vec![Priority::Normal; piece_count],
            availability: vec![0; piece_count],
            have: Bitfield::new(piece_count),
            rarity,
            wanted,
            partials: HashMap::new(),
            order: Vec::new(),
            missing_count: piece_count,
            free_wanted_in_partials: 0,
            max_partial: usize::MAX,
            mode: PickMode::RarestFirst,
            deadlines: Vec::new(),
            urgent: Bitfield::new(piece_count),
            seq_hint: 0,
            rng: Random::default(),
        }
    }

    /// Replaces the random source with a seeded one, for reproducible picks
    /// (tests, simulations).
    pub fn with_rng_seed(mut self, seed: u64) -> Self {
        self.rng = Random::seeded(seed);
        self
    }

    /// Caps the number of partial pieces (default: unlimited; 0 is treated
    /// as 1). Each partial piece costs the torrent a piece-sized buffer.
    ///
    /// At the cap, [`Picker::pick`] starts no new piece for a peer that got
    /// blocks of partial pieces in the same call. A peer that has none of
    /// the partial pieces with free blocks is never starved by the cap: for
    /// it new pieces are started as usual (so the cap can be exceeded by
    /// about one pipeline's worth of pieces per such peer).
    pub fn set_max_partial_pieces(&mut self, max: usize) {
        self.max_partial = max.max(1);
    }

    #[cfg(test)]
    /// The cap set by [`Picker::set_max_partial_pieces`].
    pub fn max_partial_pieces(&self) -> usize {
        self.max_partial
    }

    /// Number of pieces of the torrent.
    pub fn piece_count(&self) -> usize {
        self.piece_count
    }

    #[cfg(test)]
    /// Number of partial pieces (some blocks requested or received, not all
    /// received).
    pub fn partial_pieces(&self) -> usize {
        self.partials.len()
    }

    #[cfg(test)]
    /// Number of wanted (non-`Skip`) pieces not yet verified.
    pub fn pieces_left(&self) -> usize {
        self.wanted.count_ones()
    }

    #[cfg(test)]
    /// How many connected peers announced piece `index` (0 out of range).
    pub fn availability(&self, index: u32) -> u32 {
        self.availability.get(index as usize).copied().unwrap_or(0)
    }

    /// Priority of piece `index` (`Skip` out of range).
    pub fn priority(&self, index: u32) -> Priority {
        self.priority
            .get(index as usize)
            .copied()
            .unwrap_or(Priority::Skip)
    }

    /// Marks piece `index` as already verified (e.g. found on disk).
    /// Out-of-range indices are ignored.
    pub fn mark_have(&mut self, index: u32) {
        if (index as usize) < self.piece_count {
            self.make_verified(index);
        }
    }

    /// A peer announced its bitfield (or connected with one). Bits past the
    /// piece count are ignored.
    pub fn add_peer(&mut self, has: &Bitfield) {
        for i in ones(has.as_bytes(), self.piece_count) {
            self.availability_up(i);
        }
    }

    /// A peer with bitfield `has` disconnected. Counters never go below 0.
    pub fn remove_peer(&mut self, has: &Bitfield) {
        for i in ones(has.as_bytes(), self.piece_count) {
            self.availability_down(i);
        }
    }

    /// A peer sent `have index` (the caller checks the peer did not have it).
    /// Out-of-range indices are ignored.
    pub fn peer_has(&mut self, index: u32) {
        if (index as usize) < self.piece_count {
            self.availability_up(index as usize);
        }
    }

    /// Whether piece `index` is wanted (not `Skip`) and not verified yet
    /// (`O(1)`; false out of range).
    pub fn wants(&self, index: u32) -> bool {
        self.wanted.get(index as usize)
    }

    /// Whether a peer with bitfield `has` has a wanted piece we lack
    /// (`O(pieces / 8)`).
    pub fn is_interesting(&self, has: &Bitfield) -> bool {
        has.as_bytes()
            .iter()
            .zip(self.wanted.as_bytes())
            .any(|(h, w)| h & w != 0)
    }

    /// Sets how new pieces are chosen and whether deadlines count (see
    /// [`PickMode`]). Deadlines are kept across mode changes.
    pub fn set_mode(&mut self, mode: PickMode) {
        self.mode = mode;
    }

    #[cfg(test)]
    /// The mode set by [`Picker::set_mode`].
    pub fn mode(&self) -> PickMode {
        self.mode
    }

    /// Bytes of all wanted (non-`Skip`) pieces, verified or not
    /// (`O(pieces)`).
    pub fn wanted_bytes(&self) -> u64 {
        let wanted = self
            .priority
            .iter()
            .filter(|&&p| p != Priority::Skip)
            .count();
        self.bytes_of(wanted, self.priority.last() != Some(&Priority::Skip))
    }

    /// Bytes of the wanted (non-`Skip`) pieces not verified yet (`O(1)`);
    /// 0 exactly when [`Picker::is_complete`].
    pub fn missing_wanted_bytes(&self) -> u64 {
        let last = self.piece_count.checked_sub(1);
        let last_wanted = last.is_some_and(|i| self.wanted.get(i));
        self.bytes_of(self.wanted.count_ones(), last_wanted)
    }

    /// A request for `block` was dropped (choke, disconnect, cancel) without
    /// the block arriving. One call undoes one request: a block requested
    /// from n peers in endgame needs n cancels to be free again. When a
    /// partial piece has no requested nor received block left, it is missing
    /// again. Unknown, received or malformed blocks are ignored.
    pub fn cancel(&mut self, block: BlockInfo) {
        let Some(b) = self.block_index(block) else {
            return;
        };
        let wanted = self.priority[block.piece as usize] != Priority::Skip;
        let Some(partial) = self.partials.get_mut(&block.piece) else {
            return;
        };
        let BlockState::Requested(n) = partial.blocks[b] else {
            return;
        };
        if n > 1 {
            partial.blocks[b] = BlockState::Requested(n - 1);
            return;
        }
        partial.blocks[b] = BlockState::Free;
        partial.requested -= 1;
        partial.free += 1;
        if wanted {
            self.free_wanted_in_partials += 1;
        }
        if partial.requested == 0 && partial.received == 0 {
            self.make_missing(block.piece);
        }
    }

    /// A block arrived.
    ///
    /// Wrong geometry (piece out of range, `begin` not a multiple of
    /// [`BLOCK_SIZE`], length not exactly the block's length) and blocks
    /// nobody requested (including late arrivals after every request for
    /// them was cancelled) are `Unexpected`; blocks of verified or complete
    /// pieces and blocks already received are `Duplicate`.
    pub fn block_received(&mut self, block: BlockInfo) -> Received {
        let Some(b) = self.block_index(block) else {
            return Received::Unexpected;
        };
        match self.state[block.piece as usize] {
            PieceState::Verified | PieceState::Complete => return Received::Duplicate,
            PieceState::Missing => return Received::Unexpected,
            PieceState::Partial => {}
        }
        let Some(partial) = self.partials.get_mut(&block.piece) else {
            return Received::Unexpected;
        };
        match partial.blocks[b] {
            BlockState::Received => Received::Duplicate,
            BlockState::Free => Received::Unexpected,
            BlockState::Requested(_) => {
                partial.blocks[b] = BlockState::Received;
                partial.requested -= 1;
                partial.received += 1;
                let piece_complete = partial.received as usize == partial.blocks.len();
                if piece_complete {
                    self.remove_partial(block.piece);
                    self.state[block.piece as usize] = PieceState::Complete;
                }
                Received::Fresh { piece_complete }
            }
        }
    }

    /// Piece `index` passed its hash check and was stored. Out-of-range
    /// indices are ignored.
    pub fn piece_verified(&mut self, index: u32) {
        if (index as usize) < self.piece_count {
            self.make_verified(index);
        }
    }

    /// Piece `index` failed its hash check: all its blocks are wanted again
    /// (the piece is missing). Also drops a partial piece. Verified,
    /// missing and out-of-range pieces are left alone.
    pub fn piece_failed(&mut self, index: u32) {
        if let Some(PieceState::Complete | PieceState::Partial) = self.state.get(index as usize) {
            self.make_missing(index);
        }
    }

    /// Sets the priority of piece `index`. Out-of-range indices are ignored.
    /// Blocks of a partial piece set to `Skip` stay requested (their
    /// arrival is still accepted) but no more are handed out.
    pub fn set_priority(&mut self, index: u32, priority: Priority) {
        let i = index as usize;
        let Some(&old) = self.priority.get(i) else {
            return;
        };
        if old == priority {
            return;
        }
        if priority == Priority::Skip {
            self.remove_deadline(index);
        }
        if self.state[i] == PieceState::Missing {
            if let Some(class) = class_of(old) {
                self.rarity
                    .remove(index, class, bucket(self.availability[i]));
            }
        }
        self.priority[i] = priority;
        if self.state[i] == PieceState::Missing {
            self.make_startable(index);
        }
        let was_wanted = old != Priority::Skip;
        let is_wanted = priority != Priority::Skip;
        if was_wanted == is_wanted || self.state[i] == PieceState::Verified {
            return;
        }
        if is_wanted {
            self.wanted.set(i);
        } else {
            self.wanted.clear(i);
        }
        if let Some(partial) = self.partials.get(&index) {
            if is_wanted {
                self.free_wanted_in_partials += partial.free as usize;
            } else {
                self.free_wanted_in_partials -= partial.free as usize;
            }
        }
    }

    #[cfg(test)]
    /// Sets the priority of every piece in `pieces` (e.g. the pieces of one
    /// file); the range is clamped to the piece count.
    pub fn set_priorities(&mut self, pieces: std::ops::Range<u32>, priority: Priority) {
        let end = pieces
            .end
            .min(u32::try_from(self.piece_count).unwrap_or(u32::MAX));
        for i in pieces.start..end {
            self.set_priority(i, priority);
        }
    }

    /// True when every wanted (non-`Skip`) piece is verified.
    pub fn is_complete(&self) -> bool {
        self.wanted.count_ones() == 0
    }

    /// True when no wanted block is left unrequested (duplicates are handed
    /// out), and the download is not complete. `O(1)`.
    pub fn in_endgame(&self) -> bool {
        self.rarity.len() == 0 && self.free_wanted_in_partials == 0 && !self.is_complete()
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        &self.have
    }

    // ----- private helpers -----
}

/// Rarity class of the `High` priority.
const HIGH: usize = 0;

/// Rarity class of the `Normal` priority.
const NORMAL: usize = 1;

/// Rarity class of a priority (`None`: never started).
fn class_of(priority: Priority) -> Option<usize> {
    match priority {
        Priority::High => Some(HIGH),
        Priority::Normal => Some(NORMAL),
        Priority::Skip => None,
    }
}

/// Indices of the set bits of a wire-order bitfield, below `limit`.
fn ones(bytes: &[u8], limit: usize) -> impl Iterator<Item = usize> + '_ {
    bytes
        .iter()
        .enumerate()
        .filter(|(_, &byte)| byte != 0)
        .flat_map(|(k, &byte)| {
            (0..8)
                .filter(move |bit| byte & (0x80 >> bit) != 0)
                .map(move |bit| k * 8 + bit)
        })
        .filter(move |&i| i < limit)
}

#[cfg(test)]
mod tests;
