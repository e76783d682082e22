//! A run of pieces as HTTP range requests, pure: one request per file the
//! run spans (pad files never requested, their bytes are zeros; zero-length
//! files skipped).

use std::ops::Range;

use crate::store::Layout;

/// One part of a run's bytes, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    /// `length` bytes of file `file` from `offset`: one range request.
    Fetch {
        /// Index into the torrent's files.
        file: usize,
        /// First byte inside the file.
        offset: u64,
        /// Bytes asked for (never 0).
        length: u64,
    },
    /// `length` bytes of pad files (BEP 47): zeros, never requested.
    Zeros(u64),
}

/// The parts of the run `pieces`, in order: their lengths sum to the run's
/// length. Slices of one file in consecutive pieces make one request, and so
/// do adjacent pad files. `None` when the run is empty or leaves the torrent,
/// or the files do not cover its bytes.
pub(crate) fn parts(layout: &Layout, pieces: Range<u32>) -> Option<Vec<Part>> {
    if pieces.is_empty() || pieces.end as usize > layout.piece_count() {
        return None;
    }
    let mut parts: Vec<Part> = Vec::new();
    for index in pieces {
        let length = u64::from(layout.piece_len(index));
        for slice in layout.slices(index, 0, length)? {
            let pad = layout.files.get(slice.file)?.pad;
            let part = if pad {
                Part::Zeros(slice.length)
            } else {
                Part::Fetch {
                    file: slice.file,
                    offset: slice.offset,
                    length: slice.length,
                }
            };
            push(&mut parts, part);
        }
    }
    Some(parts)
}

/// Appends `part`, merged into the last part when it continues it.
fn push(parts: &mut Vec<Part>, part: Part) {
    match (parts.last_mut(), part) {
        (Some(Part::Zeros(last)), Part::Zeros(more)) => *last += more,
        (
            Some(Part::Fetch {
                file: last_file,
                offset: last_offset,
                length: last_length,
            }),
            Part::Fetch {
                file,
                offset,
                length,
            },
        ) if *last_file == file && *last_offset + *last_length == offset => *last_length += length,
        _ => parts.push(part),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::MetaInfo;

    fn layout(piece_length: u32, files: &[(&str, u64, bool)]) -> Layout {
        Layout::from_meta_info(&MetaInfo::for_test("t", piece_length, files))
    }

    /// Bytes of the run `part` covers.
    fn len(part: &Part) -> u64 {
        match *part {
            Part::Fetch { length, .. } | Part::Zeros(length) => length,
        }
    }

    fn fetch(file: usize, offset: u64, length: u64) -> Part {
        Part::Fetch {
            file,
            offset,
            length,
        }
    }

    #[test]
    fn one_file_run_is_one_request() {
        let l = layout(16, &[("a", 100, false)]);
        assert_eq!(parts(&l, 0..1), Some(vec![fetch(0, 0, 16)]));
        assert_eq!(parts(&l, 2..5), Some(vec![fetch(0, 32, 48)]));
        // The last piece is short: 100 = 6 * 16 + 4.
        assert_eq!(parts(&l, 5..7), Some(vec![fetch(0, 80, 20)]));
        assert_eq!(parts(&l, 6..7), Some(vec![fetch(0, 96, 4)]));
    }

    #[test]
    fn run_across_files_is_one_request_per_file() {
        let l = layout(16, &[("a", 10, false), ("b", 3, false), ("c", 40, false)]);
        // Piece 0: a[0..10], b[0..3], c[0..3]; piece 1: c[3..19].
        assert_eq!(
            parts(&l, 0..2),
            Some(vec![fetch(0, 0, 10), fetch(1, 0, 3), fetch(2, 0, 19)])
        );
        // The last piece (bytes 48..53) lies in c alone.
        assert_eq!(parts(&l, 3..4), Some(vec![fetch(2, 35, 5)]));
    }

    #[test]
    fn pad_files_are_zeros_and_empty_files_skipped() {
        let l = layout(
            16,
            &[
                ("a", 10, false),
                (".pad/6", 6, true),
                ("empty", 0, false),
                ("b", 20, false),
                (".pad/4", 4, true),
                (".pad/8", 8, true),
                ("c", 2, false),
            ],
        );
        assert_eq!(
            parts(&l, 0..4),
            Some(vec![
                fetch(0, 0, 10),
                Part::Zeros(6),
                fetch(3, 0, 20),
                Part::Zeros(12),
                fetch(6, 0, 2),
            ])
        );
        let total: u64 = parts(&l, 0..4).unwrap().iter().map(len).sum();
        assert_eq!(total, 50);
        // A piece made only of padding asks for nothing.
        let l = layout(4, &[("a", 4, false), (".pad/8", 8, true), ("b", 1, false)]);
        assert_eq!(parts(&l, 1..3), Some(vec![Part::Zeros(8)]));
    }

    #[test]
    fn runs_outside_the_torrent_are_refused() {
        let l = layout(16, &[("a", 40, false)]);
        assert_eq!(parts(&l, 0..0), None);
        assert_eq!(parts(&l, 2..4), None);
        assert_eq!(parts(&l, 3..4), None);
        assert_eq!(parts(&l, u32::MAX - 1..u32::MAX), None);
    }
}
