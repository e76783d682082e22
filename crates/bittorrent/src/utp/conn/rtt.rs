//! Round-trip time and retransmission timeout, as BEP 29 gives them:
//! `rtt += (sample - rtt) / 8`, `rtt_var += (|rtt - sample| - rtt_var) / 4`,
//! `timeout = max(rtt + 4 * rtt_var, 500 ms)`, doubled per timeout in a
//! row, at most 60 s.

use std::time::Duration;

const MIN_RTO_US: u64 = 500_000;
const INITIAL_RTO_US: u64 = 1_000_000;
const MAX_RTO_US: u64 = 60_000_000;

/// The estimator.
#[derive(Debug, Clone, Default)]
pub(crate) struct Rtt {
    /// Smoothed round trip and its variance, microseconds; `None` before
    /// the first sample.
    est: Option<(u64, u64)>,
    backoff: u32,
}

impl Rtt {
    /// One round trip of a packet sent once.
    pub(crate) fn sample(&mut self, us: u64) {
        self.est = Some(match self.est {
            None => (us, us / 2),
            Some((rtt, var)) => {
                let delta = rtt.abs_diff(us);
                let var = (var * 3 + delta) / 4;
                let rtt = (rtt * 7 + us) / 8;
                (rtt, var)
            }
        });
        self.backoff = 0;
    }

    /// A timeout: the next one waits twice as long.
    pub(crate) fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(16);
    }

    /// The smoothed round trip, if measured.
    pub(crate) fn srtt_us(&self) -> Option<u64> {
        self.est.map(|(rtt, _)| rtt)
    }

    /// The retransmission timeout now.
    pub(crate) fn rto(&self) -> Duration {
        let base = self
            .est
            .map_or(INITIAL_RTO_US, |(rtt, var)| (rtt + 4 * var).max(MIN_RTO_US));
        Duration::from_micros(base.saturating_mul(1 << self.backoff).min(MAX_RTO_US))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_bep_29() {
        let mut r = Rtt::default();
        assert_eq!(r.rto(), Duration::from_secs(1));
        r.sample(200_000);
        // rtt 200 ms, var 100 ms: 600 ms.
        assert_eq!(r.rto(), Duration::from_millis(600));
        r.sample(200_000);
        assert_eq!(r.srtt_us(), Some(200_000));
        // var 75 ms: 500 ms.
        assert_eq!(r.rto(), Duration::from_millis(500));
        let mut r = Rtt::default();
        r.sample(1000);
        assert_eq!(r.rto(), Duration::from_millis(500), "never below 500 ms");
        r.back_off();
        r.back_off();
        assert_eq!(r.rto(), Duration::from_secs(2));
        for _ in 0..20 {
            r.back_off();
        }
        assert_eq!(r.rto(), Duration::from_secs(60));
        r.sample(1000);
        assert_eq!(r.rto(), Duration::from_millis(500));
    }
}
