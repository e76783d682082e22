//! Whether the torrent runs, in the core: the user's pause, the session's
//! queue, a store error, the share limits; a recheck; the all-time totals and
//! times. A torrent runs (state `Active`) exactly when it is not paused,
//! not queued and not failed; otherwise it is `Paused`: no connections, no
//! announces, what it has is kept.

use std::time::{Duration, Instant, SystemTime};

use crate::event::Event;
use crate::limits::{ShareLimits, TorrentShareLimits};
use crate::picker::Picker;
use crate::torrent::core::pieces::PieceFlow;
use crate::torrent::core::{Action, CoreConfig, Finalizing, State, TorrentCore};
use crate::torrent::status::Standing;
use crate::torrent::{PieceState, Totals};

/// How a torrent starts, beside its metainfo.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RunOptions {
    /// Paused by the user.
    pub paused: bool,
    /// Held back by the session's queue.
    pub queued: bool,
    /// Runs regardless of the queue.
    pub force_start: bool,
    /// Its own share limits.
    pub share_limits: TorrentShareLimits,
    /// What it transferred and seeded before this session.
    pub totals: Totals,
}

/// Why a torrent does not run, and its running times.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) options: RunOptions,
    /// The session's share limits, as of the last tick.
    pub(crate) session_share: ShareLimits,
    /// The store failed; kept until a resume retries.
    pub(crate) error: Option<String>,
    /// A recheck waits for the peers, web seeds and verifications to end.
    pub(crate) recheck_due: bool,
    /// Running time and seeding time of this session.
    pub(crate) active: Duration,
    pub(crate) seeding: Duration,
    /// Until when the times are counted.
    pub(crate) counted_to: Instant,
    /// When every wanted piece was verified in this session.
    pub(crate) completed_at: Option<Instant>,
    /// Pieces that failed their hash check.
    pub(crate) hash_failures: u64,
}

impl Control {
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            options: RunOptions::default(),
            session_share: ShareLimits::default(),
            error: None,
            recheck_due: false,
            active: Duration::ZERO,
            seeding: Duration::ZERO,
            counted_to: now,
            completed_at: None,
            hash_failures: 0,
        }
    }

    /// Whether the torrent should run.
    fn runs(&self) -> bool {
        !self.options.paused && !self.options.queued && self.error.is_none()
    }
}

/// A picker for this torrent (seeded in tests).
pub(crate) fn new_picker(meta: &crate::metainfo::MetaInfo, config: &CoreConfig) -> Picker {
    let picker = Picker::new(meta.piece_count(), meta.piece_length, meta.total_length);
    match config.seed {
        Some(seed) => picker.with_rng_seed(seed),
        None => picker,
    }
}

impl TorrentCore {
    /// Sets how the torrent starts (before its check ends).
    pub(crate) fn set_run_options(&mut self, options: RunOptions) {
        self.control.options = options;
    }

    /// Runs or holds the torrent as its flags say.
    pub(crate) fn apply_control(&mut self, now: Instant) {
        self.count_time(now);
        match self.state {
            State::Active if !self.control.runs() => self.hold(),
            State::Paused if self.control.runs() => {
                self.state = State::Active;
                self.start_announcer();
                // The peers we closed when it stopped may be dialled at once.
                self.swarm.wake(now);
                self.connect_more(now);
                self.schedule_web_seeds(now);
            }
            _ => {}
        }
    }

    /// Every peer goes, the announce loop stops (it sends `stopped`).
    fn hold(&mut self) {
        self.state = State::Paused;
        for addr in self.peers.addrs() {
            self.peers.disconnect(addr, &mut self.out);
        }
        self.stop_announcer();
    }

    /// Pauses the torrent (also while it checks: it stays paused after).
    pub(crate) fn pause(&mut self, now: Instant) {
        if self.control.options.paused || self.state == State::Stopping {
            return;
        }
        log::info!("{} paused", self.tag());
        self.control.options.paused = true;
        self.apply_control(now);
        self.emit(Event::TorrentPaused {
            info_hash: self.info_hash,
        });
    }

