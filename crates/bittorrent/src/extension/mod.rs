//! The extension protocol (BEP 10) and the two extensions we speak over it:
//! `ut_metadata` (BEP 9, fetching the info dictionary for magnet links) and `ut_pex`
//! (BEP 11, peer exchange). Pure: bytes in, values out, no IO.
//!
//! # Layout
//! - [`handshake`]: the reserved bit, the extended handshake (extended id 0) and
//!   [`ExtensionIds`], the per-peer map between extension names and message ids.
//! - [`metadata`]: `ut_metadata` messages, the [`MetadataAssembler`] that puts the info
//!   dictionary together from pieces, and [`metadata_piece`] to serve ours.
//! - [`pex`]: `ut_pex` messages and [`PexState`], which computes what to tell a peer.
//!
//! # Framing
//! An extended message is wire message id 20; its payload is one byte, the extended
//! message id, then the extension's body. [`ExtendedMessage::decode`] and
//! [`ExtendedMessage::encode`] work on that payload (without the id 20). Ids are
//! asymmetric: a peer sends us messages with the ids *we* advertised in our handshake,
//! and we send with the ids from *its* handshake; [`ExtensionIds`] holds both.

use bytes::Bytes;

use crate::bencode::{self, Node, Value};

pub mod handshake;
pub mod metadata;
pub mod pex;

pub use handshake::{
    set_extension_bit, supports_extensions, ExtendedHandshake, Extension, ExtensionIds,
    EXTENSION_BIT, EXTENSION_BYTE,
};
pub use metadata::{
    metadata_piece, MetadataAssembler, MetadataError, MetadataMessage, MAX_METADATA_SIZE,
    METADATA_PIECE_SIZE,
};
pub use pex::{PexFlags, PexMessage, PexPeer, PexState};

/// The wire message id of every extended message (BEP 10).
pub const EXTENDED_MESSAGE_ID: u8 = 20;

/// The extended message id of the extended handshake.
pub const HANDSHAKE_ID: u8 = 0;

/// Why an extended message could not be decoded or encoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExtensionError {
    /// The payload has no extended message id byte.
    #[error("empty extended message")]
    Empty,
    /// The body is not valid bencode.
    #[error("invalid bencoding: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// The body is not a bencoded dictionary.
    #[error("extended message body is not a dictionary")]
    NotADict,
    /// A required key is missing or has the wrong type.
    #[error("missing or mistyped key '{0}'")]
    Missing(&'static str),
    /// A key has a value out of its allowed range.
    #[error("invalid value for '{key}': {value}")]
    InvalidValue {
        /// The key.
        key: &'static str,
        /// The value (an integer or a length).
        value: i64,
    },
    /// A `ut_metadata` message type other than 0, 1 or 2 (BEP 9 says to ignore these).
    #[error("unknown ut_metadata msg_type {0}")]
    UnknownMetadataType(i64),
    /// Bytes after the dictionary of a message that must not have any.
    #[error("{0} unexpected bytes after the dictionary")]
    TrailingBytes(usize),
    /// A `ut_metadata` total size over [`MAX_METADATA_SIZE`] (or zero).
    #[error("metadata size {size} is zero or over the limit of {max} bytes")]
    MetadataSize {
        /// The announced size.
        size: i64,
        /// The limit.
        max: u64,
    },
    /// A `ut_metadata` piece index at or past the piece count for the total size.
    #[error("metadata piece {piece} out of range ({count} pieces)")]
    PieceOutOfRange {
        /// The piece index.
        piece: i64,
        /// The number of pieces.
        count: u32,
    },
    /// A `ut_metadata` data message whose payload does not have the piece's length.
    #[error("metadata piece {piece} has {actual} bytes, expected {expected}")]
    WrongPieceLength {
        /// The piece index.
        piece: u32,
        /// Its length for the total size.
        expected: usize,
        /// The received length.
        actual: usize,
    },
    /// A compact address string whose length is not a multiple of the entry size.
    #[error("'{key}' is {len} bytes, not a multiple of {entry}")]
    CompactLength {
        /// The key.
        key: &'static str,
        /// Its length.
        len: usize,
        /// The size of one entry (6 or 18).
        entry: usize,
    },
    /// We cannot send this extension: the peer has not enabled it.
    #[error("the peer does not support {0:?}")]
    NotSupported(Extension),
}

