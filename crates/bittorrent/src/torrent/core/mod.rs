//! The torrent's synchronous core: every decision of a running torrent,
//! without IO. The actor feeds it inputs (commands, peer events, job results,
//! tracker and DHT answers, a tick: every second, or
//! rarely when quiet, see [`schedule`]) with the current time and carries out
//! the [`Action`]s it returns.
//!
//! Parts, each with one job and its own tests:
//! - [`peers::PeerSet`]: connections, interest, pipelines, choke input, PEX;
//! - [`pieces::PieceFlow`]: the picker, blocks queued for the writer
//!   ([`disk`]: written as they arrive, hashed while hot), verifications,
//!   strikes and bans;
//! - [`readers::Readers`]: streaming waiters and read-ahead windows;
//! - [`selection::Selection`]: file priorities and the pick mode;
//! - [`swarm::Swarm`]: candidate addresses, backoff, bans;
//! - [`webseeds::WebSeeds`]: each web seed's state, run length, backoff;
//! - [`schedule`]: when the next tick is due (every second, or rarely
//!   when the torrent is quiet).
//!
//! `TorrentCore`'s own methods only route between the parts; they are split
//! by topic over `lifecycle.rs`, `peering.rs`, `flow.rs`, `streaming.rs` and
//! `webseeding.rs`.

pub(crate) mod control;
pub(crate) mod disk;
mod flow;
mod lifecycle;
mod peering;
pub(crate) mod peers;
pub(crate) mod piece;
pub(crate) mod pieces;
pub(crate) mod readers;
pub(crate) mod schedule;
pub(crate) mod selection;
mod streaming;
pub(crate) mod swarm;
#[cfg(test)]
mod tests;
pub(crate) mod unasked;
pub(crate) mod verify;
mod webseeding;
pub(crate) mod webseeds;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::choker::{Choker, ChokerConfig};
use crate::event::Event;
use crate::metainfo::MetaInfo;
use crate::peer::PeerCommand;
use crate::picker::{PickMode, Priority};
use crate::torrent::core::control::{new_picker, Control};
use crate::torrent::core::disk::DiskBatch;
use crate::torrent::core::peers::PeerSet;
use crate::torrent::core::pieces::PieceFlow;
use crate::torrent::core::readers::Readers;
use crate::torrent::core::selection::Selection;
use crate::torrent::core::swarm::{Ourselves, Swarm};
use crate::torrent::core::webseeds::WebSeeds;
use crate::torrent::RateMeter;
use crate::tracker::TransferStats;
use crate::types::InfoHash;
use crate::webseed::{WebSeedCommand, WebSeedId};

/// Seconds (ticks) between rounds of the choke algorithm.
const CHOKE_ROUND_TICKS: u64 = 10;
/// Most bytes of partial pieces (piece buffers) at once.
const MAX_PARTIAL_BYTES: u64 = 128 * 1024 * 1024;
/// DHT announce interval, and the retry after a failure or no peers.
const DHT_INTERVAL: Duration = Duration::from_secs(300);
const DHT_RETRY: Duration = Duration::from_secs(30);

/// What the core asks the actor to do.
// `Emit` carries events as they are (see `Event`), not boxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub(crate) enum Action {
    /// Send a command to a peer (`try_send`; a full mailbox drops the peer).
    Peer(SocketAddr, PeerCommand),
    /// Close a connection (its `Disconnected` event follows).
    Disconnect(SocketAddr),
    /// Start an outbound connection (the core has registered it).
    Dial(SocketAddr),
    /// Publish an event to the session's subscribers.
    Emit(Event),
    /// Write blocks and verify pieces on a blocking thread (one batch at a
    /// time).
    Disk(DiskBatch),
    /// Write the resume record with these verified pieces.
    SaveResume(Bitfield),
    /// Tell the store which files are wanted.
    StoreSelection(Vec<bool>),
    /// Finalize the store (every wanted piece is verified).
    Finalize,
    /// Start the announce loop.
    StartAnnouncer,
    /// Stop the announce loop (it sends `stopped`).
    StopAnnouncer,
    /// New transfer totals for the trackers.
    Transfer(TransferStats),
    /// Announce on the DHT (and find peers).
    DhtAnnounce,
    /// Hash the store's pieces again; `full`: ignore the resume record.
    Check { full: bool },
    /// Announce to the trackers now.
    Reannounce,
    /// Send a command to a web seed's task (it is idle: `try_send`).
    WebSeed(WebSeedId, WebSeedCommand),
    /// Stop a web seed's task for good (the core dropped it).
    DropWebSeed(WebSeedId),
}

