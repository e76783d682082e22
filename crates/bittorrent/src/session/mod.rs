//! The session: the root actor. It owns every torrent actor and the event
//! stream an embedder watches.
//!
//! [`Session::spawn`] starts it and returns a [`SessionHandle`] (cheap to
//! clone, usable from any task) and an [`EventReceiver`].

mod actor;
mod command;
mod error;
mod listener;
pub(crate) mod queue;

pub use crate::config::{EncryptionPolicy, SessionConfig, UtpMode};
pub use crate::event::{Event, EventReceiver};
pub use error::SessionError;

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::dht::DhtStats;
use crate::limits::{QueueConfig, QueueMove, RateLimits, ShareLimits};
use crate::portmap::MappedPort;
use crate::ratelimit::RateLimiter;
use crate::session::command::SessionCommand;
use crate::torrent::{Torrent, TorrentHandle};
use crate::types::InfoHash;
use crate::utp::{Endpoint, SharedUdp};

/// Counters of a session, as of the moment they were taken.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Torrents in the session.
    pub torrents: usize,
    /// The DHT's counters (its routing table size tells whether it has found
    /// any node); `None` when the session runs no DHT.
    pub dht: Option<DhtStats>,
    /// The ports the gateway forwards to us (empty without port mapping).
    pub port_mappings: Vec<MappedPort>,
    /// Download rate of every torrent together, payload bytes per second.
    pub download_rate: u64,
    /// Upload rate of every torrent together.
    pub upload_rate: u64,
    /// Payload bytes received by the session's torrents (this session,
    /// including torrents since removed; each torrent's as of its last
    /// second).
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// The session's rate limits in force.
    pub rate_limits: RateLimits,
    /// The session's queue order: every torrent's info-hash, the first to
    /// run first.
    pub queue: Vec<InfoHash>,
}

/// Namespace for starting a session: `Session::spawn()`.
#[derive(Debug)]
pub struct Session;

impl Session {
    /// Capacity of the session's command mailbox.
    const MAILBOX: usize = 64;
    /// Events buffered per subscriber before a slow one starts losing them.
    const EVENT_BUFFER: usize = 4096;

    /// Starts a session with default settings on the current tokio runtime.
    ///
    /// # Panics
    /// When called outside a tokio runtime (like `tokio::spawn`).
    pub fn spawn() -> (SessionHandle, EventReceiver) {
        Self::spawn_with(SessionConfig::default())
    }

    /// Starts a session with `config` on the current tokio runtime. If the
    /// listen address cannot be bound, the session runs without accepting
    /// connections, logs the error and publishes an [`Event::Error`]
    /// ([`SessionHandle::listen_addr`] is then `None`).
    ///
    /// # Panics
    /// When called outside a tokio runtime (like `tokio::spawn`).
    pub fn spawn_with(mut config: SessionConfig) -> (SessionHandle, EventReceiver) {
        let (tx, rx) = mpsc::channel(Self::MAILBOX);
        let (events_tx, events_rx) = broadcast::channel(Self::EVENT_BUFFER);
        let listener = config.listen.and_then(|addr| match listener::bind(addr) {
            Ok(l) => Some(l),
            Err(e) => {
                let message = format!("cannot listen on {addr}: {e}");
                log::error!("{message}");
                let _ = events_tx.send(Event::Error { message });
                None
            }
        });
        let listen_addr = listener.as_ref().and_then(|l| l.local_addr().ok());
        if let Some(addr) = listen_addr {
            log::info!("listening on {addr}");
            config.port = addr.port();
        }
        if config.announce_ipv6.is_none() {
            config.announce_ipv6 = listen_addr.and_then(crate::config::announce_ipv6_for);
        }
        let cancel = CancellationToken::new();
        let finished = CancellationToken::new();
        let utp = listen_addr
            .filter(|_| config.utp != UtpMode::Disable)
            .and_then(|addr| start_utp(addr, &cancel));
        let limits = RateLimiter::new(config.rate_limits);
        let handle = SessionHandle {
            tx,
            cancel: cancel.clone(),
            finished: finished.clone(),
            events: events_tx.downgrade(),
            listen_addr,
            limits: limits.clone(),
        };
        // The info-hashes of the session's torrents, kept by the actor: the
        // listener finds an encrypted handshake's torrent among them.
        let (torrents_tx, torrents_rx) = watch::channel(Arc::from(Vec::new()));
        let incoming = utp
            .as_ref()
            .map(|(endpoint, _)| endpoint.incoming(cancel.child_token()));
        let listener = listener.map(|l| {
            let inbound = listener::Inbound {
                session: handle.tx.downgrade(),
                torrents: torrents_rx,
                encryption: config.encryption,
            };
            tokio::spawn(listener::run(l, incoming, inbound, cancel.child_token()))
        });
        tokio::spawn(actor::run(
            config,
            rx,
            events_tx,
            (listener, torrents_tx),
            (utp, limits),
            cancel,
            finished,
        ));
        (handle, EventReceiver::new(events_rx))
    }
}

/// Starts uTP on the UDP port of the TCP listener's address. A port that
/// cannot be bound is logged, and the session runs on TCP alone (uTP is a
/// second transport, not a reason to stop).
fn start_utp(addr: SocketAddr, cancel: &CancellationToken) -> Option<(Endpoint, SharedUdp)> {
    match Endpoint::bind(addr, cancel.child_token()) {
        Ok(started) => {
            log::info!("uTP listening on {}", started.0.local_addr());
            Some(started)
        }
        Err(e) => {
            log::error!("cannot listen for uTP on UDP {addr}: {e}; TCP only");
            None
        }
    }
}

