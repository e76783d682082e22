//! The part file of a [`FileStore`](crate::store::FileStore): where the bytes
//! of unselected files go when they share a piece with a selected file.
//!
//! A piece is verified and served whole, so a piece that straddles a wanted
//! and an unwanted file must be stored whole too. The unwanted file's share
//! goes to `DIR/.bittorrent/<info-hash>.parts` instead of the file itself, so
//! nothing appears on disk for a file the user did not select. The part file
//! is sparse: a share is kept at its offset in the torrent's byte stream.
//! Beside it, `<info-hash>.parts.index` lists which (piece, file) shares it
//! holds, one `piece file` pair a line; it is rewritten atomically after the
//! data, so a crash never leaves an index naming data that was not written.
//! When a file is selected again its shares move into it; once no share is
//! left both files are deleted.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::store::paths::write_atomically;
use crate::store::StoreError;

/// First line of the index file.
const INDEX_HEADER: &str = "bittorrent-parts 1";

/// The part file and its index.
#[derive(Debug)]
pub(crate) struct PartFile {
    data_path: PathBuf,
    index_path: PathBuf,
    state: Mutex<PartState>,
    /// How many shares `state` holds: reads of a store without shares (the
    /// usual case, on every block served) skip the lock.
    count: AtomicUsize,
}

#[derive(Debug, Default)]
struct PartState {
    /// (piece, file) shares held in the data file.
    shares: BTreeSet<(u32, usize)>,
    /// Open handle on the data file.
    file: Option<Arc<File>>,
    /// The index on disk could not be read: what it named is unknown.
    damaged: bool,
}

