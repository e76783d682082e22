//! The torrent actor: a thin async shell. One `select!` waits on the
//! mailbox, peer events, web seed events, blocking jobs, tracker updates,
//! DHT results, the magnet's metadata fetch, the session's share limits and a
//! tick (every second, or rarely while the torrent is quiet: see
//! [`schedule`](crate::torrent::core::schedule)); each input goes
//! to the synchronous [`TorrentCore`], and the shell carries out the
//! [`Action`](crate::torrent::core::Action)s it returns. The shell owns the
//! IO (peer handles, web seed tasks, blocking jobs); the core owns the
//! decisions.
//!
//! A magnet link's torrent starts in [`Phase::Metadata`] and becomes
//! [`Phase::Running`] in the same loop once its metadata is verified.

mod commands;
mod control;
mod effects;
mod inputs;
mod jobs;
mod magnet;
mod mailbox;
#[cfg(test)]
mod sizes;
mod tasks;
mod webseeds;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{broadcast, watch, Notify};
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::dht::{Announced, DhtError, DhtHandle};
use crate::event::Event;
use crate::metainfo::MetaInfo;
use crate::peer::connect::Connector;
use crate::peer::{PeerEvent, PeerHandle};
use crate::picker::PickMode;
use crate::store::Store;
use crate::torrent::actor::jobs::Jobs;
use crate::torrent::actor::magnet::MetadataPhase;
use crate::torrent::actor::mailbox::Mailbox;
use crate::torrent::actor::tasks::Tasks;
use crate::torrent::actor::webseeds::WebSeedTasks;
use crate::torrent::command::CommandReceiver;
use crate::torrent::core::control::RunOptions;
use crate::torrent::core::schedule::{QUIET_TICK, TICK};
use crate::torrent::core::swarm::Ourselves;
use crate::torrent::core::TorrentCore;
use crate::torrent::status::SessionLinks;
use crate::torrent::{FilePriorities, Source, Torrent};
use crate::tracker::{TrackerStatus, TrackerUpdate, TransferStats};
use crate::types::InfoHash;

/// Capacity of the mailbox all peers of a torrent report into. Mostly
/// blocks (16 KiB each) while downloading, and it fills while the writer is
/// behind (peer events wait then): 64 bounds that to 1 MiB.
const PEER_EVENTS: usize = 64;
/// Capacity of the mailbox the web seeds of a torrent report into. Each
/// event may hold a whole piece, and the tasks wait when it is full: this
/// bounds the pieces waiting for the torrent.
const WEB_SEED_EVENTS: usize = 4;
/// Capacity of the mailbox the announce loop reports into.
const TRACKER_UPDATES: usize = 16;

/// Where the torrent is.
enum Phase {
    /// A magnet link: fetching the info dictionary.
    Metadata(Box<MetadataPhase>),
    /// The metainfo and store are known.
    Running(Box<Running>),
    /// No metainfo, and none coming: the metadata phase failed or was
    /// cancelled, and the actor is stopping (also the phase before `start`).
    Ended,
}

/// A torrent with its metainfo and store.
struct Running {
    core: TorrentCore,
    meta: Arc<MetaInfo>,
    store: Arc<dyn Store>,
}

/// Options kept until the core is made (a magnet's come with its metadata).
struct Pending {
    peers: Vec<SocketAddr>,
    use_trackers: bool,
    file_priorities: Option<FilePriorities>,
    mode: PickMode,
    /// Web seeds given with the torrent (beside its `url-list`).
    web_seeds: Vec<String>,
    /// Paused, queued, forced, share limits, totals: the core's once it
    /// exists.
    run: RunOptions,
}

impl Pending {
    /// The torrent's source, and its options kept until the core is made;
    /// `queued`: the session's queue holds it back for now.
    fn split(torrent: Torrent, queued: bool) -> (Source, Self) {
        let Torrent {
            source,
            peers,
            use_trackers,
            file_priorities,
            mode,
            web_seeds,
            paused,
            force_start,
            // Taken by the handle (its limiter) before the actor starts.
            rate_limits: _,
            share_limits,
            totals,
        } = torrent;
        let run = RunOptions {
            paused,
            queued,
            force_start,
            share_limits,
            totals,
        };
        let pending = Self {
            peers,
            use_trackers,
            file_priorities,
            mode,
            web_seeds,
            run,
        };
        (source, pending)
    }
}

