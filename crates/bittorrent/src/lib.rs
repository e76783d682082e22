//! An async BitTorrent v1 engine.
//!
//! # Layout
//! The module tree mirrors the running tasks:
//! - [`session`]: the root actor; owns the torrents and the event stream.
//! - [`torrent`]: one actor per torrent; owns the piece picker, the peers and
//!   the announce loop, verifies pieces and hands them to the [`store`].
//! - [`peer`]: one actor per connection; speaks the [`wire`] protocol.
//!
//! Beside them the pure, IO-free modules: [`metainfo`] (.torrent parsing),
//! [`bencode`], [`wire`] (codecs), [`tracker`] (announce formats, plus its
//! HTTP client), [`picker`] (which block next), [`bitfield`], [`resume`]
//! (the resume record) and [`recovery`] (what a restart trusts), and [`store`]
//! (the `Store` trait with [`FileStore`](store::FileStore) and
//! [`MemoryStore`](store::MemoryStore)).
//!
//! # Example
//! ```no_run
//! use bittorrent::prelude::*;
//! #[tokio::main(flavor = "current_thread")]
//! async fn main() {
//!     let (session, _) = Session::spawn();
//!     let meta_info = MetaInfo::load("sample.torrent").unwrap();
//!     let store = FileStore::from_meta_info("downloads", &meta_info).unwrap();
//!     session.add_torrent(Torrent::new(meta_info, store));
//!     session.join().await; // runs until shutdown is called on the session
//! }
//! ```
#![warn(missing_docs)]

pub mod bencode;
pub mod bitfield;
pub mod choker;
mod config;
pub mod dht;
mod event;
pub mod extension;
mod fsio;
pub mod magnet;
pub mod metainfo;
pub mod peer;
pub mod picker;
pub mod recovery;
pub mod resume;
pub mod session;
pub mod store;
pub mod torrent;
pub mod tracker;
pub mod types;
pub mod wire;

/// The names an embedder needs: `use bittorrent::prelude::*;`.
pub mod prelude {
    pub use crate::metainfo::MetaInfo;
    pub use crate::picker::{PickMode, Priority};
    pub use crate::session::{
        Event, EventReceiver, Session, SessionConfig, SessionHandle, SessionStats,
    };
    pub use crate::store::{FileStore, MemoryStore, Store};
    pub use crate::torrent::{Torrent, TorrentHandle, TorrentState, TorrentStats};
    pub use crate::types::{InfoHash, PeerId};
}
