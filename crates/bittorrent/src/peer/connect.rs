//! How we open connections to peers, shared by every torrent of a session:
//! which transport to try first, whether to wrap the stream, and what
//! worked for each address before. A [`Connector`] is a cheap clone.
//!
//! [`Connector::open_with`] tries [`Route`]s in the order a [`RoutePlan`]
//! gives: for each transport in the configured order (TCP and uTP, see
//! [`UtpMode`]), each encryption choice the policy allows (MSE/PE first
//! under `prefer`), the route that last worked for the address first. A
//! transport that cannot connect at all is not tried again with another
//! encryption choice. A route that connects but whose peer then closes
//! before the BitTorrent handshake completes (a plaintext peer that
//! requires encryption; libtorrent accepting TCP and closing it when TCP is
//! off) is forgotten, and the next route is tried at once.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::{EncryptionPolicy, UtpMode};
use crate::mse::{self, stream::Crypt, Methods};
use crate::peer::transport::{PeerStream, TransportKind};
use crate::peer::PeerError;
use crate::ratelimit::LinkLimits;
use crate::types::InfoHash;
use crate::utp::Endpoint;

/// Addresses whose working route is remembered.
const MAX_REMEMBERED: usize = 4096;
/// Most time a connect that has another route behind it may take (the last
/// route gets the whole connect timeout).
const FIRST_ROUTE_TIMEOUT: Duration = Duration::from_secs(3);

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
    /// Transports to dial, in order.
    transports: Vec<TransportKind>,
    worked: HashMap<SocketAddr, Route>,
}

