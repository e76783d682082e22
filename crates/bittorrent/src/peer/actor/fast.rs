//! The peer actor's Fast-extension (BEP 6) messages: have-all/have-none in
//! place of the bitfield, our allowed-fast set, requests refused with a
//! reject (choked, queue full, piece not had, cancelled) instead of in
//! silence, the peer's rejects checked against our requests, its
//! allowed-fast pieces and suggestions. The rules are in `peer::fast` (pure);
//! here they meet the socket.

use std::ops::Range;
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
        let pieces = self.guard.peer_pieces();
        let servable = !lacking && (!self.am_choking || self.fast.serve_choked(block, pieces));
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
    /// allowed-fast pieces we still serve (to a starting peer).
    pub(super) async fn choke_uploads(&mut self, conn: &mut Conn) -> Result<(), PeerError> {
        if !self.fast.enabled() {
            self.uploads.clear();
            return Ok(());
        }
        let pieces = self.guard.peer_pieces();
        for block in self.uploads.take_all() {
            if self.fast.serve_choked(block, pieces) {
                // Re-queued into an empty queue of at most the old size.
                self.uploads.push(block)?;
            } else {
                self.reject(block, conn).await?;
            }
        }
        Ok(())
    }

    /// The runs of blocks read for the peer that may still go out: the
    /// whole run while it is unchoked; once choked, with the extension the
    /// allowed-fast blocks (the others are rejected), in contiguous runs
    /// sliced from the read's buffer; without it none.
    pub(super) async fn still_servable(
        &mut self,
        blocks: Vec<BlockInfo>,
        len: usize,
        conn: &mut Conn,
    ) -> Result<Vec<(Vec<BlockInfo>, Range<usize>)>, PeerError> {
        if !self.am_choking {
            return Ok(vec![(blocks, 0..len)]);
        }
        if !self.fast.enabled() {
            return Ok(Vec::new());
        }
        let pieces = self.guard.peer_pieces();
        let mut runs = Vec::new();
        let mut run: Vec<BlockInfo> = Vec::new();
        let (mut start, mut offset) = (0usize, 0usize);
        for &block in &blocks {
            let end = offset + block.length as usize;
            // Charged when queued (a read started before the choke is not:
            // at most `READS_IN_FLIGHT` runs).
            if end <= len && self.fast.may_serve_choked(block.piece, pieces) {
                if run.is_empty() {
                    start = offset;
                }
                run.push(block);
            } else {
                if !run.is_empty() {
                    runs.push((std::mem::take(&mut run), start..offset));
                }
                self.reject(block, conn).await?;
            }
            offset = end;
        }
        if !run.is_empty() {
            runs.push((run, start..offset));
        }
        Ok(runs)
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use futures::StreamExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc;
    use tokio_util::codec::{Encoder, Framed};
    use tokio_util::sync::CancellationToken;

    use crate::bitfield::Bitfield;
    use crate::metainfo::MetaInfo;
    use crate::peer::fast::{allowed_fast_set, ALLOWED_FAST_K};
    use crate::peer::{handshake, Origin, PeerCommand, PeerHandle, PeerParams};
    use crate::peer::{DisconnectReason, PeerError, PeerEvent};
    use crate::types::{BlockInfo, PeerId};
    use crate::wire::{Handshake, Message, MessageCodec};

    /// 64 pieces of 64 KiB (4 blocks each).
    const PIECES: usize = 64;
    const PIECE_LEN: u32 = 65536;

    struct Remote {
        handle: PeerHandle,
        conn: Framed<TcpStream, MessageCodec>,
        events: mpsc::Receiver<PeerEvent>,
    }

    fn meta() -> Arc<MetaInfo> {
        let total = PIECES as u64 * u64::from(PIECE_LEN);
        Arc::new(MetaInfo::for_test("x", PIECE_LEN, &[("x", total, false)]))
    }

    /// Our allowed-fast set for a peer at 127.0.0.1.
    fn our_set() -> Vec<u32> {
        let ip = std::net::Ipv4Addr::LOCALHOST.into();
        allowed_fast_set(&meta().info_hash, ip, PIECES as u32, ALLOWED_FAST_K)
    }

    /// Our peer actor, with `have`, dialling a remote end driven by the
    /// test, which sets the Fast bit when `fast`.
    async fn connect(have: &[usize], fast: bool) -> Remote {
        let meta = meta();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut bits = Bitfield::new(PIECES);
        for &piece in have {
            bits.set(piece);
        }
        let params = PeerParams::for_test(&meta, bits);
        let (events_tx, events) = mpsc::channel(1024);
        let cancel = CancellationToken::new();
        let (handle, task) = PeerHandle::start(addr, Origin::Outbound, params, events_tx, cancel);
        tokio::spawn(task);
        let (stream, _) = listener.accept().await.unwrap();
        let (mut hs, ours) = handshake::receive(stream).await.unwrap();
        assert!(ours.supports_fast(), "we always set the bit");
        let mut theirs = Handshake::new(meta.info_hash, PeerId([2; 20]));
        if fast {
            theirs = theirs.with_fast();
        }
        handshake::respond(&mut hs, theirs).await.unwrap();
        let conn = handshake::into_messages(hs, 1 << 18);
        Remote {
            handle,
            conn,
            events,
        }
    }

    impl Remote {
        async fn next(&mut self) -> Message {
            let next = tokio::time::timeout(Duration::from_secs(10), self.conn.next());
            next.await
                .expect("a message")
                .expect("open")
                .expect("valid")
        }

        async fn send(&mut self, msgs: &[Message]) {
            let mut bytes = bytes::BytesMut::new();
            for msg in msgs {
                MessageCodec::default()
                    .encode(msg.clone(), &mut bytes)
                    .unwrap();
            }
            self.conn.get_mut().write_all(&bytes).await.unwrap();
        }

        /// The reason of the disconnect, skipping other events.
        async fn disconnect_reason(&mut self) -> DisconnectReason {
            loop {
                let next = tokio::time::timeout(Duration::from_secs(10), self.events.recv());
                match next.await.expect("an event").expect("open") {
                    PeerEvent::Disconnected { reason, .. } => return reason,
                    _ => continue,
                }
            }
        }
    }

    fn block(piece: u32, n: u32) -> BlockInfo {
        BlockInfo {
            piece,
            begin: n * 16384,
            length: 16384,
        }
    }

    #[tokio::test]
    async fn a_fast_peer_gets_have_all_or_have_none_and_our_allowed_fast_set() {
        let all: Vec<usize> = (0..PIECES).collect();
        let mut r = connect(&all, true).await;
        assert_eq!(r.next().await, Message::HaveAll);
        let mut allowed = Vec::new();
        for _ in 0..ALLOWED_FAST_K {
            let Message::AllowedFast(piece) = r.next().await else {
                panic!("allowed-fast expected");
            };
            allowed.push(piece);
        }
        assert_eq!(allowed, our_set());
        let mut r = connect(&[], true).await;
        assert_eq!(r.next().await, Message::HaveNone);
        // A piece of the set, once verified, is offered with its have.
        let piece = our_set()[3];
        r.handle.send(PeerCommand::Have(piece)).unwrap();
        assert_eq!(r.next().await, Message::Have(piece));
        assert_eq!(r.next().await, Message::AllowedFast(piece));
        // Without the peer's bit: the bitfield, as before.
        let mut r = connect(&all, false).await;
        assert!(matches!(r.next().await, Message::Bitfield(_)));
    }

    #[tokio::test]
    async fn requests_we_do_not_serve_are_rejected_and_allowed_ones_served_while_choked() {
        // We have 4 pieces of the set and 4 others.
        let set = our_set();
        let allowed = &set[..4];
        let others: Vec<u32> = (0..).filter(|p| !set.contains(p)).take(4).collect();
        let have: Vec<usize> = allowed.iter().chain(&others).map(|&p| p as usize).collect();
        let mut r = connect(&have, true).await;
        assert!(matches!(r.next().await, Message::Bitfield(_)));
        for &piece in allowed {
            assert_eq!(r.next().await, Message::AllowedFast(piece));
        }
        let choked = others[0];
        let lacking = block(set[5], 0);
        r.send(&[
            Message::Request(block(choked, 0)),
            Message::Request(lacking),
        ])
        .await;
        assert_eq!(r.next().await, Message::RejectRequest(block(choked, 0)));
        assert_eq!(r.next().await, Message::RejectRequest(lacking));
        let piece = allowed[0];
        r.send(&[Message::Request(block(piece, 1))]).await;
        let Message::Piece {
            piece: got, begin, ..
        } = r.next().await
        else {
            panic!("an allowed-fast block is served while choked");
        };
        assert_eq!((got, begin), (piece, 16384));
        // A peer with more pieces than the set is no starter: rejected.
        let mut msgs: Vec<Message> = (0..11).map(Message::Have).collect();
        msgs.push(Message::Request(block(piece, 0)));
        r.send(&msgs).await;
        assert_eq!(r.next().await, Message::RejectRequest(block(piece, 0)));
        // A cancel of a queued request is answered with a reject.
        r.handle.send(PeerCommand::Choke(false)).unwrap();
        assert_eq!(r.next().await, Message::Unchoke);
        let late = block(choked, 2);
        r.send(&[Message::Request(late), Message::Cancel(late)])
            .await;
        assert_eq!(r.next().await, Message::RejectRequest(late));
    }

    #[tokio::test]
    async fn a_choke_answers_every_queued_request_once() {
        let all: Vec<usize> = (0..PIECES).collect();
        let mut r = connect(&all, true).await;
        assert_eq!(r.next().await, Message::HaveAll);
        let allowed = our_set();
        for _ in 0..ALLOWED_FAST_K {
            r.next().await;
        }
        r.handle.send(PeerCommand::Choke(false)).unwrap();
        assert_eq!(r.next().await, Message::Unchoke);
        let requests: Vec<BlockInfo> = (0..PIECES as u32)
            .flat_map(|p| (0..4).map(move |n| block(p, n)))
            .take(256)
            .collect();
        let msgs: Vec<Message> = requests.iter().map(|&b| Message::Request(b)).collect();
        r.send(&msgs).await;
        // Choke once the first block is out: most requests are still queued.
        assert!(matches!(r.next().await, Message::Piece { .. }));
        r.handle.send(PeerCommand::Choke(true)).unwrap();
        let mut answered = std::collections::HashSet::new();
        answered.insert(requests[0]);
        let (mut rejects, mut choked) = (0, false);
        while answered.len() < requests.len() {
            let (b, served) = match r.next().await {
                Message::Piece { piece, begin, data } => {
                    let b = BlockInfo {
                        piece,
                        begin,
                        length: data.len() as u32,
                    };
                    (b, true)
                }
                Message::RejectRequest(b) => (b, false),
                Message::Choke => {
                    choked = true;
                    continue;
                }
                other => panic!("unexpected {other:?}"),
            };
            assert!(answered.insert(b), "{b:?} answered twice");
            if served && choked {
                assert!(allowed.contains(&b.piece), "{b:?} served after the choke");
            }
            if !served {
                assert!(choked, "a reject before the choke");
                assert!(!allowed.contains(&b.piece), "allowed-fast {b:?} rejected");
                rejects += 1;
            }
        }
        assert!(rejects > 0, "the queue was drained before the choke");
    }

    #[tokio::test]
    async fn rejects_are_checked_against_our_requests() {
        let mut r = connect(&[], true).await;
        assert_eq!(r.next().await, Message::HaveNone);
        r.send(&[Message::HaveAll]).await;
        let b = block(5, 0);
        r.handle.send(PeerCommand::Request(vec![b])).unwrap();
        assert_eq!(r.next().await, Message::Request(b));
        r.send(&[Message::RejectRequest(b)]).await;
        loop {
            match r.events.recv().await.expect("open") {
                PeerEvent::Rejected { block, .. } => break assert_eq!(block, b),
                PeerEvent::Disconnected { reason, .. } => panic!("{reason}"),
                _ => continue,
            }
        }
        // The same reject again: a request never sent (any more).
        r.send(&[Message::RejectRequest(b)]).await;
        let reason = r.disconnect_reason().await;
        assert!(
            matches!(reason, DisconnectReason::Failed(PeerError::FastProtocol(_))),
            "{reason}"
        );
        // A peer without the bit may send none of the Fast messages.
        let mut r = connect(&[], false).await;
        r.send(&[Message::HaveAll]).await;
        let reason = r.disconnect_reason().await;
        assert!(
            matches!(
                reason,
                DisconnectReason::Failed(PeerError::FastNotNegotiated(14))
            ),
            "{reason}"
        );
    }
}
