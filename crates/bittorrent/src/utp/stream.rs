//! A uTP connection as a byte stream. Writes copy into the connection and
//! send what it lets go at once, from the writer's task; reads copy out
//! what the endpoint's task received.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

use crate::utp::cell::{closed_error, Cell};
use crate::utp::socket::Inner;
use crate::utp::table::LINGER;

/// How long shutdown waits for the peer to acknowledge our FIN.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// A uTP stream whose flush returns at once, as a TCP socket's does once
/// the kernel has the bytes: our codecs flush after each batch of messages,
/// and waiting there for the peer's ACKs would turn the transfer into
/// stop-and-wait. The bytes are in the connection's send buffer, sent as
/// the congestion window allows; shutdown waits for them (bounded), and a
/// dropped stream still sends them and closes gracefully.
pub(crate) struct UtpStream {
    inner: Arc<Inner>,
    cell: Arc<Cell>,
    shutdown: Option<Pin<Box<Sleep>>>,
}

impl UtpStream {
    pub(crate) fn new(inner: Arc<Inner>, cell: Arc<Cell>) -> Self {
        Self {
            inner,
            cell,
            shutdown: None,
        }
    }
}

impl AsyncRead for UtpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut st = self.cell.lock();
        let n = st.conn.read(buf.initialize_unfilled());
        if n > 0 {
            buf.advance(n);
            // The window opened: an update may be due.
            self.inner.transmit(&self.cell, &mut st, Instant::now());
            return Poll::Ready(Ok(()));
        }
        if st.conn.is_eof() {
            return Poll::Ready(Ok(()));
        }
        if let Some(closed) = st.conn.closed() {
            return Poll::Ready(Err(closed_error(closed)));
        }
        st.read_waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl AsyncWrite for UtpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let mut st = self.cell.lock();
        if let Some(closed) = st.conn.closed() {
            return Poll::Ready(Err(closed_error(closed)));
        }
        let n = st.conn.write(buf);
        if n == 0 && !buf.is_empty() {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        self.inner.transmit(&self.cell, &mut st, Instant::now());
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.shutdown.is_none() {
            let now = Instant::now();
            let mut st = this.cell.lock();
            st.conn.close(now);
            this.inner.transmit(&this.cell, &mut st, now);
            this.shutdown = Some(Box::pin(tokio::time::sleep(SHUTDOWN_WAIT)));
        }
        {
            let mut st = this.cell.lock();
            if st.conn.closed().is_some() {
                return Poll::Ready(Ok(()));
            }
            st.write_waker = Some(cx.waker().clone());
        }
        match this.shutdown.as_mut().map(|sleep| sleep.as_mut().poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Ok(())),
            _ => Poll::Pending,
        }
    }
}

impl Drop for UtpStream {
    fn drop(&mut self) {
        let now = Instant::now();
        let mut st = self.cell.lock();
        st.read_waker = None;
        st.write_waker = None;
        if st.conn.closed().is_none() {
            st.conn.close(now);
            st.linger_until = Some(now + LINGER);
        }
        self.inner.transmit(&self.cell, &mut st, now);
    }
}
