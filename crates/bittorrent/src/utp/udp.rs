//! The session's one UDP socket, shared by uTP and the DHT as libtorrent
//! does. uTP's endpoint reads it: uTP packets go to uTP, KRPC datagrams are
//! queued for the DHT ([`DhtQueue`] to [`SharedUdp`]), anything else is
//! dropped. Both send through it.
//!
//! On a dual-stack socket (`[::]`) IPv4 peers appear as IPv4-mapped IPv6
//! addresses: they are turned back into IPv4 on receipt and mapped again on
//! sending, so neither uTP nor the DHT sees the difference.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::utp::icmp::{self, IcmpError};

/// A datagram for the DHT and its sender.
pub(crate) type Inbound = (Vec<u8>, SocketAddr);
/// Datagrams queued for the DHT before it reads them; beyond, dropped (the
/// DHT's own socket buffer would drop them too).
const DHT_QUEUE: usize = 256;
/// Receive buffer asked of the kernel (it caps it at `net.core.rmem_max`):
/// uTP at full speed must not overflow it between two reads.
const RECV_BUFFER: usize = 8 << 20;
/// Send buffer asked of the kernel.
const SEND_BUFFER: usize = 4 << 20;
/// How often a full socket is tried again once its readiness cannot be
/// trusted (see [`UdpPort::writable`]).
const FULL_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

/// The bound UDP socket, cheap to clone; sends with address mapping.
#[derive(Debug, Clone)]
pub(crate) struct UdpPort {
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    /// Tests: sends refused as by a full socket.
    #[cfg(test)]
    pub(crate) full: Arc<std::sync::Mutex<FullSocket>>,
}

/// Tests: makes sends fail with `WouldBlock` as on a full socket, and
/// checks that what a refused send carried is what goes out next.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct FullSocket {
    /// Every `every`-th send is refused (0: none).
    pub(crate) every: u32,
    sends: u32,
    /// The datagram refused last, until the next send.
    pending: Option<(SocketAddr, Vec<u8>)>,
    /// Sends refused.
    pub(crate) refused: u32,
    /// Sends after a refusal that were not the refused datagram.
    pub(crate) replaced: u32,
}

#[cfg(test)]
impl FullSocket {
    fn refuse(&mut self, buf: &[u8], to: SocketAddr) -> bool {
        self.sends += 1;
        if self.every > 0 && self.sends % self.every == 0 {
            self.refused += 1;
            self.pending = Some((to, buf.to_vec()));
            return true;
        }
        if let Some((at, bytes)) = self.pending.take() {
            if at != to || bytes != buf {
                self.replaced += 1;
            }
        }
        false
    }
}

