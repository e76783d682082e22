//! Waiting for an event with a deadline. The events the tests wait for (a log line, a process
//! exit, a port that accepts, a tracker count) come from other processes, files and sockets
//! that offer no notification, so every wait of the harness polls through [`poll`].

use std::thread::sleep;
use std::time::{Duration, Instant};

use crate::harness::proc::Proc;

/// How long a leecher may take before the test fails.
pub const LEECH_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a peer or tracker may take to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The interval of the harness's polls of logs and processes.
pub const POLL: Duration = Duration::from_millis(50);

/// Calls `check` every `every` until it returns `Some` (returned), or `None` once `timeout`
/// has passed (`check` runs at least once, and once more at the deadline).
pub fn poll<T>(
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        let now = Instant::now();
        if now >= deadline {
            return None;
        }
        // The poll interval: what we wait for sends no notification (see the module doc).
        sleep(every.min(deadline - now));
    }
}

/// Polls `cond` (every 100 ms) until it holds; panics after `timeout`, or as soon as one of
/// `watched` exits (with its log tail), so that a peer that died does not cost a timeout.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    watched: &mut [&mut Proc],
    mut cond: impl FnMut() -> bool,
) {
    let outcome = poll(timeout, Duration::from_millis(100), || {
        if cond() {
            return Some(Ok(()));
        }
        watched.iter_mut().find_map(|p| {
            p.try_wait().map(|status| {
                Err(p.failure(&format!("exited ({status}) while waiting for {what}")))
            })
        })
    });
    match outcome {
        Some(Ok(())) => {}
        Some(Err(failure)) => panic!("{failure}"),
        None => panic!("no {what} after {timeout:?}"),
    }
}
