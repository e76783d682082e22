//! The torrent actor's state and run loop.
//!
//! Invariants kept here:
//! - a block is in `PeerEntry::in_flight` of a peer exactly when we sent that
//!   peer a request for it that has not been answered, cancelled or voided by
//!   a choke; the picker's requested-count for the block matches;
//! - `pieces` holds the blocks of pieces that are partly received; a piece
//!   leaves it when complete and is then verified exactly once;
//! - only pieces whose SHA-1 matched reach the store.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::choker::{Choker, ChokerConfig, PeerView};
use crate::dht::{Announced, DhtError, DhtHandle};
use crate::extension::metadata::metainfo_from_metadata;
use crate::extension::{PexFlags, PexPeer, PexState};
use crate::magnet::Magnet;
use crate::metainfo::MetaInfo;
use crate::peer::{Origin, PeerCommand, PeerHandle, PeerParams};
use crate::picker::{PickMode, Picker, Priority, Received};
use crate::session::{Event, SessionConfig};
use crate::store::{Store, StoreError};
use crate::torrent::check::{self, Checked};
use crate::torrent::metadata::{self, FetchParams};
use crate::torrent::piece::PieceBuffer;
use crate::torrent::selection;
use crate::torrent::swarm::Swarm;
use crate::torrent::unasked::UnaskedBlocks;
use crate::torrent::TorrentStats;
use crate::torrent::{PeerEvent, RateMeter, Torrent, TorrentCommand, TorrentError, TorrentState};
use crate::torrent::{Source, StreamParts};
use crate::tracker::{run_announcer, AnnouncerConfig, TrackerStatus, TrackerUpdate, TransferStats};
use crate::types::{BlockInfo, InfoHash, PeerId, BLOCK_SIZE};

/// Capacity of the mailbox all peers of a torrent report into.
const PEER_EVENTS: usize = 256;
/// Pipeline depth bounds (blocks requested and not yet received, per peer).
const MIN_PIPELINE: usize = 32;
const MAX_PIPELINE: usize = 256;
/// Bytes of complete pieces allowed to wait for verification before we stop
/// requesting (backpressure when hashing and disk are slower than the network).
const MAX_VERIFY_BACKLOG: u64 = 16 * 1024 * 1024;
/// A peer that owes us blocks and sends none for this long is dropped.
const SNUB_TIMEOUT: Duration = Duration::from_secs(60);
/// Failed pieces a peer may have co-contributed to (without being identified
/// as the culprit) before it is banned anyway.
const BAN_THRESHOLD: u32 = 4;
/// Bytes after a streaming reader's position made urgent (read-ahead).
const READ_AHEAD_BYTES: u64 = 4 * 1024 * 1024;
/// Deadline of the piece a reader waits for, from now.
const READ_DEADLINE: Duration = Duration::from_millis(500);
/// Each following piece of the read-ahead window gets this much more time.
const READ_DEADLINE_STEP: Duration = Duration::from_millis(250);
/// What a reader waiting on a piece of skipped files only is told.
const NOT_SELECTED: &str = "that part of the torrent is not selected";
/// Seconds (ticks) between rounds of the choke algorithm.
const CHOKE_ROUND_TICKS: u64 = 10;

/// Runs a torrent until `cancel` fires, it is removed, or storage fails.
pub(crate) async fn run(
    torrent: Torrent,
    config: Arc<SessionConfig>,
    dht: Option<DhtHandle>,
    mut commands: mpsc::Receiver<TorrentCommand>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
) {
    let Torrent {
        source,
        peers,
        use_trackers,
        file_priorities,
        mode,
    } = torrent;
    let (meta, store) = match source {
        Source::Meta { meta, store } => (meta, store),
        Source::Magnet { magnet, make_store } => {
            let phase = MagnetPhase {
                config: &config,
                dht: dht.as_ref(),
                events: &events,
                cancel: &cancel,
            };
            let Some(meta) = phase
                .run(&magnet, &peers, use_trackers, &mut commands)
                .await
            else {
                return;
            };
            match make_store(&meta) {
                Ok(store) => (meta, store),
                Err(e) => {
                    let message = format!("cannot create the storage: {e}");
                    log::error!("[{}] {message}", meta.info_hash.short());
                    let _ = events.send(Event::TorrentError {
                        info_hash: meta.info_hash,
                        message,
                    });
                    return;
                }
            }
        }
    };
    let now = Instant::now();
    let mut priorities = file_priorities
        .map(|decide| decide(&meta))
        .unwrap_or_default();
    if priorities.len() > meta.files.len() {
        log::warn!(
            "[{}] {} file priorities for {} files; the extra ones are ignored",
            meta.info_hash.short(),
            priorities.len(),
            meta.files.len()
        );
    }
    priorities.resize(meta.files.len(), Priority::Normal);
    let meta = Arc::new(meta);
    let info_hash = meta.info_hash;
    // BEP 27: a private torrent gets its peers from its trackers only.
    let meta_private = meta.private;
    let (peer_tx, peer_rx) = mpsc::channel(PEER_EVENTS);
    let picker = Picker::new(meta.piece_count(), meta.piece_length, meta.total_length);
    let (stats_tx, _) = watch::channel(TransferStats {
        uploaded: 0,
        downloaded: 0,
        left: meta.total_length,
    });
    let mut swarm = Swarm::default();
    for addr in &peers {
        swarm.add(*addr, true, now);
    }
    let (tracker_tx, tracker_rx) = mpsc::channel(16);
    let use_trackers = use_trackers && config.use_trackers && !meta.trackers.is_empty();
    let choker = Choker::new(ChokerConfig {
        slots: config.upload_slots,
        ..ChokerConfig::default()
    });

    let mut actor = TorrentActor {
        info_hash,
        tag: format!("[{}]", info_hash.short()),
        meta,
        store,
        config,
        events,
        cancel,
        state: State::Checking,
        picker,
        choker,
        pieces: HashMap::new(),
        peers: HashMap::new(),
        peer_tasks: JoinSet::new(),
        peer_tx,
        verifying: JoinSet::new(),
        suspects: HashMap::new(),
        verify_queue: VecDeque::new(),
        max_verifying: std::thread::available_parallelism().map_or(2, |n| n.get()),
        finalizing: JoinSet::new(),
        swarm,
        bytes_have: 0,
        download: RateMeter::new(now),
        upload: RateMeter::new(now),
        wasted: 0,
        stats_tx,
        tracker_status: watch::channel(Vec::new()).0,
        complete: false,
        use_trackers,
        tracker_tx,
        announcer: None,
        announcers: JoinSet::new(),
        ticks: 0,
        dht: dht.filter(|_| !meta_private),
        dht_lookup: JoinSet::new(),
        next_dht: now,
        waiters: HashMap::new(),
        readers: HashMap::new(),
        resume_dirty: false,
        saving: JoinSet::new(),
        file_priorities: priorities,
        mode,
        selecting: JoinSet::new(),
        pending_selection: None,
    };
    actor.apply_priorities();
    actor.run(commands, peer_rx, tracker_rx).await;
}

/// The first phase of a magnet's torrent: find peers, fetch and verify the
/// info dictionary.
struct MagnetPhase<'a> {
    config: &'a Arc<SessionConfig>,
    dht: Option<&'a DhtHandle>,
    events: &'a broadcast::Sender<Event>,
    cancel: &'a CancellationToken,
}

