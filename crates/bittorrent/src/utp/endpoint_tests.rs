//! The endpoint under hostile or overloaded conditions, in process on
//! loopback: a SYN flood, a listener that stops accepting, a socket whose
//! sends are refused as when it is full.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UdpSocket;
use tokio_util::sync::CancellationToken;

use crate::utp::demux::PacketType;
use crate::utp::packet::Out;
use crate::utp::socket::ACCEPT_QUEUE;
use crate::utp::table::MAX_HALF_OPEN;
use crate::utp::Endpoint;

/// Long enough for any step on a loaded machine; only failures wait it.
const WAIT: Duration = Duration::from_secs(20);

fn any() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn bind(cancel: &CancellationToken) -> Endpoint {
    Endpoint::bind(any(), cancel.clone()).unwrap().0
}

/// A SYN with connection id `id`, as an initiator sends it.
fn syn(id: u16) -> Vec<u8> {
    let mut buf = vec![0u8; 64];
    let len = Out {
        packet_type: PacketType::Syn,
        connection_id: id,
        timestamp_us: 1,
        timestamp_diff_us: 0,
        wnd_size: 1 << 20,
        seq_nr: 100,
        ack_nr: 0,
    }
    .write(&mut buf, 0);
    buf.truncate(len);
    buf
}

/// Polls `f` until it holds or `WAIT` passes; whether it held.
async fn eventually(mut f: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !f() {
        if tokio::time::Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    true
}

/// 1,024 SYNs from 16 ports that never answer our SYN-ACKs: the endpoint
/// keeps at most `MAX_HALF_OPEN` of them, hands none to the listener, and
/// a real peer coming after gets in and is handed out first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_syn_flood_stays_bounded_and_real_peers_still_get_in() {
    let cancel = CancellationToken::new();
    let b = bind(&cancel);
    let mut incoming = b.incoming(cancel.clone());
    let mut answered = 0;
    for _ in 0..16 {
        let flooder = UdpSocket::bind(any()).await.unwrap();
        for round in 0..4u16 {
            // 16 at a time, each answered before the next 16: none is lost
            // in a full receive buffer, so every one was dealt with.
            for id in 0..16u16 {
                let packet = syn((round * 16 + id) * 2);
                flooder.send_to(&packet, b.local_addr()).await.unwrap();
            }
            let mut buf = [0u8; 1500];
            for _ in 0..16 {
                tokio::time::timeout(WAIT, flooder.recv_from(&mut buf))
                    .await
                    .expect("each SYN is answered")
                    .unwrap();
                answered += 1;
            }
        }
        assert!(b.inner.half_open_count() <= MAX_HALF_OPEN);
        assert!(b.inner.connection_count() <= MAX_HALF_OPEN);
    }
    assert_eq!(answered, 1024);
    assert_eq!(b.inner.half_open_count(), MAX_HALF_OPEN);

    let a = bind(&cancel);
    let mut out = tokio::time::timeout(WAIT, a.connect(b.local_addr()))
        .await
        .expect("connect in time")
        .expect("a real peer connects after the flood");
    out.write_all(b"hello").await.unwrap();
    let (mut inbound, from) = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .expect("handed out in time")
        .unwrap();
    assert_eq!(from, a.local_addr(), "no flood connection was handed out");
    let mut buf = [0u8; 5];
    inbound.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    assert!(incoming.try_recv().is_err(), "only the real peer");
    assert!(b.inner.connection_count() <= MAX_HALF_OPEN + 1);
    cancel.cancel();
}

/// Nobody accepts: once `ACCEPT_QUEUE` connections wait for the listener,
/// new peers are refused (a RESET) and the table stops growing; once the
/// listener takes them, peers get in again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_accept_queue_refuses_new_peers_without_growing() {
    let cancel = CancellationToken::new();
    let b = bind(&cancel);
    let mut incoming = b.incoming(cancel.clone());
    let a = bind(&cancel);
    let mut streams = Vec::new();
    let mut refused = 0;
    for _ in 0..3 * ACCEPT_QUEUE {
        match tokio::time::timeout(WAIT, a.connect(b.local_addr()))
            .await
            .expect("connect in time")
        {
            Ok(mut stream) => {
                // The peer speaks first: then it is handed out (or reset).
                stream.write_all(b"x").await.unwrap();
                streams.push(stream);
            }
            Err(e) => {
                assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused, "{e}");
                refused += 1;
            }
        }
    }
    assert!(refused >= ACCEPT_QUEUE, "{refused} refused");
    let inner = &b.inner;
    assert!(
        eventually(|| inner.connection_count() == ACCEPT_QUEUE).await,
        "{} connections with {ACCEPT_QUEUE} queued",
        inner.connection_count()
    );
    assert_eq!(inner.half_open_count(), 0);

    let mut queued = Vec::new();
    while let Ok(accepted) = incoming.try_recv() {
        queued.push(accepted);
    }
    assert_eq!(queued.len(), ACCEPT_QUEUE);
    let mut late = tokio::time::timeout(WAIT, a.connect(b.local_addr()))
        .await
        .expect("connect in time")
        .expect("room again once the listener took its connections");
    late.write_all(b"late").await.unwrap();
    let (mut inbound, _) = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .expect("handed out in time")
        .unwrap();
    let mut buf = [0u8; 4];
    inbound.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"late");
    cancel.cancel();
}

/// Every third send refused as by a full socket: the refused datagram is
/// kept and is the next one sent (nothing lost or replaced), and 1 MiB
/// arrives intact both ways.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_socket_loses_nothing() {
    let cancel = CancellationToken::new();
    let a = bind(&cancel);
    let b = bind(&cancel);
    let mut incoming = b.incoming(cancel.clone());
    for end in [&a, &b] {
        crate::utp::cell::lock(&end.inner.port.full).every = 3;
    }
    let data: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 7 + i / 251) as u8).collect();
    let mut out = tokio::time::timeout(WAIT, a.connect(b.local_addr()))
        .await
        .expect("connect in time")
        .unwrap();
    let writer = {
        let data = data.clone();
        tokio::spawn(async move {
            out.write_all(&data).await.unwrap();
            let mut back = vec![0u8; data.len()];
            out.read_exact(&mut back).await.unwrap();
            back
        })
    };
    let (mut inbound, _) = tokio::time::timeout(WAIT, incoming.recv())
        .await
        .expect("handed out in time")
        .unwrap();
    let mut got = vec![0u8; data.len()];
    tokio::time::timeout(WAIT, inbound.read_exact(&mut got))
        .await
        .expect("received in time")
        .unwrap();
    assert!(got == data, "byte-identical one way");
    inbound.write_all(&got).await.unwrap();
    let back = tokio::time::timeout(WAIT, writer)
        .await
        .expect("echoed in time")
        .unwrap();
    assert!(back == data, "byte-identical the other way");
    for end in [&a, &b] {
        let full = crate::utp::cell::lock(&end.inner.port.full);
        assert!(full.refused > 100, "{} sends refused", full.refused);
        assert_eq!(full.replaced, 0, "a refused datagram was not sent next");
    }
    cancel.cancel();
}
