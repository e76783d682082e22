//! What a DHT node serves to others: announce tokens, the peers announced to
//! it, and a per-IP rate limit on incoming queries. Pure: the caller passes
//! the time.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use sha1::{Digest, Sha1};

use crate::types::InfoHash;

/// Announce tokens: SHA-1 of a secret and the requester's IP. The secret
/// changes every rotation period and the previous one is still accepted, so a
/// token stays valid for one to two periods (BEP 5).
#[derive(Clone, Debug)]
pub struct Tokens {
    current: [u8; 20],
    previous: [u8; 20],
    rotated_at: Instant,
}

impl Tokens {
    /// Fresh random secrets.
    pub fn new(now: Instant) -> Self {
        Self {
            current: rand::random(),
            previous: rand::random(),
            rotated_at: now,
        }
    }

    fn token_with(secret: &[u8; 20], ip: IpAddr) -> [u8; 20] {
        let mut hasher = Sha1::new();
        hasher.update(secret);
        match ip {
            IpAddr::V4(ip) => hasher.update(ip.octets()),
            IpAddr::V6(ip) => hasher.update(ip.octets()),
        }
        hasher.finalize().into()
    }

    /// The token we hand to `ip` now.
    pub fn token_for(&self, ip: IpAddr) -> [u8; 20] {
        Self::token_with(&self.current, ip)
    }

    /// Whether `token` is one we handed to `ip` with the current or previous
    /// secret.
    pub fn verify(&self, ip: IpAddr, token: &[u8]) -> bool {
        token == Self::token_with(&self.current, ip)
            || token == Self::token_with(&self.previous, ip)
    }

    /// Replaces the secret if `period` has passed since the last rotation.
    pub fn rotate_if_due(&mut self, period: Duration, now: Instant) {
        if now.saturating_duration_since(self.rotated_at) >= period {
            self.previous = self.current;
            self.current = rand::random();
            self.rotated_at = now;
        }
    }
}

/// Peers announced to us, per info-hash, each with the time of its last
/// announce. Bounded: at most `max_hashes` torrents and `max_peers` peers per
/// torrent; announces beyond that are not stored.
#[derive(Clone, Debug)]
pub struct PeerStore {
    torrents: HashMap<InfoHash, HashMap<SocketAddr, Instant>>,
    max_hashes: usize,
    max_peers: usize,
}

impl PeerStore {
    /// An empty store with the given caps.
    pub fn new(max_hashes: usize, max_peers: usize) -> Self {
        Self {
            torrents: HashMap::new(),
            max_hashes,
            max_peers,
        }
    }

    /// Records an announce; returns whether the peer is stored.
    pub fn announce(&mut self, info_hash: InfoHash, peer: SocketAddr, now: Instant) -> bool {
        if !self.torrents.contains_key(&info_hash) && self.torrents.len() >= self.max_hashes {
            return false;
        }
        let peers = self.torrents.entry(info_hash).or_default();
        if !peers.contains_key(&peer) && peers.len() >= self.max_peers {
            return false;
        }
        peers.insert(peer, now);
        true
    }

    /// Up to `max` peers of a torrent announced within `ttl`, in random order.
    pub fn peers(
        &self,
        info_hash: &InfoHash,
        max: usize,
        ttl: Duration,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let Some(peers) = self.torrents.get(info_hash) else {
            return Vec::new();
        };
        let mut live: Vec<SocketAddr> = peers
            .iter()
            .filter(|(_, t)| now.saturating_duration_since(**t) < ttl)
            .map(|(a, _)| *a)
            .collect();
        live.shuffle(&mut rand::thread_rng());
        live.truncate(max);
        live
    }

    /// Forgets peers not announced within `ttl`, and torrents left empty.
    pub fn expire(&mut self, ttl: Duration, now: Instant) {
        self.torrents.retain(|_, peers| {
            peers.retain(|_, t| now.saturating_duration_since(*t) < ttl);
            !peers.is_empty()
        });
    }

    /// Number of torrents and of peers stored.
    pub fn counts(&self) -> (usize, usize) {
        let peers = self.torrents.values().map(HashMap::len).sum();
        (self.torrents.len(), peers)
    }
}

