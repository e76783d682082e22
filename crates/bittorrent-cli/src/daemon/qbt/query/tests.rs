//! Tests of the `torrents/info` selection.

use crate::daemon::qbt::fixtures::{hash, info};
use crate::daemon::qbt::params::ParamError;
use crate::daemon::qbt::query::{Filter, InfoQuery, QueryError};
use crate::daemon::qbt::state::QbtState;
use crate::daemon::qbt::views::TorrentInfo;

/// Three torrents: a downloading one in "tv" tagged "a, b", a stalled seed
/// uploading, a stopped download without category or tags.
fn three() -> Vec<TorrentInfo> {
    let mut a = info(1);
    a.name = "bravo".to_owned();
    a.state = QbtState::Downloading;
    a.category = "tv".to_owned();
    a.tags = "a, b".to_owned();
    a.size = 300;
    let mut b = info(2);
    b.name = "alpha".to_owned();
    b.state = QbtState::StalledUp;
    b.size = 100;
    b.private = Some(true);
    let mut c = info(3);
    c.name = "Charlie".to_owned();
    c.state = QbtState::StoppedDl;
    c.size = 200;
    vec![a, b, c]
}

fn names(values: &[serde_json::Value]) -> Vec<&str> {
    values.iter().map(|v| v["name"].as_str().unwrap()).collect()
}

fn query(params: &[(&str, &str)]) -> Result<InfoQuery, QueryError> {
    InfoQuery::from_params(|k| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v))
}

fn run(params: &[(&str, &str)]) -> Vec<String> {
    let list = query(params).unwrap().select(&three()).unwrap();
    names(&list).into_iter().map(str::to_owned).collect()
}

#[test]
fn state_filters() {
    assert_eq!(run(&[]), ["bravo", "alpha", "Charlie"]);
    assert_eq!(run(&[("filter", "downloading")]), ["bravo", "Charlie"]);
    assert_eq!(run(&[("filter", "seeding")]), ["alpha"]);
    assert_eq!(run(&[("filter", "completed")]), ["alpha"]);
    assert_eq!(run(&[("filter", "stopped")]), ["Charlie"]);
    assert_eq!(run(&[("filter", "paused")]), ["Charlie"]);
    assert_eq!(run(&[("filter", "running")]), ["bravo", "alpha"]);
    assert_eq!(run(&[("filter", "resumed")]), ["bravo", "alpha"]);
    assert_eq!(run(&[("filter", "active")]), ["bravo"]);
    assert_eq!(run(&[("filter", "inactive")]), ["alpha", "Charlie"]);
    assert_eq!(run(&[("filter", "stalled")]), ["alpha"]);
    assert_eq!(
        run(&[("filter", "stalled_downloading")]),
        Vec::<String>::new()
    );
    assert_eq!(run(&[("filter", "errored")]), Vec::<String>::new());
    assert_eq!(run(&[("filter", "no-such-filter")]).len(), 3);
    assert_eq!(Filter::parse("checking"), Filter::Checking);
}

#[test]
fn category_tag_hashes_and_private() {
    assert_eq!(run(&[("category", "tv")]), ["bravo"]);
    assert_eq!(run(&[("category", "")]), ["alpha", "Charlie"]);
    assert_eq!(run(&[("tag", "b")]), ["bravo"]);
    assert_eq!(run(&[("tag", "")]), ["alpha", "Charlie"]);
    let h3 = hash(3).to_hex().to_uppercase();
    let both = format!("{}|{h3}", hash(1).to_hex());
    assert_eq!(run(&[("hashes", &both)]), ["bravo", "Charlie"]);
    assert_eq!(run(&[("hashes", "all")]).len(), 3);
    assert_eq!(run(&[("private", "true")]), ["alpha"]);
    assert_eq!(run(&[("private", "false")]), ["bravo", "Charlie"]);
    assert!(matches!(
        query(&[("hashes", "nothex")]),
        Err(QueryError::Param(ParamError::BadHash(_)))
    ));
}

#[test]
fn sort_reverse_and_bad_sort() {
    assert_eq!(run(&[("sort", "name")]), ["Charlie", "alpha", "bravo"]);
    assert_eq!(run(&[("sort", "size")]), ["alpha", "Charlie", "bravo"]);
    assert_eq!(
        run(&[("sort", "size"), ("reverse", "true")]),
        ["bravo", "Charlie", "alpha"]
    );
    assert_eq!(run(&[("sort", "private")]), ["bravo", "Charlie", "alpha"]);
    assert_eq!(
        query(&[("sort", "nope")]).unwrap().select(&three()),
        Err(QueryError::BadSort)
    );
    // With nothing selected there is nothing to check the field against.
    let empty = query(&[("sort", "nope")]).unwrap().select(&[]).unwrap();
    assert!(empty.is_empty());
}

#[test]
fn offset_and_limit_as_qbittorrent() {
    let sorted = [("sort", "size")];
    let with = |extra: &[(&'static str, &'static str)]| {
        let mut p = sorted.to_vec();
        p.extend_from_slice(extra);
        run(&p)
    };
    assert_eq!(with(&[("limit", "2")]), ["alpha", "Charlie"]);
    assert_eq!(with(&[("offset", "1")]), ["Charlie", "bravo"]);
    assert_eq!(with(&[("offset", "-1")]), ["bravo"]);
    assert_eq!(with(&[("offset", "1"), ("limit", "1")]), ["Charlie"]);
    // Out of range offsets start at 0; limit 0 or less is no limit.
    assert_eq!(with(&[("offset", "3")]).len(), 3);
    assert_eq!(with(&[("offset", "-4")]).len(), 3);
    assert_eq!(with(&[("limit", "-1")]).len(), 3);
    assert!(query(&[("limit", "ten")]).is_err());
}

#[test]
fn the_answer_is_json_with_qbittorrent_keys() {
    let list = query(&[]).unwrap().select(&three()).unwrap();
    assert_eq!(list[0]["hash"], hash(1).to_hex());
    assert_eq!(list[0]["state"], "downloading");
    assert_eq!(list[2]["state"], "stoppedDL");
}
