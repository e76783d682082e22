//! The response body: bytes in memory, or a file streamed chunk by chunk.

use std::future::Future;
use std::io::{self, SeekFrom};
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};
use log::{debug, error};
use tokio::io::{AsyncRead, AsyncSeek, ReadBuf};
use tokio_util::sync::WaitForCancellationFutureOwned;

use crate::http::server::{FileReader, CHUNK_SIZE};

/// A response body: bytes in memory, or a file streamed from its reader.
pub struct ResponseBody(BodyKind);

/// What a [`ResponseBody`] holds.
enum BodyKind {
    /// In memory; `None` once sent.
    Bytes(Option<Bytes>),
    /// Streamed from a reader.
    File(Box<FileStream>),
}

impl ResponseBody {
    /// No body.
    pub(super) fn empty() -> Self {
        ResponseBody(BodyKind::Bytes(None))
    }

    /// A body held in memory.
    pub(super) fn bytes(bytes: Vec<u8>) -> Self {
        if bytes.is_empty() {
            return Self::empty();
        }
        ResponseBody(BodyKind::Bytes(Some(Bytes::from(bytes))))
    }

    /// `len` bytes of `reader` from `start`, ending early (with an error, which closes the
    /// connection) when `cancelled` completes.
    pub(super) fn file(
        reader: Box<dyn FileReader>,
        start: u64,
        len: u64,
        label: String,
        cancelled: WaitForCancellationFutureOwned,
    ) -> Self {
        ResponseBody(BodyKind::File(Box::new(FileStream {
            reader,
            seek: Some(start),
            seeking: false,
            remaining: len,
            buf: Vec::new(),
            label,
            cancelled: Box::pin(cancelled),
        })))
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        match &mut self.0 {
            BodyKind::Bytes(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            BodyKind::File(stream) => stream.poll_chunk(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            BodyKind::Bytes(bytes) => bytes.is_none(),
            BodyKind::File(stream) => stream.remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            BodyKind::Bytes(bytes) => {
                SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64))
            }
            BodyKind::File(stream) => SizeHint::with_exact(stream.remaining),
        }
    }
}

/// A file body being streamed: seek once, then read chunk by chunk.
struct FileStream {
    /// The file.
    reader: Box<dyn FileReader>,
    /// Where to seek before the first read; `None` once the seek is done.
    seek: Option<u64>,
    /// Whether `start_seek` was called and `poll_complete` is pending.
    seeking: bool,
    /// Bytes still to send; 0 when done or after an error.
    remaining: u64,
    /// The read buffer, reused across chunks.
    buf: Vec<u8>,
    /// For log messages: which file.
    label: String,
    /// Completes when the server shuts down.
    cancelled: Pin<Box<WaitForCancellationFutureOwned>>,
}

impl FileStream {
    /// The next chunk, `None` at the end, or the error that ends the response.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        if self.cancelled.as_mut().poll(cx).is_ready() {
            debug!("{}: response cut short by shutdown", self.label);
            return self.fail(io::Error::other("server shutting down"));
        }
        if let Some(start) = self.seek {
            if !self.seeking {
                if let Err(e) = Pin::new(&mut self.reader).start_seek(SeekFrom::Start(start)) {
                    return self.fail_logged("seek failed", e);
                }
                self.seeking = true;
            }
            match Pin::new(&mut self.reader).poll_complete(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return self.fail_logged("seek failed", e),
                Poll::Ready(Ok(_)) => {
                    self.seek = None;
                    self.seeking = false;
                }
            }
        }
        // Bounded by CHUNK_SIZE, so the cast cannot truncate.
        let want = self.remaining.min(CHUNK_SIZE as u64) as usize;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        let mut read_buf = ReadBuf::new(&mut self.buf[..want]);
        match Pin::new(&mut self.reader).poll_read(cx, &mut read_buf) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => self.fail_logged("read failed", e),
            Poll::Ready(Ok(())) => {
                let filled = read_buf.filled();
                if filled.is_empty() {
                    let e = io::Error::new(io::ErrorKind::UnexpectedEof, "file ended early");
                    return self.fail_logged("read failed", e);
                }
                let chunk = Bytes::copy_from_slice(filled);
                self.remaining -= chunk.len() as u64;
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
        }
    }

    /// Ends the body with `e` after logging it as a failure of the file.
    fn fail_logged(&mut self, what: &str, e: io::Error) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        error!("{}: {what}: {e}", self.label);
        self.fail(e)
    }

    /// Ends the body with `e`: hyper closes the connection mid-response.
    fn fail(&mut self, e: io::Error) -> Poll<Option<io::Result<Frame<Bytes>>>> {
        self.remaining = 0;
        Poll::Ready(Some(Err(e)))
    }
}
