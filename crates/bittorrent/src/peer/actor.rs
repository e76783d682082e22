//! The peer actor's connection loop.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::codec::{Framed, FramedParts};
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::peer::{PeerCommand, PeerError, PeerParams};
use crate::torrent::PeerEvent;
use crate::types::{BlockInfo, BLOCK_SIZE};
use crate::wire::{Handshake, HandshakeCodec, Message, MessageCodec};

/// A peer silent this long is dropped.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// We send a keep-alive after this long without sending anything.
const KEEP_ALIVE: Duration = Duration::from_secs(60);

type Conn = Framed<TcpStream, MessageCodec>;

/// Runs one outbound connection to its end, then reports why it ended.
pub(crate) async fn run(
    addr: SocketAddr,
    params: PeerParams,
    commands: mpsc::Receiver<PeerCommand>,
    events: mpsc::Sender<PeerEvent>,
    cancel: CancellationToken,
) {
    let tag = format!("[{} {addr}]", params.info_hash.short());
    let mut actor = PeerActor {
        addr,
        tag,
        params,
        events,
        cancel,
        commands,
    };
    let reason = match actor.run().await {
        Ok(()) => "closed".to_owned(),
        Err(e) => e.to_string(),
    };
    log::debug!("{} disconnected: {reason}", actor.tag);
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
}

impl PeerActor {
    async fn run(&mut self) -> Result<(), PeerError> {
        let cancel = self.cancel.clone();
        let conn = tokio::select! {
            _ = cancel.cancelled() => return Ok(()),
            conn = tokio::time::timeout(self.params.connect_timeout, self.handshake()) => {
                conn.map_err(|_| PeerError::HandshakeTimeout)??
            }
        };
        self.message_loop(conn).await
    }

    /// Connects, exchanges handshakes, and switches to the message codec
    /// keeping any bytes that arrived after the handshake.
    async fn handshake(&mut self) -> Result<Conn, PeerError> {
        let stream = TcpStream::connect(self.addr)
            .await
            .map_err(PeerError::Connect)?;
        stream.set_nodelay(true).map_err(PeerError::Connect)?;
        let mut framed = Framed::new(stream, HandshakeCodec);
        framed
            .send(Handshake::new(self.params.info_hash, self.params.our_id))
            .await?;
        let theirs = match framed.next().await {
            Some(hs) => hs?,
            None => return Err(PeerError::Closed),
        };
        if theirs.info_hash != self.params.info_hash {
            return Err(PeerError::WrongInfoHash(theirs.info_hash));
        }
        if theirs.peer_id == self.params.our_id {
            return Err(PeerError::SelfConnection);
        }
        log::debug!("{} handshake ok, peer id {:?}", self.tag, theirs.peer_id);
        self.emit(PeerEvent::Connected {
            addr: self.addr,
            peer_id: theirs.peer_id,
        })
        .await?;

        let parts = framed.into_parts();
        let max_frame = MessageCodec::DEFAULT_MAX_FRAME_LEN.max(self.params.piece_count / 8 + 16);
        let mut next = FramedParts::new::<Message>(parts.io, MessageCodec::new(max_frame));
        next.read_buf = parts.read_buf;
        next.write_buf = parts.write_buf;
        Ok(Framed::from_parts(next))
    }

    async fn message_loop(&mut self, mut conn: Conn) -> Result<(), PeerError> {
        if self.params.have.count_ones() > 0 {
            let bytes = bytes::Bytes::copy_from_slice(self.params.have.as_bytes());
            conn.send(Message::Bitfield(bytes)).await?;
        }
        let mut last_recv = Instant::now();
        let mut last_send = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let cancel = self.cancel.clone();
        loop {
            tokio::select! {
                _ = cancel.cancelled() => return Ok(()),
                frame = conn.next() => {
                    let msg = match frame {
                        Some(msg) => msg?,
                        None => return Err(PeerError::Closed),
                    };
                    last_recv = Instant::now();
                    self.on_message(msg).await?;
                }
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        self.on_command(cmd, &mut conn).await?;
                        last_send = Instant::now();
                    }
                    // The torrent dropped our handle: it is done with us.
                    None => return Ok(()),
                },
                _ = tick.tick() => {
                    let now = Instant::now();
                    if now.duration_since(last_recv) >= IDLE_TIMEOUT {
                        return Err(PeerError::Idle(IDLE_TIMEOUT.as_secs()));
                    }
                    if now.duration_since(last_send) >= KEEP_ALIVE {
                        log::trace!("{} keep-alive", self.tag);
                        conn.send(Message::KeepAlive).await?;
                        last_send = now;
                    }
                }
            }
        }
    }

    async fn on_message(&mut self, msg: Message) -> Result<(), PeerError> {
        log::trace!("{} <- {}", self.tag, describe(&msg));
        let addr = self.addr;
        let event = match msg {
            Message::KeepAlive => return Ok(()),
            Message::Choke => PeerEvent::Choked { addr },
            Message::Unchoke => PeerEvent::Unchoked { addr },
            Message::Interested => PeerEvent::Interest {
                addr,
                interested: true,
            },
            Message::NotInterested => PeerEvent::Interest {
                addr,
                interested: false,
            },
            Message::Have(piece) => {
                self.check_piece(piece)?;
                PeerEvent::Have { addr, piece }
            }
            Message::Bitfield(bytes) => {
                let bitfield = Bitfield::from_bytes(&bytes, self.params.piece_count)?;
                PeerEvent::Bitfield { addr, bitfield }
            }
            Message::Piece { piece, begin, data } => {
                self.check_piece(piece)?;
                let block = BlockInfo {
                    piece,
                    begin,
                    length: data.len() as u32,
                };
                PeerEvent::Block { addr, block, data }
            }
            Message::Request(block) => {
                // Serving comes with seeding; until then every peer stays choked
                // and its requests are dropped, as BEP 3 allows.
                if block.length > 8 * BLOCK_SIZE {
                    log::debug!("{} oversized request {block:?}", self.tag);
                }
                return Ok(());
            }
            Message::Cancel(_) | Message::Port(_) => return Ok(()),
            Message::Unknown { id, .. } => {
                log::trace!("{} ignoring message id {id}", self.tag);
                return Ok(());
            }
        };
        self.emit(event).await
    }

    /// Writes `cmd` and whatever else is already queued, then flushes once.
    async fn on_command(&mut self, cmd: PeerCommand, conn: &mut Conn) -> Result<(), PeerError> {
        feed(conn, cmd).await?;
        while let Ok(cmd) = self.commands.try_recv() {
            feed(conn, cmd).await?;
        }
        conn.flush().await?;
        Ok(())
    }

    fn check_piece(&self, piece: u32) -> Result<(), PeerError> {
        if (piece as usize) < self.params.piece_count {
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

/// Queues the message(s) for one command without flushing.
async fn feed(conn: &mut Conn, cmd: PeerCommand) -> Result<(), PeerError> {
    log::trace!("-> {cmd:?}");
    match cmd {
        PeerCommand::Request(blocks) => {
            for block in blocks {
                conn.feed(Message::Request(block)).await?;
            }
        }
        PeerCommand::Cancel(block) => conn.feed(Message::Cancel(block)).await?,
        PeerCommand::Have(piece) => conn.feed(Message::Have(piece)).await?,
        PeerCommand::Interested(true) => conn.feed(Message::Interested).await?,
        PeerCommand::Interested(false) => conn.feed(Message::NotInterested).await?,
    }
    Ok(())
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
