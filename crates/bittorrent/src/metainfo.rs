//! Parsing and validating .torrent files (BEP 3 metainfo, BEP 12 announce-list).

use std::path::{Path, PathBuf};

use bytes::Bytes;

use crate::types::InfoHash;

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
}

impl MetaInfo {
    /// Reads and parses a .torrent file.
    ///
    /// # Errors
    /// IO errors and every parse/validation error of [`MetaInfo::from_bytes`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, MetaInfoError> {
        let _ = path;
        todo!()
    }

    /// Parses a .torrent from its bytes.
    ///
    /// # Errors
    /// Invalid bencoding or a missing/invalid required key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MetaInfoError> {
        let _ = bytes;
        todo!()
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> usize {
        self.piece_hashes.len()
    }

    /// Length of piece `index` (the last one may be shorter).
    pub fn piece_len(&self, index: u32) -> u32 {
        let _ = index;
        todo!()
    }
}
