//! One uTP connection (BEP 29), sans-IO: datagrams in, datagrams out,
//! `now` passed in. No sockets, no clocks, no tokio.
//!
//! Parts: [`send`] (the ring of written-not-acked bytes and one record per
//! packet in flight), [`recv`] (in-order bytes, reorder slots, SACK),
//! [`ledbat`] (the congestion window), [`rtt`] (round trip and timeout);
//! `input` handles received packets, `output` builds the next one.
//!
//! Sequence numbers, as libtorrent uses them: the initiator's SYN carries
//! its first `seq_nr`, and its data starts at the next; the acceptor's
//! SYN-ACK (a STATE) carries the `seq_nr` its first data will have, so the
//! initiator sets its `ack_nr` to one before it. A STATE always carries
//! the next sequence number to be sent; a FIN takes one number and STATEs
//! after it carry the FIN's. Connection ids: packets to the initiator
//! carry its `recv_id`, packets to the acceptor `recv_id + 1` (the
//! acceptor's `recv_id`); the SYN carries the initiator's `recv_id`.
#![allow(dead_code)] // until the driver (utp/socket) uses every part

mod fuzz;
mod input;
mod ledbat;
mod output;
mod recv;
mod rtt;
mod send;
mod seq;
#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

pub use fuzz::fuzz_connection;

use crate::utp::demux::{PacketType, HEADER_LEN};
use crate::utp::packet::Packet;

use ledbat::Ledbat;
use recv::RecvQueue;
use rtt::Rtt;
use send::{Kind, SendQueue};

/// The buffer size [`Connection::poll_transmit`] needs.
pub(crate) const MAX_DATAGRAM: usize = 1500;

/// An idle connection sends a STATE this often, to keep NAT state alive.
const KEEPALIVE: Duration = Duration::from_secs(29);

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
    /// Orderly: both FINs exchanged, ours acknowledged, all read.
    Fin,
    /// A RESET came in, or we sent one.
    Reset,
    /// Too many retransmissions without an answer, or no SYN-ACK in time.
    TimedOut,
    /// The SYN was answered by a RESET.
    Refused,
}

/// One uTP connection.
#[derive(Debug)]
pub(crate) struct Connection {
    config: Config,
    state: State,
    closed: Option<Closed>,
    /// Our clock's zero: timestamps are microseconds since it.
    epoch: Instant,
    recv_id: u16,
    send_id: u16,
    send: SendQueue,
    recv: RecvQueue,
    cc: Ledbat,
    rtt: Rtt,
    /// The peer's advertised receive window.
    peer_wnd: usize,
    /// Our clock minus the peer's timestamp in its last packet.
    reply_micro: u32,
    ack_owed: bool,
    sack_owed: bool,
    /// The window we advertised last.
    adv_wnd: usize,
    dup_acks: u32,
    /// No fast resend of sequence numbers before this one.
    fast_resend_seq: u16,
    /// The window is cut at most once per window: for losses after this.
    loss_seq: u16,
    rto_at: Option<Instant>,
    timeouts: u32,
    connect_deadline: Option<Instant>,
    probe_at: Option<Instant>,
    probe_due: bool,
    fin_requested: bool,
    fin_sent: Option<u16>,
    fin_acked: bool,
    reset_pending: bool,
    last_send: Instant,
    /// The one packet shorter than `max_payload` allowed in flight (Nagle).
    small_in_flight: Option<u16>,
    /// As the acceptor: the SYN's sequence number (to answer a resent SYN).
    syn_seq: Option<u16>,
    /// Packets sent again (statistics).
    resent: u64,
}

