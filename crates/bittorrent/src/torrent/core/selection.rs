//! From file priorities to piece priorities. Pure.
//!
//! A piece takes the highest priority of the files it holds bytes of, so a
//! piece shared by a wanted and an unwanted file is downloaded (the store
//! keeps the unwanted share out of sight). Pad files (BEP 47) do not count.
//! In [`PickMode::Streaming`] the first and last piece of every wanted file
//! are raised to `High`: media players read a container's header and often
//! its index at the end before anything else.

use crate::metainfo::MetaInfo;
use crate::picker::{PickMode, Priority};
use crate::torrent::TorrentError;

/// The user's choice of files and mode, and the store's view of it: a new
/// selection reaches the store on a blocking job, one at a time.
#[derive(Debug)]
pub(crate) struct Selection {
    files: Vec<Priority>,
    mode: PickMode,
    /// The store is taking a selection.
    storing: bool,
    /// A newer selection for the store, once `storing` is done.
    pending: Option<Vec<bool>>,
}

impl Selection {
    /// `files` is cut or padded (with `Normal`) to `count` entries.
    pub(crate) fn new(mut files: Vec<Priority>, count: usize, mode: PickMode) -> Self {
        if files.len() > count {
            log::warn!(
                "{} file priorities for {count} files; the extra ones are ignored",
                files.len()
            );
        }
        files.resize(count, Priority::Normal);
        Self {
            files,
            mode,
            storing: false,
            pending: None,
        }
    }

    pub(crate) fn files(&self) -> &[Priority] {
        &self.files
    }

    pub(crate) fn mode(&self) -> PickMode {
        self.mode
    }

    pub(crate) fn set_mode(&mut self, mode: PickMode) {
        self.mode = mode;
    }

    /// Which files the store must write in place now.
    pub(crate) fn wanted(&self) -> Vec<bool> {
        wanted_files(&self.files)
    }

    /// A new selection. `Ok(true)` if it changed anything.
    pub(crate) fn set(&mut self, files: Vec<Priority>) -> Result<bool, TorrentError> {
        if files.len() != self.files.len() {
            return Err(TorrentError::Selection(format!(
                "{} priorities for {} files",
                files.len(),
                self.files.len()
            )));
        }
        if files == self.files {
            return Ok(false);
        }
        let old = self.wanted();
        self.files = files;
        let wanted = self.wanted();
        if wanted != old {
            // The store learns after the picker. A piece written in between
            // lands where the old selection says; for a newly selected file
            // the store then moves it into place.
            self.pending = Some(wanted);
        }
        Ok(true)
    }

    /// The selection to hand to the store now, unless it is busy with one.
    pub(crate) fn take_for_store(&mut self) -> Option<Vec<bool>> {
        if self.storing {
            return None;
        }
        let wanted = self.pending.take()?;
        self.storing = true;
        Some(wanted)
    }

    /// A selection waits for the store.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// The store is taking a selection.
    pub(crate) fn is_storing(&self) -> bool {
        self.storing
    }

    /// The store took (or failed to take) the last selection.
    pub(crate) fn stored(&mut self) {
        self.storing = false;
    }

    /// The piece priorities of the selection.
    pub(crate) fn piece_priorities(&self, meta: &MetaInfo) -> Vec<Priority> {
        piece_priorities(meta, &self.files, self.mode)
    }
}

/// The priority of every piece of `meta`, given one priority per file
/// (missing entries count as `Normal`). A piece that holds bytes of no real
/// file (only padding) is `Normal`.
pub(crate) fn piece_priorities(
    meta: &MetaInfo,
    files: &[Priority],
    mode: PickMode,
) -> Vec<Priority> {
    let count = meta.piece_count();
    let mut pieces: Vec<Option<Priority>> = vec![None; count];
    let piece_length = u64::from(meta.piece_length).max(1);
    for (index, file) in meta.files.iter().enumerate() {
        if file.pad || file.length == 0 {
            continue;
        }
        let priority = files.get(index).copied().unwrap_or_default();
        let first = (file.offset / piece_length) as usize;
        let last = ((file.offset + file.length - 1) / piece_length) as usize;
        if first >= count {
            continue;
        }
        let last = last.min(count - 1);
        for slot in &mut pieces[first..=last] {
            *slot = (*slot).max(Some(priority));
        }
        if mode == PickMode::Streaming && priority != Priority::Skip {
            pieces[first] = Some(Priority::High);
            pieces[last] = Some(Priority::High);
        }
    }
    pieces.into_iter().map(Option::unwrap_or_default).collect()
}

