//! A small HTTP tracker on `[::1]` that answers with compact IPv6 peers (`peers6`, BEP 7).
//!
//! It stands in for opentracker in the IPv6 tests: Debian's opentracker is built for IPv4 only
//! (started with `-i ::1` it exits with "V4 Tracker is V4 only!"; opentracker is compiled
//! either for IPv4 or for IPv6), and its source package could not be fetched here to rebuild it
//! with `WANT_V6`. Like opentracker it keeps, per info-hash, the source address of each
//! announce with the `port` it names, drops a peer on `event=stopped`, and lists the others.
//! It also records every announce's query string, for checks of what a client sent.

use std::collections::{BTreeSet, HashMap};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::harness::wait::poll;

/// One announce the tracker received.
#[derive(Clone, Debug)]
pub struct Announce {
    pub info_hash: [u8; 20],
    /// The source address of the request.
    pub from: SocketAddr,
    /// The raw query string.
    pub query: String,
}

#[derive(Default)]
struct State {
    swarms: HashMap<[u8; 20], BTreeSet<SocketAddr>>,
    announces: Vec<Announce>,
}

/// The tracker; stops on drop.
pub struct Tracker6 {
    pub port: u16,
    state: Arc<Mutex<State>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Tracker6 {
    /// Listens on `[::1]:0` and serves announces in a thread.
    pub fn start() -> Tracker6 {
        let listener = TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).expect("bind [::1]:0");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("local addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (Arc::clone(&state), Arc::clone(&stop));
            std::thread::spawn(move || serve(&listener, &state, &stop))
        };
        Tracker6 {
            port,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://[::1]:port/announce`.
    pub fn announce_url(&self) -> String {
        format!("http://[::1]:{}/announce", self.port)
    }

    /// Every announce so far, oldest first.
    pub fn announces(&self) -> Vec<Announce> {
        self.state.lock().expect("tracker state").announces.clone()
    }

    /// The peers listed for `hash` now.
    pub fn peers(&self, hash: &[u8; 20]) -> Vec<SocketAddr> {
        let state = self.state.lock().expect("tracker state");
        state
            .swarms
            .get(hash)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default()
    }

    /// Waits up to `timeout` until `n` peers are listed for `hash`.
    pub fn wait_peers(&self, hash: &[u8; 20], n: usize, timeout: Duration) {
        let reached = poll(timeout, Duration::from_millis(50), || {
            (self.peers(hash).len() >= n).then_some(())
        });
        assert!(
            reached.is_some(),
            "tracker lists {:?} for {}, want {n} peers",
            self.peers(hash),
            hex::encode(hash)
        );
    }
}

impl Drop for Tracker6 {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(listener: &TcpListener, state: &Mutex<State>, stop: &AtomicBool) {
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, from)) => {
                if let Err(e) = answer(stream, from, state) {
                    eprintln!("tracker6: {from}: {e}");
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => eprintln!("tracker6: accept: {e}"),
        }
    }
}

/// Reads one GET, records the announce, writes the bencoded reply.
fn answer(mut stream: TcpStream, from: SocketAddr, state: &Mutex<State>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 2048];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split_whitespace().nth(1).unwrap_or("");
    let query = target.split_once('?').map_or("", |(_, q)| q).to_string();
    let body = match announce(&query, from, state) {
        Ok(body) => body,
        Err(reason) => format!("d14:failure reason{}:{reason}e", reason.len()).into_bytes(),
    };
    write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )?;
    stream.write_all(&body)
}

/// Records the announce in `query` from `from`; the reply lists the other IPv6 peers.
fn announce(query: &str, from: SocketAddr, state: &Mutex<State>) -> Result<Vec<u8>, String> {
    let param = |key: &str| {
        query
            .split('&')
            .find_map(|p| p.strip_prefix(key)?.strip_prefix('='))
    };
    let info_hash: [u8; 20] = param("info_hash")
        .map(percent_decode)
        .and_then(|h| h.try_into().ok())
        .ok_or("bad info_hash")?;
    let port: u16 = param("port")
        .and_then(|p| p.parse().ok())
        .ok_or("bad port")?;
    let peer = SocketAddr::new(from.ip(), port);
    let mut state = state.lock().map_err(|_| "poisoned")?;
    state.announces.push(Announce {
        info_hash,
        from,
        query: query.to_string(),
    });
    let swarm = state.swarms.entry(info_hash).or_default();
    if param("event") == Some("stopped") {
        swarm.remove(&peer);
    } else {
        swarm.insert(peer);
    }
    let mut peers6 = Vec::new();
    for p in swarm.iter().filter(|p| **p != peer) {
        if let IpAddr::V6(ip) = p.ip() {
            peers6.extend_from_slice(&ip.octets());
            peers6.extend_from_slice(&p.port().to_be_bytes());
        }
    }
    let mut body = b"d8:intervali30e5:peers0:6:peers6".to_vec();
    body.extend_from_slice(format!("{}:", peers6.len()).as_bytes());
    body.extend_from_slice(&peers6);
    body.push(b'e');
    Ok(body)
}

/// `%XX` escapes to bytes; other characters stay as they are.
fn percent_decode(s: &str) -> Vec<u8> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}
