//! A deterministic simulation of two connections over a link: simulated
//! time (`now` advanced by the harness to the next event), a seeded
//! xorshift generator, one-way delay, loss, reordering (random extra
//! delay) and a bandwidth cap with an unbounded queue.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use crate::utp::conn::{Closed, Config, Connection, MAX_DATAGRAM};

/// A small deterministic generator (xorshift64*).
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// True with probability `p`.
    pub(crate) fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

/// One direction of the path.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct LinkConfig {
    pub(crate) delay: Duration,
    /// Extra delay, uniform in `0..jitter`: reorders packets.
    pub(crate) jitter: Duration,
    pub(crate) loss: f64,
    /// Bytes per second; `None`: unlimited.
    pub(crate) rate: Option<u64>,
}

/// A link: datagrams in flight, ordered by arrival.
pub(crate) struct Link {
    config: LinkConfig,
    busy_until: Option<Instant>,
    queue: BinaryHeap<Reverse<(Instant, u64, Vec<u8>)>>,
    count: u64,
    /// Sent, dropped, and the sum and count of queueing delays (µs) of
    /// packets sent after `measure_from`.
    pub(crate) sent: u64,
    pub(crate) dropped: u64,
    pub(crate) measure_from: Option<Instant>,
    pub(crate) queued_us: (u64, u64),
}

impl Link {
    pub(crate) fn new(config: LinkConfig) -> Self {
        Self {
            config,
            busy_until: None,
            queue: BinaryHeap::new(),
            count: 0,
            sent: 0,
            dropped: 0,
            measure_from: None,
            queued_us: (0, 0),
        }
    }

    pub(crate) fn send(&mut self, now: Instant, datagram: &[u8], rng: &mut Rng) {
        self.sent += 1;
        let mut depart = now;
        if let Some(rate) = self.config.rate {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            let wire = Duration::from_nanos(datagram.len() as u64 * 1_000_000_000 / rate);
            depart = start + wire;
            self.busy_until = Some(depart);
            if self.measure_from.is_some_and(|m| now >= m) {
                self.queued_us.0 += (start - now).as_micros() as u64;
                self.queued_us.1 += 1;
            }
        }
        if rng.chance(self.config.loss) {
            self.dropped += 1;
            return;
        }
        let jitter = match self.config.jitter.as_nanos() as u64 {
            0 => Duration::ZERO,
            j => Duration::from_nanos(rng.next_u64() % j),
        };
        let at = depart + self.config.delay + jitter;
        self.count += 1;
        self.queue
            .push(Reverse((at, self.count, datagram.to_vec())));
    }

    pub(crate) fn next_arrival(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _, _))| *at)
    }

    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.next_arrival()? > now {
            return None;
        }
        self.queue.pop().map(|Reverse((_, _, d))| d)
    }
}

/// Two connections, the initiator `a` and the acceptor `b`, over a link
/// each way; `a` sends `data` to `b` then closes, `b` closes at the end.
pub(crate) struct Pair {
    pub(crate) now: Instant,
    pub(crate) start: Instant,
    pub(crate) rng: Rng,
    pub(crate) a: Connection,
    pub(crate) b: Option<Connection>,
    pub(crate) ab: Link,
    pub(crate) ba: Link,
    pub(crate) config: Config,
    buf: Vec<u8>,
    /// `b` reads only while this is true.
    pub(crate) b_reads: bool,
    pub(crate) received: Vec<u8>,
    /// Largest queueing delay `a` estimated, µs.
    pub(crate) max_queuing_us: u32,
    /// Wall time spent inside the two connections' calls (for the bench).
    pub(crate) core: Duration,
    /// `a`'s congestion window: largest, and how often it shrank.
    pub(crate) max_cwnd: usize,
    pub(crate) cwnd_cuts: usize,
    last_cwnd: usize,
}

impl Pair {
    pub(crate) fn new(config: Config, ab: LinkConfig, ba: LinkConfig, seed: u64) -> Self {
        let start = Instant::now();
        Self {
            now: start,
            start,
            rng: Rng::new(seed),
            a: Connection::connect(config.clone(), 1000, 65_500, start),
            b: None,
            ab: Link::new(ab),
            ba: Link::new(ba),
            config,
            buf: vec![0; MAX_DATAGRAM],
            b_reads: true,
            received: Vec::new(),
            max_queuing_us: 0,
            core: Duration::ZERO,
            max_cwnd: 0,
            cwnd_cuts: 0,
            last_cwnd: 0,
        }
    }

