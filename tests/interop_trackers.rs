//! End-to-end tests of `bittorrent-cli`'s tracker clients against opentracker on loopback:
//! its UDP endpoint (BEP 15) and BEP 12 tiers whose first tier is dead.
//!
//! opentracker serves HTTP and UDP on the same port; a libtorrent seeder (tests/peers/lt_peer.py)
//! announces there, and our CLI downloads with no `--peer`, so the tracker is its only way to
//! find the seeder: a completed, byte-identical download proves our announce reached
//! opentracker and its answer was understood. Everything listens on and dials 127.0.0.1 only.
//! Run them alone with `cargo test -p bittorrent-cli --test interop_trackers`; see `harness`
//! for the environment variables (`BT_INTEROP_REQUIRED`, `BT_PYTHON`).

#[macro_use]
mod harness;

use std::path::{Path, PathBuf};
use std::time::Duration;

use harness::trackers::{dead_udp_port, http_url, make_torrent_tiers, udp_url};
use harness::{Leecher, Proc, Tool, Tracker};

/// 256 KiB pieces.
const PIECE_LOG2: u32 = 18;

/// 3 MiB + 12345 bytes: the last piece is short.
const PAYLOAD: u64 = 3 * (1 << 20) + 12345;

/// How long the tracker may take to list the seeder.
const SEEDER_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(20);

/// A payload, the torrent our CLI gets (with `tiers`) and the torrent the seeder gets (with
/// only the working tracker, so the test checks our client, not libtorrent's tier logic; both
/// have the same info dictionary, hence the same info-hash).
struct Fixture {
    dir: tempfile::TempDir,
    seed_dir: PathBuf,
    content: PathBuf,
    torrent: PathBuf,
    hash: [u8; 20],
    tracker: Tracker,
    _seeder: Proc,
}

impl Fixture {
    /// Starts opentracker on `port` and a libtorrent seeder announcing to `seeder_url`; waits
    /// until the tracker lists the seeder.
    fn start(port: u16, tiers: &[&[&str]], seeder_url: &str) -> Fixture {
        let dir = harness::scratch();
        let seed_dir = dir.path().join("seed");
        let content = seed_dir.join("payload.bin");
        harness::write_payload(&content, PAYLOAD, 15);
        let torrent = dir.path().join("leech.torrent");
        make_torrent_tiers(&content, tiers, PIECE_LOG2, &torrent);
        let seed_torrent = dir.path().join("seed.torrent");
        make_torrent_tiers(&content, &[&[seeder_url]], PIECE_LOG2, &seed_torrent);
        let hash = harness::info_hash(&torrent);
        assert_eq!(
            hash,
            harness::info_hash(&seed_torrent),
            "same info dictionary"
        );

        let tracker = Tracker::start(dir.path(), port, &[hash]);
        let (seeder, _) = harness::lt_seeder("lt-seeder", &seed_torrent, &seed_dir, dir.path());
        tracker.wait_seeders_for(&hash, 1, SEEDER_ANNOUNCE_TIMEOUT);
        Fixture {
            dir,
            seed_dir,
            content,
            torrent,
            hash,
            tracker,
            _seeder: seeder,
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Our CLI downloads via the trackers only (no `--peer`); checks the bytes and returns the
    /// CLI's log.
    fn leech_and_check(&self) -> String {
        let out = self.path().join("out");
        let (_took, cli) = harness::leech_with(Leecher::Cli, &self.torrent, &out, &[], self.path())
            .unwrap_or_else(|e| panic!("{e}"));
        harness::assert_same_content(&self.content, &out.join("payload.bin"));
        cli.output()
    }
}

/// Panics unless the CLI's log has a line containing all of `parts`.
fn assert_logged(log: &str, parts: &[&str]) {
    assert!(
        log.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no log line with {parts:?} in:\n{log}"
    );
}

#[test]
fn udp_only_tracker_with_libtorrent_seeder() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    let port = harness::free_port();
    let udp = udp_url(port);
    let fx = Fixture::start(port, &[&[&udp]], &udp);
    // The seeder reached opentracker over UDP: its torrent names no other tracker.
    let log = fx.leech_and_check();
    assert_logged(&log, &["announced started to", &udp]);
    assert_logged(&log, &["announced completed to", &udp]);
    assert!(fx.seed_dir.join("payload.bin").is_file());
    // opentracker counted our `completed` (over UDP) as a download.
    assert!(
        fx.tracker.scrape(&fx.hash, "downloaded").unwrap_or(0) >= 1,
        "opentracker saw no completed download"
    );
}

#[test]
fn dead_first_tier_falls_through_to_udp_tracker() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    let port = harness::free_port();
    let dead_http = http_url(harness::free_port());
    let dead_udp = udp_url(dead_udp_port());
    let udp = udp_url(port);
    let fx = Fixture::start(port, &[&[&dead_http, &dead_udp], &[&udp]], &udp);
    let log = fx.leech_and_check();
    assert_logged(&log, &["announce to", &dead_http, "failed"]);
    assert_logged(&log, &["announce to", &dead_udp, "failed"]);
    assert_logged(&log, &["announced started to", &udp]);
}

#[test]
fn dead_udp_tier_falls_through_to_http_tracker() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    let port = harness::free_port();
    let dead_udp = udp_url(dead_udp_port());
    let http = http_url(port);
    let fx = Fixture::start(port, &[&[&dead_udp], &[&http]], &http);
    let log = fx.leech_and_check();
    assert_logged(&log, &["announce to", &dead_udp, "failed"]);
    assert_logged(&log, &["announced started to", &http]);
}
