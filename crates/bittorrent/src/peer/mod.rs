//! The peer actor: one per connection. It performs the handshake, then
//! translates between the wire and its torrent: messages from the socket
//! become [`PeerEvent`](crate::torrent::PeerEvent)s, [`PeerCommand`]s from the
//! torrent become messages. Decisions (what to request, whom to trust) are
//! the torrent's.

mod actor;
mod command;
mod error;

pub use command::PeerCommand;
pub use error::PeerError;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::torrent::PeerEvent;
use crate::types::{InfoHash, PeerId};

/// What a peer actor needs to know about its torrent and session.
#[derive(Clone, Debug)]
pub(crate) struct PeerParams {
    /// The torrent.
    pub info_hash: InfoHash,
    /// Our peer id.
    pub our_id: PeerId,
    /// Pieces in the torrent (to validate `have` and `bitfield`).
    pub piece_count: usize,
    /// Our verified pieces at connection time (sent as our bitfield).
    pub have: Bitfield,
    /// Time allowed for connect plus handshake.
    pub connect_timeout: Duration,
}

/// The torrent's handle to one peer actor. Sending never waits: a peer whose
/// mailbox is full is too slow and gets disconnected by the torrent.
#[derive(Debug)]
pub(crate) struct PeerHandle {
    tx: mpsc::Sender<PeerCommand>,
    cancel: CancellationToken,
}

impl PeerHandle {
    /// Capacity of a peer's mailbox.
    const MAILBOX: usize = 512;

    /// Prepares an outbound connection to `addr`; the returned future is the
    /// actor (to be spawned by the torrent). It always ends by sending
    /// [`PeerEvent::Disconnected`].
    pub(crate) fn connect(
        addr: SocketAddr,
        params: PeerParams,
        events: mpsc::Sender<PeerEvent>,
        cancel: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(Self::MAILBOX);
        let task = actor::run(addr, params, rx, events, cancel.clone());
        (Self { tx, cancel }, task)
    }

    /// Queues a command.
    ///
    /// # Errors
    /// The command back if the mailbox is full or the actor has ended.
    pub(crate) fn send(&self, cmd: PeerCommand) -> Result<(), PeerCommand> {
        self.tx.try_send(cmd).map_err(|e| e.into_inner())
    }

    /// Closes the connection.
    pub(crate) fn disconnect(&self) {
        self.cancel.cancel();
    }
}
