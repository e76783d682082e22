//! Parsing announce responses (dictionary and compact peer lists). Pure.

use std::net::SocketAddr;
use std::time::Duration;

use crate::tracker::TrackerError;

/// A successful announce response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnounceResponse {
    /// Seconds until the next regular announce.
    pub interval: Duration,
    /// The tracker's minimum announce interval, if it set one.
    pub min_interval: Option<Duration>,
    /// Peers (compact IPv4 `peers`, compact IPv6 `peers6`, or dictionaries).
    pub peers: Vec<SocketAddr>,
    /// `tracker id` to echo in later announces.
    pub tracker_id: Option<String>,
    /// `warning message`, if any.
    pub warning: Option<String>,
    /// Seeders, if reported.
    pub complete: Option<u32>,
    /// Leechers, if reported.
    pub incomplete: Option<u32>,
}

/// Parses the body of an announce response.
///
/// # Errors
/// [`TrackerError::Failure`] for a `failure reason`, [`TrackerError::Decode`]
/// for anything that is not a valid response.
pub fn parse_announce_response(body: &[u8]) -> Result<AnnounceResponse, TrackerError> {
    let _ = body;
    todo!()
}
