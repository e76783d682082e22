//! The command line: clap derive, options grouped by topic in `--help`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use bittorrent::metainfo::check_web_seed_url;
use bittorrent::prelude::{EncryptionPolicy, PickMode};
use bittorrent::session::UtpMode;
use clap::Parser;

const DATA: &str = "Data";
const NETWORK: &str = "Peers and network";
const SEEDING: &str = "Seeding and streaming";
const OUTPUT: &str = "Display and logging";

/// Download torrents from BitTorrent peers, and seed them.
#[derive(Parser, Debug)]
#[command(
    name = "bittorrent-cli",
    version,
    about,
    after_help = "Example:\n  bittorrent-cli torrents/debian-10.10.0-amd64-DVD-1.iso.torrent -o downloads",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Args {
    /// `create`: make a .torrent instead of downloading.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// .torrent files or magnet links to download (or seed).
    #[arg(required = true, value_name = "TORRENT|MAGNET")]
    pub torrents: Vec<String>,

    /// Data directory (multi-file torrents get a folder inside it); created
    /// if missing.
    #[arg(short, long, value_name = "DIR", default_value = ".", help_heading = DATA)]
    pub output: PathBuf,

    /// Download only these files: numbers from 1 as --list prints them, and
    /// ranges (e.g. 2,5 or 1,3-5). Other files are not created; a piece they
    /// share with a selected file is kept in DIR/.bittorrent/. Applies to
    /// every torrent given; with --only, files matching either are selected.
    #[arg(long, value_name = "LIST", help_heading = DATA)]
    pub files: Option<String>,

    /// Download only files whose path inside the torrent matches this glob
    /// (repeatable; `*` also matches `/`, e.g. '*.mkv' or 'season1/*').
    #[arg(long, value_name = "GLOB", help_heading = DATA)]
    pub only: Vec<String>,

    /// Print the files of the .torrent files given, numbered for --files,
    /// and exit.
    #[arg(long, help_heading = DATA)]
    pub list: bool,

    /// How pieces are picked: rarest-first (best for the swarm; a reader of
    /// --serve still gets its window first), sequential (in file order), or
    /// streaming (rarest-first after the start and end of every selected
    /// file, for media players).
    #[arg(long, value_enum, default_value_t = ModeArg::RarestFirst, help_heading = DATA)]
    pub mode: ModeArg,

    /// Do not read the resume record (DIR/.bittorrent/<info-hash>.resume):
    /// check every piece already in DIR by hash instead. A new record is still
    /// written as pieces complete.
    #[arg(long, help_heading = DATA)]
    pub skip_resume: bool,

    /// TCP port to accept peers on and announce to trackers (0: any free port).
    #[arg(short, long, default_value_t = 6881, help_heading = NETWORK)]
    pub port: u16,

    /// Address to accept peers on [default: every interface, IPv6 and IPv4].
    #[arg(long, value_name = "IP", help_heading = NETWORK)]
    pub bind: Option<IpAddr>,

    /// Connect to this peer directly (repeatable), with or without trackers.
    #[arg(long = "peer", value_name = "ADDR", help_heading = NETWORK)]
    pub peers: Vec<SocketAddr>,

    /// Do not contact the torrents' trackers (use --peer).
    #[arg(long, help_heading = NETWORK)]
    pub no_tracker: bool,

    /// Run no DHT node (BEP 5). Without it the DHT is a peer source for
    /// torrents that are not private, and for magnet links.
    #[arg(long, help_heading = NETWORK)]
    pub no_dht: bool,

    /// Do not ask the NAT gateway to forward the listen port. Without it
    /// the port is mapped (TCP, and UDP for uTP) over PCP, NAT-PMP or UPnP
    /// IGD, renewed, and deleted on exit.
    #[arg(long, help_heading = NETWORK)]
    pub no_port_mapping: bool,

    /// DHT node to bootstrap from (repeatable, IPv4 or IPv6); replaces the
    /// public routers.
    #[arg(long = "dht-bootstrap", value_name = "ADDR", help_heading = NETWORK)]
    pub dht_bootstrap: Vec<SocketAddr>,

    /// UDP port of the DHT nodes: IPv4, and IPv6 (BEP 32) unless --bind is
    /// an IPv4 address [default: the -p port].
    #[arg(long, value_name = "PORT", help_heading = NETWORK)]
    pub dht_port: Option<u16>,

    /// MSE/PE encryption of peer connections: prefer (dial encrypted, fall
    /// back to plaintext at once; accept both), require (encrypted only, both
    /// ways) or disable (plaintext only).
    #[arg(long, value_enum, default_value_t = EncryptionArg::Prefer, help_heading = NETWORK)]
    pub encryption: EncryptionArg,

    /// uTP (BEP 29), peer connections over UDP on the -p port (shared with
    /// the DHT). fallback: dial TCP first, uTP at once if TCP fails; prefer:
    /// dial uTP first, then TCP; only: dial uTP alone; disable: no uTP at
    /// all. Unless disabled, peers may connect over TCP or uTP.
    #[arg(long, value_enum, value_name = "MODE", default_value_t = UtpArg::Fallback, help_heading = NETWORK)]
    pub utp: UtpArg,

    /// Also download from this web seed (BEP 19; repeatable), for every
    /// torrent given: the http(s) URL of the file, or of the directory that
    /// holds it (ending in /).
    #[arg(long = "web-seed", value_name = "URL", value_parser = web_seed_url, help_heading = NETWORK)]
    pub web_seeds: Vec<String>,

    /// Download from no web seed (neither a torrent's url-list nor
    /// --web-seed).
    #[arg(long, conflicts_with = "web_seeds", help_heading = NETWORK)]
    pub no_web_seeds: bool,

    /// Upload over plaintext TCP with sendfile(2), straight from the files
    /// (Linux), instead of reading blocks into a buffer first: a little
    /// less CPU and memory, but measured slower on loopback.
    #[arg(long, help_heading = NETWORK)]
    pub send_from_files: bool,

    /// Most bytes per second received, every torrent together: a number
    /// with an optional K (×1000), M (×1,000,000) or G (×10^9) suffix, e.g.
    /// 20M is 20,000,000 B/s (qBittorrent's unit). 0: unlimited (the default).
    #[arg(long, value_name = "RATE", value_parser = rate, help_heading = NETWORK)]
    pub download_limit: Option<u64>,

    /// Most bytes per second sent, every torrent together (RATE as for
    /// --download-limit).
    #[arg(long, value_name = "RATE", value_parser = rate, help_heading = NETWORK)]
    pub upload_limit: Option<u64>,

    /// Regular upload slots (the choke algorithm adds one optimistic slot).
    #[arg(long, default_value_t = 3, help_heading = NETWORK)]
    pub upload_slots: usize,

    /// Keep seeding after the download completes, until Ctrl-C. Data that is
    /// already complete in the data directory is checked and seeded at once.
    #[arg(long, help_heading = SEEDING)]
    pub seed: bool,

    /// Serve the (first) torrent's files over HTTP at this address, with
    /// range requests, while it downloads (e.g. 127.0.0.1:8080). Keeps running
    /// after completion until Ctrl-C, like --seed.
    #[arg(long, value_name = "ADDR", help_heading = SEEDING)]
    pub serve: Option<SocketAddr>,

    /// On exit, print one JSON object per torrent on stdout (name, info_hash,
    /// complete, downloaded, uploaded, wasted, web_seed_downloaded,
    /// web_seeds_dropped).
    #[arg(long, help_heading = OUTPUT)]
    pub json: bool,

    /// No progress display.
    #[arg(short, long, help_heading = OUTPUT)]
    pub quiet: bool,

    /// More log lines: -v info, -vv debug, -vvv trace (default: warnings and
    /// errors). RUST_LOG, when set, decides instead (e.g. RUST_LOG=bittorrent=debug).
    #[arg(short, long, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,
}

