//! End-to-end tests of `bittorrent-cli create`: our .torrent files against mktorrent's
//! (same info-hash for the same content and piece size), seeded by libtorrent and downloaded
//! by aria2, read back by our own parser, and the command's refusals of bad input.
//!
//! Payloads are generated at test time in temporary directories (a few MiB). Everything runs
//! on 127.0.0.1 (opentracker, libtorrent, aria2); `scripts/test` runs these tests in a
//! loopback-only network namespace. Alone: `cargo test -p bittorrent-cli --test
//! interop_create -- --nocapture`; see `harness` for the environment variables.

#[macro_use]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use bittorrent::metainfo::MetaInfo;
use harness::fixture::{Fixture, KIB, MIB, PAYLOAD_SEED, PIECE, SINGLE, TREE};
use harness::meta::Meta;
use harness::peers::lt_checking_seeder;
use harness::trackers::http_url;
use harness::{Leecher, Tool, Tracker, CLI};

/// Runs `bittorrent-cli create <content> -o <out> --no-date <extra...>`.
fn create(content: &Path, out: &Path, extra: &[&str]) -> Output {
    Command::new(CLI)
        .arg("create")
        .arg(content)
        .arg("-o")
        .arg(out)
        .arg("--no-date")
        .args(extra)
        .output()
        .expect("run bittorrent-cli create")
}

/// [`create`], which must succeed; returns its stdout.
fn create_ok(content: &Path, out: &Path, extra: &[&str]) -> String {
    let res = create(content, out, extra);
    assert!(
        res.status.success(),
        "create failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    String::from_utf8_lossy(&res.stdout).into_owned()
}

/// A tree whose order differs between sorting whole paths as bytes (mktorrent's strcmp) and
/// sorting path elements, with a hidden folder, an upper-case name and empty files.
const TRICKY: &[(&str, u64)] = &[
    ("a/b", 70_000),
    ("a.txt", 1000),
    ("a-z", 33),
    ("B", 5),
    (".hidden/cfg", 123),
    ("deep/er/still/leaf.bin", 3 * MIB / 2 + 1),
    ("deep/er/zero", 0),
    ("z", 0),
];

fn fixture_with_mktorrent(name: &str, files: &[(&str, u64)], log2: u32, flags: &[&str]) -> Fixture {
    Fixture::build(
        name,
        files,
        PAYLOAD_SEED,
        "mk.torrent",
        |content, torrent| {
            let res = Command::new("mktorrent")
                .arg("-l")
                .arg(log2.to_string())
                .args(["-d", "-t", "2", "-o"])
                .arg(torrent)
                .args(flags)
                .arg(content)
                .output()
                .expect("run mktorrent");
            assert!(res.status.success(), "mktorrent: {res:?}");
        },
    )
}

/// Our info-hash for the fixture's content with `args` equals mktorrent's (the fixture's).
fn assert_same_info_hash(fx: &Fixture, args: &[&str]) {
    let ours = fx.path().join("ours.torrent");
    let stdout = create_ok(&fx.content, &ours, args);
    let hash = harness::info_hash(&ours);
    assert_eq!(
        hex::encode(hash),
        hex::encode(fx.hash),
        "info-hash of {} with {args:?}",
        fx.content.display()
    );
    // The printed info-hash and magnet link are the torrent's.
    assert!(
        stdout.contains(&format!("info-hash: {}", hex::encode(hash))),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("magnet:?xt=urn:btih:{}", hex::encode(hash))),
        "{stdout}"
    );
    // And the whole info dictionary is mktorrent's, key for key.
    let (a, b) = (Meta::load(&ours), Meta::load(&fx.torrent));
    assert_eq!(
        (a.files, a.multi_file, a.name),
        (b.files, b.multi_file, b.name)
    );
}

#[test]
fn single_file_info_hash_equals_mktorrents() {
    require!(Tool::Mktorrent);
    let fx = fixture_with_mktorrent("single.bin", SINGLE, 15, &[]);
    assert_same_info_hash(&fx, &["--piece-size", "32K"]);
    // Trackers, web seeds and a comment live outside the info dictionary.
    assert_same_info_hash(
        &fx,
        &[
            "--piece-size",
            "32K",
            "--force",
            "--tracker",
            "http://127.0.0.1:1/announce",
            "--web-seed",
            "http://127.0.0.1:2/",
            "--comment",
            "hello",
        ],
    );
    let private = fixture_with_mktorrent("single.bin", SINGLE, 18, &["-p"]);
    assert_same_info_hash(&private, &["--piece-size", "256K", "--private"]);
    let sourced = fixture_with_mktorrent("single.bin", SINGLE, 20, &["-s", "SRC"]);
    assert_same_info_hash(&sourced, &["--piece-size", "1M", "--source", "SRC"]);
}