/// What the core needs from the session and the torrent's options.
#[derive(Clone, Debug)]
pub(crate) struct CoreConfig {
    /// Dial while fewer connections than this.
    pub max_peers: usize,
    /// Accept inbound connections while fewer than this.
    pub max_connections: usize,
    /// Regular upload slots.
    pub upload_slots: usize,
    /// Announce to the trackers (the torrent has some, and both the session
    /// and the torrent allow it).
    pub use_trackers: bool,
    /// The session runs a DHT and the torrent is not private.
    pub use_dht: bool,
    /// Seed of the picker's and the choker's randomness (tests).
    pub seed: Option<u64>,
    /// Our listen endpoints: never dialled.
    pub ourselves: Ourselves,
}

/// The torrent's life cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Hashing what is already in the store.
    Checking,
    /// Downloading and/or seeding.
    Active,
    /// No connections, no announces; state kept.
    Paused,
    /// Shutting down: pieces in flight are verified, nothing new starts.
    Stopping,
}

/// Where finalizing the store is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Finalizing {
    No,
    /// Due once the store has taken the file selection.
    Due,
    /// The job runs.
    Running,
}

/// Every decision of one torrent (see the module doc).
#[derive(Debug)]
pub(crate) struct TorrentCore {
    meta: Arc<MetaInfo>,
    info_hash: InfoHash,
    config: CoreConfig,
    state: State,
    /// Every wanted piece is verified.
    complete: bool,
    peers: PeerSet,
    flow: PieceFlow,
    readers: Readers,
    swarm: Swarm,
    webseeds: WebSeeds,
    choker: Choker<SocketAddr>,
    selection: Selection,
    /// Payload received in this session.
    download: RateMeter,
    /// Payload sent in this session.
    upload: RateMeter,
    ticks: u64,
    /// The announce loop runs.
    announcing: bool,
    /// A DHT announce runs.
    dht_running: bool,
    /// When to announce on the DHT next.
    next_dht: Instant,
    /// Pieces were verified since the last resume record.
    resume_dirty: bool,
    /// The resume record is being written.
    saving: bool,
    /// The store is being finalized, or will be once it has taken the file
    /// selection (the two never run at once).
    finalizing: Finalizing,
    /// Whether it runs (pause, queue, error, share limits), its times.
    control: Control,
    out: Vec<Action>,
}

impl TorrentCore {
    /// A torrent about to check its store. `peers` are pinned candidates.
    pub(crate) fn new(
        meta: Arc<MetaInfo>,
        config: CoreConfig,
        files: Vec<Priority>,
        mode: PickMode,
        peers: &[SocketAddr],
        now: Instant,
    ) -> Self {
        let picker = new_picker(&meta, &config);
        let choker_config = ChokerConfig {
            slots: config.upload_slots,
            ..ChokerConfig::default()
        };
        let choker = match config.seed {
            Some(seed) => Choker::with_seed(choker_config, seed),
            None => Choker::new(choker_config),
        };
        let mut swarm = Swarm::new(config.ourselves.clone());
        for addr in peers {
            swarm.add(*addr, true, now);
        }
        let mut core = Self {
            info_hash: meta.info_hash,
            peers: PeerSet::new(
                meta.piece_count(),
                config.max_peers,
                config.max_connections,
                config.upload_slots,
            ),
            flow: PieceFlow::new(Arc::clone(&meta), picker),
            selection: Selection::new(files, meta.files.len(), mode),
            meta,
            config,
            state: State::Checking,
            complete: false,
            readers: Readers::default(),
            swarm,
            webseeds: WebSeeds::default(),
            choker,
            download: RateMeter::new(now),
            upload: RateMeter::new(now),
            ticks: 0,
            announcing: false,
            dht_running: false,
            next_dht: now,
            resume_dirty: false,
            saving: false,
            finalizing: Finalizing::No,
            control: Control::new(now),
            out: Vec::new(),
        };
        core.apply_priorities(now);
        core.cap_partial_pieces();
        core
    }

    /// The actions decided since the last call, in order.
    pub(crate) fn take_actions(&mut self) -> Vec<Action> {
        std::mem::take(&mut self.out)
    }

    /// Our verified pieces.
    pub(crate) fn have(&self) -> &Bitfield {
        self.flow.picker().have()
    }

    /// Which files the store must write in place.
    pub(crate) fn wanted_files(&self) -> Vec<bool> {
        self.selection.wanted()
    }

    pub(crate) fn meta(&self) -> &Arc<MetaInfo> {
        &self.meta
    }

