//! The resume record: which pieces of a torrent were verified on disk, and
//! what its files looked like at the time. Pure: the store writes the bytes
//! (write to a temporary file, then rename) while pieces are written, and on
//! the next start [`crate::recovery`] decides from it which pieces to trust.
//!
//! # Format (version 2)
//! A bencoded dictionary, keys in sorted order:
//!
//! ```text
//! d
//!   5:files       l <stamp> ... e
//!   9:info-hash   20:<the torrent's info-hash>
//!   5:lease       l i<secs>e i<nanos>e e
//!   5:parts       <stamp>                  (optional)
//!   11:piece-count i<n>e
//!   6:pieces      <ceil(n / 8) bytes: the bitfield, wire bit order>
//!   7:version     i2e
//! e
//! <stamp> = l i<length>e i<mtime_secs>e i<mtime_nanos>e i<ctime_secs>e
//!             i<ctime_nanos>e i<dev>e i<inode>e e
//!         | le                              (the file did not exist)
//! ```
//!
//! - `files` has one stamp per file of the torrent, in torrent order (pad
//!   files included), taken after the bitfield: every listed piece was on
//!   disk when its files were stamped. `length` is in bytes and non-negative;
//!   times are seconds since the Unix epoch (negative before 1970) and
//!   nanoseconds in `0..1_000_000_000`; `dev` and `inode` identify the file
//!   and are written as the signed 64-bit integer with the same bits.
//! - `lease` is a time: the writer promised not to write any file of the
//!   torrent after it without first writing a newer record. A change to a
//!   file stamped after the lease cannot be ours.
//! - `parts`, when present, stamps the part file (`<info-hash>.parts`).
//! - `pieces` is exactly `ceil(piece-count / 8)` bytes, the high bit of byte 0
//!   is piece 0, and the spare bits of the last byte are zero (the `bitfield`
//!   message's layout, see [`Bitfield::from_bytes`]).
//! - `version` is [`ResumeRecord::VERSION`]; any other version (the first
//!   format, without identities and lease, included) is refused with
//!   [`ResumeError::Version`], so a record is never misread: the data is then
//!   checked by hash.
//!
//! Everything is plain integers and byte strings, so a record does not depend
//! on the Rust version, the platform or any hasher.
//!
//! # Strictness
//! [`ResumeRecord::decode`] uses the strict [`crate::bencode`] decoder (no
//! trailing bytes, no duplicate keys) and checks every field as above; a
//! piece count above [`MAX_PIECES`] or more than [`MAX_FILES`] files is
//! refused. Unknown keys are *accepted* and ignored, so a later version can add
//! optional fields without breaking older readers; [`ResumeRecord::encode`]
//! writes the keys above and nothing else. Nothing is allocated by a size
//! read from the record: the bitfield is copied from the input bytes and the
//! file list is as long as the decoded list.

use crate::bencode::{self, Node, Value};
use crate::bitfield::Bitfield;
use crate::types::InfoHash;

/// The largest piece count a record may declare (4 Mi, as
/// [`crate::metainfo::MAX_PIECES`]).
pub const MAX_PIECES: usize = 1 << 22;

/// The largest number of files a record may list.
pub const MAX_FILES: usize = 1_000_000;

/// Nanoseconds per second: a time's nanoseconds must be below it.
const NANOS_PER_SEC: i64 = 1_000_000_000;

const KEY_FILES: &[u8] = b"files";
const KEY_INFO_HASH: &[u8] = b"info-hash";
const KEY_LEASE: &[u8] = b"lease";
const KEY_PARTS: &[u8] = b"parts";
const KEY_PIECE_COUNT: &[u8] = b"piece-count";
const KEY_PIECES: &[u8] = b"pieces";
const KEY_VERSION: &[u8] = b"version";

/// A point in time as file systems keep it: seconds since the Unix epoch
/// and nanoseconds within the second. Ordered in time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Time {
    /// Whole seconds since the Unix epoch (negative before 1970).
    pub secs: i64,
    /// Nanoseconds within the second (`< 1_000_000_000`).
    pub nanos: u32,
}

