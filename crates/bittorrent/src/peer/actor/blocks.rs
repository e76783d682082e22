//! Blocks out to the peer, as `piece` messages. A run of requested blocks
//! is got ready off the message loop ([`PeerActor::start_read`]), then sent
//! once it is ready and the upload limits allow ([`PeerActor::send_read`]):
//! - on plaintext TCP, from a store that keeps blocks in files, each block
//!   goes from the page cache to the socket with sendfile(2), behind its
//!   13-byte header: no copy through user space, no blocking thread;
//! - otherwise (uTP, RC4, a pad file, a store in memory) the store reads the
//!   run on a blocking thread into one of the peer's reused buffers, written
//!   from there in one vectored write (encrypted in place, when RC4 is on).

use std::io::{self, IoSlice};
use std::ops::Range;

use futures::future::{self, Either};
use futures::SinkExt;
use tokio::io::AsyncWriteExt;
use tokio::task::{JoinError, JoinHandle};

use crate::peer::actor::{Conn, PeerActor};
use crate::peer::transport::PeerStream;
use crate::peer::upload::MAX_READ;
use crate::peer::{PeerError, PeerEvent};
use crate::store::{FileRun, StoreError};
use crate::types::BlockInfo;

/// A run of blocks got ready for the peer.
pub(super) type BlockRead = Result<ReadRun, StoreError>;
/// A run being got ready: read on a blocking thread, or found at once.
pub(super) type PendingRead =
    Either<JoinHandle<BlockRead>, future::Ready<Result<BlockRead, JoinError>>>;

/// A run of blocks ready for the peer: the blocks, and where their data is,
/// end to end.
pub(super) struct ReadRun {
    pub(super) blocks: Vec<BlockInfo>,
    pub(super) data: RunData,
}

/// Where a run's data is.
pub(super) enum RunData {
    /// Read into `buf[..len]`: one of the peer's reused upload buffers
    /// ([`MAX_READ`] long), taken back after the write.
    Buffer { buf: Vec<u8>, len: usize },
    /// In these file runs, sent from there.
    Files(Vec<FileRun>),
}

impl RunData {
    /// Bytes of data.
    fn len(&self) -> usize {
        match self {
            Self::Buffer { len, .. } => *len,
            Self::Files(runs) => runs.iter().map(|r| r.len as usize).sum(),
        }
    }
}

impl PeerActor {
    /// Starts getting the next run of queued requests ready. With
    /// `zero_copy` (plaintext TCP) the store is asked where the blocks lie:
    /// no read, nothing to wait for. Otherwise, or if the store cannot say,
    /// the run is read on a blocking thread into one of the peer's buffers.
    pub(super) fn start_read(&mut self, zero_copy: bool) -> Option<PendingRead> {
        let blocks = self.uploads.next_run();
        let first = blocks.first().copied()?;
        // A run is at most `MAX_READ` bytes, the buffers' length.
        let len: usize = blocks.iter().map(|b| b.length as usize).sum();
        if zero_copy {
            let found = u32::try_from(len)
                .map_err(|_| StoreError::OutOfRange {
                    index: first.piece,
                    begin: first.begin,
                    length: len as u64,
                })
                .and_then(|length| {
                    self.params
                        .store
                        .file_runs(first.piece, first.begin, length)
                });
            let read = match found {
                Ok(Some(runs)) => Ok(ReadRun {
                    blocks,
                    data: RunData::Files(runs),
                }),
                Ok(None) => return Some(self.read_blocking(blocks, first, len)),
                Err(e) => Err(e),
            };
            return Some(Either::Right(future::ready(Ok(read))));
        }
        Some(self.read_blocking(blocks, first, len))
    }

    /// Reads `blocks` (`len` bytes from `first`) from the store on a
    /// blocking thread, into one of the peer's reused buffers.
    fn read_blocking(
        &mut self,
        blocks: Vec<BlockInfo>,
        first: BlockInfo,
        len: usize,
    ) -> PendingRead {
        let mut buf = self.buffers.take();
        let store = std::sync::Arc::clone(&self.params.store);
        Either::Left(tokio::task::spawn_blocking(move || {
            let dest = buf.get_mut(..len).ok_or(StoreError::OutOfRange {
                index: first.piece,
                begin: first.begin,
                length: len as u64,
            })?;
            store.read_into(first.piece, first.begin, dest)?;
            Ok(ReadRun {
                blocks,
                data: RunData::Buffer { buf, len },
            })
        }))
    }

