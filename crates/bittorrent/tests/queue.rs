//! The session's queue, start paused, share limits, reannounce and recheck
//! through the public API, with in-process peers and a tracker on loopback.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::limits::{QueueConfig, QueueMove, ShareLimits};
use bittorrent::prelude::*;
use bittorrent::store::{Store, StoreError};
use bittorrent::torrent::PieceState;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::common::{
    full_store, loopback_config, meta_for, payload, plaintext_config, spawn_peer, spawn_seeder,
    spawn_slow_seeder, wait_complete, wait_for, TestSeeder,
};

/// A session that runs at most `downloads` downloads at once.
fn queued_session(downloads: usize) -> (SessionHandle, EventReceiver) {
    Session::spawn_with(SessionConfig {
        queue: QueueConfig {
            max_active_downloads: Some(downloads),
            ..QueueConfig::default()
        },
        ..plaintext_config()
    })
}

/// A torrent of `len` bytes (seeded by `seed`) and a seeder of it: a slow
/// one answering each request 30 ms late, or one that never unchokes.
enum Seeder {
    Fast,
    Slow,
    Choking,
}

async fn torrent_and_seeder(len: usize, seed: u64, kind: Seeder) -> (Torrent, TestSeeder) {
    let data = Arc::new(payload(len, seed));
    let meta = meta_for(&data, 64 * 1024);
    let seeder = match kind {
        Seeder::Fast => spawn_seeder(&meta, Arc::clone(&data), false).await,
        Seeder::Slow => spawn_slow_seeder(&meta, data, Duration::from_millis(30)).await,
        Seeder::Choking => spawn_peer(&meta, data, false, false).await,
    };
    let store = MemoryStore::new(&meta);
    let torrent = Torrent::new(meta, store).with_peers([seeder.addr]);
    (torrent, seeder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_one_download_slot_the_second_torrent_waits_for_the_first() {
    let (session, mut events) = queued_session(1);
    // 2 MiB from a seeder that pauses 30 ms per block: 4 s at least.
    let (first, _slow) = torrent_and_seeder(2 << 20, 1, Seeder::Slow).await;
    let (second, fast) = torrent_and_seeder(512 << 10, 2, Seeder::Fast).await;
    let first = session.add_torrent_and_wait(first).await.unwrap();
    let second = session.add_torrent_and_wait(second).await.unwrap();
    let waiting = wait_for(&second, Duration::from_secs(10), |s| {
        s.state == TorrentState::Queued
    })
    .await;
    assert_eq!(waiting.state, TorrentState::Queued, "{waiting:?}");
    assert!(!first.stats().await.unwrap().complete);
    assert_eq!(
        fast.accepted.load(Ordering::Relaxed),
        0,
        "no peer while queued"
    );
    let stats = session.stats().await.unwrap();
    assert_eq!(stats.queue, [first.info_hash(), second.info_hash()]);
    wait_complete(&first).await;
    wait_complete(&second).await;
    // The second connected to its seeder only after the first completed.
    let mut order = Vec::new();
    // Every event is already buffered: drain them.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(50), events.recv()).await
    {
        match event {
            Event::TorrentComplete { info_hash } if info_hash == first.info_hash() => {
                order.push("first complete")
            }
            Event::PeerConnected { info_hash, .. } if info_hash == second.info_hash() => {
                order.push("second connected")
            }
            _ => {}
        }
    }
    assert_eq!(order.first(), Some(&"first complete"), "{order:?}");
    assert!(order.contains(&"second connected"), "{order:?}");
    // Torrents publish their totals once a second.
    let both = (2 << 20) + (512 << 10);
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut stats = session.stats().await.unwrap();
    while stats.downloaded < both && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        stats = session.stats().await.unwrap();
    }
    assert!(stats.downloaded >= both, "{stats:?}");
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_torrent_runs_past_a_full_queue() {
    let (session, _events) = queued_session(1);
    // The first never gets a block: it holds the only slot for good.
    let (stuck, _choking) = torrent_and_seeder(1 << 20, 3, Seeder::Choking).await;
    let (forced, _fast) = torrent_and_seeder(512 << 10, 4, Seeder::Fast).await;
    let (waiting, waiting_seeder) = torrent_and_seeder(512 << 10, 5, Seeder::Fast).await;
    let stuck = session.add_torrent_and_wait(stuck).await.unwrap();
    let forced = (session.add_torrent_and_wait(forced.with_force_start(true)))
        .await
        .unwrap();
    let waiting = session.add_torrent_and_wait(waiting).await.unwrap();
    let done = wait_complete(&forced).await;
    assert!(done.force_start);
    let stats = waiting.stats().await.unwrap();
    assert_eq!(stats.state, TorrentState::Queued, "{stats:?}");
    assert_eq!(waiting_seeder.accepted.load(Ordering::Relaxed), 0);
    // Force-start is a switch: off, a complete torrent is a seed, not a download.
    forced.set_force_start(false).await.unwrap();
    // Once the stuck one goes, the waiting one runs.
    assert!(session.remove_torrent(stuck.info_hash()).await.unwrap());
    wait_complete(&waiting).await;
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moving_a_torrent_to_the_top_of_the_queue_runs_it_first() {
    let (session, _events) = queued_session(1);
    let (stuck, _choking) = torrent_and_seeder(1 << 20, 6, Seeder::Choking).await;
    let (moved, _fast) = torrent_and_seeder(512 << 10, 7, Seeder::Fast).await;
    let stuck = session.add_torrent_and_wait(stuck).await.unwrap();
    let moved = session.add_torrent_and_wait(moved).await.unwrap();
    let stats = wait_for(&moved, Duration::from_secs(10), |s| {
        s.state == TorrentState::Queued
    })
    .await;
    assert_eq!(stats.state, TorrentState::Queued);
    let top = (session.move_in_queue(moved.info_hash(), QueueMove::Top)).await;
    assert!(top.unwrap());
    let order = session.stats().await.unwrap().queue;
    assert_eq!(order, [moved.info_hash(), stuck.info_hash()]);
    wait_complete(&moved).await;
    // Now a seed, it no longer takes the download slot: the first runs again.
    let stats = wait_for(&stuck, Duration::from_secs(10), |s| {
        s.state == TorrentState::Downloading
    })
    .await;
    assert_eq!(stats.state, TorrentState::Downloading);
    let unknown = InfoHash([9; 20]);
    assert!(!session.move_in_queue(unknown, QueueMove::Up).await.unwrap());
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torrent_added_paused_neither_connects_nor_downloads_until_resumed() {
    let (session, _events) = Session::spawn_with(plaintext_config());
    let (torrent, seeder) = torrent_and_seeder(512 << 10, 8, Seeder::Fast).await;
    let handle = (session.add_torrent_and_wait(torrent.with_paused(true)))
        .await
        .unwrap();
    // Checked, then paused (qBittorrent checks, then stops).
    let stats = wait_for(&handle, Duration::from_secs(10), |s| {
        s.state != TorrentState::Checking
    })
    .await;
    assert_eq!(stats.state, TorrentState::Paused);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seeder.accepted.load(Ordering::Relaxed), 0);
    handle.resume().await.unwrap();
    wait_complete(&handle).await;
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seeder_pauses_at_its_share_ratio() {
    let data = payload(2 << 20, 9);
    let meta = meta_for(&data, 64 * 1024);
    let limits = ShareLimits {
        ratio: Some(0.5),
        ..ShareLimits::default()
    };
    let (seeder, mut events) = Session::spawn_with(SessionConfig {
        share_limits: limits,
        ..loopback_config()
    });
    let seeding = Torrent::new(meta.clone(), full_store(&meta, &data));
    let seeding = seeder.add_torrent_and_wait(seeding).await.unwrap();
    wait_for(&seeding, Duration::from_secs(10), |s| s.complete).await;
    let addr = seeder.listen_addr().unwrap();
    let (leecher, _) = Session::spawn_with(loopback_config());
    let store = MemoryStore::new(&meta);
    leecher.add_torrent(Torrent::new(meta.clone(), store).with_peers([addr]));
    let reached = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(event) = events.recv().await {
            if matches!(event, Event::ShareLimitReached { info_hash } if info_hash == meta.info_hash)
            {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(reached, Ok(true));
    let stats = seeding.stats().await.unwrap();
    assert_eq!(stats.state, TorrentState::Paused);
    assert!(stats.ratio() >= 0.5, "{}", stats.ratio());
    assert_eq!(stats.peers, 0);
    let session = seeder.stats().await.unwrap();
    assert_eq!(session.uploaded, stats.uploaded);
    leecher.shutdown();
    seeder.shutdown();
    leecher.join().await;
    seeder.join().await;
}

/// An HTTP tracker on loopback that counts announces and returns no peers.
async fn counting_tracker() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/announce", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&count);
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match conn.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                if request.starts_with(b"GET /announce") {
                    counter.fetch_add(1, Ordering::SeqCst);
                }
                let body = b"d8:intervali1800e5:peers0:e";
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = conn.write_all(head.as_bytes()).await;
                let _ = conn.write_all(body).await;
            });
        }
    });
    (url, count)
}

