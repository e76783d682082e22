//! tokio-util codecs for the handshake and the message stream.
//!
//! Both decoders return `Ok(None)` until a whole frame is buffered and consume
//! exactly one frame per `Some`, leaving any later bytes in the buffer. Every
//! check that can be made on a frame's first bytes (protocol string, length
//! prefix against the cap, a known id's exact length) is made before waiting
//! for, or reserving room for, the rest of it.

use bytes::{Buf, BufMut, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::types::{BlockInfo, InfoHash, PeerId};
use crate::wire::{Handshake, Message};

/// Errors of the wire codecs. Any of them ends that peer's connection only.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// Socket error.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The handshake's protocol string is not `\x13BitTorrent protocol`.
    #[error("not a BitTorrent handshake")]
    BadProtocol,
    /// A length prefix above the codec's maximum.
    #[error("frame of {len} bytes exceeds the maximum of {max}")]
    FrameTooLong {
        /// Announced length.
        len: usize,
        /// Allowed maximum.
        max: usize,
    },
    /// A known message id with a payload of the wrong length.
    #[error("message id {id} with invalid length {len}")]
    BadLength {
        /// Message id.
        id: u8,
        /// Frame length (id included).
        len: usize,
    },
}

/// Codec for the 68-byte handshake.
///
/// After the handshake, switch the connection to [`MessageCodec`] with
/// `FramedParts` so bytes the peer sent right behind its handshake are kept:
/// the decoder consumes exactly [`Handshake::LEN`] bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = Handshake;
    type Error = WireError;

    /// # Errors
    /// [`WireError::BadProtocol`] as soon as the buffered bytes differ from
    /// `\x13BitTorrent protocol`, even before 68 bytes have arrived.
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Handshake>, WireError> {
        let proto = Handshake::PROTOCOL;
        let seen = src.len().min(proto.len());
        if src[..seen] != proto[..seen] {
            return Err(WireError::BadProtocol);
        }
        if src.len() < Handshake::LEN {
            src.reserve(Handshake::LEN - src.len());
            return Ok(None);
        }
        let mut reserved = [0u8; 8];
        let mut info_hash = [0u8; 20];
        let mut peer_id = [0u8; 20];
        reserved.copy_from_slice(&src[20..28]);
        info_hash.copy_from_slice(&src[28..48]);
        peer_id.copy_from_slice(&src[48..68]);
        src.advance(Handshake::LEN);
        Ok(Some(Handshake {
            reserved,
            info_hash: InfoHash(info_hash),
            peer_id: PeerId(peer_id),
        }))
    }
}

impl Encoder<Handshake> for HandshakeCodec {
    type Error = WireError;

    fn encode(&mut self, item: Handshake, dst: &mut BytesMut) -> Result<(), WireError> {
        dst.reserve(Handshake::LEN);
        dst.put_slice(Handshake::PROTOCOL);
        dst.put_slice(&item.reserved);
        dst.put_slice(&item.info_hash.0);
        dst.put_slice(&item.peer_id.0);
        Ok(())
    }
}

/// Codec for length-prefixed messages, with a cap on the length prefix.
///
/// Decoding is zero-copy for payloads: `Piece` data, `Bitfield` and `Unknown`
/// payloads are [`Bytes`](bytes::Bytes) views into the read buffer.
#[derive(Debug, Clone, Copy)]
pub struct MessageCodec {
    max_frame_len: usize,
}

impl MessageCodec {
    /// Default cap: a 16 KiB block plus header, or a bitfield for 1 Mi pieces.
    pub const DEFAULT_MAX_FRAME_LEN: usize = 128 * 1024 + 13;

    /// A codec refusing frames longer than `max_frame_len` bytes (id included).
    pub fn new(max_frame_len: usize) -> Self {
        Self { max_frame_len }
    }

    /// The largest length prefix this codec's decoder accepts.
    pub fn max_frame_len(&self) -> usize {
        self.max_frame_len
    }
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_FRAME_LEN)
    }
}

/// Message ids of BEP 3.
mod id {
    pub const CHOKE: u8 = 0;
    pub const UNCHOKE: u8 = 1;
    pub const INTERESTED: u8 = 2;
    pub const NOT_INTERESTED: u8 = 3;
    pub const HAVE: u8 = 4;
    pub const BITFIELD: u8 = 5;
    pub const REQUEST: u8 = 6;
    pub const PIECE: u8 = 7;
    pub const CANCEL: u8 = 8;
    pub const PORT: u8 = 9;
}

