//! `SessionConfig::pex`: off, peer exchange (BEP 11) is not advertised in
//! the extended handshake and a peer's PEX message is not read; on (the
//! default), both happen.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bittorrent::extension::{
    ExtendedHandshake, ExtendedMessage, Extension, ExtensionIds, PexFlags, PexMessage, PexPeer,
    HANDSHAKE_ID,
};
use bittorrent::prelude::*;
use bittorrent::wire::{Handshake, HandshakeCodec, Message, MessageCodec};
use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{Framed, FramedParts};

use crate::common::{loopback_config, meta_for, payload};

/// Dials the session as a peer with the BEP 10 bit, and returns the
/// connection after the session's extended handshake, with it.
async fn dial(
    addr: std::net::SocketAddr,
    info_hash: InfoHash,
) -> (Framed<TcpStream, MessageCodec>, ExtendedHandshake) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut hs = Framed::new(stream, HandshakeCodec);
    let ours = Handshake::new(info_hash, PeerId::generate()).with_extensions();
    hs.send(ours).await.unwrap();
    hs.next().await.unwrap().unwrap();
    let parts = hs.into_parts();
    let mut next = FramedParts::new::<Message>(parts.io, MessageCodec::default());
    next.read_buf = parts.read_buf;
    let mut conn = Framed::from_parts(next);
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(10), conn.next())
            .await
            .expect("an extended handshake in time")
            .unwrap()
            .unwrap();
        if let Message::Extended {
            id: HANDSHAKE_ID,
            payload,
        } = msg
        {
            return (conn, ExtendedHandshake::decode(&payload).unwrap());
        }
    }
}

/// Whether the session advertises ut_pex, and whether a PEX message
/// naming a listening address made the torrent learn of it.
async fn pex_seen(pex: bool) -> (bool, bool) {
    let data = payload(256 * 1024, 3);
    let meta = meta_for(&data, 16 * 1024);
    let config = SessionConfig {
        pex,
        ..loopback_config()
    };
    let (session, _) = Session::spawn_with(config);
    let store = Arc::new(MemoryStore::new(&meta));
    let torrent = session
        .add_torrent_and_wait(Torrent::new(meta.clone(), store))
        .await
        .unwrap();
    // Connections are taken once the (empty) store is checked.
    while torrent.stats().await.unwrap().state != TorrentState::Downloading {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (mut conn, theirs) = dial(session.listen_addr().unwrap(), meta.info_hash).await;
    let advertised = theirs.m.contains_key(Extension::Pex.name());
    // Our side takes PEX; the message goes to the session's ut_pex id, or
    // to the usual one (1) when it advertises none (a peer that sends anyway).
    let mut ids = ExtensionIds::new();
    let mut session_ids = theirs.clone();
    session_ids
        .m
        .entry(Extension::Pex.name().to_owned())
        .or_insert(1);
    ids.update_remote(&session_ids);
    let ours = ExtendedHandshake::new(&ExtensionIds::new());
    conn.send(Message::Extended {
        id: HANDSHAKE_ID,
        payload: Bytes::from(ours.encode()),
    })
    .await
    .unwrap();
    // A listener that never accepts: a dial to it hangs in the handshake,
    // so the address stays known meanwhile.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let before = torrent.stats().await.unwrap().known_peers;
    let message = PexMessage {
        added: vec![PexPeer {
            addr: listener.local_addr().unwrap(),
            flags: PexFlags::default(),
        }],
        ..PexMessage::default()
    };
    let (id, body) = ExtendedMessage::Pex(message).encode_parts(&ids).unwrap();
    conn.send(Message::Extended {
        id,
        payload: Bytes::from(body),
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut learned = false;
    while Instant::now() < deadline && !learned {
        learned = torrent.stats().await.unwrap().known_peers > before;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    session.shutdown();
    session.join().await;
    (advertised, learned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pex_is_advertised_and_read_only_when_on() {
    assert_eq!(pex_seen(true).await, (true, true), "PEX on (the default)");
    assert_eq!(pex_seen(false).await, (false, false), "PEX off");
}
