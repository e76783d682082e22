//! The torrent's life cycle in the core: check, pause and resume, complete,
//! stop; store jobs, trackers and statistics.

use std::time::Instant;

use crate::event::Event;
use crate::torrent::check::Checked;
use crate::torrent::core::{Action, Finalizing, State, TorrentCore};
use crate::torrent::error::JobError;
use crate::torrent::{TorrentState, TorrentStats};
use crate::tracker::TrackerUpdate;

impl TorrentCore {
    /// The start-up check found what the store holds. The torrent becomes
    /// active.
    pub(crate) fn checked(&mut self, checked: &Checked, now: Instant) {
        if self.state != State::Checking {
            return;
        }
        for index in checked.have.iter_ones() {
            self.flow.mark_have(index as u32);
        }
        // What hashing found, and the files as they are now, are recorded at
        // once, so the next start need not hash again.
        if !checked.exact {
            self.save_resume();
        }
        let count = self.have().count_ones();
        log::info!(
            "{} {count} of {} pieces already present ({} from the resume record, {} hashed)",
            self.tag(),
            self.meta.piece_count(),
            checked.trusted,
            checked.hashed
        );
        self.emit(Event::TorrentChecked {
            info_hash: self.info_hash,
            pieces_have: count,
        });
        // Held until the control says it runs (not paused, queued or failed).
        self.state = State::Paused;
        self.control.counted_to = now;
        self.publish_transfer();
        if self.flow.picker().is_complete() {
            self.complete = true;
            if self.have().is_full() {
                log::info!("{} seeding", self.tag());
            } else {
                log::info!("{} selected files complete", self.tag());
            }
            self.emit(Event::TorrentComplete {
                info_hash: self.info_hash,
            });
        }
        self.apply_control(now);
        self.check_share_limit(now);
    }

    pub(crate) fn start_announcer(&mut self) {
        if self.config.use_trackers && !self.announcing {
            self.announcing = true;
            self.out.push(Action::StartAnnouncer);
        }
    }

    pub(crate) fn stop_announcer(&mut self) {
        if self.announcing {
            self.announcing = false;
            self.out.push(Action::StopAnnouncer);
        }
    }

    /// Shutdown begins: every peer is closed, pieces already complete are
    /// still verified; nothing new starts.
    pub(crate) fn stop(&mut self) {
        self.state = State::Stopping;
        for addr in self.peers.addrs() {
            self.peers.disconnect(addr, &mut self.out);
        }
        self.start_writes();
    }

    /// The end of a shutdown, once every job is done: the last resume
    /// record (if anything changed) and the announcer's `stopped`. True
    /// while there is still a job to wait for.
    pub(crate) fn finish(&mut self) -> bool {
        self.save_resume_if_dirty();
        if self.saving || self.flow.disk_busy() {
            return true;
        }
        self.stop_announcer();
        false
    }

    /// Every wanted piece is verified: no longer interested in anyone, other
    /// seeds are of no use, the store is finalized.
    pub(crate) fn on_complete(&mut self) {
        self.complete = true;
        self.control.completed_at = Some(self.control.counted_to);
        log::info!("{} all pieces verified; finalizing storage", self.tag());
        for addr in self.peers.addrs() {
            self.peers.set_interest(addr, false, &mut self.out);
            self.drop_if_both_seeds(addr);
        }
        self.finalizing = Finalizing::Due;
        self.finalize_if_due();
    }

    /// Finalizes the store when due, unless it is taking a file selection.
    pub(crate) fn finalize_if_due(&mut self) {
        let settled = !self.selection.is_storing() && !self.selection.has_pending();
        if self.finalizing == Finalizing::Due && settled {
            self.finalizing = Finalizing::Running;
            self.out.push(Action::Finalize);
        }
    }

    /// The store was finalized (or failed to be).
    pub(crate) fn finalized(&mut self, result: Result<(), JobError>) {
        self.finalizing = Finalizing::No;
        match result {
            Ok(()) => {
                if !self.saving {
                    self.save_resume();
                }
                log::info!("{} download complete; seeding", self.tag());
                self.emit(Event::TorrentComplete {
                    info_hash: self.info_hash,
                });
            }
            Err(e) => self.fail(format!("finalizing storage failed: {e}")),
        }
    }

