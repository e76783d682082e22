//! [`UdpTracker`]: the BEP 15 exchanges over a tokio `UdpSocket`.

use std::net::SocketAddr;
use std::time::Duration;

use log::{debug, trace};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::tracker::udp::packet::{
    peek_transaction_id, Action, AddressFamily, AnnouncePacket, PacketError, Request, Response,
    ScrapeInfo, MAX_SCRAPE_HASHES,
};
use crate::tracker::{AnnounceRequest, AnnounceResponse, TrackerError};
use crate::types::InfoHash;

/// Size of the receive buffer: any UDP payload fits (65,507 bytes at most).
pub const MAX_DATAGRAM_SIZE: usize = 64 * 1024;

/// Whether `url` is a `udp://` URL (case-insensitive), the scheme
/// [`UdpTracker`] speaks.
pub fn is_udp_url(url: &str) -> bool {
    url.get(..6)
        .is_some_and(|p| p.eq_ignore_ascii_case("udp://"))
}

/// The host and port of a `udp://host:port/...` URL. The host may be a
/// name, an IPv4 literal or a bracketed IPv6 literal; the port is required
/// (UDP trackers have no default port). Path and query are ignored.
///
/// # Errors
/// [`TrackerError::Unsupported`] if the scheme is not `udp`;
/// [`TrackerError::InvalidUrl`] without a host or a valid, non-zero port.
pub fn parse_udp_url(url: &str) -> Result<(String, u16), TrackerError> {
    if !is_udp_url(url) {
        return Err(TrackerError::Unsupported(url.to_string()));
    }
    let invalid = || TrackerError::InvalidUrl(url.to_string());
    let rest = &url[6..];
    let authority = rest
        .split(['/', '?', '#'])
        .next()
        .filter(|a| !a.is_empty())
        .ok_or_else(invalid)?;
    // Userinfo has no meaning for a UDP tracker; drop it.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or_else(invalid)?;
        (host, after.strip_prefix(':').ok_or_else(invalid)?)
    } else {
        authority.rsplit_once(':').ok_or_else(invalid)?
    };
    let port: u16 = port.parse().map_err(|_| invalid())?;
    if host.is_empty() || port == 0 {
        return Err(invalid());
    }
    Ok((host.to_string(), port))
}

/// Timing of a [`UdpTracker`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UdpTrackerConfig {
    /// How long to wait for the first answer to a request; the wait doubles
    /// after each retransmission (BEP 15: 15 s, so 15·2ⁿ s).
    pub retransmit_base: Duration,
    /// Retransmissions before giving up: n runs from 0 to this (BEP 15: 8).
    /// One counter spans the whole exchange, `connect` included.
    pub max_retransmits: u32,
    /// How long a connection id is used after it was asked for (BEP 15: one
    /// minute).
    pub connection_id_ttl: Duration,
    /// Bound on one announce or scrape in all, `connect` included; `None`
    /// leaves only the retransmission schedule to bound it.
    pub timeout: Option<Duration>,
}

impl UdpTrackerConfig {
    /// BEP 15's base of the retransmission timeout.
    pub const BEP_RETRANSMIT_BASE: Duration = Duration::from_secs(15);
    /// BEP 15's largest n of the 15·2ⁿ timeout.
    pub const BEP_MAX_RETRANSMITS: u32 = 8;
    /// BEP 15's lifetime of a connection id on the client.
    pub const BEP_CONNECTION_ID_TTL: Duration = Duration::from_secs(60);
}

impl Default for UdpTrackerConfig {
    /// BEP 15 as written: 15 s doubling up to 8 times, one-minute
    /// connection ids, no overall timeout.
    fn default() -> Self {
        Self {
            retransmit_base: Self::BEP_RETRANSMIT_BASE,
            max_retransmits: Self::BEP_MAX_RETRANSMITS,
            connection_id_ttl: Self::BEP_CONNECTION_ID_TTL,
            timeout: None,
        }
    }
}

/// A socket connected to the tracker's address.
#[derive(Debug)]
struct Link {
    socket: UdpSocket,
    family: AddressFamily,
}

