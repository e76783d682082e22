//! Verifying one piece already written to the store: its SHA-1 (fed while
//! its blocks were written, see `disk.rs`, the rest read back from the
//! store), then telling the store it is good. Synchronous; runs on a
//! blocking thread.
//!
//! Invariant: a piece is reported good (and the store told so) only when the
//! bytes in the store hashed to the expected SHA-1.

use sha1::{Digest, Sha1};

use crate::store::{Store, StoreError};
use crate::torrent::core::piece::Contributor;
use crate::types::BLOCK_SIZE;

/// A block of a piece that failed its hash check: index, sender, SHA-1.
pub(crate) type SuspectBlock = (usize, Contributor, [u8; 20]);

/// A piece whose last block was queued for writing: hash and, if good,
/// mark it verified in the store.
#[derive(Debug)]
pub(crate) struct VerifyJob {
    pub piece: u32,
    /// The piece's length.
    pub length: u32,
    pub expected: [u8; 20],
    /// Who sent each block, in order.
    pub senders: Vec<Contributor>,
    /// Block hashes of earlier failed copies of this piece.
    pub suspects: Vec<SuspectBlock>,
}

/// Outcome of a [`VerifyJob`].
#[derive(Debug)]
pub(crate) struct Verified {
    pub piece: u32,
    /// `Ok(true)`: verified and marked in the store; `Ok(false)`: the hash
    /// did not match.
    pub result: Result<bool, StoreError>,
    /// Who sent each block.
    pub senders: Vec<Contributor>,
    /// For a failed piece: each block's index, sender and SHA-1.
    pub block_hashes: Vec<SuspectBlock>,
    /// For a piece that failed before and is now good: peers whose blocks in
    /// the failed copy differed from the good data.
    pub liars: Vec<Contributor>,
}

impl VerifyJob {
    /// Compares `digest` (the SHA-1 of the piece as stored) with the
    /// expected one and, if it matches, tells the store. A failed piece's
    /// blocks are hashed one by one (read back) to find the culprit later;
    /// if the piece failed before, the blocks of that failed copy are
    /// compared with the good ones to find who sent the bad data.
    pub(crate) fn conclude(self, digest: [u8; 20], store: &dyn Store) -> Verified {
        let Self {
            piece,
            length,
            expected,
            senders,
            suspects,
        } = self;
        let mut buf = Vec::new();
        let mut block_hash = |i: usize| -> Result<[u8; 20], StoreError> {
            let begin = i as u32 * BLOCK_SIZE;
            buf.resize(BLOCK_SIZE.min(length.saturating_sub(begin)) as usize, 0);
            store.read_into(piece, begin, &mut buf)?;
            Ok(Sha1::digest(&buf).into())
        };
        if digest != expected {
            let mut block_hashes = Vec::with_capacity(senders.len());
            for (i, from) in senders.iter().enumerate() {
                match block_hash(i) {
                    Ok(hash) => block_hashes.push((i, *from, hash)),
                    // Without the hashes no culprit is found; the strikes
                    // still count.
                    Err(e) => log::warn!("reading back failed piece {piece}: {e}"),
                }
            }
            return Verified {
                piece,
                result: Ok(false),
                senders,
                block_hashes,
                liars: Vec::new(),
            };
        }
        let mut liars = Vec::new();
        for (i, from, hash) in &suspects {
            if block_hash(*i).is_ok_and(|good| good != *hash) {
                liars.push(*from);
            }
        }
        let result = store.piece_verified(piece).map(|()| true);
        Verified {
            piece,
            result,
            senders,
            block_hashes: Vec::new(),
            liars,
        }
    }
}
