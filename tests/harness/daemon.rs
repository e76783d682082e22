//! A server of qBittorrent's Web API v2 on 127.0.0.1: our `bittorrent-cli daemon`, or
//! qbittorrent-nox itself as the reference the same tests are checked against.
//!
//! [`ApiServer`] starts either with a data directory of its own and the same credentials
//! ([`USER`], [`PASSWORD`]), reads its Web API address (and, for ours, its peer address), and
//! stops it gracefully (SIGTERM), kills it (SIGKILL) or restarts it on the same data directory.
//! Which one the tests drive: `BT_INTEROP_DAEMON=ours` (default) or `qbittorrent`.
//!
//! qbittorrent-nox gets a profile that keeps it on loopback: DHT, LSD, PeX, UPnP/NAT-PMP, RSS
//! off, its peer port and Web UI on 127.0.0.1, its rate limits applied to LAN peers too
//! (`IgnoreLimitsOnLAN=false`: every peer is on 127.0.0.1), and the PBKDF2 hash of
//! [`PASSWORD`] as qBittorrent stores it.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::time::Duration;

use crate::harness::net::{free_port, wait_port};
use crate::harness::proc::Proc;
use crate::harness::tools::{which, Tool};
use crate::harness::wait::{poll, POLL, START_TIMEOUT};

/// The Web API user name of every server the tests start.
pub const USER: &str = "admin";
/// Its password (a test secret, on loopback only).
pub const PASSWORD: &str = "proof-pass-14";
/// qBittorrent's `WebUI\Password_PBKDF2` of [`PASSWORD`]: PBKDF2-HMAC-SHA512, 100000 rounds,
/// this 16-byte salt, 64-byte key (python: `hashlib.pbkdf2_hmac("sha512", PASSWORD, salt,
/// 100000, 64)`).
const QBT_PASSWORD_HASH: &str = "@ByteArray(ARQ77eY1NUZaQsuDHbIMCA==:\
    NZjqiBCtLQzYkLNYPZegznr5fllukyPXCa6hz2tCC3dijW6zsrbx4Rbe3FkjPBkKSALQt15s7+kNYzvQ/tqBNw==)";

/// How long a graceful stop may take.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Which server implements the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServerKind {
    /// `bittorrent-cli daemon`.
    Ours,
    /// qbittorrent-nox (the reference).
    Qbittorrent,
}

impl ServerKind {
    /// `BT_INTEROP_DAEMON`: `qbittorrent` (or `qbt`) for qbittorrent-nox, else ours.
    pub fn from_env() -> ServerKind {
        match std::env::var("BT_INTEROP_DAEMON").as_deref() {
            Ok("qbittorrent") | Ok("qbt") | Ok("qbittorrent-nox") => ServerKind::Qbittorrent,
            _ => ServerKind::Ours,
        }
    }

    /// The external tools it needs (none for ours).
    pub fn tools(self) -> Vec<Tool> {
        match self {
            ServerKind::Ours => vec![],
            ServerKind::Qbittorrent => vec![Tool::Qbittorrent],
        }
    }
}

/// A running Web API server with its data directory; killed on drop.
pub struct ApiServer {
    pub kind: ServerKind,
    /// `http://127.0.0.1:PORT` of the Web API (and the page, for ours).
    pub url: String,
    /// Its data directory (ours: `--data`; qbittorrent-nox: `--profile`).
    pub data: PathBuf,
    /// The default save path.
    pub save_path: PathBuf,
    proc: Proc,
    name: String,
    log_dir: PathBuf,
    extra: Vec<String>,
    starts: u32,
}

impl ApiServer {
    /// Starts `kind` with its data in `dir/<name>-data`, logs in `dir`, extra command-line
    /// arguments `extra` (ours only; e.g. `--bypass-local-auth`); returns once its Web API
    /// accepts connections.
    pub fn start(kind: ServerKind, dir: &Path, name: &str, extra: &[&str]) -> ApiServer {
        Self::start_with_page(kind, dir, name, extra, None)
    }

    /// [`ApiServer::start`]; qbittorrent-nox serves `qbt_page` (a directory with an
    /// index.html) as its alternative Web UI, public and private (ours ignores it).
    pub fn start_with_page(
        kind: ServerKind,
        dir: &Path,
        name: &str,
        extra: &[&str],
        qbt_page: Option<&Path>,
    ) -> ApiServer {
        let data = dir.join(format!("{name}-data"));
        let save_path = dir.join(format!("{name}-downloads"));
        fs::create_dir_all(&save_path).expect("create save path");
        if kind == ServerKind::Qbittorrent {
            write_qbt_profile(&data, &save_path, free_port(), free_port(), qbt_page);
        }
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let (proc, url) = launch(kind, &data, &save_path, dir, &format!("{name}-1"), &extra);
        ApiServer {
            kind,
            url,
            data,
            save_path,
            proc,
            name: name.to_string(),
            log_dir: dir.to_path_buf(),
            extra,
            starts: 1,
        }
    }

    /// The process's pid.
    pub fn pid(&self) -> u32 {
        self.proc.pid()
    }

