//! The endpoint's decisions, kept pure: which connection a received uTP
//! packet belongs to, whether a SYN is admitted, when a stray packet earns a
//! RESET, which id a new outbound connection takes, the bound on half-open
//! inbound connections, and the one timer queue of all connections.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::utp::demux::{Header, PacketType, HEADER_LEN};

/// A connection's demux key: the remote address and the connection id the
/// packets it sends us carry.
pub(crate) type Key = (SocketAddr, u16);

/// What to do with one received uTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// It belongs to this connection.
    To(Key),
    /// A SYN for a new inbound connection, admitted.
    Accept,
    /// Unknown connection (or a SYN refused): answer with a RESET.
    Reset,
    /// Nothing to do (a stray RESET or STATE).
    Drop,
}

/// Where a packet with `header` from `from` goes. `known` says whether a
/// key is a live connection; `admit` whether a new inbound one is allowed.
pub(crate) fn route(
    header: &Header,
    from: SocketAddr,
    known: impl Fn(&Key) -> bool,
    admit: bool,
) -> Route {
    let id = header.connection_id;
    match header.packet_type {
        // A SYN carries the id we will send with; we receive on id + 1. A
        // SYN for a connection we have is a retransmission (our answer was
        // lost): the connection answers it again.
        PacketType::Syn if known(&(from, id.wrapping_add(1))) => {
            Route::To((from, id.wrapping_add(1)))
        }
        PacketType::Syn if admit => Route::Accept,
        PacketType::Syn => Route::Reset,
        // Peers differ in which of the two ids a RESET carries.
        PacketType::Reset => [id, id.wrapping_sub(1), id.wrapping_add(1)]
            .into_iter()
            .map(|id| (from, id))
            .find(|key| known(key))
            .map_or(Route::Drop, Route::To),
        _ if known(&(from, id)) => Route::To((from, id)),
        // A STATE answering nothing would bounce RESETs between two
        // confused ends; DATA and FIN for a connection we lost get one.
        PacketType::State => Route::Drop,
        _ => Route::Reset,
    }
}

/// A RESET answering `header`: the same connection id, acknowledging its
/// sequence number.
pub(crate) fn reset_for(header: &Header, seq_nr: u16) -> [u8; HEADER_LEN] {
    let mut packet = [0u8; HEADER_LEN];
    packet[0] = (3 << 4) | 1;
    packet[2..4].copy_from_slice(&header.connection_id.to_be_bytes());
    packet[16..18].copy_from_slice(&seq_nr.to_be_bytes());
    packet[18..20].copy_from_slice(&header.seq_nr.to_be_bytes());
    packet
}

/// An id for a new outbound connection to `to`: the first of `candidates`
/// (random numbers) that no connection to `to` receives on.
pub(crate) fn free_id<T>(
    conns: &HashMap<Key, T>,
    to: SocketAddr,
    candidates: impl IntoIterator<Item = u16>,
) -> Option<u16> {
    candidates
        .into_iter()
        .find(|&id| !conns.contains_key(&(to, id)))
}

/// RESETs to strays at most `RESETS_PER_SECOND` on average, in bursts of
/// at most `RESET_BURST`: a flood of garbage must not make us a reflector.
#[derive(Debug)]
pub(crate) struct ResetLimiter {
    tokens: f64,
    at: Instant,
}

const RESETS_PER_SECOND: f64 = 100.0;
const RESET_BURST: f64 = 20.0;

impl ResetLimiter {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            tokens: RESET_BURST,
            at: now,
        }
    }

    /// Whether one more RESET may go out now.
    pub(crate) fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * RESETS_PER_SECOND).min(RESET_BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Inbound connections whose peer has sent nothing since its SYN, at most.
pub(crate) const MAX_HALF_OPEN: usize = 64;
/// How long an inbound connection may stay half-open before it is dropped.
pub(crate) const HALF_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// The half-open inbound connections, oldest first: a SYN was answered and
/// the peer has sent nothing since. They are not handed to the listener
/// yet (a BitTorrent initiator speaks first, and a forged source address
/// never answers). A SYN flood holds at most [`MAX_HALF_OPEN`] of them,
/// each for at most [`HALF_OPEN_TIMEOUT`]; past the bound a new SYN evicts
/// the oldest, so a real peer still gets in during a flood if it answers
/// before `MAX_HALF_OPEN` more SYNs arrive.
#[derive(Debug, Default)]
pub(crate) struct HalfOpen {
    queue: VecDeque<(Instant, Key)>,
}

impl HalfOpen {
    /// `key` became half-open at `now`; returns the connection evicted to
    /// make room, if the bound was reached.
    pub(crate) fn push(&mut self, key: Key, now: Instant) -> Option<Key> {
        let evicted = if self.queue.len() >= MAX_HALF_OPEN {
            self.queue.pop_front().map(|(_, key)| key)
        } else {
            None
        };
        self.queue.push_back((now, key));
        evicted
    }

    /// `key` is no longer half-open (the peer answered, or it ended).
    pub(crate) fn remove(&mut self, key: &Key) {
        if let Some(i) = self.queue.iter().position(|(_, k)| k == key) {
            self.queue.remove(i);
        }
    }

    /// The next connection half-open for [`HALF_OPEN_TIMEOUT`] by `now`.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Key> {
        match self.queue.front() {
            Some(&(since, key)) if now >= since + HALF_OPEN_TIMEOUT => {
                self.queue.pop_front();
                Some(key)
            }
            _ => None,
        }
    }

    /// When the oldest one expires.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.queue
            .front()
            .map(|(since, _)| *since + HALF_OPEN_TIMEOUT)
    }

    /// How many there are.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// Every connection's next deadline in one queue. Entries are not removed
