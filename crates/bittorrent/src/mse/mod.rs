//! MSE/PE, the Message Stream Encryption of Vuze, libtorrent and
//! transmission: a Diffie-Hellman exchange, then RC4 (or plaintext) under
//! the BitTorrent protocol. It hides the protocol from traffic shapers and
//! lets us reach peers that refuse plaintext.
//!
//! - `crypto`: 768-bit DH, the hashes, the RC4 keystreams;
//! - `handshake`: the initiator and receiver state machines, sans-IO;
//! - `stream`: the layer a `PeerStream`
//!   keeps once the handshake is over (decrypt in place on read, encrypt on
//!   write), and which holds the payload that arrived with the handshake;
//! - `initiate` and `receive` drive the machines over a byte stream,
//!   each read bounded, and `is_plaintext` tells an inbound plain
//!   BitTorrent handshake from an MSE one by its first bytes.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};

use crate::types::InfoHash;
use crate::wire::Handshake;

pub(crate) mod crypto;
#[doc(hidden)]
pub mod fuzz;
pub(crate) mod handshake;
pub(crate) mod rc4;
pub(crate) mod stream;

use crypto::Keystream;
use handshake::{Initiator, Receiver};

/// Bytes one read may add to a handshake's buffer.
const READ_CHUNK: usize = 1024;

/// A set of crypto methods: crypto_provide and crypto_select of the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Methods(pub u32);

impl Methods {
    /// No encryption after the handshake.
    pub(crate) const PLAINTEXT: Self = Self(0x01);
    /// RC4 after the handshake.
    pub(crate) const RC4: Self = Self(0x02);
    /// Either.
    pub(crate) const BOTH: Self = Self(0x03);

    /// Whether exactly one method is set (as crypto_select must be).
    pub(crate) fn is_single(self) -> bool {
        self.0.count_ones() == 1
    }
}

/// Why an MSE/PE handshake failed.
#[derive(Debug, thiserror::Error)]
pub enum MseError {
    /// The peer's Diffie-Hellman key is degenerate.
    #[error("bad Diffie-Hellman public key")]
    BadPublicKey,
    /// The expected hash or verification constant did not come within the
    /// bytes the padding allows.
    #[error("no synchronisation within the padding")]
    NoSync,
    /// The peer's obfuscated info-hash names none of our torrents.
    #[error("the peer asked for a torrent we do not have")]
    UnknownTorrent,
    /// The verification constant did not decrypt to zeros.
    #[error("bad verification constant")]
    BadVerification,
    /// The peer offers no method we allow.
    #[error("no crypto method in common (offered {0:#x})")]
    NoCommonMethod(u32),
    /// The peer selected a method we did not offer, or several.
    #[error("bad crypto_select {0:#x}")]
    BadSelect(u32),
    /// A padding longer than 512 bytes.
    #[error("padding of {0} bytes")]
    PadTooLong(usize),
    /// An initial payload longer than we take.
    #[error("initial payload of {0} bytes")]
    IaTooLong(usize),
    /// Plaintext where our policy requires encryption, or the reverse.
    #[error("refused by the encryption policy")]
    Refused,
    /// The state machine was stepped after it finished.
    #[error("handshake already over")]
    Finished,
    /// The peer hung up during the handshake.
    #[error("connection closed during the encryption handshake")]
    Closed,
    /// A socket error.
    #[error("encryption handshake: {0}")]
    Io(#[from] std::io::Error),
}

/// A finished handshake.
#[derive(Debug)]
pub(crate) struct Established {
    /// Our (encrypting, decrypting) keystreams, if RC4 was chosen.
    pub keys: Option<(Keystream, Keystream)>,
    /// Payload already received, decrypted: the IA, then anything that came
    /// right behind the handshake. It is read before the socket.
    pub prefix: BytesMut,
    /// The torrent the handshake was for (SKEY).
    pub info_hash: InfoHash,
}

/// What the first bytes of an inbound connection say: `Some(true)` for a
/// plain BitTorrent handshake, `Some(false)` for anything else (an MSE
/// handshake starts with a random public key), `None` while the bytes so far
/// fit both.
pub(crate) fn is_plaintext(first: &[u8]) -> Option<bool> {
    let plain = Handshake::PROTOCOL;
    let n = first.len().min(plain.len());
    if first[..n] != plain[..n] {
        Some(false)
    } else if n == plain.len() {
        Some(true)
    } else {
        None
    }
}

/// Runs the initiator's handshake on `stream` for the torrent `skey`,
/// offering `provide`.
///
/// # Errors
/// An [`MseError`]; the caller bounds the time.
pub(crate) async fn initiate<S>(
    stream: &mut S,
    skey: InfoHash,
    provide: Methods,
) -> Result<Established, MseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = Vec::new();
    let mut machine = Initiator::new(&mut rand::thread_rng(), skey, provide, &mut out);
    drive(stream, BytesMut::new(), out, |input, out| {
        machine.step(input, out)
    })
    .await
}

/// Runs the receiver's handshake on `stream`, `first` being the bytes
/// already read from it, for one of `torrents`, accepting `allowed`.
///
/// # Errors
/// An [`MseError`]; the caller bounds the time.
pub(crate) async fn receive<S>(
    stream: &mut S,
    first: BytesMut,
    allowed: Methods,
    torrents: std::sync::Arc<[InfoHash]>,
) -> Result<Established, MseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut machine = Receiver::new(&mut rand::thread_rng(), allowed, torrents);
    drive(stream, first, Vec::new(), |input, out| {
        machine.step(input, out)
    })
    .await
}

