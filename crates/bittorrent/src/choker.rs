//! Which peers we upload to: the choke algorithm of mainline BitTorrent 4.x.
//! Pure state; the torrent actor owns one [`Choker`], calls
//! [`Choker::run_round`] every [`ChokerConfig::round`] (10 s) with a
//! [`PeerView`] per connected peer, and applies the [`ChokeDecision`] by
//! sending `unchoke` to [`ChokeDecision::to_unchoke`] and `choke` to
//! [`ChokeDecision::to_choke`].
//!
//! The rules follow section 2.2 of A. Legout, G. Urvoy-Keller, P. Michiardi,
//! "Rarest First and Choke Algorithms Are Enough", ACM IMC 2006, which
//! describes the leecher-state algorithm and the new seed-state algorithm of
//! mainline 4.0.x. Where the paper leaves a detail open, the choice below is
//! the one that spreads our upload over the swarm, and it is marked *(ours)*.
//!
//! # Both states
//! - Only peers that are interested in us get unchoked. A peer that is not
//!   interested is always choked *(ours)*: it would not request anything, and
//!   choking it frees the slot's bookkeeping and makes the decision complete
//!   ("everyone not in [`ChokeDecision::unchoke`] is choked").
//! - Peers missing from the input (disconnected) are never returned. A peer
//!   listed twice counts once (its first entry).
//! - Rates that are NaN or negative count as 0; `+inf` counts as the highest.
//! - Candidates are ordered by id before any random choice, so a decision
//!   depends only on the set of peers, the round and the seed, not on the
//!   order of the input slice.
//!
//! # Leecher state (we miss pieces)
//! 1. **Regular unchokes**, every round: the interested peers that are not
//!    *snubbed* are ordered by [`PeerView::download_rate`] (what they give us),
//!    highest first, and the first [`ChokerConfig::slots`] are unchoked. Ties:
//!    a peer that is already unchoked first (no flapping), then lowest id.
//! 2. **Snubbing**: a peer is snubbed when we are interested in it and it has
//!    sent us no piece data for [`ChokerConfig::snub_after`] (60 s), counting
//!    from [`PeerView::connected_at`] when it never sent any. A snubbed peer
//!    gets no regular slot, whatever its rate; it may still be the optimistic
//!    unchoke. It regains a regular slot as soon as it sends again. A peer we
//!    are not interested in is never snubbed.
//! 3. **Optimistic unchoke**: one more interested peer outside the regular
//!    set. A new one is drawn at the first round, every
//!    [`ChokerConfig::optimistic_every`] rounds (3 rounds = 30 s) after the
//!    last draw, and at once when the current one disconnected, lost interest,
//!    or entered the regular set by its rate *(ours: the regular set and the
//!    optimistic peer never overlap, so a round unchokes `slots + 1` peers
//!    whenever that many are interested; each of these early draws restarts
//!    the 30 s clock)*. Between draws the optimistic peer stays unchoked. The
//!    draw is random among the interested peers outside the regular set
//!    (snubbed ones included, the current optimistic one included), a peer
//!    connected for less than [`ChokerConfig::new_peer_window`] weighing 3
//!    and any other 1, so new peers are three times as likely to be picked
//!    (they have nothing to trade yet; this gets them their first pieces).
//!
//! # Seed state (we have every piece)
//! The paper's new seed algorithm; the seed's upload slots rotate so that
//! every interested leecher is served over time, instead of the fastest
//! downloader keeping them. Rounds are numbered from 0 since we became a seed.
//! 1. The interested peers we currently unchoke are ordered: first those
//!    unchoked within the last two rounds (20 s, see [`PeerView::last_unchoked`])
//!    by [`PeerView::upload_rate`] (what we send them), highest first, ties
//!    more recently unchoked first; then the others by the time they were last
//!    unchoked, most recent first (never-recorded last); remaining ties random.
//! 2. In rounds `0, 1 (mod 3)` the first `slots` of them stay unchoked and
//!    one choked interested peer, drawn uniformly at random, is unchoked too
//!    (the seed-state optimistic unchoke). In rounds `2 (mod 3)` the first
//!    `slots + 1` stay unchoked and nobody new is drawn. Every round therefore
//!    unchokes `slots + 1` peers when that many are interested.
//! 3. *(ours)* Only currently unchoked peers are ranked in step 1, as in the
//!    paper; a choked peer only gets in by the random draw. When fewer peers
//!    are unchoked than the round keeps (start, after disconnects), the free
//!    slots go to the choked interested peers that waited longest (never
//!    unchoked first, then least recently unchoked; ties random), not to the
//!    ones just choked. When no choked interested peer is left for the draw,
//!    it falls back to an interested peer just dropped by step 2, so no slot
//!    idles.
//!
//! Since a newly unchoked peer ranks above every peer unchoked before it once
//! the 20 s grace is over, each new draw pushes the longest-served peer out:
//! with equal rates the slots cycle through all interested leechers.
//!
//! # Slots
//! `slots = 0` is valid: the leecher state then unchokes only the optimistic
//! peer, and the seed state one peer per round (a random draw in rounds
//! `0, 1 (mod 3)`, the most recently unchoked one in rounds `2 (mod 3)`).
//!
//! # What the caller keeps
//! [`PeerView::last_unchoked`] must be the time we last *sent* `unchoke` to
//! the peer after having choked it, not refreshed while it stays unchoked.
//! The seed-state rotation depends on it.

use std::collections::HashSet;
use std::fmt::Debug;
use std::hash::Hash;
use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use rand::Rng;

use crate::random::Random;

/// Weight of a new peer in the optimistic draw (an old peer weighs 1).
const NEW_PEER_WEIGHT: u32 = 3;

/// In the seed state, peers unchoked within this many rounds are ranked by
/// upload rate.
const SEED_RECENT_ROUNDS: u32 = 2;