/// Subcommands; without one, the arguments are torrents to download.
#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Make a .torrent from a file or a folder.
    Create(crate::create::CreateArgs),
    /// Run one session until stopped, driven over a qBittorrent-compatible
    /// Web API (with a page, /metrics and streaming), its state persisted.
    Daemon(Box<crate::daemon::args::DaemonArgs>),
}

/// `--web-seed`: an absolute http(s) URL, else a one-line error.
fn web_seed_url(url: &str) -> Result<String, String> {
    check_web_seed_url(url)
        .map(|_| url.trim().to_owned())
        .map_err(|e| e.to_string())
}

/// `--download-limit`, `--upload-limit`: bytes per second, with an optional
/// decimal K, M or G suffix (`20M`, `1.5M`, `500k`); else a one-line error.
fn rate(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c.to_ascii_uppercase()),
        _ => (text, ' '),
    };
    let scale = match unit {
        ' ' => 1.0,
        'K' => 1e3,
        'M' => 1e6,
        'G' => 1e9,
        _ => return Err(format!("unknown unit {unit:?}: use K, M or G")),
    };
    let bad = || format!("{text:?} is not a rate in bytes per second (e.g. 20M)");
    let value: f64 = number.parse().map_err(|_| bad())?;
    let bytes = value * scale;
    if !(0.0..=1e15).contains(&bytes) {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    RarestFirst,
    Sequential,
    Streaming,
}

