//! BEP 15 datagrams: encoding and strict decoding of requests and responses.
//! Pure: no sockets, no clocks.
//!
//! Every integer is big-endian. Requests start with a 64-bit connection id
//! (the protocol id for `connect`), a 32-bit action and a 32-bit transaction
//! id; responses start with the action and the transaction id. Decoding
//! checks each action's length exactly (header plus whole records) and never
//! panics, whatever the bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use std::collections::HashSet;

use crate::tracker::response::clamp_interval;
use crate::tracker::{AnnounceEvent, AnnounceRequest, AnnounceResponse};
use crate::types::{InfoHash, PeerId};

/// The magic connection id of a `connect` request.
pub const PROTOCOL_ID: u64 = 0x0417_2710_1980;

/// The most info-hashes one scrape request may carry (BEP 15: 74, so the
/// datagram stays under common MTUs).
pub const MAX_SCRAPE_HASHES: usize = 74;

/// Length of a `connect` request and of its response.
pub const CONNECT_LEN: usize = 16;

/// Length of an `announce` request without BEP 41 options.
pub const ANNOUNCE_REQUEST_LEN: usize = 98;

/// Length of the fixed part of an `announce` response, before the peers.
pub const ANNOUNCE_RESPONSE_HEADER_LEN: usize = 20;

/// Length of the header of a request that carries a connection id.
const REQUEST_HEADER_LEN: usize = 16;

/// Length of the header of every response: action and transaction id.
const RESPONSE_HEADER_LEN: usize = 8;

/// Bytes per scraped torrent in a scrape response.
const SCRAPE_ENTRY_LEN: usize = 12;

/// Errors of decoding a datagram (and of matching it to a request).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    /// Shorter than the fixed part of its action.
    #[error("{what} of {len} bytes is shorter than its {min}-byte header")]
    Truncated {
        /// The kind of datagram.
        what: &'static str,
        /// Its length.
        len: usize,
        /// The least length of that kind.
        min: usize,
    },
    /// A length that is not the header plus whole records (or not the exact
    /// length of a fixed-size datagram).
    #[error("{what} of {len} bytes has a malformed length")]
    Length {
        /// The kind of datagram.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A `connect` request without the magic protocol id.
    #[error("bad protocol id {0:#x}")]
    ProtocolId(u64),
    /// An action code other than 0 to 3 (or 3 in a request).
    #[error("unknown action {0}")]
    UnknownAction(u32),
    /// An announce event code other than 0 to 3.
    #[error("unknown announce event {0}")]
    UnknownEvent(u32),
    /// The response's action is not the one the request asked for.
    #[error("expected a {expected:?} response, got {got:?}")]
    ActionMismatch {
        /// The request's action.
        expected: Action,
        /// The response's action.
        got: Action,
    },
    /// A scrape response with another number of entries than hashes asked.
    #[error("scrape of {requested} torrents answered with {got} entries")]
    ScrapeCount {
        /// Hashes in the request.
        requested: usize,
        /// Entries in the response.
        got: usize,
    },
}

/// The action field of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// 0: obtain a connection id.
    Connect,
    /// 1: announce.
    Announce,
    /// 2: scrape.
    Scrape,
    /// 3: error (responses only).
    Error,
}

impl Action {
    /// The wire code: 0 to 3.
    pub fn code(self) -> u32 {
        match self {
            Self::Connect => 0,
            Self::Announce => 1,
            Self::Scrape => 2,
            Self::Error => 3,
        }
    }

    /// The action of a wire code, if known.
    pub fn from_code(code: u32) -> Option<Self> {
        match code {
            0 => Some(Self::Connect),
            1 => Some(Self::Announce),
            2 => Some(Self::Scrape),
            3 => Some(Self::Error),
            _ => None,
        }
    }
}

/// The address family of the tracker we talk to: it decides the size of
/// the peer records of an announce response (BEP 15: 6 bytes for IPv4, 18
/// bytes for IPv6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddressFamily {
    /// The tracker was reached over IPv4.
    V4,
    /// The tracker was reached over IPv6.
    V6,
}

