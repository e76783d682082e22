//! End-to-end tests of web seeds (BEP 19, `url-list`): our CLI downloads from real HTTP
//! servers (Debian's nginx, started by each test on 127.0.0.1 with a config of its own),
//! alone or beside a rate-limited libtorrent seeder, and from hostile servers (a copy with one
//! file corrupted; `harness::badhttp`: 404 for everything, a close mid-response, a trickle, a
//! wrong range, ranges ignored, a redirect loop) beside a good one.
//! Every download is compared byte for byte with the original; nginx's access log shows which
//! requests reached it.
//!
//! The torrents are made with mktorrent (`-w URL` writes the `url-list`) and have no tracker;
//! our CLI runs with `--no-dht --no-tracker`, bound to 127.0.0.1. Run them alone with
//! `cargo test -p bittorrent-cli --test interop_webseed -- --nocapture` (`scripts/test` runs
//! them in a loopback-only network namespace). Without nginx they skip (fail under
//! `BT_INTEROP_REQUIRED=1`). `BT_INTEROP_CLI=$PWD/tests/peers/lt_cli.py` runs them against
//! libtorrent's web seeds instead of our CLI, which checks the tests themselves.

#[macro_use]
mod harness;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use harness::badhttp::{BadHttp, BadMode};
use harness::fixture::{Fixture, MIB, PIECE, PIECE_LOG2, SINGLE};
use harness::http::{Access, Nginx};
use harness::{cli_stop_incomplete, parse_cli_json, CliStats, Proc, Tool};

/// The seed of this file's payload bytes.
const PAYLOAD_SEED: u64 = 19;

/// How long one download may take before the test fails.
const RUN_TIMEOUT: Duration = Duration::from_secs(90);

/// Names that must be percent-encoded in a URL (space, `&`, `%`, `?`, `#`, non-ASCII), in
/// nested folders; an empty file; files straddle piece boundaries.
const ODD_TREE: &[(&str, u64)] = &[
    ("a.txt", 1000),
    ("empty.bin", 0),
    ("docs/read me & notes.md", 4321),
    ("docs/deep/er/nested.bin", PIECE + 1),
    ("media/big.bin", 9 * PIECE / 2 + 777),
    ("media/ünïcødé 100%.bin", 70_000),
    ("what?/#hash.bin", 200_000),
];

/// About 6 MiB in three files: the middle one is the one a broken mirror corrupts.
const MIRRORED: &[(&str, u64)] = &[
    ("one.bin", MIB + 333),
    ("sub/two.bin", 3 * MIB + 5),
    ("sub/deeper/three.bin", 2 * MIB - 7),
];

/// The file of [`MIRRORED`] that the broken mirror serves with wrong bytes.
const CORRUPTED: &str = "sub/two.bin";

/// The fixture (payload under `seed/<name>`, `plain.torrent` without a `url-list`) with this
/// file's payload bytes.
fn fixture(name: &str, files: &[(&str, u64)]) -> Fixture {
    Fixture::build(
        name,
        files,
        PAYLOAD_SEED,
        "plain.torrent",
        |content, torrent| harness::make_torrent(content, None, PIECE_LOG2, torrent),
    )
}

