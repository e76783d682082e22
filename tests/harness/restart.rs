//! Killing and restarting our CLI: one download run (to the end, or SIGKILLed after a while),
//! what its start-up check reported, and a chunked comparison of large files.

use std::fs::File;
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::thread::sleep;
use std::time::{Duration, Instant};

use super::Proc;

/// One run of the CLI.
#[derive(Clone, Debug)]
pub struct Run {
    /// From spawn to exit (or to the SIGKILL).
    pub elapsed: Duration,
    /// Ended by our SIGKILL (false: it exited by itself).
    pub killed: bool,
    /// How it ended.
    pub status: ExitStatus,
    /// What its start-up check logged (see [`check_summary`]), if it got that far.
    pub check: Option<String>,
}

/// Our CLI downloading `torrent` into `out` from the peer at 127.0.0.1:`peer` only (no
/// tracker, no DHT, any free port on 127.0.0.1, no progress display), logging at info level.
pub fn spawn_leecher(name: &str, torrent: &Path, out: &Path, peer: u16, log_dir: &Path) -> Proc {
    std::fs::create_dir_all(out).expect("create output dir");
    let mut cmd = super::cli_command();
    cmd.args(["--bind", "127.0.0.1", "-p", "0", "--no-tracker", "-q"])
        .args(["--peer", &format!("127.0.0.1:{peer}")])
        .arg("-o")
        .arg(out)
        .arg(torrent)
        .env("RUST_LOG", "info");
    Proc::spawn(name, cmd, log_dir)
}

/// Runs [`spawn_leecher`] until it exits, or SIGKILLs it once `kill_after` has passed. Panics
/// if it runs longer than `timeout` or exits by itself with a failure.
pub fn leech_once(
    name: &str,
    torrent: &Path,
    out: &Path,
    peer: u16,
    log_dir: &Path,
    kill_after: Option<Duration>,
    timeout: Duration,
) -> Run {
    let mut cli = spawn_leecher(name, torrent, out, peer, log_dir);
    let t0 = Instant::now();
    let mut killed = false;
    let status = loop {
        if let Some(status) = cli.try_wait() {
            break status;
        }
        if kill_after.is_some_and(|d| t0.elapsed() >= d) {
            cli.signal("KILL");
            killed = true;
            break cli
                .wait_exit(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{}", cli.failure("did not exit after SIGKILL")));
        }
        assert!(
            t0.elapsed() < timeout,
            "{}",
            cli.failure(&format!("did not finish within {timeout:?}"))
        );
        sleep(Duration::from_millis(5));
    };
    let elapsed = t0.elapsed();
    // It may have exited by itself just before the kill.
    let killed = killed && status.signal() == Some(9);
    assert!(
        killed || status.success(),
        "{}",
        cli.failure(&format!("ended by {status}"))
    );
    Run {
        elapsed,
        killed,
        status,
        check: check_summary(&cli.output()),
    }
}

/// The text after "pieces already present" in the torrent's start-up log line, e.g.
/// `(1000 from the resume record, 12 hashed)`.
pub fn check_summary(log: &str) -> Option<String> {
    log.lines().find_map(|l| {
        let (_, rest) = l.split_once(" pieces already present ")?;
        let count = l.split_once(" of ")?.0.rsplit(' ').next()?;
        Some(format!("{count} present {rest}"))
    })
}

/// The number of pieces hashed, from a [`check_summary`] (`..., N hashed)`).
pub fn hashed(summary: &str) -> Option<usize> {
    let (before, _) = summary.split_once(" hashed")?;
    before.rsplit([' ', '(']).next()?.parse().ok()
}

/// Panics unless the files at `a` and `b` have the same bytes (read 8 MiB at a time).
pub fn assert_same_bytes(a: &Path, b: &Path) {
    let open = |p: &Path| File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
    let (mut fa, mut fb) = (open(a), open(b));
    let (mut ba, mut bb) = (vec![0u8; 8 << 20], vec![0u8; 8 << 20]);
    let mut offset = 0u64;
    loop {
        let na = read_full(&mut fa, &mut ba);
        let nb = read_full(&mut fb, &mut bb);
        assert_eq!(
            na,
            nb,
            "{} and {} differ in length",
            a.display(),
            b.display()
        );
        // memcmp first: a byte loop is slow in debug builds.
        let differ = ba[..na] != bb[..nb];
        if let Some(i) = differ
            .then(|| ba[..na].iter().zip(&bb[..nb]).position(|(x, y)| x != y))
            .flatten()
        {
            panic!(
                "{} differs from {} at byte {}",
                b.display(),
                a.display(),
                offset + i as u64
            );
        }
        if na == 0 {
            return;
        }
        offset += na as u64;
    }
}

fn read_full(file: &mut File, buf: &mut [u8]) -> usize {
    let mut done = 0;
    while done < buf.len() {
        match file.read(&mut buf[done..]) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) => panic!("read: {e}"),
        }
    }
    done
}

/// Minimum, median and maximum, in seconds.
pub fn min_median_max(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => (f64::NAN, f64::NAN, f64::NAN),
        n => (v[0], v[n / 2], v[n - 1]),
    }
}
