//! The peer actor's Fast-extension (BEP 6) messages: have-all/have-none in
//! place of the bitfield, our allowed-fast set, requests refused with a
//! reject (choked, queue full, piece not had, cancelled) instead of in
//! silence, the peer's rejects checked against our requests, its
//! allowed-fast pieces and suggestions. The rules are in `peer::fast` (pure);
//! here they meet the socket.

use std::time::Instant;

use bytes::Bytes;
use futures::SinkExt;

use crate::peer::actor::{Conn, PeerActor};
use crate::peer::fast::Fast;
use crate::peer::upload::validate_request;
use crate::peer::{PeerError, PeerEvent};
use crate::types::BlockInfo;
use crate::wire::Message;

impl PeerActor {
    /// After the handshakes: we always set the bit; the extension is in
    /// force when the peer did too.
    pub(super) fn negotiate_fast(&mut self, theirs: bool) {
        let meta = &self.params.meta;
        let pieces = u32::try_from(meta.piece_count()).unwrap_or(u32::MAX);
        let (ip, hash) = (self.addr.ip(), &meta.info_hash);
        self.fast = Fast::negotiate(true, theirs, hash, ip, pieces, meta.piece_length);
        self.guard.set_fast(self.fast.enabled());
    }

    /// Our pieces, as the first message after the handshake: have-all or
    /// have-none when the extension is in force and they apply, else the
    /// bitfield (none when we have nothing); then our allowed-fast pieces.
    pub(super) async fn send_have_set(&mut self, conn: &mut Conn) -> Result<(), PeerError> {
        let count = self.have.count_ones();
        let msg = if self.fast.enabled() && self.have.is_full() {
            self.fast.counters.have_all_sent += 1;
            log::debug!("{} -> have-all", self.tag);
            Message::HaveAll
        } else if self.fast.enabled() && count == 0 {
            self.fast.counters.have_none_sent += 1;
            log::debug!("{} -> have-none", self.tag);
            Message::HaveNone
        } else if count > 0 {
            Message::Bitfield(Bytes::copy_from_slice(self.have.as_bytes()))
        } else {
            return Ok(());
        };
        conn.feed(msg).await?;
        self.send_allowed_fast(conn).await
    }

    /// Tells the peer of the pieces of its allowed-fast set that we have
    /// and it was not told of yet (at most the set's size per connection).
    pub(super) async fn send_allowed_fast(&mut self, conn: &mut Conn) -> Result<(), PeerError> {
        if !self.fast.enabled() {
            return Ok(());
        }
        let have = &self.have;
        for piece in self.fast.allowed_to_send(|p| have.get(p as usize)) {
            conn.feed(Message::AllowedFast(piece)).await?;
        }
        Ok(())
    }

    /// A request from the peer: queued when we may serve it; otherwise
    /// rejected with the extension, dropped without it (BEP 3).
    pub(super) async fn on_request(
        &mut self,
        block: BlockInfo,
        conn: &mut Conn,
    ) -> Result<(), PeerError> {
        let piece = block.piece as usize;
        let lacking = piece < self.have.len() && !self.have.get(piece);
        if !(self.fast.enabled() && lacking) {
            // Out of range or malformed: a protocol error either way.
            validate_request(block, &self.params.meta, &self.have)?;
        }
        let servable = !lacking && (!self.am_choking || self.fast.serve_choked(block));
        let queued = match servable {
            true if self.fast.enabled() => self.uploads.push(block).unwrap_or(false),
            // A flood still ends a peer without the extension.
            true => self.uploads.push(block)?,
            false => false,
        };
        if !queued {
            log::trace!("{} request not queued: {block:?}", self.tag);
            self.guard.wasted_request(Instant::now());
            if self.fast.enabled() && !self.uploads.contains(block) {
                self.reject(block, conn).await?;
            }
        }
        Ok(())
    }

    /// A cancel from the peer: with the extension a request still queued is
    /// answered with a reject (BEP 6: every request gets one answer).
    pub(super) async fn on_cancel(
        &mut self,
        block: BlockInfo,
        conn: &mut Conn,
    ) -> Result<(), PeerError> {
        if self.uploads.cancel(block) && self.fast.enabled() {
            self.reject(block, conn).await?;
        }
        Ok(())
    }

    /// Queues a reject; it goes out once the messages that arrived with the
    /// request are read.
    async fn reject(&mut self, block: BlockInfo, conn: &mut Conn) -> Result<(), PeerError> {
        log::trace!("{} -> reject {block:?}", self.tag);
        self.fast.counters.rejects_sent += 1;
        conn.feed(Message::RejectRequest(block)).await?;
        self.flush_at = Some(Instant::now());
        Ok(())
    }

    /// We choke the peer: without the extension its queued requests are
    /// dropped; with it they are rejected, after the choke, except those for
    /// allowed-fast pieces we still serve.
    pub(super) async fn choke_uploads(&mut self, conn: &mut Conn) -> Result<(), PeerError> {
        if !self.fast.enabled() {
            self.uploads.clear();
            return Ok(());
        }
        for block in self.uploads.take_all() {
            if self.fast.serve_choked(block) {
                // Re-queued into an empty queue of at most the old size.
                self.uploads.push(block)?;
            } else {
                self.reject(block, conn).await?;
            }
        }
        Ok(())
    }

    /// Blocks read for the peer that may still go out: all while it is
    /// unchoked; once choked, with the extension the allowed-fast ones (the
    /// others are rejected), without it none.
    pub(super) async fn still_servable(
        &mut self,
        blocks: Vec<(BlockInfo, Bytes)>,
        conn: &mut Conn,
    ) -> Result<Vec<(BlockInfo, Bytes)>, PeerError> {
        if !self.am_choking {
            return Ok(blocks);
        }
        if !self.fast.enabled() {
            return Ok(Vec::new());
        }
        let mut kept = Vec::with_capacity(blocks.len());
        for (block, data) in blocks {
            if self.fast.serve_choked(block) {
                kept.push((block, data));
            } else {
                self.reject(block, conn).await?;
            }
        }
        Ok(kept)
    }

    /// A Fast-extension message the guard let through (have-all and
    /// have-none came as bitfields).
    pub(super) async fn on_fast(&mut self, msg: Message) -> Result<(), PeerError> {
        let addr = self.addr;
        match msg {
            Message::RejectRequest(block) => {
                self.fast.rejected(block)?;
                log::trace!("{} <- reject {block:?}", self.tag);
                self.emit(PeerEvent::Rejected { addr, block }).await
            }
            Message::AllowedFast(piece) => {
                if !self.fast.allowed_in(piece) {
                    return Ok(());
                }
                log::debug!("{} <- allowed-fast {piece}", self.tag);
                self.emit(PeerEvent::AllowedFast { addr, piece }).await
            }
            Message::Suggest(piece) => {
                self.fast.counters.suggests_received += 1;
                log::trace!("{} <- suggest {piece} (ignored)", self.tag);
                Ok(())
            }
            _ => Ok(()),
        }
    }

    /// Counts a have-all or have-none from the peer (before the guard turns
    /// it into a bitfield).
    pub(super) fn count_have_set(&mut self, msg: &Message) {
        let counters = &mut self.fast.counters;
        match msg {
            Message::HaveAll => counters.have_all_received += 1,
            Message::HaveNone => counters.have_none_received += 1,
            _ => return,
        }
        log::debug!("{} <- {msg:?}", self.tag);
    }
}
