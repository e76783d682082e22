//! `bittorrent-cli`: download and seed torrents from the command line.
//!
//! A thin shell over the `bittorrent` library: arguments become a
//! `SessionConfig` and `Torrent`s, session events drive the progress display
//! and the exit code.

mod http;
mod progress;
mod select;
mod serve;
mod summary;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use bittorrent::dht::{self, DhtConfig};
use bittorrent::magnet::Magnet;
use bittorrent::prelude::*;
use bittorrent::store::{StoreError, RESUME_DIR};
use clap::Parser;

use crate::progress::Progress;
use crate::select::Selection;

/// Download torrents from BitTorrent peers, and seed them.
#[derive(Parser, Debug)]
#[command(name = "bittorrent-cli", version, about)]
struct Args {
    /// .torrent files or magnet links to download (or seed).
    #[arg(required = true, value_name = "TORRENT|MAGNET")]
    torrents: Vec<String>,

    /// Data directory (multi-file torrents get a folder inside it).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    output: PathBuf,

    /// TCP port to accept peers on and announce to trackers (0: any free port).
    #[arg(short, long, default_value_t = 6881)]
    port: u16,

    /// Address to accept peers on [default: every interface, IPv6 and IPv4].
    #[arg(long, value_name = "IP")]
    bind: Option<IpAddr>,

    /// Connect to this peer directly (repeatable), with or without trackers.
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,

    /// Do not contact the torrents' trackers (use --peer).
    #[arg(long)]
    no_tracker: bool,

    /// Keep seeding after the download completes, until Ctrl-C. Data that is
    /// already complete in the data directory is checked and seeded at once.
    #[arg(long)]
    seed: bool,

    /// Run no DHT node (BEP 5). Without it the DHT is a peer source for
    /// torrents that are not private, and for magnet links.
    #[arg(long)]
    no_dht: bool,

    /// DHT node to bootstrap from (repeatable); replaces the public routers.
    #[arg(long = "dht-bootstrap", value_name = "ADDR")]
    dht_bootstrap: Vec<SocketAddr>,

    /// UDP port of the DHT node [default: the -p port].
    #[arg(long, value_name = "PORT")]
    dht_port: Option<u16>,

    /// Serve the (first) torrent's files over HTTP at this address, with
    /// range requests, while it downloads (e.g. 127.0.0.1:8080). Keeps running
    /// after completion until Ctrl-C, like --seed.
    #[arg(long, value_name = "ADDR")]
    serve: Option<SocketAddr>,

    /// Download only these files: numbers from 1 as --list prints them, and
    /// ranges (e.g. 2,5 or 1,3-5). Other files are not created; a piece they
    /// share with a selected file is kept in DIR/.bittorrent/. Applies to
    /// every torrent given; with --only, files matching either are selected.
    #[arg(long, value_name = "LIST")]
    files: Option<String>,

    /// Download only files whose path inside the torrent matches this glob
    /// (repeatable; `*` also matches `/`, e.g. '*.mkv' or 'season1/*').
    #[arg(long, value_name = "GLOB")]
    only: Vec<String>,

    /// How pieces are picked: rarest-first (best for the swarm; a reader of
    /// --serve still gets its window first), sequential (in file order), or
    /// streaming (rarest-first after the start and end of every selected
    /// file, for media players).
    #[arg(long, value_enum, default_value_t = ModeArg::RarestFirst)]
    mode: ModeArg,

    /// Print the files of the .torrent files given, numbered for --files,
    /// and exit.
    #[arg(long)]
    list: bool,

    /// Regular upload slots (the choke algorithm adds one optimistic slot).
    #[arg(long, default_value_t = 3)]
    upload_slots: usize,

    /// Do not read the resume record (DIR/.bittorrent/<info-hash>.resume):
    /// check every piece already in DIR by hash instead. A new record is still
    /// written as pieces complete.
    #[arg(long)]
    skip_resume: bool,

