//! When the core's next tick is due. A torrent with something to tend
//! (peers, web seeds, readers, candidates to dial, pieces to verify, a
//! record to write, transfer rates still falling to zero) ticks every
//! second; a quiet one (an idle seed, a paused or queued torrent, one
//! checking or waiting to)
//! only at its next DHT announce, and at least every [`QUIET_TICK`], so a
//! session of thousands of idle torrents stays asleep. Any input may make
//! a quiet torrent busy again: the actor asks again after each one.

use std::time::{Duration, Instant};

use crate::torrent::core::{Finalizing, State, TorrentCore};

/// The tick of a torrent with something to tend.
pub(crate) const TICK: Duration = Duration::from_secs(1);
/// The longest a quiet torrent sleeps between ticks.
pub(crate) const QUIET_TICK: Duration = Duration::from_secs(300);

impl TorrentCore {
    /// When the tick after the one at `last` is due, as of `now`.
    pub(crate) fn next_tick(&mut self, last: Instant, now: Instant) -> Instant {
        if self.busy(now) {
            return last + TICK;
        }
        let quiet = last + QUIET_TICK;
        if self.config.use_dht && self.state == State::Active && !self.dht_running {
            return quiet.min(self.next_dht.max(last + TICK));
        }
        quiet
    }

    /// Whether anything the tick does is to be done within a second.
    fn busy(&mut self, now: Instant) -> bool {
        let control = &self.control;
        let limits = (control.options.share_limits).resolve(&control.session_share);
        let timed_limit = limits.seeding_time.is_some() && self.complete;
        let moving = self.download.rate(now) > 0.0 || self.upload.rate(now) > 0.0;
        // Checking (or waiting for a permit to): its end is an input.
        self.state == State::Stopping
            || !self.peers.addrs().is_empty()
            || self.swarm.len() > 0
            || !self.readers.is_empty()
            || self.webseeds.active() > 0
            || (!self.complete && self.webseeds.in_use())
            || self.flow.disk_busy()
            || self.finalizing != Finalizing::No
            || self.resume_dirty
            || self.saving
            || control.recheck_due
            || (timed_limit && self.state == State::Active)
            || moving
    }
}
