//! The pure parts of the qBittorrent Web API v2 (as qBittorrent 5.0): what
//! the handlers answer, without IO. `views` builds the JSON objects with
//! qBittorrent's field names and units, `state` decides the state strings,
//! `query` filters and sorts `torrents/info` and parses the `hashes`
//! parameter, `sync` computes `sync/maindata` deltas, `auth` holds
//! passwords, sessions, login bans and the CSRF check, `metrics` renders
//! `/metrics`.

pub mod auth;
pub mod details;
#[cfg(test)]
mod fixtures;
pub mod metrics;
pub mod params;
pub mod prefs;
pub mod query;
pub mod session;
pub mod state;
pub mod sync;
pub mod views;
