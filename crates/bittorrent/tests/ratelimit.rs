//! Transfer-rate limits through the public API, on loopback: download and
//! upload limits hold, a torrent's limit applies under a higher session
//! one, and a limit changed at run time takes effect. The bounds are
//! generous (±25% over 3 s, measured again once before failing); precise
//! figures come from scripts/bench-ratelimit.

mod common;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::prelude::*;
use bittorrent::store::Store;
use bytes::Bytes;

use crate::common::{loopback_config, meta_for, payload, plaintext_config, spawn_seeder};

const MB: u64 = 1_000_000;
/// How long a rate is measured over.
const WINDOW: Duration = Duration::from_secs(3);
/// How far a measured rate may be from the limit.
const TOLERANCE: f64 = 0.25;

/// Bytes per second received (or sent) by `torrent` over [`WINDOW`].
async fn measure(torrent: &TorrentHandle, sent: bool) -> f64 {
    let count = |s: &TorrentStats| if sent { s.uploaded } else { s.downloaded };
    let before = count(&torrent.stats().await.unwrap());
    let start = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let after = count(&torrent.stats().await.unwrap());
    (after - before) as f64 / start.elapsed().as_secs_f64()
}

/// Asserts that `torrent` moves about `limit` bytes per second: measured
/// once, and again if the first is off (a busy machine).
async fn assert_rate(torrent: &TorrentHandle, sent: bool, limit: u64, what: &str) {
    let limit = limit as f64;
    let mut rates = Vec::new();
    for _ in 0..2 {
        let rate = measure(torrent, sent).await;
        eprintln!("{what}: {rate:.0} B/s");
        rates.push(rate);
        if (rate - limit).abs() <= TOLERANCE * limit {
            return;
        }
    }
    let stats = torrent.stats().await.unwrap();
    panic!("{what}: rates {rates:.0?} B/s, limit {limit:.0}; {stats:?}");
}

/// A leecher session under `session_limits` with one torrent under
/// `torrent_limits`, fetching 32 MB from three in-process seeders.
async fn leech(
    session_limits: RateLimits,
    torrent_limits: RateLimits,
) -> (SessionHandle, TorrentHandle, Vec<common::TestSeeder>) {
    let data = Arc::new(payload(32 * MB as usize, 7));
    let meta = meta_for(&data, 256 * 1024);
    let mut seeders = Vec::new();
    for _ in 0..3 {
        seeders.push(spawn_seeder(&meta, Arc::clone(&data), false).await);
    }
    let config = SessionConfig {
        rate_limits: session_limits,
        ..plaintext_config()
    };
    let (session, _) = Session::spawn_with(config);
    let store = Arc::new(MemoryStore::new(&meta));
    let torrent = Torrent::new(meta, store)
        .with_peers(seeders.iter().map(|s| s.addr))
        .with_rate_limits(torrent_limits);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    // Warm up: connected, requests in flight, the first burst spent.
    tokio::time::sleep(Duration::from_secs(1)).await;
    (session, handle, seeders)
}

async fn stop(session: &SessionHandle) {
    session.shutdown();
    tokio::time::timeout(Duration::from_secs(10), session.join())
        .await
        .expect("session shuts down promptly");
}

fn down(rate: u64) -> RateLimits {
    RateLimits {
        download: Some(rate),
        upload: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_download_limit_holds_and_no_peer_starves() {
    let (session, torrent, seeders) = leech(down(2 * MB), RateLimits::default()).await;
    assert_rate(&torrent, false, 2 * MB, "session limit 2 MB/s").await;
    let stats = session.stats().await.unwrap();
    assert_eq!(stats.rate_limits, down(2 * MB));
    assert_eq!(
        torrent.stats().await.unwrap().rate_limits,
        RateLimits::default()
    );
    // The bucket is shared, not taken by the first peer to read: each of
    // the three seeders served a fair part of the blocks.
    let served: Vec<usize> = seeders
        .iter()
        .map(|s| s.served.load(Ordering::Relaxed))
        .collect();
    let total: usize = served.iter().sum();
    eprintln!("blocks served per seeder: {served:?}");
    assert!(
        served.iter().all(|&n| n * 5 >= total),
        "blocks served per seeder: {served:?}"
    );
    stop(&session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torrent_limit_holds_under_a_higher_session_limit() {
    let (session, torrent, _seeders) = leech(down(4 * MB), down(MB)).await;
    assert_rate(&torrent, false, MB, "torrent limit 1 MB/s under 4 MB/s").await;
    assert_eq!(torrent.stats().await.unwrap().rate_limits, down(MB));
    stop(&session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_changed_at_run_time_take_effect() {
    let (session, torrent, _seeders) = leech(down(MB), RateLimits::default()).await;
    assert_rate(&torrent, false, MB, "session limit 1 MB/s").await;
    // Raised on the session.
    session.set_rate_limits(down(3 * MB)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_rate(&torrent, false, 3 * MB, "session limit raised to 3 MB/s").await;
    // Lowered on the torrent, under the session's.
    torrent.set_rate_limits(down(MB / 2)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_rate(&torrent, false, MB / 2, "torrent limit set to 0.5 MB/s").await;
    assert_eq!(torrent.stats().await.unwrap().rate_limits, down(MB / 2));
    assert_eq!(session.stats().await.unwrap().rate_limits, down(3 * MB));
    stop(&session).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_limit_holds() {
    let data = payload(16 * MB as usize, 9);
    let meta = meta_for(&data, 256 * 1024);
    let store = Arc::new(MemoryStore::new(&meta));
    for (i, chunk) in data.chunks(meta.piece_length as usize).enumerate() {
        store
            .write_piece(i as u32, &[Bytes::copy_from_slice(chunk)])
            .unwrap();
    }
    let config = SessionConfig {
        rate_limits: RateLimits {
            download: None,
            upload: Some(2 * MB),
        },
        ..loopback_config()
    };
    let (seeder, _) = Session::spawn_with(config);
    let seed = seeder
        .add_torrent_and_wait(Torrent::new(meta.clone(), store))
        .await
        .unwrap();
    // Checked first: the complete store is verified before seeding.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !seed.stats().await.unwrap().complete {
        assert!(
            Instant::now() < deadline,
            "the seeder never became complete"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let seed_addr = seeder.listen_addr().unwrap();
    let (leecher, _) = Session::spawn_with(loopback_config());
    let torrent =
        Torrent::new(meta.clone(), Arc::new(MemoryStore::new(&meta))).with_peers([seed_addr]);
    let leech = leecher.add_torrent_and_wait(torrent).await.unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_rate(&seed, true, 2 * MB, "seeder's upload limit 2 MB/s").await;
    assert_rate(&leech, false, 2 * MB, "leecher under the seeder's limit").await;
    stop(&leecher).await;
    stop(&seeder).await;
}
