//! Web seeds (BEP 19) end to end: a tiny HTTP/1.1 server in the test, on
//! 127.0.0.1, serves the torrent's files with range requests; torrents with
//! no peer download from it alone, byte for byte, and a server that serves
//! wrong bytes is dropped while a good one completes the download.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::prelude::*;
use bittorrent::torrent::WebSeedState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{loopback_config, meta_for, payload, wait_complete};

const PIECE: u32 = 64 * 1024;

/// An HTTP server with these files (by URL path); it counts connections
/// and requests.
struct HttpServer {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
}

impl HttpServer {
    async fn spawn(files: HashMap<String, Vec<u8>>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let files = Arc::new(files);
        let (accepted, asked) = (Arc::clone(&connections), Arc::clone(&requests));
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                accepted.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(serve(stream, Arc::clone(&files), Arc::clone(&asked)));
            }
        });
        Self {
            addr,
            connections,
            requests,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// Answers requests on one keep-alive connection: `Range: bytes=a-b` gets a
/// 206 with its `Content-Range`, no range the whole file, an unknown path a
/// 404.
async fn serve(
    mut stream: TcpStream,
    files: Arc<HashMap<String, Vec<u8>>>,
    asked: Arc<AtomicUsize>,
) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end);
        asked.fetch_add(1, Ordering::Relaxed);
        let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
        let range = head.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            let spec = value.trim().strip_prefix("bytes=")?;
            let (a, b) = spec.split_once('-')?;
            name.eq_ignore_ascii_case("range")
                .then(|| (a.parse::<u64>().ok(), b.parse::<u64>().ok()))
        });
        let answer = match (files.get(&path), range) {
            (None, _) => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".to_vec(),
            (Some(file), Some((Some(a), Some(b)))) if a <= b && b < file.len() as u64 => {
                let body = &file[a as usize..=b as usize];
                let mut out = format!(
                    "HTTP/1.1 206 Partial Content\r\ncontent-range: bytes {a}-{b}/{}\r\n\
                     content-length: {}\r\n\r\n",
                    file.len(),
                    body.len()
                )
                .into_bytes();
                out.extend_from_slice(body);
                out
            }
            (Some(file), _) => {
                let mut out = format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", file.len())
                    .into_bytes();
                out.extend_from_slice(file);
                out
            }
        };
        if stream.write_all(&answer).await.is_err() {
            return;
        }
    }
}

/// A multi-file torrent "t" of `data` in files `f0`, `f1`, ... of these
/// lengths, whose `url-list` is `urls`.
fn multi_file(data: &[u8], lengths: &[u64], urls: Vec<String>) -> MetaInfo {
    let mut meta = common::multi_file(data, PIECE, lengths);
    meta.url_list = urls;
    meta
}

/// The files of `meta` as a server holds them under `/<prefix>`.
fn server_files(meta: &MetaInfo, data: &[u8], prefix: &str) -> HashMap<String, Vec<u8>> {
    meta.files
        .iter()
        .map(|f| {
            let path = format!("{prefix}{}", f.path.to_string_lossy());
            let bytes = data[f.offset as usize..(f.offset + f.length) as usize].to_vec();
            (path, bytes)
        })
        .collect()
}

