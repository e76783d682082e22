//! How we open connections to peers, shared by every torrent of a session:
//! which transport to try first, whether to wrap the stream, and what
//! worked for each address before. A [`Connector`] is a cheap clone.
//!
//! [`Connector::open`] tries [`Route`]s in the order a [`RoutePlan`] gives:
//! for each transport, each encryption choice the policy allows (MSE/PE
//! first under `prefer`), the route that last worked for the address
//! first. A transport that cannot connect at all is not tried again with
//! another encryption choice.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::EncryptionPolicy;
use crate::mse::{self, stream::Crypt, Methods};
use crate::peer::transport::{PeerStream, TransportKind};
use crate::peer::PeerError;
use crate::types::InfoHash;

/// Addresses whose working route is remembered.
const MAX_REMEMBERED: usize = 4096;

/// Whether a route runs an MSE/PE handshake first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Encryption {
    /// The BitTorrent handshake straight away.
    Plaintext,
    /// MSE/PE first, offering these methods.
    Mse(Methods),
}

/// One way of reaching a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    /// What carries the connection.
    pub transport: TransportKind,
    /// Whether (and how) it is encrypted.
    pub encryption: Encryption,
}

/// Which routes to try for an address, and what worked before. Pure.
#[derive(Debug)]
pub(crate) struct RoutePlan {
    policy: EncryptionPolicy,
    worked: HashMap<SocketAddr, Route>,
}

impl RoutePlan {
    pub(crate) fn new(policy: EncryptionPolicy) -> Self {
        Self {
            policy,
            worked: HashMap::new(),
        }
    }

    /// The encryption choices of the policy, in order of preference.
    fn encryptions(&self) -> Vec<Encryption> {
        match self.policy {
            EncryptionPolicy::Prefer => vec![Encryption::Mse(Methods::BOTH), Encryption::Plaintext],
            EncryptionPolicy::Require => vec![Encryption::Mse(Methods::RC4)],
            EncryptionPolicy::Disable => vec![Encryption::Plaintext],
        }
    }

    /// The routes to try for `addr`, in order: what worked last first.
    pub(crate) fn routes(&self, addr: SocketAddr) -> Vec<Route> {
        let mut routes: Vec<Route> = [TransportKind::Tcp]
            .into_iter()
            .flat_map(|transport| {
                self.encryptions().into_iter().map(move |encryption| Route {
                    transport,
                    encryption,
                })
            })
            .collect();
        if let Some(at) = self
            .worked
            .get(&addr)
            .and_then(|w| routes.iter().position(|r| r == w))
        {
            let route = routes.remove(at);
            routes.insert(0, route);
        }
        routes
    }

    /// Forgets `route` for `addr` if it is the one remembered: what follows
    /// the stream failed (a plaintext peer that requires encryption accepts
    /// the TCP connection, then hangs up on the BitTorrent handshake).
    pub(crate) fn failed(&mut self, addr: SocketAddr, route: Route) {
        if self.worked.get(&addr) == Some(&route) {
            self.worked.remove(&addr);
        }
    }

    /// Remembers that `route` reached `addr`; a bounded memory.
    pub(crate) fn worked(&mut self, addr: SocketAddr, route: Route) {
        if self.worked.len() >= MAX_REMEMBERED && !self.worked.contains_key(&addr) {
            // Forget an arbitrary half: a cheap bound, rarely reached.
            let mut n = 0;
            self.worked.retain(|_, _| {
                n += 1;
                n % 2 == 0
            });
        }
        self.worked.insert(addr, route);
    }
}

/// Opens outbound peer connections for every torrent of a session.
#[derive(Debug, Clone)]
pub(crate) struct Connector {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// Time allowed for one connection attempt (connect plus any stream
    /// handshake below BitTorrent's).
    timeout: Duration,
    plan: Mutex<RoutePlan>,
}

impl Connector {
    /// A plaintext connector (for tests whose peers speak plaintext), each
    /// attempt bounded by `timeout`.
    #[cfg(test)]
    pub(crate) fn new(timeout: Duration) -> Self {
        Self::with_policy(timeout, EncryptionPolicy::Disable)
    }

    /// A connector under `policy`, each attempt bounded by `timeout`.
    pub(crate) fn with_policy(timeout: Duration, policy: EncryptionPolicy) -> Self {
        Self {
            inner: Arc::new(Inner {
                timeout,
                plan: Mutex::new(RoutePlan::new(policy)),
            }),
        }
    }

