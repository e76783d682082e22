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
mod metadata;
mod rate;
mod reader;

pub use error::TorrentError;
pub use rate::RateMeter;
pub use reader::FileReader;

pub use crate::picker::{PickMode, Priority};
pub use crate::tracker::{TrackerState, TrackerStatus};

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::dht::DhtHandle;
use crate::event::Event;
use crate::magnet::Magnet;
use crate::metainfo::{check_web_seed_url, MetaInfo, WebSeedUrlError};
use crate::peer::connect::Connector;
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
        Self {
            source: Source::Meta {
                meta: meta_info,
                store: Arc::new(store),
            },
            peers: Vec::new(),
            use_trackers: true,
            file_priorities: None,
            mode: PickMode::default(),
            web_seeds: Vec::new(),
        }
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
        Self {
            source: Source::Magnet { magnet, make_store },
            peers,
            use_trackers: true,
            file_priorities: None,
            mode: PickMode::default(),
            web_seeds: Vec::new(),
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
    /// [`web_seeds`](SessionConfig::web_seeds) setting turns every web seed
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

/// Counters of one torrent, as of the moment they were taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TorrentStats {
    /// Number of pieces.
    pub pieces_total: usize,
    /// Verified pieces.
    pub pieces_have: usize,
    /// Total payload bytes.
    pub bytes_total: u64,
    /// Verified payload bytes.
    pub bytes_have: u64,
    /// Bytes of the pieces that hold wanted (not skipped) files: what a
    /// download of the selected files fetches in all.
    pub bytes_wanted: u64,
    /// Bytes of those pieces not verified yet (0 when `complete`).
    pub bytes_left: u64,
    /// Payload bytes received from peers and web seeds (including discarded
    /// duplicates).
    pub downloaded: u64,
    /// Payload bytes sent to peers.
    pub uploaded: u64,
    /// Bytes received but thrown away (duplicates, unrequested, failed pieces).
    pub wasted: u64,
    /// Download rate, bytes per second (over the last few seconds).
    pub download_rate: f64,
    /// Upload rate, bytes per second.
    pub upload_rate: f64,
    /// Connected peers (handshake done).
    pub peers: usize,
    /// Peer addresses known from every source (trackers, DHT, PEX, the user,
    /// inbound connections), connected or not, that are still worth dialling.
    pub known_peers: usize,
    /// Connected peers interested in our pieces.
    pub interested_peers: usize,
    /// Connected peers that dialled us.
    pub inbound_peers: usize,
    /// Connected peers we currently upload to (unchoked).
    pub unchoked_peers: usize,
    /// Every wanted piece is verified: every selected file is done.
    pub complete: bool,
    /// Where the torrent is in its life cycle.
    pub state: TorrentState,
    /// Each tracker's status, in tier order (empty when the torrent does not
    /// announce: no trackers, or trackers turned off).
    pub trackers: Vec<TrackerStatus>,
    /// Payload bytes received from web seeds (BEP 19); part of
    /// `downloaded`.
    pub web_seed_downloaded: u64,
    /// Web seeds fetching pieces right now.
    pub web_seeds_active: usize,
    /// Each web seed's status, in the torrent's order (empty without web
    /// seeds, or with web seeds turned off).
    pub web_seeds: Vec<WebSeedStatus>,
}

/// One web seed (BEP 19) of a torrent, as of [`TorrentStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSeedStatus {
    /// The URL, as the torrent lists it.
    pub url: String,
    /// What it is doing.
    pub state: WebSeedState,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Failed requests in a row (0 after a success).
    pub failures: u32,
    /// The last error, if any (kept after a later success).
    pub last_error: Option<String>,
}

/// What a web seed is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebSeedState {
    /// Waiting for pieces to fetch (none missing, or the torrent is not
    /// downloading).
    Idle,
    /// Fetching a run of pieces.
    Fetching,
    /// Waiting after a failure before it is asked again.
    BackingOff,
    /// Given up for good (a permanent error, too many failures in a row,
    /// or data that failed its hash check).
    Dropped,
}

