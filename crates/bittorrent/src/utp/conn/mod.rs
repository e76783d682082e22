//! One uTP connection (BEP 29), sans-IO: datagrams in, datagrams out,
//! `now` passed in. No sockets, no clocks, no tokio.
#![allow(dead_code)] // until the driver (utp/socket) uses every part

use std::time::{Duration, Instant};

/// The buffer size [`Connection::poll_transmit`] needs.
pub(crate) const MAX_DATAGRAM: usize = 1500;

/// Limits and tunables of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    /// Bytes buffered received-not-read: the window we advertise.
    pub(crate) recv_window: usize,
    /// Bytes written-not-acked at most (writes take less when full).
    pub(crate) send_buffer: usize,
    /// Payload per DATA packet (fits a 1500 MTU over IPv4/IPv6 and UDP).
    pub(crate) max_payload: usize,
    /// LEDBAT's target queueing delay (100 ms per BEP 29).
    pub(crate) target_delay: Duration,
    /// Timeouts in a row after which the connection is given up.
    pub(crate) max_retransmissions: u32,
    /// How long a SYN waits for its answer, resends included.
    pub(crate) connect_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            recv_window: 6 << 20,
            send_buffer: 4 << 20,
            max_payload: 1400,
            target_delay: Duration::from_millis(100),
            max_retransmissions: 12,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// Our SYN is out, no answer yet.
    SynSent,
    /// A SYN came in and we answered; nothing else from the peer yet.
    SynRecv,
    /// Both ways open.
    Connected,
    /// Our FIN is out (the peer may still send).
    FinSent,
    /// Ended; see [`Connection::closed`].
    Closed,
}

/// Why a connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// Orderly: both FINs exchanged and acknowledged.
    Fin,
    /// A RESET came in, or we sent one.
    Reset,
    /// Too many retransmissions without an answer.
    TimedOut,
    /// The SYN was answered by a RESET.
    Refused,
}

/// One uTP connection.
#[derive(Debug)]
pub(crate) struct Connection {
    config: Config,
    recv_id: u16,
    state: State,
    closed: Option<Closed>,
    epoch: Instant,
}

impl Connection {
    /// Outbound: the SYN goes out with `recv_id` as connection_id on the
    /// first [`poll_transmit`](Self::poll_transmit).
    pub(crate) fn connect(config: Config, recv_id: u16, seq_nr: u16, now: Instant) -> Self {
        let _ = seq_nr;
        Self {
            config,
            recv_id,
            state: State::SynSent,
            closed: None,
            epoch: now,
        }
    }

    /// Inbound, from a received SYN datagram; `None` if it is not a SYN.
    pub(crate) fn accept(config: Config, syn: &[u8], seq_nr: u16, now: Instant) -> Option<Self> {
        let _ = (config, syn, seq_nr, now);
        None
    }

    /// The connection_id packets to us carry.
    pub(crate) fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// One received datagram for this connection. Never panics.
    pub(crate) fn handle_datagram(&mut self, datagram: &[u8], now: Instant) {
        let _ = (datagram, now);
    }

    /// The next datagram to send, written into `buf`; `None` when nothing
    /// is due now.
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let _ = (now, buf);
        None
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Timers: retransmission, window probe, keep-alive, connect timeout.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let _ = now;
    }

    /// Copies as much of `data` as the send buffer takes.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let _ = data;
        0
    }

    /// Copies in-order received bytes into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let _ = buf;
        0
    }

    /// Sends FIN once everything written is sent.
    pub(crate) fn close(&mut self, now: Instant) {
        let _ = now;
    }

    /// Ends now: a RESET goes out on the next poll_transmit.
    pub(crate) fn reset(&mut self) {
        self.state = State::Closed;
        self.closed = Some(Closed::Reset);
    }

    /// Where the connection is.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Why it ended, once it has.
    pub(crate) fn closed(&self) -> Option<Closed> {
        self.closed
    }

    /// The handshake is done (connect may return, accept may hand it out).
    pub(crate) fn is_established(&self) -> bool {
        matches!(
            self.state,
            State::SynRecv | State::Connected | State::FinSent
        )
    }

    /// `read` would return bytes, or the end, or the connection ended.
    pub(crate) fn readable(&self) -> bool {
        self.closed.is_some()
    }

    /// `write` would take bytes, or the connection ended.
    pub(crate) fn writable(&self) -> bool {
        self.closed.is_some()
    }

    /// The peer's FIN came and every byte before it was read.
    pub(crate) fn is_eof(&self) -> bool {
        false
    }
}