impl Time {
    /// `time` as a [`Time`] (times before 1970 included).
    pub fn from_system(time: std::time::SystemTime) -> Self {
        let clamp = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX);
        match time.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => Self {
                secs: clamp(d.as_secs()),
                nanos: d.subsec_nanos(),
            },
            Err(before) => {
                let d = before.duration();
                // -1.25 s is secs -2, nanos 750_000_000.
                match d.subsec_nanos() {
                    0 => Self {
                        secs: -clamp(d.as_secs()),
                        nanos: 0,
                    },
                    n => Self {
                        secs: -clamp(d.as_secs()).saturating_add(1),
                        nanos: 1_000_000_000 - n,
                    },
                }
            }
        }
    }
}

/// What one file looked like when the record was written: enough to tell
/// whether a later change can be explained by our own writes (see
/// [`crate::recovery`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    /// Length of the file in bytes.
    pub length: u64,
    /// Last modification of the data.
    pub mtime: Time,
    /// Last change of the data or the metadata (set by the kernel only).
    pub ctime: Time,
    /// Device of the file system holding the file.
    pub dev: u64,
    /// Inode number: a file replaced by another has another one.
    pub inode: u64,
}

/// What a torrent had verified on disk, written atomically as pieces are
/// written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResumeRecord {
    /// The torrent the record belongs to.
    pub info_hash: InfoHash,
    /// The verified pieces; its length is the torrent's piece count.
    pub have: Bitfield,
    /// One stamp per file of the torrent, in torrent order; `None` for a
    /// file that did not exist.
    pub files: Vec<Option<FileStamp>>,
    /// The part file's stamp; `None` when there is none.
    pub parts: Option<FileStamp>,
    /// No file of the torrent is written after this time unless a newer
    /// record is written first.
    pub lease: Time,
}

/// Why resume data was refused. The caller then starts from a full check of
/// the files instead.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The bytes are not (strict) bencode.
    #[error("resume data is not valid bencode: {0}")]
    Bencode(String),
    /// The record was written in a format version we do not read.
    #[error("unsupported resume data version {0} (expected {v})", v = ResumeRecord::VERSION)]
    Version(i64),
    /// A key is missing, has the wrong type or an out-of-range value.
    #[error("invalid resume data: {0}")]
    Invalid(String),
    /// The record is valid but belongs to another torrent.
    #[error("resume data is for torrent {found}, not {expected}")]
    WrongTorrent {
        /// The torrent we are resuming.
        expected: InfoHash,
        /// The info-hash in the record.
        found: InfoHash,
    },
    /// The record's piece or file count does not match the torrent's.
    #[error("resume data has {found} {what}, the torrent has {expected}")]
    CountMismatch {
        /// `"pieces"` or `"files"`.
        what: &'static str,
        /// The torrent's count.
        expected: usize,
        /// The record's count.
        found: usize,
    },
}

impl ResumeRecord {
    /// The format version [`encode`](Self::encode) writes and
    /// [`decode`](Self::decode) accepts.
    pub const VERSION: i64 = 2;

    /// The bencoded record (see the [module docs](self) for the format), keys
    /// sorted. A file length above `i64::MAX` (which no .torrent can declare)
    /// is written as `i64::MAX`.
    pub fn encode(&self) -> Vec<u8> {
        let files = self
            .files
            .iter()
            .map(|f| encode_stamp(f.as_ref()))
            .collect();
        let piece_count = i64::try_from(self.have.len()).unwrap_or(i64::MAX);
        // Sorted: "files" < "info-hash" < "lease" < "parts" < "piece-count"
        // < "pieces" < "version".
        let mut dict = vec![
            (KEY_FILES, Node::new(Value::List(files))),
            (KEY_INFO_HASH, Node::new(Value::Bytes(&self.info_hash.0))),
            (KEY_LEASE, encode_time(self.lease)),
        ];
        if let Some(parts) = &self.parts {
            dict.push((KEY_PARTS, encode_stamp(Some(parts))));
        }
        dict.extend([
            (KEY_PIECE_COUNT, Node::new(Value::Int(piece_count))),
            (KEY_PIECES, Node::new(Value::Bytes(self.have.as_bytes()))),
            (KEY_VERSION, Node::new(Value::Int(Self::VERSION))),
        ]);
        bencode::encode(&Value::Dict(dict))
    }