/// One UDP tracker (BEP 15). Keep it across announces: it caches the
/// resolved, connected socket and the connection id (for
/// [`UdpTrackerConfig::connection_id_ttl`]), and its announce `key` stays
/// the same.
///
/// A request is sent, then retransmitted with the same transaction id after
/// `retransmit_base`·2ⁿ without an answer (so a late answer to an earlier
/// copy still counts); a connection id that expires meanwhile is renewed
/// first. Datagrams with another transaction id, or too short to carry one,
/// are ignored. The socket is connected, so the kernel drops datagrams from
/// other addresses and reports an ICMP "port unreachable" as an error,
/// which fails the request at once.
///
/// The host may resolve to several addresses (an IPv4 and an IPv6 one): a
/// request that fails with a socket error (that ICMP error, a family with no
/// route) is tried at once on the next address, and after a timeout the
/// next request starts from the next address.
#[derive(Debug)]
pub struct UdpTracker {
    url: String,
    config: UdpTrackerConfig,
    key: u32,
    /// The host's addresses, resolved at the first request, and the one in use.
    addrs: Vec<SocketAddr>,
    current: usize,
    link: Option<Link>,
    /// The connection id and when it stops being used.
    connection: Option<(u64, Instant)>,
    buf: Vec<u8>,
}

impl UdpTracker {
    /// A tracker at `url` (`udp://host:port/...`). Nothing is resolved or
    /// sent until the first request.
    pub fn new(url: impl Into<String>, config: UdpTrackerConfig) -> Self {
        Self {
            url: url.into(),
            config,
            key: rand::random(),
            addrs: Vec::new(),
            current: 0,
            link: None,
            connection: None,
            buf: Vec::new(),
        }
    }

    /// The announce URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The timing in use.
    pub fn config(&self) -> &UdpTrackerConfig {
        &self.config
    }

    /// Changes the timing; a cached connection id keeps its expiry.
    pub fn set_config(&mut self, config: UdpTrackerConfig) {
        self.config = config;
    }

    /// Sends one announce (connecting first unless a connection id is
    /// cached) and converts the answer with
    /// [`AnnounceReply::into_response`](crate::tracker::udp::AnnounceReply::into_response).
    ///
    /// # Errors
    /// [`TrackerError::InvalidUrl`] / [`TrackerError::Unsupported`] for a
    /// bad URL; [`TrackerError::Resolve`] if the host has no address;
    /// [`TrackerError::Io`] for socket errors (an ICMP "port unreachable"
    /// included); [`TrackerError::Timeout`] without an answer;
    /// [`TrackerError::Failure`] for an error response (action 3);
    /// [`TrackerError::Packet`] for a malformed answer or one of another
    /// action.
    pub async fn announce(
        &mut self,
        req: &AnnounceRequest,
    ) -> Result<AnnounceResponse, TrackerError> {
        let key = self.key;
        let response = self
            .bounded(|connection_id, transaction_id| {
                Request::Announce(AnnouncePacket::new(req, connection_id, transaction_id, key))
            })
            .await?;
        match response {
            Response::Announce { reply, .. } => Ok(reply.into_response()),
            other => Err(mismatch(Action::Announce, &other)),
        }
    }

    /// Scrapes `info_hashes`: one entry per hash, in order. More than
    /// [`MAX_SCRAPE_HASHES`] are split over several requests; none sends
    /// nothing.
    ///
    /// # Errors
    /// As [`UdpTracker::announce`], and [`TrackerError::Packet`]
    /// ([`PacketError::ScrapeCount`]) if the tracker answers another number
    /// of entries than hashes asked.
    pub async fn scrape(
        &mut self,
        info_hashes: &[InfoHash],
    ) -> Result<Vec<ScrapeInfo>, TrackerError> {
        let mut all = Vec::with_capacity(info_hashes.len());
        for chunk in info_hashes.chunks(MAX_SCRAPE_HASHES) {
            let response = self
                .bounded(|connection_id, transaction_id| Request::Scrape {
                    connection_id,
                    transaction_id,
                    info_hashes: chunk.to_vec(),
                })
                .await?;
            match response {
                Response::Scrape { entries, .. } if entries.len() == chunk.len() => {
                    all.extend(entries)
                }
                Response::Scrape { entries, .. } => {
                    return Err(PacketError::ScrapeCount {
                        requested: chunk.len(),
                        got: entries.len(),
                    }
                    .into())
                }
                other => return Err(mismatch(Action::Scrape, &other)),
            }
        }
        Ok(all)
    }

