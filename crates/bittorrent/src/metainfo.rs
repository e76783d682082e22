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
//!   string or a list; it is trimmed and de-duplicated but otherwise kept as is.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::bencode::{self, Node, Value};
use crate::types::InfoHash;

/// The largest number of pieces a torrent may have (4 Mi pieces: 80 MiB of
/// hashes and a 512 KiB bitfield).
pub const MAX_PIECES: u64 = 1 << 22;

/// How many duplicate file paths are renamed before the torrent is rejected.
pub const MAX_DUPLICATE_FILES: usize = 100;

/// File names starting with this are pad files even without a BEP 47 `attr`.
const OLD_PAD_FILE_PREFIX: &str = "_____padding_file_";

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
        let info = root
            .get(b"info")
            .filter(|info| info.value.as_dict().is_some())
            .ok_or_else(|| invalid("missing 'info' dictionary"))?;
        let info_hash = InfoHash(Sha1::digest(info.raw).into());

        let piece_length = info
            .get(b"piece length")
            .and_then(|n| n.value.as_int())
            .ok_or_else(|| invalid("missing 'piece length'"))?;
        let piece_length = u32::try_from(piece_length)
            .ok()
            .filter(|&len| len > 0)
            .ok_or_else(|| invalid(format!("invalid 'piece length' {piece_length}")))?;

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

        let raw_name =
            utf8_variant(info, b"name.utf-8", b"name").ok_or_else(|| invalid("missing 'name'"))?;
        let name = sanitize_component(raw_name)
            .filter(|_| !raw_name.is_empty())
            .unwrap_or_else(|| info_hash.to_hex());

        let multi_file = info.get(b"files").is_some();
        let files = if multi_file {
            multi_files(info, &name)?
        } else {
            let length = info
                .get(b"length")
                .ok_or_else(|| invalid("missing 'length' and 'files'"))?;
            vec![FileEntry {
                path: PathBuf::from(&name),
                length: file_length(length)?,
                offset: 0,
                pad: false,
            }]
        };
        let total_length = files
            .last()
            .and_then(|last| last.offset.checked_add(last.length))
            .ok_or_else(|| invalid("total length overflows"))?;
        if total_length == 0 {
            return Err(invalid("total length is zero"));
        }

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
        let piece_hashes = pieces
            .chunks_exact(20)
            .map(|chunk| {
                let mut hash = [0u8; 20];
                hash.copy_from_slice(chunk);
                hash
            })
            .collect();

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

/// A file length: a non-negative integer.
fn file_length(node: &Node<'_>) -> Result<u64, MetaInfoError> {
    node.value
        .as_int()
        .and_then(|len| u64::try_from(len).ok())
        .ok_or_else(|| invalid("file 'length' is not a non-negative integer"))
}

/// Sanitizes one name or path component: `None` when it must be dropped
/// (`.` or `..`), `_` when it is empty.
fn sanitize_component(raw: &[u8]) -> Option<String> {
    let cleaned: String = String::from_utf8_lossy(raw)
        .chars()
        .filter(|&c| c != '/' && c != '\\')
        .map(|c| if c == '\0' { '_' } else { c })
        .collect();
    match cleaned.as_str() {
        "." | ".." => None,
        "" => Some("_".to_owned()),
        _ => Some(cleaned),
    }
}

/// The path components of a file dictionary, preferring `path.utf-8` when it
/// is a valid path list.
fn path_elements<'a>(file: &Node<'a>) -> Result<Option<Vec<&'a [u8]>>, MetaInfoError> {
    let as_path = |key: &[u8]| -> Option<Result<Vec<&'a [u8]>, MetaInfoError>> {
        let node = file.get(key)?;
        Some(
            node.value
                .as_list()
                .and_then(|list| list.iter().map(|n| n.value.as_bytes()).collect())
                .ok_or_else(|| invalid("file 'path' is not a list of strings")),
        )
    };
    match as_path(b"path.utf-8") {
        Some(Ok(path)) => Ok(Some(path)),
        _ => as_path(b"path").transpose(),
    }
}

