//! The resume record of a [`FileStore`](crate::store::FileStore), kept by the
//! store itself as it writes pieces, so that a crash loses little.
//!
//! The store hands every written piece to the journal; the journal writes a
//! record (atomically: temporary file, rename) at most every
//! [`SAVE_INTERVAL`] while pieces are written, and whenever the engine calls
//! `save_resume`. Each record carries a lease ([`LEASE`] ahead): before data
//! is written the store asks [`Journal::before_write`], which renews the lease
//! first (writing a record) when less than half of it is left, so no data is
//! written after the lease of the last record on disk (see
//! [`crate::recovery`]). A record costs a few hundred microseconds: no fsync
//! unless the store syncs its data (then data is synced first, and only the
//! pieces the engine saved are listed). When the store is dropped (nothing
//! writes any more), a last record closes the lease: from then on any change
//! to a file is someone else's.

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::bitfield::Bitfield;
use crate::resume::{FileStamp, ResumeRecord, Time};
use crate::store::StoreError;
use crate::types::InfoHash;

/// Pieces written are recorded at most this long after their write.
pub(crate) const SAVE_INTERVAL: Duration = Duration::from_millis(50);

/// How far ahead of a record its lease ends.
pub(crate) const LEASE: Duration = Duration::from_secs(2);

/// The record's content and when it was last written. Decisions only; the
/// journal does the IO.
#[derive(Debug)]
pub(crate) struct JournalState {
    /// Pieces verified and written (what the next record lists).
    have: Bitfield,
    /// Pieces were added since the last record.
    dirty: bool,
    /// One stamp per file, and the part file's last: as of the last restat.
    stamps: Vec<Option<FileStamp>>,
    /// When the last record was written (`None`: not yet by this process).
    saved_at: Option<Instant>,
    /// The lease of the last record, on the monotonic clock.
    lease_until: Option<Instant>,
}

impl JournalState {
    /// Starts from what recovery trusted and the files as they are now
    /// (`stamps`: one per file, then the part file).
    pub(crate) fn new(have: Bitfield, stamps: Vec<Option<FileStamp>>) -> Self {
        Self {
            have,
            dirty: false,
            stamps,
            saved_at: None,
            lease_until: None,
        }
    }

    /// Whether a record must be written before data is written at `now`:
    /// at most half the lease is left.
    pub(crate) fn lease_short(&self, now: Instant) -> bool {
        self.lease_until
            .is_none_or(|until| until.saturating_duration_since(now) <= LEASE / 2)
    }

    /// Notes that `piece` was written; whether a record is due at `now`.
    pub(crate) fn written(&mut self, piece: u32, now: Instant) -> bool {
        self.dirty |= self.have.set(piece as usize);
        self.dirty
            && self
                .saved_at
                .is_none_or(|at| now.duration_since(at) >= SAVE_INTERVAL)
    }

    /// Adds the engine's verified pieces.
    pub(crate) fn merge(&mut self, have: &Bitfield) {
        for piece in have.iter_ones() {
            self.dirty |= self.have.set(piece);
        }
    }

    /// The record with a lease until `lease` (wall clock), with `restat`
    /// giving the current stamp of the files (and part file, last) that
    /// were written since the previous record.
    pub(crate) fn record(
        &mut self,
        info_hash: InfoHash,
        lease: SystemTime,
        mut restat: impl FnMut(usize) -> Option<Option<FileStamp>>,
    ) -> ResumeRecord {
        // The bitfield before the stamps: every listed piece was written
        // before its files were stamped.
        let have = self.have.clone();
        for (index, stamp) in self.stamps.iter_mut().enumerate() {
            if let Some(now) = restat(index) {
                *stamp = now;
            }
        }
        let (parts, files) = self
            .stamps
            .split_last()
            .map_or((None, &[][..]), |(p, f)| (*p, f));
        ResumeRecord {
            info_hash,
            have,
            files: files.to_vec(),
            parts,
            lease: Time::from_system(lease),
        }
    }

