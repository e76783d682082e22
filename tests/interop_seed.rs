//! End-to-end tests of `bittorrent-cli --seed`: real leechers download from our client on
//! loopback.
//!
//! Our seeder runs as `bittorrent-cli --seed --bind 127.0.0.1 -p PORT -o DATA --json` (see
//! `harness::cli_seeder`); it is ready when opentracker's scrape counts it as a seeder, and it
//! is stopped with one SIGINT, after which its `--json` line (`complete`, `downloaded`,
//! `uploaded`, ...) is checked. The leechers are libtorrent (tests/peers/lt_peer.py), aria2 and
//! transmission-cli; torrents are made by mktorrent. Everything listens on and dials 127.0.0.1
//! only; `scripts/test` also runs these tests in a loopback-only network namespace. Run them
//! alone with `cargo test -p bittorrent-cli --test interop_seed -- --nocapture`; see `harness`
//! for the environment variables (`BT_INTEROP_REQUIRED`, `BT_PYTHON`).
//! `BT_INTEROP_CLI=$PWD/tests/peers/lt_cli.py` runs every test with a libtorrent stand-in for our
//! CLI (same flags and `--json`): that checks the tests themselves, and all pass with it.
//!
//! The `harness_self_check_*` tests run the same set-ups with libtorrent in our client's place:
//! if they fail, the other failures say nothing about bittorrent-cli.

#[macro_use]
mod harness;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use harness::fixture::{Fixture, MIB, PIECE, SINGLE, TREE};
use harness::trackers::http_url;
use harness::{Leecher, Proc, Tool, Tracker};

/// [`TREE`] without its empty file: transmission-cli 3.00 does not create empty files (a
/// known limitation of 3.x), so its download of [`TREE`] would always lack `empty.bin`.
const TREE_NO_EMPTY: &[(&str, u64)] = &[
    ("a.txt", 1000),
    ("docs/readme.md", 4321),
    ("docs/deep/er/nested.bin", PIECE + 1),
    ("media/big.bin", 9 * PIECE / 2 + 777),
    ("media/small.bin", 17),
    ("z-last.bin", 200_000),
];

/// Waits until the tracker counts `n` seeders of the fixture; fails at once if one of
/// `watched` exits.
fn wait_seeders(tracker: &Tracker, fx: &Fixture, n: u64, watched: &mut [&mut Proc]) {
    harness::wait_for(
        &format!("{n} seeder(s) at the tracker"),
        harness::START_TIMEOUT,
        watched,
        || tracker.seeders(&fx.hash).unwrap_or(0) >= n,
    );
}

/// Our seeder (complete data, opentracker) → `leecher` via the tracker; then the seeder is
/// stopped with SIGINT and its `--json` line checked.
fn cli_seeds_to(leecher: Leecher, name: &str, files: &[(&str, u64)]) {
    let port = harness::free_port();
    let fx = Fixture::new(name, files, Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let (mut seeder, _) =
        harness::cli_seeder("cli-seeder", &fx.torrent, &fx.seed_dir, fx.path(), &[], &[]);
    wait_seeders(&tracker, &fx, 1, &mut [&mut seeder]);
    let _leecher = fx.leech_and_check(leecher, &[]);
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
}

/// a. Our seeder checks complete data, seeds, and libtorrent gets a single file whose last
/// piece is short.
#[test]
fn seed_single_file_short_last_piece_to_libtorrent() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    cli_seeds_to(Leecher::Libtorrent, "single.bin", SINGLE);
}

/// b. Multi-file, nested folders, an empty file, files across piece boundaries → libtorrent.
#[test]
fn seed_multi_file_nested_with_empty_file_to_libtorrent() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    cli_seeds_to(Leecher::Libtorrent, "tree", TREE);
}

/// c. aria2 (via the tracker) downloads a single file from our seeder.
#[test]
fn seed_single_file_to_aria2() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Aria2);
    cli_seeds_to(Leecher::Aria2, "single.bin", SINGLE);
}

/// c. aria2 (via the tracker) downloads the multi-file tree from our seeder.
#[test]
fn seed_multi_file_to_aria2() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Aria2);
    cli_seeds_to(Leecher::Aria2, "tree", TREE);
}