    /// Sends what of a ready run may still go out (see
    /// `still_servable`), then keeps its buffer for the next read, or frees
    /// it (`last`: no other read in flight, so a peer that stopped asking
    /// holds none). Returns whether anything was sent.
    pub(super) async fn send_read(
        &mut self,
        read: ReadRun,
        last: bool,
        conn: &mut Conn,
    ) -> Result<bool, PeerError> {
        let ReadRun { blocks, mut data } = read;
        let len = data.len();
        let mut sent = false;
        for (run, range) in self.still_servable(blocks, len, conn).await? {
            sent |= self.send_blocks(&run, &mut data, range, conn).await?;
        }
        if let RunData::Buffer { buf, .. } = data {
            self.buffers.give_back(buf, last && self.uploads.is_empty());
        }
        Ok(sent)
    }

    /// Sends `blocks`, whose data is `range` of `data`, then charges and
    /// reports the upload. Returns whether anything was sent.
    async fn send_blocks(
        &mut self,
        blocks: &[BlockInfo],
        data: &mut RunData,
        range: Range<usize>,
        conn: &mut Conn,
    ) -> Result<bool, PeerError> {
        if blocks.is_empty() {
            return Ok(false);
        }
        // Whatever is queued goes first: the blocks bypass the codec's buffer.
        conn.flush().await?;
        let bytes = range.len() as u64;
        let io = conn.get_mut();
        let written = match data {
            RunData::Buffer { buf, .. } => match buf.get_mut(range) {
                Some(part) => write_blocks(io, blocks, part).await,
                None => Err(io::ErrorKind::InvalidData.into()),
            },
            RunData::Files(runs) => send_file_blocks(io, blocks, runs, range.start as u64).await,
        };
        written.map_err(|e| PeerError::Wire(e.into()))?;
        self.charge_sent(bytes);
        self.emit(PeerEvent::Uploaded {
            addr: self.addr,
            bytes,
        })
        .await?;
        Ok(true)
    }
}

/// Upload buffers a peer keeps for its next reads (one per read in flight).
#[derive(Debug, Default)]
pub(super) struct Buffers {
    spare: Vec<Vec<u8>>,
    /// Most buffers kept.
    keep: usize,
}

impl Buffers {
    /// A pool keeping at most `keep` buffers.
    pub(super) fn new(keep: usize) -> Self {
        Self {
            spare: Vec::new(),
            keep,
        }
    }

    /// A buffer of [`MAX_READ`] bytes: a spare one, or a new one.
    pub(super) fn take(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| vec![0u8; MAX_READ as usize])
    }

    /// Keeps `buf` for the next read, or frees it (`idle`: nothing queued,
    /// so a peer that stopped asking holds no buffer).
    pub(super) fn give_back(&mut self, buf: Vec<u8>, idle: bool) {
        if idle {
            self.spare.clear();
        } else if self.spare.len() < self.keep && buf.len() == MAX_READ as usize {
            self.spare.push(buf);
        }
    }
}

/// The 13 bytes before a block's data in a `piece` message.
fn piece_header(piece: u32, begin: u32, len: usize) -> [u8; 13] {
    let mut header = [0u8; 13];
    header[..4].copy_from_slice(&(9 + len as u32).to_be_bytes());
    header[4] = 7;
    header[5..9].copy_from_slice(&piece.to_be_bytes());
    header[9..].copy_from_slice(&begin.to_be_bytes());
    header
}

/// Writes `blocks` (their data end to end in `data`) as `piece` messages in
/// one vectored write: straight from the read's buffer in plaintext; when
/// encrypted, the keystream is applied in place on that buffer and on the
/// headers (no copy).
pub(super) async fn write_blocks(
    io: &mut PeerStream,
    blocks: &[BlockInfo],
    data: &mut [u8],
) -> io::Result<()> {
    let mut headers: Vec<[u8; 13]> = blocks
        .iter()
        .map(|b| piece_header(b.piece, b.begin, b.length as usize))
        .collect();
    let lengths = blocks.iter().map(|b| b.length as usize);
    if !io.is_encrypted() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * blocks.len());
        let mut rest: &[u8] = data;
        for (header, len) in headers.iter().zip(lengths) {
            let (block, tail) = rest
                .split_at_checked(len)
                .ok_or(io::ErrorKind::InvalidData)?;
            slices.push(IoSlice::new(header));
            slices.push(IoSlice::new(block));
            rest = tail;
        }
        return write_all_vectored(io, &mut slices).await;
    }
    let mut parts: Vec<&mut [u8]> = Vec::with_capacity(2 * blocks.len());
    let mut rest: &mut [u8] = data;
    for (header, len) in headers.iter_mut().zip(lengths) {
        let (block, tail) = rest
            .split_at_mut_checked(len)
            .ok_or(io::ErrorKind::InvalidData)?;
        parts.push(header);
        parts.push(block);
        rest = tail;
    }
    io.write_all_sealed(&mut parts).await
}

