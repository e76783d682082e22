//! Web seeds in the core: runs handed out, pieces fed in as blocks, runs
//! that end or fail, web seeds dropped. The states and rules are in
//! `webseeds.rs`; this routes between them, the picker and the piece flow.
//!
//! A web seed's piece goes through the same path as peers' blocks
//! (`PieceFlow::block`, one block at a time, zero-copy slices of the piece):
//! verification, endgame duplicates and wasted bytes work as for peers, and
//! a piece that fails its hash check names the web seed among its
//! contributors. A piece that came wholly from a web seed and fails drops
//! that web seed.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::event::Event;
use crate::torrent::core::piece::Contributor;
use crate::torrent::core::pieces::BlockFate;
use crate::torrent::core::webseeds::{RunEnd, TakeOver};
use crate::torrent::core::{Action, State, TorrentCore};
use crate::types::{BlockInfo, BLOCK_SIZE};
use crate::webseed::{WebSeedCommand, WebSeedError, WebSeedEvent, WebSeedId};

impl TorrentCore {
    /// Registers a web seed (its task is started by the caller under the
    /// returned id); it gets its first run at the next tick once the torrent
    /// is active. `None` past `u16::MAX` web seeds.
    pub(crate) fn add_web_seed(&mut self, url: Arc<str>) -> Option<WebSeedId> {
        self.webseeds.add(url)
    }

    /// Hands every ready web seed a run, while the torrent is downloading
    /// and verification keeps up.
    pub(crate) fn schedule_web_seeds(&mut self, now: Instant) {
        if self.state != State::Active || self.complete || self.flow.backlogged() {
            return;
        }
        let mut started = false;
        for id in self.webseeds.ready(now) {
            let left = self.flow.picker().missing_wanted_bytes();
            let peers = self.peers.serving();
            let max = (self.webseeds).run_pieces(id, self.meta.piece_length, left, peers);
            let continue_at = self.webseeds.continue_at(id);
            let picked = self.flow.picker_mut().pick_run(max, continue_at);
            let Some(run) = picked.or_else(|| self.take_over(id, now)) else {
                break;
            };
            log::debug!(
                "{} web seed {} fetches pieces {}..{}",
                self.tag(),
                self.web_seed_url(id),
                run.start,
                run.end
            );
            self.webseeds.start(id, run.clone(), now);
            self.out
                .push(Action::WebSeed(id, WebSeedCommand::Fetch { pieces: run }));
            started = true;
        }
        if started {
            self.cap_partial_pieces();
        }
    }

    /// Nothing is missing: idle web seed `id` takes over (part of) the
    /// slowest run in progress, if that helps. Returns what it fetches.
    fn take_over(&mut self, id: WebSeedId, now: Instant) -> Option<Range<u32>> {
        let run = match self.webseeds.take_over(id, self.meta.piece_length, now)? {
            TakeOver::Tail(tail) => tail,
            TakeOver::Duplicate(piece) => {
                self.flow.picker_mut().request_piece_again(piece);
                piece..piece + 1
            }
        };
        log::debug!(
            "{} web seed {} takes over pieces {}..{} from a slower one",
            self.tag(),
            self.web_seed_url(id),
            run.start,
            run.end
        );
        Some(run)
    }

    /// Handles one event of a web seed's task.
    pub(crate) fn web_seed_event(&mut self, event: WebSeedEvent, now: Instant) {
        match event {
            WebSeedEvent::Piece { seed, index, data } => self.on_web_piece(seed, index, data, now),
            WebSeedEvent::RunEnded {
                seed,
                undelivered,
                outcome,
            } => self.on_run_ended(seed, undelivered, outcome, now),
        }
    }

