//! Unit tests of the metainfo parser.

use crate::metainfo::files::numbered;
use crate::metainfo::*;

/// A single-file torrent around `info` (a bencoded info dictionary body).
fn torrent(extra_root: &str, info: &str) -> Vec<u8> {
    format!("d{extra_root}4:infod{info}ee").into_bytes()
}

fn hashes(n: usize) -> String {
    format!("6:pieces{}:{}", n * 20, "x".repeat(n * 20))
}

#[test]
fn single_file_basics() {
    let bytes = torrent(
        "8:announce10:http://a/a7:comment2:hi10:created by2:me13:creation datei7e",
        &format!(
            "6:lengthi40000e4:name3:a.b12:piece lengthi16384e{}",
            hashes(3)
        ),
    );
    let m = MetaInfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.name, "a.b");
    assert!(!m.multi_file);
    assert_eq!(m.total_length, 40000);
    assert_eq!(m.piece_count(), 3);
    assert_eq!(m.piece_len(0), 16384);
    assert_eq!(m.piece_len(1), 16384);
    assert_eq!(m.piece_len(2), 40000 - 2 * 16384);
    assert_eq!(m.piece_len(3), 0);
    assert_eq!(m.trackers, vec![vec!["http://a/a".to_owned()]]);
    assert_eq!(m.comment.as_deref(), Some("hi"));
    assert_eq!(m.created_by.as_deref(), Some("me"));
    assert_eq!(m.creation_date, Some(7));
    assert_eq!(m.files.len(), 1);
    assert_eq!(m.files[0].path, PathBuf::from("a.b"));
    let info_start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
    assert_eq!(&m.info_bytes[..], &bytes[info_start..bytes.len() - 1]);
    assert_eq!(
        m.info_hash.0,
        <[u8; 20]>::from(Sha1::digest(&bytes[info_start..bytes.len() - 1]))
    );
}

#[test]
fn exact_multiple_has_full_last_piece() {
    let bytes = torrent(
        "",
        &format!(
            "6:lengthi32768e4:name1:a12:piece lengthi16384e{}",
            hashes(2)
        ),
    );
    let m = MetaInfo::from_bytes(&bytes).unwrap();
    assert_eq!(m.piece_len(1), 16384);
}

#[test]
fn piece_count_must_match() {
    let info = |n| {
        format!(
            "6:lengthi40000e4:name1:a12:piece lengthi16384e{}",
            hashes(n)
        )
    };
    for n in [2, 4] {
        assert!(matches!(
            MetaInfo::from_bytes(&torrent("", &info(n))),
            Err(MetaInfoError::PieceCountMismatch { expected: 3, .. })
        ));
    }
}

#[test]
fn piece_length_limits() {
    for len in ["0", "-1", "4294967296"] {
        let info = format!("6:lengthi1e4:name1:a12:piece lengthi{len}e{}", hashes(1));
        assert!(matches!(
            MetaInfo::from_bytes(&torrent("", &info)),
            Err(MetaInfoError::Invalid(_))
        ));
    }
    let info = format!(
        "6:lengthi1e4:name1:a12:piece lengthi4294967295e{}",
        hashes(1)
    );
    MetaInfo::from_bytes(&torrent("", &info)).unwrap();
}

#[test]
fn too_many_pieces() {
    let info = format!(
        "6:lengthi{}e4:name1:a12:piece lengthi1e{}",
        MAX_PIECES + 1,
        hashes(1)
    );
    assert!(matches!(
        MetaInfo::from_bytes(&torrent("", &info)),
        Err(MetaInfoError::TooManyPieces { .. })
    ));
}

#[test]
fn sanitize_components() {
    assert_eq!(sanitize_component(b"."), None);
    assert_eq!(sanitize_component(b".."), None);
    assert_eq!(sanitize_component(b"/.."), None);
    assert_eq!(sanitize_component(b"").as_deref(), Some("_"));
    assert_eq!(sanitize_component(b"/").as_deref(), Some("_"));
    assert_eq!(sanitize_component(b"/foobar").as_deref(), Some("foobar"));
    assert_eq!(sanitize_component(b"a\\b/c").as_deref(), Some("abc"));
    assert_eq!(sanitize_component(b"a\0b").as_deref(), Some("a_b"));
    assert_eq!(sanitize_component(b"...").as_deref(), Some("..."));
    assert_eq!(sanitize_component(b"x\xff").as_deref(), Some("x\u{fffd}"));
}

#[test]
fn numbered_names() {
    assert_eq!(numbered("bar.txt", 1), "bar.1.txt");
    assert_eq!(numbered("a.tar.gz", 2), "a.tar.2.gz");
    assert_eq!(numbered("foo", 3), "foo.3");
    assert_eq!(numbered(".hidden", 1), ".hidden.1");
}

fn multi(files: &str) -> Result<MetaInfo, MetaInfoError> {
    let info = format!(
        "5:filesl{files}e4:name1:t12:piece lengthi16384e{}",
        hashes(1)
    );
    MetaInfo::from_bytes(&torrent("", &info))
}