impl MagnetPhase<'_> {
    /// Returns the torrent's metainfo, or `None` if cancelled or invalid.
    async fn run(
        &self,
        magnet: &Magnet,
        peers: &[SocketAddr],
        use_trackers: bool,
        commands: &mut mpsc::Receiver<TorrentCommand>,
    ) -> Option<MetaInfo> {
        let info_hash = magnet.info_hash;
        let tag = format!("[{}]", info_hash.short());
        log::info!("{tag} fetching metadata from peers");
        let (candidates, candidates_rx) = mpsc::channel(1024);
        for addr in peers {
            let _ = candidates.try_send(*addr);
        }
        // Announce while fetching (as a leecher with unknown size: left = 1).
        let (tracker_tx, mut tracker_rx) = mpsc::channel(16);
        let (_stats_tx, stats_rx) = watch::channel(TransferStats {
            uploaded: 0,
            downloaded: 0,
            left: 1,
        });
        let tiers: Vec<Vec<String>> = magnet.trackers.iter().map(|t| vec![t.clone()]).collect();
        let token = self.cancel.child_token();
        let (status_tx, status) = watch::channel(Vec::new());
        let announcer =
            (use_trackers && self.config.use_trackers && !tiers.is_empty()).then(|| {
                let mut cfg =
                    AnnouncerConfig::new(tiers, info_hash, self.config.peer_id, self.config.port);
                cfg.status = Some(status_tx);
                tokio::spawn(run_announcer(cfg, stats_rx, tracker_tx, token.clone()))
            });
        let params = FetchParams {
            info_hash,
            our_id: self.config.peer_id,
            connect_timeout: self.config.connect_timeout,
        };
        let fetch = metadata::fetch(params, candidates_rx, self.cancel.clone());
        tokio::pin!(fetch);
        let mut tracker_open = announcer.is_some();
        // DHT lookups for peers, every 10 s while the metadata is missing.
        let mut lookups: JoinSet<Result<Vec<SocketAddr>, DhtError>> = JoinSet::new();
        let mut dht_tick = tokio::time::interval(Duration::from_secs(10));
        let info = loop {
            tokio::select! {
                info = &mut fetch => break info,
                _ = dht_tick.tick(), if self.dht.is_some() && lookups.is_empty() => {
                    if let Some(dht) = self.dht.cloned() {
                        lookups.spawn(async move { dht.get_peers(info_hash).await });
                    }
                }
                Some(found) = lookups.join_next(), if !lookups.is_empty() => {
                    if let Ok(Ok(peers)) = found {
                        log::debug!("{tag} DHT: {} peers", peers.len());
                        for addr in peers {
                            let _ = candidates.try_send(addr);
                        }
                    }
                }
                cmd = commands.recv() => match cmd {
                    Some(TorrentCommand::Stats { reply }) => {
                        let stats = TorrentStats {
                            state: TorrentState::FetchingMetadata,
                            trackers: status.borrow().clone(),
                            ..TorrentStats::default()
                        };
                        let _ = reply.send(stats);
                    }
                    Some(TorrentCommand::AddPeers { peers }) => {
                        for addr in peers {
                            let _ = candidates.try_send(addr);
                        }
                    }
                    Some(TorrentCommand::Inbound { addr, .. }) => {
                        log::debug!("{tag} refusing inbound {addr}: no metadata yet");
                    }
                    Some(TorrentCommand::Pause | TorrentCommand::Resume) => {
                        log::debug!("{tag} pause/resume ignored while fetching metadata");
                    }
                    // No metadata yet: nothing to open or wait for.
                    Some(TorrentCommand::OpenParts { reply }) => {
                        let _ = reply.send(None);
                    }
                    Some(TorrentCommand::WaitPiece { .. } | TorrentCommand::ReaderGone { .. }) => {}
                    Some(TorrentCommand::FilePriorities { reply }) => {
                        let _ = reply.send(Vec::new());
                    }
                    Some(TorrentCommand::SetFilePriorities { reply, .. }) => {
                        let why = "the metadata is not known yet".to_owned();
                        let _ = reply.send(Err(TorrentError::Selection(why)));
                    }
                    Some(TorrentCommand::SetMode { .. }) => {
                        log::debug!("{tag} mode change ignored while fetching metadata");
                    }
                    None => break None,
                },
                update = tracker_rx.recv(), if tracker_open => match update {
                    Some(TrackerUpdate::Announced { url, peers, .. }) => {
                        for addr in &peers {
                            let _ = candidates.try_send(*addr);
                        }
                        let _ = self.events.send(Event::TrackerAnnounced {
                            info_hash,
                            url,
                            peers: peers.len(),
                        });
                    }
                    Some(TrackerUpdate::Failed { url, error }) => {
                        let _ = self.events.send(Event::TrackerError {
                            info_hash,
                            url,
                            message: error,
                        });
                    }
                    None => tracker_open = false,
                },
            }
        };
        token.cancel();
        lookups.shutdown().await;
        if let Some(announcer) = announcer {
            let _ = announcer.await;
        }
        let info = info?;
        match metainfo_from_metadata(&info, &magnet.trackers) {
            Ok(meta) => {
                log::info!("{tag} metadata received: {:?}", meta.name);
                let _ = self.events.send(Event::MetadataReceived {
                    info_hash,
                    name: meta.name.clone(),
                });
                Some(meta)
            }
            Err(e) => {
                let message = format!("the fetched metadata is not a valid torrent: {e}");
                log::error!("{tag} {message}");
                let _ = self.events.send(Event::TorrentError { info_hash, message });
                None
            }
        }
    }
}

/// The torrent's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hashing what is already in the store.
    Checking,
    /// Downloading and/or seeding.
    Active,
    /// No connections, no announces; state kept.
    Paused,
}

struct TorrentActor {
    info_hash: InfoHash,
    tag: String,
    meta: Arc<MetaInfo>,
    store: Arc<dyn Store>,
    config: Arc<SessionConfig>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    state: State,
    picker: Picker,
    choker: Choker<SocketAddr>,
    pieces: HashMap<u32, PieceBuffer>,
    peers: HashMap<SocketAddr, PeerEntry>,
    peer_tasks: JoinSet<()>,
    peer_tx: mpsc::Sender<PeerEvent>,
    verifying: JoinSet<Verified>,
    /// Blocks of failed pieces from several senders, kept until the piece
    /// verifies so the sender of the bad block can be identified.
    suspects: HashMap<u32, Vec<SuspectBlock>>,
    /// Complete pieces waiting for a verification slot.
    verify_queue: VecDeque<(u32, PieceBuffer)>,
    /// Verifications allowed at once (one per core): bounds threads and memory.
    max_verifying: usize,
    finalizing: JoinSet<Result<(), StoreError>>,
    swarm: Swarm,
    bytes_have: u64,
    download: RateMeter,
    upload: RateMeter,
    wasted: u64,
    stats_tx: watch::Sender<TransferStats>,
    /// Each tracker's status, published by the announce loop.
    tracker_status: watch::Sender<Vec<TrackerStatus>>,
    complete: bool,
    use_trackers: bool,
    tracker_tx: mpsc::Sender<TrackerUpdate>,
    /// Cancels the running announce loop, if one runs.
    announcer: Option<CancellationToken>,
    /// Announce loops, the running one and any still sending `stopped`.
    announcers: JoinSet<()>,
    /// One-second ticks since start (the choker runs every `CHOKE_ROUND` ticks).
    ticks: u64,
    /// The session's DHT, unless it runs none or the torrent is private.
    dht: Option<DhtHandle>,
    /// The running DHT announce (at most one).
    dht_lookup: JoinSet<Result<Announced, DhtError>>,
    /// When to announce on the DHT next.
    next_dht: Instant,
    /// Streaming readers waiting for a piece to be verified.
    waiters: HashMap<u32, Vec<oneshot::Sender<Result<(), &'static str>>>>,
    /// Each streaming reader's read-ahead window (pieces with deadlines).
    readers: HashMap<u64, std::ops::Range<u32>>,
    /// Pieces were verified since the last resume record.
    resume_dirty: bool,
    /// The resume record being written (at most one at a time).
    saving: JoinSet<Result<(), StoreError>>,
    /// Each file's priority.
    file_priorities: Vec<Priority>,
    /// The mode chosen by the user (see `effective_mode`).
    mode: PickMode,
    /// The store taking a new file selection (at most one at a time).
    selecting: JoinSet<Result<(), StoreError>>,
    /// A newer selection for the store, once `selecting` is done.
    pending_selection: Option<Vec<bool>>,
}

