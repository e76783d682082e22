//! The session's listener: accepts inbound connections (TCP, and uTP from
//! the session's uTP socket), reads the peer's handshake (with a timeout, a
//! bounded number at a time) and hands the connection to the session actor,
//! which routes it by info-hash. Plain and MSE/PE-encrypted handshakes share
//! the port: the first bytes tell them apart ([`mse::is_plaintext`]), and the
//! encryption policy may refuse either. Each source address gets a burst of
//! connections, then a steady rate; one that
//! keeps coming beyond it is refused for a while ([`Admission`]).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::EncryptionPolicy;
use crate::mse::{self, stream::Crypt, Methods};
use crate::peer::budget::Budget;
use crate::peer::handshake::{self, HandshakeConn};
use crate::peer::transport::PeerStream;
use crate::session::command::SessionCommand;
use crate::types::InfoHash;
use crate::wire::Handshake;

/// Time an inbound peer has to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound connections whose handshake we wait for at once; more are dropped.
const MAX_PENDING: usize = 64;
/// Connections one source address may open at once (above a torrent's 50
/// connections: a local swarm or a test shares one loopback address)...
const SOURCE_BURST: u32 = 64;
/// ...and per second after that.
const SOURCE_RATE: u32 = 16;
/// Connections refused for the rate after which a source is refused outright...
const SOURCE_STRIKES: u32 = 64;
/// ...for this long.
const SOURCE_BAN: Duration = Duration::from_secs(60);
/// Refusals further apart than this do not add up.
const STRIKE_MEMORY: Duration = Duration::from_secs(10);
/// Source addresses remembered; idle ones are forgotten first.
const MAX_SOURCES: usize = 4096;
/// Connections refused per second (all sources) before the listener pauses
/// accepting: the kernel's backlog then fills and a flooder's connects wait
/// (and back off) instead of costing an accept and a close each.
const REFUSALS_PER_SEC: u32 = 256;

/// Binds `addr`. For the unspecified IPv6 address (`[::]`) the socket is
/// dual-stack on systems that allow it; if IPv6 is unavailable it falls back
/// to `0.0.0.0` on the same port.
///
/// # Errors
/// The OS error of the bind.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std_listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            log::debug!("cannot listen on {addr} ({e}); trying IPv4 only");
            std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port())))?
        }
        Err(e) => return Err(e),
    };
    std_listener.set_nonblocking(true)?;
    TcpListener::from_std(std_listener)
}

/// uTP connections accepted by the session's uTP socket.
pub(crate) type UtpIncoming = mpsc::Receiver<(PeerStream, SocketAddr)>;

/// Where inbound connections go, and what the listener needs to know to
/// take them.
#[derive(Debug, Clone)]
pub(crate) struct Inbound {
    /// The session (weak: the listener alone does not keep it alive).
    pub session: mpsc::WeakSender<SessionCommand>,
    /// The session's torrents, for the torrent of an encrypted handshake.
    pub torrents: watch::Receiver<Arc<[InfoHash]>>,
    /// Which handshakes to take.
    pub encryption: EncryptionPolicy,
}

/// Accepts connections (TCP, and uTP from `utp`) until `cancel` fires.
pub(crate) async fn run(
    listener: TcpListener,
    mut utp: Option<UtpIncoming>,
    inbound: Inbound,
    cancel: CancellationToken,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut admission = Admission::default();
    let mut handshakes = JoinSet::new();
    loop {
        let (stream, addr) = tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => match PeerStream::tcp(stream) {
                    Ok(stream) => (stream, addr),
                    Err(e) => {
                        log::debug!("{addr}: {e}");
                        continue;
                    }
                },
                Err(e) => {
                    // Typically out of file descriptors: wait rather than spin.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(accepted) = next_utp(&mut utp) => accepted,
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => continue,
        };
        let addr = peer_addr(addr);
        let now = Instant::now();
        if !admission.admit(addr.ip(), now) {
            log::trace!("{addr}: too many connections from this address; refused");
            if let Some(until) = admission.pause_until(now) {
                log::debug!("flooded with connections: not accepting for a while");
                let until = tokio::time::Instant::from_std(until);
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep_until(until) => {}
                }
            }
            continue;
        }
        let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
            log::debug!("too many pending handshakes; dropping {addr}");
            continue;
        };
        handshakes.spawn(hand_over(stream, addr, inbound.clone(), permit));
    }
    handshakes.shutdown().await;
}

