//! Test peers and fixtures shared by the library's integration tests. Every
//! socket is on 127.0.0.1.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::metainfo::FileEntry;
use bittorrent::prelude::*;
use bittorrent::wire::{Handshake, HandshakeCodec, Message, MessageCodec};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use sha1::{Digest, Sha1};
use tokio::net::TcpListener;
use tokio_util::codec::{Framed, FramedParts};

/// A session config for tests: loopback listener on a free port, no trackers.
pub fn loopback_config() -> SessionConfig {
    SessionConfig {
        use_trackers: false,
        listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
        ..SessionConfig::default()
    }
}

/// [`loopback_config`] with MSE/PE off: for sessions that dial the plaintext-only test peers
/// of [`spawn_peer`] and count their connections (under the default policy, each dial would
/// be an encrypted attempt, then a plaintext one).
pub fn plaintext_config() -> SessionConfig {
    SessionConfig {
        encryption: bittorrent::prelude::EncryptionPolicy::Disable,
        ..loopback_config()
    }
}

/// Deterministic pseudo-random payload.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
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

pub fn meta_for(data: &[u8], piece_length: u32) -> MetaInfo {
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

/// A multi-file torrent "t" of `data` with `piece_length` pieces, split into files `t/f0`,
/// `t/f1`, ... of these lengths (summing to the data's length).
pub fn multi_file(data: &[u8], piece_length: u32, lengths: &[u64]) -> MetaInfo {
    let mut meta = meta_for(data, piece_length);
    let mut offset = 0;
    meta.files = lengths
        .iter()
        .enumerate()
        .map(|(i, &length)| {
            let entry = FileEntry {
                path: std::path::Path::new("t").join(format!("f{i}")),
                length,
                offset,
                pad: false,
            };
            offset += length;
            entry
        })
        .collect();
    assert_eq!(offset, data.len() as u64);
    meta.name = "t".into();
    meta.multi_file = true;
    meta
}

/// A seeder that serves `data` to everyone; if `corrupt`, every block it
/// sends has its first byte flipped. Counts the blocks it served.
pub struct TestSeeder {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Blocks it served.
    pub served: Arc<AtomicUsize>,
    /// Connections it accepted.
    pub accepted: Arc<AtomicUsize>,
}

pub async fn spawn_seeder(meta: &MetaInfo, data: Arc<Vec<u8>>, corrupt: bool) -> TestSeeder {
    spawn_peer(meta, data, corrupt, true).await
}

/// A test peer with every piece; `unchoke` false makes it hold the
/// connection without ever serving.
pub async fn spawn_peer(
    meta: &MetaInfo,
    data: Arc<Vec<u8>>,
    corrupt: bool,
    unchoke: bool,
) -> TestSeeder {
    spawn_peer_with_delay(meta, data, corrupt, unchoke, std::time::Duration::ZERO).await
}

/// A seeder that waits `delay` before answering each request (a slow peer).
pub async fn spawn_slow_seeder(
    meta: &MetaInfo,
    data: Arc<Vec<u8>>,
    delay: std::time::Duration,
) -> TestSeeder {
    spawn_peer_with_delay(meta, data, false, true, delay).await
}

async fn spawn_peer_with_delay(
    meta: &MetaInfo,
    data: Arc<Vec<u8>>,
    corrupt: bool,
    unchoke: bool,
    delay: std::time::Duration,
) -> TestSeeder {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let info_hash = meta.info_hash;
    let piece_length = meta.piece_length as usize;
    let piece_count = meta.piece_count();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&served);
    let accepts = Arc::clone(&accepted);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            accepts.fetch_add(1, Ordering::Relaxed);
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
                if unchoke {
                    let _ = conn.send(Message::Unchoke).await;
                }
                while let Some(Ok(msg)) = conn.next().await {
                    if let Message::Request(b) = msg {
                        let start = b.piece as usize * piece_length + b.begin as usize;
                        let mut block = data[start..start + b.length as usize].to_vec();
                        if corrupt {
                            block[0] ^= 0xff;
                        }
                        counter.fetch_add(1, Ordering::Relaxed);
                        if !delay.is_zero() {
                            // Pacing: a slow peer answers each request `delay` late.
                            tokio::time::sleep(delay).await;
                        }
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
    TestSeeder {
        addr,
        served,
        accepted,
    }
}

/// Polls `stats` until `pred` holds or `timeout` passes; returns the last stats.
pub async fn wait_for(
    torrent: &TorrentHandle,
    timeout: Duration,
    pred: impl Fn(&TorrentStats) -> bool,
) -> TorrentStats {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = torrent.stats().await.unwrap();
        if pred(&stats) || Instant::now() > deadline {
            return stats;
        }
        // The poll interval: the handle has no stats notification to wait for.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A store already holding every piece of `data`.
pub fn full_store(meta: &MetaInfo, data: &[u8]) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::new(meta));
    for (i, chunk) in data.chunks(meta.piece_length as usize).enumerate() {
        store
            .write_piece(i as u32, &[Bytes::copy_from_slice(chunk)])
            .unwrap();
    }
    store
}

/// Waits until the torrent reports `complete` (30 s at most).
pub async fn wait_complete(handle: &TorrentHandle) -> TorrentStats {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let stats = handle.stats().await.unwrap();
        if stats.complete {
            return stats;
        }
        assert!(Instant::now() < deadline, "never completed: {stats:?}");
        // The poll interval: the handle has no stats notification to wait for.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