    /// [`Self::exchange_any`] under [`UdpTrackerConfig::timeout`].
    async fn bounded(
        &mut self,
        build: impl Fn(u64, u32) -> Request,
    ) -> Result<Response, TrackerError> {
        let result = match self.config.timeout {
            Some(limit) => match tokio::time::timeout(limit, self.exchange_any(&build)).await {
                Ok(result) => result,
                Err(_) => Err(TrackerError::Timeout),
            },
            None => self.exchange_any(&build).await,
        };
        match &result {
            Err(TrackerError::Io(_)) => {
                // Resolve and bind afresh next time.
                self.addrs.clear();
                self.link = None;
                self.connection = None;
            }
            Err(TrackerError::Timeout) if self.addrs.len() > 1 => {
                // Perhaps this address is unreachable: start from the next one next time.
                self.current = (self.current + 1) % self.addrs.len();
                self.link = None;
                self.connection = None;
            }
            _ => {}
        }
        result
    }

    /// [`Self::exchange`] on the current address, then on each next one
    /// while the exchange fails with a socket error.
    async fn exchange_any(
        &mut self,
        build: &impl Fn(u64, u32) -> Request,
    ) -> Result<Response, TrackerError> {
        if self.addrs.is_empty() {
            self.addrs = self.resolve().await?;
            self.current = 0;
        }
        loop {
            match self.exchange(build).await {
                Err(TrackerError::Io(e)) if self.current + 1 < self.addrs.len() => {
                    debug!(
                        "{}: {} failed ({e}), trying {}",
                        self.url,
                        self.addrs[self.current],
                        self.addrs[self.current + 1]
                    );
                    self.current += 1;
                    self.link = None;
                    self.connection = None;
                }
                result => return result,
            }
        }
    }

