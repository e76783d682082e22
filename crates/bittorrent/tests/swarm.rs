//! Seeding, connection limits and torrent control through the public API,
//! on loopback.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bittorrent::prelude::*;
use bittorrent::wire::{Handshake, HandshakeCodec};
use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio_util::codec::Framed;

use crate::common::{
    full_store, loopback_config, meta_for, payload, plaintext_config, spawn_peer, wait_for,
};

/// The metainfo of a single-file torrent of `data` with a real info
/// dictionary, so that fetched metadata can be verified against its hash.
fn real_meta(data: &[u8]) -> MetaInfo {
    let hashes = meta_for(data, 64 * 1024).piece_hashes;
    let info = format!(
        "d6:lengthi{}e4:name11:payload.bin12:piece lengthi{}e6:pieces{}:",
        data.len(),
        64 * 1024,
        hashes.len() * 20
    );
    let mut info = info.into_bytes();
    for h in &hashes {
        info.extend_from_slice(h);
    }
    info.push(b'e');
    let mut torrent = b"d4:info".to_vec();
    torrent.extend_from_slice(&info);
    torrent.push(b'e');
    MetaInfo::from_bytes(&torrent).unwrap()
}

async fn seeding_session(meta: &MetaInfo, data: &[u8]) -> (SessionHandle, TorrentHandle) {
    let (seeder, _) = Session::spawn_with(loopback_config());
    let torrent = Torrent::new(meta.clone(), full_store(meta, data));
    let handle = seeder.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(10), |s| s.complete).await;
    assert_eq!(
        stats.state,
        TorrentState::Seeding,
        "complete data starts in seed mode"
    );
    (seeder, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_seeder_serves_our_leecher() {
    let data = payload(5 * 1024 * 1024 + 999, 11);
    let meta = meta_for(&data, 64 * 1024);
    let (seeder, seed_torrent) = seeding_session(&meta, &data).await;
    let seed_addr = seeder.listen_addr().unwrap();

    let (leecher, _) = Session::spawn_with(loopback_config());
    let store = Arc::new(MemoryStore::new(&meta));
    let torrent = Torrent::new(meta.clone(), Arc::clone(&store)).with_peers([seed_addr]);
    let handle = leecher.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(30), |s| s.complete).await;
    assert!(stats.complete, "leecher did not complete: {stats:?}");
    assert_eq!(store.contents(), data);

    let seed_stats = seed_torrent.stats().await.unwrap();
    assert!(
        seed_stats.uploaded >= meta.total_length,
        "seeder stats: {seed_stats:?}"
    );
    // The seeder never learns the leecher's address: every byte went over the
    // inbound connection. Once the leecher is complete, two seeds have nothing
    // to say to each other and the connection is closed.
    let seed_stats = wait_for(&seed_torrent, Duration::from_secs(5), |s| s.peers == 0).await;
    assert_eq!(seed_stats.peers, 0, "seed-to-seed connection closed");
    for s in [&seeder, &leecher] {
        s.shutdown();
        tokio::time::timeout(Duration::from_secs(10), s.join())
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thirty_first_outbound_connection_is_not_opened() {
    let data = payload(256 * 1024, 12);
    let meta = meta_for(&data, 16 * 1024);
    let data = Arc::new(data);
    let mut peers = Vec::new();
    for _ in 0..40 {
        // Peers that never unchoke: connections stay open, nothing completes.
        peers.push(spawn_peer(&meta, Arc::clone(&data), false, false).await);
    }
    let (session, _) = Session::spawn_with(plaintext_config());
    let torrent = Torrent::new(meta.clone(), MemoryStore::new(&meta))
        .with_peers(peers.iter().map(|p| p.addr));
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(10), |s| s.peers >= 30).await;
    assert_eq!(stats.peers, 30);
    // A check that nothing happens has no event to wait for: give it time to (wrongly) open
    // more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let accepted: usize = peers
        .iter()
        .map(|p| p.accepted.load(Ordering::Relaxed))
        .sum();
    assert_eq!(accepted, 30, "outbound connections opened");
    assert_eq!(handle.stats().await.unwrap().peers, 30);
    session.shutdown();
    session.join().await;
}

/// Connects to `addr`, sends a handshake and reports whether one came back.
async fn handshake_answered(addr: SocketAddr, info_hash: InfoHash) -> Option<TcpStream> {
    let stream = TcpStream::connect(addr).await.ok()?;
    let mut conn = Framed::new(stream, HandshakeCodec);
    conn.send(Handshake::new(info_hash, PeerId::generate()))
        .await
        .ok()?;
    match tokio::time::timeout(Duration::from_secs(3), conn.next()).await {
        Ok(Some(Ok(hs))) if hs.info_hash == info_hash => Some(conn.into_inner()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fifty_first_inbound_connection_is_refused() {
    let data = payload(256 * 1024, 13);
    let meta = meta_for(&data, 16 * 1024);
    let (seeder, torrent) = seeding_session(&meta, &data).await;
    let addr = seeder.listen_addr().unwrap();
    let mut open = Vec::new();
    for _ in 0..50 {
        let conn = handshake_answered(addr, meta.info_hash).await;
        open.push(conn.expect("one of the first 50 inbound connections was refused"));
    }
    for _ in 0..3 {
        assert!(
            handshake_answered(addr, meta.info_hash).await.is_none(),
            "51st accepted"
        );
    }
    // Unknown torrents are refused too, also once the torrent has a free slot.
    drop(open.pop());
    let stats = wait_for(&torrent, Duration::from_secs(5), |s| s.peers < 50).await;
    assert_eq!(stats.peers, 49, "the closed connection was not noticed");
    assert!(handshake_answered(addr, InfoHash([7; 20])).await.is_none());
    seeder.shutdown();
    seeder.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_and_remove() {
    let data = payload(256 * 1024, 14);
    let meta = meta_for(&data, 16 * 1024);
    let idle = spawn_peer(&meta, Arc::new(data), false, false).await;
    let (session, mut events) = Session::spawn_with(loopback_config());
    let torrent = Torrent::new(meta.clone(), MemoryStore::new(&meta)).with_peers([idle.addr]);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    wait_for(&handle, Duration::from_secs(10), |s| s.peers == 1).await;

    handle.pause().await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(5), |s| s.peers == 0).await;
    assert_eq!(stats.state, TorrentState::Paused);
    assert_eq!(stats.peers, 0);

    handle.resume().await.unwrap();
    // The pinned peer is dialled again once its short backoff has passed.
    let stats = wait_for(&handle, Duration::from_secs(30), |s| s.peers == 1).await;
    assert_eq!(stats.state, TorrentState::Downloading);
    assert_eq!(stats.peers, 1);

    assert!(session.remove_torrent(meta.info_hash).await.unwrap());
    assert!(!session.remove_torrent(meta.info_hash).await.unwrap());
    let mut removed = false;
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(e) = events.recv().await {
            if matches!(e, Event::TorrentRemoved { info_hash } if info_hash == meta.info_hash) {
                removed = true;
                break;
            }
        }
    })
    .await;
    assert!(removed, "TorrentRemoved event");
    // The actor has ended: its handle reports that instead of hanging.
    let stopped = tokio::time::timeout(Duration::from_secs(5), async {
        while handle.stats().await.is_ok() {
            // The poll interval: a handle cannot wait for its actor's end.
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(stopped.is_ok(), "removed torrent's actor ended");
    assert!(session.torrent(meta.info_hash).await.unwrap().is_none());
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_leecher_fetches_metadata_from_our_seeder() {
    use bittorrent::magnet::Magnet;

    let data = payload(3 * 1024 * 1024 + 17, 15);
    let meta = real_meta(&data);
    let (seeder, _seed_torrent) = seeding_session(&meta, &data).await;

    let mut magnet = Magnet::new(meta.info_hash);
    magnet.peers.push(seeder.listen_addr().unwrap());
    let (leecher, mut events) = Session::spawn_with(loopback_config());
    let store = Arc::new(MemoryStore::new(&meta));
    let kept = Arc::clone(&store);
    let torrent = Torrent::from_magnet(magnet, move |m: &MetaInfo| {
        assert_eq!(m.total_length, kept.contents().len() as u64);
        Ok::<_, bittorrent::store::StoreError>(kept)
    });
    let handle = leecher.add_torrent_and_wait(torrent).await.unwrap();
    let mut got_metadata = false;
    let done = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.recv().await {
            match e {
                Event::MetadataReceived { name, .. } => {
                    assert_eq!(name, "payload.bin");
                    got_metadata = true;
                }
                Event::TorrentComplete { .. } => break,
                _ => {}
            }
        }
    })
    .await;
    assert!(
        done.is_ok(),
        "magnet download did not complete: {:?}",
        handle.stats().await
    );
    assert!(got_metadata);
    assert_eq!(store.contents(), data);
    for s in [&seeder, &leecher] {
        s.shutdown();
        s.join().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magnet_without_tracker_or_peers_is_found_through_the_dht() {
    use bittorrent::dht::{DhtConfig, DhtHandle, RateLimit};
    use bittorrent::magnet::Magnet;
    use tokio_util::sync::CancellationToken;

    // Loopback nodes share one IP: lift the per-IP rate limit.
    let dht_config = |bootstrap: Vec<SocketAddr>| DhtConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        bootstrap,
        query_timeout: Duration::from_millis(800),
        rate_limit: RateLimit {
            per_second: 100_000.0,
            burst: 100_000,
        },
        ..DhtConfig::default()
    };
    // A local DHT of 20 nodes, each bootstrapped from the one before.
    let cancel = CancellationToken::new();
    let mut nodes: Vec<DhtHandle> = Vec::new();
    let mut tasks = Vec::new();
    for i in 0..20 {
        let bootstrap = nodes.last().map(|n: &DhtHandle| n.local_addr()).into_iter();
        let (node, task) = DhtHandle::spawn(dht_config(bootstrap.collect()), cancel.child_token())
            .await
            .unwrap();
        if i > 0 {
            node.bootstrap().await.unwrap();
        }
        nodes.push(node);
        tasks.push(task);
    }
    let addr_of = |i: usize| nodes[i].local_addr();

    let data = payload(2 * 1024 * 1024 + 5, 16);
    let meta = real_meta(&data);
    // The seeder: a session with its own DHT node, bootstrapped from node 3.
    let seed_config = SessionConfig {
        dht: Some(dht_config(vec![addr_of(3)])),
        ..loopback_config()
    };
    let (seeder, _) = Session::spawn_with(seed_config);
    let seed_torrent = Torrent::new(meta.clone(), full_store(&meta, &data));
    let seed_handle = seeder.add_torrent_and_wait(seed_torrent).await.unwrap();
    wait_for(&seed_handle, Duration::from_secs(10), |s| s.complete).await;

    // The leecher knows only the info-hash, and node 15 of the DHT.
    let leech_config = SessionConfig {
        dht: Some(dht_config(vec![addr_of(15)])),
        ..loopback_config()
    };
    let (leecher, _) = Session::spawn_with(leech_config);
    let store = Arc::new(MemoryStore::new(&meta));
    let kept = Arc::clone(&store);
    let torrent = Torrent::from_magnet(Magnet::new(meta.info_hash), move |_: &MetaInfo| {
        Ok::<_, bittorrent::store::StoreError>(kept)
    });
    let handle = leecher.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_for(&handle, Duration::from_secs(60), |s| s.complete).await;
    assert!(stats.complete, "not found through the DHT: {stats:?}");
    assert_eq!(store.contents(), data);
    // What a display shows of the peer sources: the DHT's nodes, the peers known.
    let session = leecher.stats().await.unwrap();
    assert_eq!(session.torrents, 1);
    let dht = session.dht.expect("the leecher runs a DHT");
    assert!(dht.routing_table_size > 0, "{dht:?}");
    assert!(stats.known_peers >= 1, "{stats:?}");
    assert!(stats.trackers.is_empty(), "{stats:?}");
    let (no_dht, _) = Session::spawn_with(loopback_config());
    assert_eq!(no_dht.stats().await.unwrap().dht, None);
    no_dht.shutdown();
    for s in [&seeder, &leecher] {
        s.shutdown();
        s.join().await;
    }
    cancel.cancel();
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leecher_learns_other_peers_through_pex() {
    let data = payload(1024 * 1024, 17);
    let meta = meta_for(&data, 64 * 1024);
    let data = Arc::new(data);
    // A and B hold every piece but never unchoke: C's connections to them stay
    // open (C never completes), so C keeps telling its peers about them.
    let a = spawn_peer(&meta, Arc::clone(&data), false, false).await;
    let b = spawn_peer(&meta, Arc::clone(&data), false, false).await;

    // C dials A and B.
    let (c, _) = Session::spawn_with(plaintext_config());
    let c_torrent =
        Torrent::new(meta.clone(), MemoryStore::new(&meta)).with_peers([a.addr, b.addr]);
    let c_handle = c.add_torrent_and_wait(c_torrent).await.unwrap();
    let c_stats = wait_for(&c_handle, Duration::from_secs(10), |s| s.peers == 2).await;
    assert_eq!(c_stats.peers, 2, "C should be connected to A and B");

    // L knows only C, and must learn A and B from C's PEX message.
    let (l, mut events) = Session::spawn_with(plaintext_config());
    let l_torrent =
        Torrent::new(meta.clone(), MemoryStore::new(&meta)).with_peers([c.listen_addr().unwrap()]);
    l.add_torrent_and_wait(l_torrent).await.unwrap();
    let mut met = std::collections::HashSet::new();
    let learnt = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(e) = events.recv().await {
            if let Event::PeerConnected { addr, .. } = e {
                met.insert(addr);
                if met.contains(&a.addr) && met.contains(&b.addr) {
                    break;
                }
            }
        }
    })
    .await;
    assert!(
        learnt.is_ok(),
        "L met only {met:?}, not A {} and B {}",
        a.addr,
        b.addr
    );
    assert_eq!(
        a.accepted.load(Ordering::Relaxed),
        2,
        "A was dialled by C and by L"
    );
    assert_eq!(
        b.accepted.load(Ordering::Relaxed),
        2,
        "B was dialled by C and by L"
    );
    for s in [&c, &l] {
        s.shutdown();
        s.join().await;
    }
}
