//! The piece flow: which blocks to ask for (the picker), blocks assembled
//! into pieces, complete pieces queued for verification, and what a failed
//! hash check costs its senders (strikes and bans). Pure.
//!
//! Invariants: `buffers` holds the blocks of partly received pieces; a piece
//! leaves it when complete and is then verified exactly once (it is queued or
//! verifying, never both). A verification whose result is lost puts its
//! piece back to missing.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::metainfo::MetaInfo;
use crate::picker::{Picker, Received};
use crate::store::StoreError;
use crate::torrent::core::piece::{Contributor, PieceBuffer};
use crate::torrent::core::verify::{SuspectBlock, Verified, VerifyJob};
use crate::torrent::core::Action;
use crate::types::BlockInfo;

/// Bytes of complete pieces allowed to wait for or be in verification before
/// we stop requesting (backpressure when hashing and disk are slower than the
/// network). With the request budget (`peers.rs`) it bounds the piece data
/// held in memory: what is requested lands on top of this when it binds.
pub(crate) const MAX_VERIFY_BACKLOG: u64 = 4 * 1024 * 1024;
/// Failed pieces a peer may have co-contributed to (without being identified
/// as the culprit) before it is banned anyway.
pub(crate) const BAN_THRESHOLD: u32 = 4;

/// Why a peer is banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum BanReason {
    /// It alone sent a piece that failed its hash check.
    SoleSender,
    /// Its block of a failed piece differed from the data that verified.
    BadBlock,
    /// It sent blocks of too many pieces that failed.
    Strikes,
}

impl fmt::Display for BanReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::SoleSender => "it alone sent a piece that failed its hash check",
            Self::BadBlock => "its block of a failed piece differed from the verified data",
            Self::Strikes => "it sent data to too many pieces that failed hash checks",
        })
    }
}

/// What became of a block that arrived for a request of ours.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BlockFate {
    /// Kept; `complete` when it was the last block of its piece (the piece
    /// is queued for verification).
    Kept { complete: bool },
    /// Another copy came first (or the piece is no longer partial).
    Wasted,
}

/// What a finished verification means for the torrent.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Stored; the piece is verified.
    Good,
    /// The hash did not match; the piece is missing again.
    Failed { contributors: Vec<Contributor> },
    /// The store could not take the piece.
    StoreFailed(StoreError),
}

/// Pieces from request to verified.
#[derive(Debug)]
pub(crate) struct PieceFlow {
    meta: Arc<MetaInfo>,
    picker: Picker,
    buffers: HashMap<u32, PieceBuffer>,
    /// Complete pieces waiting for a verification slot.
    queue: VecDeque<(u32, PieceBuffer)>,
    /// Pieces being verified.
    verifying: HashSet<u32>,
    /// Verifications allowed at once: bounds threads and memory.
    max_verifying: usize,
    /// No verification starts (the store is taking a file selection, and
    /// pieces written meanwhile could land where the old one says).
    held: bool,
    /// Blocks of failed pieces from several senders, kept until the piece
    /// verifies so the sender of the bad block can be identified.
    suspects: HashMap<u32, Vec<SuspectBlock>>,
    /// Weighted count of failed pieces each sender contributed to.
    strikes: HashMap<Contributor, u32>,
    bytes_have: u64,
    wasted: u64,
}

impl PieceFlow {
    pub(crate) fn new(meta: Arc<MetaInfo>, picker: Picker, max_verifying: usize) -> Self {
        Self {
            meta,
            picker,
            buffers: HashMap::new(),
            queue: VecDeque::new(),
            verifying: HashSet::new(),
            max_verifying: max_verifying.max(1),
            held: false,
            suspects: HashMap::new(),
            strikes: HashMap::new(),
            bytes_have: 0,
            wasted: 0,
        }
    }

    pub(crate) fn picker(&self) -> &Picker {
        &self.picker
    }

    pub(crate) fn picker_mut(&mut self) -> &mut Picker {
        &mut self.picker
    }

    /// Verified payload bytes.
    pub(crate) fn bytes_have(&self) -> u64 {
        self.bytes_have
    }

    /// Bytes received and thrown away.
    pub(crate) fn wasted(&self) -> u64 {
        self.wasted
    }

    pub(crate) fn add_wasted(&mut self, bytes: u64) {
        self.wasted += bytes;
    }

    /// Piece `index` was found in the store at start.
    pub(crate) fn mark_have(&mut self, index: u32) {
        if !self.picker.have().get(index as usize) {
            self.picker.mark_have(index);
            self.bytes_have += u64::from(self.meta.piece_len(index));
        }
    }

    /// A requested block arrived from `from` (a peer, or a web seed's piece
    /// fed in block by block).
    pub(crate) fn block(&mut self, from: Contributor, block: BlockInfo, data: Bytes) -> BlockFate {
        let len = data.len() as u64;
        let Received::Fresh { piece_complete } = self.picker.block_received(block) else {
            self.wasted += len;
            return BlockFate::Wasted;
        };
        let piece_len = self.meta.piece_len(block.piece);
        let buffer = self
            .buffers
            .entry(block.piece)
            .or_insert_with(|| PieceBuffer::new(piece_len));
        buffer.insert(block, data, from);
        if piece_complete {
            if let Some(buffer) = self.buffers.remove(&block.piece) {
                self.queue.push_back((block.piece, buffer));
            }
        }
        BlockFate::Kept {
            complete: piece_complete,
        }
    }

