//! `--files` and `--only`: which files of a torrent to download.
//!
//! Files are numbered from 1 in torrent order, as `--list` prints them (and
//! as aria2's `--select-file` does); pad files keep their number but are
//! never listed nor selected. `--only` globs match the path inside the
//! torrent (without the torrent's folder), `*` crossing `/`.

use std::ops::RangeInclusive;
use std::path::Path;

use bittorrent::metainfo::{FileEntry, MetaInfo};
use bittorrent::prelude::Priority;
use globset::{Glob, GlobSet, GlobSetBuilder};

/// The files the user asked for.
#[derive(Clone, Debug)]
pub struct Selection {
    /// `--files` numbers and ranges (1-based, inclusive).
    numbers: Vec<RangeInclusive<usize>>,
    /// `--only` patterns, compiled.
    globs: GlobSet,
    /// `--only` patterns as given, for messages.
    patterns: Vec<String>,
}

impl Selection {
    /// The selection of `--files LIST` and `--only GLOB`s; `None` when
    /// neither is given (every file).
    ///
    /// # Errors
    /// A list or pattern that does not parse.
    pub fn new(files: Option<&str>, only: &[String]) -> Result<Option<Self>, String> {
        if files.is_none() && only.is_empty() {
            return Ok(None);
        }
        let numbers = match files {
            Some(list) => parse_numbers(list)?,
            None => Vec::new(),
        };
        let mut builder = GlobSetBuilder::new();
        for pattern in only {
            let glob = Glob::new(pattern).map_err(|e| format!("--only {pattern:?}: {e}"))?;
            builder.add(glob);
        }
        let globs = builder
            .build()
            .map_err(|e| format!("--only patterns: {e}"))?;
        Ok(Some(Self {
            numbers,
            globs,
            patterns: only.to_vec(),
        }))
    }

    /// One priority per file of `meta`: `Normal` for the selected files,
    /// `Skip` for the others.
    ///
    /// # Errors
    /// A number past the last file, or a selection of no file at all.
    pub fn priorities(&self, meta: &MetaInfo) -> Result<Vec<Priority>, String> {
        let count = meta.files.len();
        if let Some(range) = self.numbers.iter().find(|r| *r.end() > count) {
            return Err(format!(
                "--files {}: the torrent has {count} file(s)",
                range.end()
            ));
        }
        let priorities: Vec<Priority> = meta
            .files
            .iter()
            .enumerate()
            .map(|(index, file)| {
                let number = index + 1;
                let chosen = !file.pad
                    && (self.numbers.iter().any(|r| r.contains(&number))
                        || self.globs.is_match(path_in_torrent(meta, file)));
                if chosen {
                    Priority::Normal
                } else {
                    Priority::Skip
                }
            })
            .collect();
        if priorities.iter().all(|&p| p == Priority::Skip) {
            let mut what = Vec::new();
            if !self.numbers.is_empty() {
                what.push("--files".to_owned());
            }
            what.extend(self.patterns.iter().map(|p| format!("--only {p:?}")));
            return Err(format!("{} select(s) no file", what.join(" and ")));
        }
        Ok(priorities)
    }
}

/// A file's path inside its torrent: without the torrent's folder for a
/// multi-file torrent.
pub fn path_in_torrent<'a>(meta: &MetaInfo, file: &'a FileEntry) -> &'a Path {
    if meta.multi_file {
        let mut parts = file.path.components();
        parts.next();
        if parts.clone().next().is_some() {
            return parts.as_path();
        }
    }
    &file.path
}

/// `--list`: the torrent's files, numbered as `--files` counts them.
pub fn list(meta: &MetaInfo) -> String {
    let mut out = format!("{} ({} bytes)\n", meta.name, meta.total_length);
    for (index, file) in meta.files.iter().enumerate().filter(|(_, f)| !f.pad) {
        out.push_str(&format!(
            "{:>5}  {:>14}  {}\n",
            index + 1,
            file.length,
            path_in_torrent(meta, file).display()
        ));
    }
    out
}

