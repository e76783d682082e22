//! Runs of whole pieces for web seeds (BEP 19): an HTTP server reads best
//! in long sequential ranges, so a web seed is handed contiguous missing
//! pieces, away from what the peers fetch.
//!
//! # Which run
//! A run is made of pieces that are missing (no block requested nor
//! received) and wanted (not `Skip`), contiguous, at most `max_pieces`
//! long. While some `High` piece is startable, runs are made of `High`
//! pieces only. Where it starts:
//!
//! 1. at `continue_at` (where this web seed's last run ended) if that piece
//!    is still startable: the server goes on reading sequentially;
//! 2. in [`PickMode::Sequential`], at the lowest-index startable piece;
//! 3. otherwise in the longest stretch of startable pieces (the lowest one
//!    among equals): at its start when nothing is in progress just before
//!    it, else in its middle, so that whoever fetches the piece before it
//!    can go on into the first half. Several web seeds so split the missing
//!    pieces the way the peers leave them, rather than follow each other.
//!
//! Pieces with a deadline are not treated apart: a slow web seed holding
//! one is overtaken by fast peers' urgent duplicates near the deadline.
//!
//! # What picking does
//! Every block of every piece of the run is marked requested (once), so
//! peers are not handed them, except as endgame duplicates. The torrent
//! feeds the pieces' blocks through [`Picker::block_received`] as they
//! arrive and gives back the pieces the server did not deliver with
//! [`Picker::cancel_piece`].
//!
//! The partial-piece cap is not applied: a run's pieces cost no buffer
//! until they arrive, and each arrives whole (the torrent raises the cap by
//! the pieces its runs hold, so peers are not held back by them).
//!
//! # Cost
//! `O(pieces)` for a run that does not continue the last one (a scan of the
//! piece states), plus `O(blocks)` of the run; continuing is `O(run)`.

use std::ops::Range;

use crate::picker::geometry::make_block;
use crate::picker::{BlockState, PickMode, Picker, PieceState, Priority, HIGH};

impl Picker {
    /// Picks a run of at most `max_pieces` whole pieces for a web seed and
    /// marks every block of them requested (see the module docs of
    /// `picker::runs` for which run). `continue_at` is where this web
    /// seed's previous run ended. `None` when no wanted piece is missing or
    /// `max_pieces` is 0.
    pub fn pick_run(&mut self, max_pieces: u32, continue_at: Option<u32>) -> Option<Range<u32>> {
        if max_pieces == 0 || self.rarity.len() == 0 {
            return None;
        }
        let high_only = self.rarity.class_len(HIGH) > 0;
        let startable = |p: &Self, piece: u32| {
            p.rarity.contains(piece) && (!high_only || p.priority[piece as usize] == Priority::High)
        };
        let start = match continue_at.filter(|&piece| startable(self, piece)) {
            Some(piece) => piece,
            None if self.mode == PickMode::Sequential => (self.seq_hint as u32
                ..self.piece_count as u32)
                .find(|&piece| startable(self, piece))?,
            None => self.longest_stretch_start(startable)?,
        };
        let mut end = start;
        while end - start < max_pieces && (end as usize) < self.piece_count && startable(self, end)
        {
            self.start_piece(end);
            self.request_whole_piece(end);
            end += 1;
        }
        Some(start..end)
    }

    /// Undoes one request of every block of `piece` (a web seed's run did
    /// not deliver it): as [`Picker::cancel`] for each block, so a piece
    /// nobody else touched is missing again. Other states are left alone.
    pub fn cancel_piece(&mut self, piece: u32) {
        let piece_len = self.piece_len(piece);
        for b in 0..self.blocks_in_piece(piece) {
            self.cancel(make_block(piece, b, piece_len));
        }
    }

    /// One more request of every block of partial piece `piece` not
    /// received yet: a second web seed fetches the piece a slow one is on.
    /// Undone by [`Picker::cancel_piece`]. False (and nothing done) when
    /// the piece is not partial.
    pub fn request_piece_again(&mut self, piece: u32) -> bool {
        let wanted = self.priority.get(piece as usize) != Some(&Priority::Skip);
        let Some(partial) = self.partials.get_mut(&piece) else {
            return false;
        };
        for state in &mut partial.blocks {
            match *state {
                BlockState::Free => {
                    *state = BlockState::Requested(1);
                    partial.free -= 1;
                    partial.requested += 1;
                    if wanted {
                        self.free_wanted_in_partials -= 1;
                    }
                }
                BlockState::Requested(n) => *state = BlockState::Requested(n + 1),
                BlockState::Received => {}
            }
        }
        true
    }

    /// Whether piece `index` is partial or complete: someone is fetching it
    /// or it is being verified.
    fn in_progress(&self, index: usize) -> bool {
        matches!(
            self.state.get(index),
            Some(PieceState::Partial | PieceState::Complete)
        )
    }

    /// Where to start a run in the longest stretch of pieces for which
    /// `startable` holds (rule 3 of the module docs).
    fn longest_stretch_start(&self, startable: impl Fn(&Self, u32) -> bool) -> Option<u32> {
        let mut best: Option<Range<u32>> = None;
        let mut piece = 0u32;
        let count = self.piece_count as u32;
        while piece < count {
            if !startable(self, piece) {
                piece += 1;
                continue;
            }
            let start = piece;
            while piece < count && startable(self, piece) {
                piece += 1;
            }
            if best.as_ref().is_none_or(|b| b.len() < (start..piece).len()) {
                best = Some(start..piece);
            }
        }
        let best = best?;
        let touches = best.start > 0 && self.in_progress(best.start as usize - 1);
        if touches {
            Some(best.start + (best.end - best.start) / 2)
        } else {
            Some(best.start)
        }
    }

    /// Marks every block of piece `piece`, just started, requested once.
    fn request_whole_piece(&mut self, piece: u32) {
        let wanted = self.priority[piece as usize] != Priority::Skip;
        let Some(partial) = self.partials.get_mut(&piece) else {
            return;
        };
        for state in &mut partial.blocks {
            if *state == BlockState::Free {
                *state = BlockState::Requested(1);
                partial.free -= 1;
                partial.requested += 1;
                if wanted {
                    self.free_wanted_in_partials -= 1;
                }
            }
        }
    }
}