    /// One request with BEP 15 retransmissions, connecting first when no
    /// connection id is valid. Returns the answer with the request's
    /// transaction id, unless it is an error response.
    async fn exchange(
        &mut self,
        build: &impl Fn(u64, u32) -> Request,
    ) -> Result<Response, TrackerError> {
        if self.link.is_none() {
            let addr = self
                .addrs
                .get(self.current)
                .copied()
                .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotConnected))?;
            self.link = Some(self.open(addr).await?);
        }
        let connect_tx: u32 = rand::random();
        let request_tx: u32 = rand::random();
        let mut n: u32 = 0;
        loop {
            let wait = self.wait(n);
            let connection_id = match self.connection {
                Some((id, expires)) if Instant::now() < expires => id,
                _ => {
                    let asked = Instant::now();
                    let datagram = Request::Connect {
                        transaction_id: connect_tx,
                    }
                    .encode();
                    match self.round_trip(&datagram, connect_tx, wait).await? {
                        Some(Response::Connect { connection_id, .. }) => {
                            debug!("{}: connection id {connection_id:#x}", self.url);
                            self.connection =
                                Some((connection_id, asked + self.config.connection_id_ttl));
                            continue;
                        }
                        Some(Response::Error { message, .. }) => {
                            return Err(TrackerError::Failure(message))
                        }
                        Some(other) => return Err(mismatch(Action::Connect, &other)),
                        None => {
                            n = self.next_attempt(n, "connect")?;
                            continue;
                        }
                    }
                }
            };
            let request = build(connection_id, request_tx);
            let action = request.action();
            match self.round_trip(&request.encode(), request_tx, wait).await? {
                Some(Response::Error { message, .. }) => {
                    // Perhaps our connection id was refused: ask anew next time.
                    self.connection = None;
                    return Err(TrackerError::Failure(message));
                }
                Some(response) if response.action() == action => return Ok(response),
                Some(other) => return Err(mismatch(action, &other)),
                None => n = self.next_attempt(n, "request")?,
            }
        }
    }

    /// `retransmit_base`·2ⁿ.
    fn wait(&self, n: u32) -> Duration {
        self.config
            .retransmit_base
            .saturating_mul(1u32 << n.min(16))
    }

    /// The n after a timeout, or [`TrackerError::Timeout`] past the last.
    fn next_attempt(&self, n: u32, what: &str) -> Result<u32, TrackerError> {
        if n >= self.config.max_retransmits {
            debug!("{}: no answer to {} attempts, giving up", self.url, n + 1);
            return Err(TrackerError::Timeout);
        }
        debug!(
            "{}: no answer to {what} within {:?}, retransmitting",
            self.url,
            self.wait(n)
        );
        Ok(n + 1)
    }

    /// Every address of the URL's host, in the resolver's order.
    async fn resolve(&self) -> Result<Vec<SocketAddr>, TrackerError> {
        let (host, port) = parse_udp_url(&self.url)?;
        let resolve_error = |reason: String| TrackerError::Resolve {
            host: host.clone(),
            reason,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
            .await
            .map_err(|e| resolve_error(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error("no address".into()));
        }
        Ok(addrs)
    }

    /// A socket of `addr`'s family, connected to it.
    async fn open(&self, addr: SocketAddr) -> Result<Link, TrackerError> {
        let local: SocketAddr = match addr {
            SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(local).await?;
        socket.connect(addr).await?;
        trace!("{}: socket connected to {addr}", self.url);
        Ok(Link {
            socket,
            family: AddressFamily::of(&addr),
        })
    }

    /// Sends `datagram` and waits up to `wait` for an answer carrying
    /// `transaction_id`: `None` if none came.
    async fn round_trip(
        &mut self,
        datagram: &[u8],
        transaction_id: u32,
        wait: Duration,
    ) -> Result<Option<Response>, TrackerError> {
        let Some(link) = &self.link else {
            return Err(TrackerError::Io(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        if self.buf.len() != MAX_DATAGRAM_SIZE {
            self.buf = vec![0; MAX_DATAGRAM_SIZE];
        }
        trace!("{}: sending {} bytes", self.url, datagram.len());
        link.socket.send(datagram).await?;
        let deadline = Instant::now() + wait;
        loop {
            let len = match tokio::time::timeout_at(deadline, link.socket.recv(&mut self.buf)).await
            {
                Err(_) => return Ok(None),
                Ok(result) => result?,
            };
            let datagram = &self.buf[..len];
            if peek_transaction_id(datagram) != Some(transaction_id) {
                debug!(
                    "{}: ignoring a {len}-byte datagram of another transaction",
                    self.url
                );
                continue;
            }
            trace!("{}: received {len} bytes", self.url);
            return Ok(Some(Response::decode(datagram, link.family)?));
        }
    }
}

fn mismatch(expected: Action, got: &Response) -> TrackerError {
    PacketError::ActionMismatch {
        expected,
        got: got.action(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::udp::fake::{FakeUdpTracker, Mode};
    use crate::tracker::AnnounceEvent;
    use crate::types::PeerId;

    fn request(event: Option<AnnounceEvent>) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: InfoHash([9; 20]),
            peer_id: PeerId(*b"-BT0001-udpudpudpudp"),
            port: 6881,
            uploaded: 1,
            downloaded: 2,
            left: 3,
            event,
            num_want: Some(50),
            tracker_id: None,
            ipv6: None,
        }
    }

    fn fast() -> UdpTrackerConfig {
        UdpTrackerConfig {
            retransmit_base: Duration::from_millis(200),
            max_retransmits: 3,
            connection_id_ttl: Duration::from_secs(60),
            timeout: Some(Duration::from_secs(5)),
        }
    }

    #[test]
    fn url_parsing() {
        assert_eq!(
            parse_udp_url("udp://tracker.example:6969/announce").unwrap(),
            ("tracker.example".to_string(), 6969)
        );
        assert_eq!(
            parse_udp_url("UDP://127.0.0.1:80").unwrap(),
            ("127.0.0.1".to_string(), 80)
        );
        assert_eq!(
            parse_udp_url("udp://[::1]:1337/a?b=c").unwrap(),
            ("::1".to_string(), 1337)
        );
        assert_eq!(
            parse_udp_url("udp://u@h:1?x").unwrap(),
            ("h".to_string(), 1)
        );
        for bad in [
            "udp://",
            "udp://host",
            "udp://host:",
            "udp://host:0",
            "udp://host:70000",
            "udp://:80",
            "udp://[::1]/x",
            "udp://[::1:80",
        ] {
            assert!(
                matches!(parse_udp_url(bad), Err(TrackerError::InvalidUrl(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            parse_udp_url("http://h:1/"),
            Err(TrackerError::Unsupported(_))
        ));
        assert!(is_udp_url("Udp://x:1") && !is_udp_url("udp:/x") && !is_udp_url("ud"));
    }

    #[test]
    fn default_config_is_bep_15() {
        let c = UdpTrackerConfig::default();
        let t = UdpTracker::new("udp://h:1", c);
        assert_eq!(t.wait(0), Duration::from_secs(15));
        assert_eq!(t.wait(8), Duration::from_secs(3840));
        assert_eq!(c.connection_id_ttl, Duration::from_secs(60));
        assert_eq!(c.timeout, None);
    }

    #[tokio::test]
    async fn announce_over_ipv6_reads_18_byte_peers() {
        let Some(mut fake) = FakeUdpTracker::start_v6(Mode::Answer).await else {
            eprintln!("no ::1 here: skipped");
            return;
        };
        assert!(fake.url.starts_with("udp://[::1]:"), "{}", fake.url);
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        let resp = tracker
            .announce(&request(Some(AnnounceEvent::Started)))
            .await
            .unwrap();
        assert_eq!(resp.peers, fake.peers);
        assert!(resp.peers.iter().all(SocketAddr::is_ipv6));
        assert!(matches!(fake.next().await, Request::Connect { .. }));
        assert!(matches!(fake.next().await, Request::Announce { .. }));
    }

    #[tokio::test]
    async fn announce_connects_then_announces() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        let resp = tracker
            .announce(&request(Some(AnnounceEvent::Started)))
            .await
            .unwrap();
        assert_eq!(resp.peers, fake.peers);
        assert_eq!(resp.interval, Duration::from_secs(1800));
        assert_eq!((resp.complete, resp.incomplete), (Some(1), Some(2)));

        assert!(matches!(fake.next().await, Request::Connect { .. }));
        let Request::Announce(a) = fake.next().await else {
            panic!("expected an announce")
        };
        assert_eq!(a.connection_id, fake.issued(0));
        assert_eq!(a.info_hash, InfoHash([9; 20]));
        assert_eq!(a.peer_id.0, *b"-BT0001-udpudpudpudp");
        assert_eq!((a.uploaded, a.downloaded, a.left), (1, 2, 3));
        assert_eq!(a.event, Some(AnnounceEvent::Started));
        assert_eq!(
            (a.ip, a.key, a.num_want, a.port),
            (0, tracker.key, 50, 6881)
        );
    }

    #[tokio::test]
    async fn connection_id_is_reused_then_renewed_after_its_ttl() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        let config = UdpTrackerConfig {
            connection_id_ttl: Duration::from_millis(300),
            ..fast()
        };
        let mut tracker = UdpTracker::new(fake.url.clone(), config);
        tracker.announce(&request(None)).await.unwrap();
        tracker.announce(&request(None)).await.unwrap();
        assert!(matches!(fake.next().await, Request::Connect { .. }));
        for _ in 0..2 {
            match fake.next().await {
                Request::Announce(a) => assert_eq!(a.connection_id, fake.issued(0)),
                other => panic!("{other:?}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        tracker.announce(&request(None)).await.unwrap();
        assert!(matches!(fake.next().await, Request::Connect { .. }));
        match fake.next().await {
            Request::Announce(a) => assert_eq!(a.connection_id, fake.issued(1)),
            other => panic!("{other:?}"),
        }
        assert!(fake.requests.try_recv().is_err());
    }

    #[tokio::test]
    async fn retransmits_a_dropped_connect_and_a_dropped_announce() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        // Datagrams 0 (connect) and 2 (first announce) go unanswered.
        fake.drop_datagrams(&[0, 2]);
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        let at = Instant::now();
        tracker.announce(&request(None)).await.unwrap();
        // 200 ms for the connect, 400 ms for the announce (n = 1).
        assert!(
            at.elapsed() >= Duration::from_millis(600),
            "{:?}",
            at.elapsed()
        );
        let (Request::Connect { transaction_id: c1 }, Request::Connect { transaction_id: c2 }) =
            (fake.next().await, fake.next().await)
        else {
            panic!("expected two connects")
        };
        assert_eq!(c1, c2, "a retransmission keeps its transaction id");
        let (Request::Announce(a1), Request::Announce(a2)) = (fake.next().await, fake.next().await)
        else {
            panic!("expected two announces")
        };
        assert_eq!(a1, a2, "a retransmission is the same datagram");
    }

    #[tokio::test]
    async fn gives_up_after_the_last_retransmission() {
        let mut fake = FakeUdpTracker::start(Mode::Silent).await;
        let config = UdpTrackerConfig {
            retransmit_base: Duration::from_millis(50),
            max_retransmits: 2,
            ..fast()
        };
        let mut tracker = UdpTracker::new(fake.url.clone(), config);
        let at = Instant::now();
        let err = tracker.announce(&request(None)).await.unwrap_err();
        assert!(matches!(err, TrackerError::Timeout), "{err}");
        // 50 + 100 + 200 ms.
        assert!(
            at.elapsed() >= Duration::from_millis(350),
            "{:?}",
            at.elapsed()
        );
        for _ in 0..3 {
            assert!(matches!(fake.next().await, Request::Connect { .. }));
        }
        assert!(fake.requests.try_recv().is_err());

        // The overall timeout cuts the schedule short.
        let config = UdpTrackerConfig {
            retransmit_base: Duration::from_secs(10),
            timeout: Some(Duration::from_millis(100)),
            ..fast()
        };
        let mut tracker = UdpTracker::new(fake.url.clone(), config);
        let at = Instant::now();
        let err = tracker.announce(&request(None)).await.unwrap_err();
        assert!(matches!(err, TrackerError::Timeout), "{err}");
        assert!(at.elapsed() < Duration::from_secs(2), "{:?}", at.elapsed());
    }

    #[tokio::test]
    async fn error_action_is_a_failure_and_drops_the_connection_id() {
        let mut fake = FakeUdpTracker::start(Mode::Error("torrent not whitelisted".into())).await;
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        for _ in 0..2 {
            match tracker.announce(&request(None)).await {
                Err(TrackerError::Failure(m)) => assert_eq!(m, "torrent not whitelisted"),
                other => panic!("{other:?}"),
            }
            assert!(matches!(fake.next().await, Request::Connect { .. }));
            assert!(matches!(fake.next().await, Request::Announce(_)));
        }
    }

    #[tokio::test]
    async fn ignores_other_transactions_and_rejects_bad_answers() {
        let fake = FakeUdpTracker::start(Mode::StrayFirst).await;
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        let resp = tracker.announce(&request(None)).await.unwrap();
        assert_eq!(resp.peers, fake.peers);

        let fake = FakeUdpTracker::start(Mode::Truncated).await;
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        match tracker.announce(&request(None)).await {
            Err(TrackerError::Packet(PacketError::Truncated { len: 12, .. })) => {}
            other => panic!("{other:?}"),
        }

        let fake = FakeUdpTracker::start(Mode::WrongAction).await;
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        match tracker.announce(&request(None)).await {
            Err(TrackerError::Packet(PacketError::ActionMismatch {
                expected: Action::Announce,
                got: Action::Scrape,
            })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn scrape_in_chunks_of_74() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        assert!(tracker.scrape(&[]).await.unwrap().is_empty());
        let hashes: Vec<InfoHash> = (0..80u8).map(|i| InfoHash([i; 20])).collect();
        let entries = tracker.scrape(&hashes).await.unwrap();
        assert_eq!(entries.len(), 80);
        // The fake reports seeders = first hash byte, completed 7, leechers 3.
        for (i, e) in entries.iter().enumerate() {
            assert_eq!(
                *e,
                ScrapeInfo {
                    seeders: i as u32,
                    completed: 7,
                    leechers: 3
                }
            );
        }
        assert!(matches!(fake.next().await, Request::Connect { .. }));
        for len in [74, 6] {
            match fake.next().await {
                Request::Scrape { info_hashes, .. } => assert_eq!(info_hashes.len(), len),
                other => panic!("{other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn closed_port_fails_fast() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}/announce", socket.local_addr().unwrap());
        drop(socket);
        let config = UdpTrackerConfig {
            retransmit_base: Duration::from_secs(2),
            ..fast()
        };
        let mut tracker = UdpTracker::new(url, config);
        let at = Instant::now();
        let err = tracker.announce(&request(None)).await.unwrap_err();
        // The ICMP "port unreachable" surfaces on the connected socket.
        assert!(matches!(err, TrackerError::Io(_)), "{err}");
        assert!(at.elapsed() < Duration::from_secs(2), "{:?}", at.elapsed());
    }

    /// The address of a fake tracker, from its URL.
    fn addr_of(url: &str) -> SocketAddr {
        let (host, port) = parse_udp_url(url).unwrap();
        SocketAddr::new(host.parse().unwrap(), port)
    }

    #[tokio::test]
    async fn a_failing_address_falls_back_to_the_next_one() {
        let Some(mut fake) = FakeUdpTracker::start_v6(Mode::Answer).await else {
            eprintln!("no ::1 here: skipped");
            return;
        };
        // As a host resolving to 127.0.0.1 (nothing there: ICMP port unreachable) and ::1.
        let closed = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let dead = closed.local_addr().unwrap();
        drop(closed);
        let mut tracker = UdpTracker::new(fake.url.clone(), fast());
        tracker.addrs = vec![dead, addr_of(&fake.url)];
        let resp = tracker.announce(&request(None)).await.unwrap();
        assert_eq!(resp.peers, fake.peers);
        assert_eq!(tracker.current, 1);
        assert!(matches!(fake.next().await, Request::Connect { .. }));
        assert!(matches!(fake.next().await, Request::Announce(_)));
        // The address that answered stays in use.
        tracker.announce(&request(None)).await.unwrap();
        assert!(matches!(fake.next().await, Request::Announce(_)));

        // Every address failing is the last one's error, and the host is resolved anew.
        let mut tracker = UdpTracker::new(format!("udp://{dead}/announce"), fast());
        tracker.addrs = vec![dead, dead];
        let err = tracker.announce(&request(None)).await.unwrap_err();
        assert!(matches!(err, TrackerError::Io(_)), "{err}");
        assert!(tracker.addrs.is_empty());
    }

    #[tokio::test]
    async fn after_a_timeout_the_next_request_tries_the_next_address() {
        let Some(mut answering) = FakeUdpTracker::start_v6(Mode::Answer).await else {
            eprintln!("no ::1 here: skipped");
            return;
        };
        let mut silent = FakeUdpTracker::start(Mode::Silent).await;
        let config = UdpTrackerConfig {
            retransmit_base: Duration::from_millis(50),
            max_retransmits: 1,
            ..fast()
        };
        let mut tracker = UdpTracker::new(answering.url.clone(), config);
        tracker.addrs = vec![addr_of(&silent.url), addr_of(&answering.url)];
        let err = tracker.announce(&request(None)).await.unwrap_err();
        assert!(matches!(err, TrackerError::Timeout), "{err}");
        assert!(matches!(silent.next().await, Request::Connect { .. }));
        let resp = tracker.announce(&request(None)).await.unwrap();
        assert_eq!(resp.peers, answering.peers);
        assert!(matches!(answering.next().await, Request::Connect { .. }));
    }

    #[tokio::test]
    async fn invalid_url_fails_before_sending() {
        let mut tracker = UdpTracker::new("udp://no-port/announce", fast());
        assert!(matches!(
            tracker.announce(&request(None)).await,
            Err(TrackerError::InvalidUrl(_))
        ));
    }
}
