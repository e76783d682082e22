//! Response datagrams: what a tracker sends and a client decodes.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::tracker::response::clamp_interval;
use crate::tracker::udp::packet::{
    length, Action, AddressFamily, PacketError, Reader, ANNOUNCE_RESPONSE_HEADER_LEN, CONNECT_LEN,
    RESPONSE_HEADER_LEN, SCRAPE_ENTRY_LEN,
};
use crate::tracker::AnnounceResponse;

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
    /// port 0 and duplicates dropped (order kept), IPv4-mapped IPv6
    /// addresses as the IPv4 addresses they stand for, seeders as `complete`
    /// and leechers as `incomplete`.
    pub fn into_response(self) -> AnnounceResponse {
        let mut seen = HashSet::new();
        let mut peers: Vec<SocketAddr> = self
            .peers
            .into_iter()
            .map(|p| SocketAddr::new(p.ip().to_canonical(), p.port()))
            .collect();
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
            Some(Action::Connect) => Ok(Self::Connect {
                transaction_id,
                connection_id: read_connection_id(&mut r, datagram)?,
            }),
            Some(Action::Announce) => Ok(Self::Announce {
                transaction_id,
                reply: read_announce_reply(&mut r, datagram, family)?,
            }),
            Some(Action::Scrape) => Ok(Self::Scrape {
                transaction_id,
                entries: read_scrape_entries(&mut r, datagram)?,
            }),
            Some(Action::Error) => Ok(Self::Error {
                transaction_id,
                message: error_message(datagram),
            }),
            None => Err(PacketError::UnknownAction(code)),
        }
    }
}

/// The connection id of a `connect` response, which is exactly 16 bytes.
fn read_connection_id(r: &mut Reader<'_>, datagram: &[u8]) -> Result<u64, PacketError> {
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
    Ok(r.u64())
}

/// The swarm counts and the whole peer records of an announce response.
fn read_announce_reply(
    r: &mut Reader<'_>,
    datagram: &[u8],
    family: AddressFamily,
) -> Result<AnnounceReply, PacketError> {
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
        .map(|_| read_peer(r, family))
        .collect();
    Ok(AnnounceReply {
        interval,
        leechers,
        seeders,
        peers,
    })
}

/// One compact peer record of `family` (6 or 18 bytes).
fn read_peer(r: &mut Reader<'_>, family: AddressFamily) -> SocketAddr {
    let ip = match family {
        AddressFamily::V4 => IpAddr::V4(Ipv4Addr::from(r.array::<4>())),
        AddressFamily::V6 => IpAddr::V6(Ipv6Addr::from(r.array::<16>())),
    };
    SocketAddr::new(ip, r.u16())
}

/// The whole 12-byte entries of a scrape response.
fn read_scrape_entries(
    r: &mut Reader<'_>,
    datagram: &[u8],
) -> Result<Vec<ScrapeInfo>, PacketError> {
    let body = datagram.len() - RESPONSE_HEADER_LEN;
    if body % SCRAPE_ENTRY_LEN != 0 {
        return Err(length("scrape response", datagram));
    }
    Ok((0..body / SCRAPE_ENTRY_LEN)
        .map(|_| ScrapeInfo {
            seeders: r.u32(),
            completed: r.u32(),
            leechers: r.u32(),
        })
        .collect())
}

/// The text of an error response: lossy UTF-8, trailing NULs dropped.
fn error_message(datagram: &[u8]) -> String {
    let text = &datagram[RESPONSE_HEADER_LEN..];
    let end = text.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    String::from_utf8_lossy(&text[..end]).into_owned()
}
