//! An in-process BitTorrent peer on 127.0.0.1 (std::net and threads): honest, or hostile in
//! one of several ways, counting how often it is connected to.
//!
//! It accepts connections, answers the handshake correctly (echoes the info-hash, sends its
//! own peer id; reserved bits all zero, so no extensions), and then behaves as its [`Mode`]
//! says. It never dials anyone. Dropping it closes its listener and every connection.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::harness::meta::Meta;

const BLOCK: u32 = 16 * 1024;

/// How the peer behaves once the handshake is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Full bitfield, unchoke, answers requests with the right data.
    Honest,
    /// Full bitfield, unchoke, answers every request with the right length of wrong data.
    Corrupt,
    /// Full bitfield, unchoke, then a frame length prefix of 0xFFFFFFFF and garbage.
    OversizedHuge,
    /// Full bitfield, unchoke, then a `piece` frame of 200 KiB (over the 128 KiB + 13 limit).
    Oversized,
    /// Full bitfield, unchoke, then streams `piece` messages for blocks never requested.
    UnrequestedFlood,
    /// Full bitfield, unchoke, then `have` with index = piece count + 1000.
    BadHave,
    /// A bitfield one byte too long.
    WrongBitfield,
    /// A bitfield of the right size with the spare bits of its last byte set (only meaningful
    /// when the piece count is not a multiple of 8).
    SpareBits,
    /// Full bitfield, unchoke, then a `have` message of the wrong length (3-byte body).
    ShortHave,
    /// Full bitfield, unchoke, then a `piece` message for index = piece count + 5.
    BadPieceIndex,
    /// An empty bitfield (a leecher), `interested`, then a `request` of 1 MiB (over 128 KiB).
    HugeRequest,
}

/// A torrent the peer knows: what it needs to answer (the data only for [`Mode::Honest`]).
#[derive(Clone)]
pub struct Served {
    pub meta: Meta,
    /// The payload in torrent order (files concatenated); empty unless honest.
    pub data: Arc<Vec<u8>>,
}

/// What happened on the peer's connections.
#[derive(Default)]
pub struct Stats {
    /// TCP connections accepted.
    pub connections: AtomicU64,
    /// Handshakes completed (right protocol and a known info-hash).
    pub handshakes: AtomicU64,
    /// `request` messages received.
    pub requests: AtomicU64,
    /// Payload bytes sent in `piece` messages (wrong ones included).
    pub piece_bytes: AtomicU64,
    /// One line per finished connection: duration, bytes, how it ended.
    pub log: Mutex<Vec<String>>,
    /// How long each finished connection lasted, in the order they ended.
    pub durations: Mutex<Vec<Duration>>,
}

pub struct EvilPeer {
    pub port: u16,
    pub mode: Mode,
    pub stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    streams: Arc<Mutex<Vec<TcpStream>>>,
    listener: Option<JoinHandle<()>>,
}

impl EvilPeer {
    /// Starts listening on 127.0.0.1 (a free port) for the torrents in `served`.
    pub fn start(mode: Mode, served: Vec<Served>) -> EvilPeer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let stats = Arc::new(Stats::default());
        let stop = Arc::new(AtomicBool::new(false));
        let streams = Arc::new(Mutex::new(Vec::new()));
        let served = Arc::new(served);
        let thread = {
            let (stats, stop, streams) = (stats.clone(), stop.clone(), streams.clone());
            thread::spawn(move || {
                let mut n = 0u64;
                // Blocks in accept; Drop wakes it with a connection of its own after `stop`.
                for stream in listener.incoming() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    match stream {
                        Ok(stream) => {
                            n += 1;
                            stats.connections.fetch_add(1, Ordering::Relaxed);
                            if let Ok(clone) = stream.try_clone() {
                                streams.lock().unwrap().push(clone);
                            }
                            let (stats, served, stop) =
                                (stats.clone(), served.clone(), stop.clone());
                            thread::spawn(move || {
                                let start = Instant::now();
                                let mut conn = Conn {
                                    stream,
                                    mode,
                                    stats: stats.clone(),
                                    stop,
                                    sent: 0,
                                };
                                let end = conn.run(&served);
                                let line = format!(
                                    "connection {n}: {:.2?}, {} bytes sent, ended: {end}",
                                    start.elapsed(),
                                    conn.sent
                                );
                                stats.log.lock().unwrap().push(line);
                                stats.durations.lock().unwrap().push(start.elapsed());
                            });
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionAborted => {}
                        Err(e) => {
                            stats
                                .log
                                .lock()
                                .unwrap()
                                .push(format!("accept failed: {e}"));
                            break;
                        }
                    }
                }
            })
        };
        EvilPeer {
            port,
            mode,
            stats,
            stop,
            streams,
            listener: Some(thread),
        }
    }

    pub fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::Relaxed)
    }

    pub fn handshakes(&self) -> u64 {
        self.stats.handshakes.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.stats.requests.load(Ordering::Relaxed)
    }

    /// How long each finished connection lasted (a connection still open is not listed).
    pub fn durations(&self) -> Vec<Duration> {
        self.stats.durations.lock().unwrap().clone()
    }

    /// A few lines on what happened, for diagnostics.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "{:?} peer on port {}: {} connections, {} handshakes, {} requests, {} piece bytes sent",
            self.mode,
            self.port,
            self.connections(),
            self.handshakes(),
            self.requests(),
            self.stats.piece_bytes.load(Ordering::Relaxed)
        );
        for l in self.stats.log.lock().unwrap().iter() {
            s += &format!("\n    {l}");
        }
        s
    }
}

