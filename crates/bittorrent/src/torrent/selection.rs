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
    fn wanted_files_are_the_unskipped_ones() {
        assert_eq!(wanted_files(&[Skip, Normal, High]), vec![false, true, true]);
    }
}