    /// Whether it has exited, and how.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.proc.try_wait()
    }

    /// What went wrong, with the tail of its log.
    pub fn failure(&self, what: &str) -> String {
        self.proc.failure(what)
    }

    /// SIGTERM, then waits for its exit; panics if it does not exit within [`STOP_TIMEOUT`].
    pub fn stop(&mut self) -> ExitStatus {
        self.proc.signal("TERM");
        match self.proc.wait_exit(STOP_TIMEOUT) {
            Some(status) => status,
            None => panic!(
                "{}",
                self.proc
                    .failure(&format!("did not exit {STOP_TIMEOUT:?} after SIGTERM"))
            ),
        }
    }

    /// SIGKILL (kill -9), then waits for its exit.
    pub fn kill(&mut self) {
        self.proc.signal("KILL");
        if self.proc.wait_exit(Duration::from_secs(10)).is_none() {
            panic!("{}", self.proc.failure("still running after SIGKILL"));
        }
    }

    /// Starts it again on the same data directory (after [`ApiServer::stop`] or
    /// [`ApiServer::kill`]); its URL may change (ours binds port 0 again).
    pub fn restart(&mut self) {
        assert!(
            self.proc.try_wait().is_some(),
            "restart of a running server"
        );
        self.starts += 1;
        let name = format!("{}-{}", self.name, self.starts);
        let (proc, url) = launch(
            self.kind,
            &self.data,
            &self.save_path,
            &self.log_dir,
            &name,
            &self.extra,
        );
        self.proc = proc;
        self.url = url;
    }

    /// Panics if [`PASSWORD`] is in clear in any file of its data directory or in the output
    /// of any of its runs (the spec: stored hashed, never logged).
    pub fn assert_password_hidden(&self) {
        let mut files = vec![];
        for start in 1..=self.starts {
            files.push(self.log_dir.join(format!("{}-{start}.log", self.name)));
        }
        let mut rel = vec![];
        crate::harness::compare::walk(&self.data, &self.data, &mut rel);
        files.extend(rel.iter().map(|r| self.data.join(r)));
        for file in files {
            let bytes = fs::read(&file).unwrap_or_default();
            assert!(
                !bytes
                    .windows(PASSWORD.len())
                    .any(|w| w == PASSWORD.as_bytes()),
                "the Web API password is in clear in {}",
                file.display()
            );
        }
    }

    /// For ours: the data directory holds config.json, torrents.json and a .torrent copy of
    /// each of `hashes` (the spec's layout).
    pub fn assert_data_dir(&self, hashes: &[[u8; 20]]) {
        if self.kind != ServerKind::Ours {
            return;
        }
        let mut want = vec![
            self.data.join("config.json"),
            self.data.join("torrents.json"),
        ];
        want.extend(hashes.iter().map(|h| {
            self.data
                .join(format!("torrents/{}.torrent", hex::encode(h)))
        }));
        for path in want {
            assert!(path.is_file(), "no {} in the data dir", path.display());
        }
    }

    /// Everything the current process wrote.
    pub fn output(&self) -> String {
        self.proc.output()
    }
}

/// Starts `kind` on `data` with its log `log_dir/<name>.log`; returns it and its Web API URL
/// once that accepts connections.
fn launch(
    kind: ServerKind,
    data: &Path,
    save_path: &Path,
    log_dir: &Path,
    name: &str,
    extra: &[String],
) -> (Proc, String) {
    match kind {
        ServerKind::Ours => launch_ours(data, save_path, log_dir, name, extra),
        ServerKind::Qbittorrent => launch_qbt(data, log_dir, name),
    }
}

