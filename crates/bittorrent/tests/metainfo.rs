//! `MetaInfo` against real torrents (torrents/) and the hostile/edge-case set
//! (tests/hostile/), through the public API only.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use bittorrent::metainfo::{MetaInfo, MetaInfoError};
use proptest::prelude::*;
use sha1::{Digest, Sha1};

const TORRENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../torrents");
const HOSTILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/hostile");

fn load(dir: &str, file: &str) -> Result<MetaInfo, MetaInfoError> {
    MetaInfo::load(Path::new(dir).join(file))
}

/// The `| a | b | ... |` rows of a markdown table whose first cell names a .torrent.
fn table_rows(markdown_file: &Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(markdown_file)
        .unwrap()
        .lines()
        .filter(|line| line.starts_with('|'))
        .map(|line| {
            line.trim_matches('|')
                .split('|')
                .map(|cell| cell.trim().to_owned())
                .collect::<Vec<_>>()
        })
        .filter(|cells| cells[0].ends_with(".torrent"))
        .collect()
}

fn paths(meta: &MetaInfo) -> Vec<String> {
    meta.files
        .iter()
        .map(|f| f.path.to_str().unwrap().to_owned())
        .collect()
}

fn torrent_files(dir: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "torrent"))
        .collect();
    files.sort();
    files
}

#[test]
fn real_torrents_match_readme() {
    let rows = table_rows(&Path::new(TORRENTS).join("README.md"));
    assert_eq!(rows.len(), 12);
    for row in rows {
        let file = &row[0];
        let meta = load(TORRENTS, file).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(meta.info_hash.to_hex(), row[1], "{file}");
        assert_eq!(meta.piece_length.to_string(), row[2], "{file}");
        assert_eq!(meta.piece_count().to_string(), row[3], "{file}");
        assert_eq!(meta.total_length.to_string(), row[4], "{file}");
        assert_eq!(meta.files.len().to_string(), row[5], "{file}");
        // Offsets are contiguous and add up to the total.
        let mut offset = 0;
        for f in &meta.files {
            assert_eq!(f.offset, offset, "{file}");
            offset += f.length;
        }
        assert_eq!(offset, meta.total_length, "{file}");
        // The raw info bytes hash to the info-hash and are themselves a torrent's info.
        assert_eq!(
            <[u8; 20]>::from(Sha1::digest(&meta.info_bytes)),
            meta.info_hash.0
        );
        let last = meta.piece_count() as u32 - 1;
        let expected_last = meta.total_length - u64::from(last) * u64::from(meta.piece_length);
        assert_eq!(u64::from(meta.piece_len(last)), expected_last, "{file}");
        assert_eq!(meta.piece_len(last + 1), 0);
    }
}

#[test]
fn real_torrent_details() {
    let ubuntu = load(TORRENTS, "ubuntu-24.04.3-desktop-amd64.iso.torrent").unwrap();
    assert_eq!(
        ubuntu.trackers,
        [
            ["https://torrent.ubuntu.com/announce"],
            ["https://ipv6.torrent.ubuntu.com/announce"]
        ]
    );
    assert!(!ubuntu.multi_file && !ubuntu.private);
    assert_eq!(ubuntu.files[0].path, Path::new(&ubuntu.name));

    let pop = load(TORRENTS, "pop-os_24.04_amd64_nvidia_22.iso.torrent").unwrap();
    assert_eq!(pop.trackers.len(), 9);
    assert_eq!(
        pop.trackers[0],
        [
            "udp://fosstorrents.com:6969/announce",
            "http://fosstorrents.com:6969/announce"
        ]
    );
    assert_eq!(pop.url_list.len(), 2);

    let arch = load(TORRENTS, "archlinux-2025.06.01-x86_64.iso.torrent").unwrap();
    assert!(arch.trackers.is_empty());
    assert_eq!(arch.url_list.len(), 406);
    assert!(arch.url_list.iter().all(|u| u.starts_with("https://")));

    let bunny = load(TORRENTS, "big-buck-bunny-webtorrent-fixtures.torrent").unwrap();
    assert!(bunny.private);

    let sanctum = load(TORRENTS, "Inner_Sanctum_movie_archive.torrent").unwrap();
    assert!(sanctum.multi_file);
    assert_eq!(sanctum.files.iter().filter(|f| f.pad).count(), 16);
    assert!(sanctum.files[0].path.starts_with("Inner_Sanctum_movie"));

    let librivox = load(TORRENTS, "alice_in_wonderland_librivox_archive.torrent").unwrap();
    assert_eq!(librivox.files.iter().filter(|f| f.length == 0).count(), 2);
    // The third entry, `/8/items/`, is relative: not usable.
    assert_eq!(
        librivox.url_list,
        [
            "https://archive.org/download/",
            "http://ia600707.us.archive.org/8/items/"
        ]
    );

    let debian = load(TORRENTS, "debian-10.10.0-amd64-DVD-1.iso.torrent").unwrap();
    assert_eq!(
        debian.trackers,
        [["http://bttracker.debian.org:6969/announce"]]
    );

    let folder = load(TORRENTS, "folder.torrent").unwrap();
    assert!(folder.multi_file);
    assert_eq!(paths(&folder), ["folder/file.txt"]);
}

