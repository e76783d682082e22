//! Parsing and validating .torrent files (BEP 3 metainfo, BEP 12 announce-list).
//!
//! The file is decoded with the strict [`crate::bencode`] decoder and the
//! info-hash is the SHA-1 of the raw bytes of the `info` value exactly as they
//! appear in the file (never a re-encoding, so torrents with unsorted keys keep
//! the hash every other client computes).
//!
//! # Policy (where clients disagree we follow libtorrent)
//! - Trailing bytes after the complete top-level dictionary are accepted (and
//!   logged at debug level); the info-hash never depends on them.
//! - Required info keys (`name`, `piece length`, `pieces`, `length`/`files`,
//!   each file's `length` and `path`) must be present with the right type;
//!   optional keys of the wrong type (`announce-list` as a string, a non-string
//!   `url-list` entry, ...) are ignored.
//! - Lengths are non-negative, the total is positive, the piece length is in
//!   `1..=u32::MAX`, `pieces` holds exactly `ceil(total / piece length)` hashes,
//!   and there are at most [`MAX_PIECES`] pieces.
//! - Names and path components prefer their `.utf-8` variants; invalid UTF-8 is
//!   replaced by U+FFFD. In a component, `/` and `\` are removed and NUL becomes
//!   `_`; a component that is then `.` or `..` is dropped, an empty one becomes
//!   `_`; a file whose components were all dropped is called `_`. A torrent name
//!   that is empty, `.` or `..` is replaced by the info-hash in hex. So every
//!   [`FileEntry::path`] is relative and made only of normal components.
//! - A pad file (BEP 47 `attr` containing `p`, or BitComet's older
//!   `_____padding_file_*` name) without a path is called `.pad/<length>`; pad
//!   files take part in offsets but not in duplicate checks.
//! - A file whose path repeats an earlier file (or directory) is renamed like
//!   libtorrent does: `foo/bar.txt` → `foo/bar.1.txt`; more than
//!   [`MAX_DUPLICATE_FILES`] renames is an error, and so is a file path used
//!   as a directory by a later file.
//! - Trackers: `announce-list` when it yields at least one URL, else
//!   `announce`. URLs are trimmed, empty or non-UTF-8 ones dropped, and a URL is
//!   kept only in the first tier it appears in. `url-list` (BEP 19) may be a
//!   string or a list; entries are trimmed, only absolute http(s) URLs are
//!   kept (a relative entry such as archive.org's `/8/items/` is dropped), and
//!   each once, in order.
//!
//! Layout: this file checks the top level and the piece fields; `files.rs`
//! builds the file list (paths, pad files, duplicates); `trackers.rs` the
//! trackers and web seeds.

mod files;
mod trackers;

use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::bencode::{self, Node};
use crate::metainfo::files::{multi_files, sanitize_component, single_file};
pub use crate::metainfo::trackers::{check_web_seed_url, WebSeedUrlError};
use crate::metainfo::trackers::{trackers, url_list};
use crate::types::InfoHash;

/// The largest number of pieces a torrent may have (4 Mi pieces: 80 MiB of
/// hashes and a 512 KiB bitfield).
pub const MAX_PIECES: u64 = 1 << 22;

/// How many duplicate file paths are renamed before the torrent is rejected.
pub const MAX_DUPLICATE_FILES: usize = 100;

/// The largest .torrent file [`MetaInfo::load`] reads.
pub const MAX_TORRENT_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// A parsed, validated .torrent file.
#[derive(Clone, Debug)]
pub struct MetaInfo {
    /// SHA-1 of the raw bytes of the `info` value as they appear in the file.
    pub info_hash: InfoHash,
    /// The torrent's (sanitized) name: the file name of a single-file torrent,
    /// the folder name of a multi-file one.
    pub name: String,
    /// Bytes per piece (every piece but the last).
    pub piece_length: u32,
    /// One SHA-1 per piece.
    pub piece_hashes: Vec<[u8; 20]>,
    /// The files in torrent order. Paths are relative, sanitized, and already
    /// include the torrent's folder for multi-file torrents.
    pub files: Vec<FileEntry>,
    /// Sum of all file lengths (pad files included).
    pub total_length: u64,
    /// Announce URLs in tiers: `announce-list` when present, else `[[announce]]`.
    pub trackers: Vec<Vec<String>>,
    /// BEP 27 private flag.
    pub private: bool,
    /// True when the info dictionary uses the multi-file (`files`) form.
    pub multi_file: bool,
    /// Optional `comment`.
    pub comment: Option<String>,
    /// Optional `created by`.
    pub created_by: Option<String>,
    /// Optional `creation date` (seconds since the epoch).
    pub creation_date: Option<i64>,
    /// BEP 19 web seeds (`url-list`).
    pub url_list: Vec<String>,
    /// The raw bencoded `info` dictionary (for metadata exchange).
    pub info_bytes: Bytes,
}

