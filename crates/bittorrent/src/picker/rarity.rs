//! The startable pieces (wanted and missing) of a torrent, kept ordered by
//! priority class and availability, so rarest-first costs `O(1)` per
//! availability change and usually `O(1)` per piece started, instead of a
//! scan over every piece.

use rand::Rng;

/// Availability above this shares the top bucket (bounds the bucket table).
const MAX_BUCKET: u32 = 1 << 12;

/// Position marker for pieces not in the order.
const ABSENT: u32 = u32::MAX;

/// Number of priority classes: 0 is `High`, 1 is `Normal`.
pub(crate) const CLASSES: usize = 2;

/// One priority class: pieces grouped in buckets of equal availability,
/// rarest bucket first. Bucket `b` is `pieces[start[b]..start[b + 1]]`
/// (the last bucket runs to the end).
#[derive(Debug, Default)]
struct Class {
    pieces: Vec<u32>,
    start: Vec<usize>,
}

impl Class {
    fn end(&self, b: usize) -> usize {
        self.start.get(b + 1).copied().unwrap_or(self.pieces.len())
    }
}

/// Startable pieces ordered by (class, availability bucket). A piece is in
/// at most one class, at the position recorded in `pos`.
#[derive(Debug)]
pub(crate) struct RarityOrder {
    classes: [Class; CLASSES],
    pos: Vec<u32>,
}

/// The bucket of an availability count.
pub(crate) fn bucket(availability: u32) -> usize {
    availability.min(MAX_BUCKET) as usize
}

impl RarityOrder {
    /// An empty order for `piece_count` pieces.
    pub(crate) fn new(piece_count: usize) -> Self {
        Self {
            classes: Default::default(),
            pos: vec![ABSENT; piece_count],
        }
    }

    /// Number of startable pieces.
    pub(crate) fn len(&self) -> usize {
        self.classes.iter().map(|c| c.pieces.len()).sum()
    }

    /// Number of startable pieces of `class` (0 for an unknown class).
    pub(crate) fn class_len(&self, class: usize) -> usize {
        self.classes.get(class).map_or(0, |c| c.pieces.len())
    }

    /// Whether `piece` is in the order.
    pub(crate) fn contains(&self, piece: u32) -> bool {
        self.pos.get(piece as usize).is_some_and(|&p| p != ABSENT)
    }

    fn place(&mut self, class: usize, index: usize) {
        let piece = self.classes[class].pieces[index];
        self.pos[piece as usize] = index as u32;
    }

    fn swap(&mut self, class: usize, a: usize, b: usize) {
        if a != b {
            self.classes[class].pieces.swap(a, b);
            self.place(class, a);
            self.place(class, b);
        }
    }

    /// Adds `piece` (absent) to `class` in bucket `b`. `O(buckets)`.
    pub(crate) fn insert(&mut self, piece: u32, class: usize, b: usize) {
        if self.contains(piece) || piece as usize >= self.pos.len() {
            return;
        }
        let c = &mut self.classes[class];
        while c.start.len() <= b {
            c.start.push(c.pieces.len());
        }
        c.pieces.push(piece);
        let top = c.start.len() - 1;
        self.place(class, self.classes[class].pieces.len() - 1);
        // Walk down from the top bucket: the piece is the last of bucket k;
        // swapping it with the first of k and shrinking k makes it the last
        // of k - 1.
        for k in (b + 1..=top).rev() {
            let first = self.classes[class].start[k];
            let at = self.pos[piece as usize] as usize;
            self.swap(class, at, first);
            self.classes[class].start[k] += 1;
        }
    }

    /// Removes `piece` from `class`, where it sits in bucket `b`.
    /// `O(buckets)`.
    pub(crate) fn remove(&mut self, piece: u32, class: usize, b: usize) {
        if !self.contains(piece) {
            return;
        }
        let top = self.classes[class].start.len() - 1;
        // Walk up: the last of bucket k becomes the first of k + 1.
        for k in b..top {
            let last = self.classes[class].end(k) - 1;
            let at = self.pos[piece as usize] as usize;
            self.swap(class, at, last);
            self.classes[class].start[k + 1] -= 1;
        }
        let last = self.classes[class].pieces.len() - 1;
        let at = self.pos[piece as usize] as usize;
        self.swap(class, at, last);
        self.classes[class].pieces.pop();
        self.pos[piece as usize] = ABSENT;
    }

    /// `piece` in `class` moved from bucket `from` to `from + 1`. `O(1)`.
    pub(crate) fn bump_up(&mut self, piece: u32, class: usize, from: usize) {
        if !self.contains(piece) {
            return;
        }
        let c = &mut self.classes[class];
        if c.start.len() <= from + 1 {
            c.start.push(c.pieces.len());
        }
        let last = self.classes[class].end(from) - 1;
        let at = self.pos[piece as usize] as usize;
        self.swap(class, at, last);
        self.classes[class].start[from + 1] -= 1;
    }

    /// `piece` in `class` moved from bucket `from` (> 0) to `from - 1`.
    /// `O(1)`.
    pub(crate) fn bump_down(&mut self, piece: u32, class: usize, from: usize) {
        if !self.contains(piece) || from == 0 {
            return;
        }
        let first = self.classes[class].start[from];
        let at = self.pos[piece as usize] as usize;
        self.swap(class, at, first);
        self.classes[class].start[from] += 1;
    }

