//! End-to-end tests of `bittorrent-cli` against independent BitTorrent peers on loopback.
//!
//! Seeders are libtorrent (tests/peers/lt_peer.py) and aria2; the tracker is opentracker;
//! torrents are made by mktorrent. Everything listens on and dials 127.0.0.1 only; `scripts/test`
//! also runs these tests in a loopback-only network namespace. Run them alone with
//! `cargo test -p bittorrent-cli --test interop -- --nocapture`; see `harness` for the
//! environment variables (`BT_INTEROP_REQUIRED`, `BT_INTEROP_LEECHER`, `BT_PYTHON`).

#[macro_use]
mod harness;

use std::path::Path;

use harness::fixture::{Fixture, MIB, PIECE, SINGLE, TREE};
use harness::trackers::http_url;
use harness::{Leecher, Tool, Tracker};

/// opentracker + one libtorrent seeder; `leecher` downloads via the tracker.
fn via_tracker_from_libtorrent(leecher: Leecher, name: &str, files: &[(&str, u64)]) {
    let port = harness::free_port();
    let fx = Fixture::new(name, files, Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let (_seeder, _) = harness::lt_seeder("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    tracker.wait_seeders(&fx.hash, 1);
    fx.leech_and_check(leecher, &[]);
}

#[test]
fn single_file_short_last_piece_from_libtorrent_via_tracker() {
    let leecher = Leecher::under_test();
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    require!(@leecher leecher);
    via_tracker_from_libtorrent(leecher, "single.bin", SINGLE);
}

#[test]
fn multi_file_nested_with_empty_file_from_libtorrent_via_tracker() {
    let leecher = Leecher::under_test();
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    require!(@leecher leecher);
    via_tracker_from_libtorrent(leecher, "tree", TREE);
}

#[test]
fn single_file_from_aria2_via_tracker() {
    let leecher = Leecher::under_test();
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Aria2);
    require!(@leecher leecher);
    let port = harness::free_port();
    let fx = Fixture::new("single.bin", SINGLE, Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let (_seeder, _) = harness::aria2_seeder("aria2-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    tracker.wait_seeders(&fx.hash, 1);
    fx.leech_and_check(leecher, &[]);
}

#[test]
fn direct_peer_without_working_tracker() {
    let leecher = Leecher::under_test();
    require!(Tool::Mktorrent, Tool::Libtorrent);
    require!(@leecher leecher);
    // Nothing listens on the announce port: the tracker fails, the --peer must carry it.
    let dead = harness::free_port();
    let fx = Fixture::new("single.bin", SINGLE, Some(&http_url(dead)));
    let (_seeder, seed_port) =
        harness::lt_seeder("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    fx.leech_and_check(leecher, &[seed_port]);
}

#[test]
fn three_seeders_each_upload() {
    let leecher = Leecher::under_test();
    require!(Tool::Opentracker, Tool::Mktorrent, Tool::Libtorrent);
    require!(@leecher leecher);
    let size = 32 * MIB;
    let port = harness::free_port();
    let fx = Fixture::new("big.bin", &[("", size)], Some(&http_url(port)));
    let tracker = Tracker::start(fx.path(), port, &[fx.hash]);
    let mut seeders: Vec<_> = (0..3)
        .map(|i| {
            let name = format!("lt-seeder-{i}");
            harness::lt_seeder(&name, &fx.torrent, &fx.seed_dir, fx.path()).0
        })
        .collect();
    tracker.wait_seeders(&fx.hash, 3);
    fx.leech_and_check(leecher, &[]);
    let uploaded: Vec<u64> = seeders.iter_mut().map(harness::lt_uploaded).collect();
    eprintln!("uploaded by each seeder: {uploaded:?}");
    assert!(
        uploaded.iter().all(|&n| n > 0),
        "every seeder should have uploaded something, got {uploaded:?}"
    );
    assert!(
        uploaded.iter().sum::<u64>() >= size,
        "seeders uploaded {uploaded:?}, less than the {size} bytes downloaded"
    );
}

/// The harness and the seeders checked without our client: aria2 downloads the multi-file
/// torrent from libtorrent via opentracker. If this fails, the other failures say nothing
/// about bittorrent-cli.
#[test]
fn harness_self_check_aria2_leeches_from_libtorrent() {
    require!(
        Tool::Opentracker,
        Tool::Mktorrent,
        Tool::Libtorrent,
        Tool::Aria2
    );
    via_tracker_from_libtorrent(Leecher::Aria2, "tree", TREE);
}

/// The info-hash the harness computes (for the tracker whitelist) is libtorrent's.
#[test]
fn harness_info_hash_matches_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("tree", TREE, None);
    let out = std::process::Command::new(harness::python().expect("python"))
        .args([
            "-c",
            "import sys, libtorrent as lt; print(lt.torrent_info(sys.argv[1]).info_hash())",
        ])
        .arg(&fx.torrent)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        hex::encode(fx.hash)
    );
}

/// The harness's .torrent writer and readers (serde_bencode) agree on the info-hash of a
/// crafted torrent, and refuse to hash a non-canonical `info` dictionary (keys out of order)
/// rather than return a hash that is not that of the file's bytes.
#[test]
fn harness_bencode_hashes_what_it_writes() {
    let dir = harness::scratch();
    let path = dir.path().join("crafted.torrent");
    let files = vec![
        (vec![b"a".to_vec()], vec![1u8; 1000]),
        (vec![b"d".to_vec(), b"b".to_vec()], vec![2u8; 70_000]),
    ];
    let hash =
        harness::meta::craft_torrent(&path, Some("http://127.0.0.1:1/a"), b"t", &files, 1 << 15);
    assert_eq!(harness::info_hash(&path), hash);
    let meta = harness::meta::Meta::load(&path);
    assert_eq!(meta.info_hash, hash);
    assert_eq!((meta.total_len(), meta.pieces.len()), (71_000, 3));
    let unordered = harness::workspace_root().join("tests/hostile/tr-unordered-info-dict.torrent");
    let refused = std::panic::catch_unwind(|| harness::info_hash(&unordered))
        .expect_err("hashed a non-canonical info dictionary");
    let why = refused
        .downcast_ref::<String>()
        .cloned()
        .unwrap_or_default();
    assert!(why.contains("not in canonical bencode"), "{why}");
}

/// The content check sees a single changed byte in a nested file.
#[test]
#[should_panic(expected = "differs from")]
fn harness_content_check_sees_one_changed_byte() {
    let dir = harness::scratch();
    let (a, b) = (dir.path().join("a/tree"), dir.path().join("b/tree"));
    harness::write_tree(&a, TREE);
    harness::write_tree(&b, TREE);
    harness::assert_same_content(&a, &b);
    let victim = b.join("docs/deep/er/nested.bin");
    let mut bytes = std::fs::read(&victim).expect("read");
    bytes[PIECE as usize] ^= 1;
    std::fs::write(&victim, bytes).expect("write");
    harness::assert_same_content(&a, &b);
}

/// The content check sees a missing empty file.
#[test]
#[should_panic(expected = "different file sets")]
fn harness_content_check_sees_missing_empty_file() {
    let dir = harness::scratch();
    let (a, b) = (dir.path().join("a/tree"), dir.path().join("b/tree"));
    harness::write_tree(&a, TREE);
    harness::write_tree(&b, TREE);
    std::fs::remove_file(b.join("empty.bin")).expect("remove");
    harness::assert_same_content(&a, &b);
}

/// A magnet link with only a direct peer (`x.pe`): our CLI fetches the metadata (BEP 9) from a
/// libtorrent seeder, then downloads a multi-file torrent byte-identically, and keeps the
/// metainfo as a .torrent with the same info-hash.
#[test]
fn magnet_with_direct_peer_from_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("tree", TREE, None);
    let (_seeder, seed_port) =
        harness::lt_seeder("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=tree&x.pe=127.0.0.1:{seed_port}",
        hex::encode(fx.hash)
    );
    harness::leech_with(
        Leecher::Cli,
        Path::new(&magnet),
        &fx.out_dir(),
        &[],
        fx.path(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    harness::assert_same_content(&fx.content, &fx.downloaded());
    let saved = fx
        .out_dir()
        .join(".bittorrent")
        .join(format!("{}.torrent", hex::encode(fx.hash)));
    assert_eq!(
        harness::info_hash(&saved),
        fx.hash,
        "the saved .torrent has the magnet's info-hash"
    );
}

/// `--serve`: while our CLI downloads from a rate-limited libtorrent seeder, curl's range
/// requests (RFC 9110 forms) against its HTTP server return byte-exact slices, a range past the
/// end is refused with 416, and HEAD gives the length and an .mp4 content type.
#[test]
fn http_ranges_while_downloading() {
    require!(Tool::Mktorrent, Tool::Libtorrent, Tool::Curl);
    let fx = Fixture::new("movie.mp4", &[("", 8 * MIB + 1234)], None);
    // About 1 MB/s: the whole file takes several seconds, one piece well under one.
    let serving = fx.serve_while_downloading(1_000_000);
    let (mut cli, url) = (serving.cli, serving.url);
    let content = std::fs::read(&fx.content).expect("payload");
    let len = content.len();
    let curl = |args: &[&str]| {
        let out = std::process::Command::new("curl")
            .args(["-s", "--max-time", "30"])
            .args(args)
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "{}",
            cli.failure(&format!("curl {args:?} failed"))
        );
        out.stdout
    };
    let forms = [
        ("bytes=0-1".to_owned(), 0..2),
        ("bytes=100-199".to_owned(), 100..200),
        (format!("bytes={}-", len - 1000), len - 1000..len),
        ("bytes=-500".to_owned(), len - 500..len),
        ("bytes=4194300-4194400".to_owned(), 4_194_300..4_194_401),
    ];
    for (range, slice) in forms {
        let header = format!("Range: {range}");
        let body = curl(&["-H", &header, &url]);
        assert_eq!(body.len(), slice.len(), "{range}");
        assert!(body == content[slice], "{range}: wrong bytes");
    }
    let header = format!("Range: bytes={len}-");
    let code = curl(&["-o", "/dev/null", "-w", "%{http_code}", "-H", &header, &url]);
    assert_eq!(String::from_utf8_lossy(&code), "416");
    let head = String::from_utf8_lossy(&curl(&["-I", &url])).to_lowercase();
    assert!(head.contains(&format!("content-length: {len}")), "{head}");
    assert!(head.contains("content-type: video/mp4"), "{head}");
    assert!(head.contains("accept-ranges: bytes"), "{head}");
    cli.signal("INT");
    assert!(
        cli.wait_exit(std::time::Duration::from_secs(20)).is_some(),
        "CLI did not stop"
    );
}

/// A real media client reads a video from `--serve` while it downloads: ffprobe gets the codec,
/// the frame size and the duration of an MP4 whose index (`moov`) is at the end of the file, so
/// it must seek far ahead of the download, and it is done before the download is.
#[test]
fn ffprobe_reads_video_served_while_downloading() {
    require!(Tool::Mktorrent, Tool::Libtorrent, Tool::Ffmpeg);
    let fx = Fixture::from_content("movie.mp4", None, |video| {
        harness::write_video(video, 20, 640, 360)
    });
    // About 400 kB/s: the whole file (about 6.5 MB) takes some 16 s; ffprobe needs only a few
    // pieces at its start and its end.
    let serving = fx.serve_while_downloading(400_000);
    let mut cli = serving.cli;

    let started = std::time::Instant::now();
    let mut cmd = std::process::Command::new("ffprobe");
    cmd.args(["-v", "error", "-of", "json", "-show_entries"])
        .arg("format=duration:stream=codec_name,width,height")
        .arg(&serving.url)
        // ffmpeg would send the request to a proxy named there.
        .env_remove("http_proxy");
    let mut probe = harness::Proc::spawn_split("ffprobe", cmd, fx.path());
    let status = probe
        .wait_exit(std::time::Duration::from_secs(30))
        .unwrap_or_else(|| panic!("{}", probe.failure("did not finish within 30 s")));
    let took = started.elapsed();
    assert!(status.success(), "{}", probe.failure("failed"));
    // Stopped at once. cli_stop_incomplete wants the exit status of a CLI whose download is
    // incomplete: a download that completed before ffprobe was done fails the test here.
    let stats = harness::cli_stop_incomplete(&mut cli);
    let s = harness::stats_for(&stats, &fx.hash);
    eprintln!(
        "ffprobe took {took:.2?}; the CLI had {} of {} bytes when stopped",
        s.downloaded, fx.size
    );
    assert!(
        !s.complete,
        "the download was complete before ffprobe was done: {s:?}"
    );
    assert_eq!(
        probe.output().trim(),
        "",
        "ffprobe reported errors reading the served file"
    );
    let json: serde_json::Value = serde_json::from_str(&probe.stdout())
        .unwrap_or_else(|e| panic!("{}", probe.failure(&format!("printed no JSON: {e}"))));
    let streams = json["streams"].as_array().cloned().unwrap_or_default();
    assert_eq!(streams.len(), 1, "one video stream: {json}");
    assert_eq!(streams[0]["codec_name"], "mpeg4", "{json}");
    assert_eq!(streams[0]["width"], 640, "{json}");
    assert_eq!(streams[0]["height"], 360, "{json}");
    let duration: f64 = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .unwrap_or_else(|| panic!("no format duration: {json}"));
    assert!(
        (duration - 20.0).abs() < 0.5,
        "duration {duration} s: {json}"
    );
}

/// `--files` and `--only` on a multi-file torrent from a libtorrent seeder: only the selected
/// files appear, byte-identical, the CLI exits 0 (complete means every selected file done); a
/// second run without a selection moves the pieces' shares out of the part file and fetches the
/// rest, ending with the whole tree byte-identical.
#[test]
fn file_selection_from_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent);
    let fx = Fixture::new("tree", TREE, None);
    let (_seeder, seed_port) =
        harness::lt_seeder("lt-seeder", &fx.torrent, &fx.seed_dir, fx.path());
    // The numbers --files takes are those --list prints (mktorrent chooses the file order).
    let listed = harness::cli_command()
        .arg("--list")
        .arg(&fx.torrent)
        .output()
        .expect("run --list");
    assert!(listed.status.success(), "--list failed: {listed:?}");
    let listing = String::from_utf8_lossy(&listed.stdout).into_owned();
    let number = listing
        .lines()
        .find(|l| l.ends_with("  docs/readme.md"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("docs/readme.md not in --list:\n{listing}"))
        .to_owned();
    let run = |name: &str, selection: &[&str]| {
        let mut cmd = harness::cli_command();
        cmd.args(["--bind", "127.0.0.1", "-p", "0", "--no-tracker", "-q", "-o"])
            .arg(fx.out_dir())
            .arg("--peer")
            .arg(format!("127.0.0.1:{seed_port}"))
            .args(selection)
            .arg(&fx.torrent);
        let mut cli = harness::Proc::spawn(name, cmd, fx.path());
        let status = cli.wait_exit(std::time::Duration::from_secs(60));
        assert!(
            status.is_some_and(|s| s.success()),
            "{}",
            cli.failure("the CLI did not complete")
        );
    };
    run("cli-select", &["--files", &number, "--only", "media/s*"]);
    let root = fx.downloaded();
    let mut got = Vec::new();
    harness::walk(&root, &root, &mut got);
    let want = [Path::new("docs/readme.md"), Path::new("media/small.bin")];
    assert_eq!(got, want, "only the selected files appear");
    for rel in want {
        harness::assert_same_content(&fx.content.join(rel), &root.join(rel));
    }
    // Both selected files share pieces with unselected neighbours: those shares exist, out of
    // sight.
    let parts = std::fs::read_dir(fx.out_dir().join(".bittorrent"))
        .expect(".bittorrent")
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".parts"))
        })
        .count();
    assert_eq!(parts, 1, "one part file");

    run("cli-all", &[]);
    fx.check(&fx.out_dir());

    // A magnet link: its files are known once the metadata arrives. A selection that fits
    // none of them is then a clear error, and nothing is written.
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=tree&x.pe=127.0.0.1:{seed_port}",
        hex::encode(fx.hash)
    );
    let out = fx.path().join("out-magnet");
    let mut cmd = harness::cli_command();
    cmd.args(["--bind", "127.0.0.1", "-p", "0", "--no-tracker", "-q", "-o"])
        .arg(&out)
        .args(["--only", "*.iso"])
        .arg(&magnet);
    let mut cli = harness::Proc::spawn("cli-magnet-none", cmd, fx.path());
    let status = cli.wait_exit(std::time::Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| !s.success()),
        "{}",
        cli.failure("a selection of no file must fail")
    );
    assert!(
        cli.output().contains("--only \"*.iso\" select(s) no file"),
        "{}",
        cli.failure("no clear error")
    );
    assert!(
        !out.join("tree").exists(),
        "files written for an empty selection"
    );
}

