//! The peer actor: one per connection, outbound or inbound. It performs (or
//! completes) the handshake, then translates between the wire and its
//! torrent: messages from the socket become
//! `PeerEvent`s to the torrent, [`PeerCommand`]s from the torrent
//! become messages. It serves the peer's requests from the store itself
//! (validated, bounded, read off the async workers) while the torrent has it
//! unchoked. Decisions (what to request, whom to unchoke, whom to trust) are
//! the torrent's.

mod actor;
pub(crate) mod budget;
mod command;
pub(crate) mod connect;
mod error;
mod event;
pub(crate) mod fast;
mod guard;
pub(crate) mod handshake;
pub(crate) mod transport;
mod upload;

pub use command::PeerCommand;
pub use error::PeerError;
pub(crate) use event::{DisconnectReason, PeerEvent};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::bitfield::Bitfield;
use crate::metainfo::MetaInfo;
use crate::peer::connect::Connector;
use crate::peer::handshake::HandshakeConn;
use crate::peer::transport::PeerStream;
use crate::store::Store;
use crate::types::PeerId;
use crate::wire::Handshake;

/// What a peer actor needs to know about its torrent and session.
#[derive(Clone)]
pub(crate) struct PeerParams {
    /// The torrent.
    pub meta: Arc<MetaInfo>,
    /// Where verified pieces are read from to serve requests.
    pub store: Arc<dyn Store>,
    /// Our peer id.
    pub our_id: PeerId,
    /// Our verified pieces at connection time (sent as our bitfield; kept up
    /// to date by [`PeerCommand::Have`]).
    pub have: Bitfield,
    /// Time allowed for connect plus handshake.
    pub connect_timeout: Duration,
    /// Opens outbound connections (transport, encryption).
    pub connector: Connector,
    /// The port we accept connections on (sent in the extended handshake).
    pub listen_port: u16,
    /// Whether peer exchange is allowed (not for private torrents).
    pub pex: bool,
    /// Whether plaintext TCP uploads go out with sendfile(2) from the
    /// store's files ([`SessionConfig::send_from_files`](crate::config::SessionConfig::send_from_files)).
    pub send_from_files: bool,
}

#[cfg(test)]
impl PeerParams {
    /// Our side of a test connection: a `MemoryStore`, peer id 1, no PEX,
    /// plaintext TCP.
    pub(crate) fn for_test(meta: &Arc<MetaInfo>, have: Bitfield) -> Self {
        Self {
            meta: Arc::clone(meta),
            store: Arc::new(crate::store::MemoryStore::new(meta)),
            our_id: PeerId([1; 20]),
            have,
            connect_timeout: Duration::from_secs(10),
            connector: Connector::new(Duration::from_secs(10)),
            listen_port: 0,
            pex: false,
            send_from_files: false,
        }
    }
}

/// How the connection came about.
pub(crate) enum Origin {
    /// We dial the address.
    Outbound,
    /// The session's listener accepted it and read the peer's handshake.
    Inbound {
        /// The connection, still in handshake framing (early bytes kept).
        conn: HandshakeConn<PeerStream>,
        /// The handshake the peer sent.
        handshake: Handshake,
    },
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

    /// Prepares the actor for a connection to or from `addr`; the returned
    /// future is the actor (the torrent spawns it). It always ends by sending
    /// [`PeerEvent::Disconnected`].
    pub(crate) fn start(
        addr: SocketAddr,
        origin: Origin,
        params: PeerParams,
        events: mpsc::Sender<PeerEvent>,
        cancel: CancellationToken,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tx, rx) = mpsc::channel(Self::MAILBOX);
        let task = actor::run(addr, origin, params, rx, events, cancel.clone());
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
