//! Web seeds (BEP 19, "GetRight style" `url-list`): HTTP(S) servers that hold
//! the torrent's files, used as a source of whole pieces beside the peers.
//!
//! A web seed is a kind of peer that has every piece. The torrent's core
//! (`torrent/core/webseeds.rs`) decides which run of whole pieces each web
//! seed fetches (through the picker, away from what the peers fetch) and what
//! to do when one fails; this module does the HTTP:
//!
//! - `urls.rs` (pure): the URL of each file on a server (BEP 19's
//!   single-file and multi-file rules, the torrent's own names, each path
//!   element percent-encoded); which `url-list` entries are usable is decided
//!   when the torrent is parsed ([`crate::metainfo::check_web_seed_url`]);
//! - `ranges.rs` (pure): a run of pieces as HTTP range requests, one per
//!   file it spans, pad files (BEP 47) never requested;
//! - `answer.rs` (pure): the checks on an answer (status, `Content-Range`,
//!   `Content-Length`), the speed check, and the assembly of streamed bytes
//!   into whole pieces;
//! - `task.rs`: one task per web seed. It takes one `WebSeedCommand::Fetch`
//!   at a time, sends its range requests in order over one keep-alive
//!   connection (reqwest), checks every answer (status, `Content-Range`,
//!   length), and reports each whole piece as soon as its bytes are in, then
//!   the run's end. At most one request is in flight and at most one piece is
//!   buffered per web seed, so its memory is bounded by the run.
//!
//! The task never retries by itself: it reports the error and the pieces it
//! did not deliver, and the core decides on backoff or dropping the server.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::metainfo::MetaInfo;
use crate::ratelimit::LinkLimits;

mod answer;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod ranges;
mod task;
pub(crate) mod urls;

/// Redirects followed per request; more is [`WebSeedError::Redirects`].
const MAX_REDIRECTS: usize = 5;
/// A server slower than this (bytes per second) over [`SLOW_WINDOW`] is too
/// slow.
const MIN_RATE: u64 = 8 * 1024;
/// The window of the rate check, and the longest silence tolerated.
const SLOW_WINDOW: Duration = Duration::from_secs(20);
/// How long connecting (TCP and TLS) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);
/// The `User-Agent` of web seed requests.
const USER_AGENT: &str = concat!("bittorrent/", env!("CARGO_PKG_VERSION"));

/// Which web seed of a torrent: its index in the torrent's list of usable
/// web seeds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct WebSeedId(pub(crate) u16);

/// What the torrent asks a web seed's task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum WebSeedCommand {
    /// Fetch these whole pieces, in order. The task sends one
    /// [`WebSeedEvent::Piece`] per piece, then one [`WebSeedEvent::RunEnded`].
    /// Sent only while the task is idle (after the previous run ended).
    Fetch {
        /// The run, never empty, within the torrent's pieces.
        pieces: Range<u32>,
    },
}

/// What a web seed's task tells its torrent.
#[derive(Debug)]
pub(crate) enum WebSeedEvent {
    /// One whole piece of the current run (pad-file bytes zero-filled), not
    /// yet verified. Pieces come in run order.
    Piece {
        /// From which web seed.
        seed: WebSeedId,
        /// The piece index.
        index: u32,
        /// Exactly the piece's length.
        data: Bytes,
    },
    /// The current run is over; the task is idle again.
    RunEnded {
        /// Which web seed.
        seed: WebSeedId,
        /// The pieces of the run not delivered (empty on success): the core
        /// gives them back to the picker.
        undelivered: Range<u32>,
        /// `Ok` when every piece was delivered, else why the run stopped.
        outcome: Result<(), WebSeedError>,
    },
}