/// One file of a torrent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative path under the download directory (sanitized: no empty, `.`,
    /// `..` or absolute components, no separators inside a component).
    pub path: PathBuf,
    /// Length in bytes.
    pub length: u64,
    /// Offset of the file's first byte in the torrent's byte stream.
    pub offset: u64,
    /// BEP 47 pad file (`attr` contains `p`): never written to disk.
    pub pad: bool,
}

/// Why a .torrent could not be used.
#[derive(Debug, thiserror::Error)]
pub enum MetaInfoError {
    /// Reading the file failed.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The bytes are not valid bencode.
    #[error("invalid bencoding: {0}")]
    Bencode(String),
    /// A required key is missing or has the wrong type.
    #[error("invalid torrent: {0}")]
    Invalid(String),
    /// The file is larger than [`MAX_TORRENT_FILE_SIZE`].
    #[error("{path} is larger than {max} bytes: not a .torrent")]
    FileTooLarge {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// The `pieces` string does not hold one hash per piece.
    #[error("'pieces' holds {actual} hashes but the torrent size needs {expected}")]
    PieceCountMismatch {
        /// `ceil(total_length / piece_length)`.
        expected: u64,
        /// Hashes in `pieces`.
        actual: u64,
    },
    /// More pieces than [`MAX_PIECES`].
    #[error("torrent has {count} pieces, more than the limit of {max}")]
    TooManyPieces {
        /// Pieces the torrent would have.
        count: u64,
        /// The limit.
        max: u64,
    },
    /// More duplicate file paths than [`MAX_DUPLICATE_FILES`].
    #[error("more than {max} duplicate file paths")]
    TooManyDuplicateFiles {
        /// The limit.
        max: usize,
    },
}

impl From<bencode::DecodeError> for MetaInfoError {
    fn from(err: bencode::DecodeError) -> Self {
        MetaInfoError::Bencode(err.to_string())
    }
}

fn invalid(msg: impl Into<String>) -> MetaInfoError {
    MetaInfoError::Invalid(msg.into())
}

impl MetaInfo {
    /// Reads and parses a .torrent file.
    ///
    /// # Errors
    /// IO errors, [`MetaInfoError::FileTooLarge`] for files over
    /// [`MAX_TORRENT_FILE_SIZE`], and every parse/validation error of
    /// [`MetaInfo::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, MetaInfoError> {
        let path = path.as_ref();
        let io_err = |source| MetaInfoError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_err)?;
        let mut bytes = Vec::new();
        file.take(MAX_TORRENT_FILE_SIZE + 1)
            .read_to_end(&mut bytes)
            .map_err(io_err)?;
        if bytes.len() as u64 > MAX_TORRENT_FILE_SIZE {
            return Err(MetaInfoError::FileTooLarge {
                path: path.to_path_buf(),
                max: MAX_TORRENT_FILE_SIZE,
            });
        }
        Self::from_bytes(&bytes)
    }

    /// Parses a .torrent from its bytes (see the module docs for the rules).
    ///
    /// # Errors
    /// [`MetaInfoError::Bencode`] for invalid bencoding;
    /// [`MetaInfoError::Invalid`] for a missing or mistyped required key, a
    /// negative or zero total length, no files, or a conflicting file path;
    /// [`MetaInfoError::PieceCountMismatch`], [`MetaInfoError::TooManyPieces`]
    /// and [`MetaInfoError::TooManyDuplicateFiles`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetaInfoError> {
        let root = decode_root(bytes)?;
        let info = root
            .get(b"info")
            .filter(|info| info.value.as_dict().is_some())
            .ok_or_else(|| invalid("missing 'info' dictionary"))?;
        let info_hash = InfoHash(Sha1::digest(info.raw).into());
        let piece_length = piece_length(info)?;
        let pieces = pieces(info)?;
        let name = torrent_name(info, &info_hash)?;
        let multi_file = info.get(b"files").is_some();
        let files = if multi_file {
            multi_files(info, &name)?
        } else {
            vec![single_file(info, &name)?]
        };
        let total_length = total_length(&files)?;
        let piece_hashes = piece_hashes(pieces, total_length, piece_length)?;
        Ok(Self {
            info_hash,
            name,
            piece_length,
            piece_hashes,
            files,
            total_length,
            trackers: trackers(&root),
            private: info.get(b"private").and_then(|n| n.value.as_int()) == Some(1),
            multi_file,
            comment: utf8_variant(&root, b"comment.utf-8", b"comment").map(lossy),
            created_by: root
                .get(b"created by")
                .and_then(|n| n.value.as_bytes())
                .map(lossy),
            creation_date: root.get(b"creation date").and_then(|n| n.value.as_int()),
            url_list: url_list(&root),
            info_bytes: Bytes::copy_from_slice(info.raw),
        })
    }

    /// A .torrent file for this torrent: its `info` dictionary exactly as
    /// received (so the info-hash is the same) with `announce` and
    /// `announce-list` from [`trackers`](Self::trackers). Used to save a
    /// torrent whose metadata came from a magnet link.
    pub fn to_torrent_bytes(&self) -> Vec<u8> {
        use crate::bencode::{encode_into, Node, Value};
        let mut out = b"d".to_vec();
        if let Some(first) = self.trackers.iter().flatten().next() {
            encode_into(&Value::Bytes(b"announce"), &mut out);
            encode_into(&Value::Bytes(first.as_bytes()), &mut out);
            let tiers = self
                .trackers
                .iter()
                .map(|tier| {
                    let urls = tier
                        .iter()
                        .map(|u| Node::new(Value::Bytes(u.as_bytes())))
                        .collect();
                    Node::new(Value::List(urls))
                })
                .collect();
            encode_into(&Value::Bytes(b"announce-list"), &mut out);
            encode_into(&Value::List(tiers), &mut out);
        }
        out.extend_from_slice(b"4:info");
        out.extend_from_slice(&self.info_bytes);
        out.push(b'e');
        out
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> usize {
        self.piece_hashes.len()
    }

    /// Length of piece `index` (the last one may be shorter); 0 for an index
    /// past the end.
    pub fn piece_len(&self, index: u32) -> u32 {
        let count = self.piece_hashes.len() as u64;
        let index = u64::from(index);
        if index >= count {
            return 0;
        }
        let start = index * u64::from(self.piece_length);
        let len = self.total_length.saturating_sub(start);
        // At most piece_length, so it fits.
        len.min(u64::from(self.piece_length)) as u32
    }
}

