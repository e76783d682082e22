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
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::peer::{PeerCommand, PeerHandle, PeerParams};
use crate::picker::{Picker, Received};
use crate::session::{Event, SessionConfig};
use crate::store::{Store, StoreError};
use crate::torrent::piece::PieceBuffer;
use crate::torrent::swarm::Swarm;
use crate::torrent::{PeerEvent, RateMeter, Torrent, TorrentCommand, TorrentStats};
use crate::tracker::{run_announcer, AnnouncerConfig, TrackerUpdate, TransferStats};
use crate::types::{BlockInfo, InfoHash, BLOCK_SIZE};

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
/// Bytes of blocks we never asked for that a peer may send before it is dropped.
const MAX_UNREQUESTED: u64 = 2 * 1024 * 1024;
/// Hash-failure weight at which a peer is banned (a sole contributor of a bad
/// piece adds 2, a co-contributor 1).
const BAN_THRESHOLD: u32 = 4;

/// Runs a torrent until `cancel` fires or storage fails.
pub(crate) async fn run(
    torrent: Torrent,
    config: Arc<SessionConfig>,
    commands: mpsc::Receiver<TorrentCommand>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
) {
    let now = Instant::now();
    let meta = Arc::new(torrent.meta);
    let info_hash = meta.info_hash;
    let (peer_tx, peer_rx) = mpsc::channel(PEER_EVENTS);
    let picker = Picker::new(meta.piece_count(), meta.piece_length, meta.total_length);
    let left = meta.total_length;
    let (stats_tx, stats_rx) = watch::channel(TransferStats {
        uploaded: 0,
        downloaded: 0,
        left,
    });
    let mut swarm = Swarm::default();
    for addr in &torrent.peers {
        swarm.add(*addr, true, now);
    }

    let (tracker_tx, tracker_rx) = mpsc::channel(16);
    let tracker =
        (torrent.use_trackers && config.use_trackers && !meta.trackers.is_empty()).then(|| {
            let cfg = AnnouncerConfig::new(
                meta.trackers.clone(),
                info_hash,
                config.peer_id,
                config.port,
            );
            tokio::spawn(run_announcer(
                cfg,
                stats_rx,
                tracker_tx,
                cancel.child_token(),
            ))
        });

    let mut actor = TorrentActor {
        info_hash,
        tag: format!("[{}]", info_hash.short()),
        meta,
        store: torrent.store,
        config,
        events,
        cancel,
        picker,
        pieces: HashMap::new(),
        peers: HashMap::new(),
        peer_tasks: JoinSet::new(),
        peer_tx,
        verifying: JoinSet::new(),
        verify_queue: VecDeque::new(),
        max_verifying: std::thread::available_parallelism().map_or(2, |n| n.get()),
        finalizing: JoinSet::new(),
        swarm,
        bytes_have: 0,
        download: RateMeter::new(now),
        upload: RateMeter::new(now),
        wasted: 0,
        stats_tx,
        complete: false,
    };
    actor.run(commands, peer_rx, tracker_rx, tracker).await;
}

struct TorrentActor {
    info_hash: InfoHash,
    tag: String,
    meta: Arc<MetaInfo>,
    store: Arc<dyn Store>,
    config: Arc<SessionConfig>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    picker: Picker,
    pieces: HashMap<u32, PieceBuffer>,
    peers: HashMap<SocketAddr, PeerEntry>,
    peer_tasks: JoinSet<()>,
    peer_tx: mpsc::Sender<PeerEvent>,
    verifying: JoinSet<Verified>,
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
    complete: bool,
}

/// The torrent's view of one peer connection.
struct PeerEntry {
    handle: PeerHandle,
    /// Handshake done.
    connected: bool,
    /// Pieces the peer has (exactly what was added to the picker's availability).
    bitfield: Bitfield,
    /// Blocks requested from this peer and not yet answered.
    in_flight: HashSet<BlockInfo>,
    choking_us: bool,
    am_interested: bool,
    peer_interested: bool,
    rate: RateMeter,
    /// Current pipeline depth target.
    target: usize,
    /// Last time a requested block arrived (or the pipeline was empty).
    last_block: Instant,
    /// Bytes of blocks received that we never requested from it.
    unrequested: u64,
    /// Weighted count of failed pieces it contributed to.
    strikes: u32,
}

/// Outcome of hashing (and, if good, storing) one piece.
struct Verified {
    index: u32,
    result: Result<bool, StoreError>,
    contributors: Vec<SocketAddr>,
}