/// A decoded extended message (wire id 20).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExtendedMessage {
    /// Extended id 0: the handshake.
    Handshake(ExtendedHandshake),
    /// A `ut_metadata` message.
    Metadata(MetadataMessage),
    /// A `ut_pex` message.
    Pex(PexMessage),
    /// An extended id we did not advertise; to be ignored.
    Unknown {
        /// The extended message id.
        id: u8,
        /// The body after it.
        payload: Bytes,
    },
}

impl ExtendedMessage {
    /// Decodes the payload of a wire message 20 (extended id byte + body). The id is
    /// looked up among *our* advertised ids in `ids`.
    ///
    /// # Errors
    /// [`ExtensionError::Empty`] for an empty payload, and the decoding errors of
    /// [`ExtendedHandshake::decode`], [`MetadataMessage::decode`] and
    /// [`PexMessage::decode`]. An unknown id is not an error but
    /// [`ExtendedMessage::Unknown`].
    pub fn decode(payload: Bytes, ids: &ExtensionIds) -> Result<Self, ExtensionError> {
        let id = *payload.first().ok_or(ExtensionError::Empty)?;
        Self::decode_parts(id, payload.slice(1..), ids)
    }

    /// [`decode`](Self::decode) for a payload already split into the extended
    /// id and the body after it (as [`Message::Extended`](crate::wire::Message)
    /// carries it).
    ///
    /// # Errors
    /// As [`decode`](Self::decode).
    pub fn decode_parts(id: u8, body: Bytes, ids: &ExtensionIds) -> Result<Self, ExtensionError> {
        if id == HANDSHAKE_ID {
            return ExtendedHandshake::decode(&body).map(Self::Handshake);
        }
        Ok(match ids.local_extension(id) {
            Some(Extension::Metadata) => Self::Metadata(MetadataMessage::decode(body)?),
            Some(Extension::Pex) => Self::Pex(PexMessage::decode(&body)?),
            None => Self::Unknown { id, payload: body },
        })
    }

    /// Encodes the payload of a wire message 20 (extended id byte + body) for the peer
    /// described by `ids`, using the ids from *its* handshake.
    ///
    /// # Errors
    /// [`ExtensionError::NotSupported`] when the peer has not enabled the extension.
    pub fn encode(&self, ids: &ExtensionIds) -> Result<Vec<u8>, ExtensionError> {
        let (id, body) = self.encode_parts(ids)?;
        let mut out = Vec::with_capacity(1 + body.len());
        out.push(id);
        out.extend_from_slice(&body);
        Ok(out)
    }
}

impl ExtendedMessage {
    /// [`encode`](Self::encode) split into the extended id and the body.
    ///
    /// # Errors
    /// As [`encode`](Self::encode).
    pub fn encode_parts(&self, ids: &ExtensionIds) -> Result<(u8, Vec<u8>), ExtensionError> {
        let remote = |ext| ids.remote_id(ext).ok_or(ExtensionError::NotSupported(ext));
        Ok(match self {
            Self::Handshake(hs) => (HANDSHAKE_ID, hs.encode()),
            Self::Metadata(msg) => (remote(Extension::Metadata)?, msg.encode()),
            Self::Pex(msg) => (remote(Extension::Pex)?, msg.encode()),
            Self::Unknown { id, payload } => (*id, payload.to_vec()),
        })
    }
}

