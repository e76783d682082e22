//! The piece flow: which blocks to ask for (the picker), blocks queued for
//! the writer as they arrive (`disk.rs`), complete pieces verified there,
//! and what a failed hash check costs its senders (strikes and bans). Pure.
//!
//! Invariants: `senders` holds who sent each block of partly received
//! pieces; a piece leaves it when complete and is then verified exactly once
//! (its `Verify` follows its last block in the writer's queue). A batch
//! whose result is lost puts the pieces it touched back to missing.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;

use crate::metainfo::MetaInfo;
use crate::picker::{Picker, Received};
use crate::store::StoreError;
use crate::torrent::core::disk::{DiskDone, DiskOp, DiskQueue, MAX_DISK_BACKLOG};
use crate::torrent::core::piece::Contributor;
use crate::torrent::core::verify::{SuspectBlock, Verified, VerifyJob};
use crate::torrent::core::Action;
use crate::types::{BlockInfo, BLOCK_SIZE};

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
    /// Who sent each block of the partly received pieces.
    senders: HashMap<u32, Vec<Option<Contributor>>>,
    /// Blocks and verifications on their way to the store.
    disk: DiskQueue,
    /// Complete pieces whose verification is queued or running.
    verifying: HashSet<u32>,
    /// Blocks of failed pieces from several senders, kept until the piece
    /// verifies so the sender of the bad block can be identified.
    suspects: HashMap<u32, Vec<SuspectBlock>>,
    /// Weighted count of failed pieces each sender contributed to.
    strikes: HashMap<Contributor, u32>,
    bytes_have: u64,
    wasted: u64,
}