    /// True while too many complete pieces wait for or are in verification
    /// (never before every verification slot has a piece and one waits).
    pub(crate) fn backlogged(&self) -> bool {
        let piece = u64::from(self.meta.piece_length).max(1);
        let floor = (self.max_verifying as u64 + 1) * piece;
        self.in_verification() as u64 * piece >= MAX_VERIFY_BACKLOG.max(floor)
    }

    /// Pieces queued or being verified.
    pub(crate) fn in_verification(&self) -> usize {
        self.queue.len() + self.verifying.len()
    }

    /// Holds (or releases) verifications: none starts while held.
    pub(crate) fn hold(&mut self, held: bool) {
        self.held = held;
    }

    /// Pieces being verified (and stored) right now.
    pub(crate) fn verifying(&self) -> usize {
        self.verifying.len()
    }

    /// Starts queued verifications while slots are free.
    pub(crate) fn start_verifications(&mut self, out: &mut Vec<Action>) {
        while !self.held && self.verifying.len() < self.max_verifying {
            let Some((piece, buffer)) = self.queue.pop_front() else {
                break;
            };
            let Some(blocks) = buffer.into_blocks() else {
                // Cannot happen (the picker said complete), but never store a hole.
                log::warn!("piece {piece} complete without all blocks");
                self.picker.piece_failed(piece);
                continue;
            };
            let Some(expected) = self.meta.piece_hashes.get(piece as usize).copied() else {
                continue;
            };
            let suspects = self.suspects.remove(&piece).unwrap_or_default();
            self.verifying.insert(piece);
            out.push(Action::Verify(VerifyJob {
                piece,
                blocks,
                expected,
                suspects,
            }));
        }
    }

    /// A verification ended. Senders to ban are added to `bans`.
    pub(crate) fn verified(
        &mut self,
        verified: Verified,
        bans: &mut Vec<(Contributor, BanReason)>,
    ) -> Verdict {
        let piece = verified.piece;
        if !self.verifying.remove(&piece) {
            log::warn!("verification of piece {piece} that was not verifying");
        }
        bans.extend(verified.liars.iter().map(|a| (*a, BanReason::BadBlock)));
        match verified.result {
            Ok(true) => {
                self.picker.piece_verified(piece);
                self.bytes_have += u64::from(self.meta.piece_len(piece));
                Verdict::Good
            }
            Ok(false) => {
                let contributors =
                    self.hash_failed(piece, &verified.senders, verified.block_hashes, bans);
                Verdict::Failed { contributors }
            }
            Err(e) => Verdict::StoreFailed(e),
        }
    }

    /// A verification job ended without a result (it panicked): the piece
    /// is missing again and will be downloaded anew.
    pub(crate) fn verification_lost(&mut self, piece: u32) {
        if self.verifying.remove(&piece) {
            self.picker.piece_failed(piece);
        }
    }

