//! opentracker on 127.0.0.1, and reading its peer counts from scrapes.

use std::collections::HashMap;
use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;
use serde_bytes::ByteBuf;

use crate::harness::net::accepts;
use crate::harness::proc::Proc;
use crate::harness::trackers;
use crate::harness::wait::{poll, POLL, START_TIMEOUT};

/// An opentracker on 127.0.0.1 (HTTP and UDP on the same port), whitelisting the given hashes.
pub struct Tracker {
    pub port: u16,
    proc: Proc,
}

/// A scrape reply (BEP 48): per info-hash, `complete`, `incomplete` and `downloaded`.
#[derive(Deserialize)]
struct Scrape {
    files: HashMap<ByteBuf, HashMap<String, u64>>,
}

impl Tracker {
    /// Starts it on `port` (from [`free_port`](crate::harness::free_port); the torrents carry
    /// the URL, so choose it first) with its files in `dir/tracker`. opentracker chroots there
    /// and drops to `nobody` before it reads the whitelist, so that directory and file must be
    /// world-readable.
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
        let listening = poll(START_TIMEOUT, POLL, || {
            if accepts(port) {
                Some(true)
            } else {
                proc.try_wait().map(|_| false)
            }
        });
        if listening != Some(true) {
            panic!("{}", proc.failure("did not start listening"));
        }
        Tracker { port, proc }
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
        let body = resp.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
        let scrape: Scrape = serde_bencode::from_bytes(&resp[body..]).ok()?;
        scrape
            .files
            .get(serde_bytes::Bytes::new(hash))?
            .get(field)
            .copied()
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

/// Polls `count` (every 100 ms) until it reaches `n`; fails the test after `timeout`.
fn wait_count(
    what: &str,
    hash: &[u8; 20],
    n: u64,
    timeout: Duration,
    count: impl Fn() -> Option<u64>,
) {
    let mut have = 0;
    let reached = poll(timeout, Duration::from_millis(100), || {
        have = count().unwrap_or(0);
        (have >= n).then_some(())
    });
    assert!(
        reached.is_some(),
        "tracker knows {have} {what} of {}, want {n}",
        hex::encode(hash)
    );
}
