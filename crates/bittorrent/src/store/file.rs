//! [`FileStore`]: pieces written into the torrent's files on disk.
//!
//! All IO is positional (`pwritev` through rustix, `pread` through
//! [`std::os::unix::fs::FileExt`]): no file has a shared cursor, so any number
//! of threads may read and write at once through the same handles.

#[cfg(not(unix))]
compile_error!("FileStore needs positional file IO (std::os::unix::fs::FileExt): unix only");

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::recovery::{self, DiskState, OnDisk, Recovery};
use crate::store::handles::{pwrite_all, BlockCursor, HandleCache};
use crate::store::journal::{Journal, JournalState};
use crate::store::parts::PartFile;
use crate::store::paths::check_paths;
use crate::store::probe;
use crate::store::{FileRun, Layout, Store, StoreError};

/// Folder under the download directory that holds resume records.
pub const RESUME_DIR: &str = ".bittorrent";

/// Writes a torrent's files under a download directory: a single-file torrent
/// becomes `dir/name`, a multi-file torrent `dir/name/...`.
///
/// Files are opened lazily, on first use, and kept in a small cache of open
/// handles (at most [`FileStore::DEFAULT_MAX_OPEN_FILES`] by default, least
/// recently used closed first). Directories are created on the first write
/// below them. Pad files (BEP 47) are never created: their bytes are dropped
/// on write and read back as zeros.
///
/// Every path is checked to be relative and made only of normal components,
/// so nothing is written outside the download directory (symbolic links
/// already present under it are followed as the OS does).
///
/// Files can be deselected ([`Store::set_wanted_files`]). A store made by
/// [`FileStore::from_meta_info`] then never creates them: their share of a
/// piece that also holds a wanted file goes to a sparse part file,
/// `DIR/.bittorrent/<info-hash>.parts`, and moves into the file if it is
/// selected later. (A store from [`FileStore::from_layout`] has no such
/// place and writes every file.)
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    pub(super) layout: Layout,
    /// `root.join(file.path)` for every file of the layout.
    pub(super) paths: Vec<PathBuf>,
    /// Files written since the last [`Store::finalize`], to sync there.
    pub(super) written: Vec<AtomicBool>,
    handles: Mutex<HandleCache>,
    /// Whether data is fsynced at finalize and before each resume record.
    pub(super) sync: bool,
    /// The resume record, if the store keeps one.
    pub(super) journal: Option<Journal>,
    /// False when told to skip the existing record.
    pub(super) read_record: bool,
    /// Files (and the part file, last) written since the last record: their
    /// stamps are taken again for the next one.
    pub(super) restamp: Vec<AtomicBool>,
    /// Directories known to exist.
    dirs: Mutex<HashSet<PathBuf>>,
    /// Whether each file is wanted (all are at first).
    pub(super) wanted: Vec<AtomicBool>,
    /// Where the pieces' shares of unwanted files go, if anywhere.
    pub(super) parts: Option<PartFile>,
}

impl FileStore {
    /// How many files a store keeps open unless told otherwise.
    pub const DEFAULT_MAX_OPEN_FILES: usize = 128;

    /// A store for `meta`'s files under `dir`. Writes nothing on disk yet
    /// (it reads the part file's index, if there is one).
    ///
    /// # Errors
    /// [`StoreError::UnsafePath`] if a file path is empty, absolute or has a
    /// `.`/`..` component; [`StoreError::InvalidLayout`] if the files do not
    /// tile the torrent's byte stream or two files would share a path.
    pub fn from_meta_info(dir: impl AsRef<Path>, meta: &MetaInfo) -> Result<Self, StoreError> {
        let mut store = Self::from_layout(dir.as_ref(), Layout::from_meta_info(meta))?;
        let hex = meta.info_hash.to_hex();
        let meta_dir = dir.as_ref().join(RESUME_DIR);
        store.parts = Some(PartFile::load(
            meta_dir.join(format!("{hex}.parts")),
            store.layout.piece_count(),
            store.layout.files.len(),
        ));
        store.journal = Some(Journal::new(
            meta_dir.join(format!("{hex}.resume")),
            meta.info_hash,
        ));
        Ok(store)
    }

    /// A store for `layout`'s files under `dir`. Touches nothing on disk yet.
    ///
    /// # Errors
    /// As [`FileStore::from_meta_info`].
    pub fn from_layout(dir: impl AsRef<Path>, layout: Layout) -> Result<Self, StoreError> {
        layout.check().map_err(StoreError::InvalidLayout)?;
        check_paths(&layout)?;
        let root = dir.as_ref().to_path_buf();
        let paths = layout.files.iter().map(|f| root.join(&f.path)).collect();
        let written = layout
            .files
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let wanted = layout.files.iter().map(|_| AtomicBool::new(true)).collect();
        let restamp = (0..=layout.files.len())
            .map(|_| AtomicBool::new(false))
            .collect();
        Ok(Self {
            root,
            layout,
            paths,
            written,
            handles: Mutex::new(HandleCache::new(Self::DEFAULT_MAX_OPEN_FILES)),
            sync: false,
            journal: None,
            read_record: true,
            restamp,
            dirs: Mutex::new(HashSet::new()),
            wanted,
            parts: None,
        })
    }

