//! Blocks out to the peer: `piece` messages written straight from the
//! store's buffer.

use std::io::IoSlice;

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use crate::peer::transport::PeerStream;
use crate::types::BlockInfo;

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
/// one vectored write: straight from the store's buffer in plaintext; when
/// encrypted, the keystream is applied in place on that buffer (owned by
/// the store read, so no copy) and on the headers.
pub(super) async fn write_blocks(
    io: &mut PeerStream,
    blocks: &[BlockInfo],
    data: Bytes,
) -> std::io::Result<()> {
    let mut headers: Vec<[u8; 13]> = blocks
        .iter()
        .map(|b| piece_header(b.piece, b.begin, b.length as usize))
        .collect();
    let lengths = blocks.iter().map(|b| b.length as usize);
    if !io.is_encrypted() {
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(2 * blocks.len());
        let mut rest: &[u8] = &data;
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
    // Unique unless a store shares its buffers (then one copy is the price).
    let mut data = data
        .try_into_mut()
        .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
    let mut parts: Vec<&mut [u8]> = Vec::with_capacity(2 * blocks.len());
    let mut rest: &mut [u8] = &mut data;
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
