//! Making .torrent files from a file or a folder.
//!
//! [`TorrentBuilder`] lists the content, hashes it on every core and writes
//! the metainfo:
//! - **Layout.** A file gives a single-file torrent (`length`); a folder gives
//!   a multi-file one (`files`), even when it holds one file. Files are sorted
//!   by their path inside the torrent as bytes, elements joined by `/` (the
//!   order of mktorrent, which compares those strings with `strcmp`). Empty
//!   files are listed, empty folders are not. Hidden entries (a name starting
//!   with `.`) are included unless [`TorrentBuilder::include_hidden`] is off.
//! - **Refusals.** Symbolic links (anywhere, the path given included) and
//!   special files (devices, sockets, FIFOs) are errors, not skipped; so is
//!   content with no byte in it.
//! - **Canonical.** The `info` dictionary holds exactly the keys mktorrent 1.1
//!   writes for the same options (see the `encode` module: `private` only when
//!   set, `source` only when given), so the same content with the same piece
//!   length has mktorrent's info-hash.
//! - **Piece length.** Given ([`TorrentBuilder::piece_length`]: a power of two
//!   from 16 KiB to 256 MiB) or chosen by [`auto_piece_length`]: the smallest
//!   power of two giving at most 2,000 pieces, within 16 KiB..=16 MiB.
//! - **Hashing.** One thread per core and one more ([`TorrentBuilder::threads`]) take a
//!   shared sequential reader in turn: each reads the next piece (each byte
//!   is read once, in file order), then hashes it while another thread reads.
//!   Memory: one piece per thread.
//! - **Reproducible.** Nothing depends on the clock unless a
//!   [`creation_date`](TorrentBuilder::creation_date) is given.
//!
//! ```no_run
//! use bittorrent::create::TorrentBuilder;
//! let created = TorrentBuilder::new("my-folder")
//!     .tracker_tier(["http://tracker.example/announce"])
//!     .web_seed("https://mirror.example/pub/")
//!     .build()
//!     .unwrap();
//! std::fs::write("my-folder.torrent", &created.bytes).unwrap();
//! println!("{}", created.magnet());
//! ```

mod encode;
mod error;
mod hash;
mod piece;
mod scan;

use std::path::{Path, PathBuf};

use sha1::{Digest, Sha1};

pub use self::error::CreateError;
pub use self::piece::{
    auto_piece_length, MAX_AUTO_PIECE_LENGTH, MAX_PIECE_LENGTH, MIN_PIECE_LENGTH, TARGET_PIECES,
};
use crate::create::encode::Extras;
use crate::magnet::Magnet;
use crate::types::InfoHash;

/// The `created by` written unless [`TorrentBuilder::created_by`] says otherwise.
pub const CREATED_BY: &str = concat!("bittorrent ", env!("CARGO_PKG_VERSION"));

/// How far hashing has come, for a progress display.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress {
    /// Bytes hashed so far.
    pub hashed: u64,
    /// Bytes in all.
    pub total: u64,
}

/// A torrent made by [`TorrentBuilder::build`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CreatedTorrent {
    /// The .torrent file's bytes.
    pub bytes: Vec<u8>,
    /// The SHA-1 of its `info` dictionary.
    pub info_hash: InfoHash,
    /// The torrent's name (the last element of the path, lossily UTF-8).
    pub name: String,
    /// The piece length used.
    pub piece_length: u32,
    /// The number of pieces.
    pub piece_count: u32,
    /// The number of files.
    pub file_count: usize,
    /// The content's length in bytes.
    pub total_length: u64,
    /// Every tracker URL, tiers in order, for [`CreatedTorrent::magnet`].
    trackers: Vec<String>,
}

impl CreatedTorrent {
    /// A magnet link for the torrent: its info-hash, name and trackers.
    pub fn magnet(&self) -> String {
        Magnet {
            info_hash: self.info_hash,
            name: Some(self.name.clone()),
            trackers: self.trackers.clone(),
            peers: Vec::new(),
        }
        .to_uri()
    }
}

/// Makes a .torrent from a file or a folder (see the [module docs](self)).
#[derive(Clone, Debug)]
pub struct TorrentBuilder {
    path: PathBuf,
    piece_length: Option<u64>,
    include_hidden: bool,
    threads: usize,
    extras: Extras,
}

