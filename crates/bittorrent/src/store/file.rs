//! [`FileStore`]: pieces written into the torrent's files on disk.
//!
//! All IO is positional (`pwrite`/`pread` through
//! [`std::os::unix::fs::FileExt`]): no file has a shared cursor, so any number
//! of threads may read and write at once through the same handles.

#[cfg(not(unix))]
compile_error!("FileStore needs positional file IO (std::os::unix::fs::FileExt): unix only");

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;

use crate::metainfo::MetaInfo;
use crate::store::{Layout, Store, StoreError};

/// Writes a torrent's files under a download directory: a single-file torrent
/// becomes `dir/name`, a multi-file torrent `dir/name/...`.
///
/// Files are opened lazily, on first use, and kept in a small cache of open
/// handles (at most [`DEFAULT_MAX_OPEN_FILES`](Self::DEFAULT_MAX_OPEN_FILES) by default, least recently used
/// closed first). Directories are created on the first write below them. Pad
/// files (BEP 47) are never created: their bytes are dropped on write and read
/// back as zeros.
///
/// Every path is checked to be relative and made only of normal components,
/// so nothing is written outside the download directory (symbolic links
/// already present under it are followed as the OS does).
#[derive(Debug)]
pub struct FileStore {
    root: PathBuf,
    layout: Layout,
    /// `root.join(file.path)` for every file of the layout.
    paths: Vec<PathBuf>,
    /// Files written since the last [`Store::finalize`], to sync there.
    written: Vec<AtomicBool>,
    handles: Mutex<HandleCache>,
    /// Directories known to exist.
    dirs: Mutex<HashSet<PathBuf>>,
}

impl FileStore {
    /// How many files a store keeps open unless told otherwise.
    pub const DEFAULT_MAX_OPEN_FILES: usize = 128;

    /// A store for `meta`'s files under `dir`. Touches nothing on disk yet.
    ///
    /// # Errors
    /// [`StoreError::UnsafePath`] if a file path is empty, absolute or has a
    /// `.`/`..` component; [`StoreError::InvalidLayout`] if the files do not
    /// tile the torrent's byte stream or two files would share a path.
    pub fn from_meta_info(dir: impl AsRef<Path>, meta: &MetaInfo) -> Result<Self, StoreError> {
        Self::from_layout(dir, Layout::from_meta_info(meta))
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
        Ok(Self {
            root,
            layout,
            paths,
            written,
            handles: Mutex::new(HandleCache::new(Self::DEFAULT_MAX_OPEN_FILES)),
            dirs: Mutex::new(HashSet::new()),
        })
    }

    /// Keeps at most `max` files open (at least one) instead of
    /// [`FileStore::DEFAULT_MAX_OPEN_FILES`].
    pub fn with_max_open_files(self, max: usize) -> Self {
        self.handles_lock().capacity = max.max(1);
        self
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
        self.handles_lock().open.len()
    }

    fn handles_lock(&self) -> MutexGuard<'_, HandleCache> {
        // The cache holds no invariant a panic could break half-way.
        self.handles.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An open handle on file `index`, for writing (created if missing, with
    /// its directories) or for reading only.
    fn file(&self, index: usize, write: bool) -> Result<Arc<File>, StoreError> {
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
        let out_of_range = || StoreError::OutOfRange {
            index,
            begin: 0,
            length: total,
        };
        let piece_len = self.layout.piece_len(index);
        if piece_len == 0 || total != u64::from(piece_len) {
            return Err(out_of_range());
        }
        let slices = self
            .layout
            .slices(index, 0, total)
            .ok_or_else(out_of_range)?;
        let mut cursor = BlockCursor::new(blocks);
        for slice in slices {
            if self.layout.files[slice.file].pad {
                cursor.skip(slice.length);
                continue;
            }
            let file = self.file(slice.file, true)?;
            self.written[slice.file].store(true, Ordering::Relaxed);
            let mut done = 0;
            while done < slice.length {
                let chunk = cursor.take(slice.length - done);
                if chunk.is_empty() {
                    // Unreachable: the blocks add up to the piece length.
                    return Err(out_of_range());
                }
                file.write_all_at(chunk, slice.offset + done)
                    .map_err(|source| StoreError::Io {
                        op: "write",
                        path: self.paths[slice.file].clone(),
                        source,
                    })?;
                done += chunk.len() as u64;
            }
        }
        Ok(())
    }

    fn read_block(&self, index: u32, begin: u32, length: u32) -> Result<Bytes, StoreError> {
        let slices =
            self.layout
                .slices(index, begin, u64::from(length))
                .ok_or(StoreError::OutOfRange {
                    index,
                    begin,
                    length: u64::from(length),
                })?;
        // `slices` checked the range against the piece, so this allocation is
        // at most one piece long.
        let mut buf = vec![0u8; length as usize];
        let mut pos = 0;
        for slice in slices {
            let len = slice.length as usize;
            let dest = &mut buf[pos..pos + len];
            pos += len;
            if self.layout.files[slice.file].pad {
                continue; // Pad bytes are zeros.
            }
            let path = &self.paths[slice.file];
            let short_read = || StoreError::ShortRead {
                path: path.clone(),
                offset: slice.offset,
                length: slice.length,
            };
            let file = match self.file(slice.file, false) {
                Ok(file) => file,
                Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
                    return Err(short_read());
                }
                Err(e) => return Err(e),
            };
            file.read_exact_at(dest, slice.offset)
                .map_err(|source| match source.kind() {
                    io::ErrorKind::UnexpectedEof => short_read(),
                    _ => StoreError::Io {
                        op: "read",
                        path: path.clone(),
                        source,
                    },
                })?;
        }
        Ok(Bytes::from(buf))
    }