/// Tunables of the choke algorithm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChokerConfig {
    /// Regular unchoke slots (mainline: 3). The optimistic unchoke comes on
    /// top, so up to `slots + 1` peers are unchoked.
    pub slots: usize,
    /// How often the caller runs a round (10 s). The seed state's "recently
    /// unchoked" window is two rounds.
    pub round: Duration,
    /// The leecher-state optimistic unchoke is redrawn every this many rounds
    /// (3, i.e. 30 s). 0 is treated as 1.
    pub optimistic_every: u32,
    /// A peer we are interested in that sent no piece data for this long is
    /// snubbed (60 s).
    pub snub_after: Duration,
    /// Peers connected for less than this are new: three times as likely to
    /// be drawn as the leecher-state optimistic unchoke (60 s).
    pub new_peer_window: Duration,
}

impl Default for ChokerConfig {
    fn default() -> Self {
        Self {
            slots: 3,
            round: Duration::from_secs(10),
            optimistic_every: 3,
            snub_after: Duration::from_secs(60),
            new_peer_window: Duration::from_secs(60),
        }
    }
}

/// What the choker needs to know about one connected peer.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerView<K> {
    /// The peer's key (e.g. its `SocketAddr`).
    pub id: K,
    /// The peer is interested in us (wants to download from us).
    pub interested: bool,
    /// We currently choke the peer.
    pub choked: bool,
    /// Bytes per second the peer sends us (rolling average).
    pub download_rate: f64,
    /// Bytes per second we send the peer (rolling average).
    pub upload_rate: f64,
    /// When the connection was established.
    pub connected_at: Instant,
    /// When we last unchoked the peer (the choked→unchoked transition; not
    /// refreshed while it stays unchoked). `None`: never.
    pub last_unchoked: Option<Instant>,
    /// When the peer last sent us piece data. `None`: never, in which case
    /// snubbing counts from `connected_at`.
    pub last_piece_received: Option<Instant>,
    /// We are interested in the peer (it has pieces we want).
    pub am_interested: bool,
}

/// The outcome of one round: exactly the peers in `unchoke` are unchoked
/// afterwards, every other peer is choked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChokeDecision<K> {
    /// Peers to be unchoked after this round: the regular ones in rank order,
    /// then the optimistic one (if any). No duplicates.
    pub unchoke: Vec<K>,
    /// The optimistic unchoke of this round, also listed in `unchoke`. In the
    /// seed state it is the random draw of rounds `0, 1 (mod 3)`, and `None`
    /// in rounds `2 (mod 3)`.
    pub optimistic: Option<K>,
}

impl<K: Copy + Eq + Hash + Ord + Debug> ChokeDecision<K> {
    #[cfg(test)]
    /// Whether `id` is unchoked by this decision.
    pub fn is_unchoked(&self, id: &K) -> bool {
        self.unchoke.contains(id)
    }

    #[cfg(test)]
    /// Peers in `current` that we choke now and must unchoke (in
    /// `unchoke` order).
    pub fn to_unchoke(&self, current: &[PeerView<K>]) -> Vec<K> {
        let choked: HashSet<K> = current.iter().filter(|p| p.choked).map(|p| p.id).collect();
        self.unchoke
            .iter()
            .copied()
            .filter(|id| choked.contains(id))
            .collect()
    }

    #[cfg(test)]
    /// Peers in `current` that we unchoke now and must choke (in input
    /// order, each once).
    pub fn to_choke(&self, current: &[PeerView<K>]) -> Vec<K> {
        let keep: HashSet<K> = self.unchoke.iter().copied().collect();
        let mut seen = HashSet::new();
        current
            .iter()
            .filter(|p| !p.choked && !keep.contains(&p.id) && seen.insert(p.id))
            .map(|p| p.id)
            .collect()
    }
}

/// The choke algorithm's state: round counter, the leecher-state optimistic
/// unchoke and when it was drawn, the seed-state round counter, and the RNG.
#[derive(Debug)]
pub struct Choker<K> {
    config: ChokerConfig,
    /// Rounds run so far.
    round: u64,
    /// The current leecher-state optimistic unchoke.
    optimistic: Option<K>,
    /// The round in which `optimistic` was drawn.
    optimistic_round: u64,
    /// Consecutive seed-state rounds run so far (0 while leeching).
    seed_rounds: u64,
    rng: Random,
}

impl<K: Copy + Eq + Hash + Ord + Debug> Choker<K> {
    /// A choker with an RNG seeded from the OS.
    pub fn new(config: ChokerConfig) -> Self {
        Self::with_rng(config, Random::default())
    }

    /// A choker whose random choices are fixed by `seed` (for tests and
    /// reproducible simulations).
    pub fn with_seed(config: ChokerConfig, seed: u64) -> Self {
        Self::with_rng(config, Random::seeded(seed))
    }

    fn with_rng(config: ChokerConfig, rng: Random) -> Self {
        Self {
            config,
            round: 0,
            optimistic: None,
            optimistic_round: 0,
            seed_rounds: 0,
            rng,
        }
    }

    #[cfg(test)]
    /// The configuration in use.
    pub fn config(&self) -> &ChokerConfig {
        &self.config
    }

    #[cfg(test)]
    /// Changes the number of regular slots; takes effect at the next round.
    pub fn set_slots(&mut self, slots: usize) {
        self.config.slots = slots;
    }

    #[cfg(test)]
    /// Rounds run so far.
    pub fn rounds(&self) -> u64 {
        self.round
    }

    #[cfg(test)]
    /// The current leecher-state optimistic unchoke, if any.
    pub fn optimistic(&self) -> Option<K> {
        self.optimistic
    }

