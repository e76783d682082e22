//! Settings shared by every torrent of a session: a leaf module, so the
//! session and its torrents both read it without depending on each other.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::dht::DhtConfig;
use crate::limits::{QueueConfig, RateLimits, ShareLimits};
use crate::portmap::{ExternalPort, PortMapConfig};
use crate::types::PeerId;

/// Settings shared by every torrent of a session.
#[derive(Clone, Debug)]
pub struct SessionConfig {
    /// Our peer id, sent in handshakes and announces.
    pub peer_id: PeerId,
    /// Where to accept peer connections; `None` accepts none. The default,
    /// `[::]:6881`, is every interface, IPv6 and IPv4 (dual-stack). Port 0
    /// picks a free port; [`SessionHandle::listen_addr`](crate::session::SessionHandle::listen_addr) tells which.
    pub listen: Option<SocketAddr>,
    /// The TCP port announced to trackers when not listening (when
    /// listening, the listener's port is announced).
    pub port: u16,
    /// A torrent dials out only while it has fewer connections than this.
    pub max_peers_per_torrent: usize,
    /// A torrent refuses inbound connections once it has this many.
    pub max_connections_per_torrent: usize,
    /// Regular upload slots of the choke algorithm (plus one optimistic).
    pub upload_slots: usize,
    /// The mainline DHT (BEP 5) as a peer source for torrents that are not
    /// private, and for magnet links. `None` (the default) runs no DHT; its
    /// bootstrap nodes come only from this configuration.
    pub dht: Option<DhtConfig>,
    /// Time allowed for a TCP connect plus handshake.
    pub connect_timeout: Duration,
    /// Whether torrents announce to the trackers listed in their metainfo.
    /// Tests and `--peer`-only use turn this off.
    pub use_trackers: bool,
    /// Whether peer connections use MSE/PE encryption, both ways.
    pub encryption: EncryptionPolicy,
    /// uTP (BEP 29): whether it runs, and which transport outbound
    /// connections try first. While it runs, the session listens for uTP on
    /// the UDP port of the listen address, and the DHT shares that socket
    /// when its [`bind`](DhtConfig::bind) port is that port or 0.
    pub utp: UtpMode,
    /// Our IPv6 address for trackers: HTTP announces send it as `ipv6=`
    /// (BEP 7), so that a tracker reached over IPv4 can list us to IPv6
    /// peers too. `None` (the default): worked out at session start from
    /// the listen address (a global unicast IPv6 address, or on `[::]` the
    /// host's first global one). Loopback (`::1` is
    /// nobody else's way to us) and link-local addresses are never sent; a
    /// tracker reached over IPv6 takes the announce's source address anyway.
    pub announce_ipv6: Option<Ipv6Addr>,
    /// Port mapping on the NAT gateway (UPnP IGD, NAT-PMP, PCP) for the
    /// listen port, TCP and (when uTP runs) UDP. `None`, the default, maps
    /// nothing: embedders decide.
    pub port_mapping: Option<PortMapConfig>,
    /// The external port the trackers are told, kept up to date by the
    /// session while it maps its port; leave it default (no mapping).
    pub external_port: ExternalPort,
    /// Whether torrents fetch pieces from web seeds (BEP 19: the
    /// metainfo's `url-list` and [`Torrent::with_web_seeds`](crate::torrent::Torrent::with_web_seeds)).
    /// Default true; false turns every web seed of every torrent off.
    pub web_seeds: bool,
    /// Peer exchange (BEP 11, `ut_pex`) with peers of torrents that are not
    /// private. Default true; false turns it off for every torrent: not
    /// advertised in the extended handshake, neither sent nor read.
    pub pex: bool,
    /// Whether uploads over plaintext TCP go out with sendfile(2) straight
    /// from the files (Linux), instead of being read into a buffer first.
    /// Default false: against a libtorrent leecher on loopback it was
    /// slower (1.80 against 1.67 s per GiB, medians of 5), though it costs
    /// the seeder a little less CPU and memory. uTP, RC4 and stores without
    /// files always use the buffered path.
    pub send_from_files: bool,
    /// Download and upload limits of the whole session (default unlimited);
    /// change them while it runs with
    /// [`SessionHandle::set_rate_limits`](crate::session::SessionHandle::set_rate_limits).
    pub rate_limits: RateLimits,
    /// When torrents stop seeding, unless they have their own limits
    /// (default never).
    pub share_limits: ShareLimits,
    /// How many torrents run at once (default: all).
    pub queue: QueueConfig,
}