/// Reads the payload of `meta` from `content`, splits it into pieces and
/// checks every piece hash: proves file order and offsets.
fn hash_check(meta: &MetaInfo, content: &Path) {
    let mut stream = Vec::new();
    for f in &meta.files {
        let data = if f.pad {
            vec![0; f.length as usize]
        } else {
            std::fs::read(content.join(&f.path)).unwrap()
        };
        assert_eq!(data.len() as u64, f.length, "{}", f.path.display());
        assert_eq!(stream.len() as u64, f.offset);
        stream.extend_from_slice(&data);
    }
    let pieces: Vec<&[u8]> = stream.chunks(meta.piece_length as usize).collect();
    assert_eq!(pieces.len(), meta.piece_count());
    for (i, piece) in pieces.iter().enumerate() {
        assert_eq!(piece.len(), meta.piece_len(i as u32) as usize);
        let hash: [u8; 20] = Sha1::digest(piece).into();
        assert_eq!(hash, meta.piece_hashes[i], "piece {i} of {}", meta.name);
    }
}

#[test]
fn tiny_torrents_hash_check_against_content() {
    let content = Path::new(TORRENTS).join("content");
    for file in [
        "alice.torrent",
        "numbers.torrent",
        "lots-of-numbers.torrent",
        "folder.torrent",
    ] {
        hash_check(&load(TORRENTS, file).unwrap(), &content);
    }
    let lots = load(TORRENTS, "lots-of-numbers.torrent").unwrap();
    assert_eq!(
        paths(&lots)[..2],
        [
            "lots-of-numbers/big numbers/10.txt",
            "lots-of-numbers/big numbers/11.txt"
        ]
    );
}

#[derive(Debug, PartialEq)]
enum Expected {
    Valid(String),
    Error,
}

/// Where the MANIFEST's sources disagree we follow libtorrent, and the test
/// expects our choice.
fn our_choice(file: &str) -> Option<Expected> {
    match file {
        // transmission rejects the duplicate file1.txt; libtorrent (and we)
        // rename it to file1.1.txt (see duplicate_and_odd_paths below).
        "tr-dup-files.torrent" => Some(Expected::Valid(
            "3a7ff66a756f377dc3f119750308be1a181db92e".to_owned(),
        )),
        _ => None,
    }
}

#[test]
fn hostile_set_matches_manifest() {
    let rows = table_rows(&Path::new(HOSTILE).join("MANIFEST.md"));
    assert_eq!(rows.len(), 82);
    assert_eq!(torrent_files(HOSTILE).len(), 82);
    let (mut valid, mut errors) = (0, 0);
    for row in rows {
        let file = &row[0];
        let manifest = if row[3].starts_with("VALID") {
            Expected::Valid(row[2].clone())
        } else {
            assert!(row[3].starts_with("ERROR"), "{file}: {}", row[3]);
            Expected::Error
        };
        let expected = our_choice(file).unwrap_or(manifest);
        match (&expected, load(HOSTILE, file)) {
            (Expected::Valid(hash), Ok(meta)) => {
                assert_eq!(&meta.info_hash.to_hex(), hash, "{file}");
                valid += 1;
            }
            (Expected::Error, Err(_)) => errors += 1,
            (_, result) => panic!("{file}: expected {expected:?}, got {result:?}"),
        }
    }
    // 48 VALID + 34 ERROR rows in the MANIFEST; tr-dup-files moves to VALID.
    assert_eq!((valid, errors), (49, 33));
}