    /// On exit, print one JSON object per torrent on stdout (name, info_hash,
    /// complete, downloaded, uploaded, wasted).
    #[arg(long)]
    json: bool,

    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum ModeArg {
    RarestFirst,
    Sequential,
    Streaming,
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

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format_timestamp_millis()
        .init();
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// A torrent named on the command line.
enum Source {
    File(MetaInfo),
    Magnet(Magnet),
}

/// The store for a torrent's data under `output`.
fn open_store(output: &Path, meta: &MetaInfo, skip_resume: bool) -> Result<FileStore, StoreError> {
    let store = FileStore::from_meta_info(output, meta)?;
    Ok(if skip_resume {
        store.skip_resume()
    } else {
        store
    })
}

/// Keeps the metainfo of a torrent that came from a magnet link as
/// `OUTPUT/.bittorrent/<info-hash>.torrent` (best effort).
fn save_torrent(output: &Path, meta: &MetaInfo) {
    let dir = output.join(RESUME_DIR);
    let path = dir.join(format!("{}.torrent", meta.info_hash.to_hex()));
    let written =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, meta.to_torrent_bytes()));
    match written {
        Ok(()) => log::info!("saved the torrent's metainfo as {}", path.display()),
        Err(e) => log::warn!("cannot save {}: {e}", path.display()),
    }
}

/// Why `selection` fits none of the files of a magnet's torrent whose
/// metadata just arrived (the torrent then downloads nothing), if it does not.
async fn magnet_selection_error(
    session: &SessionHandle,
    info_hash: InfoHash,
    selection: &Selection,
) -> Option<String> {
    let handle = session.torrent(info_hash).await.ok()??;
    let meta = handle.meta_info().await.ok()??;
    selection
        .priorities(&meta)
        .err()
        .map(|e| format!("{}: {e}", meta.name))
}

