//! The torrent objects of `torrents/info` and `sync/maindata`, with
//! qBittorrent 5.0's field names and units (bytes, bytes per second, seconds
//! since the epoch, -1 for "never" or "unknown"), built from what the daemon
//! keeps about a torrent ([`TorrentRecord`]), the library's
//! [`TorrentStats`] and the [`MetaInfo`] once known.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bittorrent::limits::{ShareLimit, ShareLimits};
use bittorrent::magnet::Magnet;
use bittorrent::metainfo::MetaInfo;
use bittorrent::torrent::TorrentStats;
use bittorrent::tracker::TrackerState;
use bittorrent::types::InfoHash;
use serde::{Deserialize, Serialize};

use crate::daemon::qbt::state::{QbtState, StateInputs};

/// qBittorrent's "infinite" ETA (100 days), in seconds.
pub const MAX_ETA: i64 = 8_640_000;
/// Ratios above this are shown as -1 (qBittorrent's `MAX_RATIO`).
pub const MAX_RATIO: f64 = 9999.0;
/// A share-limit field meaning "the global limit" (qBittorrent's
/// `USE_GLOBAL_RATIO` / `USE_GLOBAL_SEEDING_TIME`).
pub const USE_GLOBAL_LIMIT: i64 = -2;
/// A share-limit field meaning "no limit".
pub const NO_LIMIT: i64 = -1;

/// What the daemon keeps about a torrent beyond the library's stats (and
/// persists). File priorities use qBittorrent's values: 0 skip, 1 normal,
/// 6 high, 7 maximal.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TorrentRecord {
    /// A name given with `torrents/rename`, shown instead of the metainfo's.
    pub name: Option<String>,
    /// Where its files are.
    pub save_path: String,
    /// Its category, "" for none.
    pub category: String,
    /// Its tags.
    pub tags: BTreeSet<String>,
    /// When it was added, seconds since the epoch.
    pub added_on: i64,
    /// When it first completed, seconds since the epoch (kept across
    /// restarts; see [`TorrentRecord::observe`]).
    pub completion_on: Option<i64>,
    /// When data last moved either way, seconds since the epoch.
    pub last_activity: Option<i64>,
    /// Sequential download on.
    pub sequential: bool,
    /// First and last pieces of each file first.
    pub first_last_piece: bool,
    /// The magnet link it was added from, if any.
    pub magnet_uri: Option<String>,
    /// Each file's priority, in [`MetaInfo::files`] order; empty: all 1.
    pub file_priorities: Vec<u8>,
    /// Time active in earlier runs (the library counts this run's).
    pub prior_active_time: Duration,
}

impl TorrentRecord {
    /// Notes what a fresh stats sample tells: the completion time (the
    /// first time it is seen complete) and the last activity. Returns
    /// whether the record changed (and so should be saved).
    pub fn observe(&mut self, stats: &TorrentStats, now: i64) -> bool {
        let mut changed = false;
        if stats.complete && self.completion_on.is_none() {
            self.completion_on = Some(stats.completed_at.map_or(now, unix_secs));
            changed = true;
        }
        if stats.download_rate >= 1.0 || stats.upload_rate >= 1.0 {
            changed |= self.last_activity != Some(now);
            self.last_activity = Some(now);
        }
        changed
    }

    /// A file's priority (1 when not set).
    pub fn file_priority(&self, index: usize) -> u8 {
        self.file_priorities.get(index).copied().unwrap_or(1)
    }
}

/// The session-wide facts every torrent view needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ViewContext {
    /// Now, seconds since the epoch.
    pub now_unix: i64,
    /// Now, on the clock of the trackers' `next_announce`.
    pub now: Instant,
    /// The queue is on: `priority` shows queue positions.
    pub queueing: bool,
    /// The global share limits.
    pub share_limits: ShareLimits,
    /// DHT on (the trackers list's `** [DHT] **` row).
    pub dht: bool,
    /// PEX on.
    pub pex: bool,
}

/// One torrent's inputs.
#[derive(Clone, Copy, Debug)]
pub struct TorrentInput<'a> {
    /// Its info-hash.
    pub hash: InfoHash,
    /// What the daemon keeps.
    pub record: &'a TorrentRecord,
    /// The library's latest stats.
    pub stats: &'a TorrentStats,
    /// Its metainfo, `None` while a magnet link's metadata is fetched.
    pub meta: Option<&'a MetaInfo>,
    /// Its 1-based place among the incomplete torrents of the queue
    /// ([`queue_positions`](crate::daemon::qbt::views::queue_positions)),
    /// `None` for complete ones.
    pub queue_position: Option<usize>,
}

