//! What a restart trusts and what it checks again. Pure: the store gathers
//! what is on disk now (a [`FileStamp`] and the data regions of every file),
//! [`plan`] compares it with the last [`ResumeRecord`] and answers with a
//! [`Recovery`]: pieces trusted without hashing, and pieces to hash.
//!
//! # How a file's change is judged
//! A store writes a record at least every few tens of milliseconds while it
//! writes pieces, and each record carries a *lease*: the store writes no data
//! after the lease unless a newer record (with a later lease) is on disk
//! first. So after a crash, a file of the torrent compared with its stamp in
//! the last record is:
//! - **unchanged**: the same stamp;
//! - **changed by us**: the same device and inode (not replaced), not shorter
//!   (we never truncate), modification and change times moved forward but not
//!   past the lease (ctime is set by the kernel only, so a `touch` of the
//!   mtime does not hide a change). Our writes only add verified pieces, so
//!   the pieces the record lists are still there;
//! - **changed by someone else**: anything else (replaced, shrunk, deleted,
//!   times going back, or a change after the lease).
//!
//! A piece is trusted when the record lists it and every file holding its
//! bytes (or the part file, for a share kept there) is unchanged or changed
//! by us. Every other piece is hashed if some of its bytes are data on disk;
//! a piece lying wholly in holes (never written: sparse regions hold no data)
//! or past the end of its files is simply downloaded. Without a usable record
//! every piece with data is hashed; asked to skip the record, every piece is.
//!
//! A piece never counts as verified unless its bytes are on disk: a record
//! lists only pieces already written when it was saved, and a trusted piece's
//! files were changed by nothing but our writes of other verified pieces.

use crate::bitfield::Bitfield;
use crate::resume::{FileStamp, ResumeRecord, Time};
use crate::store::Layout;

/// What a restart starts from: pieces trusted from the resume record, and
/// pieces whose data must be hashed before they count. Every other piece is
/// downloaded. The two sets never share a piece.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovery {
    /// Verified without hashing: listed by the record, files untouched by
    /// anyone else.
    pub trusted: Bitfield,
    /// To hash: pieces with data on disk that the record does not vouch for.
    pub to_hash: Bitfield,
    /// False when the record no longer describes the files exactly: a new
    /// one should be written once the check is done.
    pub exact: bool,
}

impl Recovery {
    /// Hash every one of `piece_count` pieces (no record to go by).
    pub fn check_all(piece_count: usize) -> Self {
        Self {
            trusted: Bitfield::new(piece_count),
            to_hash: Bitfield::full(piece_count),
            exact: false,
        }
    }

    /// Trust exactly `have` and hash nothing (a record that matches).
    pub fn trust(have: Bitfield) -> Self {
        let to_hash = Bitfield::new(have.len());
        Self {
            trusted: have,
            to_hash,
            exact: true,
        }
    }
}

/// Where a file's bytes hold data, as sorted, disjoint `[start, end)` ranges
/// (from `SEEK_DATA`/`SEEK_HOLE`; everything up to the length where the file
/// system cannot tell).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DataMap(Vec<(u64, u64)>);

impl DataMap {
    /// Data over `ranges` (sorted, disjoint, non-empty ranges).
    pub fn new(ranges: Vec<(u64, u64)>) -> Self {
        Self(ranges)
    }

    /// Data everywhere in `0..length`.
    pub fn full(length: u64) -> Self {
        Self(if length > 0 {
            vec![(0, length)]
        } else {
            vec![]
        })
    }

    /// Whether any byte of `offset..offset + length` is data.
    pub fn any_data(&self, offset: u64, length: u64) -> bool {
        let end = offset.saturating_add(length);
        // The first range that ends after `offset`.
        let i = self.0.partition_point(|&(_, e)| e <= offset);
        self.0.get(i).is_some_and(|&(s, _)| s < end)
    }
}

/// One file (or the part file) as it is on disk now.
#[derive(Clone, Debug, Default)]
pub struct OnDisk {
    /// `None` when it does not exist.
    pub stamp: Option<FileStamp>,
    /// Where it holds data.
    pub data: DataMap,
}

