//! DHT integration tests. Every node and socket is on 127.0.0.1; no test
//! touches any other address.

use std::net::SocketAddr;
use std::time::Duration;

use bittorrent::dht::krpc::{Body, ErrorCode, Message, Query, Response, Want};
use bittorrent::dht::{
    id_matches_ip, DhtConfig, DhtError, DhtHandle, NodeId, RateLimit, PUBLIC_ROUTERS,
};
use bittorrent::types::InfoHash;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

/// A loopback node config with a generous rate limit (every test node shares
/// the source IP 127.0.0.1).
fn loopback(bootstrap: Vec<SocketAddr>) -> DhtConfig {
    DhtConfig {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        bootstrap,
        query_timeout: Duration::from_millis(800),
        rate_limit: RateLimit {
            per_second: 100_000.0,
            burst: 100_000,
        },
        ..DhtConfig::default()
    }
}

async fn spawn(config: DhtConfig, cancel: &CancellationToken) -> (DhtHandle, JoinHandle<()>) {
    DhtHandle::spawn(config, cancel.child_token())
        .await
        .expect("bind 127.0.0.1:0")
}

/// Starts `n` nodes; node `i` bootstraps from node `i - 1` and node `i / 2`.
async fn swarm(n: usize, cancel: &CancellationToken) -> Vec<DhtHandle> {
    swarm_on(n, SocketAddr::from(([127, 0, 0, 1], 0)), cancel).await
}

/// [`swarm`] of nodes bound to `bind` (an IPv4 or an IPv6 address).
async fn swarm_on(n: usize, bind: SocketAddr, cancel: &CancellationToken) -> Vec<DhtHandle> {
    let mut nodes: Vec<DhtHandle> = Vec::new();
    for i in 0..n {
        let mut bootstrap = Vec::new();
        if i > 0 {
            bootstrap.push(nodes[i - 1].local_addr());
            if i / 2 != i - 1 {
                bootstrap.push(nodes[i / 2].local_addr());
            }
        }
        let config = DhtConfig {
            bind,
            ..loopback(bootstrap)
        };
        let (node, _task) = spawn(config, cancel).await;
        if i > 0 {
            node.bootstrap().await.expect("bootstrap");
        }
        nodes.push(node);
    }
    // A second round now that everyone exists fills the tables.
    let rounds = nodes.iter().map(|n| n.bootstrap());
    for result in futures::future::join_all(rounds).await {
        result.expect("second bootstrap");
    }
    nodes
}

/// A raw KRPC client socket on 127.0.0.1.
async fn client() -> UdpSocket {
    UdpSocket::bind("127.0.0.1:0").await.unwrap()
}

/// Sends `query` with transaction id `tid` and waits for the answer with that
/// id (skipping the node's own queries, such as its verification ping).
async fn ask(sock: &UdpSocket, to: SocketAddr, tid: &[u8], query: Query) -> Message {
    ask_as(sock, to, tid, query, false).await
}

/// [`ask`] as a read-only node (BEP 43) or not.
async fn ask_as(
    sock: &UdpSocket,
    to: SocketAddr,
    tid: &[u8],
    query: Query,
    read_only: bool,
) -> Message {
    let msg = Message {
        read_only,
        tid: tid.to_vec(),
        body: Body::Query(query),
    };
    sock.send_to(&msg.encode(), to).await.unwrap();
    recv_answer(sock, tid).await
}

async fn recv_answer(sock: &UdpSocket, tid: &[u8]) -> Message {
    let mut buf = [0u8; 4096];
    loop {
        let (len, _) = timeout(Duration::from_secs(3), sock.recv_from(&mut buf))
            .await
            .expect("an answer within 3 s")
            .unwrap();
        let msg = Message::decode(&buf[..len]).expect("valid KRPC");
        if msg.tid == tid && !matches!(msg.body, Body::Query(_)) {
            return msg;
        }
    }
}

