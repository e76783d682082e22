//! What a torrent reports about itself: [`TorrentStats`] and its parts.

use std::time::{Duration, SystemTime};

use crate::limits::{RateLimits, TorrentShareLimits};
use crate::tracker::TrackerStatus;

/// Counters of one torrent, as of the moment they were taken.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TorrentStats {
    /// Number of pieces.
    pub pieces_total: usize,
    /// Verified pieces.
    pub pieces_have: usize,
    /// Total payload bytes.
    pub bytes_total: u64,
    /// Verified payload bytes.
    pub bytes_have: u64,
    /// Bytes of the pieces that hold wanted (not skipped) files: what a
    /// download of the selected files fetches in all.
    pub bytes_wanted: u64,
    /// Bytes of those pieces not verified yet (0 when `complete`).
    pub bytes_left: u64,
    /// Payload bytes received from peers and web seeds (including discarded
    /// duplicates).
    pub downloaded: u64,
    /// Payload bytes sent to peers.
    pub uploaded: u64,
    /// Bytes received but thrown away (duplicates, unrequested, failed pieces).
    pub wasted: u64,
    /// Download rate, bytes per second (over the last few seconds).
    pub download_rate: f64,
    /// Upload rate, bytes per second.
    pub upload_rate: f64,
    /// Connected peers (handshake done).
    pub peers: usize,
    /// Peer addresses known from every source (trackers, DHT, PEX, the user,
    /// inbound connections), connected or not, that are still worth dialling.
    pub known_peers: usize,
    /// Connected peers interested in our pieces.
    pub interested_peers: usize,
    /// Connected peers that dialled us.
    pub inbound_peers: usize,
    /// Connected peers we currently upload to (unchoked).
    pub unchoked_peers: usize,
    /// Every wanted piece is verified: every selected file is done.
    pub complete: bool,
    /// Where the torrent is in its life cycle.
    pub state: TorrentState,
    /// Each tracker's status, in tier order (empty when the torrent does not
    /// announce: no trackers, or trackers turned off).
    pub trackers: Vec<TrackerStatus>,
    /// Payload bytes received from web seeds (BEP 19); part of
    /// `downloaded`.
    pub web_seed_downloaded: u64,
    /// Web seeds fetching pieces right now.
    pub web_seeds_active: usize,
    /// Each web seed's status, in the torrent's order (empty without web
    /// seeds, or with web seeds turned off).
    pub web_seeds: Vec<WebSeedStatus>,
    /// Connected peers that have every piece.
    pub seeds: usize,
    /// Connected peers that lack some piece.
    pub leechers: usize,
    /// Pieces that failed their hash check (this session).
    pub hash_failures: u64,
    /// All-time payload received: [`Totals::downloaded`] given at add plus
    /// `downloaded`.
    pub total_downloaded: u64,
    /// All-time payload sent: [`Totals::uploaded`] plus `uploaded`.
    pub total_uploaded: u64,
    /// All-time time spent seeding (complete and running):
    /// [`Totals::seeding_time`] plus this session's.
    pub seeding_time: Duration,
    /// Time spent running (not paused or queued) in this session.
    pub active_time: Duration,
    /// When every wanted piece was first verified in this session (`None`
    /// before, and for a torrent complete from the start).
    pub completed_at: Option<SystemTime>,
    /// The torrent's own rate limits.
    pub rate_limits: RateLimits,
    /// The torrent's share limits.
    pub share_limits: TorrentShareLimits,
    /// Whether it runs regardless of the session's queue.
    pub force_start: bool,
    /// Why it stopped, in state [`TorrentState::Error`].
    pub error: Option<String>,
}

impl TorrentStats {
    /// The share ratio: all-time uploaded over all-time downloaded; for a
    /// torrent that downloaded nothing (seeded from the start), uploaded
    /// over its wanted size, as qBittorrent counts it.
    pub fn ratio(&self) -> f64 {
        let base = if self.total_downloaded > 0 {
            self.total_downloaded
        } else {
            self.bytes_wanted
        };
        if base == 0 {
            0.0
        } else {
            self.total_uploaded as f64 / base as f64
        }
    }
}

/// What a torrent transferred and seeded before this session, given back at
/// add ([`Torrent::with_totals`](crate::torrent::Torrent::with_totals)) so
/// all-time counters survive a restart.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Payload bytes received.
    pub downloaded: u64,
    /// Payload bytes sent.
    pub uploaded: u64,
    /// Time spent seeding.
    pub seeding_time: Duration,
}

/// What we have of one piece ([`TorrentHandle::piece_states`](crate::torrent::TorrentHandle::piece_states)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PieceState {
    /// Nothing requested or received.
    Missing,
    /// Some blocks requested or received, not verified yet.
    Downloading,
    /// Verified and stored.
    Have,
}

/// One web seed (BEP 19) of a torrent, as of [`TorrentStats`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSeedStatus {
    /// The URL, as the torrent lists it.
    pub url: String,
    /// What it is doing.
    pub state: WebSeedState,
    /// Payload bytes received from it.
    pub downloaded: u64,
    /// Failed requests in a row (0 after a success).
    pub failures: u32,
    /// The last error, if any (kept after a later success).
    pub last_error: Option<String>,
}

/// What a web seed is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WebSeedState {
    /// Waiting for pieces to fetch (none missing, or the torrent is not
    /// downloading).
    Idle,
    /// Fetching a run of pieces.
    Fetching,
    /// Waiting after a failure before it is asked again.
    BackingOff,
    /// Given up for good (a permanent error, too many failures in a row,
    /// or data that failed its hash check).
    Dropped,
}

/// Where a torrent is in its life cycle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum TorrentState {
    /// Fetching the info dictionary of a magnet link from peers.
    FetchingMetadata,
    /// Hashing the data already on disk.
    #[default]
    Checking,
    /// Downloading (and uploading what it has).
    Downloading,
    /// Every piece verified, uploading.
    Seeding,
    /// Every selected file done (some files are skipped), uploading what
    /// it has.
    Finished,
    /// Paused: no connections, no announces.
    Paused,
    /// Held back by the session's queue ([`QueueConfig`](crate::limits::QueueConfig)):
    /// no connections, no announces, until its turn.
    Queued,
    /// Stopped by an error it cannot go on from (a store error); see
    /// [`TorrentStats::error`]. Data is kept; resume retries.
    Error,
}
