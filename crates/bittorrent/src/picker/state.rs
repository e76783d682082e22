//! Moves between piece states and the counters kept in step with them; the
//! invariant "a piece is in exactly one state" is enforced here.

use crate::picker::rarity::bucket;
use crate::picker::{class_of, BlockState, PartialPiece, Picker, PieceState, Priority};

impl Picker {
    /// Whether piece `index` has blocks requested or received but is not
    /// verified yet (partial, or complete awaiting its hash check).
    pub(crate) fn is_started(&self, index: u32) -> bool {
        matches!(
            self.state.get(index as usize),
            Some(PieceState::Partial | PieceState::Complete)
        )
    }

    /// Adds missing piece `piece` to the startable pieces if it is wanted.
    pub(super) fn make_startable(&mut self, piece: u32) {
        let i = piece as usize;
        if let Some(class) = class_of(self.priority[i]) {
            self.rarity
                .insert(piece, class, bucket(self.availability[i]));
            self.seq_hint = self.seq_hint.min(i);
        }
    }

    pub(super) fn availability_up(&mut self, i: usize) {
        let old = self.availability[i];
        self.availability[i] = old.saturating_add(1);
        if bucket(old) != bucket(self.availability[i]) {
            if let Some(class) = class_of(self.priority[i]) {
                self.rarity.bump_up(i as u32, class, bucket(old));
            }
        }
    }

    pub(super) fn availability_down(&mut self, i: usize) {
        let old = self.availability[i];
        self.availability[i] = old.saturating_sub(1);
        if bucket(old) != bucket(self.availability[i]) {
            if let Some(class) = class_of(self.priority[i]) {
                self.rarity.bump_down(i as u32, class, bucket(old));
            }
        }
    }

    /// Missing → partial, every block free.
    pub(super) fn start_piece(&mut self, piece: u32) {
        let i = piece as usize;
        debug_assert_eq!(self.state[i], PieceState::Missing);
        let n = self.blocks_in_piece(piece);
        self.state[i] = PieceState::Partial;
        self.missing_count -= 1;
        if let Some(class) = class_of(self.priority[i]) {
            self.rarity
                .remove(piece, class, bucket(self.availability[i]));
        }
        self.partials.insert(
            piece,
            PartialPiece {
                blocks: vec![BlockState::Free; n as usize],
                free: n,
                requested: 0,
                received: 0,
            },
        );
        self.order.push(piece);
        if self.priority[i] != Priority::Skip {
            self.free_wanted_in_partials += n as usize;
        }
    }

    /// Drops the per-block state of partial `piece` (the caller sets the new
    /// state).
    pub(super) fn remove_partial(&mut self, piece: u32) {
        if let Some(partial) = self.partials.remove(&piece) {
            if self.priority[piece as usize] != Priority::Skip {
                self.free_wanted_in_partials -= partial.free as usize;
            }
            if let Some(pos) = self.order.iter().position(|&p| p == piece) {
                self.order.remove(pos);
            }
        }
    }

    /// Partial or complete → missing.
    pub(super) fn make_missing(&mut self, piece: u32) {
        let i = piece as usize;
        match self.state[i] {
            PieceState::Missing | PieceState::Verified => return,
            PieceState::Partial => self.remove_partial(piece),
            PieceState::Complete => {}
        }
        self.state[i] = PieceState::Missing;
        self.missing_count += 1;
        self.make_startable(piece);
    }

    /// Any state → verified.
    pub(super) fn make_verified(&mut self, piece: u32) {
        let i = piece as usize;
        match self.state[i] {
            PieceState::Verified => return,
            PieceState::Missing => {
                self.missing_count -= 1;
                if let Some(class) = class_of(self.priority[i]) {
                    self.rarity
                        .remove(piece, class, bucket(self.availability[i]));
                }
            }
            PieceState::Partial => self.remove_partial(piece),
            PieceState::Complete => {}
        }
        self.state[i] = PieceState::Verified;
        self.have.set(i);
        self.wanted.clear(i);
        self.remove_deadline(piece);
    }

    /// Recomputes every derived field and asserts it matches (tests only).
    #[cfg(test)]
    pub(super) fn assert_consistent(&self) {
        let mut missing = 0;
        let mut free_wanted = 0;
        for i in 0..self.piece_count {
            let st = self.state[i];
            let wanted = self.priority[i] != Priority::Skip;
            assert_eq!(self.have.get(i), st == PieceState::Verified, "have {i}");
            assert_eq!(
                self.wanted.get(i),
                wanted && st != PieceState::Verified,
                "wanted {i}"
            );
            assert_eq!(
                self.partials.contains_key(&(i as u32)),
                st == PieceState::Partial,
                "partial {i}"
            );
            if st == PieceState::Missing {
                missing += 1;
            }
            if let Some(p) = self.partials.get(&(i as u32)) {
                let count = |f: fn(&BlockState) -> bool| p.blocks.iter().filter(|b| f(b)).count();
                assert_eq!(p.free as usize, count(|b| *b == BlockState::Free));
                assert_eq!(p.received as usize, count(|b| *b == BlockState::Received));
                assert_eq!(
                    p.requested as usize,
                    count(|b| matches!(b, BlockState::Requested(_)))
                );
                assert!(!p.blocks.contains(&BlockState::Requested(0)));
                assert!(p.requested + p.received > 0, "empty partial {i}");
                assert!((p.received as usize) < p.blocks.len(), "full partial {i}");
                if wanted {
                    free_wanted += p.free as usize;
                }
            }
        }
        assert_eq!(self.missing_count, missing);
        self.rarity.assert_matches(|piece| {
            let i = piece as usize;
            (self.state[i] == PieceState::Missing)
                .then(|| class_of(self.priority[i]))
                .flatten()
                .map(|class| (class, bucket(self.availability[i])))
        });
        assert_eq!(self.free_wanted_in_partials, free_wanted);
        assert_eq!(self.order.len(), self.partials.len());
        assert!(self.order.iter().all(|p| self.partials.contains_key(p)));
        // Deadlines: sorted, one per piece, mirrored in `urgent`, only on
        // wanted unverified pieces.
        assert!(self.deadlines.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(self.urgent.count_ones(), self.deadlines.len());
        for &(_, piece) in &self.deadlines {
            let i = piece as usize;
            assert!(self.urgent.get(i), "urgent {i}");
            assert!(self.wanted.get(i), "deadline on unwanted {i}");
        }
        assert!((0..self.seq_hint).all(|p| !self.rarity.contains(p as u32)));
    }
}
