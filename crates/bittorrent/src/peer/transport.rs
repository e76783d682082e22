//! The byte stream under a peer connection. The handshake, the codecs and
//! the peer actor run on a [`PeerStream`] and do not care what carries it:
//! TCP today, uTP (BEP 29) beside it, with or without MSE/PE encryption
//! layered on top (the stream then keeps an MSE [`Crypt`] layer).

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use crate::mse::stream::Crypt;

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
    /// After an MSE/PE handshake (or bytes read to tell one from a plain
    /// handshake): the payload already received and any RC4 keystreams.
    crypt: Option<Box<Crypt>>,
}

impl PeerStream {
    /// Wraps a stream carried by `kind`.
    pub(crate) fn new(kind: TransportKind, inner: impl Transport) -> Self {
        Self {
            inner: Box::new(inner),
            kind,
            crypt: None,
        }
    }

    /// The stream with `crypt` layered on: what an MSE/PE handshake left.
    pub(crate) fn with_crypt(mut self, crypt: Crypt) -> Self {
        self.crypt = Some(Box::new(crypt));
        self
    }

    /// Whether RC4 runs on the stream.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.crypt.as_ref().is_some_and(|c| c.is_encrypted())
    }

    /// Writes `parts` in order, encrypting them in place first if the stream
    /// is encrypted: the caller's buffers are what goes out, with no copy.
    ///
    /// # Errors
    /// The socket's error.
    pub(crate) async fn write_all_sealed(&mut self, parts: &mut [&mut [u8]]) -> io::Result<()> {
        if let Some(crypt) = &mut self.crypt {
            let inner = &mut self.inner;
            std::future::poll_fn(|cx| crypt.poll_drain(inner, cx)).await?;
            for part in parts.iter_mut() {
                crypt.seal(part);
            }
        }
        let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
        let mut slices = &mut slices[..];
        while !slices.is_empty() {
            let inner = &mut self.inner;
            let n = std::future::poll_fn(|cx| Crypt::poll_write_raw(inner, cx, slices)).await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut slices, n);
        }
        Ok(())
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
        let this = &mut *self;
        match &mut this.crypt {
            Some(crypt) => crypt.poll_read(&mut this.inner, cx, buf),
            None => Pin::new(&mut *this.inner).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PeerStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match &mut this.crypt {
            Some(crypt) => crypt.poll_write(&mut this.inner, cx, &[IoSlice::new(buf)]),
            None => Pin::new(&mut *this.inner).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        match &mut this.crypt {
            Some(crypt) => crypt.poll_write(&mut this.inner, cx, bufs),
            None => Pin::new(&mut *this.inner).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.is_encrypted() || self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(crypt) = &mut this.crypt {
            std::task::ready!(crypt.poll_drain(&mut this.inner, cx))?;
        }
        Pin::new(&mut *this.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if let Some(crypt) = &mut this.crypt {
            std::task::ready!(crypt.poll_drain(&mut this.inner, cx))?;
        }
        Pin::new(&mut *this.inner).poll_shutdown(cx)
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