/// A torrent as `torrents/info` lists it (qBittorrent 5.0's keys).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TorrentInfo {
    pub hash: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub name: String,
    pub magnet_uri: String,
    /// Bytes of the selected files.
    pub size: u64,
    /// 0..1 of the selected files.
    pub progress: f64,
    pub dlspeed: u64,
    pub upspeed: u64,
    /// Queue position from 1; 0 when not queued (queueing off, or complete).
    pub priority: usize,
    pub num_seeds: usize,
    pub num_complete: usize,
    pub num_leechs: usize,
    pub num_incomplete: usize,
    pub ratio: f64,
    pub popularity: f64,
    pub eta: i64,
    pub state: QbtState,
    pub seq_dl: bool,
    pub f_l_piece_prio: bool,
    pub category: String,
    /// Tags joined with ", ".
    pub tags: String,
    pub super_seeding: bool,
    pub force_start: bool,
    pub save_path: String,
    pub download_path: String,
    pub content_path: String,
    pub root_path: String,
    pub added_on: i64,
    /// -1 before completion.
    pub completion_on: i64,
    /// The tracker that last answered, "" when none.
    pub tracker: String,
    pub trackers_count: usize,
    /// Bytes per second, 0 unlimited.
    pub dl_limit: u64,
    pub up_limit: u64,
    pub downloaded: u64,
    pub uploaded: u64,
    pub downloaded_session: u64,
    pub uploaded_session: u64,
    pub amount_left: u64,
    pub completed: u64,
    /// The ratio limit in force, -1 none.
    pub max_ratio: f64,
    /// The seeding-time limit in force, minutes, -1 none.
    pub max_seeding_time: i64,
    pub max_inactive_seeding_time: i64,
    /// The torrent's own ratio limit: -2 global, -1 none.
    pub ratio_limit: f64,
    /// The torrent's own seeding-time limit in minutes: -2 global, -1 none.
    pub seeding_time_limit: i64,
    pub inactive_seeding_time_limit: i64,
    pub seen_complete: i64,
    pub auto_tmm: bool,
    /// Seconds.
    pub time_active: u64,
    /// Seconds.
    pub seeding_time: u64,
    pub last_activity: i64,
    pub availability: f64,
    /// Seconds to the next announce.
    pub reannounce: u64,
    pub comment: String,
    /// `null` without metadata.
    pub private: Option<bool>,
    /// Bytes of every file, -1 without metadata.
    pub total_size: i64,
    pub has_metadata: bool,
}

/// Seconds since the epoch of `time` (0 before it).
pub fn unix_secs(time: SystemTime) -> i64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Each incomplete torrent's 1-based place in the session's `queue` order
/// (qBittorrent numbers only torrents that still download), for
/// [`TorrentInput::queue_position`].
pub fn queue_positions(
    queue: &[InfoHash],
    complete: impl Fn(&InfoHash) -> bool,
) -> std::collections::HashMap<InfoHash, usize> {
    queue
        .iter()
        .filter(|hash| !complete(hash))
        .enumerate()
        .map(|(i, hash)| (*hash, i + 1))
        .collect()
}

/// The state string of one torrent.
pub fn state_of(input: &TorrentInput<'_>) -> QbtState {
    let stats = input.stats;
    QbtState::decide(&StateInputs {
        state: stats.state,
        complete: stats.complete,
        was_complete: input.record.completion_on.is_some(),
        force_start: stats.force_start,
        download_rate: stats.download_rate,
        upload_rate: stats.upload_rate,
    })
}

/// The torrent's name: the one given by `rename`, else the metainfo's, else
/// the magnet link's `dn`, else the hex info-hash.
pub fn display_name(input: &TorrentInput<'_>) -> String {
    if let Some(name) = &input.record.name {
        return name.clone();
    }
    if let Some(meta) = input.meta {
        return meta.name.clone();
    }
    input
        .record
        .magnet_uri
        .as_deref()
        .and_then(|uri| Magnet::parse(uri).ok())
        .and_then(|m| m.name)
        .unwrap_or_else(|| input.hash.to_hex())
}

/// Bytes of the selected (priority above 0) files, pad files left out.
pub fn wanted_size(record: &TorrentRecord, meta: Option<&MetaInfo>) -> u64 {
    meta.map_or(0, |meta| {
        meta.files
            .iter()
            .enumerate()
            .filter(|(i, f)| !f.pad && record.file_priority(*i) > 0)
            .map(|(_, f)| f.length)
            .sum()
    })
}