fn assert_files(dir: &Path, meta: &MetaInfo, data: &[u8]) {
    for f in &meta.files {
        let on_disk = std::fs::read(dir.join(&f.path)).unwrap();
        let expected = &data[f.offset as usize..(f.offset + f.length) as usize];
        assert!(on_disk == expected, "{} differs", f.path.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_file_torrent_with_only_a_url_list_downloads_from_the_web_seed() {
    let lengths = [300_000, 1, 500_000, 200_000];
    let data = payload(lengths.iter().sum::<u64>() as usize, 5);
    let probe = multi_file(&data, &lengths, Vec::new());
    let server = HttpServer::spawn(server_files(&probe, &data, "/pub/")).await;
    let meta = multi_file(&data, &lengths, vec![server.url("/pub")]);
    let dir = tempfile::tempdir().unwrap();
    let (session, _) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    let started = Instant::now();
    let handle = session
        .add_torrent_and_wait(Torrent::new(meta.clone(), store))
        .await
        .unwrap();
    let stats = wait_complete(&handle).await;
    println!(
        "{} bytes from the web seed in {:?}; {} requests over {} connections",
        data.len(),
        started.elapsed(),
        server.requests.load(Ordering::Relaxed),
        server.connections.load(Ordering::Relaxed)
    );
    assert_files(dir.path(), &meta, &data);
    assert_eq!(stats.web_seed_downloaded, data.len() as u64);
    assert_eq!(stats.downloaded, data.len() as u64);
    assert_eq!(stats.wasted, 0);
    assert_eq!(stats.peers, 0);
    assert_eq!(stats.web_seeds.len(), 1);
    assert_eq!(stats.web_seeds[0].downloaded, data.len() as u64);
    assert!(
        server.connections.load(Ordering::Relaxed) <= 2,
        "keep-alive: one connection, or two at most"
    );
    session.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_file_torrent_downloads_from_a_web_seed_given_by_the_user() {
    let data = payload(700_000, 6);
    let meta = meta_for(&data, PIECE);
    let files = HashMap::from([("/files/payload.bin".to_owned(), data.clone())]);
    let server = HttpServer::spawn(files).await;
    let dir = tempfile::tempdir().unwrap();
    let (session, _) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    // A URL ending in `/` is the directory that holds the file.
    let torrent = Torrent::new(meta.clone(), store)
        .with_web_seeds([server.url("/files/")])
        .unwrap();
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_complete(&handle).await;
    assert_eq!(std::fs::read(dir.path().join("payload.bin")).unwrap(), data);
    assert_eq!(stats.web_seed_downloaded, data.len() as u64);
    session.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_seed_with_a_corrupt_file_is_dropped_and_a_good_one_completes() {
    let lengths = [300_000, 400_000, 350_000];
    let data = payload(lengths.iter().sum::<u64>() as usize, 7);
    let probe = multi_file(&data, &lengths, Vec::new());
    let mut bad_files = server_files(&probe, &data, "/");
    // f0 holds the first pieces: the first web seed's first run.
    for byte in bad_files.get_mut("/t/f0").unwrap().iter_mut().step_by(1000) {
        *byte ^= 0x5a;
    }
    let bad = HttpServer::spawn(bad_files).await;
    let good = HttpServer::spawn(server_files(&probe, &data, "/")).await;
    let (bad_url, good_url) = (bad.url("/"), good.url("/"));
    let meta = multi_file(&data, &lengths, vec![bad_url.clone(), good_url]);
    let dir = tempfile::tempdir().unwrap();
    let (session, mut events) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    let handle = session
        .add_torrent_and_wait(Torrent::new(meta.clone(), store))
        .await
        .unwrap();
    let stats = wait_complete(&handle).await;
    assert_files(dir.path(), &meta, &data);
    assert_eq!(stats.web_seeds[0].state, WebSeedState::Dropped);
    let error = stats.web_seeds[0].last_error.clone().unwrap_or_default();
    assert!(error.contains("hash check"), "{error}");
    assert!(stats.web_seeds[1].downloaded > 0);
    assert!(stats.wasted > 0, "the bad pieces");
    let failed = loop {
        match tokio::time::timeout(Duration::from_secs(5), events.recv()).await {
            Ok(Some(Event::WebSeedFailed { url, dropped, .. })) => break (url, dropped),
            Ok(Some(_)) => {}
            other => panic!("no WebSeedFailed event: {other:?}"),
        }
    };
    assert_eq!(failed, (bad_url, true));
    session.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_and_a_web_seed_share_the_download() {
    let lengths = [5_000_000, 5_000_000];
    let data = payload(lengths.iter().sum::<u64>() as usize, 8);
    let probe = multi_file(&data, &lengths, Vec::new());
    let server = HttpServer::spawn(server_files(&probe, &data, "/")).await;
    let meta = multi_file(&data, &lengths, vec![server.url("/")]);
    // A peer that answers each request 2 ms late: it fetches some pieces
    // while the web seed fetches others.
    let seeder =
        common::spawn_slow_seeder(&meta, Arc::new(data.clone()), Duration::from_millis(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let (session, _) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    let torrent = Torrent::new(meta.clone(), store).with_peers([seeder.addr]);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_complete(&handle).await;
    assert_files(dir.path(), &meta, &data);
    let total = data.len() as u64;
    let from_peer = stats.downloaded - stats.web_seed_downloaded;
    println!(
        "web seed {} bytes, peer {from_peer} bytes, wasted {}",
        stats.web_seed_downloaded, stats.wasted
    );
    assert!(stats.web_seed_downloaded > 0, "{stats:?}");
    assert!(
        stats.wasted <= total / 4,
        "little is fetched twice: {stats:?}"
    );
    session.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_without_web_seeds_uses_none() {
    let data = payload(100_000, 9);
    let mut meta = meta_for(&data, PIECE);
    meta.url_list = vec!["http://127.0.0.1:9/payload.bin".into()];
    let stats_with = |web_seeds: bool| {
        let meta = meta.clone();
        async move {
            let dir = tempfile::tempdir().unwrap();
            let config = SessionConfig {
                web_seeds,
                ..loopback_config()
            };
            let (session, _) = Session::spawn_with(config);
            let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
            let torrent = Torrent::new(meta, store)
                .with_web_seeds(["http://127.0.0.1:9/other/"])
                .unwrap();
            let handle = session.add_torrent_and_wait(torrent).await.unwrap();
            let stats = handle.stats().await.unwrap();
            session.shutdown();
            stats
        }
    };
    let urls: Vec<String> = (stats_with(true).await.web_seeds)
        .into_iter()
        .map(|w| w.url)
        .collect();
    assert_eq!(
        urls,
        [
            "http://127.0.0.1:9/payload.bin",
            "http://127.0.0.1:9/other/"
        ]
    );
    assert!(stats_with(false).await.web_seeds.is_empty());
    let bad = Torrent::new(meta.clone(), MemoryStore::new(&meta)).with_web_seeds(["/relative"]);
    assert!(bad.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_limit_holds_for_a_web_seed() {
    const LIMIT: u64 = 1_000_000;
    let data = payload(12_000_000, 8);
    let meta = meta_for(&data, PIECE);
    let files = HashMap::from([("/payload.bin".to_owned(), data.clone())]);
    let server = HttpServer::spawn(files).await;
    let (session, _) = Session::spawn_with(loopback_config());
    let limits = RateLimits {
        download: Some(LIMIT),
        upload: None,
    };
    let torrent = Torrent::new(meta.clone(), Arc::new(MemoryStore::new(&meta)))
        .with_web_seeds([server.url("/payload.bin")])
        .unwrap()
        .with_rate_limits(limits);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Measured over 3 s, and once more if off (a busy machine); ±25%.
    let mut rates = Vec::new();
    for _ in 0..2 {
        let before = handle.stats().await.unwrap().web_seed_downloaded;
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = handle.stats().await.unwrap().web_seed_downloaded;
        let rate = (after - before) as f64 / start.elapsed().as_secs_f64();
        println!("web seed under a {LIMIT} B/s limit: {rate:.0} B/s");
        rates.push(rate);
        if (rate - LIMIT as f64).abs() <= 0.25 * LIMIT as f64 {
            break;
        }
    }
    let last = rates[rates.len() - 1];
    assert!(
        (last - LIMIT as f64).abs() <= 0.25 * LIMIT as f64,
        "rates {rates:.0?} B/s under a limit of {LIMIT}"
    );
    session.shutdown();
}
