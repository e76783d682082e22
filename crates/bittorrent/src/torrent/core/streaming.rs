//! Streaming readers and file selection in the core.

use std::sync::Weak;
use std::time::Instant;

use crate::picker::{PickMode, Priority};
use crate::torrent::core::readers::{Wait, Waiter};
use crate::torrent::core::{Action, State, TorrentCore};
use crate::torrent::error::JobError;
use crate::torrent::TorrentError;

impl TorrentCore {
    /// A streaming reader needs `piece`: answer when it is verified, and
    /// make it and the next pieces urgent.
    pub(crate) fn wait_piece(
        &mut self,
        piece: u32,
        reader: u64,
        alive: Weak<()>,
        reply: Waiter,
        now: Instant,
    ) {
        let piece_length = self.meta.piece_length;
        let picker = self.flow.picker_mut();
        let wait = self
            .readers
            .wait(picker, piece_length, (piece, reader, alive), reply, now);
        if wait == Wait::Waiting {
            let mode = self.effective_mode();
            self.flow.picker_mut().set_mode(mode);
            self.request_more_all(now);
        }
    }

    /// A reader was dropped: its window is no longer urgent.
    pub(crate) fn reader_gone(&mut self, reader: u64, now: Instant) {
        self.readers.gone(self.flow.picker_mut(), reader, now);
        let mode = self.effective_mode();
        self.flow.picker_mut().set_mode(mode);
    }

    /// Each file's priority.
    pub(crate) fn file_priorities(&self) -> Vec<Priority> {
        self.selection.files().to_vec()
    }

    /// A new selection: one priority per file.
    pub(crate) fn set_file_priorities(
        &mut self,
        priorities: Vec<Priority>,
        now: Instant,
    ) -> Result<(), TorrentError> {
        if !self.selection.set(priorities)? {
            return Ok(());
        }
        let wanted = self.selection.wanted();
        log::info!(
            "{} file priorities: {} of {} files selected",
            self.tag(),
            wanted.iter().filter(|&&w| w).count(),
            wanted.len()
        );
        self.store_selection();
        self.apply_priorities(now);
        Ok(())
    }

    /// A new pick mode.
    pub(crate) fn set_mode(&mut self, mode: PickMode, now: Instant) {
        log::info!("{} mode {mode:?}", self.tag());
        self.selection.set_mode(mode);
        self.apply_priorities(now);
    }

    /// Hands a pending selection to the store once no piece is being
    /// written: verifications are held meanwhile, so no piece lands where
    /// the old selection says while the store moves shares.
    pub(crate) fn store_selection(&mut self) {
        if !self.selection.has_pending() {
            return;
        }
        self.flow.hold(true);
        if self.flow.writing() {
            return; // Again when the last one ends.
        }
        if let Some(wanted) = self.selection.take_for_store() {
            self.out.push(Action::StoreSelection(wanted));
        }
    }

    /// The store took (or failed to take) the file selection.
    pub(crate) fn selection_stored(&mut self, result: Result<(), JobError>) {
        if let Err(e) = result {
            // Shares stay in the part file, where reads still find them.
            log::error!("{} storing the file selection failed: {e}", self.tag());
        }
        self.selection.stored();
        self.store_selection();
        if !self.selection.is_storing() {
            self.flow.hold(false);
            self.start_writes();
        }
        self.finalize_if_due();
    }

    /// Sets the picker's piece priorities and mode from the selection; then
    /// completes, or resumes downloading, if the selection says so.
    pub(crate) fn apply_priorities(&mut self, now: Instant) {
        let pieces = self.selection.piece_priorities(&self.meta);
        let mode = self.effective_mode();
        let picker = self.flow.picker_mut();
        for (index, priority) in pieces.into_iter().enumerate() {
            picker.set_priority(index as u32, priority);
        }
        picker.set_mode(mode);
        self.readers.unselected(self.flow.picker());
        if self.state == State::Checking {
            return; // `checked` looks at completion.
        }
        let complete = self.flow.picker().is_complete();
        if complete && !self.complete {
            self.on_complete();
        } else if !complete && self.complete {
            log::info!("{} more files selected; downloading", self.tag());
            self.complete = false;
            // Seeds were dropped when we completed: dial them again now.
            self.swarm.wake(now);
        }
        for addr in self.peers.addrs() {
            self.update_interest(addr, now);
        }
        if !self.complete {
            self.connect_more(now);
        }
    }
}
