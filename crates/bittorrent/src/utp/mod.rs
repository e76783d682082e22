//! uTP (BEP 29), the second transport for peer connections, on the
//! session's one UDP port (shared with the DHT).
//!
//! The protocol itself (connection states, selective ACKs, congestion
//! control, RTT/RTO, retransmission, receive window, FIN/RESET, MTU-sized
//! packets) is the `librqbit-utp` crate's: a bulk stream of it reached
//! ~250 MB/s to itself on loopback, and it speaks to libtorrent. Its
//! congestion control is Cubic (loss-based), not LEDBAT's delay target.
//! What is ours: the datagram demultiplexer ([`classify`], [`Header`]),
//! the shared socket (`udp`), and the `Endpoint` the connector dials
//! through and the listener accepts from.
//!
//! Memory per connection is bounded like a TCP socket's buffers (Linux
//! autotunes those up to 6 MiB received and 4 MiB sent): at most
//! [`RX_BUFFER`] bytes received and not yet read (the window we advertise)
//! plus at most [`TX_BUFFER_MAX`] bytes written and not yet acknowledged
//! (the send buffer starts at 32 KiB and grows with the congestion window),
//! so at most 10 MiB, TCP's maxima; at most [`MAX_CONNECTIONS`] connections
//! per session. On loopback, 1 MiB each held ours-to-ours transfers to
//! ~85 MB/s, 4 MiB to ~115 MB/s, 8 MiB no better; the receive buffer is
//! above the most a torrent requests from one peer at once (256 blocks,
//! 4 MiB), so the window does not close under a full pipeline.

pub(crate) mod conn;
mod demux;
mod packet;
mod udp;

#[doc(hidden)]
pub use conn::fuzz_connection;
pub use demux::{classify, Datagram, Header, HeaderError, PacketType, HEADER_LEN};
pub(crate) use udp::{SharedUdp, UdpPort};

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::Arc;

use std::pin::Pin;
use std::task::{Context, Poll};

use librqbit_utp::{SocketOpts, UtpSocket, UtpSocketUdp, UtpStream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::peer::transport::{PeerStream, TransportKind};
use crate::utp::udp::Demux;

/// Received bytes buffered per connection (in order or not) before the
/// application reads them; also the receive window we advertise.
pub const RX_BUFFER: usize = 6 << 20;
/// Written bytes buffered per connection until acknowledged.
pub const TX_BUFFER_MAX: usize = 4 << 20;
/// uTP connections at once per session; beyond, new ones are refused.
pub const MAX_CONNECTIONS: usize = 512;
/// Times a packet is sent again before the connection is given up. The
/// crate's 5 (a few seconds on loopback) ended transfers whose receiver
/// stopped reading for a moment (a busy torrent stops reading its peers:
/// backpressure), like a TCP connection never would.
const MAX_RETRANSMISSIONS: usize = 12;
/// Inbound connections accepted and waiting for the listener.
const ACCEPT_QUEUE: usize = 16;

/// The crate's default environment (clock, random ids): it does not export
/// its name, only the socket type that uses it.
trait EnvOf {
    type Env;
}

impl<T, E> EnvOf for UtpSocket<T, E> {
    type Env = E;
}

type Env = <UtpSocketUdp as EnvOf>::Env;

/// The session's uTP socket: dials and accepts uTP connections. A cheap
/// clone.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    socket: Arc<UtpSocket<Demux, Env>>,
}

