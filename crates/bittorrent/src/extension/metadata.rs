//! BEP 9 `ut_metadata`: fetching the info dictionary from peers (for magnet links) and
//! serving ours.
//!
//! The info dictionary is cut into pieces of [`METADATA_PIECE_SIZE`] bytes (the last one
//! shorter). Messages are a bencoded dictionary `{msg_type, piece[, total_size]}`; a data
//! message is followed by the piece's raw bytes, so the decoder finds the end of the
//! dictionary with [`bencode::decode_prefix`].
//!
//! # Limits
//! - `total_size` must be in `1..=`[`MAX_METADATA_SIZE`] (8 MiB, 512 pieces: info
//!   dictionaries of real torrents are a few hundred KiB at most; larger claims are
//!   treated as hostile).
//! - A piece index must be below the piece count of the total size (for requests and
//!   rejects, of [`MAX_METADATA_SIZE`]).
//! - A data message must carry exactly the piece's length.
//!
//! [`MetadataAssembler`] never allocates by a size a peer announced: it stores the pieces
//! it actually received and joins them only once all have arrived.

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::bencode::{self, Value};
use crate::extension::{encode_dict, get_int, ExtensionError};
use crate::metainfo::{MetaInfo, MetaInfoError};
use crate::types::InfoHash;

/// Size of a metadata piece (all but the last).
pub const METADATA_PIECE_SIZE: usize = 16 * 1024;

/// Largest info dictionary we fetch or accept (8 MiB).
pub const MAX_METADATA_SIZE: u64 = 8 * 1024 * 1024;

const MSG_REQUEST: i64 = 0;
const MSG_DATA: i64 = 1;
const MSG_REJECT: i64 = 2;

/// A `ut_metadata` message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetadataMessage {
    /// `msg_type` 0: please send this piece.
    Request {
        /// Piece index.
        piece: u32,
    },
    /// `msg_type` 1: a piece of the info dictionary.
    Data {
        /// Piece index.
        piece: u32,
        /// Size of the whole info dictionary.
        total_size: u64,
        /// The piece's bytes (after the dictionary on the wire).
        data: Bytes,
    },
    /// `msg_type` 2: the sender will not send this piece.
    Reject {
        /// Piece index.
        piece: u32,
    },
}

impl MetadataMessage {
    /// Decodes a `ut_metadata` body (after the extended id byte).
    ///
    /// # Errors
    /// [`ExtensionError::Bencode`] / [`ExtensionError::NotADict`] for a body that does not
    /// start with a dictionary; [`ExtensionError::Missing`] without an integer `msg_type`,
    /// `piece` (or `total_size` for data); [`ExtensionError::UnknownMetadataType`] for a
    /// type other than 0–2 (BEP 9: ignore the message);
    /// [`ExtensionError::MetadataSize`], [`ExtensionError::PieceOutOfRange`] and
    /// [`ExtensionError::WrongPieceLength`] for values past the limits of the module docs;
    /// [`ExtensionError::TrailingBytes`] for bytes after a request or reject.
    pub fn decode(body: Bytes) -> Result<Self, ExtensionError> {
        let (root, used) = bencode::decode_prefix(&body)?;
        if root.value.as_dict().is_none() {
            return Err(ExtensionError::NotADict);
        }
        let msg_type = get_int(&root, b"msg_type").ok_or(ExtensionError::Missing("msg_type"))?;
        let raw_piece = get_int(&root, b"piece").ok_or(ExtensionError::Missing("piece"))?;
        let trailing = body.len() - used;
        match msg_type {
            MSG_REQUEST | MSG_REJECT => {
                let piece = check_piece(raw_piece, MAX_METADATA_SIZE)?;
                if trailing != 0 {
                    return Err(ExtensionError::TrailingBytes(trailing));
                }
                Ok(if msg_type == MSG_REQUEST {
                    Self::Request { piece }
                } else {
                    Self::Reject { piece }
                })
            }
            MSG_DATA => {
                let size =
                    get_int(&root, b"total_size").ok_or(ExtensionError::Missing("total_size"))?;
                let total_size = u64::try_from(size)
                    .ok()
                    .filter(|&s| s > 0 && s <= MAX_METADATA_SIZE)
                    .ok_or(ExtensionError::MetadataSize {
                        size,
                        max: MAX_METADATA_SIZE,
                    })?;
                let piece = check_piece(raw_piece, total_size)?;
                let expected = piece_len(total_size, piece).unwrap_or(0);
                if trailing != expected {
                    return Err(ExtensionError::WrongPieceLength {
                        piece,
                        expected,
                        actual: trailing,
                    });
                }
                Ok(Self::Data {
                    piece,
                    total_size,
                    data: body.slice(used..),
                })
            }
            other => Err(ExtensionError::UnknownMetadataType(other)),
        }
    }

