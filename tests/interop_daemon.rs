//! The daemon (`bittorrent-cli daemon`) driven by what drives qBittorrent: the PyPI client
//! qbittorrent-api, the endpoints the *arr apps call (with curl), restarts (SIGTERM, then
//! kill -9 in the middle of a download), and headless Chromium on the built-in page.
//!
//! Every case starts a Web API server ([`ApiServer`]: ours, or qbittorrent-nox with
//! `BT_INTEROP_DAEMON=qbittorrent`, which checks the flows themselves), an opentracker and
//! libtorrent seeders of payloads generated into a scratch directory, then runs a python flow of
//! tests/peers (`qbt_*.py`) against the server's URL; the flow exits non-zero with a `FAIL`
//! line on the first mismatch. Everything is on 127.0.0.1; `scripts/test` runs these tests in
//! a loopback-only network namespace. Two reference cases run against qbittorrent-nox (4.5 here)
//! in every run: the qbittorrent-api flow, and the Chromium driver on tests/peers/qbt_page (a
//! minimal page with our page's element ids, qbittorrent-nox's alternative Web UI); if they
//! fail, the failures of ours say nothing about the daemon. The flows accept qBittorrent 4.x and
//! 5.x spellings where they differ (pause/stop, paused*/stopped* states).
//! Run them alone with `cargo test -p bittorrent-cli --test interop_daemon -- --nocapture`.

#[macro_use]
mod harness;

use std::path::Path;
use std::time::Duration;

use harness::daemon::{run_flow, ApiServer, ServerKind, PASSWORD, USER};
use harness::fixture::{Fixture, MIB};
use harness::trackers::http_url;
use harness::{Proc, Tool, Tracker, START_TIMEOUT};

/// How long one python flow may take.
const FLOW_TIMEOUT: Duration = Duration::from_secs(180);

/// A single-file payload, its torrent and a libtorrent seeder of it.
struct Seeded {
    fx: Fixture,
    port: u16,
    _seeder: Proc,
}

/// The payload `name` of `len` bytes (from `seed`), its torrent announcing to `announce`.
fn payload(name: &str, len: u64, seed: u64, announce: &str) -> Fixture {
    Fixture::with_payload_seed(name, &[("", len)], Some(announce), seed)
}

impl Seeded {
    /// Starts a libtorrent seeder of `fx` (with lt_peer.py arguments `extra`).
    fn seed(fx: Fixture, extra: &[&str]) -> Seeded {
        let (seeder, port) = harness::lt_seeder_with(
            &format!("seeder-{}", fx.name()),
            &fx.torrent,
            &fx.seed_dir,
            fx.path(),
            extra,
        );
        Seeded {
            fx,
            port,
            _seeder: seeder,
        }
    }

    fn hex(&self) -> String {
        hex::encode(self.fx.hash)
    }

    /// `FILE:HEX:CONTENT` for the flows: the .torrent, the info-hash, the seeder's copy.
    fn spec(&self) -> String {
        format!(
            "{}:{}:{}",
            self.fx.torrent.display(),
            self.hex(),
            self.fx.content.display()
        )
    }

    /// A magnet with the seeder's address in `x.pe` (no tracker): metadata and data from it.
    fn magnet(&self) -> String {
        format!(
            "magnet:?xt=urn:btih:{}&dn={}&x.pe=127.0.0.1:{}",
            self.hex(),
            self.fx.name(),
            self.port
        )
    }

    /// `MAGNET:HEX:CONTENT` for the flows.
    fn magnet_spec(&self) -> String {
        format!(
            "{}:{}:{}",
            self.magnet(),
            self.hex(),
            self.fx.content.display()
        )
    }
}

/// An opentracker whitelisting `fixtures`, then a libtorrent seeder of each (with `extra`).
fn swarm(dir: &Path, port: u16, fixtures: Vec<(Fixture, &[&str])>) -> (Tracker, Vec<Seeded>) {
    let hashes: Vec<[u8; 20]> = fixtures.iter().map(|(fx, _)| fx.hash).collect();
    let tracker = Tracker::start(dir, port, &hashes);
    let seeded = fixtures
        .into_iter()
        .map(|(fx, extra)| Seeded::seed(fx, extra))
        .collect();
    (tracker, seeded)
}

/// The arguments every flow takes: the server's URL and credentials, its save path.
fn server_args(server: &ApiServer) -> Vec<String> {
    vec![
        "--url".into(),
        server.url.clone(),
        "--user".into(),
        USER.into(),
        "--password".into(),
        PASSWORD.into(),
        "--save".into(),
        server.save_path.display().to_string(),
    ]
}

