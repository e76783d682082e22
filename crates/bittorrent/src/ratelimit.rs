//! Transfer-rate limiting: token buckets, one per direction at two levels,
//! the session's (every torrent together) and each torrent's.
//!
//! A bucket is charged *after* the bytes moved (a block's size is known
//! once its message is read) and may go into debt; the link that charged
//! it then waits until its own charge is paid (its turn, see [`Pause`])
//! before reading (or sending) again, so links take turns in the order
//! they charged. A peer's payload is charged to its torrent's bucket and
//! the session's, and it waits for the later of the two. Over any window
//! the bytes moved stay within `rate × window + burst` plus one charge per
//! link, whatever the size of the charges.
//!
//! [`Bucket`] is the arithmetic, pure, with `now` passed in; [`Limiter`]
//! shares one between tasks and, unlimited, costs one atomic load per
//! charge; [`LinkLimits`] is what a peer or web seed holds.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::limits::RateLimits;

/// What a bucket holds at most, as time at its rate: how much a link may
/// take at once after idling.
const BURST_TIME: Duration = Duration::from_millis(100);
/// The least a bucket holds at most (one block and some).
const MIN_BURST: f64 = 32.0 * 1024.0;
/// The longest a link waits before looking at its bucket again: a limit
/// raised (or lifted) at run time is noticed this soon.
pub(crate) const MAX_PAUSE: Duration = Duration::from_millis(100);

/// A token bucket of bytes: fills at `rate` per second up to `burst`, and
/// may be charged into debt (negative level).
#[derive(Debug, Clone)]
pub(crate) struct Bucket {
    /// Bytes per second, at least 1.
    rate: u64,
    /// The most it holds.
    burst: f64,
    /// Bytes it holds now; negative is debt.
    level: f64,
    /// When `level` was last brought up to date.
    last: Instant,
}

impl Bucket {
    /// A full bucket filling at `rate` bytes per second (at least 1).
    pub(crate) fn new(rate: u64, now: Instant) -> Self {
        let rate = rate.max(1);
        let burst = burst(rate);
        Self {
            rate,
            burst,
            level: burst,
            last: now,
        }
    }

    /// Bytes per second.
    pub(crate) fn rate(&self) -> u64 {
        self.rate
    }

    /// Changes the rate: what was earned at the old rate stays (up to the
    /// new burst), a debt stays and is paid at the new rate.
    pub(crate) fn set_rate(&mut self, rate: u64, now: Instant) {
        self.refill(now);
        self.rate = rate.max(1);
        self.burst = burst(self.rate);
        self.level = self.level.min(self.burst);
    }

    /// Takes `bytes` (which have moved); the level may go negative.
    pub(crate) fn charge(&mut self, bytes: u64, now: Instant) {
        self.refill(now);
        self.level -= bytes as f64;
    }

    /// When the debt is paid; `None` when there is none (less than a byte
    /// is none).
    pub(crate) fn ready_at(&mut self, now: Instant) -> Option<Instant> {
        self.refill(now);
        (self.level <= -1.0).then(|| now + Duration::from_secs_f64(-self.level / self.rate as f64))
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.level = (self.level + elapsed * self.rate as f64).min(self.burst);
        self.last = self.last.max(now);
    }
}

fn burst(rate: u64) -> f64 {
    (rate as f64 * BURST_TIME.as_secs_f64()).max(MIN_BURST)
}

/// One direction's bucket, shared by every link it limits; unlimited when
/// it holds none. Cloning shares it.
#[derive(Debug, Clone, Default)]
pub(crate) struct Limiter {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Whether `bucket` holds one: read without the lock on every charge.
    limited: AtomicBool,
    bucket: Mutex<Option<Bucket>>,
}

impl Limiter {
    /// A limiter at `rate` bytes per second; `None` or 0 is unlimited.
    pub(crate) fn new(rate: Option<u64>) -> Self {
        let limiter = Self::default();
        limiter.set(rate, Instant::now());
        limiter
    }

    /// Sets the rate; `None` or 0 lifts the limit (and forgets any debt).
    pub(crate) fn set(&self, rate: Option<u64>, now: Instant) {
        let mut bucket = self.lock();
        match rate.filter(|&r| r > 0) {
            Some(rate) => match bucket.as_mut() {
                Some(b) => b.set_rate(rate, now),
                None => *bucket = Some(Bucket::new(rate, now)),
            },
            None => *bucket = None,
        }
        self.shared
            .limited
            .store(bucket.is_some(), Ordering::Relaxed);
    }

