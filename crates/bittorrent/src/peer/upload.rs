//! Validation and queueing of the requests a peer sends us. Pure.

use std::collections::{HashSet, VecDeque};

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::peer::PeerError;
use crate::types::BlockInfo;

/// Longest request we serve (8 blocks); longer ones disconnect the peer.
pub const MAX_REQUEST_LEN: u32 = 128 * 1024;
/// Requests a peer may have queued with us; more disconnect it (a flood).
pub const MAX_QUEUED_REQUESTS: usize = 512;
/// Most bytes read from the store in one go for one peer (the size of the
/// peer's reused upload buffers).
pub(crate) const MAX_READ: u64 = 256 * 1024;

/// Checks a request against the torrent and what we have.
///
/// # Errors
/// [`PeerError::BadRequest`] for an index past the end, a piece we do not
/// have, a zero or over-long length, or a range leaving the piece.
pub fn validate_request(
    block: BlockInfo,
    meta: &MetaInfo,
    have: &Bitfield,
) -> Result<(), PeerError> {
    let bad = |why: &'static str| Err(PeerError::BadRequest { block, why });
    if block.piece as usize >= meta.piece_count() {
        return bad("piece index out of range");
    }
    if block.length == 0 || block.length > MAX_REQUEST_LEN {
        return bad("bad length");
    }
    let end = u64::from(block.begin) + u64::from(block.length);
    if end > u64::from(meta.piece_len(block.piece)) {
        return bad("range past the end of the piece");
    }
    if !have.get(block.piece as usize) {
        return bad("piece we do not have");
    }
    Ok(())
}

/// A peer's queued requests, in arrival order. Every operation is O(1)
/// amortised: a cancel only forgets the request in `live` and leaves a stale
/// entry in `order`, skipped when it comes up; stale entries are swept once
/// they outnumber the live ones.
#[derive(Debug, Default)]
pub(crate) struct UploadQueue {
    /// Arrival order; may hold cancelled (stale) entries and repeats.
    order: VecDeque<BlockInfo>,
    /// The requests still wanted.
    live: HashSet<BlockInfo>,
}

impl UploadQueue {
    /// Queues a validated request. Returns whether it was queued (`false`:
    /// already queued).
    ///
    /// # Errors
    /// [`PeerError::RequestFlood`] when the queue is full.
    pub(crate) fn push(&mut self, block: BlockInfo) -> Result<bool, PeerError> {
        if self.live.contains(&block) {
            return Ok(false);
        }
        if self.live.len() >= MAX_QUEUED_REQUESTS {
            return Err(PeerError::RequestFlood(MAX_QUEUED_REQUESTS));
        }
        self.live.insert(block);
        self.order.push_back(block);
        if self.order.len() > 2 * MAX_QUEUED_REQUESTS {
            self.sweep();
        }
        Ok(true)
    }

    /// Whether `block` is queued.
    pub(crate) fn contains(&self, block: BlockInfo) -> bool {
        self.live.contains(&block)
    }

    /// Drops a request if still queued. Returns whether it was.
    pub(crate) fn cancel(&mut self, block: BlockInfo) -> bool {
        self.live.remove(&block)
    }

    /// Drops every request (we choked the peer).
    pub(crate) fn clear(&mut self) {
        self.order.clear();
        self.live.clear();
    }

    /// Takes every queued request, in arrival order (a request cancelled and
    /// asked again keeps its first place), leaving the queue
    /// empty (we choked a peer with the Fast extension: each is rejected or
    /// queued again).
    pub(crate) fn take_all(&mut self) -> Vec<BlockInfo> {
        let mut out = Vec::with_capacity(self.live.len());
        for block in self.order.drain(..) {
            if self.live.remove(&block) {
                out.push(block);
            }
        }
        self.live.clear();
        out
    }