/// The IPv6 address to announce when listening on `listen`: the listen
/// address itself if it is [`global_ipv6`]; on `[::]` (every interface), the
/// first global IPv6 address of the host's interfaces (read from the OS, no
/// traffic); otherwise none (an IPv4 or a loopback listen address).
pub fn announce_ipv6_for(listen: SocketAddr) -> Option<Ipv6Addr> {
    match listen.ip() {
        IpAddr::V6(v6) if v6.is_unspecified() => {
            use network_interface::{Addr, NetworkInterface, NetworkInterfaceConfig};
            let interfaces = NetworkInterface::show()
                .map_err(|e| log::debug!("cannot list network interfaces: {e}"))
                .ok()?;
            interfaces
                .iter()
                .flat_map(|i| &i.addr)
                .find_map(|addr| match addr {
                    Addr::V6(a) => global_ipv6(IpAddr::V6(a.ip)),
                    Addr::V4(_) => None,
                })
        }
        ip => global_ipv6(ip),
    }
}

/// `ip` if it looks like a global unicast IPv6 address (in 2000::/3, not the
/// documentation prefix 2001:db8::/32): one worth telling a tracker.
pub fn global_ipv6(ip: IpAddr) -> Option<Ipv6Addr> {
    let IpAddr::V6(v6) = ip else {
        return None;
    };
    let [first, second, ..] = v6.segments();
    let global = first & 0xe000 == 0x2000 && !(first == 0x2001 && second == 0x0db8);
    global.then_some(v6)
}

/// Whether peer connections use MSE/PE (Message Stream Encryption).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum EncryptionPolicy {
    /// Dial encrypted first and fall back to plaintext at once; accept both
    /// inbound. Plaintext is chosen after the (obfuscated) MSE handshake
    /// when both ends allow it, as libtorrent does; RC4 when the peer offers
    /// only RC4.
    #[default]
    Prefer,
    /// Encrypted (RC4) only, both ways: plaintext peers are refused.
    Require,
    /// Plaintext only, both ways: encrypted handshakes are refused.
    Disable,
}

/// How the session uses uTP (BEP 29) beside TCP. Inbound, both are
/// accepted whenever uTP runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum UtpMode {
    /// No uTP: TCP only, no UDP peer socket.
    Disable,
    /// Dial TCP first, uTP at once if TCP fails (the default: on loopback
    /// TCP is faster, and a refused TCP connect fails at once while an
    /// unanswered uTP one only times out).
    #[default]
    Fallback,
    /// Dial uTP first, TCP if uTP fails.
    Prefer,
    /// Dial uTP only (for peers and tests that speak nothing else).
    Only,
}

impl Default for SessionConfig {
    fn default() -> Self {
        Self {
            peer_id: PeerId::generate(),
            listen: Some(SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 6881))),
            port: 6881,
            max_peers_per_torrent: 30,
            max_connections_per_torrent: 50,
            upload_slots: 3,
            dht: None,
            connect_timeout: Duration::from_secs(10),
            use_trackers: true,
            encryption: EncryptionPolicy::default(),
            utp: UtpMode::default(),
            port_mapping: None,
            external_port: ExternalPort::default(),
            web_seeds: true,
            pex: true,
            send_from_files: false,
            announce_ipv6: None,
            rate_limits: RateLimits::default(),
            share_limits: ShareLimits::default(),
            queue: QueueConfig::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uploads_are_buffered_unless_sendfile_is_asked_for() {
        // sendfile(2) measured slower against a libtorrent leecher; it is
        // an opt-in (the sendfile tests turn it on).
        assert!(!SessionConfig::default().send_from_files);
    }

    #[test]
    fn only_global_ipv6_addresses_are_worth_announcing() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(global_ipv6(ip("2a01:4f8::1")), "2a01:4f8::1".parse().ok());
        assert_eq!(global_ipv6(ip("3fff::1")), "3fff::1".parse().ok());
        for other in [
            "::",
            "::1",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:1.2.3.4",
            "127.0.0.1",
            "1.2.3.4",
        ] {
            assert_eq!(global_ipv6(ip(other)), None, "{other}");
        }
    }

    #[test]
    fn announced_ipv6_follows_the_listen_address() {
        let at = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert_eq!(
            announce_ipv6_for(at("[2a01:4f8::2]:6881")),
            "2a01:4f8::2".parse().ok()
        );
        assert_eq!(announce_ipv6_for(at("[::1]:6881")), None);
        assert_eq!(announce_ipv6_for(at("127.0.0.1:6881")), None);
        assert_eq!(announce_ipv6_for(at("0.0.0.0:6881")), None);
        // On [::] it is one of the host's addresses, if any is global.
        if let Some(ip) = announce_ipv6_for(at("[::]:6881")) {
            assert_eq!(global_ipv6(IpAddr::V6(ip)), Some(ip));
        }
    }
}
