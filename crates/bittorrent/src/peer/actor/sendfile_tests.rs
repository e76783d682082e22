//! The peer actor's zero-copy uploads, end to end over loopback TCP: blocks
//! from a store that can only send from its files (its reads fail), so
//! every byte that arrives went out with sendfile(2).

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::peer::{handshake, Origin, PeerCommand, PeerEvent, PeerHandle, PeerParams};
use crate::store::{FileRun, FileStore, Store, StoreError};
use crate::types::{BlockInfo, PeerId};
use crate::wire::{Handshake, Message, MessageCodec};

/// A [`FileStore`] that cannot read: blocks can only go out from its files.
struct FilesOnly(FileStore);

impl Store for FilesOnly {
    fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        self.0.write_blocks(index, begin, blocks)
    }

    fn piece_verified(&self, index: u32) -> Result<(), StoreError> {
        self.0.piece_verified(index)
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        Err(StoreError::OutOfRange {
            index,
            begin,
            length: u64::from(length),
        })
    }

    fn file_runs(
        &self,
        index: u32,
        begin: u32,
        length: u32,
    ) -> Result<Option<Vec<FileRun>>, StoreError> {
        self.0.file_runs(index, begin, length)
    }
}

/// Two pieces of 32 KiB over three files (20000, 30000 and 15536 bytes),
/// written under `dir`; the payload.
fn three_files(dir: &std::path::Path) -> (Arc<MetaInfo>, FileStore, Vec<u8>) {
    let files = [
        ("a", 20000, false),
        ("b", 30000, false),
        ("c", 15536, false),
    ];
    let meta = Arc::new(MetaInfo::for_test("z", 32768, &files));
    let store = FileStore::from_meta_info(dir, &meta).unwrap();
    let data: Vec<u8> = (0..65536u32).map(|i| (i ^ (i >> 9)) as u8).collect();
    for (index, piece) in data.chunks(32768).enumerate() {
        store
            .write_piece(index as u32, &[Bytes::copy_from_slice(piece)])
            .unwrap();
    }
    (meta, store, data)
}

/// Our peer actor seeding from `store`, unchoking the remote end (driven by
/// the test) and past its opening messages; the actor's events.
async fn seeding(
    meta: &Arc<MetaInfo>,
    store: FilesOnly,
) -> (
    PeerHandle,
    Framed<TcpStream, MessageCodec>,
    mpsc::Receiver<PeerEvent>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut bits = Bitfield::new(meta.piece_count());
    for piece in 0..meta.piece_count() {
        bits.set(piece);
    }
    let mut params = PeerParams::for_test(meta, bits);
    params.store = Arc::new(store);
    params.send_from_files = true;
    let (events, events_rx) = mpsc::channel(64);
    let (handle, task) = PeerHandle::start(
        addr,
        Origin::Outbound,
        params,
        events,
        CancellationToken::new(),
    );
    tokio::spawn(task);
    let (stream, _) = listener.accept().await.unwrap();
    let (mut hs, _) = handshake::receive(stream).await.unwrap();
    let theirs = Handshake::new(meta.info_hash, PeerId([2; 20]));
    handshake::respond(&mut hs, theirs).await.unwrap();
    let mut conn = handshake::into_messages(hs, 1 << 17);
    assert!(matches!(conn.next().await, Some(Ok(Message::Bitfield(_)))));
    handle.send(PeerCommand::Choke(false)).unwrap();
    assert_eq!(conn.next().await.unwrap().unwrap(), Message::Unchoke);
    (handle, conn, events_rx)
}

fn block(piece: u32, begin: u32, length: u32) -> BlockInfo {
    BlockInfo {
        piece,
        begin,
        length,
    }
}

#[tokio::test]
async fn blocks_across_files_go_out_with_sendfile_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, store, data) = three_files(dir.path());
    let (_handle, mut conn, mut events) = seeding(&meta, FilesOnly(store)).await;
    // Across a→b, inside b, across b→c; one of 8 KiB at an odd offset.
    let asked = [
        block(0, 0, 16384),
        block(0, 16384, 16384),
        block(1, 0, 16384),
        block(1, 16384, 16384),
        block(0, 1000, 8192),
    ];
    for b in asked {
        futures::SinkExt::send(&mut conn, Message::Request(b))
            .await
            .unwrap();
    }
    for b in asked {
        let Some(Ok(Message::Piece {
            piece,
            begin,
            data: got,
        })) = conn.next().await
        else {
            panic!("a block expected for {b:?}");
        };
        assert_eq!(
            (piece, begin, got.len() as u32),
            (b.piece, b.begin, b.length)
        );
        let at = (b.piece * 32768 + b.begin) as usize;
        assert!(got[..] == data[at..at + b.length as usize], "{b:?}");
    }
    // Every byte was charged and reported.
    let mut uploaded = 0;
    while uploaded < 4 * 16384 + 8192 {
        match events.recv().await.unwrap() {
            PeerEvent::Uploaded { bytes, .. } => uploaded += bytes,
            PeerEvent::Disconnected { reason, .. } => panic!("disconnected: {reason}"),
            _ => {}
        }
    }
    assert_eq!(uploaded, 4 * 16384 + 8192);
}

#[tokio::test]
async fn a_file_truncated_under_us_ends_the_peer_and_no_block_goes_out_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (meta, store, _) = three_files(dir.path());
    let (_handle, mut conn, mut events) = seeding(&meta, FilesOnly(store)).await;
    // `b` loses its end: piece 1's second block (in `b`, then `c`) is short.
    let b = std::fs::OpenOptions::new()
        .write(true)
        .open(dir.path().join("z").join("b"))
        .unwrap();
    b.set_len(20000).unwrap();
    futures::SinkExt::send(&mut conn, Message::Request(block(1, 16384, 16384)))
        .await
        .unwrap();
    // The connection ends; never a whole (wrong) block.
    while let Some(frame) = conn.next().await {
        match frame {
            Ok(Message::Piece { .. }) => panic!("a block from a truncated file"),
            Ok(_) => {}
            Err(_) => break,
        }
    }
    loop {
        if let PeerEvent::Disconnected { reason, .. } = events.recv().await.unwrap() {
            let text = reason.to_string();
            assert!(text.contains("file ends"), "{text}");
            break;
        }
    }
}
