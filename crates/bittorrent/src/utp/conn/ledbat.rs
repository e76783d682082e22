//! LEDBAT congestion control (BEP 29, RFC 6817): the one-way delay the
//! peer measures for our packets, minus its minimum over the last two
//! minutes (the base delay: the path's delay without our queue), is our
//! queueing delay; the window grows while it is below the target and
//! shrinks above it, by `GAIN * off_target * acked / cwnd`. Like libtorrent,
//! it starts in slow start (the window grows by what is acked) until the
//! delay passes the target or a packet is lost, so that on a fast path
//! (loopback) it reaches the buffer limits in a few round trips. Loss
//! halves the window; a timeout drops it to one packet. Never below one
//! packet.

use std::time::{Duration, Instant};

/// Most the window grows per round trip in steady state, in bytes.
const GAIN: f64 = 3000.0;
/// Initial window, in packets.
const INITIAL_PACKETS: usize = 10;
/// The base delay keeps one minimum per this long, two of them.
const BASE_INTERVAL: Duration = Duration::from_secs(60);

/// `a` is below `b` on the wrapping u32 microsecond clock.
fn earlier(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

/// Minimum of the delay samples, per minute, over two minutes.
#[derive(Debug, Clone)]
struct BaseDelay {
    previous: Option<u32>,
    current: Option<u32>,
    started: Option<Instant>,
}

impl BaseDelay {
    fn update(&mut self, sample: u32, now: Instant) -> u32 {
        let started = *self.started.get_or_insert(now);
        if now.saturating_duration_since(started) >= BASE_INTERVAL {
            self.previous = self.current.take();
            self.started = Some(now);
        }
        let min = |m: Option<u32>| match m {
            Some(m) if !earlier(sample, m) => m,
            _ => sample,
        };
        let current = min(self.current);
        self.current = Some(current);
        match self.previous {
            Some(p) if earlier(p, current) => p,
            _ => current,
        }
    }
}

/// The congestion window.
#[derive(Debug, Clone)]
pub(crate) struct Ledbat {
    cwnd: f64,
    mss: f64,
    max: f64,
    slow_start: bool,
    ssthresh: f64,
    target_us: f64,
    base: BaseDelay,
    recent: [u32; 3],
    samples: usize,
}

impl Ledbat {
    /// A window for packets of `mss` payload bytes, at most `max` bytes.
    pub(crate) fn new(mss: usize, max: usize, target: Duration) -> Self {
        let mss = mss.max(1) as f64;
        Self {
            cwnd: mss * INITIAL_PACKETS as f64,
            mss,
            max: (max as f64).max(mss),
            slow_start: true,
            ssthresh: 0.0,
            target_us: target.as_micros().max(1) as f64,
            base: BaseDelay {
                previous: None,
                current: None,
                started: None,
            },
            recent: [0; 3],
            samples: 0,
        }
    }

    /// The window in bytes.
    pub(crate) fn window(&self) -> usize {
        self.cwnd as usize
    }

    /// Still in slow start.
    pub(crate) fn in_slow_start(&self) -> bool {
        self.slow_start
    }

    /// The queueing delay last estimated (the least of the last three
    /// samples above the base), microseconds.
    pub(crate) fn queuing_delay_us(&self) -> u32 {
        let n = self.samples.min(self.recent.len());
        self.recent[..n].iter().copied().min().unwrap_or(0)
    }

    /// `delay_us` is the peer's timestamp_difference (0: none).
    pub(crate) fn on_delay_sample(&mut self, delay_us: u32, now: Instant) {
        if delay_us == 0 || delay_us == i32::MAX as u32 {
            return;
        }
        let base = self.base.update(delay_us, now);
        let queued = delay_us.wrapping_sub(base);
        let queued = if queued > i32::MAX as u32 { 0 } else { queued };
        self.recent[self.samples % self.recent.len()] = queued;
        self.samples += 1;
    }

    /// `acked` payload bytes were acknowledged; `saturated`: the window,
    /// not the application, limited what was in flight.
    pub(crate) fn on_ack(&mut self, acked: usize, saturated: bool) {
        if acked == 0 || !saturated {
            return;
        }
        let delay = f64::from(self.queuing_delay_us());
        let off_target = ((self.target_us - delay) / self.target_us).clamp(-1.0, 1.0);
        let acked = acked as f64;
        let linear = GAIN * off_target * acked.min(self.cwnd) / self.cwnd;
        if delay > self.target_us && self.slow_start {
            // Past the target in slow start: the last round trip doubled
            // the window, so the queue may hold up to a window. Halve.
            self.slow_start = false;
            self.cwnd = (self.cwnd / 2.0).max(self.mss);
            self.ssthresh = self.cwnd;
        }
        let gain = if !self.slow_start {
            linear
        } else if self.ssthresh > 0.0 && self.cwnd + acked > self.ssthresh {
            self.slow_start = false;
            linear
        } else {
            acked.max(linear)
        };
        self.cwnd = (self.cwnd + gain).clamp(self.mss, self.max);
    }

    /// A packet was lost (once per window): halve.
    pub(crate) fn on_loss(&mut self) {
        self.cwnd = (self.cwnd / 2.0).max(self.mss);
        self.ssthresh = self.cwnd;
        self.slow_start = false;
    }

    /// The retransmission timer fired: one packet, then slow start up to
    /// half of what was.
    pub(crate) fn on_timeout(&mut self) {
        self.ssthresh = (self.cwnd / 2.0).max(self.mss);
        self.cwnd = self.mss;
        self.slow_start = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    fn ledbat() -> Ledbat {
        Ledbat::new(MSS, 1 << 20, Duration::from_millis(100))
    }

    #[test]
    fn slow_start_grows_by_what_is_acked_until_the_target() {
        let now = Instant::now();
        let mut l = ledbat();
        assert_eq!(l.window(), 10 * MSS);
        l.on_delay_sample(5_000, now);
        l.on_ack(10 * MSS, true);
        assert_eq!(l.window(), 20 * MSS);
        // Not saturated: no growth.
        l.on_ack(10 * MSS, false);
        assert_eq!(l.window(), 20 * MSS);
        // Capped at the maximum.
        for _ in 0..20 {
            l.on_ack(1 << 19, true);
        }
        assert_eq!(l.window(), 1 << 20);
        // 150 ms of queue (above the 100 ms target): slow start ends and
        // the window shrinks.
        for _ in 0..3 {
            l.on_delay_sample(155_000, now);
        }
        assert_eq!(l.queuing_delay_us(), 150_000);
        l.on_ack(MSS, true);
        assert!(!l.in_slow_start());
        assert!(l.window() < 1 << 19, "halved, then shrinking");
    }

    #[test]
    fn steady_state_moves_toward_the_target() {
        let now = Instant::now();
        let mut l = ledbat();
        l.on_loss();
        assert_eq!(l.window(), 5 * MSS);
        // Base 1 s (clock offset), queue 50 ms: half the gain.
        l.on_delay_sample(1_000_000, now);
        for _ in 0..3 {
            l.on_delay_sample(1_050_000, now);
        }
        let before = l.window();
        l.on_ack(before, true);
        assert_eq!(l.window(), before + 1500);
        // Queue 200 ms: a full gain down, never below one packet.
        for _ in 0..3 {
            l.on_delay_sample(1_200_000, now);
        }
        for _ in 0..100 {
            l.on_ack(MSS, true);
        }
        assert_eq!(l.window(), MSS);
    }

    #[test]
    fn base_delay_is_the_minimum_of_two_minutes_and_wraps() {
        let t0 = Instant::now();
        let mut b = BaseDelay {
            previous: None,
            current: None,
            started: None,
        };
        assert_eq!(b.update(u32::MAX - 10, t0), u32::MAX - 10);
        // 20 µs later on a wrapped clock is not a new minimum.
        assert_eq!(b.update(9, t0), u32::MAX - 10);
        let t1 = t0 + Duration::from_secs(61);
        assert_eq!(b.update(500, t1), u32::MAX - 10, "the last minute counts");
        let t2 = t1 + Duration::from_secs(61);
        assert_eq!(b.update(700, t2), 500, "older minima are forgotten");
    }

    #[test]
    fn timeout_drops_to_one_packet_and_restarts_slow_start() {
        let mut l = ledbat();
        l.on_timeout();
        assert_eq!((l.window(), l.in_slow_start()), (MSS, true));
        // Below the target with nothing measured, the linear gain (3000
        // bytes for a whole window acked) beats doubling.
        l.on_ack(MSS, true);
        assert_eq!(l.window(), 4 * MSS);
        // Past ssthresh (half of the 10 packets): linear from here.
        l.on_ack(4 * MSS, true);
        assert_eq!((l.window(), l.in_slow_start()), (7 * MSS, false));
    }
}
