//! Candidate peers: which address to dial next, with backoff for failing
//! ones and a ban list. Pure. Our own listen endpoints are never candidates
//! (trackers and PEX list us back to ourselves), nor is an address where a
//! handshake found our own peer id. At most [`MAX_CANDIDATES`] are kept (a peer
//! exchange flood cannot grow the list without bound), and the next one to
//! dial is found in O(log n): candidates are indexed by failure count, then
//! by when they are due.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Candidates kept; beyond it a new one replaces a failing one, or is dropped.
pub(crate) const MAX_CANDIDATES: usize = 2000;
/// Failure counts told apart in the dial order (more count as this many).
const GROUPS: usize = 12;

/// Known peer addresses and their connection history.
#[derive(Debug, Default)]
pub(crate) struct Swarm {
    candidates: HashMap<SocketAddr, Candidate>,
    /// The dial order: per failure count (capped), by next attempt. Holds
    /// exactly the candidates, each once, with its current key.
    order: [BTreeSet<(Instant, SocketAddr)>; GROUPS],
    banned: HashSet<BanKey>,
    /// Our listen endpoints.
    ourselves: Ourselves,
    /// Addresses found to be us (our endpoints met, or a handshake with our
    /// own peer id): never candidates again in this session.
    selves: HashSet<SocketAddr>,
}

/// Our own listen endpoints, as a peer source would list them: the listen
/// port at the bound address, or for an unspecified bind (`0.0.0.0`, `[::]`)
/// at any of the host's addresses of that family (`[::]` is dual-stack) and
/// any loopback address. Only that port: other loopback peers are not us.
/// Plus the gateway's side of our port mappings, as they come and go.
#[derive(Clone, Debug, Default)]
pub(crate) struct Ourselves {
    /// The listen port; 0 (not listening): nothing is us.
    port: u16,
    /// Our addresses (IPv4-mapped ones as IPv4); shared by the clones (a
    /// torrent's shell and core each hold one).
    ips: Arc<HashSet<IpAddr>>,
    /// An unspecified IPv4 bind: every IPv4 loopback address reaches us.
    any_v4_loopback: bool,
    /// An unspecified IPv6 bind: `::1` and (dual-stack) 127.0.0.0/8 too.
    any_loopback: bool,
    /// Our TCP port as mapped on the NAT gateway (its external address).
    mapped: Vec<SocketAddr>,
}

impl Ourselves {
    /// The endpoints of a listener bound to `listen` (its real port), on a
    /// host with the addresses `host` (used for an unspecified bind only).
    pub(crate) fn new(listen: SocketAddr, host: impl IntoIterator<Item = IpAddr>) -> Self {
        let bound = canonical(listen.ip());
        let (v4, v6) = match bound {
            IpAddr::V4(ip) if ip.is_unspecified() => (true, false),
            IpAddr::V6(ip) if ip.is_unspecified() => (true, true),
            _ => (false, false),
        };
        let ips = if v4 {
            (host.into_iter().map(canonical))
                .filter(|ip| v6 || ip.is_ipv4())
                .collect()
        } else {
            HashSet::from([bound])
        };
        Self {
            port: listen.port(),
            ips: Arc::new(ips),
            any_v4_loopback: v4,
            any_loopback: v6,
            mapped: Vec::new(),
        }
    }

    /// Whether a connection to `addr` would reach our own listener.
    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        if self.mapped.iter().any(|m| same_endpoint(m, addr)) {
            return true;
        }
        if self.port == 0 || addr.port() != self.port {
            return false;
        }
        let ip = canonical(addr.ip());
        self.ips.contains(&ip)
            || (ip.is_loopback() && (self.any_loopback || (self.any_v4_loopback && ip.is_ipv4())))
    }
}

/// Whether `a` and `b` are one endpoint (an IPv4-mapped address is IPv4).
fn same_endpoint(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port() && canonical(a.ip()) == canonical(b.ip())
}

/// `ip`, an IPv4-mapped IPv6 address as the IPv4 address.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
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

impl Candidate {
    fn group(&self) -> usize {
        (self.failures as usize).min(GROUPS - 1)
    }
}

impl Swarm {
    /// Backoff after the first failure; doubles per failure.
    const BASE_BACKOFF: Duration = Duration::from_secs(15);
    /// Longest backoff.
    const MAX_BACKOFF: Duration = Duration::from_secs(30 * 60);
    /// Unpinned candidates that failed this often are forgotten.
    const MAX_FAILURES: u32 = 6;