    /// A piece failed its hash check. A sole sender is banned at once; when
    /// several peers sent blocks, each gets a strike and the failed copy's
    /// block hashes are kept to identify the culprit once the piece verifies.
    fn hash_failed(
        &mut self,
        piece: u32,
        senders: &[Contributor],
        block_hashes: Vec<SuspectBlock>,
        bans: &mut Vec<(Contributor, BanReason)>,
    ) -> Vec<Contributor> {
        let mut contributors = senders.to_vec();
        contributors.sort_unstable();
        contributors.dedup();
        self.picker.piece_failed(piece);
        self.wasted += u64::from(self.meta.piece_len(piece));
        if let [only] = contributors[..] {
            bans.push((only, BanReason::SoleSender));
            return contributors;
        }
        self.suspects.entry(piece).or_default().extend(block_hashes);
        for addr in &contributors {
            let strikes = self.strikes.entry(*addr).or_default();
            *strikes += 1;
            if *strikes >= BAN_THRESHOLD {
                bans.push((*addr, BanReason::Strikes));
            }
        }
        contributors
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::BLOCK_SIZE;
    use std::net::SocketAddr;

    fn addr(port: u16) -> Contributor {
        Contributor::Peer(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Four pieces of two blocks each.
    fn flow(max_verifying: usize) -> PieceFlow {
        let len = 8 * u64::from(BLOCK_SIZE);
        let meta = MetaInfo::for_test("t", 2 * BLOCK_SIZE, &[("f", len, false)]);
        let picker = Picker::new(4, 2 * BLOCK_SIZE, len).with_rng_seed(3);
        PieceFlow::new(Arc::new(meta), picker, max_verifying)
    }

    fn block(piece: u32, i: u32) -> BlockInfo {
        BlockInfo {
            piece,
            begin: i * BLOCK_SIZE,
            length: BLOCK_SIZE,
        }
    }

    fn data() -> Bytes {
        Bytes::from(vec![0u8; BLOCK_SIZE as usize])
    }

    /// Requests both blocks of `piece` and receives them, the first from
    /// `a`, the second from `b`.
    fn receive_piece(flow: &mut PieceFlow, piece: u32, a: Contributor, b: Contributor) {
        let mut has = crate::bitfield::Bitfield::new(4);
        has.set(piece as usize);
        flow.picker.add_peer(&has);
        let picked = flow.picker.pick(&has, &Default::default(), 2);
        assert_eq!(picked, vec![block(piece, 0), block(piece, 1)]);
        assert_eq!(
            flow.block(a, block(piece, 0), data()),
            BlockFate::Kept { complete: false }
        );
        assert_eq!(
            flow.block(b, block(piece, 1), data()),
            BlockFate::Kept { complete: true }
        );
    }

    fn jobs(out: Vec<Action>) -> Vec<VerifyJob> {
        out.into_iter()
            .filter_map(|a| match a {
                Action::Verify(job) => Some(job),
                _ => None,
            })
            .collect()
    }

    fn failed(job: VerifyJob) -> Verified {
        Verified {
            piece: job.piece,
            result: Ok(false),
            senders: job.blocks.iter().map(|(_, a)| *a).collect(),
            block_hashes: Vec::new(),
            liars: Vec::new(),
        }
    }

    #[test]
    fn verification_slots_bound_the_jobs_and_a_lost_job_puts_the_piece_back() {
        let mut flow = flow(1);
        receive_piece(&mut flow, 0, addr(1), addr(1));
        receive_piece(&mut flow, 1, addr(1), addr(1));
        let mut out = Vec::new();
        flow.start_verifications(&mut out);
        let started = jobs(out);
        assert_eq!(started.len(), 1, "one slot");
        assert_eq!(flow.in_verification(), 2);
        flow.verification_lost(started[0].piece);
        assert_eq!(flow.in_verification(), 1);
        assert!(
            flow.picker
                .is_interesting(&crate::bitfield::Bitfield::full(4)),
            "the lost piece is wanted again"
        );
        let mut out = Vec::new();
        flow.start_verifications(&mut out);
        assert_eq!(jobs(out).len(), 1, "the slot is free again");
    }

    #[test]
    fn strikes_ban_a_co_contributor_after_the_threshold() {
        let mut flow = flow(4);
        let mut bans = Vec::new();
        for round in 0..BAN_THRESHOLD {
            receive_piece(&mut flow, 2, addr(1), addr(2));
            let mut out = Vec::new();
            flow.start_verifications(&mut out);
            let job = jobs(out).pop().unwrap();
            let verdict = flow.verified(failed(job), &mut bans);
            assert!(
                matches!(verdict, Verdict::Failed { ref contributors } if contributors.len() == 2)
            );
            if round + 1 < BAN_THRESHOLD {
                assert!(bans.is_empty(), "round {round}: {bans:?}");
            }
        }
        bans.sort();
        assert_eq!(
            bans,
            [(addr(1), BanReason::Strikes), (addr(2), BanReason::Strikes)]
        );
        assert_eq!(
            flow.wasted(),
            u64::from(BAN_THRESHOLD) * 2 * u64::from(BLOCK_SIZE)
        );
    }

    #[test]
    fn the_backlog_counts_pieces_queued_and_verifying() {
        let piece = 2 << 20;
        let meta = MetaInfo::for_test("t", piece, &[("f", 4 * u64::from(piece), false)]);
        let picker = Picker::new(4, piece, 4 * u64::from(piece)).with_rng_seed(3);
        let mut flow = PieceFlow::new(Arc::new(meta), picker, 1);
        let all = crate::bitfield::Bitfield::full(4);
        flow.picker.add_peer(&all);
        let blocks = flow.picker.pick(&all, &Default::default(), 256);
        let (last, first) = blocks.split_last().unwrap();
        for b in first {
            flow.block(addr(1), *b, Bytes::from(vec![0; b.length as usize]));
        }
        let mut out = Vec::new();
        flow.start_verifications(&mut out);
        assert_eq!(flow.verifying(), 1);
        assert!(!flow.backlogged(), "one piece of 2 MiB in verification");
        flow.block(addr(1), *last, Bytes::from(vec![0; last.length as usize]));
        assert!(flow.backlogged(), "one verifying and one waiting: 4 MiB");
        let job = jobs(out).pop().unwrap();
        let good = Verified {
            piece: job.piece,
            result: Ok(true),
            senders: Vec::new(),
            block_hashes: Vec::new(),
            liars: Vec::new(),
        };
        flow.verified(good, &mut Vec::new());
        assert!(!flow.backlogged());
    }

    #[test]
    fn a_duplicate_block_is_wasted() {
        let mut flow = flow(1);
        receive_piece(&mut flow, 3, addr(1), addr(1));
        assert_eq!(flow.block(addr(2), block(3, 0), data()), BlockFate::Wasted);
        assert_eq!(flow.wasted(), u64::from(BLOCK_SIZE));
    }
}
