//! The DHT's UDP socket: its own, or the session's port shared with uTP
//! (which reads it and hands the DHT its datagrams).

use std::io;
use std::net::SocketAddr;

use tokio::net::UdpSocket;

use crate::utp::SharedUdp;

/// Where the DHT's datagrams come from and go to.
#[derive(Debug)]
pub(crate) enum DhtSocket {
    /// A socket of its own.
    Own(UdpSocket),
    /// The session's UDP port, shared with uTP.
    Shared(SharedUdp),
}

impl DhtSocket {
    /// A socket of its own bound to `addr` (IPv6 only for an IPv6 address,
    /// so an IPv4 node may take the same port).
    ///
    /// # Errors
    /// The OS error of the bind.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let domain = socket2::Domain::for_address(addr);
        let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, None)?;
        if addr.is_ipv6() {
            socket.set_only_v6(true)?;
        }
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        Ok(Self::Own(UdpSocket::from_std(socket.into())?))
    }

    /// The next datagram. Cancel-safe.
    pub(crate) async fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self {
            Self::Own(socket) => socket.recv_from(buf).await,
            Self::Shared(shared) => shared.recv_from(buf).await,
        }
    }

    /// Sends one datagram to `to`.
    pub(crate) async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        match self {
            Self::Own(socket) => socket.send_to(buf, to).await,
            Self::Shared(shared) => shared.send_to(buf, to).await,
        }
    }

    /// The address other nodes reach us at.
    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Self::Own(socket) => socket.local_addr(),
            Self::Shared(shared) => Ok(shared.local_addr()),
        }
    }
}
