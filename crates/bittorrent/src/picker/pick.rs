//! Choosing blocks for a peer: the order of a pick (urgent, partial, new
//! pieces, endgame), see the module docs of `picker`.

use std::collections::HashSet;
use std::time::Instant;

use crate::bitfield::Bitfield;
use crate::picker::geometry::make_block;
use crate::picker::rarity::{bucket, CLASSES};
use crate::picker::{class_of, BlockState, PickMode, Picker, Priority, HIGH};
use crate::types::BlockInfo;

impl Picker {
    #[cfg(test)]
    /// Chooses up to `max` blocks to request from a peer with bitfield `has`,
    /// and marks them requested. `in_flight` are the blocks already requested
    /// from this peer; they are never handed out again to it.
    ///
    /// The same as [`Picker::pick_at`] for a fast peer without a clock: in
    /// [`PickMode::Streaming`] urgent pieces come first, but no deadline is
    /// ever near, so outside endgame no block requested from anyone is
    /// returned.
    pub fn pick(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
    ) -> Vec<BlockInfo> {
        self.pick_inner(has, in_flight, max, None, true)
    }

    /// Chooses up to `max` blocks to request from a peer with bitfield `has`
    /// at time `now`, and marks them requested. `in_flight` are the blocks
    /// already requested from this peer. `fast` tells whether the peer is
    /// among the torrent's fastest: only fast peers get urgent blocks before
    /// their deadline is near, and only they get urgent duplicates.
    ///
    /// See the module docs for the order. A slow peer whose only candidates
    /// are urgent pieces reserved for fast peers gets nothing (ask again
    /// later). A block in `in_flight` is never
    /// returned; outside endgame a block requested from someone else is
    /// returned only as an urgent duplicate (`Streaming` mode, deadline
    /// near, `fast` peer, fewer than [`Picker::MAX_URGENT_REQUESTERS`]
    /// requesters).
    pub fn pick_at(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        now: Instant,
        fast: bool,
    ) -> Vec<BlockInfo> {
        self.pick_inner(has, in_flight, max, Some(now), fast)
    }

    /// [`Picker::pick_at`]; `now: None` means no deadline is near.
    pub(super) fn pick_inner(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        now: Option<Instant>,
        fast: bool,
    ) -> Vec<BlockInfo> {
        let mut picked = Vec::new();
        if max == 0 {
            return picked;
        }

        // 0. Urgent pieces; afterwards they are out of the other steps.
        let urgent = self.deadlines_active();
        if urgent {
            self.pick_urgent(has, in_flight, max, now, fast, &mut picked);
        }

        // 1. Finish what is started, unless others have it and this peer
        //    has rarer pieces to give.
        let mut rarest = Some([None; CLASSES]);
        self.finish_started(has, in_flight, max, urgent, &mut rarest, &mut picked);

        // 2. Start new pieces. The cap binds only peers that got blocks above.
        let starved = picked.is_empty();
        while picked.len() < max && (starved || self.partials.len() < self.max_partial) {
            let Some(piece) = self.choose_new_piece(has, urgent) else {
                break;
            };
            self.start_piece(piece);
            self.take_free_blocks(piece, in_flight, max, &mut picked);
            if self.give_back_if_untouched(piece) {
                // Every block was in `in_flight` (a caller inconsistency):
                // give the piece back rather than loop on it.
                break;
            }
        }

        // 1b. What step 1 left to others, if the peer has nothing rarer.
        if picked.len() < max && rarest.is_some_and(|r| r.iter().any(Option::is_some)) {
            self.finish_started(has, in_flight, max, urgent, &mut None, &mut picked);
        }

        // 3. Endgame: duplicate requests, fewest requesters first.
        if picked.len() < max && self.in_endgame() {
            self.pick_endgame(has, in_flight, max, &mut picked);
        }
        picked
    }

    /// The missing wanted piece to start for a peer with `has` (never an
    /// urgent one if `skip_urgent`): `High` before `Normal`; in `Sequential`
    /// mode the lowest index; otherwise at random while fewer than
    /// [`Picker::RANDOM_FIRST_PIECES`] pieces are started or verified, else
    /// the rarest, ties at random.
    pub(super) fn choose_new_piece(&mut self, has: &Bitfield, skip_urgent: bool) -> Option<u32> {
        let urgent = &self.urgent;
        let eligible = |p: u32| has.get(p as usize) && !(skip_urgent && urgent.get(p as usize));
        if self.mode != PickMode::Sequential {
            let random = self.piece_count - self.missing_count < Self::RANDOM_FIRST_PIECES;
            return self.rarity.choose(eligible, random, &mut self.rng);
        }
        if let Some(piece) = self.rarity.lowest_in_class(HIGH, eligible) {
            return Some(piece);
        }
        while self.seq_hint < self.piece_count && !self.rarity.contains(self.seq_hint as u32) {
            self.seq_hint += 1;
        }
        (self.seq_hint..self.piece_count)
            .map(|i| i as u32)
            .find(|&p| {
                self.priority[p as usize] == Priority::Normal
                    && self.rarity.contains(p)
                    && eligible(p)
            })
    }

