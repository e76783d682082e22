//! The endpoint's async side: one task per endpoint reads the shared UDP
//! socket, hands each uTP datagram to its connection (a sans-IO
//! [`Connection`] behind a mutex), answers SYNs and strays, fires the
//! connections' timers from one queue, and sends what the touched
//! connections have to send once per batch of received datagrams (so one
//! ACK answers many). Streams write and send from their own task.

use std::collections::HashMap;
use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use rand::Rng;
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;

use crate::peer::transport::{PeerStream, TransportKind};
use crate::utp::cell::{closed_error, lock, Cell, ConnState};
use crate::utp::conn::State;
use crate::utp::conn::{Config, Connection};
use crate::utp::demux::{classify, Datagram, Header};
use crate::utp::icmp::Unreachable;
use crate::utp::stream::UtpStream;
use crate::utp::table::{self, free_id, HalfOpen, Key, ResetLimiter, Route, Timers};
use crate::utp::udp::{DhtQueue, UdpPort};
use crate::utp::{MAX_CONNECTIONS, MAX_RETRANSMISSIONS, RX_BUFFER, TX_BUFFER_MAX};

/// Inbound connections accepted and waiting for the listener.
pub(crate) const ACCEPT_QUEUE: usize = 16;
/// Datagrams read per batch before the touched connections send (ACKs).
const BATCH: usize = 64;
/// Biggest datagram read; longer ones are truncated (and then malformed).
const RECV_BUF: usize = 64 * 1024;
/// How long an outbound connection may take to be established.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

type Accepted = (PeerStream, SocketAddr);

/// The endpoint: the socket, its connections, their timers.
pub(crate) struct Inner {
    pub(crate) port: UdpPort,
    conns: Mutex<HashMap<Key, Arc<Cell>>>,
    timers: Mutex<Timers>,
    /// Wakes the endpoint's task: a timer moved earlier, a send blocked.
    wake: Notify,
    blocked: Mutex<Vec<Arc<Cell>>>,
    accept: Mutex<Option<mpsc::Sender<Accepted>>>,
    /// Inbound connections not yet answered past the SYN (bounded).
    half_open: Mutex<HalfOpen>,
}

/// The connections' settings: the buffer bounds of the module doc.
fn config() -> Config {
    Config {
        recv_window: RX_BUFFER,
        send_buffer: TX_BUFFER_MAX,
        max_retransmissions: MAX_RETRANSMISSIONS,
        connect_timeout: CONNECT_TIMEOUT,
        ..Config::default()
    }
}

impl Inner {
    /// Starts the endpoint's task on `port` until `cancel` fires.
    pub(crate) fn start(port: UdpPort, dht: DhtQueue, cancel: CancellationToken) -> Arc<Self> {
        let inner = Arc::new(Self {
            port,
            conns: Mutex::new(HashMap::new()),
            timers: Mutex::new(Timers::default()),
            wake: Notify::new(),
            blocked: Mutex::new(Vec::new()),
            accept: Mutex::new(None),
            half_open: Mutex::new(HalfOpen::default()),
        });
        tokio::spawn(Arc::clone(&inner).run(dht, cancel));
        inner
    }

    /// Connections in the table (tests: bounds).
    #[cfg(test)]
    pub(crate) fn connection_count(&self) -> usize {
        lock(&self.conns).len()
    }

    /// Half-open inbound connections (tests: bounds).
    #[cfg(test)]
    pub(crate) fn half_open_count(&self) -> usize {
        lock(&self.half_open).len()
    }

    /// Sends what the connection has to send now, queues its next deadline.
    /// On a full socket the rest waits for the endpoint's task.
    pub(crate) fn transmit(&self, cell: &Arc<Cell>, st: &mut ConnState, now: Instant) {
        if self.send(cell, st, now) {
            self.wake.notify_one();
        }
    }