/// Sizes of one torrent: (size, amount_left, completed, progress).
fn amounts(input: &TorrentInput<'_>) -> (u64, u64, u64, f64) {
    let size = wanted_size(input.record, input.meta);
    let left = if input.stats.complete {
        0
    } else {
        input.stats.bytes_left.min(size)
    };
    let completed = size - left;
    let progress = if size == 0 {
        if input.stats.complete && input.meta.is_some() {
            1.0
        } else {
            0.0
        }
    } else {
        completed as f64 / size as f64
    };
    (size, left, completed, progress)
}

/// A ratio as qBittorrent shows it: -1 above [`MAX_RATIO`].
fn shown_ratio(ratio: f64) -> f64 {
    if ratio > MAX_RATIO {
        -1.0
    } else {
        ratio
    }
}

/// The ratio: all-time uploaded over all-time downloaded (the selected size
/// when it downloaded nothing); [`MAX_RATIO`] for an upload with nothing to
/// divide by.
pub fn real_ratio(stats: &TorrentStats) -> f64 {
    let base = if stats.total_downloaded > 0 {
        stats.total_downloaded
    } else {
        stats.bytes_wanted
    };
    match (base, stats.total_uploaded) {
        (0, 0) => 0.0,
        (0, _) => MAX_RATIO,
        (base, up) => (up as f64 / base as f64).min(MAX_RATIO),
    }
}

/// Seconds until it completes (downloading) or reaches a share limit
/// (seeding); [`MAX_ETA`] when it never will at this rate, or is stopped.
pub fn eta(stats: &TorrentStats, state: QbtState, limits: &ShareLimits, size: u64) -> i64 {
    if state.is_stopped() {
        return MAX_ETA;
    }
    if stats.complete {
        let mut eta = MAX_ETA;
        if let Some(ratio) = limits.ratio {
            if stats.upload_rate >= 1.0 {
                let base = if stats.total_downloaded > 0 {
                    stats.total_downloaded
                } else {
                    size
                };
                let target = base as f64 * ratio - stats.total_uploaded as f64;
                eta = eta.min((target / stats.upload_rate).max(0.0) as i64);
            }
        }
        if let Some(time) = limits.seeding_time {
            let left = time.saturating_sub(stats.seeding_time);
            eta = eta.min(i64::try_from(left.as_secs()).unwrap_or(MAX_ETA));
        }
        return eta;
    }
    if stats.download_rate < 1.0 {
        return MAX_ETA;
    }
    let left = stats.bytes_left as f64 / stats.download_rate;
    (left as i64).min(MAX_ETA)
}

/// A ratio limit field: -2 global, -1 none, else the ratio.
fn ratio_limit_field(limit: ShareLimit<f64>) -> f64 {
    match limit {
        ShareLimit::Session => USE_GLOBAL_LIMIT as f64,
        ShareLimit::Unlimited => NO_LIMIT as f64,
        ShareLimit::Limit(ratio) => ratio,
    }
}

/// A seeding-time limit field in minutes: -2 global, -1 none.
fn time_limit_field(limit: ShareLimit<Duration>) -> i64 {
    match limit {
        ShareLimit::Session => USE_GLOBAL_LIMIT,
        ShareLimit::Unlimited => NO_LIMIT,
        ShareLimit::Limit(time) => minutes(time),
    }
}

/// Whole minutes of `time`.
fn minutes(time: Duration) -> i64 {
    i64::try_from(time.as_secs() / 60).unwrap_or(i64::MAX)
}

/// The magnet link of a torrent: the one it was added from, else one built
/// from the metainfo (name and trackers).
pub fn magnet_uri(input: &TorrentInput<'_>) -> String {
    if let Some(uri) = &input.record.magnet_uri {
        return uri.clone();
    }
    let mut magnet = Magnet::new(input.hash);
    if let Some(meta) = input.meta {
        magnet.name = Some(meta.name.clone());
        magnet.trackers = meta.trackers.iter().flatten().cloned().collect();
    }
    magnet.to_uri()
}

/// (content_path, root_path): the file of a single-file torrent, the top
/// folder of a multi-file one; "" without metadata.
fn paths(record: &TorrentRecord, meta: Option<&MetaInfo>) -> (String, String) {
    let Some(meta) = meta else {
        return (String::new(), String::new());
    };
    let save = Path::new(&record.save_path);
    let top = save.join(&meta.name).display().to_string();
    if meta.multi_file {
        (top.clone(), top)
    } else {
        (top, String::new())
    }
}

/// The tracker that last answered ("" when none has).
fn current_tracker(stats: &TorrentStats) -> String {
    stats
        .trackers
        .iter()
        .find(|t| matches!(t.state, TrackerState::Working { .. }))
        .map(|t| t.url.clone())
        .unwrap_or_default()
}

