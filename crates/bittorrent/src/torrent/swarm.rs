//! Candidate peers: which address to dial next, with backoff for failing
//! ones and a ban list. Pure.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Known peer addresses and their connection history.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    candidates: HashMap<SocketAddr, Candidate>,
    banned: HashSet<BanKey>,
}

/// What a ban covers: the whole IP address, except on loopback, where many
/// peers (local swarms, tests) share one address and only that port is banned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum BanKey {
    Ip(IpAddr),
    Addr(SocketAddr),
}

impl BanKey {
    fn of(addr: &SocketAddr) -> Self {
        if addr.ip().is_loopback() {
            Self::Addr(*addr)
        } else {
            Self::Ip(addr.ip())
        }
    }
}

#[derive(Debug)]
struct Candidate {
    /// Consecutive failed attempts.
    failures: u32,
    /// Not to be dialled before this.
    next_attempt: Instant,
    /// Given by the user: never forgotten.
    pinned: bool,
}

impl Swarm {
    /// Backoff after the first failure; doubles per failure.
    const BASE_BACKOFF: Duration = Duration::from_secs(15);
    /// Longest backoff.
    const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
    /// Unpinned candidates that failed this often are forgotten.
    const MAX_FAILURES: u32 = 6;

    /// Adds a candidate (ignored if banned; an existing one keeps its history
    /// but becomes pinned if `pinned`).
    pub(crate) fn add(&mut self, addr: SocketAddr, pinned: bool, now: Instant) {
        if self.is_banned(&addr) || addr.port() == 0 {
            return;
        }
        self.candidates
            .entry(addr)
            .and_modify(|c| c.pinned |= pinned)
            .or_insert(Candidate {
                failures: 0,
                next_attempt: now,
                pinned,
            });
    }

    /// Known candidate addresses (not banned).
    pub(crate) fn len(&self) -> usize {
        self.candidates.len()
    }

    /// The next address to dial: due, not banned, not in `connected`.
    /// Marks it as attempted (it will not be returned again until it fails or
    /// its backoff passes).
    pub(crate) fn next(
        &mut self,
        now: Instant,
        connected: impl Fn(&SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        let (&addr, cand) = self
            .candidates
            .iter_mut()
            .filter(|(a, c)| c.next_attempt <= now && !connected(a))
            .min_by_key(|(_, c)| (c.failures, c.next_attempt))?;
        // While connected it is skipped anyway; after a disconnect, wait a little.
        cand.next_attempt = now + Self::BASE_BACKOFF;
        Some(addr)
    }

    /// Makes every candidate that has not failed dialable at once (after
    /// we closed connections ourselves, e.g. to seeds once complete, and
    /// now want data again).
    pub(crate) fn wake(&mut self, now: Instant) {
        for c in self.candidates.values_mut().filter(|c| c.failures == 0) {
            c.next_attempt = c.next_attempt.min(now);
        }
    }

    /// A connection to `addr` could not be made or ended in error.
    pub(crate) fn failed(&mut self, addr: SocketAddr, now: Instant) {
        let Some(c) = self.candidates.get_mut(&addr) else {
            return;
        };
        c.failures = c.failures.saturating_add(1);
        if !c.pinned && c.failures >= Self::MAX_FAILURES {
            self.candidates.remove(&addr);
            return;
        }
        let backoff = Self::BASE_BACKOFF.saturating_mul(1 << c.failures.min(10).saturating_sub(1));
        c.next_attempt = now + backoff.min(Self::MAX_BACKOFF);
    }

    /// A connection to `addr` completed its handshake.
    pub(crate) fn connected(&mut self, addr: SocketAddr) {
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.failures = 0;
        }
    }

    /// Never connect to `addr` again in this session, nor accept it: the
    /// whole IP address, or on loopback that address and port.
    pub(crate) fn ban(&mut self, addr: SocketAddr) {
        let key = BanKey::of(&addr);
        self.candidates.retain(|a, _| BanKey::of(a) != key);
        self.banned.insert(key);
    }

    /// Whether `addr` is banned.
    pub(crate) fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.banned.contains(&BanKey::of(addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn dials_each_candidate_once_until_backoff() {
        let now = Instant::now();
        let mut s = Swarm::default();
        s.add(addr(1), false, now);
        s.add(addr(2), false, now);
        let a = s.next(now, |_| false).unwrap();
        let b = s.next(now, |_| false).unwrap();
        assert_ne!(a, b);
        assert_eq!(s.next(now, |_| false), None);
        assert!(s.next(now + Swarm::BASE_BACKOFF, |_| false).is_some());
    }

    #[test]
    fn connected_peers_are_skipped() {
        let now = Instant::now();
        let mut s = Swarm::default();
        s.add(addr(1), false, now);
        assert_eq!(s.next(now, |a| *a == addr(1)), None);
    }

    #[test]
    fn failures_back_off_and_unpinned_are_forgotten() {
        let now = Instant::now();
        let mut s = Swarm::default();
        s.add(addr(1), false, now);
        s.add(addr(2), true, now);
        for i in 0..Swarm::MAX_FAILURES {
            s.failed(addr(1), now);
            s.failed(addr(2), now);
            if i == 0 {
                assert_eq!(s.next(now + Duration::from_secs(1), |_| false), None);
            }
        }
        let later = now + Duration::from_secs(24 * 3600);
        assert_eq!(
            s.next(later, |_| false),
            Some(addr(2)),
            "pinned survives, unpinned forgotten"
        );
        assert_eq!(s.next(later, |_| false), None);
    }

    #[test]
    fn bans_cover_the_ip_except_on_loopback() {
        let now = Instant::now();
        let mut s = Swarm::default();
        let remote = SocketAddr::from(([203, 0, 113, 7], 6881));
        let same_ip = SocketAddr::from(([203, 0, 113, 7], 51413));
        s.add(same_ip, false, now);
        s.ban(remote);
        assert!(
            s.is_banned(&same_ip),
            "another port of a banned IP is banned too"
        );
        assert_eq!(s.next(now, |_| false), None, "its candidates are forgotten");
        s.ban(addr(1));
        assert!(s.is_banned(&addr(1)));
        assert!(!s.is_banned(&addr(2)), "other loopback peers are not");
    }

    #[test]
    fn banned_are_never_dialled() {
        let now = Instant::now();
        let mut s = Swarm::default();
        s.add(addr(1), true, now);
        s.ban(addr(1));
        s.add(addr(1), true, now);
        assert!(s.is_banned(&addr(1)));
        assert_eq!(s.next(now, |_| false), None);
    }

    #[test]
    fn wake_makes_healthy_candidates_due_again() {
        let now = Instant::now();
        let mut swarm = Swarm::default();
        swarm.add(addr(1), false, now);
        swarm.add(addr(2), false, now);
        let mut dialled = [swarm.next(now, |_| false), swarm.next(now, |_| false)];
        dialled.sort();
        assert_eq!(dialled, [Some(addr(1)), Some(addr(2))]);
        swarm.failed(addr(2), now);
        assert_eq!(swarm.next(now, |_| false), None);
        swarm.wake(now);
        assert_eq!(swarm.next(now, |_| false), Some(addr(1)));
        assert_eq!(
            swarm.next(now, |_| false),
            None,
            "the failing one keeps its backoff"
        );
    }
}
