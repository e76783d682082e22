//! Our DHT node (BEP 5) in a DHT of libtorrent nodes, both directions, with no tracker and no
//! peer given: a magnet link is downloaded by our CLI from a libtorrent seeder that only
//! announced into the DHT, and a libtorrent leecher finds our seeder through the DHT. The
//! libtorrent nodes (tests/peers/lt_dht.py) run on 127.0.0.x, bootstrapped only from each
//! other and from our node; our CLI bootstraps only from them (never the public routers).
//! The same two cases run again on `[::1]` (BEP 32): libtorrent's nodes, the seeder and
//! the leecher on IPv6 only, our CLI with `--bind ::1` (its DHT node on IPv6).
//! The content is compared byte for byte; the time of each case is printed. Run alone with
//! `cargo test -p bittorrent-cli --test interop_dht -- --nocapture`.

#[macro_use]
mod harness;

use std::time::Instant;

use harness::dht::{cli_with_dht, lt_dht};
use harness::fixture::{Fixture, MIB};
use harness::wait::{LEECH_TIMEOUT, START_TIMEOUT};
use harness::{Proc, Tool};

/// A few MiB, a short last piece.
const PAYLOAD: &[(&str, u64)] = &[("", 3 * MIB + 1234)];

/// libtorrent nodes in the DHT besides the seeder's or leecher's own.
const NODES: usize = 4;

/// Our CLI's log, with the DHT's lookups.
const LOG: &str = "info,bittorrent::dht=debug";

fn magnet(fx: &Fixture) -> String {
    format!(
        "magnet:?xt=urn:btih:{}&dn={}",
        hex::encode(fx.hash),
        fx.name()
    )
}

/// The address family of a case: where libtorrent's nodes and our CLI listen.
#[derive(Clone, Copy)]
enum Family {
    /// libtorrent's nodes on 127.0.0.(first + i), our CLI on 127.0.0.1.
    V4 { first: u8 },
    /// Everyone on [::1].
    V6,
}

impl Family {
    /// lt_dht.py's arguments for the nodes' addresses.
    fn lt_args(self) -> Vec<String> {
        match self {
            Family::V4 { first } => vec!["--first-ip".into(), first.to_string()],
            Family::V6 => vec!["--ipv6".into()],
        }
    }

    fn loopback(self) -> &'static str {
        match self {
            Family::V4 { .. } => "127.0.0.1",
            Family::V6 => "::1",
        }
    }

    /// Our address on `port`, as a `--bootstrap` argument.
    fn ours(self, port: u16) -> String {
        match self {
            Family::V4 { .. } => format!("127.0.0.1:{port}"),
            Family::V6 => format!("[::1]:{port}"),
        }
    }
}

#[test]
fn we_download_a_magnet_from_a_libtorrent_seeder_found_in_the_dht() {
    we_download_from_libtorrent(Family::V4 { first: 10 }, "dht-magnet.bin");
}

#[test]
fn libtorrent_finds_our_seeder_in_the_dht() {
    libtorrent_downloads_from_us(Family::V4 { first: 30 }, 40, "dht-seed.bin");
}

/// BEP 32: the IPv6 DHT on ::1.
#[test]
fn ipv6_we_download_a_magnet_from_a_libtorrent_seeder_found_in_the_dht() {
    we_download_from_libtorrent(Family::V6, "dht6-magnet.bin");
}

/// BEP 32: the IPv6 DHT on ::1.
#[test]
fn ipv6_libtorrent_finds_our_seeder_in_the_dht() {
    libtorrent_downloads_from_us(Family::V6, 0, "dht6-seed.bin");
}