/// The files of a multi-file info dictionary, with offsets and deduplicated
/// sanitized paths under `name`.
fn multi_files(info: &Node<'_>, name: &str) -> Result<Vec<FileEntry>, MetaInfoError> {
    let list = info
        .get(b"files")
        .and_then(|n| n.value.as_list())
        .ok_or_else(|| invalid("'files' is not a list"))?;
    if list.is_empty() {
        return Err(invalid("no files"));
    }
    let mut tree = PathTree::default();
    let mut files = Vec::new();
    let mut offset: u64 = 0;
    for file in list {
        if file.value.as_dict().is_none() {
            return Err(invalid("a 'files' entry is not a dictionary"));
        }
        let length = file_length(
            file.get(b"length")
                .ok_or_else(|| invalid("file without 'length'"))?,
        )?;
        let attr = file
            .get(b"attr")
            .and_then(|n| n.value.as_bytes())
            .unwrap_or_default();
        let pad = attr.contains(&b'p');
        if let Some(target) = file.get(b"symlink path") {
            // We do not create symlinks, but a malformed target is a broken torrent.
            let valid = target
                .value
                .as_list()
                .is_some_and(|l| l.iter().all(|n| n.value.as_bytes().is_some()));
            if !valid {
                return Err(invalid("'symlink path' is not a list of strings"));
            }
        }
        let mut components = vec![name.to_owned()];
        match path_elements(file)? {
            Some(elements) if !elements.is_empty() || !pad => {
                if elements.is_empty() {
                    return Err(invalid("file with an empty 'path'"));
                }
                components.extend(elements.into_iter().filter_map(sanitize_component));
                if components.len() == 1 {
                    components.push("_".to_owned());
                }
            }
            Some(_) => components.extend([".pad".to_owned(), length.to_string()]),
            None if pad => components.extend([".pad".to_owned(), length.to_string()]),
            None => return Err(invalid("file without 'path'")),
        }
        // BitComet's pad files predate BEP 47 and are recognised by name.
        let pad = pad
            || components
                .last()
                .is_some_and(|c| c.starts_with(OLD_PAD_FILE_PREFIX));
        if !pad {
            tree.insert(&mut components)?;
        }
        files.push(FileEntry {
            path: components.iter().collect(),
            length,
            offset,
            pad,
        });
        offset = offset
            .checked_add(length)
            .ok_or_else(|| invalid("total length overflows"))?;
    }
    Ok(files)
}

/// The directory tree of the files seen so far, to find duplicate paths with
/// memory linear in the input.
#[derive(Default)]
struct PathTree {
    /// Node 0 is the root directory (created on first insert).
    nodes: Vec<TreeNode>,
    renamed: usize,
}

#[derive(Default)]
struct TreeNode {
    children: HashMap<String, usize>,
    is_file: bool,
}

impl PathTree {
    /// Records a file path, renaming its last component if the path is taken.
    fn insert(&mut self, components: &mut [String]) -> Result<(), MetaInfoError> {
        let Some((file_name, dirs)) = components.split_last_mut() else {
            return Err(invalid("empty file path"));
        };
        if self.nodes.is_empty() {
            self.nodes.push(TreeNode::default());
        }
        let mut dir = 0;
        for component in dirs.iter() {
            dir = match self.nodes[dir].children.get(component) {
                Some(&child) if self.nodes[child].is_file => {
                    return Err(invalid(format!(
                        "file path {component:?} is also used as a directory"
                    )))
                }
                Some(&child) => child,
                None => self.add(dir, component.clone(), false),
            };
        }
        if self.nodes[dir].children.contains_key(file_name.as_str()) {
            let mut n = 1;
            let renamed = loop {
                if n > MAX_DUPLICATE_FILES {
                    return Err(MetaInfoError::TooManyDuplicateFiles {
                        max: MAX_DUPLICATE_FILES,
                    });
                }
                let candidate = numbered(file_name, n);
                if !self.nodes[dir].children.contains_key(&candidate) {
                    break candidate;
                }
                n += 1;
            };
            self.renamed += 1;
            if self.renamed > MAX_DUPLICATE_FILES {
                return Err(MetaInfoError::TooManyDuplicateFiles {
                    max: MAX_DUPLICATE_FILES,
                });
            }
            *file_name = renamed;
        }
        self.add(dir, file_name.clone(), true);
        Ok(())
    }

