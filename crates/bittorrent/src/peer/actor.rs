//! The peer actor's connection loop.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::{FutureExt, SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::extension::{
    ExtendedHandshake, ExtendedMessage, Extension, ExtensionIds, PexMessage, HANDSHAKE_ID,
};
use crate::peer::actor::blocks::{Buffers, PendingRead};
use crate::peer::fast::Fast;
use crate::peer::guard::{Guard, Verdict};
use crate::peer::handshake;
use crate::peer::transport::PeerStream;
use crate::peer::upload::UploadQueue;
use crate::peer::upload::MAX_QUEUED_REQUESTS;
use crate::peer::{DisconnectReason, Origin, PeerCommand, PeerError, PeerEvent, PeerParams};
use crate::ratelimit::{LinkLimits, Pause};
use crate::types::BlockInfo;
use crate::wire::{Handshake, Message, MessageCodec};

mod blocks;
mod extended;
mod fast;
mod limit;
#[cfg(test)]
mod sendfile_tests;

/// Bytes buffered for writing before a flush is forced.
const WRITE_BUFFER: usize = 512 * 1024;
/// Store reads (of up to 256 KiB) in flight per peer we upload to.
const READS_IN_FLIGHT: usize = 2;
/// Messages taken at most in one go once one arrived (see
/// `PeerActor::read_arrived`).
const READ_BATCH: usize = 64;
/// A peer silent this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// We send a keep-alive after this long without sending anything.
const KEEP_ALIVE: Duration = Duration::from_secs(60);
/// Our `have`s wait at most this long to go out with other messages: one
/// write (and one wake-up of the peer) per batch rather than per verified
/// piece, which with small pieces cost every peer a write a millisecond.
const HAVE_DELAY: Duration = Duration::from_millis(50);

type Conn = Framed<PeerStream, MessageCodec>;

/// Runs one connection to its end, then reports why it ended.
pub(crate) async fn run(
    addr: SocketAddr,
    origin: Origin,
    params: PeerParams,
    commands: mpsc::Receiver<PeerCommand>,
    events: mpsc::Sender<PeerEvent>,
    cancel: CancellationToken,
) {
    let tag = format!("[{} {addr}]", params.meta.info_hash.short());
    let have = params.have.clone();
    let mut ext = ExtensionIds::new();
    if !params.pex {
        ext.set_local(Extension::Pex, 0);
    }
    let info_len = params.meta.info_bytes.len();
    let guard = Guard::new(params.meta.piece_count(), info_len, Instant::now());
    let limits = params.connector.limits().clone();
    let mut actor = PeerActor {
        limits,
        read_pause: Pause::default(),
        send_pause: Pause::default(),
        guard,
        ext,
        peer_extensions: false,
        ext_handshake_seen: false,
        pending_pex: None,
        addr,
        tag,
        params,
        events,
        cancel,
        commands,
        have,
        am_choking: true,
        uploads: UploadQueue::default(),
        buffers: Buffers::new(READS_IN_FLIGHT),
        flush_at: None,
        fast: Fast::default(),
    };
    let reason = match actor.run(origin).await {
        Ok(()) => DisconnectReason::Local,
        Err(e) => DisconnectReason::Failed(e),
    };
    log::debug!("{} disconnected: {reason}", actor.tag);
    if actor.fast.enabled() {
        log::debug!("{} fast extension: {}", actor.tag, actor.fast.counters);
    }
    // A torrent that is shutting down drains its mailbox, so this never hangs.
    let _ = actor
        .events
        .send(PeerEvent::Disconnected { addr, reason })
        .await;
}

struct PeerActor {
    addr: SocketAddr,
    tag: String,
    params: PeerParams,
    events: mpsc::Sender<PeerEvent>,
    cancel: CancellationToken,
    commands: mpsc::Receiver<PeerCommand>,
    /// Our verified pieces (what we may serve).
    have: Bitfield,
    /// Whether we choke the peer (requests are refused while we do).
    am_choking: bool,
    /// The peer's requests waiting to be served.
    uploads: UploadQueue,
    /// Reused buffers the store reads blocks into.
    buffers: Buffers,
    /// When the messages queued without a flush (`have`s, metadata replies)
    /// must go out.
    flush_at: Option<Instant>,
    /// What the peer's messages may cost; only news goes to the torrent.
    guard: Guard,
    /// Extension ids: ours (advertised) and the peer's (from its handshake).
    ext: ExtensionIds,
    /// The peer set the BEP 10 bit in its handshake.
    peer_extensions: bool,
    /// The peer's extended handshake has arrived.
    ext_handshake_seen: bool,
    /// A PEX message that came before the peer's extended handshake said
    /// whether it takes PEX; sent (or dropped) once it does.
    pending_pex: Option<PexMessage>,
    /// The Fast extension (BEP 6): whether in force, allowed-fast sets, our
    /// requests awaiting an answer, counters.
    fast: Fast,
    /// The torrent's and session's rate limits.
    limits: LinkLimits,
    /// The socket is not read meanwhile (download limits in debt).
    read_pause: Pause,
    /// No block is sent meanwhile (upload limits in debt).
    send_pause: Pause,
}

