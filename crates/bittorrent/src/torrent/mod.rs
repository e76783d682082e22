//! The torrent actor: one per torrent. A thin async shell (`actor/`) waits
//! on its inputs and carries out what a synchronous core (`core/`) decides:
//! the piece picker, the peer connections, verification, streaming readers.
//! A magnet link's torrent first fetches its metadata (`metadata.rs`), as a
//! phase of the same actor.

mod actor;
mod check;
mod command;
mod core;
mod error;
mod handle;
mod metadata;
mod rate;
mod reader;
mod stats;
pub(crate) mod status;

pub use error::TorrentError;
pub use handle::{StreamParts, TorrentHandle};
pub use rate::RateMeter;
pub use reader::FileReader;
pub use stats::{PieceState, TorrentState, TorrentStats, Totals, WebSeedState, WebSeedStatus};

pub use crate::picker::{PickMode, Priority};
pub use crate::tracker::{TrackerState, TrackerStatus};

use std::net::SocketAddr;
use std::sync::Arc;

use crate::limits::{RateLimits, TorrentShareLimits};
use crate::magnet::Magnet;
use crate::metainfo::{check_web_seed_url, MetaInfo, WebSeedUrlError};
use crate::store::{Store, StoreError};
pub(crate) use crate::torrent::command::TorrentCommand;
use crate::types::InfoHash;

/// A torrent to add to a session: its metainfo (or a magnet link), where its
/// data goes, and per-torrent options.
pub struct Torrent {
    pub(crate) source: Source,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) use_trackers: bool,
    pub(crate) file_priorities: Option<FilePriorities>,
    pub(crate) mode: PickMode,
    /// Web seeds beside the metainfo's `url-list` (checked, trimmed).
    pub(crate) web_seeds: Vec<String>,
    /// Starts paused (no connections, no announces) until resumed.
    pub(crate) paused: bool,
    /// Runs even when the session's queue would hold it back.
    pub(crate) force_start: bool,
    /// The torrent's own rate limits (under the session's).
    pub(crate) rate_limits: RateLimits,
    /// When it stops seeding.
    pub(crate) share_limits: TorrentShareLimits,
    /// What it transferred before this session (a restart's carry-over).
    pub(crate) totals: Totals,
}

/// Decides each file's priority once the metainfo is known.
pub(crate) type FilePriorities = Box<dyn FnOnce(&MetaInfo) -> Vec<Priority> + Send>;

/// Makes the store of a magnet's torrent once its metadata is known.
pub type StoreFactory = Box<dyn FnOnce(&MetaInfo) -> Result<Arc<dyn Store>, StoreError> + Send>;

/// Where a torrent's metainfo comes from.
pub(crate) enum Source {
    /// A .torrent file, and the store for its data.
    Meta {
        meta: MetaInfo,
        store: Arc<dyn Store>,
    },
    /// A magnet link: the metainfo is fetched from peers (BEP 9), then the
    /// store is made.
    Magnet {
        magnet: Magnet,
        make_store: StoreFactory,
    },
}

impl std::fmt::Debug for Torrent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Torrent")
            .field("info_hash", &self.info_hash())
            .field("name", &self.name())
            .field("peers", &self.peers)
            .field("use_trackers", &self.use_trackers)
            .field("mode", &self.mode)
            .field("web_seeds", &self.web_seeds)
            .finish_non_exhaustive()
    }
}

impl Torrent {
    /// A torrent described by `meta_info`, stored in `store`.
    pub fn new(meta_info: MetaInfo, store: impl Store) -> Self {
        let store: Arc<dyn Store> = Arc::new(store);
        Self::with_source(
            Source::Meta {
                meta: meta_info,
                store,
            },
            Vec::new(),
        )
    }

    /// A torrent known only by a magnet link. Its info dictionary is fetched
    /// from peers (the magnet's `x.pe` peers, its trackers, peers added with
    /// [`with_peers`](Self::with_peers), the DHT when the session runs one),
    /// verified against the info-hash, and then `make_store` creates the store;
    /// from there on it is like a torrent from a file.
    ///
    /// ```no_run
    /// # use bittorrent::prelude::*;
    /// # use bittorrent::magnet::Magnet;
    /// # fn f(magnet: Magnet) -> Torrent {
    /// Torrent::from_magnet(magnet, |meta| FileStore::from_meta_info("downloads", meta))
    /// # }
    /// ```
    pub fn from_magnet<S, F>(magnet: Magnet, make_store: F) -> Self
    where
        S: Store,
        F: FnOnce(&MetaInfo) -> Result<S, StoreError> + Send + 'static,
    {
        let peers = magnet.peers.clone();
        let make_store: StoreFactory =
            Box::new(move |meta| make_store(meta).map(|s| Arc::new(s) as Arc<dyn Store>));
        Self::with_source(Source::Magnet { magnet, make_store }, peers)
    }

    /// A torrent from `source` with the default options.
    fn with_source(source: Source, peers: Vec<SocketAddr>) -> Self {
        Self {
            source,
            peers,
            use_trackers: true,
            file_priorities: None,
            mode: PickMode::default(),
            web_seeds: Vec::new(),
            paused: false,
            force_start: false,
            rate_limits: RateLimits::default(),
            share_limits: TorrentShareLimits::default(),
            totals: Totals::default(),
        }
    }