    /// Resumes a paused torrent, or retries one that failed. A complete
    /// torrent still over its share limit is paused again at once
    /// (qBittorrent's behaviour: raise the limit first).
    pub(crate) fn resume(&mut self, now: Instant) {
        let failed = self.control.error.take().is_some();
        if (!self.control.options.paused && !failed) || self.state == State::Stopping {
            return;
        }
        log::info!("{} resumed", self.tag());
        self.control.options.paused = false;
        if failed && self.complete && self.finalizing == Finalizing::No {
            // Finalizing may be what failed: do it again.
            self.finalizing = Finalizing::Due;
            self.finalize_if_due();
        }
        if self.over_share_limit() {
            return self.stop_at_share_limit(now);
        }
        self.apply_control(now);
        self.emit(Event::TorrentResumed {
            info_hash: self.info_hash,
        });
    }

    /// The session's queue holds the torrent back, or lets it run.
    pub(crate) fn set_queued(&mut self, queued: bool, now: Instant) {
        if self.control.options.queued != queued {
            log::debug!("{} queued: {queued}", self.tag());
            self.control.options.queued = queued;
            self.apply_control(now);
        }
    }

    /// Force-start on (which also resumes a paused torrent) or off.
    pub(crate) fn set_force_start(&mut self, force: bool, now: Instant) {
        self.control.options.force_start = force;
        if force {
            self.resume(now);
        }
    }

    /// The torrent's own share limits; a complete torrent already past them
    /// stops now.
    pub(crate) fn set_share_limits(&mut self, limits: TorrentShareLimits, now: Instant) {
        self.control.options.share_limits = limits;
        self.check_share_limit(now);
    }

    /// The session's share limits (read at every tick).
    pub(crate) fn set_session_share(&mut self, limits: ShareLimits, now: Instant) {
        if self.control.session_share != limits {
            self.control.session_share = limits;
            self.check_share_limit(now);
        }
    }

    /// Complete (and settled) and at or past its share limit.
    fn over_share_limit(&self) -> bool {
        let settled = self.complete && self.finalizing == Finalizing::No;
        settled && self.state != State::Checking && self.share_limit_reached()
    }

    fn share_limit_reached(&self) -> bool {
        let limits = (self.control.options.share_limits).resolve(&self.control.session_share);
        let totals = self.control.options.totals;
        let uploaded = totals.uploaded + self.upload.total();
        let downloaded = totals.downloaded + self.download.total();
        let base = if downloaded > 0 {
            downloaded
        } else {
            self.flow.picker().wanted_bytes()
        };
        let ratio = if base == 0 {
            0.0
        } else {
            uploaded as f64 / base as f64
        };
        limits.reached(ratio, totals.seeding_time + self.control.seeding)
    }

    /// A running, complete torrent that reached its share limit is paused,
    /// and the session told ([`Event::ShareLimitReached`]).
    pub(crate) fn check_share_limit(&mut self, now: Instant) {
        if self.state == State::Active && self.over_share_limit() {
            self.stop_at_share_limit(now);
        }
    }

    fn stop_at_share_limit(&mut self, now: Instant) {
        log::info!("{} share limit reached; pausing", self.tag());
        self.control.options.paused = true;
        self.apply_control(now);
        self.emit(Event::ShareLimitReached {
            info_hash: self.info_hash,
        });
        self.emit(Event::TorrentPaused {
            info_hash: self.info_hash,
        });
    }

    /// The store failed: the torrent stays, in state `Error` with the
    /// message, without peers, until a resume retries.
    pub(crate) fn fail(&mut self, message: String) {
        log::error!("{} {message}; the torrent stops", self.tag());
        self.control.error = Some(message.clone());
        if self.state == State::Active {
            self.hold();
        }
        self.emit(Event::TorrentError {
            info_hash: self.info_hash,
            message,
        });
    }

    /// Hashes every piece again, ignoring the resume record: peers go, and
    /// once nothing is in flight the pieces are forgotten and checked.
    /// Afterwards the torrent runs or stays paused as before.
    pub(crate) fn recheck(&mut self, now: Instant) {
        if matches!(self.state, State::Checking | State::Stopping) {
            return;
        }
        log::info!("{} rechecking every piece", self.tag());
        if self.state == State::Active {
            self.hold();
        }
        self.state = State::Checking;
        self.control.recheck_due = true;
        self.start_recheck_if_quiet(now);
    }