/// What [`plan`] knows of the disk: every file, in layout order, the part
/// file, and which piece shares the part file holds.
pub struct DiskState<'a> {
    /// One entry per file of the layout (pad files included, never read).
    pub files: Vec<OnDisk>,
    /// The part file.
    pub parts: OnDisk,
    /// Whether the part file holds `file`'s share of `piece`.
    pub in_parts: &'a dyn Fn(u32, usize) -> bool,
    /// The part file's index is unreadable or names missing data: nothing
    /// of it can be trusted, and which shares it held is unknown.
    pub parts_damaged: bool,
}

/// How a file changed since the record was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// Stamp as recorded.
    None,
    /// Changes our own writes explain (see the [module docs](self)).
    Ours,
    /// Changed by someone else: nothing in it is trusted.
    Foreign,
}

/// How a file stamped `recorded` in a record with `lease` compares with
/// `now`.
pub fn judge(recorded: Option<&FileStamp>, now: Option<&FileStamp>, lease: Time) -> Change {
    let within_lease = |n: &FileStamp| n.mtime <= lease && n.ctime <= lease;
    match (recorded, now) {
        (None, None) => Change::None,
        // Created after the record: by us if before the lease.
        (None, Some(n)) if within_lease(n) => Change::Ours,
        (None, Some(_)) | (Some(_), None) => Change::Foreign,
        (Some(r), Some(n)) if r == n => Change::None,
        (Some(r), Some(n)) => {
            let ours = n.dev == r.dev
                && n.inode == r.inode
                && n.length >= r.length
                && n.mtime >= r.mtime
                && n.ctime >= r.ctime
                && within_lease(n);
            if ours {
                Change::Ours
            } else {
                Change::Foreign
            }
        }
    }
}

/// Decides what to trust and what to hash (see the [module docs](self)).
/// `record` is the last record, already checked to belong to this torrent
/// (same piece and file count); `None` when there is none. `skip`: the user
/// asked to check every piece.
pub fn plan(
    layout: &Layout,
    record: Option<&ResumeRecord>,
    disk: &DiskState<'_>,
    skip: bool,
) -> Recovery {
    let count = layout.piece_count();
    // A damaged part file hides where shares are: trust no record then.
    let record = record.filter(|_| !disk.parts_damaged);
    if skip {
        return Recovery::check_all(count);
    }
    let Some(record) = record else {
        return hash_what_has_data(layout, disk);
    };
    let mut changes: Vec<Change> = record
        .files
        .iter()
        .zip(&disk.files)
        .map(|(rec, now)| judge(rec.as_ref(), now.stamp.as_ref(), record.lease))
        .collect();
    changes.push(judge(
        record.parts.as_ref(),
        disk.parts.stamp.as_ref(),
        record.lease,
    ));
    let mut recovery = hash_what_has_data(layout, disk);
    for piece in 0..count {
        if record.have.get(piece) && piece_intact(layout, disk, record, &changes, piece as u32) {
            recovery.trusted.set(piece);
            recovery.to_hash.clear(piece);
        }
    }
    recovery.exact = changes.iter().all(|&c| c == Change::None);
    recovery
}

/// Where the bytes of every non-pad slice of `piece` are: (index into
/// `changes`, which is the part file for the last one, the map, offset, length).
fn locations<'d>(
    layout: &Layout,
    disk: &'d DiskState<'_>,
    piece: u32,
) -> Vec<(usize, &'d OnDisk, u64, u64)> {
    let len = u64::from(layout.piece_len(piece));
    let slices = layout.slices(piece, 0, len).unwrap_or_default();
    slices
        .into_iter()
        .filter(|s| !layout.files[s.file].pad)
        .map(|s| {
            if (disk.in_parts)(piece, s.file) {
                let offset = layout.files[s.file].offset + s.offset;
                (disk.files.len(), &disk.parts, offset, s.length)
            } else {
                (s.file, &disk.files[s.file], s.offset, s.length)
            }
        })
        .collect()
}