#[test]
fn every_path_is_relative_and_normal() {
    let mut checked = 0;
    for dir in [TORRENTS, HOSTILE] {
        for file in torrent_files(dir) {
            let Ok(meta) = MetaInfo::load(&file) else {
                continue;
            };
            for f in &meta.files {
                assert!(f.path.is_relative(), "{}", f.path.display());
                assert!(f.path.components().count() >= 1);
                for c in f.path.components() {
                    assert!(
                        matches!(c, Component::Normal(_)),
                        "{}: {:?} in {}",
                        file.display(),
                        c,
                        f.path.display()
                    );
                }
                checked += 1;
            }
        }
    }
    assert!(checked > 200);
}

#[test]
fn sanitized_paths() {
    let cases: &[(&str, &[&str])] = &[
        ("lt-parent_path.torrent", &["temp/bar"]),
        ("lt-hidden_parent_path.torrent", &["temp/foo......bar/bar"]),
        (
            "lt-absolute_filename.torrent",
            &["temp/abcde", "temp/foobar"],
        ),
        ("lt-slash_path.torrent", &["temp/_/_/bar"]),
        ("lt-slash_path2.torrent", &["temp/abc....def/_/bar"]),
        ("lt-slash_path3.torrent", &["temp....abc"]),
        ("lt-backslash_path.torrent", &["temp/_/_/bar"]),
        ("lt-empty_path.torrent", &["temp/_/_"]),
        (
            "lt-empty_path_multi.torrent",
            &["temp/abcde", "temp/_", "temp/_.1"],
        ),
        ("lt-invalid_filename.torrent", &["est2/f", "est2/_"]),
        (
            "lt-invalid_filename2.torrent",
            &["est2/f", "est2/_", "est2/_.1"],
        ),
        (
            "lt-invalid_directory_name.torrent",
            &["test2/_/foo", "test2/_/foo.1"],
        ),
        (
            "lt-duplicate_files.torrent",
            &["temp/foo/bar.txt", "temp/foo/bar.1.txt"],
        ),
        (
            "tr-dup-files.torrent",
            &[
                "ThisIsMyTorrent/file1.txt",
                "ThisIsMyTorrent/file2.mkv",
                "ThisIsMyTorrent/file1.1.txt",
            ],
        ),
        (
            "lt-pad_file_no_path.torrent",
            &["temp/foo/bar.txt", "temp/.pad/2124"],
        ),
        (
            "tr-bad-utf8-path.torrent",
            &[
                "bad-utf8-path/\u{3c0}file.\u{1f600}\u{1f600}\u{1f600}",
                "bad-utf8-path/file\u{fffd}.foo",
            ],
        ),
        (
            "lt-invalid_name3.torrent",
            &["foobar /foo/bar.txt", "foobar /foo/var.txt"],
        ),
    ];
    for (file, expected) in cases {
        let meta = load(HOSTILE, file).unwrap();
        assert_eq!(paths(&meta), *expected, "{file}");
    }

    let slash3 = load(HOSTILE, "lt-slash_path3.torrent").unwrap();
    assert_eq!(slash3.name, "temp....abc");

    let name2 = load(HOSTILE, "lt-invalid_name2.torrent").unwrap();
    assert_eq!(name2.name, "b61560c2918f463768cd122b6d2fdd47b77bdb35");
    assert_eq!(
        paths(&name2),
        [
            "b61560c2918f463768cd122b6d2fdd47b77bdb35/foo/bar.txt",
            "b61560c2918f463768cd122b6d2fdd47b77bdb35/foo/var.txt"
        ]
    );

    let pad = load(HOSTILE, "lt-pad_file_no_path.torrent").unwrap();
    assert_eq!(
        pad.files.iter().map(|f| f.pad).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(pad.files[1].offset, 45);
    assert_eq!(pad.total_length, 45 + 2124);

    let old_pad = load(HOSTILE, "lt-pad_file.torrent").unwrap();
    assert!(!old_pad.files[0].pad && old_pad.files[1].pad);

    let sample = load(HOSTILE, "lt-sample.torrent").unwrap();
    assert_eq!(
        sample.files.iter().map(|f| f.pad).collect::<Vec<_>>(),
        [false, true, false]
    );
}

#[test]
fn hostile_error_kinds() {
    let kind = |file| match load(HOSTILE, file) {
        Err(MetaInfoError::Bencode(_)) => "bencode",
        Err(MetaInfoError::Invalid(_)) => "invalid",
        Err(MetaInfoError::PieceCountMismatch { .. }) => "mismatch",
        Err(MetaInfoError::TooManyPieces { .. }) => "too many pieces",
        Err(MetaInfoError::TooManyDuplicateFiles { .. }) => "duplicates",
        other => panic!("{file}: {other:?}"),
    };
    let expected: HashMap<&str, &str> = [
        ("lt-v2_deep_recursion.torrent", "bencode"),
        ("lt-v2_overlong_integer.torrent", "bencode"),
        ("tr-dup-pieces-key.torrent", "bencode"),
        ("lt-duplicate_files2.torrent", "duplicates"),
        ("lt-many_pieces.torrent", "too many pieces"),
        ("tr-too-few-pieces.torrent", "mismatch"),
        ("tr-too-many-pieces.torrent", "mismatch"),
        ("lt-string.torrent", "invalid"),
        ("lt-zero2.torrent", "invalid"),
        ("wt-corrupt.torrent", "invalid"),
    ]
    .into();
    for (file, want) in expected {
        assert_eq!(kind(file), want, "{file}");
    }
}

#[test]
fn hostile_metadata() {
    let m = |file| load(HOSTILE, file).unwrap();
    assert_eq!(m("lt-creation_date.torrent").creation_date, Some(1234567));
    assert_eq!(m("lt-no_creation_date.torrent").creation_date, None);
    assert_eq!(
        m("lt-whitespace_url.torrent").trackers,
        [["udp://test.com/announce"]]
    );
    assert_eq!(
        m("lt-duplicate_web_seeds.torrent").url_list,
        [
            "http://foobar.com/foo",
            "http://foobar.com/foobar",
            "http://foobar.com/bar"
        ]
    );
    for file in [
        "lt-url_list.torrent",
        "lt-url_list2.torrent",
        "lt-url_list3.torrent",
        "lt-empty_httpseed.torrent",
        "pt-leaves-empty-url-list.torrent",
    ] {
        assert!(m(file).url_list.is_empty(), "{file}");
    }
    assert_eq!(m("lt-url_seed.torrent").url_list, ["http://test.com/file"]);
    assert_eq!(m("ana-flat-url-list.torrent").url_list.len(), 1);
    assert_eq!(m("tr-webseed-getright-list.torrent").url_list.len(), 2);
    assert_eq!(m("tr-webseed-getright-string.torrent").url_list.len(), 1);
    let dup_tracker = m("pt-leaves-duplicate-tracker.torrent");
    assert_eq!(
        dup_tracker.trackers,
        [["http://tracker.example.com/announce"]]
    );
    assert_eq!(
        m("pt-leaves-empty-announce-list.torrent").trackers,
        [["udp://tracker.publicbt.com:80/announce"]]
    );
    let sample = m("lt-sample.torrent");
    assert_eq!(sample.trackers.len(), 2);
    assert_eq!(sample.comment.as_deref(), Some("sample comment"));
    assert_eq!(sample.created_by.as_deref(), Some("libtorrent"));
    assert_eq!(m("lt-large.torrent").piece_count(), 5000);
    assert_eq!(m("lt-large_piece_size.torrent").piece_length, 536854528);
    assert_eq!(m("lt-invalid_name3.torrent").name, "foobar ");
    assert!(m("tr-dup-files.torrent").private);
}

fn seed_torrents() -> Vec<Vec<u8>> {
    ["lt-sample.torrent", "tr-bad-utf8-path.torrent"]
        .iter()
        .map(|f| std::fs::read(Path::new(HOSTILE).join(f)).unwrap())
        .chain(std::iter::once(
            std::fs::read(Path::new(TORRENTS).join("lots-of-numbers.torrent")).unwrap(),
        ))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = MetaInfo::from_bytes(&bytes);
    }

    #[test]
    fn random_bencode_like_bytes_never_panic(
        bytes in proptest::collection::vec(
            prop::sample::select(b"dlie0123456789:-xp".to_vec()), 0..256)
    ) {
        let _ = MetaInfo::from_bytes(&bytes);
    }

    #[test]
    fn mutated_torrents_never_panic(
        seed in 0usize..3,
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = seed_torrents().swap_remove(seed);
        for (at, byte, op) in edits {
            let i = at.index(bytes.len());
            match op {
                0 => bytes[i] = byte,
                1 => bytes.insert(i, byte),
                _ => { bytes.remove(i); }
            }
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        if let Ok(meta) = MetaInfo::from_bytes(&bytes) {
            for f in &meta.files {
                prop_assert!(f.path.components().all(|c| matches!(c, Component::Normal(_))));
            }
            prop_assert_eq!(meta.piece_count() as u64,
                meta.total_length.div_ceil(u64::from(meta.piece_length)));
        }
    }
}
