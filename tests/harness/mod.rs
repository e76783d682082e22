//! Harness for the interop tests: real peers (opentracker, libtorrent, aria2) on 127.0.0.1.
//!
//! Every external process lives in a [`Proc`] guard that kills it on drop (also while a test
//! panics, when it prints the tail of that process's log first). Peers are told to stop by
//! themselves if the test process disappears (`--stop-with-pid`, aria2's `--stop-with-process`).
//! Ports come from binding 127.0.0.1:0; every test has its own temporary directory, so the
//! tests may run in parallel.
//!
//! Submodules: [`fixture`] (a payload, its torrent and info-hash in a scratch directory; the
//! shared piece size and payload shapes), [`bencode`] (a reader/writer of its own), [`meta`]
//! (.torrent metadata, piece checks of data on disk, our CLI's resume records, crafted
//! torrents), [`evil`] (an in-process peer, honest or malicious, that counts its connections),
//! [`trackers`] (torrents with BEP 12 tiers, tracker URLs).
//!
//! Environment:
//! - `BT_INTEROP_REQUIRED=1`: a missing peer binary fails the test instead of skipping it.
//! - `BT_INTEROP_LEECHER=cli|aria2|libtorrent`: which leecher the scenarios drive (default
//!   `cli`, our binary); the others check the harness and the seeders on their own.
//! - `BT_INTEROP_CLI`: run this program instead of our bittorrent-cli as the seeder of the
//!   seeding tests (tests/peers/lt_cli.py, a libtorrent stand-in, checks the tests themselves).
//! - `BT_PYTHON`: python interpreter that has the `libtorrent` module (else `python3`, then
//!   `/usr/bin/python3` are probed).

#![allow(dead_code)]

pub mod bencode;
pub mod evil;
pub mod fixture;
pub mod meta;
pub mod restart;

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use sha1::{Digest, Sha1};
pub mod trackers;

/// Our binary under test.
pub const CLI: &str = env!("CARGO_BIN_EXE_bittorrent-cli");

/// How long a leecher may take before the test fails.
pub const LEECH_TIMEOUT: Duration = Duration::from_secs(120);

/// How long a peer or tracker may take to come up.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

const POLL: Duration = Duration::from_millis(50);

/// The source tree's root (the workspace), from the bittorrent-cli package's manifest dir.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of the libtorrent peer script.
pub fn lt_peer_script() -> PathBuf {
    workspace_root().join("tests/peers/lt_peer.py")
}

// ---------------------------------------------------------------------------------------------
// Required tools
// ---------------------------------------------------------------------------------------------

fn interop_required() -> bool {
    std::env::var("BT_INTEROP_REQUIRED")
        .map(|v| v == "1")
        .unwrap_or(false)
}

/// Finds `name` on PATH.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// A python interpreter that can `import libtorrent`, probed once.
pub fn python() -> Option<&'static str> {
    static PYTHON: OnceLock<Option<String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let mut candidates = Vec::new();
            if let Ok(p) = std::env::var("BT_PYTHON") {
                candidates.push(p);
            }
            candidates.push("python3".into());
            candidates.push("/usr/bin/python3".into());
            candidates.into_iter().find(|py| {
                Command::new(py)
                    .args(["-c", "import libtorrent"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .map(|s| s.success())
                    .unwrap_or(false)
            })
        })
        .as_deref()
}