    /// Whether this process wrote a record (then the last one should close
    /// its lease when the store is dropped).
    pub(crate) fn wrote(&self) -> bool {
        self.saved_at.is_some()
    }

    /// The record made at `now` is on disk.
    pub(crate) fn saved(&mut self, now: Instant) {
        self.dirty = false;
        self.saved_at = Some(now);
        self.lease_until = Some(now + LEASE);
    }
}

/// Where a store's record goes, and its state.
#[derive(Debug)]
pub(crate) struct Journal {
    pub(crate) path: PathBuf,
    pub(crate) info_hash: InfoHash,
    state: Mutex<Option<JournalState>>,
}

impl Journal {
    pub(crate) fn new(path: PathBuf, info_hash: InfoHash) -> Self {
        Self {
            path,
            info_hash,
            state: Mutex::new(None),
        }
    }

    /// The state; `None` until recovery has run (no record is written
    /// before: it would list nothing and forget the last one).
    pub(crate) fn lock(&self) -> MutexGuard<'_, Option<JournalState>> {
        // Every update leaves the state whole.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Writes `record` atomically (fsynced when `sync`).
    pub(crate) fn write(&self, record: &ResumeRecord, sync: bool) -> Result<(), StoreError> {
        crate::store::paths::write_atomically(&self.path, &record.encode(), sync)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> JournalState {
        JournalState::new(Bitfield::new(8), vec![None, None, None])
    }

    #[test]
    fn records_are_due_every_interval_while_writing() {
        let t0 = Instant::now();
        let mut s = state();
        assert!(s.written(1, t0), "nothing saved yet");
        s.saved(t0);
        assert!(!s.written(2, t0 + Duration::from_millis(10)));
        assert!(!s.written(2, t0 + Duration::from_millis(49)));
        assert!(s.written(3, t0 + SAVE_INTERVAL));
        s.saved(t0 + SAVE_INTERVAL);
        // Nothing new: not due, however late.
        assert!(!s.written(3, t0 + Duration::from_secs(9)));
        let mut have = Bitfield::new(8);
        have.set(3);
        s.merge(&have);
        assert!(!s.dirty, "already listed");
        have.set(7);
        s.merge(&have);
        assert!(s.dirty);
    }

    #[test]
    fn the_lease_is_renewed_before_half_of_it_is_gone() {
        let t0 = Instant::now();
        let mut s = state();
        assert!(s.lease_short(t0), "no lease yet");
        s.saved(t0);
        assert!(!s.lease_short(t0 + LEASE / 2 - Duration::from_millis(1)));
        assert!(s.lease_short(t0 + LEASE / 2));
        assert!(s.lease_short(t0 + LEASE * 2));
    }

    #[test]
    fn a_record_lists_pieces_then_restats_written_files() {
        let mut s = state();
        let t0 = Instant::now();
        s.written(5, t0);
        let stamp = FileStamp {
            length: 3,
            mtime: Time { secs: 1, nanos: 0 },
            ctime: Time { secs: 1, nanos: 0 },
            dev: 1,
            inode: 2,
        };
        let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(100) + LEASE;
        // Only file 1 was written: files 0 and the part file keep theirs.
        let r = s.record(InfoHash([3; 20]), wall, |i| (i == 1).then_some(Some(stamp)));
        assert_eq!(r.have.iter_ones().collect::<Vec<_>>(), [5]);
        assert_eq!(r.files, [None, Some(stamp)]);
        assert_eq!(r.parts, None);
        assert_eq!(
            r.lease,
            Time {
                secs: 102,
                nanos: 0
            }
        );
        let r = s.record(InfoHash([3; 20]), wall, |i| (i == 2).then_some(Some(stamp)));
        assert_eq!(r.files, [None, Some(stamp)], "file 1's stamp is kept");
        assert_eq!(r.parts, Some(stamp));
    }
}
