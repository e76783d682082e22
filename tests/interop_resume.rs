//! A crash costs only what changed: our CLI downloads 1 GiB from a libtorrent seeder and is
//! SIGKILLed every 1.5 s, restarted each time with the same data directory, until it finishes.
//! The data must be byte-identical and each kill may cost at most [`MAX_OVERHEAD_PER_KILL`]:
//! overhead = (time of all runs - time of an uninterrupted download) / kills, both measured
//! here, against the same seeder (uninterrupted and killed downloads alternate, as the
//! machine's load drifts). Each restart may hash at most [`MAX_HASHED_PER_RESTART`] pieces.
//!
//! Run it alone (it writes 3 GiB to a temporary directory):
//! `cargo test -p bittorrent-cli --test interop_resume -- --nocapture`.

#[macro_use]
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::fixture::MIB;
use harness::restart::{self, Run};
use harness::Tool;

/// The payload: 1 GiB in 1 MiB pieces.
const SIZE: u64 = 1024 * MIB;
const PIECE_LOG2: u32 = 20;

/// Time between a (re)start of the CLI and its SIGKILL.
const KILL_EVERY: Duration = Duration::from_millis(1500);

/// The bound of the issue: what a restart may cost, on average over the kills.
const MAX_OVERHEAD_PER_KILL: f64 = 0.3;

/// Measurements before the test fails.
const MAX_ATTEMPTS: usize = 3;

/// Killed series per measurement (the uninterrupted download takes 3-7 s here, so a series
/// has only 1-4 kills: its time is noisy).
const SERIES: usize = 2;

/// At most this many pieces may be hashed by one restart (seen: 0-23 of 1024; the check before
/// this design hashed all of them).
const MAX_HASHED_PER_RESTART: usize = 128;

/// One run may take this long before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// At most this many runs (a download that makes no progress between kills fails here).
const MAX_RUNS: usize = 400;

#[test]
fn sigkill_every_1_5s_costs_little_per_kill() {
    require!(Tool::Libtorrent, Tool::Mktorrent);
    let dir = harness::scratch();
    let seed_dir = dir.path().join("seed");
    let payload = seed_dir.join("payload.bin");
    harness::write_payload(&payload, SIZE, 10);
    let torrent = dir.path().join("payload.torrent");
    harness::make_torrent(&payload, None, PIECE_LOG2, &torrent);
    // A 50 ms tick: libtorrent reacts to a new connection without waiting for its 500 ms tick.
    // A 16 MiB send buffer: with its default, libtorrent sends to a new connection at a third
    // of full speed for up to a second, and each kill would measure that ramp (~0.25 s), not
    // ours. No upload limit: a rate limiter would hand a restarted peer the quota it saved
    // while nobody downloaded, and so hide what a restart costs.
    let (_seeder, port) = harness::lt_seeder_with(
        "lt-seeder",
        &torrent,
        &seed_dir,
        dir.path(),
        &["--tick-interval", "50", "--send-buffer", "16777216"],
    );

    // The first download through a fresh seeder is slower (libtorrent maps the file's pages on
    // first use): not measured.
    uninterrupted(dir.path(), &torrent, &payload, port, "warm-up");
    // Timings are noisy on a shared machine: measure again before failing, and judge the best
    // attempt.
    let mut best = f64::INFINITY;
    for attempt in 1..=MAX_ATTEMPTS {
        best = best.min(measure(dir.path(), &torrent, &payload, port, attempt));
        if best <= MAX_OVERHEAD_PER_KILL {
            return;
        }
        eprintln!("over the bound; measuring again");
    }
    panic!(
        "a kill costs {best:.3}s on average at best ({MAX_ATTEMPTS} attempts), more than \
         {MAX_OVERHEAD_PER_KILL}s"
    );
}