/// when a deadline moves later: the stale one pops, the connection is
/// looked at, finds nothing due and is queued again at its real deadline.
/// A deadline moving earlier is queued at once. Entries of connections
/// gone (a SYN flood leaves one per SYN) are swept out once the queue has
/// doubled since the last sweep, so it stays in proportion to the live
/// connections.
#[derive(Debug)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, Key)>>,
    /// Past this length, the next push sweeps.
    sweep_at: usize,
}

/// The smallest queue length that is swept.
const SWEEP_MIN: usize = 1024;

impl Default for Timers {
    fn default() -> Self {
        Self {
            heap: BinaryHeap::new(),
            sweep_at: SWEEP_MIN,
        }
    }
}

impl Timers {
    /// Queues `key` at `at`; true when it is now the earliest deadline (the
    /// endpoint's sleep must be shortened). `live` says which connections
    /// still exist, for a sweep.
    pub(crate) fn push(&mut self, at: Instant, key: Key, live: impl Fn(&Key) -> bool) -> bool {
        if self.heap.len() >= self.sweep_at {
            self.heap.retain(|Reverse((_, k))| live(k));
            self.sweep_at = (2 * self.heap.len()).max(SWEEP_MIN);
        }
        let earliest = self.next().is_none_or(|next| at < next);
        self.heap.push(Reverse((at, key)));
        earliest
    }

    /// Entries queued (stale ones included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// The earliest deadline.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next connection whose deadline has come by `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<(Instant, Key)> {
        match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }
}

/// How long a connection whose stream was dropped may take to close
/// gracefully (send what is left, FIN) before it is reset.
pub(crate) const LINGER: Duration = Duration::from_secs(30);

#[cfg(test)]
mod tests {
    use super::*;

