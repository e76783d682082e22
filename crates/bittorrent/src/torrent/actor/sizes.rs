//! What one torrent's actor costs in fixed memory, printed (not asserted:
//! layouts change with the compiler). `cargo test --release -p bittorrent
//! --lib torrent::actor::sizes -- --nocapture`; scripts/bench-many measures
//! the whole.

use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, watch, Notify, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::SessionConfig;
use crate::metainfo::MetaInfo;
use crate::peer::connect::Connector;
use crate::store::MemoryStore;
use crate::torrent::actor::{run, Running, Shell};
use crate::torrent::command::{command_channel, TorrentCommand};
use crate::torrent::core::TorrentCore;
use crate::torrent::status::SessionLinks;
use crate::torrent::Torrent;

#[tokio::test]
async fn print_the_sizes_of_a_torrents_parts() {
    let meta = MetaInfo::for_test("t", 16384, &[("a", 65536, false)]);
    let store = MemoryStore::new(&meta);
    let (_tx, rx) = command_channel(1);
    let (links, _session) = SessionLinks::new(
        Arc::new(Notify::new()),
        watch::channel(Default::default()).1,
        broadcast::channel(1).0,
        Arc::new(Semaphore::new(1)),
    );
    let future = run(
        Torrent::new(meta, store),
        Arc::new(SessionConfig::default()),
        None,
        Connector::new(Duration::from_secs(1)),
        rx,
        links,
        CancellationToken::new(),
    );
    println!("task future: {} B", std::mem::size_of_val(&future));
    println!("Shell: {} B", size_of::<Shell>());
    println!("Running: {} B", size_of::<Running>());
    println!("TorrentCore: {} B", size_of::<TorrentCore>());
    println!("TorrentCommand: {} B", size_of::<TorrentCommand>());
    println!("Event: {} B", size_of::<crate::event::Event>());
    use crate::torrent::core as c;
    println!("  PeerSet: {} B", size_of::<c::peers::PeerSet>());
    println!("  PieceFlow: {} B", size_of::<c::pieces::PieceFlow>());
    println!("    Picker: {} B", size_of::<crate::picker::Picker>());
    println!("  Swarm: {} B", size_of::<c::swarm::Swarm>());
    println!("  Readers: {} B", size_of::<c::readers::Readers>());
    println!("  WebSeeds: {} B", size_of::<c::webseeds::WebSeeds>());
    println!("  Selection: {} B", size_of::<c::selection::Selection>());
    println!("  Control: {} B", size_of::<c::control::Control>());
    println!("  CoreConfig: {} B", size_of::<c::CoreConfig>());
    println!(
        "  Choker: {} B",
        size_of::<crate::choker::Choker<std::net::SocketAddr>>()
    );
}