/// A tool a test needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    Opentracker,
    Mktorrent,
    Aria2,
    /// python3 with the libtorrent module.
    Libtorrent,
    Transmission,
    /// curl, as an HTTP client of `--serve`.
    Curl,
    /// ffmpeg, to make a video, and ffprobe, to read it from `--serve`.
    Ffmpeg,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Opentracker => "opentracker",
            Tool::Mktorrent => "mktorrent",
            Tool::Aria2 => "aria2c",
            Tool::Libtorrent => "python3 module libtorrent",
            Tool::Transmission => "transmission-cli",
            Tool::Curl => "curl",
            Tool::Ffmpeg => "ffmpeg and ffprobe",
        }
    }

    fn present(self) -> bool {
        match self {
            Tool::Opentracker => which("opentracker").is_some(),
            Tool::Mktorrent => which("mktorrent").is_some(),
            Tool::Aria2 => which("aria2c").is_some(),
            Tool::Libtorrent => python().is_some(),
            Tool::Transmission => which("transmission-cli").is_some(),
            Tool::Curl => which("curl").is_some(),
            Tool::Ffmpeg => which("ffmpeg").is_some() && which("ffprobe").is_some(),
        }
    }
}

/// True when every tool is installed. Otherwise panics under `BT_INTEROP_REQUIRED=1`, or
/// prints "skipping" and returns false.
pub fn have(tools: &[Tool]) -> bool {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|t| !t.present())
        .map(|t| t.name())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let what = missing.join(", ");
    if interop_required() {
        panic!("{what} not installed (BT_INTEROP_REQUIRED=1); run scripts/install-test-deps");
    }
    eprintln!("skipping: {what} not installed");
    false
}

/// Returns from the test early (skip) unless all the tools are installed:
/// `require!(Tool::Aria2, ...)`, or `require!(@leecher l)` for what a [`Leecher`] needs.
macro_rules! require {
    (@leecher $leecher:expr) => {
        if !$crate::harness::have(&$leecher.tools()) {
            return;
        }
    };
    ($($tool:expr),* $(,)?) => {
        if !$crate::harness::have(&[$($tool),*]) {
            return;
        }
    };
}

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

/// A child process whose stdout and stderr go to a log file (or stdout to a file of its own,
/// see [`Proc::spawn_split`]); killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
    /// Where stdout goes when it is kept apart from the log.
    stdout: Option<PathBuf>,
    exited: Option<std::process::ExitStatus>,
}

impl Proc {
    /// Spawns `cmd` with its output in `log_dir/<name>.log`.
    pub fn spawn(name: &str, cmd: Command, log_dir: &Path) -> Proc {
        Self::spawn_inner(name, cmd, log_dir, false)
    }

    /// Spawns `cmd` with its stderr in `log_dir/<name>.log` and its stdout apart, in
    /// `log_dir/<name>.stdout` (read it with [`Proc::stdout`]): for output a test parses.
    pub fn spawn_split(name: &str, cmd: Command, log_dir: &Path) -> Proc {
        Self::spawn_inner(name, cmd, log_dir, true)
    }

    fn spawn_inner(name: &str, mut cmd: Command, log_dir: &Path, split: bool) -> Proc {
        let log = log_dir.join(format!("{name}.log"));
        let err = File::create(&log).unwrap_or_else(|e| panic!("create {}: {e}", log.display()));
        let (out, stdout) = if split {
            let path = log_dir.join(format!("{name}.stdout"));
            let file =
                File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
            (file, Some(path))
        } else {
            (err.try_clone().expect("clone log file handle"), None)
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child,
            log,
            stdout,
            exited: None,
        }
    }

