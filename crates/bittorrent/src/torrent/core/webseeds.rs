//! The torrent's web seeds (BEP 19), as the core sees them: one state per
//! server, how long a run it gets, and what a failure costs. Pure.
//!
//! # States
//! Each web seed is in exactly one state (`SeedState`):
//!
//! - **idle**: its task waits for a run; the core hands it one (from
//!   [`Picker::pick_run`](crate::picker::Picker::pick_run)) while the torrent
//!   is active, not complete and not backlogged on verification;
//! - **fetching** a run of pieces: its pieces arrive in run order; `next`
//!   is the first not delivered yet. Every piece from `next` on still holds
//!   the web seed's request in the picker;
//! - **backing off** until an instant, after a failed run: 5 s after the
//!   first failure in a row, doubling up to 5 minutes;
//! - **dropped**, for good: the error cannot be helped by retrying
//!   ([`WebSeedError::is_permanent`]: 404, 410, a wrong answer, a redirect
//!   loop), [`MAX_FAILURES`] runs failed in a row, a piece it sent failed
//!   its hash check, or its task ended. Its later events are ignored.
//!
//! # How many at once
//! At most [`MAX_ACTIVE`] web seeds of a torrent fetch at once (a torrent
//! may list hundreds of mirrors). When a slot is free the fastest idle web
//! seed (by its last successful run) gets it, then those not tried yet in
//! the torrent's order; the others wait as spares for when one fails.
//!
//! # Taking over a slow server's run
//! A run's pieces are held by its web seed, so a slow server would decide
//! when the download ends while faster ones sit idle. When an idle web seed
//! finds no missing piece, it takes over the tail of the run in progress
//! that would take longest to finish ([`WebSeeds::take_over`]): the tail is
//! split in proportion to the two servers' speeds (the holder's speed over
//! its current run, the taker's over its last one), the holder keeps at
//! least the piece it is fetching, and its run now ends where the taker's
//! starts. The picker is not touched: the requests of the tail's blocks
//! pass from one web seed to the other. The holder's server still sends
//! the tail (its task cannot be told mid-run); those pieces are counted
//! as wasted, or are duplicates. A holder is taken over only after
//! [`TAKE_OVER_AFTER`] of its run, so its speed is measured. When the
//! holder has only the piece it is on left, a web seed whose measured
//! speed is more than twice the holder's fetches that piece too (a
//! duplicate, as in a peers' endgame: the first copy counts), one at a
//! time per piece.
//!
//! # Run length
//! About [`RUN_SECONDS`] of the server's speed measured over its last
//! successful run ([`FIRST_RUN_BYTES`] before any), at most [`RUN_BYTES`]:
//! long enough for sequential reads to pay, short enough that a slow server
//! does not hold many pieces the peers could fetch. And never more than the
//! bytes still missing shared among the sources (usable web seeds and the
//! peers we fetch from), so that a small torrent is not one server's run
//! while the peers wait for the endgame. In pieces, rounded up: never less
//! than one piece.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::torrent::{WebSeedState, WebSeedStatus};
use crate::webseed::{WebSeedError, WebSeedId};

/// The bytes a web seed is asked for in one run, at most.
pub(crate) const RUN_BYTES: u64 = 8 * 1024 * 1024;
/// The bytes of a web seed's runs before its speed is known.
pub(crate) const FIRST_RUN_BYTES: u64 = 4 * 1024 * 1024;
/// A run lasts about this long at the server's measured speed.
pub(crate) const RUN_SECONDS: f64 = 4.0;
/// Backoff after the first failed run in a row.
pub(crate) const BACKOFF_FIRST: Duration = Duration::from_secs(5);
/// The longest backoff.
pub(crate) const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// Web seeds of a torrent fetching at once, at most.
pub(crate) const MAX_ACTIVE: usize = 8;
/// Failed runs in a row after which a web seed is dropped.
pub(crate) const MAX_FAILURES: u32 = 6;
/// A run in progress can be taken over once it has lasted this long.
pub(crate) const TAKE_OVER_AFTER: Duration = Duration::from_secs(1);

/// Where one web seed is (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
enum SeedState {
    Idle,
    /// `bytes` came in since `started`.
    Fetching {
        run: Range<u32>,
        next: u32,
        started: Instant,
        bytes: u64,
    },
    Backoff {
        until: Instant,
    },
    Dropped,
}