/// Where a torrent is in its life cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TorrentState {
    /// Fetching the info dictionary of a magnet link from peers.
    FetchingMetadata,
    /// Hashing the data already on disk.
    #[default]
    Checking,
    /// Downloading (and uploading what it has).
    Downloading,
    /// Every piece verified, uploading.
    Seeding,
    /// Every selected file done (some files are skipped), uploading what
    /// it has.
    Finished,
    /// Paused: no connections, no announces.
    Paused,
}

/// A torrent's metainfo and store, from which [`FileReader`]s are opened
/// (see [`TorrentHandle::stream_parts`]).
#[derive(Clone)]
pub struct StreamParts {
    pub(crate) tx: Option<mpsc::Sender<TorrentCommand>>,
    pub(crate) meta: Arc<MetaInfo>,
    pub(crate) store: Arc<dyn Store>,
}

impl std::fmt::Debug for StreamParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamParts")
            .field("name", &self.meta.name)
            .finish_non_exhaustive()
    }
}

impl StreamParts {
    /// The torrent's metainfo (its files, in order).
    pub fn meta_info(&self) -> &Arc<MetaInfo> {
        &self.meta
    }

    /// Opens file `index` for streaming; `None` for an index out of range.
    pub fn open(&self, index: usize) -> Option<FileReader> {
        let tx = self.tx.clone()?;
        FileReader::new(tx, Arc::clone(&self.meta), Arc::clone(&self.store), index)
    }
}

/// A cloneable handle to a running torrent actor.
#[derive(Clone, Debug)]
pub struct TorrentHandle {
    info_hash: InfoHash,
    name: Arc<str>,
    tx: mpsc::Sender<TorrentCommand>,
}

impl TorrentHandle {
    /// Capacity of a torrent's command mailbox.
    const MAILBOX: usize = 64;

    /// Starts the actor for `torrent`; returns its handle and task.
    pub(crate) fn spawn(
        torrent: Torrent,
        config: Arc<SessionConfig>,
        dht: Option<DhtHandle>,
        connector: Connector,
        events: broadcast::Sender<Event>,
        cancel: CancellationToken,
    ) -> (Self, JoinHandle<()>) {
        let info_hash = torrent.info_hash();
        let name = Arc::from(torrent.name().as_str());
        let (tx, rx) = mpsc::channel(Self::MAILBOX);
        let task = tokio::spawn(actor::run(
            torrent, config, dht, connector, rx, events, cancel,
        ));
        (
            Self {
                info_hash,
                name,
                tx,
            },
            task,
        )
    }

    /// The torrent's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The torrent's info-hash.
    pub fn info_hash(&self) -> InfoHash {
        self.info_hash
    }

