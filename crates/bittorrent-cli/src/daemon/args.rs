//! `bittorrent-cli daemon`'s command line (DAEMON-SPEC: flags override the
//! persisted preferences for this run).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::args::{EncryptionArg, UtpArg};

const WEB: &str = "Web API";
const NETWORK: &str = "Peers and network";

/// Run one session until stopped, driven over a qBittorrent-compatible Web API.
#[derive(clap::Args, Debug, Clone)]
pub struct DaemonArgs {
    /// State, settings and .torrent copies [default: $XDG_DATA_HOME/bittorrent-cli
    /// or ~/.local/share/bittorrent-cli].
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,

    /// Where the Web API, the page, /metrics and /stream listen (port 0: any).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080", help_heading = WEB)]
    pub api: SocketAddr,

    /// Default save path of new torrents [default: DIR/downloads under --data];
    /// persisted.
    #[arg(long, value_name = "DIR")]
    pub save_path: Option<PathBuf>,

    /// The Web API user name (persisted) [default: admin].
    #[arg(long, value_name = "NAME", help_heading = WEB)]
    pub web_username: Option<String>,

    /// The Web API password (persisted hashed, never in clear).
    #[arg(long, value_name = "PASS", help_heading = WEB)]
    pub web_password: Option<String>,

    /// Clients on 127.0.0.0/8 and ::1 need no login (persisted).
    #[arg(long, help_heading = WEB)]
    pub bypass_local_auth: bool,

    /// TCP port to accept peers on (0: any free port) [default: the persisted
    /// listen_port, else 6881].
    #[arg(short, long, help_heading = NETWORK)]
    pub port: Option<u16>,

    /// Address to accept peers on [default: every interface, IPv6 and IPv4].
    #[arg(long, value_name = "IP", help_heading = NETWORK)]
    pub bind: Option<IpAddr>,

    /// Do not contact the torrents' trackers.
    #[arg(long, help_heading = NETWORK)]
    pub no_tracker: bool,

    /// Run no DHT node.
    #[arg(long, help_heading = NETWORK)]
    pub no_dht: bool,

    /// Do not exchange peers with peers (PEX).
    #[arg(long, help_heading = NETWORK)]
    pub no_pex: bool,

    /// Do not ask the NAT gateway to forward the listen port.
    #[arg(long, help_heading = NETWORK)]
    pub no_port_mapping: bool,

    /// DHT node to bootstrap from (repeatable); replaces the public routers.
    #[arg(long = "dht-bootstrap", value_name = "ADDR", help_heading = NETWORK)]
    pub dht_bootstrap: Vec<SocketAddr>,

    /// MSE/PE encryption of peer connections [default: the persisted
    /// preference, else prefer].
    #[arg(long, value_enum, help_heading = NETWORK)]
    pub encryption: Option<EncryptionArg>,

    /// uTP (BEP 29) use, as the download command's --utp.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = UtpArg::Fallback, help_heading = NETWORK)]
    pub utp: UtpArg,

    /// More log lines: -v info, -vv debug, -vvv trace.
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

impl DaemonArgs {
    /// `--data`, or the XDG default.
    pub fn data_dir(&self) -> Result<PathBuf, String> {
        if let Some(dir) = &self.data {
            return Ok(dir.clone());
        }
        if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(xdg).join("bittorrent-cli"));
        }
        match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
            Some(home) => Ok(PathBuf::from(home).join(".local/share/bittorrent-cli")),
            None => Err("no --data given and neither XDG_DATA_HOME nor HOME is set".into()),
        }
    }
}