    pub(crate) fn save_resume_if_dirty(&mut self) {
        if self.resume_dirty && !self.saving {
            self.save_resume();
        }
    }

    fn save_resume(&mut self) {
        self.resume_dirty = false;
        self.saving = true;
        self.out.push(Action::SaveResume(self.have().clone()));
    }

    /// The resume record was written (or not: then the next start checks
    /// by hash).
    pub(crate) fn resume_saved(&mut self, result: Result<(), JobError>) {
        self.saving = false;
        if let Err(e) = result {
            log::warn!("{} cannot write the resume record: {e}", self.tag());
        }
    }

    /// An announce answered or failed.
    pub(crate) fn tracker(&mut self, update: TrackerUpdate, now: Instant) {
        let info_hash = self.info_hash;
        match update {
            TrackerUpdate::Announced {
                url,
                peers,
                warning,
            } => {
                log::debug!("{} {url} returned {} peers", self.tag(), peers.len());
                if let Some(message) = warning {
                    let url = url.clone();
                    self.emit(Event::TrackerError {
                        info_hash,
                        url,
                        message,
                    });
                }
                let count = peers.len();
                self.emit(Event::TrackerAnnounced {
                    info_hash,
                    url,
                    peers: count,
                });
                self.add_candidates(peers, false, now);
            }
            TrackerUpdate::Failed { url, error } => {
                self.emit(Event::TrackerError {
                    info_hash,
                    url,
                    message: error,
                });
            }
        }
    }

    /// The torrent's counters now.
    pub(crate) fn stats(&mut self, now: Instant) -> TorrentStats {
        self.count_time(now);
        let (peers, interested_peers, inbound_peers, unchoked_peers) = self.peers.counts();
        let seeds = (self.peers.connected())
            .filter(|(_, p)| p.bitfield.is_full())
            .count();
        let picker = self.flow.picker();
        let control = &self.control;
        let totals = control.options.totals;
        TorrentStats {
            pieces_total: self.meta.piece_count(),
            pieces_have: picker.have().count_ones(),
            bytes_total: self.meta.total_length,
            bytes_have: self.flow.bytes_have(),
            bytes_wanted: picker.wanted_bytes(),
            bytes_left: picker.missing_wanted_bytes(),
            downloaded: self.download.total(),
            uploaded: self.upload.total(),
            wasted: self.flow.wasted(),
            download_rate: self.download.rate(now),
            upload_rate: self.upload.rate(now),
            peers,
            known_peers: self.swarm.len(),
            interested_peers,
            inbound_peers,
            unchoked_peers,
            // Complete once the store is settled, too.
            complete: self.complete && self.finalizing == Finalizing::No,
            state: self.public_state(),
            // The announce loop's; the actor adds them.
            trackers: Vec::new(),
            web_seed_downloaded: self.webseeds.bytes(),
            web_seeds_active: self.webseeds.active(),
            web_seeds: self.webseeds.status(),
            seeds,
            leechers: peers - seeds,
            hash_failures: control.hash_failures,
            total_downloaded: totals.downloaded + self.download.total(),
            total_uploaded: totals.uploaded + self.upload.total(),
            seeding_time: totals.seeding_time + control.seeding,
            active_time: control.active,
            completed_at: (control.completed_at).map(|then| Self::wall_clock(then, now)),
            share_limits: control.options.share_limits,
            force_start: control.options.force_start,
            error: control.error.clone(),
            ..TorrentStats::default()
        }
    }

    /// The state an embedder sees.
    fn public_state(&self) -> TorrentState {
        let options = &self.control.options;
        match self.state {
            State::Checking => TorrentState::Checking,
            State::Paused if self.control.error.is_some() => TorrentState::Error,
            State::Paused if options.paused => TorrentState::Paused,
            State::Paused if options.queued => TorrentState::Queued,
            State::Paused => TorrentState::Paused,
            State::Active | State::Stopping if self.have().is_full() => TorrentState::Seeding,
            State::Active | State::Stopping if self.complete => TorrentState::Finished,
            State::Active | State::Stopping => TorrentState::Downloading,
        }
    }
}