    /// Keeps at most `max` files open (at least one) instead of
    /// [`FileStore::DEFAULT_MAX_OPEN_FILES`].
    pub fn with_max_open_files(self, max: usize) -> Self {
        self.handles_lock().capacity = max.max(1);
        self
    }

    /// Whether to fsync the data files at [`Store::finalize`] and before
    /// every resume record (default: no). Without it, written data is in the
    /// OS page cache, which survives the process being killed (the resume
    /// record is then exact) but not a power loss, after which a record may
    /// name pieces whose data never reached the disk — as in most clients
    /// (libtorrent does not sync either). Syncing 1 GiB costs about half a
    /// second here.
    pub fn with_sync(mut self, sync: bool) -> Self {
        self.sync = sync;
        self
    }

    /// Reads no resume record: every piece on disk is checked by hash. New
    /// records are still written as pieces complete.
    pub fn skip_resume(mut self) -> Self {
        self.read_record = false;
        self
    }

    /// Where the resume record is kept (`DIR/.bittorrent/<info-hash>.resume`
    /// for a store made by [`FileStore::from_meta_info`]).
    pub fn resume_path(&self) -> Option<&Path> {
        self.journal.as_ref().map(|j| j.path.as_path())
    }

    /// The download directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The torrent's piece geometry and files.
    pub fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Where file `file` (an index into [`Layout::files`]) lives on disk;
    /// `None` for an index past the last file.
    pub fn path_of(&self, file: usize) -> Option<&Path> {
        self.paths.get(file).map(PathBuf::as_path)
    }

    /// How many files are open right now (at most the configured maximum).
    pub fn open_files(&self) -> usize {
        self.handles_lock().len()
    }

    fn handles_lock(&self) -> MutexGuard<'_, HandleCache> {
        // The cache holds no invariant a panic could break half-way.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An open handle on file `index`, for writing (created if missing, with
    /// its directories) or for reading only.
    pub(super) fn file(&self, index: usize, write: bool) -> Result<Arc<File>, StoreError> {
        if let Some(file) = self.handles_lock().get(index, write) {
            return Ok(file);
        }
        // Open without holding the lock: opening may be slow, and two threads
        // racing to open the same file only cost one extra open.
        let path = &self.paths[index];
        let opened = if write {
            self.ensure_parent(path)?;
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
        } else {
            File::open(path)
        };
        let file = Arc::new(opened.map_err(|source| StoreError::Io {
            op: if write { "open for writing" } else { "open" },
            path: path.clone(),
            source,
        })?);
        self.handles_lock().insert(index, Arc::clone(&file), write);
        Ok(file)
    }

    /// Creates `path`'s parent directory unless it is known to exist.
    fn ensure_parent(&self, path: &Path) -> Result<(), StoreError> {
        let Some(parent) = path.parent() else {
            return Ok(());
        };
        if parent.as_os_str().is_empty() || self.dirs_lock().contains(parent) {
            return Ok(());
        }
        std::fs::create_dir_all(parent).map_err(|source| StoreError::Io {
            op: "create directory",
            path: parent.to_path_buf(),
            source,
        })?;
        self.dirs_lock().insert(parent.to_path_buf());
        Ok(())
    }