    /// Runs one round over the connected `peers` at `now`; `seeding` is true
    /// when we have every piece. See the module docs for the rules.
    pub fn run_round(
        &mut self,
        peers: &[PeerView<K>],
        seeding: bool,
        now: Instant,
    ) -> ChokeDecision<K> {
        let mut seen = HashSet::new();
        let mut peers: Vec<&PeerView<K>> = peers.iter().filter(|p| seen.insert(p.id)).collect();
        peers.sort_by_key(|p| p.id);
        let decision = if seeding {
            self.optimistic = None;
            let decision = self.seed_round(&peers, now);
            self.seed_rounds += 1;
            decision
        } else {
            self.seed_rounds = 0;
            self.leecher_round(&peers, now)
        };
        self.round += 1;
        decision
    }

    fn is_snubbed(&self, p: &PeerView<K>, now: Instant) -> bool {
        let last = p.last_piece_received.unwrap_or(p.connected_at);
        p.am_interested && now.saturating_duration_since(last) >= self.config.snub_after
    }

    fn leecher_round(&mut self, peers: &[&PeerView<K>], now: Instant) -> ChokeDecision<K> {
        let mut eligible: Vec<&PeerView<K>> = peers
            .iter()
            .copied()
            .filter(|p| p.interested && !self.is_snubbed(p, now))
            .collect();
        eligible.sort_by(|a, b| {
            rate(b.download_rate)
                .total_cmp(&rate(a.download_rate))
                .then(a.choked.cmp(&b.choked))
                .then(a.id.cmp(&b.id))
        });
        let mut unchoke: Vec<K> = eligible
            .iter()
            .take(self.config.slots)
            .map(|p| p.id)
            .collect();

        let due =
            self.round - self.optimistic_round >= u64::from(self.config.optimistic_every.max(1));
        let keep = self.optimistic.filter(|id| {
            !due && !unchoke.contains(id) && peers.iter().any(|p| p.id == *id && p.interested)
        });
        let optimistic = match keep {
            Some(id) => Some(id),
            None => {
                let pool: Vec<(&PeerView<K>, u32)> = peers
                    .iter()
                    .filter(|p| p.interested && !unchoke.contains(&p.id))
                    .map(|p| {
                        let new = now.saturating_duration_since(p.connected_at)
                            < self.config.new_peer_window;
                        (*p, if new { NEW_PEER_WEIGHT } else { 1 })
                    })
                    .collect();
                self.optimistic_round = self.round;
                weighted_pick(&mut self.rng, &pool).map(|p| p.id)
            }
        };
        self.optimistic = optimistic;
        unchoke.extend(optimistic);
        ChokeDecision {
            unchoke,
            optimistic,
        }
    }

    fn seed_round(&mut self, peers: &[&PeerView<K>], now: Instant) -> ChokeDecision<K> {
        let slots = self.config.slots;
        let draw = self.seed_rounds % 3 != 2;
        let keep_count = if draw { slots } else { slots + 1 };
        // Step 1: keep the best-ranked peers we unchoke now; free slots go to
        // the peers that waited longest.
        let mut unchoke = self.seed_keep(peers, keep_count, now);
        if unchoke.len() < keep_count {
            let free = keep_count - unchoke.len();
            unchoke.extend(self.longest_waiting(peers, free));
        }
        // Step 2: the random draw of rounds 0 and 1 (mod 3).
        let optimistic = if draw {
            self.seed_draw(peers, &unchoke)
        } else {
            None
        };
        unchoke.extend(optimistic);
        ChokeDecision {
            unchoke,
            optimistic,
        }
    }

    /// The first `keep_count` of the interested peers we unchoke now, ranked:
    /// those unchoked in the last rounds first (fastest upload first, then
    /// most recently unchoked), then the others by most recent unchoke; ties
    /// broken at random.
    fn seed_keep(&mut self, peers: &[&PeerView<K>], keep_count: usize, now: Instant) -> Vec<K> {
        let recent_window = self.config.round * SEED_RECENT_ROUNDS;
        let recent = |p: &PeerView<K>| {
            p.last_unchoked
                .is_some_and(|t| now.saturating_duration_since(t) < recent_window)
        };
        let mut unchoked: Vec<&PeerView<K>> = peers
            .iter()
            .copied()
            .filter(|p| p.interested && !p.choked)
            .collect();
        unchoked.shuffle(&mut self.rng);
        unchoked.sort_by(|a, b| match (recent(a), recent(b)) {
            (true, false) => std::cmp::Ordering::Less,
            (false, true) => std::cmp::Ordering::Greater,
            (true, true) => rate(b.upload_rate)
                .total_cmp(&rate(a.upload_rate))
                .then(b.last_unchoked.cmp(&a.last_unchoked)),
            // `None < Some`, so most recent first puts never-recorded last.
            (false, false) => b.last_unchoked.cmp(&a.last_unchoked),
        });
        unchoked.iter().take(keep_count).map(|p| p.id).collect()
    }

    /// Up to `free` choked interested peers: never unchoked first, then least
    /// recently; ties broken at random.
    fn longest_waiting(&mut self, peers: &[&PeerView<K>], free: usize) -> Vec<K> {
        let mut waiting: Vec<&PeerView<K>> = peers
            .iter()
            .copied()
            .filter(|p| p.interested && p.choked)
            .collect();
        waiting.shuffle(&mut self.rng);
        // `None < Some`: never unchoked first, then least recently.
        waiting.sort_by_key(|p| p.last_unchoked);
        waiting.iter().take(free).map(|p| p.id).collect()
    }

    /// A random interested peer outside `unchoke`: a choked one if there is
    /// any, else any.
    fn seed_draw(&mut self, peers: &[&PeerView<K>], unchoke: &[K]) -> Option<K> {
        let choked: Vec<K> = peers
            .iter()
            .filter(|p| p.interested && p.choked && !unchoke.contains(&p.id))
            .map(|p| p.id)
            .collect();
        let pool = if choked.is_empty() {
            peers
                .iter()
                .filter(|p| p.interested && !unchoke.contains(&p.id))
                .map(|p| p.id)
                .collect()
        } else {
            choked
        };
        pool.choose(&mut self.rng).copied()
    }
}

