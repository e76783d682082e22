//! The [`FileStore`](crate::store::FileStore)'s helpers for positional IO:
//! a cache of open handles, a cursor over a piece's blocks and vectored
//! positional writes.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, IoSlice};
use std::sync::Arc;

use bytes::Bytes;

/// Open files, closed least recently used first when over capacity. A handle
/// evicted while another thread still uses it closes when that use ends.
#[derive(Debug)]
pub(super) struct HandleCache {
    open: HashMap<usize, Handle>,
    pub(super) capacity: usize,
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
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            open: HashMap::new(),
            capacity,
            clock: 0,
        }
    }

    /// How many files are open.
    pub(super) fn len(&self) -> usize {
        self.open.len()
    }

    /// The open handle on `index`, if any (and writable, if `write`).
    pub(super) fn get(&mut self, index: usize, write: bool) -> Option<Arc<File>> {
        self.clock += 1;
        let handle = self.open.get_mut(&index)?;
        if write && !handle.writable {
            return None;
        }
        handle.last_used = self.clock;
        Some(Arc::clone(&handle.file))
    }

    pub(super) fn insert(&mut self, index: usize, file: Arc<File>, writable: bool) {
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
pub(super) struct BlockCursor<'a> {
    blocks: &'a [Bytes],
    /// Offset inside `blocks[0]`.
    pos: usize,
}

impl<'a> BlockCursor<'a> {
    pub(super) fn new(blocks: &'a [Bytes]) -> Self {
        Self { blocks, pos: 0 }
    }

    /// Up to `max` next bytes, all from one block; empty at the end.
    pub(super) fn take(&mut self, max: u64) -> &'a [u8] {
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

    /// The next `len` bytes (fewer at the end) as slices of the blocks.
    pub(super) fn take_parts(&mut self, len: u64) -> Vec<&'a [u8]> {
        let mut parts = Vec::new();
        let mut left = len;
        while left > 0 {
            let chunk = self.take(left);
            if chunk.is_empty() {
                break;
            }
            left -= chunk.len() as u64;
            parts.push(chunk);
        }
        parts
    }

    /// Skips `n` bytes.
    pub(super) fn skip(&mut self, mut n: u64) {
        while n > 0 {
            let chunk = self.take(n);
            if chunk.is_empty() {
                return;
            }
            n -= chunk.len() as u64;
        }
    }
}

/// Slices one `pwritev` takes at most (Linux's `IOV_MAX`).
const MAX_SLICES: usize = 1024;

/// Writes `parts` end to end at `offset` of `file`: one `pwritev` for a
/// whole run of blocks (a syscall per block otherwise), repeated while the
/// kernel takes less.
///
/// # Errors
/// The OS error; [`io::ErrorKind::WriteZero`] if nothing could be written.
pub(super) fn pwrite_all(file: &File, parts: &[&[u8]], mut offset: u64) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = parts.iter().map(|p| IoSlice::new(p)).collect();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let batch = rest.len().min(MAX_SLICES);
        let n = match rustix::io::pwritev(file, &rest[..batch], offset) {
            Ok(n) => n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        offset += n as u64;
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handle_cache_evicts_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let open = |name: &str| Arc::new(File::create(dir.path().join(name)).unwrap());
        let mut cache = HandleCache::new(2);
        cache.insert(0, open("a"), true);
        cache.insert(1, open("b"), false);
        assert!(cache.get(0, true).is_some());
        // 1 is read-only: a writer must reopen it.
        assert!(cache.get(1, true).is_none());
        assert!(cache.get(1, false).is_some());
        assert!(cache.get(0, false).is_some());
        cache.insert(2, open("c"), true); // evicts 1, used least recently
        assert_eq!(cache.open.len(), 2);
        assert!(cache.get(1, false).is_none());
        assert!(cache.get(0, true).is_some());
        assert!(cache.get(2, true).is_some());
        // Upgrading to a writable handle keeps one entry.
        cache.insert(2, open("c"), false);
        assert!(cache.get(2, true).is_some());
        assert_eq!(cache.open.len(), 2);
    }

    #[test]
    fn block_cursor_crosses_blocks() {
        let blocks = [
            Bytes::from_static(b"abc"),
            Bytes::new(),
            Bytes::from_static(b"defg"),
        ];
        let mut c = BlockCursor::new(&blocks);
        assert_eq!(c.take(2), b"ab");
        assert_eq!(c.take(5), b"c");
        c.skip(2);
        assert_eq!(c.take(9), b"fg");
        assert_eq!(c.take(1), b"");
    }
}