    /// What it wrote on stdout: the separate file of [`Proc::spawn_split`], else the log.
    pub fn stdout(&self) -> String {
        match &self.stdout {
            Some(path) => fs::read(path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            None => self.output(),
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the process wrote so far.
    pub fn output(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The last `n` lines of its output.
    pub fn tail(&self, n: usize) -> String {
        let out = self.output();
        let lines: Vec<&str> = out.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Exit status if it has exited.
    pub fn try_wait(&mut self) -> Option<std::process::ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Waits up to `timeout` for a line of output that starts with `prefix`; returns it.
    pub fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.output().lines().find(|l| l.starts_with(prefix)) {
                return Ok(line.to_string());
            }
            if let Some(status) = self.try_wait() {
                // One last look: the line may have been written just before it exited.
                if let Some(line) = self.output().lines().find(|l| l.starts_with(prefix)) {
                    return Ok(line.to_string());
                }
                return Err(self.failure(&format!("exited ({status}) before printing {prefix:?}")));
            }
            if Instant::now() > deadline {
                return Err(self.failure(&format!("no {prefix:?} line after {timeout:?}")));
            }
            sleep(POLL);
        }
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            sleep(POLL);
        }
    }

    /// Sends `signal` ("TERM", "INT", ...) unless it has exited.
    pub fn signal(&mut self, signal: &str) {
        if self.try_wait().is_none() {
            let _ = Command::new("kill")
                .args([&format!("-{signal}"), &self.pid().to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Sends SIGINT (Ctrl-C) once and waits up to `timeout` for it to exit.
    pub fn interrupt(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.signal("INT");
        self.wait_exit(timeout)
    }

    /// Waits up to `timeout` for a line of output that contains `needle`; true if one came.
    pub fn wait_contains(&mut self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self.output().lines().any(|l| l.contains(needle)) {
                return true;
            }
            if self.try_wait().is_some() || Instant::now() > deadline {
                return self.output().lines().any(|l| l.contains(needle));
            }
            sleep(POLL);
        }
    }

    /// Sends SIGTERM and waits (10 s at most, then SIGKILL) for it to exit; returns its output.
    pub fn terminate(&mut self) -> String {
        if self.try_wait().is_none() {
            self.signal("TERM");
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                self.exited = self.child.wait().ok();
            }
        }
        self.output()
    }

    /// A one-paragraph description of what went wrong, with the tail of its log.
    pub fn failure(&self, what: &str) -> String {
        let mut text = format!(
            "{} (pid {}) {what}; last lines of {}:\n{}",
            self.name,
            self.pid(),
            self.log.display(),
            indent(&self.tail(40))
        );
        if let Some(path) = &self.stdout {
            let out = self.stdout();
            let lines: Vec<&str> = out.lines().collect();
            text += &format!(
                "stdout ({}):\n{}",
                path.display(),
                indent(&lines[lines.len().saturating_sub(10)..].join("\n"))
            );
        }
        text
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- {} log tail ({}) ----\n{}",
                self.name,
                self.log.display(),
                self.tail(25)
            );
        }
        if self.try_wait().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("    {l}\n")).collect()
}

/// Polls `cond` (every 100 ms) until it holds; panics after `timeout`, or as soon as one of
/// `watched` exits (with its log tail), so that a peer that died does not cost a timeout.
pub fn wait_for(
    what: &str,
    timeout: Duration,
    watched: &mut [&mut Proc],
    mut cond: impl FnMut() -> bool,
) {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return;
        }
        for p in watched.iter_mut() {
            if let Some(status) = p.try_wait() {
                panic!(
                    "{}",
                    p.failure(&format!("exited ({status}) while waiting for {what}"))
                );
            }
        }
        assert!(Instant::now() < deadline, "no {what} after {timeout:?}");
        sleep(Duration::from_millis(100));
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}

/// Waits until something accepts TCP connections on 127.0.0.1:port.
pub fn wait_port(port: u16, timeout: Duration) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return true;
        }
        sleep(POLL);
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Payloads, torrents, comparison
// ---------------------------------------------------------------------------------------------

/// A temporary directory for one test (deleted at the end).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bt-interop-")
        .tempdir()
        .expect("create temp dir")
}

/// Writes `len` deterministic pseudo-random bytes (splitmix64 seeded with `seed`) to `path`.
pub fn write_payload(path: &Path, len: u64, seed: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create payload dir");
    }
    let mut file = std::io::BufWriter::new(File::create(path).expect("create payload file"));
    let mut state = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut left = len;
    while left > 0 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let n = left.min(8) as usize;
        file.write_all(&z.to_le_bytes()[..n])
            .expect("write payload");
        left -= n as u64;
    }
    file.flush().expect("flush payload");
}

