//! A scriptable BEP 15 tracker on 127.0.0.1 for unit tests.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::tracker::udp::packet::{AnnounceReply, Request, Response, ScrapeInfo};
use crate::tracker::AnnounceEvent;
use crate::types::InfoHash;

/// How the fake answers.
#[derive(Clone, Debug)]
pub(crate) enum Mode {
    /// Answers every request properly.
    Answer,
    /// Never answers.
    Silent,
    /// Answers connects, and announces/scrapes with an error (action 3).
    Error(String),
    /// Answers properly, but first sends a datagram with another
    /// transaction id.
    StrayFirst,
    /// Answers announces with a 12-byte announce response.
    Truncated,
    /// Answers announces with a scrape response.
    WrongAction,
    /// Answers properly, except `stopped` announces.
    SilentOnStopped,
}

/// Each request received (also those it did not answer) goes to
/// `requests`. Connection ids are `issued(0)`, `issued(1)`, ... in order; an
/// announce or scrape with an id never issued gets an error response.
pub(crate) struct FakeUdpTracker {
    pub(crate) url: String,
    pub(crate) peers: Vec<SocketAddr>,
    pub(crate) requests: mpsc::UnboundedReceiver<Request>,
    drop: Arc<Mutex<HashSet<usize>>>,
    _task: JoinHandle<()>,
}

const FIRST_CONNECTION_ID: u64 = 0x00c0_ffee_0000_0000;

impl FakeUdpTracker {
    pub(crate) async fn start(mode: Mode) -> Self {
        Self::start_with_interval(mode, 1800).await
    }

    pub(crate) async fn start_with_interval(mode: Mode, interval: u32) -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let peers: Vec<SocketAddr> = vec![
            "127.0.0.1:6881".parse().unwrap(),
            "127.0.0.2:51413".parse().unwrap(),
        ];
        Self::serve_on(socket, mode, interval, peers)
    }

    /// A tracker on `[::1]` whose announce replies list IPv6 peers (18-byte
    /// entries, BEP 15 over IPv6); `None` when `::1` cannot be bound.
    pub(crate) async fn start_v6(mode: Mode) -> Option<Self> {
        let socket = UdpSocket::bind("[::1]:0").await.ok()?;
        let peers: Vec<SocketAddr> = vec![
            "[::1]:6881".parse().unwrap(),
            "[2001:db8::2]:51413".parse().unwrap(),
        ];
        Some(Self::serve_on(socket, mode, 1800, peers))
    }

    fn serve_on(socket: UdpSocket, mode: Mode, interval: u32, peers: Vec<SocketAddr>) -> Self {
        let url = format!("udp://{}/announce", socket.local_addr().unwrap());
        let (tx, requests) = mpsc::unbounded_channel();
        let drop = Arc::new(Mutex::new(HashSet::new()));
        let script = Script {
            mode,
            interval,
            peers: peers.clone(),
            issued: 0,
        };
        let task = tokio::spawn(serve(socket, script, tx, Arc::clone(&drop)));
        Self {
            url,
            peers,
            requests,
            drop,
            _task: task,
        }
    }

    /// The `i`-th connection id handed out.
    pub(crate) fn issued(&self, i: u64) -> u64 {
        FIRST_CONNECTION_ID + i
    }

    /// Leaves the datagrams with these indices (from 0) unanswered.
    pub(crate) fn drop_datagrams(&self, indices: &[usize]) {
        self.drop.lock().unwrap().extend(indices);
    }

    /// The next request, within 3 s.
    pub(crate) async fn next(&mut self) -> Request {
        tokio::time::timeout(Duration::from_secs(3), self.requests.recv())
            .await
            .expect("no request in time")
            .expect("fake tracker gone")
    }
}

