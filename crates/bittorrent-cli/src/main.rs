//! `bittorrent-cli`: download and seed torrents from the command line, and
//! make them (`create`).
//!
//! A thin shell over the `bittorrent` library: arguments become a
//! `SessionConfig` and `Torrent`s, session events drive the progress display
//! and the exit code.

mod args;
mod create;
mod daemon;
mod echo;
mod http;
mod logging;
mod malloc;
mod preflight;
mod progress;
mod select;
mod serve;
mod status;
mod summary;

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use bittorrent::dht::{self, DhtConfig};
use bittorrent::portmap::PortMapConfig;
use bittorrent::prelude::*;
use bittorrent::store::{StoreError, RESUME_DIR};
use clap::Parser;
use indicatif::MultiProgress;
use tokio::signal::unix::{signal, SignalKind};

use crate::args::{Args, Command};
use crate::preflight::Source;
use crate::progress::Progress;
use crate::select::Selection;
use crate::status::Dht;

/// How often the session's DHT is asked for its node count.
const SESSION_STATS_INTERVAL: Duration = Duration::from_secs(1);

fn main() -> ExitCode {
    malloc::one_arena();
    let mut args = Args::parse();
    match args.command.take() {
        Some(Command::Create(create)) => return exit_code(create::run(&create)),
        Some(Command::Daemon(daemon)) => return run_daemon(*daemon),
        None => {}
    }
    let bars = progress::bars(args.quiet);
    logging::init(args.verbose, &bars);
    // Restored when main returns (a second Ctrl-C included).
    let _echo = echo::EchoOff::new(!bars.is_hidden());
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
    exit_code(runtime.block_on(run(args, bars)))
}

/// `bittorrent-cli daemon`: its own logger (no progress bars) and runtime.
fn run_daemon(args: daemon::args::DaemonArgs) -> ExitCode {
    logging::init(args.verbose, &progress::bars(true));
    match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => exit_code(runtime.block_on(daemon::run(args))),
        Err(e) => exit_code(Err(format!("cannot start the async runtime: {e}"))),
    }
}

