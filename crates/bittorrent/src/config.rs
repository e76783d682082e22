//! Settings shared by every torrent of a session: a leaf module, so the
//! session and its torrents both read it without depending on each other.

use std::net::SocketAddr;
use std::time::Duration;

use crate::dht::DhtConfig;
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
    /// Whether torrents fetch pieces from web seeds (BEP 19: the
    /// metainfo's `url-list` and [`Torrent::with_web_seeds`](crate::torrent::Torrent::with_web_seeds)).
    /// Default true; false turns every web seed of every torrent off.
    pub web_seeds: bool,
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
            web_seeds: true,
        }
    }
}
