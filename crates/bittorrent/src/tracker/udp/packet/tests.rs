//! Unit tests and proptests of the BEP 15 datagrams.

use std::net::Ipv6Addr;

use crate::tracker::udp::packet::*;
use crate::tracker::AnnounceRequest;
use crate::types::{InfoHash, PeerId};
use proptest::prelude::*;

const V4: AddressFamily = AddressFamily::V4;

#[test]
fn connect_request_bytes() {
    let bytes = Request::Connect {
        transaction_id: 0x0102_0304,
    }
    .encode();
    assert_eq!(
        bytes,
        [
            0x00, 0x00, 0x04, 0x17, 0x27, 0x10, 0x19, 0x80, // protocol id
            0, 0, 0, 0, // action connect
            1, 2, 3, 4, // transaction id
        ]
    );
    assert_eq!(
        Request::decode(&bytes),
        Ok(Request::Connect {
            transaction_id: 0x0102_0304
        })
    );
    let mut bad = bytes.clone();
    bad[7] = 0x81;
    assert_eq!(
        Request::decode(&bad),
        Err(PacketError::ProtocolId(0x0417_2710_1981))
    );
    bad = bytes.clone();
    bad.push(0);
    assert!(matches!(
        Request::decode(&bad),
        Err(PacketError::Length { .. })
    ));
}

#[test]
fn connect_response_bytes() {
    let bytes = [0, 0, 0, 0, 9, 8, 7, 6, 1, 2, 3, 4, 5, 6, 7, 8];
    let resp = Response::decode(&bytes, V4).unwrap();
    assert_eq!(
        resp,
        Response::Connect {
            transaction_id: 0x0908_0706,
            connection_id: 0x0102_0304_0506_0708,
        }
    );
    assert_eq!(resp.encode(), bytes);
    assert_eq!(
        Response::decode(&bytes[..15], V4),
        Err(PacketError::Truncated {
            what: "connect response",
            len: 15,
            min: 16
        })
    );
    let mut long = bytes.to_vec();
    long.push(0);
    assert!(matches!(
        Response::decode(&long, V4),
        Err(PacketError::Length { .. })
    ));
}

fn announce_packet() -> AnnouncePacket {
    AnnouncePacket {
        connection_id: 0x1122_3344_5566_7788,
        transaction_id: 0xdead_beef,
        info_hash: InfoHash([0xab; 20]),
        peer_id: PeerId(*b"-BT0001-abcdefghijkl"),
        downloaded: 1,
        left: 0x0100_0000_0002,
        uploaded: 3,
        event: Some(AnnounceEvent::Started),
        ip: 0,
        key: 0x0a0b_0c0d,
        num_want: -1,
        port: 6881,
    }
}

#[test]
fn announce_request_bytes() {
    let bytes = Request::Announce(announce_packet()).encode();
    let mut want = vec![0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0, 0, 0, 1];
    want.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    want.extend_from_slice(&[0xab; 20]);
    want.extend_from_slice(b"-BT0001-abcdefghijkl");
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    want.extend_from_slice(&[0, 0, 1, 0, 0, 0, 0, 2]);
    want.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 3]);
    want.extend_from_slice(&[0, 0, 0, 2]); // started
    want.extend_from_slice(&[0, 0, 0, 0]); // ip
    want.extend_from_slice(&[0x0a, 0x0b, 0x0c, 0x0d]); // key
    want.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // num_want -1
    want.extend_from_slice(&[0x1a, 0xe1]); // 6881
    assert_eq!(bytes.len(), ANNOUNCE_REQUEST_LEN);
    assert_eq!(bytes, want);
    assert_eq!(
        Request::decode(&bytes),
        Ok(Request::Announce(announce_packet()))
    );
    // BEP 41 options after the fixed part are ignored.
    let mut with_options = bytes.clone();
    with_options.extend_from_slice(&[2, 9, b'/', b'a', b'n', b'n', b'o', b'u', b'n', b'c', b'e']);
    assert_eq!(
        Request::decode(&with_options),
        Ok(Request::Announce(announce_packet()))
    );
    assert!(matches!(
        Request::decode(&bytes[..97]),
        Err(PacketError::Truncated { min: 98, .. })
    ));
}

#[test]
fn announce_events() {
    for (event, code) in [
        (None, 0),
        (Some(AnnounceEvent::Completed), 1),
        (Some(AnnounceEvent::Started), 2),
        (Some(AnnounceEvent::Stopped), 3),
    ] {
        assert_eq!(event_code(event), code);
        assert_eq!(event_from_code(code), Ok(event));
        let mut bytes = Request::Announce(AnnouncePacket {
            event,
            ..announce_packet()
        })
        .encode();
        assert_eq!(bytes[80..84], code.to_be_bytes());
        bytes[83] = 4;
        assert_eq!(Request::decode(&bytes), Err(PacketError::UnknownEvent(4)));
    }
}