/// Makes `<file>` in the fixture's directory from its content with mktorrent: no tracker,
/// the `url-list` `urls`; checks that its info-hash is the fixture's. Returns its path.
fn web_torrent(fx: &Fixture, file: &str, urls: &[String]) -> PathBuf {
    let out = fx.path().join(file);
    let res = Command::new("mktorrent")
        .arg("-l")
        .arg(PIECE_LOG2.to_string())
        .args(["-t", "2", "-w", &urls.join(",")])
        .arg("-o")
        .arg(&out)
        .arg(&fx.content)
        .output()
        .expect("run mktorrent");
    assert!(
        res.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    assert_eq!(harness::info_hash(&out), fx.hash, "info-hash of {file}");
    out
}

/// Copies the fixture's content to `<site>/<rel>/<name>`, the layout a web seed URL
/// `http://host/<rel>/` serves; returns the copy.
fn publish(fx: &Fixture, site: &Path, rel: &str) -> PathBuf {
    let to = site.join(rel).join(fx.name());
    copy_tree(&fx.content, &to);
    to
}

fn copy_tree(from: &Path, to: &Path) {
    if from.is_file() {
        fs::create_dir_all(to.parent().expect("parent")).expect("create dir");
        fs::copy(from, to).unwrap_or_else(|e| panic!("copy {}: {e}", from.display()));
        return;
    }
    let mut files = Vec::new();
    harness::walk(from, from, &mut files);
    for rel in files {
        copy_tree(&from.join(&rel), &to.join(&rel));
    }
}

/// Flips one byte in every 64 KiB of `path`, so every piece it touches fails its hash.
fn corrupt(path: &Path) {
    let mut data = fs::read(path).expect("read file to corrupt");
    for i in (0..data.len()).step_by(64 * 1024) {
        data[i] ^= 0xff;
    }
    fs::write(path, data).expect("write corrupted file");
}

/// A finished run of our CLI.
struct Run {
    took: Duration,
    stats: CliStats,
    /// The exited process: kept while the test checks, its drop prints its log if that panics.
    _proc: Proc,
}

/// Starts our CLI downloading `torrent` into `out` (`--no-tracker --bind 127.0.0.1 -p <free>
/// --json -q`, `RUST_LOG=info`) dialing `peers`, with `extra` arguments.
fn spawn_cli(
    name: &str,
    fx: &Fixture,
    torrent: &Path,
    out: &Path,
    peers: &[u16],
    extra: &[&str],
) -> Proc {
    fs::create_dir_all(out).expect("create output dir");
    let mut cmd = harness::cli_command();
    cmd.args(["--no-tracker", "--bind", "127.0.0.1", "-p"])
        .arg(harness::free_port().to_string())
        .arg("-o")
        .arg(out)
        .args(["--json", "-q"]);
    for p in peers {
        cmd.arg("--peer").arg(format!("127.0.0.1:{p}"));
    }
    cmd.args(extra).arg(torrent).env("RUST_LOG", "info");
    Proc::spawn_split(name, cmd, fx.path())
}

/// Downloads `torrent` into `out` with our CLI (see [`spawn_cli`]), checks that it exits 0
/// within [`RUN_TIMEOUT`] saying complete, and that `out/<name>` is the fixture's content.
fn download(fx: &Fixture, torrent: &Path, out: &Path, peers: &[u16], extra: &[&str]) -> Run {
    let start = Instant::now();
    let mut proc = spawn_cli("cli", fx, torrent, out, peers, extra);
    match proc.wait_exit(RUN_TIMEOUT) {
        Some(status) if status.success() => {}
        Some(status) => panic!("{}", proc.failure(&format!("failed ({status})"))),
        None => panic!(
            "{}",
            proc.failure(&format!("did not finish within {RUN_TIMEOUT:?}"))
        ),
    }
    let took = start.elapsed();
    let web_seed_lines: Vec<String> = proc
        .output()
        .lines()
        .filter(|l| l.to_ascii_lowercase().contains("web seed"))
        .map(str::to_string)
        .collect();
    eprintln!(
        "the CLI's web seed log lines:\n{}",
        web_seed_lines.join("\n")
    );
    let stats = parse_cli_json(&proc.stdout()).unwrap_or_else(|e| panic!("{}", proc.failure(&e)));
    let stats = harness::stats_for(&stats, &harness::info_hash(torrent)).clone();
    assert!(
        stats.complete,
        "{}",
        proc.failure(&format!("not complete: {stats:?}"))
    );
    fx.check(out);
    eprintln!(
        "downloaded {} ({:.2} MiB) in {took:.2?}: {stats:?}",
        fx.name(),
        fx.size as f64 / MIB as f64
    );
    Run {
        took,
        stats,
        _proc: proc,
    }
}

/// The decoded paths of `accesses` (the URI of each request line).
fn paths(accesses: &[Access]) -> Vec<String> {
    accesses
        .iter()
        .map(|a| {
            let uri = a.request.split(' ').nth(1).unwrap_or_default();
            percent_encoding::percent_decode_str(uri)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect()
}

/// Checks that `nginx` answered every request it logged with 200 or 206 for a path in
/// `expected`, and sent at least `min_bytes` of body in all.
fn check_served(nginx: &Nginx, expected: &[String], min_bytes: u64) {
    let accesses = nginx.accesses();
    let log = nginx.access_log();
    assert!(!accesses.is_empty(), "nginx logged no request");
    for (access, path) in accesses.iter().zip(paths(&accesses)) {
        assert!(
            matches!(access.status, 200 | 206),
            "nginx answered {access:?}; access log:\n{log}"
        );
        assert!(
            expected.contains(&path),
            "request for {path:?}, not one of {expected:?}; access log:\n{log}"
        );
    }
    let sent = nginx.bytes_sent();
    assert!(
        sent >= min_bytes,
        "nginx sent {sent} bytes, less than the {min_bytes} downloaded; access log:\n{log}"
    );
    eprintln!(
        "nginx: {} requests, {sent} bytes of body:\n{log}",
        accesses.len()
    );
}

/// The URL paths (decoded) of the fixture's files under `http://host/<rel>/`.
fn file_paths(fx: &Fixture, rel: &str) -> Vec<String> {
    let mut files = Vec::new();
    harness::walk(&fx.content, &fx.content, &mut files);
    files
        .iter()
        .map(|f| format!("/{rel}/{}/{}", fx.name(), f.display()))
        .collect()
}

/// The harness itself, with curl: nginx answers a range with exactly its bytes (206) and logs
/// it; the hostile servers answer 404, half the body, the bytes one further, the whole file,
/// or a redirect, as their modes say.
#[test]
fn servers_answer_as_the_tests_expect() {
    require!(Tool::Nginx, Tool::Mktorrent, Tool::Curl);
    let fx = fixture("probe.bin", SINGLE);
    let site = fx.path().join("site");
    publish(&fx, &site, "files");
    let data = fs::read(&fx.content).expect("read payload");
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let (status, body) = curl(&nginx.url("/files/probe.bin"), Some("1000-1999"));
    assert_eq!((status, &body[..]), (206, &data[1000..2000]));
    let (status, _) = curl(&nginx.url("/files/nothing.bin"), None);
    assert_eq!(status, 404);
    let accesses = nginx.accesses();
    assert_eq!(accesses.len(), 2, "{accesses:?}");
    assert_eq!(
        (
            accesses[0].status,
            accesses[0].bytes,
            accesses[0].range.as_str()
        ),
        (206, 1000, "bytes=1000-1999")
    );
    assert_eq!(paths(&accesses)[0], "/files/probe.bin");

    let lost = BadHttp::start(BadMode::NotFound, &site);
    assert_eq!(curl(&lost.url("/files/probe.bin"), None).0, 404);
    let closer = BadHttp::start(BadMode::CloseMidResponse, &site);
    let (status, body) = curl(&closer.url("/files/probe.bin"), Some("1000-1999"));
    assert_eq!((status, &body[..]), (206, &data[1000..1500]));
    assert_eq!((lost.requests(), closer.requests()), (1, 1));
    let shifter = BadHttp::start(BadMode::WrongRange, &site);
    let (status, body) = curl(&shifter.url("/files/probe.bin"), Some("1000-1999"));
    assert_eq!((status, &body[..]), (206, &data[1001..2001]));
    let whole = BadHttp::start(BadMode::IgnoresRange, &site);
    let (status, body) = curl(&whole.url("/files/probe.bin"), Some("1000-1999"));
    assert_eq!((status, body == data), (200, true));
    let looper = BadHttp::start(BadMode::RedirectLoop, &site);
    assert_eq!(curl(&looper.url("/files/probe.bin"), None).0, 302);
}

/// GETs `url` with curl (with `Range: bytes=<range>` if given); returns the status and the
/// body received, also when the server closed before the end.
fn curl(url: &str, range: Option<&str>) -> (u16, Vec<u8>) {
    let dir = harness::scratch();
    let body = dir.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "--max-time", "10", "-o"])
        .arg(&body)
        .args(["-w", "%{http_code}"]);
    if let Some(range) = range {
        cmd.args(["-r", range]);
    }
    let out = cmd.arg(url).output().expect("run curl");
    let status = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    (status, fs::read(&body).unwrap_or_default())
}

/// a. A single-file torrent whose `url-list` is the URL of the file itself (under another
/// name than the torrent's: the URL is used as it is).
#[test]
fn single_file_from_its_file_url() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("single.bin", SINGLE);
    let site = fx.path().join("site");
    copy_tree(&fx.content, &site.join("mirror/renamed copy.iso"));
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let torrent = web_torrent(
        &fx,
        "web.torrent",
        &[nginx.url("/mirror/renamed%20copy.iso")],
    );
    let _run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    check_served(&nginx, &["/mirror/renamed copy.iso".into()], fx.size);
}

