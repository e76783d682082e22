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

use std::time::Duration;

use harness::fixture::{Fixture, MIB, PIECE_LOG2};
use harness::trackers::{dead_udp_port, http_url, make_torrent_tiers, udp_url};
use harness::{Leecher, Proc, Tool, Tracker};

/// 3 MiB + 12345 bytes: the last piece is short.
const PAYLOAD: u64 = 3 * MIB + 12345;

/// The seed of the payload bytes.
const PAYLOAD_SEED: u64 = 15;

/// How long the tracker may take to list the seeder.
const SEEDER_ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(20);

/// The shared fixture with a payload and the torrent our CLI gets (with `tiers`), opentracker,
/// and a libtorrent seeder of a torrent with only the working tracker (so the test checks our
/// client, not libtorrent's tier logic; both torrents have the same info dictionary, hence the
/// same info-hash).
struct Swarm {
    fx: Fixture,
    tracker: Tracker,
    _seeder: Proc,
}

impl Swarm {
    /// Starts opentracker on `port` and a libtorrent seeder announcing to `seeder_url`; waits
    /// until the tracker lists the seeder.
    fn start(port: u16, tiers: &[&[&str]], seeder_url: &str) -> Swarm {
        let fx = Fixture::build(
            "payload.bin",
            &[("", PAYLOAD)],
            PAYLOAD_SEED,
            "leech.torrent",
            |content, torrent| make_torrent_tiers(content, tiers, PIECE_LOG2, torrent),
        );
        let seed_torrent = fx.path().join("seed.torrent");
        make_torrent_tiers(&fx.content, &[&[seeder_url]], PIECE_LOG2, &seed_torrent);
        assert_eq!(
            fx.hash,
            harness::info_hash(&seed_torrent),
            "same info dictionary"
        );

        let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
        let (seeder, _) = harness::lt_seeder("lt-seeder", &seed_torrent, &fx.seed_dir, fx.path());
        tracker.wait_seeders_for(&fx.hash, 1, SEEDER_ANNOUNCE_TIMEOUT);
        Swarm {
            fx,
            tracker,
            _seeder: seeder,
        }
    }

    /// Our CLI downloads via the trackers only (no `--peer`); checks the bytes and returns the
    /// CLI's log.
    fn leech_and_check(&self) -> String {
        self.fx.leech_and_check(Leecher::Cli, &[]).output()
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
    let swarm = Swarm::start(port, &[&[&udp]], &udp);
    // The seeder reached opentracker over UDP: its torrent names no other tracker.
    let log = swarm.leech_and_check();
    assert_logged(&log, &["announced started to", &udp]);
    assert_logged(&log, &["announced completed to", &udp]);
    assert!(swarm.fx.seed_dir.join("payload.bin").is_file());
    // opentracker counted our `completed` (over UDP) as a download.
    assert!(
        swarm
            .tracker
            .scrape(&swarm.fx.hash, "downloaded")
            .unwrap_or(0)
            >= 1,
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
    let swarm = Swarm::start(port, &[&[&dead_http, &dead_udp], &[&udp]], &udp);
    let log = swarm.leech_and_check();
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
    let swarm = Swarm::start(port, &[&[&dead_udp], &[&http]], &http);
    let log = swarm.leech_and_check();
    assert_logged(&log, &["announce to", &dead_udp, "failed"]);
    assert_logged(&log, &["announced started to", &http]);
}