async fn serve(
    socket: UdpSocket,
    mut script: Script,
    tx: mpsc::UnboundedSender<Request>,
    drop: Arc<Mutex<HashSet<usize>>>,
) {
    let mut buf = vec![0u8; 65536];
    let mut index = 0usize;
    loop {
        let Ok((len, from)) = socket.recv_from(&mut buf).await else {
            return;
        };
        let Ok(request) = Request::decode(&buf[..len]) else {
            continue;
        };
        let _ = tx.send(request.clone());
        let dropped = drop.lock().unwrap().contains(&index);
        index += 1;
        if dropped {
            continue;
        }
        let Some(response) = script.answer(&request) else {
            continue;
        };
        if matches!(script.mode, Mode::StrayFirst) {
            send_strays(&socket, request.transaction_id(), from).await;
        }
        let _ = socket.send_to(&response, from).await;
    }
}

/// What the fake answers, and the connection ids it handed out.
struct Script {
    mode: Mode,
    interval: u32,
    peers: Vec<SocketAddr>,
    issued: u64,
}

impl Script {
    /// The datagram answering `request` in this mode, or `None` to stay
    /// silent.
    fn answer(&mut self, request: &Request) -> Option<Vec<u8>> {
        let transaction_id = request.transaction_id();
        let error = |message: &str| {
            Response::Error {
                transaction_id,
                message: message.to_string(),
            }
            .encode()
        };
        let mode = self.mode.clone();
        let response = match (request, &mode) {
            (_, Mode::Silent) => return None,
            (Request::Connect { .. }, _) => self.connect(transaction_id),
            (Request::Announce(a), _) if !self.known(a.connection_id) => error("bad connection id"),
            (Request::Scrape { connection_id, .. }, _) if !self.known(*connection_id) => {
                error("bad connection id")
            }
            (_, Mode::Error(message)) => error(message),
            (Request::Announce(_), Mode::Truncated) => {
                let mut bytes = vec![0, 0, 0, 1];
                bytes.extend_from_slice(&transaction_id.to_be_bytes());
                bytes.extend_from_slice(&[0, 0, 0, 9]);
                bytes
            }
            (Request::Announce(_), Mode::WrongAction) => Response::Scrape {
                transaction_id,
                entries: vec![],
            }
            .encode(),
            (Request::Announce(a), Mode::SilentOnStopped)
                if a.event == Some(AnnounceEvent::Stopped) =>
            {
                return None
            }
            (Request::Announce(_), _) => self.announce(transaction_id),
            (Request::Scrape { info_hashes, .. }, _) => scrape(transaction_id, info_hashes),
        };
        Some(response)
    }

    /// Whether `id` is a connection id handed out.
    fn known(&self, id: u64) -> bool {
        (FIRST_CONNECTION_ID..FIRST_CONNECTION_ID + self.issued).contains(&id)
    }

    /// Hands out the next connection id.
    fn connect(&mut self, transaction_id: u32) -> Vec<u8> {
        self.issued += 1;
        Response::Connect {
            transaction_id,
            connection_id: FIRST_CONNECTION_ID + self.issued - 1,
        }
        .encode()
    }

    /// A proper announce response: two leechers, one seeder, our peers.
    fn announce(&self, transaction_id: u32) -> Vec<u8> {
        Response::Announce {
            transaction_id,
            reply: AnnounceReply {
                interval: self.interval,
                leechers: 2,
                seeders: 1,
                peers: self.peers.clone(),
            },
        }
        .encode()
    }
}

/// A scrape response: the first byte of each hash as its seeders.
fn scrape(transaction_id: u32, info_hashes: &[InfoHash]) -> Vec<u8> {
    Response::Scrape {
        transaction_id,
        entries: info_hashes
            .iter()
            .map(|h| ScrapeInfo {
                seeders: u32::from(h.0[0]),
                completed: 7,
                leechers: 3,
            })
            .collect(),
    }
    .encode()
}

/// What a client must ignore before the real answer: an error with another
/// transaction id, and a datagram too short to have one.
async fn send_strays(socket: &UdpSocket, transaction_id: u32, to: SocketAddr) {
    let mut bytes = Response::Error {
        transaction_id,
        message: "not yours".to_string(),
    }
    .encode();
    bytes[4..8].copy_from_slice(&transaction_id.wrapping_add(1).to_be_bytes());
    let _ = socket.send_to(&bytes, to).await;
    let _ = socket.send_to(&[1, 2, 3], to).await;
}