    /// Candidates, none of them at `ourselves`.
    pub(crate) fn new(ourselves: Ourselves) -> Self {
        Self {
            ourselves,
            ..Self::default()
        }
    }

    /// Adds a candidate (ignored if banned or us; an existing one keeps its
    /// history but becomes pinned if `pinned`). When the list is full, a new
    /// unpinned candidate replaces the one that failed most, or is dropped if
    /// none has failed.
    pub(crate) fn add(&mut self, addr: SocketAddr, pinned: bool, now: Instant) {
        if self.is_banned(&addr) || addr.port() == 0 || self.is_us(addr) {
            return;
        }
        if let Some(c) = self.candidates.get_mut(&addr) {
            c.pinned |= pinned;
            return;
        }
        if self.candidates.len() >= MAX_CANDIDATES && !pinned && !self.evict_one() {
            return;
        }
        let c = Candidate {
            failures: 0,
            next_attempt: now,
            pinned,
        };
        self.order[c.group()].insert((now, addr));
        self.candidates.insert(addr, c);
    }

    /// Known candidate addresses (not banned).
    pub(crate) fn len(&self) -> usize {
        self.candidates.len()
    }

    /// The next address to dial: due, not banned, not in `connected`.
    /// Marks it as attempted (it will not be returned again until it fails or
    /// its backoff passes). O(log n), plus the connected candidates skipped.
    pub(crate) fn next(
        &mut self,
        now: Instant,
        connected: impl Fn(&SocketAddr) -> bool,
    ) -> Option<SocketAddr> {
        let addr = self.order.iter().find_map(|group| {
            group
                .iter()
                .take_while(|(at, _)| *at <= now)
                .find(|(_, a)| !connected(a))
                .map(|&(_, a)| a)
        })?;
        // While connected it is skipped anyway; after a disconnect, wait a little.
        self.update(addr, |c| c.next_attempt = now + Self::BASE_BACKOFF);
        Some(addr)
    }

    /// Makes every candidate that has not failed dialable at once (after
    /// we closed connections ourselves, e.g. to seeds once complete, and
    /// now want data again).
    pub(crate) fn wake(&mut self, now: Instant) {
        let healthy: Vec<SocketAddr> = self.order[0].iter().map(|&(_, a)| a).collect();
        for addr in healthy {
            self.update(addr, |c| {
                if c.failures == 0 {
                    c.next_attempt = c.next_attempt.min(now);
                }
            });
        }
    }

    /// A connection to `addr` could not be made or ended in error.
    pub(crate) fn failed(&mut self, addr: SocketAddr, now: Instant) {
        let Some(c) = self.candidates.get(&addr) else {
            return;
        };
        if !c.pinned && c.failures.saturating_add(1) >= Self::MAX_FAILURES {
            self.remove(addr);
            return;
        }
        self.update(addr, |c| {
            c.failures = c.failures.saturating_add(1);
            let exp = c.failures.min(10).saturating_sub(1);
            let backoff = Self::BASE_BACKOFF.saturating_mul(1 << exp);
            c.next_attempt = now + backoff.min(Self::MAX_BACKOFF);
        });
    }

    /// A connection to `addr` completed its handshake.
    pub(crate) fn connected(&mut self, addr: SocketAddr) {
        self.update(addr, |c| c.failures = 0);
    }

    /// Never connect to `addr` again in this session, nor accept it: the
    /// whole IP address, or on loopback that address and port.
    pub(crate) fn ban(&mut self, addr: SocketAddr) {
        let key = BanKey::of(&addr);
        let gone: Vec<SocketAddr> = (self.candidates.keys())
            .filter(|a| BanKey::of(a) == key)
            .copied()
            .collect();
        for a in gone {
            self.remove(a);
        }
        self.banned.insert(key);
    }