/// Writes a tree of files: `(relative path, size)` under `root`, each with its own seed.
pub fn write_tree(root: &Path, files: &[(&str, u64)]) {
    fs::create_dir_all(root).expect("create tree root");
    for (i, (rel, len)) in files.iter().enumerate() {
        write_payload(&root.join(rel), *len, 1000 + i as u64);
    }
}

/// Encodes `seconds` of ffmpeg's test pattern at `width`x`height`, 25 frames/s, as MPEG-4
/// Part 2 in an MP4 file at `path`. Every frame is a key frame (about 6.5 MB for 20 s at
/// 640x360), and the `moov` atom (the index a player needs first) comes after the frames, at
/// the end of the file, as ffmpeg writes it without `-movflags +faststart`.
pub fn write_video(path: &Path, seconds: u32, width: u32, height: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create video dir");
    }
    let source = format!("testsrc=duration={seconds}:size={width}x{height}:rate=25");
    let res = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", &source])
        .args(["-c:v", "mpeg4", "-q:v", "3", "-g", "1"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        res.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Makes `out` from the file or directory `content` with mktorrent (pieces of 2^piece_log2
/// bytes); `announce` is the tracker URL, if any.
pub fn make_torrent(content: &Path, announce: Option<&str>, piece_log2: u32, out: &Path) {
    let mut cmd = Command::new("mktorrent");
    cmd.arg("-l")
        .arg(piece_log2.to_string())
        .arg("-o")
        .arg(out)
        .arg("-t")
        .arg("2");
    if let Some(url) = announce {
        cmd.arg("-a").arg(url);
    }
    cmd.arg(content);
    let res = cmd.output().expect("run mktorrent");
    assert!(
        res.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// Index just past the bencoded value that starts at `i`.
fn bencode_end(b: &[u8], i: usize) -> Option<usize> {
    match *b.get(i)? {
        b'i' => Some(i + b[i..].iter().position(|&c| c == b'e')? + 1),
        b'l' | b'd' => {
            let mut j = i + 1;
            while *b.get(j)? != b'e' {
                j = bencode_end(b, j)?;
            }
            Some(j + 1)
        }
        c if c.is_ascii_digit() => {
            let colon = i + b[i..].iter().position(|&c| c == b':')?;
            let len: usize = std::str::from_utf8(&b[i..colon]).ok()?.parse().ok()?;
            let end = colon + 1 + len;
            (end <= b.len()).then_some(end)
        }
        _ => None,
    }
}

/// SHA-1 of the bencoded `info` value of a .torrent file (independent of the engine's code).
pub fn info_hash(torrent: &Path) -> [u8; 20] {
    let b = fs::read(torrent).expect("read torrent");
    assert_eq!(b.first(), Some(&b'd'), "torrent is not a dictionary");
    let mut j = 1;
    while b.get(j).is_some_and(|&c| c != b'e') {
        let key_end = bencode_end(&b, j).expect("bad bencode key");
        let val_end = bencode_end(&b, key_end).expect("bad bencode value");
        if &b[j..key_end] == b"4:info" {
            return Sha1::digest(&b[key_end..val_end]).into();
        }
        j = val_end;
    }
    panic!("no info dictionary in {}", torrent.display());
}

/// Appends the paths (relative to `root`, sorted) of every file under `dir` to `out`.
pub fn walk(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read dir {}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            walk(root, &path, out);
        } else {
            out.push(path.strip_prefix(root).expect("under root").to_path_buf());
        }
    }
}

/// Panics unless `actual` (file or directory) has exactly the files and bytes of `expected`.
pub fn assert_same_content(expected: &Path, actual: &Path) {
    assert!(actual.exists(), "{} was not created", actual.display());
    if expected.is_file() {
        assert!(actual.is_file(), "{} is not a file", actual.display());
        assert_same_file(expected, actual);
        return;
    }
    let (mut want, mut got) = (Vec::new(), Vec::new());
    walk(expected, expected, &mut want);
    walk(actual, actual, &mut got);
    assert_eq!(
        want,
        got,
        "different file sets under {} and {}",
        expected.display(),
        actual.display()
    );
    for rel in &want {
        assert_same_file(&expected.join(rel), &actual.join(rel));
    }
}

fn assert_same_file(expected: &Path, actual: &Path) {
    let (a, b) = (
        fs::read(expected).expect("read expected"),
        fs::read(actual).expect("read actual"),
    );
    assert_eq!(a.len(), b.len(), "size of {} differs", actual.display());
    if a == b {
        return; // memcmp; the byte loop below is slow in debug builds
    }
    if let Some(pos) = a.iter().zip(&b).position(|(x, y)| x != y) {
        panic!(
            "{} differs from {} at byte {pos}",
            actual.display(),
            expected.display()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tracker
// ---------------------------------------------------------------------------------------------

/// An opentracker on 127.0.0.1 (HTTP and UDP on the same port), whitelisting the given hashes.
pub struct Tracker {
    pub port: u16,
    proc: Proc,
}

impl Tracker {
    /// Starts it on `port` (from [`free_port`]; the torrents carry the URL, so choose it first)
    /// with its files in `dir/tracker`. opentracker chroots there and drops to `nobody` before
    /// it reads the whitelist, so that directory and file must be world-readable.
    pub fn start(dir: &Path, port: u16, hashes: &[[u8; 20]]) -> Tracker {
        let root = dir.join("tracker");
        fs::create_dir_all(&root).expect("create tracker dir");
        let list: String = hashes
            .iter()
            .map(|h| format!("{}\n", hex::encode(h)))
            .collect();
        fs::write(root.join("whitelist"), list).expect("write whitelist");
        fs::set_permissions(&root, fs::Permissions::from_mode(0o755)).expect("chmod tracker dir");
        fs::set_permissions(root.join("whitelist"), fs::Permissions::from_mode(0o644))
            .expect("chmod whitelist");
        let mut cmd = Command::new("opentracker");
        cmd.args([
            "-i",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-P",
            &port.to_string(),
        ])
        .args(["-w", "whitelist", "-d"])
        .arg(&root);
        let mut proc = Proc::spawn("opentracker", cmd, dir);
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline && proc.try_wait().is_none() {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Tracker { port, proc };
            }
            sleep(POLL);
        }
        panic!("{}", proc.failure("did not start listening"));
    }

    pub fn announce_url(&self) -> String {
        trackers::http_url(self.port)
    }

    /// The number of seeders ("complete") the tracker has for `hash`, from a scrape.
    pub fn seeders(&self, hash: &[u8; 20]) -> Option<u64> {
        self.scrape(hash, "complete")
    }

    /// The number of leechers ("incomplete") the tracker has for `hash`, from a scrape.
    pub fn leechers(&self, hash: &[u8; 20]) -> Option<u64> {
        self.scrape(hash, "incomplete")
    }

    /// One integer of the scrape of `hash`: `complete`, `incomplete` or `downloaded`.
    pub fn scrape(&self, hash: &[u8; 20], field: &str) -> Option<u64> {
        let query: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            s,
            "GET /scrape?info_hash={query} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n"
        )
        .ok()?;
        let mut resp = Vec::new();
        s.read_to_end(&mut resp).ok()?;
        let key = format!("{}:{field}i", field.len());
        let key = key.as_bytes();
        let at = resp.windows(key.len()).position(|w| w == key)? + key.len();
        let digits: Vec<u8> = resp[at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .copied()
            .collect();
        std::str::from_utf8(&digits).ok()?.parse().ok()
    }

    /// Waits up to `timeout` until the tracker lists at least `n` leechers for `hash`.
    pub fn wait_leechers(&self, hash: &[u8; 20], n: u64, timeout: Duration) {
        wait_count("leechers", hash, n, timeout, || self.leechers(hash));
    }

    /// Waits until the tracker lists at least `n` seeders for `hash`.
    pub fn wait_seeders(&self, hash: &[u8; 20], n: u64) {
        self.wait_seeders_for(hash, n, START_TIMEOUT)
    }

    /// Waits up to `timeout` until the tracker lists at least `n` seeders for `hash`.
    pub fn wait_seeders_for(&self, hash: &[u8; 20], n: u64, timeout: Duration) {
        wait_count("seeders", hash, n, timeout, || self.seeders(hash));
    }
}

/// Polls `count` until it reaches `n`; fails the test after `timeout`.
fn wait_count(
    what: &str,
    hash: &[u8; 20],
    n: u64,
    timeout: Duration,
    count: impl Fn() -> Option<u64>,
) {
    let deadline = Instant::now() + timeout;
    loop {
        let have = count().unwrap_or(0);
        if have >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "tracker knows {have} {what} of {}, want {n}",
            hex::encode(hash)
        );
        sleep(Duration::from_millis(100));
    }
}

// ---------------------------------------------------------------------------------------------
// Seeders
// ---------------------------------------------------------------------------------------------

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
    let py = python().expect("python with libtorrent");
    let mut cmd = Command::new(py);
    cmd.arg(lt_peer_script())
        .arg("--torrent")
        .arg(torrent)
        .arg("--save")
        .arg(data_dir)
        .args(["--seed", "--seed-mode", "--port", "0"])
        .args(["--stop-with-pid", &std::process::id().to_string()])
        .args(extra)
        .env("PYTHONUNBUFFERED", "1");
    let mut proc = Proc::spawn(name, cmd, log_dir);
    let line = proc
        .wait_line("READY", START_TIMEOUT)
        .unwrap_or_else(|e| panic!("{e}"));
    let port = line
        .strip_prefix("READY port=")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("bad READY line {line:?}"));
    (proc, port)
}

/// Payload bytes a libtorrent seeder uploaded: stops it and reads its `UPLOADED` line.
pub fn lt_uploaded(seeder: &mut Proc) -> u64 {
    let out = seeder.terminate();
    out.lines()
        .find_map(|l| l.strip_prefix("UPLOADED bytes="))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("{}", seeder.failure("printed no UPLOADED line")))
}

/// Flags that keep aria2 on loopback, quiet, and gone with the test process.
fn aria2_base(cmd: &mut Command, port: u16) {
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
/// it with [`Tracker::wait_seeders`] or [`wait_port`].
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

// ---------------------------------------------------------------------------------------------
// Leechers
// ---------------------------------------------------------------------------------------------

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
    let peer_args: Vec<String> = peers.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    let (name, cmd) = match leecher {
        Leecher::Cli => {
            let mut cmd = cli_command();
            cmd.arg("-o")
                .arg(out_dir)
                .arg("-p")
                .arg(free_port().to_string());
            for p in &peer_args {
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
        Leecher::Libtorrent => {
            let mut cmd = Command::new(python().expect("python with libtorrent"));
            cmd.arg(lt_peer_script())
                .arg("--torrent")
                .arg(torrent)
                .arg("--save")
                .arg(out_dir)
                .args(["--leech", "--port", "0"])
                .args(["--stop-with-pid", &std::process::id().to_string()])
                .env("PYTHONUNBUFFERED", "1");
            for p in &peer_args {
                cmd.arg("--peer").arg(p);
            }
            ("lt-leecher", cmd)
        }
    };
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

// ---------------------------------------------------------------------------------------------
// Seeding: our CLI as a seeder, leechers that report their uploads
// ---------------------------------------------------------------------------------------------

/// How long our CLI may take to exit after one SIGINT (graceful stop: `stopped` announce).
pub const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// Starts our CLI as a seeder (`--seed --bind 127.0.0.1 -p PORT -o data_dir --json`,
/// `RUST_LOG=info`), dialing `peers` (`--peer 127.0.0.1:P`), with `extra` arguments before the
/// torrent. On complete data it checks it and seeds; on an empty `data_dir` it downloads, then
/// keeps seeding. It prints nothing for a harness when ready: wait with
/// [`Tracker::wait_seeders`]. Stop it with [`cli_stop`]. Returns it and its listening port.
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
    // The network rule: no test may reach the DHT's public bootstrap routers.
    cmd.arg("--no-dht");
    cmd
}

/// One line of our CLI's `--json` output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CliStats {
    pub info_hash: String,
    pub name: String,
    pub complete: bool,
    pub downloaded: u64,
    pub uploaded: u64,
    pub wasted: u64,
}

/// The raw text of `key`'s value in a flat JSON object (a string without its quotes; escapes
/// are left as they are, which is enough for the names the tests use).
fn json_value<'a>(obj: &'a str, key: &str) -> Option<&'a str> {
    let quoted = format!("\"{key}\"");
    let mut at = obj.find(&quoted)? + quoted.len();
    let rest = obj[at..].trim_start();
    at = obj.len() - rest.strip_prefix(':')?.trim_start().len();
    let rest = &obj[at..];
    if let Some(body) = rest.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in body.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '"' if !escaped => return Some(&body[..i]),
                _ => escaped = false,
            }
        }
        None
    } else {
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim())
    }
}