#[test]
fn nested_folder_info_hash_equals_mktorrents() {
    require!(Tool::Mktorrent);
    let fx = fixture_with_mktorrent("tree", TREE, 18, &[]);
    assert_same_info_hash(&fx, &["--piece-size", "256K"]);
    let tricky = fixture_with_mktorrent("tricky", TRICKY, 16, &["-p"]);
    assert_same_info_hash(&tricky, &["--piece-size", "64K", "--private"]);
    // A folder holding one file keeps the multi-file layout, as in mktorrent.
    let one = fixture_with_mktorrent("one", &[("only.bin", 100_000)], 15, &[]);
    assert_same_info_hash(&one, &["--piece-size", "32K"]);
    assert!(Meta::load(&one.torrent).multi_file);
}

/// libtorrent checks the content against our .torrent (every piece must pass before it
/// seeds), then aria2 downloads it through opentracker, byte for byte.
fn libtorrent_seeds_ours_to_aria2(name: &str, files: &[(&str, u64)]) {
    let port = harness::free_port();
    let announce = http_url(port);
    let fx = Fixture::build(
        name,
        files,
        PAYLOAD_SEED,
        "ours.torrent",
        |content, torrent| {
            create_ok(content, torrent, &["--tracker", &announce]);
        },
    );
    assert_eq!(MetaInfo::load(&fx.torrent).unwrap().info_hash.0, fx.hash);
    let _tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let (_seeder, _) = lt_checking_seeder("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    let _leecher = fx.leech_and_check(Leecher::Aria2, &[]);
}

#[test]
fn libtorrent_seeds_our_single_file_torrent_and_aria2_downloads_it() {
    require!(Tool::Opentracker, Tool::Libtorrent, Tool::Aria2);
    libtorrent_seeds_ours_to_aria2("single.bin", SINGLE);
}

#[test]
fn libtorrent_seeds_our_folder_torrent_and_aria2_downloads_it() {
    require!(Tool::Opentracker, Tool::Libtorrent, Tool::Aria2);
    libtorrent_seeds_ours_to_aria2("tricky", TRICKY);
}

#[test]
fn private_flag_trackers_and_web_seeds_round_trip_through_our_parser() {
    let dir = harness::scratch();
    let content = dir.path().join("data");
    harness::write_tree(&content, &[("x/y.bin", 5 * PIECE / 2), ("z.bin", 3 * KIB)]);
    let out = dir.path().join("data.torrent");
    let stdout = create_ok(
        &content,
        &out,
        &[
            "--private",
            "--tracker",
            "http://127.0.0.1:1/announce,http://127.0.0.1:2/announce",
            "--tracker",
            "udp://127.0.0.1:3/announce",
            "--web-seed",
            "http://127.0.0.1:4/pub/",
            "--web-seed",
            "http://127.0.0.1:5/mirror/",
            "--comment",
            "made by the interop test",
        ],
    );
    let meta = MetaInfo::load(&out).unwrap();
    assert!(meta.private);
    assert!(meta.multi_file);
    assert_eq!(
        meta.trackers,
        [
            vec!["http://127.0.0.1:1/announce", "http://127.0.0.1:2/announce"],
            vec!["udp://127.0.0.1:3/announce"],
        ]
    );
    assert_eq!(
        meta.url_list,
        ["http://127.0.0.1:4/pub/", "http://127.0.0.1:5/mirror/"]
    );
    assert_eq!(meta.comment.as_deref(), Some("made by the interop test"));
    assert_eq!(meta.creation_date, None);
    // 2.5 pieces + 3 KiB with the automatic rule (16 KiB pieces for small content).
    assert_eq!(meta.piece_length, 16 * 1024);
    assert_eq!(meta.total_length, 5 * PIECE / 2 + 3 * KIB);
    assert!(stdout.contains(&meta.info_hash.to_hex()), "{stdout}");
    // One web seed is written as a string, which our parser reads too.
    let one = dir.path().join("one.torrent");
    create_ok(&content, &one, &["--web-seed", "http://127.0.0.1:4/pub/"]);
    assert_eq!(
        MetaInfo::load(&one).unwrap().url_list,
        ["http://127.0.0.1:4/pub/"]
    );
    assert!(!MetaInfo::load(&one).unwrap().private);
    // libtorrent reads our multi-tier, private torrent as well.
    if harness::have(&[Tool::Libtorrent]) {
        let files = harness::lt_list_files(&out).unwrap();
        assert_eq!(files.len(), 2, "{files:?}");
    }
}

/// Runs a failing `create` and checks the one-line error and that nothing was written in
/// `out_dir`.
fn assert_refused(content: &Path, out: &Path, extra: &[&str], expect: &str) {
    let out_dir = out.parent().unwrap().to_path_buf();
    let before = listing(&out_dir);
    let res = create(content, out, extra);
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(!res.status.success(), "{content:?} {extra:?} succeeded");
    assert_eq!(stderr.lines().count(), 1, "not one line: {stderr:?}");
    assert!(stderr.starts_with("error: "), "{stderr:?}");
    assert!(stderr.contains(expect), "{stderr:?} lacks {expect:?}");
    assert!(
        !out.exists() || before.contains(&out.to_path_buf()),
        "{out:?} written"
    );
    assert_eq!(listing(&out_dir), before, "files left in {out_dir:?}");
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut names: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn bad_input_gets_a_one_line_error_and_writes_nothing() {
    let dir = harness::scratch();
    let root = dir.path();
    let outs = root.join("outs");
    fs::create_dir(&outs).unwrap();
    let out = outs.join("x.torrent");
    harness::write_payload(&root.join("file.bin"), 100_000, 1);

    assert_refused(&root.join("missing"), &out, &[], "cannot read");
    fs::create_dir_all(root.join("empty/sub")).unwrap();
    fs::write(root.join("empty/sub/zero"), b"").unwrap();
    assert_refused(&root.join("empty"), &out, &[], "holds no data");
    for bad in ["100K", "8K", "3M", "big", "512M"] {
        assert_refused(
            &root.join("file.bin"),
            &out,
            &["--piece-size", bad],
            "piece",
        );
    }
    // Unwritable: the output's folder is a regular file (we run as root, so a read-only
    // folder would not do), and a folder that does not exist.
    assert_refused(
        &root.join("file.bin"),
        &root.join("file.bin/x.torrent"),
        &[],
        "cannot write",
    );
    assert_refused(
        &root.join("file.bin"),
        &outs.join("no/such/x.torrent"),
        &[],
        "cannot write",
    );
    // A symbolic link inside the folder is refused, not followed.
    harness::write_payload(&root.join("linked/real.bin"), 1000, 2);
    std::os::unix::fs::symlink(root.join("file.bin"), root.join("linked/link.bin")).unwrap();
    assert_refused(&root.join("linked"), &out, &[], "symbolic link");
    // An existing output is kept unless --force.
    fs::write(&out, b"keep me").unwrap();
    assert_refused(&root.join("file.bin"), &out, &[], "exists");
    assert_eq!(fs::read(&out).unwrap(), b"keep me");
    create_ok(&root.join("file.bin"), &out, &["--force"]);
    assert!(MetaInfo::load(&out).is_ok());
    assert_eq!(listing(&outs), [out]);
}

/// Seconds `cmd` takes (the best of `runs`), which must succeed.
fn best_time(runs: usize, mut cmd: impl FnMut() -> Command) -> f64 {
    (0..runs)
        .map(|_| {
            let start = std::time::Instant::now();
            let res = cmd().output().expect("run");
            assert!(res.status.success(), "{res:?}");
            start.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

/// Creation keeps up with `mktorrent -t 2` on 128 MiB in the page cache. The bound is
/// generous (the machine is shared: timings are noisy); scripts/bench-create measures
/// properly. Re-measured once before failing.
#[test]
fn creation_is_about_as_fast_as_mktorrent() {
    require!(Tool::Mktorrent);
    let dir = harness::scratch();
    let file = dir.path().join("payload.bin");
    harness::write_payload(&file, 128 * MIB, 3);
    let (ours_out, mk_out) = (
        dir.path().join("ours.torrent"),
        dir.path().join("mk.torrent"),
    );
    let ours = || {
        let mut cmd = Command::new(CLI);
        cmd.arg("create").arg(&file).arg("-o").arg(&ours_out);
        cmd.args(["--piece-size", "256K", "--no-date", "--force", "--quiet"]);
        cmd
    };
    let mk = || {
        let _ = fs::remove_file(&mk_out);
        let mut cmd = Command::new("mktorrent");
        cmd.args(["-t", "2", "-l", "18", "-d", "-o"])
            .arg(&mk_out)
            .arg(&file);
        cmd
    };
    for attempt in 1..=2 {
        let (t_ours, t_mk) = (best_time(3, ours), best_time(3, mk));
        eprintln!("128 MiB: ours {t_ours:.3} s, mktorrent -t 2 {t_mk:.3} s (attempt {attempt})");
        if t_ours <= 2.0 * t_mk + 0.05 {
            assert_eq!(harness::info_hash(&ours_out), harness::info_hash(&mk_out));
            return;
        }
    }
    panic!("creating a torrent took more than twice mktorrent's time, twice");
}