    fn header(packet_type: PacketType, connection_id: u16) -> Header {
        Header {
            packet_type,
            connection_id,
            timestamp_us: 0,
            timestamp_diff_us: 0,
            wnd_size: 0,
            seq_nr: 7,
            ack_nr: 0,
            payload_offset: HEADER_LEN,
        }
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn packets_go_to_their_connection_or_earn_a_reset() {
        let live = [(addr(1), 100)];
        let known = |k: &Key| live.contains(k);
        let to = |t, id| route(&header(t, id), addr(1), known, true);
        assert_eq!(to(PacketType::Data, 100), Route::To((addr(1), 100)));
        assert_eq!(to(PacketType::State, 100), Route::To((addr(1), 100)));
        assert_eq!(to(PacketType::Data, 101), Route::Reset);
        assert_eq!(to(PacketType::Fin, 101), Route::Reset);
        assert_eq!(to(PacketType::State, 101), Route::Drop);
        // Another address with the same id is another connection.
        let other = route(&header(PacketType::Data, 100), addr(2), known, true);
        assert_eq!(other, Route::Reset);
    }

    #[test]
    fn syns_are_accepted_answered_again_or_refused() {
        let live = [(addr(1), 100)];
        let known = |k: &Key| live.contains(k);
        let syn = |id, admit| route(&header(PacketType::Syn, id), addr(1), known, admit);
        assert_eq!(syn(99, true), Route::To((addr(1), 100)));
        assert_eq!(syn(99, false), Route::To((addr(1), 100)));
        assert_eq!(syn(5, true), Route::Accept);
        assert_eq!(syn(5, false), Route::Reset);
    }

    #[test]
    fn a_reset_finds_its_connection_by_either_id() {
        let live = [(addr(1), 100)];
        let known = |k: &Key| live.contains(k);
        let reset = |id| route(&header(PacketType::Reset, id), addr(1), known, true);
        assert_eq!(reset(100), Route::To((addr(1), 100)));
        assert_eq!(reset(101), Route::To((addr(1), 100)));
        assert_eq!(reset(99), Route::To((addr(1), 100)));
        assert_eq!(reset(200), Route::Drop);
    }

    #[test]
    fn the_reset_packet_parses_and_answers_the_stray() {
        let stray = header(PacketType::Data, 4242);
        let packet = reset_for(&stray, 9);
        let parsed = Header::parse(&packet).unwrap();
        assert_eq!(parsed.packet_type, PacketType::Reset);
        assert_eq!(parsed.connection_id, 4242);
        assert_eq!(parsed.seq_nr, 9);
        assert_eq!(parsed.ack_nr, 7);
    }

    #[test]
    fn free_ids_skip_the_ones_in_use_for_that_address() {
        let mut conns = HashMap::new();
        conns.insert((addr(1), 5), ());
        assert_eq!(free_id(&conns, addr(1), [5, 6]), Some(6));
        assert_eq!(free_id(&conns, addr(2), [5, 6]), Some(5));
        assert_eq!(free_id(&conns, addr(1), [5]), None);
    }

    #[test]
    fn resets_are_rate_limited() {
        let t0 = Instant::now();
        let mut limiter = ResetLimiter::new(t0);
        let burst = (0..100).filter(|_| limiter.allow(t0)).count();
        assert_eq!(burst, RESET_BURST as usize);
        // 100 ms later, 10 more.
        let later = t0 + Duration::from_millis(100);
        let refill = (0..100).filter(|_| limiter.allow(later)).count();
        assert_eq!(refill, 10);
    }

    #[test]
    fn half_open_connections_are_bounded_oldest_out_and_expire() {
        let t0 = Instant::now();
        let mut half = HalfOpen::default();
        for port in 0..MAX_HALF_OPEN as u16 {
            assert_eq!(half.push((addr(port), 1), t0), None);
        }
        // Past the bound, each new one evicts the oldest.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(half.push((addr(1000), 1), later), Some((addr(0), 1)));
        assert_eq!(half.push((addr(1001), 1), later), Some((addr(1), 1)));
        assert_eq!(half.len(), MAX_HALF_OPEN);
        // One that answered leaves the queue.
        half.remove(&(addr(2), 1));
        assert_eq!(half.len(), MAX_HALF_OPEN - 1);
        assert_eq!(half.push((addr(1002), 1), later), None);
        // None expires early; the first ones expire first.
        assert_eq!(half.pop_expired(t0 + HALF_OPEN_TIMEOUT / 2), None);
        let expired: Vec<_> =
            std::iter::from_fn(|| half.pop_expired(t0 + HALF_OPEN_TIMEOUT)).collect();
        assert_eq!(expired.len(), MAX_HALF_OPEN - 3);
        assert_eq!(expired[0], (addr(3), 1));
        assert_eq!(half.len(), 3);
        let rest: Vec<_> =
            std::iter::from_fn(|| half.pop_expired(later + HALF_OPEN_TIMEOUT)).collect();
        assert_eq!(rest.len(), 3);
        assert_eq!(half.len(), 0);
    }

    #[test]
    fn timers_of_gone_connections_are_swept() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let live = |k: &Key| k.1 < 10;
        // A flood: one entry per connection, almost all gone at once.
        for id in 0..60_000u16 {
            timers.push(t0 + Duration::from_secs(30), (addr(1), id), live);
            assert!(timers.len() <= 2 * SWEEP_MIN, "{} entries", timers.len());
        }
        // The live ones are kept.
        let mut popped = Vec::new();
        while let Some((_, key)) = timers.pop_due(t0 + Duration::from_secs(31)) {
            popped.push(key.1);
        }
        for id in 0..10 {
            assert!(popped.contains(&id));
        }
    }

    #[test]
    fn timers_pop_in_order_and_report_a_new_earliest() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut timers = Timers::default();
        let all = |_: &Key| true;
        assert!(timers.push(ms(20), (addr(1), 1), all));
        assert!(!timers.push(ms(30), (addr(1), 2), all));
        assert!(timers.push(ms(10), (addr(1), 3), all));
        assert_eq!(timers.next(), Some(ms(10)));
        assert_eq!(timers.pop_due(ms(5)), None);
        assert_eq!(timers.pop_due(ms(25)), Some((ms(10), (addr(1), 3))));
        assert_eq!(timers.pop_due(ms(25)), Some((ms(20), (addr(1), 1))));
        assert_eq!(timers.pop_due(ms(25)), None);
        assert_eq!(timers.next(), Some(ms(30)));
    }
}
