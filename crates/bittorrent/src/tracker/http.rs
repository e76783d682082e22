//! HTTP(S) announces with reqwest.

use crate::tracker::{AnnounceRequest, AnnounceResponse, TrackerError};

/// Builds the full announce URL: `base` plus the query string, with
/// `info_hash` and `peer_id` percent-encoded byte by byte, `compact=1`.
pub fn announce_url(base: &str, req: &AnnounceRequest) -> String {
    let _ = (base, req);
    todo!()
}

/// One HTTP(S) tracker.
#[derive(Clone, Debug)]
pub struct HttpTracker {
    url: String,
    client: reqwest::Client,
}

impl HttpTracker {
    /// A tracker at announce URL `url`, sharing `client`'s connection pool.
    pub fn new(url: impl Into<String>, client: reqwest::Client) -> Self {
        Self {
            url: url.into(),
            client,
        }
    }

    /// The announce URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one announce.
    ///
    /// # Errors
    /// Request, status, decoding or tracker-reported failures.
    pub async fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        let _ = (req, &self.client);
        todo!()
    }
}
