//! Request datagrams: what a client sends and a tracker decodes.

use crate::tracker::udp::packet::{
    event_code, event_from_code, length, Action, PacketError, Reader, ANNOUNCE_REQUEST_LEN,
    CONNECT_LEN, PROTOCOL_ID, REQUEST_HEADER_LEN,
};
use crate::tracker::{AnnounceEvent, AnnounceRequest};
use crate::types::{InfoHash, PeerId};

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
    ///
    /// [`MAX_SCRAPE_HASHES`]: crate::tracker::udp::packet::MAX_SCRAPE_HASHES
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
    ///
    /// [`MAX_SCRAPE_HASHES`]: crate::tracker::udp::packet::MAX_SCRAPE_HASHES
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
                check_connect_request(datagram, connection_id)?;
                Ok(Self::Connect { transaction_id })
            }
            Some(Action::Announce) => {
                check_announce_request(datagram)?;
                Ok(Self::Announce(read_announce(
                    &mut r,
                    connection_id,
                    transaction_id,
                )?))
            }
            Some(Action::Scrape) => Ok(Self::Scrape {
                connection_id,
                transaction_id,
                info_hashes: read_scrape_hashes(&mut r, datagram)?,
            }),
            Some(Action::Error) | None => Err(PacketError::UnknownAction(code)),
        }
    }
}

/// A `connect` request is exactly 16 bytes and carries the protocol id.
fn check_connect_request(datagram: &[u8], connection_id: u64) -> Result<(), PacketError> {
    if datagram.len() != CONNECT_LEN {
        return Err(length("connect request", datagram));
    }
    if connection_id != PROTOCOL_ID {
        return Err(PacketError::ProtocolId(connection_id));
    }
    Ok(())
}

/// An announce request holds at least its 98 bytes (BEP 41 options may
/// follow).
fn check_announce_request(datagram: &[u8]) -> Result<(), PacketError> {
    if datagram.len() < ANNOUNCE_REQUEST_LEN {
        return Err(PacketError::Truncated {
            what: "announce request",
            len: datagram.len(),
            min: ANNOUNCE_REQUEST_LEN,
        });
    }
    Ok(())
}

/// The fields of an announce request after its header (the length is
/// checked).
fn read_announce(
    r: &mut Reader<'_>,
    connection_id: u64,
    transaction_id: u32,
) -> Result<AnnouncePacket, PacketError> {
    Ok(AnnouncePacket {
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
    })
}

/// The info-hashes of a scrape request: one or more whole 20-byte hashes
/// after the header.
fn read_scrape_hashes(r: &mut Reader<'_>, datagram: &[u8]) -> Result<Vec<InfoHash>, PacketError> {
    let body = datagram.len() - REQUEST_HEADER_LEN;
    if body == 0 || body % 20 != 0 {
        return Err(length("scrape request", datagram));
    }
    Ok((0..body / 20).map(|_| InfoHash(r.array())).collect())
}
