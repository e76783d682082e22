//! BEP 15 datagrams: encoding and strict decoding of requests and responses.
//! Pure: no sockets, no clocks.
//!
//! Every integer is big-endian. Requests start with a 64-bit connection id
//! (the protocol id for `connect`), a 32-bit action and a 32-bit transaction
//! id; responses start with the action and the transaction id. Decoding
//! checks each action's length exactly (header plus whole records) and never
//! panics, whatever the bytes.
//!
//! Layout: `request.rs` holds [`Request`] (what a tracker decodes),
//! `response.rs` holds [`Response`] (what a client decodes); this file holds
//! what both share: actions, address families, event codes, errors and the
//! bounds-checked reader.

mod request;
mod response;

use std::net::SocketAddr;

use crate::tracker::AnnounceEvent;

pub use request::{AnnouncePacket, Request};
pub use response::{AnnounceReply, Response, ScrapeInfo};

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
mod tests;