/// The byte string under `preferred` (a `.utf-8` key) or else under `fallback`.
fn utf8_variant<'a>(dict: &Node<'a>, preferred: &[u8], fallback: &[u8]) -> Option<&'a [u8]> {
    dict.get(preferred)
        .and_then(|n| n.value.as_bytes())
        .or_else(|| dict.get(fallback).and_then(|n| n.value.as_bytes()))
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The top-level dictionary of a .torrent; trailing bytes after it are
/// ignored.
fn decode_root(bytes: &[u8]) -> Result<Node<'_>, MetaInfoError> {
    let (root, used) = bencode::decode_prefix(bytes)?;
    if root.value.as_dict().is_none() {
        return Err(invalid("top level is not a dictionary"));
    }
    if used < bytes.len() {
        log::debug!(
            "ignoring {} trailing bytes after the torrent dictionary",
            bytes.len() - used
        );
    }
    Ok(root)
}

/// `piece length`: an integer in `1..=u32::MAX`.
fn piece_length(info: &Node<'_>) -> Result<u32, MetaInfoError> {
    let piece_length = info
        .get(b"piece length")
        .and_then(|n| n.value.as_int())
        .ok_or_else(|| invalid("missing 'piece length'"))?;
    u32::try_from(piece_length)
        .ok()
        .filter(|&len| len > 0)
        .ok_or_else(|| invalid(format!("invalid 'piece length' {piece_length}")))
}

