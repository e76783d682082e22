//! The start-up check: which pieces are already in the store. The store's
//! [`Recovery`](crate::recovery::Recovery) says which pieces it vouches for
//! and which must be hashed; only those are read and hashed here.

use std::sync::Arc;

use sha1::{Digest, Sha1};
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::recovery::Recovery;
use crate::store::Store;

/// What the check found.
#[derive(Debug)]
pub(crate) struct Checked {
    /// Pieces verified on disk.
    pub(crate) have: Bitfield,
    /// How many of them the resume record vouched for.
    pub(crate) trusted: usize,
    /// How many pieces were hashed.
    pub(crate) hashed: usize,
    /// The resume record described the files exactly: no new one is needed.
    pub(crate) exact: bool,
}

impl Checked {
    /// Nothing found (the check could not run).
    pub(crate) fn nothing(piece_count: usize) -> Self {
        Self {
            have: Bitfield::new(piece_count),
            trusted: 0,
            hashed: 0,
            exact: false,
        }
    }
}

/// Tells the store which files are wanted, asks it what it can vouch for,
/// and hashes the rest of what it holds; `full` (a recheck) trusts nothing
/// and hashes every piece. Blocking; stops hashing early when `cancel`
/// fires.
pub(crate) fn check(
    store: &Arc<dyn Store>,
    meta: &MetaInfo,
    wanted: &[bool],
    full: bool,
    cancel: &CancellationToken,
) -> Checked {
    // Before anything is read: where the store finds unwanted files.
    if let Err(e) = store.set_wanted_files(wanted) {
        log::error!("[{}] file selection: {e}", meta.info_hash.short());
    }
    let recovery = if full {
        Recovery::check_all(meta.piece_count())
    } else {
        store.recover(meta.piece_count())
    };
    let mut have = recovery.trusted;
    let trusted = have.count_ones();
    let mut hashed = 0;
    for index in recovery.to_hash.iter_ones() {
        if cancel.is_cancelled() {
            break;
        }
        let Some(expected) = meta.piece_hashes.get(index) else {
            continue;
        };
        hashed += 1;
        let index = index as u32;
        // A missing or short file is simply a piece we do not have.
        let Ok(data) = store.read_block(index, 0, meta.piece_len(index)) else {
            continue;
        };
        if Sha1::digest(&data).as_slice() == expected {
            have.set(index as usize);
        }
    }
    Checked {
        have,
        trusted,
        hashed,
        exact: recovery.exact,
    }
}