impl UdpPort {
    /// Binds `addr` (dual-stack for `[::]`, falling back to `0.0.0.0` on
    /// the same port without IPv6), with large socket buffers.
    ///
    /// # Errors
    /// The OS error of the bind.
    pub(crate) fn bind(addr: SocketAddr) -> io::Result<Self> {
        let socket = match bind_std(addr) {
            Ok(s) => s,
            Err(e) if addr.ip().is_unspecified() && addr.is_ipv6() => {
                log::debug!("cannot bind UDP {addr} ({e}); trying IPv4 only");
                bind_std(SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port())))?
            }
            Err(e) => return Err(e),
        };
        let socket = UdpSocket::from_std(socket)?;
        let local = socket.local_addr()?;
        Ok(Self {
            socket: Arc::new(socket),
            local,
            #[cfg(test)]
            full: Arc::default(),
        })
    }

    /// `to` as this socket must be given it.
    fn target(&self, to: SocketAddr) -> SocketAddr {
        match to.ip() {
            IpAddr::V4(v4) if self.local.is_ipv6() => {
                SocketAddr::new(IpAddr::V6(v4.to_ipv6_mapped()), to.port())
            }
            _ => to,
        }
    }

    /// Sends one datagram to `to`, waiting while the socket is full.
    ///
    /// # Errors
    /// The OS error of the send.
    pub(crate) async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        loop {
            match self.try_send_to(buf, to) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.writable().await?,
                sent => return sent,
            }
        }
    }

    /// Sends one datagram to `to` if the socket takes it now. A send that
    /// fails for another reason is tried once more: the error may be an
    /// ICMP error pending from an earlier datagram (see [`icmp`]), which
    /// the failed send consumed.
    ///
    /// # Errors
    /// `WouldBlock` when the socket's send buffer is full; the OS error.
    pub(crate) fn try_send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        #[cfg(test)]
        if crate::utp::cell::lock(&self.full).refuse(buf, to) {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let to = self.target(to);
        match self.socket.try_send_to(buf, to) {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => self.socket.try_send_to(buf, to),
            sent => sent,
        }
    }

    /// The next ICMP error queued on the socket (the destination as uTP
    /// and the DHT see it); `Ok(None)` for an entry not understood.
    ///
    /// # Errors
    /// `WouldBlock` when none is queued. Any other error of the read is
    /// logged and taken as `WouldBlock` too: the socket's error readiness
    /// must be cleared, or its reader would wake again at once, forever.
    pub(crate) fn try_recv_error(&self) -> io::Result<Option<IcmpError>> {
        let error = self.socket.try_io(Interest::ERROR, || {
            icmp::recv(&*self.socket).map_err(|e| {
                if e.kind() != io::ErrorKind::WouldBlock {
                    log::debug!("UDP {}: reading the error queue: {e}", self.local);
                }
                io::Error::from(io::ErrorKind::WouldBlock)
            })
        })?;
        Ok(error.map(|e| IcmpError {
            to: canonical(e.to),
            what: e.what,
        }))
    }

    /// Receives one datagram if one is there, with the sender's address as
    /// uTP and the DHT see it (IPv4 unmapped).
    ///
    /// # Errors
    /// `WouldBlock` when none is queued; the OS error.
    pub(crate) fn try_recv_from(&self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        let (len, from) = self.socket.try_recv_from(buf)?;
        Ok((len, canonical(from)))
    }

    /// Waits until a datagram or an ICMP error may be there.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        self.socket
            .ready(Interest::READABLE | Interest::ERROR)
            .await
            .map(drop)
    }

    /// Waits until the send buffer may have room. Once an ICMP error has
    /// been reported on the socket, tokio keeps it "write closed" for good
    /// (mio reads `EPOLLERR` so), and readiness no longer tells a full
    /// socket from one with room: then this waits [`FULL_RETRY`] instead,
    /// so a full socket is retried at that pace and never spun on.
    pub(crate) async fn writable(&self) -> io::Result<()> {
        let ready = self.socket.ready(Interest::WRITABLE).await?;
        if !ready.is_writable() {
            tokio::time::sleep(FULL_RETRY).await;
        }
        Ok(())
    }

    /// The bound address.
    pub(crate) fn local_addr(&self) -> SocketAddr {
        self.local
    }
}

fn bind_std(addr: SocketAddr) -> io::Result<std::net::UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER) {
        log::debug!("UDP {addr}: cannot enlarge the receive buffer: {e}");
    }
    if let Err(e) = socket.set_send_buffer_size(SEND_BUFFER) {
        log::debug!("UDP {addr}: cannot enlarge the send buffer: {e}");
    }
    if let Err(e) = icmp::enable(&socket, addr.is_ipv6()) {
        log::debug!("UDP {addr}: ICMP errors will not be seen: {e}");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// The source address as uTP and the DHT should see it.
fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// The DHT's side of the shared socket: its datagrams, and the socket to
/// answer through.
#[derive(Debug)]
pub(crate) struct SharedUdp {
    port: UdpPort,
    rx: mpsc::Receiver<Inbound>,
    /// The IPv6 half of a dual-stack socket (see [`SharedUdp::split_ipv6`]).
    ipv6_half: bool,
}

impl SharedUdp {
    /// The address the DHT is reachable at (IPv4 on a dual-stack socket:
    /// the DHT speaks IPv4, unless this is the socket's IPv6 half).
    pub(crate) fn local_addr(&self) -> SocketAddr {
        match self.port.local {
            SocketAddr::V6(v6) if v6.ip().is_unspecified() && !self.ipv6_half => {
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, v6.port()))
            }
            local => local,
        }
    }

    /// Whether the socket is dual-stack (`[::]`): it carries IPv4 and IPv6.
    pub(crate) fn is_dual_stack(&self) -> bool {
        self.port.local.is_ipv6() && self.port.local.ip().is_unspecified()
    }

    /// Splits the DHT's datagrams by the sender's address family, for an
    /// IPv4 and an IPv6 DHT node on the same port (BEP 32): a task forwards
    /// each to its half, until the socket's reader or both halves stop.
    pub(crate) fn split_ipv6(self) -> (SharedUdp, SharedUdp) {
        let (tx4, rx4) = mpsc::channel(DHT_QUEUE);
        let (tx6, rx6) = mpsc::channel(DHT_QUEUE);
        let mut rx = self.rx;
        tokio::spawn(async move {
            while let Some((bytes, from)) = rx.recv().await {
                let half = if from.is_ipv6() { &tx6 } else { &tx4 };
                if half.try_send((bytes, from)).is_err() && tx4.is_closed() && tx6.is_closed() {
                    break;
                }
            }
        });
        let half = |rx, ipv6_half| SharedUdp {
            port: self.port.clone(),
            rx,
            ipv6_half,
        };
        (half(rx4, false), half(rx6, true))
    }

    /// The next datagram for the DHT, copied into `buf` (truncated to it).
    /// Waits forever once uTP's reader has stopped (the session is ending).
    pub(crate) async fn recv_from(&mut self, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
        match self.rx.recv().await {
            Some((bytes, from)) => {
                let len = bytes.len().min(buf.len());
                buf[..len].copy_from_slice(&bytes[..len]);
                Ok((len, from))
            }
            None => std::future::pending().await,
        }
    }

    /// Sends one datagram to `to`.
    ///
    /// # Errors
    /// The OS error of the send.
    pub(crate) async fn send_to(&self, buf: &[u8], to: SocketAddr) -> io::Result<usize> {
        self.port.send_to(buf, to).await
    }
}

