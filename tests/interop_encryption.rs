//! MSE/PE encryption against real peers on loopback: libtorrent with forced encryption (in
//! and out, RC4 only) seeding to us and leeching from us; our `--encryption require` against
//! libtorrent on its defaults, both ways; our default (`prefer`) falling back to a plaintext-only
//! libtorrent at once; qBittorrent-nox requiring encryption downloading from us. Every download is checked byte for byte; payloads are a few MiB.
//!
//! A peer that requires encryption must be reached within 2 s of our learning its address:
//! the tests that dial one measure from our CLI's start (it learns the address from `--peer`)
//! to its debug log line of the finished BitTorrent handshake, print the figure, and
//! re-measure once before failing (the machine is shared).
//!
//! Run alone with `cargo test -p bittorrent-cli --test interop_encryption -- --nocapture`,
//! inside a loopback-only network namespace (see `scripts/test`).

#[macro_use]
mod harness;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::fixture::{Fixture, MIB};
use harness::{Proc, Tool};

/// 4 MiB and a short last piece.
const PAYLOAD: &[(&str, u64)] = &[("", 4 * MIB + 4321)];
/// How soon a peer that requires encryption must be reached.
const REACH_BOUND: Duration = Duration::from_secs(2);
/// What our debug log says once an encrypted BitTorrent handshake is done.
const RC4_HANDSHAKE: &str = "handshake ok over TCP, RC4";
/// ... and a plaintext one.
const PLAIN_HANDSHAKE: &str = "handshake ok over TCP, peer id";

/// Our CLI downloading the fixture from 127.0.0.1:`peer` under `--encryption policy`, with
/// the engine's debug log.
fn cli_leecher(fx: &Fixture, name: &str, peer: u16, policy: &str) -> Proc {
    let out = fx.path().join(name);
    let mut cmd = harness::cli_command();
    cmd.args([
        "--bind",
        "127.0.0.1",
        "-p",
        "0",
        "--no-tracker",
        "-q",
        "--json",
    ])
    .args(["--encryption", policy, "-o"])
    .arg(&out)
    .arg("--peer")
    .arg(format!("127.0.0.1:{peer}"))
    .arg(&fx.torrent)
    .env("RUST_LOG", "bittorrent=debug");
    Proc::spawn_split(name, cmd, fx.path())
}

/// Starts our leecher and returns it with the time from its start to the log line `needle`.
fn reach(fx: &Fixture, name: &str, peer: u16, policy: &str, needle: &str) -> (Proc, Duration) {
    let start = Instant::now();
    let mut cli = cli_leecher(fx, name, peer, policy);
    let seen = cli.wait_contains(needle, harness::START_TIMEOUT);
    let took = start.elapsed();
    assert!(
        seen,
        "{}",
        cli.failure(&format!("no {needle:?} in its log"))
    );
    (cli, took)
}

/// The time of day in ms of the first line of `log` that contains `needle`, from its
/// timestamp (`[YYYY-MM-DDTHH:MM:SS.mmmZ ...`).
fn log_millis(log: &str, needle: &str) -> Option<u64> {
    let line = log.lines().find(|l| l.contains(needle))?;
    let t = line.get(12..24)?;
    let field = |r: std::ops::Range<usize>| t.get(r)?.parse::<u64>().ok();
    let (h, m, s, ms) = (field(0..2)?, field(3..5)?, field(6..8)?, field(9..12)?);
    Some(((h * 60 + m) * 60 + s) * 1000 + ms)
}

/// Waits for our leecher to finish (exit 0) and checks the bytes it wrote.
fn finish(fx: &Fixture, name: &str, cli: &mut Proc) {
    match cli.wait_exit(harness::LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        status => panic!("{}", cli.failure(&format!("did not finish: {status:?}"))),
    }
    fx.check(&fx.path().join(name));
}

/// Our leecher under `policy` downloads from `seeder_port`; the BitTorrent handshake (its log
/// line `needle`) must come within [`REACH_BOUND`] of its start (measured twice at most).
fn leech_within_bound(fx: &Fixture, seeder_port: u16, policy: &str, needle: &str) {
    let (mut cli, took) = reach(fx, "cli-1", seeder_port, policy, needle);
    let dial = format!("connecting to 127.0.0.1:{seeder_port}");
    let logged = match (
        log_millis(&cli.output(), &dial),
        log_millis(&cli.output(), needle),
    ) {
        (Some(from), Some(to)) => format!("{} ms", to.saturating_sub(from)),
        _ => "?".into(),
    };
    eprintln!(
        "reached the seeder in {took:.3?} from our start (polled every 50 ms), {logged} from \
         the dial to the handshake by the log's clock (--encryption {policy})"
    );
    finish(fx, "cli-1", &mut cli);
    if took >= REACH_BOUND {
        let (mut again, took) = reach(fx, "cli-2", seeder_port, policy, needle);
        eprintln!("re-measured: reached the seeder in {took:.3?}");
        assert!(
            took < REACH_BOUND,
            "reached in {took:?}, twice over {REACH_BOUND:?}"
        );
        finish(fx, "cli-2", &mut again);
    }
}