/// a. A single-file torrent whose `url-list` is a `/`-ending directory URL: the torrent's
/// name is appended.
#[test]
fn single_file_from_a_directory_url() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("single.bin", SINGLE);
    let site = fx.path().join("site");
    publish(&fx, &site, "files");
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let torrent = web_torrent(&fx, "web.torrent", &[nginx.url("/files/")]);
    let _run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    check_served(&nginx, &["/files/single.bin".into()], fx.size);
}

/// b. A multi-file torrent (nested folders, names that need percent-encoding, an empty file)
/// from its web seed alone: URL + name + `/` + path.
#[test]
fn multi_file_from_web_seed_alone() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("web tree", ODD_TREE);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let torrent = web_torrent(&fx, "web.torrent", &[nginx.url("/pub/")]);
    let _run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    check_served(&nginx, &file_paths(&fx, "pub"), fx.size);
}

/// A multi-file torrent with BEP 47 pad files (made by libtorrent: one after every file that
/// does not end a piece) from its web seed alone: the pad files are never requested (nginx
/// does not have them) nor written.
#[test]
fn pad_files_are_never_requested() {
    require!(Tool::Nginx, Tool::Libtorrent);
    let fx = fixture("padded", ODD_TREE);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let torrent = fx.path().join("padded.torrent");
    let res = Command::new(harness::python().expect("python with libtorrent"))
        .arg(harness::workspace_root().join("tests/peers/lt_create.py"))
        .arg("--content")
        .arg(&fx.content)
        .arg("--out")
        .arg(&torrent)
        .args([
            "--piece-size",
            &PIECE.to_string(),
            "--web-seed",
            &nginx.url("/pub/"),
        ])
        .output()
        .expect("run lt_create.py");
    assert!(
        res.status.success(),
        "lt_create.py failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
    let meta = harness::meta::Meta::load(&torrent);
    eprintln!("{} files with pad files", meta.files.len());
    assert!(
        meta.files.len() > ODD_TREE.len(),
        "libtorrent made no pad files"
    );
    let _run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    check_served(&nginx, &file_paths(&fx, "pub"), fx.size);
}

/// `--web-seed URL` adds a web seed to a torrent that lists none.
#[test]
fn web_seed_flag_adds_a_server() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("flagged", MIRRORED);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let url = nginx.url("/pub/");
    let _run = download(&fx, &fx.torrent, &fx.out_dir(), &[], &["--web-seed", &url]);
    check_served(&nginx, &file_paths(&fx, "pub"), fx.size);
}