/// A cloneable handle to a running session.
#[derive(Clone, Debug)]
pub struct SessionHandle {
    tx: mpsc::Sender<SessionCommand>,
    cancel: CancellationToken,
    finished: CancellationToken,
    events: broadcast::WeakSender<Event>,
    listen_addr: Option<SocketAddr>,
    /// The session's rate limiter, shared with every peer and web seed.
    limits: RateLimiter,
}

impl SessionHandle {
    /// The address the session accepts peer connections on, if it listens.
    pub fn listen_addr(&self) -> Option<SocketAddr> {
        self.listen_addr
    }

    /// Stops a torrent (announcing `stopped`) and removes it from the
    /// session; its data stays in its store. Returns whether it was there.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn remove_torrent(&self, info_hash: InfoHash) -> Result<bool, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionCommand::RemoveTorrent { info_hash, reply })
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)
    }

    /// Adds a torrent and starts downloading it. Returns its info-hash at once;
    /// the outcome arrives as [`Event::TorrentAdded`] or [`Event::Error`] (a
    /// torrent that is already in the session is refused).
    pub fn add_torrent(&self, torrent: Torrent) -> InfoHash {
        let info_hash = torrent.info_hash();
        match self.tx.try_send(SessionCommand::AddTorrent {
            torrent: Box::new(torrent),
            reply: None,
        }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(cmd)) => {
                // The mailbox is momentarily full: queue the command from a task
                // rather than blocking the caller.
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(cmd).await;
                });
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                log::error!(
                    "[{}] cannot add torrent: session has stopped",
                    info_hash.short()
                );
            }
        }
        info_hash
    }

    /// Adds a torrent and waits until its actor runs.
    ///
    /// # Errors
    /// [`SessionError::DuplicateTorrent`] if it is already in the session,
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn add_torrent_and_wait(
        &self,
        torrent: Torrent,
    ) -> Result<TorrentHandle, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionCommand::AddTorrent {
                torrent: Box::new(torrent),
                reply: Some(reply),
            })
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)?
    }

    /// The handle of a torrent in the session.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn torrent(
        &self,
        info_hash: InfoHash,
    ) -> Result<Option<TorrentHandle>, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionCommand::GetTorrent { info_hash, reply })
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)
    }

    /// Handles of every torrent in the session.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn torrents(&self) -> Result<Vec<TorrentHandle>, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionCommand::ListTorrents { reply })
            .await
            .map_err(|_| SessionError::Stopped)?;
        rx.await.map_err(|_| SessionError::Stopped)
    }

    /// The session's counters: its torrents, its DHT node.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn stats(&self) -> Result<SessionStats, SessionError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(SessionCommand::Stats { reply })
            .await
            .map_err(|_| SessionError::Stopped)?;
        let mut stats = rx.await.map_err(|_| SessionError::Stopped)?;
        stats.rate_limits = self.limits.limits();
        Ok(stats)
    }

    /// Starts a graceful shutdown: every torrent stops (announcing `stopped`
    /// to its trackers, with a short timeout), every peer connection closes.
    /// Returns at once; [`join`](Self::join) waits for the end.
    pub fn shutdown(&self) {
        self.cancel.cancel();
    }

    /// Waits until the session and all its tasks have ended (after
    /// [`shutdown`](Self::shutdown), or when every handle is dropped).
    pub async fn join(&self) {
        self.finished.cancelled().await;
    }

    /// True once the session and all its tasks have ended.
    pub fn is_finished(&self) -> bool {
        self.finished.is_cancelled()
    }

    /// A new receiver of the session's events (from now on).
    pub fn subscribe(&self) -> EventReceiver {
        match self.events.upgrade() {
            Some(tx) => EventReceiver::new(tx.subscribe()),
            // The session has ended: a receiver that reports the end at once.
            None => EventReceiver::new(broadcast::channel(1).1),
        }
    }

    /// Sets the session's download and upload limits, shared by every
    /// torrent (each torrent's own limits apply under them). An embedder's
    /// "alternative speed limits" switch is two calls of this.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn set_rate_limits(&self, limits: RateLimits) -> Result<(), SessionError> {
        if self.is_finished() {
            return Err(SessionError::Stopped);
        }
        log::info!("session rate limits: {limits:?}");
        self.limits.set(limits, std::time::Instant::now());
        Ok(())
    }

    /// Sets the session's share limits: every torrent without its own stops
    /// seeding at them.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn set_share_limits(&self, limits: ShareLimits) -> Result<(), SessionError> {
        self.send(SessionCommand::SetShareLimits { limits }).await
    }

    /// Sets how many torrents run at once; the others are queued (state
    /// [`Queued`](crate::torrent::TorrentState::Queued)), in the queue's
    /// order.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn set_queue(&self, queue: QueueConfig) -> Result<(), SessionError> {
        self.send(SessionCommand::SetQueue { queue }).await
    }

    /// Moves a torrent in the session's queue. Returns whether it was there.
    ///
    /// # Errors
    /// [`SessionError::Stopped`] if the session has ended.
    pub async fn move_in_queue(
        &self,
        info_hash: InfoHash,
        to: QueueMove,
    ) -> Result<bool, SessionError> {
        let (reply, rx) = oneshot::channel();
        (self.send(SessionCommand::MoveInQueue {
            info_hash,
            to,
            reply,
        }))
        .await?;
        rx.await.map_err(|_| SessionError::Stopped)
    }

    async fn send(&self, cmd: SessionCommand) -> Result<(), SessionError> {
        self.tx.send(cmd).await.map_err(|_| SessionError::Stopped)
    }
}
