//! Blocks on their way to the store: each block is written as it arrives
//! (contiguous blocks of a piece with one vectored write) and fed to its
//! piece's SHA-1 while hot; when the piece's last block is written the hash
//! is finished, with whatever could not be fed in order read back from the
//! store (the page cache). So no piece is ever held whole in memory.
//!
//! The queue ([`DiskQueue`]) is decisions only: ops wait in it until a batch
//! is worth a thread hop. A torrent has [`LANES`] writers: all of a piece's
//! ops go to one lane (by its index), and each lane runs one batch at a
//! time, so two lanes write and hash different pieces on two cores at once
//! (one lane, SHA-1 and the page-cache copies of every block on one thread,
//! capped a download at ~750 MB/s here). A batch ([`DiskBatch`]) is the
//! synchronous work, run on a blocking thread; it carries its lane's hash
//! states there and back.
//!
//! Invariant: a piece's hash state covers exactly the bytes of the piece as
//! they are in the store. A write over bytes already hashed (a piece started
//! over) poisons the state; the piece is then hashed wholly from the store.

use std::collections::{BTreeMap, HashMap, HashSet};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::store::{Store, StoreError};
use crate::torrent::core::verify::{Verified, VerifyJob};

/// Bytes of blocks queued for or being written before we stop requesting
/// and stop taking peers' blocks (backpressure when the disk or hashing is
/// slower than the network). With the stash below and the peer mailbox it
/// bounds the piece data in memory, whatever the piece size, torrent size,
/// request budget or number of peers. 6 MiB, ~8 ms at 800 MB/s: on 2 busy
/// cores a writer thread waits that long for its turn, and with 2 MiB the
/// download stalled meanwhile (row 1: ~780 against ~860 MB/s in steady
/// state, 1.44 against 1.36 s; 4 MiB more peak RSS).
pub(crate) const MAX_DISK_BACKLOG: u64 = 6 * 1024 * 1024;
/// Writers per torrent (see the module docs).
pub(crate) const LANES: usize = 2;
/// A lane's batch starts once this much is queued in the lane (or a piece
/// is complete, or on a flush): fewer thread hops than one per block.
pub(crate) const BATCH_MIN: u64 = 256 * 1024;
/// Out-of-order blocks kept (already written) to be hashed when the gap
/// before them is filled, per lane; past it they are read back.
pub(crate) const MAX_STASH: usize = 512 * 1024;
/// Contiguous bytes of one piece written with one call at most: small
/// enough that they are still in cache when hashed right after.
const MAX_RUN: u64 = 256 * 1024;
/// Bytes read back per read when finishing a hash.
const READ_BACK: u32 = 64 * 1024;

/// One thing for the writer to do, in order.
#[derive(Debug)]
pub(crate) enum DiskOp {
    /// A block (not verified yet) to write at `begin` of `piece`.
    Write { piece: u32, begin: u32, data: Bytes },
    /// Every block of the piece was queued: finish its hash, and tell the
    /// store if it matches.
    Verify(VerifyJob),
    /// The piece was started over: drop its hash state.
    Forget(u32),
}

impl DiskOp {
    fn piece(&self) -> u32 {
        match self {
            Self::Write { piece, .. } | Self::Forget(piece) => *piece,
            Self::Verify(job) => job.piece,
        }
    }

    fn bytes(&self) -> u64 {
        match self {
            Self::Write { data, .. } => data.len() as u64,
            _ => 0,
        }
    }
}

/// A piece's SHA-1 over the bytes written in order so far.
#[derive(Debug, Default)]
struct PieceHash {
    sha: Sha1,
    /// Bytes from the piece's start fed to `sha`.
    hashed: u32,
    /// Blocks written past a gap, by offset, to feed once it is filled.
    stash: BTreeMap<u32, Bytes>,
    /// Bytes were written over what was fed or stashed.
    poisoned: bool,
}

/// The hash states of the pieces being written.
#[derive(Debug, Default)]
pub(crate) struct Hashes {
    pieces: HashMap<u32, PieceHash>,
    /// Bytes in every stash.
    stashed: usize,
}

