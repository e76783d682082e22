//! The session actor's state and run loop.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch, Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::dht::{DhtConfig, DhtHandle};
use crate::limits::{QueueConfig, ShareLimits};
use crate::peer::connect::Connector;
use crate::portmap::{self, ExternalPort, MapTransport};
use crate::ratelimit::{LinkLimits, RateLimiter};
use crate::session::command::SessionCommand;
use crate::session::queue::{self, Queue};
use crate::session::{Event, SessionConfig, SessionError, SessionStats};
use crate::torrent::status::{SessionLinks, TorrentLinks};
use crate::torrent::{TorrentCommand, TorrentHandle};
use crate::types::InfoHash;
use crate::utp::{Endpoint, SharedUdp};

/// Most commands taken in one go before the queue is decided again.
const BATCH: usize = 1024;

/// The answer to an `add_torrent_and_wait`, sent once the queue has decided.
type AddReply = (
    oneshot::Sender<Result<TorrentHandle, SessionError>>,
    Result<TorrentHandle, SessionError>,
);

/// A torrent of the session, what stops it, and its status and queue
/// channels.
struct Entry {
    handle: TorrentHandle,
    cancel: CancellationToken,
    links: TorrentLinks,
}

struct SessionActor {
    config: Arc<SessionConfig>,
    dht: Option<DhtHandle>,
    /// Opens outbound peer connections for every torrent.
    connector: Connector,
    torrents: HashMap<InfoHash, Entry>,
    /// The keys of `torrents`, shared with the listener.
    torrent_list: watch::Sender<Arc<[InfoHash]>>,
    tasks: JoinSet<InfoHash>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    /// The queue's order and limits.
    queue: Queue,
    queue_config: QueueConfig,
    /// The session's share limits, read by every torrent.
    share: watch::Sender<ShareLimits>,
    /// Woken when a torrent's standing changes.
    changed: Arc<Notify>,
    /// Permits to check a store, shared by the torrents.
    checks: Arc<Semaphore>,
    /// Payload received and sent by torrents since removed.
    removed: (u64, u64),
    /// Torrents were added or removed: the queue is to be decided and the
    /// list published (once per batch of commands).
    dirty: bool,
    /// Answers to adds, held until the queue has decided.
    replies: Vec<AddReply>,
}

/// Runs the session until `cancel` fires or every handle is dropped, then
/// stops the listener and every torrent, waits for them, and fires `finished`.
pub(crate) async fn run(
    config: SessionConfig,
    mut rx: mpsc::Receiver<SessionCommand>,
    events: broadcast::Sender<Event>,
    (listener, torrent_list): (Option<JoinHandle<()>>, watch::Sender<Arc<[InfoHash]>>),
    (utp, limits): (Option<(Endpoint, SharedUdp)>, RateLimiter),
    cancel: CancellationToken,
    finished: CancellationToken,
) {
    let mut children = JoinSet::new();
    let (endpoint, shared) = utp.unzip();
    let mut config = config;
    let transports = mapped_transports(listener.is_some(), endpoint.is_some());
    start_port_mapping(&mut config, transports, &events, &cancel, &mut children);
    let dht = start_dht(config.dht.clone(), shared, &events, &cancel, &mut children).await;
    let connector = Connector::with_transports(
        config.connect_timeout,
        config.encryption,
        endpoint,
        config.utp,
    )
    .with_limits(LinkLimits::session(limits));
    let mut actor = SessionActor {
        dht,
        connector,
        queue: Queue::default(),
        queue_config: config.queue,
        share: watch::channel(config.share_limits).0,
        changed: Arc::new(Notify::new()),
        removed: (0, 0),
        config: Arc::new(config),
        torrents: HashMap::new(),
        torrent_list,
        tasks: JoinSet::new(),
        events,
        cancel: cancel.clone(),
        dirty: false,
        replies: Vec::new(),
        checks: Arc::new(Semaphore::new(concurrent_checks())),
    };
    log::debug!("session started, peer id {:?}", actor.config.peer_id);
    actor.serve(&mut rx).await;

    log::info!("session shutting down ({} torrents)", actor.torrents.len());
    cancel.cancel();
    // Inbound connections still queued in our mailbox are dropped with it.
    drop(rx);
    if let Some(listener) = listener {
        let _ = listener.await;
    }
    actor.stop_torrents().await;
    drop(actor);
    while children.join_next().await.is_some() {}
    finished.cancel();
    log::debug!("session ended");
}

/// How many stores are checked at once: one per core, at most four (more
/// only makes them wait on the disk and hold more read buffers).
fn concurrent_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().min(4))
}

/// What the port mapper maps: TCP when listening, UDP when uTP runs (the
/// DHT shares its socket, or has its own configured port).
fn mapped_transports(listening: bool, utp: bool) -> Vec<MapTransport> {
    let mut transports = Vec::new();
    if listening {
        transports.push(MapTransport::Tcp);
    }
    if utp {
        transports.push(MapTransport::Udp);
    }
    transports
}

