//! IPv6 end to end, on `::1` only: libtorrent peers (tests/peers/lt_peer.py with
//! `--listen-ip ::1`, so they listen on `[::1]` and nowhere else) and our CLI (`--bind ::1`).
//!
//! - a libtorrent seeder found through a tracker's `peers6` (BEP 7). The tracker is
//!   qBittorrent-nox's embedded one ([`QbtTracker`]), reached on `[::1]`: Debian's opentracker
//!   is built for IPv4 only (see `harness::qbt_tracker`);
//! - a libtorrent seeder found through PEX (`added6`, BEP 11) from a second libtorrent peer;
//! - our PEX (`added6`) leading a libtorrent leecher to a libtorrent seeder;
//! - a libtorrent seeder found through a magnet's `x.pe=[::1]:port`;
//! - a libtorrent seeder with TCP off, downloaded from over uTP on `[::1]`;
//! - our seeder reached by a libtorrent leecher over `::1`.
//!
//! Every download is checked byte for byte. Nothing listens on or dials anything but `::1`.
//! Run them alone with `cargo test -p bittorrent-cli --test interop_ipv6`; see `harness` for
//! the environment variables (`BT_INTEROP_REQUIRED`, `BT_PYTHON`).

#[macro_use]
mod harness;

use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use harness::fixture::{Fixture, MIB};
use harness::peers::lt_leech_command;
use harness::qbt_tracker::QbtTracker;
use harness::{cli_command, cli_stop, Proc, Tool, LEECH_TIMEOUT, START_TIMEOUT};

/// 3 MiB + 4321 bytes: the last piece is short.
const PAYLOAD: u64 = 3 * MIB + 4321;

/// How long the tracker may take to list the seeder.
const ANNOUNCE_TIMEOUT: Duration = Duration::from_secs(20);

/// The IPv6 loopback address with `port`.
fn v6(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv6Addr::LOCALHOST, port))
}