    fn tag(&self) -> String {
        format!("[{}]", self.info_hash.short())
    }

    fn emit(&mut self, event: Event) {
        self.out.push(Action::Emit(event));
    }

    /// Totals for the trackers: payload moved in this session (BEP 3), and
    /// what is still missing.
    pub(crate) fn transfer(&self) -> TransferStats {
        let total = self.meta.total_length;
        TransferStats {
            uploaded: self.upload.total(),
            downloaded: self.download.total(),
            left: total - self.flow.bytes_have().min(total),
        }
    }

    fn publish_transfer(&mut self) {
        self.out.push(Action::Transfer(self.transfer()));
    }

    /// The picker's mode: the user's, except that a waiting reader turns
    /// rarest-first into streaming (its window is urgent).
    fn effective_mode(&self) -> PickMode {
        match self.selection.mode() {
            PickMode::RarestFirst if !self.readers.is_empty() => PickMode::Streaming,
            mode => mode,
        }
    }

    /// Every second, or rarely while quiet (see [`schedule`]): pipelines, snubs, resume record, choke rounds, web
    /// seeds' runs, dials, PEX, DHT, readers' leftovers, statistics.
    pub(crate) fn tick(&mut self, now: Instant) {
        if self.state == State::Stopping {
            return;
        }
        self.count_time(now);
        self.check_share_limit(now);
        // Whatever waits for the writer goes now (a partial piece's blocks
        // when its peers went quiet).
        self.flow.start_writes(&mut self.out, true);
        self.start_recheck_if_quiet(now);
        self.peers.tick(now, self.flow.picker_mut(), &mut self.out);
        self.cap_partial_pieces();
        if self.readers.sweep(self.flow.picker_mut(), now) {
            let mode = self.effective_mode();
            self.flow.picker_mut().set_mode(mode);
        }
        self.ticks += 1;
        self.save_resume_if_dirty();
        if self.ticks % CHOKE_ROUND_TICKS == 0 {
            let seeding = self.complete;
            self.peers
                .choke_round(&mut self.choker, seeding, now, &mut self.out);
        }
        self.schedule_web_seeds(now);
        self.request_more_all(now);
        self.connect_more(now);
        if !self.meta.private {
            self.peers.pex(now, &mut self.out);
        }
        self.dht_announce(now);
        self.publish_transfer();
        let stats = Box::new(self.stats(now));
        self.emit(Event::Stats {
            info_hash: self.info_hash,
            stats,
        });
    }

    /// Sets the picker's partial-piece cap from the connections, plus the
    /// pieces web seeds' runs hold (they cost no buffer until they arrive,
    /// whole, and must not hold the peers back).
    pub(crate) fn cap_partial_pieces(&mut self) {
        let cap = self
            .peers
            .partial_cap(self.meta.piece_length, MAX_PARTIAL_BYTES)
            .saturating_add(self.webseeds.held_pieces());
        self.flow.picker_mut().set_max_partial_pieces(cap);
    }

    /// Announces on the DHT when due: right after the check, then every 5
    /// minutes, or after 30 s when nobody was found.
    pub(crate) fn dht_announce(&mut self, now: Instant) {
        if !self.config.use_dht || self.state != State::Active {
            return;
        }
        if self.dht_running || now < self.next_dht {
            return;
        }
        self.dht_running = true;
        self.out.push(Action::DhtAnnounce);
    }

    /// A DHT announce ended: the peers it found, or why it failed.
    pub(crate) fn dht_done(&mut self, found: Result<Vec<SocketAddr>, String>, now: Instant) {
        self.dht_running = false;
        match found {
            Ok(peers) => {
                let again = if peers.is_empty() {
                    DHT_RETRY
                } else {
                    DHT_INTERVAL
                };
                self.next_dht = now + again;
                self.add_candidates(peers, false, now);
            }
            Err(e) => {
                log::debug!("{} DHT lookup failed: {e}", self.tag());
                self.next_dht = now + DHT_RETRY;
            }
        }
    }

    /// Our listen port is mapped on the NAT gateway at `external` (TCP;
    /// empty: not mapped): never dial it.
    pub(crate) fn set_mapped(&mut self, external: &[SocketAddr]) {
        self.swarm.set_mapped(external);
    }

    /// New candidate addresses; dials if there is room.
    pub(crate) fn add_candidates(
        &mut self,
        addrs: impl IntoIterator<Item = SocketAddr>,
        pinned: bool,
        now: Instant,
    ) {
        for addr in addrs {
            self.swarm.add(addr, pinned, now);
        }
        self.connect_more(now);
    }
}
