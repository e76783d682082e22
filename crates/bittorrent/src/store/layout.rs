//! Mapping between the torrent's byte stream, pieces and files. Pure.

use crate::metainfo::{FileEntry, MetaInfo};

/// A contiguous run of bytes inside one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSlice {
    /// Index into [`Layout::files`].
    pub file: usize,
    /// Offset inside that file.
    pub offset: u64,
    /// Length of the run.
    pub length: u64,
}

/// The piece geometry and file list of a torrent.
///
/// The files are expected to tile the byte stream: sorted by `offset`, each
/// starting where the previous one ends, their lengths summing to
/// `total_length` ([`Layout::check`] verifies this). [`Layout::slices`] never
/// panics on a layout that breaks these rules; it answers `None` for ranges the
/// files do not cover.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Bytes per piece (all but the last).
    pub piece_length: u32,
    /// Total bytes.
    pub total_length: u64,
    /// Files in torrent order, with offsets.
    pub files: Vec<FileEntry>,
}

impl Layout {
    /// The layout of a torrent.
    pub fn from_meta_info(meta: &MetaInfo) -> Self {
        Self {
            piece_length: meta.piece_length,
            total_length: meta.total_length,
            files: meta.files.clone(),
        }
    }

    /// Checks that the files tile the byte stream: each file starts where the
    /// previous one ends, the first at 0, and the lengths sum to
    /// `total_length`; and that `piece_length` is not zero (unless the torrent
    /// is empty).
    ///
    /// # Errors
    /// A description of the first inconsistency found.
    pub fn check(&self) -> Result<(), String> {
        if self.piece_length == 0 && self.total_length > 0 {
            return Err("piece length is zero".into());
        }
        let mut expected = 0u64;
        for (i, f) in self.files.iter().enumerate() {
            if f.offset != expected {
                return Err(format!(
                    "file {i} ({}) starts at {} instead of {expected}",
                    f.path.display(),
                    f.offset
                ));
            }
            expected = expected
                .checked_add(f.length)
                .ok_or_else(|| format!("file {i} ({}) overflows", f.path.display()))?;
        }
        if expected != self.total_length {
            return Err(format!(
                "files sum to {expected} bytes, torrent has {}",
                self.total_length
            ));
        }
        Ok(())
    }

    /// Number of pieces.
    pub fn piece_count(&self) -> usize {
        if self.piece_length == 0 {
            return 0;
        }
        self.total_length.div_ceil(u64::from(self.piece_length)) as usize
    }

    /// Length of piece `index`; 0 for an index past the last piece.
    pub fn piece_len(&self, index: u32) -> u32 {
        match self.piece_offset(index) {
            Some(start) => {
                let left = self.total_length - start;
                left.min(u64::from(self.piece_length)) as u32
            }
            None => 0,
        }
    }

    /// Offset of piece `index`'s first byte in the torrent's byte stream;
    /// `None` for an index past the last piece.
    pub fn piece_offset(&self, index: u32) -> Option<u64> {
        let start = u64::from(index).checked_mul(u64::from(self.piece_length))?;
        (start < self.total_length).then_some(start)
    }

