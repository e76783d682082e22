//! The Fast extension (BEP 6) against libtorrent, which has it on by default: both directions,
//! byte-identical, on loopback, with our CLI's debug log showing what was exchanged.
//!
//! Our peer actor logs, at debug, one line per connection when it ends:
//! `fast extension: have_all sent=S received=R, have_none ..., reject sent=S received=R,
//! allowed_fast ..., suggest received=R, served while choked=N`; the tests add these up.
//!
//! - Our seeder → two libtorrent leechers: we send have-all (not a bitfield) and our
//!   allowed-fast set. With `--upload-slots 0` the first leecher (held to 200 KB/s for 22 s)
//!   takes the one slot; the second gets our allowed-fast pieces while choked; our first choke
//!   round (10 s) chokes the first to unchoke the second. The first has more pieces than the
//!   set by then, so it is no starting peer: its requests for allowed-fast pieces while choked
//!   are rejected (as BEP 6's reference implementation does), as is any request still queued
//!   at the choke. The next round unchokes it again. 8 MiB, ~25 s.
//! - Two libtorrent seeders → our leecher: both send have-all, we send have-none. One is held
//!   to 1 MB/s, the other to 100 KB/s with a 32 KiB send buffer, so most of our requests to it
//!   wait in its queue; our endgame cancels them once the other's copy arrives, and it answers
//!   each still queued with a reject (every request gets one answer). 4 MiB, ~5 s.
//!
//! Run alone (as root, in a loopback-only namespace):
//! `unshare --net -- bash -c 'ip link set lo up; BT_INTEROP_REQUIRED=1 cargo test -p
//! bittorrent-cli --test interop_fast -- --nocapture'`.

#[macro_use]
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::fixture::{Fixture, MIB};
use harness::{Proc, Tool};

/// Pieces of 32 KiB: 128 or more in a payload, so that an allowed-fast set (10 pieces, 5 for
/// libtorrent) is a small part of it.
const PIECE_LOG2: u32 = 15;

/// A payload of `size` bytes, one file, and its torrent (no tracker), with [`PIECE_LOG2`]
/// pieces.
fn fixture(name: &str, size: u64) -> Fixture {
    Fixture::build(
        name,
        &[("", size)],
        11,
        &format!("{name}.torrent"),
        |c, t| harness::make_torrent(c, None, PIECE_LOG2, t),
    )
}

/// What our CLI's connections exchanged under the Fast extension: the sums of the numbers
/// after `NAME sent=`/`NAME received=` (e.g. `reject`, `have_all`) over its log's lines.
#[derive(Debug, Default)]
struct Exchanged {
    lines: usize,
    counts: std::collections::BTreeMap<String, u64>,
}

impl Exchanged {
    fn from_log(log: &str) -> Self {
        let mut out = Exchanged::default();
        for line in log.lines() {
            let Some((_, rest)) = line.split_once("fast extension: ") else {
                continue;
            };
            out.lines += 1;
            for part in rest.split(", ") {
                let mut words = part.split(' ');
                let name = words.next().unwrap_or_default();
                for word in words {
                    if let Some((dir, n)) = word.split_once('=') {
                        let n: u64 = n.parse().unwrap_or_else(|_| panic!("bad count {word:?}"));
                        *out.counts.entry(format!("{name} {dir}")).or_default() += n;
                    }
                }
            }
        }
        out
    }

    fn get(&self, what: &str) -> u64 {
        self.counts.get(what).copied().unwrap_or(0)
    }
}

/// Our CLI (`--no-tracker`, `-o dir`, debug log of its peers), seeding when `seed`, dialing
/// `peers`; returns it and its port once it listens.
fn cli(
    name: &str,
    fx: &Fixture,
    dir: &Path,
    seed: bool,
    peers: &[u16],
    extra: &[&str],
) -> (Proc, u16) {
    std::fs::create_dir_all(dir).expect("create data dir");
    let port = harness::free_port();
    let mut cmd = harness::cli_command();
    cmd.args([
        "--bind",
        "127.0.0.1",
        "-p",
        &port.to_string(),
        "--no-tracker",
    ])
    .args(["-q", "--json", "-o"])
    .arg(dir)
    .args(extra);
    if seed {
        cmd.arg("--seed");
    }
    for p in peers {
        cmd.arg("--peer").arg(format!("127.0.0.1:{p}"));
    }
    cmd.arg(&fx.torrent)
        .env("RUST_LOG", "info,bittorrent::peer=debug");
    let proc = Proc::spawn_split(name, cmd, fx.path());
    if seed && !harness::wait_port(port, harness::START_TIMEOUT) {
        panic!("{}", proc.failure("does not listen"));
    }
    (proc, port)
}

/// Waits for a libtorrent leecher's `DONE` line.
fn wait_done(leecher: &mut Proc) {
    if let Err(e) = leecher.wait_line("DONE", harness::LEECH_TIMEOUT) {
        panic!("{e}");
    }
}