async fn wait_count(count: &AtomicUsize, at_least: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(15);
    while count.load(Ordering::SeqCst) < at_least && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    count.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reannounce_reaches_the_tracker_at_once() {
    let (url, count) = counting_tracker().await;
    let data = payload(256 << 10, 10);
    let mut meta = meta_for(&data, 64 * 1024);
    meta.trackers = vec![vec![url]];
    let (session, _events) = Session::spawn_with(SessionConfig {
        use_trackers: true,
        ..loopback_config()
    });
    let torrent = Torrent::new(meta.clone(), full_store(&meta, &data));
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    assert_eq!(wait_count(&count, 1).await, 1, "the first announce");
    // The tracker asked for 30 minutes: nothing more comes by itself.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(count.load(Ordering::SeqCst), 1);
    handle.reannounce().await.unwrap();
    assert_eq!(wait_count(&count, 2).await, 2, "announced again at once");
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_finds_a_corrupted_piece() {
    let data = payload(1 << 20, 11);
    let meta = meta_for(&data, 64 * 1024);
    let store = full_store(&meta, &data);
    let (session, _events) = Session::spawn_with(loopback_config());
    let torrent = Torrent::new(meta.clone(), Arc::clone(&store));
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(10), |s| s.complete).await;
    assert_eq!(stats.pieces_have, 16);
    store
        .write_piece(5, &[Bytes::from(vec![0u8; 64 * 1024])])
        .unwrap();
    handle.recheck().await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(10), |s| {
        s.state != TorrentState::Checking
    })
    .await;
    assert_eq!(stats.pieces_have, 15, "{stats:?}");
    assert!(!stats.complete);
    assert_eq!(stats.state, TorrentState::Downloading);
    let states = handle.piece_states().await.unwrap();
    assert_eq!(states[5], PieceState::Missing);
    let have = states.iter().filter(|s| **s == PieceState::Have).count();
    assert_eq!(have, 15);
    let progress = handle.file_progress().await.unwrap();
    assert_eq!(progress, [(1 << 20) - 64 * 1024]);
    session.shutdown();
    session.join().await;
}

