//! The daemon's Web API parameters: arbitrary text as each parameter
//! qBittorrent's endpoints take (`hashes`, `hash`, booleans, file ids and
//! priorities, tags, rate limits, ratio and seeding-time limits). The parsers
//! live in the CLI (`crates/bittorrent-cli/src/daemon/qbt/params.rs`), a
//! binary crate, so the file is compiled in here by path. Nothing may panic;
//! what parses must be what the endpoint can use: hashes distinct and
//! 40 hex digits, tags trimmed, non-empty, distinct and at most 255 bytes,
//! limits positive, a ratio finite and not negative.
#![no_main]

use bittorrent::limits::ShareLimit;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/bittorrent-cli/src/daemon/qbt/params.rs"]
mod params;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(params::Hashes::Some(list)) = params::parse_hashes(&text) {
        assert!(!list.is_empty());
        for (i, hash) in list.iter().enumerate() {
            assert!(!list[..i].contains(hash), "a hash repeated");
            assert_eq!(hash.to_hex().len(), 40);
        }
    }
    if let Ok(hash) = params::parse_hash(&text) {
        assert!(text.trim().eq_ignore_ascii_case(&hash.to_hex()));
    }
    let _ = params::parse_bool(&text);
    let _ = params::parse_file_ids(&text);
    if let Ok(priority) = params::parse_file_priority(&text) {
        assert!(matches!(priority, 0 | 1 | 6 | 7));
    }
    if let Ok(tags) = params::parse_tags(&text) {
        for (i, tag) in tags.iter().enumerate() {
            assert!(!tag.is_empty() && tag.len() <= 255 && tag.trim() == tag);
            assert!(!tags[..i].contains(tag), "a tag repeated");
        }
    }
    if let Ok(Some(limit)) = params::parse_rate_limit("limit", &text) {
        assert!(limit > 0);
    }
    if let Ok(ShareLimit::Limit(ratio)) = params::parse_ratio_limit(&text) {
        assert!(ratio.is_finite() && ratio >= 0.0);
    }
    let _ = params::parse_seeding_time_limit(&text);
    let mut parts = text.splitn(2, '\n');
    let (ratio, time) = (parts.next(), parts.next());
    let _ = params::parse_share_limits(|name| match name {
        "ratioLimit" => ratio,
        "seedingTimeLimit" => time,
        _ => None,
    });
});
