//! What a torrent and its session share without messages: the torrent's
//! status (up, in a `Shared` the session reads), the queue's verdict (down,
//! in the same `Shared`, with a wake-up) and the session's share limits
//! (down, on a `watch` the torrent reads).
//!
//! The per-torrent part is one small allocation rather than two `watch`
//! channels (each ~350 bytes, most of it wakers for many receivers): with
//! thousands of torrents in a session, it counts.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{broadcast, watch, Notify, Semaphore};

use crate::event::Event;
use crate::limits::ShareLimits;

/// What the session's queue needs to know about one torrent.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Standing {
    /// Paused by the user, by a share limit, or stopped by an error.
    pub paused: bool,
    /// Runs regardless of the limits.
    pub force: bool,
    /// Complete: it counts as a seed, not a download.
    pub seeding: bool,
}

/// A torrent's status as the session sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct TorrentStatus {
    pub standing: Standing,
    /// Payload received in this session.
    pub downloaded: u64,
    /// Payload sent in this session.
    pub uploaded: u64,
    /// Bytes per second.
    pub download_rate: f64,
    pub upload_rate: f64,
}

/// The state one torrent and its session share.
#[derive(Debug)]
struct Shared {
    /// Published by the torrent, read by the session.
    status: Mutex<TorrentStatus>,
    /// True while the session's queue holds the torrent back.
    queued: AtomicBool,
    /// Woken when `queued` changes (a stored permit if the torrent is busy,
    /// so no change is missed).
    queued_changed: Notify,
}

/// The torrent's ends of what it shares with its session.
#[derive(Debug)]
pub(crate) struct SessionLinks {
    shared: Arc<Shared>,
    /// Woken when a torrent's standing changes: the queue is decided again.
    pub changed: Arc<Notify>,
    /// The session's share limits.
    pub share: watch::Receiver<ShareLimits>,
    /// The session's event stream.
    pub events: broadcast::Sender<Event>,
    /// Permits to check a store: the session's torrents check a few at a
    /// time.
    pub checks: Arc<Semaphore>,
    /// The standing last published (none yet).
    published: Option<Standing>,
}

/// The session's ends of what one torrent shares with it.
#[derive(Debug)]
pub(crate) struct TorrentLinks {
    shared: Arc<Shared>,
}

impl SessionLinks {
    /// A torrent's links; it starts queued until the session decides.
    pub(crate) fn new(
        changed: Arc<Notify>,
        share: watch::Receiver<ShareLimits>,
        events: broadcast::Sender<Event>,
        checks: Arc<Semaphore>,
    ) -> (Self, TorrentLinks) {
        let shared = Arc::new(Shared {
            status: Mutex::new(TorrentStatus::default()),
            queued: AtomicBool::new(true),
            queued_changed: Notify::new(),
        });
        let links = Self {
            shared: Arc::clone(&shared),
            changed,
            share,
            events,
            checks,
            published: None,
        };
        (links, TorrentLinks { shared })
    }

    /// True while the session's queue holds the torrent back.
    pub(crate) fn queued(&self) -> bool {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// What tells when the queue's verdict changes (held apart from the
    /// links, so waiting on it borrows nothing else).
    pub(crate) fn queue_watch(&self) -> QueueWatch {
        QueueWatch(Arc::clone(&self.shared))
    }

    /// Publishes the torrent's standing and wakes the session, if it
    /// changed (called after every input: no lock otherwise).
    pub(crate) fn publish_standing(&mut self, standing: Standing) {
        if self.published == Some(standing) {
            return;
        }
        self.published = Some(standing);
        self.shared.modify(|s| s.standing = standing);
        self.changed.notify_one();
    }

    /// Publishes the torrent's totals and rates.
    pub(crate) fn publish_transfer(&self, downloaded: u64, uploaded: u64, rates: (f64, f64)) {
        self.shared.modify(|s| {
            s.downloaded = downloaded;
            s.uploaded = uploaded;
            (s.download_rate, s.upload_rate) = rates;
        });
    }
}

impl TorrentLinks {
    /// The torrent's status as last published.
    pub(crate) fn status(&self) -> TorrentStatus {
        *self
            .shared
            .status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Tells the torrent whether the queue holds it back (it is woken only
    /// on a change).
    pub(crate) fn set_queued(&self, queued: bool) {
        if self.shared.queued.swap(queued, Ordering::AcqRel) != queued {
            self.shared.queued_changed.notify_one();
        }
    }
}

/// Wakes a torrent when its session's queue changes its verdict.
#[derive(Debug)]
pub(crate) struct QueueWatch(Arc<Shared>);

impl QueueWatch {
    /// Returns when the queue's verdict may have changed since the last
    /// call (read it with [`SessionLinks::queued`]).
    pub(crate) async fn changed(&self) {
        self.0.queued_changed.notified().await;
    }
}

impl Shared {
    fn modify(&self, f: impl FnOnce(&mut TorrentStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }
}
