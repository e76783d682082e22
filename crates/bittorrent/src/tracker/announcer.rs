//! The per-torrent announce loop: tiers, intervals, events, backoff.
//!
//! The loop keeps a little state machine over the announce events:
//! `started` is sent (and retried) until one tracker accepts it; `completed`
//! is owed once `stats.left` reaches 0 after having been non-zero and is sent
//! right away; every other announce carries no event; `stopped` goes to the
//! last tracker that answered, on shutdown, if `started` was ever accepted —
//! preceded by a `completed` still owed (a download that finishes just as the
//! torrent stops is still counted by the tracker).

use std::collections::{HashMap, HashSet};
use std::net::{Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use log::{debug, error, info, warn};
use rand::seq::SliceRandom;
use tokio::sync::{mpsc, watch, Notify};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::portmap::ExternalPort;
use crate::tracker::{
    is_http_url, is_udp_url, AnnounceEvent, AnnounceRequest, AnnounceResponse, HttpTracker,
    TrackerBoard, TrackerError, TrackerStatus, UdpTracker, UdpTrackerConfig, DEFAULT_TIMEOUT,
};
use crate::types::{InfoHash, PeerId};

/// Transfer counters the announcer reports; published by the torrent on a
/// `watch` channel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TransferStats {
    /// Payload bytes uploaded.
    pub uploaded: u64,
    /// Payload bytes downloaded in this session (BEP 3), not what was on disk.
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
///
/// Build it with [`AnnouncerConfig::new`], which fills the tuning fields
/// with their defaults, then adjust fields as needed.
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
    /// `numwant` of regular announces (`stopped` asks for 0).
    pub num_want: u32,
    /// Floor under the tracker's `interval` and `min interval`, protecting
    /// trackers from a misconfigured tiny interval.
    pub min_announce_interval: Duration,
    /// Delay before retrying after every tracker failed; doubles after each
    /// failed round up to `max_retry_delay`.
    pub retry_delay: Duration,
    /// Cap of the retry delay.
    pub max_retry_delay: Duration,
    /// Total timeout of one announce.
    pub request_timeout: Duration,
    /// Total timeout of the `stopped` announce on shutdown.
    pub stopped_timeout: Duration,
    /// HTTP client to use (share one per session for its connection pool);
    /// `None` builds a private one.
    pub client: Option<reqwest::Client>,
    /// Retransmission and connection-id timing of UDP trackers. Its
    /// `timeout` is ignored: each announce is bounded by
    /// [`request_timeout`](Self::request_timeout) (or
    /// [`stopped_timeout`](Self::stopped_timeout)) instead.
    pub udp: UdpTrackerConfig,
    /// Where to publish each tracker's [`TrackerStatus`] (in tier order) as
    /// it changes, for a display; `None` publishes nothing.
    pub status: Option<watch::Sender<Vec<TrackerStatus>>>,
    /// Our IPv6 address, sent as `ipv6=` by HTTP announces (BEP 7); `None`
    /// sends none.
    pub ipv6: Option<Ipv6Addr>,
    /// The port mapper's external TCP port, announced instead of
    /// [`port`](Self::port) while mapped.
    pub external_port: ExternalPort,
    /// Notified for an announce round now, whatever the interval says
    /// (a user's "reannounce"); `None`: never.
    pub reannounce: Option<Arc<Notify>>,
}

impl AnnouncerConfig {
    /// Default [`num_want`](Self::num_want).
    pub const DEFAULT_NUM_WANT: u32 = 50;
    /// Default [`min_announce_interval`](Self::min_announce_interval).
    pub const DEFAULT_MIN_ANNOUNCE_INTERVAL: Duration = Duration::from_secs(30);
    /// Default [`retry_delay`](Self::retry_delay).
    pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(15);
    /// Default [`max_retry_delay`](Self::max_retry_delay).
    pub const DEFAULT_MAX_RETRY_DELAY: Duration = Duration::from_secs(30 * 60);
    /// Default [`stopped_timeout`](Self::stopped_timeout).
    pub const DEFAULT_STOPPED_TIMEOUT: Duration = Duration::from_secs(3);
    /// Default [`udp`](Self::udp): BEP 15's doubling schedule from a 4 s base
    /// (not 15 s, so that a lost datagram is resent twice within the 15 s
    /// request timeout: at 4 s and 12 s), one-minute connection ids.
    pub const DEFAULT_UDP: UdpTrackerConfig = UdpTrackerConfig {
        retransmit_base: Duration::from_secs(4),
        max_retransmits: UdpTrackerConfig::BEP_MAX_RETRANSMITS,
        connection_id_ttl: UdpTrackerConfig::BEP_CONNECTION_ID_TTL,
        timeout: None,
    };

