//! The byte stream under a peer connection. The handshake, the codecs and
//! the peer actor run on a [`PeerStream`] and do not care what carries it:
//! TCP today, uTP (BEP 29) beside it, with or without MSE/PE encryption
//! layered on top (the stream then keeps an MSE [`Crypt`] layer). On
//! plaintext TCP it also sends file data with sendfile(2)
//! ([`PeerStream::send_file`]).

use std::any::Any;
use std::fmt;
use std::fs::File;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
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

/// Most bytes one sendfile(2) call is asked for.
const SENDFILE_CHUNK: usize = 1 << 20;

/// Any byte stream a peer connection can run on.
pub(crate) trait Transport: AsyncRead + AsyncWrite + Send + Unpin + 'static {
    /// The stream itself, to find out whether it is a TCP socket.
    fn as_any(&self) -> &dyn Any;
}

impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> Transport for T {
    fn as_any(&self) -> &dyn Any {
        self
    }
}

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

    /// The TCP socket under the stream when bytes go out on it as they are
    /// (plaintext TCP: not uTP, not RC4).
    fn plain_tcp(&self) -> Option<&TcpStream> {
        if self.is_encrypted() {
            return None;
        }
        // Through `dyn Transport`: the box itself is a `Transport` too.
        let inner: &dyn Transport = &*self.inner;
        inner.as_any().downcast_ref::<TcpStream>()
    }

    /// Whether [`PeerStream::send_file`] works here (plaintext TCP).
    pub(crate) fn can_send_files(&self) -> bool {
        self.plain_tcp().is_some()
    }

    /// Corks the TCP socket (only full segments leave), or uncorks it (what
    /// waits leaves now).
    ///
    /// # Errors
    /// [`io::ErrorKind::Unsupported`] unless plaintext TCP; the OS error.
    pub(crate) fn set_cork(&self, on: bool) -> io::Result<()> {
        let tcp = self.plain_tcp().ok_or(io::ErrorKind::Unsupported)?;
        rustix::net::sockopt::set_tcp_cork(tcp, on).map_err(io::Error::from)
    }

    /// Sends `len` bytes of `file` from `offset` with sendfile(2): from the
    /// page cache to the socket, with no copy through user space. Waits
    /// while the socket is full and goes on after partial sends. Only on
    /// plaintext TCP ([`PeerStream::can_send_files`]); bytes written before
    /// through the stream go first (the caller flushes its codec).
    ///
    /// # Errors
    /// [`io::ErrorKind::Unsupported`] unless plaintext TCP;
    /// [`io::ErrorKind::UnexpectedEof`] if the file ends first (the bytes
    /// before were sent: the connection must be dropped); the socket's or
    /// the file's error.
    pub(crate) async fn send_file(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        if let Some(crypt) = &mut self.crypt {
            let inner = &mut self.inner;
            std::future::poll_fn(|cx| crypt.poll_drain(inner, cx)).await?;
        }
        let tcp = self.plain_tcp().ok_or(io::ErrorKind::Unsupported)?;
        let mut at = offset;
        let end = offset.checked_add(len).ok_or(io::ErrorKind::InvalidInput)?;
        while at < end {
            let count = usize::try_from(end - at).map_or(SENDFILE_CHUNK, |n| n.min(SENDFILE_CHUNK));
            tcp.writable().await?;
            let sent = tcp.try_io(Interest::WRITABLE, || {
                rustix::fs::sendfile(tcp, file, Some(&mut at), count).map_err(io::Error::from)
            });
            match sent {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("file ends at {at}, before the {len} bytes at {offset} to send"),
                    ))
                }
                // The kernel moved `at` past what it sent.
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
        // Not a TCP socket: no sendfile.
        assert!(!a.can_send_files() && !b.can_send_files());
        let file = tempfile::tempfile().unwrap();
        let err = b.send_file(&file, 0, 1).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
    }

    #[tokio::test]
    async fn send_file_waits_out_a_full_socket_and_partial_sends() {
        use std::io::Write;
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 253) as u8).collect();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&data).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        // A small send buffer: sendfile sends part, then the socket is full.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(4096).unwrap();
        let ours = socket
            .connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (mut theirs, _) = listener.accept().await.unwrap();
        let mut ours = PeerStream::tcp(ours).unwrap();
        let reader = tokio::spawn(async move {
            // Start reading late, so the sender finds the socket full.
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).await.unwrap();
            got
        });
        ours.write_all(b"head").await.unwrap();
        ours.send_file(&file, 100, 900_000).await.unwrap();
        ours.shutdown().await.unwrap();
        let got = reader.await.unwrap();
        assert_eq!(&got[..4], b"head");
        assert!(got[4..] == data[100..900_100], "byte-identical");
    }
}
