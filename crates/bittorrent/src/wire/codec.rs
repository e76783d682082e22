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

/// Room reserved in the read buffer past an incomplete `piece` frame, so a
/// busy connection reads several blocks per syscall: each buffer the socket
/// is read into is about this much larger than one block, and the blocks
/// are split off it without a copy (only an incomplete frame at its end is
/// copied into the next one). Below glibc's 128 KiB mmap threshold, so the
/// buffers come from the heap and are reused.
const READ_AHEAD: usize = 64 * 1024;

/// Message ids of BEP 3, BEP 6 and BEP 10.
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
    pub const SUGGEST: u8 = 13;
    pub const HAVE_ALL: u8 = 14;
    pub const HAVE_NONE: u8 = 15;
    pub const REJECT: u8 = 16;
    pub const ALLOWED_FAST: u8 = 17;
    pub const EXTENDED: u8 = 20;
}

/// Checks a frame length (id included, so at least 1) against what message
/// `id` requires. Unknown ids accept any length.
fn check_len(msg_id: u8, len: usize) -> Result<(), WireError> {
    let ok = match msg_id {
        id::CHOKE..=id::NOT_INTERESTED | id::HAVE_ALL | id::HAVE_NONE => len == 1,
        id::HAVE | id::SUGGEST | id::ALLOWED_FAST => len == 5,
        id::BITFIELD => len >= 1,
        id::REQUEST | id::CANCEL | id::REJECT => len == 13,
        id::PIECE => len >= 9,
        id::PORT => len == 3,
        id::EXTENDED => len >= 2,
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
        let total = frame_total(len, self.max_frame_len)?;
        if src.len() > P {
            check_len(src[P], len)?;
        }
        if src.len() < total {
            let missing = total - src.len();
            if src.capacity() - src.len() < missing {
                // A block: room for the ones behind it too, so one read takes
                // several (they are split off this buffer without a copy).
                let ahead = match src.get(P) {
                    Some(&id::PIECE) => READ_AHEAD,
                    _ => 0,
                };
                src.reserve(missing + ahead);
            }
            return Ok(None);
        }
        // The whole frame is buffered and its length fits its id.
        Ok(Some(take_frame(src, len)))
    }
}

/// The size of a frame with its length prefix, when its length `len` (id
/// included) is within the cap `max`.
fn frame_total(len: usize, max: usize) -> Result<usize, WireError> {
    // `checked_add` only matters on 32-bit targets with a cap near usize::MAX.
    match len.checked_add(Message::PREFIX_LEN) {
        Some(total) if len <= max => Ok(total),
        _ => Err(WireError::FrameTooLong { len, max }),
    }
}

/// Splits the frame at the front of `src` off it: `len` bytes (id included)
/// after the prefix, all buffered, the length checked against the id.
fn take_frame(src: &mut BytesMut, len: usize) -> Message {
    const P: usize = Message::PREFIX_LEN;
    let msg_id = src[P];
    if let Some(msg) = fixed_size_message(msg_id, &src[P + 1..P + len]) {
        src.advance(P + len);
        return msg;
    }
    src.advance(P + 1);
    let mut payload = src.split_to(len - 1);
    match msg_id {
        id::PIECE => {
            let piece = be_u32(&payload);
            let begin = be_u32(&payload[4..]);
            payload.advance(8);
            Message::Piece {
                piece,
                begin,
                data: payload.freeze(),
            }
        }
        id::BITFIELD => Message::Bitfield(payload.freeze()),
        id::EXTENDED => {
            let ext_id = payload[0];
            payload.advance(1);
            Message::Extended {
                id: ext_id,
                payload: payload.freeze(),
            }
        }
        other => Message::Unknown {
            id: other,
            payload: payload.freeze(),
        },
    }
}