impl Connection {
    fn new(mut config: Config, ids: (u16, u16), seqs: (u16, u16), now: Instant) -> Self {
        config.max_payload = config.max_payload.clamp(1, MAX_DATAGRAM - HEADER_LEN);
        let (recv_id, send_id) = ids;
        let (seq_nr, ack_nr) = seqs;
        Self {
            send: SendQueue::new(config.send_buffer, seq_nr),
            recv: RecvQueue::new(config.recv_window, config.max_payload, ack_nr),
            cc: Ledbat::new(config.max_payload, config.send_buffer, config.target_delay),
            config,
            state: State::SynSent,
            closed: None,
            epoch: now,
            recv_id,
            send_id,
            rtt: Rtt::default(),
            peer_wnd: 0,
            reply_micro: 0,
            ack_owed: false,
            sack_owed: false,
            adv_wnd: 0,
            dup_acks: 0,
            fast_resend_seq: seq_nr,
            loss_seq: seq_nr.wrapping_sub(1),
            rto_at: None,
            timeouts: 0,
            connect_deadline: None,
            probe_at: None,
            probe_due: false,
            fin_requested: false,
            fin_sent: None,
            fin_acked: false,
            reset_pending: false,
            last_send: now,
            small_in_flight: None,
            syn_seq: None,
            resent: 0,
        }
    }

    /// Outbound: `recv_id` is the id packets to us carry (random, unique
    /// per remote address); the SYN goes out with it as connection_id on
    /// the first [`poll_transmit`](Self::poll_transmit).
    pub(crate) fn connect(config: Config, recv_id: u16, seq_nr: u16, now: Instant) -> Self {
        let deadline = now + config.connect_timeout;
        let mut c = Self::new(config, (recv_id, recv_id.wrapping_add(1)), (seq_nr, 0), now);
        c.send.push_pending(Kind::Syn, now);
        c.fast_resend_seq = seq_nr.wrapping_add(1);
        c.loss_seq = seq_nr;
        c.connect_deadline = Some(deadline);
        c
    }

    /// Inbound, from a received SYN (the whole datagram); `None` if it is
    /// not a SYN. The SYN-ACK goes out on the first `poll_transmit`.
    pub(crate) fn accept(config: Config, syn: &[u8], seq_nr: u16, now: Instant) -> Option<Self> {
        let h = Packet::parse(syn)?.header;
        if h.packet_type != PacketType::Syn {
            return None;
        }
        let id = h.connection_id;
        let mut c = Self::new(config, (id.wrapping_add(1), id), (seq_nr, h.seq_nr), now);
        c.state = State::SynRecv;
        c.syn_seq = Some(h.seq_nr);
        c.peer_wnd = h.wnd_size as usize;
        c.reply_micro = c.now_us(now).wrapping_sub(h.timestamp_us);
        c.ack_owed = true;
        Some(c)
    }

    /// The connection_id packets to us carry (a resent SYN carries one
    /// less: see [`is_resent_syn`](Self::is_resent_syn)).
    pub(crate) fn recv_id(&self) -> u16 {
        self.recv_id
    }

    /// Microseconds since our epoch, wrapping.
    fn now_us(&self, now: Instant) -> u32 {
        now.saturating_duration_since(self.epoch).as_micros() as u32
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed.is_some() {
            return None;
        }
        let keepalive = self.is_established().then_some(self.last_send + KEEPALIVE);
        [self.connect_deadline, self.rto_at, self.probe_at, keepalive]
            .into_iter()
            .flatten()
            .min()
    }

