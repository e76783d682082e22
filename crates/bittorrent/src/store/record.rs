//! The [`FileStore`]'s resume record: reading it, renewing its lease
//! around writes, and closing the lease when the store is dropped.

use std::sync::atomic::Ordering;
use std::time::{Instant, SystemTime};

use crate::resume::ResumeRecord;
use crate::store::journal::{Journal, JournalState, LEASE};
use crate::store::probe;
use crate::store::{FileStore, StoreError};

impl FileStore {
    /// The record on disk, if it should be read and belongs to this torrent.
    pub(super) fn read_record(&self) -> Option<ResumeRecord> {
        let journal = self.journal.as_ref()?;
        if !self.read_record {
            log::debug!(
                "resume record of {} skipped by request",
                journal.info_hash.short()
            );
            return None;
        }
        let bytes = match std::fs::read(&journal.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                log::debug!("no resume record at {}: {e}", journal.path.display());
                return None;
            }
        };
        ResumeRecord::decode_for(
            &bytes,
            journal.info_hash,
            self.layout.piece_count(),
            self.layout.files.len(),
        )
        .map_err(|e| log::warn!("ignoring resume record {}: {e}", journal.path.display()))
        .ok()
    }

    /// Index of the part file among the stamps (after the files).
    pub(super) fn parts_slot(&self) -> usize {
        self.layout.files.len()
    }

    /// Marks file `slot` (or the part file) as written since the last record.
    pub(super) fn restamp(&self, slot: usize) {
        self.restamp[slot].store(true, Ordering::Release);
    }

    /// Renews the lease (writes a record) when at most half of it is left:
    /// no data is written after the lease of the last record on disk.
    pub(super) fn before_write(&self) {
        let Some(journal) = &self.journal else {
            return;
        };
        let mut state = journal.lock();
        if let Some(state) = state.as_mut().filter(|s| s.lease_short(Instant::now())) {
            // A failed record only makes the next start check more.
            if let Err(e) = self.save_record(journal, state) {
                log::warn!("cannot renew the resume record's lease: {e}");
            }
        }
    }

    /// Lists `piece` for the next record, and writes it if one is due. With
    /// `sync`, only the engine's `save_resume` lists pieces (after syncing).
    pub(super) fn after_write(&self, piece: u32) {
        let Some(journal) = &self.journal else {
            return;
        };
        if self.sync {
            return;
        }
        let mut state = journal.lock();
        let Some(state) = state.as_mut() else {
            return;
        };
        if state.written(piece, Instant::now()) {
            if let Err(e) = self.save_record(journal, state) {
                log::warn!("cannot write the resume record: {e}");
            }
        }
    }

    /// Writes the record now (the journal's lock is held).
    pub(super) fn save_record(
        &self,
        journal: &Journal,
        state: &mut JournalState,
    ) -> Result<(), StoreError> {
        self.save_record_until(journal, state, SystemTime::now() + LEASE)
    }

    /// Writes the record now with a lease until `lease`.
    fn save_record_until(
        &self,
        journal: &Journal,
        state: &mut JournalState,
        lease: SystemTime,
    ) -> Result<(), StoreError> {
        let now = Instant::now();
        let record = state.record(journal.info_hash, lease, |slot| {
            if !self.restamp[slot].swap(false, Ordering::AcqRel) {
                return None;
            }
            let path = match self.paths.get(slot) {
                Some(path) => path.as_path(),
                None => self.parts.as_ref()?.path(),
            };
            Some(probe::stamp(path))
        });
        journal.write(&record, self.sync)?;
        state.saved(now);
        Ok(())
    }
}

/// Nothing writes through a dropped store: its last record closes the lease,
/// so any later change to its files is someone else's.
impl Drop for FileStore {
    fn drop(&mut self) {
        let Some(journal) = &self.journal else {
            return;
        };
        let mut state = journal.lock();
        let Some(state) = state.as_mut().filter(|s| s.wrote()) else {
            return;
        };
        if let Err(e) = self.save_record_until(journal, state, SystemTime::now()) {
            log::warn!("cannot close the resume record's lease: {e}");
        }
    }
}
