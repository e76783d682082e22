//! Blocks a peer sends that we are not waiting for: late ones that crossed
//! our cancel on the wire (fine), and ones we never asked for (a peer that
//! sends too many is dropped). Pure.

/// The unasked-for blocks of one peer.
#[derive(Debug, Default)]
pub(crate) struct UnaskedBlocks {
    /// Bytes of blocks we cancelled at the peer and have not seen since.
    cancelled: u64,
    /// Bytes of blocks received that we never requested (or had already
    /// received back for every cancel).
    unrequested: u64,
}

impl UnaskedBlocks {
    /// Bytes of never-requested blocks a peer may send before it is dropped.
    pub(crate) const LIMIT: u64 = 2 * 1024 * 1024;

    /// We sent the peer a cancel for a block of `len` bytes.
    pub(crate) fn cancelled(&mut self, len: u64) {
        self.cancelled = self.cancelled.saturating_add(len);
    }

    /// A cancelled request of `len` bytes was answered with a reject (BEP 6)
    /// rather than the block: no block is owed for it any more.
    pub(crate) fn answered(&mut self, len: u64) {
        self.cancelled = self.cancelled.saturating_sub(len);
    }

    /// A block of `len` bytes arrived that no request of ours is waiting
    /// for. It is a late answer to a cancel as long as cancelled bytes are
    /// unaccounted for; otherwise it counts against the peer. True when
    /// the peer is over [`UnaskedBlocks::LIMIT`] and must be dropped.
    pub(crate) fn arrived(&mut self, len: u64) -> bool {
        let late = len.min(self.cancelled);
        self.cancelled -= late;
        self.unrequested = self.unrequested.saturating_add(len - late);
        self.unrequested > Self::LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BLOCK: u64 = 16 * 1024;

    #[test]
    fn blocks_that_crossed_a_cancel_never_count() {
        let mut unasked = UnaskedBlocks::default();
        // 3 MiB cancelled (more than the limit), and every block arrives.
        for _ in 0..192 {
            unasked.cancelled(BLOCK);
        }
        for _ in 0..192 {
            assert!(!unasked.arrived(BLOCK));
        }
        // Then never-requested data: dropped once over the limit.
        let limit_blocks = UnaskedBlocks::LIMIT / BLOCK;
        for _ in 0..limit_blocks {
            assert!(!unasked.arrived(BLOCK));
        }
        assert!(unasked.arrived(BLOCK));
    }

    #[test]
    fn a_peer_sending_what_nobody_asked_for_is_dropped() {
        let mut unasked = UnaskedBlocks::default();
        unasked.cancelled(BLOCK);
        assert!(!unasked.arrived(UnaskedBlocks::LIMIT));
        assert!(unasked.arrived(2 * BLOCK), "one block's credit, not more");
    }

    #[test]
    fn a_cancel_answered_by_a_reject_leaves_no_credit() {
        let mut unasked = UnaskedBlocks::default();
        unasked.cancelled(BLOCK);
        unasked.answered(BLOCK);
        unasked.answered(BLOCK);
        assert!(!unasked.arrived(UnaskedBlocks::LIMIT));
        assert!(unasked.arrived(1), "the rejected cancel gave no credit");
    }
}
