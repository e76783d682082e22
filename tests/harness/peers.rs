//! Real peers on 127.0.0.1: libtorrent (tests/peers/lt_peer.py), aria2 and transmission as
//! seeders and leechers, with DHT, LSD, PEX and port mapping off. They stop by themselves if
//! the test process disappears (`--stop-with-pid`, aria2's `--stop-with-process`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::harness::net::{free_port, wait_port};
use crate::harness::proc::Proc;
use crate::harness::tools::{lt_peer_script, python};
use crate::harness::wait::START_TIMEOUT;

/// A libtorrent seeder (tests/peers/lt_peer.py in seed_mode) of `data_dir`; returns it when
/// it is listening and seeding.
pub fn lt_seeder(name: &str, torrent: &Path, data_dir: &Path, log_dir: &Path) -> (Proc, u16) {
    lt_seeder_with(name, torrent, data_dir, log_dir, &[])
}

/// [`lt_seeder`] with more lt_peer.py arguments, e.g. `--upload-limit 8000000` (bytes/s) and
/// `--report-interval 0.1` (its `UPLOADED_NOW` lines, see [`lt_uploaded_now`]).
pub fn lt_seeder_with(
    name: &str,
    torrent: &Path,
    data_dir: &Path,
    log_dir: &Path,
    extra: &[&str],
) -> (Proc, u16) {
    let mut cmd = lt_command(torrent, data_dir);
    cmd.args(["--seed", "--seed-mode", "--port", "0"])
        .args(["--stop-with-pid", &std::process::id().to_string()])
        .args(extra);
    lt_ready(Proc::spawn(name, cmd, log_dir))
}

/// A libtorrent seeder that first checks `data_dir` against the torrent's piece hashes (no
/// seed_mode): it is returned once every piece passed and it seeds.
pub fn lt_checking_seeder(
    name: &str,
    torrent: &Path,
    data_dir: &Path,
    log_dir: &Path,
) -> (Proc, u16) {
    let mut cmd = lt_command(torrent, data_dir);
    cmd.args(["--seed", "--port", "0"])
        .args(["--stop-with-pid", &std::process::id().to_string()]);
    lt_ready(Proc::spawn(name, cmd, log_dir))
}