    /// Timers: connect timeout, retransmission, window probe, keep-alive.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.closed.is_some() {
            return;
        }
        if self.connect_deadline.is_some_and(|d| now >= d) {
            self.end(Closed::TimedOut);
            return;
        }
        if self.rto_at.is_some_and(|t| now >= t) {
            self.on_rto();
        }
        if self.probe_at.is_some_and(|t| now >= t) {
            self.probe_at = None;
            self.probe_due = true;
        }
        if self.is_established() && now >= self.last_send + KEEPALIVE {
            self.ack_owed = true;
        }
    }

    /// The retransmission timer fired.
    fn on_rto(&mut self) {
        self.rto_at = None;
        if self.send.outstanding() == 0 {
            return;
        }
        self.rtt.back_off();
        self.send.mark_all_resend();
        self.dup_acks = 0;
        if self.state == State::SynSent {
            return; // the connect deadline decides
        }
        self.timeouts += 1;
        if self.timeouts > self.config.max_retransmissions {
            self.end(Closed::TimedOut);
            return;
        }
        self.cc.on_timeout();
        self.loss_seq = self.send.next_seq().wrapping_sub(1);
        self.fast_resend_seq = self.send.next_seq();
    }

    fn end(&mut self, why: Closed) {
        self.state = State::Closed;
        self.closed = Some(why);
        self.rto_at = None;
        self.probe_at = None;
        self.connect_deadline = None;
    }

    /// Copies as much of `data` as the send buffer takes; 0 when full (or
    /// closing).
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        if self.closed.is_some() || self.fin_requested {
            return 0;
        }
        self.send.write(data)
    }

    /// Copies in-order received bytes into `buf`; 0 with `is_eof()` at the
    /// end, 0 otherwise when nothing is there yet.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.recv.read(buf);
        self.check_done();
        n
    }

    /// Sends FIN once everything written is sent.
    pub(crate) fn close(&mut self, now: Instant) {
        let _ = now;
        if self.closed.is_none() {
            self.fin_requested = true;
        }
    }

    /// Ends now: a RESET goes out on the next poll_transmit.
    pub(crate) fn reset(&mut self) {
        if self.closed.is_none() {
            self.reset_pending = self.state != State::SynSent || self.send.max_transmissions() > 0;
            self.end(Closed::Reset);
        }
    }

    /// The peer's address answered with ICMP "port unreachable". A connect
    /// still waiting for its SYN's answer is refused (true). A connection
    /// past the handshake ignores it (false): a stray or forged ICMP error
    /// must not end it, and its own timeouts end it if the peer is gone.
    pub(crate) fn on_port_unreachable(&mut self) -> bool {
        if self.state == State::SynSent && self.closed.is_none() {
            self.end(Closed::Refused);
            true
        } else {
            false
        }
    }

    /// Both FINs through, ours acknowledged and every byte read: ended.
    fn check_done(&mut self) {
        if self.closed.is_none() && self.fin_acked && self.recv.is_eof() {
            self.end(Closed::Fin);
        }
    }

    /// Where the connection is.
    pub(crate) fn state(&self) -> State {
        self.state
    }

    /// Why it ended, once it has (the endpoint then drops it after
    /// draining `poll_transmit`).
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
        self.recv.ready() > 0 || self.recv.fin_reached() || self.closed.is_some()
    }

    /// `write` would take bytes, or the connection ended.
    pub(crate) fn writable(&self) -> bool {
        self.closed.is_some() || (!self.fin_requested && self.send.free() > 0)
    }

    /// The peer's FIN came and every byte before it was read.
    pub(crate) fn is_eof(&self) -> bool {
        self.recv.is_eof()
    }

    /// `datagram` is a resend of the SYN this connection accepted (it
    /// carries `recv_id - 1`); the endpoint hands it here so the SYN-ACK
    /// is sent again.
    pub(crate) fn is_resent_syn(&self, datagram: &[u8]) -> bool {
        Packet::parse(datagram).is_some_and(|p| {
            p.header.packet_type == PacketType::Syn
                && p.header.connection_id == self.send_id
                && Some(p.header.seq_nr) == self.syn_seq
        })
    }

    /// The congestion window, in bytes (for tests and statistics).
    pub(crate) fn congestion_window(&self) -> usize {
        self.cc.window()
    }

    /// Packets sent more than once so far (SYN resends included).
    pub(crate) fn retransmissions(&self) -> u64 {
        self.resent
    }

    /// The queueing delay LEDBAT last estimated, microseconds.
    pub(crate) fn queuing_delay_us(&self) -> u32 {
        self.cc.queuing_delay_us()
    }
}