    /// Whether `addr` is banned.
    pub(crate) fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.banned.contains(&BanKey::of(addr))
    }

    /// Our listen port is mapped on the gateway at `external` (empty: not
    /// mapped): those endpoints are us too, and any candidate there goes.
    pub(crate) fn set_mapped(&mut self, external: &[SocketAddr]) {
        let mapped: Vec<SocketAddr> = (external.iter())
            .filter(|a| !a.ip().is_unspecified() && a.port() != 0)
            .copied()
            .collect();
        if self.ourselves.mapped == mapped {
            return;
        }
        self.ourselves.mapped = mapped;
        let gone: Vec<SocketAddr> = (self.candidates.keys())
            .filter(|a| self.ourselves.contains(a))
            .copied()
            .collect();
        for addr in gone {
            log::debug!("{addr} is our mapped endpoint; not a candidate");
            self.remove(addr);
        }
    }

    /// A connection we made to `addr` reached ourselves (the handshake
    /// carried our peer id): it is never a candidate again. Only that
    /// address: others may share its IP (a NAT's other hosts).
    pub(crate) fn found_us(&mut self, addr: SocketAddr) {
        self.remove(addr);
        if self.selves.insert(addr) {
            log::debug!("{addr} is ourselves; never dialling it again");
        }
    }

    /// Whether `addr` is us: one of our listen endpoints, or found to be.
    /// The first time an endpoint is met it is logged and remembered.
    fn is_us(&mut self, addr: SocketAddr) -> bool {
        if self.selves.contains(&addr) {
            return true;
        }
        if !self.ourselves.contains(&addr) {
            return false;
        }
        log::debug!("{addr} is our own listen endpoint; not a candidate");
        self.selves.insert(addr);
        true
    }

    /// Changes a candidate and keeps the dial order in step.
    fn update(&mut self, addr: SocketAddr, change: impl FnOnce(&mut Candidate)) {
        let Some(c) = self.candidates.get_mut(&addr) else {
            return;
        };
        self.order[c.group()].remove(&(c.next_attempt, addr));
        change(c);
        self.order[c.group()].insert((c.next_attempt, addr));
    }

    fn remove(&mut self, addr: SocketAddr) {
        if let Some(c) = self.candidates.remove(&addr) {
            self.order[c.group()].remove(&(c.next_attempt, addr));
        }
    }

    /// Drops the unpinned candidate that failed most (latest due among
    /// equals). Returns whether one was dropped: none that failed, none
    /// dropped.
    fn evict_one(&mut self) -> bool {
        let candidates = &self.candidates;
        let victim = self.order[1..].iter().rev().find_map(|group| {
            group
                .iter()
                .rev()
                .find(|(_, a)| candidates.get(a).is_some_and(|c| !c.pinned))
                .map(|&(_, a)| a)
        });
        match victim {
            Some(addr) => {
                self.remove(addr);
                true
            }
            None => false,
        }
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

    #[test]
    fn the_list_is_capped_and_failing_candidates_make_room() {
        let now = Instant::now();
        let mut s = Swarm::default();
        let remote =
            |i: usize| SocketAddr::from(([10, (i >> 16) as u8, (i >> 8) as u8, i as u8], 6881));
        for i in 0..MAX_CANDIDATES * 2 {
            s.add(remote(i), false, now);
        }
        assert_eq!(
            s.len(),
            MAX_CANDIDATES,
            "healthy candidates are not replaced"
        );
        assert!(!s.candidates.contains_key(&remote(MAX_CANDIDATES)));
        s.failed(remote(7), now);
        s.add(remote(MAX_CANDIDATES), false, now);
        assert_eq!(s.len(), MAX_CANDIDATES);
        assert!(
            s.candidates.contains_key(&remote(MAX_CANDIDATES)),
            "took a failing one's place"
        );
        assert!(!s.candidates.contains_key(&remote(7)));
        s.add(addr(1), true, now);
        assert!(
            s.candidates.contains_key(&addr(1)),
            "the user's peers always get in"
        );
        let indexed: usize = s.order.iter().map(BTreeSet::len).sum();
        assert_eq!(
            indexed,
            s.len(),
            "the dial order holds every candidate once"
        );
    }

    #[test]
    fn the_dial_order_prefers_fewer_failures_then_the_earliest_due() {
        let t0 = Instant::now();
        let mut s = Swarm::default();
        s.add(addr(1), false, t0);
        s.failed(addr(1), t0);
        s.add(addr(2), false, t0 + Duration::from_secs(2));
        s.add(addr(3), false, t0 + Duration::from_secs(1));
        let late = t0 + Duration::from_secs(3600);
        assert_eq!(s.next(late, |_| false), Some(addr(3)));
        assert_eq!(s.next(late, |a| *a == addr(2)), Some(addr(1)));
        assert_eq!(s.next(late, |_| false), Some(addr(2)));
    }

    fn at(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn our_own_listen_endpoint_is_never_a_candidate() {
        let now = Instant::now();
        let mut s = Swarm::new(Ourselves::new(addr(6881), [at("192.168.1.5:0").ip()]));
        s.add(addr(6881), true, now);
        s.add(at("[::ffff:127.0.0.1]:6881"), false, now);
        assert_eq!(s.len(), 0, "our endpoint, even pinned or IPv4-mapped");
        s.add(addr(6882), false, now);
        s.add(at("127.0.0.2:6881"), false, now);
        s.add(at("192.168.1.5:6881"), false, now);
        assert_eq!(
            s.len(),
            3,
            "other loopback ports, and other addresses of a specific bind, are peers"
        );
    }

    #[test]
    fn an_unspecified_bind_is_us_on_every_host_address_and_loopback() {
        let host = ["192.168.1.5", "2a01:4f8::5", "fe80::5"].map(|ip| ip.parse().unwrap());
        let dual = Ourselves::new(at("[::]:6881"), host);
        for us in [
            "192.168.1.5:6881",
            "[::ffff:192.168.1.5]:6881",
            "[2a01:4f8::5]:6881",
            "127.0.0.1:6881",
            "127.0.0.9:6881",
            "[::1]:6881",
        ] {
            assert!(dual.contains(&at(us)), "{us} is us");
        }
        for peer in [
            "192.168.1.6:6881",
            "192.168.1.5:6882",
            "127.0.0.1:6882",
            "[::1]:6882",
            "[2a01:4f8::6]:6881",
        ] {
            assert!(!dual.contains(&at(peer)), "{peer} is a peer");
        }
        let v4 = Ourselves::new(at("0.0.0.0:6881"), host);
        assert!(v4.contains(&at("192.168.1.5:6881")));
        assert!(v4.contains(&at("127.0.0.3:6881")));
        assert!(
            !v4.contains(&at("[2a01:4f8::5]:6881")),
            "no IPv6 on 0.0.0.0"
        );
        assert!(!v4.contains(&at("[::1]:6881")));
        let v6 = Ourselves::new(at("[::1]:6881"), host);
        assert!(v6.contains(&at("[::1]:6881")));
        assert!(!v6.contains(&at("127.0.0.1:6881")), "a specific bind only");
        let idle = Ourselves::default();
        assert!(!idle.contains(&addr(6881)), "not listening: nothing is us");
    }

    #[test]
    fn our_mapped_endpoint_is_us_while_mapped() {
        let now = Instant::now();
        let mut s = Swarm::new(Ourselves::new(addr(6881), []));
        let external = at("198.51.100.4:7001");
        s.add(external, false, now);
        s.add(at("198.51.100.4:7002"), false, now);
        s.set_mapped(&[external, at("0.0.0.0:7003")]);
        assert_eq!(s.len(), 1, "the candidate at our mapped endpoint goes");
        s.add(at("[::ffff:198.51.100.4]:7001"), false, now);
        s.add(at("0.0.0.0:7003"), false, now);
        assert_eq!(s.len(), 2, "an unknown external address is nobody's");
        s.set_mapped(&[]);
        s.add(at("198.51.100.5:7001"), false, now);
        assert_eq!(s.len(), 3, "unmapped, other hosts on that port are peers");
    }

    #[test]
    fn an_address_found_to_be_us_is_never_dialled_again() {
        let now = Instant::now();
        let mut s = Swarm::new(Ourselves::new(addr(6881), []));
        let nat = at("203.0.113.7:6881");
        s.add(nat, true, now);
        assert_eq!(s.next(now, |_| false), Some(nat));
        s.found_us(nat);
        assert_eq!(s.len(), 0);
        s.add(nat, true, now);
        let later = now + Duration::from_secs(24 * 3600);
        assert_eq!(s.next(later, |_| false), None, "not even when pinned");
        assert!(
            !s.is_banned(&nat),
            "a peer from that address may still come in"
        );
        s.add(at("203.0.113.7:6882"), false, now);
        assert_eq!(
            s.next(later, |_| false),
            Some(at("203.0.113.7:6882")),
            "another host behind the same NAT is a peer"
        );
    }
}