impl TorrentBuilder {
    /// A builder for the content at `path`: automatic piece length, no
    /// tracker, no web seed, not private, hidden files included, no creation
    /// date, `created by` [`CREATED_BY`], one hashing thread per core plus one.
    pub fn new(path: impl AsRef<Path>) -> Self {
        // One more than the cores: while one thread waits for the disk under
        // the reader's lock, every core still has a piece to hash.
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()) + 1;
        Self {
            path: path.as_ref().to_owned(),
            piece_length: None,
            include_hidden: true,
            threads,
            extras: Extras {
                created_by: Some(CREATED_BY.to_owned()),
                ..Extras::default()
            },
        }
    }

    /// Pieces of `length` bytes, a power of two from [`MIN_PIECE_LENGTH`] to
    /// [`MAX_PIECE_LENGTH`] (checked by [`build`](Self::build)); `None`
    /// chooses by [`auto_piece_length`].
    pub fn piece_length(mut self, length: Option<u64>) -> Self {
        self.piece_length = length;
        self
    }

    /// Adds a tier of trackers (BEP 12): the first URL of the first tier is
    /// `announce`; `announce-list` is written when there is more than one URL.
    /// An empty tier is ignored.
    pub fn tracker_tier<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        let tier: Vec<String> = urls.into_iter().map(Into::into).collect();
        if !tier.is_empty() {
            self.extras.trackers.push(tier);
        }
        self
    }

    /// Adds a web seed (BEP 19 `url-list`).
    pub fn web_seed(mut self, url: impl Into<String>) -> Self {
        self.extras.web_seeds.push(url.into());
        self
    }

    /// Sets the `private` flag (BEP 27): peers from trackers only.
    pub fn private(mut self, private: bool) -> Self {
        self.extras.private = private;
        self
    }

    /// Adds `source` to the info dictionary (mktorrent's `-s`): the same
    /// content with another source has another info-hash.
    pub fn source(mut self, source: Option<String>) -> Self {
        self.extras.source = source;
        self
    }

    /// The `comment`.
    pub fn comment(mut self, comment: Option<String>) -> Self {
        self.extras.comment = comment;
        self
    }

    /// The `created by` (`None`: not written).
    pub fn created_by(mut self, created_by: Option<String>) -> Self {
        self.extras.created_by = created_by;
        self
    }

    /// The `creation date`, seconds since the Unix epoch (`None`, the
    /// default: not written, so the output depends on the content and
    /// options alone).
    pub fn creation_date(mut self, seconds: Option<i64>) -> Self {
        self.extras.creation_date = seconds;
        self
    }

    /// Whether entries whose name starts with `.` inside the folder are
    /// included (the default) or skipped.
    pub fn include_hidden(mut self, include: bool) -> Self {
        self.include_hidden = include;
        self
    }

    /// The number of hashing threads, which also take turns reading (at
    /// least one; default: the number of cores plus one, so that a thread
    /// waiting for the disk leaves no core idle).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Lists and hashes the content and returns the .torrent. Blocks until
    /// every byte is hashed.
    ///
    /// # Errors
    /// See [`CreateError`]: a path that is missing, a symbolic link or a
    /// special file, no data, a bad piece length, a read error.
    pub fn build(&self) -> Result<CreatedTorrent, CreateError> {
        self.build_with_progress(|_| {})
    }

    /// [`build`](Self::build), calling `progress` after each piece is hashed.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_progress(
        &self,
        mut progress: impl FnMut(Progress),
    ) -> Result<CreatedTorrent, CreateError> {
        let content = scan::scan(&self.path, self.include_hidden)?;
        let total = content.total_length();
        let piece_length = match self.piece_length {
            Some(length) => piece::check_piece_length(length)?,
            None => auto_piece_length(total),
        };
        let piece_count = piece::piece_count(total, piece_length)?;
        log::debug!(
            "hashing {} files, {total} bytes, {piece_count} pieces of {piece_length}",
            content.files.len()
        );
        let digests = hash::hash_pieces(
            &content.files,
            piece_length,
            piece_count as usize,
            self.threads,
            &mut |hashed| progress(Progress { hashed, total }),
        )?;
        let info = encode::info_dict(&content, piece_length, &digests.concat(), &self.extras);
        let info_hash = InfoHash(Sha1::digest(&info).into());
        Ok(CreatedTorrent {
            bytes: encode::torrent(&info, &self.extras),
            info_hash,
            name: content.name.to_string_lossy().into_owned(),
            piece_length,
            piece_count,
            file_count: content.files.len(),
            total_length: total,
            trackers: self.extras.trackers.iter().flatten().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests;
