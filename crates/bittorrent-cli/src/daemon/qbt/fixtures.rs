//! Test fixtures of the `qbt` modules: small metainfos and stats.

use std::time::Instant;

use bittorrent::limits::ShareLimits;
use bittorrent::metainfo::MetaInfo;
use bittorrent::torrent::{TorrentState, TorrentStats};
use bittorrent::types::InfoHash;

use crate::daemon::qbt::views::{TorrentRecord, ViewContext};

/// A multi-file torrent named `name` with `files` (path under the top
/// folder, length), 16 KiB pieces and one tracker.
pub fn multi_meta(name: &str, files: &[(&str, u64)]) -> MetaInfo {
    let list: String = files
        .iter()
        .map(|(path, len)| format!("d6:lengthi{len}e4:pathl{}:{path}ee", path.len()))
        .collect();
    let total: u64 = files.iter().map(|(_, len)| len).sum();
    let pieces = total.div_ceil(16384).max(1) as usize;
    let info = format!(
        "5:filesl{list}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{}",
        name.len(),
        pieces * 20,
        "x".repeat(pieces * 20)
    );
    let bytes = format!("d8:announce18:http://t.invalid/a4:infod{info}ee");
    MetaInfo::from_bytes(bytes.as_bytes()).unwrap()
}

/// A single-file torrent of `len` bytes.
pub fn single_meta(name: &str, len: u64) -> MetaInfo {
    let pieces = len.div_ceil(16384).max(1) as usize;
    let info = format!(
        "6:lengthi{len}e4:name{}:{name}12:piece lengthi16384e6:pieces{}:{}",
        name.len(),
        pieces * 20,
        "x".repeat(pieces * 20)
    );
    MetaInfo::from_bytes(format!("d4:infod{info}ee").as_bytes()).unwrap()
}

/// Stats of a torrent of `total` bytes, `left` of them missing, downloading
/// (or seeding when `left` is 0).
pub fn stats(total: u64, left: u64) -> TorrentStats {
    TorrentStats {
        bytes_total: total,
        bytes_have: total - left,
        bytes_wanted: total,
        bytes_left: left,
        complete: left == 0,
        state: if left == 0 {
            TorrentState::Seeding
        } else {
            TorrentState::Downloading
        },
        ..TorrentStats::default()
    }
}

/// A record saved under /data, added at 1000.
pub fn record() -> TorrentRecord {
    TorrentRecord {
        save_path: "/data".to_owned(),
        added_on: 1000,
        ..TorrentRecord::default()
    }
}

/// A context at time 5000, queueing on, no share limits, DHT and PEX on.
pub fn context() -> ViewContext {
    ViewContext {
        now_unix: 5000,
        now: Instant::now(),
        queueing: true,
        share_limits: ShareLimits::default(),
        dht: true,
        pex: true,
    }
}

/// An info-hash of bytes all `b`.
pub fn hash(b: u8) -> InfoHash {
    InfoHash([b; 20])
}

/// The `torrents/info` view of a half-done single-file torrent whose hash
/// is all `b` bytes (fields are then edited by the tests).
pub fn info(b: u8) -> crate::daemon::qbt::views::TorrentInfo {
    let meta = single_meta("f", 1000);
    let stats = stats(1000, 500);
    let rec = record();
    let input = crate::daemon::qbt::views::TorrentInput {
        hash: hash(b),
        record: &rec,
        stats: &stats,
        meta: Some(&meta),
        queue_position: None,
    };
    crate::daemon::qbt::views::torrent_info(&input, &context())
}