/// Success, or the error printed once to stderr and a failure exit.
fn exit_code(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
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

/// `--list`: the files of every .torrent given.
fn list(sources: &[Source]) -> Result<(), String> {
    for source in sources {
        match source {
            Source::File(meta) => print!("{}", select::list(meta)),
            Source::Magnet(_) => return Err("--list needs .torrent files, not magnet links".into()),
        }
    }
    Ok(())
}

/// The DHT bootstrap nodes given, or the public routers when none are.
async fn dht_bootstrap(given: &[SocketAddr]) -> Vec<SocketAddr> {
    if given.is_empty() {
        dht::resolve_bootstrap(dht::PUBLIC_ROUTERS).await
    } else {
        given.to_vec()
    }
}

/// The DHT nodes beside a peer listener on `bind`: an IPv4 node, and an
/// IPv6 node (BEP 32) unless `bind` is IPv4 (an IPv6 or unspecified `bind`
/// means 0.0.0.0 for the first), both on UDP `port`.
fn dht_config(bind: IpAddr, port: u16, bootstrap: Vec<SocketAddr>, state: PathBuf) -> DhtConfig {
    let (ip, ip6) = match bind {
        IpAddr::V4(v4) => (v4, None),
        IpAddr::V6(v6) => (Ipv4Addr::UNSPECIFIED, Some(v6)),
    };
    DhtConfig {
        bind: SocketAddr::from((ip, port)),
        bind_v6: ip6.map(|ip6| SocketAddr::from((ip6, port))),
        bootstrap,
        state_file: Some(state),
        ..DhtConfig::default()
    }
}

/// The session's settings from `args`, and how its DHT starts out.
async fn session_config(args: &Args) -> Result<(SessionConfig, Dht), String> {
    let bind = args.bind.unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let listen = SocketAddr::new(bind, args.port);
    let (dht, view) = if args.no_dht {
        (None, Dht::Off)
    } else {
        let bootstrap = dht_bootstrap(&args.dht_bootstrap).await;
        let dht_port = args.dht_port.unwrap_or(args.port);
        let state_file = args.output.join(RESUME_DIR).join("dht.state");
        let view = Dht::Nodes {
            nodes: 0,
            busy: true,
            nothing_to_start_from: bootstrap.is_empty() && !state_file.exists(),
        };
        (
            Some(dht_config(bind, dht_port, bootstrap, state_file)),
            view,
        )
    };
    // A port of 0 is any free port: nothing to check.
    let dht_bind = dht.as_ref().map(|d| d.bind).filter(|a| a.port() != 0);
    if listen.port() != 0 {
        preflight::ports(listen, dht_bind)?;
    }
    let config = SessionConfig {
        listen: Some(listen),
        dht,
        port: args.port,
        use_trackers: !args.no_tracker,
        upload_slots: args.upload_slots,
        encryption: args.encryption.into(),
        utp: args.utp.into(),
        port_mapping: (!args.no_port_mapping).then(PortMapConfig::default),
        web_seeds: !args.no_web_seeds,
        send_from_files: args.send_from_files,
        rate_limits: RateLimits {
            download: args.download_limit.filter(|&rate| rate > 0),
            upload: args.upload_limit.filter(|&rate| rate > 0),
        },
        ..SessionConfig::default()
    };
    Ok((config, view))
}

/// The torrent of `source` with the options of `args`.
fn torrent(source: Source, args: &Args, selection: Option<&Selection>) -> Result<Torrent, String> {
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
    if let Some(selection) = selection.cloned() {
        torrent = torrent.with_file_priorities(move |meta| {
            selection.priorities(meta).unwrap_or_else(|e| {
                // Checked before for .torrent files; a magnet's files are
                // known only now.
                log::error!("{}: {e}; nothing is downloaded", meta.name);
                vec![Priority::Skip; meta.files.len()]
            })
        });
    }
    let torrent = torrent
        .with_web_seeds(&args.web_seeds)
        .map_err(|e| e.to_string())?;
    Ok(torrent.with_peers(args.peers.iter().copied()))
}

/// `--files`/`--only`, checked against the .torrent files given: a
/// selection that fits no file is an error before anything starts.
fn selection(args: &Args, sources: &[Source]) -> Result<Option<Selection>, String> {
    let selection = Selection::new(args.files.as_deref(), &args.only)?;
    if let Some(selection) = &selection {
        for source in sources {
            if let Source::File(meta) = source {
                selection
                    .priorities(meta)
                    .map_err(|e| format!("{}: {e}", meta.name))?;
            }
        }
    }
    Ok(selection)
}

/// Binds `--serve`'s address before anything else starts, so that a bad
/// address is a clear error.
async fn bind_http(addr: Option<SocketAddr>) -> Result<Option<tokio::net::TcpListener>, String> {
    match addr {
        Some(addr) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .map_err(|e| format!("cannot serve HTTP on {addr}: {e}")),
        None => Ok(None),
    }
}

async fn run(args: Args, bars: MultiProgress) -> Result<(), String> {
    let sources = args
        .torrents
        .iter()
        .map(|arg| preflight::source(arg))
        .collect::<Result<Vec<_>, _>>()?;
    if args.list {
        return list(&sources);
    }
    let selection = selection(&args, &sources)?;
    preflight::output(&args.output)?;
    let (session, events, dht) = start_session(&args).await?;
    let http = bind_http(args.serve).await?;
    let mut watch = Watch {
        progress: Progress::new(args.quiet, bars, dht, args.no_tracker),
        session: session.clone(),
        selection: selection.clone(),
        pending: HashSet::new(),
        keep_running: args.seed || http.is_some(),
        failure: None,
        stopping: false,
        summaries: Vec::new(),
        dht,
    };
    let first = add_torrents(&mut watch, sources, &args, selection.as_ref())?;

    let stop_http = tokio_util::sync::CancellationToken::new();
    let http_task = http.map(|listener| {
        tokio::spawn(serve::run(
            session.clone(),
            first,
            listener,
            stop_http.clone(),
        ))
    });
    if let Err(e) = watch.run(events, args.quiet).await {
        // A second Ctrl-C: exit at once, without waiting for the session.
        watch.progress.finish();
        return Err(e);
    }
    session.join().await;
    stop_http.cancel();
    if let Some(task) = http_task {
        let _ = task.await;
    }
    watch.progress.finish();
    if args.json {
        summary::print_json(&watch.summaries);
    }
    watch.outcome()
}

/// Starts the session, or stops it again and says why if it cannot listen.
async fn start_session(args: &Args) -> Result<(SessionHandle, EventReceiver, Dht), String> {
    let (config, dht) = session_config(args).await?;
    let listen = config.listen;
    let (session, events) = Session::spawn_with(config);
    if session.listen_addr().is_none() {
        session.shutdown();
        session.join().await;
        let listen = listen.map_or_else(String::new, |a| a.to_string());
        return Err(format!(
            "cannot listen on {listen} (is the port in use? try -p)"
        ));
    }
    Ok((session, events, dht))
}

/// Adds every torrent to the session and to the display; returns the first one's info hash.
fn add_torrents(
    watch: &mut Watch,
    sources: Vec<Source>,
    args: &Args,
    selection: Option<&Selection>,
) -> Result<Option<InfoHash>, String> {
    let mut first = None;
    for source in sources {
        let torrent = torrent(source, args, selection)?;
        watch.progress.add(torrent.info_hash(), &torrent.name());
        watch.pending.insert(torrent.info_hash());
        first.get_or_insert(torrent.info_hash());
        watch.session.add_torrent(torrent);
    }
    Ok(first)
}

/// Follows the session's events until it ends: the display, the exit status.
struct Watch {
    progress: Progress,
    session: SessionHandle,
    selection: Option<Selection>,
    /// Torrents not complete yet.
    pending: HashSet<InfoHash>,
    /// Go on after every torrent is complete (`--seed`, `--serve`).
    keep_running: bool,
    /// The first error that stopped the session.
    failure: Option<String>,
    stopping: bool,
    summaries: Vec<summary::Summary>,
    /// How the DHT started out (whether it had anything to start from).
    dht: Dht,
}

impl Watch {
    /// Runs until the session has ended. Errs on a second Ctrl-C.
    async fn run(&mut self, mut events: EventReceiver, quiet: bool) -> Result<(), String> {
        let mut interrupts = 0;
        // One listener for the whole run: a SIGINT that arrives while an arm
        // below is busy waits in it, where a `ctrl_c()` made anew each pass
        // would miss it.
        let mut sigint = signal(SignalKind::interrupt())
            .map_err(|e| format!("cannot listen for Ctrl-C: {e}"))?;
        let mut tick = tokio::time::interval(SESSION_STATS_INTERVAL);
        loop {
            tokio::select! {
                event = events.recv() => {
                    let Some(event) = event else { break };
                    self.progress.on_event(&event);
                    if self.on_event(event).await {
                        self.stop().await;
                    }
                }
                _ = sigint.recv() => {
                    interrupts += 1;
                    if interrupts > 1 {
                        return Err("interrupted twice; exiting now".into());
                    }
                    if !quiet {
                        self.progress.println("stopping (Ctrl-C again to exit at once)");
                    }
                    self.stop().await;
                }
                _ = tick.tick() => {
                    self.refresh_dht().await;
                    self.refresh_stale().await;
                }
                _ = self.session.join() => break,
            }
        }
        Ok(())
    }

    /// Whether `event` stops the session.
    async fn on_event(&mut self, event: Event) -> bool {
        match event {
            Event::TorrentComplete { info_hash } => {
                self.pending.remove(&info_hash);
                if self.keep_running {
                    log::info!("{}: seeding", self.progress.name(&info_hash));
                }
                !self.keep_running && self.pending.is_empty()
            }
            Event::MetadataReceived { info_hash, .. } => {
                let error = match &self.selection {
                    Some(selection) => {
                        magnet_selection_error(&self.session, info_hash, selection).await
                    }
                    None => None,
                };
                error.map(|e| self.failure.get_or_insert(e)).is_some()
            }
            Event::TorrentError { info_hash, message } => {
                let name = self.progress.name(&info_hash);
                self.failure.get_or_insert(format!("{name}: {message}"));
                true
            }
            Event::Error { message } => {
                self.failure.get_or_insert(message);
                true
            }
            _ => false,
        }
    }

    /// Takes the final counters and starts the graceful shutdown, once.
    async fn stop(&mut self) {
        if !self.stopping {
            self.stopping = true;
            self.summaries = summary::collect(&self.session).await;
            self.session.shutdown();
        }
    }

    /// Asks the session how many nodes its DHT knows.
    async fn refresh_dht(&mut self) {
        let Dht::Nodes {
            nothing_to_start_from,
            ..
        } = self.dht
        else {
            return;
        };
        let stats = tokio::time::timeout(SESSION_STATS_INTERVAL, self.session.stats()).await;
        if let Ok(Ok(SessionStats { dht: Some(s), .. })) = stats {
            self.progress.set_dht(Dht::Nodes {
                nodes: s.routing_table_size,
                busy: s.outstanding_queries > 0 || s.lookups > 0,
                nothing_to_start_from,
            });
        }
    }

    /// Asks for the stats of torrents that send none by themselves (a
    /// magnet's, while its metadata is fetched).
    async fn refresh_stale(&mut self) {
        if self.stopping {
            return;
        }
        for info_hash in self.progress.stale(2 * SESSION_STATS_INTERVAL) {
            let ask = async {
                let handle = self.session.torrent(info_hash).await.ok()??;
                handle.stats().await.ok()
            };
            if let Ok(Some(stats)) = tokio::time::timeout(SESSION_STATS_INTERVAL, ask).await {
                self.progress.on_event(&Event::Stats {
                    info_hash,
                    stats: Box::new(stats),
                });
            }
        }
    }

    /// The exit status: the first failure, or the torrents left incomplete.
    fn outcome(&self) -> Result<(), String> {
        if let Some(message) = &self.failure {
            return Err(message.clone());
        }
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut names: Vec<String> = self.pending.iter().map(|h| self.progress.name(h)).collect();
        names.sort();
        Err(format!(
            "stopped with {} torrent(s) incomplete: {}",
            names.len(),
            names.join(", ")
        ))
    }
}