fn response(msg: Message) -> Response {
    match msg.body {
        Body::Response(r) => r,
        other => panic!("expected a response, got {other:?}"),
    }
}

fn error_code(msg: Message) -> ErrorCode {
    match msg.body {
        Body::Error(e) => e.code,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn swarm_bootstraps_and_finds_an_announced_peer() {
    let cancel = CancellationToken::new();
    let nodes = swarm(20, &cancel).await;
    for (i, node) in nodes.iter().enumerate() {
        let size = node.routing_table_size().await;
        assert!(size >= 5, "node {i} knows only {size} nodes");
    }

    let info_hash = InfoHash([0x5a; 20]);
    let port = 45_678;
    let a = &nodes[3];
    let announced = a.announce(info_hash, port).await.expect("announce");
    assert!(
        announced.nodes >= 3,
        "announced to {} nodes",
        announced.nodes
    );
    assert!(announced.peers.is_empty(), "nobody else announced");

    // B was bootstrapped from nodes 16 and 8, never from A.
    let b = &nodes[17];
    let wanted = SocketAddr::from(([127, 0, 0, 1], port));
    let mut found = Vec::new();
    for _ in 0..3 {
        found = b.get_peers(info_hash).await.expect("get_peers");
        if found.contains(&wanted) {
            break;
        }
    }
    assert_eq!(found, vec![wanted]);
    // An unknown torrent has no peers.
    let none = b.get_peers(InfoHash([0xa5; 20])).await.unwrap();
    assert!(none.is_empty());
    cancel.cancel();
}

#[tokio::test]
async fn implied_port_announces_the_udp_port() {
    let cancel = CancellationToken::new();
    let nodes = swarm(8, &cancel).await;
    let info_hash = InfoHash([0x11; 20]);
    let a = &nodes[2];
    let announced = a.announce(info_hash, 0).await.unwrap();
    assert!(announced.nodes >= 1);
    let found = nodes[7].get_peers(info_hash).await.unwrap();
    assert_eq!(found, vec![a.local_addr()]);
    cancel.cancel();
}

#[tokio::test]
async fn announce_tokens_are_checked() {
    let cancel = CancellationToken::new();
    let (node, _task) = spawn(loopback(Vec::new()), &cancel).await;
    let to = node.local_addr();
    let sock = client().await;
    let me = NodeId([7; 20]);
    let info_hash = InfoHash([0x42; 20]);

    let r = response(
        ask(
            &sock,
            to,
            b"g1",
            Query::GetPeers {
                id: me,
                info_hash,
                want: Want::default(),
            },
        )
        .await,
    );
    assert_eq!(r.id, node.node_id());
    assert!(r.values.is_empty());
    let token = r.token.expect("get_peers gives a token");

    let announce = |token: Vec<u8>| Query::AnnouncePeer {
        id: me,
        info_hash,
        port: 5555,
        implied_port: false,
        token,
    };
    let bad = ask(&sock, to, b"a1", announce(b"not the token".to_vec())).await;
    assert_eq!(error_code(bad), ErrorCode::Protocol);
    let mut altered = token.clone();
    altered[0] ^= 1;
    let bad = ask(&sock, to, b"a2", announce(altered)).await;
    assert_eq!(error_code(bad), ErrorCode::Protocol);
    assert_eq!(node.stats().await.unwrap().stored_peers, 0);

    let ok = response(ask(&sock, to, b"a3", announce(token)).await);
    assert_eq!(ok.id, node.node_id());
    let r = response(
        ask(
            &sock,
            to,
            b"g2",
            Query::GetPeers {
                id: me,
                info_hash,
                want: Want::default(),
            },
        )
        .await,
    );
    assert_eq!(r.values, vec![SocketAddr::from(([127, 0, 0, 1], 5555))]);
    cancel.cancel();
}

/// The next message to `sock` within `within`, if any.
async fn next_message(sock: &UdpSocket, within: Duration) -> Option<(Message, SocketAddr)> {
    let mut buf = [0u8; 4096];
    let (len, from) = timeout(within, sock.recv_from(&mut buf)).await.ok()?.ok()?;
    Some((Message::decode(&buf[..len]).expect("valid KRPC"), from))
}

#[tokio::test]
async fn a_read_only_querier_is_answered_but_kept_out_of_the_table() {
    let cancel = CancellationToken::new();
    let (node, _task) = spawn(loopback(Vec::new()), &cancel).await;
    let to = node.local_addr();
    // BEP 43: a read-only querier is answered, never pinged, never added.
    let read_only = client().await;
    let ping = Query::Ping {
        id: NodeId([2; 20]),
    };
    let answer = ask_as(&read_only, to, b"r1", ping, true).await;
    assert_eq!(response(answer).id, node.node_id());
    let after = next_message(&read_only, Duration::from_millis(500)).await;
    assert!(after.is_none(), "a read-only node was queried: {after:?}");
    assert_eq!(node.routing_table_size().await, 0);
    // An ordinary querier gets a ping (its way into the table) and, once it
    // answers, is in.
    let ordinary = client().await;
    let ping = Query::Ping {
        id: NodeId([1; 20]),
    };
    ask(&ordinary, to, b"o1", ping).await;
    let (verify, _) = next_message(&ordinary, Duration::from_secs(3))
        .await
        .expect("an ordinary querier is pinged");
    assert!(matches!(verify.body, Body::Query(Query::Ping { .. })));
    assert!(!verify.read_only, "we are not read-only");
    let pong = Message {
        tid: verify.tid,
        body: Body::Response(Response {
            id: NodeId([1; 20]),
            ..Response::default()
        }),
        read_only: false,
    };
    ordinary.send_to(&pong.encode(), to).await.unwrap();
    let added = timeout(Duration::from_secs(3), async {
        while node.routing_table_size().await == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(added.is_ok(), "the ordinary querier was not added");
    assert_eq!(node.routing_table_size().await, 1, "only the ordinary one");
    cancel.cancel();
}

#[tokio::test]
async fn a_read_only_node_queries_with_ro_and_answers_nothing() {
    let cancel = CancellationToken::new();
    let boot = client().await;
    let config = DhtConfig {
        read_only: true,
        ..loopback(vec![boot.local_addr().unwrap()])
    };
    let (node, _task) = spawn(config, &cancel).await;
    let bootstrapping = tokio::spawn({
        let node = node.clone();
        async move { node.bootstrap().await }
    });
    let (query, from) = next_message(&boot, Duration::from_secs(3))
        .await
        .expect("the read-only node queries its bootstrap node");
    assert!(matches!(query.body, Body::Query(_)), "{query:?}");
    assert!(query.read_only, "its queries carry ro = 1");
    // It answers no query, not even a malformed one with an error.
    let ping = Message {
        tid: b"p1".to_vec(),
        body: Body::Query(Query::Ping {
            id: NodeId([3; 20]),
        }),
        read_only: false,
    };
    boot.send_to(&ping.encode(), from).await.unwrap();
    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe";
    boot.send_to(unknown, from).await.unwrap();
    while let Some((msg, _)) = next_message(&boot, Duration::from_secs(1)).await {
        assert!(
            matches!(msg.body, Body::Query(_)) && msg.read_only,
            "a read-only node sent {msg:?}"
        );
    }
    cancel.cancel();
    let _ = bootstrapping.await;
}

#[tokio::test]
async fn malformed_datagrams_are_ignored() {
    let cancel = CancellationToken::new();
    let (node, task) = spawn(loopback(Vec::new()), &cancel).await;
    let to = node.local_addr();
    let sock = client().await;
    let long_tid = format!("d1:t40:{}1:y1:qe", "x".repeat(40));
    let garbage: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"hello".to_vec(),
        b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping".to_vec(),
        b"l".repeat(1000),
        vec![b'd'; 5000],
        b"d1:rd2:id20:abcdefghij0123456789e1:t4:zzzz1:y1:re".to_vec(),
        b"d1:eli201e3:erre1:t4:zzzz1:y1:ee".to_vec(),
        long_tid.into_bytes(),
        (0..=255u8).collect(),
    ];
    for bytes in &garbage {
        sock.send_to(bytes, to).await.unwrap();
    }
    // The node is alive and still answers, and the garbage got no reply.
    let r = response(
        ask(
            &sock,
            to,
            b"p1",
            Query::Ping {
                id: NodeId([1; 20]),
            },
        )
        .await,
    );
    assert_eq!(r.id, node.node_id());
    // Queries it cannot serve get 203 or 204.
    let unknown = b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:u11:y1:qe";
    sock.send_to(unknown, to).await.unwrap();
    assert_eq!(
        error_code(recv_answer(&sock, b"u1").await),
        ErrorCode::MethodUnknown
    );
    let no_target = b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:u21:y1:qe";
    sock.send_to(no_target, to).await.unwrap();
    assert_eq!(
        error_code(recv_answer(&sock, b"u2").await),
        ErrorCode::Protocol
    );
    assert!(!task.is_finished());
    cancel.cancel();
    task.await.unwrap();
}

#[tokio::test]
async fn floods_are_rate_limited() {
    let cancel = CancellationToken::new();
    let config = DhtConfig {
        rate_limit: RateLimit {
            per_second: 1.0,
            burst: 5,
        },
        ..loopback(Vec::new())
    };
    let (node, _task) = spawn(config, &cancel).await;
    let to = node.local_addr();
    let sock = client().await;
    let flood = 200u32;
    for i in 0..flood {
        let msg = Message {
            read_only: false,
            tid: i.to_be_bytes().to_vec(),
            body: Body::Query(Query::Ping {
                id: NodeId([9; 20]),
            }),
        };
        sock.send_to(&msg.encode(), to).await.unwrap();
    }
    // Once the node has counted every ping (answered or dropped), collect
    // the answers that are already on their way.
    let counted = timeout(Duration::from_secs(10), async {
        loop {
            let stats = node.stats().await.unwrap();
            if stats.rate_limited + 8 >= u64::from(flood) {
                break stats;
            }
            // The poll interval: the node has no stats notification to wait for.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let stats = counted.expect("the node did not count the flood within 10 s");
    let mut answered = 0;
    let mut buf = [0u8; 4096];
    while let Ok(Ok((len, _))) = timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        if let Ok(Message {
            body: Body::Response(_),
            ..
        }) = Message::decode(&buf[..len])
        {
            answered += 1;
        }
    }
    assert!((5..=8).contains(&answered), "{answered} pings answered");
    assert!(stats.rate_limited >= u64::from(flood) - 8);
    cancel.cancel();
}

#[tokio::test]
async fn restart_keeps_node_id_and_routing_table() {
    let cancel = CancellationToken::new();
    let nodes = swarm(6, &cancel).await;
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("dht.state");
    let config = DhtConfig {
        state_file: Some(state_file.clone()),
        ..loopback(vec![nodes[0].local_addr()])
    };

    let first_cancel = CancellationToken::new();
    let (first, task) = spawn(config.clone(), &first_cancel).await;
    let size = first.bootstrap().await.unwrap();
    assert!(size >= 3, "only {size} nodes");
    let id = first.node_id();
    first_cancel.cancel();
    task.await.unwrap();
    assert_eq!(
        first.get_peers(InfoHash([1; 20])).await,
        Err(DhtError::Stopped)
    );
    assert!(state_file.exists());

    // No bootstrap address this time: everything comes from the state file.
    let config = DhtConfig {
        bootstrap: Vec::new(),
        ..config
    };
    let (second, _task) = spawn(config, &cancel).await;
    assert_eq!(second.node_id(), id);
    assert!(second.routing_table_size().await >= size.min(3));
    let size = second.bootstrap().await.unwrap();
    assert!(size >= 3, "only {size} nodes after restart");
    cancel.cancel();
}

#[tokio::test]
async fn a_lone_node_reports_no_nodes() {
    let cancel = CancellationToken::new();
    let (node, _task) = spawn(loopback(Vec::new()), &cancel).await;
    assert_eq!(
        node.get_peers(InfoHash([3; 20])).await,
        Err(DhtError::NoNodes)
    );
    assert_eq!(node.bootstrap().await, Err(DhtError::NoNodes));
    assert_eq!(node.routing_table_size().await, 0);
    cancel.cancel();
}

#[test]
fn default_config_bootstraps_from_nothing() {
    let config = DhtConfig::default();
    assert!(config.bootstrap.is_empty());
    assert!(config.state_file.is_none());
    assert!(!PUBLIC_ROUTERS.is_empty());
}

#[tokio::test]
async fn a_corrupt_state_file_is_ignored() {
    let cancel = CancellationToken::new();
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("dht.state");
    std::fs::write(&state_file, b"d7:versioni1e2:id3:abce").unwrap();
    let config = DhtConfig {
        state_file: Some(state_file.clone()),
        node_id: Some(NodeId([0x33; 20])),
        ..loopback(Vec::new())
    };
    let (node, task) = spawn(config, &cancel).await;
    assert_eq!(node.node_id(), NodeId([0x33; 20]));
    assert_eq!(node.routing_table_size().await, 0);
    cancel.cancel();
    task.await.unwrap();
    // Shutdown replaced it with a valid state holding the configured id.
    let saved = std::fs::read(&state_file).unwrap();
    let saved = bittorrent::dht::SavedState::decode(&saved).unwrap();
    assert_eq!(saved.node_id, NodeId([0x33; 20]));
}

/// A fake node on `ip`: answers every query with a bare response whose BEP 42
/// `ip` says the querier is at `external`.
async fn lying_responder(ip: [u8; 4], external: SocketAddr) -> SocketAddr {
    let sock = UdpSocket::bind(SocketAddr::from((ip, 0))).await.unwrap();
    let addr = sock.local_addr().unwrap();
    let id = NodeId::random();
    tokio::spawn(async move {
        let mut buf = [0u8; 4096];
        while let Ok((len, from)) = sock.recv_from(&mut buf).await {
            let Ok(msg) = Message::decode(&buf[..len]) else {
                continue;
            };
            if let Body::Query(_) = msg.body {
                let reply = Message {
                    read_only: false,
                    tid: msg.tid,
                    body: Body::Response(Response {
                        id,
                        requester: Some(external),
                        ..Response::default()
                    }),
                };
                let _ = sock.send_to(&reply.encode(), from).await;
            }
        }
    });
    addr
}

#[tokio::test]
async fn bep42_id_follows_the_external_ip_responders_agree_on() {
    let cancel = CancellationToken::new();
    let external: SocketAddr = "203.0.113.7:6881".parse().unwrap();
    // Three responders on distinct loopback IPs (one vote per IP).
    let mut bootstrap = Vec::new();
    for last in 2..=4 {
        bootstrap.push(lying_responder([127, 0, 0, last], external).await);
    }
    let (node, _task) = spawn(loopback(bootstrap), &cancel).await;
    let start_id = node.node_id();
    node.bootstrap().await.expect("bootstrap");
    let stats = node.stats().await.expect("stats");
    assert_eq!(stats.external_ip, Some(external.ip()));
    assert!(
        id_matches_ip(&stats.node_id, external.ip()),
        "{:?} is not a BEP 42 id of {}",
        stats.node_id,
        external.ip()
    );
    assert_ne!(stats.node_id, start_id);

    // A configured id is kept whatever the responders say.
    let mut bootstrap = Vec::new();
    for last in 5..=7 {
        bootstrap.push(lying_responder([127, 0, 0, last], external).await);
    }
    let fixed = NodeId([0x11; 20]);
    let config = DhtConfig {
        node_id: Some(fixed),
        ..loopback(bootstrap)
    };
    let (node, _task) = spawn(config, &cancel).await;
    node.bootstrap().await.expect("bootstrap");
    let stats = node.stats().await.expect("stats");
    assert_eq!(stats.external_ip, Some(external.ip()));
    assert_eq!(stats.node_id, fixed);
    cancel.cancel();
}

/// BEP 32: a DHT of IPv6 nodes on ::1 (`nodes6` in every answer) holds an
/// announce; a dual-stack node (IPv4 and IPv6 nodes) that knows one IPv6
/// node finds the IPv6 peer.
#[tokio::test]
async fn ipv6_nodes_find_a_peer_announced_over_ipv6() {
    let cancel = CancellationToken::new();
    let v6_loopback = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 0));
    let nodes = swarm_on(12, v6_loopback, &cancel).await;
    for (i, node) in nodes.iter().enumerate() {
        assert!(node.local_addr().is_ipv6());
        let stats = node.stats().await.expect("stats");
        assert!(stats.ipv6_nodes >= 5, "node {i} knows only {stats:?}");
        assert_eq!(stats.ipv6_nodes, stats.routing_table_size);
    }
    let info_hash = InfoHash([0x32; 20]);
    let announced = nodes[4]
        .announce(info_hash, 45_032)
        .await
        .expect("announce");
    assert!(
        announced.nodes >= 3,
        "announced to {} nodes",
        announced.nodes
    );

    // A lone IPv4 node (kept alive by its handle).
    let (v4_node, _task) = spawn(loopback(Vec::new()), &cancel).await;
    let config = DhtConfig {
        bind_v6: Some(v6_loopback),
        ..loopback(vec![v4_node.local_addr(), nodes[9].local_addr()])
    };
    let (dual, _task) = spawn(config, &cancel).await;
    let addrs = dual.local_addrs();
    assert_eq!(addrs.len(), 2, "{addrs:?}");
    assert!(addrs[0].is_ipv4() && addrs[1].is_ipv6(), "{addrs:?}");
    dual.bootstrap().await.expect("bootstrap");
    let peers = dual.get_peers(info_hash).await.expect("get_peers");
    let expected = SocketAddr::from((std::net::Ipv6Addr::LOCALHOST, 45_032));
    assert!(peers.contains(&expected), "{peers:?}");
    let stats = dual.stats().await.expect("stats");
    assert!(stats.ipv6_nodes >= 5, "{stats:?}");
    // Asked over IPv4 with want n6, the dual node's IPv4 node answers with
    // IPv6 nodes (its IPv6 node's table); without want, IPv4 nodes only.
    let sock = client().await;
    let to = dual.local_addrs()[0];
    let me = NodeId::random();
    for (want, v4, v6) in [
        (
            Want {
                n4: false,
                n6: true,
            },
            false,
            true,
        ),
        (Want { n4: true, n6: true }, true, true),
        (Want::default(), true, false),
    ] {
        let query = Query::FindNode {
            id: me,
            target: NodeId::random(),
            want,
        };
        let r = response(ask(&sock, to, b"w6", query).await);
        assert_eq!(
            r.nodes.iter().any(|n| n.addr.is_ipv4()),
            v4,
            "{want:?}: {r:?}"
        );
        assert_eq!(
            r.nodes.iter().any(|n| n.addr.is_ipv6()),
            v6,
            "{want:?}: {r:?}"
        );
    }
    assert!(
        stats.routing_table_size > stats.ipv6_nodes,
        "the IPv4 node knows its one IPv4 node: {stats:?}"
    );
    cancel.cancel();
}
