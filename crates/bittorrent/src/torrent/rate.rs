//! Transfer-rate measurement over a short sliding window.

use std::time::{Duration, Instant};

/// Bytes per second over the last few one-second slots.
#[derive(Debug, Clone)]
pub struct RateMeter {
    slots: [u64; Self::SLOTS],
    current: usize,
    slot_start: Instant,
    total: u64,
}

impl RateMeter {
    const SLOTS: usize = 5;
    const SLOT: Duration = Duration::from_secs(1);

    /// An empty meter starting now.
    pub fn new(now: Instant) -> Self {
        Self {
            slots: [0; Self::SLOTS],
            current: 0,
            slot_start: now,
            total: 0,
        }
    }

    /// Records `bytes` transferred at `now`.
    pub fn add(&mut self, bytes: u64, now: Instant) {
        self.advance(now);
        self.slots[self.current] += bytes;
        self.total += bytes;
    }

    /// Bytes ever recorded.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Average rate in bytes per second over the window ending at `now`
    /// (the current partial slot counts for its elapsed time).
    pub fn rate(&mut self, now: Instant) -> f64 {
        self.advance(now);
        let partial = now.duration_since(self.slot_start).as_secs_f64();
        let full = (Self::SLOTS - 1) as f64 * Self::SLOT.as_secs_f64();
        let sum: u64 = self.slots.iter().sum();
        sum as f64 / (full + partial.max(0.001))
    }

    fn advance(&mut self, now: Instant) {
        let mut steps = 0;
        while now.duration_since(self.slot_start) >= Self::SLOT && steps < Self::SLOTS {
            self.current = (self.current + 1) % Self::SLOTS;
            self.slots[self.current] = 0;
            self.slot_start += Self::SLOT;
            steps += 1;
        }
        if now.duration_since(self.slot_start) >= Self::SLOT {
            // Idle for longer than the whole window.
            self.slot_start = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_rate_is_measured() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        for i in 0..50 {
            m.add(100_000, t0 + Duration::from_millis(100 * i));
        }
        let r = m.rate(t0 + Duration::from_millis(4999));
        assert!((r - 1_000_000.0).abs() < 50_000.0, "rate {r}");
        assert_eq!(m.total(), 5_000_000);
    }

    #[test]
    fn rate_decays_to_zero_when_idle() {
        let t0 = Instant::now();
        let mut m = RateMeter::new(t0);
        m.add(1_000_000, t0);
        assert!(m.rate(t0 + Duration::from_millis(500)) > 0.0);
        assert_eq!(m.rate(t0 + Duration::from_secs(30)), 0.0);
    }
}