/// Parses `1,3-5,8`: numbers from 1 and inclusive ranges.
fn parse_numbers(list: &str) -> Result<Vec<RangeInclusive<usize>>, String> {
    let bad = |item: &str, why: &str| format!("--files {list:?}: {item:?} {why}");
    list.split(',')
        .map(str::trim)
        .map(|item| {
            let (start, end) = match item.split_once('-') {
                Some((a, b)) => (a.trim(), b.trim()),
                None => (item, item),
            };
            let number = |s: &str| match s.parse::<usize>() {
                Ok(0) => Err(bad(item, "is not a file number (they start at 1)")),
                Ok(n) => Ok(n),
                Err(_) => Err(bad(item, "is not a file number or range like 3-5")),
            };
            let (start, end) = (number(start)?, number(end)?);
            if start > end {
                return Err(bad(item, "is an empty range"));
            }
            Ok(start..=end)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::path::PathBuf;

    fn meta(paths: &[(&str, bool)]) -> MetaInfo {
        let files = paths
            .iter()
            .enumerate()
            .map(|(i, &(path, pad))| FileEntry {
                path: Path::new("show").join(path),
                length: 10,
                offset: 10 * i as u64,
                pad,
            })
            .collect::<Vec<_>>();
        MetaInfo {
            info_hash: bittorrent::types::InfoHash([0; 20]),
            name: "show".into(),
            piece_length: 16,
            piece_hashes: vec![[0; 20]; (10 * files.len()).div_ceil(16)],
            total_length: 10 * files.len() as u64,
            files,
            trackers: Vec::new(),
            private: false,
            multi_file: true,
            comment: None,
            created_by: None,
            creation_date: None,
            url_list: Vec::new(),
            info_bytes: Bytes::new(),
        }
    }

    fn sample() -> MetaInfo {
        meta(&[
            ("s1/e1.mkv", false),
            ("s1/e1.srt", false),
            (".pad/6", true),
            ("s2/e1.mkv", false),
            ("readme.txt", false),
        ])
    }

    use Priority::{Normal as N, Skip as S};

    #[test]
    fn numbers_and_ranges() {
        let sel = Selection::new(Some("2, 4-5"), &[]).unwrap().unwrap();
        assert_eq!(sel.priorities(&sample()).unwrap(), vec![S, N, S, N, N]);
        // A range over a pad file leaves the pad out.
        let sel = Selection::new(Some("1-3"), &[]).unwrap().unwrap();
        assert_eq!(sel.priorities(&sample()).unwrap(), vec![N, N, S, S, S]);
    }

    #[test]
    fn globs_match_inside_the_torrent_folder_and_cross_slashes() {
        let only = ["*.mkv".to_owned()];
        let sel = Selection::new(None, &only).unwrap().unwrap();
        assert_eq!(sel.priorities(&sample()).unwrap(), vec![N, S, S, N, S]);
        let only = ["s1/*".to_owned(), "readme.txt".to_owned()];
        let sel = Selection::new(Some("4"), &only).unwrap().unwrap();
        assert_eq!(sel.priorities(&sample()).unwrap(), vec![N, N, S, N, N]);
    }

    #[test]
    fn no_selection_means_every_file() {
        assert!(Selection::new(None, &[]).unwrap().is_none());
    }

    #[test]
    fn bad_selections_are_clear_errors() {
        for list in ["", "0", "a", "3-1", "1,,2", "-2", "2-"] {
            let err = Selection::new(Some(list), &[]).unwrap_err();
            assert!(err.starts_with("--files"), "{list}: {err}");
        }
        assert!(Selection::new(None, &["a[".to_owned()]).is_err());
        let sel = Selection::new(Some("6"), &[]).unwrap().unwrap();
        assert_eq!(
            sel.priorities(&sample()).unwrap_err(),
            "--files 6: the torrent has 5 file(s)"
        );
        let sel = Selection::new(Some("3"), &["*.iso".to_owned()])
            .unwrap()
            .unwrap();
        let err = sel.priorities(&sample()).unwrap_err();
        assert_eq!(err, "--files and --only \"*.iso\" select(s) no file");
    }

    #[test]
    fn single_file_torrents_match_their_name() {
        let mut m = meta(&[("x", false)]);
        m.multi_file = false;
        m.files[0].path = PathBuf::from("movie.mp4");
        let sel = Selection::new(None, &["*.mp4".to_owned()])
            .unwrap()
            .unwrap();
        assert_eq!(sel.priorities(&m).unwrap(), vec![N]);
    }

    #[test]
    fn list_numbers_files_and_hides_padding() {
        let text = list(&sample());
        assert!(text.contains("    4              10  s2/e1.mkv"), "{text}");
        assert!(!text.contains(".pad"), "{text}");
    }
}