/// The DHT's queue on the shared socket: the endpoint's receive task reads
/// every datagram, keeps the uTP ones and hands the DHT's over here.
#[derive(Debug)]
pub(crate) struct DhtQueue {
    tx: mpsc::Sender<Inbound>,
}

impl DhtQueue {
    /// A queue for `port`'s DHT datagrams, and the DHT's side of it (which
    /// may be dropped: DHT datagrams are then dropped too).
    pub(crate) fn new(port: &UdpPort) -> (Self, SharedUdp) {
        let (tx, rx) = mpsc::channel(DHT_QUEUE);
        let shared = SharedUdp {
            port: port.clone(),
            rx,
            ipv6_half: false,
        };
        (Self { tx }, shared)
    }

    /// Queues one DHT datagram; dropped when the DHT is off or behind.
    pub(crate) fn push(&self, bytes: &[u8], from: SocketAddr) {
        if self.tx.try_send((bytes.to_vec(), from)).is_err() {
            log::trace!("{from}: DHT datagram dropped (DHT off or busy)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// BEP 32 on one port: DHT datagrams reaching a dual-stack socket go to
    /// the half of their sender's family.
    #[tokio::test]
    async fn dual_stack_dht_datagrams_split_by_family() {
        let Ok(port) = UdpPort::bind("[::]:0".parse().unwrap()) else {
            return;
        };
        if port.local.is_ipv4() {
            return; // No IPv6 here: it fell back to IPv4.
        }
        let number = port.local.port();
        let (dht, shared) = DhtQueue::new(&port);
        assert!(shared.is_dual_stack());
        let (mut v4, mut v6) = shared.split_ipv6();
        assert_eq!(v4.local_addr(), SocketAddr::from(([0, 0, 0, 0], number)));
        assert!(v6.local_addr().is_ipv6());
        let reader = port.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while reader.readable().await.is_ok() {
                while let Ok((len, from)) = reader.try_recv_from(&mut buf) {
                    dht.push(&buf[..len], from);
                }
            }
        });
        let s4 = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let s6 = UdpSocket::bind("[::1]:0").await.unwrap();
        s6.send_to(b"d1:y1:re", ("::1", number)).await.unwrap();
        s4.send_to(b"d1:y1:qe", ("127.0.0.1", number))
            .await
            .unwrap();
        let mut buf = [0u8; 64];
        let wait = Duration::from_secs(5);
        let (len, from) = tokio::time::timeout(wait, v4.recv_from(&mut buf))
            .await
            .expect("an IPv4 datagram")
            .unwrap();
        assert_eq!(
            (&buf[..len], from),
            (&b"d1:y1:qe"[..], s4.local_addr().unwrap())
        );
        let (len, from) = tokio::time::timeout(wait, v6.recv_from(&mut buf))
            .await
            .expect("an IPv6 datagram")
            .unwrap();
        assert_eq!(
            (&buf[..len], from),
            (&b"d1:y1:re"[..], s6.local_addr().unwrap())
        );
        // Each half answers through the one socket.
        v6.send_to(b"d1:y1:ee", s6.local_addr().unwrap())
            .await
            .unwrap();
        let (len, _) = tokio::time::timeout(wait, s6.recv_from(&mut buf))
            .await
            .expect("the answer")
            .unwrap();
        assert_eq!(&buf[..len], b"d1:y1:ee");
    }
}
