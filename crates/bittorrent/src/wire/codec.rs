//! tokio-util codecs for the handshake and the message stream.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

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
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeCodec;

impl Decoder for HandshakeCodec {
    type Item = Handshake;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Handshake>, WireError> {
        let _ = src;
        todo!()
    }
}

impl Encoder<Handshake> for HandshakeCodec {
    type Error = WireError;

    fn encode(&mut self, item: Handshake, dst: &mut BytesMut) -> Result<(), WireError> {
        let _ = (item, dst);
        todo!()
    }
}

/// Codec for length-prefixed messages, with a cap on the length prefix.
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
}

impl Default for MessageCodec {
    fn default() -> Self {
        Self::new(Self::DEFAULT_MAX_FRAME_LEN)
    }
}

impl Decoder for MessageCodec {
    type Item = Message;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Message>, WireError> {
        let _ = (src, self.max_frame_len);
        todo!()
    }
}

impl Encoder<Message> for MessageCodec {
    type Error = WireError;

    fn encode(&mut self, item: Message, dst: &mut BytesMut) -> Result<(), WireError> {
        let _ = (item, dst);
        todo!()
    }
}
