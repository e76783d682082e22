//! A connection's first bytes: the handshake codec, then (as with
//! `FramedParts`) the message codec on the bytes left in the same buffer.
//!
//! Input: `[chunk control, stream...]` (see `Chunks`). Checked: a decoded
//! handshake re-encodes to exactly the first 68 bytes; `BadProtocol` only
//! when the protocol string really differs; `Ok(None)` only for a prefix of
//! a possible handshake; and every message afterwards as in `wire_messages`.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::{Decoder, Encoder};

use bittorrent::wire::{Handshake, HandshakeCodec, MessageCodec, WireError};
use bittorrent_fuzz::{Chunks, MessageStream};

fuzz_target!(|data: &[u8]| {
    let [chunk_ctl, stream @ ..] = data else {
        return;
    };
    let mut buf = BytesMut::new();
    let mut fed = 0usize;
    let mut messages: Option<MessageStream> = None;
    for chunk in Chunks::new(*chunk_ctl, stream) {
        if let Some(messages) = &mut messages {
            messages.feed(chunk);
            continue;
        }
        buf.extend_from_slice(chunk);
        fed += chunk.len();
        let proto_seen = fed.min(Handshake::PROTOCOL.len());
        let proto_ok = stream[..proto_seen] == Handshake::PROTOCOL[..proto_seen];
        match HandshakeCodec.decode(&mut buf) {
            Ok(Some(handshake)) => {
                assert!(proto_ok, "accepted a bad protocol string");
                assert_eq!(
                    fed - buf.len(),
                    Handshake::LEN,
                    "handshake used != 68 bytes"
                );
                let mut encoded = BytesMut::new();
                HandshakeCodec
                    .encode(handshake.clone(), &mut encoded)
                    .expect("handshake encodes");
                assert_eq!(&encoded[..], &stream[..Handshake::LEN]);
                let mut again = encoded.clone();
                assert_eq!(
                    HandshakeCodec.decode(&mut again).ok().flatten(),
                    Some(handshake)
                );
                // Switch codecs, keeping what arrived behind the handshake.
                let mut next = MessageStream::new(MessageCodec::default());
                next.feed(&buf.split());
                messages = Some(next);
            }
            Ok(None) => {
                assert!(proto_ok, "waited on a bad protocol string");
                assert!(
                    fed < Handshake::LEN,
                    "waited with a whole handshake buffered"
                );
                assert_eq!(buf.len(), fed, "Ok(None) consumed bytes");
            }
            Err(WireError::BadProtocol) => {
                assert!(!proto_ok, "refused a good protocol string");
                return;
            }
            Err(e) => panic!("unexpected handshake error {e}"),
        }
    }
    if let Some(messages) = messages {
        messages.finish();
    }
});
