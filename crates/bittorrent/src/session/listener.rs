//! The session's listener: accepts inbound connections, reads the peer's
//! handshake (with a timeout, a bounded number at a time) and hands the
//! connection to the session actor, which routes it by info-hash.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::session::command::SessionCommand;
use crate::wire::{Handshake, HandshakeCodec};

/// Time an inbound peer has to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Inbound connections whose handshake we wait for at once; more are dropped.
const MAX_PENDING: usize = 64;

/// Binds `addr`. For the unspecified IPv6 address (`[::]`) the socket is
/// dual-stack on systems that allow it; if IPv6 is unavailable it falls back
/// to `0.0.0.0` on the same port.
///
/// # Errors
/// The OS error of the bind.
pub(crate) fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let std_listener = match std::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
            log::debug!("cannot listen on {addr} ({e}); trying IPv4 only");
            std::net::TcpListener::bind(SocketAddr::from(([0, 0, 0, 0], addr.port())))?
        }
        Err(e) => return Err(e),
    };
    std_listener.set_nonblocking(true)?;
    TcpListener::from_std(std_listener)
}

/// Accepts connections until `cancel` fires.
pub(crate) async fn run(
    listener: TcpListener,
    session: mpsc::WeakSender<SessionCommand>,
    cancel: CancellationToken,
) {
    let pending = Arc::new(Semaphore::new(MAX_PENDING));
    let mut handshakes = JoinSet::new();
    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, addr)) => {
                    let Ok(permit) = Arc::clone(&pending).try_acquire_owned() else {
                        log::debug!("too many pending handshakes; dropping {addr}");
                        continue;
                    };
                    let session = session.clone();
                    handshakes.spawn(async move {
                        let _permit = permit;
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, read_handshake(stream)).await {
                            Ok(Some((conn, handshake))) => {
                                let cmd = SessionCommand::Inbound { addr, conn, handshake };
                                // A weak sender: the listener alone does not
                                // keep the session alive.
                                if let Some(session) = session.upgrade() {
                                    let _ = session.send(cmd).await;
                                }
                            }
                            Ok(None) => log::debug!("{addr}: no valid handshake"),
                            Err(_) => log::debug!("{addr}: handshake timed out"),
                        }
                    });
                }
                Err(e) => {
                    // Typically out of file descriptors: wait rather than spin.
                    log::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = handshakes.join_next(), if !handshakes.is_empty() => {}
        }
    }
    handshakes.shutdown().await;
}

async fn read_handshake(
    stream: TcpStream,
) -> Option<(Framed<TcpStream, HandshakeCodec>, Handshake)> {
    stream.set_nodelay(true).ok()?;
    let mut conn = Framed::new(stream, HandshakeCodec);
    let handshake = conn.next().await?.ok()?;
    Some((conn, handshake))
}