/// Starts the port mapper if configured and there is a port to map, with
/// its task in `children` (it deletes its mappings when `cancel` fires), and
/// gives `config` the receiver of its mappings.
fn start_port_mapping(
    config: &mut SessionConfig,
    transports: Vec<MapTransport>,
    events: &broadcast::Sender<Event>,
    cancel: &CancellationToken,
    children: &mut JoinSet<()>,
) {
    let Some(settings) = config.port_mapping.clone() else {
        return;
    };
    if transports.is_empty() {
        log::warn!("port mapping: not listening, nothing to map");
        return;
    }
    let ports = transports.into_iter().map(|t| (t, config.port)).collect();
    let (published, external) = ExternalPort::channel();
    config.external_port = external;
    children.spawn(portmap::run(
        settings,
        ports,
        published,
        events.clone(),
        cancel.child_token(),
    ));
}

/// Starts the DHT node if configured, with its task and its bootstrap in
/// `children`: on the UDP port `shared` with uTP when its configured port is
/// that one or 0, else on its own. A DHT that cannot start is reported and
/// left out.
async fn start_dht(
    config: Option<DhtConfig>,
    shared: Option<SharedUdp>,
    events: &broadcast::Sender<Event>,
    cancel: &CancellationToken,
    children: &mut JoinSet<()>,
) -> Option<DhtHandle> {
    let config = config?;
    let port = config.bind.port();
    let shared = shared.filter(|s| port == 0 || port == s.local_addr().port());
    let started = match shared {
        Some(shared) => DhtHandle::spawn_shared(config, shared, cancel.child_token()).await,
        None => DhtHandle::spawn(config, cancel.child_token()).await,
    };
    let (dht, task) = match started {
        Ok(started) => started,
        Err(e) => {
            let message = format!("cannot start the DHT: {e}");
            log::error!("{message}");
            let _ = events.send(Event::Error { message });
            return None;
        }
    };
    log::info!("DHT listening on {:?}", dht.local_addrs());
    children.spawn(async move {
        let _ = task.await;
    });
    let bootstrapping = dht.clone();
    let stop = cancel.clone();
    children.spawn(async move {
        tokio::select! {
            found = bootstrapping.bootstrap() => match found {
                Ok(n) => log::info!("DHT bootstrapped: {n} nodes"),
                Err(e) => log::warn!("DHT bootstrap failed: {e}"),
            },
            _ = stop.cancelled() => {}
        }
    });
    Some(dht)
}