/// The actor's IO: handles, tasks and channels.
struct Shell {
    info_hash: InfoHash,
    tag: String,
    config: Arc<SessionConfig>,
    /// The session's DHT (not for private torrents).
    dht: Option<DhtHandle>,
    /// Opens outbound peer connections (shared by the session's torrents).
    connector: Connector,
    /// Our listen endpoints: candidates there are not dialled.
    ourselves: Arc<Ourselves>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    phase: Phase,
    pending: Pending,
    /// Where the peers report (made with the first peer).
    peer_events: Mailbox<PeerEvent>,
    peers: HashMap<SocketAddr, PeerHandle>,
    peer_tasks: Tasks<()>,
    /// The web seeds' tasks and handles.
    web: WebSeedTasks,
    jobs: Jobs,
    /// Where the announce loop reports (made when it starts).
    tracker_updates: Mailbox<TrackerUpdate>,
    /// The totals last given to the trackers.
    transfer: TransferStats,
    /// The channels shared with the announce loop, made when the first one
    /// starts (most torrents of a big session never announce).
    trackers: Option<Box<TrackerLinks>>,
    /// Cancels the running announce loop, if one runs.
    announcer: Option<CancellationToken>,
    /// Announce loops, the running one and any still sending `stopped`.
    announcers: Tasks<()>,
    /// DHT peer lookups of the metadata phase.
    lookups: Tasks<Result<Vec<SocketAddr>, DhtError>>,
    /// The running phase's DHT announce (at most one).
    dht_announce: Tasks<Result<Announced, DhtError>>,
    /// Shutting down: no new peers, requests or announces.
    stopping: bool,
    /// The channels shared with the session (status, queue, share limits).
    links: SessionLinks,
    /// The session still publishes its share limits.
    share_open: bool,
    /// A magnet link not started yet: paused or queued from the start.
    deferred: Option<Source>,
}

/// The torrent's ends of the channels it shares with its announce loops.
struct TrackerLinks {
    /// The totals for the announces.
    transfer: watch::Sender<TransferStats>,
    /// Each tracker's status, published by the announce loop (both phases).
    status: watch::Sender<Vec<TrackerStatus>>,
    /// Wakes the announce loop for an announce now.
    reannounce: Arc<Notify>,
}

/// The receiving ends of the actor's mailboxes.
struct Inputs {
    commands: CommandReceiver,
}

/// Runs a torrent until `cancel` fires, it is removed, or storage fails.
///
/// The shell is boxed apart from the task's future, which then holds only
/// what the loop awaits (with 5,000 torrents in a session, every byte of
/// the future counts 5,000 times; see ARCHITECTURE.md).
pub(crate) fn run(
    torrent: Torrent,
    config: Arc<SessionConfig>,
    dht: Option<DhtHandle>,
    connector: Connector,
    commands: CommandReceiver,
    links: SessionLinks,
    cancel: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let info_hash = torrent.info_hash();
    let (source, pending) = Pending::split(torrent, links.queued());
    let mut shell = Box::new(Shell {
        info_hash,
        tag: format!("[{}]", info_hash.short()),
        ourselves: Arc::new(our_endpoints(&config)),
        config,
        dht,
        connector,
        events: links.events.clone(),
        cancel,
        phase: Phase::Ended,
        pending,
        peer_events: Mailbox::new(PEER_EVENTS),
        peers: HashMap::new(),
        peer_tasks: Tasks::default(),
        web: WebSeedTasks::new(Mailbox::new(WEB_SEED_EVENTS)),
        jobs: Jobs::default(),
        tracker_updates: Mailbox::new(TRACKER_UPDATES),
        // A magnet announces as a leecher of unknown size (left = 1)
        // meanwhile.
        transfer: TransferStats {
            uploaded: 0,
            downloaded: 0,
            left: 1,
        },
        trackers: None,
        announcer: None,
        announcers: Tasks::default(),
        lookups: Tasks::default(),
        dht_announce: Tasks::default(),
        stopping: false,
        links,
        share_open: true,
        deferred: None,
    });
    let source = Box::new(source);
    async move {
        shell.start(*source);
        shell.publish_standing();
        let mut inputs = Inputs { commands };
        shell.run(&mut inputs).await;
        // Boxed: its state is made only at the end, not kept beside the
        // loop's for the torrent's whole life.
        Box::pin(shell.shutdown()).await;
    }
}