    /// Current statistics.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn stats(&self) -> Result<TorrentStats, TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(TorrentCommand::Stats { reply })
            .await
            .map_err(|_| TorrentError::Stopped)?;
        rx.await.map_err(|_| TorrentError::Stopped)
    }

    /// Pauses the torrent: every peer is disconnected and trackers are told
    /// `stopped`; downloaded data and state are kept.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn pause(&self) -> Result<(), TorrentError> {
        self.tx
            .send(TorrentCommand::Pause)
            .await
            .map_err(|_| TorrentError::Stopped)
    }

    /// Resumes a paused torrent.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn resume(&self) -> Result<(), TorrentError> {
        self.tx
            .send(TorrentCommand::Resume)
            .await
            .map_err(|_| TorrentError::Stopped)
    }

    /// Hands an inbound connection (handshake read) to the torrent; dropped
    /// if its mailbox is full.
    pub(crate) fn offer_inbound(&self, cmd: TorrentCommand) {
        if self.tx.try_send(cmd).is_err() {
            log::debug!(
                "[{}] busy; inbound connection dropped",
                self.info_hash.short()
            );
        }
    }

    /// Opens file `index` (in [`MetaInfo::files`] order) for streaming:
    /// an `AsyncRead + AsyncSeek` that serves verified bytes at once and
    /// otherwise makes the pieces it needs urgent and waits for them.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent has ended;
    /// [`TorrentError::MetadataPending`] while a magnet link's metadata is
    /// still being fetched; [`TorrentError::NoSuchFile`] for an index out of
    /// range.
    pub async fn open_file(&self, index: usize) -> Result<FileReader, TorrentError> {
        self.parts()
            .await?
            .open(index)
            .ok_or(TorrentError::NoSuchFile(index))
    }

    /// What opening readers needs, fetched once: then
    /// [`StreamParts::open`] opens files without waiting (e.g. from a
    /// synchronous callback). `None` while a magnet link's metadata is being
    /// fetched.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent has ended.
    pub async fn stream_parts(&self) -> Result<Option<StreamParts>, TorrentError> {
        match self.parts().await {
            Ok(parts) => Ok(Some(parts)),
            Err(TorrentError::MetadataPending) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn parts(&self) -> Result<StreamParts, TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(TorrentCommand::OpenParts { reply })
            .await
            .map_err(|_| TorrentError::Stopped)?;
        let parts = rx.await.map_err(|_| TorrentError::Stopped)??;
        Ok(StreamParts {
            tx: Some(self.tx.clone()),
            ..parts
        })
    }

    /// The torrent's metainfo, once known (`None` while a magnet link's
    /// metadata is being fetched).
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent has ended.
    pub async fn meta_info(&self) -> Result<Option<Arc<MetaInfo>>, TorrentError> {
        Ok(self.stream_parts().await?.map(|p| p.meta))
    }

    /// Adds peers to connect to.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn add_peers(&self, peers: Vec<SocketAddr>) -> Result<(), TorrentError> {
        self.tx
            .send(TorrentCommand::AddPeers { peers })
            .await
            .map_err(|_| TorrentError::Stopped)
    }

    /// Each file's priority, in [`MetaInfo::files`] order.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended;
    /// [`TorrentError::MetadataPending`] while a magnet link's metadata is
    /// being fetched.
    pub async fn file_priorities(&self) -> Result<Vec<Priority>, TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(TorrentCommand::FilePriorities { reply })
            .await
            .map_err(|_| TorrentError::Stopped)?;
        rx.await.map_err(|_| TorrentError::Stopped)?
    }

    /// Sets every file's priority (one per file of [`MetaInfo::files`]),
    /// while the torrent runs. Selecting a skipped file moves the bytes it
    /// already has into place and downloads the rest; skipping a file keeps
    /// what is on disk but fetches nothing more for it. A complete torrent
    /// with newly selected files downloads again; skipping the last missing
    /// files completes it.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended;
    /// [`TorrentError::Selection`] if the list is not one priority per file;
    /// [`TorrentError::MetadataPending`] while a magnet link's metadata is
    /// being fetched.
    pub async fn set_file_priorities(&self, priorities: Vec<Priority>) -> Result<(), TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(TorrentCommand::SetFilePriorities { priorities, reply })
            .await
            .map_err(|_| TorrentError::Stopped)?;
        rx.await.map_err(|_| TorrentError::Stopped)?
    }

    /// Sets the priority of file `index` (see
    /// [`set_file_priorities`](Self::set_file_priorities)).
    ///
    /// # Errors
    /// As [`set_file_priorities`](Self::set_file_priorities), and
    /// [`TorrentError::NoSuchFile`] for an index out of range.
    pub async fn set_file_priority(
        &self,
        index: usize,
        priority: Priority,
    ) -> Result<(), TorrentError> {
        let mut all = self.file_priorities().await?;
        let slot = all.get_mut(index).ok_or(TorrentError::NoSuchFile(index))?;
        *slot = priority;
        self.set_file_priorities(all).await
    }

    /// Sets how pieces are chosen:
    /// - [`PickMode::RarestFirst`] (default): rarest first, the best for the
    ///   swarm; while a [`FileReader`] waits, its read-ahead window is
    ///   urgent (the torrent picks as in `Streaming` meanwhile);
    /// - [`PickMode::Sequential`]: lowest piece first, after urgent pieces;
    /// - [`PickMode::Streaming`]: urgent pieces, then the first and last
    ///   piece of every selected file (container headers and indexes), then
    ///   rarest first.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn set_mode(&self, mode: PickMode) -> Result<(), TorrentError> {
        self.tx
            .send(TorrentCommand::SetMode { mode })
            .await
            .map_err(|_| TorrentError::Stopped)
    }
}