    /// Both send what they have.
    pub(crate) fn transmit(&mut self) {
        loop {
            let t = Instant::now();
            let sent = self.a.poll_transmit(self.now, &mut self.buf);
            self.core += t.elapsed();
            let Some(n) = sent else { break };
            self.ab.send(self.now, &self.buf[..n], &mut self.rng);
        }
        while let Some(b) = &mut self.b {
            let t = Instant::now();
            let sent = b.poll_transmit(self.now, &mut self.buf);
            self.core += t.elapsed();
            let Some(n) = sent else { break };
            self.ba.send(self.now, &self.buf[..n], &mut self.rng);
        }
    }

    fn next_event(&self) -> Option<Instant> {
        [
            self.ab.next_arrival(),
            self.ba.next_arrival(),
            self.a.poll_timeout(),
            self.b.as_ref().and_then(|b| b.poll_timeout()),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Advances to the next event and delivers what is due, in batches.
    /// False when nothing is left to happen.
    pub(crate) fn step(&mut self) -> bool {
        self.transmit();
        let Some(next) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(next);
        while let Some(d) = self.ab.pop_due(self.now) {
            match &mut self.b {
                Some(b) => {
                    let t = Instant::now();
                    b.handle_datagram(&d, self.now);
                    self.core += t.elapsed();
                }
                None => {
                    self.b = Connection::accept(self.config.clone(), &d, 30_000, self.now);
                }
            }
        }
        while let Some(d) = self.ba.pop_due(self.now) {
            let t = Instant::now();
            self.a.handle_datagram(&d, self.now);
            self.core += t.elapsed();
        }
        self.max_queuing_us = self.max_queuing_us.max(self.a.queuing_delay_us());
        let cwnd = self.a.congestion_window();
        self.cwnd_cuts += usize::from(cwnd < self.max_cwnd.min(self.last_cwnd));
        self.last_cwnd = cwnd;
        self.max_cwnd = self.max_cwnd.max(cwnd);
        if self.a.poll_timeout().is_some_and(|t| t <= self.now) {
            self.a.handle_timeout(self.now);
        }
        if let Some(b) = &mut self.b {
            if b.poll_timeout().is_some_and(|t| t <= self.now) {
                b.handle_timeout(self.now);
            }
        }
        true
    }

    /// `b` reads what it can; closes at the end.
    fn read(&mut self) {
        let Some(b) = &mut self.b else {
            return;
        };
        if !self.b_reads {
            return;
        }
        let mut chunk = [0u8; 16 << 10];
        loop {
            let t = Instant::now();
            let n = b.read(&mut chunk);
            self.core += t.elapsed();
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&chunk[..n]);
        }
        if b.is_eof() {
            b.close(self.now);
        }
    }

    /// One round of the applications and the network: `a` writes from
    /// `data[*written..]` (and closes when all is written), `b` reads.
    /// Returns how both ended once they have.
    pub(crate) fn pump(&mut self, data: &[u8], written: &mut usize) -> Option<(Closed, Closed)> {
        let t = Instant::now();
        *written += self.a.write(&data[*written..]);
        self.core += t.elapsed();
        if *written == data.len() {
            self.a.close(self.now);
        }
        self.read();
        if let (Some(a), Some(b)) = (self.a.closed(), self.b.as_ref().and_then(|b| b.closed())) {
            return Some((a, b));
        }
        assert!(self.step(), "stuck at {:?}", self.now - self.start);
        None
    }

    /// Sends `data` from `a` to `b` and closes both; returns how each
    /// ended. Panics if simulated time passes `limit`.
    pub(crate) fn transfer(&mut self, data: &[u8], limit: Duration) -> (Closed, Closed) {
        let mut written = 0;
        loop {
            if let Some(ends) = self.pump(data, &mut written) {
                return ends;
            }
            assert!(
                self.now - self.start < limit,
                "not done in {limit:?}: {} of {} bytes",
                self.received.len(),
                data.len()
            );
        }
    }
}
