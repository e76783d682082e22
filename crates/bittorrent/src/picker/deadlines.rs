//! Deadlines (time-critical pieces) and the urgent step of a pick: see the
//! module docs of `picker`, "Deadlines".

use std::collections::HashSet;
use std::time::Instant;

use crate::bitfield::Bitfield;
use crate::picker::geometry::make_block;
use crate::picker::{BlockState, PickMode, Picker, PieceState, Priority};
use crate::types::BlockInfo;

impl Picker {
    /// Makes piece `index` urgent: in [`PickMode::Streaming`] it is picked
    /// before everything else, earliest deadline first (see the module
    /// docs). Replaces any previous deadline of the piece. Returns false, and
    /// records nothing, for out-of-range, `Skip` and verified pieces (a
    /// `Skip` piece is never requested, deadline or not).
    pub fn set_deadline(&mut self, index: u32, deadline: Instant) -> bool {
        let i = index as usize;
        if i >= self.piece_count
            || self.priority[i] == Priority::Skip
            || self.state[i] == PieceState::Verified
        {
            return false;
        }
        self.remove_deadline(index);
        let at = self
            .deadlines
            .partition_point(|&entry| entry < (deadline, index));
        self.deadlines.insert(at, (deadline, index));
        self.urgent.set(i);
        true
    }

    /// Piece `index` is no longer urgent (no-op if it was not).
    pub fn clear_deadline(&mut self, index: u32) {
        self.remove_deadline(index);
    }

    #[cfg(test)]
    /// No piece is urgent any more.
    pub fn clear_deadlines(&mut self) {
        for (_, piece) in self.deadlines.drain(..) {
            self.urgent.clear(piece as usize);
        }
    }

    /// The deadline of piece `index`, if it has one.
    pub fn deadline(&self, index: u32) -> Option<Instant> {
        if !self.urgent.get(index as usize) {
            return None;
        }
        self.deadlines
            .iter()
            .find(|&&(_, p)| p == index)
            .map(|&(d, _)| d)
    }

    #[cfg(test)]
    /// Number of pieces with a deadline.
    pub fn deadline_count(&self) -> usize {
        self.deadlines.len()
    }

    /// True when a block may be requested from several peers at once: in
    /// endgame, or in `Streaming` mode while deadlines are set (urgent
    /// duplicates). The torrent then withdraws the other requests of a
    /// block that arrived. (Duplicates handed out before the last deadline
    /// was cleared may still arrive; they are reported
    /// [`Received::Duplicate`](crate::picker::Received::Duplicate).)
    pub fn may_have_duplicates(&self) -> bool {
        self.deadlines_active() || self.in_endgame()
    }

    /// Whether deadlines take effect now.
    pub(super) fn deadlines_active(&self) -> bool {
        self.mode != PickMode::RarestFirst && !self.deadlines.is_empty()
    }

    /// Step 0 of a pick: urgent pieces the peer has, earliest deadline
    /// first; free blocks (reserved for fast peers until the deadline is
    /// near), then near the deadline duplicates for fast peers.
    pub(super) fn pick_urgent(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        now: Option<Instant>,
        fast: bool,
        picked: &mut Vec<BlockInfo>,
    ) {
        let mut k = 0;
        while k < self.deadlines.len() && picked.len() < max {
            let (deadline, piece) = self.deadlines[k];
            k += 1;
            if !has.get(piece as usize) {
                continue;
            }
            // An overflowing `now + URGENT_NEAR` is later than any deadline.
            let near = now.is_some_and(|t| {
                t.checked_add(Self::URGENT_NEAR)
                    .is_none_or(|soon| soon >= deadline)
            });
            if !fast && !near {
                continue;
            }
            match self.state[piece as usize] {
                PieceState::Missing => self.start_piece(piece),
                PieceState::Partial => {}
                PieceState::Complete | PieceState::Verified => continue,
            }
            let first = picked.len();
            self.take_free_blocks(piece, in_flight, max, picked);
            if near && fast {
                self.duplicate_urgent(piece, in_flight, max, first, picked);
            }
            self.give_back_if_untouched(piece);
        }
    }

    /// Near-deadline duplicates of urgent `piece` (partial): blocks requested
    /// from fewer than [`Picker::MAX_URGENT_REQUESTERS`] peers, not in
    /// `in_flight`, not in `picked[first..]` (the blocks of this piece
    /// picked in this call).
    pub(super) fn duplicate_urgent(
        &mut self,
        piece: u32,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
        first: usize,
        picked: &mut Vec<BlockInfo>,
    ) {
        let piece_len = self.piece_len(piece);
        let Some(partial) = self.partials.get_mut(&piece) else {
            return;
        };
        for (b, state) in partial.blocks.iter_mut().enumerate() {
            if picked.len() >= max {
                break;
            }
            let BlockState::Requested(n) = state else {
                continue;
            };
            if *n >= Self::MAX_URGENT_REQUESTERS {
                continue;
            }
            let block = make_block(piece, b as u32, piece_len);
            if in_flight.contains(&block) || picked[first..].contains(&block) {
                continue;
            }
            *n += 1;
            picked.push(block);
        }
    }

    /// Drops the deadline of `piece`, if any.
    pub(super) fn remove_deadline(&mut self, piece: u32) {
        if self.urgent.clear(piece as usize) {
            self.deadlines.retain(|&(_, p)| p != piece);
        }
    }
}
