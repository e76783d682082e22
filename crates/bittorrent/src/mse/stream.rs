//! What a peer stream keeps once an MSE/PE handshake is over: the payload
//! that came with the handshake (served before the socket), and the RC4
//! keystreams if RC4 was chosen.
//!
//! Reads decrypt in place in the caller's buffer (the codec's own read
//! buffer): no copy. Writes of the codec's messages are encrypted into one
//! small reused buffer; block uploads avoid even that by encrypting their
//! own buffers in place ([`Crypt::seal`]) and writing them raw.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::mse::crypto::Keystream;
use crate::mse::Established;

/// Bytes of one write taken into the encryption buffer at most.
const WRITE_CHUNK: usize = 64 * 1024;

/// The state of an encrypted (or handshake-prefixed) stream.
#[derive(Debug)]
pub(crate) struct Crypt {
    /// Decrypted payload not yet read.
    prefix: BytesMut,
    /// (encrypting, decrypting) keystreams; `None`: plaintext.
    keys: Option<(Keystream, Keystream)>,
    /// Encrypted bytes accepted from the caller, not yet written.
    pending: BytesMut,
}

impl Crypt {
    /// The layer an [`Established`] handshake leaves.
    pub(crate) fn new(done: Established) -> Self {
        Self {
            prefix: done.prefix,
            keys: done.keys,
            pending: BytesMut::new(),
        }
    }

    /// A plaintext stream of which `prefix` was already read.
    pub(crate) fn plaintext(prefix: BytesMut) -> Self {
        Self {
            prefix,
            keys: None,
            pending: BytesMut::new(),
        }
    }

    /// Whether RC4 runs on the stream.
    pub(crate) fn is_encrypted(&self) -> bool {
        self.keys.is_some()
    }

    /// Encrypts `buf` in place, as the next bytes to go out, if the stream
    /// is encrypted. The caller then writes it with [`poll_write_raw`]
    /// after [`poll_drain`], in the same order.
    ///
    /// [`poll_write_raw`]: Self::poll_write_raw
    /// [`poll_drain`]: Self::poll_drain
    pub(crate) fn seal(&mut self, buf: &mut [u8]) {
        if let Some((enc, _)) = &mut self.keys {
            enc.apply(buf);
        }
    }

