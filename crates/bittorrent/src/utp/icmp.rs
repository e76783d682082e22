//! ICMP errors for datagrams we sent, from the shared UDP socket's error
//! queue (Linux: `IP_RECVERR`/`IPV6_RECVERR`, `recvmsg` with
//! `MSG_ERRQUEUE`). A uTP SYN to a closed port comes back as ICMP "port
//! unreachable": the endpoint fails that connect at once instead of waiting
//! for its timeout. Elsewhere nothing is enabled and nothing is reported.
//!
//! With the option on, the kernel also keeps the error as the socket's
//! pending error, which the next `recvfrom` or `sendto` returns once (and
//! a `sendto` then sends nothing): the socket's reader reads on past it,
//! and a failed send is tried once more. Reading the queue clears the
//! pending error.

use std::net::SocketAddr;

/// What an ICMP error said about a destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// Port unreachable: nothing listens there (`ECONNREFUSED`).
    Port,
    /// Anything else (host or network unreachable, fragmentation needed,
    /// TTL exceeded...), with its errno.
    Other(i32),
}

/// One ICMP error: the destination of the datagram that caused it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IcmpError {
    pub(crate) to: SocketAddr,
    pub(crate) what: Unreachable,
}

#[cfg(target_os = "linux")]
mod imp {
    use std::io::{self, IoSliceMut};
    use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsFd, AsRawFd};

    use nix::libc;
    use nix::sys::socket::{
        recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags, SockaddrLike, SockaddrStorage,
    };

    use crate::utp::icmp::{IcmpError, Unreachable};

    /// Turns on the error queue for IPv4 (and IPv6 when `ipv6`, which on a
    /// dual-stack socket carries the IPv4 peers' errors too).
    pub(crate) fn enable(socket: &impl AsFd, ipv6: bool) -> io::Result<()> {
        setsockopt(socket, sockopt::Ipv4RecvErr, &true)?;
        if ipv6 {
            setsockopt(socket, sockopt::Ipv6RecvErr, &true)?;
        }
        Ok(())
    }

    /// The next queued ICMP error; `Ok(None)` for an entry read but not
    /// understood; `WouldBlock` when there is none.
    pub(crate) fn recv(socket: &impl AsFd) -> io::Result<Option<IcmpError>> {
        // The start of the datagram we sent comes back too; not needed.
        let mut head = [0u8; 32];
        let mut iov = [IoSliceMut::new(&mut head)];
        let mut control = nix::cmsg_space!(libc::sock_extended_err, libc::sockaddr_in6);
        let msg = recvmsg::<SockaddrStorage>(
            socket.as_fd().as_raw_fd(),
            &mut iov,
            Some(&mut control),
            MsgFlags::MSG_ERRQUEUE | MsgFlags::MSG_DONTWAIT,
        )?;
        let errno = msg.cmsgs().ok().and_then(|mut cmsgs| {
            cmsgs.find_map(|cmsg| match cmsg {
                ControlMessageOwned::Ipv4RecvErr(e, _) | ControlMessageOwned::Ipv6RecvErr(e, _) => {
                    Some(e.ee_errno as i32)
                }
                _ => None,
            })
        });
        let to = msg.address.as_ref().and_then(socket_addr);
        let (Some(errno), Some(to)) = (errno, to) else {
            return Ok(None);
        };
        let what = if errno == libc::ECONNREFUSED {
            Unreachable::Port
        } else {
            Unreachable::Other(errno)
        };
        Ok(Some(IcmpError { to, what }))
    }

    fn socket_addr(addr: &SockaddrStorage) -> Option<SocketAddr> {
        match addr.family()? {
            nix::sys::socket::AddressFamily::Inet => {
                addr.as_sockaddr_in().map(|a| SocketAddrV4::from(*a).into())
            }
            nix::sys::socket::AddressFamily::Inet6 => addr
                .as_sockaddr_in6()
                .map(|a| SocketAddrV6::from(*a).into()),
            _ => None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use std::io;

    use crate::utp::icmp::IcmpError;

    pub(crate) fn enable<T>(_socket: &T, _ipv6: bool) -> io::Result<()> {
        Ok(())
    }

    pub(crate) fn recv<T>(_socket: &T) -> io::Result<Option<IcmpError>> {
        Err(io::ErrorKind::WouldBlock.into())
    }
}

pub(crate) use imp::{enable, recv};