/// Our listen endpoints as peers would list them: the listen address and
/// port, and on an unspecified listen address the host's addresses (read
/// from the OS, no traffic). Not listening: none.
fn our_endpoints(config: &SessionConfig) -> Ourselves {
    use network_interface::{NetworkInterface, NetworkInterfaceConfig};
    let Some(listen) = config.listen else {
        return Ourselves::default();
    };
    // The session sets `port` to the listener's real port.
    let listen = SocketAddr::new(listen.ip(), config.port);
    let host = if listen.ip().is_unspecified() {
        NetworkInterface::show()
            .map_err(|e| log::debug!("cannot list network interfaces: {e}"))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Ourselves::new(listen, host.iter().flat_map(|i| &i.addr).map(|a| a.ip()))
}

impl Shell {
    /// Enters the first phase. A magnet link that may not run yet (paused
    /// or queued) waits: fetching its metadata would connect to peers.
    fn start(&mut self, source: Source) {
        let run = &self.pending.run;
        if matches!(source, Source::Magnet { .. }) && (run.paused || run.queued) {
            log::debug!("{} magnet waits (paused or queued)", self.tag);
            self.deferred = Some(source);
            return;
        }
        match source {
            Source::Meta { meta, store } => self.start_running(meta, store),
            Source::Magnet { magnet, make_store } => {
                let phase = MetadataPhase::start(
                    magnet,
                    make_store,
                    &self.config,
                    self.connector.clone(),
                    Arc::clone(&self.ourselves),
                    self.cancel.clone(),
                    Instant::now(),
                );
                phase.add_candidates(self.pending.peers.iter().copied());
                let tiers = phase.tiers();
                self.phase = Phase::Metadata(Box::new(phase));
                if self.pending.use_trackers && self.config.use_trackers && !tiers.is_empty() {
                    self.start_announcer(tiers);
                }
            }
        }
    }

    async fn run(&mut self, inputs: &mut Inputs) {
        let mut last_tick = Instant::now();
        let tick = tokio::time::sleep_until((last_tick + TICK).into());
        tokio::pin!(tick);
        let cancel = self.cancel.clone();
        let queue = self.links.queue_watch();
        loop {
            // While the writer is behind, peers' blocks wait in their own
            // sockets (they stop reading when the mailbox is full), not here.
            let takes_peer_events = self.takes_peer_events();
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = inputs.commands.recv() => match cmd {
                    Some(cmd) => self.on_command(*cmd),
                    // Every handle is gone, the session's included: stop.
                    None => break,
                },
                event = self.peer_events.recv(), if takes_peer_events => match event {
                    Some(event) => self.on_peer_event(event),
                    // We hold a sender ourselves, so this cannot happen.
                    None => break,
                },
                event = self.web.events.recv() => match event {
                    Some(event) => self.on_web_seed_event(event),
                    // We hold a sender ourselves, so this cannot happen.
                    None => break,
                },
                Some((job, result)) = self.jobs.next(), if !self.jobs.is_empty() => {
                    self.on_job(job, result);
                }
                update = self.tracker_updates.recv() => match update {
                    Some(update) => self.on_tracker(update),
                    // We hold a sender ourselves, so this cannot happen.
                    None => break,
                },
                Some(found) = self.lookups.join_next(), if !self.lookups.is_empty() => {
                    self.on_lookup(found);
                }
                Some(found) = self.dht_announce.join_next(), if !self.dht_announce.is_empty() => {
                    self.on_dht_announce(found);
                }
                info = fetch_metadata(&mut self.phase) => self.on_metadata(info),
                Some(_) = self.peer_tasks.join_next(), if !self.peer_tasks.is_empty() => {}
                Some(ended) = self.web.tasks.join_next(), if !self.web.tasks.is_empty() => {
                    self.on_web_seed_task_ended(ended);
                }
                Some(_) = self.announcers.join_next(), if !self.announcers.is_empty() => {}
                () = queue.changed() => self.on_queued(),
                changed = self.links.share.changed(), if self.share_open => match changed {
                    Ok(()) => self.on_session_share(),
                    Err(_) => self.share_open = false,
                },
                () = &mut tick => {
                    last_tick = Instant::now();
                    self.on_tick();
                }
            }
            self.perform_all();
            self.publish_standing();
            // At a tick, and after any input while the torrent sleeps long
            // (it may have become busy): when the next tick is due.
            let deadline = tokio::time::Instant::from_std(last_tick + TICK);
            if tick.is_elapsed() || tick.deadline() > deadline {
                let due = self.next_tick(last_tick).into();
                if due != tick.deadline() {
                    tick.as_mut().reset(due);
                }
            }
        }
    }

    /// When the tick after the one at `last` is due: the core's say while
    /// it runs; every second while fetching metadata; rarely once ended.
    fn next_tick(&mut self, last: Instant) -> Instant {
        match &mut self.phase {
            Phase::Running(running) => running.core.next_tick(last, Instant::now()),
            Phase::Metadata(_) => last + TICK,
            Phase::Ended => last + QUIET_TICK,
        }
    }

    /// Stops every child and waits for them; complete pieces are still
    /// verified and stored, and the last resume record written.
    async fn shutdown(&mut self) {
        log::debug!("{} stopping", self.tag);
        self.stopping = true;
        self.cancel.cancel();
        if let Phase::Running(running) = &mut self.phase {
            running.core.stop();
        }
        self.perform_all();
        for peer in self.peers.values() {
            peer.disconnect();
        }
        // Keep draining peer and web seed events so no task blocks on a
        // full mailbox.
        while !self.peer_tasks.is_empty() {
            tokio::select! {
                _ = self.peer_tasks.join_next() => {}
                _ = self.peer_events.recv() => {}
            }
        }
        while !self.web.tasks.is_empty() {
            tokio::select! {
                _ = self.web.tasks.join_next() => {}
                _ = self.web.events.recv() => {}
            }
        }
        loop {
            while let Some((job, result)) = self.jobs.next().await {
                self.on_job(job, result);
                self.perform_all();
            }
            let waiting = match &mut self.phase {
                Phase::Running(running) => running.core.finish(),
                _ => false,
            };
            self.perform_all();
            if !waiting || self.jobs.is_empty() {
                break;
            }
        }
        self.stop_announcer();
        self.lookups.shutdown().await;
        self.dht_announce.shutdown().await;
        while self.announcers.join_next().await.is_some() {}
        log::info!("{} stopped", self.tag);
    }

    /// The running phase's core, if the metadata is known.
    /// Whether peer events are taken now: not while blocks wait for the
    /// writer past its bound (a job runs then, whose end frees it).
    fn takes_peer_events(&self) -> bool {
        match &self.phase {
            Phase::Running(running) => running.core.takes_blocks(),
            _ => true,
        }
    }

    fn core(&mut self) -> Option<&mut TorrentCore> {
        match &mut self.phase {
            Phase::Running(running) => Some(&mut running.core),
            _ => None,
        }
    }

    fn emit(&self, event: Event) {
        // No subscriber is fine.
        let _ = self.events.send(event);
    }
}

/// The metadata fetch while in the metadata phase; never ready otherwise.
async fn fetch_metadata(phase: &mut Phase) -> Option<bytes::Bytes> {
    match phase {
        Phase::Metadata(metadata) => metadata.fetch().await,
        _ => std::future::pending().await,
    }
}
