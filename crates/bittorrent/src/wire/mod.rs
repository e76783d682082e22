//! The peer wire protocol (BEP 3): the handshake and the length-prefixed
//! messages, as tokio-util codecs. Pure: no sockets here.

mod codec;

pub use codec::{HandshakeCodec, MessageCodec, WireError};

use bytes::Bytes;

use crate::types::{BlockInfo, InfoHash, PeerId};

/// The 68-byte opening message of every connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// Reserved bits (extension negotiation: BEP 10 is bit 20 from the right, BEP 6 bit 2 ...).
    pub reserved: [u8; 8],
    /// Which torrent the connection is for.
    pub info_hash: InfoHash,
    /// The sender's peer id.
    pub peer_id: PeerId,
}

impl Handshake {
    /// Wire length of a handshake.
    pub const LEN: usize = 68;

    /// Whether the sender supports the extension protocol (BEP 10: reserved
    /// byte 5, bit 0x10).
    pub fn supports_extensions(&self) -> bool {
        self.reserved[5] & 0x10 != 0
    }

    /// Sets the BEP 10 extension-protocol bit.
    pub fn with_extensions(mut self) -> Self {
        self.reserved[5] |= 0x10;
        self
    }

    /// Whether the sender supports the Fast extension (BEP 6: reserved byte
    /// 7, bit 0x04). It is in force only when both handshakes set it.
    pub fn supports_fast(&self) -> bool {
        self.reserved[7] & 0x04 != 0
    }

    /// Sets the BEP 6 Fast-extension bit.
    pub fn with_fast(mut self) -> Self {
        self.reserved[7] |= 0x04;
        self
    }

    /// The first 20 bytes of every handshake: the protocol string's length (19)
    /// followed by the protocol string.
    pub const PROTOCOL: &'static [u8; 20] = b"\x13BitTorrent protocol";

    /// A handshake with no extension bits set.
    pub fn new(info_hash: InfoHash, peer_id: PeerId) -> Self {
        Self {
            reserved: [0; 8],
            info_hash,
            peer_id,
        }
    }
}

/// One peer wire message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// Zero-length message.
    KeepAlive,
    /// id 0.
    Choke,
    /// id 1.
    Unchoke,
    /// id 2.
    Interested,
    /// id 3.
    NotInterested,
    /// id 4: the sender has verified this piece.
    Have(u32),
    /// id 5: raw bitfield payload (validated against the piece count by the receiver).
    Bitfield(Bytes),
    /// id 6.
    Request(BlockInfo),
    /// id 7: a block of data.
    Piece {
        /// Piece index.
        piece: u32,
        /// Offset in the piece.
        begin: u32,
        /// The block's bytes.
        data: Bytes,
    },
    /// id 8.
    Cancel(BlockInfo),
    /// id 9: DHT port (ignored until DHT exists).
    Port(u16),
    /// id 13 (BEP 6): "you might like to download this piece".
    Suggest(u32),
    /// id 14 (BEP 6): the sender has every piece (instead of a bitfield).
    HaveAll,
    /// id 15 (BEP 6): the sender has no piece (instead of a bitfield).
    HaveNone,
    /// id 16 (BEP 6): the sender will not serve this request.
    RejectRequest(BlockInfo),
    /// id 17 (BEP 6): the sender serves this piece even while it chokes us.
    AllowedFast(u32),
    /// id 20 (BEP 10): an extension message. `id` is the extended message
    /// id (0 = extended handshake, others as negotiated); `payload` follows it.
    Extended {
        /// Extended message id.
        id: u8,
        /// Bencoded dictionary (plus, for some messages, trailing data).
        payload: Bytes,
    },
    /// Any id we do not understand yet (extensions); ignored by the peer.
    Unknown {
        /// Message id.
        id: u8,
        /// Payload after the id.
        payload: Bytes,
    },
}

impl Message {
    /// Length of the 4-byte big-endian length prefix before every message.
    pub const PREFIX_LEN: usize = 4;
    /// The message id of BEP 10 extension messages.
    pub const EXTENDED_ID: u8 = 20;

    /// The message id byte, or `None` for a keep-alive (which has no id).
    pub fn id(&self) -> Option<u8> {
        Some(match self {
            Message::KeepAlive => return None,
            Message::Choke => 0,
            Message::Unchoke => 1,
            Message::Interested => 2,
            Message::NotInterested => 3,
            Message::Have(_) => 4,
            Message::Bitfield(_) => 5,
            Message::Request(_) => 6,
            Message::Piece { .. } => 7,
            Message::Cancel(_) => 8,
            Message::Port(_) => 9,
            Message::Suggest(_) => 13,
            Message::HaveAll => 14,
            Message::HaveNone => 15,
            Message::RejectRequest(_) => 16,
            Message::AllowedFast(_) => 17,
            Message::Extended { .. } => Self::EXTENDED_ID,
            Message::Unknown { id, .. } => *id,
        })
    }

    /// The value of the length prefix for this message: the id byte plus the
    /// payload (0 for a keep-alive). May exceed `u32::MAX` for an oversized
    /// `Piece`, `Bitfield` or `Unknown`, which the encoder then refuses.
    pub fn frame_len(&self) -> usize {
        match self {
            Message::KeepAlive => 0,
            Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => 1,
            Message::Have(_) | Message::Suggest(_) | Message::AllowedFast(_) => 5,
            Message::Bitfield(bits) => 1 + bits.len(),
            Message::Request(_) | Message::Cancel(_) | Message::RejectRequest(_) => 13,
            Message::Piece { data, .. } => 9 + data.len(),
            Message::Port(_) => 3,
            Message::Extended { payload, .. } => 2 + payload.len(),
            Message::Unknown { payload, .. } => 1 + payload.len(),
        }
    }

    /// Total bytes on the wire: the length prefix plus [`frame_len`](Self::frame_len).
    pub fn encoded_len(&self) -> usize {
        Self::PREFIX_LEN + self.frame_len()
    }
}