    /// Decodes and validates a record (see the [module docs](self)).
    ///
    /// # Errors
    /// [`ResumeError::Bencode`] if the bytes are not strict bencode,
    /// [`ResumeError::Version`] for a version other than
    /// [`VERSION`](Self::VERSION), [`ResumeError::Invalid`] for a missing key,
    /// a wrong type or an out-of-range value.
    pub fn decode(bytes: &[u8]) -> Result<Self, ResumeError> {
        let root = bencode::decode(bytes).map_err(|e| ResumeError::Bencode(e.to_string()))?;
        if root.value.as_dict().is_none() {
            return Err(invalid("not a dictionary"));
        }

        // The version first: a future format may change every other key.
        let version = int(&root, KEY_VERSION)?;
        if version != Self::VERSION {
            return Err(ResumeError::Version(version));
        }

        let hash = required(&root, KEY_INFO_HASH)?
            .value
            .as_bytes()
            .ok_or_else(|| invalid("info-hash is not a byte string"))?;
        let info_hash = <[u8; 20]>::try_from(hash)
            .map(InfoHash)
            .map_err(|_| invalid(format!("info-hash is {} bytes, not 20", hash.len())))?;

        let piece_count = int(&root, KEY_PIECE_COUNT)?;
        let piece_count = usize::try_from(piece_count)
            .ok()
            .filter(|&n| n <= MAX_PIECES)
            .ok_or_else(|| {
                invalid(format!(
                    "piece-count {piece_count} is not in 0..={MAX_PIECES}"
                ))
            })?;
        let pieces = required(&root, KEY_PIECES)?
            .value
            .as_bytes()
            .ok_or_else(|| invalid("pieces is not a byte string"))?;
        // Only copies the input's bytes, after checking their length.
        let have = Bitfield::from_bytes(pieces, piece_count)
            .map_err(|e| invalid(format!("pieces: {e}")))?;

        let (files, parts) = decode_stamps(&root)?;
        let lease =
            decode_time(required(&root, KEY_LEASE)?).map_err(|e| invalid(format!("lease: {e}")))?;

        Ok(Self {
            info_hash,
            have,
            files,
            parts,
            lease,
        })
    }

    /// Decodes and checks it belongs to this torrent: same info-hash,
    /// `piece_count` pieces, `file_count` files.
    ///
    /// # Errors
    /// Everything [`decode`](Self::decode) returns, plus
    /// [`ResumeError::WrongTorrent`] for another info-hash and
    /// [`ResumeError::CountMismatch`] for another piece or file count.
    pub fn decode_for(
        bytes: &[u8],
        info_hash: InfoHash,
        piece_count: usize,
        file_count: usize,
    ) -> Result<Self, ResumeError> {
        let record = Self::decode(bytes)?;
        if record.info_hash != info_hash {
            return Err(ResumeError::WrongTorrent {
                expected: info_hash,
                found: record.info_hash,
            });
        }
        if record.have.len() != piece_count {
            return Err(ResumeError::CountMismatch {
                what: "pieces",
                expected: piece_count,
                found: record.have.len(),
            });
        }
        if record.files.len() != file_count {
            return Err(ResumeError::CountMismatch {
                what: "files",
                expected: file_count,
                found: record.files.len(),
            });
        }
        Ok(record)
    }
}

fn invalid(msg: impl Into<String>) -> ResumeError {
    ResumeError::Invalid(msg.into())
}