/// A rate usable for ordering: NaN and negatives count as 0.
fn rate(r: f64) -> f64 {
    if r.is_nan() || r < 0.0 {
        0.0
    } else {
        r
    }
}

/// One item of `pool` drawn with probability proportional to its weight.
fn weighted_pick<'a, T>(rng: &mut Random, pool: &[(&'a T, u32)]) -> Option<&'a T> {
    let total: u64 = pool.iter().map(|(_, w)| u64::from(*w)).sum();
    if total == 0 {
        return None;
    }
    let mut ticket = rng.gen_range(0..total);
    for (item, w) in pool {
        let w = u64::from(*w);
        if ticket < w {
            return Some(item);
        }
        ticket -= w;
    }
    None
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const ROUND: Duration = Duration::from_secs(10);

    /// A time far enough after `Instant::now()` that "an hour ago" exists.
    fn base() -> Instant {
        Instant::now() + Duration::from_secs(100_000)
    }

    /// An interested, choked, old peer that sends and receives nothing.
    fn peer(id: u32, now: Instant) -> PeerView<u32> {
        PeerView {
            id,
            interested: true,
            choked: true,
            download_rate: 0.0,
            upload_rate: 0.0,
            connected_at: now - Duration::from_secs(3600),
            last_unchoked: None,
            last_piece_received: None,
            am_interested: false,
        }
    }

    fn with_down(id: u32, rate: f64, now: Instant) -> PeerView<u32> {
        PeerView {
            download_rate: rate,
            ..peer(id, now)
        }
    }

    /// What the torrent actor does with a decision: choke/unchoke, and stamp
    /// `last_unchoked` on every choked→unchoked transition.
    fn apply(peers: &mut [PeerView<u32>], d: &ChokeDecision<u32>, now: Instant) {
        for p in peers {
            let unchoke = d.is_unchoked(&p.id);
            if unchoke && p.choked {
                p.last_unchoked = Some(now);
            }
            p.choked = !unchoke;
        }
    }

    fn sorted(mut v: Vec<u32>) -> Vec<u32> {
        v.sort_unstable();
        v
    }

    fn assert_no_duplicates(d: &ChokeDecision<u32>) {
        let set: HashSet<u32> = d.unchoke.iter().copied().collect();
        assert_eq!(set.len(), d.unchoke.len(), "duplicates in {d:?}");
        if let Some(o) = d.optimistic {
            assert!(d.is_unchoked(&o), "optimistic not in unchoke: {d:?}");
        }
    }

    #[test]
    fn leecher_unchokes_three_fastest_interested_plus_one_optimistic() {
        let now = base();
        let rates = [500.0, 9_000.0, 100.0, 7_000.0, 0.0, 8_000.0, 300.0, 50.0];
        let peers: Vec<_> = rates
            .iter()
            .enumerate()
            .map(|(i, r)| with_down(i as u32, *r, now))
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 1);
        let d = c.run_round(&peers, false, now);
        assert_no_duplicates(&d);
        assert_eq!(d.unchoke.len(), 4);
        assert_eq!(&d.unchoke[..3], &[1, 5, 3], "fastest first");
        let o = d.optimistic.expect("an optimistic unchoke");
        assert!(![1, 5, 3].contains(&o));
        assert_eq!(d.unchoke[3], o);
        assert_eq!(c.optimistic(), Some(o));
    }

    #[test]
    fn leecher_rate_ties_keep_unchoked_peers_then_lowest_id() {
        let now = base();
        let mut peers: Vec<_> = (0..6).map(|i| with_down(i, 1_000.0, now)).collect();
        peers[4].choked = false;
        peers[5].choked = false;
        let mut c = Choker::with_seed(ChokerConfig::default(), 1);
        let d = c.run_round(&peers, false, now);
        assert_eq!(&d.unchoke[..3], &[4, 5, 0]);
    }

    #[test]
    fn non_interested_peers_are_never_unchoked() {
        let mut now = base();
        // Even ids are not interested; they are also the fastest, and one of
        // them is currently unchoked.
        let mut peers: Vec<_> = (0..12)
            .map(|i| PeerView {
                interested: i % 2 == 1,
                download_rate: if i % 2 == 0 { 1e9 } else { f64::from(i) },
                upload_rate: if i % 2 == 0 { 1e9 } else { 1.0 },
                ..peer(i, now)
            })
            .collect();
        peers[0].choked = false;
        for seeding in [false, true] {
            let mut c = Choker::with_seed(ChokerConfig::default(), 7);
            let mut unchoked_odd = 0;
            for _ in 0..60 {
                let d = c.run_round(&peers, seeding, now);
                assert_no_duplicates(&d);
                assert!(d.unchoke.iter().all(|id| id % 2 == 1), "{d:?}");
                assert!(d.to_choke(&peers).iter().all(|id| *id == 0 || id % 2 == 1));
                unchoked_odd += d.unchoke.len();
                apply(&mut peers, &d, now);
                assert!(
                    peers[0].choked,
                    "the unchoked non-interested peer got choked"
                );
                now += ROUND;
            }
            // The interested ones did get slots: 4 per round.
            assert_eq!(unchoked_odd, 60 * 4);
        }
        // Nobody interested: nobody unchoked.
        let idle: Vec<_> = (0..5)
            .map(|i| PeerView {
                interested: false,
                choked: false,
                ..with_down(i, 1e6, now)
            })
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 7);
        for seeding in [false, true] {
            let d = c.run_round(&idle, seeding, now);
            assert!(d.unchoke.is_empty() && d.optimistic.is_none());
            assert_eq!(d.to_choke(&idle), vec![0, 1, 2, 3, 4]);
        }
    }

    #[test]
    fn optimistic_rotates_every_three_rounds_and_not_in_between() {
        let mut now = base();
        // Three fast regulars and 20 slow candidates for the optimistic slot.
        let mut peers: Vec<_> = (0..23)
            .map(|i| with_down(i, if i < 3 { 1e6 } else { 1.0 }, now))
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 42);
        let mut previous = None;
        let mut changes = 0;
        let rotations = 300;
        for round in 0..rotations * 3 {
            let d = c.run_round(&peers, false, now);
            assert_eq!(sorted(d.unchoke[..3].to_vec()), vec![0, 1, 2]);
            let o = d.optimistic.expect("optimistic");
            assert!(o >= 3);
            if round % 3 == 0 {
                assert_eq!(c.optimistic_round, round as u64, "drawn at round {round}");
                if previous != Some(o) {
                    changes += 1;
                }
            } else {
                assert_eq!(Some(o), previous, "optimistic changed between rotations");
            }
            previous = Some(o);
            apply(&mut peers, &d, now);
            now += ROUND;
        }
        // With 20 candidates a draw repeats the previous peer 1 time in 20.
        assert!(
            changes > rotations * 85 / 100,
            "only {changes} changes in {rotations}"
        );
    }

    #[test]
    fn new_peers_are_three_times_as_likely_to_be_optimistic() {
        let mut now = base();
        let config = ChokerConfig::default();
        let mut c = Choker::with_seed(config.clone(), 2006);
        // 3 fast regulars; ids 10..15 new, ids 20..25 old.
        let mut counts: HashMap<u32, u32> = HashMap::new();
        let rotations = 3000;
        for _ in 0..rotations * 3 {
            let mut peers: Vec<_> = (0..3).map(|i| with_down(i, 1e6, now)).collect();
            for i in 10..15 {
                peers.push(PeerView {
                    connected_at: now - Duration::from_secs(5),
                    ..peer(i, now)
                });
            }
            peers.extend((20..25).map(|i| peer(i, now)));
            let before = c.optimistic_round;
            let d = c.run_round(&peers, false, now);
            if c.optimistic_round != before || c.round == 1 {
                *counts.entry(d.optimistic.expect("optimistic")).or_default() += 1;
            }
            now += ROUND;
        }
        let new: u32 = (10..15).map(|i| counts.get(&i).copied().unwrap_or(0)).sum();
        let old: u32 = (20..25).map(|i| counts.get(&i).copied().unwrap_or(0)).sum();
        assert_eq!(new + old, rotations, "one draw per rotation: {counts:?}");
        let ratio = f64::from(new) / f64::from(old);
        eprintln!("optimistic draws: new {new}, old {old}, ratio {ratio:.3}");
        // Expected 3.0; the standard error at 3000 draws is about 0.11.
        assert!(
            (2.6..3.4).contains(&ratio),
            "new/old ratio {ratio} ({new} vs {old})"
        );
    }

    #[test]
    fn optimistic_replaced_at_once_when_gone_or_not_interested() {
        let mut now = base();
        let mut peers: Vec<_> = (0..10)
            .map(|i| with_down(i, if i < 3 { 1e6 } else { 1.0 }, now))
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 3);
        let first = c
            .run_round(&peers, false, now)
            .optimistic
            .expect("optimistic");
        now += ROUND;
        // It loses interest: a new one is drawn in the next round, not 30 s later.
        peers
            .iter_mut()
            .find(|p| p.id == first)
            .expect("present")
            .interested = false;
        let d = c.run_round(&peers, false, now);
        let second = d.optimistic.expect("optimistic");
        assert_ne!(second, first);
        assert!(!d.is_unchoked(&first));
        assert_eq!(c.optimistic_round, 1, "clock restarted");
        now += ROUND;
        // It disconnects: same.
        peers.retain(|p| p.id != second);
        let d = c.run_round(&peers, false, now);
        let third = d.optimistic.expect("optimistic");
        assert!(third != second && third != first);
        assert_eq!(c.optimistic_round, 2);
        now += ROUND;
        // Otherwise it stays until its 3 rounds are over.
        assert_eq!(c.run_round(&peers, false, now).optimistic, Some(third));
        now += ROUND;
        assert_eq!(c.run_round(&peers, false, now).optimistic, Some(third));
        assert_eq!(c.optimistic_round, 2);
        now += ROUND;
        c.run_round(&peers, false, now);
        assert_eq!(
            c.optimistic_round, 5,
            "redrawn three rounds after the last draw"
        );
    }

    #[test]
    fn optimistic_that_becomes_regular_is_replaced() {
        let mut now = base();
        let mut peers: Vec<_> = (0..10)
            .map(|i| with_down(i, if i < 3 { 1e6 } else { 1.0 }, now))
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 5);
        let o = c
            .run_round(&peers, false, now)
            .optimistic
            .expect("optimistic");
        now += ROUND;
        // It turns out to be the fastest peer.
        peers
            .iter_mut()
            .find(|p| p.id == o)
            .expect("present")
            .download_rate = 1e9;
        let d = c.run_round(&peers, false, now);
        assert_eq!(d.unchoke[0], o, "now a regular");
        let next = d.optimistic.expect("a new optimistic");
        assert_ne!(next, o);
        assert_eq!(d.unchoke.len(), 4);
        assert_no_duplicates(&d);
    }

    #[test]
    fn snubbed_peer_loses_regular_slot_and_regains_it() {
        let t0 = base();
        let config = ChokerConfig {
            slots: 2,
            ..ChokerConfig::default()
        };
        let mut c = Choker::with_seed(config, 9);
        let mut peers: Vec<_> = [5_000.0, 3_000.0, 2_000.0, 1_000.0, 500.0]
            .iter()
            .enumerate()
            .map(|(i, r)| PeerView {
                am_interested: true,
                last_piece_received: Some(t0),
                ..with_down(i as u32, *r, t0)
            })
            .collect();
        let d = c.run_round(&peers, false, t0);
        assert_eq!(&d.unchoke[..2], &[0, 1]);
        // Peer 0 sends nothing for 60 s; its (stale) rate still reads highest.
        for p in peers.iter_mut().skip(1) {
            p.last_piece_received = Some(t0 + Duration::from_secs(55));
        }
        let t1 = t0 + Duration::from_secs(59);
        assert_eq!(
            &c.run_round(&peers, false, t1).unchoke[..2],
            &[0, 1],
            "not yet"
        );
        let t2 = t0 + Duration::from_secs(60);
        let d = c.run_round(&peers, false, t2);
        assert_eq!(&d.unchoke[..2], &[1, 2], "snubbed peer 0 lost its slot");
        // It sends again: back in its regular slot.
        peers[0].last_piece_received = Some(t2 + Duration::from_secs(5));
        let d = c.run_round(&peers, false, t2 + Duration::from_secs(10));
        assert_eq!(&d.unchoke[..2], &[0, 1]);
    }

    #[test]
    fn snubbing_counts_from_connection_and_needs_our_interest() {
        let now = base();
        let config = ChokerConfig {
            slots: 1,
            ..ChokerConfig::default()
        };
        // Never sent a piece, connected 61 s ago, we want its pieces: snubbed.
        let mut fast = PeerView {
            am_interested: true,
            connected_at: now - Duration::from_secs(61),
            ..with_down(0, 1e6, now)
        };
        let slow = with_down(1, 1.0, now);
        let mut c = Choker::with_seed(config.clone(), 1);
        let d = c.run_round(&[fast.clone(), slow.clone()], false, now);
        assert_eq!(d.unchoke[0], 1);
        assert_eq!(
            d.optimistic,
            Some(0),
            "a snubbed peer may still be optimistic"
        );
        // Connected 30 s ago: not yet.
        fast.connected_at = now - Duration::from_secs(30);
        let mut c = Choker::with_seed(config.clone(), 1);
        assert_eq!(
            c.run_round(&[fast.clone(), slow.clone()], false, now)
                .unchoke[0],
            0
        );
        // We are not interested in it: never snubbed.
        fast.connected_at = now - Duration::from_secs(3600);
        fast.am_interested = false;
        let mut c = Choker::with_seed(config, 1);
        assert_eq!(c.run_round(&[fast, slow], false, now).unchoke[0], 0);
    }

    /// Runs `rounds` seed rounds over `peers`, applying each decision.
    fn run_seed(
        c: &mut Choker<u32>,
        peers: &mut [PeerView<u32>],
        start: Instant,
        rounds: usize,
    ) -> Vec<ChokeDecision<u32>> {
        let mut now = start;
        let mut out = Vec::new();
        for _ in 0..rounds {
            let d = c.run_round(peers, true, now);
            apply(peers, &d, now);
            out.push(d);
            now += ROUND;
        }
        out
    }

    #[test]
    fn seed_rounds_follow_two_draws_then_keep_pattern() {
        let now = base();
        let mut peers: Vec<_> = (0..10)
            .map(|i| PeerView {
                upload_rate: 1_000.0,
                ..peer(i, now)
            })
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 11);
        let mut now_round = now;
        for round in 0..90 {
            let before = peers.clone();
            let d = c.run_round(&peers, true, now_round);
            assert_no_duplicates(&d);
            assert_eq!(d.unchoke.len(), 4, "slots + 1 in round {round}");
            if round % 3 == 2 {
                assert_eq!(d.optimistic, None, "round {round} keeps 4, draws none");
                // Nobody newly unchoked in the keep round.
                assert!(d.to_unchoke(&before).is_empty(), "round {round}: {d:?}");
            } else {
                let o = d.optimistic.expect("a random draw");
                let was = before.iter().find(|p| p.id == o).expect("present");
                assert!(was.choked, "the draw is among choked peers");
                assert_eq!(d.unchoke[3], o);
                // The first 3 were unchoked already (after the first round).
                if round > 0 {
                    assert!(d.unchoke[..3].iter().all(|id| !before[*id as usize].choked));
                }
            }
            apply(&mut peers, &d, now_round);
            now_round += ROUND;
        }
    }

    #[test]
    fn seed_rotates_slots_over_every_interested_peer() {
        let now = base();
        let n = 12;
        let mut peers: Vec<_> = (0..n)
            .map(|i| PeerView {
                upload_rate: 50_000.0,
                ..peer(i, now)
            })
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 4);
        let rounds = 90;
        let decisions = run_seed(&mut c, &mut peers, now, rounds);
        let mut served = vec![0usize; n as usize];
        let mut streak = vec![0usize; n as usize];
        let mut longest = 0;
        for d in &decisions {
            for id in 0..n {
                if d.is_unchoked(&id) {
                    served[id as usize] += 1;
                    streak[id as usize] += 1;
                    longest = longest.max(streak[id as usize]);
                } else {
                    streak[id as usize] = 0;
                }
            }
        }
        // Every interested peer got served, none hogged a slot. With equal
        // rates the kept peers are the most recently unchoked ones, so a peer
        // is dropped at the first draw round that finds three peers unchoked
        // after it: at worst 6 rounds (drawn in a `1 mod 3` round, then
        // draws at +2, +3, +5, dropped at +6).
        assert!(served.iter().all(|s| *s > 0), "served {served:?}");
        eprintln!("seed: served {served:?}, longest streak {longest}");
        assert!(
            longest <= 6,
            "a peer stayed unchoked {longest} rounds in a row"
        );
        // Fair share is 90 * 4 / 12 = 30 rounds each.
        assert!(
            served.iter().all(|s| (10..=60).contains(s)),
            "served {served:?}"
        );

        // Contrast: the leecher rule with the same equal rates keeps the same
        // three regulars all the time.
        let mut leech: Vec<_> = (0..n).map(|i| with_down(i, 50_000.0, now)).collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 4);
        let mut t = now;
        for _ in 0..30 {
            let d = c.run_round(&leech, false, t);
            assert_eq!(sorted(d.unchoke[..3].to_vec()), vec![0, 1, 2]);
            apply(&mut leech, &d, t);
            t += ROUND;
        }
    }

    #[test]
    fn seed_prefers_recently_unchoked_peers_with_higher_upload_rate() {
        let now = base();
        let secs = Duration::from_secs;
        let unchoked = |id, rate, ago: u64| PeerView {
            choked: false,
            upload_rate: rate,
            last_unchoked: Some(now - secs(ago)),
            ..peer(id, now)
        };
        let peers = vec![
            // Recent (within 20 s): ranked by upload rate.
            unchoked(0, 100.0, 5),
            unchoked(1, 900.0, 15),
            unchoked(2, 500.0, 10),
            unchoked(3, 700.0, 19),
            // Unchoked long ago: ranked after all recent ones, whatever the rate.
            unchoked(4, 1e9, 40),
            unchoked(5, 1e8, 25),
            // Choked candidates for the draw.
            peer(6, now),
            peer(7, now),
        ];
        // Round 0 (mod 3): keep the 3 best recent, draw one choked.
        let mut c = Choker::with_seed(ChokerConfig::default(), 8);
        let d = c.run_round(&peers, true, now);
        assert_eq!(&d.unchoke[..3], &[1, 3, 2]);
        assert!(matches!(d.optimistic, Some(6 | 7)));
        assert_eq!(sorted(d.to_choke(&peers)), vec![0, 4, 5]);
        // A keep round (2 mod 3) keeps 4: all recent ones, none of the old.
        let mut c = Choker::with_seed(ChokerConfig::default(), 8);
        c.seed_rounds = 2;
        let d = c.run_round(&peers, true, now);
        assert_eq!(d.unchoke, vec![1, 3, 2, 0]);
        assert_eq!(d.optimistic, None);
        // Without recent peers, the most recently unchoked come first.
        let old = vec![
            unchoked(0, 1.0, 60),
            unchoked(1, 1e9, 90),
            unchoked(2, 5.0, 30),
            unchoked(3, 5.0, 45),
            PeerView {
                choked: false,
                ..peer(4, now)
            },
        ];
        let mut c = Choker::with_seed(ChokerConfig::default(), 8);
        c.seed_rounds = 2;
        assert_eq!(c.run_round(&old, true, now).unchoke, vec![2, 3, 0, 1]);
    }

    #[test]
    fn seed_fills_free_slots_with_longest_waiting_peers() {
        let now = base();
        let secs = Duration::from_secs;
        let peers = vec![
            PeerView {
                last_unchoked: Some(now - secs(10)),
                ..peer(0, now)
            },
            PeerView {
                last_unchoked: Some(now - secs(500)),
                ..peer(1, now)
            },
            peer(2, now),
            PeerView {
                last_unchoked: Some(now - secs(100)),
                ..peer(3, now)
            },
            PeerView {
                last_unchoked: Some(now - secs(20)),
                ..peer(4, now)
            },
        ];
        let mut c = Choker::with_seed(ChokerConfig::default(), 1);
        c.seed_rounds = 2;
        // Nobody unchoked, 4 to keep: never-unchoked first, then oldest.
        assert_eq!(c.run_round(&peers, true, now).unchoke, vec![2, 1, 3, 4]);
        // Only 4 interested, draw round: 3 kept, and the draw falls back to
        // the peer just dropped rather than leaving the slot idle.
        let mut four: Vec<_> = (0..4)
            .map(|i| PeerView {
                choked: false,
                last_unchoked: Some(now - secs(30 + u64::from(i))),
                ..peer(i, now)
            })
            .collect();
        four[3].upload_rate = 1.0;
        let mut c = Choker::with_seed(ChokerConfig::default(), 1);
        let d = c.run_round(&four, true, now);
        assert_eq!(&d.unchoke[..3], &[0, 1, 2]);
        assert_eq!(d.optimistic, Some(3));
        assert!(d.to_choke(&four).is_empty() && d.to_unchoke(&four).is_empty());
    }

    #[test]
    fn changing_slots_changes_unchoke_count() {
        let mut now = base();
        let mut peers: Vec<_> = (0..20)
            .map(|i| with_down(i, f64::from(i) * 10.0, now))
            .collect();
        let mut c = Choker::with_seed(ChokerConfig::default(), 21);
        for slots in [3, 5, 1, 8, 0, 2] {
            c.set_slots(slots);
            assert_eq!(c.config().slots, slots);
            for seeding in [false, true] {
                for _ in 0..6 {
                    let d = c.run_round(&peers, seeding, now);
                    assert_no_duplicates(&d);
                    assert_eq!(
                        d.unchoke.len(),
                        slots + 1,
                        "slots {slots} seeding {seeding}"
                    );
                    if !seeding {
                        let top: Vec<u32> = (0..slots as u32).map(|k| 19 - k).collect();
                        assert_eq!(&d.unchoke[..slots], &top[..]);
                    }
                    apply(&mut peers, &d, now);
                    now += ROUND;
                }
            }
        }
    }

    #[test]
    fn zero_slots_unchokes_only_the_optimistic() {
        let now = base();
        let peers: Vec<_> = (0..5).map(|i| with_down(i, 1e6, now)).collect();
        let config = ChokerConfig {
            slots: 0,
            ..ChokerConfig::default()
        };
        let mut c = Choker::with_seed(config.clone(), 2);
        let d = c.run_round(&peers, false, now);
        assert_eq!(d.unchoke.len(), 1);
        assert_eq!(d.optimistic, Some(d.unchoke[0]));
        // Seed state: a draw, a draw, then the most recent one kept.
        let mut peers = peers;
        let mut c = Choker::with_seed(config, 2);
        let ds = run_seed(&mut c, &mut peers, now, 3);
        assert!(ds.iter().all(|d| d.unchoke.len() == 1));
        assert!(ds[0].optimistic.is_some() && ds[1].optimistic.is_some());
        assert_eq!(ds[2].optimistic, None);
        assert_eq!(ds[2].unchoke, ds[1].unchoke);
    }

    #[test]
    fn disconnected_peers_are_never_returned() {
        let mut now = base();
        let mut peers: Vec<_> = (0..10)
            .map(|i| PeerView {
                upload_rate: f64::from(i),
                ..with_down(i, f64::from(i) * 100.0, now)
            })
            .collect();
        for seeding in [false, true] {
            let mut c = Choker::with_seed(ChokerConfig::default(), 13);
            let mut live = peers.clone();
            for round in 0..40 {
                if round % 4 == 3 && live.len() > 1 {
                    // The fastest (or the optimistic) one leaves.
                    let gone = c.optimistic().unwrap_or(live[live.len() - 1].id);
                    live.retain(|p| p.id != gone);
                }
                let d = c.run_round(&live, seeding, now);
                let ids: HashSet<u32> = live.iter().map(|p| p.id).collect();
                assert!(d.unchoke.iter().all(|id| ids.contains(id)), "{d:?}");
                assert!(d.optimistic.is_none_or(|o| ids.contains(&o)));
                apply(&mut live, &d, now);
                now += ROUND;
            }
        }
        // Everyone leaves.
        peers.clear();
        let mut c = Choker::with_seed(ChokerConfig::default(), 13);
        assert!(c.run_round(&peers, false, now).unchoke.is_empty());
        assert_eq!(c.optimistic(), None);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        let now = base();
        let mut c: Choker<u32> = Choker::with_seed(ChokerConfig::default(), 0);
        for seeding in [false, true, false] {
            let d = c.run_round(&[], seeding, now);
            assert!(d.unchoke.is_empty() && d.optimistic.is_none());
        }
        // NaN, infinities, negatives; instants in the future; duplicate ids.
        let weird = [
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            -5.0,
            0.0,
            f64::MAX,
            1.0,
        ];
        let mut peers: Vec<_> = weird
            .iter()
            .enumerate()
            .map(|(i, r)| PeerView {
                upload_rate: *r,
                connected_at: now + Duration::from_secs(100),
                last_unchoked: Some(now + Duration::from_secs(50)),
                last_piece_received: Some(now + Duration::from_secs(50)),
                am_interested: true,
                choked: i % 2 == 0,
                ..with_down(i as u32, *r, now)
            })
            .collect();
        peers.push(peers[1].clone());
        for seeding in [false, true] {
            let mut c = Choker::with_seed(ChokerConfig::default(), 0);
            for k in 0..9 {
                let d = c.run_round(&peers, seeding, now + ROUND * k);
                assert_no_duplicates(&d);
                assert_eq!(d.unchoke.len(), 4);
            }
        }
        // Leecher ranking: +inf first, then MAX, then 1.0; NaN counts as 0.
        let mut c = Choker::with_seed(ChokerConfig::default(), 0);
        let all_nan: Vec<_> = (0..5).map(|i| with_down(i, f64::NAN, now)).collect();
        assert_eq!(&c.run_round(&all_nan, false, now).unchoke[..3], &[0, 1, 2]);
        let mut c = Choker::with_seed(ChokerConfig::default(), 0);
        assert_eq!(&c.run_round(&peers, false, now).unchoke[..3], &[1, 5, 6]);
        // optimistic_every = 0 behaves as 1; a zero round length is fine.
        let config = ChokerConfig {
            optimistic_every: 0,
            round: Duration::ZERO,
            ..ChokerConfig::default()
        };
        let mut c = Choker::with_seed(config, 0);
        for seeding in [false, false, true, true, true] {
            c.run_round(&peers, seeding, now);
        }
        assert_eq!(c.rounds(), 5);
    }

    #[test]
    fn same_seed_same_decisions_regardless_of_input_order() {
        let now = base();
        let peers: Vec<_> = (0..15)
            .map(|i| PeerView {
                connected_at: now - Duration::from_secs(u64::from(i) * 10),
                ..with_down(i, f64::from(i % 4), now)
            })
            .collect();
        let mut reversed = peers.clone();
        reversed.reverse();
        for seeding in [false, true] {
            let mut a = Choker::with_seed(ChokerConfig::default(), 99);
            let mut b = Choker::with_seed(ChokerConfig::default(), 99);
            let (mut pa, mut pb) = (peers.clone(), reversed.clone());
            let mut t = now;
            for _ in 0..30 {
                let da = a.run_round(&pa, seeding, t);
                let db = b.run_round(&pb, seeding, t);
                assert_eq!(da, db);
                apply(&mut pa, &da, t);
                apply(&mut pb, &db, t);
                t += ROUND;
            }
        }
    }

    #[test]
    fn diffs_against_current_state() {
        let now = base();
        let mut peers: Vec<_> = (0..6).map(|i| peer(i, now)).collect();
        peers[0].choked = false;
        peers[4].choked = false;
        let d = ChokeDecision {
            unchoke: vec![0, 1, 2],
            optimistic: Some(2),
        };
        assert_eq!(d.to_unchoke(&peers), vec![1, 2]);
        assert_eq!(d.to_choke(&peers), vec![4]);
        assert!(d.is_unchoked(&2) && !d.is_unchoked(&4));
    }
}
