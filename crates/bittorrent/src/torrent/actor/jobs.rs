//! The torrent actor's blocking jobs (check, verify, finalize, resume
//! record, file selection), each known by what it is, so a job that panics
//! is still reported as that job.

use std::collections::HashMap;

use tokio::task::{Id, JoinSet};

use crate::store::StoreError;
use crate::torrent::check::Checked;
use crate::torrent::core::verify::Verified;
use crate::torrent::error::{Job, JobError};

/// What a job returns.
pub(super) enum JobOutput {
    /// The start-up check (`torrent/check.rs`).
    Checked(Checked),
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