impl Hashes {
    /// `data` was written at `begin` of `piece`.
    fn written(&mut self, piece: u32, begin: u32, data: &Bytes) {
        let state = self.pieces.entry(piece).or_default();
        if state.poisoned {
            return;
        }
        let end = begin.saturating_add(data.len() as u32);
        let overlaps = begin < state.hashed
            || state.stash.range(begin..end).next().is_some()
            || (state.stash.range(..begin).next_back())
                .is_some_and(|(at, d)| at + d.len() as u32 > begin);
        if overlaps {
            self.stashed -= state.stash.values().map(Bytes::len).sum::<usize>();
            state.stash.clear();
            state.poisoned = true;
            return;
        }
        if begin == state.hashed {
            state.sha.update(data);
            state.hashed = end;
            while let Some(next) = state.stash.remove(&state.hashed) {
                self.stashed -= next.len();
                state.sha.update(&next);
                state.hashed += next.len() as u32;
            }
        } else if self.stashed + data.len() <= MAX_STASH {
            self.stashed += data.len();
            state.stash.insert(begin, data.clone());
        }
        // Else read back when the piece is finished.
    }

    fn forget(&mut self, piece: u32) -> Option<PieceHash> {
        let state = self.pieces.remove(&piece)?;
        self.stashed -= state.stash.values().map(Bytes::len).sum::<usize>();
        Some(state)
    }

    /// The SHA-1 of the `length` bytes of `piece` as stored: what was fed,
    /// then the stash and the store for the rest. The state is dropped.
    fn finish(
        &mut self,
        piece: u32,
        length: u32,
        store: &dyn Store,
    ) -> Result<[u8; 20], StoreError> {
        let mut state = self.forget(piece).unwrap_or_default();
        if state.poisoned {
            state = PieceHash::default();
        }
        let mut buf = Vec::new();
        while state.hashed < length {
            if let Some(data) = state.stash.remove(&state.hashed) {
                state.sha.update(&data);
                state.hashed += data.len() as u32;
                continue;
            }
            let gap_end = (state.stash.range(state.hashed..).next())
                .map_or(length, |(at, _)| *at)
                .min(length);
            let n = (gap_end - state.hashed).min(READ_BACK);
            buf.resize(n as usize, 0);
            store.read_into(piece, state.hashed, &mut buf)?;
            state.sha.update(&buf);
            state.hashed += n;
        }
        Ok(state.sha.finalize().into())
    }

    /// Bytes held in stashes (for tests).
    #[cfg(test)]
    pub(crate) fn stashed(&self) -> usize {
        self.stashed
    }
}

/// Ops to carry out on a blocking thread, with their lane's hash states.
#[derive(Debug)]
pub(crate) struct DiskBatch {
    /// The lane (of [`LANES`]) whose ops these are.
    pub lane: usize,
    pub ops: Vec<DiskOp>,
    pub hashes: Hashes,
}

/// What a [`DiskBatch`] did.
#[derive(Debug)]
pub(crate) struct DiskDone {
    /// The batch's lane.
    pub lane: usize,
    pub hashes: Hashes,
    /// The pieces verified (or not), in order.
    pub verified: Vec<Verified>,
    /// Pieces whose blocks the store refused (their later ops in the batch
    /// were skipped).
    pub write_failed: Vec<(u32, StoreError)>,
}

impl DiskBatch {
    /// Writes, hashes and verifies, in order.
    pub(crate) fn run(self, store: &dyn Store) -> DiskDone {
        let Self {
            lane,
            ops,
            mut hashes,
        } = self;
        let mut verified = Vec::new();
        let mut write_failed: Vec<(u32, StoreError)> = Vec::new();
        let mut ops = ops.into_iter().peekable();
        let mut run = Vec::new();
        while let Some(op) = ops.next() {
            if write_failed.iter().any(|(p, _)| *p == op.piece()) {
                continue;
            }
            match op {
                DiskOp::Write { piece, begin, data } => {
                    run.push(data);
                    take_run(&mut ops, piece, begin, &mut run);
                    if let Err(e) = store.write_blocks(piece, begin, &run) {
                        hashes.forget(piece);
                        write_failed.push((piece, e));
                        run.clear();
                        continue;
                    }
                    let mut at = begin;
                    for data in run.drain(..) {
                        hashes.written(piece, at, &data);
                        at += data.len() as u32;
                    }
                }
                DiskOp::Verify(job) => {
                    verified.push(match hashes.finish(job.piece, job.length, store) {
                        Ok(digest) => job.conclude(digest, store),
                        Err(e) => Verified {
                            piece: job.piece,
                            result: Err(e),
                            senders: job.senders,
                            block_hashes: Vec::new(),
                            liars: Vec::new(),
                        },
                    });
                }
                DiskOp::Forget(piece) => {
                    hashes.forget(piece);
                }
            }
        }
        DiskDone {
            lane,
            hashes,
            verified,
            write_failed,
        }
    }
}

