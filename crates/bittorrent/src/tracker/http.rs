//! HTTP(S) announces with reqwest.

use std::time::Duration;

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::tracker::{parse_announce_response, AnnounceRequest, AnnounceResponse, TrackerError};

/// Bytes left literal in query values: the RFC 3986 unreserved characters.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The largest announce response body we accept (2 MiB); a compact list of
/// 50 peers is 300 bytes.
pub const MAX_BODY_SIZE: usize = 2 * 1024 * 1024;

/// Default total timeout of one announce (connect, request and body).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);

/// Whether `url` is an `http://` or `https://` URL (case-insensitive), the
/// schemes [`HttpTracker`] speaks.
pub fn is_http_url(url: &str) -> bool {
    let has_prefix = |prefix: &str| {
        url.get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    has_prefix("http://") || has_prefix("https://")
}

/// Builds the full announce URL: `base` plus the query string, with
/// `info_hash` and `peer_id` percent-encoded byte by byte, `compact=1`, and
/// `ipv6=` (BEP 7) when the request carries our IPv6 address.
///
/// If `base` already has a query string the parameters are appended with
/// `&`; a `#fragment` in `base` is dropped. Unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) stay literal, every other byte becomes `%XX`.
pub fn announce_url(base: &str, req: &AnnounceRequest) -> String {
    let base = base.split_once('#').map_or(base, |(b, _)| b);
    let mut url = String::with_capacity(base.len() + 192);
    url.push_str(base);
    if !base.contains('?') {
        url.push('?');
    } else if !(base.ends_with('?') || base.ends_with('&')) {
        url.push('&');
    }
    url.push_str(&format!(
        "info_hash={}&peer_id={}&port={}&uploaded={}&downloaded={}&left={}&compact=1",
        percent_encode(&req.info_hash.0, QUERY_VALUE),
        percent_encode(&req.peer_id.0, QUERY_VALUE),
        req.port,
        req.uploaded,
        req.downloaded,
        req.left,
    ));
    if let Some(event) = req.event {
        url.push_str("&event=");
        url.push_str(event.as_str());
    }
    if let Some(num_want) = req.num_want {
        url.push_str(&format!("&numwant={num_want}"));
    }
    if let Some(ip) = req.ipv6 {
        url.push_str("&ipv6=");
        url.push_str(&percent_encode(ip.to_string().as_bytes(), QUERY_VALUE).to_string());
    }
    if let Some(id) = &req.tracker_id {
        url.push_str("&trackerid=");
        url.push_str(&percent_encode(id.as_bytes(), QUERY_VALUE).to_string());
    }
    url
}

/// One HTTP(S) tracker.
#[derive(Clone, Debug)]
pub struct HttpTracker {
    url: String,
    client: reqwest::Client,
    timeout: Duration,
}

impl HttpTracker {
    /// A tracker at announce URL `url`, sharing `client`'s connection pool.
    /// Announces time out after [`DEFAULT_TIMEOUT`].
    pub fn new(url: impl Into<String>, client: reqwest::Client) -> Self {
        Self {
            url: url.into(),
            client,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Sets the total timeout of each announce (connect, request and body).
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The announce URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends one announce: a GET of [`announce_url`], with the body capped at
    /// [`MAX_BODY_SIZE`], parsed by [`parse_announce_response`].
    ///
    /// # Errors
    /// [`TrackerError::Unsupported`] if the URL is not http(s);
    /// [`TrackerError::Request`] for connection, TLS or timeout errors;
    /// [`TrackerError::Status`] for a non-2xx status;
    /// [`TrackerError::BodyTooLarge`] for a body over [`MAX_BODY_SIZE`];
    /// [`TrackerError::Decode`] / [`TrackerError::Failure`] as returned by
    /// [`parse_announce_response`].
    pub async fn announce(&self, req: &AnnounceRequest) -> Result<AnnounceResponse, TrackerError> {
        if !is_http_url(&self.url) {
            return Err(TrackerError::Unsupported(self.url.clone()));
        }
        let url = announce_url(&self.url, req);
        let mut response = self.client.get(url).timeout(self.timeout).send().await?;
        let status = response.status();
        if !status.is_success() {
            return Err(TrackerError::Status(status.as_u16()));
        }
        let too_large = TrackerError::BodyTooLarge {
            limit: MAX_BODY_SIZE,
        };
        let declared = response.content_length().unwrap_or(0);
        if declared > MAX_BODY_SIZE as u64 {
            return Err(too_large);
        }
        // `declared` is at most MAX_BODY_SIZE here, so the cast is lossless.
        let mut body = Vec::with_capacity(declared as usize);
        while let Some(chunk) = response.chunk().await? {
            if body.len() + chunk.len() > MAX_BODY_SIZE {
                return Err(too_large);
            }
            body.extend_from_slice(&chunk);
        }
        parse_announce_response(&body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::AnnounceEvent;
    use crate::types::{InfoHash, PeerId};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn request() -> AnnounceRequest {
        let mut hash = [0u8; 20];
        for (i, b) in hash.iter_mut().enumerate() {
            *b = i as u8 * 13;
        }
        AnnounceRequest {
            info_hash: InfoHash(hash),
            peer_id: PeerId(*b"-BT0001-abcdefgh~._Z"),
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event: None,
            num_want: None,
            tracker_id: None,
            ipv6: None,
        }
    }

    // 0, 13, 26, ..., 247 (i * 13): '4' = 52, 'A' = 65, 'N' = 78, 'h' = 104,
    // 'u' = 117 stay literal.
    const HASH_ENCODED: &str = "%00%0D%1A%274AN%5Bhu%82%8F%9C%A9%B6%C3%D0%DD%EA%F7";

    #[test]
    fn url_with_all_parameters() {
        let mut req = request();
        req.event = Some(AnnounceEvent::Started);
        req.num_want = Some(50);
        req.tracker_id = Some("a b&c".into());
        assert_eq!(
            announce_url("http://t.example/announce", &req),
            format!(
                "http://t.example/announce?info_hash={HASH_ENCODED}\
                 &peer_id=-BT0001-abcdefgh~._Z&port=6881&uploaded=1&downloaded=2&left=3\
                 &compact=1&event=started&numwant=50&trackerid=a%20b%26c"
            )
        );
    }

    #[test]
    fn url_with_ipv6() {
        let mut req = request();
        req.ipv6 = Some("2001:470:1::7".parse().unwrap());
        let url = announce_url("http://t/a", &req);
        assert!(
            url.ends_with("&compact=1&ipv6=2001%3A470%3A1%3A%3A7"),
            "{url}"
        );
    }

    #[test]
    fn url_minimal_and_events() {
        let req = request();
        let expect = format!(
            "http://t/a?info_hash={HASH_ENCODED}&peer_id=-BT0001-abcdefgh~._Z\
             &port=6881&uploaded=1&downloaded=2&left=3&compact=1"
        );
        assert_eq!(announce_url("http://t/a", &req), expect);
        for (event, text) in [
            (AnnounceEvent::Completed, "completed"),
            (AnnounceEvent::Stopped, "stopped"),
        ] {
            let req = AnnounceRequest {
                event: Some(event),
                ..request()
            };
            assert_eq!(
                announce_url("http://t/a", &req),
                format!("{expect}&event={text}")
            );
        }
    }

    #[test]
    fn url_with_existing_query_and_fragment() {
        let req = request();
        let url = announce_url("https://t/a?passkey=xyz", &req);
        assert!(
            url.starts_with("https://t/a?passkey=xyz&info_hash=%00"),
            "{url}"
        );
        let url = announce_url("https://t/a?passkey=xyz&", &req);
        assert!(
            url.starts_with("https://t/a?passkey=xyz&info_hash=%00"),
            "{url}"
        );
        let url = announce_url("http://t/a?#frag", &req);
        assert!(url.starts_with("http://t/a?info_hash=%00"), "{url}");
        assert!(!url.contains("frag"), "{url}");
    }

    #[test]
    fn http_url_detection() {
        assert!(is_http_url("http://t/a"));
        assert!(is_http_url("HTTPS://t/a"));
        assert!(!is_http_url("udp://t:80"));
        assert!(!is_http_url("http:/t"));
        assert!(!is_http_url(""));
        assert!(!is_http_url("htt\u{e9}://x"));
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().no_proxy().build().unwrap()
    }

    /// Serves one connection on 127.0.0.1 with `response` (raw HTTP) and
    /// returns the base URL and the request line it received.
    async fn serve_once(response: Vec<u8>) -> (String, tokio::task::JoinHandle<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/announce", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = conn.read(&mut chunk).await.unwrap();
                assert!(n > 0, "client closed before the end of the request");
                buf.extend_from_slice(&chunk[..n]);
            }
            conn.write_all(&response).await.unwrap();
            conn.shutdown().await.unwrap();
            let head = String::from_utf8(buf).unwrap();
            head.lines().next().unwrap().to_string()
        });
        (base, task)
    }

    fn http_ok(body: &[u8]) -> Vec<u8> {
        let mut r = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        )
        .into_bytes();
        r.extend_from_slice(body);
        r
    }

    #[tokio::test]
    async fn announce_sends_query_and_parses_reply() {
        let mut body = b"d8:intervali900e5:peers6:".to_vec();
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        body.push(b'e');
        let (base, server) = serve_once(http_ok(&body)).await;
        let req = AnnounceRequest {
            event: Some(AnnounceEvent::Started),
            ..request()
        };
        let resp = HttpTracker::new(base, client())
            .announce(&req)
            .await
            .unwrap();
        assert_eq!(resp.interval, Duration::from_secs(900));
        assert_eq!(resp.peers, vec!["127.0.0.1:6881".parse().unwrap()]);
        let line = server.await.unwrap();
        assert!(line.starts_with("GET /announce?info_hash="), "{line}");
        assert!(
            line.contains(&format!("info_hash={HASH_ENCODED}&")),
            "{line}"
        );
        assert!(line.contains("&event=started"), "{line}");
        assert!(line.contains("&compact=1"), "{line}");
        assert!(line.ends_with(" HTTP/1.1"), "{line}");
    }

    #[tokio::test]
    async fn non_2xx_is_a_status_error() {
        let (base, server) =
            serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".to_vec()).await;
        let r = HttpTracker::new(base, client()).announce(&request()).await;
        assert!(matches!(r, Err(TrackerError::Status(404))), "{r:?}");
        server.await.unwrap();
    }

    #[tokio::test]
    async fn tracker_failure_is_reported() {
        let (base, server) = serve_once(http_ok(b"d14:failure reason4:nopee")).await;
        let r = HttpTracker::new(base, client()).announce(&request()).await;
        assert!(
            matches!(r, Err(TrackerError::Failure(ref m)) if m == "nope"),
            "{r:?}"
        );
        server.await.unwrap();
    }

    #[tokio::test]
    async fn oversized_body_is_rejected() {
        // Declared too large.
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\nd",
            MAX_BODY_SIZE + 1
        );
        let (base, server) = serve_once(head.into_bytes()).await;
        let r = HttpTracker::new(base, client()).announce(&request()).await;
        assert!(matches!(r, Err(TrackerError::BodyTooLarge { .. })), "{r:?}");
        server.await.unwrap();

        // Undeclared (read until close) and too large.
        let mut raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n".to_vec();
        raw.resize(raw.len() + MAX_BODY_SIZE + 10, b'x');
        let (base, server) = serve_once(raw).await;
        let r = HttpTracker::new(base, client()).announce(&request()).await;
        assert!(matches!(r, Err(TrackerError::BodyTooLarge { .. })), "{r:?}");
        let _ = server.await; // the client may hang up before the write ends
    }

    #[tokio::test]
    async fn unsupported_scheme_and_refused_connection() {
        let r = HttpTracker::new("udp://127.0.0.1:1/announce", client())
            .announce(&request())
            .await;
        assert!(matches!(r, Err(TrackerError::Unsupported(_))), "{r:?}");

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let dead = format!("http://{}/announce", listener.local_addr().unwrap());
        drop(listener);
        let r = HttpTracker::new(dead, client()).announce(&request()).await;
        assert!(matches!(r, Err(TrackerError::Request(_))), "{r:?}");
    }

    #[tokio::test]
    async fn silent_tracker_times_out() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/announce", listener.local_addr().unwrap());
        let started = std::time::Instant::now();
        let r = HttpTracker::new(base, client())
            .with_timeout(Duration::from_millis(200))
            .announce(&request())
            .await;
        assert!(
            matches!(r, Err(TrackerError::Request(ref e)) if e.is_timeout()),
            "{r:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        drop(listener);
    }
}
