//! `bittorrent-cli`: download torrents from the command line.
//!
//! A thin shell over the `bittorrent` library: arguments become a
//! `SessionConfig` and `Torrent`s, session events drive the progress display
//! and the exit code.

mod progress;

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use bittorrent::prelude::*;
use clap::Parser;

use crate::progress::Progress;

/// Download torrents from BitTorrent peers.
#[derive(Parser, Debug)]
#[command(name = "bittorrent-cli", version, about)]
struct Args {
    /// .torrent files to download.
    #[arg(required = true, value_name = "TORRENT")]
    torrents: Vec<PathBuf>,

    /// Directory to download into (multi-file torrents get a folder inside it).
    #[arg(short, long, value_name = "DIR", default_value = ".")]
    output: PathBuf,

    /// TCP port announced to trackers.
    #[arg(short, long, default_value_t = 6881)]
    port: u16,

    /// Connect to this peer directly (repeatable), with or without trackers.
    #[arg(long = "peer", value_name = "ADDR")]
    peers: Vec<SocketAddr>,

    /// Do not contact the torrents' trackers (use --peer).
    #[arg(long)]
    no_tracker: bool,

    /// Ignore any resume data and start from scratch. (Resume data does not
    /// exist yet, so today every start is from scratch.)
    #[arg(long)]
    skip_resume: bool,

    /// No progress display.
    #[arg(short, long)]
    quiet: bool,
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

async fn run(args: Args) -> Result<(), String> {
    let mut metas = Vec::new();
    for path in &args.torrents {
        let meta = MetaInfo::load(path).map_err(|e| format!("{}: {e}", path.display()))?;
        metas.push(meta);
    }
    if args.skip_resume {
        log::debug!("--skip-resume: starting from scratch");
    }

    let config = SessionConfig {
        port: args.port,
        use_trackers: !args.no_tracker,
        ..SessionConfig::default()
    };
    let (session, mut events) = Session::spawn_with(config);
    let mut progress = Progress::new(args.quiet);
    let mut pending = HashSet::new();
    for meta in metas {
        let store = FileStore::from_meta_info(&args.output, &meta)
            .map_err(|e| format!("{}: {e}", meta.name))?;
        progress.add(&meta);
        pending.insert(meta.info_hash);
        session.add_torrent(Torrent::new(meta, store).with_peers(args.peers.iter().copied()));
    }

    let mut interrupts = 0;
    let mut failure = None;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                progress.on_event(&event);
                match event {
                    Event::TorrentComplete { info_hash } => {
                        pending.remove(&info_hash);
                        if pending.is_empty() {
                            session.shutdown();
                        }
                    }
                    Event::TorrentError { info_hash, message } => {
                        failure.get_or_insert(format!("{}: {message}", progress.name(&info_hash)));
                        session.shutdown();
                    }
                    Event::Error { message } => {
                        failure.get_or_insert(message);
                        session.shutdown();
                    }
                    _ => {}
                }
            }
            _ = tokio::signal::ctrl_c() => {
                interrupts += 1;
                if interrupts > 1 {
                    return Err("interrupted twice; exiting now".into());
                }
                eprintln!("stopping (Ctrl-C again to exit at once)");
                failure.get_or_insert_with(|| "interrupted".into());
                session.shutdown();
            }
            _ = session.join() => break,
        }
    }
    session.join().await;
    progress.finish();
    match failure {
        Some(message) => Err(message),
        None if pending.is_empty() => Ok(()),
        None => Err(format!("{} torrent(s) incomplete", pending.len())),
    }
}
