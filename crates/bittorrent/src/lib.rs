//! An async BitTorrent v1 engine.
//!
//! # Layout
//! The module tree mirrors the running tasks:
//! - [`session`]: the root actor; owns the torrents and the event stream.
//! - [`torrent`]: one actor per torrent; owns the piece picker, the peers and
//!   the announce loop, verifies pieces and hands them to the [`store`].
//! - `peer` (internal): one actor per connection; speaks the [`wire`] protocol.
//!
//! Beside them the pure, IO-free modules an embedder may use: [`metainfo`]
//! (.torrent parsing), [`magnet`], [`bencode`], [`wire`] (codecs),
//! [`bitfield`], [`dht`] (its configuration and node), and [`store`] (the
//! `Store` trait with [`FileStore`](store::FileStore) and
//! [`MemoryStore`](store::MemoryStore)). The engine's own parts (the piece
//! picker, the choker, tracker clients, the resume record and what a restart
//! trusts) are internal; ARCHITECTURE.md maps them. [`create`] makes .torrent
//! files from a file or a folder, hashing on every core. [`portmap`] asks
//! the NAT gateway (UPnP IGD, NAT-PMP, PCP) to forward the listen port.
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

// `choker`, `peer` and `picker` are the engine's own parts, private. `extension`, `recovery`,
// `resume`, `tracker` and `webseed` stay reachable for the fuzz targets (fuzz/) and the
// in-process test peers (tests/), but are hidden from the reference: they are not an API for
// embedders.
pub mod bencode;
pub mod bitfield;
pub(crate) mod choker;
mod config;
pub mod create;
pub mod dht;
mod event;
#[doc(hidden)]
pub mod extension;
mod fsio;
pub mod limits;
pub mod magnet;
pub mod metainfo;
pub mod mse;
pub(crate) mod peer;
pub(crate) mod picker;
#[doc(hidden)]
pub mod portmap;
pub(crate) mod random;
pub(crate) mod ratelimit;
pub mod recovery;
#[doc(hidden)]
pub mod resume;
pub mod session;
pub mod store;
pub mod torrent;
#[doc(hidden)]
pub mod tracker;
pub mod types;
pub mod utp;
#[doc(hidden)]
pub mod webseed;
pub mod wire;

/// The names an embedder needs: `use bittorrent::prelude::*;`.
pub mod prelude {
    pub use crate::limits::{QueueConfig, RateLimits, ShareLimits};
    pub use crate::metainfo::MetaInfo;
    pub use crate::session::{
        EncryptionPolicy, Event, EventReceiver, Session, SessionConfig, SessionHandle, SessionStats,
    };
    pub use crate::store::{FileStore, MemoryStore, Store};
    pub use crate::torrent::{PickMode, Priority};
    pub use crate::torrent::{Torrent, TorrentHandle, TorrentState, TorrentStats};
    pub use crate::types::{InfoHash, PeerId};
}
