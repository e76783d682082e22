//! Helpers shared by the fuzz targets: input chunking and a checked message
//! stream decoder. Not part of the engine; only the targets use it.

use bytes::BytesMut;
use tokio_util::codec::{Decoder, Encoder};

use bittorrent::wire::{Message, MessageCodec};

/// Splits `data` into chunks whose sizes come from a small xorshift generator
/// seeded by `ctl`: `0` yields `data` whole, otherwise each chunk is
/// `1..=ctl` bytes. So the fuzzer controls how the bytes "arrive".
pub struct Chunks<'a> {
    rest: &'a [u8],
    state: u32,
    max: usize,
}

impl<'a> Chunks<'a> {
    /// Chunks of `data` driven by the control byte `ctl`.
    pub fn new(ctl: u8, data: &'a [u8]) -> Self {
        Self {
            rest: data,
            state: 0x9e37_79b9 ^ u32::from(ctl),
            max: usize::from(ctl),
        }
    }
}

impl<'a> Iterator for Chunks<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let size = if self.max == 0 {
            self.rest.len()
        } else {
            self.state ^= self.state << 13;
            self.state ^= self.state >> 17;
            self.state ^= self.state << 5;
            1 + self.state as usize % self.max
        };
        let (chunk, rest) = self.rest.split_at(size.min(self.rest.len()));
        self.rest = rest;
        Some(chunk)
    }
}

/// Feeds bytes into a [`MessageCodec`] the way a framed reader does (append,
/// then decode until `Ok(None)` or an error) and checks, for every frame:
/// - re-encoding the message gives exactly the bytes the frame was decoded
///   from (the wire form is canonical);
/// - a fresh codec decodes those bytes back to an equal message, consuming
///   all of them.
///
/// [`MessageStream::finish`] then checks that decoding everything in one
/// buffer gives the same messages and the same outcome as the chunked run.
pub struct MessageStream {
    codec: MessageCodec,
    buf: BytesMut,
    /// Every byte fed so far (the logical stream).
    fed: Vec<u8>,
    /// How many bytes of `fed` the decoded frames used.
    consumed: usize,
    messages: Vec<Message>,
    failed: bool,
}

impl MessageStream {
    /// A stream decoded with `codec`.
    pub fn new(codec: MessageCodec) -> Self {
        Self {
            codec,
            buf: BytesMut::new(),
            fed: Vec::new(),
            consumed: 0,
            messages: Vec::new(),
            failed: false,
        }
    }

    /// Appends `chunk` and decodes every complete frame. After an error the
    /// connection is over: later chunks are ignored.
    pub fn feed(&mut self, chunk: &[u8]) {
        if self.failed {
            return;
        }
        self.buf.extend_from_slice(chunk);
        self.fed.extend_from_slice(chunk);
        loop {
            match self.codec.decode(&mut self.buf) {
                Ok(Some(msg)) => {
                    let end = self.fed.len() - self.buf.len();
                    assert!(end > self.consumed, "a frame consumed nothing");
                    check_round_trip(&msg, &self.fed[self.consumed..end], self.codec);
                    self.consumed = end;
                    self.messages.push(msg);
                }
                Ok(None) => {
                    assert_eq!(
                        self.fed.len() - self.buf.len(),
                        self.consumed,
                        "Ok(None) consumed bytes"
                    );
                    break;
                }
                Err(_) => {
                    self.failed = true;
                    break;
                }
            }
        }
    }

    /// Ends the stream and runs the whole-buffer comparison.
    pub fn finish(mut self) {
        if !self.failed {
            // Nothing more can be decoded: EOF is clean iff nothing is left.
            let leftover = !self.buf.is_empty();
            match self.codec.decode_eof(&mut self.buf) {
                Ok(None) => assert!(!leftover, "decode_eof ignored leftover bytes"),
                Ok(Some(msg)) => panic!("decode_eof found a frame decode missed: {msg:?}"),
                Err(_) => assert!(leftover, "decode_eof failed on an empty buffer"),
            }
        }

        let mut codec = self.codec;
        let mut whole = BytesMut::from(&self.fed[..]);
        let mut messages = Vec::new();
        let failed = loop {
            match codec.decode(&mut whole) {
                Ok(Some(msg)) => messages.push(msg),
                Ok(None) => break false,
                Err(_) => break true,
            }
        };
        assert_eq!(messages, self.messages, "chunking changed the messages");
        assert_eq!(failed, self.failed, "chunking changed the outcome");
    }
}

fn check_round_trip(msg: &Message, frame: &[u8], codec: MessageCodec) {
    let mut encoded = BytesMut::new();
    if let Err(e) = MessageCodec::default().encode(msg.clone(), &mut encoded) {
        panic!("a decoded message does not encode: {e} ({msg:?})");
    }
    assert_eq!(&encoded[..], frame, "re-encoding changed the frame");
    let mut fresh = codec;
    match fresh.decode(&mut encoded) {
        Ok(Some(again)) => assert_eq!(&again, msg, "decode(encode(m)) != m"),
        other => panic!("re-encoded frame does not decode: {other:?}"),
    }
    assert!(encoded.is_empty(), "re-encoded frame left bytes behind");
}
