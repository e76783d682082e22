//! The pure parts of the qBittorrent Web API v2 (as qBittorrent 5.0): what
//! the handlers answer, without IO.
//!
//! - `views` (torrents/info objects, the daemon-side `TorrentRecord`),
//!   `details` (properties, files, trackers, pieceStates), `session`
//!   (transfer/info, server_state, categories), `prefs` (app/preferences
//!   and setPreferences): qBittorrent's field names and units.
//! - `state`: the state strings. `query`: torrents/info's filter, sort and
//!   paging. `params`: the request parameter parsers (hashes, ...).
//! - `sync`: sync/maindata rid deltas. `auth`: password hashes, SID
//!   sessions, login bans, the CSRF check. `metrics`: /metrics.

pub mod auth;
pub mod details;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod params;
pub mod prefs;
pub mod query;
#[cfg(test)]
mod robustness;
pub mod session;
pub mod state;
pub mod sync;
pub mod views;