/// One web seed.
#[derive(Debug)]
struct Seed {
    url: Arc<str>,
    state: SeedState,
    /// Payload bytes received from it (every piece it delivered).
    bytes: u64,
    /// Failed runs in a row.
    failures: u32,
    last_error: Option<String>,
    /// Where its last run ended: the next run continues there if it can.
    continue_at: Option<u32>,
    /// Bytes per second over its last successful run.
    rate: Option<f64>,
}

/// What an idle web seed takes from a slow run ([`WebSeeds::take_over`]).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TakeOver {
    /// The run's tail: its requests pass to the taker.
    Tail(Range<u32>),
    /// A second copy of the one piece the holder has left.
    Duplicate(u32),
}

/// What became of a run that ended.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RunEnd {
    /// Not a run we know of (a dropped web seed's, or a stray event).
    Ignored,
    /// Every piece delivered; the web seed is idle again.
    Done,
    /// Failed; retried after this long.
    Retry(Duration),
    /// Failed for good: the web seed is dropped.
    Dropped,
}

/// Every web seed of a torrent; a [`WebSeedId`] is an index.
#[derive(Debug, Default)]
pub(crate) struct WebSeeds {
    seeds: Vec<Seed>,
}

impl WebSeeds {
    /// Adds a web seed (idle). `None` past `u16::MAX` web seeds.
    pub(crate) fn add(&mut self, url: Arc<str>) -> Option<WebSeedId> {
        let id = WebSeedId(u16::try_from(self.seeds.len()).ok()?);
        self.seeds.push(Seed {
            url,
            state: SeedState::Idle,
            bytes: 0,
            failures: 0,
            last_error: None,
            continue_at: None,
            rate: None,
        });
        Some(id)
    }

    /// The URL of web seed `id`.
    pub(crate) fn url(&self, id: WebSeedId) -> Option<&Arc<str>> {
        self.seeds.get(usize::from(id.0)).map(|s| &s.url)
    }

    /// Payload bytes received from every web seed.
    pub(crate) fn bytes(&self) -> u64 {
        self.seeds.iter().map(|s| s.bytes).sum()
    }

    /// Web seeds fetching a run now.
    pub(crate) fn active(&self) -> usize {
        self.seeds
            .iter()
            .filter(|s| matches!(s.state, SeedState::Fetching { .. }))
            .count()
    }

    /// Whether any web seed is left (not dropped).
    pub(crate) fn in_use(&self) -> bool {
        self.seeds
            .iter()
            .any(|s| !matches!(s.state, SeedState::Dropped))
    }

    /// Pieces the runs in progress still hold (requested, not delivered).
    pub(crate) fn held_pieces(&self) -> usize {
        self.seeds
            .iter()
            .map(|s| match &s.state {
                SeedState::Fetching { run, next, .. } => (*next..run.end).len(),
                _ => 0,
            })
            .sum()
    }

    /// Each web seed's status, in order.
    pub(crate) fn status(&self) -> Vec<WebSeedStatus> {
        self.seeds
            .iter()
            .map(|s| WebSeedStatus {
                url: s.url.to_string(),
                state: match s.state {
                    SeedState::Idle => WebSeedState::Idle,
                    SeedState::Fetching { .. } => WebSeedState::Fetching,
                    SeedState::Backoff { .. } => WebSeedState::BackingOff,
                    SeedState::Dropped => WebSeedState::Dropped,
                },
                downloaded: s.bytes,
                failures: s.failures,
                last_error: s.last_error.clone(),
            })
            .collect()
    }

    /// The web seeds to start a run at `now`, best first, as many as there
    /// are free slots: idle ones, and those whose backoff is over (they
    /// become idle). See the module docs for the order.
    pub(crate) fn ready(&mut self, now: Instant) -> Vec<WebSeedId> {
        let mut ready = Vec::new();
        for (i, seed) in self.seeds.iter_mut().enumerate() {
            if matches!(seed.state, SeedState::Backoff { until } if until <= now) {
                seed.state = SeedState::Idle;
            }
            if seed.state == SeedState::Idle {
                // `add` keeps the count within u16.
                ready.push((seed.rate, WebSeedId(i as u16)));
            }
        }
        // Stable: untried ones (no rate) keep the torrent's order, after
        // the measured ones, fastest first.
        ready.sort_by(|(a, _), (b, _)| b.partial_cmp(a).unwrap_or(std::cmp::Ordering::Equal));
        let free = MAX_ACTIVE.saturating_sub(self.active());
        ready.into_iter().take(free).map(|(_, id)| id).collect()
    }

