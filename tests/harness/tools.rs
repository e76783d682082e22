//! The external programs a test needs: finding them, and skipping (or failing, under
//! `BT_INTEROP_REQUIRED=1`) a test when one is missing.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The source tree's root (the workspace), from the bittorrent-cli package's manifest dir.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Path of the libtorrent peer script.
pub fn lt_peer_script() -> PathBuf {
    workspace_root().join("tests/peers/lt_peer.py")
}

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
    /// qbittorrent-nox (Debian), a libtorrent-based client configured by its profile.
    Qbittorrent,
    /// curl, as an HTTP client of `--serve`.
    Curl,
    /// ffmpeg, to make a video, and ffprobe, to read it from `--serve`.
    Ffmpeg,
    /// miniupnpd (Debian's nftables build) and nft, a UPnP IGD / NAT-PMP / PCP gateway.
    Miniupnpd,
    /// nginx (Debian's), a web seed.
    Nginx,
    /// The python modules of the Web API flows: qbittorrentapi (PyPI qbittorrent-api),
    /// requests and websocket (websocket-client), beside libtorrent.
    QbtApi,
    /// Chromium (Debian's), headless, driven over the DevTools protocol.
    Chromium,
}

impl Tool {
    fn name(self) -> &'static str {
        match self {
            Tool::Opentracker => "opentracker",
            Tool::Mktorrent => "mktorrent",
            Tool::Aria2 => "aria2c",
            Tool::Libtorrent => "python3 module libtorrent",
            Tool::Transmission => "transmission-cli",
            Tool::Qbittorrent => "qbittorrent-nox",
            Tool::Curl => "curl",
            Tool::Ffmpeg => "ffmpeg and ffprobe",
            Tool::Miniupnpd => "miniupnpd and nft",
            Tool::Nginx => "nginx",
            Tool::QbtApi => "python3 modules qbittorrentapi, requests, websocket",
            Tool::Chromium => "chromium",
        }
    }

    fn present(self) -> bool {
        match self {
            Tool::Opentracker => which("opentracker").is_some(),
            Tool::Mktorrent => which("mktorrent").is_some(),
            Tool::Aria2 => which("aria2c").is_some(),
            Tool::Libtorrent => python().is_some(),
            Tool::Transmission => which("transmission-cli").is_some(),
            Tool::Qbittorrent => which("qbittorrent-nox").is_some(),
            Tool::Curl => which("curl").is_some(),
            Tool::Ffmpeg => which("ffmpeg").is_some() && which("ffprobe").is_some(),
            Tool::Miniupnpd => which("miniupnpd").is_some() && which("nft").is_some(),
            Tool::Nginx => crate::harness::http::nginx_binary().is_some(),
            Tool::QbtApi => python().is_some_and(|py| {
                Command::new(py)
                    .args(["-c", "import qbittorrentapi, requests, websocket"])
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            }),
            Tool::Chromium => which("chromium").is_some(),
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