/// The qbittorrent-api flow (tests/peers/qbt_api_flow.py) against `kind`: a .torrent and a
/// magnet with category and tags, completion, files/properties/trackers, pause/resume by both
/// names, limits read back, a 1 MB/s limit measured, delete with files.
fn api_flow(kind: ServerKind) {
    require!(
        Tool::Opentracker,
        Tool::Mktorrent,
        Tool::Libtorrent,
        Tool::QbtApi
    );
    if !harness::have(&kind.tools()) {
        return;
    }
    let dir = harness::scratch();
    let port = harness::free_port();
    let url = http_url(port);
    let (_tracker, seeded) = swarm(
        dir.path(),
        port,
        vec![
            (payload("alpha.bin", 3 * MIB + 123, 11, &url), &[]),
            (payload("bravo.bin", 2 * MIB + 77, 12, &url), &[]),
            (payload("charlie.bin", 32 * MIB, 13, &url), &[]),
        ],
    );
    let server = ApiServer::start(kind, dir.path(), "server", &[]);
    let mut args = server_args(&server);
    args.extend([
        "--tracker".into(),
        url,
        "--torrent".into(),
        seeded[0].spec(),
        "--magnet".into(),
        seeded[1].magnet_spec(),
        "--limited".into(),
        seeded[2].spec(),
    ]);
    let out = run_flow(
        "api-flow",
        "qbt_api_flow.py",
        &args,
        dir.path(),
        FLOW_TIMEOUT,
    );
    eprintln!("{out}");
    assert!(out.lines().any(|l| l == "PASS"), "no PASS line:\n{out}");
    server.assert_password_hidden();
}

/// Case 1: qbittorrent-api against the server of `BT_INTEROP_DAEMON` (ours by default).
#[test]
fn api_flow_qbittorrent_api_client() {
    api_flow(ServerKind::from_env());
}

/// Case 1': The same flow against qbittorrent-nox: the flow itself is right.
#[test]
fn api_flow_reference_qbittorrent_nox() {
    api_flow(ServerKind::Qbittorrent);
}

/// The *arr apps' calls (tests/peers/qbt_arr_flow.py, with curl) against `kind`.
fn arr_flow(kind: ServerKind) {
    require!(
        Tool::Opentracker,
        Tool::Mktorrent,
        Tool::Libtorrent,
        Tool::QbtApi,
        Tool::Curl
    );
    if !harness::have(&kind.tools()) {
        return;
    }
    let dir = harness::scratch();
    let port = harness::free_port();
    let url = http_url(port);
    let fx = payload("episode.mkv", 2 * MIB + 555, 21, &url);
    let (_tracker, seeded) = swarm(dir.path(), port, vec![(fx, &[])]);
    let server = ApiServer::start(kind, dir.path(), "server", &[]);
    let mut args = server_args(&server);
    args.extend(["--magnet".into(), seeded[0].magnet_spec()]);
    let out = run_flow(
        "arr-flow",
        "qbt_arr_flow.py",
        &args,
        dir.path(),
        FLOW_TIMEOUT,
    );
    eprintln!("{out}");
    assert!(out.lines().any(|l| l == "PASS"), "no PASS line:\n{out}");
}

/// Case 2: The *arr endpoints with curl, against the server of `BT_INTEROP_DAEMON` (ours by default).
#[test]
fn arr_flow_curl() {
    arr_flow(ServerKind::from_env());
}

