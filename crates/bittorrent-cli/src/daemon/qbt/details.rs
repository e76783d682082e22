//! The per-torrent detail answers, with qBittorrent 5.0's keys and units:
//! `torrents/properties`, `torrents/files`, `torrents/trackers` (the DHT,
//! PeX and LSD pseudo rows first, as qBittorrent lists them) and
//! `torrents/pieceStates`.

use bittorrent::metainfo::MetaInfo;
use bittorrent::torrent::PieceState;
use bittorrent::tracker::{TrackerState, TrackerStatus};
use serde::Serialize;

use crate::daemon::qbt::views::{
    display_name, eta, real_ratio, state_of, wanted_size, TorrentInput, ViewContext, MAX_RATIO,
};

/// `torrents/properties` of one torrent.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Properties {
    pub hash: String,
    pub infohash_v1: String,
    pub infohash_v2: String,
    pub name: String,
    /// Seconds active.
    pub time_elapsed: u64,
    /// Seconds seeding.
    pub seeding_time: u64,
    pub eta: i64,
    pub nb_connections: usize,
    pub nb_connections_limit: i64,
    pub total_downloaded: u64,
    pub total_downloaded_session: u64,
    pub total_uploaded: u64,
    pub total_uploaded_session: u64,
    pub dl_speed: u64,
    /// Average while downloading, -1 when unknown.
    pub dl_speed_avg: i64,
    pub up_speed: u64,
    pub up_speed_avg: i64,
    /// Bytes per second, -1 unlimited (unlike `torrents/info`'s 0).
    pub dl_limit: i64,
    pub up_limit: i64,
    pub total_wasted: u64,
    pub seeds: usize,
    pub seeds_total: usize,
    pub peers: usize,
    pub peers_total: usize,
    pub share_ratio: f64,
    pub popularity: f64,
    pub reannounce: u64,
    /// -1 without metadata.
    pub total_size: i64,
    pub pieces_num: i64,
    pub piece_size: i64,
    pub pieces_have: usize,
    pub created_by: String,
    pub is_private: bool,
    pub private: Option<bool>,
    pub addition_date: i64,
    pub last_seen: i64,
    pub completion_date: i64,
    pub creation_date: i64,
    pub save_path: String,
    pub download_path: String,
    pub comment: String,
    pub has_metadata: bool,
}

/// `-1` for 0 (an unset limit), else the value.
fn limit_or_minus_one(limit: Option<u64>) -> i64 {
    match limit {
        Some(v) if v > 0 => i64::try_from(v).unwrap_or(i64::MAX),
        _ => -1,
    }
}

/// Average bytes per second over `secs`, -1 when `secs` is 0.
fn average(bytes: u64, secs: u64) -> i64 {
    bytes
        .checked_div(secs)
        .map_or(-1, |avg| i64::try_from(avg).unwrap_or(i64::MAX))
}

/// The `torrents/properties` object of one torrent. `info` is its
/// `torrents/info` view (shared fields are taken from it).
pub fn properties(
    input: &TorrentInput<'_>,
    info: &crate::daemon::qbt::views::TorrentInfo,
    ctx: &ViewContext,
) -> Properties {
    let (stats, meta) = (input.stats, input.meta);
    let active = info.time_active;
    let downloading = active.saturating_sub(info.seeding_time);
    let ratio = real_ratio(stats);
    let limits = stats.share_limits.resolve(&ctx.share_limits);
    Properties {
        hash: info.hash.clone(),
        infohash_v1: info.infohash_v1.clone(),
        infohash_v2: String::new(),
        name: display_name(input),
        time_elapsed: active,
        seeding_time: info.seeding_time,
        eta: eta(
            stats,
            state_of(input),
            &limits,
            wanted_size(input.record, meta),
        ),
        nb_connections: stats.peers,
        nb_connections_limit: -1,
        total_downloaded: stats.total_downloaded,
        total_downloaded_session: stats.downloaded,
        total_uploaded: stats.total_uploaded,
        total_uploaded_session: stats.uploaded,
        dl_speed: info.dlspeed,
        dl_speed_avg: average(stats.total_downloaded, downloading),
        up_speed: info.upspeed,
        up_speed_avg: average(stats.total_uploaded, active),
        dl_limit: limit_or_minus_one(stats.rate_limits.download),
        up_limit: limit_or_minus_one(stats.rate_limits.upload),
        total_wasted: stats.wasted,
        seeds: stats.seeds,
        seeds_total: info.num_complete,
        peers: stats.leechers,
        peers_total: info.num_incomplete,
        share_ratio: if ratio > MAX_RATIO { -1.0 } else { ratio },
        popularity: info.popularity,
        reannounce: info.reannounce,
        total_size: info.total_size,
        pieces_num: meta.map_or(-1, |m| m.piece_count() as i64),
        piece_size: meta.map_or(-1, |m| i64::from(m.piece_length)),
        pieces_have: stats.pieces_have,
        created_by: meta.and_then(|m| m.created_by.clone()).unwrap_or_default(),
        is_private: meta.is_some_and(|m| m.private),
        private: meta.map(|m| m.private),
        addition_date: info.added_on,
        last_seen: info.seen_complete,
        completion_date: info.completion_on,
        creation_date: meta.and_then(|m| m.creation_date).unwrap_or(-1),
        save_path: info.save_path.clone(),
        download_path: String::new(),
        comment: info.comment.clone(),
        has_metadata: meta.is_some(),
    }
}

