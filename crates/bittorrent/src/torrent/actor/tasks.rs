//! A set of tasks made on first use and let go once empty: an idle torrent
//! holds no `JoinSet` (each is an allocation, and a torrent has six of them,
//! most never used by a quiet seed of a big session).

use std::future::Future;

use tokio::task::{Id, JoinError, JoinSet};

/// A `JoinSet` that exists only while it holds tasks.
pub(super) struct Tasks<T>(Option<JoinSet<T>>);

impl<T> Default for Tasks<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Send + 'static> Tasks<T> {
    /// The set, made if needed (to spawn into).
    pub(super) fn set(&mut self) -> &mut JoinSet<T> {
        self.0.get_or_insert_with(JoinSet::new)
    }

    /// Spawns `task` into the set.
    pub(super) fn spawn<F>(&mut self, task: F) -> Id
    where
        F: Future<Output = T> + Send + 'static,
    {
        self.set().spawn(task).id()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.as_ref().is_none_or(JoinSet::is_empty)
    }

    /// The next task to end, with its id; `None` when there are none.
    pub(super) async fn join_next_with_id(&mut self) -> Option<Result<(Id, T), JoinError>> {
        let set = self.0.as_mut()?;
        let next = set.join_next_with_id().await;
        if set.is_empty() {
            self.0 = None;
        }
        next
    }

    /// The next task to end; `None` when there are none.
    pub(super) async fn join_next(&mut self) -> Option<Result<T, JoinError>> {
        Some(self.join_next_with_id().await?.map(|(_, out)| out))
    }

    /// Aborts every task and waits for them.
    pub(super) async fn shutdown(&mut self) {
        if let Some(mut set) = self.0.take() {
            set.shutdown().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_set_exists_only_while_it_holds_tasks() {
        let mut tasks = Tasks::default();
        assert!(tasks.is_empty() && tasks.0.is_none());
        assert!(tasks.join_next().await.is_none());
        tasks.spawn(async { 1u8 });
        tasks.spawn(async { 2u8 });
        assert!(!tasks.is_empty());
        let mut got = vec![
            tasks.join_next().await.unwrap().unwrap(),
            tasks.join_next().await.unwrap().unwrap(),
        ];
        got.sort_unstable();
        assert_eq!(got, [1, 2]);
        assert!(tasks.is_empty() && tasks.0.is_none());
        tasks.spawn(std::future::pending::<u8>());
        tasks.shutdown().await;
        assert!(tasks.is_empty() && tasks.0.is_none());
    }
}