/// Moves the writes that continue `run` (of `piece`, from `begin`) from
/// the front of `ops` onto it, up to [`MAX_RUN`] bytes.
fn take_run(
    ops: &mut std::iter::Peekable<std::vec::IntoIter<DiskOp>>,
    piece: u32,
    begin: u32,
    run: &mut Vec<Bytes>,
) {
    let mut len: u64 = run.iter().map(|d| d.len() as u64).sum();
    while let Some(DiskOp::Write {
        piece: p,
        begin: b,
        data,
    }) = ops.peek()
    {
        let next = u64::from(begin) + len;
        if *p != piece || u64::from(*b) != next || len + data.len() as u64 > MAX_RUN {
            break;
        }
        len += data.len() as u64;
        if let Some(DiskOp::Write { data, .. }) = ops.next() {
            run.push(data);
        }
    }
}

/// Ops waiting for the writers, and which batches run. Pure.
#[derive(Debug, Default)]
pub(crate) struct DiskQueue {
    lanes: [Lane; LANES],
    /// No batch starts (the store is taking a file selection).
    held: bool,
}

/// One writer's ops and state.
#[derive(Debug)]
struct Lane {
    pending: Vec<DiskOp>,
    pending_bytes: u64,
    /// A `Verify` is pending.
    pending_verify: bool,
    /// The lane's hash states while no batch runs (`None`: one runs).
    hashes: Option<Hashes>,
    /// Bytes being written by the lane's batch.
    running_bytes: u64,
    /// Pieces the lane's batch touches.
    running: HashSet<u32>,
}

impl Default for Lane {
    fn default() -> Self {
        Self {
            pending: Vec::new(),
            pending_bytes: 0,
            pending_verify: false,
            hashes: Some(Hashes::default()),
            running_bytes: 0,
            running: HashSet::new(),
        }
    }
}

impl Lane {
    fn running(&self) -> bool {
        self.hashes.is_none()
    }
}

/// The lane of `piece`'s ops.
fn lane_of(piece: u32) -> usize {
    piece as usize % LANES
}

impl DiskQueue {
    pub(crate) fn push(&mut self, op: DiskOp) {
        let lane = &mut self.lanes[lane_of(op.piece())];
        lane.pending_bytes += op.bytes();
        lane.pending_verify |= matches!(op, DiskOp::Verify(_));
        lane.pending.push(op);
    }

    /// Bytes of blocks queued or being written.
    pub(crate) fn bytes(&self) -> u64 {
        (self.lanes.iter())
            .map(|l| l.pending_bytes + l.running_bytes)
            .sum()
    }

    /// A batch runs.
    pub(crate) fn running(&self) -> bool {
        self.lanes.iter().any(Lane::running)
    }

    /// Nothing queued and nothing running.
    pub(crate) fn is_idle(&self) -> bool {
        (self.lanes.iter()).all(|l| l.pending.is_empty() && !l.running())
    }

    /// Holds (or releases) the writers: no batch starts while held.
    pub(crate) fn hold(&mut self, held: bool) {
        self.held = held;
    }

    /// The next batch of a lane that runs none, when the writers are not
    /// held and what the lane has queued is worth a thread hop: a piece to
    /// verify, [`BATCH_MIN`] bytes, or anything at all with `force`. Call
    /// it until `None`: each lane may start one.
    pub(crate) fn next_batch(&mut self, force: bool) -> Option<DiskBatch> {
        if self.held {
            return None;
        }
        let (index, lane) = (self.lanes.iter_mut().enumerate()).find(|(_, l)| {
            let due = force || l.pending_verify || l.pending_bytes >= BATCH_MIN;
            due && !l.running() && !l.pending.is_empty()
        })?;
        let hashes = lane.hashes.take()?;
        let ops = std::mem::take(&mut lane.pending);
        lane.running = ops.iter().map(DiskOp::piece).collect();
        lane.running_bytes = std::mem::take(&mut lane.pending_bytes);
        lane.pending_verify = false;
        Some(DiskBatch {
            lane: index,
            ops,
            hashes,
        })
    }

    /// `lane`'s batch ended and gave its hash states back.
    pub(crate) fn done(&mut self, lane: usize, hashes: Hashes) {
        let Some(lane) = self.lanes.get_mut(lane) else {
            return;
        };
        lane.hashes = Some(hashes);
        lane.running_bytes = 0;
        lane.running.clear();
    }

