//! What a torrent and its session share without messages: the torrent's
//! status (up, on a `watch` the session reads), the queue's verdict and the
//! session's share limits (down, on `watch`es the torrent reads).

use std::sync::Arc;

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

/// The torrent's ends of the channels it shares with its session.
#[derive(Debug)]
pub(crate) struct SessionLinks {
    /// The torrent publishes its status here.
    pub status: watch::Sender<TorrentStatus>,
    /// Woken when a torrent's standing changes: the queue is decided again.
    pub changed: Arc<Notify>,
    /// True while the session's queue holds the torrent back.
    pub queued: watch::Receiver<bool>,
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

/// The session's ends of one torrent's channels.
#[derive(Debug)]
pub(crate) struct TorrentLinks {
    pub status: watch::Receiver<TorrentStatus>,
    pub queued: watch::Sender<bool>,
}

impl SessionLinks {
    /// A torrent's links; it starts queued until the session decides.
    pub(crate) fn new(
        changed: Arc<Notify>,
        share: watch::Receiver<ShareLimits>,
        events: broadcast::Sender<Event>,
        checks: Arc<Semaphore>,
    ) -> (Self, TorrentLinks) {
        let (status, status_rx) = watch::channel(TorrentStatus::default());
        let (queued_tx, queued) = watch::channel(true);
        let links = Self {
            status,
            changed,
            queued,
            share,
            events,
            checks,
            published: None,
        };
        let session = TorrentLinks {
            status: status_rx,
            queued: queued_tx,
        };
        (links, session)
    }

    /// Publishes the torrent's standing and wakes the session, if it
    /// changed (called after every input: no lock otherwise).
    pub(crate) fn publish_standing(&mut self, standing: Standing) {
        if self.published == Some(standing) {
            return;
        }
        self.published = Some(standing);
        self.status.send_modify(|s| s.standing = standing);
        self.changed.notify_one();
    }

    /// Publishes the torrent's totals and rates.
    pub(crate) fn publish_transfer(&self, downloaded: u64, uploaded: u64, rates: (f64, f64)) {
        self.status.send_modify(|s| {
            s.downloaded = downloaded;
            s.uploaded = uploaded;
            (s.download_rate, s.upload_rate) = rates;
        });
    }
}