/// transmission-cli on a fixed port; a seeder of the tree (without an empty file) (started by `start_seeder`, given
/// that port) dials it. transmission ignores 127.x peers from a tracker, so the torrent's
/// tracker is dead on purpose. Returns the seeder, still running, after transmission finished
/// and the bytes were checked.
fn transmission_leeches(start_seeder: impl FnOnce(&Fixture, u16) -> Proc) -> (Fixture, Proc) {
    let fx = Fixture::new("tree", TREE_NO_EMPTY, Some(&http_url(harness::free_port())));
    let out = fx.path().join("out");
    let (mut tr, tr_port) =
        harness::transmission_leecher("transmission", &fx.torrent, &out, fx.path());
    let mut seeder = start_seeder(&fx, tr_port);
    let start = Instant::now();
    harness::wait_for(
        "transmission-cli's exit",
        harness::LEECH_TIMEOUT,
        &mut [&mut seeder],
        || tr.try_wait().is_some(),
    );
    match tr.try_wait() {
        Some(status) if status.success() => {}
        status => panic!("{}", tr.failure(&format!("failed ({status:?})"))),
    }
    eprintln!("transmission-cli finished in {:.2?}", start.elapsed());
    fx.check(&out);
    (fx, seeder)
}

/// d. transmission-cli downloads the tree (no empty file) from our seeder, which dials it (`--peer`,
/// `--no-tracker`). transmission idles ~13 s before it downloads: the test takes ~15 s.
#[test]
fn seed_multi_file_to_transmission_dialed_by_us() {
    require!(Tool::Mktorrent, Tool::Transmission);
    let (fx, mut seeder) = transmission_leeches(|fx, tr_port| {
        let args = ["--no-tracker"];
        let (seeder, _) = harness::cli_seeder(
            "cli-seeder",
            &fx.torrent,
            &fx.seed_dir,
            fx.path(),
            &[tr_port],
            &args,
        );
        seeder
    });
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
}

/// The transmission set-up checked without our client: a libtorrent seeder dials it.
#[test]
fn harness_self_check_transmission_leeches_from_libtorrent_dialing_it() {
    require!(Tool::Mktorrent, Tool::Transmission, Tool::Libtorrent);
    let (_fx, mut seeder) = transmission_leeches(|fx, tr_port| {
        let py = harness::python().expect("python with libtorrent");
        let mut cmd = std::process::Command::new(py);
        cmd.arg(harness::lt_peer_script())
            .arg("--torrent")
            .arg(&fx.torrent)
            .arg("--save")
            .arg(&fx.seed_dir)
            .args(["--seed", "--seed-mode", "--port", "0"])
            .args(["--peer", &format!("127.0.0.1:{tr_port}")])
            .args(["--stop-with-pid", &std::process::id().to_string()])
            .env("PYTHONUNBUFFERED", "1");
        Proc::spawn("lt-seeder", cmd, fx.path())
    });
    assert!(harness::lt_uploaded(&mut seeder) >= TREE_NO_EMPTY.iter().map(|f| f.1).sum());
}

// ---------------------------------------------------------------------------------------------
// e. Mixed swarm
// ---------------------------------------------------------------------------------------------

/// Which client plays a part in the swarm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Client {
    /// bittorrent-cli --seed (a leecher that starts empty keeps seeding once complete).
    Ours,
    /// lt_peer.py: `--seed --seed-mode` for the seed, `--leech --keep-seeding` for a leecher.
    Libtorrent,
}

struct Member {
    name: String,
    client: Client,
    proc: Proc,
    /// Its data directory (`<dir>/<name>` is the content).
    data: PathBuf,
}

/// What a member reports when stopped.
struct Report {
    uploaded: u64,
    /// Ours only (from --json).
    downloaded: Option<u64>,
}

/// Stops every member (all signalled first, then collected) and returns their reports.
fn stop_all(members: &mut [Member]) -> Vec<Report> {
    for m in members.iter_mut() {
        m.proc.signal(match m.client {
            Client::Ours => "INT",
            Client::Libtorrent => "TERM",
        });
    }
    members
        .iter_mut()
        .map(|m| match m.client {
            Client::Ours => {
                let stats = harness::cli_stopped(&mut m.proc);
                let s = stats.first().expect("one --json line").clone();
                assert!(
                    s.complete,
                    "{} says complete=false after the swarm: {s:?}",
                    m.name
                );
                Report {
                    uploaded: s.uploaded,
                    downloaded: Some(s.downloaded),
                }
            }
            Client::Libtorrent => Report {
                uploaded: harness::lt_uploaded(&mut m.proc),
                downloaded: None,
            },
        })
        .collect()
}