    /// Whether no request is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.live.is_empty()
    }

    /// Queued requests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.live.len()
    }

    /// Takes the next run of requests that can be read in one go: the first
    /// queued request and those directly following it in the same piece, up to
    /// `MAX_READ` bytes.
    pub(crate) fn next_run(&mut self) -> Vec<BlockInfo> {
        let mut run: Vec<BlockInfo> = Vec::new();
        let mut bytes = 0u64;
        while let Some(next) = self.order.front().copied() {
            if !self.live.contains(&next) {
                // Cancelled, or a repeat of one already taken.
                self.order.pop_front();
                continue;
            }
            if let Some(last) = run.last() {
                let contiguous = next.piece == last.piece && next.begin == last.begin + last.length;
                if !contiguous || bytes + u64::from(next.length) > MAX_READ {
                    break;
                }
            }
            bytes += u64::from(next.length);
            run.push(next);
            self.live.remove(&next);
            self.order.pop_front();
        }
        run
    }

    /// Drops stale entries (O(n), once per n stale: O(1) amortised). Of
    /// repeats, the first stays.
    fn sweep(&mut self) {
        let mut kept = HashSet::with_capacity(self.live.len());
        let live = &self.live;
        self.order.retain(|b| live.contains(b) && kept.insert(*b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BLOCK_SIZE;

    fn meta(piece_length: u32, total: u64) -> MetaInfo {
        MetaInfo::for_test("x", piece_length, &[("x", total, false)])
    }

    fn block(piece: u32, begin: u32, length: u32) -> BlockInfo {
        BlockInfo {
            piece,
            begin,
            length,
        }
    }

    #[test]
    fn valid_requests_pass_and_bad_ones_are_refused() {
        // 3 pieces of 64 KiB, the last 1000 bytes long.
        let m = meta(65536, 2 * 65536 + 1000);
        let mut have = Bitfield::new(3);
        have.set(0);
        have.set(2);
        assert!(validate_request(block(0, 0, BLOCK_SIZE), &m, &have).is_ok());
        assert!(validate_request(block(0, 49152, BLOCK_SIZE), &m, &have).is_ok());
        assert!(validate_request(block(2, 0, 1000), &m, &have).is_ok());
        let refused = [
            block(3, 0, BLOCK_SIZE),          // past the last piece
            block(u32::MAX, 0, BLOCK_SIZE),   // absurd index
            block(1, 0, BLOCK_SIZE),          // a piece we lack
            block(0, 0, 0),                   // empty
            block(0, 0, MAX_REQUEST_LEN + 1), // over-long
            block(0, 65536 - 100, 200),       // leaves the piece
            block(2, 0, 1001),                // past the short last piece
            block(0, u32::MAX, BLOCK_SIZE),   // offset overflow
        ];
        for b in refused {
            assert!(
                validate_request(b, &m, &have).is_err(),
                "{b:?} should be refused"
            );
        }
    }

    #[test]
    fn queue_is_bounded_deduplicated_and_cancellable() {
        let mut q = UploadQueue::default();
        for i in 0..MAX_QUEUED_REQUESTS as u32 {
            q.push(block(i, 0, BLOCK_SIZE)).unwrap();
        }
        q.push(block(0, 0, BLOCK_SIZE)).unwrap();
        assert_eq!(q.len(), MAX_QUEUED_REQUESTS, "duplicate not queued twice");
        assert!(matches!(
            q.push(block(9999, 0, BLOCK_SIZE)),
            Err(PeerError::RequestFlood(_))
        ));
        assert!(q.cancel(block(0, 0, BLOCK_SIZE)));
        assert!(!q.cancel(block(0, 0, BLOCK_SIZE)));
        assert_eq!(q.len(), MAX_QUEUED_REQUESTS - 1);
        q.clear();
        assert_eq!(q.len(), 0);
        // Taking all gives the live ones in order, once each.
        for i in [3, 1, 2] {
            q.push(block(i, 0, BLOCK_SIZE)).unwrap();
        }
        q.cancel(block(1, 0, BLOCK_SIZE));
        q.push(block(1, 0, BLOCK_SIZE)).unwrap();
        let mut all: Vec<u32> = q.take_all().iter().map(|b| b.piece).collect();
        assert_eq!(all[0], 3, "arrival order");
        all.sort_unstable();
        assert_eq!(all, [1, 2, 3]);
        assert_eq!(q.len(), 0);
        assert!(q.next_run().is_empty());
    }

    #[test]
    fn runs_join_contiguous_blocks_of_one_piece() {
        let mut q = UploadQueue::default();
        for begin in [0, BLOCK_SIZE, 2 * BLOCK_SIZE] {
            q.push(block(5, begin, BLOCK_SIZE)).unwrap();
        }
        q.push(block(5, 10 * BLOCK_SIZE, BLOCK_SIZE)).unwrap();
        q.push(block(6, 0, BLOCK_SIZE)).unwrap();
        assert_eq!(q.next_run().len(), 3);
        assert_eq!(q.next_run(), vec![block(5, 10 * BLOCK_SIZE, BLOCK_SIZE)]);
        assert_eq!(q.next_run(), vec![block(6, 0, BLOCK_SIZE)]);
        assert!(q.next_run().is_empty());
        // A run stops at MAX_READ bytes.
        for i in 0..32 {
            q.push(block(7, i * BLOCK_SIZE, BLOCK_SIZE)).unwrap();
        }
        assert_eq!(q.next_run().len() as u64, MAX_READ / u64::from(BLOCK_SIZE));
    }

    #[test]
    fn request_cancel_floods_stay_bounded_and_serve_each_block_once() {
        let mut q = UploadQueue::default();
        let a = block(1, 0, BLOCK_SIZE);
        let b = block(1, BLOCK_SIZE, BLOCK_SIZE);
        for _ in 0..100_000 {
            assert!(q.push(a).unwrap());
            assert!(q.cancel(a));
        }
        assert!(
            q.order.len() <= 2 * MAX_QUEUED_REQUESTS + 1,
            "stale entries swept"
        );
        assert_eq!(q.len(), 0);
        // Cancel then ask again: served once, in one run with its neighbour.
        q.push(a).unwrap();
        q.cancel(a);
        q.push(b).unwrap();
        q.push(a).unwrap();
        let mut run = q.next_run();
        run.extend(q.next_run());
        run.sort();
        assert_eq!(run, vec![a, b]);
        assert!(q.next_run().is_empty());
    }
}
