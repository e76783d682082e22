//! Tests of the torrent views: field names, units and the special values.

use std::time::{Duration, UNIX_EPOCH};

use bittorrent::limits::{ShareLimit, ShareLimits};
use bittorrent::torrent::TorrentState;
use bittorrent::tracker::{TrackerState, TrackerStatus};

use crate::daemon::qbt::fixtures::{context, hash, multi_meta, record, single_meta, stats};
use crate::daemon::qbt::state::QbtState;
use crate::daemon::qbt::views::{
    eta, queue_positions, real_ratio, torrent_info, TorrentInput, MAX_ETA,
};

#[test]
fn a_downloading_multi_file_torrent() {
    let meta = multi_meta("album", &[("a.flac", 30_000), ("b.flac", 10_000)]);
    let mut stats = stats(40_000, 10_000);
    stats.download_rate = 1000.0;
    stats.downloaded = 30_000;
    stats.total_downloaded = 35_000;
    stats.seeds = 2;
    stats.leechers = 1;
    stats.known_peers = 7;
    let mut rec = record();
    rec.tags = ["b".to_owned(), "a".to_owned()].into();
    rec.category = "music".to_owned();
    let input = TorrentInput {
        hash: hash(0xab),
        record: &rec,
        stats: &stats,
        meta: Some(&meta),
        queue_position: Some(3),
    };
    let info = torrent_info(&input, &context());
    assert_eq!(info.hash, "ab".repeat(20));
    assert_eq!(info.name, "album");
    assert_eq!(info.size, 40_000);
    assert_eq!(info.total_size, 40_000);
    assert_eq!(info.amount_left, 10_000);
    assert_eq!(info.completed, 30_000);
    assert!((info.progress - 0.75).abs() < 1e-9);
    assert_eq!(info.state, QbtState::Downloading);
    assert_eq!(info.dlspeed, 1000);
    assert_eq!(info.eta, 10);
    assert_eq!(info.priority, 3);
    assert_eq!(info.tags, "a, b");
    assert_eq!(info.category, "music");
    assert_eq!(info.content_path, "/data/album");
    assert_eq!(info.root_path, "/data/album");
    assert_eq!(info.completion_on, -1);
    assert_eq!(
        (info.num_seeds, info.num_leechs, info.num_incomplete),
        (2, 1, 5)
    );
    assert_eq!(info.downloaded, 35_000);
    assert_eq!(info.downloaded_session, 30_000);
    assert_eq!(info.trackers_count, 1);
    assert_eq!(info.private, Some(false));
    assert!(info
        .magnet_uri
        .starts_with(&format!("magnet:?xt=urn:btih:{}", "ab".repeat(20))));
    assert!(info.magnet_uri.contains("&dn=album"));
}

#[test]
fn json_keys_and_special_values() {
    let meta = single_meta("a.iso", 1000);
    let stats = stats(1000, 1000);
    let rec = record();
    let input = TorrentInput {
        hash: hash(1),
        record: &rec,
        stats: &stats,
        meta: Some(&meta),
        queue_position: None,
    };
    let json = serde_json::to_value(torrent_info(&input, &context())).unwrap();
    assert_eq!(json["state"], "stalledDL");
    assert_eq!(json["eta"], MAX_ETA);
    assert_eq!(json["dl_limit"], 0);
    assert_eq!(json["ratio_limit"], -2.0);
    assert_eq!(json["seeding_time_limit"], -2);
    assert_eq!(json["max_ratio"], -1.0);
    assert_eq!(json["max_seeding_time"], -1);
    assert_eq!(json["content_path"], "/data/a.iso");
    assert_eq!(json["root_path"], "");
    assert_eq!(json["last_activity"], 1000);
    for key in [
        "hash",
        "name",
        "size",
        "progress",
        "dlspeed",
        "upspeed",
        "priority",
        "num_seeds",
        "num_complete",
        "num_leechs",
        "num_incomplete",
        "ratio",
        "eta",
        "state",
        "seq_dl",
        "f_l_piece_prio",
        "category",
        "tags",
        "super_seeding",
        "force_start",
        "save_path",
        "added_on",
        "completion_on",
        "tracker",
        "dl_limit",
        "up_limit",
        "downloaded",
        "uploaded",
        "downloaded_session",
        "uploaded_session",
        "amount_left",
        "completed",
        "ratio_limit",
        "seeding_time_limit",
        "max_ratio",
        "max_seeding_time",
        "seeding_time",
        "time_active",
        "last_activity",
        "availability",
        "magnet_uri",
        "total_size",
        "has_metadata",
    ] {
        assert!(json.get(key).is_some(), "missing {key}");
    }
}

#[test]
fn a_magnet_without_metadata() {
    let mut stats = stats(0, 0);
    stats.complete = false;
    stats.state = TorrentState::FetchingMetadata;
    let mut rec = record();
    rec.magnet_uri = Some(format!(
        "magnet:?xt=urn:btih:{}&dn=My%20Show",
        "02".repeat(20)
    ));
    let input = TorrentInput {
        hash: hash(2),
        record: &rec,
        stats: &stats,
        meta: None,
        queue_position: Some(1),
    };
    let info = torrent_info(&input, &context());
    assert_eq!(info.name, "My Show");
    assert_eq!(info.state, QbtState::MetaDl);
    assert_eq!((info.size, info.total_size, info.progress), (0, -1, 0.0));
    assert_eq!(info.private, None);
    assert!(!info.has_metadata);
    assert_eq!(info.content_path, "");
    assert_eq!(info.magnet_uri, rec.magnet_uri.clone().unwrap());
}