/// Seconds until the next announce of any tracker (0 when none is due).
fn reannounce(stats: &TorrentStats, now: Instant) -> u64 {
    stats
        .trackers
        .iter()
        .filter_map(|t| t.next_announce)
        .min()
        .map_or(0, |at| at.saturating_duration_since(now).as_secs())
}

/// Copies of the data among connected peers, as far as we can tell without
/// per-piece availability: each connected seed is one; -1 when stopped.
fn availability(stats: &TorrentStats, state: QbtState) -> f64 {
    if state.is_stopped() {
        -1.0
    } else {
        stats.seeds as f64
    }
}

/// Ratio per month active (qBittorrent's "popularity").
fn popularity(ratio: f64, active: Duration) -> f64 {
    const MONTH: f64 = 30.44 * 24.0 * 3600.0;
    let months = active.as_secs_f64() / MONTH;
    if months > 0.0 {
        ratio / months
    } else {
        0.0
    }
}

/// The `torrents/info` object of one torrent.
pub fn torrent_info(input: &TorrentInput<'_>, ctx: &ViewContext) -> TorrentInfo {
    let (record, stats, meta) = (input.record, input.stats, input.meta);
    let state = state_of(input);
    let (size, amount_left, completed, progress) = amounts(input);
    let (content_path, root_path) = paths(record, meta);
    let limits = stats.share_limits.resolve(&ctx.share_limits);
    let ratio = real_ratio(stats);
    let time_active = record.prior_active_time + stats.active_time;
    let stopped = state.is_stopped();
    let rate = |r: f64| if stopped { 0 } else { r as u64 };
    let hash = input.hash.to_hex();
    TorrentInfo {
        infohash_v1: hash.clone(),
        hash,
        infohash_v2: String::new(),
        name: display_name(input),
        magnet_uri: magnet_uri(input),
        size,
        progress,
        dlspeed: rate(stats.download_rate),
        upspeed: rate(stats.upload_rate),
        priority: if ctx.queueing {
            input.queue_position.unwrap_or(0)
        } else {
            0
        },
        num_seeds: stats.seeds,
        num_complete: stats.seeds,
        num_leechs: stats.leechers,
        num_incomplete: stats
            .known_peers
            .saturating_sub(stats.seeds)
            .max(stats.leechers),
        ratio: shown_ratio(ratio),
        popularity: shown_ratio(popularity(ratio, time_active)),
        eta: eta(stats, state, &limits, size),
        state,
        seq_dl: record.sequential,
        f_l_piece_prio: record.first_last_piece,
        category: record.category.clone(),
        tags: record.tags.iter().cloned().collect::<Vec<_>>().join(", "),
        super_seeding: false,
        force_start: stats.force_start && !stopped,
        save_path: record.save_path.clone(),
        download_path: String::new(),
        content_path,
        root_path,
        added_on: record.added_on,
        completion_on: record.completion_on.unwrap_or(-1),
        tracker: current_tracker(stats),
        trackers_count: meta.map_or(stats.trackers.len(), |m| {
            m.trackers.iter().flatten().count()
        }),
        dl_limit: stats.rate_limits.download.unwrap_or(0),
        up_limit: stats.rate_limits.upload.unwrap_or(0),
        downloaded: stats.total_downloaded,
        uploaded: stats.total_uploaded,
        downloaded_session: stats.downloaded,
        uploaded_session: stats.uploaded,
        amount_left,
        completed,
        max_ratio: limits.ratio.unwrap_or(-1.0),
        max_seeding_time: limits.seeding_time.map_or(NO_LIMIT, minutes),
        max_inactive_seeding_time: NO_LIMIT,
        ratio_limit: ratio_limit_field(stats.share_limits.ratio),
        seeding_time_limit: time_limit_field(stats.share_limits.seeding_time),
        inactive_seeding_time_limit: USE_GLOBAL_LIMIT,
        seen_complete: if stats.complete || stats.seeds > 0 {
            ctx.now_unix
        } else {
            -1
        },
        auto_tmm: false,
        time_active: time_active.as_secs(),
        seeding_time: stats.seeding_time.as_secs(),
        last_activity: record.last_activity.unwrap_or(record.added_on),
        availability: availability(stats, state),
        reannounce: reannounce(stats, ctx.now),
        comment: meta.and_then(|m| m.comment.clone()).unwrap_or_default(),
        private: meta.map(|m| m.private),
        total_size: meta.map_or(-1, |m| i64::try_from(m.total_length).unwrap_or(i64::MAX)),
        has_metadata: meta.is_some(),
    }
}

#[cfg(test)]
mod tests;