/// A libtorrent seeder announces into its DHT; our CLI, knowing one node and the info-hash,
/// downloads the magnet.
fn we_download_from_libtorrent(family: Family, name: &str) {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new(name, PAYLOAD, None);
    let torrent = fx.torrent.to_string_lossy().into_owned();
    let seed = fx.seed_dir.to_string_lossy().into_owned();
    // Node 0 seeds and announces into the DHT of its NODES nodes.
    let mut args = [
        "--nodes",
        &NODES.to_string(),
        "--seed",
        &torrent,
        "--save",
        &seed,
    ]
    .map(String::from)
    .to_vec();
    args.extend(family.lt_args());
    let started = Instant::now();
    let (mut dht, nodes) = lt_dht("lt-dht-seeder", &args, fx.path());
    let seeder = format!("STORED ip={} port={}", nodes[0].ip(), nodes[0].port());
    dht.wait_line(&seeder, START_TIMEOUT)
        .unwrap_or_else(|e| panic!("the seeder's announce was stored nowhere: {e}"));
    eprintln!(
        "libtorrent nodes up and the seeder's announce stored after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // Our CLI knows only the last node (not the seeder's), and nothing but the info-hash.
    let mut cmd = cli_with_dht(&nodes[NODES - 1..]);
    cmd.args([
        "--bind",
        family.loopback(),
        "-p",
        "0",
        "--no-tracker",
        "-q",
        "-o",
    ])
    .arg(fx.out_dir())
    .arg(magnet(&fx))
    .env("RUST_LOG", LOG);
    let started = Instant::now();
    let mut cli = Proc::spawn("cli-dht-leecher", cmd, fx.path());
    match cli.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", cli.failure(&format!("failed ({status})"))),
        None => panic!("{}", cli.failure("did not finish")),
    }
    eprintln!(
        "our CLI: magnet found in the libtorrent DHT and downloaded in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    fx.check(&fx.out_dir());
}

/// Our seeder announces into a libtorrent DHT; a libtorrent leecher that knows only our node
/// and the info-hash downloads from it. `leecher_first` places the leecher's nodes (IPv4).
fn libtorrent_downloads_from_us(family: Family, leecher_first: u8, name: &str) {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new(name, PAYLOAD, None);
    let port = harness::free_port();
    let ours = family.ours(port);
    // The DHT: NODES libtorrent nodes that know each other and our node.
    let mut args = ["--nodes", &NODES.to_string(), "--bootstrap", &ours]
        .map(String::from)
        .to_vec();
    args.extend(family.lt_args());
    let (mut dht, nodes) = lt_dht("lt-dht", &args, fx.path());

    // Our seeder joins it and announces the torrent (no tracker).
    let mut cmd = cli_with_dht(&nodes);
    cmd.args([
        "--seed",
        "--bind",
        family.loopback(),
        "-p",
        &port.to_string(),
    ])
    .args(["--no-tracker", "--json", "-o"])
    .arg(&fx.seed_dir)
    .arg(&fx.torrent)
    .env("RUST_LOG", LOG);
    let started = Instant::now();
    let mut seeder = Proc::spawn_split("cli-dht-seeder", cmd, fx.path());
    let stored = format!("STORED ip={} port={port}", family.loopback());
    dht.wait_line(&stored, START_TIMEOUT)
        .unwrap_or_else(|e| panic!("our announce was stored nowhere: {e}\n{}", seeder.tail(20)));
    eprintln!(
        "our seeder's announce stored by libtorrent after {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // A libtorrent leecher that knows only our node, and only the info-hash.
    let out = fx.out_dir();
    std::fs::create_dir_all(&out).expect("create output dir");
    let mut args = [
        "--nodes",
        "2",
        "--bootstrap",
        &ours,
        "--leech",
        &magnet(&fx),
        "--save",
        &out.to_string_lossy(),
        "--timeout",
        &LEECH_TIMEOUT.as_secs().to_string(),
    ]
    .map(String::from)
    .to_vec();
    args.extend(match family {
        Family::V4 { .. } => Family::V4 {
            first: leecher_first,
        }
        .lt_args(),
        Family::V6 => family.lt_args(),
    });
    let started = Instant::now();
    let (mut leecher, _) = lt_dht("lt-dht-leecher", &args, fx.path());
    let done = leecher
        .wait_line("DONE", LEECH_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "libtorrent: our seeder found in the DHT and downloaded in {:.2} s ({done})",
        started.elapsed().as_secs_f64()
    );
    match leecher.wait_exit(START_TIMEOUT) {
        Some(status) if status.success() => {}
        other => panic!(
            "{}",
            leecher.failure(&format!("did not exit cleanly: {other:?}"))
        ),
    }
    fx.check(&out);
    let stats = harness::cli_stop(&mut seeder);
    fx.check_seed_stats(&stats, 1);
}