impl AddressFamily {
    /// The family of `addr`.
    pub fn of(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(_) => Self::V4,
            SocketAddr::V6(_) => Self::V6,
        }
    }

    /// Bytes per compact peer record: 6 or 18.
    pub fn peer_len(self) -> usize {
        match self {
            Self::V4 => 6,
            Self::V6 => 18,
        }
    }
}

/// The wire code of an announce event: 0 none, 1 completed, 2 started,
/// 3 stopped.
pub fn event_code(event: Option<AnnounceEvent>) -> u32 {
    match event {
        None => 0,
        Some(AnnounceEvent::Completed) => 1,
        Some(AnnounceEvent::Started) => 2,
        Some(AnnounceEvent::Stopped) => 3,
    }
}

/// The announce event of a wire code.
///
/// # Errors
/// [`PacketError::UnknownEvent`] for codes above 3.
pub fn event_from_code(code: u32) -> Result<Option<AnnounceEvent>, PacketError> {
    match code {
        0 => Ok(None),
        1 => Ok(Some(AnnounceEvent::Completed)),
        2 => Ok(Some(AnnounceEvent::Started)),
        3 => Ok(Some(AnnounceEvent::Stopped)),
        other => Err(PacketError::UnknownEvent(other)),
    }
}

/// The fields of an announce request (action 1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnouncePacket {
    /// From the `connect` response.
    pub connection_id: u64,
    /// Chosen by the client, echoed by the tracker.
    pub transaction_id: u32,
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Payload bytes downloaded.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Payload bytes uploaded.
    pub uploaded: u64,
    /// The event, if any.
    pub event: Option<AnnounceEvent>,
    /// Our IPv4 address, or 0 for "the datagram's source".
    pub ip: u32,
    /// A random key that lets the tracker recognise us across IP changes.
    pub key: u32,
    /// Peers wanted; -1 for the tracker's default.
    pub num_want: i32,
    /// Our listening port.
    pub port: u16,
}

impl AnnouncePacket {
    /// The packet for `req`: `ip` 0 (the tracker uses the datagram's
    /// source), `num_want` -1 when `req` has none (values above `i32::MAX`
    /// are capped). The tracker id of HTTP trackers has no UDP equivalent.
    pub fn new(req: &AnnounceRequest, connection_id: u64, transaction_id: u32, key: u32) -> Self {
        Self {
            connection_id,
            transaction_id,
            info_hash: req.info_hash,
            peer_id: req.peer_id,
            downloaded: req.downloaded,
            left: req.left,
            uploaded: req.uploaded,
            event: req.event,
            ip: 0,
            key,
            num_want: req
                .num_want
                .map_or(-1, |n| i32::try_from(n).unwrap_or(i32::MAX)),
            port: req.port,
        }
    }
}

/// A request datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Action 0: ask for a connection id.
    Connect {
        /// Chosen by the client.
        transaction_id: u32,
    },
    /// Action 1.
    Announce(AnnouncePacket),
    /// Action 2: swarm counts of up to [`MAX_SCRAPE_HASHES`] torrents.
    Scrape {
        /// From the `connect` response.
        connection_id: u64,
        /// Chosen by the client.
        transaction_id: u32,
        /// The torrents.
        info_hashes: Vec<InfoHash>,
    },
}

