//! Port mapping: asks the NAT gateway to forward our listen port (TCP, and
//! UDP for uTP and the DHT) so that peers behind no NAT can reach us.
//!
//! Three protocols, tried in the configured order until one maps: PCP
//! (RFC 6887) and NAT-PMP (RFC 6886) to the gateway's UDP port 5351, through
//! the `crab_nat` crate, and UPnP IGD (SSDP discovery, then
//! `AddPortMapping`, or `AddAnyPortMapping` when the port is taken, on
//! `WANIPConnection` or `WANPPPConnection`), through `igd-next`. A mapping is
//! renewed at half its lifetime and deleted when the session shuts down
//! (within [`PortMapConfig::shutdown_timeout`]). Every failure is logged and
//! retried later with a growing delay, never fatal.
//!
//! The session runs the mapper when [`SessionConfig::port_mapping`] is set
//! (off by default). It reports each mapping as [`Event::PortMapped`] (or
//! [`Event::PortMappingFailed`]), in
//! [`SessionStats::port_mappings`](crate::session::SessionStats::port_mappings),
//! and hands the external TCP port to the trackers' announces when it
//! differs from the listen port.
//!
//! [`SessionConfig::port_mapping`]: crate::session::SessionConfig::port_mapping
//! [`Event::PortMapped`]: crate::session::Event::PortMapped
//! [`Event::PortMappingFailed`]: crate::session::Event::PortMappingFailed

mod actor;
mod client;
mod gateway;
mod schedule;

pub(crate) use actor::run;

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::sync::watch;

/// A port mapping protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PortMapProtocol {
    /// UPnP Internet Gateway Device (WANIPConnection / WANPPPConnection).
    Upnp,
    /// NAT Port Mapping Protocol (RFC 6886).
    NatPmp,
    /// Port Control Protocol (RFC 6887).
    Pcp,
}

impl fmt::Display for PortMapProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Upnp => "UPnP",
            Self::NatPmp => "NAT-PMP",
            Self::Pcp => "PCP",
        })
    }
}

/// The transport protocol of a mapped port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MapTransport {
    /// TCP: peer connections.
    Tcp,
    /// UDP: uTP and the DHT (they share one port).
    Udp,
}

impl fmt::Display for MapTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        })
    }
}

/// Port mapping settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortMapConfig {
    /// The protocols to try, in order, until one maps a port. The default
    /// is PCP, NAT-PMP, then UPnP.
    pub protocols: Vec<PortMapProtocol>,
    /// The gateway NAT-PMP and PCP talk to; `None` takes the default IPv4
    /// route's gateway (Linux: `/proc/net/route`).
    pub gateway: Option<IpAddr>,
    /// Where SSDP discovery (UPnP) is sent; `None` is the standard multicast
    /// group `239.255.255.250:1900`. A unicast address asks one device.
    pub ssdp: Option<SocketAddr>,
    /// The lease asked for; the gateway may grant another. Renewed at half.
    pub lease: Duration,
    /// How long UPnP discovery waits for an answer.
    pub timeout: Duration,
    /// Bound on deleting the mappings when the session shuts down.
    pub shutdown_timeout: Duration,
}

impl Default for PortMapConfig {
    fn default() -> Self {
        Self {
            protocols: vec![
                PortMapProtocol::Pcp,
                PortMapProtocol::NatPmp,
                PortMapProtocol::Upnp,
            ],
            gateway: None,
            ssdp: None,
            lease: Duration::from_secs(60 * 60),
            timeout: Duration::from_secs(3),
            shutdown_timeout: Duration::from_secs(3),
        }
    }
}

/// A port the gateway forwards to us.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MappedPort {
    /// The protocol that mapped it.
    pub protocol: PortMapProtocol,
    /// TCP or UDP.
    pub transport: MapTransport,
    /// Our (listen) port.
    pub internal_port: u16,
    /// The gateway's external address and port (the address is `0.0.0.0`
    /// when the gateway did not tell it).
    pub external: SocketAddr,
}

/// The session's current mappings as they change: how the trackers'
/// announces learn the external port. A default value has no mapping.
#[derive(Clone, Debug, Default)]
pub struct ExternalPort(Option<watch::Receiver<Vec<MappedPort>>>);

impl ExternalPort {
    /// A receiver of `mappings` and its sender.
    pub(crate) fn channel() -> (watch::Sender<Vec<MappedPort>>, Self) {
        let (tx, rx) = watch::channel(Vec::new());
        (tx, Self(Some(rx)))
    }

    /// The current mappings.
    pub fn mappings(&self) -> Vec<MappedPort> {
        self.0
            .as_ref()
            .map(|rx| rx.borrow().clone())
            .unwrap_or_default()
    }

    /// The external TCP port, if the TCP listen port is mapped.
    pub fn tcp(&self) -> Option<u16> {
        let rx = self.0.as_ref()?;
        let mappings = rx.borrow();
        mappings
            .iter()
            .find(|m| m.transport == MapTransport::Tcp)
            .map(|m| m.external.port())
    }

    /// The port to announce to trackers: the external TCP port when mapped,
    /// else `listen_port`.
    pub fn announce_port(&self, listen_port: u16) -> u16 {
        self.tcp().unwrap_or(listen_port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announce_port_is_the_mapped_tcp_port() {
        assert_eq!(ExternalPort::default().announce_port(6881), 6881);
        let (tx, ext) = ExternalPort::channel();
        assert_eq!(ext.announce_port(6881), 6881);
        let mapped = |transport, port| MappedPort {
            protocol: PortMapProtocol::NatPmp,
            transport,
            internal_port: 6881,
            external: SocketAddr::from(([1, 2, 3, 4], port)),
        };
        tx.send_replace(vec![mapped(MapTransport::Udp, 7000)]);
        assert_eq!(ext.announce_port(6881), 6881);
        tx.send_replace(vec![
            mapped(MapTransport::Udp, 7000),
            mapped(MapTransport::Tcp, 7001),
        ]);
        assert_eq!(ext.announce_port(6881), 7001);
        assert_eq!(ext.mappings().len(), 2);
    }
}