    /// A configuration with default tuning: `num_want` 50, intervals of at
    /// least 30 s, retries after 15 s doubling up to 30 min, 15 s request
    /// timeout ([`DEFAULT_TIMEOUT`]), 3 s `stopped` timeout, private client,
    /// UDP timing [`DEFAULT_UDP`](Self::DEFAULT_UDP).
    pub fn new(tiers: Vec<Vec<String>>, info_hash: InfoHash, peer_id: PeerId, port: u16) -> Self {
        Self {
            tiers,
            info_hash,
            peer_id,
            port,
            num_want: Self::DEFAULT_NUM_WANT,
            min_announce_interval: Self::DEFAULT_MIN_ANNOUNCE_INTERVAL,
            retry_delay: Self::DEFAULT_RETRY_DELAY,
            max_retry_delay: Self::DEFAULT_MAX_RETRY_DELAY,
            request_timeout: DEFAULT_TIMEOUT,
            stopped_timeout: Self::DEFAULT_STOPPED_TIMEOUT,
            client: None,
            udp: Self::DEFAULT_UDP,
            status: None,
            ipv6: None,
            external_port: ExternalPort::default(),
            reannounce: None,
        }
    }
}

/// Runs until `cancel` fires: announces `started`, re-announces every
/// `interval` (never sooner than `min interval`), sends `completed` once when
/// `stats.left` drops to 0 after having been non-zero, and on cancellation
/// sends `stopped` with a short timeout. Results go to `updates` (with
/// `send().await`: the torrent drains it).
///
/// Trackers follow BEP 12: each tier is shuffled once, tiers are tried in
/// order and the URLs of a tier in order until one answers; that URL moves to
/// the front of its tier. `http(s)://` URLs go to an [`HttpTracker`],
/// `udp://` URLs to a [`UdpTracker`] (kept for the announcer's life, so its
/// connection id is reused); tiers may mix both. Other schemes are skipped;
/// with no URL left this returns at once. When every tracker fails the
/// round is retried after [`AnnouncerConfig::retry_delay`], doubling up to
/// [`AnnouncerConfig::max_retry_delay`].
///
/// The loop also ends, after the `stopped` announce, when the `updates`
/// receiver or the `stats` sender is dropped (the torrent is gone).
pub async fn run_announcer(
    config: AnnouncerConfig,
    stats: watch::Receiver<TransferStats>,
    updates: mpsc::Sender<TrackerUpdate>,
    cancel: CancellationToken,
) {
    let short = config.info_hash.short();
    let tiers = usable_tiers(&config.tiers, &short);
    let board = TrackerBoard::new(&tiers);
    let tiers = shuffled(tiers);
    if tiers.is_empty() {
        debug!("{short}: no http(s) or udp tracker, not announcing");
        return;
    }
    let client = match config.client.clone() {
        Some(client) => client,
        None => match reqwest::Client::builder().build() {
            Ok(client) => client,
            Err(e) => {
                error!("{short}: cannot build an HTTP client, not announcing: {e}");
                return;
            }
        },
    };
    let announcer = Announcer {
        config,
        short,
        tiers,
        client,
        stats,
        updates,
        cancel,
        started_ok: false,
        seen_incomplete: false,
        completed_owed: false,
        completed_done: false,
        last_working: None,
        tracker_ids: HashMap::new(),
        failures: HashMap::new(),
        udp: HashMap::new(),
        board,
    };
    announcer.publish();
    announcer.run().await;
}

/// Resolves when `notify` is notified; never without one.
async fn notified(notify: Option<&Notify>) {
    match notify {
        Some(notify) => notify.notified().await,
        None => std::future::pending().await,
    }
}

/// The http(s) and udp URLs of `tiers`, each URL once (first occurrence), empty tiers
/// dropped.
fn usable_tiers(tiers: &[Vec<String>], short: &str) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut usable = Vec::new();
    for tier in tiers {
        let mut urls = Vec::new();
        for url in tier {
            if !(is_http_url(url) || is_udp_url(url)) {
                debug!("{short}: skipping tracker {url}: unsupported scheme");
            } else if seen.insert(url.as_str()) {
                urls.push(url.clone());
            }
        }
        if !urls.is_empty() {
            usable.push(urls);
        }
    }
    usable
}

/// `tiers` with each tier shuffled (BEP 12).
fn shuffled(mut tiers: Vec<Vec<String>>) -> Vec<Vec<String>> {
    let mut rng = rand::thread_rng();
    for tier in &mut tiers {
        tier.shuffle(&mut rng);
    }
    tiers
}

/// The outcome of one pass over the tiers.
enum Round {
    /// A tracker answered; the next regular announce is due after this.
    Announced(Duration),
    /// Every tracker failed.
    AllFailed,
    /// The update receiver is gone.
    ReceiverGone,
}

/// Why a wait between rounds ended.
enum Wake {
    /// Time for the next round.
    Announce,
    /// Cancelled, or the torrent is gone.
    Shutdown,
}

struct Announcer {
    config: AnnouncerConfig,
    short: String,
    /// Shuffled http(s) and udp tiers; a URL that answers moves to its
    /// tier's front.
    tiers: Vec<Vec<String>>,
    client: reqwest::Client,
    stats: watch::Receiver<TransferStats>,
    updates: mpsc::Sender<TrackerUpdate>,
    cancel: CancellationToken,
    /// A `started` announce was accepted by some tracker.
    started_ok: bool,
    /// `left` was non-zero at some point since start.
    seen_incomplete: bool,
    /// `left` reached 0 after `seen_incomplete`; `completed` not yet accepted.
    completed_owed: bool,
    /// `completed` was accepted (or made moot); never owed again.
    completed_done: bool,
    /// The URL that answered last: where `stopped` goes.
    last_working: Option<String>,
    /// `tracker id` per URL, echoed in later announces to that URL.
    tracker_ids: HashMap<String, String>,
    /// Consecutive failures per URL, to log the first at warn only.
    failures: HashMap<String, u32>,
    /// UDP trackers by URL, created on first use.
    udp: HashMap<String, UdpTracker>,
    /// Each tracker's status, published on `config.status`.
    board: TrackerBoard,
}

