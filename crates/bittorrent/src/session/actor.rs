//! The session actor's state and run loop.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::dht::{DhtConfig, DhtHandle};
use crate::peer::connect::Connector;
use crate::portmap::{self, ExternalPort, MapTransport};
use crate::ratelimit::{LinkLimits, RateLimiter};
use crate::session::command::SessionCommand;
use crate::session::{Event, SessionConfig, SessionError, SessionStats};
use crate::torrent::{TorrentCommand, TorrentHandle};
use crate::types::InfoHash;
use crate::utp::{Endpoint, SharedUdp};

/// A torrent of the session and what stops it.
struct Entry {
    handle: TorrentHandle,
    cancel: CancellationToken,
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
        config: Arc::new(config),
        torrents: HashMap::new(),
        torrent_list,
        tasks: JoinSet::new(),
        events,
        cancel: cancel.clone(),
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
        loop {
            tokio::select! {
                _ = cancel.cancelled() => break,
                cmd = rx.recv() => match cmd {
                    Some(cmd) => self.handle(cmd),
                    None => break,
                },
                Some(ended) = self.tasks.join_next(), if !self.tasks.is_empty() => match ended {
                    Ok(info_hash) => {
                        log::debug!("[{}] torrent task ended", info_hash.short());
                        self.torrents.remove(&info_hash);
                        self.publish_torrents();
                    }
                    Err(e) => log::error!("a torrent task failed: {e}"),
                },
            }
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
                let result = self.add(torrent);
                if let Some(reply) = reply {
                    let _ = reply.send(result);
                }
            }
            SessionCommand::GetTorrent { info_hash, reply } => {
                let _ = reply.send(self.torrents.get(&info_hash).map(|e| e.handle.clone()));
            }
            SessionCommand::ListTorrents { reply } => {
                let _ = reply.send(self.torrents.values().map(|e| e.handle.clone()).collect());
            }
            SessionCommand::Stats { reply } => {
                let torrents = self.torrents.len();
                // The DHT answers from its own task: ask it without waiting here.
                let dht = self.dht.clone();
                let port_mappings = self.config.external_port.mappings();
                tokio::spawn(async move {
                    let dht = match dht {
                        Some(dht) => dht.stats().await.ok(),
                        None => None,
                    };
                    let _ = reply.send(SessionStats {
                        torrents,
                        dht,
                        port_mappings,
                        ..SessionStats::default() // SEAM(issue 14, h-queue): rates, totals, queue
                    });
                });
            }
            SessionCommand::RemoveTorrent { info_hash, reply } => {
                let found = match self.torrents.remove(&info_hash) {
                    Some(entry) => {
                        log::info!("[{}] removing torrent", info_hash.short());
                        entry.cancel.cancel();
                        self.publish_torrents();
                        self.emit(Event::TorrentRemoved { info_hash });
                        true
                    }
                    None => false,
                };
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
                            conn,
                            handshake,
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
        let (handle, task) = TorrentHandle::spawn(
            torrent,
            Arc::clone(&self.config),
            self.dht.clone(),
            self.connector.clone(),
            self.events.clone(),
            cancel.clone(),
        );
        self.tasks.spawn(async move {
            if let Err(e) = task.await {
                log::error!("[{}] torrent task failed: {e}", info_hash.short());
            }
            info_hash
        });
        self.torrents.insert(
            info_hash,
            Entry {
                handle: handle.clone(),
                cancel,
            },
        );
        self.publish_torrents();
        log::info!("[{}] added torrent {name:?}", info_hash.short());
        self.emit(Event::TorrentAdded { info_hash, name });
        Ok(handle)
    }
}