impl Drop for EvilPeer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Wakes the listener thread blocked in accept, which then sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        for s in self.streams.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.listener.take() {
            let _ = t.join();
        }
    }
}

struct Conn {
    stream: TcpStream,
    mode: Mode,
    stats: Arc<Stats>,
    stop: Arc<AtomicBool>,
    sent: u64,
}

/// Deterministic garbage.
fn garbage(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn frame(id: u8, body: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(5 + body.len());
    f.extend_from_slice(&(body.len() as u32 + 1).to_be_bytes());
    f.push(id);
    f.extend_from_slice(body);
    f
}

fn piece_msg(index: u32, begin: u32, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(8 + data.len());
    body.extend_from_slice(&index.to_be_bytes());
    body.extend_from_slice(&begin.to_be_bytes());
    body.extend_from_slice(data);
    frame(7, &body)
}

impl Conn {
    fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.sent += bytes.len() as u64;
        Ok(())
    }

    /// Reads one frame: `None` for a keep-alive.
    fn read_frame(stream: &mut TcpStream) -> std::io::Result<Option<(u8, Vec<u8>)>> {
        let mut len = [0u8; 4];
        stream.read_exact(&mut len)?;
        let len = u32::from_be_bytes(len) as usize;
        if len == 0 {
            return Ok(None);
        }
        if len > (1 << 20) {
            return Err(std::io::Error::other(format!("frame of {len} bytes")));
        }
        let mut body = vec![0u8; len];
        stream.read_exact(&mut body)?;
        let id = body.remove(0);
        Ok(Some((id, body)))
    }

    fn run(&mut self, served: &[Served]) -> String {
        match self.session(served) {
            Ok(why) => why,
            Err(e) => format!("{e}"),
        }
    }

    fn session(&mut self, served: &[Served]) -> std::io::Result<String> {
        self.stream
            .set_read_timeout(Some(Duration::from_secs(30)))?;
        let mut hs = [0u8; 68];
        self.stream.read_exact(&mut hs)?;
        if hs[0] != 19 || &hs[1..20] != b"BitTorrent protocol" {
            return Ok("bad handshake".into());
        }
        let Some(torrent) = served.iter().find(|t| t.meta.info_hash[..] == hs[28..48]) else {
            return Ok("unknown info-hash".into());
        };
        let mut reply = Vec::with_capacity(68);
        reply.push(19);
        reply.extend_from_slice(b"BitTorrent protocol");
        reply.extend_from_slice(&[0u8; 8]);
        reply.extend_from_slice(&torrent.meta.info_hash);
        let id = format!("-HX0001-{:012}", self.stream.local_addr()?.port());
        reply.extend_from_slice(id.as_bytes());
        self.send(&reply)?;
        self.stats.handshakes.fetch_add(1, Ordering::Relaxed);
        // From here reads block: dropping the peer shuts the socket down, which ends them.
        self.stream.set_read_timeout(None)?;

        let count = torrent.meta.pieces.len();
        let mut bits = vec![0xffu8; count.div_ceil(8)];
        if count % 8 != 0 && self.mode != Mode::SpareBits {
            *bits.last_mut().unwrap() = 0xffu8 << (8 - count % 8);
        }
        if self.mode == Mode::HugeRequest {
            bits.fill(0);
            self.send(&frame(5, &bits))?;
            self.send(&frame(2, &[]))?; // interested
            let mut req = Vec::new();
            for v in [0u32, 0, 1 << 20] {
                req.extend_from_slice(&v.to_be_bytes());
            }
            self.send(&frame(6, &req))?;
            return self.drain("after the 1 MiB request");
        }
        if self.mode == Mode::WrongBitfield {
            bits.push(0xff);
        }
        self.send(&frame(5, &bits))?;
        if matches!(self.mode, Mode::WrongBitfield | Mode::SpareBits) {
            return self.drain("after the bad bitfield");
        }
        self.send(&frame(1, &[]))?; // unchoke
        match self.mode {
            Mode::ShortHave => {
                self.send(&frame(4, &[0, 0, 1]))?;
                self.drain("after the short have")
            }
            Mode::BadPieceIndex => {
                let block = garbage(BLOCK as usize, 5);
                self.send(&piece_msg(count as u32 + 5, 0, &block))?;
                self.drain("after the piece with a bad index")
            }
            Mode::BadHave => {
                self.send(&frame(4, &(count as u32 + 1000).to_be_bytes()))?;
                self.drain("after the bad have")
            }
            Mode::OversizedHuge => {
                self.send(&[0xff, 0xff, 0xff, 0xff])?;
                self.flood_garbage()
            }
            Mode::Oversized => {
                self.send(&(200u32 * 1024).to_be_bytes())?;
                self.send(&[7])?;
                self.flood_garbage()
            }
            Mode::UnrequestedFlood => self.flood_unrequested(torrent),
            Mode::Corrupt | Mode::Honest => self.serve(torrent),
            Mode::WrongBitfield | Mode::SpareBits | Mode::HugeRequest => unreachable!(),
        }
    }

    /// Reads (and ignores) until the other side closes.
    fn drain(&mut self, what: &str) -> std::io::Result<String> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(format!("stopped {what}"));
            }
            match Self::read_frame(&mut self.stream) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok(format!("closed by the client {what}"))
                }
                Err(e) => return Ok(format!("{e} {what}")),
            }
        }
    }

    /// Sends garbage until the connection breaks (at most 16 MiB).
    fn flood_garbage(&mut self) -> std::io::Result<String> {
        let chunk = garbage(64 * 1024, 99);
        for _ in 0..256 {
            if self.stop.load(Ordering::Relaxed) {
                return Ok("stopped".into());
            }
            if let Err(e) = self.send(&chunk) {
                return Ok(format!("write failed (disconnected): {e}"));
            }
        }
        self.drain("after 16 MiB of garbage")
    }

    /// Streams `piece` messages for blocks that were never requested, until the connection
    /// breaks (at most 64 MiB); a reader thread notes the requests so none is answered.
    fn flood_unrequested(&mut self, torrent: &Served) -> std::io::Result<String> {
        let requested: Arc<Mutex<HashSet<(u32, u32)>>> = Default::default();
        let mut reader = self.stream.try_clone()?;
        let (req, stats) = (requested.clone(), self.stats.clone());
        thread::spawn(move || {
            while let Ok(f) = Self::read_frame(&mut reader) {
                if let Some((6, body)) = f {
                    if body.len() == 12 {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                        let index = u32::from_be_bytes(body[0..4].try_into().unwrap());
                        let begin = u32::from_be_bytes(body[4..8].try_into().unwrap());
                        req.lock().unwrap().insert((index, begin));
                    }
                }
            }
        });
        let meta = &torrent.meta;
        let data = garbage(BLOCK as usize, 7);
        let mut sent = 0u64;
        // From the last piece backwards: the blocks a downloader asks for last.
        for index in (0..meta.pieces.len() as u32).rev() {
            let size = meta.piece_size(index as usize) as u32;
            for begin in (0..size).step_by(BLOCK as usize) {
                if self.stop.load(Ordering::Relaxed) {
                    return Ok("stopped".into());
                }
                if requested.lock().unwrap().contains(&(index, begin)) {
                    continue;
                }
                let len = BLOCK.min(size - begin) as usize;
                if let Err(e) = self.send(&piece_msg(index, begin, &data[..len])) {
                    return Ok(format!(
                        "write failed after {sent} unrequested bytes (disconnected): {e}"
                    ));
                }
                self.stats
                    .piece_bytes
                    .fetch_add(len as u64, Ordering::Relaxed);
                sent += len as u64;
                if sent >= 64 << 20 {
                    return self.drain("after 64 MiB of unrequested blocks");
                }
            }
        }
        self.drain("after an unrequested copy of every block")
    }

    /// Answers requests: with the right data if honest, else with garbage.
    fn serve(&mut self, torrent: &Served) -> std::io::Result<String> {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return Ok("stopped".into());
            }
            let f = match Self::read_frame(&mut self.stream) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    return Ok("closed by the client".into())
                }
                Err(e) => return Ok(format!("{e}")),
            };
            let Some((6, body)) = f else { continue };
            if body.len() != 12 {
                return Ok("bad request message".into());
            }
            self.stats.requests.fetch_add(1, Ordering::Relaxed);
            let index = u32::from_be_bytes(body[0..4].try_into().unwrap());
            let begin = u32::from_be_bytes(body[4..8].try_into().unwrap());
            let len = u32::from_be_bytes(body[8..12].try_into().unwrap());
            let at = index as u64 * torrent.meta.piece_len + begin as u64;
            if index as usize >= torrent.meta.pieces.len()
                || len > 128 * 1024
                || at + len as u64 > torrent.meta.total_len()
            {
                return Ok(format!("invalid request {index}/{begin}/{len}"));
            }
            let block = if self.mode == Mode::Honest {
                torrent.data[at as usize..(at + len as u64) as usize].to_vec()
            } else {
                garbage(len as usize, at + 1)
            };
            self.send(&piece_msg(index, begin, &block))?;
            self.stats
                .piece_bytes
                .fetch_add(len as u64, Ordering::Relaxed);
        }
    }
}