#[test]
fn announce_response_ipv4() {
    let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 7];
    bytes.extend_from_slice(&[0, 0, 0x07, 0x08]); // interval 1800
    bytes.extend_from_slice(&[0, 0, 0, 2]); // leechers
    bytes.extend_from_slice(&[0, 0, 0, 5]); // seeders
    bytes.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
    bytes.extend_from_slice(&[10, 0, 0, 2, 0, 80]);
    let resp = Response::decode(&bytes, V4).unwrap();
    let want = Response::Announce {
        transaction_id: 7,
        reply: AnnounceReply {
            interval: 1800,
            leechers: 2,
            seeders: 5,
            peers: vec![
                "127.0.0.1:6881".parse().unwrap(),
                "10.0.0.2:80".parse().unwrap(),
            ],
        },
    };
    assert_eq!(resp, want);
    assert_eq!(want.encode(), bytes);
    // No peers at all is fine.
    let resp = Response::decode(&bytes[..20], V4).unwrap();
    assert!(matches!(resp, Response::Announce { reply, .. } if reply.peers.is_empty()));
    // A partial peer record, or a header cut short, is not.
    assert!(matches!(
        Response::decode(&bytes[..25], V4),
        Err(PacketError::Length { .. })
    ));
    assert_eq!(
        Response::decode(&bytes[..19], V4),
        Err(PacketError::Truncated {
            what: "announce response",
            len: 19,
            min: 20
        })
    );
    // Over IPv6 the same 12 peer bytes are not whole 18-byte records.
    assert!(matches!(
        Response::decode(&bytes, AddressFamily::V6),
        Err(PacketError::Length { .. })
    ));
}

#[test]
fn announce_response_ipv6() {
    let mut bytes = vec![0, 0, 0, 1, 0, 0, 0, 7, 0, 0, 0, 60, 0, 0, 0, 0, 0, 0, 0, 1];
    let ip: Ipv6Addr = "2001:db8::1".parse().unwrap();
    bytes.extend_from_slice(&ip.octets());
    bytes.extend_from_slice(&[0x1a, 0xe1]);
    let resp = Response::decode(&bytes, AddressFamily::V6).unwrap();
    let want = Response::Announce {
        transaction_id: 7,
        reply: AnnounceReply {
            interval: 60,
            leechers: 0,
            seeders: 1,
            peers: vec!["[2001:db8::1]:6881".parse().unwrap()],
        },
    };
    assert_eq!(resp, want);
    assert_eq!(want.encode(), bytes);
    // 18 bytes are three IPv4 records.
    let resp = Response::decode(&bytes, V4).unwrap();
    assert!(matches!(resp, Response::Announce { reply, .. } if reply.peers.len() == 3));
}

#[test]
fn scrape_request_and_response_bytes() {
    let req = Request::Scrape {
        connection_id: 5,
        transaction_id: 6,
        info_hashes: vec![InfoHash([1; 20]), InfoHash([2; 20])],
    };
    let bytes = req.encode();
    let mut want = vec![0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 2, 0, 0, 0, 6];
    want.extend_from_slice(&[1; 20]);
    want.extend_from_slice(&[2; 20]);
    assert_eq!(bytes, want);
    assert_eq!(Request::decode(&bytes), Ok(req));
    assert!(matches!(
        Request::decode(&bytes[..16]),
        Err(PacketError::Length { .. })
    ));
    assert!(matches!(
        Request::decode(&bytes[..35]),
        Err(PacketError::Length { .. })
    ));

    let bytes = [
        0, 0, 0, 2, 0, 0, 0, 6, // header
        0, 0, 0, 10, 0, 0, 0, 20, 0, 0, 0, 30, // first
        0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, // second
    ];
    let resp = Response::decode(&bytes, V4).unwrap();
    let want = Response::Scrape {
        transaction_id: 6,
        entries: vec![
            ScrapeInfo {
                seeders: 10,
                completed: 20,
                leechers: 30,
            },
            ScrapeInfo {
                seeders: 1,
                completed: 2,
                leechers: 3,
            },
        ],
    };
    assert_eq!(resp, want);
    assert_eq!(want.encode(), bytes);
    assert!(matches!(
        Response::decode(&bytes[..31], V4),
        Err(PacketError::Length { .. })
    ));
}