    /// Pieces of `piece_length` bytes in web seed `id`'s next run, with
    /// `bytes_left` wanted bytes missing and `peers` peers fetching (see the
    /// module docs).
    pub(crate) fn run_pieces(
        &self,
        id: WebSeedId,
        piece_length: u32,
        bytes_left: u64,
        peers: usize,
    ) -> u32 {
        let usable = self
            .seeds
            .iter()
            .filter(|s| s.state != SeedState::Dropped)
            .count();
        let sources = (usable.min(MAX_ACTIVE) + peers).max(1) as u64;
        let rate = self.seeds.get(usize::from(id.0)).and_then(|s| s.rate);
        let target = rate.map_or(FIRST_RUN_BYTES, |rate| (rate * RUN_SECONDS) as u64);
        let bytes = target.min(RUN_BYTES).min(bytes_left.div_ceil(sources));
        let pieces = bytes.div_ceil(u64::from(piece_length.max(1)));
        u32::try_from(pieces).unwrap_or(u32::MAX).max(1)
    }

    /// Where web seed `id`'s next run should start, if it can.
    pub(crate) fn continue_at(&self, id: WebSeedId) -> Option<u32> {
        self.seeds.get(usize::from(id.0))?.continue_at
    }

    /// Idle web seed `id` starts fetching `run` at `now`.
    pub(crate) fn start(&mut self, id: WebSeedId, run: Range<u32>, now: Instant) {
        if let Some(seed) = self.seeds.get_mut(usize::from(id.0)) {
            if seed.state == SeedState::Idle {
                seed.state = SeedState::Fetching {
                    next: run.start,
                    run,
                    started: now,
                    bytes: 0,
                };
            }
        }
    }

    /// Idle web seed `taker` takes over the tail of the run in progress
    /// that would take longest to finish, or duplicates its last piece,
    /// when it is worth it (see the module docs), and starts fetching at
    /// `now`. The caller marks a duplicated piece requested once more.
    pub(crate) fn take_over(
        &mut self,
        taker: WebSeedId,
        piece_length: u32,
        now: Instant,
    ) -> Option<TakeOver> {
        let taker_index = usize::from(taker.0);
        if self.seeds.get(taker_index)?.state != SeedState::Idle {
            return None;
        }
        let (holder, holder_rate) = self.slowest_run(taker_index, piece_length, now)?;
        // Unknown: as fast as the holder.
        let measured = self.seeds[taker_index].rate;
        let taker_rate = measured.unwrap_or(holder_rate).max(1.0);
        let SeedState::Fetching { run, next, .. } = &mut self.seeds[holder].state else {
            return None;
        };
        let left = (*next..run.end).len();
        let share = (left as f64 * taker_rate / (taker_rate + holder_rate)).floor() as usize;
        let share = u32::try_from(share.min(left - 1)).ok()?;
        if share > 0 {
            let tail = run.end - share..run.end;
            run.end = tail.start;
            self.start(taker, tail.clone(), now);
            return Some(TakeOver::Tail(tail));
        }
        let piece = *next;
        let fetched_elsewhere = self.seeds.iter().enumerate().any(|(i, s)| {
            i != holder
                && matches!(&s.state, SeedState::Fetching { run, .. } if run.contains(&piece))
        });
        if fetched_elsewhere || measured.is_none_or(|rate| rate <= 2.0 * holder_rate) {
            return None;
        }
        self.start(taker, piece..piece + 1, now);
        Some(TakeOver::Duplicate(piece))
    }

    /// The run in progress (not `except`'s) that would take longest to
    /// finish at its server's speed over it, among those running for
    /// [`TAKE_OVER_AFTER`] with pieces left: its web seed and that speed.
    fn slowest_run(&self, except: usize, piece_length: u32, now: Instant) -> Option<(usize, f64)> {
        let piece_length = f64::from(piece_length.max(1));
        // (seconds left, holder, its speed)
        let mut slowest: Option<(f64, usize, f64)> = None;
        for (i, seed) in self.seeds.iter().enumerate() {
            let SeedState::Fetching {
                run,
                next,
                started,
                bytes,
            } = &seed.state
            else {
                continue;
            };
            let elapsed = now.saturating_duration_since(*started);
            let left = (*next..run.end).len();
            if i == except || elapsed < TAKE_OVER_AFTER || left == 0 {
                continue;
            }
            let rate = *bytes as f64 / elapsed.as_secs_f64();
            let secs = left as f64 * piece_length / rate.max(1.0);
            if slowest.is_none_or(|(most, ..)| secs > most) {
                slowest = Some((secs, i, rate));
            }
        }
        slowest.map(|(_, holder, rate)| (holder, rate))
    }

