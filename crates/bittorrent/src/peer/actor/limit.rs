//! The peer actor under the rate limits: piece payload received and sent
//! is charged to the torrent's and the session's buckets; while they are in
//! debt the actor stops reading the socket (TCP and uTP push back on the
//! sender) or stops sending blocks. Other messages are not charged and,
//! while reading goes on, not delayed.

use std::time::Instant;

use crate::peer::actor::PeerActor;

impl PeerActor {
    /// Charges `bytes` of piece payload received.
    pub(super) fn charge_received(&mut self, bytes: usize) {
        let now = Instant::now();
        let turn = self.limits.received(bytes as u64, now);
        if turn.is_some() {
            self.read_pause.set(turn, now);
        }
    }

    /// Charges `bytes` of piece payload sent.
    pub(super) fn charge_sent(&mut self, bytes: u64) {
        let now = Instant::now();
        let turn = self.limits.sent(bytes, now);
        if turn.is_some() {
            self.send_pause.set(turn, now);
        }
    }

    /// Until when the socket is not read: the guard's budget, or the
    /// download limits until this peer's turn (its last payload paid).
    pub(super) fn read_paused(&mut self, now: Instant) -> Option<Instant> {
        let limits = &self.limits;
        let limited = self
            .read_pause
            .until(now, |now| limits.receive_ready_at(now));
        self.guard.ready_at(now).max(limited)
    }

    /// Until when no block is sent: the upload limits, until this peer's
    /// turn.
    pub(super) fn send_paused(&mut self, now: Instant) -> Option<Instant> {
        let limits = &self.limits;
        self.send_pause.until(now, |now| limits.send_ready_at(now))
    }
}