#[test]
fn skipped_files_leave_the_selected_size() {
    let meta = multi_meta("t", &[("a", 20_000), ("b", 5_000)]);
    let mut rec = record();
    rec.file_priorities = vec![1, 0];
    let stats = stats(25_000, 25_000);
    let input = TorrentInput {
        hash: hash(3),
        record: &rec,
        stats: &stats,
        meta: Some(&meta),
        queue_position: None,
    };
    let info = torrent_info(&input, &context());
    assert_eq!(
        (info.size, info.total_size, info.amount_left),
        (20_000, 25_000, 20_000)
    );
}

#[test]
fn a_stopped_torrent_shows_no_rate_and_infinite_eta() {
    let meta = single_meta("x", 5000);
    let mut stats = stats(5000, 0);
    stats.state = TorrentState::Paused;
    stats.upload_rate = 300.0;
    let mut rec = record();
    rec.completion_on = Some(2000);
    let input = TorrentInput {
        hash: hash(4),
        record: &rec,
        stats: &stats,
        meta: Some(&meta),
        queue_position: None,
    };
    let mut ctx = context();
    ctx.queueing = false;
    let info = torrent_info(&input, &ctx);
    assert_eq!(info.state, QbtState::StoppedUp);
    assert_eq!((info.upspeed, info.eta, info.priority), (0, MAX_ETA, 0));
    assert_eq!(info.completion_on, 2000);
    assert_eq!(info.progress, 1.0);
}

#[test]
fn seeding_eta_is_the_nearest_share_limit() {
    let mut s = stats(1000, 0);
    s.total_downloaded = 1000;
    s.total_uploaded = 500;
    s.upload_rate = 100.0;
    s.seeding_time = Duration::from_secs(100);
    let ratio = ShareLimits {
        ratio: Some(2.0),
        seeding_time: None,
    };
    // 1500 more bytes at 100 B/s.
    assert_eq!(eta(&s, QbtState::Uploading, &ratio, 1000), 15);
    let time = ShareLimits {
        ratio: Some(2.0),
        seeding_time: Some(Duration::from_secs(110)),
    };
    assert_eq!(eta(&s, QbtState::Uploading, &time, 1000), 10);
    assert_eq!(
        eta(&s, QbtState::Uploading, &ShareLimits::default(), 1000),
        MAX_ETA
    );
}

#[test]
fn own_share_limits_and_the_limits_in_force() {
    let mut s = stats(1000, 0);
    s.share_limits.ratio = ShareLimit::Limit(1.5);
    s.share_limits.seeding_time = ShareLimit::Unlimited;
    let rec = record();
    let input = TorrentInput {
        hash: hash(5),
        record: &rec,
        stats: &s,
        meta: None,
        queue_position: None,
    };
    let mut ctx = context();
    ctx.share_limits.seeding_time = Some(Duration::from_secs(600));
    let info = torrent_info(&input, &ctx);
    assert_eq!((info.ratio_limit, info.max_ratio), (1.5, 1.5));
    assert_eq!((info.seeding_time_limit, info.max_seeding_time), (-1, -1));
    let mut s2 = s.clone();
    s2.share_limits.seeding_time = ShareLimit::Session;
    let info = torrent_info(
        &TorrentInput {
            stats: &s2,
            ..input
        },
        &ctx,
    );
    assert_eq!((info.seeding_time_limit, info.max_seeding_time), (-2, 10));
}

#[test]
fn ratio_special_cases() {
    let mut s = stats(1000, 0);
    assert_eq!(real_ratio(&s), 0.0);
    s.total_uploaded = 500;
    assert_eq!(real_ratio(&s), 0.5, "seeded from the start: over its size");
    s.bytes_wanted = 0;
    assert_eq!(real_ratio(&s), 9999.0);
}

#[test]
fn current_tracker_and_reannounce() {
    let ctx = context();
    let mut s = stats(1000, 500);
    s.trackers = vec![
        TrackerStatus {
            url: "http://a/".to_owned(),
            tier: 0,
            state: TrackerState::Failing {
                reason: "refused".to_owned(),
                failures: 2,
            },
            next_announce: Some(ctx.now + Duration::from_secs(90)),
        },
        TrackerStatus {
            url: "http://b/".to_owned(),
            tier: 1,
            state: TrackerState::Working { peers: 3 },
            next_announce: Some(ctx.now + Duration::from_secs(30)),
        },
    ];
    let rec = record();
    let input = TorrentInput {
        hash: hash(6),
        record: &rec,
        stats: &s,
        meta: None,
        queue_position: None,
    };
    let info = torrent_info(&input, &ctx);
    assert_eq!(info.tracker, "http://b/");
    assert_eq!(info.reannounce, 30);
}

#[test]
fn observe_keeps_the_first_completion_and_the_last_activity() {
    let mut rec = record();
    let mut s = stats(1000, 10);
    assert!(!rec.observe(&s, 3000));
    s.download_rate = 50.0;
    assert!(rec.observe(&s, 3001));
    assert_eq!(rec.last_activity, Some(3001));
    s = stats(1000, 0);
    s.completed_at = Some(UNIX_EPOCH + Duration::from_secs(3002));
    assert!(rec.observe(&s, 3005));
    assert_eq!(rec.completion_on, Some(3002));
    assert!(!rec.observe(&s, 4000), "completion is kept");
    assert_eq!(rec.completion_on, Some(3002));
}

#[test]
fn queue_positions_count_only_incomplete_torrents() {
    let queue = [hash(1), hash(2), hash(3)];
    let positions = queue_positions(&queue, |h| *h == hash(2));
    assert_eq!(positions.get(&hash(1)), Some(&1));
    assert_eq!(positions.get(&hash(2)), None);
    assert_eq!(positions.get(&hash(3)), Some(&2));
}