    /// The file runs covering `length` bytes at `begin` inside piece `index`,
    /// in order, skipping zero-length files. `None` if the range leaves the
    /// piece or the torrent.
    ///
    /// Pad files are included like any other file; it is up to the caller to
    /// skip them. Finding the first file is a binary search, so the cost is
    /// `O(log files + runs)`.
    pub fn slices(&self, index: u32, begin: u32, length: u64) -> Option<Vec<FileSlice>> {
        let piece_start = self.piece_offset(index)?;
        let end_in_piece = u64::from(begin).checked_add(length)?;
        if end_in_piece > u64::from(self.piece_len(index)) {
            return None;
        }
        let start = piece_start + u64::from(begin);
        let end = piece_start + end_in_piece;

        // First file that ends after `start`. File ends are non-decreasing in
        // a well-formed layout, so the predicate is monotone.
        let first = self
            .files
            .partition_point(|f| f.offset.saturating_add(f.length) <= start);

        let mut out = Vec::new();
        let mut pos = start;
        for (file, f) in self.files.iter().enumerate().skip(first) {
            if pos >= end {
                break;
            }
            if f.length == 0 {
                continue;
            }
            if f.offset > pos {
                // A hole: the files do not cover this byte.
                return None;
            }
            let file_end = f.offset.saturating_add(f.length);
            let run_end = file_end.min(end);
            if run_end <= pos {
                continue;
            }
            out.push(FileSlice {
                file,
                offset: pos - f.offset,
                length: run_end - pos,
            });
            pos = run_end;
        }
        (pos == end).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// Files of the given (name, length, pad) laid end to end.
    fn layout(piece_length: u32, files: &[(&str, u64, bool)]) -> Layout {
        let mut offset = 0;
        let files: Vec<FileEntry> = files
            .iter()
            .map(|&(name, length, pad)| {
                let entry = FileEntry {
                    path: PathBuf::from(name),
                    length,
                    offset,
                    pad,
                };
                offset += length;
                entry
            })
            .collect();
        Layout {
            piece_length,
            total_length: offset,
            files,
        }
    }

    fn s(file: usize, offset: u64, length: u64) -> FileSlice {
        FileSlice {
            file,
            offset,
            length,
        }
    }

    #[test]
    fn geometry_with_short_last_piece() {
        let l = layout(16, &[("a", 40, false)]);
        assert_eq!(l.check(), Ok(()));
        assert_eq!(l.piece_count(), 3);
        assert_eq!(l.piece_len(0), 16);
        assert_eq!(l.piece_len(1), 16);
        assert_eq!(l.piece_len(2), 8);
        assert_eq!(l.piece_len(3), 0);
        assert_eq!(l.piece_offset(2), Some(32));
        assert_eq!(l.piece_offset(3), None);
        assert_eq!(l.piece_offset(u32::MAX), None);
    }

    #[test]
    fn geometry_exact_multiple_and_empty() {
        let l = layout(16, &[("a", 32, false)]);
        assert_eq!(l.piece_count(), 2);
        assert_eq!(l.piece_len(1), 16);

        let empty = layout(16, &[]);
        assert_eq!(empty.piece_count(), 0);
        assert_eq!(empty.slices(0, 0, 0), None);

        let zero_piece = Layout {
            piece_length: 0,
            total_length: 10,
            files: Vec::new(),
        };
        assert_eq!(zero_piece.piece_count(), 0);
        assert_eq!(zero_piece.piece_len(0), 0);
        assert_eq!(zero_piece.slices(0, 0, 1), None);
        assert!(zero_piece.check().is_err());
    }

    #[test]
    fn single_file() {
        let l = layout(16, &[("a", 40, false)]);
        assert_eq!(l.slices(0, 0, 16), Some(vec![s(0, 0, 16)]));
        assert_eq!(l.slices(1, 4, 8), Some(vec![s(0, 20, 8)]));
        assert_eq!(l.slices(2, 0, 8), Some(vec![s(0, 32, 8)]));
        assert_eq!(l.slices(2, 8, 0), Some(vec![]));
    }

    #[test]
    fn piece_spanning_three_files() {
        // Piece 1 is bytes 10..20: 2 of a, all 5 of b, 3 of c.
        let l = layout(10, &[("a", 12, false), ("b", 5, false), ("c", 13, false)]);
        assert_eq!(l.piece_count(), 3);
        assert_eq!(
            l.slices(1, 0, 10),
            Some(vec![s(0, 10, 2), s(1, 0, 5), s(2, 0, 3)])
        );
        // A block inside the middle of that piece.
        assert_eq!(l.slices(1, 3, 5), Some(vec![s(1, 1, 4), s(2, 0, 1)]));
        // Ends exactly at a file boundary.
        assert_eq!(l.slices(0, 0, 10), Some(vec![s(0, 0, 10)]));
        assert_eq!(l.slices(1, 2, 5), Some(vec![s(1, 0, 5)]));
        assert_eq!(l.slices(2, 0, 10), Some(vec![s(2, 3, 10)]));
    }

    #[test]
    fn zero_length_files_are_skipped() {
        let l = layout(
            8,
            &[
                ("empty0", 0, false),
                ("a", 6, false),
                ("empty1", 0, false),
                ("empty2", 0, false),
                ("b", 6, false),
                ("empty3", 0, false),
            ],
        );
        assert_eq!(l.check(), Ok(()));
        assert_eq!(l.slices(0, 0, 8), Some(vec![s(1, 0, 6), s(4, 0, 2)]));
        assert_eq!(l.slices(0, 6, 2), Some(vec![s(4, 0, 2)]));
        assert_eq!(l.slices(1, 0, 4), Some(vec![s(4, 2, 4)]));
    }

    #[test]
    fn pad_files_are_reported() {
        let l = layout(8, &[("a", 5, false), (".pad/3", 3, true), ("b", 8, false)]);
        assert_eq!(l.slices(0, 0, 8), Some(vec![s(0, 0, 5), s(1, 0, 3)]));
        assert_eq!(l.slices(1, 0, 8), Some(vec![s(2, 0, 8)]));
        assert!(l.files[1].pad);
    }

    #[test]
    fn out_of_range_requests() {
        let l = layout(16, &[("a", 20, false), ("b", 20, false)]);
        assert_eq!(l.piece_count(), 3);
        // Past the piece.
        assert_eq!(l.slices(0, 10, 7), None);
        assert_eq!(l.slices(0, 17, 0), None);
        // Past the short last piece (8 bytes).
        assert_eq!(l.slices(2, 0, 9), None);
        assert_eq!(l.slices(2, 4, 5), None);
        // No such piece.
        assert_eq!(l.slices(3, 0, 1), None);
        assert_eq!(l.slices(u32::MAX, u32::MAX, u64::MAX), None);
        // Overflowing length.
        assert_eq!(l.slices(0, 1, u64::MAX), None);
    }

    #[test]
    fn files_not_covering_the_torrent() {
        // A malformed layout: a hole between a and b, and total past the end.
        let mut l = layout(8, &[("a", 4, false), ("b", 4, false)]);
        l.files[1].offset = 6;
        l.total_length = 16;
        assert!(l.check().is_err());
        assert_eq!(l.slices(0, 0, 4), Some(vec![s(0, 0, 4)]));
        assert_eq!(l.slices(0, 0, 8), None);
        assert_eq!(l.slices(1, 0, 8), None);
    }

    #[test]
    fn many_files_binary_search() {
        let names: Vec<String> = (0..10_000).map(|i| format!("f{i}")).collect();
        let files: Vec<(&str, u64, bool)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), (i % 3) as u64, false))
            .collect();
        let l = layout(7, &files);
        assert_eq!(l.check(), Ok(()));
        for index in 0..l.piece_count() as u32 {
            let runs = l.slices(index, 0, u64::from(l.piece_len(index))).unwrap();
            let covered: u64 = runs.iter().map(|r| r.length).sum();
            assert_eq!(covered, u64::from(l.piece_len(index)));
            let mut stream = l.piece_offset(index).unwrap();
            for r in runs {
                let f = &l.files[r.file];
                assert!(f.length > 0);
                assert_eq!(f.offset + r.offset, stream);
                assert!(r.offset + r.length <= f.length);
                stream += r.length;
            }
        }
    }

    #[test]
    fn check_rejects_bad_layouts() {
        let mut l = layout(8, &[("a", 4, false), ("b", 4, false)]);
        l.total_length = 9;
        assert!(l.check().is_err());
        let mut l = layout(8, &[("a", 4, false), ("b", 4, false)]);
        l.files[0].offset = 1;
        assert!(l.check().is_err());
    }
}