    /// Encodes a `ut_metadata` body (dictionary, plus the piece bytes for data).
    pub fn encode(&self) -> Vec<u8> {
        let (msg_type, piece, total) = match self {
            Self::Request { piece } => (MSG_REQUEST, piece, None),
            Self::Data {
                piece, total_size, ..
            } => (MSG_DATA, piece, Some(*total_size)),
            Self::Reject { piece } => (MSG_REJECT, piece, None),
        };
        let mut entries: Vec<(&[u8], Value<'_>)> = vec![
            (b"msg_type", Value::Int(msg_type)),
            (b"piece", Value::Int((*piece).into())),
        ];
        if let Some(total) = total {
            entries.push((
                b"total_size",
                Value::Int(i64::try_from(total).unwrap_or(i64::MAX)),
            ));
        }
        let mut out = encode_dict(entries);
        if let Self::Data { data, .. } = self {
            out.extend_from_slice(data);
        }
        out
    }
}

/// A piece index in range for `total_size`.
fn check_piece(piece: i64, total_size: u64) -> Result<u32, ExtensionError> {
    let count = piece_count(total_size);
    u32::try_from(piece)
        .ok()
        .filter(|&p| p < count)
        .ok_or(ExtensionError::PieceOutOfRange { piece, count })
}

/// Number of metadata pieces for an info dictionary of `total_size` bytes.
pub fn piece_count(total_size: u64) -> u32 {
    let count = total_size.div_ceil(METADATA_PIECE_SIZE as u64);
    u32::try_from(count).unwrap_or(u32::MAX)
}

/// Length of metadata piece `piece` for `total_size` bytes, or `None` past the end.
pub fn piece_len(total_size: u64, piece: u32) -> Option<usize> {
    let start = u64::from(piece).checked_mul(METADATA_PIECE_SIZE as u64)?;
    let left = total_size.checked_sub(start).filter(|&left| left > 0)?;
    usize::try_from(left.min(METADATA_PIECE_SIZE as u64)).ok()
}

/// Piece `piece` of our info dictionary, to answer a request (`None`: reject it).
pub fn metadata_piece(info_bytes: &[u8], piece: u32) -> Option<&[u8]> {
    let start = usize::try_from(piece)
        .ok()?
        .checked_mul(METADATA_PIECE_SIZE)?;
    let end = start
        .checked_add(METADATA_PIECE_SIZE)?
        .min(info_bytes.len());
    info_bytes.get(start..end).filter(|p| !p.is_empty())
}

/// Builds a [`MetaInfo`] from a fetched info dictionary and the magnet's trackers (each
/// tracker its own tier, in order).
///
/// # Errors
/// Every error of [`MetaInfo::from_bytes`] for an info dictionary that is not a valid
/// torrent.
pub fn metainfo_from_metadata(info: &[u8], trackers: &[String]) -> Result<MetaInfo, MetaInfoError> {
    let mut torrent = b"d".to_vec();
    if let Some(first) = trackers.first() {
        bencode::encode_into(&Value::Bytes(b"announce"), &mut torrent);
        bencode::encode_into(&Value::Bytes(first.as_bytes()), &mut torrent);
        let tiers = trackers
            .iter()
            .map(|t| {
                let tier = vec![bencode::Node::new(Value::Bytes(t.as_bytes()))];
                bencode::Node::new(Value::List(tier))
            })
            .collect();
        bencode::encode_into(&Value::Bytes(b"announce-list"), &mut torrent);
        bencode::encode_into(&Value::List(tiers), &mut torrent);
    }
    torrent.extend_from_slice(b"4:info");
    torrent.extend_from_slice(info);
    torrent.push(b'e');
    MetaInfo::from_bytes(&torrent)
}