/// Case 3: Restarts: a download in the middle (its seeder capped at 2 MB/s) and a complete, paused
/// torrent with category, tags and limits; preferences set. SIGTERM and start again: all back,
/// the download goes on; kill -9 in the middle and start again: all back, the download completes.
#[test]
fn restart_graceful_then_kill9() {
    require!(
        Tool::Opentracker,
        Tool::Mktorrent,
        Tool::Libtorrent,
        Tool::QbtApi
    );
    let kind = ServerKind::from_env();
    if !harness::have(&kind.tools()) {
        return;
    }
    let dir = harness::scratch();
    let port = harness::free_port();
    let url = http_url(port);
    let (tracker, seeded) = swarm(
        dir.path(),
        port,
        vec![
            (
                payload("movie.bin", 24 * MIB, 31, &url),
                &["--upload-limit", "2000000"],
            ),
            (payload("small.bin", MIB + 1, 32, &url), &[]),
        ],
    );
    let mut server = ApiServer::start(kind, dir.path(), "server", &[]);
    let state = dir.path().join("snapshot.json");
    let flow = |server: &ApiServer, step: &str, name: &str, extra: &[&str]| {
        let mut args = vec![step.to_string()];
        args.extend(server_args(server));
        args.extend([
            "--state".into(),
            state.display().to_string(),
            "--downloading".into(),
            seeded[0].spec(),
            "--complete".into(),
            seeded[1].spec(),
        ]);
        args.extend(extra.iter().map(|s| s.to_string()));
        eprintln!(
            "{}",
            run_flow(name, "qbt_restart.py", &args, dir.path(), FLOW_TIMEOUT)
        );
    };
    flow(&server, "setup", "restart-setup", &[]);
    let movie = seeded[0].fx.hash;
    tracker.wait_leechers(&movie, 1, START_TIMEOUT);
    let status = server.stop();
    assert!(
        status.success(),
        "{}",
        server.failure(&format!("exited {status} after SIGTERM"))
    );
    // A graceful stop tells the tracker `stopped`: it no longer lists the leecher.
    let left = harness::poll(START_TIMEOUT, Duration::from_millis(200), || {
        (tracker.leechers(&movie) == Some(0)).then_some(())
    });
    assert!(
        left.is_some(),
        "the tracker still lists {:?} leechers after SIGTERM (no `stopped` announce)",
        tracker.leechers(&movie)
    );
    server.restart();
    tracker.wait_leechers(&movie, 1, START_TIMEOUT);
    flow(
        &server,
        "check",
        "restart-graceful",
        &["--graceful", "--gain", "0.05", "--resnapshot"],
    );
    server.kill();
    server.restart();
    flow(&server, "check", "restart-kill9", &["--wait-complete"]);
    server.assert_data_dir(&[seeded[0].fx.hash, seeded[1].fx.hash]);
    server.assert_password_hidden();
}

/// Headless Chromium on the page of `kind` (qbittorrent-nox serves tests/peers/qbt_page, a
/// minimal page with our page's element ids): a torrent added through the API is listed, a
/// magnet typed into the page is added and downloads from its seeder.
fn chromium_page(kind: ServerKind, bypass: bool) {
    require!(
        Tool::Mktorrent,
        Tool::Libtorrent,
        Tool::QbtApi,
        Tool::Chromium,
        Tool::Opentracker
    );
    if !harness::have(&kind.tools()) {
        return;
    }
    let dir = harness::scratch();
    let port = harness::free_port();
    let url = http_url(port);
    let (_tracker, seeded) = swarm(
        dir.path(),
        port,
        vec![
            (payload("listed.bin", MIB + 3, 41, &url), &[]),
            (payload("from-page.bin", 3 * MIB + 5, 42, &url), &[]),
        ],
    );
    let page = harness::daemon::peer_script("qbt_page");
    let extra: &[&str] = if bypass {
        &["--bypass-local-auth"]
    } else {
        &[]
    };
    let server = ApiServer::start_with_page(kind, dir.path(), "server", extra, Some(&page));
    let chromium = harness::which("chromium").expect("chromium");
    let mut args = server_args(&server);
    args.extend([
        "--chromium".into(),
        chromium.display().to_string(),
        "--listed".into(),
        seeded[0].spec(),
        "--magnet".into(),
        seeded[1].magnet_spec(),
    ]);
    let out = run_flow(
        "chromium",
        "qbt_chromium.py",
        &args,
        dir.path(),
        FLOW_TIMEOUT,
    );
    eprintln!("{out}");
    assert!(out.lines().any(|l| l == "PASS"), "no PASS line:\n{out}");
}

/// Case 4: Chromium drives the page of the server of `BT_INTEROP_DAEMON` (ours by default).
#[test]
fn chromium_page_lists_and_adds_magnet() {
    chromium_page(ServerKind::from_env(), false);
}

/// Case 4 with `--bypass-local-auth` (ours only): the page shows the list without a login.
#[test]
fn chromium_page_bypass_local_auth() {
    if ServerKind::from_env() == ServerKind::Ours {
        chromium_page(ServerKind::Ours, true);
    }
}

/// Case 4': The same against qbittorrent-nox serving the reference page: the driver is right.
#[test]
fn chromium_page_reference_qbittorrent_nox() {
    chromium_page(ServerKind::Qbittorrent, false);
}
