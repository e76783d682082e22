//! What a file looks like on disk now: its [`FileStamp`] (size, times,
//! identity) and where it holds data ([`DataMap`], from `SEEK_DATA` and
//! `SEEK_HOLE`), for [`crate::recovery`].

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::SeekFrom;

use crate::recovery::{DataMap, OnDisk};
use crate::resume::{FileStamp, Time};

/// At most this many data ranges are listed per file; past them the rest of
/// the file counts as data (a file this fragmented is hashed, not skipped).
const MAX_RANGES: usize = 1 << 16;

/// The stamp and data map of the file at `path`; nothing for a missing file.
pub(crate) fn probe(path: &Path) -> OnDisk {
    let Ok(file) = File::open(path) else {
        return OnDisk::default();
    };
    let Ok(meta) = file.metadata() else {
        return OnDisk::default();
    };
    let stamp = stamp_of(&meta);
    OnDisk {
        data: data_map(&file, stamp.length),
        stamp: Some(stamp),
    }
}

/// The stamp of the file at `path`; `None` when it does not exist (or
/// cannot be examined, which is treated the same).
pub(crate) fn stamp(path: &Path) -> Option<FileStamp> {
    std::fs::metadata(path).ok().map(|m| stamp_of(&m))
}

fn stamp_of(meta: &std::fs::Metadata) -> FileStamp {
    let time = |secs: i64, nanos: i64| Time {
        secs,
        // The kernel keeps nanoseconds in 0..1e9.
        nanos: u32::try_from(nanos).unwrap_or(0).min(999_999_999),
    };
    FileStamp {
        length: meta.len(),
        mtime: time(meta.mtime(), meta.mtime_nsec()),
        ctime: time(meta.ctime(), meta.ctime_nsec()),
        dev: meta.dev(),
        inode: meta.ino(),
    }
}

/// Where `file` (`length` bytes) holds data. A file system that cannot tell
/// holes from data answers as if everything is data, and so does this.
fn data_map(file: &File, length: u64) -> DataMap {
    let mut ranges = Vec::new();
    let mut pos = 0;
    while pos < length {
        if ranges.len() == MAX_RANGES {
            ranges.push((pos, length));
            break;
        }
        let start = match rustix::fs::seek(file, SeekFrom::Data(pos)) {
            Ok(start) => start,
            // ENXIO: no data after `pos`.
            Err(rustix::io::Errno::NXIO) => break,
            Err(_) => return DataMap::full(length),
        };
        let end = match rustix::fs::seek(file, SeekFrom::Hole(start)) {
            Ok(end) => end.min(length),
            Err(_) => length,
        };
        if end <= start {
            break;
        }
        ranges.push((start, end));
        pos = end;
    }
    DataMap::new(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn holes_are_not_data() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sparse");
        let file = File::create(&path).unwrap();
        // 4 MiB, data only in the second MiB.
        file.set_len(4 << 20).unwrap();
        file.write_all_at(&vec![1u8; 1 << 20], 1 << 20).unwrap();
        drop(file);
        let on_disk = probe(&path);
        assert_eq!(on_disk.stamp.unwrap().length, 4 << 20);
        let data = &on_disk.data;
        assert!(data.any_data(1 << 20, 1));
        assert!(data.any_data((2 << 20) - 1, 1));
        // Where holes are supported (tmpfs, ext4, xfs, btrfs ...), the rest
        // is not data; elsewhere everything is.
        if !data.any_data(0, 1 << 20) {
            assert!(!data.any_data(3 << 20, 1 << 20));
        }
    }

    #[test]
    fn missing_and_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = probe(&dir.path().join("nope"));
        assert!(missing.stamp.is_none());
        assert!(!missing.data.any_data(0, u64::MAX));
        let path = dir.path().join("empty");
        File::create(&path).unwrap();
        let empty = probe(&path);
        assert_eq!(empty.stamp.unwrap().length, 0);
        assert!(!empty.data.any_data(0, 10));
        assert_eq!(stamp(&path), empty.stamp);
    }

    #[test]
    fn a_write_moves_the_times_forward_and_keeps_the_identity() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"abc").unwrap();
        let before = stamp(&path).unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(b"defg", 3).unwrap();
        let after = stamp(&path).unwrap();
        assert_eq!((after.dev, after.inode), (before.dev, before.inode));
        assert_eq!(after.length, 7);
        assert!(after.mtime > before.mtime && after.ctime >= before.ctime);
    }
}