/// One seed and `leechers` that start empty, all via opentracker, 48 MiB in 192 pieces. The
/// leechers start first and register with the tracker, so each later one learns (and dials)
/// the earlier ones; the seed comes last. A seed unchokes only a few peers at a time, so the
/// leechers must trade pieces among themselves. Checks that every leecher completes
/// byte-identically and uploaded something; prints the upload table.
fn swarm(seed: Client, leechers: &[Client]) {
    let size = 48 * MIB;
    let port = harness::free_port();
    let fx = Fixture::new("swarm.bin", &[("", size)], Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let start = Instant::now();

    let mut members: Vec<Member> = Vec::new();
    for (i, &client) in leechers.iter().enumerate() {
        let name = match client {
            Client::Ours => format!("cli-leecher-{i}"),
            Client::Libtorrent => format!("lt-leecher-{i}"),
        };
        let data = fx.path().join(&name);
        let proc = match client {
            Client::Ours => harness::cli_seeder(&name, &fx.torrent, &data, fx.path(), &[], &[]).0,
            Client::Libtorrent => harness::lt_leecher(
                &name,
                &fx.torrent,
                &data,
                fx.path(),
                &[],
                true,
                Duration::from_secs(5),
            ),
        };
        members.push(Member {
            name,
            client,
            proc,
            data,
        });
        // One at a time, so that each announce returns the leechers before it.
        let n = i as u64 + 1;
        let last = &mut members.last_mut().expect("just pushed").proc;
        harness::wait_for(
            &format!("{n} leechers at the tracker"),
            harness::START_TIMEOUT,
            &mut [last],
            || tracker.leechers(&fx.hash).unwrap_or(0) >= n,
        );
    }
    eprintln!(
        "swarm: {} leechers registered after {:.2?}; starting the seed",
        leechers.len(),
        start.elapsed()
    );
    let seed_proc = match seed {
        Client::Ours => {
            harness::cli_seeder("cli-seed", &fx.torrent, &fx.seed_dir, fx.path(), &[], &[]).0
        }
        Client::Libtorrent => harness::lt_seeder("lt-seed", &fx.torrent, &fx.seed_dir, fx.path()).0,
    };
    members.push(Member {
        name: "seed".into(),
        client: seed,
        proc: seed_proc,
        data: fx.seed_dir.clone(),
    });

    // Everyone complete: the tracker counts the seed and every leecher as seeders (a leecher
    // announces `completed`); libtorrent leechers also print DONE once their data is flushed.
    let all = leechers.len() as u64 + 1;
    {
        let mut watched: Vec<&mut Proc> = members.iter_mut().map(|m| &mut m.proc).collect();
        harness::wait_for(
            &format!("{all} seeders at the tracker"),
            Duration::from_secs(90),
            &mut watched,
            || tracker.seeders(&fx.hash).unwrap_or(0) >= all,
        );
    }
    for m in members
        .iter_mut()
        .filter(|m| m.client == Client::Libtorrent)
    {
        if m.name != "seed" {
            m.proc
                .wait_line("DONE", Duration::from_secs(30))
                .unwrap_or_else(|e| panic!("{e}"));
        }
    }
    eprintln!("swarm: all {all} complete after {:.2?}", start.elapsed());
    for m in &members[..leechers.len()] {
        fx.check(&m.data);
    }

    let reports = stop_all(&mut members);
    eprintln!(
        "swarm: {} MiB in {} pieces of {} KiB; uploads:",
        size / MIB,
        size.div_ceil(PIECE),
        PIECE / 1024
    );
    eprintln!(
        "  {:<14} {:<10} {:>14} {:>14}",
        "peer", "client", "uploaded", "downloaded"
    );
    for (m, r) in members.iter().zip(&reports) {
        let down = r.downloaded.map_or("-".into(), |d| d.to_string());
        eprintln!(
            "  {:<14} {:<10} {:>14} {:>14}",
            m.name,
            format!("{:?}", m.client),
            r.uploaded,
            down
        );
    }
    let (leecher_reports, seed_report) = reports.split_at(leechers.len());
    let by_leechers: u64 = leecher_reports.iter().map(|r| r.uploaded).sum();
    let total = by_leechers + seed_report[0].uploaded;
    eprintln!(
        "  uploaded by leechers {by_leechers}, by the seed {}, total {total} = {:.2} x {} leechers",
        seed_report[0].uploaded,
        total as f64 / size as f64,
        leechers.len()
    );

    for (m, r) in members.iter().zip(&reports) {
        if let Some(down) = r.downloaded {
            if m.name == "seed" {
                assert_eq!(down, 0, "the seed started complete but downloaded {down}");
            } else {
                assert!(down >= size, "{} downloaded {down} < {size}", m.name);
            }
        }
    }
    assert!(
        by_leechers > 0,
        "the leechers uploaded nothing: all came from the seed"
    );
    for (m, r) in members.iter().zip(leecher_reports) {
        assert!(r.uploaded > 0, "{} uploaded nothing", m.name);
    }
    // Everything the leechers received was uploaded by someone; counters may miss the last
    // second or so of traffic, hence the 10% slack.
    let received = leechers.len() as u64 * size;
    assert!(
        total >= received / 10 * 9,
        "everybody uploaded {total} bytes in all, but the leechers received {received}"
    );
}

/// e. Our seed + 3 of ours and 3 libtorrent leechers: all complete; every leecher uploads.
#[test]
fn mixed_swarm_leechers_trade_pieces() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    use Client::*;
    swarm(
        Ours,
        &[Ours, Libtorrent, Ours, Libtorrent, Ours, Libtorrent],
    );
}

