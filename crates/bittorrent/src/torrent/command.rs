//! Commands into the torrent actor, from its handles, readers and the session.

use std::net::SocketAddr;
use std::sync::Weak;

use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

use crate::limits::TorrentShareLimits;
use crate::peer::transport::PeerStream;
use crate::picker::{PickMode, Priority};
use crate::torrent::{PieceState, StreamParts, TorrentError, TorrentStats};
use crate::wire::{Handshake, HandshakeCodec};

/// A request from a [`TorrentHandle`](crate::torrent::TorrentHandle).
pub(crate) enum TorrentCommand {
    /// Report statistics.
    Stats {
        reply: oneshot::Sender<TorrentStats>,
    },
    /// Connect to these peers.
    AddPeers { peers: Vec<SocketAddr> },
    /// A connection accepted by the session's listener, handshake read.
    Inbound {
        addr: SocketAddr,
        /// Boxed (as the handshake): the mailbox's slots are as large as
        /// its largest command.
        conn: Box<Framed<PeerStream, HandshakeCodec>>,
        handshake: Box<Handshake>,
    },
    /// Reply once piece `piece` is verified, and make it (and a read-ahead
    /// window after it) urgent meanwhile, on behalf of streaming reader `reader`.
    /// Answers `Err` at once for a piece of skipped files only. `alive`
    /// dies with the reader, which releases its window even if its
    /// `ReaderGone` is lost.
    WaitPiece {
        piece: u32,
        reader: u64,
        alive: Weak<()>,
        reply: oneshot::Sender<Result<(), TorrentError>>,
    },
    /// A streaming reader is gone: its read-ahead window is no longer urgent.
    ReaderGone { reader: u64 },
    /// The metainfo and store, for opening a streaming reader.
    OpenParts {
        reply: oneshot::Sender<Result<StreamParts, TorrentError>>,
    },
    /// Report each file's priority.
    FilePriorities {
        reply: oneshot::Sender<Result<Vec<Priority>, TorrentError>>,
    },
    /// Change each file's priority.
    SetFilePriorities {
        priorities: Vec<Priority>,
        reply: oneshot::Sender<Result<(), TorrentError>>,
    },
    /// Change how pieces are chosen.
    SetMode { mode: PickMode },
    /// Disconnect everyone, stop announcing.
    Pause,
    /// Undo [`TorrentCommand::Pause`] (or retry after a store error).
    Resume,
    /// The torrent's own share limits.
    SetShareLimits { limits: TorrentShareLimits },
    /// Run regardless of the session's queue (and resume), or not.
    SetForceStart { force: bool },
    /// Announce to the trackers (and the DHT) now.
    Reannounce,
    /// Hash every piece again, ignoring the resume record.
    Recheck {
        reply: oneshot::Sender<Result<(), TorrentError>>,
    },
    /// Report each piece's state.
    PieceStates {
        reply: oneshot::Sender<Result<Vec<PieceState>, TorrentError>>,
    },
    /// Report each file's verified bytes.
    FileProgress {
        reply: oneshot::Sender<Result<Vec<u64>, TorrentError>>,
    },
}

/// The receiving end of a torrent's command mailbox.
pub(crate) type CommandReceiver = mpsc::Receiver<Box<TorrentCommand>>;

/// The sending end of a torrent's command mailbox. Commands travel boxed:
/// a channel makes its first block of 32 slots at once, and a pointer's slot
/// keeps that block at ~300 bytes, where the largest command's made it ~1.5
/// KB per torrent (commands are rare; the box costs nothing that matters).
#[derive(Clone, Debug)]
pub(crate) struct CommandSender(mpsc::Sender<Box<TorrentCommand>>);

/// A torrent's command mailbox of `capacity` commands.
pub(crate) fn command_channel(capacity: usize) -> (CommandSender, CommandReceiver) {
    let (tx, rx) = mpsc::channel(capacity);
    (CommandSender(tx), rx)
}

impl CommandSender {
    /// Sends `cmd`, waiting for room; `Err` once the torrent has ended.
    pub(crate) async fn send(&self, cmd: TorrentCommand) -> Result<(), Stopped> {
        self.0.send(Box::new(cmd)).await.map_err(|_| Stopped)
    }

    /// Sends `cmd` if there is room; `Err` when full or ended.
    pub(crate) fn try_send(&self, cmd: TorrentCommand) -> Result<(), Stopped> {
        self.0.try_send(Box::new(cmd)).map_err(|_| Stopped)
    }

    /// True once the torrent has ended.
    pub(crate) fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// The torrent's mailbox is gone (or full, for [`CommandSender::try_send`]).
#[derive(Debug)]
pub(crate) struct Stopped;
