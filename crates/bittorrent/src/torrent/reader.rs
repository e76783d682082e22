//! [`FileReader`]: one file of a torrent as `AsyncRead + AsyncSeek`, served
//! while the torrent downloads. Verified bytes come straight from the store;
//! for a piece not yet verified the reader asks its torrent to make that piece
//! and a read-ahead window after it urgent, and waits.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio::sync::oneshot;

use crate::metainfo::MetaInfo;
use crate::store::Store;
use crate::torrent::command::CommandSender;
use crate::torrent::TorrentCommand;

/// Most bytes fetched from the store per read.
const MAX_CHUNK: u64 = 256 * 1024;

/// Distinguishes readers for their torrent.
static NEXT_READER: AtomicU64 = AtomicU64::new(1);

type Fetch = Pin<Box<dyn Future<Output = io::Result<Bytes>> + Send>>;

/// One file of a torrent, readable and seekable while it downloads. Reads
/// of verified data return at once; others wait until the pieces arrive (and
/// make them urgent meanwhile). Several readers may be open at once; dropping
/// one lowers its pieces' priority again. Made by
/// [`TorrentHandle::open_file`](crate::torrent::TorrentHandle::open_file).
pub struct FileReader {
    id: u64,
    /// Dies with the reader: the torrent releases its window even when the
    /// `ReaderGone` message is lost.
    alive: Arc<()>,
    tx: CommandSender,
    meta: Arc<MetaInfo>,
    store: Arc<dyn Store>,
    /// The file's first byte in the torrent's byte stream, and its length.
    offset: u64,
    len: u64,
    /// Position in the file.
    pos: u64,
    /// A fetch under way, for the bytes at `pos`.
    fetch: Option<Fetch>,
    /// Bytes fetched that did not fit the caller's buffer.
    leftover: Bytes,
}

impl std::fmt::Debug for FileReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReader")
            .field("offset", &self.offset)
            .field("len", &self.len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl FileReader {
    pub(crate) fn new(
        tx: CommandSender,
        meta: Arc<MetaInfo>,
        store: Arc<dyn Store>,
        file: usize,
    ) -> Option<Self> {
        let entry = meta.files.get(file)?;
        let (offset, len) = (entry.offset, entry.length);
        Some(Self {
            id: NEXT_READER.fetch_add(1, Ordering::Relaxed),
            alive: Arc::new(()),
            tx,
            meta,
            store,
            offset,
            len,
            pos: 0,
            fetch: None,
            leftover: Bytes::new(),
        })
    }

    /// The file's length in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True for an empty file.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts fetching up to `want` bytes at the current position.
    fn start_fetch(&mut self, want: u64) -> Fetch {
        let absolute = self.offset + self.pos;
        let piece_length = u64::from(self.meta.piece_length);
        let piece = (absolute / piece_length) as u32;
        let begin = (absolute % piece_length) as u32;
        let in_piece = u64::from(self.meta.piece_len(piece)).saturating_sub(u64::from(begin));
        let n = want.min(self.len - self.pos).min(in_piece).min(MAX_CHUNK) as u32;
        let (tx, store, reader) = (self.tx.clone(), Arc::clone(&self.store), self.id);
        let alive = Arc::downgrade(&self.alive);
        Box::pin(async move {
            let (reply, wait) = oneshot::channel();
            let gone = || io::Error::new(io::ErrorKind::BrokenPipe, "the torrent has stopped");
            tx.send(TorrentCommand::WaitPiece {
                piece,
                reader,
                alive,
                reply,
            })
            .await
            .map_err(|_| gone())?;
            wait.await.map_err(|_| gone())?.map_err(io::Error::other)?;
            tokio::task::spawn_blocking(move || crate::store::read_exact(&*store, piece, begin, n))
                .await
                .map_err(io::Error::other)?
                .map_err(io::Error::other)
        })
    }
}

impl AsyncRead for FileReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.leftover.is_empty() {
            if this.pos >= this.len || buf.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            let fetch = match &mut this.fetch {
                Some(fetch) => fetch,
                None => {
                    let fetch = this.start_fetch(buf.remaining() as u64);
                    this.fetch.insert(fetch)
                }
            };
            let bytes = match fetch.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => {
                    this.fetch = None;
                    result?
                }
            };
            if bytes.is_empty() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the store returned no data",
                )));
            }
            this.leftover = bytes;
        }
        let n = this.leftover.len().min(buf.remaining());
        buf.put_slice(&this.leftover.split_to(n));
        this.pos += n as u64;
        Poll::Ready(Ok(()))
    }
}

impl AsyncSeek for FileReader {
    fn start_seek(self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
        let this = self.get_mut();
        let target = match position {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => this.len.checked_add_signed(d),
            SeekFrom::Current(d) => this.pos.checked_add_signed(d),
        };
        let target = target.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek before the start of the file",
            )
        })?;
        if target != this.pos {
            this.pos = target;
            this.fetch = None;
            this.leftover = Bytes::new();
        }
        Ok(())
    }

    fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
        Poll::Ready(Ok(self.pos))
    }
}

impl Drop for FileReader {
    fn drop(&mut self) {
        let _ = self
            .tx
            .try_send(TorrentCommand::ReaderGone { reader: self.id });
    }
}