impl PeerActor {
    async fn run(&mut self, origin: Origin) -> Result<(), PeerError> {
        let cancel = self.cancel.clone();
        let conn = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            conn = tokio::time::timeout(self.params.connect_timeout, self.handshake(origin)) => {
                conn.map_err(|_| PeerError::HandshakeTimeout)??
            }
        };
        self.message_loop(conn).await
    }

    /// Completes the handshake (dialling first for an outbound connection),
    /// and switches to the message codec keeping any bytes that arrived after
    /// the handshake.
    async fn handshake(&mut self, origin: Origin) -> Result<Conn, PeerError> {
        let (info_hash, our_id) = (self.params.meta.info_hash, self.params.our_id);
        let ours = Handshake::new(info_hash, our_id)
            .with_extensions()
            .with_fast();
        let (framed, theirs) = match origin {
            Origin::Outbound => {
                let connector = self.params.connector.clone();
                let initiate = |stream| handshake::initiate(stream, ours.clone());
                connector.open_with(self.addr, info_hash, initiate).await?.0
            }
            Origin::Inbound {
                mut conn,
                handshake: theirs,
            } => {
                handshake::respond(&mut conn, ours).await?;
                (conn, theirs)
            }
        };
        handshake::check(&theirs, info_hash, our_id)?;
        let stream = framed.get_ref();
        let rc4 = if stream.is_encrypted() { ", RC4" } else { "" };
        log::debug!(
            "{} handshake ok over {}{rc4}, peer id {:?}",
            self.tag,
            stream.kind(),
            theirs.peer_id
        );
        self.peer_extensions = theirs.supports_extensions();
        self.negotiate_fast(theirs.supports_fast());
        self.emit(PeerEvent::Connected {
            addr: self.addr,
            peer_id: theirs.peer_id,
        })
        .await?;
        let piece_count = self.params.meta.piece_count();
        let max_frame = MessageCodec::DEFAULT_MAX_FRAME_LEN.max(piece_count / 8 + 16);
        let mut conn = handshake::into_messages(framed, max_frame);
        // Uploads send runs of up to 256 KiB: let a whole run go out in one write.
        conn.set_backpressure_boundary(WRITE_BUFFER);
        Ok(conn)
    }

    async fn message_loop(&mut self, mut conn: Conn) -> Result<(), PeerError> {
        self.send_opening(&mut conn).await?;
        let mut last_recv = Instant::now();
        let mut last_send = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        // Runs of blocks got ready for the peer, in request order: up to
        // READS_IN_FLIGHT of up to 256 KiB each, so reading the next run
        // overlaps sending this one (with `send_from_files`, on plaintext
        // TCP, sent from the files).
        let mut reads: VecDeque<PendingRead> = VecDeque::new();
        let zero_copy = self.params.send_from_files && conn.get_ref().can_send_files();
        if zero_copy {
            log::debug!("{} uploads go out with sendfile", self.tag);
        }
        let cancel = self.cancel.clone();
        loop {
            self.start_reads(&mut reads, zero_copy);
            // A peer in debt with its budget, or with the download limits,
            // is not read from meanwhile; with the upload limits, not sent to.
            let now = Instant::now();
            let paused = self.read_paused(now);
            let sending = self.send_paused(now);
            let wake = match (paused, sending) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let resume = tokio::time::Instant::from_std(wake.unwrap_or(now));
            let flush_at = tokio::time::Instant::from_std(self.flush_at.unwrap_or(now));
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                _ = tokio::time::sleep_until(resume), if wake.is_some() => {}
                _ = tokio::time::sleep_until(flush_at), if self.flush_at.is_some() => {
                    self.flush_at = None;
                    conn.flush().await?;
                }
                frame = conn.next(), if paused.is_none() => {
                    let msg = frame.ok_or(PeerError::Closed)??;
                    last_recv = Instant::now();
                    self.on_message(msg, &mut conn).await?;
                    self.read_arrived(&mut conn).await?;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        self.on_command(cmd, &mut conn).await?;
                        last_send = Instant::now();
                    }
                    // The torrent dropped our handle: it is done with us.
                    None => return Ok(()),
                },
                read = async { reads.front_mut().expect("guarded").await },
                    if !reads.is_empty() && sending.is_none() =>
                {
                    reads.pop_front();
                    let read = read.map_err(PeerError::ReadTask)??;
                    if self.send_read(read, reads.is_empty(), &mut conn).await? {
                        last_send = Instant::now();
                    }
                }
                _ = tick.tick() => self.on_tick(&mut conn, last_recv, &mut last_send).await?,
            }
        }
    }

    /// Sends the opening messages (our extended handshake, our bitfield) and
    /// flushes them, whatever follows (or does not).
    async fn send_opening(&mut self, conn: &mut Conn) -> Result<(), PeerError> {
        if self.peer_extensions {
            let payload = Bytes::from(self.extended_handshake().encode());
            conn.feed(Message::Extended {
                id: HANDSHAKE_ID,
                payload,
            })
            .await?;
        }
        self.send_have_set(conn).await?;
        conn.flush().await?;
        Ok(())
    }

    /// Our BEP 10 handshake: extension ids, client, port, queue depth,
    /// metadata size and the address we see the peer at.
    fn extended_handshake(&self) -> ExtendedHandshake {
        let mut hs = ExtendedHandshake::new(&self.ext);
        hs.v = Some(concat!("bittorrent-rs ", env!("CARGO_PKG_VERSION")).to_owned());
        hs.p = Some(self.params.listen_port).filter(|&p| p != 0);
        hs.reqq = Some(MAX_QUEUED_REQUESTS as u32);
        let info_len = self.params.meta.info_bytes.len() as u64;
        hs.metadata_size = Some(info_len).filter(|&n| n > 0);
        hs.yourip = Some(self.addr.ip());
        hs
    }

    /// Starts getting queued requests ready, up to [`READS_IN_FLIGHT`] runs
    /// (while we choke the peer, the queue holds only the allowed-fast
    /// requests we still serve).
    fn start_reads(&mut self, reads: &mut VecDeque<PendingRead>, zero_copy: bool) {
        while reads.len() < READS_IN_FLIGHT {
            let Some(read) = self.start_read(zero_copy) else {
                break;
            };
            reads.push_back(read);
        }
    }

    /// Drops a peer silent for [`IDLE_TIMEOUT`]; sends a keep-alive when we
    /// sent nothing for [`KEEP_ALIVE`].
    async fn on_tick(
        &mut self,
        conn: &mut Conn,
        last_recv: Instant,
        last_send: &mut Instant,
    ) -> Result<(), PeerError> {
        let now = Instant::now();
        if now.duration_since(last_recv) >= IDLE_TIMEOUT {
            return Err(PeerError::Idle(IDLE_TIMEOUT.as_secs()));
        }
        if now.duration_since(*last_send) >= KEEP_ALIVE {
            log::trace!("{} keep-alive", self.tag);
            conn.send(Message::KeepAlive).await?;
            *last_send = now;
        }
        Ok(())
    }

    /// Takes the messages that already arrived (up to [`READ_BATCH`], within
    /// the budget) before acting on any of them: a request cancelled in the
    /// same segment costs no store read and no upload.
    async fn read_arrived(&mut self, conn: &mut Conn) -> Result<(), PeerError> {
        for _ in 0..READ_BATCH {
            if self.read_paused(Instant::now()).is_some() {
                break;
            }
            let Some(frame) = conn.next().now_or_never() else {
                break;
            };
            let msg = frame.ok_or(PeerError::Closed)??;
            self.on_message(msg, conn).await?;
        }
        Ok(())
    }

    /// Asks the guard about a message, then acts on it: only news reaches
    /// the torrent.
    async fn on_message(&mut self, msg: Message, conn: &mut Conn) -> Result<(), PeerError> {
        log::trace!("{} <- {}", self.tag, describe(&msg));
        let addr = self.addr;
        self.count_have_set(&msg);
        if let Message::Piece { data, .. } = &msg {
            self.charge_received(data.len());
        }
        match self.guard.inbound(&msg, Instant::now())? {
            Verdict::Pass => self.on_passed(msg, conn).await,
            Verdict::Drop => Ok(()),
            Verdict::Bitfield(bitfield) => self.emit(PeerEvent::Bitfield { addr, bitfield }).await,
            Verdict::Added(pieces) => {
                for piece in pieces {
                    self.emit(PeerEvent::Have { addr, piece }).await?;
                }
                Ok(())
            }
        }
    }

    /// Acts on a message the guard let through.
    async fn on_passed(&mut self, msg: Message, conn: &mut Conn) -> Result<(), PeerError> {
        let addr = self.addr;
        let event = match msg {
            Message::Choke => PeerEvent::Choked {
                addr,
                fast: self.fast.enabled(),
            },
            Message::Unchoke => PeerEvent::Unchoked { addr },
            Message::Interested => PeerEvent::Interest {
                addr,
                interested: true,
            },
            Message::NotInterested => PeerEvent::Interest {
                addr,
                interested: false,
            },
            Message::Have(piece) => PeerEvent::Have { addr, piece },
            Message::Piece { piece, begin, data } => {
                self.check_piece(piece)?;
                let block = BlockInfo {
                    piece,
                    begin,
                    length: data.len() as u32,
                };
                self.fast.block_arrived(block);
                PeerEvent::Block { addr, block, data }
            }
            Message::Request(block) => return self.on_request(block, conn).await,
            Message::Cancel(block) => return self.on_cancel(block, conn).await,
            Message::Extended { id, payload } => return self.on_extended(id, payload, conn).await,
            Message::Unknown { id, .. } => {
                log::trace!("{} ignoring message id {id}", self.tag);
                return Ok(());
            }
            Message::KeepAlive | Message::Port(_) | Message::Bitfield(_) => return Ok(()),
            // The guard refused them without the extension.
            fast => return self.on_fast(fast).await,
        };
        self.emit(event).await
    }

    /// Writes `cmd` and whatever else is already queued, then flushes once
    /// (`have`s alone wait up to [`HAVE_DELAY`] for company).
    async fn on_command(&mut self, cmd: PeerCommand, conn: &mut Conn) -> Result<(), PeerError> {
        let mut urgent = self.feed(conn, cmd).await?;
        while let Ok(cmd) = self.commands.try_recv() {
            urgent |= self.feed(conn, cmd).await?;
        }
        if urgent {
            self.flush_at = None;
            conn.flush().await?;
        } else if self.flush_at.is_none() {
            self.flush_at = Some(Instant::now() + HAVE_DELAY);
        }
        Ok(())
    }

    /// Applies one command and queues its message(s) without flushing.
    /// Returns whether they must go out now (anything but a `have`).
    async fn feed(&mut self, conn: &mut Conn, cmd: PeerCommand) -> Result<bool, PeerError> {
        log::trace!("{} -> {cmd:?}", self.tag);
        let urgent = !matches!(cmd, PeerCommand::Have(_));
        match cmd {
            PeerCommand::Request(blocks) => {
                self.fast.sent_requests(&blocks);
                for block in blocks {
                    conn.feed(Message::Request(block)).await?;
                }
            }
            PeerCommand::Cancel(block) => {
                self.fast.sent_cancel(block);
                conn.feed(Message::Cancel(block)).await?;
            }
            PeerCommand::Have(piece) => {
                self.have.set(piece as usize);
                conn.feed(Message::Have(piece)).await?;
                self.send_allowed_fast(conn).await?;
            }
            PeerCommand::Interested(true) => conn.feed(Message::Interested).await?,
            PeerCommand::Interested(false) => conn.feed(Message::NotInterested).await?,
            // PEX is off (the session's setting, or a private torrent).
            PeerCommand::Pex(_) if !self.params.pex => {}
            PeerCommand::Pex(pex) => {
                if self.peer_extensions && !self.ext_handshake_seen {
                    // Keep the latest until we know whether the peer takes PEX.
                    self.pending_pex = Some(pex);
                } else {
                    self.send_extended(ExtendedMessage::Pex(pex), conn).await?;
                }
            }
            PeerCommand::Choke(choke) => {
                if choke != self.am_choking {
                    self.am_choking = choke;
                    if choke {
                        // BEP 6: the choke first, then the rejects.
                        conn.feed(Message::Choke).await?;
                        self.choke_uploads(conn).await?;
                    } else {
                        conn.feed(Message::Unchoke).await?;
                    }
                }
            }
        }
        Ok(urgent)
    }

    fn check_piece(&self, piece: u32) -> Result<(), PeerError> {
        if (piece as usize) < self.params.meta.piece_count() {
            Ok(())
        } else {
            Err(PeerError::PieceOutOfRange(piece))
        }
    }

    /// Reports to the torrent, waiting if its mailbox is full (backpressure),
    /// but never past our own cancellation.
    async fn emit(&mut self, event: PeerEvent) -> Result<(), PeerError> {
        tokio::select! {
            sent = self.events.send(event) => sent.map_err(|_| PeerError::Closed),
            _ = self.cancel.cancelled() => Err(PeerError::Closed),
        }
    }
}