/// Feeds `step` what arrives, at most [`READ_CHUNK`] bytes a read, and
/// sends what it answers, until it is done. Sending never blocks reading:
/// both sides may write their padded keys at once into small buffers.
async fn drive<S, F>(
    stream: &mut S,
    mut input: BytesMut,
    mut out: Vec<u8>,
    mut step: F,
) -> Result<Established, MseError>
where
    S: AsyncRead + AsyncWrite + Unpin,
    F: FnMut(&mut BytesMut, &mut Vec<u8>) -> Result<Option<Established>, MseError>,
{
    loop {
        if let Some(done) = step(&mut input, &mut out)? {
            stream.write_all(&out).await?;
            stream.flush().await?;
            return Ok(done);
        }
        let read = std::future::poll_fn(|cx| exchange(stream, cx, &mut out, &mut input)).await?;
        if read == 0 {
            return Err(MseError::Closed);
        }
    }
}

/// Writes what it can of `out`, and is ready once something was read into
/// `input` (at most [`READ_CHUNK`] bytes): the number of bytes read.
fn exchange<S>(
    stream: &mut S,
    cx: &mut Context<'_>,
    out: &mut Vec<u8>,
    input: &mut BytesMut,
) -> Poll<std::io::Result<usize>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while !out.is_empty() {
        match Pin::new(&mut *stream).poll_write(cx, out) {
            Poll::Ready(Ok(0)) => return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into())),
            Poll::Ready(Ok(n)) => drop(out.drain(..n)),
            Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
            Poll::Pending => break,
        }
    }
    if out.is_empty() {
        // Nothing buffers below us but a stream wrapper might: push it out.
        if let Poll::Ready(Err(e)) = Pin::new(&mut *stream).poll_flush(cx) {
            return Poll::Ready(Err(e));
        }
    }
    let mut chunk = [0u8; READ_CHUNK];
    let mut buf = ReadBuf::new(&mut chunk);
    std::task::ready!(Pin::new(stream).poll_read(cx, &mut buf))?;
    input.extend_from_slice(buf.filled());
    Poll::Ready(Ok(buf.filled().len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{duplex, AsyncReadExt};

    #[test]
    fn plaintext_is_told_by_its_first_bytes() {
        assert_eq!(is_plaintext(b""), None);
        assert_eq!(is_plaintext(b"\x13Bit"), None);
        assert_eq!(is_plaintext(b"\x13BitTorrent protocol"), Some(true));
        assert_eq!(is_plaintext(b"\x13BitTorrent protocol\0\0"), Some(true));
        assert_eq!(is_plaintext(b"\x13Bix"), Some(false));
        assert_eq!(is_plaintext(b"\x14"), Some(false));
    }

    async fn pair(
        provide: Methods,
        allowed: Methods,
    ) -> (Result<Established, MseError>, Result<Established, MseError>) {
        let (mut a, mut b) = duplex(64);
        // Smaller than either side's padded key: both write at once.
        let torrents: Arc<[InfoHash]> = Arc::from(vec![InfoHash([5; 20])]);
        tokio::join!(
            initiate(&mut a, InfoHash([5; 20]), provide),
            receive(&mut b, BytesMut::new(), allowed, torrents),
        )
    }

    #[tokio::test]
    async fn a_handshake_over_a_duplex_with_each_choice() {
        let (a, b) = pair(Methods::BOTH, Methods::BOTH).await;
        assert!(a.unwrap().keys.is_none() && b.unwrap().keys.is_none());
        let (a, b) = pair(Methods::BOTH, Methods::RC4).await;
        assert!(a.unwrap().keys.is_some() && b.unwrap().keys.is_some());
        let (a, b) = pair(Methods::RC4, Methods::RC4).await;
        assert!(a.unwrap().keys.is_some() && b.unwrap().keys.is_some());
        let (a, b) = pair(Methods::BOTH, Methods::PLAINTEXT).await;
        assert!(a.unwrap().keys.is_none() && b.unwrap().keys.is_none());
        let (a, b) = pair(Methods::PLAINTEXT, Methods::PLAINTEXT).await;
        assert!(a.unwrap().keys.is_none());
        assert_eq!(b.unwrap().info_hash, InfoHash([5; 20]));
    }

    #[tokio::test]
    async fn truncated_handshakes_fail_cleanly() {
        // Cut the initiator's bytes off at each point: the receiver ends
        // with an error, never a panic.
        for cut in [0, 1, 95, 96, 200, 700] {
            let (mut a, mut b) = duplex(4096);
            let mut out = Vec::new();
            let _machine = Initiator::new(
                &mut rand::thread_rng(),
                InfoHash([5; 20]),
                Methods::BOTH,
                &mut out,
            );
            let cut = cut.min(out.len());
            a.write_all(&out[..cut]).await.unwrap();
            drop(a);
            let torrents: Arc<[InfoHash]> = Arc::from(vec![InfoHash([5; 20])]);
            let got = receive(&mut b, BytesMut::new(), Methods::BOTH, torrents).await;
            assert!(got.is_err(), "cut at {cut}");
        }
        // And the initiator facing a receiver that hangs up after Yb.
        let (mut a, mut b) = duplex(4096);
        let peer = tokio::spawn(async move {
            let mut buf = [0u8; 96];
            b.read_exact(&mut buf).await.unwrap();
            b.write_all(&[0x42; 96]).await.unwrap();
        });
        let got = initiate(&mut a, InfoHash([5; 20]), Methods::BOTH).await;
        assert!(
            matches!(got, Err(MseError::Closed | MseError::Io(_))),
            "{got:?}"
        );
        peer.await.unwrap();
    }
}
