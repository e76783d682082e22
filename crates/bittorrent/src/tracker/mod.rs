//! Talking to trackers: HTTP(S) (BEP 3, BEP 23 compact peers) and UDP
//! (BEP 15), in BEP 12 tiers.
//!
//! The request/response formats are pure functions; [`HttpTracker`] does the
//! IO with reqwest, [`UdpTracker`] over a tokio UDP socket, and
//! [`run_announcer`] is the per-torrent announce loop over both.

mod announcer;
mod http;
mod response;
mod status;
pub mod udp;

pub use announcer::{run_announcer, AnnouncerConfig, TrackerUpdate, TransferStats};
pub use http::{announce_url, is_http_url, HttpTracker, DEFAULT_TIMEOUT, MAX_BODY_SIZE};
pub use response::{
    parse_announce_response, AnnounceResponse, DEFAULT_INTERVAL, MAX_INTERVAL, MIN_INTERVAL,
};
pub(crate) use status::TrackerBoard;
pub use status::{TrackerState, TrackerStatus};
pub use udp::{is_udp_url, ScrapeInfo, UdpTracker, UdpTrackerConfig};

use std::net::Ipv6Addr;

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
    /// Our IPv6 address, sent as `ipv6=` by HTTP announces (BEP 7); UDP
    /// announces (BEP 15) have no field for it.
    pub ipv6: Option<Ipv6Addr>,
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

impl TrackerError {
    /// The error in a few words for a status display ("connection refused",
    /// "cannot resolve host", "HTTP 404", "tracker says: ..."): the display
    /// of a request error names the whole announce URL, and its cause is
    /// buried in its source chain.
    pub fn brief(&self) -> String {
        match self {
            Self::Unsupported(_) | Self::InvalidUrl(_) => "invalid URL".into(),
            Self::Resolve { .. } => "cannot resolve host".into(),
            Self::Io(e) => brief_io(e).unwrap_or_else(|| e.to_string()),
            Self::Packet(_) | Self::Decode(_) | Self::BodyTooLarge { .. } => {
                "invalid response".into()
            }
            Self::Timeout => "no answer (timed out)".into(),
            Self::Request(e) if e.is_timeout() => "no answer (timed out)".into(),
            Self::Request(e) => brief_request(e),
            Self::Status(code) => format!("HTTP {code}"),
            Self::Failure(reason) => format!("tracker says: {reason}"),
        }
    }
}

/// The cause of a failed HTTP request, from its source chain.
fn brief_request(error: &reqwest::Error) -> String {
    let mut innermost = None;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(brief) = e.downcast_ref::<std::io::Error>().and_then(brief_io) {
            return brief;
        }
        let text = e.to_string();
        if text.starts_with("dns error") || text.contains("lookup address") {
            return "cannot resolve host".into();
        }
        innermost = Some(text);
        source = e.source();
    }
    innermost.unwrap_or_else(|| "request failed".into())
}

/// A few words for the IO errors a network exchange commonly ends with.
fn brief_io(error: &std::io::Error) -> Option<String> {
    use std::io::ErrorKind;
    let words = match error.kind() {
        ErrorKind::ConnectionRefused => "connection refused",
        ErrorKind::ConnectionReset => "connection reset",
        ErrorKind::ConnectionAborted => "connection aborted",
        ErrorKind::TimedOut => "no answer (timed out)",
        ErrorKind::NetworkUnreachable => "network unreachable",
        ErrorKind::HostUnreachable => "host unreachable",
        ErrorKind::AddrNotAvailable => "address not available",
        ErrorKind::NetworkDown => "network down",
        _ => return None,
    };
    Some(words.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    #[test]
    fn brief_errors_are_a_few_words() {
        let refused = TrackerError::Io(io::Error::from(io::ErrorKind::ConnectionRefused));
        assert_eq!(refused.brief(), "connection refused");
        assert_eq!(TrackerError::Status(404).brief(), "HTTP 404");
        assert_eq!(
            TrackerError::Failure("unregistered torrent".into()).brief(),
            "tracker says: unregistered torrent"
        );
        assert_eq!(TrackerError::Timeout.brief(), "no answer (timed out)");
        let resolve = TrackerError::Resolve {
            host: "x".into(),
            reason: "y".into(),
        };
        assert_eq!(resolve.brief(), "cannot resolve host");
    }

    #[tokio::test]
    async fn a_refused_http_request_is_connection_refused() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = reqwest::Client::builder().no_proxy().build().unwrap();
        let error = client
            .get(format!("http://{addr}/announce?info_hash=x"))
            .send()
            .await
            .unwrap_err();
        let error = TrackerError::Request(error);
        assert!(error.to_string().contains("announce"), "{error}");
        assert_eq!(error.brief(), "connection refused");
    }
}
