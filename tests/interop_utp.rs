//! uTP (BEP 29) against a real peer: libtorrent with TCP off (tests/peers/lt_peer.py
//! --utp-only, both directions) seeds to our CLI, and downloads from our seeder; the content is
//! compared byte for byte; a magnet link naming such a peer gets its metadata over uTP too. Our CLI runs with its default `--utp fallback`: it dials TCP first,
//! which libtorrent accepts and closes at once when TCP is off, then uTP. Our debug log must
//! show the peer connection ran over uTP. With `--utp prefer` against a peer whose UDP port is
//! closed, the ICMP "port unreachable" refuses the uTP connect and TCP is dialed at once.
//! Everything is on 127.0.0.1. Run alone with
//! `cargo test -p bittorrent-cli --test interop_utp -- --nocapture`.

#[macro_use]
mod harness;

use harness::fixture::{Fixture, MIB};
use harness::trackers::http_url;
use harness::wait::LEECH_TIMEOUT;
use harness::{Proc, Tool, Tracker};

/// A few MiB, a short last piece.
const PAYLOAD: &[(&str, u64)] = &[("", 5 * MIB + 4321)];

/// The log line of the peer actor for a handshake over uTP (at debug level).
const OVER_UTP: &str = "handshake ok over uTP";

/// The log line of the peer actor for a handshake over TCP (at debug level).
const OVER_TCP: &str = "handshake ok over TCP";

/// The uTP endpoint's log line for a SYN answered by ICMP port unreachable (debug).
const REFUSED: &str = "uTP connect refused (ICMP port unreachable)";

/// Our CLI's log, with the peer connections' debug lines.
const LOG: &str = "info,bittorrent::peer=debug";

#[test]
fn libtorrent_without_tcp_seeds_to_us_over_utp() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("utp-single.bin", PAYLOAD, None);
    let (_seeder, port) = harness::lt_seeder_with(
        "lt-seeder-utp",
        &fx.torrent,
        &fx.seed_dir,
        fx.path(),
        &["--utp-only"],
    );
    let cli = cli_leech(&fx, &format!("127.0.0.1:{port}"), fx.torrent.as_os_str());
    fx.check(&fx.out_dir());
    assert!(
        cli.output().contains(OVER_UTP),
        "{}",
        cli.failure("downloaded, but not over uTP")
    );
}

/// A magnet link naming a libtorrent peer with TCP off: the metadata comes over uTP too.
#[test]
fn magnet_from_libtorrent_without_tcp_over_utp() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("utp-magnet.bin", PAYLOAD, None);
    let (_seeder, port) = harness::lt_seeder_with(
        "lt-seeder-utp",
        &fx.torrent,
        &fx.seed_dir,
        fx.path(),
        &["--utp-only"],
    );
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=utp-magnet.bin&x.pe=127.0.0.1:{port}",
        hex::encode(fx.hash)
    );
    let cli = cli_leech(&fx, &format!("127.0.0.1:{port}"), magnet.as_ref());
    fx.check(&fx.out_dir());
    assert!(
        cli.output().contains(OVER_UTP),
        "{}",
        cli.failure("downloaded, but not over uTP")
    );
}

/// `--utp prefer` against our seeder with uTP off (its UDP port closed, no DHT): the uTP SYN
/// comes back as ICMP port unreachable, the connect is refused at once (not timed out after
/// 3 s), and the download goes over TCP.
#[test]
fn prefer_utp_falls_back_to_tcp_when_the_udp_port_is_closed() {
    require!(Tool::Opentracker, Tool::Mktorrent);
    let port = harness::free_port();
    let fx = Fixture::new("utp-prefer.bin", PAYLOAD, Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let (mut seeder, seed_port) = harness::cli_seeder(
        "cli-seeder-tcp-only",
        &fx.torrent,
        &fx.seed_dir,
        fx.path(),
        &[],
        &["--utp", "disable"],
    );
    tracker.wait_seeders(&fx.hash, 1);
    let mut cmd = harness::cli_command();
    cmd.args(["--bind", "127.0.0.1", "-p", "0", "--no-tracker", "-q"])
        .args(["--utp", "prefer", "-o"])
        .arg(fx.out_dir())
        .args(["--peer", &format!("127.0.0.1:{seed_port}")])
        .arg(&fx.torrent)
        .env(
            "RUST_LOG",
            "info,bittorrent::peer=debug,bittorrent::utp=debug",
        );
    let mut cli = Proc::spawn("cli-leecher-prefer", cmd, fx.path());
    match cli.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", cli.failure(&format!("failed ({status})"))),
        None => panic!("{}", cli.failure("did not finish")),
    }
    fx.check(&fx.out_dir());
    let log = cli.output();
    assert!(
        log.contains(REFUSED),
        "{}",
        cli.failure("uTP not refused by ICMP")
    );
    assert!(log.contains(OVER_TCP), "{}", cli.failure("not over TCP"));
    assert!(!log.contains(OVER_UTP), "{}", cli.failure("over uTP?"));
    harness::cli_stop(&mut seeder);
}

/// Our CLI (default `--utp`) downloads `what` (a .torrent or a magnet) into the fixture's
/// output dir, dialing `peer`; returns it exited with success.
fn cli_leech(fx: &Fixture, peer: &str, what: &std::ffi::OsStr) -> Proc {
    let mut cmd = harness::cli_command();
    cmd.args(["--bind", "127.0.0.1", "-p", "0", "--no-tracker", "-q", "-o"])
        .arg(fx.out_dir())
        .args(["--peer", peer])
        .arg(what)
        .env("RUST_LOG", LOG);
    let mut cli = Proc::spawn("cli-leecher", cmd, fx.path());
    match cli.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => cli,
        Some(status) => panic!("{}", cli.failure(&format!("failed ({status})"))),
        None => panic!("{}", cli.failure("did not finish")),
    }
}

#[test]
fn we_seed_to_libtorrent_without_tcp_over_utp() {
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    let port = harness::free_port();
    let fx = Fixture::new("utp-seed.bin", PAYLOAD, Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    // harness::cli_seeder, with the peers' debug lines in the log.
    std::fs::create_dir_all(&fx.seed_dir).expect("create data dir");
    let seed_port = harness::free_port();
    let mut cmd = harness::cli_command();
    cmd.args([
        "--seed",
        "--bind",
        "127.0.0.1",
        "-p",
        &seed_port.to_string(),
    ])
    .arg("-o")
    .arg(&fx.seed_dir)
    .arg("--json")
    .arg(&fx.torrent)
    .env("RUST_LOG", LOG);
    let mut seeder = Proc::spawn_split("cli-seeder", cmd, fx.path());
    tracker.wait_seeders(&fx.hash, 1);
    let out = fx.out_dir();
    std::fs::create_dir_all(&out).expect("create output dir");
    let peers = [format!("127.0.0.1:{seed_port}")];
    let mut cmd = harness::peers::lt_leech_command(&fx.torrent, &out, &peers);
    cmd.arg("--utp-only");
    let mut leecher = Proc::spawn("lt-leecher-utp", cmd, fx.path());
    match leecher.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", leecher.failure(&format!("failed ({status})"))),
        None => panic!("{}", leecher.failure("did not finish")),
    }
    fx.check(&out);
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
    assert!(
        seeder.output().contains(OVER_UTP),
        "{}",
        seeder.failure("uploaded, but not over uTP")
    );
}
