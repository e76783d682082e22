//! How we open connections to peers, shared by every torrent of a session:
//! which transport to try first, whether to wrap the stream, and what
//! worked for each address before. A [`Connector`] is a cheap clone.
//!
//! Routes are tried in order: for each transport in the configured order
//! (TCP and uTP, see [`UtpMode`]), the one that worked last for the address
//! first. A route that connects but whose peer then closes before the
//! BitTorrent handshake (libtorrent accepts TCP and closes it when TCP is
//! off) is remembered as failed, and the next route is tried at once
//! ([`Connector::open_with`]).

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::UtpMode;
use crate::peer::transport::{PeerStream, TransportKind};
use crate::peer::PeerError;
use crate::types::InfoHash;
use crate::utp::Endpoint;

/// Addresses whose working transport is remembered; beyond, one is
/// forgotten for each new one.
const MEMORY: usize = 4096;
/// Most time a route that has a fallback behind it may take to connect
/// (the last route gets the whole connect timeout).
const FIRST_ROUTE_TIMEOUT: Duration = Duration::from_secs(3);

/// One way of reaching a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Route {
    /// What carries the connection.
    pub transport: TransportKind,
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
    /// Transports to dial, in order.
    transports: Vec<TransportKind>,
    /// The session's uTP socket, if uTP runs.
    utp: Option<Endpoint>,
    /// The transport to try first per address (what worked last, or the
    /// other one after a failure).
    first: Mutex<HashMap<SocketAddr, TransportKind>>,
}

impl Connector {
    /// A connector over plaintext TCP, each attempt bounded by `timeout`.
    #[cfg(test)]
    pub(crate) fn new(timeout: Duration) -> Self {
        Self::with_utp(timeout, None, UtpMode::Disable)
    }

    /// A connector over TCP and, with an `endpoint`, uTP in `mode`'s order.
    pub(crate) fn with_utp(timeout: Duration, endpoint: Option<Endpoint>, mode: UtpMode) -> Self {
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
                transports,
                utp: endpoint,
                first: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The transports to try for `addr`, in order.
    fn plan(&self, addr: SocketAddr) -> Vec<TransportKind> {
        let mut plan = self.inner.transports.clone();
        let first = self.memory().get(&addr).copied();
        if let Some(pos) = first.and_then(|f| plan.iter().position(|&t| t == f)) {
            let t = plan.remove(pos);
            plan.insert(0, t);
        }
        plan
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, TransportKind>> {
        // A panic elsewhere cannot leave the map inconsistent: keep using it.
        self.inner.first.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `transport` as the one to try first for `addr`.
    fn remember(&self, addr: SocketAddr, transport: TransportKind) {
        let mut memory = self.memory();
        if memory.len() >= MEMORY && !memory.contains_key(&addr) {
            if let Some(old) = memory.keys().next().copied() {
                memory.remove(&old);
            }
        }
        memory.insert(addr, transport);
    }

    /// Opens a stream to `addr` for the torrent `info_hash`, ready for the
    /// BitTorrent handshake. The caller bounds the total time.
    ///
    /// # Errors
    /// [`PeerError::Connect`] (or the error of the last route tried).
    pub(crate) async fn open(
        &self,
        addr: SocketAddr,
        _info_hash: InfoHash,
    ) -> Result<(PeerStream, Route), PeerError> {
        let plan = self.plan(addr);
        let mut last = None;
        for (i, &transport) in plan.iter().enumerate() {
            let timeout = if i + 1 < plan.len() {
                self.inner.timeout.min(FIRST_ROUTE_TIMEOUT)
            } else {
                self.inner.timeout
            };
            match self.dial(transport, addr, timeout).await {
                Ok(stream) => return Ok((stream, Route { transport })),
                Err(e) => {
                    log::trace!("{addr}: {transport} connect failed: {e}");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| PeerError::Connect(std::io::ErrorKind::Unsupported.into())))
    }

    /// Opens a stream to `addr` and runs `handshake` on it. If the
    /// handshake fails and another transport is configured, that transport
    /// is tried next (now and for later connections to `addr`). The
    /// transport that worked is remembered for `addr`.
    ///
    /// # Errors
    /// The error of [`open`](Self::open) or of the last handshake.
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
        let (stream, route) = self.open(addr, info_hash).await?;
        let err = match handshake(stream).await {
            Ok(done) => {
                self.remember(addr, route.transport);
                return Ok((done, route));
            }
            Err(e) => e,
        };
        let Some(&other) = self
            .inner
            .transports
            .iter()
            .find(|&&t| t != route.transport)
        else {
            return Err(err);
        };
        log::debug!(
            "{addr}: handshake over {} failed ({err}); trying {other}",
            route.transport
        );
        self.remember(addr, other);
        let (stream, second) = self.open(addr, info_hash).await?;
        if second == route {
            return Err(err);
        }
        let done = handshake(stream).await?;
        self.remember(addr, second.transport);
        Ok((done, second))
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
    use tokio_util::sync::CancellationToken;

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
        let (stream, route) = connector
            .open(theirs.local_addr(), InfoHash([0; 20]))
            .await
            .unwrap();
        assert_eq!(route.transport, TransportKind::Utp);
        assert_eq!(stream.kind(), TransportKind::Utp);
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
        assert_eq!(
            connector.plan(addr),
            vec![TransportKind::Utp, TransportKind::Tcp]
        );
        cancel.cancel();
    }

    #[test]
    fn memory_is_bounded() {
        let connector = Connector::new(Duration::from_secs(1));
        for port in 0..(MEMORY as u16 + 100) {
            connector.remember(SocketAddr::from(([10, 0, 0, 1], port)), TransportKind::Utp);
        }
        assert_eq!(connector.memory().len(), MEMORY);
    }
}