    fn dirs_lock(&self) -> MutexGuard<'_, HashSet<PathBuf>> {
        self.dirs.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Store for FileStore {
    fn write_piece(&self, index: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let piece_len = self.layout.piece_len(index);
        if piece_len == 0 || total != u64::from(piece_len) {
            return Err(StoreError::OutOfRange {
                index,
                begin: 0,
                length: total,
            });
        }
        self.write_blocks(index, 0, blocks)?;
        self.piece_verified(index)
    }

    fn piece_verified(&self, index: u32) -> Result<(), StoreError> {
        if self.layout.piece_len(index) == 0 {
            return Err(StoreError::OutOfRange {
                index,
                begin: 0,
                length: 0,
            });
        }
        self.after_write(index);
        Ok(())
    }

    fn write_blocks(&self, index: u32, begin: u32, blocks: &[Bytes]) -> Result<(), StoreError> {
        let total: u64 = blocks.iter().map(|b| b.len() as u64).sum();
        let out_of_range = || StoreError::OutOfRange {
            index,
            begin,
            length: total,
        };
        if total == 0 {
            return Err(out_of_range());
        }
        let slices = self
            .layout
            .slices(index, begin, total)
            .ok_or_else(out_of_range)?;
        self.before_write();
        let mut cursor = BlockCursor::new(blocks);
        for slice in slices {
            if self.layout.files[slice.file].pad {
                cursor.skip(slice.length);
                continue;
            }
            let target = self.target(index, slice, true)?;
            let file = target.file.ok_or_else(out_of_range)?;
            if !target.in_parts {
                self.written[slice.file].store(true, Ordering::Relaxed);
            }
            let parts = cursor.take_parts(slice.length);
            if parts.iter().map(|p| p.len() as u64).sum::<u64>() != slice.length {
                // Unreachable: the blocks add up to the piece length.
                return Err(out_of_range());
            }
            pwrite_all(&file, &parts, target.offset).map_err(|source| StoreError::Io {
                op: "write",
                path: target.path.to_path_buf(),
                source,
            })?;
            self.restamp(match target.in_parts {
                true => self.parts_slot(),
                false => slice.file,
            });
            if let Some(parts) = &self.parts {
                if target.in_parts {
                    parts.add(index, slice.file)?;
                } else if parts.holds(index, slice.file) {
                    // Rewritten in place: the old share is stale.
                    parts.remove(&[index], slice.file)?;
                    self.restamp(self.parts_slot());
                }
            }
        }
        Ok(())
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        let out_of_range = StoreError::OutOfRange {
            index,
            begin,
            length: u64::from(length),
        };
        // Checked against the piece first, so this allocation is at most one
        // piece long.
        self.layout
            .slices(index, begin, u64::from(length))
            .ok_or(out_of_range)?;
        let mut buf = vec![0u8; length as usize];
        self.read_into(index, begin, &mut buf)?;
        Ok(Bytes::from(buf))
    }

    fn read_into(&self, index: u32, begin: u32, buf: &mut [u8]) -> Result<(), StoreError> {
        let length = buf.len() as u64;
        let slices = self
            .layout
            .slices(index, begin, length)
            .filter(|_| u32::try_from(length).is_ok())
            .ok_or(StoreError::OutOfRange {
                index,
                begin,
                length,
            })?;
        let mut pos = 0;
        for slice in slices {
            let len = slice.length as usize;
            let dest = &mut buf[pos..pos + len];
            pos += len;
            if self.layout.files[slice.file].pad {
                dest.fill(0); // Pad bytes are zeros.
                continue;
            }
            let (file, offset, path) = self.read_target(index, slice)?;
            file.read_exact_at(dest, offset)
                .map_err(|source| match source.kind() {
                    io::ErrorKind::UnexpectedEof => StoreError::ShortRead {
                        path: path.to_path_buf(),
                        offset: slice.offset,
                        length: slice.length,
                    },
                    _ => StoreError::Io {
                        op: "read",
                        path: path.to_path_buf(),
                        source,
                    },
                })?;
        }
        Ok(())
    }

    fn file_runs(
        &self,
        index: u32,
        begin: u32,
        length: u32,
    ) -> Result<Option<Vec<FileRun>>, StoreError> {
        self.runs_of(index, begin, length)
    }

    fn finalize(&self) -> Result<(), StoreError> {
        for (index, entry) in self.layout.files.iter().enumerate() {
            if entry.pad || entry.length != 0 || !self.wanted[index].load(Ordering::Relaxed) {
                continue;
            }
            let path = &self.paths[index];
            self.ensure_parent(path)?;
            self.before_write();
            self.restamp(index);
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .open(path)
                .map_err(|source| StoreError::Io {
                    op: "create",
                    path: path.clone(),
                    source,
                })?;
        }
        if self.sync {
            self.sync_written()?;
        }
        Ok(())
    }

    fn set_wanted_files(&self, wanted: &[bool]) -> Result<(), StoreError> {
        if wanted.len() != self.wanted.len() {
            return Err(StoreError::InvalidLayout(format!(
                "{} selection flags for {} files",
                wanted.len(),
                self.wanted.len()
            )));
        }
        for (flag, &want) in self.wanted.iter().zip(wanted) {
            flag.store(want, Ordering::Relaxed);
        }
        if let Some(parts) = &self.parts {
            for (file, _) in wanted.iter().enumerate().filter(|(_, &want)| want) {
                self.move_out_of_parts(parts, file)?;
            }
        }
        Ok(())
    }

    fn recover(&self, _piece_count: usize) -> Recovery {
        let record = self.read_record();
        let in_parts =
            |piece: u32, file: usize| self.parts.as_ref().is_some_and(|p| p.holds(piece, file));
        let disk = DiskState {
            files: (0..self.layout.files.len())
                .map(|i| match self.layout.files[i].pad {
                    true => OnDisk::default(),
                    false => probe::probe(&self.paths[i]),
                })
                .collect(),
            parts: self
                .parts
                .as_ref()
                .map(|p| probe::probe(p.path()))
                .unwrap_or_default(),
            in_parts: &in_parts,
            parts_damaged: self
                .parts
                .as_ref()
                .is_some_and(|p| p.is_damaged(|piece, file| self.share_end(piece, file))),
        };
        if disk.parts_damaged && record.is_some() {
            log::info!(
                "part file of {} does not hold what its index says; not trusting the resume record",
                self.root.display()
            );
        }
        let recovery = recovery::plan(&self.layout, record.as_ref(), &disk, !self.read_record);
        if let Some(journal) = &self.journal {
            let mut stamps: Vec<_> = disk.files.iter().map(|f| f.stamp).collect();
            stamps.push(disk.parts.stamp);
            *journal.lock() = Some(JournalState::new(recovery.trusted.clone(), stamps));
        }
        recovery
    }

    fn save_resume(&self, have: &Bitfield) -> Result<(), StoreError> {
        let Some(journal) = &self.journal else {
            return Ok(());
        };
        if self.sync {
            self.sync_written()?;
        }
        let mut state = journal.lock();
        // Without a recovery first: the files as they are now.
        let state = state.get_or_insert_with(|| {
            let mut stamps: Vec<_> = self.paths.iter().map(|p| probe::stamp(p)).collect();
            stamps.push(self.parts.as_ref().and_then(|p| probe::stamp(p.path())));
            JournalState::new(Bitfield::new(self.layout.piece_count()), stamps)
        });
        state.merge(have);
        self.save_record(journal, state)
    }
}

impl FileStore {
    /// fsyncs every file written since the last sync.
    fn sync_written(&self) -> Result<(), StoreError> {
        for (index, written) in self.written.iter().enumerate() {
            // Cleared before syncing, so a write racing with this sync marks
            // the file again and the next finalize syncs it.
            if !written.swap(false, Ordering::Relaxed) {
                continue;
            }
            let synced = self.file(index, false).and_then(|file| {
                file.sync_data().map_err(|source| StoreError::Io {
                    op: "sync",
                    path: self.paths[index].clone(),
                    source,
                })
            });
            if let Err(e) = synced {
                written.store(true, Ordering::Relaxed);
                return Err(e);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resume::{ResumeRecord, Time};
    use crate::types::InfoHash;
    use rand::rngs::StdRng;
    use rand::seq::SliceRandom;
    use rand::{Rng, SeedableRng};
    use std::os::unix::fs::PermissionsExt;
    use std::sync::atomic::AtomicUsize;

    /// A multi-file torrent "t" with the given (path under t, length, pad).
    fn meta(piece_length: u32, files: &[(&str, u64, bool)]) -> MetaInfo {
        MetaInfo::for_test("t", piece_length, files)
    }

    /// Nested folders, uneven sizes, zero-length files (one at the very end,
    /// one in a folder nothing else uses) and a pad file.
    fn sample() -> MetaInfo {
        meta(
            32,
            &[
                ("a.bin", 100, false),
                ("empty", 0, false),
                ("sub/deep/b.bin", 33, false),
                (".pad/15", 15, true),
                ("sub/c.bin", 64, false),
                ("d", 1, false),
                ("only-empty/zero", 0, false),
                ("sub/deep/last", 50, false),
                ("sub/deep/zero2", 0, false),
            ],
        )
    }

    /// Random bytes for the torrent, zeros in pad files.
    fn stream(meta: &MetaInfo, seed: u64) -> Vec<u8> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut data = vec![0u8; meta.total_length as usize];
        rng.fill(&mut data[..]);
        for f in meta.files.iter().filter(|f| f.pad) {
            data[f.offset as usize..(f.offset + f.length) as usize].fill(0);
        }
        data
    }

    fn layout(meta: &MetaInfo) -> Layout {
        Layout::from_meta_info(meta)
    }

    /// Piece `index` of `data` as blocks of 10 bytes (and a shorter last one).
    fn blocks(meta: &MetaInfo, data: &[u8], index: u32) -> Vec<Bytes> {
        let l = layout(meta);
        let start = l.piece_offset(index).unwrap() as usize;
        let piece = &data[start..start + l.piece_len(index) as usize];
        piece.chunks(10).map(Bytes::copy_from_slice).collect()
    }

    /// Writes every piece in random order from four threads.
    fn write_all(store: &FileStore, meta: &MetaInfo, data: &[u8], seed: u64) {
        let mut order: Vec<u32> = (0..layout(meta).piece_count() as u32).collect();
        order.shuffle(&mut StdRng::seed_from_u64(seed));
        let next = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&index) = order.get(i) else { break };
                    store
                        .write_piece(index, &blocks(meta, data, index))
                        .unwrap();
                });
            }
        });
    }

    fn round_trip(max_open_files: usize, sync: bool) {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 1);
        let store = FileStore::from_meta_info(dir.path(), &meta)
            .unwrap()
            .with_max_open_files(max_open_files)
            .with_sync(sync);
        assert_eq!(store.root(), dir.path());
        // Nothing on disk before the first write.
        assert!(!dir.path().join("t").exists());

        write_all(&store, &meta, &data, max_open_files as u64);
        assert!(store.open_files() <= max_open_files);
        store.finalize().unwrap();

        for (i, f) in meta.files.iter().enumerate() {
            let path = store.path_of(i).unwrap();
            assert_eq!(path, dir.path().join(&f.path));
            if f.pad {
                assert!(!path.exists(), "pad file {} exists", path.display());
                continue;
            }
            let on_disk = std::fs::read(path).unwrap();
            let start = f.offset as usize;
            assert_eq!(on_disk, &data[start..start + f.length as usize], "{i}");
        }
        assert!(!dir.path().join("t/.pad").exists());
        assert!(dir.path().join("t/only-empty/zero").is_file());
        assert_eq!(store.path_of(meta.files.len()), None);

        // Every block reads back, pad bytes as zeros, across file boundaries.
        let l = layout(&meta);
        for index in 0..l.piece_count() as u32 {
            let start = l.piece_offset(index).unwrap() as usize;
            let len = l.piece_len(index);
            let whole = store.read_block(index, 0, len).unwrap();
            assert_eq!(whole, data[start..start + len as usize]);
            // Into a reused, dirty buffer: pad bytes are zeroed too.
            let mut reused = vec![0xa5u8; len as usize];
            store.read_into(index, 0, &mut reused).unwrap();
            assert_eq!(reused, whole);
            for begin in (0..len).step_by(7) {
                let n = 7.min(len - begin);
                let got = store.read_block(index, begin, n).unwrap();
                let from = start + begin as usize;
                assert_eq!(got, data[from..from + n as usize]);
            }
        }
    }

    #[test]
    fn round_trip_from_many_threads() {
        round_trip(FileStore::DEFAULT_MAX_OPEN_FILES, false);
    }

    #[test]
    fn round_trip_with_two_open_files() {
        round_trip(2, true);
    }

    #[test]
    fn single_file_torrent() {
        let dir = tempfile::tempdir().unwrap();
        let mut meta = meta(16, &[("x", 40, false)]);
        meta.files[0].path = PathBuf::from("movie.mkv");
        meta.multi_file = false;
        let data = stream(&meta, 2);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        write_all(&store, &meta, &data, 3);
        store.finalize().unwrap();
        assert_eq!(std::fs::read(dir.path().join("movie.mkv")).unwrap(), data);
        assert_eq!(store.read_block(2, 4, 4).unwrap(), data[36..40]);
    }

    #[test]
    fn rewriting_a_piece_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 3);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        write_all(&store, &meta, &data, 4);
        store.write_piece(2, &blocks(&meta, &data, 2)).unwrap();
        store
            .write_piece(2, &[Bytes::copy_from_slice(&data[64..96])])
            .unwrap();
        assert_eq!(store.read_block(2, 0, 32).unwrap(), data[64..96]);
    }

    #[test]
    fn reading_unwritten_data_is_a_short_read() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 4);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        // The file does not exist yet.
        match store.read_block(0, 0, 32) {
            Err(StoreError::ShortRead {
                path,
                offset,
                length,
            }) => {
                assert_eq!(path, dir.path().join("t/a.bin"));
                assert_eq!((offset, length), (0, 32));
            }
            other => panic!("{other:?}"),
        }
        // The file exists but ends before the range.
        store.write_piece(0, &blocks(&meta, &data, 0)).unwrap();
        assert_eq!(store.read_block(0, 0, 32).unwrap(), data[..32]);
        match store.read_block(1, 0, 32) {
            Err(StoreError::ShortRead { path, offset, .. }) => {
                assert_eq!(path, dir.path().join("t/a.bin"));
                assert_eq!(offset, 32);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn out_of_range_requests() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let count = layout(&meta).piece_count() as u32;
        let oor = |r: Result<(), StoreError>| matches!(r, Err(StoreError::OutOfRange { .. }));
        let oor_read =
            |r: Result<Bytes, StoreError>| matches!(r, Err(StoreError::OutOfRange { .. }));
        assert!(oor(store.write_piece(0, &[Bytes::from(vec![1; 31])])));
        assert!(oor(store.write_piece(0, &[Bytes::from(vec![1; 33])])));
        assert!(oor(store.write_piece(count, &[Bytes::from(vec![1; 32])])));
        assert!(oor(store.write_piece(count, &[])));
        assert!(oor_read(store.read_block(0, 30, 3)));
        assert!(oor_read(store.read_block(count, 0, 1)));
        assert!(oor_read(store.read_block(u32::MAX, u32::MAX, u32::MAX)));
        assert!(oor(store.read_into(0, 30, &mut [0; 3])));
        assert!(oor(store.read_into(count, 0, &mut [0; 1])));
        // The failed writes touched nothing.
        assert!(!dir.path().join("t").exists());
    }

    #[test]
    fn unsafe_paths_are_rejected() {
        for bad in ["../escape", "/etc/passwd", "", "a/../../b", "./a"] {
            let mut m = meta(16, &[("x", 10, false)]);
            m.files[0].path = PathBuf::from(bad);
            let err = FileStore::from_meta_info("/tmp/unused", &m).unwrap_err();
            assert!(
                matches!(&err, StoreError::UnsafePath { path } if path == Path::new(bad)),
                "{bad}: {err:?}"
            );
        }
        // Pad files are never touched, so their names do not matter.
        let mut m = meta(16, &[("x", 10, false), ("p", 6, true)]);
        m.files[1].path = PathBuf::from("../.pad/6");
        assert!(FileStore::from_meta_info("/tmp/unused", &m).is_ok());
    }

    #[test]
    fn colliding_and_misplaced_files_are_rejected() {
        let same = meta(16, &[("x", 10, false), ("x", 6, false)]);
        let file_and_dir = meta(16, &[("x", 10, false), ("x/y", 6, false)]);
        let dir_and_file = meta(16, &[("x/y", 10, false), ("x", 6, false)]);
        let mut gap = meta(16, &[("x", 10, false), ("y", 6, false)]);
        gap.files[1].offset = 11;
        let mut short = meta(16, &[("x", 10, false)]);
        short.total_length = 11;
        for m in [same, file_and_dir, dir_and_file, gap, short] {
            let err = FileStore::from_meta_info("/tmp/unused", &m).unwrap_err();
            assert!(matches!(err, StoreError::InvalidLayout(_)), "{err:?}");
        }
        // Pad files may share a name.
        let pads = meta(
            8,
            &[
                ("a", 5, false),
                (".pad/3", 3, true),
                ("b", 5, false),
                (".pad/3", 3, true),
            ],
        );
        assert!(FileStore::from_meta_info("/tmp/unused", &pads).is_ok());
    }

    #[test]
    fn io_errors_carry_the_path() {
        // A regular file where the torrent needs a directory: fails even as root.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("t"), b"in the way").unwrap();
        let meta = sample();
        let data = stream(&meta, 5);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        match store.write_piece(0, &blocks(&meta, &data, 0)) {
            Err(StoreError::Io { op, path, .. }) => {
                assert_eq!(op, "create directory");
                assert_eq!(path, dir.path().join("t"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn read_only_directory() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("t");
        std::fs::create_dir(&folder).unwrap();
        std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o555)).unwrap();
        let restore =
            || std::fs::set_permissions(&folder, std::fs::Permissions::from_mode(0o755)).unwrap();
        if std::fs::File::create(folder.join("probe")).is_ok() {
            // Running with privileges that ignore permissions (root).
            restore();
            eprintln!("skipped: permissions are not enforced for this user");
            return;
        }
        let meta = sample();
        let data = stream(&meta, 6);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let result = store.write_piece(0, &blocks(&meta, &data, 0));
        restore();
        match result {
            Err(StoreError::Io { op, path, source }) => {
                assert_eq!(op, "open for writing");
                assert_eq!(path, folder.join("a.bin"));
                assert_eq!(source.kind(), io::ErrorKind::PermissionDenied);
            }
            other => panic!("{other:?}"),
        }
    }

    /// Pieces touching a wanted file: what the engine downloads.
    fn wanted_pieces(meta: &MetaInfo, wanted: &[bool]) -> Vec<u32> {
        let l = layout(meta);
        (0..l.piece_count() as u32)
            .filter(|&p| {
                l.slices(p, 0, u64::from(l.piece_len(p)))
                    .unwrap()
                    .iter()
                    .any(|s| wanted[s.file] && !l.files[s.file].pad)
            })
            .collect()
    }

    fn read_piece(store: &FileStore, meta: &MetaInfo, index: u32) -> Bytes {
        store
            .read_block(index, 0, layout(meta).piece_len(index))
            .unwrap()
    }

    fn piece_data<'a>(meta: &MetaInfo, data: &'a [u8], index: u32) -> &'a [u8] {
        let l = layout(meta);
        let start = l.piece_offset(index).unwrap() as usize;
        &data[start..start + l.piece_len(index) as usize]
    }

    #[test]
    fn unwanted_files_are_never_created_and_their_shares_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 9);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        // Only a.bin (100 bytes: pieces 0-3, piece 3 shared with b.bin) and
        // "d" (a 1-byte file inside a piece shared with c.bin and last).
        let mut wanted = vec![false; meta.files.len()];
        wanted[0] = true;
        wanted[5] = true;
        store.set_wanted_files(&wanted).unwrap();
        let pieces = wanted_pieces(&meta, &wanted);
        for &index in &pieces {
            store
                .write_piece(index, &blocks(&meta, &data, index))
                .unwrap();
        }
        store.finalize().unwrap();
        for (i, f) in meta.files.iter().enumerate() {
            let on_disk = dir.path().join(&f.path).exists();
            assert_eq!(on_disk, wanted[i] && !f.pad, "{}", f.path.display());
        }
        assert_eq!(
            std::fs::read(dir.path().join("t/a.bin")).unwrap(),
            &data[..100]
        );
        let d = &meta.files[5];
        assert_eq!(
            std::fs::read(dir.path().join("t/d")).unwrap(),
            &data[d.offset as usize..][..1]
        );
        for &index in &pieces {
            assert_eq!(
                read_piece(&store, &meta, index),
                piece_data(&meta, &data, index)
            );
        }
        let parts = dir
            .path()
            .join(RESUME_DIR)
            .join(format!("{}.parts", meta.info_hash.to_hex()));
        assert!(
            parts.exists(),
            "shares of unwanted files are in the part file"
        );

        // A new store (a restart) with the same selection reads them back,
        // and trusts a resume record.
        let again = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        again.set_wanted_files(&wanted).unwrap();
        let mut have = Bitfield::new(layout(&meta).piece_count());
        for &index in &pieces {
            have.set(index as usize);
            assert_eq!(
                read_piece(&again, &meta, index),
                piece_data(&meta, &data, index)
            );
        }
        again.save_resume(&have).unwrap();
        let third = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        third.set_wanted_files(&wanted).unwrap();
        assert_eq!(
            third.recover(layout(&meta).piece_count()),
            Recovery::trust(have)
        );

        // Selecting everything moves the shares into place; after the rest
        // is written every file is exact and the part file is gone.
        third
            .set_wanted_files(&vec![true; meta.files.len()])
            .unwrap();
        for index in 0..layout(&meta).piece_count() as u32 {
            if !pieces.contains(&index) {
                third
                    .write_piece(index, &blocks(&meta, &data, index))
                    .unwrap();
            }
        }
        third.finalize().unwrap();
        for f in meta.files.iter().filter(|f| !f.pad) {
            let got = std::fs::read(dir.path().join(&f.path)).unwrap();
            assert!(
                got == data[f.offset as usize..(f.offset + f.length) as usize],
                "{}",
                f.path.display()
            );
        }
        assert!(!parts.exists(), "part file removed once empty");
        assert!(!parts.with_extension("parts.index").exists());
    }

    #[test]
    fn deselecting_a_started_file_keeps_what_it_has() {
        let dir = tempfile::tempdir().unwrap();
        let meta = meta(16, &[("x", 40, false), ("y", 40, false)]);
        let data = stream(&meta, 3);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        // All wanted: piece 0 goes to x. Then x is deselected: the shared
        // piece 2 (bytes 32-47: x 32-39, y 0-7) puts x's share in the part
        // file while x keeps what it had.
        store.write_piece(0, &blocks(&meta, &data, 0)).unwrap();
        store.set_wanted_files(&[false, true]).unwrap();
        store.write_piece(2, &blocks(&meta, &data, 2)).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("t/x")).unwrap().len(), 16);
        for index in [0, 2] {
            assert_eq!(
                read_piece(&store, &meta, index),
                piece_data(&meta, &data, index)
            );
        }
        // A piece rewritten while its file is wanted again leaves the part
        // file (the share there would be stale).
        store.set_wanted_files(&[true, true]).unwrap();
        assert_eq!(std::fs::metadata(dir.path().join("t/x")).unwrap().len(), 40);
        assert_eq!(read_piece(&store, &meta, 2), piece_data(&meta, &data, 2));
        assert!(store.set_wanted_files(&[true]).is_err(), "wrong flag count");
    }

    fn ones(b: &Bitfield) -> Vec<usize> {
        b.iter_ones().collect()
    }

    #[test]
    fn resume_record_round_trip_and_changes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 5);
        let pieces = layout(&meta).piece_count();
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let nothing = Recovery {
            trusted: Bitfield::new(pieces),
            to_hash: Bitfield::new(pieces),
            exact: false,
        };
        assert_eq!(store.recover(pieces), nothing, "no record, no data");
        for index in 0..pieces as u32 - 1 {
            store
                .write_piece(index, &blocks(&meta, &data, index))
                .unwrap();
        }
        let mut have = Bitfield::new(pieces);
        for i in 0..pieces - 1 {
            have.set(i);
        }
        store.save_resume(&have).unwrap();
        let path = store.resume_path().unwrap().to_path_buf();
        assert!(path.starts_with(dir.path().join(RESUME_DIR)));
        assert!(
            !path.with_extension("resume.tmp").exists(),
            "temporary file renamed away"
        );

        // A fresh store of the same torrent trusts the record.
        let again = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        assert_eq!(again.recover(pieces), Recovery::trust(have.clone()));
        // Unless told to skip it.
        let skipping = FileStore::from_meta_info(dir.path(), &meta)
            .unwrap()
            .skip_resume();
        assert_eq!(skipping.recover(pieces), Recovery::check_all(pieces));

        // Writing the last piece (then a crash: no record lists it) changes
        // files after the record, as our writes do: the record's pieces stay
        // trusted, only the new one is hashed.
        let last = pieces as u32 - 1;
        std::thread::sleep(std::time::Duration::from_millis(20));
        again
            .write_piece(last, &blocks(&meta, &data, last))
            .unwrap();
        let third = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let r = third.recover(pieces);
        assert_eq!(r.trusted, have);
        assert_eq!(ones(&r.to_hash), [last as usize]);
        assert!(!r.exact);
        // A new record makes it exact again.
        have.set(last as usize);
        third.save_resume(&have).unwrap();
        let fourth = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        assert_eq!(fourth.recover(pieces), Recovery::trust(have.clone()));

        // Someone else replaces a.bin (pieces 0-3): those are hashed, the
        // rest stays trusted.
        let a = dir.path().join("t/a.bin");
        let tmp = dir.path().join("t/a.new");
        std::fs::copy(&a, &tmp).unwrap();
        std::fs::rename(&tmp, &a).unwrap();
        let fifth = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let r = fifth.recover(pieces);
        assert_eq!(ones(&r.to_hash), [0, 1, 2, 3]);
        assert_eq!(r.trusted.count_ones(), pieces - 4);
        // Or shrinks it to 50 bytes: piece 2 (a.bin 64..96) is no longer on
        // disk and has no data left; piece 3 also holds b.bin's data.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&a)
            .unwrap()
            .set_len(50)
            .unwrap();
        let sixth = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let r = sixth.recover(pieces);
        assert_eq!(ones(&r.to_hash), [0, 1, 3]);
        assert_eq!(r.trusted.count_ones(), pieces - 4);
    }

    #[test]
    fn the_store_records_what_it_writes_by_itself() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 8);
        let pieces = layout(&meta).piece_count();
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        store.recover(pieces);
        // The first write renews the lease (a record listing nothing), the
        // second is listed at once (the first record was long enough ago
        // only after the interval).
        store.write_piece(0, &blocks(&meta, &data, 0)).unwrap();
        std::thread::sleep(crate::store::journal::SAVE_INTERVAL);
        store.write_piece(1, &blocks(&meta, &data, 1)).unwrap();
        // No save_resume: a crash now. Pieces 0 and 1 are listed.
        let again = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let r = again.recover(pieces);
        assert_eq!(ones(&r.trusted), [0, 1]);
        assert!(r.to_hash.iter_ones().next().is_none());
    }

    #[test]
    fn a_dropped_store_closes_the_lease() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let data = stream(&meta, 4);
        let pieces = layout(&meta).piece_count();
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        store.recover(pieces);
        for index in 0..pieces as u32 {
            store
                .write_piece(index, &blocks(&meta, &data, index))
                .unwrap();
        }
        store.save_resume(&Bitfield::full(pieces)).unwrap();
        drop(store);
        // Someone edits a.bin in place, same inode and length, right after
        // the exit: a change no write of ours can explain any more.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let a = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join("t/a.bin"))
            .unwrap();
        a.write_all_at(b"edited", 40).unwrap();
        let again = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        let r = again.recover(pieces);
        assert_eq!(ones(&r.to_hash), [0, 1, 2, 3]);
        assert_eq!(r.trusted.count_ones(), pieces - 4);
    }

    #[test]
    fn unusable_resume_records_are_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let meta = sample();
        let pieces = layout(&meta).piece_count();
        let data = stream(&meta, 5);
        let store = FileStore::from_meta_info(dir.path(), &meta).unwrap();
        store.recover(pieces);
        store.write_piece(0, &blocks(&meta, &data, 0)).unwrap();
        let path = store.resume_path().unwrap().to_path_buf();
        let only_piece_0_hashed = |store: &FileStore| {
            let r = store.recover(pieces);
            assert!(r.trusted.iter_ones().next().is_none(), "{r:?}");
            assert_eq!(ones(&r.to_hash), [0]);
        };
        // Garbage.
        std::fs::write(&path, b"not bencode").unwrap();
        only_piece_0_hashed(&store);
        // A valid record of another torrent at this path.
        let foreign = ResumeRecord {
            info_hash: InfoHash([9; 20]),
            have: Bitfield::full(pieces),
            files: vec![None; meta.files.len()],
            parts: None,
            lease: Time {
                secs: i64::MAX,
                nanos: 0,
            },
        };
        std::fs::write(&path, foreign.encode()).unwrap();
        only_piece_0_hashed(&store);
        // Our own hash but a claim about files that do not exist.
        let wrong = ResumeRecord {
            info_hash: meta.info_hash,
            ..foreign
        };
        std::fs::write(&path, wrong.encode()).unwrap();
        only_piece_0_hashed(&store);
    }
}