/// Writes every slice, however the socket splits the writes.
async fn write_all_vectored(io: &mut PeerStream, mut slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

/// Sends `blocks` as `piece` messages on plaintext TCP, their data from
/// `runs` (from `skip` bytes into them): each header through the stream,
/// each body with sendfile(2). The socket is corked meanwhile, so headers
/// and bodies leave in full segments rather than a small one per header.
///
/// A file shorter than its runs (truncated under us) ends the send with
/// [`io::ErrorKind::UnexpectedEof`]; the message then stands unfinished,
/// so the caller must drop the connection (a peer error does).
pub(super) async fn send_file_blocks(
    io: &mut PeerStream,
    blocks: &[BlockInfo],
    runs: &[FileRun],
    skip: u64,
) -> io::Result<()> {
    io.set_cork(true)?;
    let sent = send_corked(io, blocks, runs, skip).await;
    let uncorked = io.set_cork(false);
    sent.and(uncorked)
}

async fn send_corked(
    io: &mut PeerStream,
    blocks: &[BlockInfo],
    runs: &[FileRun],
    skip: u64,
) -> io::Result<()> {
    let mut cursor = RunCursor::new(runs, skip);
    for block in blocks {
        io.write_all(&piece_header(
            block.piece,
            block.begin,
            block.length as usize,
        ))
        .await?;
        let mut left = u64::from(block.length);
        while left > 0 {
            let (run, offset, len) = cursor.take(left).ok_or(io::ErrorKind::InvalidData)?;
            io.send_file(&run.file, offset, len).await?;
            left -= len;
        }
    }
    Ok(())
}

/// A position in a run's file runs, taken from in pieces of at most one
/// block.
struct RunCursor<'a> {
    runs: &'a [FileRun],
    /// Bytes of `runs[0]` already taken.
    at: u64,
}

impl<'a> RunCursor<'a> {
    /// A cursor `skip` bytes into `runs`.
    fn new(runs: &'a [FileRun], skip: u64) -> Self {
        let mut cursor = Self { runs, at: 0 };
        cursor.advance(skip);
        cursor
    }

    fn advance(&mut self, mut n: u64) {
        while let Some(run) = self.runs.first() {
            let left = run.len - self.at.min(run.len);
            if n < left {
                self.at += n;
                return;
            }
            n -= left;
            self.runs = &self.runs[1..];
            self.at = 0;
        }
    }