/// A memory store whose writes fail while `full` is set (a full disk).
struct FlakyStore {
    inner: MemoryStore,
    full: Arc<AtomicBool>,
}

impl Store for FlakyStore {
    fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        if self.full.load(Ordering::SeqCst) {
            return Err(StoreError::Io {
                op: "write",
                path: "payload.bin".into(),
                source: std::io::Error::other("no space left on device"),
            });
        }
        self.inner.write_blocks(index, begin, blocks)
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        self.inner.read_block(index, begin, length)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_error_holds_the_torrent_in_state_error_until_resumed() {
    let data = Arc::new(payload(1 << 20, 12));
    let meta = meta_for(&data, 64 * 1024);
    let seeder = spawn_seeder(&meta, Arc::clone(&data), false).await;
    let full = Arc::new(AtomicBool::new(true));
    let store = FlakyStore {
        inner: MemoryStore::new(&meta),
        full: Arc::clone(&full),
    };
    let (session, _events) = Session::spawn_with(plaintext_config());
    let torrent = Torrent::new(meta, store).with_peers([seeder.addr]);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(15), |s| {
        s.state == TorrentState::Error
    })
    .await;
    assert_eq!(stats.state, TorrentState::Error, "{stats:?}");
    let message = stats.error.unwrap_or_default();
    assert!(message.contains("no space left"), "{message}");
    // Alive, without peers.
    let stats = wait_for(&handle, Duration::from_secs(10), |s| s.peers == 0).await;
    assert_eq!((stats.state, stats.peers), (TorrentState::Error, 0));
    full.store(false, Ordering::SeqCst);
    handle.resume().await.unwrap();
    let stats = wait_complete(&handle).await;
    assert_eq!(stats.error, None);
    session.shutdown();
    session.join().await;
}
