//! The builder end to end: its output read back by our own parser.

use std::fs;
use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

use crate::create::*;
use crate::metainfo::MetaInfo;

fn write(root: &Path, rel: &str, data: &[u8]) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, data).unwrap();
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

#[test]
fn a_single_file_round_trips_with_every_option() {
    let dir = tempfile::tempdir().unwrap();
    let data = payload(100_000);
    write(dir.path(), "data.bin", &data);
    let created = TorrentBuilder::new(dir.path().join("data.bin"))
        .piece_length(Some(32768))
        .tracker_tier(["http://a/announce", "http://b/announce"])
        .tracker_tier(["udp://c:80"])
        .web_seed("http://w1/")
        .web_seed("http://w2/data.bin")
        .private(true)
        .comment(Some("a comment".into()))
        .creation_date(Some(1_700_000_000))
        .build()
        .unwrap();
    let meta = MetaInfo::from_bytes(&created.bytes).unwrap();
    assert_eq!(meta.info_hash, created.info_hash);
    assert_eq!(meta.name, "data.bin");
    assert!(!meta.multi_file);
    assert!(meta.private);
    assert_eq!(meta.total_length, 100_000);
    assert_eq!(meta.piece_length, 32768);
    assert_eq!(created.piece_count, 4);
    assert_eq!(
        meta.trackers,
        [
            vec!["http://a/announce", "http://b/announce"],
            vec!["udp://c:80"]
        ]
    );
    assert_eq!(meta.url_list, ["http://w1/", "http://w2/data.bin"]);
    assert_eq!(meta.comment.as_deref(), Some("a comment"));
    assert_eq!(meta.created_by.as_deref(), Some(CREATED_BY));
    assert_eq!(meta.creation_date, Some(1_700_000_000));
    let expected: Vec<[u8; 20]> = data.chunks(32768).map(|p| Sha1::digest(p).into()).collect();
    assert_eq!(meta.piece_hashes, expected);
    let magnet = created.magnet();
    assert!(magnet.starts_with(&format!(
        "magnet:?xt=urn:btih:{}",
        created.info_hash.to_hex()
    )));
    assert!(magnet.contains("&dn=data.bin"), "{magnet}");
    assert!(magnet.contains("&tr=udp%3A%2F%2Fc%3A80"), "{magnet}");
}

#[test]
fn a_folder_round_trips_in_sorted_order_across_piece_boundaries() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("album");
    let (a, b, c) = (payload(20_000), payload(0), payload(50_001));
    write(&root, "z/last.bin", &c);
    write(&root, "a.bin", &a);
    write(&root, "m/empty", &b);
    let created = TorrentBuilder::new(&root)
        .piece_length(Some(16384))
        .web_seed("http://only/")
        .build()
        .unwrap();
    let meta = MetaInfo::from_bytes(&created.bytes).unwrap();
    assert!(meta.multi_file);
    assert!(!meta.private);
    assert!(meta.trackers.is_empty());
    assert_eq!(meta.url_list, ["http://only/"]);
    assert_eq!(meta.creation_date, None);
    let paths: Vec<PathBuf> = meta.files.iter().map(|f| f.path.clone()).collect();
    assert_eq!(
        paths,
        ["album/a.bin", "album/m/empty", "album/z/last.bin"].map(PathBuf::from)
    );
    let all = [a, b, c].concat();
    let expected: Vec<[u8; 20]> = all.chunks(16384).map(|p| Sha1::digest(p).into()).collect();
    assert_eq!(meta.piece_hashes, expected);
    assert_eq!(created.file_count, 3);
}

#[test]
fn a_folder_with_one_file_keeps_the_files_layout() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "one/f", &payload(10));
    let created = TorrentBuilder::new(dir.path().join("one")).build().unwrap();
    let meta = MetaInfo::from_bytes(&created.bytes).unwrap();
    assert!(meta.multi_file);
    assert_eq!(meta.files[0].path, PathBuf::from("one/f"));
}

#[test]
fn output_is_reproducible_and_progress_reaches_the_total() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f", &payload(300_000));
    let builder = TorrentBuilder::new(dir.path().join("f")).threads(3);
    let mut seen = Vec::new();
    let first = builder.build_with_progress(|p| seen.push(p)).unwrap();
    let second = builder.clone().threads(1).build().unwrap();
    assert_eq!(first.bytes, second.bytes);
    assert_eq!(first.piece_length, 16384);
    assert_eq!(seen.len(), first.piece_count as usize);
    let last = seen.last().unwrap();
    assert_eq!((last.hashed, last.total), (300_000, 300_000));
}

#[test]
fn options_outside_info_keep_the_info_hash_and_private_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f", &payload(5000));
    let path = dir.path().join("f");
    let plain = TorrentBuilder::new(&path).build().unwrap();
    let decorated = TorrentBuilder::new(&path)
        .tracker_tier(["http://t/"])
        .web_seed("http://w/")
        .comment(Some("c".into()))
        .created_by(None)
        .creation_date(Some(1))
        .build()
        .unwrap();
    assert_eq!(plain.info_hash, decorated.info_hash);
    assert_ne!(plain.bytes, decorated.bytes);
    let private = TorrentBuilder::new(&path).private(true).build().unwrap();
    assert_ne!(private.info_hash, plain.info_hash);
    let sourced = TorrentBuilder::new(&path)
        .source(Some("X".into()))
        .build()
        .unwrap();
    assert_ne!(sourced.info_hash, plain.info_hash);
}

#[test]
fn a_bad_piece_length_is_refused_before_hashing() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "f", &payload(10));
    for bad in [1000, 8192, 3 << 20] {
        let err = TorrentBuilder::new(dir.path().join("f"))
            .piece_length(Some(bad))
            .build()
            .unwrap_err();
        assert!(matches!(err, CreateError::PieceLength { .. }), "{err}");
    }
}