impl TorrentActor {
    async fn run(
        &mut self,
        mut commands: mpsc::Receiver<TorrentCommand>,
        mut peer_rx: mpsc::Receiver<PeerEvent>,
        mut tracker_rx: mpsc::Receiver<TrackerUpdate>,
        tracker: Option<JoinHandle<()>>,
    ) {
        log::info!(
            "{} starting {:?}: {} pieces of {} bytes, {} bytes",
            self.tag,
            self.meta.name,
            self.meta.piece_count(),
            self.meta.piece_length,
            self.meta.total_length
        );
        let mut tracker_open = tracker.is_some();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        self.connect_more();
        let cancel = self.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
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
                update = tracker_rx.recv(), if tracker_open => match update {
                    Some(update) => self.on_tracker(update),
                    None => tracker_open = false,
                },
                Some(_) = self.peer_tasks.join_next(), if !self.peer_tasks.is_empty() => {}
                _ = tick.tick() => self.on_tick(),
            }
        }
        self.shutdown(peer_rx, tracker).await;
    }

    /// Stops every child and waits for them; pieces being written finish.
    async fn shutdown(
        &mut self,
        mut peer_rx: mpsc::Receiver<PeerEvent>,
        tracker: Option<JoinHandle<()>>,
    ) {
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
        if let Some(t) = tracker {
            let _ = t.await;
        }
        log::info!("{} stopped", self.tag);
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
        }
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
        if self.complete || self.cancel.is_cancelled() {
            return;
        }
        let now = Instant::now();
        while self.peers.len() < self.config.max_peers_per_torrent {
            let peers = &self.peers;
            let Some(addr) = self.swarm.next(now, |a| peers.contains_key(a)) else {
                break;
            };
            let params = PeerParams {
                info_hash: self.info_hash,
                our_id: self.config.peer_id,
                piece_count: self.meta.piece_count(),
                have: self.picker.have().clone(),
                connect_timeout: self.config.connect_timeout,
            };
            let (handle, task) = PeerHandle::connect(
                addr,
                params,
                self.peer_tx.clone(),
                self.cancel.child_token(),
            );
            self.peer_tasks.spawn(task);
            log::debug!("{} connecting to {addr}", self.tag);
            self.peers
                .insert(addr, PeerEntry::new(handle, self.meta.piece_count(), now));
        }
    }

    fn on_peer_event(&mut self, event: PeerEvent) {
        match event {
            PeerEvent::Connected { addr, peer_id } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                peer.connected = true;
                peer.last_block = Instant::now();
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
                if let Some(peer) = self.peers.get_mut(&addr) {
                    peer.peer_interested = interested;
                }
            }
            PeerEvent::Block { addr, block, data } => self.on_block(addr, block, data),
            PeerEvent::Disconnected { addr, reason } => self.on_disconnected(addr, reason),
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
        if !peer.in_flight.remove(&block) {
            // Late after a cancel or choke, or never asked for.
            self.wasted += len;
            peer.unrequested += len;
            if peer.unrequested > MAX_UNREQUESTED {
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
                if self.picker.in_endgame() {
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
    fn spawn_verification(&mut self, index: u32, buffer: PieceBuffer) {
        let contributors = buffer.contributors.clone();
        let Some(blocks) = buffer.into_blocks() else {
            // Cannot happen (the picker said complete), but never store a hole.
            log::warn!("{} piece {index} complete without all blocks", self.tag);
            self.picker.piece_failed(index);
            return;
        };
        let Some(expected) = self.meta.piece_hashes.get(index as usize).copied() else {
            return;
        };
        let store = Arc::clone(&self.store);
        self.verifying.spawn_blocking(move || {
            let mut hasher = Sha1::new();
            for block in &blocks {
                hasher.update(block);
            }
            let result = if hasher.finalize().as_slice() == expected {
                store.write_piece(index, &blocks).map(|()| true)
            } else {
                Ok(false)
            };
            Verified {
                index,
                result,
                contributors,
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
        match verified.result {
            Ok(true) => {
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
            Ok(false) => self.on_hash_failure(index, &verified.contributors),
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

    fn on_hash_failure(&mut self, index: u32, contributors: &[SocketAddr]) {
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
        let weight = if contributors.len() == 1 { 2 } else { 1 };
        for addr in contributors {
            let Some(peer) = self.peers.get_mut(addr) else {
                continue;
            };
            peer.strikes += weight;
            if peer.strikes >= BAN_THRESHOLD {
                log::warn!(
                    "{} banning {addr}: it sent data that failed hash checks",
                    self.tag
                );
                self.swarm.ban(*addr);
                peer.handle.disconnect();
            }
        }
        self.request_more_all();
    }

    fn on_complete(&mut self) {
        self.complete = true;
        log::info!("{} all pieces verified; finalizing storage", self.tag);
        // No longer interested in anyone.
        let addrs: Vec<SocketAddr> = self.peers.keys().copied().collect();
        for addr in addrs {
            self.update_interest(addr);
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
                log::info!("{} download complete", self.tag);
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
        let blocks = self.picker.pick(&peer.bitfield, &peer.in_flight, room);
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
        self.request_more_all();
        self.connect_more();
        self.publish_transfer();
        let stats = self.stats(now);
        self.emit(Event::Stats {
            info_hash: self.info_hash,
            stats,
        });
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
            downloaded: self.download.total(),
            uploaded: self.upload.total(),
            wasted: self.wasted,
            download_rate: self.download.rate(now),
            upload_rate: self.upload.rate(now),
            peers: self.peers.values().filter(|p| p.connected).count(),
            interested_peers: self.peers.values().filter(|p| p.peer_interested).count(),
            complete: self.complete,
        }
    }
}

impl PeerEntry {
    fn new(handle: PeerHandle, piece_count: usize, now: Instant) -> Self {
        Self {
            handle,
            connected: false,
            bitfield: Bitfield::new(piece_count),
            in_flight: HashSet::new(),
            choking_us: true,
            am_interested: false,
            peer_interested: false,
            rate: RateMeter::new(now),
            target: MIN_PIPELINE,
            last_block: now,
            unrequested: 0,
            strikes: 0,
        }
    }
}