/// One row of `torrents/files`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FileView {
    /// Its index in the torrent's file list (pad files are not listed but
    /// keep their index).
    pub index: usize,
    /// Its path, with `/` separators, starting with the torrent's folder
    /// for a multi-file torrent.
    pub name: String,
    pub size: u64,
    /// 0..1.
    pub progress: f64,
    /// 0 skip, 1 normal, 6 high, 7 maximal.
    pub priority: u8,
    /// Sent on the first row only: the torrent is complete.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub is_seed: Option<bool>,
    /// First and last piece (inclusive).
    pub piece_range: [u64; 2],
    /// Fraction of the file available from connected peers, as far as we
    /// can tell (1 with a connected seed or the file done, else 0).
    pub availability: f64,
}

/// The rows of `torrents/files`: every file but pad files (none without
/// metadata). `done` holds each file's verified bytes in
/// [`MetaInfo::files`] order (`TorrentHandle::file_progress`); missing
/// entries count as 0.
pub fn files(input: &TorrentInput<'_>, done: &[u64]) -> Vec<FileView> {
    let Some(meta) = input.meta else {
        return Vec::new();
    };
    let piece_len = u64::from(meta.piece_length.max(1));
    let mut rows = Vec::with_capacity(meta.files.len());
    for (index, file) in meta.files.iter().enumerate() {
        if file.pad {
            continue;
        }
        let bytes = done.get(index).copied().unwrap_or(0).min(file.length);
        let progress = if file.length == 0 || bytes == file.length {
            1.0
        } else {
            bytes as f64 / file.length as f64
        };
        let first = file.offset / piece_len;
        let last = (file.offset + file.length.max(1) - 1) / piece_len;
        rows.push(FileView {
            index,
            name: path_name(meta, index),
            size: file.length,
            progress,
            priority: input.record.file_priority(index),
            is_seed: rows.is_empty().then_some(input.stats.complete),
            piece_range: [first, last],
            availability: if progress >= 1.0 || input.stats.seeds > 0 {
                1.0
            } else {
                0.0
            },
        });
    }
    rows
}

/// A file's path with `/` separators.
fn path_name(meta: &MetaInfo, index: usize) -> String {
    meta.files[index]
        .path
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// One row of `torrents/trackers`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TrackerView {
    pub url: String,
    /// 0 disabled, 1 not contacted, 2 working, 3 updating, 4 not working.
    pub status: u8,
    /// -1 for the DHT/PeX/LSD rows.
    pub tier: i64,
    pub num_peers: i64,
    pub num_seeds: i64,
    pub num_leeches: i64,
    pub num_downloaded: i64,
    pub msg: String,
}

/// qBittorrent's tracker status numbers.
const DISABLED: u8 = 0;
const NOT_CONTACTED: u8 = 1;
const WORKING: u8 = 2;
const UPDATING: u8 = 3;
const NOT_WORKING: u8 = 4;

/// One of the DHT/PeX/LSD rows.
fn pseudo_row(url: &str, enabled: bool, private: bool) -> TrackerView {
    TrackerView {
        url: url.to_owned(),
        status: if enabled && !private {
            WORKING
        } else {
            DISABLED
        },
        tier: -1,
        num_peers: 0,
        num_seeds: 0,
        num_leeches: 0,
        num_downloaded: 0,
        msg: if private {
            "This torrent is private".to_owned()
        } else {
            String::new()
        },
    }
}

/// A row for one tracker's status. Swarm counts we do not scrape are -1.
fn tracker_row(status: &TrackerStatus) -> TrackerView {
    let (code, peers, msg) = match &status.state {
        TrackerState::NotContacted => (NOT_CONTACTED, 0, String::new()),
        TrackerState::Contacting => (UPDATING, 0, String::new()),
        TrackerState::Working { peers } => (WORKING, *peers as i64, String::new()),
        TrackerState::Failing { reason, .. } => (NOT_WORKING, 0, reason.clone()),
    };
    TrackerView {
        url: status.url.clone(),
        status: code,
        tier: status.tier as i64,
        num_peers: peers,
        num_seeds: -1,
        num_leeches: -1,
        num_downloaded: -1,
        msg,
    }
}

/// The rows of `torrents/trackers`: DHT, PeX and LSD first (LSD is always
/// off here), then each tracker. When the torrent does not announce
/// (trackers turned off) the metainfo's trackers are listed not contacted.
pub fn trackers(input: &TorrentInput<'_>, ctx: &ViewContext) -> Vec<TrackerView> {
    let private = input.meta.is_some_and(|m| m.private);
    let mut rows = vec![
        pseudo_row("** [DHT] **", ctx.dht, private),
        pseudo_row("** [PeX] **", ctx.pex, private),
        pseudo_row("** [LSD] **", false, private),
    ];
    if !input.stats.trackers.is_empty() {
        rows.extend(input.stats.trackers.iter().map(tracker_row));
    } else if let Some(meta) = input.meta {
        for (tier, urls) in meta.trackers.iter().enumerate() {
            rows.extend(urls.iter().map(|url| {
                tracker_row(&TrackerStatus {
                    url: url.clone(),
                    tier,
                    state: TrackerState::NotContacted,
                    next_announce: None,
                })
            }));
        }
    }
    rows
}