/// `--utp`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum UtpArg {
    Fallback,
    Prefer,
    Only,
    Disable,
}

impl From<UtpArg> for UtpMode {
    fn from(mode: UtpArg) -> Self {
        match mode {
            UtpArg::Fallback => UtpMode::Fallback,
            UtpArg::Prefer => UtpMode::Prefer,
            UtpArg::Only => UtpMode::Only,
            UtpArg::Disable => UtpMode::Disable,
        }
    }
}

impl From<ModeArg> for PickMode {
    fn from(mode: ModeArg) -> Self {
        match mode {
            ModeArg::RarestFirst => PickMode::RarestFirst,
            ModeArg::Sequential => PickMode::Sequential,
            ModeArg::Streaming => PickMode::Streaming,
        }
    }
}

/// `--encryption`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum EncryptionArg {
    Prefer,
    Require,
    Disable,
}

impl From<EncryptionArg> for EncryptionPolicy {
    fn from(arg: EncryptionArg) -> Self {
        match arg {
            EncryptionArg::Prefer => EncryptionPolicy::Prefer,
            EncryptionArg::Require => EncryptionPolicy::Require,
            EncryptionArg::Disable => EncryptionPolicy::Disable,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Args::command().debug_assert();
    }

    #[test]
    fn rates_take_decimal_suffixes() {
        assert_eq!(rate("20M"), Ok(20_000_000));
        assert_eq!(rate("1.5m"), Ok(1_500_000));
        assert_eq!(rate("500K"), Ok(500_000));
        assert_eq!(rate("1G"), Ok(1_000_000_000));
        assert_eq!(rate("12345"), Ok(12_345));
        assert_eq!(rate("0"), Ok(0));
        for bad in ["", "M", "-1M", "20X", "fast", "1e30", "NaN"] {
            assert!(rate(bad).is_err(), "{bad:?} accepted");
        }
        let args = Args::parse_from(["bittorrent-cli", "--download-limit", "20M", "x"]);
        assert_eq!(args.download_limit, Some(20_000_000));
        assert_eq!(args.upload_limit, None);
    }

    #[test]
    fn verbosity_counts() {
        let args = Args::parse_from(["bittorrent-cli", "-vv", "x.torrent"]);
        assert_eq!(args.verbose, 2);
        let args = Args::parse_from(["bittorrent-cli", "x.torrent"]);
        assert_eq!(args.verbose, 0);
    }

    #[test]
    fn create_is_a_subcommand_and_downloads_parse_as_before() {
        let args = Args::parse_from(["bittorrent-cli", "create", "dir", "-o", "d.torrent"]);
        let Some(Command::Create(create)) = args.command else {
            panic!("not create: {args:?}");
        };
        assert_eq!(create.path, PathBuf::from("dir"));
        assert_eq!(create.output, PathBuf::from("d.torrent"));
        let args = Args::parse_from(["bittorrent-cli", "x.torrent", "-o", "out", "--seed"]);
        assert!(args.command.is_none());
        assert_eq!(args.torrents, ["x.torrent"]);
        assert!(args.seed);
        assert!(Args::try_parse_from(["bittorrent-cli"]).is_err());
    }

    #[test]
    fn web_seeds_are_checked_and_repeatable() {
        let args = Args::parse_from([
            "bittorrent-cli",
            "--web-seed",
            "http://a/f",
            "--web-seed",
            " https://b/dir/ ",
            "x.torrent",
        ]);
        assert_eq!(args.web_seeds, ["http://a/f", "https://b/dir/"]);
        assert!(!args.no_web_seeds);
        let bad = Args::try_parse_from(["bittorrent-cli", "--web-seed", "ftp://a/f", "x"]);
        let error = bad.unwrap_err().to_string();
        assert!(error.contains("is not http or https"), "{error}");
        let both = [
            "bittorrent-cli",
            "--no-web-seeds",
            "--web-seed",
            "http://a/",
            "x",
        ];
        assert!(Args::try_parse_from(both).is_err());
        assert!(Args::parse_from(["bittorrent-cli", "--no-web-seeds", "x"]).no_web_seeds);
    }

    #[test]
    fn help_is_grouped() {
        let help = Args::command().render_long_help().to_string();
        for heading in [DATA, NETWORK, SEEDING, OUTPUT] {
            assert!(
                help.contains(&format!("{heading}:")),
                "{heading} in\n{help}"
            );
        }
        // Each option under its heading: --seed after "Seeding and streaming:".
        let seeding = help.find(&format!("{SEEDING}:")).unwrap();
        assert!(help[seeding..].contains("--seed"), "{help}");
        assert!(!help[seeding..].contains("--no-dht"), "{help}");
    }
}
