//! The BitTorrent handshake, written once for every connection: outbound
//! peers, inbound peers (the listener reads, the peer actor answers) and the
//! metadata fetch of a magnet. Generic over the byte stream (any
//! `AsyncRead + AsyncWrite`), so another transport (uTP, an encrypted stream)
//! slots in under the same steps:
//!
//! - [`initiate`] sends our handshake and reads theirs (outbound);
//! - [`receive`] reads theirs and [`respond`] answers it (inbound);
//! - [`check`] refuses another torrent and ourselves;
//! - [`into_messages`] switches to the message codec, keeping the bytes that
//!   arrived right behind the handshake.

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::codec::{Framed, FramedParts};

use crate::peer::PeerError;
use crate::types::{InfoHash, PeerId};
use crate::wire::{Handshake, HandshakeCodec, Message, MessageCodec};

/// A connection still in handshake framing.
pub(crate) type HandshakeConn<S> = Framed<S, HandshakeCodec>;

/// Sends `ours` and reads the peer's handshake (the dialling side).
///
/// # Errors
/// A socket or protocol error, or [`PeerError::Closed`] if the peer hangs up
/// first.
pub(crate) async fn initiate<S>(
    stream: S,
    ours: Handshake,
) -> Result<(HandshakeConn<S>, Handshake), PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Framed::new(stream, HandshakeCodec);
    conn.send(ours).await?;
    let theirs = next_handshake(&mut conn).await?;
    Ok((conn, theirs))
}

/// Reads the peer's handshake (the accepting side); answer with [`respond`]
/// once the torrent it names is known.
///
/// # Errors
/// A socket or protocol error, or [`PeerError::Closed`].
pub(crate) async fn receive<S>(stream: S) -> Result<(HandshakeConn<S>, Handshake), PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut conn = Framed::new(stream, HandshakeCodec);
    let theirs = next_handshake(&mut conn).await?;
    Ok((conn, theirs))
}

/// Sends our handshake in answer to one [`receive`]d.
///
/// # Errors
/// A socket error.
pub(crate) async fn respond<S>(
    conn: &mut HandshakeConn<S>,
    ours: Handshake,
) -> Result<(), PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    conn.send(ours).await?;
    Ok(())
}

/// Checks the peer's handshake: it must name our torrent and not be us.
///
/// # Errors
/// [`PeerError::WrongInfoHash`] or [`PeerError::SelfConnection`].
pub(crate) fn check(
    theirs: &Handshake,
    info_hash: InfoHash,
    our_id: PeerId,
) -> Result<(), PeerError> {
    if theirs.info_hash != info_hash {
        return Err(PeerError::WrongInfoHash(theirs.info_hash));
    }
    if theirs.peer_id == our_id {
        return Err(PeerError::SelfConnection);
    }
    Ok(())
}

/// Switches to the message codec (frames capped at `max_frame` bytes),
/// keeping the bytes already read past the handshake and any not yet written.
pub(crate) fn into_messages<S>(conn: HandshakeConn<S>, max_frame: usize) -> Framed<S, MessageCodec>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let parts = conn.into_parts();
    let mut next = FramedParts::new::<Message>(parts.io, MessageCodec::new(max_frame));
    next.read_buf = parts.read_buf;
    next.write_buf = parts.write_buf;
    Framed::from_parts(next)
}

async fn next_handshake<S>(conn: &mut HandshakeConn<S>) -> Result<Handshake, PeerError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    match conn.next().await {
        Some(hs) => Ok(hs?),
        None => Err(PeerError::Closed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{duplex, AsyncWriteExt};

    fn hs(info: u8, id: u8) -> Handshake {
        Handshake::new(InfoHash([info; 20]), PeerId([id; 20])).with_extensions()
    }

    #[tokio::test]
    async fn both_sides_exchange_and_early_bytes_survive_the_switch() {
        let (a, b) = duplex(1024);
        let dialler = tokio::spawn(async move {
            let (conn, theirs) = initiate(a, hs(1, 1)).await.unwrap();
            assert_eq!(theirs, hs(1, 2));
            let mut conn = into_messages(conn, 1024);
            conn.next().await.unwrap().unwrap()
        });
        let (mut conn, theirs) = receive(b).await.unwrap();
        assert_eq!(theirs, hs(1, 1));
        check(&theirs, InfoHash([1; 20]), PeerId([2; 20])).unwrap();
        // The answer and the first message leave in one write, so the
        // dialler's handshake codec buffers both: the message must survive.
        let mut bytes = Vec::new();
        bytes.extend_from_slice(Handshake::PROTOCOL);
        bytes.extend_from_slice(&hs(1, 2).reserved);
        bytes.extend_from_slice(&[1; 20]);
        bytes.extend_from_slice(&[2; 20]);
        bytes.extend_from_slice(&[0, 0, 0, 1, 2]); // interested
        conn.get_mut().write_all(&bytes).await.unwrap();
        assert_eq!(dialler.await.unwrap(), Message::Interested);
    }

    #[tokio::test]
    async fn respond_answers_and_check_refuses_others() {
        let (a, b) = duplex(1024);
        let (_, mut conn) = (
            tokio::spawn(async move { initiate(a, hs(3, 1)).await.map(|(_, h)| h) }),
            receive(b).await.unwrap().0,
        );
        respond(&mut conn, hs(3, 9)).await.unwrap();
        assert!(matches!(
            check(&hs(4, 1), InfoHash([3; 20]), PeerId([9; 20])),
            Err(PeerError::WrongInfoHash(_))
        ));
        assert!(matches!(
            check(&hs(3, 9), InfoHash([3; 20]), PeerId([9; 20])),
            Err(PeerError::SelfConnection)
        ));
    }

    #[tokio::test]
    async fn a_peer_that_hangs_up_is_closed() {
        let (a, b) = duplex(1024);
        drop(b);
        assert!(initiate(a, hs(1, 1)).await.is_err());
        let (a, b) = duplex(1024);
        drop(a);
        assert!(matches!(receive(b).await, Err(PeerError::Closed)));
    }
}