/// The libtorrent seeder's upload cap in case c.
const SEEDER_LIMIT: u64 = 256 * 1024;
/// The good mirror's rate cap in case c (per request, with nginx's second of burst, see
/// [`Nginx::start`]).
const GOOD_MIRROR_LIMIT: u64 = MIB;

/// c. A multi-file torrent whose `url-list` has a broken mirror (one file corrupted, full
/// speed) and a good one (rate-limited), with a rate-limited libtorrent seeder beside them:
/// completes byte-identically, and clearly faster than the seeder alone could deliver it.
#[test]
fn broken_and_good_mirror_beside_a_seeder() {
    require!(Tool::Nginx, Tool::Mktorrent, Tool::Libtorrent);
    let fx = fixture("mirrored", MIRRORED);
    let good_site = fx.path().join("good");
    let bad_site = fx.path().join("bad");
    publish(&fx, &good_site, "pub");
    corrupt(&publish(&fx, &bad_site, "pub").join(CORRUPTED));
    let bad = Nginx::start("nginx-bad", &bad_site, fx.path(), None);
    let good = Nginx::start("nginx-good", &good_site, fx.path(), Some(GOOD_MIRROR_LIMIT));
    let torrent = web_torrent(&fx, "web.torrent", &[bad.url("/pub/"), good.url("/pub/")]);
    let limit = SEEDER_LIMIT.to_string();
    let (mut seeder, seed_port) = harness::lt_seeder_with(
        "lt-seeder",
        &fx.torrent,
        &fx.seed_dir,
        fx.path(),
        &["--upload-limit", &limit, "--tick-interval", "50"],
    );
    let seeder_alone = Duration::from_secs_f64(fx.size as f64 / SEEDER_LIMIT as f64);
    // Generous: the web seeds could do it in a fraction of this (ours: ~3 s, the seeder's
    // share at its cap; libtorrent as the leecher, BT_INTEROP_CLI: 3-13 s).
    let bound = seeder_alone.mul_f64(0.6);
    let mut attempt = 1;
    let run = loop {
        let out = fx.path().join(format!("out-{attempt}"));
        let run = download(&fx, &torrent, &out, &[seed_port], &[]);
        eprintln!(
            "attempt {attempt}: {:.2} MiB in {:.2?}; the seeder alone (at {} KiB/s) needs \
             {seeder_alone:.2?}; bound {bound:.2?}; wasted {} bytes",
            fx.size as f64 / MIB as f64,
            run.took,
            SEEDER_LIMIT / 1024,
            run.stats.wasted
        );
        if run.took < bound || attempt == 2 {
            break run;
        }
        eprintln!("over the bound: the machine may be busy; measuring once more");
        attempt += 1;
    };
    let uploaded = harness::lt_uploaded(&mut seeder);
    eprintln!(
        "bytes: bad mirror sent {}, good mirror sent {}, seeder uploaded {uploaded}\n\
         bad mirror's log:\n{}good mirror's log:\n{}",
        bad.bytes_sent(),
        good.bytes_sent(),
        bad.access_log(),
        good.access_log()
    );
    assert!(
        run.took < bound,
        "took {:.2?} (twice), not clearly below the {seeder_alone:.2?} the seeder alone needs",
        run.took
    );
    assert!(
        !bad.accesses().is_empty(),
        "the broken mirror was never asked"
    );
    assert!(good.bytes_sent() > 0, "the good mirror sent nothing");
    assert!(
        uploaded > 0,
        "the seeder uploaded nothing: peers and web seeds did not work together"
    );
}