    /// The rate in force; `None` is unlimited.
    pub(crate) fn rate(&self) -> Option<u64> {
        self.lock().as_ref().map(Bucket::rate)
    }

    /// Charges `bytes`; returns when the debt is paid, if there is one.
    pub(crate) fn charge(&self, bytes: u64, now: Instant) -> Option<Instant> {
        if !self.shared.limited.load(Ordering::Relaxed) {
            return None;
        }
        let mut bucket = self.lock();
        let bucket = bucket.as_mut()?;
        bucket.charge(bytes, now);
        bucket.ready_at(now)
    }

    /// When the debt is paid, if there is one.
    pub(crate) fn ready_at(&self, now: Instant) -> Option<Instant> {
        if !self.shared.limited.load(Ordering::Relaxed) {
            return None;
        }
        self.lock().as_mut()?.ready_at(now)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Bucket>> {
        // The bucket is plain numbers, always consistent: a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.shared
            .bucket
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// A download and an upload limiter: a session's or a torrent's.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimiter {
    download: Limiter,
    upload: Limiter,
}

impl RateLimiter {
    /// Limiters at `limits`.
    pub(crate) fn new(limits: RateLimits) -> Self {
        Self {
            download: Limiter::new(limits.download),
            upload: Limiter::new(limits.upload),
        }
    }

    /// Changes both limits; links see the change at their next charge, or
    /// within [`MAX_PAUSE`] if waiting.
    pub(crate) fn set(&self, limits: RateLimits, now: Instant) {
        self.download.set(limits.download, now);
        self.upload.set(limits.upload, now);
    }

    /// The limits in force (a limit of 0 reads as `None`, unlimited).
    pub(crate) fn limits(&self) -> RateLimits {
        RateLimits {
            download: self.download.rate(),
            upload: self.upload.rate(),
        }
    }
}

/// The limiters one link (a peer connection, a web seed) is charged to:
/// its torrent's and its session's.
#[derive(Debug, Clone, Default)]
pub(crate) struct LinkLimits {
    session: RateLimiter,
    torrent: RateLimiter,
}

impl LinkLimits {
    /// A session's links, not yet of any torrent.
    pub(crate) fn session(session: RateLimiter) -> Self {
        Self {
            session,
            torrent: RateLimiter::default(),
        }
    }

    /// These limits under a torrent's `torrent` limiter.
    pub(crate) fn with_torrent(&self, torrent: RateLimiter) -> Self {
        Self {
            session: self.session.clone(),
            torrent,
        }
    }

    /// The torrent's own limits in force.
    pub(crate) fn torrent_limits(&self) -> RateLimits {
        self.torrent.limits()
    }

    /// Charges `bytes` received; returns when the debt they leave is paid
    /// (the link's turn to read again), if they leave one.
    pub(crate) fn received(&self, bytes: u64, now: Instant) -> Option<Instant> {
        let session = self.session.download.charge(bytes, now);
        session.max(self.torrent.download.charge(bytes, now))
    }

    /// Charges `bytes` sent; returns when the link may send again.
    pub(crate) fn sent(&self, bytes: u64, now: Instant) -> Option<Instant> {
        let session = self.session.upload.charge(bytes, now);
        session.max(self.torrent.upload.charge(bytes, now))
    }

    /// When the download buckets' whole debt is paid, if they are in debt.
    pub(crate) fn receive_ready_at(&self, now: Instant) -> Option<Instant> {
        let session = self.session.download.ready_at(now);
        session.max(self.torrent.download.ready_at(now))
    }

    /// When the upload buckets' whole debt is paid.
    pub(crate) fn send_ready_at(&self, now: Instant) -> Option<Instant> {
        let session = self.session.upload.ready_at(now);
        session.max(self.torrent.upload.ready_at(now))
    }
}

/// A link's wait for its turn: set when its charge left debt, over when
/// that debt is paid. Links wait for their own charge, not for the bucket
/// to be out of debt, so they take turns in the order they charged (no
/// race at the moment the debt is paid, no link starved). A long wait is
/// looked at again every [`MAX_PAUSE`]: if the limit was raised or lifted
/// meanwhile, the whole debt may be paid sooner than the turn, and the
/// wait ends then.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Pause {
    /// When the link's own charge is paid.
    turn: Option<Instant>,
    /// When to look at the buckets again.
    look: Option<Instant>,
}

impl Pause {
    /// Waits for `turn`, if set (the result of a charge).
    pub(crate) fn set(&mut self, turn: Option<Instant>, now: Instant) {
        self.turn = turn;
        self.look = turn.map(|_| now + MAX_PAUSE);
    }