/// The torrent's view of one peer connection.
struct PeerEntry {
    handle: PeerHandle,
    /// Handshake done.
    connected: bool,
    /// The peer dialled us.
    inbound: bool,
    /// From its handshake.
    peer_id: Option<PeerId>,
    /// Pieces the peer has (exactly what was added to the picker's availability).
    bitfield: Bitfield,
    /// Blocks requested from this peer and not yet answered.
    in_flight: HashSet<BlockInfo>,
    choking_us: bool,
    am_interested: bool,
    am_choking: bool,
    peer_interested: bool,
    /// Payload it sent us.
    rate: RateMeter,
    /// Payload we sent it.
    upload: RateMeter,
    /// Current pipeline depth target.
    target: usize,
    /// Last time a requested block arrived (or the pipeline was empty).
    last_block: Instant,
    /// Last time any block arrived from it (for the choker's snubbing).
    last_piece: Option<Instant>,
    connected_at: Instant,
    last_unchoked: Option<Instant>,
    /// Blocks it sent that no request of ours waited for.
    unasked: UnaskedBlocks,
    /// Weighted count of failed pieces it contributed to.
    strikes: u32,
    /// What we last told it through peer exchange.
    pex: PexState,
    /// Among the faster half of our peers by download rate (urgent pieces go
    /// to fast peers first).
    fast: bool,
}

/// Outcome of hashing (and, if good, storing) one piece.
struct Verified {
    index: u32,
    result: Result<bool, StoreError>,
    /// Who sent each block.
    senders: Vec<SocketAddr>,
    /// For a failed piece: each block's index, sender and SHA-1.
    block_hashes: Vec<SuspectBlock>,
    /// For a piece that failed before and is now good: peers whose blocks in
    /// the failed copy differed from the good data.
    liars: Vec<SocketAddr>,
}

/// A block of a piece that failed its hash check: index, sender, SHA-1.
type SuspectBlock = (usize, SocketAddr, [u8; 20]);

