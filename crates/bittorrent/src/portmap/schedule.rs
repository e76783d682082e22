//! When to map, renew and retry: the port mapper's synchronous core.
//!
//! One slot per transport (TCP, UDP). A slot is either waiting to (re)try a
//! mapping at some instant, or mapped with a renewal instant at half the
//! granted lifetime (RFC 6886 §3.3 and RFC 6887 §11.2.1 both advise renewing
//! well before expiry). A failed attempt retries after a delay that doubles
//! from [`Schedule::FIRST_RETRY`] up to [`Schedule::MAX_RETRY`]; a success
//! resets it. No sockets, no timers: the actor passes `now` in.

use std::time::{Duration, Instant};

use crate::portmap::{MapTransport, PortMapProtocol};

/// What the actor should do for a slot now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Action {
    /// Ask for a new mapping, trying the configured protocols in order.
    Map,
    /// Refresh the live mapping (same protocol and external port).
    Renew(PortMapProtocol),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Not mapped; try at the instant.
    Waiting(Instant),
    /// Mapped with `protocol`; renew at the instant.
    Mapped {
        protocol: PortMapProtocol,
        renew_at: Instant,
    },
}

#[derive(Clone, Copy, Debug)]
struct Slot {
    transport: MapTransport,
    state: State,
    /// The delay after the next failure.
    backoff: Duration,
}

/// The timing of every slot.
#[derive(Debug)]
pub(crate) struct Schedule {
    slots: Vec<Slot>,
}

impl Schedule {
    /// Delay before the first retry after a failure.
    pub(crate) const FIRST_RETRY: Duration = Duration::from_secs(10);
    /// Longest delay between retries.
    pub(crate) const MAX_RETRY: Duration = Duration::from_secs(15 * 60);
    /// Renewals are never closer together than this, whatever the gateway
    /// granted (a gateway granting 0 s must not make us spin).
    pub(crate) const MIN_RENEW: Duration = Duration::from_secs(1);

    /// A schedule whose every slot is due at `now`.
    pub(crate) fn new(transports: &[MapTransport], now: Instant) -> Self {
        let slots = transports
            .iter()
            .map(|&transport| Slot {
                transport,
                state: State::Waiting(now),
                backoff: Self::FIRST_RETRY,
            })
            .collect();
        Self { slots }
    }

    /// The earliest instant at which some slot is due; `None` with no slot.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.slots.iter().map(|s| s.due_at()).min()
    }

    /// The slots due at `now`, with what to do for each.
    pub(crate) fn due(&self, now: Instant) -> Vec<(MapTransport, Action)> {
        self.slots
            .iter()
            .filter(|s| s.due_at() <= now)
            .map(|s| {
                let action = match s.state {
                    State::Waiting(_) => Action::Map,
                    State::Mapped { protocol, .. } => Action::Renew(protocol),
                };
                (s.transport, action)
            })
            .collect()
    }

    /// `transport` is mapped by `protocol` for `lifetime` from `now`: renew
    /// at half of it.
    pub(crate) fn mapped(
        &mut self,
        transport: MapTransport,
        protocol: PortMapProtocol,
        lifetime: Duration,
        now: Instant,
    ) {
        if let Some(slot) = self.slot(transport) {
            slot.state = State::Mapped {
                protocol,
                renew_at: now + (lifetime / 2).max(Self::MIN_RENEW),
            };
            slot.backoff = Self::FIRST_RETRY;
        }
    }

    /// Mapping (or renewing) `transport` failed at `now`: retry later, each
    /// time waiting twice as long. Returns the delay.
    pub(crate) fn failed(&mut self, transport: MapTransport, now: Instant) -> Duration {
        let Some(slot) = self.slot(transport) else {
            return Duration::ZERO;
        };
        let delay = slot.backoff;
        slot.state = State::Waiting(now + delay);
        slot.backoff = (delay * 2).min(Self::MAX_RETRY);
        delay
    }

    fn slot(&mut self, transport: MapTransport) -> Option<&mut Slot> {
        self.slots.iter_mut().find(|s| s.transport == transport)
    }
}

impl Slot {
    fn due_at(&self) -> Instant {
        match self.state {
            State::Waiting(at) => at,
            State::Mapped { renew_at, .. } => renew_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOTH: [MapTransport; 2] = [MapTransport::Tcp, MapTransport::Udp];

    #[test]
    fn every_slot_is_due_at_start() {
        let now = Instant::now();
        let s = Schedule::new(&BOTH, now);
        assert_eq!(s.next_due(), Some(now));
        assert_eq!(
            s.due(now),
            vec![
                (MapTransport::Tcp, Action::Map),
                (MapTransport::Udp, Action::Map)
            ]
        );
    }

    #[test]
    fn renews_at_half_the_lifetime() {
        let now = Instant::now();
        let mut s = Schedule::new(&[MapTransport::Tcp], now);
        s.mapped(
            MapTransport::Tcp,
            PortMapProtocol::Pcp,
            Duration::from_secs(60),
            now,
        );
        assert_eq!(s.next_due(), Some(now + Duration::from_secs(30)));
        assert!(s.due(now + Duration::from_secs(29)).is_empty());
        assert_eq!(
            s.due(now + Duration::from_secs(30)),
            vec![(MapTransport::Tcp, Action::Renew(PortMapProtocol::Pcp))]
        );
    }

    #[test]
    fn a_zero_lifetime_does_not_spin() {
        let now = Instant::now();
        let mut s = Schedule::new(&[MapTransport::Udp], now);
        s.mapped(
            MapTransport::Udp,
            PortMapProtocol::Upnp,
            Duration::ZERO,
            now,
        );
        assert_eq!(s.next_due(), Some(now + Schedule::MIN_RENEW));
    }

    #[test]
    fn failures_back_off_doubling_to_a_cap_and_success_resets() {
        let now = Instant::now();
        let mut s = Schedule::new(&[MapTransport::Tcp], now);
        let mut delays = Vec::new();
        for _ in 0..10 {
            delays.push(s.failed(MapTransport::Tcp, now));
        }
        assert_eq!(delays[0], Schedule::FIRST_RETRY);
        assert_eq!(delays[1], Schedule::FIRST_RETRY * 2);
        assert_eq!(*delays.last().unwrap(), Schedule::MAX_RETRY);
        assert!(delays.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.next_due(), Some(now + Schedule::MAX_RETRY));
        assert_eq!(
            s.due(now + Schedule::MAX_RETRY),
            vec![(MapTransport::Tcp, Action::Map)]
        );
        s.mapped(
            MapTransport::Tcp,
            PortMapProtocol::NatPmp,
            Duration::from_secs(10),
            now,
        );
        assert_eq!(s.failed(MapTransport::Tcp, now), Schedule::FIRST_RETRY);
    }

    #[test]
    fn slots_are_independent() {
        let now = Instant::now();
        let mut s = Schedule::new(&BOTH, now);
        s.mapped(
            MapTransport::Tcp,
            PortMapProtocol::Upnp,
            Duration::from_secs(100),
            now,
        );
        s.failed(MapTransport::Udp, now);
        assert_eq!(s.next_due(), Some(now + Schedule::FIRST_RETRY));
        assert_eq!(
            s.due(now + Schedule::FIRST_RETRY),
            vec![(MapTransport::Udp, Action::Map)]
        );
    }
}