    /// Until when the link waits (`None`: it need not). `paid_at` tells
    /// when the buckets' whole debt is paid, asked at most every
    /// [`MAX_PAUSE`].
    pub(crate) fn until(
        &mut self,
        now: Instant,
        paid_at: impl FnOnce(Instant) -> Option<Instant>,
    ) -> Option<Instant> {
        let (turn, look) = (self.turn?, self.look?);
        if turn <= now {
            self.turn = None;
            return None;
        }
        if look <= now {
            match paid_at(now) {
                Some(paid) if paid > now => self.turn = Some(turn.min(paid)),
                _ => self.turn = None,
            }
            self.look = Some(now + MAX_PAUSE);
        }
        Some(self.turn?.min(self.look?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MB: u64 = 1_000_000;

    #[test]
    fn a_bucket_starts_full_and_pays_debt_at_its_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(MB, t0);
        // 100 ms of burst: 100 kB may go at once.
        b.charge(100_000, t0);
        assert_eq!(b.ready_at(t0), None);
        // 50 kB more is 50 ms of debt.
        b.charge(50_000, t0);
        let ready = b.ready_at(t0).unwrap();
        assert_eq!((ready - t0).as_millis(), 50);
        assert_eq!(b.ready_at(t0 + Duration::from_millis(50)), None);
    }

    #[test]
    fn a_bucket_never_holds_more_than_its_burst() {
        let t0 = Instant::now();
        let mut b = Bucket::new(MB, t0);
        // An hour idle earns 100 ms worth, not an hour's.
        let later = t0 + Duration::from_secs(3600);
        b.charge(100_000 + 10_000, later);
        let ready = b.ready_at(later).unwrap();
        assert_eq!((ready - later).as_millis(), 10);
    }

    #[test]
    fn over_a_long_run_the_rate_holds_whatever_the_charge_sizes() {
        let t0 = Instant::now();
        let mut b = Bucket::new(2 * MB, t0);
        let mut now = t0;
        let mut moved = 0u64;
        // A greedy link: moves a 100 kB run whenever not in debt.
        while now < t0 + Duration::from_secs(10) {
            match b.ready_at(now) {
                Some(at) => now = at,
                None => {
                    b.charge(100_000, now);
                    moved += 100_000;
                }
            }
        }
        // 10 s at 2 MB/s, plus the burst and one charge past it.
        let expected = 20 * MB;
        assert!(moved >= expected, "{moved}");
        assert!(moved <= expected + 200_000 + 100_000, "{moved}");
    }

    #[test]
    fn a_rate_change_keeps_the_debt_and_pays_it_at_the_new_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(MB, t0);
        b.charge(100_000 + MB, t0); // 1 s of debt at 1 MB/s
        b.set_rate(10 * MB, t0);
        let ready = b.ready_at(t0).unwrap();
        assert_eq!((ready - t0).as_millis(), 100);
        // Lowered, the burst shrinks with it.
        let mut b = Bucket::new(10 * MB, t0);
        b.set_rate(MB, t0);
        b.charge(100_000 + 1000, t0);
        assert!(b.ready_at(t0).is_some());
    }

    #[test]
    fn an_unlimited_limiter_never_makes_a_link_wait() {
        let t0 = Instant::now();
        let limiter = Limiter::new(None);
        assert_eq!(limiter.charge(u64::MAX / 2, t0), None);
        assert_eq!(limiter.rate(), None);
        // Zero is unlimited too (as in qBittorrent's API).
        let limiter = Limiter::new(Some(0));
        assert_eq!(limiter.charge(10 * MB, t0), None);
        assert_eq!(limiter.rate(), None);
    }

    #[test]
    fn lifting_a_limit_forgets_the_debt_and_setting_one_starts_full() {
        let t0 = Instant::now();
        let limiter = Limiter::default();
        limiter.set(Some(MB), t0);
        assert!(limiter.charge(10 * MB, t0).is_some());
        limiter.set(None, t0);
        assert_eq!(limiter.ready_at(t0), None);
        limiter.set(Some(MB), t0);
        assert_eq!(limiter.charge(50_000, t0), None);
        assert_eq!(limiter.rate(), Some(MB));
    }

    #[test]
    fn a_link_waits_for_the_later_of_its_torrent_and_session() {
        let t0 = Instant::now();
        let ms = |at: Instant| (at - t0).as_millis();
        let session = RateLimiter::new(RateLimits {
            download: Some(10 * MB),
            upload: None,
        });
        let torrent = RateLimiter::new(RateLimits {
            download: Some(MB),
            upload: Some(MB),
        });
        let link = LinkLimits::session(session.clone()).with_torrent(torrent.clone());
        // 150 kB: 50 ms of debt with the torrent, none with the session.
        assert_eq!(link.received(150_000, t0).map(ms), Some(50));
        // 1.1 MB more: the torrent's turn comes after 1.15 s.
        assert_eq!(link.received(1_100_000, t0).map(ms), Some(1150));
        // The session was charged too: 1.25 MB, 250 kB past its 1 MB burst.
        let session_only = LinkLimits::session(session);
        assert_eq!(session_only.receive_ready_at(t0).map(ms), Some(25));
        // Upload is the torrent's alone.
        assert_eq!(link.sent(100_000, t0), None);
        assert!(link.send_ready_at(t0).is_none());
        assert!(link.sent(50_000, t0).is_some());
        assert_eq!(
            torrent.limits(),
            RateLimits {
                download: Some(MB),
                upload: Some(MB)
            }
        );
        assert_eq!(link.torrent_limits(), torrent.limits());
    }

    #[test]
    fn links_take_turns_in_the_order_they_charged() {
        let t0 = Instant::now();
        let ms = |at: Instant| (at - t0).as_millis();
        let limiter = RateLimiter::new(RateLimits {
            download: Some(MB),
            upload: None,
        });
        let (a, b) = (
            LinkLimits::session(limiter.clone()),
            LinkLimits::session(limiter),
        );
        // The burst (100 kB) is spent; then each 50 kB is 50 ms.
        assert_eq!(a.received(100_000, t0), None);
        let (mut pa, mut pb) = (Pause::default(), Pause::default());
        pa.set(a.received(50_000, t0), t0);
        pb.set(b.received(50_000, t0), t0);
        let at = |m: u64| t0 + Duration::from_millis(m);
        assert_eq!(pa.until(t0, |_| unreachable!()).map(ms), Some(50));
        assert_eq!(pb.until(t0, |_| unreachable!()).map(ms), Some(100));
        // A's turn: it reads again and queues behind B, although the
        // bucket is still in debt (B's charge).
        assert_eq!(pa.until(at(50), |now| a.receive_ready_at(now)), None);
        pa.set(a.received(50_000, at(50)), at(50));
        assert_eq!(pa.until(at(50), |_| unreachable!()).map(ms), Some(150));
        assert_eq!(pb.until(at(100), |now| b.receive_ready_at(now)), None);
    }

    #[test]
    fn a_long_wait_ends_early_when_the_limit_is_raised() {
        let t0 = Instant::now();
        let ms = |at: Instant| (at - t0).as_millis();
        let limiter = RateLimiter::new(RateLimits {
            download: Some(MB),
            upload: None,
        });
        let link = LinkLimits::session(limiter.clone());
        let mut pause = Pause::default();
        // 2 s of debt: the link looks again after MAX_PAUSE.
        pause.set(link.received(100_000 + 2 * MB, t0), t0);
        assert_eq!(pause.until(t0, |_| unreachable!()).map(ms), Some(100));
        let look = t0 + MAX_PAUSE;
        // Unchanged: wait on, 100 ms at a time.
        let wait = pause.until(look, |now| link.receive_ready_at(now));
        assert_eq!(wait.map(ms), Some(200));
        // Raised tenfold at 200 ms: the debt left (1.8 MB) is paid in
        // 180 ms, sooner than the turn at 2.1 s.
        let look = t0 + 2 * MAX_PAUSE;
        let raised = RateLimits {
            download: Some(10 * MB),
            upload: None,
        };
        limiter.set(raised, look);
        let wait = pause.until(look, |now| link.receive_ready_at(now));
        assert_eq!(wait.map(ms), Some(300), "the next look comes first");
        let look = t0 + 3 * MAX_PAUSE;
        let wait = pause.until(look, |now| link.receive_ready_at(now));
        assert_eq!(wait.map(ms), Some(380), "paid at 200 + 180 ms");
        // Lifted: a wait ends at the next look.
        let mut pause = Pause::default();
        pause.set(link.received(5 * MB, look), look);
        limiter.set(RateLimits::default(), look);
        assert_eq!(pause.until(look, |_| unreachable!()).map(ms), Some(400));
        let look = look + MAX_PAUSE;
        assert_eq!(pause.until(look, |now| link.receive_ready_at(now)), None);
    }
}