impl Request {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id }
            | Self::Scrape { transaction_id, .. }
            | Self::Announce(AnnouncePacket { transaction_id, .. }) => *transaction_id,
        }
    }

    /// The action.
    pub fn action(&self) -> Action {
        match self {
            Self::Connect { .. } => Action::Connect,
            Self::Announce(_) => Action::Announce,
            Self::Scrape { .. } => Action::Scrape,
        }
    }

    /// The datagram. A scrape carries all its hashes, even more than
    /// [`MAX_SCRAPE_HASHES`]: splitting is the caller's business.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(ANNOUNCE_REQUEST_LEN);
        match self {
            Self::Connect { transaction_id } => {
                out.extend_from_slice(&PROTOCOL_ID.to_be_bytes());
                out.extend_from_slice(&Action::Connect.code().to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
            }
            Self::Announce(a) => {
                out.extend_from_slice(&a.connection_id.to_be_bytes());
                out.extend_from_slice(&Action::Announce.code().to_be_bytes());
                out.extend_from_slice(&a.transaction_id.to_be_bytes());
                out.extend_from_slice(&a.info_hash.0);
                out.extend_from_slice(&a.peer_id.0);
                out.extend_from_slice(&a.downloaded.to_be_bytes());
                out.extend_from_slice(&a.left.to_be_bytes());
                out.extend_from_slice(&a.uploaded.to_be_bytes());
                out.extend_from_slice(&event_code(a.event).to_be_bytes());
                out.extend_from_slice(&a.ip.to_be_bytes());
                out.extend_from_slice(&a.key.to_be_bytes());
                out.extend_from_slice(&a.num_want.to_be_bytes());
                out.extend_from_slice(&a.port.to_be_bytes());
            }
            Self::Scrape {
                connection_id,
                transaction_id,
                info_hashes,
            } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
                out.extend_from_slice(&Action::Scrape.code().to_be_bytes());
                out.extend_from_slice(&transaction_id.to_be_bytes());
                for hash in info_hashes {
                    out.extend_from_slice(&hash.0);
                }
            }
        }
        out
    }

    /// Parses a request datagram (what a tracker receives). An announce may
    /// carry BEP 41 options after its 98 bytes; they are ignored.
    ///
    /// # Errors
    /// [`PacketError::Truncated`] below a header, [`PacketError::Length`]
    /// for a malformed length, [`PacketError::ProtocolId`],
    /// [`PacketError::UnknownAction`], [`PacketError::UnknownEvent`].
    pub fn decode(datagram: &[u8]) -> Result<Self, PacketError> {
        let mut r = Reader::new(datagram, "request", REQUEST_HEADER_LEN)?;
        let connection_id = r.u64();
        let code = r.u32();
        let transaction_id = r.u32();
        match Action::from_code(code) {
            Some(Action::Connect) => {
                if datagram.len() != CONNECT_LEN {
                    return Err(length("connect request", datagram));
                }
                if connection_id != PROTOCOL_ID {
                    return Err(PacketError::ProtocolId(connection_id));
                }
                Ok(Self::Connect { transaction_id })
            }
            Some(Action::Announce) => {
                if datagram.len() < ANNOUNCE_REQUEST_LEN {
                    return Err(PacketError::Truncated {
                        what: "announce request",
                        len: datagram.len(),
                        min: ANNOUNCE_REQUEST_LEN,
                    });
                }
                Ok(Self::Announce(AnnouncePacket {
                    connection_id,
                    transaction_id,
                    info_hash: InfoHash(r.array()),
                    peer_id: PeerId(r.array()),
                    downloaded: r.u64(),
                    left: r.u64(),
                    uploaded: r.u64(),
                    event: event_from_code(r.u32())?,
                    ip: r.u32(),
                    key: r.u32(),
                    num_want: r.i32(),
                    port: r.u16(),
                }))
            }
            Some(Action::Scrape) => {
                let body = datagram.len() - REQUEST_HEADER_LEN;
                if body == 0 || body % 20 != 0 {
                    return Err(length("scrape request", datagram));
                }
                let info_hashes = (0..body / 20).map(|_| InfoHash(r.array())).collect();
                Ok(Self::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes,
                })
            }
            Some(Action::Error) | None => Err(PacketError::UnknownAction(code)),
        }
    }
}

/// The fixed fields and peers of an announce response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceReply {
    /// Seconds until the next announce.
    pub interval: u32,
    /// Leechers in the swarm.
    pub leechers: u32,
    /// Seeders in the swarm.
    pub seeders: u32,
    /// Peers, as sent (not deduplicated).
    pub peers: Vec<SocketAddr>,
}

