//! The API's listener: at most [`MAX_CONNECTIONS`] connections at once (the
//! others wait in the kernel's backlog until one closes), each closed after
//! [`IDLE_TIMEOUT`] without a byte either way (a client that opens
//! connections and sends nothing cannot hold the slots), each tagged with
//! the client's address for the login check.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 128;

/// How long a connection may go without a byte read or written (an idle
/// keep-alive, a client that sends nothing, a stream waiting for pieces).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(120);

/// A `TcpListener` that holds a slot per open connection.
pub struct CappedListener {
    inner: TcpListener,
    slots: Arc<Semaphore>,
    idle: Duration,
}

impl CappedListener {
    /// Caps `inner` at `max` connections, each closed after `idle` without traffic.
    pub fn new(inner: TcpListener, max: usize, idle: Duration) -> Self {
        Self {
            inner,
            slots: Arc::new(Semaphore::new(max)),
            idle,
        }
    }
}

impl Listener for CappedListener {
    type Io = CappedStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // Never closed; were it, serve without a slot rather than stop.
        let permit = Arc::clone(&self.slots).acquire_owned().await.ok();
        let (stream, addr) = Listener::accept(&mut self.inner).await;
        let stream = CappedStream {
            stream,
            _slot: permit,
            idle: self.idle,
            deadline: Box::pin(tokio::time::sleep(self.idle)),
        };
        (stream, addr)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A connection and its slot, freed when it closes.
pub struct CappedStream {
    stream: TcpStream,
    _slot: Option<OwnedSemaphorePermit>,
    idle: Duration,
    /// When the connection is given up without traffic.
    deadline: Pin<Box<Sleep>>,
}

impl CappedStream {
    /// Traffic: the idle deadline moves.
    fn touch(&mut self) {
        let at = Instant::now() + self.idle;
        self.deadline.as_mut().reset(at);
    }

    /// A pending operation: an error once the deadline has passed.
    fn pending<T>(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<T>> {
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::ErrorKind::TimedOut.into())),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncRead for CappedStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.stream).poll_read(cx, buf) {
            Poll::Ready(Ok(())) if buf.filled().len() > before => {
                self.touch();
                Poll::Ready(Ok(()))
            }
            Poll::Pending => self.pending(cx),
            other => other,
        }
    }
}

impl AsyncWrite for CappedStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.stream).poll_write(cx, buf) {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending => self.pending(cx),
            other => other,
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The client's address, as handlers and the auth layer see it.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, CappedListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, CappedListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_silent_connection_times_out_and_traffic_keeps_one_open() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        // Generous margins: gaps of 0.5 s against an idle time of 2 s, over
        // 3 s in all (longer than the idle time: the traffic kept it open).
        let mut listener = CappedListener::new(inner, 2, Duration::from_secs(2));
        let _silent = TcpStream::connect(addr).await.unwrap();
        let (mut stream, _) = Listener::accept(&mut listener).await;
        let mut byte = [0u8; 1];
        let error = stream.read(&mut byte).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);

        let mut talker = TcpStream::connect(addr).await.unwrap();
        let (mut stream, _) = Listener::accept(&mut listener).await;
        for _ in 0..6 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            talker.write_all(b"x").await.unwrap();
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1);
        }
    }

    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_slot() {
        let inner = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = inner.local_addr().unwrap();
        let mut listener = CappedListener::new(inner, 1, IDLE_TIMEOUT);
        let _a = TcpStream::connect(addr).await.unwrap();
        let _b = TcpStream::connect(addr).await.unwrap();
        let (first, _) = Listener::accept(&mut listener).await;
        let second =
            tokio::time::timeout(Duration::from_millis(300), Listener::accept(&mut listener)).await;
        assert!(second.is_err(), "a second connection got a slot");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), Listener::accept(&mut listener));
        assert!(second.await.is_ok());
    }
}