    /// Piece `index` of `len` bytes arrived from `id`. True when it is the
    /// next piece of the web seed's run (then it is counted and the core
    /// feeds it to the picker); false for anything else, which the core
    /// throws away (a dropped web seed's, out of order, out of the run).
    pub(crate) fn piece(&mut self, id: WebSeedId, index: u32, len: u64) -> bool {
        let Some(seed) = self.seeds.get_mut(usize::from(id.0)) else {
            return false;
        };
        let SeedState::Fetching {
            run, next, bytes, ..
        } = &mut seed.state
        else {
            return false;
        };
        if index != *next || !run.contains(&index) {
            return false;
        }
        *next += 1;
        *bytes += len;
        seed.bytes += len;
        seed.continue_at = Some(*next);
        true
    }

    /// The run of `id` ended with `outcome` at `now`. Returns what became
    /// of it and the pieces to give back to the picker: those from the
    /// first one not delivered to the end of the run (whatever the task
    /// says it did not deliver, the core's count is what the picker holds).
    pub(crate) fn run_ended(
        &mut self,
        id: WebSeedId,
        outcome: &Result<(), WebSeedError>,
        now: Instant,
    ) -> (RunEnd, Range<u32>) {
        let Some(seed) = self.seeds.get_mut(usize::from(id.0)) else {
            return (RunEnd::Ignored, 0..0);
        };
        let SeedState::Fetching {
            run,
            next,
            started,
            bytes,
        } = &seed.state
        else {
            return (RunEnd::Ignored, 0..0);
        };
        let back = *next..run.end;
        let Err(error) = outcome else {
            let secs = now.saturating_duration_since(*started).as_secs_f64();
            if secs > 0.0 && *bytes > 0 {
                seed.rate = Some(*bytes as f64 / secs);
            }
            seed.failures = 0;
            seed.state = SeedState::Idle;
            return (RunEnd::Done, back);
        };
        seed.failures += 1;
        seed.last_error = Some(error.to_string());
        if error.is_permanent() || seed.failures >= MAX_FAILURES {
            seed.state = SeedState::Dropped;
            return (RunEnd::Dropped, back);
        }
        let wait = backoff(seed.failures);
        seed.state = SeedState::Backoff { until: now + wait };
        (RunEnd::Retry(wait), back)
    }

    /// Drops web seed `id` for good because of `why`. Returns the pieces its
    /// run still held (to give back), or `None` if it was dropped already.
    pub(crate) fn drop_seed(&mut self, id: WebSeedId, why: String) -> Option<Range<u32>> {
        let seed = self.seeds.get_mut(usize::from(id.0))?;
        let held = match &seed.state {
            SeedState::Dropped => return None,
            SeedState::Fetching { run, next, .. } => *next..run.end,
            _ => 0..0,
        };
        seed.state = SeedState::Dropped;
        seed.last_error = Some(why);
        Some(held)
    }
}

