//! The torrent actor's blocking jobs (check, writes and verifications, finalize, resume
//! record, file selection), each known by what it is, so a job that panics
//! is still reported as that job.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::Id;

use crate::store::StoreError;
use crate::torrent::actor::tasks::Tasks;
use crate::torrent::check::Checked;
use crate::torrent::core::disk::DiskDone;
use crate::torrent::error::{Job, JobError};

/// What a job returns.
pub(super) enum JobOutput {
    /// The start-up check (`torrent/check.rs`).
    Checked(Checked),
    /// A batch of writes and verifications (store errors are inside).
    Disk(DiskDone),
    /// A store job that returns nothing.
    Done,
}

/// Running blocking jobs.
#[derive(Default)]
pub(super) struct Jobs {
    set: Tasks<Result<JobOutput, StoreError>>,
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
        let handle = self.set.set().spawn_blocking(work);
        self.running.insert(handle.id(), job);
    }

    /// Runs `work` on a blocking thread as `job` once `limit` gives a
    /// permit (kept until the work ends): the session's many torrents check
    /// a few at a time rather than each on its own thread at once.
    pub(super) fn spawn_limited<F>(&mut self, job: Job, limit: Arc<Semaphore>, work: F)
    where
        F: FnOnce() -> Result<JobOutput, StoreError> + Send + 'static,
    {
        let id = self.set.spawn(async move {
            // Never closed; if it were, the work runs unlimited.
            let _permit = limit.acquire_owned().await;
            match tokio::task::spawn_blocking(work).await {
                Ok(result) => result,
                // A panic of the work is this task's (reported as lost).
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        });
        self.running.insert(id, job);
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
            if self.running.is_empty() {
                // Let the map's table go (a torrent's jobs come in bursts).
                self.running = HashMap::new();
            }
            let result = match outcome {
                Ok(result) => result.map_err(JobError::from),
                Err(cause) => Err(JobError::Lost { job, cause }),
            };
            return Some((job, result));
        }
    }
}