    fn add(&mut self, parent: usize, name: String, is_file: bool) -> usize {
        let id = self.nodes.len();
        self.nodes.push(TreeNode {
            children: HashMap::new(),
            is_file,
        });
        self.nodes[parent].children.insert(name, id);
        id
    }
}

/// `bar.txt` → `bar.<n>.txt`; `foo` and `.hidden` → `foo.<n>`, `.hidden.<n>`.
fn numbered(file_name: &str, n: usize) -> String {
    match file_name.rfind('.') {
        Some(dot) if dot > 0 => format!("{}.{n}{}", &file_name[..dot], &file_name[dot..]),
        _ => format!("{file_name}.{n}"),
    }
}

/// Trims a URL; `None` if it is not UTF-8 or empty.
fn clean_url(bytes: &[u8]) -> Option<String> {
    let url = std::str::from_utf8(bytes).ok()?.trim();
    (!url.is_empty()).then(|| url.to_owned())
}

/// Tracker tiers: `announce-list` if it yields any URL, else `announce`.
fn trackers(root: &Node<'_>) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut tiers = Vec::new();
    let list = root.get(b"announce-list").and_then(|n| n.value.as_list());
    for tier in list.unwrap_or_default() {
        let mut urls = Vec::new();
        for url in tier.value.as_list().unwrap_or_default() {
            if let Some(url) = url.value.as_bytes().and_then(clean_url) {
                if seen.insert(url.clone()) {
                    urls.push(url);
                }
            }
        }
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    if tiers.is_empty() {
        if let Some(url) = root
            .get(b"announce")
            .and_then(|n| n.value.as_bytes())
            .and_then(clean_url)
        {
            tiers.push(vec![url]);
        }
    }
    tiers
}

/// BEP 19 web seeds: `url-list` as a string or a list of strings.
fn url_list(root: &Node<'_>) -> Vec<String> {
    let candidates: Vec<&[u8]> = match root.get(b"url-list").map(|n| &n.value) {
        Some(Value::Bytes(url)) => vec![url],
        Some(Value::List(list)) => list.iter().filter_map(|n| n.value.as_bytes()).collect(),
        _ => Vec::new(),
    };
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter_map(clean_url)
        .filter(|url| seen.insert(url.clone()))
        .collect()
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
mod tests {
    use super::*;

    /// A single-file torrent around `info` (a bencoded info dictionary body).
    fn torrent(extra_root: &str, info: &str) -> Vec<u8> {
        format!("d{extra_root}4:infod{info}ee").into_bytes()
    }

    fn hashes(n: usize) -> String {
        format!("6:pieces{}:{}", n * 20, "x".repeat(n * 20))
    }

    #[test]
    fn single_file_basics() {
        let bytes = torrent(
            "8:announce10:http://a/a7:comment2:hi10:created by2:me13:creation datei7e",
            &format!(
                "6:lengthi40000e4:name3:a.b12:piece lengthi16384e{}",
                hashes(3)
            ),
        );
        let m = MetaInfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.name, "a.b");
        assert!(!m.multi_file);
        assert_eq!(m.total_length, 40000);
        assert_eq!(m.piece_count(), 3);
        assert_eq!(m.piece_len(0), 16384);
        assert_eq!(m.piece_len(1), 16384);
        assert_eq!(m.piece_len(2), 40000 - 2 * 16384);
        assert_eq!(m.piece_len(3), 0);
        assert_eq!(m.trackers, vec![vec!["http://a/a".to_owned()]]);
        assert_eq!(m.comment.as_deref(), Some("hi"));
        assert_eq!(m.created_by.as_deref(), Some("me"));
        assert_eq!(m.creation_date, Some(7));
        assert_eq!(m.files.len(), 1);
        assert_eq!(m.files[0].path, PathBuf::from("a.b"));
        let info_start = bytes.windows(6).position(|w| w == b"4:info").unwrap() + 6;
        assert_eq!(&m.info_bytes[..], &bytes[info_start..bytes.len() - 1]);
        assert_eq!(
            m.info_hash.0,
            <[u8; 20]>::from(Sha1::digest(&bytes[info_start..bytes.len() - 1]))
        );
    }

    #[test]
    fn exact_multiple_has_full_last_piece() {
        let bytes = torrent(
            "",
            &format!(
                "6:lengthi32768e4:name1:a12:piece lengthi16384e{}",
                hashes(2)
            ),
        );
        let m = MetaInfo::from_bytes(&bytes).unwrap();
        assert_eq!(m.piece_len(1), 16384);
    }

    #[test]
    fn piece_count_must_match() {
        let info = |n| {
            format!(
                "6:lengthi40000e4:name1:a12:piece lengthi16384e{}",
                hashes(n)
            )
        };
        for n in [2, 4] {
            assert!(matches!(
                MetaInfo::from_bytes(&torrent("", &info(n))),
                Err(MetaInfoError::PieceCountMismatch { expected: 3, .. })
            ));
        }
    }

    #[test]
    fn piece_length_limits() {
        for len in ["0", "-1", "4294967296"] {
            let info = format!("6:lengthi1e4:name1:a12:piece lengthi{len}e{}", hashes(1));
            assert!(matches!(
                MetaInfo::from_bytes(&torrent("", &info)),
                Err(MetaInfoError::Invalid(_))
            ));
        }
        let info = format!(
            "6:lengthi1e4:name1:a12:piece lengthi4294967295e{}",
            hashes(1)
        );
        MetaInfo::from_bytes(&torrent("", &info)).unwrap();
    }

    #[test]
    fn too_many_pieces() {
        let info = format!(
            "6:lengthi{}e4:name1:a12:piece lengthi1e{}",
            MAX_PIECES + 1,
            hashes(1)
        );
        assert!(matches!(
            MetaInfo::from_bytes(&torrent("", &info)),
            Err(MetaInfoError::TooManyPieces { .. })
        ));
    }

    #[test]
    fn sanitize_components() {
        assert_eq!(sanitize_component(b"."), None);
        assert_eq!(sanitize_component(b".."), None);
        assert_eq!(sanitize_component(b"/.."), None);
        assert_eq!(sanitize_component(b"").as_deref(), Some("_"));
        assert_eq!(sanitize_component(b"/").as_deref(), Some("_"));
        assert_eq!(sanitize_component(b"/foobar").as_deref(), Some("foobar"));
        assert_eq!(sanitize_component(b"a\\b/c").as_deref(), Some("abc"));
        assert_eq!(sanitize_component(b"a\0b").as_deref(), Some("a_b"));
        assert_eq!(sanitize_component(b"...").as_deref(), Some("..."));
        assert_eq!(sanitize_component(b"x\xff").as_deref(), Some("x\u{fffd}"));
    }

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("bar.txt", 1), "bar.1.txt");
        assert_eq!(numbered("a.tar.gz", 2), "a.tar.2.gz");
        assert_eq!(numbered("foo", 3), "foo.3");
        assert_eq!(numbered(".hidden", 1), ".hidden.1");
    }

    fn multi(files: &str) -> Result<MetaInfo, MetaInfoError> {
        let info = format!(
            "5:filesl{files}e4:name1:t12:piece lengthi16384e{}",
            hashes(1)
        );
        MetaInfo::from_bytes(&torrent("", &info))
    }

    fn paths(m: &MetaInfo) -> Vec<String> {
        m.files
            .iter()
            .map(|f| f.path.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn duplicates_are_renamed() {
        let m = multi(
            "d6:lengthi1e4:pathl1:a5:b.txteed6:lengthi1e4:pathl1:a5:b.txtee\
             d6:lengthi1e4:pathl1:a7:b.1.txteed6:lengthi1e4:pathl1:aee",
        )
        .unwrap();
        assert_eq!(
            paths(&m),
            ["t/a/b.txt", "t/a/b.1.txt", "t/a/b.1.1.txt", "t/a.1"]
        );
        assert_eq!(
            m.files.iter().map(|f| f.offset).collect::<Vec<_>>(),
            [0, 1, 2, 3]
        );
    }

    #[test]
    fn file_used_as_directory_is_rejected() {
        let err = multi("d6:lengthi1e4:pathl1:aeed6:lengthi1e4:pathl1:a1:bee").unwrap_err();
        assert!(matches!(err, MetaInfoError::Invalid(_)));
    }

    #[test]
    fn too_many_duplicates() {
        let file = "d6:lengthi1e4:pathl1:aee";
        multi(&file.repeat(MAX_DUPLICATE_FILES + 1)).unwrap();
        assert!(matches!(
            multi(&file.repeat(MAX_DUPLICATE_FILES + 2)),
            Err(MetaInfoError::TooManyDuplicateFiles { .. })
        ));
    }

    #[test]
    fn utf8_variants_and_dropped_paths() {
        let m = multi(
            "d6:lengthi1e4:pathl1:x1:ye10:path.utf-8l2:πee\
             d6:lengthi1e4:pathl1:.2:..ee",
        )
        .unwrap();
        assert_eq!(paths(&m), ["t/\u{3c0}", "t/_"]);
    }

    #[test]
    fn pad_files() {
        let m =
            multi("d6:lengthi1e4:pathl1:aeed4:attr1:p6:lengthi5eed4:attr1:p6:lengthi5e4:pathlee")
                .unwrap();
        assert_eq!(paths(&m), ["t/a", "t/.pad/5", "t/.pad/5"]);
        assert!(m.files[1].pad && m.files[2].pad);
        assert_eq!(m.total_length, 11);
        let m =
            multi("d6:lengthi1e4:pathl1:aeed6:lengthi2e4:pathl19:_____padding_file_0ee").unwrap();
        assert!(!m.files[0].pad && m.files[1].pad);
    }

    #[test]
    fn trackers_and_web_seeds() {
        let root = "8:announce3:x:113:announce-listll4:x:2 3:x:3el3:x:2el0:el3:x:4ee\
                    8:url-listl3:w:13:w:1i5e0:4: w:2e";
        let info = format!("6:lengthi1e4:name1:a12:piece lengthi1e{}", hashes(1));
        let m = MetaInfo::from_bytes(&torrent(root, &info)).unwrap();
        assert_eq!(
            m.trackers,
            vec![
                vec!["x:2".to_owned(), "x:3".to_owned()],
                vec!["x:4".to_owned()]
            ]
        );
        assert_eq!(m.url_list, ["w:1", "w:2"]);
    }

    #[test]
    fn private_flag() {
        for (value, private) in [("i1e", true), ("i0e", false), ("i2e", false)] {
            let info = format!(
                "6:lengthi1e4:name1:a12:piece lengthi1e{}7:private{value}",
                hashes(1)
            );
            assert_eq!(
                MetaInfo::from_bytes(&torrent("", &info)).unwrap().private,
                private
            );
        }
    }

    #[test]
    fn load_reports_io_errors() {
        assert!(matches!(
            MetaInfo::load("/nonexistent/x.torrent"),
            Err(MetaInfoError::Io { .. })
        ));
    }

    #[test]
    fn to_torrent_bytes_round_trips_with_the_same_info_hash() {
        for name in [
            "alice.torrent",
            "lots-of-numbers.torrent",
            "sintel-webtorrent.torrent",
        ] {
            let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../torrents/").to_owned() + name;
            let meta = MetaInfo::load(&path).unwrap();
            let again = MetaInfo::from_bytes(&meta.to_torrent_bytes()).unwrap();
            assert_eq!(again.info_hash, meta.info_hash, "{name}");
            assert_eq!(again.trackers, meta.trackers, "{name}");
            assert_eq!(again.files, meta.files, "{name}");
        }
    }
}