/// d. Two web seeds that answer 404 (a hostile server, and a missing path on nginx) before a
/// good one in the `url-list`: the download completes from the good one.
#[test]
fn not_found_servers_beside_a_good_one() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("found", MIRRORED);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let lost = BadHttp::start(BadMode::NotFound, &site);
    let nginx = Nginx::start("nginx", &site, fx.path(), Some(2 * MIB));
    let urls = [
        lost.url("/pub/"),
        nginx.url("/missing/"),
        nginx.url("/pub/"),
    ];
    let torrent = web_torrent(&fx, "web.torrent", &urls);
    let _run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    let accesses = nginx.accesses();
    let missing = accesses.iter().filter(|a| a.status == 404).count();
    eprintln!(
        "404 server: {} requests; nginx: {missing} 404s of {} requests",
        lost.requests(),
        accesses.len()
    );
    assert!(lost.requests() > 0, "the 404 server was never asked");
    assert!(
        missing > 0,
        "the missing path was never asked; access log:\n{}",
        nginx.access_log()
    );
}

/// d. A server that sends the headers and half of each body, then closes, before a good one
/// in the `url-list`: the download completes from the good one.
#[test]
fn server_closing_mid_response_beside_a_good_one() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("closed", MIRRORED);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let closer = BadHttp::start(BadMode::CloseMidResponse, &site);
    let nginx = Nginx::start("nginx", &site, fx.path(), Some(2 * MIB));
    let torrent = web_torrent(
        &fx,
        "web.torrent",
        &[closer.url("/pub/"), nginx.url("/pub/")],
    );
    let _run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    eprintln!(
        "closing server: {} requests; nginx: {} requests:\n{}",
        closer.requests(),
        nginx.accesses().len(),
        nginx.access_log()
    );
    assert!(closer.requests() > 0, "the closing server was never asked");
}