/// Encodes a dictionary from `(key, value)` pairs, which must be given in sorted key
/// order (canonical bencode).
fn encode_dict(entries: Vec<(&[u8], Value<'_>)>) -> Vec<u8> {
    debug_assert!(entries.windows(2).all(|w| w[0].0 < w[1].0));
    let dict = entries
        .into_iter()
        .map(|(k, v)| (k, Node::new(v)))
        .collect();
    bencode::encode(&Value::Dict(dict))
}

/// An integer value of `key` in `dict`, if present and an integer.
fn get_int(dict: &Node<'_>, key: &[u8]) -> Option<i64> {
    dict.get(key).and_then(|n| n.value.as_int())
}

/// A byte-string value of `key` in `dict`, if present and a string.
fn get_bytes<'a>(dict: &Node<'a>, key: &[u8]) -> Option<&'a [u8]> {
    dict.get(key).and_then(|n| n.value.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids_with_peer() -> ExtensionIds {
        let mut ids = ExtensionIds::new();
        let mut hs = ExtendedHandshake::default();
        hs.m.insert("ut_metadata".into(), 3);
        hs.m.insert("ut_pex".into(), 7);
        ids.update_remote(&hs);
        ids
    }

    #[test]
    fn decode_dispatches_on_local_ids() {
        let ids = ids_with_peer();
        let hs = Bytes::from_static(b"\x00d1:md6:ut_pexi1eee");
        let ExtendedMessage::Handshake(hs) = ExtendedMessage::decode(hs, &ids).unwrap() else {
            panic!("expected a handshake");
        };
        assert_eq!(hs.m.get("ut_pex"), Some(&1));

        let meta_id = ids.local_id(Extension::Metadata).unwrap();
        let mut payload = vec![meta_id];
        payload.extend_from_slice(b"d8:msg_typei0e5:piecei2ee");
        assert_eq!(
            ExtendedMessage::decode(payload.into(), &ids),
            Ok(ExtendedMessage::Metadata(MetadataMessage::Request {
                piece: 2
            }))
        );

        let pex_id = ids.local_id(Extension::Pex).unwrap();
        let mut payload = vec![pex_id];
        payload.extend_from_slice(b"d5:added6:\x01\x02\x03\x04\x1a\xe1e");
        let ExtendedMessage::Pex(pex) = ExtendedMessage::decode(payload.into(), &ids).unwrap()
        else {
            panic!("expected pex");
        };
        assert_eq!(pex.added[0].addr, "1.2.3.4:6881".parse().unwrap());

        assert_eq!(
            ExtendedMessage::decode(Bytes::from_static(b"\xc8abc"), &ids),
            Ok(ExtendedMessage::Unknown {
                id: 200,
                payload: Bytes::from_static(b"abc")
            })
        );
        assert_eq!(
            ExtendedMessage::decode(Bytes::new(), &ids),
            Err(ExtensionError::Empty)
        );
        assert_eq!(
            ExtendedMessage::decode(Bytes::from_static(b"\x00i1e"), &ids),
            Err(ExtensionError::NotADict)
        );
    }

    #[test]
    fn encode_uses_remote_ids() {
        let ids = ids_with_peer();
        let msg = ExtendedMessage::Metadata(MetadataMessage::Reject { piece: 1 });
        assert_eq!(msg.encode(&ids).unwrap(), b"\x03d8:msg_typei2e5:piecei1ee");
        let msg = ExtendedMessage::Pex(PexMessage::default());
        assert_eq!(msg.encode(&ids).unwrap(), b"\x07de");
        let msg = ExtendedMessage::Handshake(ExtendedHandshake::default());
        assert_eq!(msg.encode(&ids).unwrap(), b"\x00d1:mdee");

        let fresh = ExtensionIds::new();
        assert_eq!(
            ExtendedMessage::Pex(PexMessage::default()).encode(&fresh),
            Err(ExtensionError::NotSupported(Extension::Pex))
        );
    }

    #[test]
    fn round_trip_through_both_sides() {
        // We encode with the peer's ids; the peer decodes with its local ids, which are
        // the ones it advertised to us. Model the peer as using our default ids.
        let mut ours = ExtensionIds::new();
        let theirs_hs = ExtendedHandshake {
            m: ExtensionIds::new().local_m(),
            ..ExtendedHandshake::default()
        };
        ours.update_remote(&theirs_hs);
        let peer = ExtensionIds::new();
        let msgs = [
            ExtendedMessage::Metadata(MetadataMessage::Request { piece: 0 }),
            ExtendedMessage::Pex(PexMessage {
                added: vec![PexPeer {
                    addr: "[::1]:80".parse().unwrap(),
                    flags: PexFlags(PexFlags::SEED),
                }],
                dropped: vec!["9.9.9.9:1".parse().unwrap()],
            }),
        ];
        for msg in msgs {
            let bytes = msg.encode(&ours).unwrap();
            assert_eq!(ExtendedMessage::decode(bytes.into(), &peer), Ok(msg));
        }
    }
}