#[test]
fn error_response_bytes() {
    let mut bytes = vec![0, 0, 0, 3, 0, 0, 0, 9];
    bytes.extend_from_slice(b"not whitelisted\0");
    assert_eq!(
        Response::decode(&bytes, V4),
        Ok(Response::Error {
            transaction_id: 9,
            message: "not whitelisted".into()
        })
    );
    assert_eq!(
        Response::decode(&bytes[..8], V4),
        Ok(Response::Error {
            transaction_id: 9,
            message: String::new()
        })
    );
    assert_eq!(
        Response::decode(&bytes[..7], V4),
        Err(PacketError::Truncated {
            what: "response",
            len: 7,
            min: 8
        })
    );
}

#[test]
fn unknown_actions_and_peek() {
    assert_eq!(
        Response::decode(&[0, 0, 0, 4, 0, 0, 0, 1], V4),
        Err(PacketError::UnknownAction(4))
    );
    let mut req = Request::Connect { transaction_id: 1 }.encode();
    req[11] = 3;
    assert_eq!(Request::decode(&req), Err(PacketError::UnknownAction(3)));
    assert_eq!(peek_transaction_id(&[0, 0, 0, 1, 0, 0, 1, 2]), Some(258));
    assert_eq!(peek_transaction_id(&[0, 0, 0, 1, 0, 0, 1]), None);
}

#[test]
fn packet_from_request_and_reply_to_response() {
    let req = AnnounceRequest {
        info_hash: InfoHash([3; 20]),
        peer_id: PeerId([4; 20]),
        port: 51413,
        uploaded: 10,
        downloaded: 20,
        left: 30,
        event: Some(AnnounceEvent::Stopped),
        num_want: None,
        tracker_id: Some("ignored".into()),
        ipv6: Some("2001:470::1".parse().unwrap()),
    };
    let packet = AnnouncePacket::new(&req, 1, 2, 3);
    assert_eq!(
        packet,
        AnnouncePacket {
            connection_id: 1,
            transaction_id: 2,
            info_hash: InfoHash([3; 20]),
            peer_id: PeerId([4; 20]),
            downloaded: 20,
            left: 30,
            uploaded: 10,
            event: Some(AnnounceEvent::Stopped),
            ip: 0,
            key: 3,
            num_want: -1,
            port: 51413,
        }
    );
    let many = AnnounceRequest {
        num_want: Some(u32::MAX),
        ..req.clone()
    };
    assert_eq!(AnnouncePacket::new(&many, 1, 2, 3).num_want, i32::MAX);
    let fifty = AnnounceRequest {
        num_want: Some(50),
        ..req
    };
    assert_eq!(AnnouncePacket::new(&fifty, 1, 2, 3).num_want, 50);

    let reply = AnnounceReply {
        interval: 0,
        leechers: 4,
        seeders: 5,
        peers: vec![
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.2:0".parse().unwrap(),
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.3:3".parse().unwrap(),
        ],
    };
    let resp = reply.into_response();
    assert_eq!(resp.interval, crate::tracker::MIN_INTERVAL);
    assert_eq!(
        resp.peers,
        vec![
            "10.0.0.1:1".parse::<SocketAddr>().unwrap(),
            "10.0.0.3:3".parse().unwrap()
        ]
    );
    assert_eq!((resp.complete, resp.incomplete), (Some(5), Some(4)));
    let long = AnnounceReply {
        interval: u32::MAX,
        leechers: 0,
        seeders: 0,
        peers: vec![],
    };
    assert_eq!(long.into_response().interval, crate::tracker::MAX_INTERVAL);
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Request::decode(&bytes);
        let _ = Response::decode(&bytes, AddressFamily::V4);
        let _ = Response::decode(&bytes, AddressFamily::V6);
        let _ = peek_transaction_id(&bytes);
    }

    #[test]
    fn valid_headers_with_random_bodies_never_panic(
        action in 0u32..5,
        body in proptest::collection::vec(any::<u8>(), 0..120),
    ) {
        let mut bytes = action.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0, 0, 0, 1]);
        bytes.extend_from_slice(&body);
        let _ = Response::decode(&bytes, AddressFamily::V4);
        let _ = Response::decode(&bytes, AddressFamily::V6);
        let mut req = 0x0417_2710_1980u64.to_be_bytes().to_vec();
        req.extend_from_slice(&bytes);
        let _ = Request::decode(&req);
    }

    #[test]
    fn announce_roundtrip(
        connection_id in any::<u64>(),
        transaction_id in any::<u32>(),
        left in any::<u64>(),
        event in 0u32..4,
        num_want in any::<i32>(),
        port in any::<u16>(),
    ) {
        let packet = AnnouncePacket {
            connection_id,
            transaction_id,
            left,
            event: event_from_code(event).unwrap(),
            num_want,
            port,
            ..announce_packet()
        };
        let req = Request::Announce(packet);
        prop_assert_eq!(Request::decode(&req.encode()), Ok(req));
    }
}
