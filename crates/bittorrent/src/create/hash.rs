//! Piece hashing on every core, reading each byte once.
//!
//! The files are read once, in order, through one shared sequential reader
//! (a piece may span files). One thread per core takes it in turn: under the
//! reader's lock it reads the next piece into its own buffer, then hashes it
//! outside the lock while the next thread reads. Reads stay sequential (the
//! kernel's read-ahead sees one stream), each piece is hashed while it is
//! still in the CPU cache of the thread that copied it, and no thread sits
//! between the reading and the hashing. The calling thread collects the
//! digests and reports progress. Memory: one piece buffer per thread.

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Mutex;
use std::thread;

use sha1::{Digest, Sha1};

use crate::create::scan::InputFile;
use crate::create::CreateError;

/// A hashed piece, or why reading stopped.
type Hashed = Result<(usize, [u8; 20], usize), CreateError>;

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
    let piece_length = piece_length as usize;
    let reader = Mutex::new(SequentialReader::new(files));
    let (done_tx, done_rx) = sync_channel::<Hashed>(2 * threads.max(1));
    thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            let (reader, done_tx) = (&reader, done_tx.clone());
            scope.spawn(move || hash_worker(reader, piece_length, &done_tx));
        }
        drop(done_tx);
        let mut digests = vec![[0u8; 20]; piece_count];
        let mut hashed = 0u64;
        let mut failure = None;
        // Ends when every hashing thread has ended: at the end of the data,
        // or after a read failed.
        for message in done_rx {
            match message {
                Ok((index, digest, len)) => {
                    if let Some(slot) = digests.get_mut(index) {
                        *slot = digest;
                    }
                    hashed += len as u64;
                    progress(hashed);
                }
                Err(e) => failure = failure.or(Some(e)),
            }
        }
        failure.map_or(Ok(digests), Err)
    })
}

/// Takes the reader in turn with the other threads: reads a piece under its
/// lock, hashes it outside, until the data ends or a read fails.
fn hash_worker(
    reader: &Mutex<SequentialReader<'_>>,
    piece_length: usize,
    done: &SyncSender<Hashed>,
) {
    let mut buf = vec![0u8; piece_length];
    loop {
        // A poisoned lock means another hashing thread panicked; the scope
        // re-raises that panic.
        let Ok(mut shared) = reader.lock() else {
            return;
        };
        let (index, len) = match shared.next_piece(&mut buf) {
            Ok(Some(piece)) => piece,
            Ok(None) => return,
            Err(e) => {
                let _ = done.send(Err(e));
                return;
            }
        };
        drop(shared);
        let digest: [u8; 20] = Sha1::digest(&buf[..len]).into();
        if done.send(Ok((index, digest, len))).is_err() {
            return;
        }
    }
}

/// The files read in order, one piece at a time; done after the last byte
/// or the first error.
struct SequentialReader<'a> {
    files: std::slice::Iter<'a, InputFile>,
    current: Option<FileReader<'a>>,
    next_index: usize,
    done: bool,
}

impl<'a> SequentialReader<'a> {
    fn new(files: &'a [InputFile]) -> Self {
        Self {
            files: files.iter(),
            current: None,
            next_index: 0,
            done: false,
        }
    }

    /// Fills `buf` (one piece long) with the next piece and returns its
    /// index and length, or `None` after the last one.
    fn next_piece(&mut self, buf: &mut [u8]) -> Result<Option<(usize, usize)>, CreateError> {
        if self.done {
            return Ok(None);
        }
        let filled = self.fill(buf).inspect_err(|_| self.done = true)?;
        if filled == 0 {
            self.done = true;
            return Ok(None);
        }
        let index = self.next_index;
        self.next_index += 1;
        Ok(Some((index, filled)))
    }

    /// Reads until `buf` is full or the files end; returns the bytes read.
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, CreateError> {
        let mut filled = 0;
        while filled < buf.len() {
            let reader = match &mut self.current {
                Some(reader) if reader.remaining > 0 => reader,
                _ => {
                    if let Some(mut finished) = self.current.take() {
                        finished.check_end()?;
                    }
                    let Some(file) = self.files.next() else {
                        break;
                    };
                    self.current.insert(FileReader::open(file)?)
                }
            };
            filled += reader.read_into(&mut buf[filled..])?;
        }
        Ok(filled)
    }
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
        // A hint for a cold cache (a larger read-ahead window); harmless if refused.
        let _ = rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::Sequential);
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