    /// Peers to connect to directly, beside whatever the trackers return.
    pub fn with_peers(mut self, peers: impl IntoIterator<Item = SocketAddr>) -> Self {
        self.peers.extend(peers);
        self
    }

    /// Whether to announce to the metainfo's trackers (default true; the
    /// session's `use_trackers` must allow it too).
    pub fn with_trackers(mut self, use_trackers: bool) -> Self {
        self.use_trackers = use_trackers;
        self
    }

    /// Each file's priority, decided by `priorities` once the metainfo is
    /// known (at once for a .torrent file, when the metadata arrives for a
    /// magnet link). It returns one [`Priority`] per file of
    /// [`MetaInfo::files`], in order; files past the end of the list are
    /// `Normal`. [`Priority::Skip`] files are not downloaded and not created
    /// (see [`Store::set_wanted_files`]); the torrent is complete once every
    /// other file is. Change them later with
    /// [`TorrentHandle::set_file_priorities`].
    ///
    /// ```no_run
    /// # use bittorrent::prelude::*;
    /// # fn f(meta: MetaInfo, store: FileStore) -> Torrent {
    /// // Only the files whose name ends in .mkv.
    /// Torrent::new(meta, store).with_file_priorities(|meta| {
    ///     meta.files
    ///         .iter()
    ///         .map(|f| match f.path.extension() {
    ///             Some(ext) if ext == "mkv" => Priority::Normal,
    ///             _ => Priority::Skip,
    ///         })
    ///         .collect()
    /// })
    /// # }
    /// ```
    pub fn with_file_priorities<F>(mut self, priorities: F) -> Self
    where
        F: FnOnce(&MetaInfo) -> Vec<Priority> + Send + 'static,
    {
        self.file_priorities = Some(Box::new(priorities));
        self
    }

    /// Web seeds (BEP 19): HTTP(S) servers that hold the torrent's files,
    /// used beside the metainfo's `url-list` and the peers (the same URL
    /// twice is used once). A URL ending in `/` is the directory that holds
    /// the torrent's file (or its folder); otherwise, for a single-file
    /// torrent, the file itself. The session's
    /// [`web_seeds`](crate::session::SessionConfig::web_seeds) setting turns every web seed
    /// off. For a magnet link these are its only web seeds.
    ///
    /// ```no_run
    /// # use bittorrent::prelude::*;
    /// # fn f(meta: MetaInfo, store: FileStore) -> Result<Torrent, Box<dyn std::error::Error>> {
    /// let torrent = Torrent::new(meta, store).with_web_seeds(["https://mirror.example/iso/"])?;
    /// # Ok(torrent)
    /// # }
    /// ```
    ///
    /// # Errors
    /// [`WebSeedUrlError`] for a URL that is not an absolute `http` or
    /// `https` URL; the torrent is not returned then.
    pub fn with_web_seeds<I, S>(mut self, urls: I) -> Result<Self, WebSeedUrlError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        for url in urls {
            check_web_seed_url(url.as_ref())?;
            self.web_seeds.push(url.as_ref().trim().to_owned());
        }
        Ok(self)
    }

    /// How pieces are chosen (default [`PickMode::RarestFirst`]); see
    /// [`TorrentHandle::set_mode`].
    pub fn with_mode(mut self, mode: PickMode) -> Self {
        self.mode = mode;
        self
    }

    /// Whether the torrent starts paused: added to the session (and its
    /// queue) and its data checked, but with no connections and no
    /// announces until [`TorrentHandle::resume`] (a magnet link does not
    /// fetch its metadata meanwhile). Default false.
    pub fn with_paused(mut self, paused: bool) -> Self {
        self.paused = paused;
        self
    }

    /// Whether the torrent runs regardless of the session's queue limits
    /// ([`QueueConfig`](crate::limits::QueueConfig)); see
    /// [`TorrentHandle::set_force_start`]. Default false.
    pub fn with_force_start(mut self, force: bool) -> Self {
        self.force_start = force;
        self
    }

    /// The torrent's own download and upload limits, applied under the
    /// session's; see [`TorrentHandle::set_rate_limits`]. Default unlimited.
    pub fn with_rate_limits(mut self, limits: RateLimits) -> Self {
        self.rate_limits = limits;
        self
    }

    /// When the torrent stops seeding (default: the session's
    /// [`ShareLimits`](crate::limits::ShareLimits)); see
    /// [`TorrentHandle::set_share_limits`].
    pub fn with_share_limits(mut self, limits: TorrentShareLimits) -> Self {
        self.share_limits = limits;
        self
    }

    /// What the torrent transferred and how long it seeded before this
    /// session, so that [`TorrentStats`]'s all-time totals, its ratio and
    /// the share limits carry over a restart. Default zero.
    pub fn with_totals(mut self, totals: Totals) -> Self {
        self.totals = totals;
        self
    }

    /// The torrent's info-hash.
    pub fn info_hash(&self) -> InfoHash {
        match &self.source {
            Source::Meta { meta, .. } => meta.info_hash,
            Source::Magnet { magnet, .. } => magnet.info_hash,
        }
    }

    /// The torrent's name (a magnet's `dn`, or its info-hash in hex until the
    /// metadata arrives).
    pub fn name(&self) -> String {
        match &self.source {
            Source::Meta { meta, .. } => meta.name.clone(),
            Source::Magnet { magnet, .. } => magnet
                .name
                .clone()
                .unwrap_or_else(|| magnet.info_hash.to_hex()),
        }
    }
}
