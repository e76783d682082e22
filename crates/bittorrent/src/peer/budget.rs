//! A token bucket: what a peer may spend per second, with a burst. Pure:
//! time comes in as `now`.
//!
//! Hand-written rather than `governor`: its GCRA limiter answers "allowed or
//! not" before the work, while a peer actor has already read the message it
//! charges (so it spends into debt and then waits); it takes time from a clock
//! object rather than a `now` argument (the sans-IO tests here pass `now`);
//! it is built for limiters shared across threads; and it brings several
//! crates for what is here a few lines of arithmetic owned by one task.

use std::time::{Duration, Instant};

/// Tokens that refill at `rate` per second up to `burst`. Spending may go
/// into debt; the owner then waits until [`Budget::ready_at`] before taking
/// more work from the same source.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl Budget {
    /// A full bucket.
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        Self {
            rate: f64::from(rate_per_sec.max(1)),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            last: now,
        }
    }

    /// Takes `cost` tokens (possibly into debt).
    pub(crate) fn spend(&mut self, cost: u32, now: Instant) {
        self.refill(now);
        self.tokens -= f64::from(cost);
    }

    /// Takes `cost` tokens if the bucket holds them (never into debt).
    pub(crate) fn try_spend(&mut self, cost: u32, now: Instant) -> bool {
        self.refill(now);
        if self.tokens < f64::from(cost) {
            return false;
        }
        self.tokens -= f64::from(cost);
        true
    }

    /// When the bucket is out of debt: `None` if it is now.
    pub(crate) fn ready_at(&self, now: Instant) -> Option<Instant> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        let tokens = self.tokens + elapsed * self.rate;
        if tokens >= 0.0 {
            return None;
        }
        Some(now + Duration::from_secs_f64(-tokens / self.rate))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_then_debt_waits_for_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(100, 50, t0);
        b.spend(50, t0);
        assert_eq!(b.ready_at(t0), None, "the burst is allowed");
        b.spend(20, t0);
        let ready = b.ready_at(t0).expect("in debt");
        let wait = ready - t0;
        assert!(
            (wait.as_secs_f64() - 0.2).abs() < 1e-6,
            "20 tokens at 100/s: {wait:?}"
        );
        assert_eq!(b.ready_at(ready), None);
    }

    #[test]
    fn try_spend_never_goes_into_debt() {
        let t0 = Instant::now();
        let mut b = Budget::new(10, 3, t0);
        assert_eq!((0..5).filter(|_| b.try_spend(1, t0)).count(), 3);
        assert_eq!(b.ready_at(t0), None);
        assert!(b.try_spend(1, t0 + Duration::from_millis(100)));
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst() {
        let t0 = Instant::now();
        let mut b = Budget::new(10, 5, t0);
        let later = t0 + Duration::from_secs(3600);
        b.spend(5, later);
        assert_eq!(b.ready_at(later), None);
        b.spend(1, later);
        assert!(
            b.ready_at(later).is_some(),
            "an hour idle saves no more than the burst"
        );
    }

    #[test]
    fn sustained_spending_is_held_to_the_rate() {
        let t0 = Instant::now();
        let mut b = Budget::new(1000, 100, t0);
        let mut now = t0;
        let mut spent = 0u32;
        // Spend as fast as allowed for 10 simulated seconds.
        while now < t0 + Duration::from_secs(10) {
            b.spend(7, now);
            spent += 7;
            if let Some(ready) = b.ready_at(now) {
                now = ready;
            }
        }
        let allowed = 1000 * 10 + 100 + 7;
        assert!(spent <= allowed, "spent {spent} > {allowed}");
        assert!(spent >= 1000 * 10, "spent {spent}");
    }
}
