//! The three mapping protocols behind one interface: NAT-PMP and PCP through
//! `crab_nat`, UPnP IGD through `igd-next`. Each call is one bounded
//! exchange with the gateway; timing and retries belong to the schedule.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU16;
use std::time::Duration;

use crab_nat::{InternetProtocol, PortMapping, PortMappingOptions, PortMappingType, TimeoutConfig};
use igd_next::aio::tokio::Tokio;
use igd_next::aio::Gateway;
use igd_next::{PortMappingProtocol, SearchOptions};

use crate::portmap::{MapTransport, PortMapConfig, PortMapProtocol};

/// How NAT-PMP and PCP requests are retransmitted: 250 ms, doubling, four
/// tries (under 4 s in all), as RFC 6886 §3.1 starts but shorter.
const TIMEOUTS: TimeoutConfig = TimeoutConfig {
    initial_timeout: Duration::from_millis(250),
    max_retries: 3,
    max_retry_timeout: Some(Duration::from_secs(2)),
};

/// The description UPnP mappings carry on the gateway.
const DESCRIPTION: &str = "bittorrent";

/// A mapping held on the gateway, with what renewing and deleting it need.
#[derive(Clone)]
pub(crate) enum Live {
    /// NAT-PMP or PCP.
    Pmp(PortMapping),
    /// UPnP IGD: the gateway found by SSDP and the external port we hold.
    Upnp {
        gateway: Box<Gateway<Tokio>>,
        local: SocketAddr,
        external: SocketAddr,
        lease: u32,
    },
}

/// A mapping as the rest of the module sees it.
pub(crate) struct Granted {
    pub(crate) live: Live,
    pub(crate) external: SocketAddr,
    pub(crate) lifetime: Duration,
}

/// Maps `transport` port `port` with `protocol`.
pub(crate) async fn map(
    config: &PortMapConfig,
    protocol: PortMapProtocol,
    transport: MapTransport,
    port: u16,
) -> Result<Granted, String> {
    let internal = NonZeroU16::new(port).ok_or("port 0 cannot be mapped")?;
    match protocol {
        PortMapProtocol::NatPmp | PortMapProtocol::Pcp => {
            let gateway = gateway_ip(config)?;
            map_pmp(config, gateway, protocol, transport, internal, None).await
        }
        PortMapProtocol::Upnp => map_upnp(config, transport, port).await,
    }
}

/// Refreshes `live` (same external port). On error the mapping may be gone.
pub(crate) async fn renew(live: Live, transport: MapTransport) -> Result<Granted, String> {
    match live {
        Live::Pmp(mut mapping) => {
            mapping.renew().await.map_err(|e| e.to_string())?;
            granted_pmp(mapping).await
        }
        Live::Upnp {
            gateway,
            local,
            external,
            lease,
        } => {
            gateway
                .add_port(upnp(transport), external.port(), local, lease, DESCRIPTION)
                .await
                .map_err(|e| format!("UPnP AddPortMapping: {e}"))?;
            Ok(Granted {
                live: Live::Upnp {
                    gateway,
                    local,
                    external,
                    lease,
                },
                external,
                lifetime: Duration::from_secs(lease.into()),
            })
        }
    }
}

/// Deletes `live` from the gateway.
pub(crate) async fn remove(live: Live, transport: MapTransport) -> Result<(), String> {
    match live {
        Live::Pmp(mapping) => mapping.try_drop().await.map_err(|(e, _)| e.to_string()),
        Live::Upnp {
            gateway, external, ..
        } => gateway
            .remove_port(upnp(transport), external.port())
            .await
            .map_err(|e| format!("UPnP DeletePortMapping: {e}")),
    }
}

async fn map_pmp(
    config: &PortMapConfig,
    gateway: IpAddr,
    protocol: PortMapProtocol,
    transport: MapTransport,
    internal: NonZeroU16,
    external: Option<NonZeroU16>,
) -> Result<Granted, String> {
    let options = PortMappingOptions {
        external_port: external.or(Some(internal)),
        lifetime_seconds: Some(lease_secs(config)),
        timeout_config: Some(TIMEOUTS),
    };
    let ip = pmp(transport);
    let mapping = if protocol == PortMapProtocol::Pcp {
        let client = local_ip_towards(gateway).await?;
        let base = crab_nat::pcp::BaseMapRequest::new(gateway.into(), client, ip, internal);
        crab_nat::pcp::port_mapping(base, None, None, options)
            .await
            .map_err(|e| format!("PCP MAP: {e}"))?
    } else {
        crab_nat::natpmp::port_mapping(gateway.into(), ip, internal, options)
            .await
            .map_err(|e| format!("NAT-PMP mapping: {e}"))?
    };
    granted_pmp(mapping).await
}