    fn finalize(&self) -> Result<(), StoreError> {
        for (index, entry) in self.layout.files.iter().enumerate() {
            if entry.pad || entry.length != 0 {
                continue;
            }
            let path = &self.paths[index];
            self.ensure_parent(path)?;
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

/// Checks that every non-pad path stays under the download directory and
/// that no two files collide (same path, or a file where another needs a
/// directory). Pad files are never touched on disk, so their paths are not
/// checked.
fn check_paths(layout: &Layout) -> Result<(), StoreError> {
    let mut files = HashSet::new();
    let mut dirs = HashSet::new();
    for entry in layout.files.iter().filter(|f| !f.pad) {
        let path = entry.path.as_path();
        let safe = path.components().next().is_some()
            && path.components().all(|c| matches!(c, Component::Normal(_)));
        if !safe {
            return Err(StoreError::UnsafePath {
                path: path.to_path_buf(),
            });
        }
        if dirs.contains(path) || !files.insert(path) {
            return Err(StoreError::InvalidLayout(format!(
                "two files at {}",
                path.display()
            )));
        }
        for dir in path.ancestors().skip(1) {
            if dir.as_os_str().is_empty() {
                break;
            }
            if files.contains(dir) {
                return Err(StoreError::InvalidLayout(format!(
                    "{} is both a file and a directory",
                    dir.display()
                )));
            }
            if !dirs.insert(dir) {
                break; // Its ancestors were seen with it.
            }
        }
    }
    Ok(())
}

/// Open files, closed least recently used first when over capacity. A handle
/// evicted while another thread still uses it closes when that use ends.
#[derive(Debug)]
struct HandleCache {
    open: HashMap<usize, Handle>,
    capacity: usize,
    /// Incremented on every use; `Handle::last_used` compares against it.
    clock: u64,
}

#[derive(Debug)]
struct Handle {
    file: Arc<File>,
    writable: bool,
    last_used: u64,
}

impl HandleCache {
    fn new(capacity: usize) -> Self {
        Self {
            open: HashMap::new(),
            capacity,
            clock: 0,
        }
    }

    /// The open handle on `index`, if any (and writable, if `write`).
    fn get(&mut self, index: usize, write: bool) -> Option<Arc<File>> {
        self.clock += 1;
        let handle = self.open.get_mut(&index)?;
        if write && !handle.writable {
            return None;
        }
        handle.last_used = self.clock;
        Some(Arc::clone(&handle.file))
    }

    fn insert(&mut self, index: usize, file: Arc<File>, writable: bool) {
        self.clock += 1;
        if let Some(handle) = self.open.get_mut(&index) {
            // Another thread opened it meanwhile; keep the writable one.
            if writable || !handle.writable {
                handle.file = file;
                handle.writable = writable;
            }
            handle.last_used = self.clock;
            return;
        }
        while self.open.len() >= self.capacity {
            // A linear scan: the cache is small and misses cost a syscall
            // anyway.
            let Some(oldest) = self
                .open
                .iter()
                .min_by_key(|(_, h)| h.last_used)
                .map(|(&i, _)| i)
            else {
                break;
            };
            self.open.remove(&oldest);
        }
        self.open.insert(
            index,
            Handle {
                file,
                writable,
                last_used: self.clock,
            },
        );
    }
}

/// Walks the bytes of a piece given as blocks.
struct BlockCursor<'a> {
    blocks: &'a [Bytes],
    /// Offset inside `blocks[0]`.
    pos: usize,
}

impl<'a> BlockCursor<'a> {
    fn new(blocks: &'a [Bytes]) -> Self {
        Self { blocks, pos: 0 }
    }

    /// Up to `max` next bytes, all from one block; empty at the end.
    fn take(&mut self, max: u64) -> &'a [u8] {
        while let Some((first, rest)) = self.blocks.split_first() {
            let left = &first[self.pos..];
            if left.is_empty() {
                self.blocks = rest;
                self.pos = 0;
                continue;
            }
            let n = left.len().min(usize::try_from(max).unwrap_or(usize::MAX));
            self.pos += n;
            return &left[..n];
        }
        &[]
    }

    /// Skips `n` bytes.
    fn skip(&mut self, mut n: u64) {
        while n > 0 {
            let chunk = self.take(n);
            if chunk.is_empty() {
                return;
            }
            n -= chunk.len() as u64;
        }
    }
}