    /// Free blocks of the partial pieces the peer has, `High` before
    /// `Normal`, oldest first (never urgent ones when `urgent`). With
    /// `rarest` (the peer's rarest bucket per class, computed on demand)
    /// those better left to others are skipped (see `leave_to_others`).
    fn finish_started(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        urgent: bool,
        rarest: &mut Option<[Option<Option<usize>>; CLASSES]>,
        picked: &mut Vec<BlockInfo>,
    ) {
        for prio in [Priority::High, Priority::Normal] {
            let mut k = 0;
            while k < self.order.len() && picked.len() < max {
                let piece = self.order[k];
                k += 1;
                let i = piece as usize;
                if self.priority[i] != prio || !has.get(i) || (urgent && self.urgent.get(i)) {
                    continue;
                }
                if let Some(rarest) = rarest.as_mut() {
                    if self.leave_to_others(piece, has, rarest) {
                        continue;
                    }
                }
                self.take_free_blocks(piece, in_flight, max, picked);
            }
        }
    }

    /// Whether the free blocks of partial `piece` are better left to the
    /// other peers that have it: it is not the rarest thing a peer with
    /// `has` can give us, i.e. that peer has a startable piece of the same
    /// class with a lower availability. So a peer that alone has some
    /// pieces (a swarm's only seeder, whose upload everyone shares) spends
    /// its upload on them, not on a piece fellow peers can send. Never in
    /// `Sequential` mode, nor at the partial-piece cap (started pieces are
    /// finished first there). `rarest` caches the peer's rarest bucket per
    /// class (`None`: not computed yet).
    pub(super) fn leave_to_others(
        &self,
        piece: u32,
        has: &Bitfield,
        rarest: &mut [Option<Option<usize>>; CLASSES],
    ) -> bool {
        if self.mode == PickMode::Sequential || self.partials.len() >= self.max_partial {
            return false;
        }
        let Some(class) = class_of(self.priority[piece as usize]) else {
            return false;
        };
        if self.partials.get(&piece).is_none_or(|p| p.free == 0) {
            return false;
        }
        let own = bucket(self.availability[piece as usize]);
        // Cheap exit: nothing startable anywhere is rarer.
        if self
            .rarity
            .rarest_bucket(class, |_| true)
            .is_none_or(|b| b >= own)
        {
            return false;
        }
        let peer_rarest = *rarest[class]
            .get_or_insert_with(|| self.rarity.rarest_bucket(class, |p| has.get(p as usize)));
        peer_rarest.is_some_and(|b| b < own)
    }

    /// Marks free blocks of partial `piece` (wanted) requested, in order,
    /// until `picked` holds `max`. Skips blocks in `in_flight`.
    pub(super) fn take_free_blocks(
        &mut self,
        piece: u32,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        picked: &mut Vec<BlockInfo>,
    ) {
        let piece_len = self.piece_len(piece);
        let Some(partial) = self.partials.get_mut(&piece) else {
            return;
        };
        if partial.free == 0 {
            return;
        }
        for (b, state) in partial.blocks.iter_mut().enumerate() {
            if picked.len() >= max || partial.free == 0 {
                break;
            }
            if *state != BlockState::Free {
                continue;
            }
            let block = make_block(piece, b as u32, piece_len);
            if in_flight.contains(&block) {
                continue;
            }
            *state = BlockState::Requested(1);
            partial.free -= 1;
            partial.requested += 1;
            self.free_wanted_in_partials -= 1;
            picked.push(block);
        }
    }

    /// Endgame: blocks requested from others, not in `in_flight` nor already
    /// picked in this call, fewest requesters first.
    pub(super) fn pick_endgame(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        picked: &mut Vec<BlockInfo>,
    ) {
        let mut fresh = picked.clone();
        fresh.sort_unstable();
        let mut candidates: Vec<(u32, BlockInfo)> = Vec::new();
        for &piece in &self.order {
            if self.priority[piece as usize] == Priority::Skip || !has.get(piece as usize) {
                continue;
            }
            let Some(partial) = self.partials.get(&piece) else {
                continue;
            };
            let piece_len = self.piece_len(piece);
            for (b, state) in partial.blocks.iter().enumerate() {
                if let BlockState::Requested(n) = *state {
                    let block = make_block(piece, b as u32, piece_len);
                    if !in_flight.contains(&block) && fresh.binary_search(&block).is_err() {
                        candidates.push((n, block));
                    }
                }
            }
        }
        // Stable: equal counts keep oldest-piece-first order.
        candidates.sort_by_key(|&(n, _)| n);
        for (_, block) in candidates.into_iter().take(max - picked.len()) {
            if let Some(partial) = self.partials.get_mut(&block.piece) {
                if let BlockState::Requested(n) = &mut partial.blocks[block.index_in_piece()] {
                    *n = n.saturating_add(1);
                    picked.push(block);
                }
            }
        }
    }

    /// A partial piece with nothing requested nor received (its blocks were
    /// all in the caller's `in_flight`) goes back to missing. True if so.
    pub(super) fn give_back_if_untouched(&mut self, piece: u32) -> bool {
        let untouched = self
            .partials
            .get(&piece)
            .is_some_and(|p| p.requested == 0 && p.received == 0);
        if untouched {
            self.make_missing(piece);
        }
        untouched
    }
}