/// `torrents/pieceStates`: 0 missing, 1 downloading, 2 have.
pub fn piece_states(states: &[PieceState]) -> Vec<u8> {
    states
        .iter()
        .map(|s| match s {
            PieceState::Missing => 0,
            PieceState::Downloading => 1,
            PieceState::Have => 2,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::qbt::fixtures::{context, hash, multi_meta, record, single_meta, stats};
    use crate::daemon::qbt::views::torrent_info;

    #[test]
    fn files_skip_pads_and_report_progress_ranges_and_priorities() {
        let meta = multi_meta("t", &[("a", 20_000), ("b", 0), ("c", 30_000)]);
        let mut rec = record();
        rec.file_priorities = vec![1, 1, 0];
        let s = stats(50_000, 30_000);
        let input = TorrentInput {
            hash: hash(1),
            record: &rec,
            stats: &s,
            meta: Some(&meta),
            queue_position: None,
        };
        let rows = files(&input, &[20_000, 0, 15_000]);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "t/a");
        assert_eq!(rows[0].progress, 1.0);
        assert_eq!(rows[0].piece_range, [0, 1]);
        assert_eq!(rows[0].is_seed, Some(false));
        assert_eq!(rows[1].is_seed, None);
        assert_eq!(rows[1].progress, 1.0, "an empty file is done");
        assert_eq!(rows[2].piece_range, [1, 3]);
        assert_eq!(rows[2].progress, 0.5);
        assert_eq!(rows[2].priority, 0);
        let json = serde_json::to_value(&rows).unwrap();
        assert!(json[1].get("is_seed").is_none());
        assert_eq!(json[2]["piece_range"], serde_json::json!([1, 3]));
    }

    #[test]
    fn no_files_without_metadata() {
        let rec = record();
        let s = stats(0, 0);
        let input = TorrentInput {
            hash: hash(1),
            record: &rec,
            stats: &s,
            meta: None,
            queue_position: None,
        };
        assert!(files(&input, &[]).is_empty());
    }

    #[test]
    fn trackers_list_pseudo_rows_first() {
        let meta = multi_meta("t", &[("a", 10)]);
        let rec = record();
        let s = stats(10, 10);
        let mut ctx = context();
        ctx.pex = false;
        let input = TorrentInput {
            hash: hash(1),
            record: &rec,
            stats: &s,
            meta: Some(&meta),
            queue_position: None,
        };
        let rows = trackers(&input, &ctx);
        let urls: Vec<_> = rows.iter().map(|r| r.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "** [DHT] **",
                "** [PeX] **",
                "** [LSD] **",
                "http://t.invalid/a"
            ]
        );
        assert_eq!((rows[0].status, rows[1].status, rows[2].status), (2, 0, 0));
        assert_eq!((rows[3].status, rows[3].tier), (1, 0));
        let mut s2 = s.clone();
        s2.trackers = vec![TrackerStatus {
            url: "http://x/".to_owned(),
            tier: 2,
            state: TrackerState::Failing {
                reason: "timed out".to_owned(),
                failures: 1,
            },
            next_announce: None,
        }];
        let rows = trackers(
            &TorrentInput {
                stats: &s2,
                ..input
            },
            &ctx,
        );
        assert_eq!((rows[3].status, rows[3].msg.as_str()), (4, "timed out"));
        assert_eq!(rows.len(), 4);
    }

    #[test]
    fn piece_state_numbers() {
        use PieceState::*;
        assert_eq!(piece_states(&[Missing, Downloading, Have]), vec![0, 1, 2]);
    }

    #[test]
    fn properties_limits_are_minus_one_when_unset() {
        let meta = single_meta("x", 40_000);
        let rec = record();
        let mut s = stats(40_000, 0);
        s.rate_limits.upload = Some(5000);
        s.total_uploaded = 80_000;
        s.active_time = std::time::Duration::from_secs(100);
        let input = TorrentInput {
            hash: hash(9),
            record: &rec,
            stats: &s,
            meta: Some(&meta),
            queue_position: None,
        };
        let ctx = context();
        let info = torrent_info(&input, &ctx);
        let props = properties(&input, &info, &ctx);
        assert_eq!((props.dl_limit, props.up_limit), (-1, 5000));
        assert_eq!(props.share_ratio, 2.0);
        assert_eq!((props.pieces_num, props.piece_size), (3, 16384));
        assert_eq!(props.up_speed_avg, 800);
        assert_eq!(props.creation_date, -1);
        assert_eq!(props.addition_date, 1000);
        let json = serde_json::to_value(&props).unwrap();
        assert_eq!(json["total_size"], 40_000);
        assert_eq!(json["private"], false);
    }
}
