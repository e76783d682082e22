//! The byte stream under a peer connection. The handshake, the codecs and
//! the peer actor run on a [`PeerStream`] and do not care what carries it:
//! TCP today, uTP (BEP 29) beside it, with or without MSE/PE encryption
//! layered on top.

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// What carries a peer connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TransportKind {
    /// A TCP connection.
    Tcp,
    /// A uTP connection over the session's UDP socket (BEP 29).
    Utp,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Utp => "uTP",
        })
    }
}

/// Any byte stream a peer connection can run on.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {}

/// A peer's byte stream, whatever carries it.
pub(crate) struct PeerStream {
    inner: Box<dyn Transport>,
    kind: TransportKind,
}

impl PeerStream {
    /// Wraps a stream carried by `kind`.
    pub(crate) fn new(kind: TransportKind, inner: impl Transport) -> Self {
        Self {
            inner: Box::new(inner),
            kind,
        }
    }

    /// A TCP connection, with Nagle off (requests are small and
    /// latency-bound).
    ///
    /// # Errors
    /// The OS error of turning Nagle off.
    pub(crate) fn tcp(stream: TcpStream) -> io::Result<Self> {
        stream.set_nodelay(true)?;
        Ok(Self::new(TransportKind::Tcp, stream))
    }

    /// What carries the stream.
    pub(crate) fn kind(&self) -> TransportKind {
        self.kind
    }
}

impl fmt::Debug for PeerStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStream")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl AsyncRead for PeerStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn carries_bytes_both_ways() {
        let (a, b) = tokio::io::duplex(64);
        let (mut a, mut b) = (
            PeerStream::new(TransportKind::Utp, a),
            PeerStream::new(TransportKind::Tcp, b),
        );
        a.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        b.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        assert_eq!(a.kind(), TransportKind::Utp);
        assert_eq!(format!("{:?}", b), "PeerStream { kind: Tcp, .. }");
    }
}
