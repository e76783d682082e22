//! `bittorrent-cli daemon`: one long-running session driven over a
//! qBittorrent-compatible Web API.
//!
//! Layout: `qbt` holds the pure parts of the Web API (JSON views, filters,
//! sync deltas, auth, metrics), `page` the built-in web page.

// The handlers that use every item come with the daemon itself.
#[allow(dead_code)]
pub mod page;
#[allow(dead_code)]
pub mod qbt;