/// The external address of a NAT-PMP or PCP mapping (NAT-PMP answers it in
/// a separate request; a gateway that does not tell gets `0.0.0.0`).
async fn granted_pmp(mapping: PortMapping) -> Result<Granted, String> {
    let ip = match mapping.mapping_type() {
        PortMappingType::Pcp { external_ip, .. } => external_ip,
        PortMappingType::NatPmp => {
            match crab_nat::natpmp::external_address(mapping.gateway(), Some(TIMEOUTS)).await {
                Ok(ip) => IpAddr::V4(ip),
                Err(e) => {
                    log::debug!("port mapping: NAT-PMP external address: {e}");
                    IpAddr::from([0, 0, 0, 0])
                }
            }
        }
    };
    Ok(Granted {
        external: SocketAddr::new(ip, mapping.external_port().get()),
        lifetime: Duration::from_secs(mapping.lifetime().into()),
        live: Live::Pmp(mapping),
    })
}

async fn map_upnp(
    config: &PortMapConfig,
    transport: MapTransport,
    port: u16,
) -> Result<Granted, String> {
    let mut options = SearchOptions {
        timeout: Some(config.timeout),
        single_search_timeout: Some(config.timeout),
        ..SearchOptions::default()
    };
    if let Some(ssdp) = config.ssdp {
        options.broadcast_address = ssdp;
        if ssdp.is_ipv6() {
            options.bind_addr = SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0));
        }
    }
    let gateway = igd_next::aio::tokio::search_gateway(options)
        .await
        .map_err(|e| format!("UPnP discovery: {e}"))?;
    let local = SocketAddr::new(local_ip_towards(gateway.addr.ip()).await?, port);
    let lease = lease_secs(config);
    let proto = upnp(transport);
    let external_port = match gateway
        .add_port(proto, port, local, lease, DESCRIPTION)
        .await
    {
        Ok(()) => port,
        Err(e) => {
            log::debug!("port mapping: UPnP {transport} {port} -> {port}: {e}; any port");
            gateway
                .add_any_port(proto, local, lease, DESCRIPTION)
                .await
                .map_err(|e| format!("UPnP AddAnyPortMapping: {e}"))?
        }
    };
    let ip = match gateway.get_external_ip().await {
        Ok(ip) => ip,
        Err(e) => {
            log::debug!("port mapping: UPnP GetExternalIPAddress: {e}");
            IpAddr::from([0, 0, 0, 0])
        }
    };
    let external = SocketAddr::new(ip, external_port);
    Ok(Granted {
        live: Live::Upnp {
            gateway: Box::new(gateway),
            local,
            external,
            lease,
        },
        external,
        lifetime: Duration::from_secs(lease.into()),
    })
}

fn gateway_ip(config: &PortMapConfig) -> Result<IpAddr, String> {
    match config.gateway {
        Some(ip) => Ok(ip),
        None => crate::portmap::gateway::default_gateway()
            .ok_or_else(|| "no default IPv4 gateway in /proc/net/route".to_owned()),
    }
}

/// Our address on the path to `gateway` (what the gateway sees as the
/// internal client): the local end of a connected UDP socket, no packet sent.
async fn local_ip_towards(gateway: IpAddr) -> Result<IpAddr, String> {
    let bind = match gateway {
        IpAddr::V4(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        IpAddr::V6(_) => SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = tokio::net::UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("cannot bind a UDP socket: {e}"))?;
    socket
        .connect((gateway, crab_nat::GATEWAY_PORT))
        .await
        .and_then(|()| socket.local_addr())
        .map(|a| a.ip())
        .map_err(|e| format!("no route to the gateway {gateway}: {e}"))
}

fn lease_secs(config: &PortMapConfig) -> u32 {
    u32::try_from(config.lease.as_secs())
        .unwrap_or(u32::MAX)
        .max(1)
}

fn pmp(transport: MapTransport) -> InternetProtocol {
    match transport {
        MapTransport::Tcp => InternetProtocol::Tcp,
        MapTransport::Udp => InternetProtocol::Udp,
    }
}

fn upnp(transport: MapTransport) -> PortMappingProtocol {
    match transport {
        MapTransport::Tcp => PortMappingProtocol::TCP,
        MapTransport::Udp => PortMappingProtocol::UDP,
    }
}
