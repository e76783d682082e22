//! The peer actor's BEP 10 messages: the extended handshake, metadata
//! requests (BEP 9) served from our info dictionary, and peer exchange
//! (BEP 11).

use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;

use crate::extension::{
    metadata_piece, ExtendedHandshake, ExtendedMessage, Extension, MetadataMessage, PexMessage,
};
use crate::peer::actor::{Conn, PeerActor};
use crate::peer::guard::PEX_MAX_ADDED;
use crate::peer::{PeerError, PeerEvent};
use crate::wire::Message;

impl PeerActor {
    /// Handles a BEP 10 message: the peer's extended handshake, metadata
    /// requests (served from our info dictionary), peer exchange. Malformed
    /// or unknown extension messages are ignored.
    pub(super) async fn on_extended(
        &mut self,
        id: u8,
        body: Bytes,
        conn: &mut Conn,
    ) -> Result<(), PeerError> {
        // A PEX message we would not take is not even decoded (50 addresses
        // parsed per message made a PEX flood cost far more than its tokens).
        let pex = self.ext.local_extension(id) == Some(Extension::Pex);
        if pex && !(self.params.pex && self.guard.take_pex(Instant::now())) {
            return Ok(());
        }
        let msg = match ExtendedMessage::decode_parts(id, body, &self.ext) {
            Ok(msg) => msg,
            Err(e) => {
                log::debug!("{} ignoring a bad extension message: {e}", self.tag);
                return Ok(());
            }
        };
        match msg {
            ExtendedMessage::Handshake(hs) => self.on_ext_handshake(&hs, conn).await,
            ExtendedMessage::Metadata(MetadataMessage::Request { piece }) => {
                self.serve_metadata(piece, conn).await
            }
            // Taken: `take_pex` allowed it before decoding.
            ExtendedMessage::Pex(pex) => self.on_pex(&pex).await,
            ExtendedMessage::Metadata(_) | ExtendedMessage::Unknown { .. } => Ok(()),
        }
    }

    /// Records the peer's extension ids, then sends the PEX message held
    /// until we knew whether it takes PEX.
    pub(super) async fn on_ext_handshake(
        &mut self,
        hs: &ExtendedHandshake,
        conn: &mut Conn,
    ) -> Result<(), PeerError> {
        log::debug!("{} extensions {:?}, client {:?}", self.tag, hs.m, hs.v);
        self.ext.update_remote(hs);
        self.ext_handshake_seen = true;
        if let Some(pex) = self.pending_pex.take() {
            self.send_extended(ExtendedMessage::Pex(pex), conn).await?;
            conn.flush().await?;
        }
        Ok(())
    }

    /// Answers a metadata request: the piece within the guard's bound, a
    /// reject beyond it.
    pub(super) async fn serve_metadata(
        &mut self,
        piece: u32,
        conn: &mut Conn,
    ) -> Result<(), PeerError> {
        let info = &self.params.meta.info_bytes;
        let served =
            metadata_piece(info, piece).filter(|_| self.guard.serve_metadata(Instant::now()));
        let reply = match served {
            Some(data) => MetadataMessage::Data {
                piece,
                total_size: info.len() as u64,
                data: info.slice_ref(data),
            },
            None => MetadataMessage::Reject { piece },
        };
        self.send_extended(ExtendedMessage::Metadata(reply), conn)
            .await?;
        // Out once the messages that arrived with the request are
        // read: one write for a batch of requests, not one each.
        self.flush_at = Some(Instant::now());
        Ok(())
    }

    /// Passes the peer's PEX additions (at most [`PEX_MAX_ADDED`] of each
    /// address family, so IPv4 ones cannot crowd out IPv6 ones) to the
    /// torrent.
    pub(super) async fn on_pex(&mut self, pex: &PexMessage) -> Result<(), PeerError> {
        let (v4, v6): (Vec<_>, Vec<_>) =
            pex.added.iter().map(|p| p.addr).partition(|a| a.is_ipv4());
        let added = v4
            .into_iter()
            .take(PEX_MAX_ADDED)
            .chain(v6.into_iter().take(PEX_MAX_ADDED))
            .collect();
        self.emit(PeerEvent::Pex {
            addr: self.addr,
            added,
        })
        .await
    }

    /// Queues an extension message if the peer supports it.
    pub(super) async fn send_extended(
        &mut self,
        msg: ExtendedMessage,
        conn: &mut Conn,
    ) -> Result<(), PeerError> {
        match msg.encode_parts(&self.ext) {
            Ok((id, body)) => {
                conn.feed(Message::Extended {
                    id,
                    payload: Bytes::from(body),
                })
                .await?;
            }
            Err(e) => log::trace!("{} not sent: {e}", self.tag),
        }
        Ok(())
    }
}
