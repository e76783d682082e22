//! qBittorrent-nox's embedded tracker as an IPv6 tracker, reached on `[::1]`.
//!
//! Debian's opentracker is built for IPv4 only (with `-i ::1` it exits with "V4 Tracker is V4
//! only!"), so the IPv6 tests use the HTTP tracker built into qBittorrent (its own code, on Qt's
//! HTTP server, not libtorrent's): it keeps per info-hash the source address of each announce
//! with the `port` it names, and answers with compact peers, IPv6 ones in `peers6` (BEP 7).
//! qbittorrent-nox is a Debian package scripts/install-test-deps already installs.
//!
//! The profile turns on the tracker (`Advanced\trackerEnabled`, `Advanced\trackerPort`) and
//! keeps the rest quiet: no torrents, DHT, LSD, PeX, UPnP/NAT-PMP, RSS and peer-country lookups
//! off, its BitTorrent port and web UI on `[::1]` only. qBittorrent 4.5 binds the tracker to
//! every address (`QHostAddress::Any`, dual-stack) with no setting for it: as every interop
//! test, run it in a loopback-only network namespace.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::harness::proc::Proc;
use crate::harness::tools::which;
use crate::harness::wait::{poll, START_TIMEOUT};

/// The port the probes of [`QbtTracker::peers`] announce (nothing listens there).
const PROBE_PORT: u16 = 1;

/// qbittorrent-nox with its embedded tracker on `[::1]:port`; killed on drop.
pub struct QbtTracker {
    pub port: u16,
    proc: Proc,
    profile: PathBuf,
}

/// The part of an announce reply the probes read.
#[derive(Deserialize)]
struct Reply {
    #[serde(default)]
    interval: Option<u64>,
    #[serde(default, rename = "failure reason")]
    failure: Option<String>,
    #[serde(default)]
    peers6: Option<ByteBuf>,
}

/// A TCP port on `[::1]` that was free a moment ago.
fn free_port6() -> u16 {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind [::1]:0")
}