/// One uninterrupted download into a new directory; checks it and returns its time in seconds.
fn uninterrupted(dir: &Path, torrent: &Path, payload: &Path, port: u16, name: &str) -> f64 {
    let whole = dir.join(name);
    let run = restart::leech_once(name, torrent, &whole, port, dir, None, RUN_TIMEOUT);
    restart::assert_same_bytes(payload, &whole.join("payload.bin"));
    std::fs::remove_dir_all(&whole).expect("remove the copy");
    eprintln!(
        "{name}: uninterrupted in {:.2}s ({})",
        run.elapsed.as_secs_f64(),
        run.check.as_deref().unwrap_or("no check line")
    );
    run.elapsed.as_secs_f64()
}

/// Downloads killed every [`KILL_EVERY`] until complete, into a new directory; checks the
/// result and returns the runs.
fn killed_series(dir: &Path, torrent: &Path, payload: &Path, port: u16, name: &str) -> Vec<Run> {
    let out = dir.join(name);
    let mut runs: Vec<Run> = Vec::new();
    while runs.last().is_none_or(|r| r.killed) {
        assert!(runs.len() < MAX_RUNS, "not complete after {MAX_RUNS} runs");
        let run = restart::leech_once(
            &format!("{name}-{}", runs.len() + 1),
            torrent,
            &out,
            port,
            dir,
            Some(KILL_EVERY),
            RUN_TIMEOUT,
        );
        eprintln!(
            "{name} run {}: {:.2}s, {}; check: {}",
            runs.len() + 1,
            run.elapsed.as_secs_f64(),
            if run.killed { "killed" } else { "exited" },
            run.check.as_deref().unwrap_or("none logged"),
        );
        runs.push(run);
    }
    restart::assert_same_bytes(payload, &out.join("payload.bin"));
    std::fs::remove_dir_all(&out).expect("remove the killed copy");
    // Every restart's check hashes little: what the record does not list and has data.
    for run in &runs[1..] {
        let hashed = run.check.as_deref().and_then(restart::hashed);
        assert!(
            hashed.is_some_and(|n| n <= MAX_HASHED_PER_RESTART),
            "{name}: a restart hashed {hashed:?} pieces (at most {MAX_HASHED_PER_RESTART})"
        );
    }
    runs
}

/// [`SERIES`] killed series, each between two uninterrupted downloads (the load drifts: each
/// series is compared with the mean of its neighbours); prints the figures and returns the
/// overhead per kill in seconds, pooled over the series.
fn measure(dir: &Path, torrent: &Path, payload: &Path, port: u16, attempt: usize) -> f64 {
    let whole =
        |i: usize| uninterrupted(dir, torrent, payload, port, &format!("whole-{attempt}-{i}"));
    let mut before = whole(0);
    let (mut total, mut base, mut kills, mut hashed) = (0.0, 0.0, 0, Vec::new());
    for series in 1..=SERIES {
        let runs = killed_series(
            dir,
            torrent,
            payload,
            port,
            &format!("killed-{attempt}-{series}"),
        );
        let after = whole(series);
        total += runs.iter().map(|r| r.elapsed.as_secs_f64()).sum::<f64>();
        base += (before + after) / 2.0;
        kills += runs.iter().filter(|r| r.killed).count();
        // Every restart's check (the first run starts on an empty directory).
        hashed.extend(
            runs[1..]
                .iter()
                .filter_map(|r| r.check.as_deref().and_then(restart::hashed))
                .map(|n| n as f64),
        );
        before = after;
    }
    let overhead = (total - base) / kills.max(1) as f64;
    let (lo, med, hi) = restart::min_median_max(&hashed);
    eprintln!(
        "RESULT: {SERIES} series, {kills} kills; killed runs {total:.2}s vs uninterrupted \
         {base:.2}s: overhead {overhead:.3}s per kill (bound {MAX_OVERHEAD_PER_KILL}s); pieces \
         hashed per restart min/median/max {lo}/{med}/{hi} of {}",
        SIZE >> PIECE_LOG2
    );
    overhead
}