impl AnnounceReply {
    /// The protocol-independent [`AnnounceResponse`]: the interval clamped
    /// like an HTTP response's (`MIN_INTERVAL..=MAX_INTERVAL`), peers with
    /// port 0 and duplicates dropped (order kept), seeders as `complete`
    /// and leechers as `incomplete`.
    pub fn into_response(self) -> AnnounceResponse {
        let mut seen = HashSet::new();
        let mut peers = self.peers;
        peers.retain(|p| p.port() != 0 && seen.insert(*p));
        AnnounceResponse {
            interval: clamp_interval(i64::from(self.interval)),
            min_interval: None,
            peers,
            tracker_id: None,
            warning: None,
            complete: Some(self.seeders),
            incomplete: Some(self.leechers),
        }
    }
}

/// One torrent's entry of a scrape response.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScrapeInfo {
    /// Peers with the whole torrent.
    pub seeders: u32,
    /// How many times the torrent was downloaded completely.
    pub completed: u32,
    /// Peers still downloading.
    pub leechers: u32,
}

/// A response datagram.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Action 0.
    Connect {
        /// The request's.
        transaction_id: u32,
        /// To put in the next requests (valid for a minute).
        connection_id: u64,
    },
    /// Action 1.
    Announce {
        /// The request's.
        transaction_id: u32,
        /// The swarm and its peers.
        reply: AnnounceReply,
    },
    /// Action 2: one entry per requested hash, in request order.
    Scrape {
        /// The request's.
        transaction_id: u32,
        /// The entries.
        entries: Vec<ScrapeInfo>,
    },
    /// Action 3: the request failed.
    Error {
        /// The request's.
        transaction_id: u32,
        /// Why (lossy UTF-8, trailing NULs dropped).
        message: String,
    },
}

impl Response {
    /// The transaction id.
    pub fn transaction_id(&self) -> u32 {
        match self {
            Self::Connect { transaction_id, .. }
            | Self::Announce { transaction_id, .. }
            | Self::Scrape { transaction_id, .. }
            | Self::Error { transaction_id, .. } => *transaction_id,
        }
    }

    /// The action.
    pub fn action(&self) -> Action {
        match self {
            Self::Connect { .. } => Action::Connect,
            Self::Announce { .. } => Action::Announce,
            Self::Scrape { .. } => Action::Scrape,
            Self::Error { .. } => Action::Error,
        }
    }