/// Waits for a libtorrent seeder's `READY port=P` line; returns it and P.
fn lt_ready(mut proc: Proc) -> (Proc, u16) {
    let line = proc
        .wait_line("READY", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = line
        .strip_prefix("READY port=")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad READY line {line:?}"));
    (proc, port)
}

/// `python lt_peer.py --torrent TORRENT --save DIR`, unbuffered.
fn lt_command(torrent: &Path, dir: &Path) -> Command {
    let mut cmd = Command::new(python().expect("python with libtorrent"));
    cmd.arg(lt_peer_script())
        .arg("--torrent")
        .arg(torrent)
        .arg("--save")
        .arg(dir)
        .env("PYTHONUNBUFFERED", "1");
    cmd
}

/// A libtorrent leecher command (lt_peer.py --leech) that stops with the test, dialing `peers`
/// (`host:port`).
pub(crate) fn lt_leech_command(torrent: &Path, out_dir: &Path, peers: &[String]) -> Command {
    let mut cmd = lt_command(torrent, out_dir);
    cmd.args(["--leech", "--port", "0"])
        .args(["--stop-with-pid", &std::process::id().to_string()]);
    for p in peers {
        cmd.arg("--peer").arg(p);
    }
    cmd
}

/// Payload bytes a libtorrent seeder uploaded: stops it and reads its `UPLOADED` line.
pub fn lt_uploaded(seeder: &mut Proc) -> u64 {
    let out = seeder.terminate();
    out.lines()
        .find_map(|l| l.strip_prefix("UPLOADED bytes="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", seeder.failure("printed no UPLOADED line")))
}

/// The latest `UPLOADED_NOW bytes=N` of a libtorrent peer started with `--report-interval`
/// (0 before the first one).
pub fn lt_uploaded_now(peer: &Proc) -> u64 {
    peer.output()
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("UPLOADED_NOW bytes="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// A libtorrent leecher (tests/peers/lt_peer.py --leech) that runs in the background: wait for
/// its `DONE` line with [`Proc::wait_line`]. With `keep_seeding` it then goes on seeding until
/// stopped; [`lt_uploaded`] stops it (or reads the line of one that exited) and returns its
/// `UPLOADED` bytes. `progress` is the interval of its `PROGRESS ... pieces=H/T` lines.
pub fn lt_leecher(
    name: &str,
    torrent: &Path,
    out_dir: &Path,
    log_dir: &Path,
    peers: &[u16],
    keep_seeding: bool,
    progress: Duration,
) -> Proc {
    fs::create_dir_all(out_dir).expect("create output dir");
    let peers: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let mut cmd = lt_leech_command(torrent, out_dir, &peers);
    cmd.arg("--progress-interval")
        .arg(format!("{:.2}", progress.as_secs_f64()));
    if keep_seeding {
        cmd.arg("--keep-seeding");
    }
    Proc::spawn(name, cmd, log_dir)
}

/// libtorrent's (sanitized) relative path and size of every file of `torrent`
/// (lt_peer.py --list-files), or its error when it refuses the torrent.
pub fn lt_list_files(torrent: &Path) -> Result<Vec<(PathBuf, u64)>, String> {
    let out = Command::new(python().expect("python with libtorrent"))
        .arg(lt_peer_script())
        .arg("--torrent")
        .arg(torrent)
        .arg("--list-files")
        .stdin(Stdio::null())
        .output()
        .expect("run lt_peer.py --list-files");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        return Err(format!("{}{}", text, String::from_utf8_lossy(&out.stderr)));
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("FILE "))
        .map(|rest| {
            let mut parts = rest.splitn(3, ' ');
            let (_index, size, path) = (parts.next(), parts.next(), parts.next());
            match (size.and_then(|s| s.parse().ok()), path) {
                (Some(size), Some(path)) => Ok((PathBuf::from(path), size)),
                _ => Err(format!("bad FILE line {rest:?}")),
            }
        })
        .collect()
}

/// Flags that keep aria2 on loopback, quiet, and gone with the test process.
pub(crate) fn aria2_base(cmd: &mut Command, port: u16) {
    cmd.args([
        "--no-conf=true",
        "--enable-dht=false",
        "--enable-dht6=false",
        "--bt-enable-lpd=false",
        "--enable-peer-exchange=false",
        "--disable-ipv6=true",
        "--interface=127.0.0.1",
        "--summary-interval=0",
        "--console-log-level=notice",
        "--file-allocation=none",
        "--auto-file-renaming=false",
        "--allow-overwrite=true",
        "--bt-save-metadata=false",
    ])
    .arg(format!("--listen-port={port}"))
    .arg(format!("--stop-with-process={}", std::process::id()));
}

/// An aria2 seeder of `data_dir` (no hashing first). aria2 prints no "ready" line: wait for
/// it with [`Tracker::wait_seeders`](crate::harness::Tracker::wait_seeders) or
/// [`wait_port`].
pub fn aria2_seeder(name: &str, torrent: &Path, data_dir: &Path, log_dir: &Path) -> (Proc, u16) {
    let port = free_port();
    let mut cmd = Command::new("aria2c");
    aria2_base(&mut cmd, port);
    cmd.args([
        "--seed-ratio=0.0",
        "--bt-seed-unverified=true",
        "--check-integrity=false",
    ])
    .arg("-d")
    .arg(data_dir)
    .arg(torrent);
    (Proc::spawn(name, cmd, log_dir), port)
}

/// transmission-cli's settings.json: DHT, LPD, PEX, port mapping and uTP off, bound to
/// 127.0.0.1 / ::1, and a seed ratio limit of 0 (it exits once the download is checked).
const TRANSMISSION_SETTINGS: &str = r#"{
    "dht-enabled": false,
    "lpd-enabled": false,
    "pex-enabled": false,
    "port-forwarding-enabled": false,
    "utp-enabled": false,
    "blocklist-enabled": false,
    "bind-address-ipv4": "127.0.0.1",
    "bind-address-ipv6": "::1",
    "peer-port-random-on-start": false,
    "encryption": 0,
    "ratio-limit-enabled": true,
    "ratio-limit": 0,
    "idle-seeding-limit-enabled": false,
    "rename-partial-files": true,
    "incomplete-dir-enabled": false,
    "start-added-torrents": true,
    "message-level": 2
}
"#;

/// transmission-cli 3.00 as a leecher of `torrent` into `out_dir`, listening on a fixed port
/// (returned) once it is accepting connections. It ignores peers at 127.x that a tracker
/// gives it, so the seeder must dial it. Its settings.json (in `log_dir/<name>-config`) turns
/// off DHT, LPD, PEX, port mapping and uTP, binds it to 127.0.0.1 / ::1, and sets a seed ratio
/// limit of 0, so it stops and exits 0 once the download is complete and checked (it idles
/// ~13 s before it starts downloading).
pub fn transmission_leecher(
    name: &str,
    torrent: &Path,
    out_dir: &Path,
    log_dir: &Path,
) -> (Proc, u16) {
    let config = log_dir.join(format!("{name}-config"));
    fs::create_dir_all(&config).expect("create transmission config dir");
    fs::create_dir_all(out_dir).expect("create output dir");
    fs::write(config.join("settings.json"), TRANSMISSION_SETTINGS)
        .expect("write transmission settings.json");
    let port = free_port();
    let mut cmd = Command::new("transmission-cli");
    cmd.arg("-g")
        .arg(&config)
        .args(["-p", &port.to_string(), "-M", "-D", "-U", "-et", "-w"])
        .arg(out_dir)
        .arg(torrent);
    let mut proc = Proc::spawn(name, cmd, log_dir);
    if !wait_port(port, START_TIMEOUT) {
        panic!(
            "{}",
            proc.failure(&format!("does not listen on port {port}"))
        );
    }
    if proc.try_wait().is_some() {
        panic!("{}", proc.failure("exited at start-up"));
    }
    (proc, port)
}