/// The value of a key that must be present.
fn required<'n, 'a>(dict: &'n Node<'a>, key: &[u8]) -> Result<&'n Node<'a>, ResumeError> {
    dict.get(key)
        .ok_or_else(|| invalid(format!("missing {}", String::from_utf8_lossy(key))))
}

/// The integer value of a key that must be present.
fn int(dict: &Node<'_>, key: &[u8]) -> Result<i64, ResumeError> {
    required(dict, key)?.value.as_int().ok_or_else(|| {
        invalid(format!(
            "{} is not an integer",
            String::from_utf8_lossy(key)
        ))
    })
}

/// The `files` list and the optional `parts` stamp.
fn decode_stamps(
    root: &Node<'_>,
) -> Result<(Vec<Option<FileStamp>>, Option<FileStamp>), ResumeError> {
    let list = required(root, KEY_FILES)?
        .value
        .as_list()
        .ok_or_else(|| invalid("files is not a list"))?;
    if list.len() > MAX_FILES {
        return Err(invalid(format!(
            "{} files, at most {MAX_FILES} allowed",
            list.len()
        )));
    }
    let files = list
        .iter()
        .enumerate()
        .map(|(i, node)| decode_stamp(node).map_err(|e| invalid(format!("file {i}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let parts = match root.get(KEY_PARTS) {
        None => None,
        Some(node) => match decode_stamp(node) {
            Ok(Some(stamp)) => Some(stamp),
            Ok(None) => return Err(invalid("parts: an empty stamp")),
            Err(e) => return Err(invalid(format!("parts: {e}"))),
        },
    };
    Ok((files, parts))
}

fn int_node<'a>(v: i64) -> Node<'a> {
    Node::new(Value::Int(v))
}

fn encode_time<'a>(t: Time) -> Node<'a> {
    Node::new(Value::List(vec![
        int_node(t.secs),
        int_node(i64::from(t.nanos)),
    ]))
}

/// `le` for a missing file, else the seven integers of the format.
fn encode_stamp<'a>(stamp: Option<&FileStamp>) -> Node<'a> {
    let Some(s) = stamp else {
        return Node::new(Value::List(vec![]));
    };
    Node::new(Value::List(vec![
        int_node(i64::try_from(s.length).unwrap_or(i64::MAX)),
        int_node(s.mtime.secs),
        int_node(i64::from(s.mtime.nanos)),
        int_node(s.ctime.secs),
        int_node(i64::from(s.ctime.nanos)),
        // Same bits: identities are compared, never ordered.
        int_node(s.dev as i64),
        int_node(s.inode as i64),
    ]))
}

/// The integers of a list node, or why not.
fn ints<const N: usize>(node: &Node<'_>) -> Result<[i64; N], String> {
    let not = || format!("not a list of {N} integers");
    let list = node.value.as_list().ok_or_else(not)?;
    if list.len() != N {
        return Err(not());
    }
    let mut out = [0i64; N];
    for (o, n) in out.iter_mut().zip(list) {
        *o = n.value.as_int().ok_or_else(not)?;
    }
    Ok(out)
}

fn time(secs: i64, nanos: i64, what: &str) -> Result<Time, String> {
    let nanos = u32::try_from(nanos)
        .ok()
        .filter(|&n| i64::from(n) < NANOS_PER_SEC)
        .ok_or_else(|| format!("{what} nanoseconds not in 0..1000000000"))?;
    Ok(Time { secs, nanos })
}

fn decode_time(node: &Node<'_>) -> Result<Time, String> {
    let [secs, nanos] = ints(node)?;
    time(secs, nanos, "time")
}

/// One entry of `files` (or `parts`): `None` for `le`.
fn decode_stamp(node: &Node<'_>) -> Result<Option<FileStamp>, String> {
    if node.value.as_list().is_some_and(<[_]>::is_empty) {
        return Ok(None);
    }
    let [length, m_secs, m_nanos, c_secs, c_nanos, dev, inode] = ints(node)?;
    Ok(Some(FileStamp {
        length: u64::try_from(length).map_err(|_| "negative length".to_string())?,
        mtime: time(m_secs, m_nanos, "mtime")?,
        ctime: time(c_secs, c_nanos, "ctime")?,
        dev: dev as u64,
        inode: inode as u64,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn stamp(length: u64, secs: i64) -> FileStamp {
        FileStamp {
            length,
            mtime: Time {
                secs,
                nanos: 999_999_999,
            },
            ctime: Time { secs, nanos: 5 },
            dev: 2049,
            inode: u64::MAX - 7,
        }
    }

    fn sample() -> ResumeRecord {
        let mut have = Bitfield::new(10);
        have.set(0);
        have.set(3);
        have.set(9);
        ResumeRecord {
            info_hash: InfoHash([0xab; 20]),
            have,
            files: vec![Some(stamp(12_345, 1_700_000_000)), None, Some(stamp(0, -5))],
            parts: Some(stamp(77, 3)),
            lease: Time {
                secs: 1_700_000_002,
                nanos: 1,
            },
        }
    }

    /// A record built by hand: `files`, `lease` and `extra` are spliced in as
    /// raw bencode, `extra` (already-encoded key/value pairs, sorted) between
    /// `lease` and `piece-count`.
    fn raw(
        files: &str,
        hash: &[u8],
        count: i64,
        pieces: &[u8],
        extra: &str,
        version: i64,
    ) -> Vec<u8> {
        let mut out = format!("d5:files{files}9:info-hash{}:", hash.len()).into_bytes();
        out.extend_from_slice(hash);
        out.extend_from_slice(format!("5:leaseli9ei0ee{extra}").as_bytes());
        out.extend_from_slice(
            format!("11:piece-counti{count}e6:pieces{}:", pieces.len()).as_bytes(),
        );
        out.extend_from_slice(pieces);
        out.extend_from_slice(format!("7:versioni{version}ee").as_bytes());
        out
    }

    fn invalid_msg(bytes: &[u8]) -> String {
        match ResumeRecord::decode(bytes) {
            Err(ResumeError::Invalid(msg)) => msg,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    const FILES: &str = "lli5ei6ei7ei8ei9ei10ei11eee";

    #[test]
    fn round_trip() {
        let record = sample();
        let bytes = record.encode();
        assert_eq!(ResumeRecord::decode(&bytes).unwrap(), record);
        // Canonical: the decoder's view re-encodes to the same bytes.
        let node = bencode::decode(&bytes).unwrap();
        assert_eq!(bencode::encode(&node.value), bytes);
        // Without a part file.
        let record = ResumeRecord {
            parts: None,
            ..sample()
        };
        assert_eq!(ResumeRecord::decode(&record.encode()).unwrap(), record);
    }

    #[test]
    fn encoding_is_the_documented_format() {
        let record = ResumeRecord {
            info_hash: InfoHash([b'h'; 20]),
            have: Bitfield::from_bytes(&[0xa0], 3).unwrap(),
            files: vec![
                Some(FileStamp {
                    length: 7,
                    mtime: Time { secs: -1, nanos: 5 },
                    ctime: Time { secs: 2, nanos: 6 },
                    dev: 3,
                    inode: u64::MAX,
                }),
                None,
            ],
            parts: None,
            lease: Time { secs: 9, nanos: 0 },
        };
        assert_eq!(
            record.encode(),
            b"d5:fileslli7ei-1ei5ei2ei6ei3ei-1eelee9:info-hash20:hhhhhhhhhhhhhhhhhhhh\
              5:leaseli9ei0ee11:piece-counti3e6:pieces1:\xa07:versioni2ee"
        );
        assert_eq!(
            raw(
                "lli7ei-1ei5ei2ei6ei3ei-1eelee",
                &[b'h'; 20],
                3,
                &[0xa0],
                "",
                2
            ),
            record.encode()
        );
    }

    #[test]
    fn times_before_1970_keep_their_order() {
        use std::time::{Duration, UNIX_EPOCH};
        let t = |d: i64| {
            let at = if d < 0 {
                UNIX_EPOCH - Duration::from_millis(d.unsigned_abs())
            } else {
                UNIX_EPOCH + Duration::from_millis(d as u64)
            };
            Time::from_system(at)
        };
        assert_eq!(
            t(-1250),
            Time {
                secs: -2,
                nanos: 750_000_000
            }
        );
        assert_eq!(t(-2000), Time { secs: -2, nanos: 0 });
        assert_eq!(
            t(1500),
            Time {
                secs: 1,
                nanos: 500_000_000
            }
        );
        assert!(t(-2001) < t(-2000) && t(-2000) < t(-1250) && t(-1250) < t(0) && t(0) < t(1));
    }

    #[test]
    fn empty_torrent_geometry_round_trips() {
        let record = ResumeRecord {
            info_hash: InfoHash([0; 20]),
            have: Bitfield::new(0),
            files: vec![],
            parts: None,
            lease: Time::default(),
        };
        assert_eq!(ResumeRecord::decode(&record.encode()).unwrap(), record);
    }

    #[test]
    fn huge_length_is_clamped_when_encoding() {
        let mut record = sample();
        record.files[0] = Some(stamp(u64::MAX, 1));
        let decoded = ResumeRecord::decode(&record.encode()).unwrap();
        assert_eq!(decoded.files[0].unwrap().length, i64::MAX as u64);
    }

    #[test]
    fn hand_built_record_decodes() {
        let record = ResumeRecord::decode(&raw(FILES, &[1; 20], 9, &[0xff, 0x80], "", 2)).unwrap();
        assert_eq!(record.info_hash, InfoHash([1; 20]));
        assert!(record.have.is_full());
        assert_eq!(record.have.len(), 9);
        assert_eq!(record.lease, Time { secs: 9, nanos: 0 });
        assert_eq!(record.parts, None);
        assert_eq!(
            record.files,
            vec![Some(FileStamp {
                length: 5,
                mtime: Time { secs: 6, nanos: 7 },
                ctime: Time { secs: 8, nanos: 9 },
                dev: 10,
                inode: 11,
            })]
        );
    }

    #[test]
    fn unknown_keys_are_accepted() {
        // Forward compatibility: a later writer may add optional keys.
        let bytes = raw(FILES, &[1; 20], 9, &[0xff, 0x80], "5:pzzzzli1ee", 2);
        assert!(ResumeRecord::decode(&bytes).is_ok());
        let bytes = b"d1:ai1e5:filesle9:info-hash20:aaaaaaaaaaaaaaaaaaaa\
            5:leaseli0ei0ee11:piece-counti0e6:pieces0:7:versioni2ee";
        assert!(ResumeRecord::decode(bytes).is_ok());
    }

    #[test]
    fn wrong_version_is_refused() {
        for v in [0, 1, 3, -1, i64::MAX] {
            let bytes = raw(FILES, &[1; 20], 9, &[0xff, 0x80], "", v);
            assert!(
                matches!(ResumeRecord::decode(&bytes), Err(ResumeError::Version(got)) if got == v)
            );
        }
        // The version is checked before anything else: a record of the first
        // format (three integers per file, no lease) is refused as such.
        let first = b"d5:fileslli7ei-1ei5eee9:info-hash20:hhhhhhhhhhhhhhhhhhhh\
              11:piece-counti3e6:pieces1:\xa07:versioni1ee";
        assert!(matches!(
            ResumeRecord::decode(first),
            Err(ResumeError::Version(1))
        ));
        assert!(invalid_msg(b"d7:version1:2e").contains("version"));
        assert!(invalid_msg(b"de").contains("version"));
    }

    #[test]
    fn wrong_hash_length_is_refused() {
        for len in [0, 19, 21, 40] {
            let bytes = raw(FILES, &vec![1; len], 9, &[0xff, 0x80], "", 2);
            assert!(invalid_msg(&bytes).contains("info-hash"), "len {len}");
        }
        let bytes =
            b"d5:filesle9:info-hashi1e5:leaseli0ei0ee11:piece-counti0e6:pieces0:7:versioni2ee";
        assert!(invalid_msg(bytes).contains("info-hash"));
    }

    #[test]
    fn bad_bitfields_are_refused() {
        let hash = [1; 20];
        // Too short, too long, spare bits set.
        for (count, pieces) in [
            (9, &[0xff][..]),
            (9, &[0xff, 0x80, 0x00][..]),
            (9, &[0xff, 0xc0][..]),
            (0, &[0x00][..]),
            (8, &[][..]),
        ] {
            let bytes = raw(FILES, &hash, count, pieces, "", 2);
            assert!(invalid_msg(&bytes).contains("pieces"), "{count} {pieces:?}");
        }
        // Piece counts out of range, huge ones without allocating.
        for count in [-1, MAX_PIECES as i64 + 1, i64::MAX] {
            let bytes = raw(FILES, &hash, count, &[], "", 2);
            assert!(invalid_msg(&bytes).contains("piece-count"), "{count}");
        }
        let bytes = b"d5:filesle9:info-hash20:aaaaaaaaaaaaaaaaaaaa5:leaseli0ei0ee\
            11:piece-counti0e6:piecesi0e7:versioni2ee";
        assert!(invalid_msg(bytes).contains("pieces"));
    }

    #[test]
    fn bad_file_entries_are_refused() {
        for files in [
            "lli-1ei0ei0ei0ei0ei0ei0eee",         // negative length
            "lli0ei0ei1000000000ei0ei0ei0ei0eee", // mtime nanos out of range
            "lli0ei0ei0ei0ei-1ei0ei0eee",         // negative ctime nanos
            "lli0ei0ei0ei0ei0ei0eee",             // six fields
            "lli0ei0ei0ei0ei0ei0ei0ei0eee",       // eight fields
            "lli0ei0eee",                         // the first format's three
            "lli0e1:xi0ei0ei0ei0ei0eee",          // not an integer
            "li0ee",                              // not a list
            "d1:ai1ee",                           // files not a list
            "1:x",                                // files not a list
        ] {
            let bytes = raw(files, &[1; 20], 9, &[0xff, 0x80], "", 2);
            assert!(invalid_msg(&bytes).contains("file"), "{files}");
        }
        for parts in ["le", "li1ee", "i0e", "lli0ei0ei0ei0ei0ei0ei0eee"] {
            let bytes = raw(
                FILES,
                &[1; 20],
                9,
                &[0xff, 0x80],
                &format!("5:parts{parts}"),
                2,
            );
            assert!(invalid_msg(&bytes).contains("parts"), "{parts}");
        }
    }

    #[test]
    fn bad_leases_are_refused() {
        for lease in [
            "le",
            "li0ee",
            "li0ei-1ee",
            "li0ei1000000000ee",
            "i0e",
            "li0ei0ei0ee",
        ] {
            let mut bytes = raw(FILES, &[1; 20], 9, &[0xff, 0x80], "", 2);
            let at = bytes
                .windows(15)
                .position(|w| w == b"5:leaseli9ei0ee")
                .unwrap();
            bytes.splice(at + 7..at + 15, lease.bytes());
            assert!(invalid_msg(&bytes).contains("lease"), "{lease}");
        }
    }

    #[test]
    fn missing_keys_are_refused() {
        let full = sample().encode();
        let node = bencode::decode(&full).unwrap();
        let entries = node.value.as_dict().unwrap();
        for skip in 0..entries.len() {
            let kept: Vec<_> = entries
                .iter()
                .enumerate()
                .filter(|&(i, _)| i != skip)
                .map(|(_, e)| e.clone())
                .collect();
            let bytes = bencode::encode(&Value::Dict(kept));
            // Only "parts" is optional.
            let optional = entries[skip].0 == KEY_PARTS;
            assert_eq!(
                ResumeRecord::decode(&bytes).is_ok(),
                optional,
                "without key {skip}"
            );
        }
    }

    #[test]
    fn not_a_dictionary_or_not_bencode() {
        assert!(invalid_msg(b"le").contains("dictionary"));
        assert!(invalid_msg(b"i1e").contains("dictionary"));
        assert!(matches!(
            ResumeRecord::decode(b""),
            Err(ResumeError::Bencode(_))
        ));
        assert!(matches!(
            ResumeRecord::decode(b"hello"),
            Err(ResumeError::Bencode(_))
        ));
        let mut trailing = sample().encode();
        trailing.push(b'\n');
        assert!(matches!(
            ResumeRecord::decode(&trailing),
            Err(ResumeError::Bencode(_))
        ));
    }

    #[test]
    fn every_truncation_is_refused() {
        let full = sample().encode();
        for cut in 0..full.len() {
            assert!(ResumeRecord::decode(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn decode_for_checks_the_torrent() {
        let record = sample();
        let bytes = record.encode();
        let hash = record.info_hash;
        assert_eq!(
            ResumeRecord::decode_for(&bytes, hash, 10, 3).unwrap(),
            record
        );
        let other = InfoHash([0xcd; 20]);
        assert!(matches!(
            ResumeRecord::decode_for(&bytes, other, 10, 3),
            Err(ResumeError::WrongTorrent { expected, found }) if expected == other && found == hash
        ));
        assert!(matches!(
            ResumeRecord::decode_for(&bytes, hash, 11, 3),
            Err(ResumeError::CountMismatch {
                what: "pieces",
                expected: 11,
                found: 10
            })
        ));
        assert!(matches!(
            ResumeRecord::decode_for(&bytes, hash, 10, 4),
            Err(ResumeError::CountMismatch {
                what: "files",
                expected: 4,
                found: 3
            })
        ));
        assert!(matches!(
            ResumeRecord::decode_for(b"x", hash, 10, 3),
            Err(ResumeError::Bencode(_))
        ));
    }

    fn arb_time() -> impl Strategy<Value = Time> {
        (any::<i64>(), 0..1_000_000_000u32).prop_map(|(secs, nanos)| Time { secs, nanos })
    }

    fn arb_stamp() -> impl Strategy<Value = FileStamp> {
        (
            0..=i64::MAX as u64,
            arb_time(),
            arb_time(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(length, mtime, ctime, dev, inode)| FileStamp {
                length,
                mtime,
                ctime,
                dev,
                inode,
            })
    }

    fn arb_record() -> impl Strategy<Value = ResumeRecord> {
        (
            any::<[u8; 20]>(),
            0..200usize,
            proptest::collection::vec(any::<proptest::sample::Index>(), 0..50),
            proptest::collection::vec(proptest::option::of(arb_stamp()), 0..20),
            proptest::option::of(arb_stamp()),
            arb_time(),
        )
            .prop_map(|(hash, len, ones, files, parts, lease)| {
                let mut have = Bitfield::new(len);
                if len > 0 {
                    for i in ones {
                        have.set(i.index(len));
                    }
                }
                ResumeRecord {
                    info_hash: InfoHash(hash),
                    have,
                    files,
                    parts,
                    lease,
                }
            })
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = ResumeRecord::decode(&bytes);
        }

        #[test]
        fn mutated_records_never_panic(
            record in arb_record(),
            edits in proptest::collection::vec((any::<proptest::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = record.encode();
            for (at, byte) in edits {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
            if let Ok(decoded) = ResumeRecord::decode(&bytes) {
                prop_assert_eq!(ResumeRecord::decode(&decoded.encode()).unwrap(), decoded);
            }
        }

        #[test]
        fn random_records_round_trip(record in arb_record()) {
            let bytes = record.encode();
            let decoded = ResumeRecord::decode(&bytes).unwrap();
            prop_assert_eq!(&decoded, &record);
            let checked = ResumeRecord::decode_for(
                &bytes, record.info_hash, record.have.len(), record.files.len()).unwrap();
            prop_assert_eq!(checked, record);
        }
    }
}