impl SessionActor {
    /// Handles commands and reaps ended torrents until `cancel` fires or
    /// every handle is dropped.
    async fn serve(&mut self, rx: &mut mpsc::Receiver<SessionCommand>) {
        let cancel = self.cancel.clone();
        let changed = Arc::clone(&self.changed);
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                () = changed.notified() => self.requeue(),
                cmd = rx.recv() => match cmd {
                    Some(cmd) => {
                        self.handle(cmd);
                        // A burst (thousands of torrents added) is taken
                        // together: the queue decided once for all of it.
                        for _ in 1..BATCH {
                            let Ok(cmd) = rx.try_recv() else { break };
                            self.handle(cmd);
                        }
                    }
                    None => break,
                },
                Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => match ended {
                    Ok(info_hash) => {
                        log::debug!("[{}] torrent task ended", info_hash.short());
                        self.forget(&info_hash);
                    }
                    Err(e) => log::error!("a torrent task failed: {e}"),
                },
            }
            self.settle();
        }
    }

    /// After added or removed torrents: decides the queue, publishes the
    /// list, and answers the adds that wait.
    fn settle(&mut self) {
        if std::mem::take(&mut self.dirty) {
            self.requeue();
            self.publish_torrents();
        }
        for (reply, result) in self.replies.drain(..) {
            let _ = reply.send(result);
        }
    }

    /// Shares the current info-hashes with the listener.
    fn publish_torrents(&self) {
        let list: Arc<[InfoHash]> = self.torrents.keys().copied().collect();
        self.torrent_list.send_replace(list);
    }

    /// Drops every torrent's handle and waits for their tasks to end.
    async fn stop_torrents(&mut self) {
        self.torrents.clear();
        while let Some(res) = self.tasks.join_next().await {
            if let Err(e) = res {
                log::error!("a torrent task failed during shutdown: {e}");
            }
        }
    }

    fn emit(&self, event: Event) {
        let _ = self.events.send(event);
    }

    fn handle(&mut self, cmd: SessionCommand) {
        match cmd {
            SessionCommand::AddTorrent { torrent, reply } => {
                let result = self.add(*torrent);
                if let Some(reply) = reply {
                    self.replies.push((reply, result));
                }
            }
            SessionCommand::GetTorrent { info_hash, reply } => {
                let _ = reply.send(self.torrents.get(&info_hash).map(|e| e.handle.clone()));
            }
            SessionCommand::ListTorrents { reply } => {
                let _ = reply.send(self.torrents.values().map(|e| e.handle.clone()).collect());
            }
            SessionCommand::Stats { reply } => {
                let mut stats = self.transfer_stats();
                stats.torrents = self.torrents.len();
                // The DHT answers from its own task: ask it without waiting here.
                let dht = self.dht.clone();
                let port_mappings = self.config.external_port.mappings();
                tokio::spawn(async move {
                    let dht = match dht {
                        Some(dht) => dht.stats().await.ok(),
                        None => None,
                    };
                    let _ = reply.send(SessionStats {
                        dht,
                        port_mappings,
                        ..stats
                    });
                });
            }
            SessionCommand::RemoveTorrent { info_hash, reply } => {
                let found = match self.forget(&info_hash) {
                    Some(entry) => {
                        log::info!("[{}] removing torrent", info_hash.short());
                        entry.cancel.cancel();
                        self.emit(Event::TorrentRemoved { info_hash });
                        true
                    }
                    None => false,
                };
                let _ = reply.send(found);
            }
            SessionCommand::SetShareLimits { limits } => {
                self.share.send_replace(limits);
            }
            SessionCommand::SetQueue { queue } => {
                self.queue_config = queue;
                self.requeue();
            }
            SessionCommand::MoveInQueue {
                info_hash,
                to,
                reply,
            } => {
                let found = self.queue.move_to(&info_hash, to);
                self.requeue();
                let _ = reply.send(found);
            }
            SessionCommand::Inbound {
                addr,
                conn,
                handshake,
            } => {
                let info_hash = handshake.info_hash;
                match self.torrents.get(&info_hash) {
                    Some(entry) => {
                        let cmd = TorrentCommand::Inbound {
                            addr,
                            conn: Box::new(conn),
                            handshake: Box::new(handshake),
                        };
                        entry.handle.offer_inbound(cmd);
                    }
                    None => log::debug!("{addr} asked for unknown torrent {info_hash}; refused"),
                }
            }
        }
    }

    fn add(&mut self, torrent: crate::torrent::Torrent) -> Result<TorrentHandle, SessionError> {
        let info_hash = torrent.info_hash();
        if self.torrents.contains_key(&info_hash) {
            let err = SessionError::DuplicateTorrent(info_hash);
            log::warn!("{err}");
            self.emit(Event::Error {
                message: err.to_string(),
            });
            return Err(err);
        }
        let name = torrent.name();
        let cancel = self.cancel.child_token();
        let (links, session_links) = SessionLinks::new(
            Arc::clone(&self.changed),
            self.share.subscribe(),
            self.events.clone(),
            Arc::clone(&self.checks),
        );
        let handle = TorrentHandle::spawn(
            torrent,
            Arc::clone(&self.config),
            self.dht.clone(),
            (self.connector.clone(), links),
            cancel.clone(),
            &mut self.tasks,
        );
        self.torrents.insert(
            info_hash,
            Entry {
                handle: handle.clone(),
                cancel,
                links: session_links,
            },
        );
        self.queue.push(info_hash);
        self.dirty = true;
        log::info!("[{}] added torrent {name:?}", info_hash.short());
        self.emit(Event::TorrentAdded { info_hash, name });
        Ok(handle)
    }

    /// Takes a torrent out of the map and the queue, keeping its totals.
    fn forget(&mut self, info_hash: &InfoHash) -> Option<Entry> {
        let entry = self.torrents.remove(info_hash)?;
        let status = entry.links.status();
        self.removed.0 += status.downloaded;
        self.removed.1 += status.uploaded;
        self.queue.remove(info_hash);
        self.dirty = true;
        Some(entry)
    }

    /// Decides the queue again and tells each torrent whether it waits.
    fn requeue(&mut self) {
        let order = self.queue.order();
        let entries: Vec<&Entry> = order.iter().filter_map(|h| self.torrents.get(h)).collect();
        let standings: Vec<_> = (entries.iter())
            .map(|e| e.links.status().standing)
            .collect();
        let verdict = queue::decide(&self.queue_config, &standings);
        for (entry, queued) in entries.into_iter().zip(verdict) {
            entry.links.set_queued(queued);
        }
    }

    /// The torrents' rates and totals (those of removed ones included) and
    /// the queue order, from the status each torrent publishes.
    fn transfer_stats(&self) -> SessionStats {
        let (mut downloaded, mut uploaded) = self.removed;
        let (mut download_rate, mut upload_rate) = (0.0, 0.0);
        for entry in self.torrents.values() {
            let status = entry.links.status();
            downloaded += status.downloaded;
            uploaded += status.uploaded;
            download_rate += status.download_rate;
            upload_rate += status.upload_rate;
        }
        SessionStats {
            download_rate: download_rate as u64,
            upload_rate: upload_rate as u64,
            downloaded,
            uploaded,
            queue: self.queue.order().to_vec(),
            ..SessionStats::default()
        }
    }
}