    /// The next at most `max` bytes (`max` > 0) within one file: the run,
    /// the offset in its file and the length. `None` past the last run.
    fn take(&mut self, max: u64) -> Option<(&'a FileRun, u64, u64)> {
        while let Some(run) = self.runs.first() {
            let left = run.len.saturating_sub(self.at);
            if left == 0 {
                self.runs = &self.runs[1..];
                self.at = 0;
                continue;
            }
            let len = left.min(max);
            let offset = run.offset + self.at;
            self.advance(len);
            return Some((run, offset, len));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::Arc;

    use futures::StreamExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio_util::codec::Framed;

    use crate::wire::{Message, MessageCodec};

    /// A file holding `data`, as a store's open handle.
    fn file_with(data: &[u8]) -> Arc<std::fs::File> {
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(data).unwrap();
        Arc::new(file)
    }

    fn run(file: &Arc<std::fs::File>, offset: u64, len: u64) -> FileRun {
        FileRun {
            file: Arc::clone(file),
            offset,
            len,
        }
    }

    /// Our end as a plaintext TCP peer stream, and the remote end reading
    /// messages.
    async fn tcp_pair() -> (PeerStream, Framed<TcpStream, MessageCodec>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (theirs, _) = listener.accept().await.unwrap();
        let stream = PeerStream::tcp(ours).unwrap();
        assert!(stream.can_send_files());
        (stream, Framed::new(theirs, MessageCodec::default()))
    }

    #[test]
    fn the_cursor_splits_blocks_at_file_ends() {
        let (a, b) = (file_with(&[1; 10]), file_with(&[2; 10]));
        // 6 bytes of `a` from 4, then 10 of `b`: 16 bytes.
        let runs = [run(&a, 4, 6), run(&b, 0, 10)];
        let mut cursor = RunCursor::new(&runs, 0);
        let mut taken = Vec::new();
        while let Some((r, offset, len)) = cursor.take(4) {
            taken.push((Arc::ptr_eq(&r.file, &b), offset, len));
        }
        assert_eq!(
            taken,
            [
                (false, 4, 4),
                (false, 8, 2),
                (true, 0, 4),
                (true, 4, 4),
                (true, 8, 2)
            ]
        );
        // Skipping into the second run.
        let mut cursor = RunCursor::new(&runs, 7);
        assert_eq!(cursor.take(100).map(|(_, o, l)| (o, l)), Some((1, 9)));
        assert!(cursor.take(1).is_none());
        assert!(RunCursor::new(&runs, 16).take(1).is_none());
    }

    #[tokio::test]
    async fn blocks_spanning_files_arrive_byte_identical() {
        let data: Vec<u8> = (0..3 * 16384u32).map(|i| (i * 7 + i / 251) as u8).collect();
        // The run's 48 KiB lie in three files, cut across the blocks.
        let (a, b, c) = (
            file_with(&data[..10_000]),
            file_with(&[&[9u8; 100], &data[10_000..30_000]].concat()),
            file_with(&data[30_000..]),
        );
        let runs = [run(&a, 0, 10_000), run(&b, 100, 20_000), run(&c, 0, 19_152)];
        let blocks: Vec<BlockInfo> = (0..3)
            .map(|i| BlockInfo {
                piece: 4,
                begin: i * 16384,
                length: 16384,
            })
            .collect();
        let (mut ours, mut theirs) = tcp_pair().await;
        // The last two blocks alone: the first block's bytes are skipped.
        send_file_blocks(&mut ours, &blocks[1..], &runs, 16384)
            .await
            .unwrap();
        ours.write_all(b"\0\0\0\x01\x02").await.unwrap(); // then an `interested`
        for block in &blocks[1..] {
            let Some(Ok(Message::Piece {
                piece,
                begin,
                data: got,
            })) = theirs.next().await
            else {
                panic!("a piece expected");
            };
            assert_eq!((piece, begin), (block.piece, block.begin));
            let at = block.begin as usize;
            assert_eq!(&got[..], &data[at..at + 16384], "block at {at}");
        }
        assert_eq!(theirs.next().await.unwrap().unwrap(), Message::Interested);
    }

    #[tokio::test]
    async fn a_file_truncated_under_us_is_an_error_not_a_hang() {
        let file = file_with(&[5; 1000]);
        let runs = [run(&file, 0, 16384)];
        let block = BlockInfo {
            piece: 0,
            begin: 0,
            length: 16384,
        };
        let (mut ours, _theirs) = tcp_pair().await;
        let err = send_file_blocks(&mut ours, &[block], &runs, 0)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof, "{err}");
        // Runs shorter than the blocks: refused, not sliced past.
        let short = [run(&file, 0, 100)];
        let err = send_file_blocks(&mut ours, &[block], &short, 0)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    }

    #[test]
    fn buffers_are_reused_up_to_the_limit_and_freed_when_idle() {
        let mut pool = Buffers::new(2);
        let (mut a, b, c) = (pool.take(), pool.take(), pool.take());
        assert_eq!(a.len(), MAX_READ as usize);
        a[0] = 42;
        let a_ptr = a.as_ptr();
        pool.give_back(a, false);
        pool.give_back(b, false);
        pool.give_back(c, false);
        assert_eq!(pool.spare.len(), 2, "at most `keep`");
        let again = pool.take();
        let reused = pool.take();
        assert_eq!(reused.as_ptr(), a_ptr, "the same allocation, reused");
        pool.give_back(again, true);
        assert!(pool.spare.is_empty(), "an idle peer keeps no buffer");
        pool.give_back(vec![0; 10], false);
        assert!(pool.spare.is_empty(), "a foreign-sized buffer is not kept");
    }
}