/// A TCP port on `[::1]` that was free a moment ago.
fn free_port6() -> u16 {
    std::net::TcpListener::bind(v6(0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind [::1]:0")
}

/// A libtorrent seeder of the fixture listening on `[::1]` only, with `extra` arguments.
fn lt_seeder6(name: &str, fx: &Fixture, extra: &[&str]) -> (Proc, u16) {
    let mut args = vec!["--listen-ip", "::1"];
    args.extend_from_slice(extra);
    harness::lt_seeder_with(name, &fx.torrent, &fx.seed_dir, fx.path(), &args)
}

/// Our CLI downloading `source` (a .torrent path or a magnet) into the fixture's `out`,
/// listening on `[::1]` only, dialing `peers`; checks the bytes and returns its log.
fn cli_leech6(fx: &Fixture, source: &str, peers: &[u16]) -> String {
    cli_leech6_with(fx, source, peers, &[])
}

/// [`cli_leech6`] with `extra` arguments.
fn cli_leech6_with(fx: &Fixture, source: &str, peers: &[u16], extra: &[&str]) -> String {
    let mut cmd = cli_command();
    cmd.args(extra);
    cmd.args(["--bind", "::1", "-p", &free_port6().to_string()])
        .arg("-o")
        .arg(fx.out_dir());
    for p in peers {
        cmd.arg("--peer").arg(v6(*p).to_string());
    }
    cmd.arg(source)
        .env("RUST_LOG", "info,bittorrent::torrent=debug");
    let start = Instant::now();
    let mut cli = Proc::spawn("bittorrent-cli", cmd, fx.path());
    match cli.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {
            eprintln!(
                "bittorrent-cli downloaded {source} in {:.2?}",
                start.elapsed()
            );
        }
        Some(status) => panic!("{}", cli.failure(&format!("failed ({status})"))),
        None => panic!("{}", cli.failure("did not finish in time")),
    }
    fx.check(&fx.out_dir());
    cli.output()
}

/// Panics unless `log` has a line containing all of `parts`.
fn assert_logged(log: &str, parts: &[&str]) {
    assert!(
        log.lines().any(|l| parts.iter().all(|p| l.contains(p))),
        "no log line with {parts:?} in:\n{log}"
    );
}

#[test]
fn tracker_peers6_finds_libtorrent_seeder() {
    require!(Tool::Mktorrent, Tool::Libtorrent, Tool::Qbittorrent);
    let tracker_dir = harness::scratch();
    let tracker = QbtTracker::start(tracker_dir.path());
    let url = tracker.announce_url();
    let fx = Fixture::new("payload.bin", &[("", PAYLOAD)], Some(&url));
    let (_seeder, seeder_port) = lt_seeder6("lt-seeder6", &fx, &["--wait-tracker"]);
    // The tracker's own answer lists the seeder, by the address it announced from: [::1].
    let listed = tracker.wait_peers(&fx.hash, 1, ANNOUNCE_TIMEOUT);
    assert_eq!(listed, [v6(seeder_port)]);

    // No --peer, no DHT, PEX or LSD: the tracker's peers6 is the only way to the seeder.
    let start = Instant::now();
    let log = cli_leech6(&fx, &fx.torrent.to_string_lossy(), &[]);
    eprintln!(
        "found through qBittorrent's tracker and downloaded in {:.2?}",
        start.elapsed()
    );
    let prefix = format!("announced started to {url}: ");
    let (line, peers): (&str, usize) = log
        .lines()
        .find_map(|l| {
            let rest = &l[l.find(&prefix)? + prefix.len()..];
            Some((l, rest.split(' ').next()?.parse().ok()?))
        })
        .unwrap_or_else(|| panic!("no {prefix:?} line in:\n{log}"));
    eprintln!("{line}");
    assert!(peers >= 1, "the tracker gave us no peer:\n{log}");
    assert_logged(&log, &[&v6(seeder_port).to_string(), "connected"]);
}

#[test]
fn pex_added6_finds_libtorrent_seeder() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("payload.bin", &[("", PAYLOAD)], None);
    let (_seeder, seeder_port) = lt_seeder6("lt-seeder6", &fx, &[]);
    // A second libtorrent peer with PEX on, connected to the seeder, downloading slowly (so it
    // has little to give): it tells us of the seeder in `added6`.
    let middle_dir = fx.path().join("middle");
    std::fs::create_dir_all(&middle_dir).expect("create middle dir");
    let mut cmd = lt_leech_command(&fx.torrent, &middle_dir, &[v6(seeder_port).to_string()]);
    cmd.args(["--listen-ip", "::1", "--pex", "--keep-seeding"])
        .args(["--download-limit", "20000", "--progress-interval", "0.2"]);
    let mut middle = Proc::spawn("lt-pex6", cmd, fx.path());
    let ready = middle
        .wait_line("READY", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let middle_port: u16 = ready
        .strip_prefix("READY port=")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad READY line {ready:?}"));
    assert!(
        middle.wait_contains("peers=1", START_TIMEOUT),
        "{}",
        middle.failure("did not connect to the seeder")
    );

    // Our CLI dials only the middle peer; the seeder's address comes from PEX. libtorrent
    // (2.0/2.1) lists the seeder only in its once-a-minute PEX round (its first message to us
    // names just us), so this takes about a minute.
    let log = cli_leech6(&fx, &fx.torrent.to_string_lossy(), &[middle_port]);
    for line in log
        .lines()
        .filter(|l| l.contains("PEX") || l.contains("connected"))
    {
        eprintln!("{line}");
    }
    assert_logged(&log, &[&v6(middle_port).to_string(), "told us of", "(PEX)"]);
    assert_logged(&log, &[&v6(seeder_port).to_string(), "connected"]);
}

#[test]
fn our_pex_added6_leads_libtorrent_to_a_seeder() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("payload.bin", &[("", PAYLOAD)], None);
    // Slow (~15 s for the payload), so that our CLI is still downloading from it, hence still
    // connected (two seeds part), when the libtorrent leecher comes.
    let (_seeder, seeder_port) = lt_seeder6("lt-seeder6", &fx, &["--upload-limit", "200000"]);
    // Our CLI in the middle: it dials the seeder, downloads, and goes on seeding.
    let middle_dir = fx.path().join("middle");
    let port = free_port6();
    let mut cmd = cli_command();
    cmd.args(["--seed", "--bind", "::1", "-p", &port.to_string()])
        .args(["--peer", &v6(seeder_port).to_string()])
        .arg("-o")
        .arg(&middle_dir)
        .arg("--json")
        .arg(&fx.torrent)
        .env("RUST_LOG", "info,bittorrent::torrent=debug");
    let mut ours = Proc::spawn_split("bittorrent-cli-middle", cmd, fx.path());
    assert!(
        ours.wait_contains(&format!("{} connected", v6(seeder_port)), START_TIMEOUT),
        "{}",
        ours.failure("did not connect to the seeder")
    );
    // A libtorrent leecher with PEX on dials only us: it must learn the seeder's address from
    // our `added6` (we send our first PEX message at once).
    let out = fx.out_dir();
    std::fs::create_dir_all(&out).expect("create output dir");
    let mut cmd = lt_leech_command(&fx.torrent, &out, &[v6(port).to_string()]);
    cmd.args(["--listen-ip", "::1", "--pex", "--print-peers"]);
    let mut leecher = Proc::spawn("lt-leecher-pex6", cmd, fx.path());
    match leecher.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", leecher.failure(&format!("failed ({status})"))),
        None => panic!("{}", leecher.failure("did not finish in time")),
    }
    fx.check(&out);
    let seeder = format!("PEER {} sources=", v6(seeder_port));
    let sources: u32 = leecher
        .output()
        .lines()
        .find_map(|l| l.strip_prefix(&seeder)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", leecher.failure("never connected to the seeder")));
    eprintln!("libtorrent reached the seeder with sources={sources} (4: PEX)");
    assert!(sources & 4 != 0, "seeder not from PEX: sources={sources}");
    // Our CLI may still be downloading from the capped seeder (the leecher took part of its
    // upload): only a graceful stop matters here, complete or not.
    ours.signal("INT");
    assert!(
        ours.wait_exit(harness::cli::STOP_TIMEOUT).is_some(),
        "{}",
        ours.failure("did not stop after a SIGINT")
    );
}

