//! Streaming: a file of a torrent read through `AsyncRead + AsyncSeek` while
//! it downloads, from a slow seeder on loopback.

mod common;

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::prelude::*;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::common::{loopback_config, meta_for, payload, spawn_slow_seeder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seek_far_ahead_is_served_before_the_rest_downloads() {
    // 16 MiB in 64 KiB pieces, served at about one block per 2 ms: the whole
    // download takes seconds, one piece a few tens of milliseconds.
    let data = payload(16 * 1024 * 1024, 21);
    let meta = meta_for(&data, 64 * 1024);
    let data = Arc::new(data);
    let seeder = spawn_slow_seeder(&meta, Arc::clone(&data), Duration::from_millis(2)).await;

    let (session, _) = Session::spawn_with(loopback_config());
    let store = Arc::new(MemoryStore::new(&meta));
    let torrent = Torrent::new(meta.clone(), Arc::clone(&store)).with_peers([seeder.addr]);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();

    let mut reader = handle.open_file(0).await.unwrap();
    assert_eq!(reader.len(), data.len() as u64);
    let at = data.len() as u64 * 9 / 10;
    let started = Instant::now();
    reader.seek(SeekFrom::Start(at)).await.unwrap();
    let mut first = [0u8; 1];
    reader.read_exact(&mut first).await.unwrap();
    let first_byte = started.elapsed();
    let mut rest = vec![0u8; 1024 * 1024 - 1];
    reader.read_exact(&mut rest).await.unwrap();
    let stats = handle.stats().await.unwrap();
    eprintln!(
        "time to first byte after a seek to 90%: {first_byte:?}; 1 MiB read in {:?}; \
         {} of {} pieces verified by then",
        started.elapsed(),
        stats.pieces_have,
        stats.pieces_total
    );
    assert_eq!(first[0], data[at as usize]);
    assert_eq!(&rest[..], &data[at as usize + 1..at as usize + 1024 * 1024]);
    assert!(
        stats.pieces_have < stats.pieces_total / 2,
        "the window at 90% was fetched first, not after most of the file: {stats:?}"
    );

    // Reading everything from the start gives the whole file.
    reader.seek(SeekFrom::Start(0)).await.unwrap();
    let mut all = Vec::new();
    reader.read_to_end(&mut all).await.unwrap();
    assert_eq!(all, *data);
    // Seeking before the start is an error; past the end reads nothing.
    assert!(reader
        .seek(SeekFrom::Current(-(data.len() as i64) - 1))
        .await
        .is_err());
    reader.seek(SeekFrom::End(10)).await.unwrap();
    assert_eq!(reader.read(&mut first).await.unwrap(), 0);
    drop(reader);
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_readers_at_once() {
    let data = payload(4 * 1024 * 1024, 22);
    let meta = meta_for(&data, 64 * 1024);
    let data = Arc::new(data);
    let seeder = spawn_slow_seeder(&meta, Arc::clone(&data), Duration::from_millis(1)).await;
    let (session, _) = Session::spawn_with(loopback_config());
    let torrent = Torrent::new(meta.clone(), MemoryStore::new(&meta)).with_peers([seeder.addr]);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let mut tasks = Vec::new();
    for k in 0..3u64 {
        let handle = handle.clone();
        let data = Arc::clone(&data);
        tasks.push(tokio::spawn(async move {
            let mut reader = handle.open_file(0).await.unwrap();
            let at = k * 1024 * 1024 + 12_345;
            reader.seek(SeekFrom::Start(at)).await.unwrap();
            let mut buf = vec![0u8; 300_000];
            reader.read_exact(&mut buf).await.unwrap();
            assert_eq!(&buf[..], &data[at as usize..at as usize + buf.len()]);
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(60), t)
            .await
            .unwrap()
            .unwrap();
    }
    assert!(handle.open_file(1).await.is_err(), "no second file");
    session.shutdown();
    session.join().await;
}
