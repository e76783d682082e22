//! Our client to our client over uTP (BEP 29) only, through the public API,
//! on loopback.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::prelude::*;
use bittorrent::session::UtpMode;
use bittorrent::store::Store;
use bytes::Bytes;

use crate::common::{loopback_config, meta_for, payload};

/// A session seeding `data`, with uTP in `utp` mode.
async fn seeder(meta: &MetaInfo, data: &[u8], utp: UtpMode) -> SessionHandle {
    let (session, _) = Session::spawn_with(SessionConfig {
        utp,
        ..loopback_config()
    });
    let store = Arc::new(MemoryStore::new(meta));
    for (i, chunk) in data.chunks(meta.piece_length as usize).enumerate() {
        store
            .write_piece(i as u32, &[Bytes::copy_from_slice(chunk)])
            .unwrap();
    }
    let handle = session
        .add_torrent_and_wait(Torrent::new(meta.clone(), store))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.stats().await.unwrap().complete && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    session
}

/// A leecher that dials over uTP only, of `meta` from `peer`; returns its
/// session, torrent and store.
async fn utp_leecher(
    meta: &MetaInfo,
    peer: std::net::SocketAddr,
) -> (SessionHandle, TorrentHandle, Arc<MemoryStore>) {
    let (session, _) = Session::spawn_with(SessionConfig {
        utp: UtpMode::Only,
        ..loopback_config()
    });
    let store = Arc::new(MemoryStore::new(meta));
    let torrent = Torrent::new(meta.clone(), Arc::clone(&store)).with_peers([peer]);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    (session, handle, store)
}

async fn stop(sessions: &[&SessionHandle]) {
    for s in sessions {
        s.shutdown();
        tokio::time::timeout(Duration::from_secs(10), s.join())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_seeder_serves_our_leecher_over_utp_only() {
    let data = payload(4 * 1024 * 1024 + 12345, 29);
    let meta = meta_for(&data, 256 * 1024);

    // The control: a seeder without uTP is not reached by a uTP-only
    // leecher, though its TCP port is open at the same address.
    let tcp_only = seeder(&meta, &data, UtpMode::Disable).await;
    let (leecher, handle, _) = utp_leecher(&meta, tcp_only.listen_addr().unwrap()).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stats = handle.stats().await.unwrap();
    assert_eq!(
        (stats.peers, stats.downloaded),
        (0, 0),
        "uTP-only leecher reached a TCP-only seeder: {stats:?}"
    );
    stop(&[&leecher, &tcp_only]).await;

    let seed = seeder(&meta, &data, UtpMode::Fallback).await;
    let started = Instant::now();
    let (leecher, handle, store) = utp_leecher(&meta, seed.listen_addr().unwrap()).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !handle.stats().await.unwrap().complete && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = handle.stats().await.unwrap();
    assert!(
        stats.complete,
        "leecher did not complete over uTP: {stats:?}"
    );
    assert_eq!(store.contents(), data, "byte-identical");
    let secs = started.elapsed().as_secs_f64();
    println!(
        "uTP ours-to-ours: {} bytes in {secs:.2} s ({:.1} MB/s, debug build)",
        data.len(),
        data.len() as f64 / secs / 1e6
    );
    stop(&[&leecher, &seed]).await;
}