/// A server that sends its answers at a trickle ([`harness::badhttp::TRICKLE_RATE`]) before a good one in the
/// `url-list`: the download completes from the good one, which takes over the trickler's run
/// (the trickler is above the too-slow limit, so it is never dropped).
#[test]
fn trickling_server_beside_a_good_one() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("trickled", MIRRORED);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let trickler = BadHttp::start(BadMode::Trickle, &site);
    let nginx = Nginx::start("nginx", &site, fx.path(), Some(2 * MIB));
    let torrent = web_torrent(
        &fx,
        "web.torrent",
        &[trickler.url("/pub/"), nginx.url("/pub/")],
    );
    let run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    eprintln!(
        "trickling server: {} requests; nginx: {} requests; took {:.2?}",
        trickler.requests(),
        nginx.accesses().len(),
        run.took
    );
    assert!(
        trickler.requests() > 0,
        "the trickling server was never asked"
    );
    // Its first run alone (a share of ~6 MiB at 20 KiB/s) would take minutes; nginx takes
    // it over.
    assert!(
        run.took < Duration::from_secs(30),
        "the trickling server held the download for {:.2?}",
        run.took
    );
}

/// Servers that answer with the wrong range, the whole file for a range, and a redirect loop,
/// before a good one in the `url-list`: the download completes from the good one.
#[test]
fn misbehaving_servers_beside_a_good_one() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("misled", MIRRORED);
    let site = fx.path().join("site");
    publish(&fx, &site, "pub");
    let bad: Vec<BadHttp> = [
        BadMode::WrongRange,
        BadMode::IgnoresRange,
        BadMode::RedirectLoop,
    ]
    .into_iter()
    .map(|mode| BadHttp::start(mode, &site))
    .collect();
    let nginx = Nginx::start("nginx", &site, fx.path(), Some(2 * MIB));
    let mut urls: Vec<String> = bad.iter().map(|b| b.url("/pub/")).collect();
    urls.push(nginx.url("/pub/"));
    let torrent = web_torrent(&fx, "web.torrent", &urls);
    let run = download(&fx, &torrent, &fx.out_dir(), &[], &[]);
    let requests: Vec<u64> = bad.iter().map(BadHttp::requests).collect();
    eprintln!(
        "wrong range, ignores range, redirect loop: {requests:?} requests; nginx: {} requests; \
         wasted {} bytes",
        nginx.accesses().len(),
        run.stats.wasted
    );
    assert!(
        requests.iter().all(|&n| n > 0),
        "a misbehaving server was never asked: {requests:?}"
    );
}

/// e. `--no-web-seeds` with a torrent whose only source is its `url-list`: no HTTP request
/// reaches the server (nginx's access log stays empty) in the seconds the CLI runs.
#[test]
fn no_web_seeds_makes_no_request() {
    require!(Tool::Nginx, Tool::Mktorrent);
    let fx = fixture("unused.bin", SINGLE);
    let site = fx.path().join("site");
    publish(&fx, &site, "files");
    let nginx = Nginx::start("nginx", &site, fx.path(), None);
    let torrent = web_torrent(&fx, "web.torrent", &[nginx.url("/files/")]);
    let mut cli = spawn_cli(
        "cli",
        &fx,
        &torrent,
        &fx.out_dir(),
        &[],
        &["--no-web-seeds"],
    );
    sleep(Duration::from_secs(3));
    assert!(cli.try_wait().is_none(), "{}", cli.failure("exited early"));
    let stats = cli_stop_incomplete(&mut cli);
    let s = harness::stats_for(&stats, &fx.hash);
    assert!(
        !s.complete && s.downloaded == 0,
        "downloaded without a source: {s:?}"
    );
    assert_eq!(
        nginx.access_log(),
        "",
        "requests reached the web seed despite --no-web-seeds"
    );
}
