//! Helpers of the tracker interop tests: torrents with BEP 12 tiers, dead tracker URLs.

use std::net::UdpSocket;
use std::path::Path;
use std::process::Command;

/// Makes `out` from `content` with mktorrent, announcing to `tiers` (BEP 12 announce-list:
/// one `-a url1,url2` per tier; the first URL also becomes `announce`), with pieces of
/// 2^piece_log2 bytes.
pub fn make_torrent_tiers(content: &Path, tiers: &[&[&str]], piece_log2: u32, out: &Path) {
    let mut cmd = Command::new("mktorrent");
    cmd.arg("-l")
        .arg(piece_log2.to_string())
        .arg("-o")
        .arg(out)
        .args(["-t", "2"]);
    for tier in tiers {
        assert!(!tier.is_empty(), "empty tier");
        cmd.arg("-a").arg(tier.join(","));
    }
    cmd.arg(content);
    let res = cmd.output().expect("run mktorrent");
    assert!(
        res.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}

/// `udp://127.0.0.1:port/announce`: opentracker's UDP endpoint on the port of its HTTP one.
pub fn udp_url(port: u16) -> String {
    format!("udp://127.0.0.1:{port}/announce")
}

/// `http://127.0.0.1:port/announce`.
pub fn http_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/announce")
}

/// A UDP port on 127.0.0.1 where nothing listened a moment ago.
pub fn dead_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("bind udp 127.0.0.1:0")
}