    /// Reads: the prefix first, then the socket, decrypted in place.
    pub(crate) fn poll_read<T: AsyncRead + Unpin + ?Sized>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = buf.remaining().min(self.prefix.len());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        let start = buf.filled().len();
        ready!(Pin::new(inner).poll_read(cx, buf))?;
        if let Some((_, dec)) = &mut self.keys {
            dec.apply(&mut buf.filled_mut()[start..]);
        }
        Poll::Ready(Ok(()))
    }

    /// Writes: plaintext straight through; encrypted through the reused
    /// buffer, at most [`WRITE_CHUNK`] bytes a call. Bytes accepted are
    /// written by later writes or the next flush.
    pub(crate) fn poll_write<T: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.keys.is_none() {
            return Pin::new(inner).poll_write_vectored(cx, bufs);
        }
        ready!(self.poll_drain(inner, cx))?;
        let mut taken = 0;
        for buf in bufs {
            let n = buf.len().min(WRITE_CHUNK - taken);
            self.pending.extend_from_slice(&buf[..n]);
            taken += n;
            if taken == WRITE_CHUNK {
                break;
            }
        }
        if let Some((enc, _)) = &mut self.keys {
            enc.apply(&mut self.pending);
        }
        // Start writing now; what the socket does not take waits.
        if let Poll::Ready(Err(e)) = self.poll_drain(inner, cx) {
            return Poll::Ready(Err(e));
        }
        Poll::Ready(Ok(taken))
    }

    /// Writes out the encrypted bytes still buffered.
    pub(crate) fn poll_drain<T: AsyncWrite + Unpin + ?Sized>(
        &mut self,
        inner: &mut T,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<()>> {
        while !self.pending.is_empty() {
            let n = ready!(Pin::new(&mut *inner).poll_write(cx, &self.pending))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.pending.advance(n);
        }
        // Empty: the next write reuses the buffer from its start.
        self.pending.clear();
        Poll::Ready(Ok(()))
    }

    /// Writes already sealed bytes, bypassing the cipher.
    pub(crate) fn poll_write_raw<T: AsyncWrite + Unpin + ?Sized>(
        inner: &mut T,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(inner).poll_write_vectored(cx, bufs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mse::{initiate, receive, Methods};
    use crate::types::InfoHash;
    use std::sync::Arc;
    use tokio::io::{duplex, AsyncReadExt, AsyncWriteExt, DuplexStream};

    /// A stream with its crypt layer, for the tests.
    struct Layered(DuplexStream, Crypt);

    impl AsyncRead for Layered {
        fn poll_read(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            this.1.poll_read(&mut this.0, cx, buf)
        }
    }

    impl AsyncWrite for Layered {
        fn poll_write(
            self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let this = self.get_mut();
            this.1.poll_write(&mut this.0, cx, &[io::IoSlice::new(buf)])
        }
        fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            ready!(this.1.poll_drain(&mut this.0, cx))?;
            Pin::new(&mut this.0).poll_flush(cx)
        }
        fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            let this = self.get_mut();
            ready!(this.1.poll_drain(&mut this.0, cx))?;
            Pin::new(&mut this.0).poll_shutdown(cx)
        }
    }

    async fn link(provide: Methods) -> (Layered, Layered) {
        // A small pipe: writes are partial, the pending buffer is exercised.
        let (mut a, mut b) = duplex(100);
        let torrents: Arc<[InfoHash]> = Arc::from(vec![InfoHash([1; 20])]);
        let (x, y) = tokio::join!(
            initiate(&mut a, InfoHash([1; 20]), provide),
            receive(&mut b, BytesMut::new(), Methods::BOTH, torrents),
        );
        (
            Layered(a, Crypt::new(x.unwrap())),
            Layered(b, Crypt::new(y.unwrap())),
        )
    }

    #[tokio::test]
    async fn bytes_cross_both_ways_encrypted_or_not() {
        for provide in [Methods::RC4, Methods::PLAINTEXT] {
            let (mut a, mut b) = link(provide).await;
            assert_eq!(a.1.is_encrypted(), provide == Methods::RC4);
            let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
            let sent = data.clone();
            let writer = tokio::spawn(async move {
                a.write_all(&sent).await.unwrap();
                a.flush().await.unwrap();
                let mut back = [0u8; 5];
                a.read_exact(&mut back).await.unwrap();
                back
            });
            let mut got = vec![0u8; data.len()];
            b.read_exact(&mut got).await.unwrap();
            assert!(got == data);
            b.write_all(b"thanks").await.unwrap();
            b.flush().await.unwrap();
            assert_eq!(&writer.await.unwrap(), b"thank");
        }
    }

    #[tokio::test]
    async fn sealed_buffers_interleave_with_buffered_writes() {
        let (mut a, mut b) = link(Methods::RC4).await;
        let reader = tokio::spawn(async move {
            let mut got = vec![0u8; 11];
            b.read_exact(&mut got).await.unwrap();
            got
        });
        a.write_all(b"head-").await.unwrap();
        a.flush().await.unwrap();
        let mut body = *b"body!!";
        a.1.seal(&mut body);
        let mut body: &[u8] = &body;
        while !body.is_empty() {
            let n = std::future::poll_fn(|cx| {
                Crypt::poll_write_raw(&mut a.0, cx, &[io::IoSlice::new(body)])
            })
            .await
            .unwrap();
            body = &body[n..];
        }
        assert_eq!(&reader.await.unwrap(), b"head-body!!");
    }

    #[tokio::test]
    async fn a_prefix_is_read_first() {
        let (a, mut b) = duplex(64);
        let mut layered = Layered(a, Crypt::plaintext(BytesMut::from(&b"early "[..])));
        b.write_all(b"late").await.unwrap();
        let mut got = [0u8; 10];
        layered.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"early late");
    }
}