impl TorrentActor {
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<TorrentCommand>,
        mut peer_rx: mpsc::Receiver<PeerEvent>,
        mut tracker_rx: mpsc::Receiver<TrackerUpdate>,
    ) {
        log::info!(
            "{} checking {:?}: {} pieces of {} bytes, {} bytes",
            self.tag,
            self.meta.name,
            self.meta.piece_count(),
            self.meta.piece_length,
            self.meta.total_length
        );
        let mut check = Some(self.spawn_check());
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let cancel = self.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                checked = async { check.as_mut().expect("guarded").await }, if check.is_some() => {
                    check = None;
                    self.on_checked(checked);
                }
                event = peer_rx.recv() => match event {
                    Some(event) => self.on_peer_event(event),
                    // We hold a sender ourselves, so this cannot happen.
                    None => break,
                },
                Some(done) = self.verifying.join_next(), if !self.verifying.is_empty() => {
                    self.on_verified(done);
                }
                Some(done) = self.finalizing.join_next(), if !self.finalizing.is_empty() => {
                    self.on_finalized(done);
                }
                cmd = commands.recv() => match cmd {
                    Some(cmd) => self.on_command(cmd),
                    // Every handle is gone, the session's included: stop.
                    None => break,
                },
                update = tracker_rx.recv() => match update {
                    Some(update) => self.on_tracker(update),
                    // We hold a sender ourselves, so this cannot happen.
                    None => break,
                },
                Some(_) = self.peer_tasks.join_next(), if !self.peer_tasks.is_empty() => {}
                Some(_) = self.announcers.join_next(), if !self.announcers.is_empty() => {}
                Some(saved) = self.saving.join_next(), if !self.saving.is_empty() => {
                    self.on_resume_saved(saved);
                }
                Some(done) = self.selecting.join_next(), if !self.selecting.is_empty() => {
                    self.on_selection_stored(done);
                }
                Some(found) = self.dht_lookup.join_next(), if !self.dht_lookup.is_empty() => {
                    self.on_dht(found);
                }
                _ = tick.tick() => self.on_tick(),
            }
        }
        if let Some(check) = check {
            check.abort();
        }
        self.shutdown(peer_rx).await;
    }

    /// Stops every child and waits for them; pieces being written finish.
    async fn shutdown(&mut self, mut peer_rx: mpsc::Receiver<PeerEvent>) {
        log::debug!("{} stopping", self.tag);
        self.cancel.cancel();
        for peer in self.peers.values() {
            peer.handle.disconnect();
        }
        // Pieces already downloaded are still verified and stored.
        self.start_verifications();
        // Keep draining peer events so no peer blocks on a full mailbox.
        while !self.peer_tasks.is_empty() {
            tokio::select! {
                _ = self.peer_tasks.join_next() => {}
                _ = peer_rx.recv() => {}
            }
        }
        while let Some(done) = self.verifying.join_next().await {
            self.start_verifications();
            if let Ok(v) = &done {
                if let Err(e) = &v.result {
                    log::error!("{} piece {} could not be stored: {e}", self.tag, v.index);
                }
            }
        }
        while self.finalizing.join_next().await.is_some() {}
        // The last word on what is verified.
        while let Some(saved) = self.saving.join_next().await {
            self.on_resume_saved(saved);
        }
        if self.resume_dirty {
            self.save_resume();
            while let Some(saved) = self.saving.join_next().await {
                self.on_resume_saved(saved);
            }
        }
        self.stop_announcer();
        while self.announcers.join_next().await.is_some() {}
        log::info!("{} stopped", self.tag);
    }

    /// Finds the pieces already in the store, on a blocking thread: those
    /// its resume record vouches for, and those that hash right.
    fn spawn_check(&self) -> JoinHandle<Checked> {
        let store = Arc::clone(&self.store);
        let meta = Arc::clone(&self.meta);
        let cancel = self.cancel.clone();
        let wanted = selection::wanted_files(&self.file_priorities);
        tokio::task::spawn_blocking(move || check::check(&store, &meta, &wanted, &cancel))
    }

    fn on_checked(&mut self, checked: Result<Checked, JoinError>) {
        let checked = checked.unwrap_or_else(|e| {
            log::error!("{} checking failed: {e}; starting from scratch", self.tag);
            Checked::nothing(self.meta.piece_count())
        });
        let have = &checked.have;
        for index in have.iter_ones() {
            let index = index as u32;
            self.picker.mark_have(index);
            self.bytes_have += u64::from(self.meta.piece_len(index));
        }
        // What hashing found, and the files as they are now, are recorded at
        // once, so the next start need not hash again.
        if !checked.exact {
            self.save_resume();
        }
        let count = have.count_ones();
        log::info!(
            "{} {count} of {} pieces already present ({} from the resume record, {} hashed)",
            self.tag,
            self.meta.piece_count(),
            checked.trusted,
            checked.hashed
        );
        self.emit(Event::TorrentChecked {
            info_hash: self.info_hash,
            pieces_have: count,
        });
        self.state = State::Active;
        self.publish_transfer();
        if self.picker.is_complete() {
            self.complete = true;
            if self.picker.have().is_full() {
                log::info!("{} seeding", self.tag);
            } else {
                log::info!("{} selected files complete", self.tag);
            }
            self.emit(Event::TorrentComplete {
                info_hash: self.info_hash,
            });
        }
        self.start_announcer();
        self.connect_more();
    }

    fn start_announcer(&mut self) {
        if !self.use_trackers || self.announcer.is_some() {
            return;
        }
        let mut cfg = AnnouncerConfig::new(
            self.meta.trackers.clone(),
            self.info_hash,
            self.config.peer_id,
            self.config.port,
        );
        cfg.status = Some(self.tracker_status.clone());
        let token = self.cancel.child_token();
        self.announcers.spawn(run_announcer(
            cfg,
            self.stats_tx.subscribe(),
            self.tracker_tx.clone(),
            token.clone(),
        ));
        self.announcer = Some(token);
    }

    /// Stops the announce loop; it sends `stopped` (with a short timeout) in
    /// the background and is reaped from `announcers`.
    fn stop_announcer(&mut self) {
        if let Some(token) = self.announcer.take() {
            token.cancel();
        }
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }

    fn on_command(&mut self, cmd: TorrentCommand) {
        match cmd {
            TorrentCommand::Stats { reply } => {
                let stats = self.stats(Instant::now());
                let _ = reply.send(stats);
            }
            TorrentCommand::AddPeers { peers } => {
                let now = Instant::now();
                for addr in peers {
                    self.swarm.add(addr, true, now);
                }
                self.connect_more();
            }
            TorrentCommand::Inbound {
                addr,
                conn,
                handshake,
            } => {
                self.accept(addr, Origin::Inbound { conn, handshake });
            }
            TorrentCommand::WaitPiece {
                piece,
                reader,
                reply,
            } => {
                self.wait_piece(piece, reader, reply);
            }
            TorrentCommand::ReaderGone { reader } => self.reader_gone(reader),
            TorrentCommand::OpenParts { reply } => {
                let _ = reply.send(Some(StreamParts {
                    tx: None,
                    meta: Arc::clone(&self.meta),
                    store: Arc::clone(&self.store),
                }));
            }
            TorrentCommand::FilePriorities { reply } => {
                let _ = reply.send(self.file_priorities.clone());
            }
            TorrentCommand::SetFilePriorities { priorities, reply } => {
                let _ = reply.send(self.set_file_priorities(priorities));
            }
            TorrentCommand::SetMode { mode } => {
                log::info!("{} mode {mode:?}", self.tag);
                self.mode = mode;
                self.apply_priorities();
            }
            TorrentCommand::Pause => self.pause(),
            TorrentCommand::Resume => self.resume(),
        }
    }

    /// The picker's mode: the user's, except that a waiting reader turns
    /// rarest-first into streaming (its window is urgent).
    fn effective_mode(&self) -> PickMode {
        match self.mode {
            PickMode::RarestFirst if !self.readers.is_empty() => PickMode::Streaming,
            mode => mode,
        }
    }

    /// A new selection: one priority per file.
    fn set_file_priorities(&mut self, priorities: Vec<Priority>) -> Result<(), TorrentError> {
        if priorities.len() != self.meta.files.len() {
            return Err(TorrentError::Selection(format!(
                "{} priorities for {} files",
                priorities.len(),
                self.meta.files.len()
            )));
        }
        if priorities == self.file_priorities {
            return Ok(());
        }
        let old = selection::wanted_files(&self.file_priorities);
        self.file_priorities = priorities;
        let wanted = selection::wanted_files(&self.file_priorities);
        log::info!(
            "{} file priorities: {} of {} files selected",
            self.tag,
            wanted.iter().filter(|&&w| w).count(),
            wanted.len()
        );
        if wanted != old {
            // The store learns on a blocking thread, after the picker. A
            // piece written in between lands where the old selection says;
            // for a newly selected file the store then moves it into place
            // (the bytes of a verified piece never differ).
            self.pending_selection = Some(wanted);
            self.store_selection();
        }
        self.apply_priorities();
        Ok(())
    }

    /// Hands the pending selection to the store unless it is busy with one.
    fn store_selection(&mut self) {
        if !self.selecting.is_empty() {
            return;
        }
        let Some(wanted) = self.pending_selection.take() else {
            return;
        };
        let store = Arc::clone(&self.store);
        self.selecting
            .spawn_blocking(move || store.set_wanted_files(&wanted));
    }

    fn on_selection_stored(&mut self, done: Result<Result<(), StoreError>, JoinError>) {
        match done {
            Ok(Ok(())) => {}
            // Shares stay in the part file, where reads still find them.
            Ok(Err(e)) => log::error!("{} storing the file selection failed: {e}", self.tag),
            Err(e) => log::error!("{} file selection task failed: {e}", self.tag),
        }
        self.store_selection();
    }

    /// Sets the picker's piece priorities and mode from the file priorities
    /// and the user's mode; then completes, or resumes downloading, if the
    /// selection says so.
    fn apply_priorities(&mut self) {
        let pieces = selection::piece_priorities(&self.meta, &self.file_priorities, self.mode);
        for (index, priority) in pieces.into_iter().enumerate() {
            self.picker.set_priority(index as u32, priority);
        }
        self.picker.set_mode(self.effective_mode());
        // Readers waiting on pieces that are no longer wanted get an error.
        let picker = &self.picker;
        self.waiters.retain(|&piece, waiters| {
            if picker.priority(piece) != Priority::Skip {
                return true;
            }
            for waiter in waiters.drain(..) {
                let _ = waiter.send(Err(NOT_SELECTED));
            }
            false
        });
        if self.state == State::Checking {
            return; // `on_checked` looks at completion.
        }
        let complete = self.picker.is_complete();
        if complete && !self.complete {
            self.on_complete();
        } else if !complete && self.complete {
            log::info!("{} more files selected; downloading", self.tag);
            self.complete = false;
            // Seeds were dropped when we completed: dial them again now.
            self.swarm.wake(Instant::now());
        }
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.update_interest(addr);
        }
        if !self.complete {
            self.connect_more();
        }
    }

    /// A streaming reader needs `piece`: answer when it is verified, and make
    /// it and the next pieces urgent (deadlines in the picker, streaming mode).
    fn wait_piece(
        &mut self,
        piece: u32,
        reader: u64,
        reply: oneshot::Sender<Result<(), &'static str>>,
    ) {
        if piece as usize >= self.meta.piece_count() {
            return; // Dropping `reply` tells the reader.
        }
        if self.picker.have().get(piece as usize) {
            let _ = reply.send(Ok(()));
            return;
        }
        if self.picker.priority(piece) == Priority::Skip {
            let _ = reply.send(Err(NOT_SELECTED));
            return;
        }
        self.waiters.entry(piece).or_default().push(reply);
        // Move this reader's window: earlier deadlines first, a few pieces ahead.
        if let Some(old) = self.readers.remove(&reader) {
            for p in old {
                self.picker.clear_deadline(p);
            }
        }
        let window = READ_AHEAD_BYTES
            .div_ceil(u64::from(self.meta.piece_length))
            .max(2) as u32;
        let end = (piece + window).min(self.meta.piece_count() as u32);
        let now = Instant::now();
        for (i, p) in (piece..end).enumerate() {
            let deadline = now + READ_DEADLINE + READ_DEADLINE_STEP * i as u32;
            self.picker.set_deadline(p, deadline);
        }
        self.readers.insert(reader, piece..end);
        self.picker.set_mode(self.effective_mode());
        self.request_more_all();
    }

    /// A reader was dropped: its window is no longer urgent.
    fn reader_gone(&mut self, reader: u64) {
        if let Some(old) = self.readers.remove(&reader) {
            for p in old {
                self.picker.clear_deadline(p);
            }
        }
        // Pieces other readers still wait for keep their deadlines.
        let windows: Vec<std::ops::Range<u32>> = self.readers.values().cloned().collect();
        let now = Instant::now();
        for range in windows {
            for p in range {
                if self.picker.deadline(p).is_none() {
                    self.picker.set_deadline(p, now + READ_DEADLINE);
                }
            }
        }
        self.picker.set_mode(self.effective_mode());
    }

    /// Disconnects every peer and stops announcing; what was downloaded stays.
    fn pause(&mut self) {
        if self.state != State::Active {
            return;
        }
        log::info!("{} paused", self.tag);
        self.state = State::Paused;
        for peer in self.peers.values() {
            peer.handle.disconnect();
        }
        self.stop_announcer();
        self.emit(Event::TorrentPaused {
            info_hash: self.info_hash,
        });
    }

    fn resume(&mut self) {
        if self.state != State::Paused {
            return;
        }
        log::info!("{} resumed", self.tag);
        self.state = State::Active;
        self.start_announcer();
        self.connect_more();
        self.emit(Event::TorrentResumed {
            info_hash: self.info_hash,
        });
    }

    /// Takes an inbound connection unless a limit or rule says no.
    fn accept(&mut self, addr: SocketAddr, origin: Origin) {
        let refusal = if self.state != State::Active {
            Some("torrent not active")
        } else if self.peers.len() >= self.config.max_connections_per_torrent {
            Some("connection limit reached")
        } else if self.peers.contains_key(&addr) {
            Some("already connected")
        } else if self.swarm.is_banned(&addr) {
            Some("banned")
        } else {
            None
        };
        if let Some(why) = refusal {
            log::debug!("{} refusing inbound {addr}: {why}", self.tag);
            return;
        }
        self.spawn_peer(addr, origin, true);
    }

    /// Starts a peer actor for `addr`.
    fn spawn_peer(&mut self, addr: SocketAddr, origin: Origin, inbound: bool) {
        let params = PeerParams {
            meta: Arc::clone(&self.meta),
            store: Arc::clone(&self.store),
            our_id: self.config.peer_id,
            have: self.picker.have().clone(),
            connect_timeout: self.config.connect_timeout,
            listen_port: self.config.port,
            pex: !self.meta.private,
        };
        let (handle, task) = PeerHandle::start(
            addr,
            origin,
            params,
            self.peer_tx.clone(),
            self.cancel.child_token(),
        );
        self.peer_tasks.spawn(task);
        let now = Instant::now();
        let entry = PeerEntry::new(handle, self.meta.piece_count(), inbound, now);
        self.peers.insert(addr, entry);
    }

    fn on_tracker(&mut self, update: TrackerUpdate) {
        match update {
            TrackerUpdate::Announced {
                url,
                peers,
                warning,
            } => {
                log::debug!("{} {url} returned {} peers", self.tag, peers.len());
                let now = Instant::now();
                for addr in &peers {
                    self.swarm.add(*addr, false, now);
                }
                let info_hash = self.info_hash;
                if let Some(message) = warning {
                    self.emit(Event::TrackerError {
                        info_hash,
                        url: url.clone(),
                        message,
                    });
                }
                self.emit(Event::TrackerAnnounced {
                    info_hash,
                    url,
                    peers: peers.len(),
                });
                self.connect_more();
            }
            TrackerUpdate::Failed { url, error } => {
                self.emit(Event::TrackerError {
                    info_hash: self.info_hash,
                    url,
                    message: error,
                });
            }
        }
    }

    /// Dials candidates while below the connection limit. A complete torrent
    /// does not dial out (seeding arrives with inbound connections).
    fn connect_more(&mut self) {
        if self.state != State::Active || self.cancel.is_cancelled() {
            return;
        }
        let now = Instant::now();
        while self.peers.len() < self.config.max_peers_per_torrent {
            let peers = &self.peers;
            let Some(addr) = self.swarm.next(now, |a| peers.contains_key(a)) else {
                break;
            };
            log::debug!("{} connecting to {addr}", self.tag);
            self.spawn_peer(addr, Origin::Outbound, false);
        }
    }

    fn on_peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Connected { addr, peer_id } => {
                let duplicate = self.peers.values().any(|p| p.peer_id == Some(peer_id));
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                if duplicate {
                    // The same client reached through a second address (or
                    // both sides dialled each other): keep one connection.
                    log::debug!("{} {addr} is a duplicate of a connected peer", self.tag);
                    peer.handle.disconnect();
                    return;
                }
                peer.connected = true;
                peer.peer_id = Some(peer_id);
                peer.last_block = Instant::now();
                peer.connected_at = Instant::now();
                self.swarm.connected(addr);
                log::debug!("{} {addr} connected ({peer_id:?})", self.tag);
                self.emit(Event::PeerConnected {
                    info_hash: self.info_hash,
                    addr,
                });
            }
            PeerEvent::Bitfield { addr, bitfield } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                self.picker.remove_peer(&peer.bitfield);
                self.picker.add_peer(&bitfield);
                peer.bitfield = bitfield;
                self.update_interest(addr);
                self.drop_if_both_seeds(addr);
            }
            PeerEvent::Have { addr, piece } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                if peer.bitfield.set(piece as usize) {
                    self.picker.peer_has(piece);
                    if !peer.am_interested {
                        self.update_interest(addr);
                    }
                    self.drop_if_both_seeds(addr);
                }
            }
            PeerEvent::Choked { addr } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                peer.choking_us = true;
                let voided = peer.in_flight.len();
                for block in peer.in_flight.drain() {
                    self.picker.cancel(block);
                }
                if voided > 0 {
                    self.request_more_all();
                }
            }
            PeerEvent::Unchoked { addr } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                peer.choking_us = false;
                peer.last_block = Instant::now();
                self.request_more(addr);
            }
            PeerEvent::Interest { addr, interested } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                peer.peer_interested = interested;
                if interested {
                    self.unchoke_if_slot_free(addr);
                }
            }
            PeerEvent::Pex { addr, added } => {
                log::debug!("{} {addr} told us of {} peers (PEX)", self.tag, added.len());
                let now = Instant::now();
                for peer in added {
                    self.swarm.add(peer, false, now);
                }
                self.connect_more();
            }
            PeerEvent::Uploaded { addr, bytes } => {
                let now = Instant::now();
                self.upload.add(bytes, now);
                if let Some(peer) = self.peers.get_mut(&addr) {
                    peer.upload.add(bytes, now);
                }
            }
            PeerEvent::Block { addr, block, data } => self.on_block(addr, block, data),
            PeerEvent::Disconnected { addr, reason } => self.on_disconnected(addr, reason),
        }
    }

    /// Two seeds have nothing to exchange: close the connection.
    fn drop_if_both_seeds(&mut self, addr: SocketAddr) {
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        if self.complete && peer.bitfield.is_full() {
            log::debug!("{} {addr} is a seed too; disconnecting", self.tag);
            peer.handle.disconnect();
        }
    }

    fn on_block(&mut self, addr: SocketAddr, block: BlockInfo, data: Bytes) {
        let now = Instant::now();
        let len = data.len() as u64;
        self.download.add(len, now);
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        peer.rate.add(len, now);
        peer.last_piece = Some(now);
        if !peer.in_flight.remove(&block) {
            // Late after a cancel or choke, or never asked for.
            self.wasted += len;
            if peer.unasked.arrived(len) {
                log::warn!(
                    "{} {addr} keeps sending unrequested blocks; dropping",
                    self.tag
                );
                peer.handle.disconnect();
            }
            return;
        }
        peer.last_block = now;
        match self.picker.block_received(block) {
            Received::Fresh { piece_complete } => {
                let piece_len = self.meta.piece_len(block.piece);
                let buffer = self
                    .pieces
                    .entry(block.piece)
                    .or_insert_with(|| PieceBuffer::new(piece_len));
                buffer.insert(block, data, addr);
                if self.picker.may_have_duplicates() {
                    self.cancel_duplicates(addr, block);
                }
                if piece_complete {
                    if let Some(buffer) = self.pieces.remove(&block.piece) {
                        self.verify(block.piece, buffer);
                    }
                }
            }
            Received::Duplicate | Received::Unexpected => self.wasted += len,
        }
        self.request_more(addr);
    }

    /// Endgame: `block` arrived from `from`; withdraw the same request from
    /// everyone else.
    fn cancel_duplicates(&mut self, from: SocketAddr, block: BlockInfo) {
        for (addr, peer) in &mut self.peers {
            if *addr != from && peer.in_flight.remove(&block) {
                log::trace!("{} cancelling {block:?} at {addr}", self.tag);
                peer.unasked.cancelled(u64::from(block.length));
                let _ = peer.handle.send(PeerCommand::Cancel(block));
            }
        }
    }

    /// Queues a complete piece for verification.
    fn verify(&mut self, index: u32, buffer: PieceBuffer) {
        self.verify_queue.push_back((index, buffer));
        self.start_verifications();
    }

    /// Starts queued verifications while slots are free.
    fn start_verifications(&mut self) {
        while self.verifying.len() < self.max_verifying {
            let Some((index, buffer)) = self.verify_queue.pop_front() else {
                break;
            };
            self.spawn_verification(index, buffer);
        }
    }

    /// Hashes a piece on a blocking thread and, if it matches, stores it.
    /// If the piece failed before, the blocks of that failed copy are
    /// compared with the good ones to find who sent the bad data.
    fn spawn_verification(&mut self, index: u32, buffer: PieceBuffer) {
        let Some(blocks) = buffer.into_blocks() else {
            // Cannot happen (the picker said complete), but never store a hole.
            log::warn!("{} piece {index} complete without all blocks", self.tag);
            self.picker.piece_failed(index);
            return;
        };
        let Some(expected) = self.meta.piece_hashes.get(index as usize).copied() else {
            return;
        };
        let suspects = self.suspects.remove(&index).unwrap_or_default();
        let store = Arc::clone(&self.store);
        self.verifying.spawn_blocking(move || {
            let mut hasher = Sha1::new();
            for (block, _) in &blocks {
                hasher.update(block);
            }
            let senders: Vec<SocketAddr> = blocks.iter().map(|(_, from)| *from).collect();
            if hasher.finalize().as_slice() != expected {
                let block_hashes = blocks
                    .iter()
                    .enumerate()
                    .map(|(i, (data, from))| (i, *from, Sha1::digest(data).into()))
                    .collect();
                return Verified {
                    index,
                    result: Ok(false),
                    senders,
                    block_hashes,
                    liars: Vec::new(),
                };
            }
            let liars = suspects
                .iter()
                .filter(|(i, _, hash)| {
                    blocks
                        .get(*i)
                        .is_some_and(|(data, _)| Sha1::digest(data).as_slice() != hash)
                })
                .map(|(_, from, _)| *from)
                .collect();
            let data: Vec<Bytes> = blocks.into_iter().map(|(data, _)| data).collect();
            let result = store.write_piece(index, &data).map(|()| true);
            Verified {
                index,
                result,
                senders,
                block_hashes: Vec::new(),
                liars,
            }
        });
    }

    fn on_verified(&mut self, done: Result<Verified, JoinError>) {
        let was_backlogged = self.verify_backlogged();
        self.start_verifications();
        if was_backlogged && !self.verify_backlogged() {
            self.request_more_all();
        }
        let verified = match done {
            Ok(v) => v,
            Err(e) => {
                log::error!("{} a verification task failed: {e}", self.tag);
                return;
            }
        };
        let index = verified.index;
        for liar in &verified.liars {
            self.ban(
                *liar,
                "its block of a failed piece differed from the verified data",
            );
        }
        match verified.result {
            Ok(true) => {
                for waiter in self.waiters.remove(&index).unwrap_or_default() {
                    let _ = waiter.send(Ok(()));
                }
                self.resume_dirty = true;
                self.picker.piece_verified(index);
                self.bytes_have += u64::from(self.meta.piece_len(index));
                log::trace!("{} piece {index} verified", self.tag);
                self.emit(Event::PieceVerified {
                    info_hash: self.info_hash,
                    piece: index,
                });
                for peer in self.peers.values().filter(|p| p.connected) {
                    let _ = peer.handle.send(PeerCommand::Have(index));
                }
                self.publish_transfer();
                if self.picker.is_complete() && !self.complete {
                    self.on_complete();
                }
            }
            Ok(false) => self.on_hash_failure(index, &verified.senders, verified.block_hashes),
            Err(e) => {
                let message = format!("storage failed on piece {index}: {e}");
                log::error!("{} {message}; stopping the torrent", self.tag);
                self.emit(Event::TorrentError {
                    info_hash: self.info_hash,
                    message,
                });
                self.cancel.cancel();
            }
        }
    }

    /// A piece failed its hash check. A sole sender is banned at once; when
    /// several peers sent blocks, each gets a strike and the failed copy's
    /// block hashes are kept to identify the culprit once the piece verifies.
    fn on_hash_failure(
        &mut self,
        index: u32,
        senders: &[SocketAddr],
        block_hashes: Vec<SuspectBlock>,
    ) {
        let mut contributors = senders.to_vec();
        contributors.sort_unstable();
        contributors.dedup();
        log::warn!(
            "{} piece {index} failed its hash check (from {contributors:?})",
            self.tag
        );
        self.picker.piece_failed(index);
        self.wasted += u64::from(self.meta.piece_len(index));
        self.emit(Event::PieceFailed {
            info_hash: self.info_hash,
            piece: index,
        });
        if let [only] = contributors[..] {
            self.ban(only, "it alone sent a piece that failed its hash check");
        } else {
            self.suspects.entry(index).or_default().extend(block_hashes);
            for addr in contributors {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    continue;
                };
                peer.strikes += 1;
                if peer.strikes >= BAN_THRESHOLD {
                    self.ban(
                        addr,
                        "it sent data to too many pieces that failed hash checks",
                    );
                }
            }
        }
        self.request_more_all();
    }

    /// Disconnects `addr` and never connects to it again in this session.
    fn ban(&mut self, addr: SocketAddr, why: &str) {
        if self.swarm.is_banned(&addr) {
            return;
        }
        log::warn!("{} banning {addr}: {why}", self.tag);
        self.swarm.ban(addr);
        if let Some(peer) = self.peers.get(&addr) {
            peer.handle.disconnect();
        }
    }

    fn on_complete(&mut self) {
        self.complete = true;
        log::info!("{} all pieces verified; finalizing storage", self.tag);
        // No longer interested in anyone, and other seeds are of no use.
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.update_interest(addr);
            self.drop_if_both_seeds(addr);
        }
        let store = Arc::clone(&self.store);
        self.finalizing.spawn_blocking(move || store.finalize());
    }

    fn on_finalized(&mut self, done: Result<Result<(), StoreError>, JoinError>) {
        let result = done.unwrap_or_else(|e| {
            Err(StoreError::Io {
                op: "finalize",
                path: Default::default(),
                source: std::io::Error::other(e.to_string()),
            })
        });
        match result {
            Ok(()) => {
                if self.saving.is_empty() {
                    self.save_resume();
                }
                log::info!("{} download complete; seeding", self.tag);
                self.emit(Event::TorrentComplete {
                    info_hash: self.info_hash,
                });
            }
            Err(e) => {
                let message = format!("finalizing storage failed: {e}");
                log::error!("{} {message}", self.tag);
                self.emit(Event::TorrentError {
                    info_hash: self.info_hash,
                    message,
                });
                self.cancel.cancel();
            }
        }
    }

    fn on_disconnected(&mut self, addr: SocketAddr, reason: String) {
        let Some(peer) = self.peers.remove(&addr) else {
            return;
        };
        let failed = reason != "closed";
        self.picker.remove_peer(&peer.bitfield);
        for block in peer.in_flight {
            self.picker.cancel(block);
        }
        if peer.connected {
            log::debug!("{} {addr} disconnected: {reason}", self.tag);
            self.emit(Event::PeerDisconnected {
                info_hash: self.info_hash,
                addr,
                reason,
            });
        } else {
            log::debug!("{} could not connect to {addr}: {reason}", self.tag);
        }
        if failed && !self.swarm.is_banned(&addr) {
            self.swarm.failed(addr, Instant::now());
        }
        self.request_more_all();
        self.connect_more();
    }

    /// Sends `interested`/`not interested` to `addr` when that changed, and
    /// tops up its requests.
    fn update_interest(&mut self, addr: SocketAddr) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        let want = !self.complete && self.picker.is_interesting(&peer.bitfield);
        if want != peer.am_interested && peer.connected {
            peer.am_interested = want;
            if peer.handle.send(PeerCommand::Interested(want)).is_err() {
                peer.handle.disconnect();
                return;
            }
        }
        if want {
            self.request_more(addr);
        }
    }

    /// True while too many complete pieces wait for verification.
    fn verify_backlogged(&self) -> bool {
        let piece = u64::from(self.meta.piece_length).max(1);
        self.verify_queue.len() as u64 * piece >= MAX_VERIFY_BACKLOG.max(piece)
    }

    /// Fills `addr`'s request pipeline up to its target depth, unless
    /// verification is backlogged.
    fn request_more(&mut self, addr: SocketAddr) {
        if self.verify_backlogged() {
            return;
        }
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if !peer.connected || peer.choking_us || !peer.am_interested {
            return;
        }
        let room = peer.target.saturating_sub(peer.in_flight.len());
        // Small top-ups are batched, except when the pipeline is nearly dry.
        if room == 0 || (room < 4 && peer.in_flight.len() > 4) {
            return;
        }
        let (now, fast) = (Instant::now(), peer.fast);
        let blocks = self
            .picker
            .pick_at(&peer.bitfield, &peer.in_flight, room, now, fast);
        if blocks.is_empty() {
            return;
        }
        if peer.in_flight.is_empty() {
            peer.last_block = Instant::now();
        }
        peer.in_flight.extend(blocks.iter().copied());
        if let Err(PeerCommand::Request(blocks)) = peer.handle.send(PeerCommand::Request(blocks)) {
            // Mailbox full: the peer cannot keep up. Drop it; its in-flight
            // blocks return to the picker when it reports the disconnect.
            log::debug!("{} {addr} mailbox full; dropping", self.tag);
            let _ = blocks;
            peer.handle.disconnect();
        }
    }

    fn request_more_all(&mut self) {
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.request_more(addr);
        }
    }

    fn on_tick(&mut self) {
        let now = Instant::now();
        for (addr, peer) in &mut self.peers {
            let rate = peer.rate.rate(now);
            // About a quarter second of data in flight, within bounds.
            let wanted = (rate / 4.0 / f64::from(BLOCK_SIZE)) as usize;
            peer.target = wanted.clamp(MIN_PIPELINE, MAX_PIPELINE);
            if !peer.in_flight.is_empty() && now.duration_since(peer.last_block) > SNUB_TIMEOUT {
                log::info!(
                    "{} {addr} sent nothing for {SNUB_TIMEOUT:?}; dropping",
                    self.tag
                );
                peer.handle.disconnect();
            }
        }
        self.rank_peers(now);
        self.ticks += 1;
        if self.resume_dirty && self.saving.is_empty() {
            self.save_resume();
        }
        if self.ticks % CHOKE_ROUND_TICKS == 0 {
            self.run_choke_round(now);
        }
        self.request_more_all();
        self.connect_more();
        self.send_pex(now);
        self.dht_announce(now);
        self.publish_transfer();
        let stats = self.stats(now);
        self.emit(Event::Stats {
            info_hash: self.info_hash,
            stats,
        });
    }

    /// One round of the choke algorithm: unchoke whom the choker picks,
    /// choke everyone else.
    fn run_choke_round(&mut self, now: Instant) {
        let views: Vec<PeerView<SocketAddr>> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.connected)
            .map(|(addr, p)| PeerView {
                id: *addr,
                interested: p.peer_interested,
                choked: p.am_choking,
                download_rate: p.rate.rate(now),
                upload_rate: p.upload.rate(now),
                connected_at: p.connected_at,
                last_unchoked: p.last_unchoked,
                last_piece_received: p.last_piece,
                am_interested: p.am_interested,
            })
            .collect();
        let decision = self.choker.run_round(&views, self.complete, now);
        let unchoke: HashSet<SocketAddr> = decision.unchoke.into_iter().collect();
        log::debug!("{} choke round: unchoking {unchoke:?}", self.tag);
        for (addr, peer) in &mut self.peers {
            if peer.connected {
                peer.set_choke(!unchoke.contains(addr), now);
            }
        }
    }

    /// A peer became interested: unchoke it at once if an upload slot is
    /// free, rather than make it wait for the next round.
    fn unchoke_if_slot_free(&mut self, addr: SocketAddr) {
        let unchoked = self
            .peers
            .values()
            .filter(|p| p.connected && !p.am_choking)
            .count();
        if unchoked > self.config.upload_slots {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.set_choke(false, Instant::now());
        }
    }

    /// Peer exchange (BEP 11): tells each peer, at most once a minute, which
    /// peers we connected to or dropped since. Only addresses we dialled are
    /// shared (an inbound peer's source port is not where it listens).
    /// Private torrents never exchange peers.
    fn send_pex(&mut self, now: Instant) {
        if self.meta.private {
            return;
        }
        let known: Vec<SocketAddr> = self
            .peers
            .iter()
            .filter(|(_, p)| p.connected && !p.inbound)
            .map(|(a, _)| *a)
            .collect();
        for (addr, peer) in &mut self.peers {
            if !peer.connected {
                continue;
            }
            let others = known.iter().filter(|a| *a != addr).map(|a| PexPeer {
                addr: *a,
                flags: PexFlags::default(),
            });
            if let Some(msg) = peer.pex.next_message(now, others) {
                let _ = peer.handle.send(PeerCommand::Pex(msg));
            }
        }
    }

    /// Marks the faster half of the peers that send us data as fast.
    fn rank_peers(&mut self, now: Instant) {
        let mut rates: Vec<f64> = self.peers.values_mut().map(|p| p.rate.rate(now)).collect();
        rates.sort_by(|a, b| b.total_cmp(a));
        let cut = rates
            .get(rates.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0);
        for peer in self.peers.values_mut() {
            let rate = peer.rate.rate(now);
            peer.fast = rate >= cut;
        }
    }

    /// Announces on the DHT (which also finds peers) when due: right after the
    /// check, then every 5 minutes, or after 30 s when nobody was found.
    fn dht_announce(&mut self, now: Instant) {
        if self.state != State::Active || !self.dht_lookup.is_empty() || now < self.next_dht {
            return;
        }
        let Some(dht) = self.dht.clone() else {
            return;
        };
        let (info_hash, port) = (self.info_hash, self.config.port);
        self.dht_lookup
            .spawn(async move { dht.announce(info_hash, port).await });
    }

    fn on_dht(&mut self, found: Result<Result<Announced, DhtError>, JoinError>) {
        let now = Instant::now();
        match found {
            Ok(Ok(announced)) => {
                log::debug!(
                    "{} DHT: {} peers, announced to {} nodes",
                    self.tag,
                    announced.peers.len(),
                    announced.nodes
                );
                let again = if announced.peers.is_empty() { 30 } else { 300 };
                self.next_dht = now + Duration::from_secs(again);
                for addr in announced.peers {
                    self.swarm.add(addr, false, now);
                }
                self.connect_more();
            }
            Ok(Err(e)) => {
                log::debug!("{} DHT lookup failed: {e}", self.tag);
                self.next_dht = now + Duration::from_secs(30);
            }
            Err(e) => {
                log::warn!("{} DHT task failed: {e}", self.tag);
                self.next_dht = now + Duration::from_secs(30);
            }
        }
    }

    /// Writes the resume record (verified pieces) on a blocking thread.
    fn save_resume(&mut self) {
        self.resume_dirty = false;
        let store = Arc::clone(&self.store);
        let have = self.picker.have().clone();
        self.saving.spawn_blocking(move || store.save_resume(&have));
    }

    fn on_resume_saved(&mut self, saved: Result<Result<(), StoreError>, JoinError>) {
        match saved {
            Ok(Ok(())) => {}
            // Not fatal: without a record the next start checks by hash.
            Ok(Err(e)) => log::warn!("{} cannot write the resume record: {e}", self.tag),
            Err(e) => log::warn!("{} resume record task failed: {e}", self.tag),
        }
    }

    fn publish_transfer(&self) {
        self.stats_tx.send_replace(TransferStats {
            uploaded: self.upload.total(),
            downloaded: self.bytes_have,
            left: self.meta.total_length - self.bytes_have.min(self.meta.total_length),
        });
    }

    fn stats(&mut self, now: Instant) -> TorrentStats {
        TorrentStats {
            pieces_total: self.meta.piece_count(),
            pieces_have: self.picker.have().count_ones(),
            bytes_total: self.meta.total_length,
            bytes_have: self.bytes_have,
            bytes_wanted: self.picker.wanted_bytes(),
            bytes_left: self.picker.missing_wanted_bytes(),
            downloaded: self.download.total(),
            uploaded: self.upload.total(),
            wasted: self.wasted,
            download_rate: self.download.rate(now),
            upload_rate: self.upload.rate(now),
            peers: self.peers.values().filter(|p| p.connected).count(),
            known_peers: self.swarm.len(),
            interested_peers: self.peers.values().filter(|p| p.peer_interested).count(),
            inbound_peers: self
                .peers
                .values()
                .filter(|p| p.connected && p.inbound)
                .count(),
            unchoked_peers: self
                .peers
                .values()
                .filter(|p| p.connected && !p.am_choking)
                .count(),
            complete: self.complete,
            state: match self.state {
                State::Checking => TorrentState::Checking,
                State::Paused => TorrentState::Paused,
                State::Active if self.picker.have().is_full() => TorrentState::Seeding,
                State::Active if self.complete => TorrentState::Finished,
                State::Active => TorrentState::Downloading,
            },
            trackers: self.tracker_status.borrow().clone(),
        }
    }
}

impl PeerEntry {
    fn new(handle: PeerHandle, piece_count: usize, inbound: bool, now: Instant) -> Self {
        Self {
            handle,
            connected: false,
            inbound,
            peer_id: None,
            bitfield: Bitfield::new(piece_count),
            in_flight: HashSet::new(),
            choking_us: true,
            am_interested: false,
            am_choking: true,
            peer_interested: false,
            rate: RateMeter::new(now),
            upload: RateMeter::new(now),
            target: MIN_PIPELINE,
            last_block: now,
            last_piece: None,
            connected_at: now,
            last_unchoked: None,
            unasked: UnaskedBlocks::default(),
            strikes: 0,
            pex: PexState::new(),
            fast: true,
        }
    }

    /// Chokes or unchokes the peer if that changes anything.
    fn set_choke(&mut self, choke: bool, now: Instant) {
        if self.am_choking == choke {
            return;
        }
        self.am_choking = choke;
        if !choke {
            self.last_unchoked = Some(now);
        }
        if self.handle.send(PeerCommand::Choke(choke)).is_err() {
            self.handle.disconnect();
        }
    }
}