fn paths(m: &MetaInfo) -> Vec<String> {
    m.files
        .iter()
        .map(|f| f.path.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn duplicates_are_renamed() {
    let m = multi(
        "d6:lengthi1e4:pathl1:a5:b.txteed6:lengthi1e4:pathl1:a5:b.txtee\
         d6:lengthi1e4:pathl1:a7:b.1.txteed6:lengthi1e4:pathl1:aee",
    )
    .unwrap();
    assert_eq!(
        paths(&m),
        ["t/a/b.txt", "t/a/b.1.txt", "t/a/b.1.1.txt", "t/a.1"]
    );
    assert_eq!(
        m.files.iter().map(|f| f.offset).collect::<Vec<_>>(),
        [0, 1, 2, 3]
    );
}

#[test]
fn file_used_as_directory_is_rejected() {
    let err = multi("d6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:a1:bee").unwrap_err();
    assert!(matches!(err, MetaInfoError::Invalid(_)));
}

#[test]
fn too_many_duplicates() {
    let file = "d6:lengthi1e4:pathl1:aee";
    multi(&file.repeat(MAX_DUPLICATE_FILES + 1)).unwrap();
    assert!(matches!(
        multi(&file.repeat(MAX_DUPLICATE_FILES + 2)),
        Err(MetaInfoError::TooManyDuplicateFiles { .. })
    ));
}

#[test]
fn utf8_variants_and_dropped_paths() {
    let m = multi(
        "d6:lengthi1e4:pathl1:x1:ye10:path.utf-8l2:πee\
         d6:lengthi1e4:pathl1:.2:..ee",
    )
    .unwrap();
    assert_eq!(paths(&m), ["t/\u{3c0}", "t/_"]);
}

#[test]
fn pad_files() {
    let m = multi("d6:lengthi1e4:pathl1:aeed4:attr1:p6:lengthi5eed4:attr1:p6:lengthi5e4:pathlee")
        .unwrap();
    assert_eq!(paths(&m), ["t/a", "t/.pad/5", "t/.pad/5"]);
    assert!(m.files[1].pad && m.files[2].pad);
    assert_eq!(m.total_length, 11);
    let m = multi("d6:lengthi1e4:pathl1:aeed6:lengthi2e4:pathl19:_____padding_file_0ee").unwrap();
    assert!(!m.files[0].pad && m.files[1].pad);
}

#[test]
fn trackers_and_web_seeds() {
    let root = "8:announce3:x:113:announce-listll4:x:2 3:x:3el3:x:2el0:el3:x:4ee\
                8:url-listl10:http://w/110:http://w/1i5e0:11: http://w/29:/8/items/\
                12:ftp://w/file10:w.org/file7:http://10:HTTP://W/2e";
    let info = format!("6:lengthi1e4:name1:a12:piece lengthi1e{}", hashes(1));
    let m = MetaInfo::from_bytes(&torrent(root, &info)).unwrap();
    assert_eq!(
        m.trackers,
        vec![
            vec!["x:2".to_owned(), "x:3".to_owned()],
            vec!["x:4".to_owned()]
        ]
    );
    // Trimmed, only absolute http(s) URLs, each once (`HTTP://W/2` is
    // `http://w/2`), in order.
    assert_eq!(m.url_list, ["http://w/1", "http://w/2"]);
}

#[test]
fn url_list_as_a_string() {
    let info = format!("6:lengthi1e4:name1:a12:piece lengthi1e{}", hashes(1));
    for (url_list, expected) in [
        ("8:url-list17:https://w/a%20b/c", &["https://w/a%20b/c"][..]),
        ("8:url-list9:/relative", &[]),
        ("8:url-list0:", &[]),
        ("8:url-listi1e", &[]),
    ] {
        let m = MetaInfo::from_bytes(&torrent(url_list, &info)).unwrap();
        assert_eq!(m.url_list, expected, "{url_list}");
    }
}

#[test]
fn web_seed_url_check() {
    assert!(check_web_seed_url(" http://example.com/iso/ ").is_ok());
    assert!(check_web_seed_url("https://[::1]:8080/f").is_ok());
    for bad in ["", "/8/items/", "example.com/file", "http://"] {
        let err = check_web_seed_url(bad).unwrap_err();
        assert!(
            matches!(err, WebSeedUrlError::NotAbsolute { .. }),
            "{bad}: {err}"
        );
    }
    let err = check_web_seed_url("ftp://example.com/f").unwrap_err();
    assert_eq!(
        err.to_string(),
        "web seed \"ftp://example.com/f\": scheme \"ftp\" is not http or https"
    );
}

#[test]
fn private_flag() {
    for (value, private) in [("i1e", true), ("i0e", false), ("i2e", false)] {
        let info = format!(
            "6:lengthi1e4:name1:a12:piece lengthi1e{}7:private{value}",
            hashes(1)
        );
        assert_eq!(
            MetaInfo::from_bytes(&torrent("", &info)).unwrap().private,
            private
        );
    }
}

#[test]
fn load_reports_io_errors() {
    assert!(matches!(
        MetaInfo::load("/nonexistent/x.torrent"),
        Err(MetaInfoError::Io { .. })
    ));
}

#[test]
fn to_torrent_bytes_round_trips_with_the_same_info_hash() {
    for name in [
        "alice.torrent",
        "lots-of-numbers.torrent",
        "sintel-webtorrent.torrent",
    ] {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../torrents/").to_owned() + name;
        let meta = MetaInfo::load(&path).unwrap();
        let again = MetaInfo::from_bytes(&meta.to_torrent_bytes()).unwrap();
        assert_eq!(again.info_hash, meta.info_hash, "{name}");
        assert_eq!(again.trackers, meta.trackers, "{name}");
        assert_eq!(again.files, meta.files, "{name}");
    }
}