impl PieceFlow {
    pub(crate) fn new(meta: Arc<MetaInfo>, picker: Picker) -> Self {
        Self {
            meta,
            picker,
            senders: HashMap::new(),
            disk: DiskQueue::default(),
            verifying: HashSet::new(),
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
    /// fed in block by block): it is queued for the writer, and with the
    /// piece's last block so is its verification.
    pub(crate) fn block(&mut self, from: Contributor, block: BlockInfo, data: Bytes) -> BlockFate {
        let len = data.len() as u64;
        let Received::Fresh { piece_complete } = self.picker.block_received(block) else {
            self.wasted += len;
            return BlockFate::Wasted;
        };
        let piece = block.piece;
        let count = self.meta.piece_len(piece).div_ceil(BLOCK_SIZE) as usize;
        let senders = self
            .senders
            .entry(piece)
            .or_insert_with(|| vec![None; count]);
        if let Some(slot) = senders.get_mut(block.index_in_piece()) {
            *slot = Some(from);
        }
        self.disk.push(DiskOp::Write {
            piece,
            begin: block.begin,
            data,
        });
        if piece_complete {
            self.piece_complete(piece);
        }
        BlockFate::Kept {
            complete: piece_complete,
        }
    }

    /// Every block of `piece` is queued: its verification follows them.
    fn piece_complete(&mut self, piece: u32) {
        let senders = self.senders.remove(&piece).unwrap_or_default();
        let expected = self.meta.piece_hashes.get(piece as usize).copied();
        let (Some(senders), Some(expected)) = (senders.into_iter().collect(), expected) else {
            // Cannot happen (the picker said complete), but never verify a hole.
            log::warn!("piece {piece} complete without all blocks");
            self.picker.piece_failed(piece);
            self.disk.push(DiskOp::Forget(piece));
            return;
        };
        self.verifying.insert(piece);
        self.disk.push(DiskOp::Verify(VerifyJob {
            piece,
            length: self.meta.piece_len(piece),
            expected,
            senders,
            suspects: self.suspects.remove(&piece).unwrap_or_default(),
        }));
    }

    /// True while too many bytes wait for or are in the writer.
    pub(crate) fn backlogged(&self) -> bool {
        self.disk.bytes() >= MAX_DISK_BACKLOG
    }

    /// Blocks or verifications are queued or being carried out.
    pub(crate) fn disk_busy(&self) -> bool {
        !self.disk.is_idle()
    }

    /// Holds (or releases) the writer: nothing is written while held.
    pub(crate) fn hold(&mut self, held: bool) {
        self.disk.hold(held);
    }

    /// A batch of writes and verifications runs right now.
    pub(crate) fn writing(&self) -> bool {
        self.disk.running()
    }

    /// Starts the writer on what is queued, if it is free and the queue is
    /// worth a batch (anything at all with `force`).
    pub(crate) fn start_writes(&mut self, out: &mut Vec<Action>, force: bool) {
        while let Some(batch) = self.disk.next_batch(force) {
            out.push(Action::Disk(batch));
        }
    }

    /// A batch ended: the verdict on each piece it verified, or could not
    /// write. Senders to ban are added to `bans`.
    pub(crate) fn disk_done(
        &mut self,
        done: DiskDone,
        bans: &mut Vec<(Contributor, BanReason)>,
    ) -> Vec<(u32, Verdict)> {
        self.disk.done(done.lane, done.hashes);
        let mut verdicts = Vec::new();
        for (piece, e) in done.write_failed {
            self.verifying.remove(&piece);
            self.senders.remove(&piece);
            self.picker.piece_failed(piece);
            verdicts.push((piece, Verdict::StoreFailed(e)));
        }
        for verified in done.verified {
            verdicts.push((verified.piece, self.verified(verified, bans)));
        }
        verdicts
    }

    /// `lane`'s batch ended without a result (it panicked): the pieces it
    /// touched are missing again and will be downloaded anew.
    pub(crate) fn disk_lost(&mut self, lane: usize) {
        for piece in self.disk.lost(lane) {
            self.verifying.remove(&piece);
            self.senders.remove(&piece);
            self.picker.piece_failed(piece);
        }
    }

    /// A verification ended. Senders to ban are added to `bans`.
    fn verified(
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
    use crate::store::{MemoryStore, Store};
    use crate::torrent::core::disk::DiskBatch;
    use std::net::SocketAddr;

    fn addr(port: u16) -> Contributor {
        Contributor::Peer(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// Four pieces of two blocks each, all zeros except piece 3 (ones).
    fn flow() -> PieceFlow {
        let len = 8 * u64::from(BLOCK_SIZE);
        let mut meta = MetaInfo::for_test("t", 2 * BLOCK_SIZE, &[("f", len, false)]);
        meta.piece_hashes = (0..4).map(|p| sha1_of(&piece_data(p))).collect();
        let picker = Picker::new(4, 2 * BLOCK_SIZE, len).with_rng_seed(3);
        PieceFlow::new(Arc::new(meta), picker)
    }

    fn piece_data(piece: u32) -> Vec<u8> {
        vec![u8::from(piece == 3); 2 * BLOCK_SIZE as usize]
    }

    fn sha1_of(data: &[u8]) -> [u8; 20] {
        use sha1::{Digest, Sha1};
        Sha1::digest(data).into()
    }

    fn block(piece: u32, i: u32) -> BlockInfo {
        BlockInfo {
            piece,
            begin: i * BLOCK_SIZE,
            length: BLOCK_SIZE,
        }
    }

    fn data(piece: u32, byte: Option<u8>) -> Bytes {
        let good = u8::from(piece == 3);
        Bytes::from(vec![byte.unwrap_or(good); BLOCK_SIZE as usize])
    }

    /// Requests both blocks of `piece` and receives them, the first from
    /// `a`, the second from `b` (with `bad` bytes from `b` if given).
    fn receive_piece(
        flow: &mut PieceFlow,
        piece: u32,
        a: Contributor,
        b: Contributor,
        bad: Option<u8>,
    ) {
        let mut has = crate::bitfield::Bitfield::new(4);
        has.set(piece as usize);
        flow.picker.add_peer(&has);
        let picked = flow.picker.pick(&has, &Default::default(), 2);
        assert_eq!(picked, vec![block(piece, 0), block(piece, 1)]);
        assert_eq!(
            flow.block(a, block(piece, 0), data(piece, None)),
            BlockFate::Kept { complete: false }
        );
        assert_eq!(
            flow.block(b, block(piece, 1), data(piece, bad)),
            BlockFate::Kept { complete: true }
        );
    }

    fn batch(out: Vec<Action>) -> Option<DiskBatch> {
        out.into_iter().find_map(|a| match a {
            Action::Disk(batch) => Some(batch),
            _ => None,
        })
    }

    /// Runs what is due against `store`; the verdicts.
    fn run(
        flow: &mut PieceFlow,
        store: &MemoryStore,
        bans: &mut Vec<(Contributor, BanReason)>,
    ) -> Vec<(u32, Verdict)> {
        let mut out = Vec::new();
        flow.start_writes(&mut out, false);
        let mut verdicts = Vec::new();
        for action in out {
            if let Action::Disk(batch) = action {
                assert!(flow.writing());
                verdicts.extend(flow.disk_done(batch.run(store), bans));
            }
        }
        verdicts
    }

    fn store() -> MemoryStore {
        MemoryStore::with_geometry(2 * BLOCK_SIZE, 8 * u64::from(BLOCK_SIZE))
    }

    #[test]
    fn blocks_are_written_at_once_and_the_piece_verified_after_them() {
        let mut flow = flow();
        let store = store();
        receive_piece(&mut flow, 3, addr(1), addr(2), None);
        assert!(flow.disk_busy());
        let verdicts = run(&mut flow, &store, &mut Vec::new());
        assert!(matches!(verdicts[..], [(3, Verdict::Good)]), "{verdicts:?}");
        assert!(!flow.disk_busy());
        assert!(flow.picker().have().get(3));
        assert_eq!(flow.bytes_have(), 2 * u64::from(BLOCK_SIZE));
        assert_eq!(
            store.read_block(3, 0, 2 * BLOCK_SIZE).unwrap(),
            piece_data(3)
        );
    }

    #[test]
    fn a_lost_batch_puts_its_pieces_back() {
        let mut flow = flow();
        receive_piece(&mut flow, 1, addr(1), addr(1), None);
        let mut out = Vec::new();
        flow.start_writes(&mut out, false);
        let lost = batch(out).expect("a batch");
        flow.disk_lost(lost.lane);
        assert!(!flow.disk_busy());
        assert!(
            flow.picker
                .is_interesting(&crate::bitfield::Bitfield::full(4)),
            "the lost piece is wanted again"
        );
        let mut out = Vec::new();
        flow.start_writes(&mut out, true);
        assert!(batch(out).is_none(), "nothing left");
    }

    #[test]
    fn a_sole_sender_of_a_bad_piece_is_banned_and_a_liar_found_later() {
        let mut flow = flow();
        let store = store();
        let mut bans = Vec::new();
        receive_piece(&mut flow, 2, addr(1), addr(1), Some(9));
        let verdicts = run(&mut flow, &store, &mut bans);
        assert!(matches!(verdicts[..], [(2, Verdict::Failed { .. })]));
        assert_eq!(bans, [(addr(1), BanReason::SoleSender)]);
        assert!(!flow.picker().have().get(2));
        // Two senders: strikes and suspects; the good copy names the liar.
        bans.clear();
        receive_piece(&mut flow, 2, addr(2), addr(3), Some(7));
        run(&mut flow, &store, &mut bans);
        assert!(bans.is_empty(), "{bans:?}");
        receive_piece(&mut flow, 2, addr(4), addr(5), None);
        let verdicts = run(&mut flow, &store, &mut bans);
        assert!(matches!(verdicts[..], [(2, Verdict::Good)]), "{verdicts:?}");
        assert_eq!(bans, [(addr(3), BanReason::BadBlock)]);
    }

    #[test]
    fn strikes_ban_a_co_contributor_after_the_threshold() {
        let mut flow = flow();
        let store = store();
        let mut bans = Vec::new();
        for round in 0..BAN_THRESHOLD {
            receive_piece(&mut flow, 2, addr(1), addr(2), Some(1));
            let verdicts = run(&mut flow, &store, &mut bans);
            assert!(
                matches!(verdicts[..], [(2, Verdict::Failed { ref contributors })] if contributors.len() == 2)
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
    fn the_backlog_counts_bytes_queued_and_being_written() {
        // One piece (one writer lane) larger than the backlog.
        let piece = 8 << 20;
        let meta = MetaInfo::for_test("t", piece, &[("f", u64::from(piece), false)]);
        let picker = Picker::new(1, piece, u64::from(piece)).with_rng_seed(3);
        let mut flow = PieceFlow::new(Arc::new(meta), picker);
        let all = crate::bitfield::Bitfield::full(1);
        flow.picker.add_peer(&all);
        let blocks = flow.picker.pick(&all, &Default::default(), 512);
        let bound = (MAX_DISK_BACKLOG / u64::from(BLOCK_SIZE)) as usize;
        let mut out = Vec::new();
        for b in &blocks[..bound - 1] {
            flow.block(addr(1), *b, Bytes::from(vec![0; b.length as usize]));
            flow.start_writes(&mut out, false);
        }
        assert_eq!(out.len(), 1, "one batch once a lane has 256 KiB");
        assert!(flow.writing());
        assert!(!flow.backlogged(), "a block short of the bound");
        flow.block(
            addr(1),
            blocks[bound - 1],
            Bytes::from(vec![0; BLOCK_SIZE as usize]),
        );
        assert!(flow.backlogged(), "queued and being written add up");
        let store = MemoryStore::with_geometry(piece, u64::from(piece));
        flow.disk_done(batch(out).unwrap().run(&store), &mut Vec::new());
        assert!(!flow.backlogged(), "the first batch is written");
    }

    #[test]
    fn a_duplicate_block_is_wasted() {
        let mut flow = flow();
        receive_piece(&mut flow, 3, addr(1), addr(1), None);
        assert_eq!(
            flow.block(addr(2), block(3, 0), data(3, None)),
            BlockFate::Wasted
        );
        assert_eq!(flow.wasted(), u64::from(BLOCK_SIZE));
    }
}