/// Our seeder → two libtorrent leechers: have-all, allowed-fast, and rejects when our seeder
/// chokes the first (rate-limited) leecher at its first choke round to unchoke the second.
#[test]
fn our_seeder_sends_have_all_and_rejects_queued_requests_on_choke() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = fixture("fast-seed.bin", 8 * MIB);
    let (mut seeder, port) = cli(
        "cli-seeder",
        &fx,
        &fx.seed_dir,
        true,
        &[],
        &["--upload-slots", "0"],
    );
    // The first leecher takes the one slot. Held to 200 KB/s for its first 22 s, it is still
    // downloading at the first choke round (10 s after our start), with more pieces than our
    // allowed-fast set by then: its requests for our allowed-fast pieces while choked are
    // rejected (it is no starting peer), and so are any still queued at the choke. (Should
    // the second leecher come late for that round, the next one, at 20 s, does the same.)
    // Then a round unchokes it again, and it finishes at full speed once its limit is lifted.
    let slow_out = fx.path().join("slow");
    std::fs::create_dir_all(&slow_out).expect("create dir");
    let peer = format!("127.0.0.1:{port}");
    let mut cmd = harness::peers::lt_leech_command(&fx.torrent, &slow_out, &[peer]);
    cmd.args([
        "--download-limit",
        "200000",
        "--download-limit-seconds",
        "22",
    ])
    .args(["--progress-interval", "0.5"]);
    let mut slow = Proc::spawn("lt-slow", cmd, fx.path());
    harness::wait_for(
        "the first leecher's first pieces",
        harness::START_TIMEOUT,
        &mut [&mut seeder],
        || {
            slow.output()
                .lines()
                .any(|l| l.starts_with("PROGRESS") && !l.contains("pieces=0/"))
        },
    );
    let fast_out = fx.path().join("fast");
    let mut fast = harness::lt_leecher(
        "lt-fast",
        &fx.torrent,
        &fast_out,
        fx.path(),
        &[port],
        false,
        Duration::from_secs(1),
    );
    wait_done(&mut fast);
    wait_done(&mut slow);
    fx.check(&fast_out);
    fx.check(&slow_out);
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 2);
    let fast_ext = Exchanged::from_log(&seeder.output());
    eprintln!("our seeder's fast-extension counts: {fast_ext:?}");
    assert!(
        fast_ext.lines >= 2,
        "{}",
        seeder.failure("no fast-extension line per leecher")
    );
    assert!(fast_ext.get("have_all sent") >= 2, "{fast_ext:?}");
    assert_eq!(fast_ext.get("have_all received"), 0, "{fast_ext:?}");
    assert!(fast_ext.get("allowed_fast sent") >= 2 * 10, "{fast_ext:?}");
    assert!(fast_ext.get("reject sent") > 0, "{fast_ext:?}");
}

/// libtorrent seeders → our leecher: have-all from both; our endgame cancels requests the
/// rate-limited one still has queued, and it answers them with rejects.
#[test]
fn libtorrent_seeders_send_have_all_and_reject_our_cancelled_requests() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = fixture("fast-leech.bin", 4 * MIB);
    // Both capped (a tick of 50 ms spreads the quota evenly), so that the download takes a
    // few seconds and the slow seeder always has most of our requests queued.
    let (_quick, quick_port) = harness::lt_seeder_with(
        "lt-seeder",
        &fx.torrent,
        &fx.seed_dir,
        fx.path(),
        &["--upload-limit", "1000000", "--tick-interval", "50"],
    );
    let (_slow, slow_port) = harness::lt_seeder_with(
        "lt-slow-seeder",
        &fx.torrent,
        &fx.seed_dir,
        fx.path(),
        // A small send buffer: libtorrent reads blocks ahead into it, and a request whose
        // block is there is answered with the block even when cancelled; the others stay
        // queued and are rejected.
        &["--upload-limit", "100000", "--tick-interval", "50"]
            .into_iter()
            .chain(["--send-buffer", "32768"])
            .collect::<Vec<_>>(),
    );
    let out = fx.path().join("out");
    let (mut leecher, _) = cli(
        "cli-leecher",
        &fx,
        &out,
        false,
        &[slow_port, quick_port],
        &[],
    );
    match leecher.wait_exit(harness::LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        status => panic!("{}", leecher.failure(&format!("exited with {status:?}"))),
    }
    fx.check(&out);
    let fast_ext = Exchanged::from_log(&leecher.output());
    eprintln!("our leecher's fast-extension counts: {fast_ext:?}");
    assert_eq!(fast_ext.get("have_all received"), 2, "{fast_ext:?}");
    assert_eq!(fast_ext.get("have_none sent"), 2, "{fast_ext:?}");
    assert!(fast_ext.get("reject received") > 0, "{fast_ext:?}");
}