/// Why the [`MetadataAssembler`] refused something.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    /// The announced size is zero or over [`MAX_METADATA_SIZE`].
    #[error("metadata size {size} is zero or over the limit of {max} bytes")]
    InvalidTotalSize {
        /// The announced size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// A piece index past the last piece.
    #[error("metadata piece {piece} out of range ({count} pieces)")]
    PieceOutOfRange {
        /// The piece index.
        piece: u32,
        /// The number of pieces.
        count: u32,
    },
    /// A piece with the wrong number of bytes.
    #[error("metadata piece {piece} has {actual} bytes, expected {expected}")]
    WrongPieceLength {
        /// The piece index.
        piece: u32,
        /// Its length for the total size.
        expected: usize,
        /// The received length.
        actual: usize,
    },
    /// All pieces arrived but their SHA-1 is not the info-hash; everything was dropped.
    #[error("metadata hash {actual} does not match info-hash {expected}")]
    HashMismatch {
        /// The info-hash we want.
        expected: InfoHash,
        /// The SHA-1 of what we got.
        actual: InfoHash,
    },
}

/// The state of one metadata piece.
#[derive(Clone, Debug)]
enum Slot {
    Missing,
    Requested,
    Received(Bytes),
}

/// Puts an info dictionary together from `ut_metadata` pieces, possibly from several
/// peers at once, and checks it against the info-hash.
///
/// Invariant: every piece is in exactly one state — missing, requested (handed out by
/// [`next_request`](Self::next_request) and not yet answered) or received — and
/// `received` counts the received ones.
#[derive(Clone, Debug)]
pub struct MetadataAssembler {
    info_hash: InfoHash,
    total_size: u64,
    slots: Vec<Slot>,
    received: usize,
    complete: bool,
}

impl MetadataAssembler {
    /// An assembler for `total_size` bytes (from a peer's `metadata_size`).
    ///
    /// # Errors
    /// [`MetadataError::InvalidTotalSize`] for 0 or more than [`MAX_METADATA_SIZE`].
    pub fn new(info_hash: InfoHash, total_size: u64) -> Result<Self, MetadataError> {
        if total_size == 0 || total_size > MAX_METADATA_SIZE {
            return Err(MetadataError::InvalidTotalSize {
                size: total_size,
                max: MAX_METADATA_SIZE,
            });
        }
        // At most MAX_METADATA_SIZE / METADATA_PIECE_SIZE = 512 slots.
        let count = piece_count(total_size) as usize;
        Ok(Self {
            info_hash,
            total_size,
            slots: vec![Slot::Missing; count],
            received: 0,
            complete: false,
        })
    }

