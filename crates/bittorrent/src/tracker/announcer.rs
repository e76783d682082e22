//! The per-torrent announce loop: tiers, intervals, events, backoff.

use std::net::SocketAddr;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::types::{InfoHash, PeerId};

/// Transfer counters the announcer reports; published by the torrent on a
/// `watch` channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Payload bytes uploaded.
    pub uploaded: u64,
    /// Verified payload bytes downloaded.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
}

/// What the announcer tells its torrent.
#[derive(Clone, Debug)]
pub enum TrackerUpdate {
    /// An announce succeeded.
    Announced {
        /// Tracker URL.
        url: String,
        /// Peers it returned.
        peers: Vec<SocketAddr>,
        /// Its `warning message`, if any.
        warning: Option<String>,
    },
    /// An announce failed (the loop retries with backoff).
    Failed {
        /// Tracker URL.
        url: String,
        /// The error, rendered.
        error: String,
    },
}

/// Fixed inputs of an announcer.
#[derive(Clone, Debug)]
pub struct AnnouncerConfig {
    /// Announce URLs in BEP 12 tiers.
    pub tiers: Vec<Vec<String>>,
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Port we announce.
    pub port: u16,
}

/// Runs until `cancel` fires: announces `started`, re-announces every
/// `interval` (never sooner than `min interval`), sends `completed` once when
/// `stats.left` drops to 0 after having been non-zero, and on cancellation
/// sends `stopped` with a short timeout. Results go to `updates` (with
/// `send().await`: the torrent drains it).
pub async fn run_announcer(
    config: AnnouncerConfig,
    stats: watch::Receiver<TransferStats>,
    updates: mpsc::Sender<TrackerUpdate>,
    cancel: CancellationToken,
) {
    let _ = (config, stats, updates, cancel);
    todo!()
}

impl AnnouncerConfig {
    /// An announcer configuration with default timings.
    pub fn new(tiers: Vec<Vec<String>>, info_hash: InfoHash, peer_id: PeerId, port: u16) -> Self {
        Self {
            tiers,
            info_hash,
            peer_id,
            port,
        }
    }
}