/// The messages of a fixed size, read from their `body` (after the id);
/// `None` for the ones that carry a payload of any length.
fn fixed_size_message(msg_id: u8, body: &[u8]) -> Option<Message> {
    Some(match msg_id {
        id::CHOKE => Message::Choke,
        id::UNCHOKE => Message::Unchoke,
        id::INTERESTED => Message::Interested,
        id::NOT_INTERESTED => Message::NotInterested,
        id::HAVE => Message::Have(be_u32(body)),
        id::REQUEST => Message::Request(block_info(body)),
        id::CANCEL => Message::Cancel(block_info(body)),
        id::PORT => Message::Port(u16::from_be_bytes([body[0], body[1]])),
        id::SUGGEST => Message::Suggest(be_u32(body)),
        id::HAVE_ALL => Message::HaveAll,
        id::HAVE_NONE => Message::HaveNone,
        id::REJECT => Message::RejectRequest(block_info(body)),
        id::ALLOWED_FAST => Message::AllowedFast(be_u32(body)),
        _ => return None,
    })
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
            | Message::NotInterested
            | Message::HaveAll
            | Message::HaveNone => {}
            Message::Have(piece) | Message::Suggest(piece) | Message::AllowedFast(piece) => {
                dst.put_u32(piece)
            }
            Message::Request(b) | Message::Cancel(b) | Message::RejectRequest(b) => {
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
            Message::Extended { id, payload } => {
                dst.put_u8(id);
                dst.put_slice(&payload);
            }
            Message::Bitfield(payload) | Message::Unknown { payload, .. } => {
                dst.put_slice(&payload)
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use proptest::prelude::*;

    fn block(piece: u32, begin: u32, length: u32) -> BlockInfo {
        BlockInfo {
            piece,
            begin,
            length,
        }
    }

    /// One message of every type.
    fn samples() -> Vec<Message> {
        vec![
            Message::KeepAlive,
            Message::Choke,
            Message::Unchoke,
            Message::Interested,
            Message::NotInterested,
            Message::Have(0xdead_beef),
            Message::Bitfield(Bytes::from_static(&[0b1010_0000, 0xff, 0x01])),
            Message::Bitfield(Bytes::new()),
            Message::Request(block(1, 2 * BLOCK, BLOCK)),
            Message::Piece {
                piece: 7,
                begin: BLOCK,
                data: Bytes::from((0..=255u8).cycle().take(1000).collect::<Vec<u8>>()),
            },
            Message::Piece {
                piece: 0,
                begin: 0,
                data: Bytes::new(),
            },
            Message::Cancel(block(3, 0, BLOCK)),
            Message::Port(6881),
            Message::Extended {
                id: 0,
                payload: Bytes::from_static(b"d1:md11:ut_metadatai1eee"),
            },
            Message::Suggest(12),
            Message::HaveAll,
            Message::HaveNone,
            Message::RejectRequest(block(4, BLOCK, BLOCK)),
            Message::AllowedFast(0xffff_fffe),
            Message::Unknown {
                id: 18,
                payload: Bytes::new(),
            },
        ]
    }

    const BLOCK: u32 = crate::types::BLOCK_SIZE;

    fn encode(msg: &Message) -> BytesMut {
        let mut buf = BytesMut::new();
        MessageCodec::default()
            .encode(msg.clone(), &mut buf)
            .expect("encode");
        buf
    }

    fn encode_all(msgs: &[Message]) -> Vec<u8> {
        msgs.iter().flat_map(|m| encode(m).to_vec()).collect()
    }

    /// Decodes every complete frame in `buf`, stopping at `Ok(None)`.
    fn drain(codec: &mut MessageCodec, buf: &mut BytesMut) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(m) = codec.decode(buf).expect("decode") {
            out.push(m);
        }
        out
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Message>, WireError> {
        MessageCodec::default().decode(&mut BytesMut::from(bytes))
    }

    #[test]
    fn every_message_round_trips() {
        for msg in samples() {
            let mut buf = encode(&msg);
            assert_eq!(buf.len(), msg.encoded_len(), "{msg:?}");
            let decoded = MessageCodec::default().decode(&mut buf).expect("decode");
            assert_eq!(decoded.as_ref(), Some(&msg));
            assert!(buf.is_empty(), "{msg:?} left {} bytes", buf.len());
        }
    }

    #[test]
    fn exact_byte_layouts() {
        let cases: Vec<(Message, Vec<u8>)> = vec![
            (Message::KeepAlive, vec![0, 0, 0, 0]),
            (Message::Choke, vec![0, 0, 0, 1, 0]),
            (Message::Unchoke, vec![0, 0, 0, 1, 1]),
            (Message::Interested, vec![0, 0, 0, 1, 2]),
            (Message::NotInterested, vec![0, 0, 0, 1, 3]),
            (Message::Have(0x0102_0304), vec![0, 0, 0, 5, 4, 1, 2, 3, 4]),
            (
                Message::Bitfield(Bytes::from_static(&[0xf0, 0x0f])),
                vec![0, 0, 0, 3, 5, 0xf0, 0x0f],
            ),
            (
                Message::Request(block(1, 0x4000, 0x4000)),
                vec![0, 0, 0, 0x0d, 6, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::Piece {
                    piece: 2,
                    begin: 0x10,
                    data: Bytes::from_static(b"abc"),
                },
                vec![0, 0, 0, 12, 7, 0, 0, 0, 2, 0, 0, 0, 0x10, b'a', b'b', b'c'],
            ),
            (
                Message::Cancel(block(0xffff_ffff, 1, 2)),
                vec![
                    0, 0, 0, 0x0d, 8, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 2,
                ],
            ),
            (Message::Port(0x1ae1), vec![0, 0, 0, 3, 9, 0x1a, 0xe1]),
            (
                Message::Extended {
                    id: 0,
                    payload: Bytes::from_static(b"de"),
                },
                vec![0, 0, 0, 4, 20, 0, b'd', b'e'],
            ),
            (
                Message::Suggest(0x0102_0304),
                vec![0, 0, 0, 5, 13, 1, 2, 3, 4],
            ),
            (Message::HaveAll, vec![0, 0, 0, 1, 14]),
            (Message::HaveNone, vec![0, 0, 0, 1, 15]),
            (
                Message::RejectRequest(block(1, 0x4000, 0x4000)),
                vec![0, 0, 0, 0x0d, 16, 0, 0, 0, 1, 0, 0, 0x40, 0, 0, 0, 0x40, 0],
            ),
            (
                Message::AllowedFast(0x0a0b_0c0d),
                vec![0, 0, 0, 5, 17, 10, 11, 12, 13],
            ),
        ];
        for (msg, wire) in cases {
            assert_eq!(&encode(&msg)[..], &wire[..], "encoding {msg:?}");
            assert_eq!(decode_one(&wire).expect("decode"), Some(msg));
        }
    }

    #[test]
    fn byte_at_a_time_gives_same_messages() {
        let msgs = samples();
        let wire = encode_all(&msgs);
        let mut codec = MessageCodec::default();
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in &wire {
            buf.put_u8(b);
            out.extend(drain(&mut codec, &mut buf));
        }
        assert_eq!(out, msgs);
        assert!(buf.is_empty());
    }

    #[test]
    fn split_at_every_boundary_gives_same_messages() {
        let msgs = samples();
        let wire = encode_all(&msgs);
        for split in 0..=wire.len() {
            let mut codec = MessageCodec::default();
            let mut buf = BytesMut::from(&wire[..split]);
            let mut out = drain(&mut codec, &mut buf);
            buf.extend_from_slice(&wire[split..]);
            out.extend(drain(&mut codec, &mut buf));
            assert_eq!(out, msgs, "split at {split}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn frames_in_one_buffer_are_decoded_one_at_a_time() {
        let msgs = samples();
        let wire = encode_all(&msgs);
        let mut codec = MessageCodec::default();
        let mut buf = BytesMut::from(&wire[..]);
        let mut remaining = wire.len();
        for msg in &msgs {
            let got = codec.decode(&mut buf).expect("decode");
            assert_eq!(got.as_ref(), Some(msg));
            remaining -= msg.encoded_len();
            assert_eq!(buf.len(), remaining, "consumed exactly one frame");
        }
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
    }

    #[test]
    fn partial_frame_is_not_consumed_and_room_is_reserved() {
        let wire = encode(&Message::Piece {
            piece: 1,
            begin: 0,
            data: Bytes::from(vec![7u8; BLOCK as usize]),
        });
        let mut buf = BytesMut::with_capacity(16);
        buf.extend_from_slice(&wire[..13]);
        let mut codec = MessageCodec::default();
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
        assert_eq!(&buf[..], &wire[..13]);
        assert!(buf.capacity() >= wire.len(), "reserved {}", buf.capacity());
    }

    #[test]
    fn a_partial_block_reserves_read_ahead_once() {
        let wire = encode(&Message::Piece {
            piece: 1,
            begin: 0,
            data: Bytes::from(vec![7u8; BLOCK as usize]),
        });
        let mut buf = BytesMut::from(&wire[..13]);
        let mut codec = MessageCodec::default();
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
        let cap = buf.capacity();
        assert!(cap >= wire.len() + READ_AHEAD, "reserved {cap}");
        // The frame fits now: no more room is taken for it.
        buf.extend_from_slice(&wire[13..100]);
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
        assert_eq!(buf.capacity(), cap, "buffer grew again");
        // A short frame other than a block reserves only what it lacks.
        let have = encode(&Message::Have(3));
        let mut buf = BytesMut::from(&have[..5]);
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
        assert!(buf.capacity() < READ_AHEAD, "reserved {}", buf.capacity());
    }

    #[test]
    fn piece_data_is_a_view_into_the_read_buffer() {
        let buf_bytes = encode(&Message::Piece {
            piece: 1,
            begin: 0,
            data: Bytes::from(vec![9u8; 4096]),
        });
        let mut buf = buf_bytes;
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        match MessageCodec::default().decode(&mut buf).expect("decode") {
            Some(Message::Piece { data, .. }) => {
                assert_eq!(data.len(), 4096);
                assert!(range.contains(&(data.as_ptr() as usize)), "data was copied");
            }
            other => panic!("expected a piece, got {other:?}"),
        }
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        for wire in [
            &[0xffu8, 0xff, 0xff, 0xff][..],
            &[0xff, 0xff, 0xff, 0xff, 7],
        ] {
            let mut buf = BytesMut::with_capacity(8);
            buf.extend_from_slice(wire);
            let cap = buf.capacity();
            let err = MessageCodec::default().decode(&mut buf).unwrap_err();
            assert!(
                matches!(
                    err,
                    WireError::FrameTooLong {
                        len: 0xffff_ffff,
                        max: MessageCodec::DEFAULT_MAX_FRAME_LEN
                    }
                ),
                "{err:?}"
            );
            assert_eq!(buf.capacity(), cap, "buffer grew");
        }
    }

    #[test]
    fn cap_is_inclusive() {
        let mut codec = MessageCodec::new(9 + 4);
        assert_eq!(codec.max_frame_len(), 13);
        let ok = Message::Piece {
            piece: 0,
            begin: 0,
            data: Bytes::from_static(b"1234"),
        };
        let mut buf = encode(&ok);
        assert_eq!(codec.decode(&mut buf).expect("decode"), Some(ok));
        let mut buf = encode(&Message::Piece {
            piece: 0,
            begin: 0,
            data: Bytes::from_static(b"12345"),
        });
        assert!(matches!(
            codec.decode(&mut buf),
            Err(WireError::FrameTooLong { len: 14, max: 13 })
        ));
    }

    #[test]
    fn wrong_length_known_messages_are_refused() {
        let cases: &[(u8, &[usize])] = &[
            (0, &[2, 5]),
            (1, &[2]),
            (2, &[3]),
            (3, &[13]),
            (4, &[1, 4, 6, 9]),
            (6, &[1, 12, 14, 17]),
            (7, &[1, 5, 8]),
            (8, &[1, 12, 14]),
            (9, &[1, 2, 4, 5]),
            (13, &[1, 4, 6]),
            (14, &[2, 5]),
            (15, &[2, 13]),
            (16, &[1, 5, 12, 14]),
            (17, &[1, 4, 6, 13]),
        ];
        for &(id, lens) in cases {
            for &len in lens {
                let header = [&(len as u32).to_be_bytes()[..], &[id]].concat();
                // Refused as soon as the id is seen, without the payload ...
                let err = decode_one(&header).unwrap_err();
                assert!(
                    matches!(err, WireError::BadLength { id: i, len: l } if i == id && l == len),
                    "id {id} len {len}: {err:?}"
                );
                // ... and with it.
                let mut full = header.clone();
                full.resize(4 + len, 0);
                assert!(
                    matches!(decode_one(&full), Err(WireError::BadLength { .. })),
                    "id {id} len {len} full frame"
                );
            }
        }
    }

    #[test]
    fn extended_messages_carry_their_extended_id() {
        let wire = [0, 0, 0, 4, 20, 3, b'd', b'e'];
        assert_eq!(
            decode_one(&wire).expect("decode"),
            Some(Message::Extended {
                id: 3,
                payload: Bytes::from_static(b"de")
            })
        );
        // An extended message needs at least its extended id.
        assert!(matches!(
            decode_one(&[0, 0, 0, 1, 20]),
            Err(WireError::BadLength { id: 20, len: 1 })
        ));
    }

    #[test]
    fn unknown_ids_are_passed_through() {
        for id in [10u8, 12, 18, 21, 255] {
            let wire = [0, 0, 0, 3, id, 0xaa, 0xbb];
            assert_eq!(
                decode_one(&wire).expect("decode"),
                Some(Message::Unknown {
                    id,
                    payload: Bytes::from_static(&[0xaa, 0xbb])
                })
            );
        }
    }

    #[test]
    fn keep_alive_then_message() {
        let mut buf = BytesMut::from(&[0u8, 0, 0, 0, 0, 0, 0, 1, 2][..]);
        let mut codec = MessageCodec::default();
        assert_eq!(
            codec.decode(&mut buf).expect("decode"),
            Some(Message::KeepAlive)
        );
        assert_eq!(buf.len(), 5);
        assert_eq!(
            codec.decode(&mut buf).expect("decode"),
            Some(Message::Interested)
        );
        assert_eq!(codec.decode(&mut buf).expect("decode"), None);
    }

    #[test]
    fn short_prefix_waits() {
        for n in 0..4 {
            let mut buf = BytesMut::from(&[0u8, 0, 0, 1][..n]);
            assert_eq!(
                MessageCodec::default().decode(&mut buf).expect("decode"),
                None
            );
            assert_eq!(buf.len(), n);
        }
    }

    fn handshake() -> Handshake {
        let mut hs = Handshake::new(InfoHash([0x11; 20]), PeerId(*b"-BT0001-abcdefghijkl"));
        hs.reserved[5] = 0x10;
        hs
    }

    #[test]
    fn handshake_layout_and_round_trip() {
        let mut buf = BytesMut::new();
        HandshakeCodec
            .encode(handshake(), &mut buf)
            .expect("encode");
        assert_eq!(buf.len(), Handshake::LEN);
        assert_eq!(buf[0], 19);
        assert_eq!(&buf[1..20], b"BitTorrent protocol");
        assert_eq!(&buf[20..28], &[0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert_eq!(&buf[28..48], &[0x11; 20]);
        assert_eq!(&buf[48..68], b"-BT0001-abcdefghijkl");
        assert_eq!(
            HandshakeCodec.decode(&mut buf).expect("decode"),
            Some(handshake())
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn the_fast_bit_is_reserved_byte_7_bit_0x04() {
        let hs = Handshake::new(InfoHash([0; 20]), PeerId([0; 20]));
        assert!(!hs.supports_fast());
        let both = hs.with_extensions().with_fast();
        assert_eq!(both.reserved, [0, 0, 0, 0, 0, 0x10, 0, 0x04]);
        assert!(both.supports_fast() && both.supports_extensions());
    }

    #[test]
    fn handshake_waits_for_68_bytes_one_at_a_time() {
        let mut wire = BytesMut::new();
        HandshakeCodec
            .encode(handshake(), &mut wire)
            .expect("encode");
        let mut buf = BytesMut::new();
        for (i, &b) in wire.iter().enumerate() {
            buf.put_u8(b);
            let got = HandshakeCodec.decode(&mut buf).expect("decode");
            if i + 1 < Handshake::LEN {
                assert_eq!(got, None, "after {} bytes", i + 1);
            } else {
                assert_eq!(got, Some(handshake()));
            }
        }
    }

    #[test]
    fn handshake_leaves_following_bytes_for_the_message_codec() {
        let mut buf = BytesMut::new();
        HandshakeCodec
            .encode(handshake(), &mut buf)
            .expect("encode");
        let bitfield = Message::Bitfield(Bytes::from_static(&[0xff, 0x80]));
        let tail = encode_all(&[bitfield.clone(), Message::Unchoke]);
        buf.extend_from_slice(&tail[..tail.len() - 1]); // last frame incomplete
        assert_eq!(
            HandshakeCodec.decode(&mut buf).expect("decode"),
            Some(handshake())
        );
        assert_eq!(&buf[..], &tail[..tail.len() - 1]);
        let mut codec = MessageCodec::default();
        assert_eq!(drain(&mut codec, &mut buf), vec![bitfield]);
        buf.put_u8(1);
        assert_eq!(drain(&mut codec, &mut buf), vec![Message::Unchoke]);
    }

    #[test]
    fn bad_handshake_fails_fast() {
        let cases: &[&[u8]] = &[
            b"G",                       // "GET / HTTP/1.1": wrong length byte
            b"\x13",                    // fine so far ...
            b"\x13BitTorrent protocoL", // last protocol byte wrong
            b"\x12BitTorrent protocol", // wrong pstrlen
            b"\x13bittorrent",          // wrong case, early
            &[0u8, 0, 0, 1, 2],         // a message instead of a handshake
        ];
        for &wire in cases {
            let mut buf = BytesMut::from(wire);
            let got = HandshakeCodec.decode(&mut buf);
            if wire == b"\x13" {
                assert!(matches!(got, Ok(None)));
            } else {
                assert!(matches!(got, Err(WireError::BadProtocol)), "{wire:?}");
            }
        }
    }

    fn arb_block() -> impl Strategy<Value = BlockInfo> {
        (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(p, b, l)| block(p, b, l))
    }

    fn arb_bytes(max: usize) -> impl Strategy<Value = Bytes> {
        proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from)
    }

    fn arb_message() -> impl Strategy<Value = Message> {
        prop_oneof![
            Just(Message::KeepAlive),
            Just(Message::Choke),
            Just(Message::Unchoke),
            Just(Message::Interested),
            Just(Message::NotInterested),
            any::<u32>().prop_map(Message::Have),
            arb_bytes(64).prop_map(Message::Bitfield),
            arb_block().prop_map(Message::Request),
            (any::<u32>(), any::<u32>(), arb_bytes(300))
                .prop_map(|(piece, begin, data)| Message::Piece { piece, begin, data }),
            arb_block().prop_map(Message::Cancel),
            any::<u16>().prop_map(Message::Port),
            any::<u32>().prop_map(Message::Suggest),
            Just(Message::HaveAll),
            Just(Message::HaveNone),
            arb_block().prop_map(Message::RejectRequest),
            any::<u32>().prop_map(Message::AllowedFast),
            (10u8..=255, arb_bytes(64))
                .prop_filter("known ids", |(id, _)| {
                    *id != Message::EXTENDED_ID && !(13..=17).contains(id)
                })
                .prop_map(|(id, payload)| Message::Unknown { id, payload }),
            (any::<u8>(), arb_bytes(64))
                .prop_map(|(id, payload)| Message::Extended { id, payload }),
        ]
    }

    /// Random bytes, or a run of frames with small length prefixes, small ids
    /// and payloads that may or may not match the prefix.
    fn arb_input() -> impl Strategy<Value = Vec<u8>> {
        let frame = (
            0u32..40,
            0u8..24,
            proptest::collection::vec(any::<u8>(), 0..40),
        );
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..600),
            proptest::collection::vec(frame, 0..16).prop_map(|frames| {
                let mut out = Vec::new();
                for (len, id, payload) in frames {
                    out.extend_from_slice(&len.to_be_bytes());
                    out.push(id);
                    out.extend_from_slice(&payload);
                }
                out
            }),
        ]
    }

    proptest! {
        #[test]
        fn random_input_never_panics_and_decoded_frames_re_encode_exactly(
            input in arb_input(),
            max in prop_oneof![Just(MessageCodec::DEFAULT_MAX_FRAME_LEN), 0usize..64],
        ) {
            let mut codec = MessageCodec::new(max);
            let mut buf = BytesMut::from(&input[..]);
            loop {
                let before = buf.clone();
                match codec.decode(&mut buf) {
                    Ok(Some(msg)) => {
                        let consumed = before.len() - buf.len();
                        prop_assert_eq!(&encode(&msg)[..], &before[..consumed]);
                    }
                    Ok(None) => {
                        prop_assert_eq!(&buf[..], &before[..]);
                        break;
                    }
                    Err(_) => break,
                }
            }
            let _ = HandshakeCodec.decode(&mut BytesMut::from(&input[..]));
        }

        #[test]
        fn random_messages_round_trip_through_random_splits(
            msgs in proptest::collection::vec(arb_message(), 0..20),
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..8),
        ) {
            let wire = encode_all(&msgs);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
            cuts.push(wire.len());
            cuts.sort_unstable();
            let mut codec = MessageCodec::default();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            let mut at = 0;
            for cut in cuts {
                buf.extend_from_slice(&wire[at..cut]);
                at = cut;
                out.extend(drain(&mut codec, &mut buf));
            }
            prop_assert_eq!(out, msgs);
            prop_assert!(buf.is_empty());
        }
    }
}