/// The wait after `failures` failed runs in a row (at least 1).
fn backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(n: usize) -> WebSeeds {
        let mut seeds = WebSeeds::default();
        for i in 0..n {
            seeds
                .add(Arc::from(format!("http://127.0.0.1/{i}")))
                .unwrap();
        }
        seeds
    }

    const A: WebSeedId = WebSeedId(0);
    const B: WebSeedId = WebSeedId(1);
    const C: WebSeedId = WebSeedId(2);

    impl WebSeeds {
        fn rate_for_test(&mut self, id: WebSeedId, rate: f64) {
            self.seeds[usize::from(id.0)].rate = Some(rate);
        }
    }

    #[test]
    fn at_most_max_active_fetch_and_the_fastest_idle_ones_go_first() {
        let now = Instant::now();
        let mut s = seeds(MAX_ACTIVE + 3);
        let ready = s.ready(now);
        assert_eq!(ready.len(), MAX_ACTIVE);
        assert_eq!(ready[0], A, "untried ones in order");
        for (i, &id) in ready.iter().enumerate() {
            s.start(id, 0..1, now);
            assert!(s.piece(id, 0, 1000 * (i as u64 + 1)));
        }
        assert!(s.ready(now).is_empty(), "every slot taken");
        let later = now + Duration::from_secs(1);
        s.run_ended(A, &Ok(()), later);
        s.run_ended(B, &Ok(()), later);
        // B was faster than A; the untried ones come after both, but
        // only two slots are free.
        assert_eq!(s.ready(later), [B, A]);
        assert_eq!(s.run_pieces(A, 1, 1000, 0), 125, "shared among 8");
    }

    #[test]
    fn backoff_doubles_from_5_s_to_5_minutes() {
        let secs: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(secs, [5, 10, 20, 40, 80, 160, 300, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn run_length_follows_the_speed_and_a_share_of_what_is_left() {
        let now = Instant::now();
        let mut s = seeds(2);
        let k = 256 * 1024;
        assert_eq!(s.run_pieces(A, k, u64::MAX, 0), 16, "4 MiB at first");
        assert_eq!(s.run_pieces(A, k, 4 << 20, 0), 8, "2 MiB each");
        assert_eq!(s.run_pieces(A, k, 4 << 20, 2), 4, "1 MiB each with 2 peers");
        assert_eq!(s.run_pieces(A, 16 << 20, u64::MAX, 0), 1);
        assert_eq!(s.run_pieces(A, k, 1, 0), 1);
        // 1 MiB in 2 s: 512 KiB/s, a 2 MiB run; a fast one is capped.
        s.start(A, 0..4, now);
        for i in 0..4 {
            assert!(s.piece(A, i, k.into()));
        }
        s.run_ended(A, &Ok(()), now + Duration::from_secs(2));
        assert_eq!(s.run_pieces(A, k, u64::MAX, 0), 8);
        s.start(A, 4..8, now);
        for i in 4..8 {
            assert!(s.piece(A, i, k.into()));
        }
        s.run_ended(A, &Ok(()), now + Duration::from_millis(10));
        assert_eq!(
            s.run_pieces(A, k, u64::MAX, 0),
            (RUN_BYTES / u64::from(k)) as u32
        );
        assert_eq!(
            s.run_pieces(B, 16 * 1024, u64::MAX, 0),
            256,
            "B's own speed"
        );
    }

    #[test]
    fn pieces_count_only_in_run_order_and_a_run_gives_back_the_rest() {
        let now = Instant::now();
        let mut s = seeds(2);
        assert_eq!(s.ready(now), [A, B]);
        s.start(A, 4..8, now);
        assert_eq!(s.ready(now), [B]);
        assert_eq!((s.active(), s.held_pieces()), (1, 4));
        assert!(!s.piece(A, 5, 10), "out of order");
        assert!(!s.piece(B, 4, 10), "B is idle");
        assert!(s.piece(A, 4, 10));
        assert!(!s.piece(A, 4, 10), "twice");
        assert!(s.piece(A, 5, 10));
        assert_eq!(
            (s.bytes(), s.held_pieces(), s.continue_at(A)),
            (20, 2, Some(6))
        );
        let ended = s.run_ended(A, &Ok(()), now);
        assert_eq!(ended, (RunEnd::Done, 6..8));
        assert_eq!(s.run_ended(A, &Ok(()), now), (RunEnd::Ignored, 0..0));
        assert_eq!(s.ready(now), [A, B]);
    }

    #[test]
    fn failures_back_off_then_drop_and_a_success_resets_the_count() {
        let now = Instant::now();
        let mut s = seeds(1);
        let slow = Err(WebSeedError::TooSlow("1 B/s".into()));
        s.start(A, 0..2, now);
        assert_eq!(
            s.run_ended(A, &slow, now),
            (RunEnd::Retry(BACKOFF_FIRST), 0..2)
        );
        assert!(s.ready(now + Duration::from_secs(4)).is_empty());
        assert_eq!(s.ready(now + BACKOFF_FIRST), [A]);
        s.start(A, 0..2, now);
        assert_eq!(s.run_ended(A, &Ok(()), now).0, RunEnd::Done);
        for n in 1..MAX_FAILURES {
            s.start(A, 0..2, now);
            assert_eq!(s.run_ended(A, &slow, now).0, RunEnd::Retry(backoff(n)));
            s.ready(now + BACKOFF_MAX);
        }
        s.start(A, 0..2, now);
        assert_eq!(s.run_ended(A, &slow, now).0, RunEnd::Dropped);
        assert!(s.ready(now + BACKOFF_MAX).is_empty());
        let status = s.status();
        assert_eq!(status[0].state, WebSeedState::Dropped);
        assert_eq!(status[0].failures, MAX_FAILURES);
        assert_eq!(status[0].last_error.as_deref(), Some("too slow: 1 B/s"));
    }

    #[test]
    fn a_permanent_error_drops_at_once_and_a_dropped_seed_is_deaf() {
        let now = Instant::now();
        let mut s = seeds(1);
        s.start(A, 0..3, now);
        let gone = Err(WebSeedError::Status(404));
        assert_eq!(s.run_ended(A, &gone, now), (RunEnd::Dropped, 0..3));
        s.start(A, 0..3, now);
        assert!(!s.piece(A, 0, 1));
        assert_eq!(s.drop_seed(A, "again".into()), None);
        assert_eq!(s.active(), 0);
    }

    #[test]
    fn an_idle_seed_takes_over_a_slow_runs_tail_in_proportion_to_speed() {
        let now = Instant::now();
        let k = 1000;
        let mut s = seeds(3);
        // B measured 100x faster than A is going.
        s.start(B, 0..1, now);
        assert!(s.piece(B, 0, 100 * k as u64));
        s.run_ended(B, &Ok(()), now + Duration::from_secs(1));
        s.start(A, 10..30, now);
        assert!(s.piece(A, 10, k as u64));
        let later = now + Duration::from_millis(500);
        assert_eq!(s.take_over(B, k, later), None, "A's speed not known yet");
        let later = now + Duration::from_secs(1);
        // 19 pieces left; B takes 100/101 of them, A keeps its current one.
        assert_eq!(s.take_over(B, k, later), Some(TakeOver::Tail(12..30)));
        assert_eq!(s.held_pieces(), 19, "the requests changed hands");
        assert!(!s.piece(A, 12, k as u64), "A's run now ends at 12");
        assert!(s.piece(A, 11, k as u64));
        assert!(s.piece(B, 12, k as u64));
        let ended = s.run_ended(A, &Ok(()), later);
        assert_eq!(ended, (RunEnd::Done, 12..12), "A gives back nothing");
        // C, untried, counts as fast as the holder: half of B's rest.
        let later = later + Duration::from_secs(1);
        assert_eq!(s.take_over(C, k, later), Some(TakeOver::Tail(22..30)));
        // A (2000 B/s) against B (1000 B/s) on 13..22; C just started.
        assert_eq!(s.take_over(A, k, later), Some(TakeOver::Tail(16..22)));
        assert_eq!(s.take_over(B, k, later), None, "B is not idle");
    }

    #[test]
    fn a_slow_runs_last_piece_is_duplicated_by_a_much_faster_seed_only() {
        let now = Instant::now();
        let mut s = seeds(3);
        s.start(A, 0..2, now);
        assert!(s.piece(A, 0, 1000));
        let later = now + Duration::from_secs(1);
        assert_eq!(s.take_over(B, 1000, later), None, "B's speed unknown");
        // B measured at 2000 B/s: not more than twice A's 1000.
        s.start(B, 5..6, now);
        assert!(s.piece(B, 5, 2000));
        s.run_ended(B, &Ok(()), later);
        assert_eq!(s.take_over(B, 1000, later), None);
        // C measured at 3000 B/s duplicates piece 1, once.
        s.start(C, 6..7, now);
        assert!(s.piece(C, 6, 3000));
        s.run_ended(C, &Ok(()), later);
        assert_eq!(s.take_over(C, 1000, later), Some(TakeOver::Duplicate(1)));
        let again = later + Duration::from_secs(1);
        s.rate_for_test(B, 1e9);
        assert_eq!(s.take_over(B, 1000, again), None, "C fetches it already");
        // Both copies arrive: each counts in its own run.
        assert!(s.piece(C, 1, 1000));
        assert!(s.piece(A, 1, 1000));
    }

    #[test]
    fn dropping_a_fetching_seed_gives_back_what_its_run_holds() {
        let now = Instant::now();
        let mut s = seeds(1);
        s.start(A, 2..6, now);
        assert!(s.piece(A, 2, 1));
        assert_eq!(s.drop_seed(A, "bad piece".into()), Some(3..6));
        assert_eq!(s.held_pieces(), 0);
        assert_eq!(s.run_ended(A, &Ok(()), now), (RunEnd::Ignored, 0..0));
        assert_eq!(s.status()[0].last_error.as_deref(), Some("bad piece"));
    }
}