fn describe(msg: &Message) -> String {
    match msg {
        Message::Piece { piece, begin, data } => {
            format!("piece {piece} @{begin} ({} bytes)", data.len())
        }
        Message::Bitfield(b) => format!("bitfield ({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::AsyncWriteExt;

    use crate::metainfo::MetaInfo;
    use crate::peer::PeerHandle;
    use crate::types::PeerId;
    use tokio::net::{TcpListener, TcpStream};

    /// Our peer actor for a torrent of 8 pieces of 16 KiB, of which we have
    /// `have`, dialling a remote end driven by the test.
    async fn connect(have: &[usize]) -> (PeerHandle, Framed<TcpStream, MessageCodec>) {
        let meta = Arc::new(MetaInfo::for_test("x", 16384, &[("x", 8 * 16384, false)]));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut bits = Bitfield::new(8);
        for &piece in have {
            bits.set(piece);
        }
        let params = PeerParams::for_test(&meta, bits);
        let (events, mut events_rx) = mpsc::channel(16);
        let cancel = CancellationToken::new();
        let (handle, task) = PeerHandle::start(addr, Origin::Outbound, params, events, cancel);
        tokio::spawn(task);
        tokio::spawn(async move { while events_rx.recv().await.is_some() {} });
        let (stream, _) = listener.accept().await.unwrap();
        let (mut hs, _) = handshake::receive(stream).await.unwrap();
        let theirs = Handshake::new(meta.info_hash, PeerId([2; 20]));
        handshake::respond(&mut hs, theirs).await.unwrap();
        (handle, handshake::into_messages(hs, 1 << 16))
    }

    #[tokio::test]
    async fn haves_wait_for_company_but_never_past_the_delay() {
        let (handle, mut conn) = connect(&[]).await;
        // Haves alone go out together, once the delay is over.
        let start = Instant::now();
        handle.send(PeerCommand::Have(3)).unwrap();
        handle.send(PeerCommand::Have(5)).unwrap();
        assert_eq!(conn.next().await.unwrap().unwrap(), Message::Have(3));
        assert!(start.elapsed() >= HAVE_DELAY, "{:?}", start.elapsed());
        assert_eq!(conn.next().await.unwrap().unwrap(), Message::Have(5));
        // A have queued before another message leaves with it, in order.
        handle.send(PeerCommand::Have(6)).unwrap();
        handle.send(PeerCommand::Interested(true)).unwrap();
        assert_eq!(conn.next().await.unwrap().unwrap(), Message::Have(6));
        assert_eq!(conn.next().await.unwrap().unwrap(), Message::Interested);
    }

    #[tokio::test]
    async fn a_request_cancelled_in_the_same_segment_is_never_served() {
        let (handle, mut conn) = connect(&[0, 1]).await;
        assert!(matches!(conn.next().await, Some(Ok(Message::Bitfield(_)))));
        handle.send(PeerCommand::Choke(false)).unwrap();
        assert_eq!(conn.next().await.unwrap().unwrap(), Message::Unchoke);
        let block = |piece| BlockInfo {
            piece,
            begin: 0,
            length: 16384,
        };
        // Request, cancel, request: one write, read by us in one go.
        let mut codec = MessageCodec::default();
        let mut bytes = bytes::BytesMut::new();
        for msg in [
            Message::Request(block(0)),
            Message::Cancel(block(0)),
            Message::Request(block(1)),
        ] {
            tokio_util::codec::Encoder::encode(&mut codec, msg, &mut bytes).unwrap();
        }
        conn.get_mut().write_all(&bytes).await.unwrap();
        let Some(Ok(Message::Piece { piece, .. })) = conn.next().await else {
            panic!("a block expected");
        };
        assert_eq!(piece, 1, "the cancelled request was served");
    }
}
