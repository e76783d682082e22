//! uTP (BEP 29), the second transport for peer connections, on the
//! session's one UDP port (shared with the DHT).
//!
//! Ours, in two halves:
//! - `conn`: one connection, sans-IO (states, selective ACKs, LEDBAT
//!   congestion control with a target delay, RTT/RTO, retransmission,
//!   receive window, FIN/RESET, MTU-sized packets), tested without a
//!   socket or a clock;
//! - the endpoint (`socket`, `stream`, `table`, `udp`): one task per
//!   endpoint drains the shared socket, demultiplexes ([`classify`],
//!   [`Header`]) DHT datagrams to the DHT and uTP ones to their connection
//!   by (address, connection id), answers SYNs and strays (a rate-limited
//!   RESET), fires every connection's timers from one queue, and sends the
//!   touched connections' packets once per batch read (one ACK for many
//!   packets). A stream's write copies into its connection and sends at
//!   once from the writer's task. On Linux it also reads the socket's ICMP
//!   errors (`icmp`): a SYN answered by "port unreachable" fails its
//!   connect at once (the dialer falls back to TCP without waiting).
//!
//! Memory per connection is bounded like a TCP socket's buffers (Linux
//! autotunes those up to 6 MiB received and 4 MiB sent): at most
//! [`RX_BUFFER`] bytes received and not yet read (the window we advertise)
//! plus at most [`TX_BUFFER_MAX`] bytes written and not yet acknowledged,
//! so at most 10 MiB, TCP's maxima; at most [`MAX_CONNECTIONS`] connections
//! per session, 16 accepted ones waiting for the listener. The receive
//! buffer is above the most a torrent requests from one peer at once (256
//! blocks, 4 MiB), so the window does not close under a full pipeline.

mod cell;
pub(crate) mod conn;
mod demux;
#[cfg(test)]
mod endpoint_tests;
mod icmp;
mod packet;
mod socket;
mod stream;
mod table;
mod udp;

#[doc(hidden)]
pub use conn::fuzz_connection;
pub use demux::{classify, Datagram, Header, HeaderError, PacketType, HEADER_LEN};
pub(crate) use udp::{SharedUdp, UdpPort};

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::peer::transport::{PeerStream, TransportKind};
use crate::utp::socket::{Inner, ACCEPT_QUEUE};
use crate::utp::udp::DhtQueue;

/// Received bytes buffered per connection (in order or not) before the
/// application reads them; also the receive window we advertise.
pub const RX_BUFFER: usize = 6 << 20;
/// Written bytes buffered per connection until acknowledged.
pub const TX_BUFFER_MAX: usize = 4 << 20;
/// uTP connections at once per session; beyond, new ones are refused.
pub const MAX_CONNECTIONS: usize = 512;
/// Times a packet is sent again before the connection is given up: a busy
/// torrent stops reading its peers for a moment (backpressure), and that
/// must not end a connection, as it would not end a TCP one.
const MAX_RETRANSMISSIONS: u32 = 12;

/// The session's uTP socket: dials and accepts uTP connections. A cheap
/// clone.
#[derive(Clone)]
pub(crate) struct Endpoint {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("local_addr", &self.local_addr())
            .finish()
    }
}

impl Endpoint {
    /// Binds the UDP port `addr` and starts uTP on it until `cancel` fires.
    /// Returns the endpoint and the DHT's side of the socket.
    ///
    /// # Errors
    /// The bind error.
    pub(crate) fn bind(
        addr: SocketAddr,
        cancel: CancellationToken,
    ) -> io::Result<(Self, SharedUdp)> {
        let port = UdpPort::bind(addr)?;
        let (dht, shared) = DhtQueue::new(&port);
        let inner = Inner::start(port, dht, cancel);
        Ok((Self { inner }, shared))
    }

    /// The bound UDP address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.inner.port.local_addr()
    }

    /// Opens a uTP connection to `addr`, within the connect timeout (the
    /// caller may bound it further).
    ///
    /// # Errors
    /// Refused, reset or timed out, as an IO error.
    pub(crate) async fn connect(&self, addr: SocketAddr) -> io::Result<PeerStream> {
        let stream = self.inner.connect(addr).await?;
        Ok(PeerStream::new(TransportKind::Utp, stream))
    }

    /// Accepts uTP connections until `cancel` fires, queueing them for the
    /// listener (when the queue is full, new ones are refused).
    pub(crate) fn incoming(
        &self,
        cancel: CancellationToken,
    ) -> mpsc::Receiver<(PeerStream, SocketAddr)> {
        let (tx, rx) = mpsc::channel(ACCEPT_QUEUE);
        self.inner.listen(tx, cancel);
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::utp::socket::CONNECT_TIMEOUT;
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

    /// A UDP port on loopback that nothing listens on.
    fn closed_port() -> SocketAddr {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap()
    }

    /// A SYN to a closed port comes back as ICMP "port unreachable": the
    /// connect fails as refused, well before its timeout; the DHT's side of
    /// the socket still receives afterwards.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_connect_to_a_closed_port_is_refused_and_the_dht_goes_on() {
        let cancel = CancellationToken::new();
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        let (a, mut a_dht) = Endpoint::bind(any, cancel.clone()).unwrap();
        for _ in 0..3 {
            let connect = a.connect(closed_port());
            let Ok(result) = tokio::time::timeout(CONNECT_TIMEOUT, connect).await else {
                panic!("the connect was not refused");
            };
            let Err(e) = result else {
                panic!("connected to a closed port");
            };
            assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");
        }
        assert_eq!(
            a.inner.connection_count(),
            0,
            "refused connections are dropped"
        );

        // The DHT's side sends (the ICMP error left pending does not eat
        // the datagram) and receives.
        let probe = tokio::net::UdpSocket::bind(any).await.unwrap();
        a_dht.send_to(b"d1:y1:qe", closed_port()).await.unwrap();
        a_dht
            .send_to(b"d1:y1:qe", probe.local_addr().unwrap())
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let (len, _) = probe.recv_from(&mut buf).await.unwrap();
        assert_eq!(&buf[..len], b"d1:y1:qe");
        probe.send_to(b"d1:y1:re", a.local_addr()).await.unwrap();
        let (len, from) = a_dht.recv_from(&mut buf).await.unwrap();
        assert_eq!(
            (&buf[..len], from),
            (&b"d1:y1:re"[..], probe.local_addr().unwrap())
        );

        // uTP still connects to a live endpoint.
        let (b, _) = Endpoint::bind(any, cancel.clone()).unwrap();
        let mut incoming = b.incoming(cancel.clone());
        let mut out = a.connect(b.local_addr()).await.unwrap();
        out.write_all(b"still here").await.unwrap();
        let (mut inbound, _) = incoming.recv().await.unwrap();
        let mut buf = [0u8; 10];
        inbound.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"still here");
        cancel.cancel();
    }
}
