//! How we open connections to peers, shared by every torrent of a session:
//! which transport to try first, whether to wrap the stream, and what
//! worked for each address before. A [`Connector`] is a cheap clone.
//!
//! Today every connection is plaintext TCP; uTP (BEP 29) and MSE/PE
//! encryption slot in as further [`Route`]s tried in [`Connector::open`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;

use crate::peer::transport::{PeerStream, TransportKind};
use crate::peer::PeerError;
use crate::types::InfoHash;

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
}

impl Connector {
    /// A connector over plaintext TCP, each attempt bounded by `timeout`.
    pub(crate) fn new(timeout: Duration) -> Self {
        Self {
            inner: Arc::new(Inner { timeout }),
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
        _info_hash: InfoHash,
    ) -> Result<(PeerStream, Route), PeerError> {
        let route = Route {
            transport: TransportKind::Tcp,
        };
        let stream = tokio::time::timeout(self.inner.timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| PeerError::Connect(std::io::ErrorKind::TimedOut.into()))?
            .map_err(PeerError::Connect)?;
        let stream = PeerStream::tcp(stream).map_err(PeerError::Connect)?;
        Ok((stream, route))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