    /// The info-hash the metadata must match.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Size of the info dictionary in bytes.
    pub fn total_size(&self) -> u64 {
        self.total_size
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> u32 {
        piece_count(self.total_size)
    }

    /// Number of pieces received so far (since the last reset).
    pub fn received_count(&self) -> usize {
        self.received
    }

    /// Whether the metadata was assembled and verified.
    pub fn is_complete(&self) -> bool {
        self.complete
    }

    /// The next piece to request: the lowest missing one, which becomes requested.
    /// `None` when every piece is requested or received.
    pub fn next_request(&mut self) -> Option<u32> {
        if self.complete {
            return None;
        }
        let index = self.slots.iter().position(|s| matches!(s, Slot::Missing))?;
        self.slots[index] = Slot::Requested;
        u32::try_from(index).ok()
    }

    /// A peer rejected `piece`: it may be requested again (from another peer).
    pub fn reject(&mut self, piece: u32) {
        self.release(piece);
    }

    /// A request for `piece` will not be answered (the peer left or timed out): it may
    /// be requested again. Pieces that are not requested are left as they are.
    pub fn release(&mut self, piece: u32) {
        if let Some(slot) = self.slots.get_mut(piece as usize) {
            if matches!(slot, Slot::Requested) {
                *slot = Slot::Missing;
            }
        }
    }

    /// Stores a received piece (requested or not). Returns the whole info dictionary once
    /// the last piece is in and its SHA-1 matches the info-hash. A piece that was already
    /// received, or any piece after completion, is ignored (`Ok(None)`).
    ///
    /// # Errors
    /// [`MetadataError::PieceOutOfRange`]; [`MetadataError::WrongPieceLength`] (the piece
    /// becomes missing again); [`MetadataError::HashMismatch`] when the assembled
    /// dictionary is wrong: every piece is then dropped and the caller starts over,
    /// preferably with other peers.
    pub fn add_piece(&mut self, piece: u32, data: Bytes) -> Result<Option<Bytes>, MetadataError> {
        let count = self.piece_count();
        let expected = piece_len(self.total_size, piece)
            .ok_or(MetadataError::PieceOutOfRange { piece, count })?;
        let Some(slot) = self.slots.get_mut(piece as usize) else {
            return Err(MetadataError::PieceOutOfRange { piece, count });
        };
        if self.complete || matches!(slot, Slot::Received(_)) {
            return Ok(None);
        }
        if data.len() != expected {
            *slot = Slot::Missing;
            return Err(MetadataError::WrongPieceLength {
                piece,
                expected,
                actual: data.len(),
            });
        }
        *slot = Slot::Received(data);
        self.received += 1;
        if self.received < self.slots.len() {
            return Ok(None);
        }

        // All pieces are in: their lengths add up to total_size, which is capped.
        let mut info = Vec::with_capacity(self.total_size as usize);
        for slot in &self.slots {
            if let Slot::Received(bytes) = slot {
                info.extend_from_slice(bytes);
            }
        }
        let actual = InfoHash(Sha1::digest(&info).into());
        if actual != self.info_hash {
            self.slots.fill(Slot::Missing);
            self.received = 0;
            return Err(MetadataError::HashMismatch {
                expected: self.info_hash,
                actual,
            });
        }
        self.complete = true;
        self.slots.fill(Slot::Missing);
        Ok(Some(Bytes::from(info)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash_of(data: &[u8]) -> InfoHash {
        InfoHash(Sha1::digest(data).into())
    }

    fn info_of_len(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    fn piece_of(info: &[u8], piece: u32) -> Bytes {
        Bytes::copy_from_slice(metadata_piece(info, piece).unwrap())
    }

    #[test]
    fn bep9_examples() {
        let request = MetadataMessage::decode(Bytes::from_static(b"d8:msg_typei0e5:piecei0ee"));
        assert_eq!(request, Ok(MetadataMessage::Request { piece: 0 }));
        let reject = MetadataMessage::decode(Bytes::from_static(b"d8:msg_typei2e5:piecei0ee"));
        assert_eq!(reject, Ok(MetadataMessage::Reject { piece: 0 }));

        // BEP 9's data example: piece 0 of a 34256-byte dictionary, 16 KiB follow.
        let mut body = b"d8:msg_typei1e5:piecei0e10:total_sizei34256ee".to_vec();
        body.extend(std::iter::repeat_n(b'x', METADATA_PIECE_SIZE));
        let msg = MetadataMessage::decode(Bytes::from(body.clone())).unwrap();
        let MetadataMessage::Data {
            piece,
            total_size,
            data,
        } = &msg
        else {
            panic!("expected data");
        };
        assert_eq!((*piece, *total_size, data.len()), (0, 34256, 16384));
        assert!(data.iter().all(|&b| b == b'x'));
        assert_eq!(msg.encode(), body);
    }

    #[test]
    fn encode_round_trips() {
        let msgs = [
            MetadataMessage::Request { piece: 3 },
            MetadataMessage::Reject { piece: 511 },
            MetadataMessage::Data {
                piece: 2,
                total_size: 2 * 16384 + 5,
                data: Bytes::from_static(b"12345"),
            },
        ];
        for msg in msgs {
            assert_eq!(MetadataMessage::decode(msg.encode().into()), Ok(msg));
        }
        assert_eq!(
            MetadataMessage::Request { piece: 7 }.encode(),
            b"d8:msg_typei0e5:piecei7ee"
        );
    }

    #[test]
    fn extra_keys_and_unsorted_keys_are_accepted() {
        let msg = MetadataMessage::decode(Bytes::from_static(
            b"d5:piecei1e8:msg_typei2e10:total_sizei99ee",
        ));
        assert_eq!(msg, Ok(MetadataMessage::Reject { piece: 1 }));
    }

    #[test]
    fn decode_errors() {
        let dec = |b: &'static [u8]| MetadataMessage::decode(Bytes::from_static(b));
        assert_eq!(dec(b"le"), Err(ExtensionError::NotADict));
        assert!(matches!(dec(b""), Err(ExtensionError::Bencode(_))));
        assert!(matches!(
            dec(b"d8:msg_type"),
            Err(ExtensionError::Bencode(_))
        ));
        assert_eq!(
            dec(b"d5:piecei0ee"),
            Err(ExtensionError::Missing("msg_type"))
        );
        assert_eq!(
            dec(b"d8:msg_typei0ee"),
            Err(ExtensionError::Missing("piece"))
        );
        assert_eq!(
            dec(b"d8:msg_type1:05:piecei0ee"),
            Err(ExtensionError::Missing("msg_type"))
        );
        assert_eq!(
            dec(b"d8:msg_typei3e5:piecei0ee"),
            Err(ExtensionError::UnknownMetadataType(3))
        );
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei-1ee"),
            Err(ExtensionError::PieceOutOfRange {
                piece: -1,
                count: 512
            })
        );
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei512ee"),
            Err(ExtensionError::PieceOutOfRange {
                piece: 512,
                count: 512
            })
        );
        assert_eq!(
            dec(b"d8:msg_typei0e5:piecei0eeXY"),
            Err(ExtensionError::TrailingBytes(2))
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0ee"),
            Err(ExtensionError::Missing("total_size"))
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei0eee"),
            Err(ExtensionError::MetadataSize {
                size: 0,
                max: MAX_METADATA_SIZE
            })
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei8388609eee"),
            Err(ExtensionError::MetadataSize {
                size: 8388609,
                max: MAX_METADATA_SIZE
            })
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei1e10:total_sizei3eeabc"),
            Err(ExtensionError::PieceOutOfRange { piece: 1, count: 1 })
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei3eeab"),
            Err(ExtensionError::WrongPieceLength {
                piece: 0,
                expected: 3,
                actual: 2
            })
        );
        assert_eq!(
            dec(b"d8:msg_typei1e5:piecei0e10:total_sizei3eeabcd"),
            Err(ExtensionError::WrongPieceLength {
                piece: 0,
                expected: 3,
                actual: 4
            })
        );
    }

    #[test]
    fn piece_arithmetic() {
        assert_eq!(piece_count(1), 1);
        assert_eq!(piece_count(16384), 1);
        assert_eq!(piece_count(16385), 2);
        assert_eq!(piece_count(MAX_METADATA_SIZE), 512);
        assert_eq!(piece_len(16385, 0), Some(16384));
        assert_eq!(piece_len(16385, 1), Some(1));
        assert_eq!(piece_len(16385, 2), None);
        assert_eq!(piece_len(16384, 1), None);
        assert_eq!(piece_len(u64::MAX, u32::MAX), Some(16384));

        let info = info_of_len(16384 + 100);
        assert_eq!(metadata_piece(&info, 0), Some(&info[..16384]));
        assert_eq!(metadata_piece(&info, 1), Some(&info[16384..]));
        assert_eq!(metadata_piece(&info, 2), None);
        assert_eq!(metadata_piece(&info, u32::MAX), None);
        assert_eq!(metadata_piece(&[], 0), None);
        let exact = info_of_len(16384);
        assert_eq!(metadata_piece(&exact, 1), None);
    }

    #[test]
    fn assembler_in_order() {
        let info = info_of_len(3 * 16384 + 10);
        let mut asm = MetadataAssembler::new(hash_of(&info), info.len() as u64).unwrap();
        assert_eq!(asm.piece_count(), 4);
        let mut result = None;
        while let Some(piece) = asm.next_request() {
            assert!(result.is_none());
            result = asm.add_piece(piece, piece_of(&info, piece)).unwrap();
        }
        assert_eq!(result.as_deref(), Some(&info[..]));
        assert!(asm.is_complete());
        assert_eq!(asm.next_request(), None);
        assert_eq!(asm.add_piece(0, piece_of(&info, 0)), Ok(None));
    }

    #[test]
    fn assembler_out_of_order_and_unrequested() {
        let info = info_of_len(2 * 16384 + 1);
        let mut asm = MetadataAssembler::new(hash_of(&info), info.len() as u64).unwrap();
        assert_eq!(asm.add_piece(2, piece_of(&info, 2)), Ok(None));
        assert_eq!(asm.add_piece(0, piece_of(&info, 0)), Ok(None));
        // A duplicate is ignored.
        assert_eq!(asm.add_piece(0, piece_of(&info, 0)), Ok(None));
        assert_eq!(asm.received_count(), 2);
        assert_eq!(asm.next_request(), Some(1));
        assert_eq!(asm.next_request(), None);
        let done = asm.add_piece(1, piece_of(&info, 1)).unwrap();
        assert_eq!(done.as_deref(), Some(&info[..]));
    }

    #[test]
    fn assembler_several_peers_reject_and_release() {
        let info = info_of_len(3 * 16384);
        let mut asm = MetadataAssembler::new(hash_of(&info), info.len() as u64).unwrap();
        // Peer A takes 0 and 1, peer B takes 2.
        assert_eq!(asm.next_request(), Some(0));
        assert_eq!(asm.next_request(), Some(1));
        assert_eq!(asm.next_request(), Some(2));
        assert_eq!(asm.next_request(), None);
        // A rejects 1 and disconnects holding 0; B delivers 2.
        asm.reject(1);
        asm.release(0);
        assert_eq!(asm.add_piece(2, piece_of(&info, 2)), Ok(None));
        // Releasing a received piece or an out-of-range one changes nothing.
        asm.release(2);
        asm.release(99);
        // B now gets 0 and 1.
        assert_eq!(asm.next_request(), Some(0));
        assert_eq!(asm.next_request(), Some(1));
        assert_eq!(asm.next_request(), None);
        assert_eq!(asm.add_piece(1, piece_of(&info, 1)), Ok(None));
        let done = asm.add_piece(0, piece_of(&info, 0)).unwrap();
        assert_eq!(done.as_deref(), Some(&info[..]));
    }

    #[test]
    fn assembler_hash_mismatch_resets() {
        let info = info_of_len(16384 + 3);
        let mut asm = MetadataAssembler::new(hash_of(&info), info.len() as u64).unwrap();
        assert_eq!(asm.next_request(), Some(0));
        assert_eq!(asm.next_request(), Some(1));
        assert_eq!(asm.add_piece(0, piece_of(&info, 0)), Ok(None));
        let err = asm.add_piece(1, Bytes::from_static(b"bad")).unwrap_err();
        let MetadataError::HashMismatch { expected, actual } = err else {
            panic!("expected a hash mismatch, got {err:?}");
        };
        assert_eq!(expected, hash_of(&info));
        assert_ne!(actual, expected);
        assert_eq!(asm.received_count(), 0);
        assert!(!asm.is_complete());
        // Everything is asked again, and the right data then completes.
        assert_eq!(asm.next_request(), Some(0));
        assert_eq!(asm.next_request(), Some(1));
        assert_eq!(asm.add_piece(1, piece_of(&info, 1)), Ok(None));
        let done = asm.add_piece(0, piece_of(&info, 0)).unwrap();
        assert_eq!(done.as_deref(), Some(&info[..]));
    }

    #[test]
    fn assembler_refuses_bad_sizes() {
        let h = InfoHash([0; 20]);
        assert_eq!(
            MetadataAssembler::new(h, 0).unwrap_err(),
            MetadataError::InvalidTotalSize {
                size: 0,
                max: MAX_METADATA_SIZE
            }
        );
        assert!(MetadataAssembler::new(h, MAX_METADATA_SIZE + 1).is_err());
        assert!(MetadataAssembler::new(h, u64::MAX).is_err());
        let big = MetadataAssembler::new(h, MAX_METADATA_SIZE).unwrap();
        assert_eq!(big.piece_count(), 512);
        assert_eq!(big.total_size(), MAX_METADATA_SIZE);
        assert_eq!(big.info_hash(), h);

        let mut asm = MetadataAssembler::new(h, 16384 + 10).unwrap();
        assert_eq!(asm.next_request(), Some(0));
        assert_eq!(
            asm.add_piece(0, Bytes::from(vec![0; 100])),
            Err(MetadataError::WrongPieceLength {
                piece: 0,
                expected: 16384,
                actual: 100
            })
        );
        // The bad piece is missing again.
        assert_eq!(asm.next_request(), Some(0));
        assert_eq!(
            asm.add_piece(1, Bytes::from(vec![0; 16384])),
            Err(MetadataError::WrongPieceLength {
                piece: 1,
                expected: 10,
                actual: 16384
            })
        );
        assert_eq!(
            asm.add_piece(2, Bytes::new()),
            Err(MetadataError::PieceOutOfRange { piece: 2, count: 2 })
        );
        assert_eq!(
            asm.add_piece(u32::MAX, Bytes::new()),
            Err(MetadataError::PieceOutOfRange {
                piece: u32::MAX,
                count: 2
            })
        );
    }

    #[test]
    fn fetched_metadata_becomes_metainfo() {
        let info =
            b"d6:lengthi5e4:name5:a.txt12:piece lengthi16384e6:pieces20:aaaaaaaaaaaaaaaaaaaae";
        let mut asm = MetadataAssembler::new(hash_of(info), info.len() as u64).unwrap();
        let piece = asm.next_request().unwrap();
        let fetched = asm
            .add_piece(piece, piece_of(info, piece))
            .unwrap()
            .unwrap();
        let trackers = vec!["http://a/ann".to_owned(), "udp://b:1".to_owned()];
        let meta = metainfo_from_metadata(&fetched, &trackers).unwrap();
        assert_eq!(meta.info_hash, hash_of(info));
        assert_eq!(meta.name, "a.txt");
        assert_eq!(meta.total_length, 5);
        assert_eq!(meta.trackers, [vec!["http://a/ann"], vec!["udp://b:1"]]);
        assert_eq!(&meta.info_bytes[..], &info[..]);

        let meta = metainfo_from_metadata(info, &[]).unwrap();
        assert!(meta.trackers.is_empty());
        assert!(metainfo_from_metadata(b"de", &[]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = MetadataMessage::decode(Bytes::from(bytes));
        }

        #[test]
        fn decode_never_panics_on_headers(
            msg_type in -2i64..5,
            piece in proptest::num::i64::ANY,
            total in proptest::num::i64::ANY,
            tail in proptest::collection::vec(proptest::num::u8::ANY, 0..64),
        ) {
            let mut body = format!(
                "d8:msg_typei{msg_type}e5:piecei{piece}e10:total_sizei{total}ee"
            ).into_bytes();
            body.extend_from_slice(&tail);
            let _ = MetadataMessage::decode(Bytes::from(body));
        }

        #[test]
        fn assembler_never_panics(
            total in 1u64..70_000,
            ops in proptest::collection::vec((0u8..4, 0u32..6, 0usize..16_400), 0..40),
        ) {
            let mut asm = MetadataAssembler::new(InfoHash([1; 20]), total).unwrap();
            for (op, piece, len) in ops {
                match op {
                    0 => { asm.next_request(); }
                    1 => asm.reject(piece),
                    2 => asm.release(piece),
                    _ => { let _ = asm.add_piece(piece, Bytes::from(vec![0; len])); }
                }
                proptest::prop_assert!(asm.received_count() <= asm.piece_count() as usize);
            }
        }
    }
}