fn launch_ours(
    data: &Path,
    save_path: &Path,
    log_dir: &Path,
    name: &str,
    extra: &[String],
) -> (Proc, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bittorrent-cli"));
    cmd.arg("daemon")
        .arg("--data")
        .arg(data)
        .arg("--save-path")
        .arg(save_path)
        .args(["--api", "127.0.0.1:0", "-p", "0", "--bind", "127.0.0.1"])
        .args(["--no-dht", "--no-port-mapping", "--no-pex", "-v"])
        .args(["--web-username", USER, "--web-password", PASSWORD])
        .args(extra);
    let mut proc = Proc::spawn(name, cmd, log_dir);
    let line = wait_output(&mut proc, "api listening on http://");
    let addr = line
        .split("api listening on http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_default()
        .to_string();
    wait_output(&mut proc, "peers listening on ");
    (proc, format!("http://{addr}"))
}

fn launch_qbt(profile: &Path, log_dir: &Path, name: &str) -> (Proc, String) {
    let web = read_qbt_web_port(profile);
    // Like the tracker of qbt_tracker.rs: the kernel kills it if this test dies.
    let mut cmd = match which("setpriv") {
        Some(setpriv) => {
            let mut cmd = Command::new(setpriv);
            cmd.args(["--pdeathsig", "KILL", "qbittorrent-nox"]);
            cmd
        }
        None => Command::new("qbittorrent-nox"),
    };
    cmd.arg(format!("--profile={}", profile.display()));
    let proc = Proc::spawn(name, cmd, log_dir);
    if !wait_port(web, START_TIMEOUT) {
        panic!("{}", proc.failure("its Web UI does not listen"));
    }
    (proc, format!("http://127.0.0.1:{web}"))
}

/// Waits for a line of `proc`'s output containing `needle` (after any log prefix); returns it.
fn wait_output(proc: &mut Proc, needle: &str) -> String {
    let found = poll(START_TIMEOUT, POLL, || {
        if let Some(line) = proc.output().lines().find(|l| l.contains(needle)) {
            return Some(Ok(line.to_string()));
        }
        proc.try_wait().map(Err)
    });
    match found {
        Some(Ok(line)) => line,
        Some(Err(status)) => panic!(
            "{}",
            proc.failure(&format!("exited ({status}) before printing {needle:?}"))
        ),
        None => panic!("{}", proc.failure(&format!("printed no {needle:?}"))),
    }
}

/// qBittorrent.conf: Web UI on 127.0.0.1:web with [`USER`]/[`PASSWORD`], peers on
/// 127.0.0.1:peer, everything that could reach out off.
fn write_qbt_profile(profile: &Path, save: &Path, web: u16, peer: u16, page: Option<&Path>) {
    let dir = profile.join("qBittorrent").join("config");
    fs::create_dir_all(&dir).expect("create qBittorrent profile");
    let save = save.display();
    // The alternative Web UI: ROOT/public (before login) and ROOT/private (after).
    let alt_ui = match page {
        Some(page) => {
            let root = profile.join("webui");
            for side in ["public", "private"] {
                fs::create_dir_all(root.join(side)).expect("create webui dir");
                fs::copy(page.join("index.html"), root.join(side).join("index.html"))
                    .expect("copy the reference page");
            }
            format!(
                "WebUI\\AlternativeUIEnabled=true\nWebUI\\RootFolder={}\n",
                root.display()
            )
        }
        None => String::new(),
    };
    let config = format!(
        "[LegalNotice]\nAccepted=true\n\n\
         [BitTorrent]\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n\
         Session\\PeXEnabled=false\nSession\\Port={peer}\nSession\\Interface=lo\n\
         Session\\InterfaceName=lo\nSession\\InterfaceAddress=127.0.0.1\n\
         Session\\AnonymousModeEnabled=true\nSession\\IgnoreLimitsOnLAN=false\n\
         Session\\DefaultSavePath={save}\nSession\\TempPathEnabled=false\n\
         Session\\AddTorrentPaused=false\n\n\
         [Network]\nPortForwardingEnabled=false\n\n\
         [RSS]\nSession\\EnableProcessing=false\nAutoDownloader\\EnableProcessing=false\n\n\
         [Preferences]\nConnection\\UPnP=false\nConnection\\ResolvePeerCountries=false\n\
         Downloads\\SavePath={save}\nBittorrent\\DHT=false\nBittorrent\\LSD=false\n\
         Bittorrent\\PeX=false\nGeneral\\Locale=en\n\
         WebUI\\Address=127.0.0.1\nWebUI\\Port={web}\nWebUI\\Username={USER}\n\
         WebUI\\Password_PBKDF2=\"{QBT_PASSWORD_HASH}\"\nWebUI\\LocalHostAuth=true\n\
         WebUI\\CSRFProtection=true\nWebUI\\HostHeaderValidation=false\n{alt_ui}"
    );
    fs::write(dir.join("qBittorrent.conf"), config).expect("write qBittorrent.conf");
}

/// The Web UI port of a profile written by [`write_qbt_profile`].
fn read_qbt_web_port(profile: &Path) -> u16 {
    let conf = profile.join("qBittorrent/config/qBittorrent.conf");
    let text = fs::read_to_string(&conf).expect("read qBittorrent.conf");
    text.lines()
        .find_map(|l| l.strip_prefix("WebUI\\Port="))
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("no WebUI\\Port in {}", conf.display()))
}

/// Path of a script in tests/peers.
pub fn peer_script(name: &str) -> PathBuf {
    crate::harness::tools::workspace_root()
        .join("tests/peers")
        .join(name)
}

/// Runs `tests/peers/<script>` with `args` (python with libtorrent, which the install script
/// gives qbittorrent-api and websocket-client too), its output in `log_dir/<name>.log`; panics
/// with that output unless it exits 0 within `timeout`. Returns the output.
pub fn run_flow(
    name: &str,
    script: &str,
    args: &[String],
    log_dir: &Path,
    timeout: Duration,
) -> String {
    let python = crate::harness::tools::python().expect("python with libtorrent");
    let mut cmd = Command::new(python);
    // No __pycache__ of qbt_common.py in the source tree.
    cmd.arg(peer_script(script))
        .args(args)
        .env("PYTHONUNBUFFERED", "1")
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let mut proc = Proc::spawn(name, cmd, log_dir);
    match proc.wait_exit(timeout) {
        Some(status) if status.success() => proc.output(),
        Some(status) => panic!("{}", proc.failure(&format!("failed ({status})"))),
        None => panic!(
            "{}",
            proc.failure(&format!("did not finish in {timeout:?}"))
        ),
    }
}
