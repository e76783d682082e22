//! Tests of the `sync/maindata` deltas.

use std::collections::{BTreeMap, BTreeSet};

use bittorrent::session::SessionStats;
use serde_json::json;

use crate::daemon::qbt::fixtures::{hash, info, multi_meta, record, stats};
use crate::daemon::qbt::session::{
    server_state, transfer_info, Category, Listening, ServerFacts, ServerState,
};
use crate::daemon::qbt::state::QbtState;
use crate::daemon::qbt::sync::{tracker_map, MainData, MainDataSync};
use crate::daemon::qbt::views::{TorrentInfo, TorrentInput};

fn server(download_rate: u64) -> ServerState {
    let stats = SessionStats {
        download_rate,
        ..SessionStats::default()
    };
    let listening = Listening {
        listening: true,
        had_incoming: false,
    };
    let facts = ServerFacts {
        alltime_dl: 0,
        alltime_ul: 0,
        total_wasted_session: 0,
        total_peer_connections: 0,
        queueing: false,
        use_alt_speed_limits: false,
        free_space_on_disk: 0,
    };
    server_state(transfer_info(&stats, listening), &facts)
}

fn data(torrents: &[TorrentInfo], categories: &[&str], tags: &[&str], rate: u64) -> MainData {
    let categories: Vec<Category> = categories
        .iter()
        .map(|name| Category {
            name: (*name).to_owned(),
            save_path: String::new(),
        })
        .collect();
    let tags: BTreeSet<String> = tags.iter().map(|t| (*t).to_owned()).collect();
    MainData::new(torrents, &categories, &tags, BTreeMap::new(), &server(rate))
}

#[test]
fn rid_zero_is_a_full_update_without_hash_fields() {
    let mut sync = MainDataSync::new(4);
    let answer = sync.answer(0, data(&[info(1)], &["tv"], &["x"], 5));
    assert_eq!(answer["full_update"], true);
    assert_eq!(answer["rid"], 1);
    let torrent = &answer["torrents"][hash(1).to_hex()];
    assert_eq!(torrent["state"], "stalledDL");
    assert!(torrent.get("hash").is_none());
    assert_eq!(
        answer["categories"]["tv"],
        json!({"name": "tv", "savePath": ""})
    );
    assert_eq!(answer["tags"], json!(["x"]));
    assert_eq!(answer["server_state"]["dl_info_speed"], 5);
}

#[test]
fn a_known_rid_gets_only_changes() {
    let mut sync = MainDataSync::new(4);
    let first = sync.answer(0, data(&[info(1), info(2)], &["tv"], &["x"], 5));
    let rid = first["rid"].as_i64().unwrap();
    let mut moved = info(1);
    moved.state = QbtState::Downloading;
    moved.dlspeed = 700;
    let answer = sync.answer(rid, data(&[moved, info(3)], &["tv", "film"], &["y"], 5));
    assert!(answer.get("full_update").is_none());
    assert_eq!(answer["rid"], rid + 1);
    let changed = answer["torrents"][hash(1).to_hex()].as_object().unwrap();
    let keys: BTreeSet<&str> = changed.keys().map(String::as_str).collect();
    assert_eq!(keys, BTreeSet::from(["dlspeed", "state"]));
    assert_eq!(changed["state"], "downloading");
    // A new torrent comes whole; a removed one is listed.
    assert!(answer["torrents"][hash(3).to_hex()].get("name").is_some());
    assert_eq!(answer["torrents_removed"], json!([hash(2).to_hex()]));
    assert_eq!(
        answer["categories"],
        json!({"film": {"name": "film", "savePath": ""}})
    );
    assert_eq!(answer["tags"], json!(["y"]));
    assert_eq!(answer["tags_removed"], json!(["x"]));
    assert!(
        answer.get("server_state").is_none(),
        "nothing changed there"
    );
}

#[test]
fn nothing_changed_is_just_a_rid() {
    let mut sync = MainDataSync::new(4);
    let first = sync.answer(0, data(&[info(1)], &[], &[], 0));
    let answer = sync.answer(
        first["rid"].as_i64().unwrap(),
        data(&[info(1)], &[], &[], 0),
    );
    assert_eq!(answer, json!({"rid": 2}));
}

#[test]
fn unknown_or_evicted_rids_get_a_full_update() {
    let mut sync = MainDataSync::new(2);
    let first = sync.answer(0, data(&[info(1)], &[], &[], 0));
    let old_rid = first["rid"].as_i64().unwrap();
    sync.answer(0, data(&[info(1)], &[], &[], 0));
    sync.answer(0, data(&[info(1)], &[], &[], 0));
    // rid 1 has been dropped (only 2 kept).
    assert_eq!(
        sync.answer(old_rid, data(&[], &[], &[], 0))["full_update"],
        true
    );
    assert_eq!(
        sync.answer(999, data(&[], &[], &[], 0))["full_update"],
        true
    );
    assert_eq!(sync.answer(-3, data(&[], &[], &[], 0))["full_update"], true);
}

#[test]
fn two_pollers_each_get_their_own_delta() {
    let mut sync = MainDataSync::new(8);
    let a = sync.answer(0, data(&[info(1)], &[], &[], 1))["rid"]
        .as_i64()
        .unwrap();
    let b = sync.answer(0, data(&[info(1), info(2)], &[], &[], 1))["rid"]
        .as_i64()
        .unwrap();
    let now = || data(&[info(2)], &[], &[], 1);
    let for_a = sync.answer(a, now());
    assert_eq!(for_a["torrents_removed"], json!([hash(1).to_hex()]));
    assert!(for_a["torrents"].get(hash(2).to_hex()).is_some());
    let for_b = sync.answer(b, now());
    assert_eq!(for_b["torrents_removed"], json!([hash(1).to_hex()]));
    assert!(for_b.get("torrents").is_none());
}

#[test]
fn server_state_deltas_and_an_empty_full_update() {
    let mut sync = MainDataSync::new(4);
    let first = sync.answer(0, data(&[], &[], &[], 0));
    assert!(
        first.get("torrents").is_none(),
        "qBittorrent omits empty sections"
    );
    assert!(first.get("server_state").is_some());
    let answer = sync.answer(first["rid"].as_i64().unwrap(), data(&[], &[], &[], 9));
    assert_eq!(answer["server_state"], json!({"dl_info_speed": 9}));
}

#[test]
fn tracker_map_groups_torrents_by_url() {
    let meta = multi_meta("t", &[("a", 10)]);
    let rec = record();
    let s = stats(10, 10);
    let inputs: Vec<TorrentInput<'_>> = [1, 2]
        .into_iter()
        .map(|b| TorrentInput {
            hash: hash(b),
            record: &rec,
            stats: &s,
            meta: Some(&meta),
            queue_position: None,
        })
        .collect();
    let map = tracker_map(&inputs);
    assert_eq!(
        map.get("http://t.invalid/a"),
        Some(&vec![hash(1).to_hex(), hash(2).to_hex()])
    );
    let mut sync = MainDataSync::new(4);
    let mut d = data(&[], &[], &[], 0);
    d.trackers = map;
    let rid = sync.answer(0, d)["rid"].as_i64().unwrap();
    let answer = sync.answer(rid, data(&[], &[], &[], 0));
    assert_eq!(answer["trackers_removed"], json!(["http://t.invalid/a"]));
}