/// A token bucket per source IP: `burst` queries at once, refilled at `rate`
/// per second. At most `max_ips` addresses are tracked; when the map is full,
/// addresses whose bucket has refilled are forgotten (and if none has, the map
/// is cleared, so memory stays bounded whatever the sources).
#[derive(Clone, Debug)]
pub struct RateLimiter {
    buckets: HashMap<IpAddr, (f64, Instant)>,
    rate: f64,
    burst: f64,
    max_ips: usize,
}

impl RateLimiter {
    /// A limiter allowing `burst` queries at once and `rate` per second.
    pub fn new(rate: f64, burst: f64, max_ips: usize) -> Self {
        Self {
            buckets: HashMap::new(),
            rate: rate.max(0.0),
            burst: burst.max(1.0),
            max_ips: max_ips.max(1),
        }
    }

    /// Whether one more query from `ip` is allowed now (and takes a token).
    pub fn allow(&mut self, ip: IpAddr, now: Instant) -> bool {
        if !self.buckets.contains_key(&ip) && self.buckets.len() >= self.max_ips {
            let (rate, burst) = (self.rate, self.burst);
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + now.saturating_duration_since(*at).as_secs_f64() * rate < burst
            });
            if self.buckets.len() >= self.max_ips {
                self.buckets.clear();
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((self.burst, now));
        let elapsed = now.saturating_duration_since(*at).as_secs_f64();
        *tokens = (*tokens + elapsed * self.rate).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_per_ip_and_survive_one_rotation() {
        let now = Instant::now();
        let period = Duration::from_secs(300);
        let mut tokens = Tokens::new(now);
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let token = tokens.token_for(a);
        assert!(tokens.verify(a, &token));
        assert!(!tokens.verify(b, &token));
        assert!(!tokens.verify(a, b"short"));
        tokens.rotate_if_due(period, now + Duration::from_secs(10));
        assert!(tokens.verify(a, &token), "not yet rotated");
        tokens.rotate_if_due(period, now + period);
        assert!(tokens.verify(a, &token), "previous secret accepted");
        tokens.rotate_if_due(period, now + period * 2);
        assert!(!tokens.verify(a, &token), "two rotations later it expired");
    }

    #[test]
    fn peer_store_caps_and_expiry() {
        let now = Instant::now();
        let ttl = Duration::from_secs(1800);
        let mut store = PeerStore::new(2, 3);
        let h = |b| InfoHash([b; 20]);
        let p = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert!(store.announce(h(1), p(1), now));
        assert!(store.announce(h(1), p(2), now));
        assert!(store.announce(h(1), p(3), now));
        assert!(!store.announce(h(1), p(4), now), "peer cap");
        assert!(store.announce(h(1), p(1), now), "re-announce is fine");
        assert!(store.announce(h(2), p(1), now));
        assert!(!store.announce(h(3), p(1), now), "hash cap");
        assert_eq!(store.counts(), (2, 4));
        assert_eq!(store.peers(&h(1), 2, ttl, now).len(), 2);
        assert_eq!(store.peers(&h(1), 10, ttl, now).len(), 3);
        let later = now + ttl;
        assert!(store.peers(&h(1), 10, ttl, later).is_empty());
        store.announce(h(2), p(9), later);
        store.expire(ttl, later);
        assert_eq!(store.counts(), (1, 1));
        assert_eq!(store.peers(&h(2), 10, ttl, later), vec![p(9)]);
    }

    #[test]
    fn rate_limiter_refills() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(2.0, 3.0, 10);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let other: IpAddr = [10, 0, 0, 2].into();
        assert!((0..3).all(|_| limiter.allow(ip, now)));
        assert!(!limiter.allow(ip, now));
        assert!(limiter.allow(other, now), "per IP");
        assert!(limiter.allow(ip, now + Duration::from_millis(500)));
        assert!(!limiter.allow(ip, now + Duration::from_millis(500)));
    }

    #[test]
    fn rate_limiter_memory_is_bounded() {
        let now = Instant::now();
        let mut limiter = RateLimiter::new(1.0, 1.0, 4);
        for i in 0..100u8 {
            assert!(limiter.allow([10, 0, 0, i].into(), now));
            assert!(limiter.buckets.len() <= 4);
        }
    }
}