/// The swarm set-up checked with libtorrent in every part.
#[test]
fn harness_self_check_libtorrent_swarm() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    swarm(Client::Libtorrent, &[Client::Libtorrent; 6]);
}

// ---------------------------------------------------------------------------------------------
// f. Corrupt data
// ---------------------------------------------------------------------------------------------

/// f. Our seeder is given data with one corrupt piece: it must check it, serve the good pieces
/// and never the bad one, and report `complete: false`. A libtorrent leecher (dialing it, and
/// via the tracker) gets every piece but that one, with no hash failure.
#[test]
fn seeder_with_a_corrupt_piece_does_not_serve_it() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    let port = harness::free_port();
    let fx = Fixture::new("single.bin", SINGLE, Some(&http_url(port)));
    let pieces = fx.size.div_ceil(PIECE);
    let bad = pieces / 2;
    let mut bytes = std::fs::read(&fx.content).expect("read payload");
    bytes[(bad * PIECE + 1000) as usize] ^= 0x5a;
    std::fs::write(&fx.content, bytes).expect("corrupt payload");

    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let (mut seeder, seed_port) =
        harness::cli_seeder("cli-seeder", &fx.torrent, &fx.seed_dir, fx.path(), &[], &[]);
    // It should register as a leecher (left > 0); a seeder is let through here so that the
    // checks below say what went wrong.
    harness::wait_for(
        "our seeder at the tracker",
        harness::START_TIMEOUT,
        &mut [&mut seeder],
        || tracker.leechers(&fx.hash).unwrap_or(0) + tracker.seeders(&fx.hash).unwrap_or(0) >= 1,
    );
    assert!(harness::wait_port(seed_port, harness::START_TIMEOUT));
    let out = fx.path().join("out");
    let mut lt = harness::lt_leecher(
        "lt-leecher",
        &fx.torrent,
        &out,
        fx.path(),
        &[seed_port],
        false,
        Duration::from_millis(500),
    );
    let all_but_one = format!("pieces={}/{pieces}", pieces - 1);
    let lt_log = fx.path().join("lt-leecher.log");
    harness::wait_for(
        &format!("{all_but_one} from the libtorrent leecher"),
        Duration::from_secs(40),
        &mut [&mut seeder, &mut lt],
        // A hash failure ends the wait too: the check below reports it.
        || {
            std::fs::read_to_string(&lt_log)
                .is_ok_and(|t| t.contains(&all_but_one) || t.contains("HASHFAIL"))
        },
    );
    // A check that nothing happens has no event to wait for: give a wrong piece 2 s to
    // arrive, if the seeder were to send it.
    std::thread::sleep(Duration::from_secs(2));
    let lt_out = lt.output();
    assert!(
        !lt_out.lines().any(|l| l.starts_with("HASHFAIL")),
        "{}",
        lt.failure("received a piece that failed its hash check: the seeder served bad data")
    );
    assert!(
        !lt_out.lines().any(|l| l.starts_with("DONE")),
        "{}",
        lt.failure("completed although the only seeder lacks a piece")
    );
    // Interrupted with a piece still missing: a graceful stop, but a failure exit.
    let stats = harness::cli_stop_incomplete(&mut seeder);
    let s = harness::stats_for(&stats, &fx.hash);
    eprintln!("seeder --json: {s:?}");
    assert!(
        !s.complete,
        "the seeder of corrupt data says complete: {s:?}"
    );
    assert!(
        s.uploaded >= fx.size - PIECE,
        "the seeder uploaded {} bytes, less than the {} good bytes",
        s.uploaded,
        fx.size - PIECE
    );
}

/// The harness's reader of our `--json` lines (serde_json).
#[test]
fn harness_json_lines_parse() {
    let out = "noise\n{\"info_hash\":\"ABCDEF\",\"name\":\"a \\\"b\\\", c\",\"complete\":true,\
               \"downloaded\":0,\"uploaded\":123,\"wasted\":4}\n\
               { \"name\" : \"x\", \"info_hash\" : \"00\", \"complete\" : false, \"wasted\" : 0, \
               \"downloaded\" : 7, \"uploaded\" : 0 }\n";
    let stats = harness::parse_cli_json(out).expect("parses");
    assert_eq!(stats.len(), 2);
    assert_eq!(stats[0].info_hash, "abcdef");
    assert_eq!(stats[0].name, "a \"b\", c", "escapes are decoded");
    assert!(stats[0].complete);
    assert_eq!(
        (stats[0].downloaded, stats[0].uploaded, stats[0].wasted),
        (0, 123, 4)
    );
    assert!(!stats[1].complete);
    assert_eq!((stats[1].downloaded, stats[1].uploaded), (7, 0));
    assert!(harness::parse_cli_json("{\"info_hash\":\"00\"}").is_err());
}
