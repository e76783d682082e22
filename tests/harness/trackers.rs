//! Helpers of the tracker interop tests: torrents with BEP 12 tiers, tracker URLs.

use std::net::UdpSocket;

// Used by the tracker tests only.
#[allow(unused_imports)]
pub use crate::harness::mktorrent::make_torrent_tiers;

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