async fn run(args: Args) -> Result<(), String> {
    let mut sources = Vec::new();
    for arg in &args.torrents {
        if arg
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("magnet:"))
        {
            let magnet = Magnet::parse(arg).map_err(|e| format!("{arg}: {e}"))?;
            sources.push(Source::Magnet(magnet));
        } else {
            let meta = MetaInfo::load(arg).map_err(|e| format!("{arg}: {e}"))?;
            sources.push(Source::File(meta));
        }
    }

    if args.list {
        for source in &sources {
            match source {
                Source::File(meta) => print!("{}", select::list(meta)),
                Source::Magnet(_) => {
                    return Err("--list needs .torrent files, not magnet links".into())
                }
            }
        }
        return Ok(());
    }
    let selection = Selection::new(args.files.as_deref(), &args.only)?;
    // A selection that fits no file is an error before anything starts.
    if let Some(selection) = &selection {
        for source in &sources {
            if let Source::File(meta) = source {
                selection
                    .priorities(meta)
                    .map_err(|e| format!("{}: {e}", meta.name))?;
            }
        }
    }

    let bind = args.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let listen = SocketAddr::new(bind, args.port);
    let dht = if args.no_dht {
        None
    } else {
        let bootstrap = if args.dht_bootstrap.is_empty() {
            dht::resolve_bootstrap(dht::PUBLIC_ROUTERS).await
        } else {
            args.dht_bootstrap.clone()
        };
        // The DHT speaks IPv4 here: an IPv6 or unspecified --bind means 0.0.0.0.
        let ip = match bind {
            IpAddr::V4(v4) => v4,
            IpAddr::V6(_) => Ipv4Addr::UNSPECIFIED,
        };
        Some(DhtConfig {
            bind: SocketAddr::from((ip, args.dht_port.unwrap_or(args.port))),
            bootstrap,
            state_file: Some(args.output.join(RESUME_DIR).join("dht.state")),
            ..DhtConfig::default()
        })
    };
    let config = SessionConfig {
        listen: Some(listen),
        dht,
        port: args.port,
        use_trackers: !args.no_tracker,
        upload_slots: args.upload_slots,
        ..SessionConfig::default()
    };
    let (session, mut events) = Session::spawn_with(config);
    if session.listen_addr().is_none() {
        session.shutdown();
        session.join().await;
        return Err(format!(
            "cannot listen on {listen} (is the port in use? try -p)"
        ));
    }
    // Bind before anything else starts, so a bad address is a clear error.
    let http = match args.serve {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot serve HTTP on {addr}: {e}"))?,
        ),
        None => None,
    };
    let mut progress = Progress::new(args.quiet);
    let mut pending = HashSet::new();
    let mut torrent_order = Vec::new();
    for source in sources {
        let torrent = match source {
            Source::File(meta) => {
                let store = open_store(&args.output, &meta, args.skip_resume)
                    .map_err(|e| format!("{}: {e}", meta.name))?;
                Torrent::new(meta, store)
            }
            Source::Magnet(magnet) => {
                let (output, skip_resume) = (args.output.clone(), args.skip_resume);
                Torrent::from_magnet(magnet, move |meta| {
                    save_torrent(&output, meta);
                    open_store(&output, meta, skip_resume)
                })
            }
        };
        let mut torrent = torrent.with_mode(args.mode.into());
        if let Some(selection) = selection.clone() {
            torrent = torrent.with_file_priorities(move |meta| {
                selection.priorities(meta).unwrap_or_else(|e| {
                    // Checked above for .torrent files; a magnet's files are
                    // known only now.
                    log::error!("{}: {e}; nothing is downloaded", meta.name);
                    vec![Priority::Skip; meta.files.len()]
                })
            });
        }
        progress.add(torrent.info_hash(), &torrent.name());
        pending.insert(torrent.info_hash());
        torrent_order.push(torrent.info_hash());
        session.add_torrent(torrent.with_peers(args.peers.iter().copied()));
    }

    let stop_http = tokio_util::sync::CancellationToken::new();
    let http_task = http.map(|listener| {
        let first = torrent_order.first().copied();
        tokio::spawn(serve::run(
            session.clone(),
            first,
            listener,
            stop_http.clone(),
        ))
    });
    let keep_running = args.seed || http_task.is_some();
    let mut interrupts = 0;
    let mut failure = None;
    let mut stopping = false;
    let mut summaries = Vec::new();
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                progress.on_event(&event);
                let stop = match event {
                    Event::TorrentComplete { info_hash } => {
                        pending.remove(&info_hash);
                        if keep_running {
                            log::info!("{}: seeding", progress.name(&info_hash));
                        }
                        !keep_running && pending.is_empty()
                    }
                    Event::MetadataReceived { info_hash, .. } => {
                        let error = match &selection {
                            Some(selection) => {
                                magnet_selection_error(&session, info_hash, selection).await
                            }
                            None => None,
                        };
                        error.map(|e| failure.get_or_insert(e)).is_some()
                    }
                    Event::TorrentError { info_hash, message } => {
                        failure.get_or_insert(format!("{}: {message}", progress.name(&info_hash)));
                        true
                    }
                    Event::Error { message } => {
                        failure.get_or_insert(message);
                        true
                    }
                    _ => false,
                };
                if stop && !stopping {
                    stopping = true;
                    summaries = summary::collect(&session).await;
                    session.shutdown();
                }
            }
            _ = tokio::signal::ctrl_c() => {
                interrupts += 1;
                if interrupts > 1 {
                    return Err("interrupted twice; exiting now".into());
                }
                if !args.quiet {
                    eprintln!("stopping (Ctrl-C again to exit at once)");
                }
                if !stopping {
                    stopping = true;
                    summaries = summary::collect(&session).await;
                    session.shutdown();
                }
            }
            _ = session.join() => break,
        }
    }
    session.join().await;
    stop_http.cancel();
    if let Some(task) = http_task {
        let _ = task.await;
    }
    progress.finish();
    if args.json {
        summary::print_json(&summaries);
    }
    match failure {
        Some(message) => Err(message),
        None if pending.is_empty() => Ok(()),
        None => Err(format!("{} torrent(s) incomplete", pending.len())),
    }
}
