//! End-to-end downloads through the public API from minimal seeders on
//! loopback, built from the crate's own wire codec. (Interop with real clients
//! is tested against libtorrent, aria2 and others in the workspace's tests/.)

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bittorrent::metainfo::FileEntry;
use bittorrent::prelude::*;
use bittorrent::wire::{Handshake, HandshakeCodec, Message, MessageCodec};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sha1::{Digest, Sha1};
use tokio::net::TcpListener;
use tokio_util::codec::{Framed, FramedParts};

/// Deterministic pseudo-random payload.
fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn meta_for(data: &[u8], piece_length: u32) -> MetaInfo {
    let piece_hashes: Vec<[u8; 20]> = data
        .chunks(piece_length as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let mut info_hash = [0u8; 20];
    info_hash.copy_from_slice(&Sha1::digest(data)[..]);
    MetaInfo {
        info_hash: InfoHash(info_hash),
        name: "payload.bin".into(),
        piece_length,
        piece_hashes,
        files: vec![FileEntry {
            path: "payload.bin".into(),
            length: data.len() as u64,
            offset: 0,
            pad: false,
        }],
        total_length: data.len() as u64,
        trackers: Vec::new(),
        private: false,
        multi_file: false,
        comment: None,
        created_by: None,
        creation_date: None,
        url_list: Vec::new(),
        info_bytes: Bytes::new(),
    }
}

/// A seeder that serves `data` to everyone; if `corrupt`, every block it
/// sends has its first byte flipped. Counts the blocks it served.
struct TestSeeder {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
}

async fn spawn_seeder(meta: &MetaInfo, data: Arc<Vec<u8>>, corrupt: bool) -> TestSeeder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let info_hash = meta.info_hash;
    let piece_length = meta.piece_length as usize;
    let piece_count = meta.piece_count();
    let counter = Arc::clone(&served);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let data = Arc::clone(&data);
            let counter = Arc::clone(&counter);
            tokio::spawn(async move {
                let mut hs = Framed::new(stream, HandshakeCodec);
                let Some(Ok(theirs)) = hs.next().await else {
                    return;
                };
                assert_eq!(theirs.info_hash, info_hash);
                let me = PeerId::generate();
                if hs.send(Handshake::new(info_hash, me)).await.is_err() {
                    return;
                }
                let parts = hs.into_parts();
                let mut next = FramedParts::new::<Message>(parts.io, MessageCodec::default());
                next.read_buf = parts.read_buf;
                let mut conn = Framed::from_parts(next);
                let mut bits = vec![0u8; piece_count.div_ceil(8)];
                for i in 0..piece_count {
                    bits[i / 8] |= 0x80 >> (i % 8);
                }
                let _ = conn.send(Message::Bitfield(Bytes::from(bits))).await;
                let _ = conn.send(Message::Unchoke).await;
                while let Some(Ok(msg)) = conn.next().await {
                    if let Message::Request(b) = msg {
                        let start = b.piece as usize * piece_length + b.begin as usize;
                        let mut block = data[start..start + b.length as usize].to_vec();
                        if corrupt {
                            block[0] ^= 0xff;
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                        let piece = Message::Piece {
                            piece: b.piece,
                            begin: b.begin,
                            data: Bytes::from(block),
                        };
                        if conn.send(piece).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    TestSeeder { addr, served }
}

/// Runs a session until the torrent completes (or 60 s pass) and returns the
/// events seen.
async fn download(meta: MetaInfo, store: Arc<MemoryStore>, peers: Vec<SocketAddr>) -> Vec<Event> {
    let config = SessionConfig {
        use_trackers: false,
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SessionConfig::default()
    };
    let (session, mut events) = Session::spawn_with(config);
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
