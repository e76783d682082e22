//! File selection: skipped files are neither downloaded nor created, the
//! selection changes while the torrent runs, and completion means "every
//! selected file is done".

mod common;

use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use bittorrent::prelude::*;
use bittorrent::store::RESUME_DIR;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use crate::common::{loopback_config, meta_for, multi_file, payload, spawn_seeder, wait_complete};

const PIECE: u32 = 64 * 1024;

fn file_bytes<'a>(meta: &MetaInfo, data: &'a [u8], index: usize) -> &'a [u8] {
    let f = &meta.files[index];
    &data[f.offset as usize..(f.offset + f.length) as usize]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_selected_files_are_downloaded_then_the_rest_on_request() {
    // Boundaries inside pieces: f1 shares its first piece with f0 and its
    // last with f2.
    let lengths = [300_000, 500_000, 200_000, 100_000];
    let data = payload(lengths.iter().sum::<u64>() as usize, 31);
    let meta = multi_file(&data, PIECE, &lengths);
    let data = Arc::new(data);
    let seeder = spawn_seeder(&meta, Arc::clone(&data), false).await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("t");

    let (session, _) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    let torrent = Torrent::new(meta.clone(), store)
        .with_peers([seeder.addr])
        .with_file_priorities(|meta| {
            assert_eq!(meta.files.len(), 4);
            vec![Priority::Skip, Priority::High, Priority::Skip]
        });
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let stats = wait_complete(&handle).await;

    // f3 was not named: Normal. f0 and f2 were skipped.
    assert_eq!(
        handle.file_priorities().await.unwrap(),
        vec![
            Priority::Skip,
            Priority::High,
            Priority::Skip,
            Priority::Normal
        ]
    );
    assert_eq!(stats.state, TorrentState::Finished);
    assert_eq!(stats.bytes_left, 0);
    // Nothing of the skipped files was asked for beyond the shared pieces:
    // one seeder, so no duplicate requests either.
    let blocks_wanted = stats.bytes_wanted.div_ceil(16 * 1024) as usize;
    let served = seeder.served.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(served, blocks_wanted, "blocks requested: {stats:?}");
    assert!(stats.pieces_have < stats.pieces_total, "{stats:?}");
    assert!(!root.join("f0").exists(), "skipped file created");
    assert!(!root.join("f2").exists(), "skipped file created");
    for i in [1, 3] {
        let on_disk = std::fs::read(root.join(format!("f{i}"))).unwrap();
        assert!(on_disk == file_bytes(&meta, &data, i), "f{i} differs");
    }
    let hidden = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(
        hidden, 2,
        "only t/ and {RESUME_DIR}/ in the download folder"
    );

    // A skipped file reads what its shared pieces hold, and refuses the rest.
    let mut reader = handle.open_file(0).await.unwrap();
    let tail = 300_000 - 10;
    reader.seek(SeekFrom::Start(tail)).await.unwrap();
    let mut buf = [0u8; 10];
    reader.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf[..], &file_bytes(&meta, &data, 0)[tail as usize..]);
    reader.seek(SeekFrom::Start(0)).await.unwrap();
    let refused = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
        .await
        .expect("a read of an unselected piece answers at once");
    assert!(refused.is_err(), "read of an unselected piece: {refused:?}");
    drop(reader);

    // Wrong selections are refused.
    assert!(handle
        .set_file_priorities(vec![Priority::Normal])
        .await
        .is_err());
    assert!(handle.set_file_priority(9, Priority::Normal).await.is_err());

    // Selecting the rest downloads it; every file is then exact and the part
    // file is gone.
    handle.set_file_priority(0, Priority::Normal).await.unwrap();
    handle.set_file_priority(2, Priority::Normal).await.unwrap();
    let stats = wait_complete(&handle).await;
    assert_eq!(stats.state, TorrentState::Seeding);
    assert_eq!(stats.pieces_have, stats.pieces_total);
    for i in 0..lengths.len() {
        let on_disk = std::fs::read(root.join(format!("f{i}"))).unwrap();
        assert!(on_disk == file_bytes(&meta, &data, i), "f{i} differs");
    }
    let parts: Vec<_> = std::fs::read_dir(dir.path().join(RESUME_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains(".parts"))
        .collect();
    assert!(parts.is_empty(), "part file left behind: {parts:?}");
    session.shutdown();
    session.join().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_with_the_same_selection_trusts_its_record() {
    let lengths = [150_000, 150_000];
    let data = payload(300_000, 32);
    let meta = multi_file(&data, PIECE, &lengths);
    let data = Arc::new(data);
    let seeder = spawn_seeder(&meta, Arc::clone(&data), false).await;
    let dir = tempfile::tempdir().unwrap();
    let select = |_: &MetaInfo| vec![Priority::Normal, Priority::Skip];

    let (session, _) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    let torrent = Torrent::new(meta.clone(), store)
        .with_peers([seeder.addr])
        .with_file_priorities(select);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let first = wait_complete(&handle).await;
    session.shutdown();
    session.join().await;
    assert!(!dir.path().join("t/f1").exists());

    // No peers this time: everything must come from the disk.
    let (session, _) = Session::spawn_with(loopback_config());
    let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
    let torrent = Torrent::new(meta.clone(), store).with_file_priorities(select);
    let handle = session.add_torrent_and_wait(torrent).await.unwrap();
    let again = wait_complete(&handle).await;
    assert_eq!(again.pieces_have, first.pieces_have);
    // The piece shared with the skipped file reads back whole.
    let mut reader = handle.open_file(1).await.unwrap();
    let mut head = vec![0u8; (u64::from(PIECE) * 3 - 150_000) as usize];
    reader.read_exact(&mut head).await.unwrap();
    assert!(head == file_bytes(&meta, &data, 1)[..head.len()]);
    session.shutdown();
    session.join().await;
}

/// The first `n` pieces verified by a fresh download of `meta` in `mode`.
async fn first_verified(meta: &MetaInfo, data: Arc<Vec<u8>>, mode: PickMode, n: usize) -> Vec<u32> {
    let seeder = spawn_seeder(meta, data, false).await;
    let (session, mut events) = Session::spawn_with(loopback_config());
    let torrent = Torrent::new(meta.clone(), MemoryStore::new(meta))
        .with_peers([seeder.addr])
        .with_mode(mode);
    session.add_torrent(torrent);
    let mut verified = Vec::new();
    while verified.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .expect("pieces verify")
            .expect("session running");
        if let Event::PieceVerified { piece, .. } = event {
            verified.push(piece);
        }
    }
    session.shutdown();
    session.join().await;
    verified
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_decide_the_order_of_pieces() {
    // 256 pieces of 64 KiB in one file.
    let data = payload(256 * PIECE as usize, 33);
    let meta = meta_for(&data, PIECE);
    let data = Arc::new(data);
    let last = meta.piece_count() as u32 - 1;

    // Sequential: the first pieces are the lowest ones (a pipeline's worth
    // verifies in parallel, so not strictly in order).
    let order = first_verified(&meta, Arc::clone(&data), PickMode::Sequential, 8).await;
    assert!(order.iter().all(|&p| p < 16), "sequential: {order:?}");

    // Streaming: the first and the last piece of the file come first.
    let order = first_verified(&meta, Arc::clone(&data), PickMode::Streaming, 4).await;
    assert!(
        order.contains(&0) && order.contains(&last),
        "streaming: {order:?}"
    );

    // Rarest-first (one seeder: every piece equally rare) starts at random.
    let order = first_verified(&meta, data, PickMode::RarestFirst, 8).await;
    assert!(!order.iter().all(|&p| p < 16), "rarest-first: {order:?}");
}