/// Checks a frame length (id included, so at least 1) against what message
/// `id` requires. Unknown ids accept any length.
fn check_len(msg_id: u8, len: usize) -> Result<(), WireError> {
    let ok = match msg_id {
        id::CHOKE..=id::NOT_INTERESTED => len == 1,
        id::HAVE => len == 5,
        id::BITFIELD => len >= 1,
        id::REQUEST | id::CANCEL => len == 13,
        id::PIECE => len >= 9,
        id::PORT => len == 3,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(WireError::BadLength { id: msg_id, len })
    }
}

/// The big-endian `u32` at the start of `b`. The caller has checked the
/// frame length, so `b` holds at least 4 bytes.
fn be_u32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Reads three big-endian `u32`s (piece, begin, length) from a 12-byte slice.
fn block_info(b: &[u8]) -> BlockInfo {
    BlockInfo {
        piece: be_u32(b),
        begin: be_u32(&b[4..]),
        length: be_u32(&b[8..]),
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = WireError;

    /// # Errors
    /// [`WireError::FrameTooLong`] when the length prefix exceeds the cap
    /// (nothing is reserved for it), [`WireError::BadLength`] when a known
    /// message id comes with the wrong length (reported as soon as the id
    /// byte is buffered).
    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        const P: usize = Message::PREFIX_LEN;
        if src.len() < P {
            return Ok(None);
        }
        let len = be_u32(src) as usize;
        if len == 0 {
            src.advance(P);
            return Ok(Some(Message::KeepAlive));
        }
        if len > self.max_frame_len {
            return Err(WireError::FrameTooLong {
                len,
                max: self.max_frame_len,
            });
        }
        if src.len() > P {
            check_len(src[P], len)?;
        }
        let total = P + len;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }

        // The whole frame is buffered and its length fits its id.
        let msg_id = src[P];
        let body = &src[P + 1..total];
        let msg = match msg_id {
            id::CHOKE => Message::Choke,
            id::UNCHOKE => Message::Unchoke,
            id::INTERESTED => Message::Interested,
            id::NOT_INTERESTED => Message::NotInterested,
            id::HAVE => Message::Have(be_u32(body)),
            id::REQUEST => Message::Request(block_info(body)),
            id::CANCEL => Message::Cancel(block_info(body)),
            id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
            id::PIECE => {
                let piece = be_u32(body);
                let begin = be_u32(&body[4..]);
                src.advance(P + 9);
                let data = src.split_to(len - 9).freeze();
                return Ok(Some(Message::Piece { piece, begin, data }));
            }
            id::BITFIELD => {
                src.advance(P + 1);
                return Ok(Some(Message::Bitfield(src.split_to(len - 1).freeze())));
            }
            other => {
                src.advance(P + 1);
                let payload = src.split_to(len - 1).freeze();
                return Ok(Some(Message::Unknown { id: other, payload }));
            }
        };
        src.advance(total);
        Ok(Some(msg))
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = WireError;

    /// Writes the exact wire form. The cap is not applied when sending (a
    /// peer may accept more than we do); only the `u32` range of the prefix.
    ///
    /// # Errors
    /// [`WireError::FrameTooLong`] if the message's length does not fit the
    /// 4-byte prefix.
    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let len = item.frame_len();
        let prefix = u32::try_from(len).map_err(|_| WireError::FrameTooLong {
            len,
            max: u32::MAX as usize,
        })?;
        dst.reserve(Message::PREFIX_LEN + len);
        dst.put_u32(prefix);
        if let Some(msg_id) = item.id() {
            dst.put_u8(msg_id);
        }
        match item {
            Message::KeepAlive
            | Message::Choke
            | Message::Unchoke
            | Message::Interested
            | Message::NotInterested => {}
            Message::Have(piece) => dst.put_u32(piece),
            Message::Request(b) | Message::Cancel(b) => {
                dst.put_u32(b.piece);
                dst.put_u32(b.begin);
                dst.put_u32(b.length);
            }
            Message::Piece { piece, begin, data } => {
                dst.put_u32(piece);
                dst.put_u32(begin);
                dst.put_slice(&data);
            }
            Message::Port(port) => dst.put_u16(port),
            Message::Bitfield(payload) | Message::Unknown { payload, .. } => {
                dst.put_slice(&payload)
            }
        }
        Ok(())
    }
}