/// Parses the `--json` lines (`{"info_hash":...}`, one per torrent) out of `stdout`.
pub fn parse_cli_json(stdout: &str) -> Result<Vec<CliStats>, String> {
    stdout
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('{'))
        .map(|line| {
            let field = |k: &str| json_value(line, k).ok_or(format!("no {k:?} in {line}"));
            let number = |k: &str| -> Result<u64, String> {
                field(k)?
                    .parse()
                    .map_err(|e| format!("{k:?} in {line}: {e}"))
            };
            Ok(CliStats {
                info_hash: field("info_hash")?.to_ascii_lowercase(),
                name: field("name")?.to_string(),
                complete: match field("complete")? {
                    "true" => true,
                    "false" => false,
                    other => return Err(format!("\"complete\" is {other} in {line}")),
                },
                downloaded: number("downloaded")?,
                uploaded: number("uploaded")?,
                wasted: number("wasted")?,
            })
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
    let mut cmd = Command::new(python().expect("python with libtorrent"));
    cmd.arg(lt_peer_script())
        .arg("--torrent")
        .arg(torrent)
        .arg("--save")
        .arg(out_dir)
        .args(["--leech", "--port", "0"])
        .args(["--stop-with-pid", &std::process::id().to_string()])
        .arg("--progress-interval")
        .arg(format!("{:.2}", progress.as_secs_f64()))
        .env("PYTHONUNBUFFERED", "1");
    if keep_seeding {
        cmd.arg("--keep-seeding");
    }
    for p in peers {
        cmd.arg("--peer").arg(format!("127.0.0.1:{p}"));
    }
    Proc::spawn(name, cmd, log_dir)
}

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
    fs::write(
        config.join("settings.json"),
        r#"{
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
"#,
    )
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

// ---------------------------------------------------------------------------------------------
// Hostile conditions: upload meters, file lists, memory, small file systems
// ---------------------------------------------------------------------------------------------

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

/// Peak resident set size (VmHWM) of a running process in KiB, from /proc.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A tmpfs mounted on a directory, unmounted on drop (lazily, if something still uses it).
pub struct Tmpfs {
    pub dir: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: "12m") on `dir`; Err if mount failed (not
    /// root, no CAP_SYS_ADMIN).
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        fs::create_dir_all(dir).expect("create mount point");
        let out = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir)
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs {
            dir: dir.to_path_buf(),
        })
    }

    /// Changes its size (`mount -o remount,size=...`).
    pub fn resize(&self, size: &str) {
        let out = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.dir)
            .output()
            .expect("run mount -o remount");
        assert!(
            out.status.success(),
            "remount {} with size={size} failed: {}",
            self.dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(&self.dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}
