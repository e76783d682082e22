//! Running our CLI (as a leecher or a seeder), stopping it gracefully, and reading the
//! `--json` lines it prints on exit.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::harness::net::free_port;
use crate::harness::proc::Proc;
use crate::harness::tools::python;

/// Our binary under test.
pub const CLI: &str = env!("CARGO_BIN_EXE_bittorrent-cli");

/// How long our CLI may take to exit after one SIGINT (graceful stop: `stopped` announce).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A command that runs our CLI: [`CLI`], or `BT_INTEROP_CLI` if set (a stand-in to check the
/// tests themselves, e.g. tests/peers/lt_cli.py, run with the libtorrent python when it ends
/// in `.py`).
pub fn cli_command() -> Command {
    let mut cmd = match std::env::var_os("BT_INTEROP_CLI") {
        Some(path) if Path::new(&path).extension().is_some_and(|e| e == "py") => {
            let mut cmd = Command::new(python().expect("python with libtorrent"));
            cmd.arg(path).env("PYTHONUNBUFFERED", "1");
            cmd
        }
        Some(path) => Command::new(path),
        None => Command::new(CLI),
    };
    // The network rule: no test may reach the DHT's public bootstrap routers,
    // nor ask a gateway (SSDP multicast, NAT-PMP/PCP) to map a port.
    cmd.args(["--no-dht", "--no-port-mapping"]);
    cmd
}

/// Starts our CLI as a seeder (`--seed --bind 127.0.0.1 -p PORT -o data_dir --json`,
/// `RUST_LOG=info`), dialing `peers` (`--peer 127.0.0.1:P`), with `extra` arguments before the
/// torrent. On complete data it checks it and seeds; on an empty `data_dir` it downloads, then
/// keeps seeding. It prints nothing for a harness when ready: wait with
/// [`Tracker::wait_seeders`](crate::harness::Tracker::wait_seeders). Stop it with
/// [`cli_stop`]. Returns it and its listening port.
pub fn cli_seeder(
    name: &str,
    torrent: &Path,
    data_dir: &Path,
    log_dir: &Path,
    peers: &[u16],
    extra: &[&str],
) -> (Proc, u16) {
    fs::create_dir_all(data_dir).expect("create data dir");
    let port = free_port();
    let mut cmd = cli_command();
    cmd.args(["--seed", "--bind", "127.0.0.1", "-p", &port.to_string()])
        .arg("-o")
        .arg(data_dir)
        .arg("--json");
    for p in peers {
        cmd.arg("--peer").arg(format!("127.0.0.1:{p}"));
    }
    cmd.args(extra).arg(torrent).env("RUST_LOG", "info");
    (Proc::spawn_split(name, cmd, log_dir), port)
}

/// One line of our CLI's `--json` output.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
pub struct CliStats {
    /// Lowercase hex.
    pub info_hash: String,
    pub name: String,
    pub complete: bool,
    pub downloaded: u64,
    pub uploaded: u64,
    pub wasted: u64,
}

/// Parses the `--json` lines (`{"info_hash":...}`, one per torrent) out of `stdout`.
pub fn parse_cli_json(stdout: &str) -> Result<Vec<CliStats>, String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(|line| {
            let mut stats: CliStats =
                serde_json::from_str(line).map_err(|e| format!("{e} in {line}"))?;
            stats.info_hash.make_ascii_lowercase();
            Ok(stats)
        })
        .collect()
}

/// Stops our CLI with one SIGINT (a graceful stop), checks that it exits 0 within
/// [`STOP_TIMEOUT`] (every torrent complete), and returns its `--json` lines (at least one).
pub fn cli_stop(cli: &mut Proc) -> Vec<CliStats> {
    cli.signal("INT");
    cli_stopped(cli)
}

/// [`cli_stop`] for a CLI that was already sent its one SIGINT (to stop several at once).
pub fn cli_stopped(cli: &mut Proc) -> Vec<CliStats> {
    cli_stopped_with(cli, true)
}

/// Stops our CLI with one SIGINT while a torrent is incomplete: it must still stop
/// gracefully and print its `--json` lines, but exit non-zero (the download did not finish).
pub fn cli_stop_incomplete(cli: &mut Proc) -> Vec<CliStats> {
    cli.signal("INT");
    cli_stopped_with(cli, false)
}

fn cli_stopped_with(cli: &mut Proc, expect_success: bool) -> Vec<CliStats> {
    match cli.wait_exit(STOP_TIMEOUT) {
        None => panic!(
            "{}",
            cli.failure(&format!("did not exit within {STOP_TIMEOUT:?} of a SIGINT"))
        ),
        Some(status) if status.success() != expect_success => {
            panic!(
                "{}",
                cli.failure(&format!("exited with {status} after a SIGINT"))
            )
        }
        Some(_) => {}
    }
    let stats = parse_cli_json(&cli.stdout()).unwrap_or_else(|e| panic!("{}", cli.failure(&e)));
    assert!(
        !stats.is_empty(),
        "{}",
        cli.failure("printed no --json line")
    );
    stats
}

/// The `--json` line of the torrent `hash` among `stats`.
pub fn stats_for<'a>(stats: &'a [CliStats], hash: &[u8; 20]) -> &'a CliStats {
    let hex = hex::encode(hash);
    stats
        .iter()
        .find(|s| s.info_hash == hex)
        .unwrap_or_else(|| panic!("no --json line for {hex} in {stats:?}"))
}
