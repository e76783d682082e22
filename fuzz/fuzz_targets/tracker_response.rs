//! Announce response bodies: `parse_announce_response`.
//!
//! Checked on every accepted response: intervals are clamped to
//! `MIN_INTERVAL..=MAX_INTERVAL`, no peer has port 0, no peer appears
//! twice, and no peer (from `peers`, `peers6` or a dictionary) is an
//! IPv4-mapped IPv6 address.
#![no_main]

use std::collections::HashSet;
use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;

use bittorrent::tracker::{parse_announce_response, MAX_INTERVAL, MIN_INTERVAL};

fuzz_target!(|data: &[u8]| {
    let Ok(response) = parse_announce_response(data) else {
        return;
    };
    assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&response.interval));
    if let Some(min) = response.min_interval {
        assert!((MIN_INTERVAL..=MAX_INTERVAL).contains(&min));
    }
    let mut seen = HashSet::new();
    for peer in &response.peers {
        assert_ne!(peer.port(), 0, "peer with port 0");
        assert!(seen.insert(*peer), "duplicate peer {peer}");
        if let IpAddr::V6(v6) = peer.ip() {
            assert!(v6.to_ipv4_mapped().is_none(), "IPv4-mapped peer {peer}");
        }
    }
});