    /// The datagram. Each peer is written in its own family's format (6 or
    /// 18 bytes): a tracker sends only peers of the family it was reached by.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        out.extend_from_slice(&self.action().code().to_be_bytes());
        out.extend_from_slice(&self.transaction_id().to_be_bytes());
        match self {
            Self::Connect { connection_id, .. } => {
                out.extend_from_slice(&connection_id.to_be_bytes());
            }
            Self::Announce { reply, .. } => {
                out.extend_from_slice(&reply.interval.to_be_bytes());
                out.extend_from_slice(&reply.leechers.to_be_bytes());
                out.extend_from_slice(&reply.seeders.to_be_bytes());
                for peer in &reply.peers {
                    match peer.ip() {
                        IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
                        IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
                    }
                    out.extend_from_slice(&peer.port().to_be_bytes());
                }
            }
            Self::Scrape { entries, .. } => {
                for e in entries {
                    out.extend_from_slice(&e.seeders.to_be_bytes());
                    out.extend_from_slice(&e.completed.to_be_bytes());
                    out.extend_from_slice(&e.leechers.to_be_bytes());
                }
            }
            Self::Error { message, .. } => out.extend_from_slice(message.as_bytes()),
        }
        out
    }

    /// Parses a response datagram from a tracker reached over `family`.
    ///
    /// # Errors
    /// [`PacketError::Truncated`] below the action's header,
    /// [`PacketError::Length`] when a connect response is not exactly 16
    /// bytes or the peers / scrape entries are not whole records,
    /// [`PacketError::UnknownAction`].
    pub fn decode(datagram: &[u8], family: AddressFamily) -> Result<Self, PacketError> {
        let mut r = Reader::new(datagram, "response", RESPONSE_HEADER_LEN)?;
        let code = r.u32();
        let transaction_id = r.u32();
        match Action::from_code(code) {
            Some(Action::Connect) => {
                if datagram.len() < CONNECT_LEN {
                    return Err(PacketError::Truncated {
                        what: "connect response",
                        len: datagram.len(),
                        min: CONNECT_LEN,
                    });
                }
                if datagram.len() != CONNECT_LEN {
                    return Err(length("connect response", datagram));
                }
                Ok(Self::Connect {
                    transaction_id,
                    connection_id: r.u64(),
                })
            }
            Some(Action::Announce) => {
                if datagram.len() < ANNOUNCE_RESPONSE_HEADER_LEN {
                    return Err(PacketError::Truncated {
                        what: "announce response",
                        len: datagram.len(),
                        min: ANNOUNCE_RESPONSE_HEADER_LEN,
                    });
                }
                let records = datagram.len() - ANNOUNCE_RESPONSE_HEADER_LEN;
                if records % family.peer_len() != 0 {
                    return Err(length("announce response", datagram));
                }
                let interval = r.u32();
                let leechers = r.u32();
                let seeders = r.u32();
                let peers = (0..records / family.peer_len())
                    .map(|_| match family {
                        AddressFamily::V4 => {
                            let ip = Ipv4Addr::from(r.array::<4>());
                            SocketAddr::new(IpAddr::V4(ip), r.u16())
                        }
                        AddressFamily::V6 => {
                            let ip = Ipv6Addr::from(r.array::<16>());
                            SocketAddr::new(IpAddr::V6(ip), r.u16())
                        }
                    })
                    .collect();
                Ok(Self::Announce {
                    transaction_id,
                    reply: AnnounceReply {
                        interval,
                        leechers,
                        seeders,
                        peers,
                    },
                })
            }
            Some(Action::Scrape) => {
                let body = datagram.len() - RESPONSE_HEADER_LEN;
                if body % SCRAPE_ENTRY_LEN != 0 {
                    return Err(length("scrape response", datagram));
                }
                let entries = (0..body / SCRAPE_ENTRY_LEN)
                    .map(|_| ScrapeInfo {
                        seeders: r.u32(),
                        completed: r.u32(),
                        leechers: r.u32(),
                    })
                    .collect();
                Ok(Self::Scrape {
                    transaction_id,
                    entries,
                })
            }
            Some(Action::Error) => {
                let text = &datagram[RESPONSE_HEADER_LEN..];
                let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
                Ok(Self::Error {
                    transaction_id,
                    message: String::from_utf8_lossy(&text[..end]).into_owned(),
                })
            }
            None => Err(PacketError::UnknownAction(code)),
        }
    }
}

/// The transaction id of a response datagram, if it is long enough to have
/// one: lets a client drop foreign datagrams before decoding them.
pub fn peek_transaction_id(datagram: &[u8]) -> Option<u32> {
    let bytes = datagram.get(4..8)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

fn length(what: &'static str, datagram: &[u8]) -> PacketError {
    PacketError::Length {
        what,
        len: datagram.len(),
    }
}

/// A cursor over a datagram whose length the caller checked before each
/// read; a read past the end yields zeros instead of panicking (and the
/// length checks make that unreachable).
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `bytes`, which must be at least `min` long.
    fn new(bytes: &'a [u8], what: &'static str, min: usize) -> Result<Self, PacketError> {
        if bytes.len() < min {
            return Err(PacketError::Truncated {
                what,
                len: bytes.len(),
                min,
            });
        }
        Ok(Self { bytes, pos: 0 })
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        if let Some(src) = self.bytes.get(self.pos..self.pos + N) {
            out.copy_from_slice(src);
        }
        self.pos += N;
        out
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.array())
    }

    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_be_bytes(self.array())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        with_options
            .extend_from_slice(&[2, 9, b'/', b'a', b'n', b'n', b'o', b'u', b'n', b'c', b'e']);
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
}
