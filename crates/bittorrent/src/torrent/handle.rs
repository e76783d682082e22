//! [`TorrentHandle`], the cloneable way into a torrent actor, and
//! [`StreamParts`], what opening streaming readers needs.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use futures::FutureExt;
use tokio::sync::oneshot;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::dht::DhtHandle;
use crate::limits::{RateLimits, TorrentShareLimits};
use crate::metainfo::MetaInfo;
use crate::peer::connect::Connector;
use crate::picker::{PickMode, Priority};
use crate::ratelimit::RateLimiter;
use crate::store::Store;
use crate::torrent::command::{command_channel, CommandSender, TorrentCommand};
use crate::torrent::status::SessionLinks;
use crate::torrent::{actor, FileReader, PieceState, Torrent, TorrentError, TorrentStats};
use crate::types::InfoHash;

/// A torrent's metainfo and store, from which [`FileReader`]s are opened
/// (see [`TorrentHandle::stream_parts`]).
#[derive(Clone)]
pub struct StreamParts {
    pub(crate) tx: Option<CommandSender>,
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
    tx: CommandSender,
    /// The torrent's own rate limiter, shared with its peers and web seeds.
    limits: RateLimiter,
}

impl TorrentHandle {
    /// Capacity of a torrent's command mailbox.
    const MAILBOX: usize = 64;

    /// Starts the actor for `torrent` as a task of `tasks` (it ends with the
    /// torrent's info-hash, also after a panic, which is logged); returns
    /// its handle. One task per torrent, with no wrapper task around it.
    pub(crate) fn spawn(
        torrent: Torrent,
        config: Arc<SessionConfig>,
        dht: Option<DhtHandle>,
        (connector, links): (Connector, SessionLinks),
        cancel: CancellationToken,
        tasks: &mut JoinSet<InfoHash>,
    ) -> Self {
        let info_hash = torrent.info_hash();
        let name = Arc::from(torrent.name().as_str());
        let (tx, rx) = command_channel(Self::MAILBOX);
        let limits = RateLimiter::new(torrent.rate_limits);
        let link_limits = connector.limits().with_torrent(limits.clone());
        let connector = connector.with_limits(link_limits);
        let run = actor::run(torrent, config, dht, connector, rx, links, cancel);
        tasks.spawn(async move {
            if AssertUnwindSafe(run).catch_unwind().await.is_err() {
                log::error!("[{}] torrent task panicked", info_hash.short());
            }
            info_hash
        });
        Self {
            info_hash,
            name,
            tx,
            limits,
        }
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

    /// Resumes a paused torrent, or retries one stopped by a store error
    /// (state [`Error`](crate::torrent::TorrentState::Error)). A complete
    /// torrent still over its share limit is paused again at once
    /// ([`Event::ShareLimitReached`](crate::session::Event::ShareLimitReached)), as qBittorrent does: raise its limit
    /// first.
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

    /// Sets the torrent's own download and upload limits (applied under the
    /// session's); `RateLimits::default()` lifts them.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn set_rate_limits(&self, limits: RateLimits) -> Result<(), TorrentError> {
        // Shared with the peers and web seeds directly: no need to disturb
        // the actor.
        if self.tx.is_closed() {
            return Err(TorrentError::Stopped);
        }
        log::info!("[{}] rate limits: {limits:?}", self.info_hash.short());
        self.limits.set(limits, std::time::Instant::now());
        Ok(())
    }

    /// Sets when the torrent stops seeding (each limit its own or the
    /// session's). A complete torrent already past a new limit is paused at
    /// once.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn set_share_limits(&self, limits: TorrentShareLimits) -> Result<(), TorrentError> {
        self.send(TorrentCommand::SetShareLimits { limits }).await
    }

    /// Force-start: the torrent runs regardless of the session's queue
    /// limits (and resumes if paused); false puts it back under them.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn set_force_start(&self, force: bool) -> Result<(), TorrentError> {
        self.send(TorrentCommand::SetForceStart { force }).await
    }

    /// Announces now, whatever the trackers' intervals say: a round over
    /// the trackers as a regular announce makes it (BEP 12: tiers in order,
    /// until one tracker answers, as libtorrent's default), and a DHT
    /// announce when the torrent uses the DHT (a lookup while a magnet
    /// fetches its metadata). Nothing while it is paused or queued.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended.
    pub async fn reannounce(&self) -> Result<(), TorrentError> {
        self.send(TorrentCommand::Reannounce).await
    }

    /// Checks every piece on disk again by hash (ignoring the resume
    /// record), then goes on as it was (downloading what is missing, or
    /// paused if it was paused).
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended;
    /// [`TorrentError::MetadataPending`] while a magnet link's metadata is
    /// being fetched.
    pub async fn recheck(&self) -> Result<(), TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.send(TorrentCommand::Recheck { reply }).await?;
        rx.await.map_err(|_| TorrentError::Stopped)?
    }

    /// Each piece's state, in piece order.
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended;
    /// [`TorrentError::MetadataPending`] while a magnet link's metadata is
    /// being fetched.
    pub async fn piece_states(&self) -> Result<Vec<PieceState>, TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.send(TorrentCommand::PieceStates { reply }).await?;
        rx.await.map_err(|_| TorrentError::Stopped)?
    }

    /// Verified bytes of each file, in [`MetaInfo::files`] order (a file's
    /// share of each verified piece).
    ///
    /// # Errors
    /// [`TorrentError::Stopped`] if the torrent actor has ended;
    /// [`TorrentError::MetadataPending`] while a magnet link's metadata is
    /// being fetched.
    pub async fn file_progress(&self) -> Result<Vec<u64>, TorrentError> {
        let (reply, rx) = oneshot::channel();
        self.send(TorrentCommand::FileProgress { reply }).await?;
        rx.await.map_err(|_| TorrentError::Stopped)?
    }

    async fn send(&self, cmd: TorrentCommand) -> Result<(), TorrentError> {
        self.tx.send(cmd).await.map_err(|_| TorrentError::Stopped)
    }
}