impl Announcer {
    async fn run(mut self) {
        let initial = *self.stats.borrow_and_update();
        self.observe(initial);
        let cancel = self.cancel.clone();
        let mut retry_delay = self.config.retry_delay;
        loop {
            let round = tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                round = self.announce_round() => round,
            };
            let (wait, succeeded) = match round {
                Round::Announced(wait) => {
                    retry_delay = self.config.retry_delay;
                    (wait, true)
                }
                Round::AllFailed => {
                    let wait = retry_delay;
                    retry_delay = (retry_delay * 2).min(self.config.max_retry_delay);
                    debug!(
                        "{}: every tracker failed, retrying in {:?}",
                        self.short, wait
                    );
                    (wait, false)
                }
                Round::ReceiverGone => {
                    debug!("{}: tracker update receiver gone", self.short);
                    break;
                }
            };
            self.board.round_done((Instant::now() + wait).into_std());
            self.publish();
            match self.wait(wait, succeeded).await {
                Wake::Announce => {}
                Wake::Shutdown => break,
            }
        }
        self.board.stopped();
        self.publish();
        self.stop().await;
    }

    /// Publishes the board, if anyone asked for it.
    fn publish(&self) {
        if let Some(status) = &self.config.status {
            status.send_replace(self.board.rows().to_vec());
        }
    }

    /// Tracks `left` to know when `completed` is owed.
    fn observe(&mut self, stats: TransferStats) {
        if stats.left > 0 {
            self.seen_incomplete = true;
        } else if self.seen_incomplete && !self.completed_done {
            self.completed_owed = true;
        }
    }

    fn next_event(&self) -> Option<AnnounceEvent> {
        if !self.started_ok {
            Some(AnnounceEvent::Started)
        } else if self.completed_owed {
            Some(AnnounceEvent::Completed)
        } else {
            None
        }
    }

    fn request(
        &self,
        url: &str,
        stats: TransferStats,
        event: Option<AnnounceEvent>,
        num_want: u32,
    ) -> AnnounceRequest {
        AnnounceRequest {
            info_hash: self.config.info_hash,
            peer_id: self.config.peer_id,
            port: self.config.external_port.announce_port(self.config.port),
            uploaded: stats.uploaded,
            downloaded: stats.downloaded,
            left: stats.left,
            event,
            num_want: Some(num_want),
            tracker_id: self.tracker_ids.get(url).cloned(),
            ipv6: self.config.ipv6,
        }
    }

    /// One BEP 12 pass: tiers in order, URLs of a tier in order, until one
    /// answers.
    async fn announce_round(&mut self) -> Round {
        let stats = *self.stats.borrow_and_update();
        self.observe(stats);
        let event = self.next_event();
        for t in 0..self.tiers.len() {
            for i in 0..self.tiers[t].len() {
                let url = self.tiers[t][i].clone();
                let req = self.request(&url, stats, event, self.config.num_want);
                let timeout = self.config.request_timeout;
                self.board.contacting(&url);
                self.publish();
                let update = match self.announce_to(&url, &req, timeout).await {
                    Ok(response) => {
                        self.board.working(&url, response.peers.len());
                        self.publish();
                        self.tiers[t][..=i].rotate_right(1);
                        let wait = self.on_success(&url, event, stats, &response);
                        let update = TrackerUpdate::Announced {
                            url,
                            peers: response.peers,
                            warning: response.warning,
                        };
                        if self.updates.send(update).await.is_err() {
                            return Round::ReceiverGone;
                        }
                        return Round::Announced(wait);
                    }
                    Err(e) => {
                        self.board.failed(&url, e.brief());
                        self.publish();
                        let count = self.failures.entry(url.clone()).or_insert(0);
                        *count += 1;
                        if *count == 1 {
                            // The brief reason: a request error names the whole announce URL.
                            warn!("{}: announce to {url} failed: {}", self.short, e.brief());
                            debug!("{}: announce to {url} failed: {e}", self.short);
                        } else {
                            debug!(
                                "{}: announce to {url} failed ({count} times in a row): {e}",
                                self.short
                            );
                        }
                        TrackerUpdate::Failed {
                            url,
                            error: e.to_string(),
                        }
                    }
                };
                if self.updates.send(update).await.is_err() {
                    return Round::ReceiverGone;
                }
            }
        }
        Round::AllFailed
    }

    /// One announce to `url`, by its scheme, bounded by `timeout`.
    async fn announce_to(
        &mut self,
        url: &str,
        req: &AnnounceRequest,
        timeout: Duration,
    ) -> Result<AnnounceResponse, TrackerError> {
        if is_udp_url(url) {
            let config = UdpTrackerConfig {
                timeout: Some(timeout),
                ..self.config.udp
            };
            let tracker = self
                .udp
                .entry(url.to_string())
                .or_insert_with(|| UdpTracker::new(url, config));
            tracker.set_config(config);
            tracker.announce(req).await
        } else {
            HttpTracker::new(url, self.client.clone())
                .with_timeout(timeout)
                .announce(req)
                .await
        }
    }

    /// Records a successful announce; returns the delay until the next one.
    fn on_success(
        &mut self,
        url: &str,
        event: Option<AnnounceEvent>,
        stats: TransferStats,
        response: &AnnounceResponse,
    ) -> Duration {
        self.failures.remove(url);
        self.last_working = Some(url.to_string());
        if let Some(id) = &response.tracker_id {
            self.tracker_ids.insert(url.to_string(), id.clone());
        }
        match event {
            Some(AnnounceEvent::Started) => {
                self.started_ok = true;
                if stats.left == 0 {
                    // The tracker learnt from `started` that we are complete.
                    self.completed_owed = false;
                    self.completed_done = true;
                }
            }
            Some(AnnounceEvent::Completed) => {
                self.completed_owed = false;
                self.completed_done = true;
            }
            Some(AnnounceEvent::Stopped) | None => {}
        }
        let wait = response
            .interval
            .max(response.min_interval.unwrap_or_default())
            .max(self.config.min_announce_interval);
        let event = event.map_or(String::new(), |e| format!(" {}", e.as_str()));
        info!(
            "{}: announced{event} to {url}: {} peers, next in {}s",
            self.short,
            response.peers.len(),
            wait.as_secs()
        );
        if let Some(warning) = &response.warning {
            warn!("{}: tracker {url} warns: {warning}", self.short);
        }
        wait
    }

    /// Sleeps `wait`, waking early for shutdown, or to announce `completed`
    /// if `early_completed` (the last round succeeded).
    async fn wait(&mut self, wait: Duration, early_completed: bool) -> Wake {
        let sleep = tokio::time::sleep_until(Instant::now() + wait);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Wake::Shutdown,
                // Before `stats` so frequent stats updates cannot starve it.
                _ = &mut sleep => return Wake::Announce,
                () = notified(self.config.reannounce.as_deref()) => return Wake::Announce,
                changed = self.stats.changed() => {
                    if changed.is_err() {
                        debug!("{}: transfer stats closed, stopping announcer", self.short);
                        return Wake::Shutdown;
                    }
                    let stats = *self.stats.borrow_and_update();
                    self.observe(stats);
                    if early_completed && self.started_ok && self.completed_owed {
                        return Wake::Announce;
                    }
                }
            }
        }
    }

    /// Sends `stopped` to the last tracker that answered, if `started` was
    /// accepted, after a `completed` that is still owed; both together are
    /// bounded by [`AnnouncerConfig::stopped_timeout`].
    async fn stop(&mut self) {
        if !self.started_ok {
            return;
        }
        let Some(url) = self.last_working.clone() else {
            return;
        };
        let deadline = Instant::now() + self.config.stopped_timeout;
        let stats = *self.stats.borrow();
        self.observe(stats);
        if self.completed_owed {
            self.final_announce(&url, stats, AnnounceEvent::Completed, deadline)
                .await;
        }
        self.final_announce(&url, stats, AnnounceEvent::Stopped, deadline)
            .await;
    }

    /// One announce of shutdown, `numwant` 0, given up at `deadline`.
    async fn final_announce(
        &mut self,
        url: &str,
        stats: TransferStats,
        event: AnnounceEvent,
        deadline: Instant,
    ) {
        let req = self.request(url, stats, Some(event), 0);
        let timeout = deadline.saturating_duration_since(Instant::now());
        let event = event.as_str();
        match tokio::time::timeout_at(deadline, self.announce_to(url, &req, timeout)).await {
            Ok(Ok(_)) => info!("{}: announced {event} to {url}", self.short),
            Ok(Err(e)) => debug!("{}: {event} announce to {url} failed: {e}", self.short),
            Err(_) => debug!("{}: {event} announce to {url} timed out", self.short),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tracker::udp::fake::{FakeUdpTracker, Mode};
    use crate::tracker::udp::packet::{AnnouncePacket, Request};
    use crate::tracker::TrackerState;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, UdpSocket};
    use tokio::task::JoinHandle;
    use tokio::time::timeout;

    const STEP: Duration = Duration::from_secs(3);

    /// A tracker on 127.0.0.1 that records each request target and answers
    /// `body`; with `hang_on_stopped` it never answers `event=stopped`.
    struct FakeTracker {
        url: String,
        requests: mpsc::UnboundedReceiver<String>,
        _server: tokio::task::JoinHandle<()>,
    }

    impl FakeTracker {
        async fn start(body: &[u8], hang_on_stopped: bool) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}/announce", listener.local_addr().unwrap());
            let (tx, requests) = mpsc::unbounded_channel();
            let body = body.to_vec();
            let server = tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    let tx = tx.clone();
                    let body = body.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut buf = [0u8; 1024];
                        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                            match conn.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => head.extend_from_slice(&buf[..n]),
                            }
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let target = head.split(' ').nth(1).unwrap_or("").to_string();
                        let stopped = target.contains("event=stopped");
                        let _ = tx.send(target);
                        if hang_on_stopped && stopped {
                            std::future::pending::<()>().await;
                        }
                        let mut response = format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                            body.len()
                        )
                        .into_bytes();
                        response.extend_from_slice(&body);
                        let _ = conn.write_all(&response).await;
                        let _ = conn.shutdown().await;
                    });
                }
            });
            Self {
                url,
                requests,
                _server: server,
            }
        }

        /// The next request target, within [`STEP`].
        async fn next(&mut self) -> String {
            timeout(STEP, self.requests.recv())
                .await
                .expect("no request in time")
                .expect("tracker gone")
        }
    }

    /// The `event` query parameter of a request target, if any.
    fn event_of(target: &str) -> Option<&str> {
        let query = target.split_once('?')?.1;
        query.split('&').find_map(|p| p.strip_prefix("event="))
    }

    fn param<'a>(target: &'a str, name: &str) -> Option<&'a str> {
        let query = target.split_once('?')?.1;
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    }

    /// A URL on 127.0.0.1 where nothing listens.
    async fn dead_url() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/announce", listener.local_addr().unwrap());
        drop(listener);
        url
    }

    fn config(tiers: Vec<Vec<String>>) -> AnnouncerConfig {
        let mut config = AnnouncerConfig::new(
            tiers,
            InfoHash([7; 20]),
            PeerId(*b"-BT0001-testtesttest"),
            6881,
        );
        config.client = Some(reqwest::Client::builder().no_proxy().build().unwrap());
        config.request_timeout = Duration::from_secs(2);
        config.stopped_timeout = Duration::from_millis(300);
        config
    }

    struct Running {
        stats: watch::Sender<TransferStats>,
        updates: mpsc::Receiver<TrackerUpdate>,
        cancel: CancellationToken,
        task: JoinHandle<()>,
    }

    fn spawn(config: AnnouncerConfig, left: u64) -> Running {
        let (stats, stats_rx) = watch::channel(TransferStats {
            left,
            ..TransferStats::default()
        });
        let (updates_tx, updates) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run_announcer(config, stats_rx, updates_tx, cancel.clone()));
        Running {
            stats,
            updates,
            cancel,
            task,
        }
    }

    impl Running {
        async fn next(&mut self) -> TrackerUpdate {
            timeout(STEP, self.updates.recv())
                .await
                .expect("no update in time")
                .expect("announcer ended")
        }

        async fn shutdown(self) {
            self.cancel.cancel();
            timeout(STEP, self.task)
                .await
                .expect("announcer did not stop in time")
                .unwrap();
        }
    }

    fn body_with_peer(extra: &str) -> Vec<u8> {
        let mut body = format!("d{extra}8:intervali1800e5:peers6:").into_bytes();
        body.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        body.push(b'e');
        body
    }

    #[test]
    fn announcer_future_is_send() {
        fn assert_send<T: Send>(_: &T) {}
        let (_stats, stats_rx) = watch::channel(TransferStats::default());
        let (updates_tx, _updates) = mpsc::channel(1);
        let fut = run_announcer(
            config(vec![]),
            stats_rx,
            updates_tx,
            CancellationToken::new(),
        );
        assert_send(&fut);
    }

    #[tokio::test]
    async fn started_then_completed_then_stopped() {
        let mut tracker = FakeTracker::start(&body_with_peer("10:tracker id3:abc"), false).await;
        let mut run = spawn(config(vec![vec![tracker.url.clone()]]), 100);

        let first = tracker.next().await;
        assert_eq!(event_of(&first), Some("started"), "{first}");
        assert_eq!(param(&first, "left"), Some("100"));
        assert_eq!(param(&first, "numwant"), Some("50"));
        assert_eq!(param(&first, "trackerid"), None);
        match run.next().await {
            TrackerUpdate::Announced {
                url,
                peers,
                warning,
            } => {
                assert_eq!(url, tracker.url);
                assert_eq!(peers, vec!["127.0.0.1:6881".parse().unwrap()]);
                assert_eq!(warning, None);
            }
            other => panic!("{other:?}"),
        }

        // Finishing the download announces `completed` at once, although
        // the interval is 30 minutes.
        run.stats.send_modify(|s| {
            s.left = 0;
            s.downloaded = 100;
        });
        let second = tracker.next().await;
        assert_eq!(event_of(&second), Some("completed"), "{second}");
        assert_eq!(param(&second, "left"), Some("0"));
        assert_eq!(param(&second, "downloaded"), Some("100"));
        assert_eq!(param(&second, "trackerid"), Some("abc"));
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));

        run.shutdown().await;
        let third = tracker.next().await;
        assert_eq!(event_of(&third), Some("stopped"), "{third}");
        assert_eq!(param(&third, "numwant"), Some("0"));
        assert!(tracker.requests.try_recv().is_err(), "only three announces");
    }

    #[tokio::test]
    async fn sends_our_ipv6_address_when_configured() {
        let mut tracker = FakeTracker::start(&body_with_peer(""), false).await;
        let mut cfg = config(vec![vec![tracker.url.clone()]]);
        cfg.ipv6 = Some("2a01:4f8::7".parse().unwrap());
        let mut run = spawn(cfg, 100);
        let first = tracker.next().await;
        assert_eq!(param(&first, "ipv6"), Some("2a01%3A4f8%3A%3A7"), "{first}");
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        run.shutdown().await;

        let mut tracker = FakeTracker::start(&body_with_peer(""), false).await;
        let mut run = spawn(config(vec![vec![tracker.url.clone()]]), 100);
        let first = tracker.next().await;
        assert_eq!(param(&first, "ipv6"), None, "{first}");
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        run.shutdown().await;
    }

    #[tokio::test]
    async fn reannounces_after_interval_and_seeder_never_completes() {
        let body = b"d8:intervali1e12:min intervali1e5:peers0:e";
        let mut tracker = FakeTracker::start(body, false).await;
        let mut config = config(vec![vec![tracker.url.clone()]]);
        config.min_announce_interval = Duration::from_millis(100);
        // Seeding from the start: `left` is 0 throughout.
        let mut run = spawn(config, 0);

        let first = tracker.next().await;
        assert_eq!(event_of(&first), Some("started"), "{first}");
        let at = Instant::now();
        let second = tracker.next().await;
        assert_eq!(event_of(&second), None, "{second}");
        // The tracker's (clamped) one-second interval is respected.
        assert!(
            at.elapsed() >= Duration::from_millis(900),
            "{:?}",
            at.elapsed()
        );
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));

        run.shutdown().await;
        assert_eq!(event_of(&tracker.next().await), Some("stopped"));
    }

    #[tokio::test]
    async fn dead_tier_falls_through_and_working_url_is_promoted() {
        let mut alive = FakeTracker::start(&body_with_peer(""), false).await;
        let dead1 = dead_url().await;
        let dead2 = dead_url().await;
        let tiers = vec![vec![dead1.clone()], vec![dead2.clone(), alive.url.clone()]];
        let mut run = spawn(config(tiers), 100);

        // First round: tier 1 fails, then tier 2 in its shuffled order.
        match run.next().await {
            TrackerUpdate::Failed { url, .. } => assert_eq!(url, dead1),
            other => panic!("{other:?}"),
        }
        loop {
            match run.next().await {
                TrackerUpdate::Failed { url, .. } => assert_eq!(url, dead2),
                TrackerUpdate::Announced { url, .. } => {
                    assert_eq!(url, alive.url);
                    break;
                }
            }
        }
        assert_eq!(event_of(&alive.next().await), Some("started"));

        // Second round (`completed`): tier 1 is retried first, but in tier 2
        // the working URL now comes first, so dead2 is not tried.
        run.stats.send_modify(|s| s.left = 0);
        match run.next().await {
            TrackerUpdate::Failed { url, .. } => assert_eq!(url, dead1),
            other => panic!("{other:?}"),
        }
        match run.next().await {
            TrackerUpdate::Announced { url, .. } => assert_eq!(url, alive.url),
            other => panic!("{other:?}"),
        }
        assert_eq!(event_of(&alive.next().await), Some("completed"));

        run.shutdown().await;
        assert_eq!(event_of(&alive.next().await), Some("stopped"));
    }

    #[tokio::test]
    async fn retries_with_backoff_and_skips_unknown_schemes() {
        let dead = dead_url().await;
        let mut config = config(vec![
            vec!["wss://127.0.0.1:1/announce".into()],
            vec![dead.clone()],
        ]);
        config.retry_delay = Duration::from_millis(20);
        config.max_retry_delay = Duration::from_millis(40);
        let mut run = spawn(config, 100);
        for _ in 0..4 {
            match run.next().await {
                TrackerUpdate::Failed { url, error } => {
                    assert_eq!(url, dead);
                    assert!(error.starts_with("request failed"), "{error}");
                }
                other => panic!("{other:?}"),
            }
        }
        // `started` never succeeded: no `stopped`, and a prompt return.
        run.shutdown().await;
    }

    #[tokio::test]
    async fn retries_started_until_a_tracker_accepts_it() {
        let mut tracker = FakeTracker::start(b"d14:failure reason4:busye", false).await;
        let mut config = config(vec![vec![tracker.url.clone()]]);
        config.retry_delay = Duration::from_millis(20);
        let mut run = spawn(config, 100);
        for _ in 0..2 {
            assert_eq!(event_of(&tracker.next().await), Some("started"));
            match run.next().await {
                TrackerUpdate::Failed { error, .. } => {
                    assert_eq!(error, "tracker failure: busy")
                }
                other => panic!("{other:?}"),
            }
        }
        run.shutdown().await;
        // Never started, so no `stopped`; drain retries made before cancel.
        while let Ok(target) = tracker.requests.try_recv() {
            assert_eq!(event_of(&target), Some("started"), "{target}");
        }
    }

    #[tokio::test]
    async fn publishes_each_trackers_status() {
        let alive = FakeTracker::start(&body_with_peer(""), false).await;
        let dead = dead_url().await;
        let mut config = config(vec![
            vec![dead.clone(), "wss://127.0.0.1:1/x".into()],
            vec![alive.url.clone()],
        ]);
        let (status_tx, mut status) = watch::channel(Vec::new());
        config.status = Some(status_tx);
        let mut run = spawn(config, 100);
        assert!(matches!(run.next().await, TrackerUpdate::Failed { .. }));
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        let rows = timeout(
            STEP,
            status.wait_for(|rows| rows.iter().all(|r| r.next_announce.is_some())),
        )
        .await
        .expect("round published in time")
        .unwrap()
        .clone();
        // Unsupported schemes are not listed; tiers keep their order.
        let urls: Vec<_> = rows.iter().map(|r| (r.url.as_str(), r.tier)).collect();
        assert_eq!(urls, [(dead.as_str(), 0), (alive.url.as_str(), 1)]);
        assert_eq!(
            rows[0].state,
            TrackerState::Failing {
                reason: "connection refused".into(),
                failures: 1
            }
        );
        assert_eq!(rows[1].state, TrackerState::Working { peers: 1 });
        run.shutdown().await;
        assert!(status.borrow().iter().all(|r| r.next_announce.is_none()));
    }

    #[tokio::test]
    async fn nothing_to_announce_returns_at_once() {
        for tiers in [
            vec![],
            vec![vec![]],
            vec![vec!["wss://127.0.0.1:1".to_string(), "dht://x".to_string()]],
        ] {
            let run = spawn(config(tiers), 100);
            timeout(STEP, run.task)
                .await
                .expect("announcer should return without cancel")
                .unwrap();
        }
    }

    #[tokio::test]
    async fn shutdown_does_not_hang_on_a_silent_tracker() {
        let mut tracker = FakeTracker::start(&body_with_peer(""), true).await;
        let mut run = spawn(config(vec![vec![tracker.url.clone()]]), 100);
        assert_eq!(event_of(&tracker.next().await), Some("started"));
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        let at = Instant::now();
        run.shutdown().await;
        assert!(at.elapsed() < Duration::from_secs(2), "{:?}", at.elapsed());
        assert_eq!(event_of(&tracker.next().await), Some("stopped"));
    }

    #[tokio::test]
    async fn ends_when_the_torrent_is_gone() {
        let mut tracker = FakeTracker::start(&body_with_peer(""), false).await;
        let run = spawn(config(vec![vec![tracker.url.clone()]]), 100);
        drop(run.updates);
        timeout(STEP, run.task)
            .await
            .expect("announcer should end without cancel")
            .unwrap();
        assert_eq!(event_of(&tracker.next().await), Some("started"));
        assert_eq!(event_of(&tracker.next().await), Some("stopped"));

        // Dropping the stats sender ends it too.
        let mut run = spawn(config(vec![vec![tracker.url.clone()]]), 100);
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        drop(run.stats);
        timeout(STEP, run.task)
            .await
            .expect("announcer should end without cancel")
            .unwrap();
        assert_eq!(event_of(&tracker.next().await), Some("started"));
        assert_eq!(event_of(&tracker.next().await), Some("stopped"));
    }

    /// A `udp://` URL on 127.0.0.1 where nothing listens.
    async fn dead_udp_url() -> String {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let url = format!("udp://{}/announce", socket.local_addr().unwrap());
        drop(socket);
        url
    }

    /// The next request of `fake`, which must be an announce.
    async fn udp_announce(fake: &mut FakeUdpTracker) -> AnnouncePacket {
        match fake.next().await {
            Request::Announce(a) => a,
            other => panic!("expected an announce, got {other:?}"),
        }
    }

    async fn udp_connect(fake: &mut FakeUdpTracker) {
        match fake.next().await {
            Request::Connect { .. } => {}
            other => panic!("expected a connect, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn announces_the_mapped_external_port() {
        use crate::portmap::{MapTransport, MappedPort, PortMapProtocol};
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        let mut cfg = config(vec![vec![fake.url.clone()]]);
        let (mappings, external) = ExternalPort::channel();
        mappings.send_replace(vec![MappedPort {
            protocol: PortMapProtocol::Pcp,
            transport: MapTransport::Tcp,
            internal_port: 6881,
            external: SocketAddr::from(([11, 22, 33, 44], 7001)),
        }]);
        cfg.external_port = external;
        let _run = spawn(cfg, 100);
        udp_connect(&mut fake).await;
        assert_eq!(udp_announce(&mut fake).await.port, 7001);
    }

    #[tokio::test]
    async fn udp_started_then_completed_then_stopped() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        let mut run = spawn(config(vec![vec![fake.url.clone()]]), 100);

        udp_connect(&mut fake).await;
        let first = udp_announce(&mut fake).await;
        assert_eq!(first.event, Some(AnnounceEvent::Started));
        assert_eq!((first.left, first.num_want, first.port), (100, 50, 6881));
        assert_eq!(first.info_hash, InfoHash([7; 20]));
        match run.next().await {
            TrackerUpdate::Announced { url, peers, .. } => {
                assert_eq!(url, fake.url);
                assert_eq!(peers, fake.peers);
            }
            other => panic!("{other:?}"),
        }

        run.stats.send_modify(|s| {
            s.left = 0;
            s.downloaded = 100;
        });
        // Within the minute: the connection id is reused, no new connect.
        let second = udp_announce(&mut fake).await;
        assert_eq!(second.event, Some(AnnounceEvent::Completed));
        assert_eq!((second.left, second.downloaded), (0, 100));
        assert_eq!(second.connection_id, first.connection_id);
        assert_eq!(second.key, first.key);
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));

        run.shutdown().await;
        let third = udp_announce(&mut fake).await;
        assert_eq!(third.event, Some(AnnounceEvent::Stopped));
        assert_eq!(third.num_want, 0);
        assert!(fake.requests.try_recv().is_err(), "only three announces");
    }

    #[tokio::test]
    async fn udp_connection_id_is_reused_then_renewed_after_expiry() {
        // Announces every second; connection ids last 1.5 s.
        let mut fake = FakeUdpTracker::start_with_interval(Mode::Answer, 1).await;
        let mut config = config(vec![vec![fake.url.clone()]]);
        config.min_announce_interval = Duration::from_millis(100);
        config.udp.connection_id_ttl = Duration::from_millis(1500);
        let mut run = spawn(config, 0);

        udp_connect(&mut fake).await;
        let first = udp_announce(&mut fake).await;
        assert_eq!(first.connection_id, fake.issued(0));
        let second = udp_announce(&mut fake).await;
        assert_eq!(second.event, None);
        assert_eq!(second.connection_id, fake.issued(0));
        udp_connect(&mut fake).await;
        let third = udp_announce(&mut fake).await;
        assert_eq!(third.connection_id, fake.issued(1));
        for _ in 0..3 {
            assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        }
        run.shutdown().await;
    }

    #[tokio::test]
    async fn udp_retransmits_when_the_first_datagram_is_dropped() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        fake.drop_datagrams(&[0]);
        let mut config = config(vec![vec![fake.url.clone()]]);
        config.udp.retransmit_base = Duration::from_millis(200);
        let mut run = spawn(config, 100);
        match run.next().await {
            TrackerUpdate::Announced { url, .. } => assert_eq!(url, fake.url),
            other => panic!("{other:?}"),
        }
        udp_connect(&mut fake).await;
        udp_connect(&mut fake).await;
        assert_eq!(
            udp_announce(&mut fake).await.event,
            Some(AnnounceEvent::Started)
        );
        run.shutdown().await;
    }

    #[tokio::test]
    async fn udp_error_action_is_a_failed_update() {
        let fake = FakeUdpTracker::start(Mode::Error("torrent not registered".into())).await;
        let mut config = config(vec![vec![fake.url.clone()]]);
        config.retry_delay = Duration::from_millis(20);
        let mut run = spawn(config, 100);
        for _ in 0..2 {
            match run.next().await {
                TrackerUpdate::Failed { url, error } => {
                    assert_eq!(url, fake.url);
                    assert_eq!(error, "tracker failure: torrent not registered");
                }
                other => panic!("{other:?}"),
            }
        }
        run.shutdown().await;
    }

    #[tokio::test]
    async fn dead_mixed_tier_falls_through_to_udp() {
        let mut fake = FakeUdpTracker::start(Mode::Answer).await;
        let dead_http = dead_url().await;
        let dead_udp = dead_udp_url().await;
        let tiers = vec![
            vec![dead_http.clone(), dead_udp.clone()],
            vec![fake.url.clone()],
        ];
        let mut run = spawn(config(tiers), 100);
        let at = Instant::now();
        let mut failed = HashSet::new();
        for _ in 0..2 {
            match run.next().await {
                TrackerUpdate::Failed { url, error } => {
                    if url == dead_udp {
                        assert!(error.starts_with("UDP: "), "{error}");
                    }
                    failed.insert(url);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(failed, HashSet::from([dead_http, dead_udp]));
        match run.next().await {
            TrackerUpdate::Announced { url, .. } => assert_eq!(url, fake.url),
            other => panic!("{other:?}"),
        }
        // Refused at once: no waiting for a retransmission timeout.
        assert!(at.elapsed() < Duration::from_secs(2), "{:?}", at.elapsed());
        udp_connect(&mut fake).await;
        assert_eq!(
            udp_announce(&mut fake).await.event,
            Some(AnnounceEvent::Started)
        );
        run.shutdown().await;
        assert_eq!(
            udp_announce(&mut fake).await.event,
            Some(AnnounceEvent::Stopped)
        );
    }

    #[tokio::test]
    async fn completed_is_still_sent_when_stopping_right_after_finishing() {
        let mut tracker = FakeTracker::start(&body_with_peer(""), false).await;
        let mut run = spawn(config(vec![vec![tracker.url.clone()]]), 100);
        assert_eq!(event_of(&tracker.next().await), Some("started"));
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        // Finished and stopped at once: the loop sees the cancellation
        // first (biased select), so `completed` goes out while stopping.
        run.stats.send_modify(|s| s.left = 0);
        run.shutdown().await;
        let completed = tracker.next().await;
        assert_eq!(event_of(&completed), Some("completed"), "{completed}");
        assert_eq!(param(&completed, "left"), Some("0"));
        assert_eq!(event_of(&tracker.next().await), Some("stopped"));
        assert!(tracker.requests.try_recv().is_err());
    }

    #[tokio::test]
    async fn udp_shutdown_does_not_hang_on_a_silent_tracker() {
        let mut fake = FakeUdpTracker::start(Mode::SilentOnStopped).await;
        let mut run = spawn(config(vec![vec![fake.url.clone()]]), 100);
        assert!(matches!(run.next().await, TrackerUpdate::Announced { .. }));
        let at = Instant::now();
        run.shutdown().await;
        assert!(at.elapsed() < Duration::from_secs(2), "{:?}", at.elapsed());
        udp_connect(&mut fake).await;
        udp_announce(&mut fake).await;
        assert_eq!(
            udp_announce(&mut fake).await.event,
            Some(AnnounceEvent::Stopped)
        );
    }
}