/// (a) libtorrent with forced encryption (in and out, RC4 only) seeds to our default CLI,
/// which dials it encrypted first: reached within 2 s.
#[test]
fn forced_encryption_libtorrent_seeds_to_us() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("forced-seed.bin", PAYLOAD, None);
    let extra = ["--encryption", "forced"];
    let (_seeder, port) =
        harness::lt_seeder_with("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path(), &extra);
    leech_within_bound(&fx, port, "prefer", RC4_HANDSHAKE);
}

/// (c) Our `--encryption require` leecher against libtorrent on its defaults.
#[test]
fn require_leecher_from_default_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("require-leech.bin", PAYLOAD, None);
    let (_seeder, port) = harness::lt_seeder("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    leech_within_bound(&fx, port, "require", RC4_HANDSHAKE);
}

/// Our default (`prefer`) leecher against a plaintext-only libtorrent: the encrypted attempt
/// fails and plaintext follows at once.
#[test]
fn prefer_falls_back_to_plaintext_only_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("plain-seed.bin", PAYLOAD, None);
    let extra = ["--encryption", "disabled"];
    let (_seeder, port) =
        harness::lt_seeder_with("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path(), &extra);
    leech_within_bound(&fx, port, "prefer", PLAIN_HANDSHAKE);
}

/// A libtorrent leecher (lt_peer.py --leech) with `lt_extra` arguments, dialing `peers`;
/// returns it once it listens, with its port.
fn lt_leecher(fx: &Fixture, peers: &[u16], lt_extra: &[&str]) -> (Proc, u16) {
    let out = fx.out_dir();
    std::fs::create_dir_all(&out).expect("create output dir");
    let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut cmd = harness::peers::lt_leech_command(&fx.torrent, &out, &peers);
    cmd.args(lt_extra);
    let mut proc = Proc::spawn("lt-leecher", cmd, fx.path());
    let line = proc
        .wait_line("READY", harness::START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = line
        .strip_prefix("READY port=")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad READY line {line:?}"));
    (proc, port)
}

/// Our CLI seeding the fixture (`--seed --no-tracker`, the engine's debug log) dialing
/// `peers`, with `extra` arguments; returns once it listens, with its port.
fn our_seeder(fx: &Fixture, peers: &[u16], extra: &[&str]) -> (Proc, u16) {
    let port = harness::free_port();
    let mut cmd = harness::cli_command();
    cmd.args([
        "--seed",
        "--no-tracker",
        "--bind",
        "127.0.0.1",
        "-p",
        &port.to_string(),
    ])
    .args(["--json", "-o"])
    .arg(&fx.seed_dir)
    .args(extra);
    for p in peers {
        cmd.arg("--peer").arg(format!("127.0.0.1:{p}"));
    }
    cmd.arg(&fx.torrent).env("RUST_LOG", "bittorrent=debug");
    let mut seeder = Proc::spawn_split("cli-seeder", cmd, fx.path());
    harness::wait_for(
        "our seeder's port",
        harness::START_TIMEOUT,
        &mut [&mut seeder],
        || harness::net::accepts(port),
    );
    (seeder, port)
}

/// Waits for a libtorrent leecher's DONE line and checks the bytes.
fn lt_done(fx: &Fixture, leecher: &mut Proc, watched: &mut Proc) {
    let start = Instant::now();
    harness::wait_for(
        "libtorrent's DONE",
        harness::LEECH_TIMEOUT,
        &mut [watched],
        || leecher.output().lines().any(|l| l.starts_with("DONE")),
    );
    eprintln!("libtorrent finished in {:.2?}", start.elapsed());
    fx.check(&fx.out_dir());
}

/// (b) Our default seeder to a libtorrent leecher with forced encryption, which dials us:
/// our listener tells its MSE handshake from a plain one and answers it.
#[test]
fn our_seeder_to_forced_encryption_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("forced-leech.bin", PAYLOAD, None);
    let (mut seeder, port) = our_seeder(&fx, &[], &[]);
    let (mut leecher, _) = lt_leecher(&fx, &[port], &["--encryption", "forced"]);
    lt_done(&fx, &mut leecher, &mut seeder);
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
}

/// (c) Our `--encryption require` seeder to libtorrent on its defaults: we dial it
/// (encrypted, RC4 only), and it downloads everything from us.
#[test]
fn require_seeder_to_default_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("require-seed.bin", PAYLOAD, None);
    let (mut leecher, lt_port) = lt_leecher(&fx, &[], &[]);
    let (mut seeder, _) = our_seeder(&fx, &[lt_port], &["--encryption", "require"]);
    lt_done(&fx, &mut leecher, &mut seeder);
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
}