    /// Opens a stream to `addr` for the torrent `info_hash`, ready for the
    /// BitTorrent handshake. The caller bounds the total time.
    ///
    /// # Errors
    /// [`PeerError::Connect`] (or the error of the last route tried).
    pub(crate) async fn open(
        &self,
        addr: SocketAddr,
        info_hash: InfoHash,
    ) -> Result<(PeerStream, Route), PeerError> {
        let routes = self.plan().routes(addr);
        let mut last_error = None;
        let mut unreachable = Vec::new();
        for route in routes {
            if unreachable.contains(&route.transport) {
                continue;
            }
            match self.try_route(addr, info_hash, route).await {
                Ok(stream) => {
                    self.plan().worked(addr, route);
                    return Ok((stream, route));
                }
                Err(e) => {
                    log::debug!("{addr}: {route:?} failed: {e}");
                    if matches!(e, PeerError::Connect(_)) {
                        unreachable.push(route.transport);
                    }
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or(PeerError::Encryption(mse::MseError::Refused)))
    }

    /// Reports that the BitTorrent handshake over `route` to `addr` failed:
    /// the route is not tried first next time.
    pub(crate) fn handshake_failed(&self, addr: SocketAddr, route: Route) {
        self.plan().failed(addr, route);
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, RoutePlan> {
        // A panic while holding the lock leaves a plan that is still valid.
        self.inner
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn try_route(
        &self,
        addr: SocketAddr,
        info_hash: InfoHash,
        route: Route,
    ) -> Result<PeerStream, PeerError> {
        let timeout = self.inner.timeout;
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(PeerError::Connect)?;
        let mut stream = PeerStream::tcp(stream).map_err(PeerError::Connect)?;
        match route.encryption {
            Encryption::Plaintext => Ok(stream),
            Encryption::Mse(methods) => {
                // Half the time at most: a fallback must still fit.
                let handshake = mse::initiate(&mut stream, info_hash, methods);
                let done = tokio::time::timeout(timeout / 2, handshake)
                    .await
                    .map_err(|_| PeerError::HandshakeTimeout)??;
                log::debug!(
                    "{addr}: MSE/PE handshake done, {}",
                    if done.keys.is_some() {
                        "RC4"
                    } else {
                        "plaintext"
                    }
                );
                Ok(stream.with_crypt(Crypt::new(done)))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Handshake;
    use bytes::BytesMut;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_plan_follows_the_policy_and_remembers() {
        let tcp = |encryption| Route {
            transport: TransportKind::Tcp,
            encryption,
        };
        let mut plan = RoutePlan::new(EncryptionPolicy::Prefer);
        let (mse, plain) = (
            tcp(Encryption::Mse(Methods::BOTH)),
            tcp(Encryption::Plaintext),
        );
        assert_eq!(plan.routes(addr(1)), vec![mse, plain]);
        plan.worked(addr(1), plain);
        assert_eq!(plan.routes(addr(1)), vec![plain, mse]);
        assert_eq!(plan.routes(addr(2)), vec![mse, plain]);
        plan.failed(addr(1), mse);
        assert_eq!(
            plan.routes(addr(1)),
            vec![plain, mse],
            "not the one remembered"
        );
        plan.failed(addr(1), plain);
        assert_eq!(plan.routes(addr(1)), vec![mse, plain]);
        let plan = RoutePlan::new(EncryptionPolicy::Require);
        assert_eq!(
            plan.routes(addr(1)),
            vec![tcp(Encryption::Mse(Methods::RC4))]
        );
        let plan = RoutePlan::new(EncryptionPolicy::Disable);
        assert_eq!(plan.routes(addr(1)), vec![plain]);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut plan = RoutePlan::new(EncryptionPolicy::Prefer);
        let route = plan.routes(addr(1))[1];
        for i in 0..3 * MAX_REMEMBERED as u32 {
            plan.worked(SocketAddr::from((i.to_be_bytes(), 1)), route);
            assert!(plan.worked.len() <= MAX_REMEMBERED);
        }
    }

    #[tokio::test]
    async fn opens_tcp() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connector = Connector::new(Duration::from_secs(5));
        let (stream, route) = connector.open(addr, InfoHash([0; 20])).await.unwrap();
        assert_eq!(route.transport, TransportKind::Tcp);
        assert_eq!(stream.kind(), TransportKind::Tcp);
        assert!(listener.accept().await.is_ok());
    }

    #[tokio::test]
    async fn prefer_falls_back_to_plaintext_at_once_and_remembers() {
        // A plaintext-only peer: it hangs up on anything but a handshake.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let mut plain = Vec::new();
            for _ in 0..3 {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut first = [0u8; 20];
                s.read_exact(&mut first).await.unwrap();
                plain.push(mse::is_plaintext(&first) == Some(true));
            }
            plain
        });
        let connector = Connector::with_policy(Duration::from_secs(5), EncryptionPolicy::Prefer);
        let started = std::time::Instant::now();
        let (mut stream, route) = connector.open(addr, InfoHash([0; 20])).await.unwrap();
        let took = started.elapsed();
        assert!(took < Duration::from_secs(2), "{took:?}");
        assert_eq!(route.encryption, Encryption::Plaintext);
        assert!(!stream.is_encrypted());
        stream.write_all(Handshake::PROTOCOL).await.unwrap();
        // The second time, plaintext comes first.
        let (mut stream, route) = connector.open(addr, InfoHash([0; 20])).await.unwrap();
        assert_eq!(route.encryption, Encryption::Plaintext);
        stream.write_all(Handshake::PROTOCOL).await.unwrap();
        assert_eq!(peer.await.unwrap(), vec![false, true, true]);
    }

    #[tokio::test]
    async fn require_reaches_an_encrypting_peer() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let torrents: Arc<[InfoHash]> = Arc::from(vec![InfoHash([3; 20])]);
            let done = mse::receive(&mut s, BytesMut::new(), Methods::RC4, torrents)
                .await
                .unwrap();
            let mut s = PeerStream::tcp(s).unwrap().with_crypt(Crypt::new(done));
            let mut buf = [0u8; 5];
            s.read_exact(&mut buf).await.unwrap();
            buf
        });
        let connector = Connector::with_policy(Duration::from_secs(5), EncryptionPolicy::Require);
        let (mut stream, route) = connector.open(addr, InfoHash([3; 20])).await.unwrap();
        assert_eq!(route.encryption, Encryption::Mse(Methods::RC4));
        assert!(stream.is_encrypted());
        stream.write_all(b"hello").await.unwrap();
        stream.flush().await.unwrap();
        assert_eq!(&peer.await.unwrap(), b"hello");
    }

    #[tokio::test]
    async fn refused_is_a_connect_error() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let connector = Connector::new(Duration::from_secs(5));
        let err = connector.open(addr, InfoHash([0; 20])).await.unwrap_err();
        assert!(matches!(err, PeerError::Connect(_)), "{err:?}");
    }
}