/// The `pieces` string: a non-zero multiple of 20 bytes.
fn pieces<'a>(info: &Node<'a>) -> Result<&'a [u8], MetaInfoError> {
    let pieces = info
        .get(b"pieces")
        .and_then(|n| n.value.as_bytes())
        .ok_or_else(|| invalid("missing 'pieces'"))?;
    if pieces.is_empty() || pieces.len() % 20 != 0 {
        return Err(invalid(format!(
            "'pieces' is {} bytes, not a non-zero multiple of 20",
            pieces.len()
        )));
    }
    Ok(pieces)
}

/// The sanitized `name` (its `.utf-8` variant preferred), or the info-hash
/// in hex when it is empty, `.` or `..`.
fn torrent_name(info: &Node<'_>, info_hash: &InfoHash) -> Result<String, MetaInfoError> {
    let raw_name =
        utf8_variant(info, b"name.utf-8", b"name").ok_or_else(|| invalid("missing 'name'"))?;
    Ok(sanitize_component(raw_name)
        .filter(|_| !raw_name.is_empty())
        .unwrap_or_else(|| info_hash.to_hex()))
}

/// The end of the last file: positive and without overflow.
fn total_length(files: &[FileEntry]) -> Result<u64, MetaInfoError> {
    let total_length = files
        .last()
        .and_then(|last| last.offset.checked_add(last.length))
        .ok_or_else(|| invalid("total length overflows"))?;
    if total_length == 0 {
        return Err(invalid("total length is zero"));
    }
    Ok(total_length)
}

/// One hash per piece: `pieces` must hold exactly `ceil(total / piece
/// length)` of them, and that at most [`MAX_PIECES`].
fn piece_hashes(
    pieces: &[u8],
    total_length: u64,
    piece_length: u32,
) -> Result<Vec<[u8; 20]>, MetaInfoError> {
    let expected = total_length.div_ceil(u64::from(piece_length));
    if expected > MAX_PIECES {
        return Err(MetaInfoError::TooManyPieces {
            count: expected,
            max: MAX_PIECES,
        });
    }
    let actual = (pieces.len() / 20) as u64;
    if actual != expected {
        return Err(MetaInfoError::PieceCountMismatch { expected, actual });
    }
    Ok(pieces
        .chunks_exact(20)
        .map(|chunk| {
            let mut hash = [0u8; 20];
            hash.copy_from_slice(chunk);
            hash
        })
        .collect())
}

/// Metainfo built in unit tests, without a .torrent file.
#[cfg(test)]
impl MetaInfo {
    /// A multi-file torrent `name` whose files (path under `name`, length,
    /// pad) lie end to end; zero piece hashes, info-hash `[7; 20]`.
    pub(crate) fn for_test(name: &str, piece_length: u32, files: &[(&str, u64, bool)]) -> Self {
        let mut offset = 0;
        let files: Vec<FileEntry> = files
            .iter()
            .map(|&(path, length, pad)| {
                let entry = FileEntry {
                    path: std::path::Path::new(name).join(path),
                    length,
                    offset,
                    pad,
                };
                offset += length;
                entry
            })
            .collect();
        let pieces = offset.div_ceil(u64::from(piece_length)) as usize;
        MetaInfo {
            info_hash: InfoHash([7; 20]),
            name: name.into(),
            piece_length,
            piece_hashes: vec![[0; 20]; pieces],
            files,
            total_length: offset,
            trackers: Vec::new(),
            private: false,
            multi_file: true,
            comment: None,
            created_by: None,
            creation_date: None,
            url_list: Vec::new(),
            info_bytes: Bytes::new(),
        }
    }
}

#[cfg(test)]
mod tests;
