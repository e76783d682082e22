//! The torrent actor's blocking jobs (check, verify, finalize, resume
//! record, file selection), each known by what it is, so a job that panics
//! is still reported as that job.

use std::collections::HashMap;
use std::sync::Arc;

use sha1::{Digest, Sha1};
use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::store::{Store, StoreError};
use crate::torrent::core::verify::Verified;
use crate::torrent::error::{Job, JobError};

/// What a job returns.
pub(super) enum JobOutput {
    /// The check: pieces found, and whether the resume record said so.
    Checked(Bitfield, bool),
    /// A verification (its store error, if any, is inside).
    Verified(Verified),
    /// A store job that returns nothing.
    Done,
}

/// Running blocking jobs.
#[derive(Default)]
pub(super) struct Jobs {
    set: JoinSet<Result<JobOutput, StoreError>>,
    running: HashMap<Id, Job>,
}

impl Jobs {
    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    /// Runs `work` on a blocking thread as `job`.
    pub(super) fn spawn<F>(&mut self, job: Job, work: F)
    where
        F: FnOnce() -> Result<JobOutput, StoreError> + Send + 'static,
    {
        let handle = self.set.spawn_blocking(work);
        self.running.insert(handle.id(), job);
    }

    /// The next job to end, with its result; `None` when none runs.
    pub(super) async fn next(&mut self) -> Option<(Job, Result<JobOutput, JobError>)> {
        loop {
            let (id, outcome) = match self.set.join_next_with_id().await? {
                Ok((id, result)) => (id, Ok(result)),
                Err(e) => (e.id(), Err(e.to_string())),
            };
            // Every spawned job is in `running`.
            let Some(job) = self.running.remove(&id) else {
                continue;
            };
            let result = match outcome {
                Ok(result) => result.map_err(JobError::from),
                Err(cause) => Err(JobError::Lost { job, cause }),
            };
            return Some((job, result));
        }
    }
}

/// Finds the pieces already in the store: from its resume record if that is
/// still valid (second value true), else by hashing every piece. The store
/// learns the file selection first.
pub(super) fn check(
    store: Arc<dyn Store>,
    meta: Arc<MetaInfo>,
    wanted: Vec<bool>,
    cancel: CancellationToken,
) -> Result<JobOutput, StoreError> {
    // Before anything is read: where the store finds unwanted files.
    if let Err(e) = store.set_wanted_files(&wanted) {
        log::error!("[{}] file selection: {e}", meta.info_hash.short());
    }
    if let Some(have) = store.load_resume() {
        log::debug!("[{}] using the resume record", meta.info_hash.short());
        return Ok(JobOutput::Checked(have, true));
    }
    let mut have = Bitfield::new(meta.piece_count());
    for (index, expected) in meta.piece_hashes.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let index = index as u32;
        // A missing or short file is simply a piece we do not have.
        let Ok(data) = store.read_block(index, 0, meta.piece_len(index)) else {
            continue;
        };
        if Sha1::digest(&data).as_slice() == expected {
            have.set(index as usize);
        }
    }
    Ok(JobOutput::Checked(have, false))
}
