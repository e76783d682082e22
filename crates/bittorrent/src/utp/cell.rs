//! One connection as the endpoint's task and its stream share it: the
//! sans-IO [`Connection`] behind a mutex, with the wakers of the stream's
//! reader and writer and the endpoint's bookkeeping.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Instant;

use crate::utp::conn::{Closed, Connection, MAX_DATAGRAM};
use crate::utp::table::Key;

/// Locks, ignoring poisoning: a panic elsewhere must not stop uTP.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One connection, shared by its stream and the endpoint's task.
pub(crate) struct Cell {
    pub(crate) key: Key,
    pub(crate) state: Mutex<ConnState>,
}

/// A connection and what waits on it.
pub(crate) struct ConnState {
    pub(crate) conn: Connection,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) write_waker: Option<Waker>,
    /// The earliest deadline queued in the endpoint's timers for it.
    pub(crate) timer_at: Option<Instant>,
    /// A datagram in `buf` the socket refused (full); sent first next time.
    pub(crate) unsent: Option<usize>,
    /// Queued on the endpoint's list of connections waiting to send.
    pub(crate) blocked: bool,
    /// Set when the stream is dropped: reset if not closed by then.
    pub(crate) linger_until: Option<Instant>,
    /// Inbound and not yet handed to the listener.
    pub(crate) unannounced: bool,
    pub(crate) buf: Box<[u8]>,
}

impl Cell {
    pub(crate) fn new(key: Key, conn: Connection, inbound: bool) -> Arc<Self> {
        Arc::new(Self {
            key,
            state: Mutex::new(ConnState {
                conn,
                read_waker: None,
                write_waker: None,
                timer_at: None,
                unsent: None,
                blocked: false,
                linger_until: None,
                unannounced: inbound,
                buf: vec![0; MAX_DATAGRAM].into_boxed_slice(),
            }),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, ConnState> {
        lock(&self.state)
    }
}

impl ConnState {
    /// Wakes the stream's reader and writer if they can go on.
    pub(crate) fn wake(&mut self) {
        if self.conn.readable() {
            if let Some(waker) = self.read_waker.take() {
                waker.wake();
            }
        }
        if self.conn.writable() {
            if let Some(waker) = self.write_waker.take() {
                waker.wake();
            }
        }
    }
}

/// Why a connection ended, as the error its stream returns.
pub(crate) fn closed_error(closed: Closed) -> io::Error {
    let kind = match closed {
        Closed::Fin => io::ErrorKind::BrokenPipe,
        Closed::Reset => io::ErrorKind::ConnectionReset,
        Closed::TimedOut => io::ErrorKind::TimedOut,
        Closed::Refused => io::ErrorKind::ConnectionRefused,
    };
    io::Error::new(kind, format!("uTP connection closed: {closed:?}"))
}