    /// `lane`'s batch ended without a result (it panicked): its hash states
    /// are lost (its pieces are then hashed from the store); returns the
    /// pieces it touched, whose writes may not have happened.
    pub(crate) fn lost(&mut self, lane: usize) -> HashSet<u32> {
        let Some(lane) = self.lanes.get_mut(lane).filter(|l| l.running()) else {
            return HashSet::new();
        };
        lane.hashes = Some(Hashes::default());
        lane.running_bytes = 0;
        std::mem::take(&mut lane.running)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MemoryStore;
    use crate::torrent::core::piece::Contributor;
    use crate::types::BLOCK_SIZE;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const B: u32 = BLOCK_SIZE;

    /// A memory store that counts reads and can refuse writes.
    struct Counting {
        inner: MemoryStore,
        reads: AtomicUsize,
        refuse: Option<u32>,
    }

    impl Store for Counting {
        fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
            if self.refuse == Some(index) {
                return Err(StoreError::OutOfRange {
                    index,
                    begin,
                    length: 0,
                });
            }
            self.inner.write_blocks(index, begin, blocks)
        }

        fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
            self.reads.fetch_add(1, Ordering::Relaxed);
            self.inner.read_block(index, begin, length)
        }
    }

    /// Pieces of 8 blocks, 4 pieces.
    fn store(refuse: Option<u32>) -> Counting {
        Counting {
            inner: MemoryStore::with_geometry(8 * B, 32 * u64::from(B)),
            reads: AtomicUsize::new(0),
            refuse,
        }
    }

    fn piece(index: u32) -> Vec<u8> {
        (0..8 * B).map(|i| (i / 7 + index * 13) as u8).collect()
    }

    fn write(index: u32, block: u32, bytes: &[u8]) -> DiskOp {
        let at = (block * B) as usize;
        DiskOp::Write {
            piece: index,
            begin: block * B,
            data: Bytes::copy_from_slice(&bytes[at..at + B as usize]),
        }
    }

    fn verify(index: u32) -> DiskOp {
        let from = Contributor::Peer(SocketAddr::from(([127, 0, 0, 1], 1)));
        DiskOp::Verify(VerifyJob {
            piece: index,
            length: 8 * B,
            expected: Sha1::digest(piece(index)).into(),
            senders: vec![from; 8],
            suspects: Vec::new(),
        })
    }

    fn run(store: &Counting, ops: Vec<DiskOp>, hashes: Hashes) -> DiskDone {
        DiskBatch {
            lane: 0,
            ops,
            hashes,
        }
        .run(store)
    }

    fn good(done: &DiskDone) -> Vec<u32> {
        (done.verified.iter())
            .filter(|v| matches!(v.result, Ok(true)))
            .map(|v| v.piece)
            .collect()
    }

    #[test]
    fn blocks_in_order_over_several_batches_are_hashed_without_reading_back() {
        let store = store(None);
        let data = piece(1);
        let first = run(
            &store,
            (0..5).map(|b| write(1, b, &data)).collect(),
            Hashes::default(),
        );
        let mut ops: Vec<DiskOp> = (5..8).map(|b| write(1, b, &data)).collect();
        ops.push(verify(1));
        let done = run(&store, ops, first.hashes);
        assert_eq!(good(&done), [1]);
        assert_eq!(store.reads.load(Ordering::Relaxed), 0);
        assert!(done.hashes.pieces.is_empty(), "state dropped once verified");
        assert_eq!(store.inner.read_block(1, 0, 8 * B).unwrap(), data);
    }

    #[test]
    fn out_of_order_blocks_are_stashed_and_fed_when_the_gap_fills() {
        let store = store(None);
        let data = piece(2);
        let mut ops: Vec<DiskOp> = [4, 5, 6, 7, 0, 1, 2, 3]
            .iter()
            .map(|&b| write(2, b, &data))
            .collect();
        ops.push(verify(2));
        let first = run(&store, ops.drain(..6).collect(), Hashes::default());
        assert_eq!(
            first.hashes.stashed(),
            4 * B as usize,
            "blocks 4-7 wait for 2-3"
        );
        let done = run(&store, ops, first.hashes);
        assert_eq!(good(&done), [2]);
        assert_eq!(store.reads.load(Ordering::Relaxed), 0);
        assert_eq!(done.hashes.stashed(), 0);
    }

    #[test]
    fn past_the_stash_budget_blocks_are_read_back() {
        let store = store(None);
        let data = piece(0);
        let mut hashes = Hashes {
            stashed: MAX_STASH - B as usize,
            ..Hashes::default()
        };
        // Block 7 fits the stash, 6 does not; 0-5 are fed in order.
        let mut ops: Vec<DiskOp> = [7, 6, 0, 1, 2, 3, 4, 5]
            .iter()
            .map(|&b| write(0, b, &data))
            .collect();
        ops.push(verify(0));
        hashes = {
            let done = run(&store, ops, hashes);
            assert_eq!(good(&done), [0]);
            done.hashes
        };
        assert_eq!(store.reads.load(Ordering::Relaxed), 1, "block 6 read back");
        assert_eq!(
            hashes.stashed,
            MAX_STASH - B as usize,
            "the budget is given back"
        );
    }

    #[test]
    fn a_piece_started_over_is_hashed_from_the_store() {
        let store = store(None);
        let data = piece(3);
        let bad = vec![0xee; (8 * B) as usize];
        // The first copy (bad) fails...
        let mut ops: Vec<DiskOp> = (0..8).map(|b| write(3, b, &bad)).collect();
        ops.push(verify(3));
        let done = run(&store, ops, Hashes::default());
        assert!(matches!(done.verified[0].result, Ok(false)));
        // ...and a stale half copy is left in the state (no Verify): the
        // good copy overwrites it; the hash is taken from the store.
        let mut ops: Vec<DiskOp> = (0..4).map(|b| write(3, b, &bad)).collect();
        ops.extend((0..8).map(|b| write(3, b, &data)));
        ops.push(verify(3));
        let reads = store.reads.load(Ordering::Relaxed);
        let done = run(&store, ops, done.hashes);
        assert_eq!(good(&done), [3]);
        assert!(store.reads.load(Ordering::Relaxed) > reads, "read back");
    }

    #[test]
    fn a_refused_write_skips_the_piece_and_keeps_the_others() {
        let store = store(Some(1));
        let (one, two) = (piece(1), piece(2));
        let mut ops = Vec::new();
        for b in 0..8 {
            ops.push(write(1, b, &one));
            ops.push(write(2, b, &two));
        }
        ops.push(verify(1));
        ops.push(verify(2));
        let done = run(&store, ops, Hashes::default());
        assert_eq!(good(&done), [2]);
        assert_eq!(done.verified.len(), 1, "piece 1 is not verified");
        assert_eq!(done.write_failed.len(), 1);
        assert_eq!(done.write_failed[0].0, 1);
    }

    #[test]
    fn the_queue_batches_and_runs_one_batch_per_lane_at_a_time() {
        let data = piece(0);
        let mut queue = DiskQueue::default();
        queue.push(write(0, 0, &data));
        assert!(
            queue.next_batch(false).is_none(),
            "one block is not worth a batch"
        );
        assert_eq!(queue.bytes(), u64::from(B));
        queue.hold(true);
        assert!(queue.next_batch(true).is_none(), "held");
        queue.hold(false);
        let batch = queue.next_batch(true).unwrap();
        assert_eq!(batch.lane, 0);
        assert!(queue.running());
        assert_eq!(queue.bytes(), u64::from(B), "being written");
        queue.push(verify(0));
        assert!(queue.next_batch(true).is_none(), "one at a time per lane");
        // Piece 1 is another lane's: its batch runs beside lane 0's.
        let other = piece(1);
        queue.push(write(1, 0, &other));
        let second = queue.next_batch(true).expect("the other lane is free");
        assert_eq!(second.lane, 1);
        assert!(queue.next_batch(true).is_none(), "both lanes busy");
        let done = batch.run(&store(None));
        queue.done(done.lane, done.hashes);
        assert_eq!(queue.bytes(), u64::from(B), "lane 1's block is in flight");
        let batch = queue.next_batch(false).expect("a verification is due");
        assert_eq!(batch.ops.len(), 1);
        assert_eq!(queue.lost(0), HashSet::from([0]));
        assert!(queue.lost(0).is_empty(), "lane 0 runs nothing now");
        assert!(!queue.is_idle(), "lane 1 still runs");
        let done = second.run(&store(None));
        queue.done(done.lane, done.hashes);
        assert!(queue.is_idle());
        assert_eq!(queue.bytes(), 0);
    }
}