    /// Starts a due recheck once no peer, web seed run or verification is
    /// left (their blocks belong to the picker being replaced).
    pub(crate) fn start_recheck_if_quiet(&mut self, now: Instant) {
        let busy = !self.peers.addrs().is_empty()
            || self.webseeds.active() > 0
            || self.flow.disk_busy()
            || self.finalizing == Finalizing::Running;
        if !self.control.recheck_due || busy {
            return;
        }
        self.control.recheck_due = false;
        let wasted = self.flow.wasted();
        let picker = new_picker(&self.meta, &self.config);
        self.flow = PieceFlow::new(std::sync::Arc::clone(&self.meta), picker);
        self.flow.add_wasted(wasted);
        self.complete = false;
        self.finalizing = Finalizing::No;
        self.apply_priorities(now);
        self.cap_partial_pieces();
        self.out.push(Action::Check { full: true });
    }

    /// Announces to the trackers now, and on the DHT.
    pub(crate) fn reannounce(&mut self, now: Instant) {
        if self.state != State::Active {
            return;
        }
        if self.announcing {
            self.out.push(Action::Reannounce);
        }
        self.next_dht = now;
        self.dht_announce(now);
    }

    /// Download and upload rates, bytes per second.
    pub(crate) fn rates(&mut self, now: Instant) -> (f64, f64) {
        (self.download.rate(now), self.upload.rate(now))
    }

    /// Counts running and seeding time up to `now`.
    pub(crate) fn count_time(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.control.counted_to);
        self.control.counted_to = now;
        if self.state == State::Active {
            self.control.active += elapsed;
            if self.complete {
                self.control.seeding += elapsed;
            }
        }
    }

    /// What the session's queue needs to know.
    pub(crate) fn standing(&self) -> Standing {
        Standing {
            paused: self.control.options.paused || self.control.error.is_some(),
            force: self.control.options.force_start,
            // Complete once the store is settled (as `TorrentStats::complete`).
            seeding: self.complete && self.finalizing == Finalizing::No,
        }
    }

    /// Each piece: verified, started, or not.
    pub(crate) fn piece_states(&self) -> Vec<PieceState> {
        let picker = self.flow.picker();
        (0..self.meta.piece_count() as u32)
            .map(
                |i| match (picker.have().get(i as usize), picker.is_started(i)) {
                    (true, _) => PieceState::Have,
                    (false, true) => PieceState::Downloading,
                    (false, false) => PieceState::Missing,
                },
            )
            .collect()
    }

    /// Verified bytes of each file.
    pub(crate) fn file_progress(&self) -> Vec<u64> {
        file_progress(&self.meta, self.have())
    }

    /// The wall-clock time of an instant in the past.
    pub(crate) fn wall_clock(then: Instant, now: Instant) -> SystemTime {
        SystemTime::now() - now.saturating_duration_since(then)
    }
}

/// Each file's share of the verified pieces, in bytes: O(files + pieces).
pub(crate) fn file_progress(
    meta: &crate::metainfo::MetaInfo,
    have: &crate::bitfield::Bitfield,
) -> Vec<u64> {
    let piece_length = u64::from(meta.piece_length);
    meta.files
        .iter()
        .map(|file| {
            let (start, end) = (file.offset, file.offset + file.length);
            if file.length == 0 || piece_length == 0 {
                return 0;
            }
            let (first, last) = (start / piece_length, (end - 1) / piece_length);
            (first..=last)
                .filter(|&piece| have.get(piece as usize))
                .map(|piece| {
                    let p_start = piece * piece_length;
                    let p_end = (p_start + piece_length).min(meta.total_length);
                    p_end.min(end) - p_start.max(start)
                })
                .sum()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bitfield::Bitfield;
    use crate::metainfo::MetaInfo;

    #[test]
    fn file_progress_counts_each_files_share_of_verified_pieces() {
        // Pieces of 10 bytes; files of 5, 0, 20 and 7 bytes (32 in all, 4
        // pieces, the last one 2 bytes).
        let meta = MetaInfo::for_test(
            "t",
            10,
            &[
                ("a", 5, false),
                ("e", 0, false),
                ("b", 20, false),
                ("c", 7, false),
            ],
        );
        let mut have = Bitfield::new(4);
        assert_eq!(file_progress(&meta, &have), [0, 0, 0, 0]);
        have.set(0); // bytes 0..10: a whole, b 5
        have.set(3); // bytes 30..32: c 2
        assert_eq!(file_progress(&meta, &have), [5, 0, 5, 2]);
        for i in 0..4 {
            have.set(i);
        }
        assert_eq!(file_progress(&meta, &have), [5, 0, 20, 7]);
    }
}