impl QbtTracker {
    /// Starts qbittorrent-nox with its profile in `dir/qbt-tracker`; returns once its tracker
    /// answers an announce on `[::1]`.
    pub fn start(dir: &Path) -> QbtTracker {
        let profile = dir.join("qbt-tracker");
        let (port, peer_port, web) = (free_port6(), free_port6(), free_port6());
        write_profile(&profile, port, peer_port, web);
        // It has no --stop-with-pid: setpriv (util-linux) has the kernel kill it if the thread
        // that started it ends without dropping it (a test process killed outright).
        let mut cmd = match which("setpriv") {
            Some(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "KILL", "qbittorrent-nox"]);
                cmd
            }
            None => Command::new("qbittorrent-nox"),
        };
        cmd.arg(format!("--profile={}", profile.display()))
            .arg(format!("--webui-port={web}"));
        let proc = Proc::spawn("qbt-tracker", cmd, dir);
        let mut tracker = QbtTracker {
            port,
            proc,
            profile,
        };
        tracker.wait_ready();
        tracker
    }

    /// Polls with a probe (a `stopped` announce, which registers nothing) until one is answered.
    fn wait_ready(&mut self) {
        let hash = [0u8; 20];
        let ready = poll(START_TIMEOUT, Duration::from_millis(50), || {
            if let Ok(reply) = self.announce(&hash, "event=stopped") {
                return Some(Ok(reply));
            }
            let status = self.proc.try_wait()?;
            Some(Err(format!("exited ({status})")))
        });
        match ready {
            Some(Ok(reply)) if reply.interval.is_some() => {}
            Some(Ok(reply)) => panic!("{}", self.failure(&format!("failure {:?}", reply.failure))),
            Some(Err(e)) => panic!("{}", self.failure(&e)),
            None => panic!("{}", self.failure("no answer to announces on [::1]")),
        }
    }

    /// `http://[::1]:port/announce`.
    pub fn announce_url(&self) -> String {
        format!("http://[::1]:{}/announce", self.port)
    }

    /// The IPv6 peers the tracker lists for `hash` now, from its own answer: a probe announces
    /// `[::1]:1` (compact), reads `peers6` without itself, then leaves with `event=stopped`
    /// (the tracker keys peers by address and port, so that removes exactly the probe).
    pub fn peers(&self, hash: &[u8; 20]) -> Result<Vec<SocketAddr>, String> {
        let listed = self.announce(hash, "event=started&compact=1&numwant=200");
        let left = self.announce(hash, "event=stopped");
        let reply = listed?;
        left?;
        if let Some(failure) = reply.failure {
            return Err(format!("tracker failure: {failure}"));
        }
        let peers6 = reply.peers6.unwrap_or_default();
        if peers6.len() % 18 != 0 {
            return Err(format!("peers6 of {} bytes", peers6.len()));
        }
        let probe = SocketAddr::from((Ipv6Addr::LOCALHOST, PROBE_PORT));
        Ok(peers6
            .chunks_exact(18)
            .map(|c| {
                let ip: [u8; 16] = c[..16].try_into().expect("16 bytes");
                SocketAddr::from((Ipv6Addr::from(ip), u16::from_be_bytes([c[16], c[17]])))
            })
            .filter(|p| *p != probe)
            .collect())
    }

    /// Waits up to `timeout` until the tracker lists `n` IPv6 peers for `hash`; returns them.
    pub fn wait_peers(&self, hash: &[u8; 20], n: usize, timeout: Duration) -> Vec<SocketAddr> {
        let mut last = Ok(Vec::new());
        let reached = poll(timeout, Duration::from_millis(200), || {
            last = self.peers(hash);
            last.as_ref().ok().filter(|p| p.len() >= n).cloned()
        });
        reached.unwrap_or_else(|| {
            panic!(
                "{}",
                self.failure(&format!(
                    "lists {last:?} for {}, want {n} peers",
                    hex::encode(hash)
                ))
            )
        })
    }

    /// One GET /announce from `[::1]` as the probe peer, with `extra` parameters.
    fn announce(&self, hash: &[u8; 20], extra: &str) -> Result<Reply, String> {
        let info_hash: String = hash.iter().map(|b| format!("%{b:02X}")).collect();
        let mut s = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv6Addr::LOCALHOST, self.port)),
            Duration::from_secs(1),
        )
        .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        write!(
            s,
            "GET /announce?info_hash={info_hash}&peer_id=-PROBE0-000000000000&port={PROBE_PORT}\
             &uploaded=0&downloaded=0&left=1&{extra} HTTP/1.1\r\nHost: [::1]:{}\r\n\
             Connection: close\r\n\r\n",
            self.port
        )
        .map_err(|e| e.to_string())?;
        let body = read_body(&mut s)?;
        serde_bencode::from_bytes(&body).map_err(|e| e.to_string())
    }

    /// qBittorrent's own log (its profile's `data/logs/qbittorrent.log`).
    pub fn log(&self) -> String {
        let path = self.profile.join("qBittorrent/data/logs/qbittorrent.log");
        fs::read_to_string(path).unwrap_or_default()
    }

    /// What went wrong, with the tails of its output and of its log.
    fn failure(&self, what: &str) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        format!(
            "{}\nqbittorrent.log:\n{}",
            self.proc.failure(what),
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

/// The body of one HTTP response, by its `content-length` (qBittorrent keeps the connection
/// open whatever the request asks).
fn read_body(s: &mut TcpStream) -> Result<Vec<u8>, String> {
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    let end = loop {
        if let Some(end) = resp.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = s.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err("closed before the end of the header".into());
        }
        resp.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&resp[..end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .and_then(|n| n.trim().parse().ok())
        .ok_or("no content-length")?;
    let mut body = resp.split_off(end);
    if body.len() < length {
        let mut rest = vec![0; length - body.len()];
        s.read_exact(&mut rest).map_err(|e| e.to_string())?;
        body.extend_from_slice(&rest);
    }
    body.truncate(length);
    Ok(body)
}

/// qBittorrent.conf: the tracker on `port`, the BitTorrent port and web UI on `[::1]`,
/// everything that could reach out off, the legal notice accepted (it would ask on stdin).
fn write_profile(profile: &Path, port: u16, peer_port: u16, web: u16) {
    let dir = profile.join("qBittorrent").join("config");
    fs::create_dir_all(&dir).expect("create qBittorrent profile");
    let config = format!(
        "[LegalNotice]\nAccepted=true\n\n\
         [BitTorrent]\nSession\\DHTEnabled=false\nSession\\LSDEnabled=false\n\
         Session\\PeXEnabled=false\nSession\\Port={peer_port}\nSession\\Interface=lo\n\
         Session\\InterfaceName=lo\nSession\\InterfaceAddress=::1\n\
         Session\\AnonymousModeEnabled=true\n\n\
         [Network]\nPortForwardingEnabled=false\n\n\
         [RSS]\nSession\\EnableProcessing=false\nAutoDownloader\\EnableProcessing=false\n\n\
         [Preferences]\nConnection\\UPnP=false\nConnection\\ResolvePeerCountries=false\n\
         Advanced\\trackerEnabled=true\nAdvanced\\trackerPort={port}\n\
         WebUI\\Address=::1\nWebUI\\Port={web}\nWebUI\\LocalHostAuth=false\n\
         General\\Locale=en\n"
    );
    fs::write(dir.join("qBittorrent.conf"), config).expect("write qBittorrent.conf");
}
