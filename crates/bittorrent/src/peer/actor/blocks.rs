//! Blocks out to the peer: `piece` messages written straight from the
//! buffer the store read into.

use std::io::IoSlice;

use tokio::io::AsyncWriteExt;

use crate::peer::transport::PeerStream;
use crate::peer::upload::MAX_READ;
use crate::types::BlockInfo;

/// A run of blocks read for the peer: the blocks, and their data end to end
/// in `buf[..len]`. `buf` is one of the peer's reused upload buffers
/// ([`MAX_READ`] long), taken back after the write.
pub(super) struct ReadRun {
    pub(super) blocks: Vec<BlockInfo>,
    pub(super) buf: Vec<u8>,
    pub(super) len: usize,
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
) -> std::io::Result<()> {
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
                .ok_or(std::io::ErrorKind::InvalidData)?;
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
            .ok_or(std::io::ErrorKind::InvalidData)?;
        parts.push(header);
        parts.push(block);
        rest = tail;
    }
    io.write_all_sealed(&mut parts).await
}

/// Writes every slice, however the socket splits the writes.
async fn write_all_vectored(
    io: &mut PeerStream,
    mut slices: &mut [IoSlice<'_>],
) -> std::io::Result<()> {
    while !slices.is_empty() {
        let n = io.write_vectored(slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut slices, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

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