/// A listed piece stays verified when no one else changed its files and its
/// bytes were within them when the record was written, and still are.
fn piece_intact(
    layout: &Layout,
    disk: &DiskState<'_>,
    record: &ResumeRecord,
    changes: &[Change],
    piece: u32,
) -> bool {
    let covers = |stamp: Option<&FileStamp>, end: u64| stamp.is_some_and(|s| s.length >= end);
    locations(layout, disk, piece)
        .into_iter()
        .all(|(at, on_disk, offset, length)| {
            let end = offset.saturating_add(length);
            let recorded = record.files.get(at).unwrap_or(&record.parts);
            changes[at] != Change::Foreign
                && covers(recorded.as_ref(), end)
                && covers(on_disk.stamp.as_ref(), end)
        })
}

/// Every piece with some data on disk (or of padding only) to hash; nothing
/// trusted.
fn hash_what_has_data(layout: &Layout, disk: &DiskState<'_>) -> Recovery {
    let count = layout.piece_count();
    let mut recovery = Recovery {
        trusted: Bitfield::new(count),
        to_hash: Bitfield::new(count),
        exact: false,
    };
    for piece in 0..count {
        let at = locations(layout, disk, piece as u32);
        let data = at
            .iter()
            .any(|&(_, on_disk, offset, length)| on_disk.data.any_data(offset, length));
        if data || at.is_empty() {
            recovery.to_hash.set(piece);
        }
    }
    recovery
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::MetaInfo;
    use crate::types::InfoHash;

    /// Pieces of 10 bytes; files a (25 bytes: pieces 0-2), pad (5: the rest
    /// of piece 2), b (20: pieces 3-4).
    fn layout() -> Layout {
        let meta = MetaInfo::for_test(
            "t",
            10,
            &[("a", 25, false), ("p", 5, true), ("b", 20, false)],
        );
        Layout::from_meta_info(&meta)
    }

    fn at(secs: i64) -> Time {
        Time { secs, nanos: 0 }
    }

    fn stamp(length: u64, secs: i64) -> FileStamp {
        FileStamp {
            length,
            mtime: at(secs),
            ctime: at(secs),
            dev: 1,
            inode: 42,
        }
    }

    fn file(stamp: Option<FileStamp>, data: &[(u64, u64)]) -> OnDisk {
        OnDisk {
            stamp,
            data: DataMap::new(data.to_vec()),
        }
    }

    fn bits(len: usize, ones: &[usize]) -> Bitfield {
        let mut b = Bitfield::new(len);
        for &i in ones {
            b.set(i);
        }
        b
    }

    fn ones(b: &Bitfield) -> Vec<usize> {
        b.iter_ones().collect()
    }

    /// A record listing `have`, stamps a=(25, t 100), b=(20, t 100), lease 110.
    fn record(have: &[usize]) -> ResumeRecord {
        ResumeRecord {
            info_hash: InfoHash([1; 20]),
            have: bits(5, have),
            files: vec![Some(stamp(25, 100)), None, Some(stamp(20, 100))],
            parts: None,
            lease: at(110),
        }
    }

    fn no_parts(_: u32, _: usize) -> bool {
        false
    }

    fn disk(a: OnDisk, b: OnDisk) -> DiskState<'static> {
        DiskState {
            files: vec![a, OnDisk::default(), b],
            parts: OnDisk::default(),
            in_parts: &no_parts,
            parts_damaged: false,
        }
    }

    #[test]
    fn an_unchanged_record_is_trusted_and_exact() {
        let d = disk(
            file(Some(stamp(25, 100)), &[(0, 25)]),
            file(Some(stamp(20, 100)), &[(0, 20)]),
        );
        let r = plan(&layout(), Some(&record(&[0, 1, 2, 3, 4])), &d, false);
        assert_eq!(r, Recovery::trust(bits(5, &[0, 1, 2, 3, 4])));
    }

    #[test]
    fn our_writes_after_the_record_keep_listed_pieces_and_hash_new_data() {
        // a grew and changed within the lease; b is unchanged. Piece 1 and 4
        // were written after the record; piece 2 is a hole.
        let mut grown = stamp(25, 105);
        grown.ctime = at(106);
        let d = disk(
            file(Some(grown), &[(0, 20)]),
            file(Some(stamp(20, 100)), &[(0, 20)]),
        );
        let r = plan(&layout(), Some(&record(&[0, 3])), &d, false);
        assert_eq!(ones(&r.trusted), [0, 3]);
        assert_eq!(ones(&r.to_hash), [1, 4]);
        assert!(!r.exact);
        // Created after the record, within the lease: ours too.
        let mut rec = record(&[3]);
        rec.files[0] = None;
        let r = plan(&layout(), Some(&rec), &d, false);
        assert_eq!(ones(&r.trusted), [3]);
        assert_eq!(ones(&r.to_hash), [0, 1, 4]);
    }

    #[test]
    fn changes_by_someone_else_untrust_that_files_pieces_only() {
        let listed = [0, 1, 2, 3, 4];
        let b_now = file(Some(stamp(20, 100)), &[(0, 20)]);
        let mut after_lease = stamp(25, 111);
        after_lease.mtime = at(105);
        let mut replaced = stamp(25, 105);
        replaced.inode = 43;
        let mut other_dev = stamp(25, 105);
        other_dev.dev = 2;
        let mut touched_back = stamp(25, 105);
        touched_back.mtime = at(50);
        let foreign = [
            Some(stamp(24, 105)), // shrunk
            Some(after_lease),    // ctime past the lease
            Some(replaced),
            Some(other_dev),
            Some(touched_back),
            None, // deleted
        ];
        for a in foreign {
            let data: &[(u64, u64)] = if a.is_some() { &[(0, 25)] } else { &[] };
            let d = disk(file(a, data), b_now.clone());
            let r = plan(&layout(), Some(&record(&listed)), &d, false);
            assert_eq!(ones(&r.trusted), [3, 4], "{a:?}");
            let expect: &[usize] = if a.is_some() { &[0, 1, 2] } else { &[] };
            assert_eq!(ones(&r.to_hash), expect, "{a:?}");
            assert!(!r.exact);
        }
    }

    #[test]
    fn without_a_record_only_pieces_with_data_are_hashed() {
        // a: data at 0..4 (piece 0) and 22..25 (piece 2); b: none, short.
        let d = disk(
            file(Some(stamp(25, 100)), &[(0, 4), (22, 25)]),
            file(Some(stamp(3, 100)), &[]),
        );
        let r = plan(&layout(), None, &d, false);
        assert!(r.trusted.iter_ones().next().is_none());
        assert_eq!(ones(&r.to_hash), [0, 2]);
        // Skipping the record hashes everything, holes included.
        let r = plan(&layout(), Some(&record(&[0, 1])), &d, true);
        assert_eq!(r, Recovery::check_all(5));
    }

    #[test]
    fn a_listed_piece_past_the_end_of_its_file_is_not_trusted() {
        // b's stamp claims 20 bytes, but the record is inconsistent with a
        // missing b; piece 4 cannot be on disk.
        let mut rec = record(&[3, 4]);
        rec.files[2] = None;
        let d = disk(file(Some(stamp(25, 100)), &[(0, 25)]), file(None, &[]));
        let r = plan(&layout(), Some(&rec), &d, false);
        assert!(r.trusted.iter_ones().next().is_none());
        let mut short = stamp(12, 100);
        short.ctime = at(101);
        let d = disk(
            file(Some(stamp(25, 100)), &[(0, 25)]),
            file(Some(short), &[(0, 12)]),
        );
        let mut rec = record(&[3, 4]);
        rec.files[2] = Some(stamp(12, 100));
        let r = plan(&layout(), Some(&rec), &d, false);
        assert_eq!(ones(&r.trusted), [3]);
        assert_eq!(
            ones(&r.to_hash),
            [0, 1, 2, 4],
            "4 and the unlisted with data"
        );
        // A record that lists pieces of a file it says did not exist is
        // not believed for them, even if the file is there now.
        let mut rec = record(&[0, 3]);
        rec.files[0] = None;
        let d = disk(
            file(Some(stamp(25, 105)), &[(0, 25)]),
            file(Some(stamp(20, 100)), &[(0, 20)]),
        );
        let r = plan(&layout(), Some(&rec), &d, false);
        assert_eq!(ones(&r.trusted), [3]);
        assert_eq!(ones(&r.to_hash), [0, 1, 2, 4]);
    }

    #[test]
    fn shares_in_the_part_file_follow_its_stamp() {
        // a is unwanted: its shares of pieces 0 and 2 are in the part file.
        let in_parts = |piece: u32, file: usize| file == 0 && (piece == 0 || piece == 2);
        let parts_now = |s| OnDisk {
            stamp: Some(s),
            data: DataMap::new(vec![(0, 10), (20, 25)]),
        };
        let mut rec = record(&[0, 2, 3]);
        rec.files[0] = None;
        rec.parts = Some(stamp(25, 100));
        let mut d = DiskState {
            files: vec![
                file(None, &[]),
                OnDisk::default(),
                file(Some(stamp(20, 100)), &[(0, 20)]),
            ],
            parts: parts_now(stamp(25, 100)),
            in_parts: &in_parts,
            parts_damaged: false,
        };
        let r = plan(&layout(), Some(&rec), &d, false);
        assert_eq!(ones(&r.trusted), [0, 2, 3]);
        assert!(r.exact);
        // Someone replaced the part file: its pieces are hashed.
        let mut other = stamp(25, 105);
        other.inode = 7;
        d.parts = parts_now(other);
        let r = plan(&layout(), Some(&rec), &d, false);
        assert_eq!(ones(&r.trusted), [3]);
        assert_eq!(ones(&r.to_hash), [0, 2, 4]);
        // A damaged part file: no record is trusted at all.
        d.parts = parts_now(stamp(25, 100));
        d.parts_damaged = true;
        let r = plan(&layout(), Some(&rec), &d, false);
        assert!(r.trusted.iter_ones().next().is_none());
        assert_eq!(ones(&r.to_hash), [0, 2, 3, 4]);
    }

    #[test]
    fn judging_a_file() {
        let r = stamp(10, 100);
        let lease = at(110);
        assert_eq!(judge(Some(&r), Some(&r), lease), Change::None);
        assert_eq!(judge(None, None, lease), Change::None);
        assert_eq!(judge(Some(&r), Some(&stamp(11, 110)), lease), Change::Ours);
        assert_eq!(
            judge(Some(&r), Some(&stamp(10, 111)), lease),
            Change::Foreign
        );
        assert_eq!(judge(None, Some(&stamp(10, 111)), lease), Change::Foreign);
        assert_eq!(judge(None, Some(&stamp(10, 109)), lease), Change::Ours);
        assert_eq!(judge(Some(&r), None, lease), Change::Foreign);
        // The same times but another length: the times did not explain it.
        let mut same_times = stamp(12, 100);
        same_times.ctime = at(100);
        assert_eq!(judge(Some(&r), Some(&same_times), lease), Change::Ours);
        let mut ctime_back = stamp(10, 105);
        ctime_back.ctime = at(99);
        assert_eq!(judge(Some(&r), Some(&ctime_back), lease), Change::Foreign);
    }

    #[test]
    fn data_maps() {
        let m = DataMap::new(vec![(10, 20), (30, 40)]);
        assert!(!m.any_data(0, 10));
        assert!(m.any_data(0, 11));
        assert!(m.any_data(19, 1));
        assert!(!m.any_data(20, 10));
        assert!(m.any_data(25, 100));
        assert!(!m.any_data(40, 5));
        assert!(!m.any_data(u64::MAX, 5));
        assert!(DataMap::full(5).any_data(4, 1));
        assert!(!DataMap::full(0).any_data(0, 1));
    }
}
