//! Announce response bodies: `parse_announce_response`.
//!
//! Checked on every accepted response: intervals are clamped to
//! `MIN_INTERVAL..=MAX_INTERVAL`, no peer has port 0, and no peer appears
//! twice.
#![no_main]

use std::collections::HashSet;

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
    }
});
