//! Downloading a torrent to the end with a chosen client: ours, aria2 or libtorrent.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::harness::cli::cli_command;
use crate::harness::net::free_port;
use crate::harness::peers::{aria2_base, lt_leech_command};
use crate::harness::proc::Proc;
use crate::harness::tools::Tool;
use crate::harness::wait::LEECH_TIMEOUT;

/// A downloading client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Leecher {
    /// Our `bittorrent-cli`.
    Cli,
    /// aria2c: checks the harness and the seeders independently of our client. It cannot dial
    /// a given peer, so [`leech_with`] uses libtorrent instead when peers are given.
    Aria2,
    /// libtorrent, through tests/peers/lt_peer.py --leech.
    Libtorrent,
}

impl Leecher {
    /// The leecher the scenarios drive: `BT_INTEROP_LEECHER` (cli, aria2, libtorrent), else Cli.
    pub fn under_test() -> Leecher {
        match std::env::var("BT_INTEROP_LEECHER").as_deref() {
            Ok("aria2") => Leecher::Aria2,
            Ok("libtorrent") => Leecher::Libtorrent,
            Ok("cli") | Ok("") | Err(_) => Leecher::Cli,
            Ok(other) => panic!("BT_INTEROP_LEECHER={other}: expected cli, aria2 or libtorrent"),
        }
    }

    /// The tools it needs.
    pub fn tools(self) -> Vec<Tool> {
        match self {
            Leecher::Cli => vec![],
            Leecher::Aria2 => vec![Tool::Aria2, Tool::Libtorrent],
            Leecher::Libtorrent => vec![Tool::Libtorrent],
        }
    }

    /// Its process name and the command that downloads `torrent` into `out_dir`, dialing
    /// `peers` (`host:port`).
    fn command(self, torrent: &Path, out_dir: &Path, peers: &[String]) -> (&'static str, Command) {
        match self {
            Leecher::Cli => {
                let mut cmd = cli_command();
                cmd.arg("-o")
                    .arg(out_dir)
                    .arg("-p")
                    .arg(free_port().to_string());
                for p in peers {
                    cmd.arg("--peer").arg(p);
                }
                cmd.arg(torrent).env("RUST_LOG", "info");
                ("bittorrent-cli", cmd)
            }
            Leecher::Aria2 => {
                let mut cmd = Command::new("aria2c");
                aria2_base(&mut cmd, free_port());
                cmd.arg("--seed-time=0").arg("-d").arg(out_dir).arg(torrent);
                ("aria2c-leecher", cmd)
            }
            Leecher::Libtorrent => ("lt-leecher", lt_leech_command(torrent, out_dir, peers)),
        }
    }
}

/// Downloads `torrent` into `out_dir` with `leecher`, dialing `peers` directly (the tracker in
/// the torrent is used too). Returns the elapsed time and the exited process (keep it while
/// checking the output: if that panics, its drop prints the leecher's log tail), or a
/// description of the failure with the tail of the leecher's log. Kills it after
/// [`LEECH_TIMEOUT`].
pub fn leech_with(
    leecher: Leecher,
    torrent: &Path,
    out_dir: &Path,
    peers: &[u16],
    log_dir: &Path,
) -> Result<(Duration, Proc), String> {
    let leecher = if leecher == Leecher::Aria2 && !peers.is_empty() {
        eprintln!("aria2 cannot dial a given peer: leeching with libtorrent instead");
        Leecher::Libtorrent
    } else {
        leecher
    };
    fs::create_dir_all(out_dir).expect("create output dir");
    let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let (name, cmd) = leecher.command(torrent, out_dir, &peers);
    let start = Instant::now();
    let mut proc = Proc::spawn(name, cmd, log_dir);
    match proc.wait_exit(LEECH_TIMEOUT) {
        Some(status) if status.success() => {
            let took = start.elapsed();
            eprintln!("{name} downloaded {} in {took:.2?}", torrent.display());
            Ok((took, proc))
        }
        Some(status) => Err(proc.failure(&format!("failed ({status})"))),
        None => Err(proc.failure(&format!("did not finish within {LEECH_TIMEOUT:?}, killed"))),
    }
}