    /// A startable piece that is `eligible` (typically: the peer has it):
    /// the best class first; within it a uniformly random start point in the
    /// rarest bucket holding an eligible piece (or in the whole class when
    /// `ignore_rarity`), scanning on from there. Costs the buckets visited
    /// plus the pieces skipped because they are not eligible.
    pub(crate) fn choose(
        &self,
        eligible: impl Fn(u32) -> bool,
        ignore_rarity: bool,
        rng: &mut impl Rng,
    ) -> Option<u32> {
        for c in &self.classes {
            if c.pieces.is_empty() {
                continue;
            }
            let ranges: Box<dyn Iterator<Item = (usize, usize)>> = if ignore_rarity {
                Box::new(std::iter::once((0, c.pieces.len())))
            } else {
                Box::new((0..c.start.len()).map(|b| (c.start[b], c.end(b))))
            };
            for (lo, hi) in ranges {
                if lo == hi {
                    continue;
                }
                let offset = rng.gen_range(lo..hi);
                let found = c.pieces[offset..hi]
                    .iter()
                    .chain(&c.pieces[lo..offset])
                    .find(|&&p| eligible(p));
                if let Some(&p) = found {
                    return Some(p);
                }
            }
        }
        None
    }

    /// The rarest availability bucket of `class` holding an `eligible`
    /// piece (`None`: no such piece). Costs the buckets visited plus the
    /// pieces skipped because they are not eligible.
    pub(crate) fn rarest_bucket(
        &self,
        class: usize,
        eligible: impl Fn(u32) -> bool,
    ) -> Option<usize> {
        let c = self.classes.get(class)?;
        (0..c.start.len()).find(|&b| c.pieces[c.start[b]..c.end(b)].iter().any(|&p| eligible(p)))
    }

    /// The lowest-index `eligible` piece of `class`. `O(pieces in class)`.
    pub(crate) fn lowest_in_class(
        &self,
        class: usize,
        eligible: impl Fn(u32) -> bool,
    ) -> Option<u32> {
        self.classes
            .get(class)?
            .pieces
            .iter()
            .copied()
            .filter(|&p| eligible(p))
            .min()
    }

    /// Asserts the order matches `expected(piece) -> Option<(class, bucket)>`
    /// (tests only).
    #[cfg(test)]
    pub(crate) fn assert_matches(&self, expected: impl Fn(u32) -> Option<(usize, usize)>) {
        for piece in 0..self.pos.len() as u32 {
            match expected(piece) {
                None => assert!(!self.contains(piece), "piece {piece} should be absent"),
                Some((class, b)) => {
                    assert!(self.contains(piece), "piece {piece} should be present");
                    let at = self.pos[piece as usize] as usize;
                    let c = &self.classes[class];
                    assert_eq!(c.pieces.get(at), Some(&piece), "piece {piece} class");
                    assert!(c.start[b] <= at && at < c.end(b), "piece {piece} bucket");
                }
            }
        }
        for c in &self.classes {
            assert!(c.start.windows(2).all(|w| w[0] <= w[1]));
            assert!(c.start.first().is_none_or(|&s| s == 0));
            assert!(c.start.last().is_none_or(|&s| s <= c.pieces.len()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitfield::Bitfield;
    use rand::rngs::StdRng;
    use rand::SeedableRng;
    use std::collections::HashMap;

    #[test]
    fn random_operations_keep_buckets_consistent() {
        let mut rng = StdRng::seed_from_u64(3);
        let n = 50u32;
        let mut order = RarityOrder::new(n as usize);
        let mut model: HashMap<u32, (usize, usize)> = HashMap::new();
        for _ in 0..20_000 {
            let piece = rng.gen_range(0..n);
            match (model.get(&piece).copied(), rng.gen_range(0..4)) {
                (None, _) => {
                    let entry = (rng.gen_range(0..CLASSES), rng.gen_range(0..6));
                    order.insert(piece, entry.0, entry.1);
                    model.insert(piece, entry);
                }
                (Some((c, b)), 0) => {
                    order.remove(piece, c, b);
                    model.remove(&piece);
                }
                (Some((c, b)), 1) => {
                    order.bump_up(piece, c, b);
                    model.insert(piece, (c, b + 1));
                }
                (Some((c, b)), _) if b > 0 => {
                    order.bump_down(piece, c, b);
                    model.insert(piece, (c, b - 1));
                }
                _ => {}
            }
            order.assert_matches(|p| model.get(&p).copied());
            assert_eq!(order.len(), model.len());
        }
    }

    #[test]
    fn choose_prefers_class_then_rarest_bucket_among_pieces_the_peer_has() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut order = RarityOrder::new(8);
        order.insert(0, 1, 0); // Normal, rarest
        order.insert(1, 1, 2);
        order.insert(2, 1, 1);
        order.insert(3, 0, 5); // High, common
        let mut has = Bitfield::full(8);
        assert_eq!(
            order.choose(|p| has.get(p as usize), false, &mut rng),
            Some(3)
        );
        has.clear(3);
        assert_eq!(
            order.choose(|p| has.get(p as usize), false, &mut rng),
            Some(0)
        );
        has.clear(0);
        assert_eq!(
            order.choose(|p| has.get(p as usize), false, &mut rng),
            Some(2)
        );
        has.clear(2);
        assert_eq!(
            order.choose(|p| has.get(p as usize), false, &mut rng),
            Some(1)
        );
        has.clear(1);
        assert_eq!(order.choose(|p| has.get(p as usize), false, &mut rng), None);
        assert_eq!(order.choose(|_| false, true, &mut rng), None);
    }
}
