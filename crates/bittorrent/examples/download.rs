//! The smallest embedding: download one torrent into `downloads/`.
//!
//! `cargo run --example download -p bittorrent` (expects `sample.torrent` in
//! the working directory).
use bittorrent::prelude::*;
#[tokio::main(flavor = "current_thread")]
async fn main() {
    let (session, _) = Session::spawn();
    let meta_info = MetaInfo::load("sample.torrent").unwrap();
    let store = FileStore::from_meta_info("downloads", &meta_info).unwrap();
    session.add_torrent(Torrent::new(meta_info, store));
    session.join().await; // runs until shutdown is called on the session
}