impl Endpoint {
    /// Binds the UDP port `addr` and starts uTP on it until `cancel` fires.
    /// Returns the endpoint and the DHT's side of the socket.
    ///
    /// # Errors
    /// The bind error, or uTP's refusal of its options.
    pub(crate) fn bind(
        addr: SocketAddr,
        cancel: CancellationToken,
    ) -> io::Result<(Self, SharedUdp)> {
        let (demux, shared) = Demux::new(UdpPort::bind(addr)?);
        let opts = SocketOpts {
            vsock_rx_bufsize_bytes: NonZeroUsize::new(RX_BUFFER),
            vsock_tx_bufsize_bytes_max: NonZeroUsize::new(TX_BUFFER_MAX),
            max_live_vsocks: NonZeroUsize::new(MAX_CONNECTIONS),
            max_retransmissions: NonZeroUsize::new(MAX_RETRANSMISSIONS),
            // Like TCP_NODELAY on our TCP connections: requests are small
            // and latency-bound.
            disable_nagle: true,
            cancellation_token: cancel,
            ..SocketOpts::default()
        };
        let socket =
            UtpSocket::new_with_opts(demux, Env::default(), opts).map_err(io::Error::other)?;
        Ok((Self { socket }, shared))
    }

    /// The bound UDP address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.socket.bind_addr()
    }

    /// Opens a uTP connection to `addr` (the caller bounds the time).
    ///
    /// # Errors
    /// uTP's error (refused, reset, timed out), as an IO error.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> io::Result<PeerStream> {
        let stream = self.socket.connect(addr).await.map_err(io::Error::other)?;
        Ok(PeerStream::new(TransportKind::Utp, UtpConn(stream)))
    }

    /// Accepts uTP connections until `cancel` fires, in a task of their own
    /// (an accept given up half-way loses its connection), queueing them for
    /// the listener.
    pub(crate) fn incoming(
        &self,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<(PeerStream, SocketAddr)> {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        let socket = Arc::clone(&self.socket);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = cancel.cancelled() => break,
                    accepted = socket.accept() => accepted,
                };
                match accepted {
                    Ok(stream) => {
                        let addr = stream.remote_addr();
                        log::trace!("{addr}: uTP connection accepted");
                        let stream = PeerStream::new(TransportKind::Utp, UtpConn(stream));
                        if tx.send((stream, addr)).await.is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        if !cancel.is_cancelled() {
                            log::warn!("uTP stopped accepting: {e}");
                        }
                        break;
                    }
                }
            }
        });
        rx
    }
}

/// A uTP stream whose flush returns at once, as a TCP socket's does once the
/// kernel has the bytes: the crate's flush waits until the peer has
/// acknowledged every byte, and our codecs flush after each batch of
/// messages, which would turn the transfer into stop-and-wait (~15 MB/s on
/// loopback instead of ~250). The bytes are in uTP's send buffer, sent as
/// the congestion window allows; shutdown still waits for them.
struct UtpConn(UtpStream);

impl AsyncRead for UtpConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for UtpConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn connects_carries_bytes_and_shares_the_port_with_the_dht() {
        let cancel = CancellationToken::new();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (a, _) = Endpoint::bind(any, cancel.clone()).unwrap();
        let (b, mut b_dht) = Endpoint::bind(any, cancel.clone()).unwrap();
        let mut incoming = b.incoming(cancel.clone());
        let mut out = a.connect(b.local_addr()).await.unwrap();
        out.write_all(b"hello over utp").await.unwrap();
        out.flush().await.unwrap();
        let (mut inbound, from) = incoming.recv().await.unwrap();
        assert_eq!(from, a.local_addr());
        assert_eq!(inbound.kind(), TransportKind::Utp);
        let mut buf = [0u8; 14];
        inbound.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"hello over utp");

        // A KRPC datagram to the same port reaches the DHT's side.
        let probe = tokio::net::UdpSocket::bind(any).await.unwrap();
        probe.send_to(b"d1:y1:qe", b.local_addr()).await.unwrap();
        let mut buf = [0u8; 64];
        let (len, from) = b_dht.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"d1:y1:qe");
        assert_eq!(from, probe.local_addr().unwrap());
        b_dht.send_to(b"d1:y1:re", from).await.unwrap();
        let (len, _) = probe.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"d1:y1:re");
        cancel.cancel();
    }
}
