//! The `daemon` subcommand end to end: the real binary with `--data` in a
//! temporary directory and `--api 127.0.0.1:0`, driven over HTTP with
//! reqwest, downloading from an in-process seeder (the library) on
//! loopback; good and bad requests, restarts (graceful and kill -9), delete
//! with files, a corrupt state file, a refused non-loopback start.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bittorrent::create::TorrentBuilder;
use bittorrent::prelude::*;
use bittorrent::session::UtpMode;
use serde_json::Value;

const PASSWORD: &str = "secret123";
/// Generous: a busy 2-core machine builds and checks too.
const WAIT: Duration = Duration::from_secs(90);

/// A running daemon and what it printed.
struct Daemon {
    child: Child,
    api: String,
    lines: mpsc::Receiver<String>,
}

impl Daemon {
    fn start(data: &Path, extra: &[&str]) -> Daemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_bittorrent-cli"))
            .arg("daemon")
            .arg("--data")
            .arg(data)
            .args(["--api", "127.0.0.1:0", "-p", "0", "--bind", "127.0.0.1"])
            .args(["--no-dht", "--no-pex", "--no-port-mapping", "--no-tracker"])
            .args(["--utp", "disable"])
            .args(extra)
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the daemon");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + WAIT;
        let api = loop {
            let line = lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
                .expect("the daemon prints its API address");
            eprintln!("daemon: {line}");
            if let Some(addr) = line.strip_prefix("api listening on ") {
                break format!("{addr}/api/v2");
            }
        };
        Daemon { child, api, lines }
    }

    fn root(&self) -> String {
        self.api.trim_end_matches("/api/v2").to_owned()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// SIGTERM, and the exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        self.signal("-TERM");
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                while let Ok(line) = self.lines.try_recv() {
                    eprintln!("daemon: {line}");
                }
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not stop");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn kill9(mut self) {
        self.signal("-KILL");
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client logged in to a daemon.
struct Client {
    http: reqwest::Client,
    api: String,
    cookie: String,
}

impl Client {
    async fn login(api: &str) -> Client {
        let http = reqwest::Client::new();
        let response = http
            .post(format!("{api}/auth/login"))
            .form(&[("username", "admin"), ("password", PASSWORD)])
            .send()
            .await
            .expect("login");
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a SID cookie")
            .to_owned();
        assert!(cookie.starts_with("SID="), "{cookie}");
        assert_eq!(response.text().await.unwrap(), "Ok.");
        Client {
            http,
            api: api.to_owned(),
            cookie,
        }
    }

    async fn post(&self, path: &str, form: &[(&str, &str)]) -> (u16, String) {
        let response = self
            .http
            .post(format!("{}/{path}", self.api))
            .header("cookie", &self.cookie)
            .form(form)
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let response = self
            .http
            .get(format!("{}/{path}", self.api))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(&self, path: &str) -> Value {
        let (status, body) = self.get(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("JSON")
    }

    /// `torrents/add` with one .torrent file and text fields, multipart.
    async fn add_file(&self, torrent: &[u8], fields: &[(&str, &str)]) -> (u16, String) {
        let boundary = "----daemon-api-test";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend(
                format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
                .bytes(),
            );
        }
        body.extend(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"torrents\"; filename=\"t.torrent\"\r\n\
             Content-Type: application/x-bittorrent\r\n\r\n"
        ).bytes());
        body.extend_from_slice(torrent);
        body.extend(format!("\r\n--{boundary}--\r\n").bytes());
        let response = self
            .http
            .post(format!("{}/torrents/add", self.api))
            .header("cookie", &self.cookie)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .expect("request");
        (response.status().as_u16(), response.text().await.unwrap())
    }

    /// The `torrents/info` object of `hash`, if listed.
    async fn info(&self, hash: &str) -> Option<Value> {
        let list = self.json(&format!("torrents/info?hashes={hash}")).await;
        list.as_array()?.first().cloned()
    }

    /// Polls until `hash` has downloaded everything.
    async fn wait_complete(&self, hash: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let info = self.info(hash).await.expect("listed");
            if info["progress"].as_f64() == Some(1.0) {
                return info;
            }
            assert!(Instant::now() < deadline, "not complete: {info}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

/// A two-file torrent of random bytes under `dir/src`, and its seeder.
async fn seeder(dir: &Path) -> (Vec<u8>, String, SocketAddr, SessionHandle, PathBuf) {
    let src = dir.join("src");
    let album = src.join("album");
    std::fs::create_dir_all(album.join("cd1")).unwrap();
    let payload: Vec<u8> = (0..600_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(album.join("cd1/a.bin"), &payload).unwrap();
    std::fs::write(album.join("b.txt"), b"some text\n").unwrap();
    let created = TorrentBuilder::new(&album).build().unwrap();
    let meta = MetaInfo::from_bytes(&created.bytes).unwrap();
    let (session, _events) = Session::spawn_with(SessionConfig {
        listen: Some("127.0.0.1:0".parse().unwrap()),
        use_trackers: false,
        utp: UtpMode::Disable,
        ..SessionConfig::default()
    });
    let store = FileStore::from_meta_info(&src, &meta).unwrap();
    session
        .add_torrent_and_wait(Torrent::new(meta, store))
        .await
        .unwrap();
    let addr = session.listen_addr().unwrap();
    (
        created.bytes,
        created.info_hash.to_hex(),
        addr,
        session,
        album,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_downloads_survives_restarts_and_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (torrent, hash, seed_addr, seed, album) = seeder(dir.path()).await;
    let daemon = Daemon::start(&data, &["--web-password", PASSWORD]);

    // Not logged in: 403; a wrong password: Fails.
    let anon = reqwest::Client::new();
    let status = anon
        .get(format!("{}/app/version", daemon.api))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 403);
    let wrong = anon
        .post(format!("{}/auth/login", daemon.api))
        .form(&[("username", "admin"), ("password", "nope")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.text().await.unwrap(), "Fails.");

    let c = Client::login(&daemon.api).await;
    assert_eq!(c.get("app/version").await, (200, "v5.0.0".into()));
    assert_eq!(c.get("app/webapiVersion").await, (200, "2.11.2".into()));

    // Bad requests change nothing.
    assert_eq!(c.add_file(b"not a torrent", &[]).await.0, 415);
    assert_eq!(c.get("torrents/stop").await.0, 405);
    assert_eq!(c.get("torrents/properties?hash=nothex").await.0, 400);
    let unknown = "0".repeat(40);
    assert_eq!(
        c.get(&format!("torrents/properties?hash={unknown}"))
            .await
            .0,
        404
    );
    let huge = "x".repeat(2 * 1024 * 1024);
    assert_eq!(c.post("torrents/stop", &[("hashes", &huge)]).await.0, 413);
    assert_eq!(c.json("torrents/info").await, Value::Array(Vec::new()));

    // Add with a category and tags, download from the seeder.
    let fields = [("category", "tv"), ("tags", "a,b")];
    assert_eq!(c.add_file(&torrent, &fields).await, (200, "Ok.".into()));
    assert_eq!(c.add_file(&torrent, &[]).await, (200, "Fails.".into()));
    let peers = seed_addr.to_string();
    let (status, _) = c
        .post("torrents/addPeers", &[("hashes", &hash), ("peers", &peers)])
        .await;
    assert_eq!(status, 200);
    let info = c.wait_complete(&hash).await;
    assert_eq!(info["category"], "tv");
    assert_eq!(info["tags"], "a, b");
    let save_path = PathBuf::from(info["save_path"].as_str().unwrap());
    assert_eq!(
        std::fs::read(save_path.join("album/cd1/a.bin")).unwrap(),
        std::fs::read(album.join("cd1/a.bin")).unwrap()
    );

    // Details.
    let files = c.json(&format!("torrents/files?hash={hash}")).await;
    assert_eq!(files.as_array().unwrap().len(), 2, "{files}");
    let props = c.json(&format!("torrents/properties?hash={hash}")).await;
    assert!(props.get("save_path").is_some(), "{props}");
    assert!(c
        .json(&format!("torrents/trackers?hash={hash}"))
        .await
        .is_array());
    assert!(c
        .json(&format!("torrents/pieceStates?hash={hash}"))
        .await
        .is_array());
    let maindata = c.json("sync/maindata?rid=0").await;
    assert_eq!(maindata["full_update"], true);
    assert!(
        maindata["server_state"]["free_space_on_disk"].as_u64() > Some(0),
        "{maindata}"
    );
    assert!(maindata["torrents"].get(&hash).is_some(), "{maindata}");
    let rid = maindata["rid"].as_i64().unwrap().to_string();
    let delta = c.json(&format!("sync/maindata?rid={rid}")).await;
    assert!(delta.get("full_update").is_none(), "{delta}");

    // Streaming through the range server.
    let index = files
        .as_array()
        .unwrap()
        .iter()
        .position(|f| f["name"] == "album/cd1/a.bin")
        .unwrap();
    let stream = anon
        .get(format!("{}/stream/{hash}/{index}", daemon.root()))
        .header("cookie", &c.cookie)
        .header("range", "bytes=10-19")
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 206);
    let expected = std::fs::read(album.join("cd1/a.bin")).unwrap();
    assert_eq!(stream.bytes().await.unwrap().as_ref(), &expected[10..20]);

    // Metrics: behind the login like the API; the finished torrent's series.
    let metrics = format!("{}/metrics", daemon.root());
    let status = anon.get(&metrics).send().await.unwrap().status();
    assert_eq!(status, 403);
    let text = anon
        .get(&metrics)
        .header("cookie", &c.cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series = |name: &str| -> Option<f64> {
        let prefix = format!("{name}{{infohash=\"{hash}\",");
        text.lines()
            .find(|l| l.starts_with(&prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let pieces = series("bittorrent_torrent_pieces");
    assert!(pieces > Some(0.0), "{text}");
    assert_eq!(series("bittorrent_torrent_pieces_have"), pieces, "{text}");
    let downloaded = series("bittorrent_torrent_downloaded_bytes_total");
    assert!(downloaded >= Some(expected.len() as f64), "{text}");
    assert_eq!(series("bittorrent_torrent_error"), Some(0.0), "{text}");

    // Settings and categories.
    let (status, _) = c
        .post("app/setPreferences", &[("json", r#"{"dl_limit":123456}"#)])
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        c.post("app/setPreferences", &[("json", "[1]")]).await.0,
        400
    );
    assert_eq!(
        c.post(
            "torrents/setCategory",
            &[("hashes", &hash), ("category", "nope")]
        )
        .await
        .0,
        409
    );
    assert_eq!(
        c.post("torrents/createCategory", &[("category", "movies")])
            .await
            .0,
        200
    );
    assert_eq!(
        c.post("torrents/createCategory", &[("category", "movies")])
            .await
            .0,
        409
    );
    assert_eq!(c.post("torrents/stop", &[("hashes", &hash)]).await.0, 200);

    // Per-torrent limits, share limits, the queue, the alternative speeds, files.
    let limit = [("hashes", hash.as_str()), ("limit", "1000")];
    assert_eq!(c.post("torrents/setDownloadLimit", &limit).await.0, 200);
    let limits = c
        .json(&format!("torrents/downloadLimit?hashes={hash}"))
        .await;
    assert_eq!(limits[&hash], 1000);
    let share = [
        ("hashes", hash.as_str()),
        ("ratioLimit", "2"),
        ("seedingTimeLimit", "-1"),
    ];
    assert_eq!(c.post("torrents/setShareLimits", &share).await.0, 200);
    assert_eq!(
        c.post("torrents/setShareLimits", &[("hashes", &hash)])
            .await
            .0,
        400
    );
    assert_eq!(
        c.post("torrents/topPrio", &[("hashes", &hash)]).await.0,
        200
    );
    assert_eq!(c.post("transfer/toggleSpeedLimitsMode", &[]).await.0, 200);
    assert_eq!(c.get("transfer/speedLimitsMode").await, (200, "1".into()));
    let bad_file = [("hash", hash.as_str()), ("id", "9"), ("priority", "1")];
    assert_eq!(c.post("torrents/filePrio", &bad_file).await.0, 409);
    let bad_prio = [("hash", hash.as_str()), ("id", "0"), ("priority", "3")];
    assert_eq!(c.post("torrents/filePrio", &bad_prio).await.0, 400);

    // A graceful restart: everything is back, with the stored password.
    assert!(daemon.stop().success());
    let daemon = Daemon::start(&data, &[]);
    let c = Client::login(&daemon.api).await;
    let info = c.info(&hash).await.expect("the torrent is back");
    assert_eq!(
        (info["category"].clone(), info["tags"].clone()),
        ("tv".into(), "a, b".into())
    );
    let prefs = c.json("app/preferences").await;
    assert_eq!(prefs["dl_limit"], 123456);
    assert!(c.json("torrents/categories").await.get("movies").is_some());
    assert_eq!(info["dl_limit"], 1000);
    assert_eq!(info["ratio_limit"], 2.0);
    assert_eq!(c.get("transfer/speedLimitsMode").await, (200, "1".into()));
    assert_eq!(c.post("torrents/start", &[("hashes", &hash)]).await.0, 200);
    c.wait_complete(&hash).await;

    // kill -9 right after answered changes: they are there after restart.
    let magnet = format!("magnet:?xt=urn:btih:{}&dn=pending", "ab".repeat(20));
    assert_eq!(
        c.post("torrents/add", &[("urls", &magnet), ("category", "movies")])
            .await,
        (200, "Ok.".into())
    );
    let (status, _) = c
        .post("app/setPreferences", &[("json", r#"{"up_limit":654321}"#)])
        .await;
    assert_eq!(status, 200);
    daemon.kill9();
    let daemon = Daemon::start(&data, &[]);
    let c = Client::login(&daemon.api).await;
    let pending = c.info(&"ab".repeat(20)).await.expect("the magnet is back");
    assert_eq!(pending["category"], "movies");
    assert!(c.info(&hash).await.is_some());
    assert_eq!(c.json("app/preferences").await["up_limit"], 654321);

    // Removed (files kept), then added back by a magnet link: the metadata
    // comes from the seeder, is saved, and the data on disk is found.
    assert_eq!(c.post("torrents/delete", &[("hashes", &hash)]).await.0, 200);
    assert!(c.info(&hash).await.is_none());
    assert!(save_path.join("album/cd1/a.bin").exists());
    let magnet = format!("magnet:?xt=urn:btih:{hash}&x.pe={seed_addr}");
    assert_eq!(
        c.post("torrents/add", &[("urls", &magnet)]).await,
        (200, "Ok.".into())
    );
    c.wait_complete(&hash).await;
    assert!(data.join(format!("torrents/{hash}.torrent")).exists());
    let deadline = Instant::now() + WAIT;
    while !std::fs::read_to_string(data.join("torrents.json"))
        .unwrap()
        .contains("\"source\": \"torrent\"")
    {
        assert!(
            Instant::now() < deadline,
            "the magnet's record still names the magnet"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Delete with files: the files and the resume record go, nothing else.
    std::fs::write(save_path.join("mine.txt"), b"not the torrent's").unwrap();
    let (status, _) = c
        .post(
            "torrents/delete",
            &[("hashes", &hash), ("deleteFiles", "true")],
        )
        .await;
    assert_eq!(status, 200);
    assert!(c.info(&hash).await.is_none());
    assert!(!save_path.join("album").exists());
    assert!(!save_path
        .join(format!(".bittorrent/{hash}.resume"))
        .exists());
    assert!(save_path.join("mine.txt").exists());
    assert!(!data.join(format!("torrents/{hash}.torrent")).exists());
    assert!(daemon.stop().success());
    seed.shutdown();
    seed.join().await;
}

#[test]
fn a_corrupt_state_file_is_a_clear_error_and_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("torrents.json"), b"{\"version\":1,\"torr").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_bittorrent-cli"))
        .args([
            "daemon",
            "--api",
            "127.0.0.1:0",
            "-p",
            "0",
            "--no-dht",
            "--no-port-mapping",
        ])
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("torrents.json is corrupt"), "{stderr}");
    assert_eq!(
        std::fs::read(dir.path().join("torrents.json")).unwrap(),
        b"{\"version\":1,\"torr"
    );
}

#[test]
fn no_password_on_a_non_loopback_address_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    // Refused before anything binds.
    let output = Command::new(env!("CARGO_BIN_EXE_bittorrent-cli"))
        .args([
            "daemon",
            "--api",
            "0.0.0.0:0",
            "-p",
            "0",
            "--no-dht",
            "--no-port-mapping",
        ])
        .arg("--data")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--web-password"), "{stderr}");
}