/// The address a peer is known by. An IPv4 peer accepted on a dual-stack
/// socket (`[::]`) comes as an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`):
/// it is its IPv4 address, so that one peer has one address for admission,
/// bans, duplicates and PEX, whichever socket it came in on.
fn peer_addr(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Reads the handshake of an accepted connection (holding one of the
/// pending slots) and hands the connection to the session.
async fn hand_over(
    stream: PeerStream,
    addr: SocketAddr,
    inbound: Inbound,
    _permit: OwnedSemaphorePermit,
) {
    let handshake = read_handshake(stream, addr, &inbound);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Some((conn, handshake))) => {
            let cmd = SessionCommand::Inbound {
                addr,
                conn,
                handshake,
            };
            // A weak sender: the listener alone does not keep the session alive.
            if let Some(session) = inbound.session.upgrade() {
                let _ = session.send(cmd).await;
            }
        }
        Ok(None) => log::debug!("{addr}: no valid handshake"),
        Err(_) => log::debug!("{addr}: handshake timed out"),
    }
}

/// The next inbound uTP connection; never, without uTP.
async fn next_utp(utp: &mut Option<UtpIncoming>) -> Option<(PeerStream, SocketAddr)> {
    match utp {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Reads the peer's handshake, plain or (first) MSE/PE as the policy
/// allows. `None`: refused or failed (logged).
async fn read_handshake(
    mut stream: PeerStream,
    addr: SocketAddr,
    inbound: &Inbound,
) -> Option<(HandshakeConn<PeerStream>, Handshake)> {
    let (first, plaintext) = read_first_bytes(&mut stream).await?;
    let mut skey = None;
    let stream = match (plaintext, inbound.encryption) {
        (true, EncryptionPolicy::Require) | (false, EncryptionPolicy::Disable) => {
            log::debug!("{addr}: refused by the encryption policy (plaintext: {plaintext})");
            return None;
        }
        (true, _) => stream.with_crypt(Crypt::plaintext(first)),
        (false, policy) => {
            let allowed = match policy {
                EncryptionPolicy::Require => Methods::RC4,
                _ => Methods::BOTH,
            };
            let torrents = Arc::clone(&inbound.torrents.borrow());
            let done = mse::receive(&mut stream, first, allowed, torrents).await;
            let done = done.map_err(|e| log::debug!("{addr}: {e}")).ok()?;
            skey = Some(done.info_hash);
            stream.with_crypt(Crypt::new(done))
        }
    };
    let (conn, theirs) = handshake::receive(stream).await.ok()?;
    if skey.is_some_and(|skey| skey != theirs.info_hash) {
        log::debug!("{addr}: encrypted for one torrent, handshake for another");
        return None;
    }
    Some((conn, theirs))
}

/// Reads until the first bytes tell a plain handshake (`true`) from an
/// encrypted one: at most the 20 bytes of the protocol string.
async fn read_first_bytes(stream: &mut PeerStream) -> Option<(BytesMut, bool)> {
    let mut first = BytesMut::with_capacity(Handshake::PROTOCOL.len());
    loop {
        if let Some(plaintext) = mse::is_plaintext(&first) {
            return Some((first, plaintext));
        }
        let room = Handshake::PROTOCOL.len() - first.len();
        if stream.read_buf(&mut (&mut first).limit(room)).await.ok()? == 0 {
            return None;
        }
    }
}

/// Which source addresses may connect now. Pure.
#[derive(Debug)]
struct Admission {
    sources: HashMap<IpAddr, Source>,
    /// Refusals, all sources together.
    refusals: Budget,
}

impl Default for Admission {
    fn default() -> Self {
        Self {
            sources: HashMap::new(),
            refusals: Budget::new(REFUSALS_PER_SEC, REFUSALS_PER_SEC, Instant::now()),
        }
    }
}

#[derive(Debug)]
struct Source {
    budget: Budget,
    /// Refusals for the rate, in a row (none more than `STRIKE_MEMORY` apart).
    strikes: u32,
    last_strike: Instant,
    refused_until: Option<Instant>,
    last_seen: Instant,
}

impl Admission {
    /// Whether to take a connection from `ip` now. O(1) amortised.
    fn admit(&mut self, ip: IpAddr, now: Instant) -> bool {
        if self.sources.len() >= MAX_SOURCES && !self.sources.contains_key(&ip) {
            self.forget_idle(now);
        }
        let source = self.sources.entry(ip).or_insert_with(|| Source {
            budget: Budget::new(SOURCE_RATE, SOURCE_BURST, now),
            strikes: 0,
            last_strike: now,
            refused_until: None,
            last_seen: now,
        });
        source.last_seen = now;
        if source.refused_until.is_some_and(|until| now < until) {
            self.refusals.spend(1, now);
            return false;
        }
        if !source.budget.try_spend(1, now) {
            if now.saturating_duration_since(source.last_strike) > STRIKE_MEMORY {
                source.strikes = 0;
            }
            source.last_strike = now;
            source.strikes += 1;
            if source.strikes >= SOURCE_STRIKES {
                source.strikes = 0;
                source.refused_until = Some(now + SOURCE_BAN);
            }
            self.refusals.spend(1, now);
            return false;
        }
        true
    }

    /// When to accept again, if refusals came faster than
    /// [`REFUSALS_PER_SEC`].
    fn pause_until(&self, now: Instant) -> Option<Instant> {
        self.refusals.ready_at(now)
    }

    /// Forgets sources not seen for a while (O(n) once per `MAX_SOURCES / 2`
    /// new sources at most); when every one is active, the oldest half.
    fn forget_idle(&mut self, now: Instant) {
        let idle = |s: &Source| now.saturating_duration_since(s.last_seen) > SOURCE_BAN;
        self.sources.retain(|_, s| !idle(s));
        if self.sources.len() > MAX_SOURCES / 2 {
            let mut seen: Vec<Instant> = self.sources.values().map(|s| s.last_seen).collect();
            let (_, median, _) = seen.select_nth_unstable(MAX_SOURCES / 2);
            let median = *median;
            self.sources.retain(|_, s| s.last_seen > median);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[tokio::test]
    async fn dual_stack_listener_knows_ipv4_peers_by_their_ipv4_address() {
        let listener = bind(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))).unwrap();
        let local = listener.local_addr().unwrap();
        let dialler = TcpStream::connect(("127.0.0.1", local.port()))
            .await
            .unwrap();
        let (_stream, from) = listener.accept().await.unwrap();
        if local.is_ipv6() {
            assert!(from.is_ipv6(), "dual-stack: {from} comes IPv4-mapped");
        }
        assert_eq!(peer_addr(from), dialler.local_addr().unwrap());
        let v6: SocketAddr = "[::1]:6881".parse().unwrap();
        assert_eq!(peer_addr(v6), v6);
    }

    #[test]
    fn a_burst_then_the_rate_then_a_time_out_for_abuse() {
        let t0 = Instant::now();
        let mut a = Admission::default();
        let admitted = (0..SOURCE_BURST + 1).filter(|_| a.admit(ip(1), t0)).count();
        assert_eq!(admitted as u32, SOURCE_BURST);
        assert!(a.admit(ip(2), t0), "other sources are not affected");
        // After a second, the rate's worth again.
        let t1 = t0 + Duration::from_secs(1);
        let admitted = (0..SOURCE_RATE * 2).filter(|_| a.admit(ip(1), t1)).count();
        assert_eq!(admitted as u32, SOURCE_RATE);
        // Keep knocking: refused outright for a while, even once the rate allows.
        for _ in 0..SOURCE_STRIKES {
            a.admit(ip(1), t1);
        }
        let t2 = t1 + Duration::from_secs(10);
        assert!(!a.admit(ip(1), t2), "still refused");
        assert_eq!(
            a.pause_until(t2),
            None,
            "a few refusals do not pause accepting"
        );
        for _ in 0..REFUSALS_PER_SEC {
            a.admit(ip(1), t2);
        }
        assert!(a.pause_until(t2).is_some(), "a flood of them does");
        assert!(a.admit(ip(1), t1 + SOURCE_BAN + Duration::from_secs(1)));
    }

    /// Our listener side under `policy` facing a dialler that encrypts
    /// (`encrypted`) or not: the handshake it reads, if it takes it.
    async fn inbound_under(policy: EncryptionPolicy, encrypted: bool) -> Option<Handshake> {
        use crate::peer::connect::Connector;
        use crate::types::PeerId;
        let ih = InfoHash([4; 20]);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_keep, torrents) = watch::channel(Arc::from(vec![InfoHash([3; 20]), ih]));
        let (session, _rx) = mpsc::channel(1);
        let inbound = Inbound {
            session: session.downgrade(),
            torrents,
            encryption: policy,
        };
        let dialler = tokio::spawn(async move {
            let ours = if encrypted {
                EncryptionPolicy::Require
            } else {
                EncryptionPolicy::Disable
            };
            let connector = Connector::with_policy(Duration::from_secs(5), ours);
            let (stream, _) = connector.open(addr, ih).await?;
            handshake::initiate(stream, Handshake::new(ih, PeerId([1; 20]))).await
        });
        let (stream, from) = listener.accept().await.unwrap();
        let stream = PeerStream::tcp(stream).unwrap();
        let got = read_handshake(stream, from, &inbound).await;
        dialler.abort();
        got.map(|(_, handshake)| handshake)
    }

    #[tokio::test]
    async fn plain_and_encrypted_handshakes_share_the_port_as_the_policy_allows() {
        use EncryptionPolicy::*;
        for (policy, encrypted, taken) in [
            (Prefer, false, true),
            (Prefer, true, true),
            (Require, false, false),
            (Require, true, true),
            (Disable, false, true),
            (Disable, true, false),
        ] {
            let got = inbound_under(policy, encrypted).await;
            assert_eq!(got.is_some(), taken, "{policy:?}, encrypted: {encrypted}");
            if let Some(handshake) = got {
                assert_eq!(handshake.info_hash, InfoHash([4; 20]));
            }
        }
    }

    #[tokio::test]
    async fn garbage_is_dropped_after_a_bounded_read() {
        use tokio::io::AsyncWriteExt;
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_keep, torrents) = watch::channel(Arc::from(vec![InfoHash([3; 20])]));
        let (session, _rx) = mpsc::channel(1);
        let inbound = Inbound {
            session: session.downgrade(),
            torrents,
            encryption: EncryptionPolicy::Prefer,
        };
        let garbage: Vec<u8> = (0..4000u32).map(|i| (i * 7 + 1) as u8).collect();
        let writer = tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            // Ignore the error once the listener gives up and closes.
            let _ = s.write_all(&garbage).await;
            s
        });
        let (stream, from) = listener.accept().await.unwrap();
        let stream = PeerStream::tcp(stream).unwrap();
        let started = Instant::now();
        assert!(read_handshake(stream, from, &inbound).await.is_none());
        assert!(started.elapsed() < Duration::from_secs(5));
        drop(writer.await.unwrap());
    }

    #[test]
    fn memory_is_bounded() {
        let t0 = Instant::now();
        let mut a = Admission::default();
        for i in 0..(MAX_SOURCES * 3) as u32 {
            let now = t0 + Duration::from_millis(u64::from(i));
            assert!(a.admit(IpAddr::from(i.to_be_bytes()), now));
            assert!(a.sources.len() <= MAX_SOURCES);
        }
    }
}