impl PartFile {
    /// The part file at `data_path` (index beside it), with the shares its
    /// index names. Shares outside `pieces` × `files` are dropped; an
    /// unreadable index marks the part file damaged (see
    /// [`PartFile::is_damaged`]).
    pub(crate) fn load(data_path: PathBuf, pieces: usize, files: usize) -> Self {
        let index_path = data_path.with_extension("parts.index");
        let mut state = PartState::default();
        match std::fs::read_to_string(&index_path) {
            Ok(text) => match parse_index(&text, pieces, files) {
                Some(shares) => state.shares = shares,
                None => {
                    log::warn!("ignoring damaged part index {}", index_path.display());
                    state.damaged = true;
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                log::warn!("cannot read part index {}: {e}", index_path.display());
                state.damaged = true;
            }
        }
        Self {
            data_path,
            index_path,
            count: AtomicUsize::new(state.shares.len()),
            state: Mutex::new(state),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PartState> {
        // The state is updated only after the IO it describes succeeded.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Where the data lives.
    pub(crate) fn path(&self) -> &Path {
        &self.data_path
    }

    /// True when the index could not be read, or names data the data file
    /// does not have (it is missing or too short): then nothing read from
    /// the part file can be vouched for without a hash check.
    pub(crate) fn is_damaged(&self, end_of: impl Fn(u32, usize) -> u64) -> bool {
        let state = self.lock();
        if state.damaged {
            return true;
        }
        let Some(needed) = state.shares.iter().map(|&(p, f)| end_of(p, f)).max() else {
            return false;
        };
        let len = std::fs::metadata(&self.data_path).map_or(0, |m| m.len());
        len < needed
    }

    /// Whether file `file`'s share of piece `piece` is in the part file.
    pub(crate) fn holds(&self, piece: u32, file: usize) -> bool {
        // A share is added before its piece counts as verified (the engine
        // hears of it through a join), so a zero here is never stale for a
        // piece anyone may read.
        self.count.load(Ordering::Relaxed) > 0 && self.lock().shares.contains(&(piece, file))
    }

    /// The (piece) shares of `file` held here.
    pub(crate) fn pieces_of(&self, file: usize) -> Vec<u32> {
        self.lock()
            .shares
            .iter()
            .filter(|&&(_, f)| f == file)
            .map(|&(p, _)| p)
            .collect()
    }

    /// A handle on the data file, created (with its directory) if `create`.
    /// `None` when it does not exist and `create` is false.
    pub(crate) fn handle(&self, create: bool) -> Result<Option<Arc<File>>, StoreError> {
        let mut state = self.lock();
        if let Some(file) = &state.file {
            return Ok(Some(Arc::clone(file)));
        }
        let io = |op, path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Io { op, path, source }
        };
        let opened = if create {
            if let Some(dir) = self.data_path.parent() {
                std::fs::create_dir_all(dir).map_err(io("create directory", dir))?;
            }
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.data_path)
        } else {
            // Read-write so a later write can use the same handle.
            match OpenOptions::new()
                .read(true)
                .write(true)
                .open(&self.data_path)
            {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                other => other,
            }
        };
        let file = Arc::new(opened.map_err(io("open", &self.data_path))?);
        state.file = Some(Arc::clone(&file));
        Ok(Some(file))
    }

    /// Records that `file`'s share of `piece` is now in the data file (call
    /// after writing it).
    pub(crate) fn add(&self, piece: u32, file: usize) -> Result<(), StoreError> {
        let mut state = self.lock();
        if state.shares.contains(&(piece, file)) {
            return Ok(());
        }
        let mut shares = state.shares.clone();
        shares.insert((piece, file));
        write_atomically(&self.index_path, encode_index(&shares).as_bytes(), true)?;
        self.count.store(shares.len(), Ordering::Relaxed);
        state.shares = shares;
        Ok(())
    }

    /// Forgets `file`'s shares of `pieces` (call after moving them into the
    /// file, or after writing them there). Deletes the part file and its
    /// index once no share is left.
    pub(crate) fn remove(&self, pieces: &[u32], file: usize) -> Result<(), StoreError> {
        let mut state = self.lock();
        let mut shares = state.shares.clone();
        for &piece in pieces {
            shares.remove(&(piece, file));
        }
        if shares.len() == state.shares.len() {
            return Ok(());
        }
        if shares.is_empty() && !state.damaged {
            // Index first: a crash in between leaves an orphan data file,
            // never an index naming missing data.
            remove_if_exists(&self.index_path)?;
            state.file = None;
            remove_if_exists(&self.data_path)?;
        } else {
            write_atomically(&self.index_path, encode_index(&shares).as_bytes(), true)?;
        }
        self.count.store(shares.len(), Ordering::Relaxed);
        state.shares = shares;
        Ok(())
    }
}

fn remove_if_exists(path: &Path) -> Result<(), StoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(StoreError::Io {
            op: "remove",
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

fn encode_index(shares: &BTreeSet<(u32, usize)>) -> String {
    let mut text = format!("{INDEX_HEADER}\n");
    for (piece, file) in shares {
        text.push_str(&format!("{piece} {file}\n"));
    }
    text
}

/// The shares an index names; `None` if it is not an index. Pairs out of
/// range are dropped (with a warning).
fn parse_index(text: &str, pieces: usize, files: usize) -> Option<BTreeSet<(u32, usize)>> {
    let mut lines = text.lines();
    if lines.next()? != INDEX_HEADER {
        return None;
    }
    let mut shares = BTreeSet::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let mut words = line.split_whitespace();
        let piece: u32 = words.next()?.parse().ok()?;
        let file: usize = words.next()?.parse().ok()?;
        if words.next().is_some() {
            return None;
        }
        if piece as usize >= pieces || file >= files {
            log::warn!("part index names piece {piece} of file {file}: out of range; dropped");
            continue;
        }
        shares.insert((piece, file));
    }
    Some(shares)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn index_round_trip() {
        let shares: BTreeSet<(u32, usize)> = [(0, 1), (7, 2), (7, 3)].into_iter().collect();
        assert_eq!(parse_index(&encode_index(&shares), 8, 4), Some(shares));
    }

    #[test]
    fn bad_indexes_are_refused_and_out_of_range_pairs_dropped() {
        assert_eq!(parse_index("", 8, 4), None);
        assert_eq!(parse_index("something else\n1 2\n", 8, 4), None);
        assert_eq!(parse_index("bittorrent-parts 1\n1\n", 8, 4), None);
        assert_eq!(parse_index("bittorrent-parts 1\n1 2 3\n", 8, 4), None);
        assert_eq!(parse_index("bittorrent-parts 1\n-1 2\n", 8, 4), None);
        let kept = parse_index("bittorrent-parts 1\n1 2\n8 0\n0 4\n", 8, 4).unwrap();
        assert_eq!(kept.into_iter().collect::<Vec<_>>(), vec![(1, 2)]);
    }

    #[test]
    fn add_remove_persist_and_clean_up() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join(".bittorrent");
        let data = dir.join("x.parts");
        let parts = PartFile::load(data.clone(), 10, 3);
        assert!(!parts.is_damaged(|_, _| 0));
        let file = parts.handle(true).unwrap().unwrap();
        file.write_all_at(b"abc", 100).unwrap();
        parts.add(4, 1).unwrap();
        parts.add(5, 2).unwrap();
        let again = PartFile::load(data.clone(), 10, 3);
        assert!(again.holds(4, 1) && again.holds(5, 2) && !again.holds(4, 2));
        assert_eq!(again.pieces_of(1), vec![4]);
        assert!(!again.is_damaged(|_, _| 103));
        assert!(
            again.is_damaged(|_, _| 104),
            "data shorter than the index says"
        );
        again.remove(&[4], 1).unwrap();
        assert!(data.exists());
        again.remove(&[5], 2).unwrap();
        assert!(!data.exists() && !data.with_extension("parts.index").exists());
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(data.with_extension("parts.index"), "garbage").unwrap();
        assert!(PartFile::load(data, 10, 3).is_damaged(|_, _| 0));
    }
}
