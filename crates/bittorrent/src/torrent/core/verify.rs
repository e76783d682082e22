//! Verifying one complete piece: SHA-1, then the store write if it matched.
//! Synchronous; the actor runs it on a blocking thread.
//!
//! Invariant: only pieces whose SHA-1 matched reach the store.

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::store::{Store, StoreError};
use crate::torrent::core::piece::Contributor;

/// A block of a piece that failed its hash check: index, sender, SHA-1.
pub(crate) type SuspectBlock = (usize, Contributor, [u8; 20]);

/// A complete piece to hash and, if good, store.
#[derive(Debug)]
pub(crate) struct VerifyJob {
    pub piece: u32,
    /// The blocks in order, with who sent each.
    pub blocks: Vec<(Bytes, Contributor)>,
    pub expected: [u8; 20],
    /// Block hashes of earlier failed copies of this piece.
    pub suspects: Vec<SuspectBlock>,
}

/// Outcome of a [`VerifyJob`].
#[derive(Debug)]
pub(crate) struct Verified {
    pub piece: u32,
    /// `Ok(true)`: stored; `Ok(false)`: the hash did not match.
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
    /// Hashes the piece and, if it matches, writes it to `store`. If the
    /// piece failed before, the blocks of that failed copy are compared with
    /// the good ones to find who sent the bad data.
    pub(crate) fn run(self, store: &dyn Store) -> Verified {
        let Self {
            piece,
            blocks,
            expected,
            suspects,
        } = self;
        let mut hasher = Sha1::new();
        for (block, _) in &blocks {
            hasher.update(block);
        }
        let senders: Vec<Contributor> = blocks.iter().map(|(_, from)| *from).collect();
        if hasher.finalize().as_slice() != expected {
            let block_hashes = blocks
                .iter()
                .enumerate()
                .map(|(i, (data, from))| (i, *from, Sha1::digest(data).into()))
                .collect();
            return Verified {
                piece,
                result: Ok(false),
                senders,
                block_hashes,
                liars: Vec::new(),
            };
        }
        let liars = suspects
            .iter()
            .filter(|(i, _, hash)| {
                blocks
                    .get(*i)
                    .is_some_and(|(data, _)| Sha1::digest(data).as_slice() != hash)
            })
            .map(|(_, from, _)| *from)
            .collect();
        let data: Vec<Bytes> = blocks.into_iter().map(|(data, _)| data).collect();
        let result = store.write_piece(piece, &data).map(|()| true);
        Verified {
            piece,
            result,
            senders,
            block_hashes: Vec::new(),
            liars,
        }
    }
}
