//! End-to-end downloads through the public API from minimal seeders on
//! loopback, built from the crate's own wire codec. (Interop with real clients
//! is tested against libtorrent, aria2 and others in the workspace's tests/.)

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bittorrent::prelude::*;

use crate::common::{meta_for, payload, plaintext_config, spawn_seeder};

/// Runs a session until the torrent completes (or 60 s pass) and returns the
/// events seen.
/// (The in-process seeders speak plaintext only and count their connections: no MSE/PE.)
async fn download(meta: MetaInfo, store: Arc<MemoryStore>, peers: Vec<SocketAddr>) -> Vec<Event> {
    let (session, mut events) = Session::spawn_with(plaintext_config());
    session.add_torrent(Torrent::new(meta, store).with_peers(peers));
    let mut seen = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.recv().await {
            let done = matches!(event, Event::TorrentComplete { .. });
            seen.push(event);
            if done {
                break;
            }
        }
    })
    .await;
    session.shutdown();
    tokio::time::timeout(Duration::from_secs(10), session.join())
        .await
        .expect("session shuts down promptly");
    assert!(
        outcome.is_ok(),
        "download did not complete; events: {seen:?}"
    );
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_from_one_seeder_with_short_last_piece() {
    let data = Arc::new(payload(3 * 1024 * 1024 + 12_345, 1));
    let meta = meta_for(&data, 64 * 1024);
    let seeder = spawn_seeder(&meta, Arc::clone(&data), false).await;
    let store = Arc::new(MemoryStore::new(&meta));
    let events = download(meta.clone(), Arc::clone(&store), vec![seeder.addr]).await;
    assert_eq!(store.contents(), *data);
    let verified = events
        .iter()
        .filter(|e| matches!(e, Event::PieceVerified { .. }))
        .count();
    assert_eq!(verified, meta.piece_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn downloads_from_three_seeders_using_all_of_them() {
    let data = Arc::new(payload(8 * 1024 * 1024, 2));
    let meta = meta_for(&data, 32 * 1024);
    let mut seeders = Vec::new();
    for _ in 0..3 {
        seeders.push(spawn_seeder(&meta, Arc::clone(&data), false).await);
    }
    let store = Arc::new(MemoryStore::new(&meta));
    download(
        meta,
        Arc::clone(&store),
        seeders.iter().map(|s| s.addr).collect(),
    )
    .await;
    assert_eq!(store.contents(), *data);
    for s in &seeders {
        assert!(
            s.served.load(Ordering::Relaxed) > 0,
            "seeder {} served nothing",
            s.addr
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_seeder_is_banned_and_download_completes() {
    let data = Arc::new(payload(2 * 1024 * 1024, 3));
    let meta = meta_for(&data, 64 * 1024);
    let bad = spawn_seeder(&meta, Arc::clone(&data), true).await;
    let good = spawn_seeder(&meta, Arc::clone(&data), false).await;
    let store = Arc::new(MemoryStore::new(&meta));
    let events = download(meta, Arc::clone(&store), vec![bad.addr, good.addr]).await;
    assert_eq!(
        store.contents(),
        *data,
        "only verified data reached the store"
    );
    let failed = events
        .iter()
        .filter(|e| matches!(e, Event::PieceFailed { .. }))
        .count();
    assert!(
        failed > 0,
        "the corrupt seeder's pieces failed verification"
    );
    let bad_connects = events
        .iter()
        .filter(|e| matches!(e, Event::PeerConnected { addr, .. } if *addr == bad.addr))
        .count();
    assert_eq!(bad_connects, 1, "a banned peer is never reconnected");
    assert_eq!(
        good.accepted.load(Ordering::Relaxed),
        1,
        "the honest seeder was never dropped (an innocent co-contributor is not banned)"
    );
}

#[tokio::test]
async fn shutdown_ends_an_idle_session() {
    let config = SessionConfig {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SessionConfig::default()
    };
    let (session, mut events) = Session::spawn_with(config);
    assert!(session.listen_addr().is_some());
    session.shutdown();
    tokio::time::timeout(Duration::from_secs(5), session.join())
        .await
        .unwrap();
    assert!(session.is_finished());
    assert!(
        events.recv().await.is_none(),
        "the event stream ends with the session"
    );
}