#[test]
fn magnet_x_pe_v6_finds_libtorrent_seeder() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("payload.bin", &[("", PAYLOAD)], None);
    let (_seeder, seeder_port) = lt_seeder6("lt-seeder6", &fx, &[]);
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=payload.bin&x.pe=[::1]:{seeder_port}",
        hex::encode(fx.hash)
    );
    let log = cli_leech6(&fx, &magnet, &[]);
    assert_logged(&log, &[&v6(seeder_port).to_string(), "connected"]);
}

#[test]
fn utp_over_v6_from_libtorrent_seeder() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("payload.bin", &[("", PAYLOAD)], None);
    // TCP off on the seeder: only uTP over [::1] can carry the download.
    let (_seeder, seeder_port) = lt_seeder6("lt-utp-seeder6", &fx, &["--utp-only"]);
    let log = cli_leech6_with(
        &fx,
        &fx.torrent.to_string_lossy(),
        &[seeder_port],
        &["--utp", "only"],
    );
    assert_logged(&log, &[&v6(seeder_port).to_string(), "connected"]);
}

#[test]
fn libtorrent_leeches_from_our_seeder_over_v6() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("payload.bin", &[("", PAYLOAD)], None);
    let port = free_port6();
    let mut cmd = cli_command();
    cmd.args(["--seed", "--bind", "::1", "-p", &port.to_string()])
        .arg("-o")
        .arg(&fx.seed_dir)
        .arg("--json")
        .arg(&fx.torrent)
        .env("RUST_LOG", "info");
    let mut ours = Proc::spawn_split("bittorrent-cli-seeder", cmd, fx.path());
    wait_accepts(&mut ours, v6(port));
    assert!(
        ours.wait_contains("seeding", START_TIMEOUT),
        "{}",
        ours.failure("did not start seeding")
    );

    let out = fx.out_dir();
    leech_lt6(&fx.torrent, &out, port, fx.path());
    fx.check(&out);
    let stats = cli_stop(&mut ours);
    assert!(stats[0].uploaded >= fx.size, "{stats:?}");
}

/// Waits until `proc` accepts TCP connections on `addr`.
fn wait_accepts(proc: &mut Proc, addr: SocketAddr) {
    let ok = harness::poll(START_TIMEOUT, Duration::from_millis(50), || {
        TcpStream::connect_timeout(&addr, Duration::from_millis(200))
            .ok()
            .map(|_| ())
    });
    assert!(ok.is_some(), "{}", proc.failure("does not accept on ::1"));
}

/// A libtorrent leecher on `[::1]` that dials `[::1]:port`; returns once it downloaded all.
fn leech_lt6(torrent: &Path, out: &Path, port: u16, log_dir: &Path) {
    std::fs::create_dir_all(out).expect("create output dir");
    let mut cmd: Command = lt_leech_command(torrent, out, &[v6(port).to_string()]);
    cmd.args(["--listen-ip", "::1"]);
    let mut leecher = Proc::spawn("lt-leecher6", cmd, log_dir);
    match leecher.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", leecher.failure(&format!("failed ({status})"))),
        None => panic!("{}", leecher.failure("did not finish in time")),
    }
}