/// A seek to 90% of a large file on an empty download, through `--serve` and curl, from a
/// rate-limited libtorrent seeder: 1 MiB read there is byte-exact and the download is still far
/// from complete afterwards (the seek did not wait for what comes before). The time to first
/// byte is printed, not asserted (timings belong in benchmarks: scripts/bench-stream).
#[test]
fn seek_to_ninety_percent_from_libtorrent() {
    require!(Tool::Mktorrent, Tool::Libtorrent, Tool::Curl);
    let fx = Fixture::new("large.bin", &[("", 48 * MIB)], None);
    // About 4 MB/s: the whole file takes about 12 s.
    let serving = fx.serve_while_downloading(4_000_000);
    let (mut cli, url) = (serving.cli, serving.url);
    let at = fx.size * 9 / 10;
    let slice = fx.path().join("slice.bin");
    // curl's time_starttransfer counts the response head, which the server sends before the
    // body's first byte is there: the whole time of a one-byte range is the first byte's.
    let curl = |range: String, out: &Path| {
        let done = std::process::Command::new("curl")
            .args(["-s", "--max-time", "30", "-w", "%{time_total}", "-o"])
            .arg(out)
            .arg("-r")
            .arg(range)
            .arg(&url)
            .output()
            .expect("run curl");
        assert!(done.status.success(), "{}", cli.failure("curl failed"));
        String::from_utf8_lossy(&done.stdout).into_owned()
    };
    let ttfb = curl(format!("{at}-{at}"), &fx.path().join("byte.bin"));
    let mib = curl(format!("{at}-{}", at + MIB - 1), &slice);
    let stats = harness::cli_stop_incomplete(&mut cli);
    let s = harness::stats_for(&stats, &fx.hash);
    eprintln!(
        "seek to 90%: time to first byte {ttfb} s, 1 MiB there in {mib} s; the CLI had {} of {} \
         bytes when stopped",
        s.downloaded, fx.size
    );
    let content = std::fs::read(&fx.content).expect("payload");
    let got = std::fs::read(&slice).expect("slice");
    assert_eq!(got.len() as u64, MIB, "1 MiB read");
    assert!(
        got[..] == content[at as usize..(at + MIB) as usize],
        "wrong bytes at 90%"
    );
    assert!(
        s.downloaded < fx.size / 2,
        "most of the file was downloaded before the seek was served: {s:?}"
    );
}