    /// [`transmit`](Self::transmit) without waking the endpoint's task:
    /// true when the socket was full and the connection was queued for it.
    fn send(&self, cell: &Arc<Cell>, st: &mut ConnState, now: Instant) -> bool {
        let mut queued = false;
        let to = cell.key.0;
        let mut len = st.unsent.take();
        while let Some(n) = len.or_else(|| st.conn.poll_transmit(now, &mut st.buf)) {
            match self.port.try_send_to(&st.buf[..n], to) {
                Ok(_) => len = None,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    st.unsent = Some(n);
                    if !st.blocked {
                        st.blocked = true;
                        queued = true;
                        lock(&self.blocked).push(Arc::clone(cell));
                    }
                    break;
                }
                Err(e) => {
                    // Lost like any datagram; the connection sends it again.
                    log::debug!("{to}: uTP send failed: {e}");
                    len = None;
                }
            }
        }
        self.schedule(cell.key, st);
        queued
    }

    /// Queues the connection's next deadline if it is earlier than the one
    /// queued.
    fn schedule(&self, key: Key, st: &mut ConnState) {
        let due = match (st.conn.poll_timeout(), st.linger_until) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let Some(due) = due else { return };
        if st.timer_at.is_some_and(|at| at <= due) {
            return;
        }
        st.timer_at = Some(due);
        let live = |k: &Key| lock(&self.conns).contains_key(k);
        if lock(&self.timers).push(due, key, live) {
            self.wake.notify_one();
        }
    }

    /// Opens a connection to `to` and waits until it is established.
    pub(crate) async fn connect(self: &Arc<Self>, to: SocketAddr) -> io::Result<UtpStream> {
        let now = Instant::now();
        let cell = {
            let mut conns = lock(&self.conns);
            if conns.len() >= MAX_CONNECTIONS {
                return Err(io::Error::other("too many uTP connections"));
            }
            let mut rng = rand::thread_rng();
            let id = free_id(&conns, to, (0..16).map(|_| rng.gen::<u16>()))
                .ok_or_else(|| io::Error::other("no free uTP connection id"))?;
            let cell = Cell::new(
                (to, id),
                Connection::connect(config(), id, rng.gen(), now),
                false,
            );
            conns.insert(cell.key, Arc::clone(&cell));
            cell
        };
        self.transmit(&cell, &mut cell.lock(), now);
        let mut guard = ConnectGuard {
            inner: self,
            cell: Some(Arc::clone(&cell)),
        };
        let established = poll_fn(|cx| {
            let mut st = cell.lock();
            if st.conn.is_established() {
                return Poll::Ready(Ok(()));
            }
            if let Some(closed) = st.conn.closed() {
                return Poll::Ready(Err(closed_error(closed)));
            }
            st.write_waker = Some(cx.waker().clone());
            Poll::Pending
        });
        match tokio::time::timeout(CONNECT_TIMEOUT, established).await {
            Ok(Ok(())) => {
                guard.cell = None;
                Ok(UtpStream::new(Arc::clone(self), cell))
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "uTP connect")),
        }
    }

    /// Hands inbound connections to `tx` from now on, until `cancel`.
    pub(crate) fn listen(self: &Arc<Self>, tx: mpsc::Sender<Accepted>, cancel: CancellationToken) {
        *lock(&self.accept) = Some(tx);
        let inner = Arc::clone(self);
        tokio::spawn(async move {
            cancel.cancelled().await;
            lock(&inner.accept).take();
        });
    }

    async fn run(self: Arc<Self>, dht: DhtQueue, cancel: CancellationToken) {
        let mut buf = vec![0u8; RECV_BUF];
        let mut touched = Vec::with_capacity(BATCH);
        let mut resets = ResetLimiter::new(Instant::now());
        let mut sleep = pin!(tokio::time::sleep(Duration::from_secs(3600)));
        let mut sleeping_until = None;
        loop {
            let next = [
                lock(&self.timers).next(),
                lock(&self.half_open).next_expiry(),
            ]
            .into_iter()
            .flatten()
            .min();
            if next != sleeping_until {
                sleeping_until = next;
                let at = next.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
                sleep.as_mut().reset(at.into());
            }
            let blocked = !lock(&self.blocked).is_empty();
            tokio::select! {
                biased;
                () = cancel.cancelled() => break,
                readable = self.port.readable() => {
                    if let Err(e) = readable {
                        log::warn!("uTP socket stopped: {e}");
                        break;
                    }
                }
                Ok(()) = self.port.writable(), if blocked => {}
                () = self.wake.notified() => {}
                () = &mut sleep, if sleeping_until.is_some() => sleeping_until = None,
            }
            self.drain_errors(&mut touched);
            self.drain(&mut buf, &mut touched, &dht, &mut resets);
            self.fire_timers(&mut touched);
            self.flush(&mut touched);
            self.retry_blocked();
        }
        self.shut_down();
    }

    /// Reads up to a batch of datagrams: uTP ones to their connections
    /// (which are noted in `touched`), the DHT's to its queue.
    fn drain(
        &self,
        buf: &mut [u8],
        touched: &mut Vec<Arc<Cell>>,
        dht: &DhtQueue,
        resets: &mut ResetLimiter,
    ) {
        let now = Instant::now();
        for _ in 0..BATCH {
            let (len, from) = match self.port.try_recv_from(buf) {
                Ok(received) => received,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    log::debug!("UDP receive error: {e}");
                    continue;
                }
            };
            let bytes = &buf[..len];
            match classify(bytes) {
                Datagram::Dht => dht.push(bytes, from),
                Datagram::Unknown => log::trace!("{from}: unknown datagram dropped"),
                Datagram::Utp => self.on_utp(bytes, from, now, touched, resets),
            }
        }
    }

    /// Reads the ICMP errors queued on the socket: "port unreachable"
    /// refuses the connects to that address still waiting for their SYN's
    /// answer; established connections ignore it (see
    /// [`Connection::on_port_unreachable`]), and so does the DHT.
    fn drain_errors(&self, touched: &mut Vec<Arc<Cell>>) {
        for _ in 0..BATCH {
            let error = match self.port.try_recv_error() {
                Ok(Some(error)) => error,
                Ok(None) => continue,
                Err(_) => return,
            };
            let to = error.to;
            if let Unreachable::Other(errno) = error.what {
                log::trace!("{to}: ICMP error (errno {errno}) ignored");
                continue;
            }
            let cells: Vec<_> = lock(&self.conns)
                .iter()
                .filter(|(key, _)| key.0 == to)
                .map(|(_, cell)| Arc::clone(cell))
                .collect();
            for cell in cells {
                if cell.lock().conn.on_port_unreachable() {
                    log::debug!("{to}: uTP connect refused (ICMP port unreachable)");
                    if !touched.iter().any(|c| Arc::ptr_eq(c, &cell)) {
                        touched.push(cell);
                    }
                }
            }
        }
    }

    fn on_utp(
        &self,
        bytes: &[u8],
        from: SocketAddr,
        now: Instant,
        touched: &mut Vec<Arc<Cell>>,
        resets: &mut ResetLimiter,
    ) {
        let Ok(header) = Header::parse(bytes) else {
            return;
        };
        // Most datagrams in a batch are for the connection of the last one.
        let last = touched
            .last()
            .filter(|c| c.key == (from, header.connection_id));
        let cell = match last {
            Some(cell) if !matches!(header.packet_type, crate::utp::PacketType::Syn) => {
                Arc::clone(cell)
            }
            _ => match self.route(&header, from) {
                Some(Route::To(key)) => match lock(&self.conns).get(&key) {
                    Some(cell) => Arc::clone(cell),
                    None => return,
                },
                Some(Route::Accept) => match self.accept(bytes, from, now) {
                    Some(cell) => cell,
                    None => return,
                },
                Some(Route::Reset) => {
                    if resets.allow(now) {
                        log::trace!("{from}: uTP packet for no connection: RESET");
                        let packet = table::reset_for(&header, rand::thread_rng().gen());
                        let _ = self.port.try_send_to(&packet, from);
                    }
                    return;
                }
                Some(Route::Drop) | None => return,
            },
        };
        cell.lock().conn.handle_datagram(bytes, now);
        if !touched.iter().any(|c| Arc::ptr_eq(c, &cell)) {
            touched.push(cell);
        }
    }

    fn route(&self, header: &Header, from: SocketAddr) -> Option<Route> {
        let conns = lock(&self.conns);
        let accepting = lock(&self.accept)
            .as_ref()
            .is_some_and(|tx| tx.capacity() > 0);
        let admit = accepting && conns.len() < MAX_CONNECTIONS;
        Some(table::route(header, from, |k| conns.contains_key(k), admit))
    }

    /// A new inbound connection from a SYN, in the table, half-open (the
    /// oldest half-open one makes room past the bound).
    fn accept(&self, syn: &[u8], from: SocketAddr, now: Instant) -> Option<Arc<Cell>> {
        let conn = Connection::accept(config(), syn, rand::thread_rng().gen(), now)?;
        let cell = Cell::new((from, conn.recv_id()), conn, true);
        log::trace!("{from}: uTP SYN accepted");
        let evicted = lock(&self.half_open).push(cell.key, now);
        let evicted = {
            let mut conns = lock(&self.conns);
            conns.insert(cell.key, Arc::clone(&cell));
            evicted.and_then(|key| conns.remove(&key))
        };
        if let Some(old) = evicted {
            log::debug!("{}: half-open uTP connection dropped (too many)", old.key.0);
            old.lock().conn.reset();
        }
        Some(cell)
    }

    /// Drops the inbound connections half-open for too long.
    fn expire_half_open(&self, now: Instant) {
        while let Some(key) = lock(&self.half_open).pop_expired(now) {
            let removed = lock(&self.conns).remove(&key);
            if let Some(cell) = removed {
                log::debug!("{}: half-open uTP connection timed out", key.0);
                cell.lock().conn.reset();
            }
        }
    }

    /// Handles the timeouts that are due.
    fn fire_timers(&self, touched: &mut Vec<Arc<Cell>>) {
        let now = Instant::now();
        self.expire_half_open(now);
        loop {
            let Some((at, key)) = lock(&self.timers).pop_due(now) else {
                break;
            };
            let Some(cell) = lock(&self.conns).get(&key).cloned() else {
                continue;
            };
            {
                let mut st = cell.lock();
                if st.timer_at == Some(at) {
                    st.timer_at = None;
                }
                if st.conn.poll_timeout().is_some_and(|due| due <= now) {
                    st.conn.handle_timeout(now);
                }
                if st.linger_until.is_some_and(|due| due <= now) && st.conn.closed().is_none() {
                    log::debug!("{}: uTP close took too long: reset", key.0);
                    st.conn.reset();
                }
            }
            if !touched.iter().any(|c| Arc::ptr_eq(c, &cell)) {
                touched.push(cell);
            }
        }
    }

    /// Sends for, wakes, announces or forgets each touched connection.
    fn flush(self: &Arc<Self>, touched: &mut Vec<Arc<Cell>>) {
        let now = Instant::now();
        for cell in touched.drain(..) {
            let (half_open, announce, closed) = {
                let mut st = cell.lock();
                self.send(&cell, &mut st, now);
                st.wake();
                let half_open = st.unannounced;
                // Handed out once the peer has sent past its SYN.
                let announce =
                    half_open && matches!(st.conn.state(), State::Connected | State::FinSent);
                if announce {
                    st.unannounced = false;
                }
                let closed = st.conn.closed().is_some() && st.unsent.is_none();
                if closed {
                    st.timer_at = None;
                }
                (half_open, announce, closed)
            };
            if !(announce || closed) {
                continue;
            }
            // Still the table's (not dropped for another with its key).
            let current = {
                let mut conns = lock(&self.conns);
                let current = conns.get(&cell.key).is_some_and(|c| Arc::ptr_eq(c, &cell));
                if current && closed {
                    conns.remove(&cell.key);
                }
                current
            };
            if half_open && current {
                lock(&self.half_open).remove(&cell.key);
            }
            if announce && current && !closed {
                self.announce(cell);
            }
        }
    }

    /// Hands an established inbound connection to the listener, or resets
    /// it when the listener is gone or behind.
    fn announce(self: &Arc<Self>, cell: Arc<Cell>) {
        let addr = cell.key.0;
        let tx = lock(&self.accept).clone();
        let stream = UtpStream::new(Arc::clone(self), Arc::clone(&cell));
        let refused = match tx {
            Some(tx) => tx
                .try_send((PeerStream::new(TransportKind::Utp, stream), addr))
                .err()
                .map(|e| match e {
                    mpsc::error::TrySendError::Full(s) | mpsc::error::TrySendError::Closed(s) => s,
                }),
            None => Some((PeerStream::new(TransportKind::Utp, stream), addr)),
        };
        if let Some(refused) = refused {
            log::debug!("{addr}: uTP connection refused (listener behind or gone)");
            let mut st = cell.lock();
            st.conn.reset();
            self.transmit(&cell, &mut st, Instant::now());
            drop(st);
            drop(refused);
            lock(&self.conns).remove(&cell.key);
        } else {
            log::trace!("{addr}: uTP connection accepted");
        }
    }

    /// Sends what waited for room in the socket.
    fn retry_blocked(&self) {
        let blocked = std::mem::take(&mut *lock(&self.blocked));
        let now = Instant::now();
        for cell in blocked {
            let mut st = cell.lock();
            st.blocked = false;
            self.send(&cell, &mut st, now);
            st.wake();
        }
    }

    /// The endpoint is ending: every connection is reset, its stream woken.
    fn shut_down(&self) {
        lock(&self.accept).take();
        let conns = std::mem::take(&mut *lock(&self.conns));
        let now = Instant::now();
        for cell in conns.into_values() {
            let mut st = cell.lock();
            st.conn.reset();
            self.transmit(&cell, &mut st, now);
            for waker in [st.read_waker.take(), st.write_waker.take()]
                .into_iter()
                .flatten()
            {
                waker.wake();
            }
        }
    }

    /// Forgets a connection whose stream never got out (a failed connect).
    fn abandon(&self, cell: &Arc<Cell>) {
        {
            let mut st = cell.lock();
            if st.conn.closed().is_none() {
                st.conn.reset();
            }
            self.transmit(cell, &mut st, Instant::now());
        }
        lock(&self.conns).remove(&cell.key);
    }
}

/// Resets and forgets the connection of a connect that failed or was given
/// up (its future dropped).
struct ConnectGuard<'a> {
    inner: &'a Arc<Inner>,
    cell: Option<Arc<Cell>>,
}

impl Drop for ConnectGuard<'_> {
    fn drop(&mut self) {
        if let Some(cell) = self.cell.take() {
            self.inner.abandon(&cell);
        }
    }
}
