//! Talking to trackers: HTTP(S) (BEP 3, BEP 23 compact peers) and UDP
//! (BEP 15), in BEP 12 tiers.
//!
//! The request/response formats are pure functions; [`HttpTracker`] does the
//! IO with reqwest, [`UdpTracker`] over a tokio UDP socket, and
//! [`run_announcer`] is the per-torrent announce loop over both.

mod announcer;
mod http;
mod response;
pub mod udp;

pub use announcer::{run_announcer, AnnouncerConfig, TrackerUpdate, TransferStats};
pub use http::{announce_url, is_http_url, HttpTracker, DEFAULT_TIMEOUT, MAX_BODY_SIZE};
pub use response::{
    parse_announce_response, AnnounceResponse, DEFAULT_INTERVAL, MAX_INTERVAL, MIN_INTERVAL,
};
pub use udp::{is_udp_url, ScrapeInfo, UdpTracker, UdpTrackerConfig};

use crate::types::{InfoHash, PeerId};

/// The `event` parameter of an announce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnnounceEvent {
    /// First announce of a download.
    Started,
    /// The download just finished (sent once).
    Completed,
    /// The torrent is being stopped.
    Stopped,
}

impl AnnounceEvent {
    /// The value of the `event` query parameter: `started`, `completed` or
    /// `stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Completed => "completed",
            Self::Stopped => "stopped",
        }
    }
}

/// Everything an announce sends.
#[derive(Clone, Debug)]
pub struct AnnounceRequest {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub peer_id: PeerId,
    /// Port we accept connections on.
    pub port: u16,
    /// Payload bytes uploaded since `started`.
    pub uploaded: u64,
    /// Payload bytes downloaded (verified) since `started`.
    pub downloaded: u64,
    /// Bytes still missing.
    pub left: u64,
    /// Event, if any.
    pub event: Option<AnnounceEvent>,
    /// How many peers we want.
    pub num_want: Option<u32>,
    /// Echo of a previous response's `tracker id`.
    pub tracker_id: Option<String>,
}

/// Errors of a tracker exchange.
#[derive(Debug, thiserror::Error)]
pub enum TrackerError {
    /// The URL's scheme is not one this tracker type speaks.
    #[error("unsupported tracker URL {0}")]
    Unsupported(String),
    /// A `udp://` URL without a host or a valid port.
    #[error("invalid tracker URL {0}")]
    InvalidUrl(String),
    /// The tracker's host name did not resolve.
    #[error("cannot resolve {host}: {reason}")]
    Resolve {
        /// The host name.
        host: String,
        /// Why.
        reason: String,
    },
    /// A UDP socket error (an ICMP "port unreachable" included).
    #[error("UDP: {0}")]
    Io(#[from] std::io::Error),
    /// A malformed UDP datagram, or an answer of the wrong action.
    #[error("invalid UDP response: {0}")]
    Packet(#[from] udp::PacketError),
    /// No answer in time (after the last UDP retransmission or the overall
    /// timeout).
    #[error("no answer from the tracker in time")]
    Timeout,
    /// Connection, TLS, timeout, ...
    #[error("request failed: {0}")]
    Request(#[from] reqwest::Error),
    /// A non-2xx HTTP status.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body is not a valid announce response.
    #[error("invalid response: {0}")]
    Decode(String),
    /// The response body is larger than [`MAX_BODY_SIZE`].
    #[error("response body larger than {limit} bytes")]
    BodyTooLarge {
        /// The cap that was exceeded, in bytes.
        limit: usize,
    },
    /// The tracker said `failure reason` (HTTP) or sent an error (UDP
    /// action 3).
    #[error("tracker failure: {0}")]
    Failure(String),
}
