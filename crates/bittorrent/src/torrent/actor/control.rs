//! The shell's side of whether the torrent runs: the session's queue
//! verdict, the status it publishes to the session, and the commands that
//! pause, resume, force or limit it. With a core these go to the core; before
//! it (a magnet link) they are kept in the pending options, and a magnet that
//! may not run waits to start.

use std::time::Instant;

use crate::event::Event;
use crate::limits::TorrentShareLimits;
use crate::torrent::actor::{Phase, Shell};
use crate::torrent::status::Standing;
use crate::torrent::{TorrentError, TorrentState};

impl Shell {
    /// The session's queue changed its verdict.
    pub(super) fn on_queued(&mut self) {
        let queued = self.links.queued();
        self.pending.run.queued = queued;
        match self.core() {
            Some(core) => core.set_queued(queued, Instant::now()),
            None => self.start_deferred(),
        }
    }

    /// Starts a waiting magnet link once it may run.
    fn start_deferred(&mut self) {
        let run = &self.pending.run;
        if run.paused || run.queued || self.stopping {
            return;
        }
        if let Some(source) = self.deferred.take() {
            self.start(source);
        }
    }

    /// Tells the session where the torrent stands (it decides the queue).
    pub(super) fn publish_standing(&mut self) {
        let standing = match self.core() {
            Some(core) => core.standing(),
            None => Standing {
                paused: self.pending.run.paused,
                force: self.pending.run.force_start,
                seeding: false,
            },
        };
        self.links.publish_standing(standing);
    }

    /// Tells the session the torrent's totals and rates (each tick).
    pub(super) fn publish_transfer(&mut self, now: Instant) {
        if let Some(core) = self.core() {
            let transfer = core.transfer();
            let rates = core.rates(now);
            (self.links).publish_transfer(transfer.downloaded, transfer.uploaded, rates);
        }
    }

    pub(super) fn pause(&mut self, now: Instant) {
        if let Some(core) = self.core() {
            return core.pause(now);
        }
        if !self.pending.run.paused {
            // A magnet fetching its metadata goes on; it is paused once
            // its torrent runs.
            self.pending.run.paused = true;
            self.emit(Event::TorrentPaused {
                info_hash: self.info_hash,
            });
        }
    }

    pub(super) fn resume(&mut self, now: Instant) {
        if let Some(core) = self.core() {
            return core.resume(now);
        }
        if self.pending.run.paused {
            self.pending.run.paused = false;
            self.emit(Event::TorrentResumed {
                info_hash: self.info_hash,
            });
            self.start_deferred();
        }
    }

    pub(super) fn set_force_start(&mut self, force: bool, now: Instant) {
        if let Some(core) = self.core() {
            return core.set_force_start(force, now);
        }
        self.pending.run.force_start = force;
        if force {
            self.resume(now);
        }
    }

    pub(super) fn set_share_limits(&mut self, limits: TorrentShareLimits, now: Instant) {
        match self.core() {
            Some(core) => core.set_share_limits(limits, now),
            None => self.pending.run.share_limits = limits,
        }
    }

    /// Announces now: the core's trackers and DHT, or in the metadata
    /// phase the trackers and a DHT lookup.
    pub(super) fn reannounce(&mut self, now: Instant) {
        match &mut self.phase {
            Phase::Running(running) => running.core.reannounce(now),
            Phase::Metadata(phase) => {
                phase.next_lookup = now;
                self.wake_announcer();
                self.lookup_if_due(now);
            }
            Phase::Ended => {}
        }
    }

    pub(super) fn recheck(&mut self, now: Instant) -> Result<(), TorrentError> {
        let core = self.core().ok_or(TorrentError::MetadataPending)?;
        core.recheck(now);
        Ok(())
    }

    /// The state of a torrent without a core: waiting, or fetching metadata.
    pub(super) fn state_before_core(&self) -> TorrentState {
        match (&self.deferred, self.pending.run.paused) {
            (Some(_), true) => TorrentState::Paused,
            (Some(_), false) => TorrentState::Queued,
            (None, _) => TorrentState::FetchingMetadata,
        }
    }
}