    /// A whole piece from a web seed: counted, then fed to the piece flow
    /// block by block. Anything but the next piece of its run is thrown
    /// away (a dropped web seed's, a wrong length).
    fn on_web_piece(&mut self, seed: WebSeedId, index: u32, data: Bytes, now: Instant) {
        let len = data.len() as u64;
        // Pad files' zeros were never fetched.
        let fetched = len.saturating_sub(self.pad_bytes(index));
        self.download.add(fetched, now);
        let piece_len = self.meta.piece_len(index);
        if len != u64::from(piece_len) || !self.webseeds.piece(seed, index, fetched) {
            self.flow.add_wasted(fetched);
            return;
        }
        let from = Contributor::WebSeed(seed);
        let mut complete = false;
        for begin in (0..piece_len).step_by(BLOCK_SIZE as usize) {
            let length = BLOCK_SIZE.min(piece_len - begin);
            let block = BlockInfo {
                piece: index,
                begin,
                length,
            };
            let bytes = data.slice(begin as usize..(begin + length) as usize);
            if let BlockFate::Kept { complete: last } = self.flow.block(from, block, bytes) {
                complete |= last;
                if self.flow.picker().may_have_duplicates() {
                    self.peers.cancel_duplicates(from, block, &mut self.out);
                }
            }
        }
        if complete {
            self.start_writes();
        }
    }

    /// A web seed's run ended: the pieces it did not deliver go back to the
    /// picker (and to the peers); a failure backs off or drops the web seed.
    fn on_run_ended(
        &mut self,
        seed: WebSeedId,
        undelivered: Range<u32>,
        outcome: Result<(), WebSeedError>,
        now: Instant,
    ) {
        let (end, back) = self.webseeds.run_ended(seed, &outcome, now);
        if end != RunEnd::Ignored && back != undelivered {
            // The core's count is what the picker holds; go by it (a run
            // whose tail another web seed took over ends earlier here).
            log::debug!(
                "{} web seed #{} reports pieces {undelivered:?} undelivered, {back:?} by our count",
                self.tag(),
                seed.0
            );
        }
        self.give_back(back);
        let error = match outcome {
            Ok(()) => String::new(),
            Err(e) => e.to_string(),
        };
        let url = self.web_seed_url(seed);
        match end {
            RunEnd::Ignored | RunEnd::Done => {}
            RunEnd::Retry(wait) => {
                log::warn!(
                    "{} web seed {url} failed: {error}; retrying in {} s",
                    self.tag(),
                    wait.as_secs()
                );
                self.emit_web_seed_failed(url, error, false);
            }
            RunEnd::Dropped => {
                log::warn!("{} web seed {url} failed: {error}; dropped", self.tag());
                self.emit_web_seed_failed(url, error, true);
                self.out.push(Action::DropWebSeed(seed));
            }
        }
        self.cap_partial_pieces();
        self.request_more_all(now);
        self.schedule_web_seeds(now);
    }

    /// Drops web seed `seed` for good (bad data, or its task is gone): what
    /// its run held goes back to the picker.
    pub(crate) fn drop_web_seed(&mut self, seed: WebSeedId, why: String, now: Instant) {
        let Some(back) = self.webseeds.drop_seed(seed, why.clone()) else {
            return;
        };
        let url = self.web_seed_url(seed);
        log::warn!("{} web seed {url} dropped: {why}", self.tag());
        self.emit_web_seed_failed(url, why, true);
        self.out.push(Action::DropWebSeed(seed));
        self.give_back(back);
        self.cap_partial_pieces();
        self.request_more_all(now);
    }

    /// The pieces of a run that were not delivered: the web seed's request
    /// of each block is withdrawn.
    fn give_back(&mut self, pieces: Range<u32>) {
        let picker = self.flow.picker_mut();
        for piece in pieces {
            picker.cancel_piece(piece);
        }
    }

    /// Bytes of pad files (BEP 47) in piece `index`: zeros the web seed's
    /// task fills in without fetching them.
    fn pad_bytes(&self, index: u32) -> u64 {
        let start = u64::from(index) * u64::from(self.meta.piece_length);
        let end = start + u64::from(self.meta.piece_len(index));
        let files = &self.meta.files;
        let first = files.partition_point(|f| f.offset + f.length <= start);
        files[first..]
            .iter()
            .take_while(|f| f.offset < end)
            .filter(|f| f.pad)
            .map(|f| (f.offset + f.length).min(end) - f.offset.max(start))
            .sum()
    }

    fn web_seed_url(&self, seed: WebSeedId) -> String {
        self.webseeds
            .url(seed)
            .map_or_else(|| format!("#{}", seed.0), |u| u.to_string())
    }

    fn emit_web_seed_failed(&mut self, url: String, error: String, dropped: bool) {
        self.emit(Event::WebSeedFailed {
            info_hash: self.info_hash,
            url,
            error,
            dropped,
        });
    }
}
