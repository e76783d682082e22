//! Piece hashing on every core, reading each byte once.
//!
//! One reader thread reads the files in order into piece-sized buffers (a
//! piece may span files) and hands them to hashing threads over a bounded
//! channel; the calling thread collects the digests, reports progress and
//! recycles the buffers. Memory is a fixed pool of buffers: about two per
//! hashing thread.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Mutex;
use std::thread;

use sha1::{Digest, Sha1};

use crate::create::scan::InputFile;
use crate::create::CreateError;

/// A piece read and waiting for its hash.
struct Piece {
    index: usize,
    /// A `piece_length` buffer; its first `len` bytes are the piece.
    data: Vec<u8>,
    len: usize,
}

/// A hashed piece, its buffer on its way back to the reader.
struct Hashed {
    index: usize,
    digest: [u8; 20],
    data: Vec<u8>,
    len: usize,
}

/// The SHA-1 of every `piece_length` bytes of `files` laid end to end (the
/// last piece shorter), with `threads` hashing threads. `progress` is called
/// with the number of bytes hashed so far after each piece.
///
/// # Errors
/// [`CreateError::Io`] when a file cannot be opened or read and
/// [`CreateError::Changed`] when one is not as long as it was.
pub(crate) fn hash_pieces(
    files: &[InputFile],
    piece_length: u32,
    piece_count: usize,
    threads: usize,
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<[u8; 20]>, CreateError> {
    let threads = threads.max(1);
    let buffers = 2 * threads + 2;
    let piece_length = piece_length as usize;
    let (free_tx, free_rx) = sync_channel::<Vec<u8>>(buffers);
    for _ in 0..buffers {
        // Cannot fail: the channel holds `buffers` items and its receiver lives.
        let _ = free_tx.send(Vec::with_capacity(piece_length));
    }
    let (work_tx, work_rx) = sync_channel::<Piece>(buffers);
    let (done_tx, done_rx) = sync_channel::<Hashed>(buffers);
    let work_rx = Mutex::new(work_rx);
    thread::scope(|scope| {
        let reader = scope.spawn(move || read_pieces(files, piece_length, &free_rx, &work_tx));
        for _ in 0..threads {
            let (work_rx, done_tx) = (&work_rx, done_tx.clone());
            scope.spawn(move || hash_worker(work_rx, &done_tx));
        }
        drop(done_tx);
        let mut digests = vec![[0u8; 20]; piece_count];
        let mut hashed = 0u64;
        // Ends when every hashing thread has ended: after the reader's last
        // piece, or after it failed.
        for piece in done_rx {
            if let Some(slot) = digests.get_mut(piece.index) {
                *slot = piece.digest;
            }
            hashed += piece.len as u64;
            progress(hashed);
            // The reader may be gone already (it failed or is done).
            let _ = free_tx.send(piece.data);
        }
        drop(free_tx);
        match reader.join() {
            Ok(result) => result.map(|()| digests),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    })
}

/// Hashes pieces until the reader closes the channel.
fn hash_worker(work: &Mutex<Receiver<Piece>>, done: &SyncSender<Hashed>) {
    loop {
        // A poisoned lock means another hashing thread panicked; the scope
        // re-raises that panic.
        let next = match work.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(piece) = next else { return };
        let digest: [u8; 20] = Sha1::digest(&piece.data[..piece.len]).into();
        let hashed = Hashed {
            index: piece.index,
            digest,
            data: piece.data,
            len: piece.len,
        };
        if done.send(hashed).is_err() {
            return;
        }
    }
}

/// Reads `files` in order into buffers from `free`, one piece per buffer,
/// and sends them to `work`.
fn read_pieces(
    files: &[InputFile],
    piece_length: usize,
    free: &Receiver<Vec<u8>>,
    work: &SyncSender<Piece>,
) -> Result<(), CreateError> {
    let mut index = 0;
    let mut filled = 0;
    let Some(mut buf) = next_buffer(free, piece_length) else {
        return Ok(());
    };
    for file in files {
        let mut reader = FileReader::open(file)?;
        while reader.remaining > 0 {
            filled += reader.read_into(&mut buf[filled..])?;
            if filled == piece_length {
                let data = std::mem::take(&mut buf);
                if work
                    .send(Piece {
                        index,
                        data,
                        len: filled,
                    })
                    .is_err()
                {
                    return Ok(());
                }
                index += 1;
                filled = 0;
                let Some(next) = next_buffer(free, piece_length) else {
                    return Ok(());
                };
                buf = next;
            }
        }
        reader.check_end()?;
    }
    if filled > 0 {
        // The last, shorter piece; the collector's end is the reader's end.
        let _ = work.send(Piece {
            index,
            data: buf,
            len: filled,
        });
    }
    Ok(())
}

/// A recycled buffer, `piece_length` long (zeroed only when first used).
fn next_buffer(free: &Receiver<Vec<u8>>, piece_length: usize) -> Option<Vec<u8>> {
    let mut buf = free.recv().ok()?;
    buf.resize(piece_length, 0);
    Some(buf)
}

/// One file being read, with the length it had when scanned.
struct FileReader<'a> {
    file: File,
    input: &'a InputFile,
    remaining: u64,
}

impl<'a> FileReader<'a> {
    fn open(input: &'a InputFile) -> Result<Self, CreateError> {
        let file = File::open(&input.disk_path).map_err(|source| CreateError::Io {
            path: input.disk_path.clone(),
            source,
        })?;
        Ok(Self {
            file,
            input,
            remaining: input.length,
        })
    }

    /// Fills as much of `buf` as this file still has (at least one byte when
    /// it has any left), and returns how many bytes were read.
    fn read_into(&mut self, buf: &mut [u8]) -> Result<usize, CreateError> {
        let want = buf
            .len()
            .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
        let mut got = 0;
        while got < want {
            match self.file.read(&mut buf[got..want]) {
                Ok(0) => return Err(self.changed()),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(CreateError::Io {
                        path: self.input.disk_path.clone(),
                        source,
                    })
                }
            }
        }
        self.remaining -= got as u64;
        Ok(got)
    }

    /// Fails if the file grew since it was scanned.
    fn check_end(&mut self) -> Result<(), CreateError> {
        let mut probe = [0u8; 1];
        match self.file.read(&mut probe) {
            Ok(0) => Ok(()),
            Ok(_) => Err(self.changed()),
            Err(source) => Err(CreateError::Io {
                path: self.input.disk_path.clone(),
                source,
            }),
        }
    }

    fn changed(&self) -> CreateError {
        CreateError::Changed {
            path: self.input.disk_path.clone(),
            expected: self.input.length,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn input(dir: &Path, name: &str, data: &[u8]) -> InputFile {
        let path = dir.join(name);
        std::fs::write(&path, data).unwrap();
        InputFile {
            disk_path: path,
            components: vec![name.into()],
            length: data.len() as u64,
        }
    }

    fn payload(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn pieces_span_files_and_match_a_plain_hash_for_any_thread_count() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (payload(40_000, 1), payload(0, 2), payload(70_001, 3));
        let files = [
            input(dir.path(), "a", &a),
            input(dir.path(), "b", &b),
            input(dir.path(), "c", &c),
        ];
        let all = [a, b, c].concat();
        let expected: Vec<[u8; 20]> = all.chunks(16384).map(|p| Sha1::digest(p).into()).collect();
        for threads in [1, 2, 5] {
            let mut reports = Vec::new();
            let digests = hash_pieces(&files, 16384, expected.len(), threads, &mut |n| {
                reports.push(n)
            })
            .unwrap();
            assert_eq!(digests, expected, "{threads} threads");
            assert_eq!(reports.len(), expected.len());
            assert_eq!(reports.last().copied(), Some(all.len() as u64));
            assert!(reports.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn a_file_that_shrank_or_grew_or_vanished_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut shrunk = input(dir.path(), "s", &payload(100, 0));
        shrunk.length = 200;
        let err = hash_pieces(&[shrunk], 16384, 1, 2, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CreateError::Changed { .. }), "{err}");
        let mut grown = input(dir.path(), "g", &payload(100, 0));
        grown.length = 50;
        let err = hash_pieces(&[grown], 16384, 1, 2, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CreateError::Changed { .. }), "{err}");
        let mut gone = input(dir.path(), "v", &payload(100, 0));
        std::fs::remove_file(&gone.disk_path).unwrap();
        gone.length = 100;
        let err = hash_pieces(&[gone], 16384, 1, 2, &mut |_| {}).unwrap_err();
        assert!(matches!(err, CreateError::Io { .. }), "{err}");
    }
}