/// Which files the store must write in place: all but the skipped ones.
pub(crate) fn wanted_files(files: &[Priority]) -> Vec<bool> {
    files.iter().map(|&p| p != Priority::Skip).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Files of the given (length, pad) with 10-byte pieces.
    fn meta(files: &[(u64, bool)]) -> MetaInfo {
        let names: Vec<String> = (0..files.len()).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, u64, bool)> = names
            .iter()
            .zip(files)
            .map(|(name, &(length, pad))| (name.as_str(), length, pad))
            .collect();
        MetaInfo::for_test("t", 10, &files)
    }

    use Priority::{High, Normal, Skip};

    #[test]
    fn a_shared_piece_takes_the_highest_priority() {
        // Pieces: 0-9 | 10-19 | 20-29 | 30-34. f0 = 0..15, f1 = 15..15
        // (empty), f2 = 15..32, f3 = 32..35.
        let m = meta(&[(15, false), (0, false), (17, false), (3, false)]);
        let rarest = PickMode::RarestFirst;
        assert_eq!(
            piece_priorities(&m, &[Skip, Skip, Normal, Skip], rarest),
            vec![Skip, Normal, Normal, Normal]
        );
        assert_eq!(
            piece_priorities(&m, &[High, Skip, Skip, Skip], rarest),
            vec![High, High, Skip, Skip]
        );
        assert_eq!(
            piece_priorities(&m, &[Skip, Skip, Skip, High], rarest),
            vec![Skip, Skip, Skip, High]
        );
        assert_eq!(
            piece_priorities(&m, &[Skip; 4], rarest),
            vec![Skip; 4],
            "everything skipped"
        );
        assert_eq!(
            piece_priorities(&m, &[], rarest),
            vec![Normal; 4],
            "no priorities given: all normal"
        );
    }

    #[test]
    fn pad_files_do_not_count_and_padding_alone_is_normal() {
        // f0 = 0..5, pad = 5..20 (pieces 0 and 1), f2 = 20..25.
        let m = meta(&[(5, false), (15, true), (5, false)]);
        assert_eq!(
            piece_priorities(&m, &[Skip, Skip, High], PickMode::RarestFirst),
            vec![Skip, Normal, High]
        );
    }

    #[test]
    fn streaming_raises_the_ends_of_wanted_files() {
        // f0 = 0..45 (pieces 0-4), f1 = 45..60 (pieces 4-5).
        let m = meta(&[(45, false), (15, false)]);
        assert_eq!(
            piece_priorities(&m, &[Normal, Skip], PickMode::Streaming),
            vec![High, Normal, Normal, Normal, High, Skip]
        );
        assert_eq!(
            piece_priorities(&m, &[Normal, Skip], PickMode::Sequential),
            vec![Normal, Normal, Normal, Normal, Normal, Skip]
        );
    }

    #[test]
    fn one_selection_at_a_time_reaches_the_store() {
        let mut s = Selection::new(vec![Normal; 3], 2, PickMode::RarestFirst);
        assert_eq!(s.files(), [Normal, Normal], "cut to the file count");
        assert!(s.set(vec![Normal]).is_err());
        assert!(!s.set(vec![Normal, Normal]).unwrap());
        assert_eq!(s.take_for_store(), None, "nothing changed");
        assert!(s.set(vec![Skip, Normal]).unwrap());
        assert_eq!(s.take_for_store(), Some(vec![false, true]));
        assert!(s.set(vec![High, Normal]).unwrap());
        assert!(s.set(vec![High, Skip]).unwrap());
        assert_eq!(s.take_for_store(), None, "busy: the newest waits");
        s.stored();
        assert_eq!(
            s.take_for_store(),
            Some(vec![true, false]),
            "only the newest"
        );
        s.stored();
        assert_eq!(s.take_for_store(), None);
    }

    #[test]
    fn wanted_files_are_the_unskipped_ones() {
        assert_eq!(wanted_files(&[Skip, Normal, High]), vec![false, true, true]);
    }
}
