//! Seeds many torrents from one session: the binary `scripts/bench-many`
//! runs (not a test).
//!
//! `many TORRENT_DIR DATA_DIR PORT`: adds every `*.torrent` in
//! `TORRENT_DIR` (sorted by name), each with a [`FileStore`] on `DATA_DIR`
//! (resume records in `DATA_DIR/.bittorrent/`), to one session listening
//! on 127.0.0.1:`PORT` with DHT, port mapping, PEX and trackers off. It
//! prints `READY <torrents> <seconds>` once every torrent has been checked
//! (seconds since start, the loading of the files included), then seeds
//! until SIGINT or SIGTERM, shuts the session down (writing the resume
//! records) and prints `STOPPED`.
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use bittorrent::prelude::*;
use tokio::signal::unix::{signal, SignalKind};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [torrents, data, port] = args.as_slice() else {
        return Err("usage: many TORRENT_DIR DATA_DIR PORT".into());
    };
    let port: u16 = port.parse()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(seed(torrents.into(), data.into(), port))
}

async fn seed(
    torrents: PathBuf,
    data: PathBuf,
    port: u16,
) -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&torrents)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "torrent"))
        .collect();
    files.sort();
    let config = SessionConfig {
        listen: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        port,
        dht: None,
        port_mapping: None,
        use_trackers: false,
        pex: false,
        ..SessionConfig::default()
    };
    let (session, mut events) = Session::spawn_with(config);
    let mut waiting = HashSet::new();
    for file in &files {
        let meta = MetaInfo::load(file)?;
        let store = FileStore::from_meta_info(&data, &meta)?;
        waiting.insert(session.add_torrent(Torrent::new(meta, store)));
    }
    let count = waiting.len();
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        checked = wait_checked(&session, &mut events, waiting) => {
            checked?;
            let seconds = start.elapsed().as_secs_f64();
            println!("READY {count} {seconds:.3}");
            // Once ready, the events are not read: the session keeps none
            // for us.
            drop(events);
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
    }
    session.shutdown();
    session.join().await;
    println!("STOPPED");
    Ok(())
}

/// Waits until every torrent in `waiting` has been checked: from the events,
/// and (the receiver skips events when it falls behind) by asking each
/// torrent left its state every second.
async fn wait_checked(
    session: &SessionHandle,
    events: &mut EventReceiver,
    mut waiting: HashSet<InfoHash>,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut poll = tokio::time::interval(std::time::Duration::from_secs(1));
    poll.tick().await;
    while !waiting.is_empty() {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::TorrentChecked { info_hash, .. }) => {
                    waiting.remove(&info_hash);
                }
                Some(Event::Error { message }) => eprintln!("many: {message}"),
                Some(_) => {}
                None => return Err("the session ended".into()),
            },
            _ = poll.tick() => {
                for handle in session.torrents().await? {
                    if !waiting.contains(&handle.info_hash()) {
                        continue;
                    }
                    if handle.stats().await?.state != TorrentState::Checking {
                        waiting.remove(&handle.info_hash());
                    }
                }
            }
        }
    }
    Ok(())
}