/// Our `--encryption require` seeder refuses a plaintext-only libtorrent that dials it (its
/// debug log says so), and uploads nothing.
#[test]
fn require_seeder_refuses_plaintext() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("refuse.bin", PAYLOAD, None);
    let (mut seeder, port) = our_seeder(&fx, &[], &["--encryption", "require"]);
    let (mut leecher, _) = lt_leecher(&fx, &[port], &["--encryption", "disabled"]);
    let refusal = "refused by the encryption policy (plaintext: true)";
    assert!(
        seeder.wait_contains(refusal, harness::START_TIMEOUT),
        "{}",
        seeder.failure("no refusal of the plaintext peer in its log")
    );
    let stats = harness::cli_stop(&mut seeder);
    assert!(stats.iter().all(|s| s.uploaded == 0), "{stats:?}");
    assert!(!leecher.output().lines().any(|l| l.starts_with("DONE")));
    leecher.terminate();
}

/// qBittorrent's profile: encryption required (`Session\Encryption=1`), listening on
/// 127.0.0.1:`port` only, DHT, LSD, PeX and port mapping off, the web UI on 127.0.0.1:`web`
/// without login from localhost, the legal notice accepted (it would ask on stdin).
fn write_qbt_profile(profile: &Path, save: &Path, port: u16, web: u16) {
    let dir = profile.join("qBittorrent").join("config");
    std::fs::create_dir_all(&dir).expect("create qBittorrent profile");
    let config = format!(
        "[LegalNotice]\nAccepted=true\n\n\
         [BitTorrent]\nSession\\Encryption=1\nSession\\DHTEnabled=false\n\
         Session\\LSDEnabled=false\nSession\\PeXEnabled=false\nSession\\Port={port}\n\
         Session\\Interface=lo\nSession\\InterfaceName=lo\n\
         Session\\InterfaceAddress=127.0.0.1\nSession\\DefaultSavePath={save}\n\
         Session\\AnonymousModeEnabled=true\n\n\
         [Network]\nPortForwardingEnabled=false\n\n\
         [Preferences]\nConnection\\UPnP=false\nWebUI\\Address=127.0.0.1\n\
         WebUI\\Port={web}\nWebUI\\LocalHostAuth=false\nGeneral\\Locale=en\n",
        save = save.display()
    );
    std::fs::write(dir.join("qBittorrent.conf"), config).expect("write qBittorrent.conf");
}

/// Whether qBittorrent's web API (127.0.0.1:`web`) lists the torrent `hash`: it listens
/// before it has loaded the torrents of its command line.
fn qbt_has(web: u16, hash: &[u8; 20]) -> bool {
    use std::io::{Read, Write};
    let Ok(mut conn) = std::net::TcpStream::connect(("127.0.0.1", web)) else {
        return false;
    };
    let request = format!("GET /api/v2/torrents/info HTTP/1.0\r\nHost: 127.0.0.1:{web}\r\n\r\n");
    let mut answer = String::new();
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = conn.write_all(request.as_bytes());
    let _ = conn.read_to_string(&mut answer);
    answer.contains(&hex::encode(hash))
}

/// Whether `got` holds exactly the bytes of the file `want` (false while it is incomplete).
fn same_file(want: &Path, got: &Path) -> bool {
    match (std::fs::read(want), std::fs::read(got)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// (d) qBittorrent-nox with encryption required (its config) downloads from our default
/// seeder, which dials it: MSE/PE first, as its log shows.
#[test]
fn qbittorrent_requiring_encryption_downloads_from_us() {
    require!(Tool::Mktorrent, Tool::Qbittorrent);
    let fx = Fixture::new("qbt.bin", PAYLOAD, None);
    let (profile, out) = (fx.path().join("qbt-profile"), fx.out_dir());
    std::fs::create_dir_all(&out).expect("create output dir");
    let (port, web) = (harness::free_port(), harness::free_port());
    write_qbt_profile(&profile, &out, port, web);
    let mut cmd = Command::new("qbittorrent-nox");
    cmd.arg(format!("--profile={}", profile.display()))
        .arg(format!("--webui-port={web}"))
        .arg(format!("--save-path={}", out.display()))
        .args(["--skip-dialog=true", "--add-paused=false"])
        .arg(&fx.torrent);
    let mut qbt = Proc::spawn("qbittorrent", cmd, fx.path());
    harness::wait_for(
        "qBittorrent's torrent",
        harness::START_TIMEOUT,
        &mut [&mut qbt],
        || qbt_has(web, &fx.hash),
    );
    let start = Instant::now();
    let (mut seeder, _) = our_seeder(&fx, &[port], &[]);
    let got = out.join(fx.name());
    harness::wait_for(
        "qBittorrent's download",
        harness::LEECH_TIMEOUT,
        &mut [&mut qbt, &mut seeder],
        || same_file(&fx.content, &got),
    );
    eprintln!("qBittorrent downloaded in {:.2?}", start.elapsed());
    fx.check(&out);
    assert!(
        seeder.output().contains("MSE/PE handshake done"),
        "{}",
        seeder.failure("no MSE/PE handshake in its log")
    );
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
    qbt.terminate();
}