/// Why a web seed's run stopped. [`WebSeedError::is_permanent`] tells the
/// core whether retrying the server can help.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebSeedError {
    /// An HTTP status other than 200/206 (404, 410, 5xx, ...).
    #[error("HTTP status {0}")]
    Status(u16),
    /// The answer does not hold the bytes asked for: a wrong or missing
    /// `Content-Range`, a wrong `Content-Length`, a body of the wrong
    /// length, a 200 for a range of a file that is not the whole file.
    #[error("bad answer: {0}")]
    BadAnswer(String),
    /// Too many redirects, or a redirect loop.
    #[error("too many redirects")]
    Redirects,
    /// The server sent too little for too long (a trickle or a stall).
    #[error("too slow: {0}")]
    TooSlow(String),
    /// Connecting, TLS, or the connection failed mid-answer.
    #[error("connection: {0}")]
    Connection(String),
}

impl WebSeedError {
    /// Retrying this server cannot help (404, 410, a wrong answer, a
    /// redirect loop); the core drops the web seed.
    /// Retrying is worth it for 5xx and the statuses that mean "later"
    /// (408, 425, 429), a slow server and a failed connection.
    pub fn is_permanent(&self) -> bool {
        match self {
            WebSeedError::Status(status) => !matches!(status, 408 | 425 | 429 | 500..),
            WebSeedError::BadAnswer(_) | WebSeedError::Redirects => true,
            WebSeedError::TooSlow(_) | WebSeedError::Connection(_) => false,
        }
    }
}

/// One web seed's task, as the torrent sees it: a cheap handle that sends
/// commands (`try_send`, the task is idle when it gets one).
#[derive(Clone, Debug)]
pub(crate) struct WebSeedHandle {
    /// Which web seed.
    pub(crate) id: WebSeedId,
    /// The URL as the torrent lists it (for logs, stats and events).
    pub(crate) url: Arc<str>,
    commands: mpsc::Sender<WebSeedCommand>,
}

impl WebSeedHandle {
    /// Hands a command to the task; `false` when the task is gone or busy.
    pub(crate) fn send(&self, command: WebSeedCommand) -> bool {
        self.commands.try_send(command).is_ok()
    }

    /// Whether the task has ended (it no longer takes commands).
    pub(crate) fn is_closed(&self) -> bool {
        self.commands.is_closed()
    }
}

/// What every web seed task of a session shares.
#[derive(Clone, Debug)]
pub(crate) struct WebSeedConfig {
    /// The HTTP client (keep-alive pool, redirect limit, user agent).
    pub(crate) client: reqwest::Client,
    /// Bytes per second below which a server is too slow, measured over
    /// `slow_window`.
    pub(crate) min_rate: u64,
    /// Window of the rate check, and the longest silence tolerated.
    pub(crate) slow_window: Duration,
    /// The torrent's and session's download limits the body is charged to.
    pub(crate) limits: LinkLimits,
}

impl WebSeedConfig {
    /// The defaults: a client that follows at most 5 redirects, keeps one
    /// idle connection per server, gives up connecting after 15 s and says
    /// `User-Agent: bittorrent/<version>`; too slow is below 8 KiB/s over
    /// 20 s.
    ///
    /// # Errors
    /// The HTTP client cannot be built (its TLS backend failed to start).
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        let client = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
            .pool_max_idle_per_host(1)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()?;
        Ok(Self {
            client,
            min_rate: MIN_RATE,
            slow_window: SLOW_WINDOW,
            limits: LinkLimits::default(),
        })
    }
}

/// Starts the task of web seed `id` at `url` (a usable URL, see
/// [`crate::metainfo::check_web_seed_url`]) into `tasks`; it reports on `events` and ends when
/// `cancel` fires or the handle is dropped.
pub(crate) fn spawn(
    id: WebSeedId,
    url: &str,
    meta: Arc<MetaInfo>,
    config: WebSeedConfig,
    events: mpsc::Sender<WebSeedEvent>,
    cancel: CancellationToken,
    tasks: &mut JoinSet<()>,
) -> WebSeedHandle {
    let (commands, receiver) = mpsc::channel(1);
    let url: Arc<str> = url.into();
    let task = task::Task::new(id, url.clone(), meta, config, events);
    tasks.spawn(task.run(receiver, cancel));
    WebSeedHandle { id, url, commands }
}