impl RoutePlan {
    pub(crate) fn new(policy: EncryptionPolicy, transports: Vec<TransportKind>) -> Self {
        Self {
            policy,
            transports,
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
        let mut routes: Vec<Route> = self
            .transports
            .iter()
            .flat_map(|&transport| {
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
    /// The rate limits of the links opened: the session's, and the
    /// torrent's once a torrent has its own copy of the connector.
    limits: LinkLimits,
}

#[derive(Debug)]
struct Inner {
    /// Time allowed for one connection attempt (connect plus any stream
    /// handshake below BitTorrent's).
    timeout: Duration,
    /// The session's uTP socket, if uTP runs.
    utp: Option<Endpoint>,
    plan: Mutex<RoutePlan>,
}

impl Connector {
    /// A plaintext TCP connector (for tests whose peers speak plaintext),
    /// each attempt bounded by `timeout`.
    #[cfg(test)]
    pub(crate) fn new(timeout: Duration) -> Self {
        Self::with_transports(timeout, EncryptionPolicy::Disable, None, UtpMode::Disable)
    }

    /// A TCP connector under `policy`.
    #[cfg(test)]
    pub(crate) fn with_policy(timeout: Duration, policy: EncryptionPolicy) -> Self {
        Self::with_transports(timeout, policy, None, UtpMode::Disable)
    }

    /// A plaintext connector over TCP and, with an `endpoint`, uTP in
    /// `mode`'s order.
    #[cfg(test)]
    pub(crate) fn with_utp(timeout: Duration, endpoint: Option<Endpoint>, mode: UtpMode) -> Self {
        Self::with_transports(timeout, EncryptionPolicy::Disable, endpoint, mode)
    }

    /// A connector under the encryption `policy`, over TCP and, with an
    /// `endpoint`, uTP in `mode`'s order; each attempt bounded by `timeout`.
    pub(crate) fn with_transports(
        timeout: Duration,
        policy: EncryptionPolicy,
        endpoint: Option<Endpoint>,
        mode: UtpMode,
    ) -> Self {
        use TransportKind::{Tcp, Utp};
        let transports = match (&endpoint, mode) {
            (None, _) | (_, UtpMode::Disable) => vec![Tcp],
            (Some(_), UtpMode::Fallback) => vec![Tcp, Utp],
            (Some(_), UtpMode::Prefer) => vec![Utp, Tcp],
            (Some(_), UtpMode::Only) => vec![Utp],
        };
        Self {
            inner: Arc::new(Inner {
                timeout,
                utp: endpoint,
                plan: Mutex::new(RoutePlan::new(policy, transports)),
            }),
            limits: LinkLimits::default(),
        }
    }

    /// This connector, its links charged to `limits`.
    pub(crate) fn with_limits(mut self, limits: LinkLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The rate limits its links are charged to.
    pub(crate) fn limits(&self) -> &LinkLimits {
        &self.limits
    }

    /// Opens a stream to `addr` for the torrent `info_hash`, ready for the
    /// BitTorrent handshake. The caller bounds the total time.
    ///
    /// # Errors
    /// [`PeerError::Connect`] (or the error of the last route tried).
    #[cfg(test)]
    pub(crate) async fn open(
        &self,
        addr: SocketAddr,
        info_hash: InfoHash,
    ) -> Result<(PeerStream, Route), PeerError> {
        self.open_with(addr, info_hash, |s| std::future::ready(Ok(s)))
            .await
    }

    /// Opens a stream to `addr` for the torrent `info_hash` and runs
    /// `handshake` (BitTorrent's) on it, route after route until one
    /// completes. The route that did is remembered for `addr`; one whose
    /// handshake failed is forgotten. The caller bounds the total time.
    ///
    /// # Errors
    /// The error of the last route tried ([`PeerError::Connect`] when none
    /// connected).
    pub(crate) async fn open_with<T, F, Fut>(
        &self,
        addr: SocketAddr,
        info_hash: InfoHash,
        handshake: F,
    ) -> Result<(T, Route), PeerError>
    where
        F: Fn(PeerStream) -> Fut,
        Fut: Future<Output = Result<T, PeerError>>,
    {
        let routes = self.plan().routes(addr);
        let count = routes.len();
        let mut last_error = None;
        let mut unreachable = Vec::new();
        for (i, route) in routes.into_iter().enumerate() {
            if unreachable.contains(&route.transport) {
                continue;
            }
            let stream = match self.try_route(addr, info_hash, route, i + 1 < count).await {
                Ok(stream) => stream,
                Err(e) => {
                    log::debug!("{addr}: {route:?} failed: {e}");
                    if matches!(e, PeerError::Connect(_)) {
                        unreachable.push(route.transport);
                    }
                    last_error = Some(e);
                    continue;
                }
            };
            match handshake(stream).await {
                Ok(done) => {
                    self.plan().worked(addr, route);
                    return Ok((done, route));
                }
                Err(e) => {
                    log::debug!("{addr}: handshake over {route:?} failed: {e}");
                    self.plan().failed(addr, route);
                    last_error = Some(e);
                }
            }
        }
        Err(last_error.unwrap_or(PeerError::Encryption(mse::MseError::Refused)))
    }

    fn plan(&self) -> std::sync::MutexGuard<'_, RoutePlan> {
        // A panic while holding the lock leaves a plan that is still valid.
        self.inner
            .plan
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Connects over `route`'s transport (within a short time when another
    /// route comes after) and runs its MSE/PE handshake, if any.
    async fn try_route(
        &self,
        addr: SocketAddr,
        info_hash: InfoHash,
        route: Route,
        more: bool,
    ) -> Result<PeerStream, PeerError> {
        let timeout = self.inner.timeout;
        let connect = if more {
            timeout.min(FIRST_ROUTE_TIMEOUT)
        } else {
            timeout
        };
        let mut stream = self.dial(route.transport, addr, connect).await?;
        match route.encryption {
            Encryption::Plaintext => Ok(stream),
            Encryption::Mse(methods) => {
                // Half the time at most: a fallback must still fit.
                let handshake = mse::initiate(&mut stream, info_hash, methods);
                let done = tokio::time::timeout(timeout / 2, handshake)
                    .await
                    .map_err(|_| PeerError::HandshakeTimeout)??;
                log::debug!(
                    "{addr}: MSE/PE handshake done over {}, {}",
                    route.transport,
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

    async fn dial(
        &self,
        transport: TransportKind,
        addr: SocketAddr,
        timeout: Duration,
    ) -> Result<PeerStream, PeerError> {
        let timed_out = || PeerError::Connect(std::io::ErrorKind::TimedOut.into());
        match transport {
            TransportKind::Tcp => {
                let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(PeerError::Connect)?;
                PeerStream::tcp(stream).map_err(PeerError::Connect)
            }
            TransportKind::Utp => {
                let Some(utp) = &self.inner.utp else {
                    return Err(PeerError::Connect(std::io::ErrorKind::Unsupported.into()));
                };
                tokio::time::timeout(timeout, utp.connect(addr))
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(PeerError::Connect)
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
    use tokio_util::sync::CancellationToken;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn the_plan_follows_the_policy_and_remembers() {
        let tcp = |encryption| Route {
            transport: TransportKind::Tcp,
            encryption,
        };
        let mut plan = RoutePlan::new(EncryptionPolicy::Prefer, vec![TransportKind::Tcp]);
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
        let plan = RoutePlan::new(EncryptionPolicy::Require, vec![TransportKind::Tcp]);
        assert_eq!(
            plan.routes(addr(1)),
            vec![tcp(Encryption::Mse(Methods::RC4))]
        );
        let plan = RoutePlan::new(EncryptionPolicy::Disable, vec![TransportKind::Tcp]);
        assert_eq!(plan.routes(addr(1)), vec![plain]);
    }

    #[test]
    fn the_memory_is_bounded() {
        let mut plan = RoutePlan::new(EncryptionPolicy::Prefer, vec![TransportKind::Tcp]);
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

    fn endpoint(cancel: &CancellationToken) -> Endpoint {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Endpoint::bind(any, cancel.child_token()).unwrap().0
    }

    #[tokio::test]
    async fn falls_back_to_utp_when_tcp_is_refused() {
        let cancel = CancellationToken::new();
        let (ours, theirs) = (endpoint(&cancel), endpoint(&cancel));
        let mut incoming = theirs.incoming(cancel.child_token());
        let connector = Connector::with_utp(Duration::from_secs(5), Some(ours), UtpMode::Fallback);
        // Nothing listens on TCP at the uTP port.
        let (mut stream, route) = connector
            .open(theirs.local_addr(), InfoHash([0; 20]))
            .await
            .unwrap();
        assert_eq!(route.transport, TransportKind::Utp);
        assert_eq!(stream.kind(), TransportKind::Utp);
        // An inbound uTP connection is handed out once its dialer speaks.
        tokio::io::AsyncWriteExt::write_all(&mut stream, b"x")
            .await
            .unwrap();
        assert!(incoming.recv().await.is_some());
        cancel.cancel();
    }

    #[tokio::test]
    async fn a_handshake_that_fails_over_tcp_is_retried_over_utp_and_remembered() {
        let cancel = CancellationToken::new();
        let (ours, theirs) = (endpoint(&cancel), endpoint(&cancel));
        let addr = theirs.local_addr();
        // TCP accepted and closed at once, as libtorrent does with TCP off.
        let tcp = tokio::net::TcpListener::bind(addr).await.unwrap();
        tokio::spawn(async move {
            while let Ok((s, _)) = tcp.accept().await {
                drop(s);
            }
        });
        let mut incoming = theirs.incoming(cancel.child_token());
        tokio::spawn(async move { while incoming.recv().await.is_some() {} });
        let connector = Connector::with_utp(Duration::from_secs(5), Some(ours), UtpMode::Fallback);
        let handshake = |stream: PeerStream| async move {
            match stream.kind() {
                TransportKind::Tcp => Err(PeerError::Closed),
                TransportKind::Utp => Ok(stream.kind()),
            }
        };
        let (kind, route) = connector
            .open_with(addr, InfoHash([0; 20]), handshake)
            .await
            .unwrap();
        assert_eq!(
            (kind, route.transport),
            (TransportKind::Utp, TransportKind::Utp)
        );
        let next: Vec<TransportKind> = connector
            .plan()
            .routes(addr)
            .iter()
            .map(|r| r.transport)
            .collect();
        assert_eq!(next, vec![TransportKind::Utp, TransportKind::Tcp]);
        cancel.cancel();
    }
}
