//! Session-wide answers with qBittorrent 5.0's keys: `transfer/info`, the
//! `server_state` of `sync/maindata`, and `torrents/categories`.

use std::collections::BTreeMap;

use bittorrent::session::SessionStats;
use serde::{Deserialize, Serialize};

/// `transfer/info`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransferInfo {
    /// Bytes per second.
    pub dl_info_speed: u64,
    /// Bytes this session.
    pub dl_info_data: u64,
    pub up_info_speed: u64,
    pub up_info_data: u64,
    /// Bytes per second, 0 unlimited.
    pub dl_rate_limit: u64,
    pub up_rate_limit: u64,
    pub dht_nodes: usize,
    /// "connected" (an inbound peer came), "firewalled" or "disconnected"
    /// (not listening).
    pub connection_status: &'static str,
}

/// Whether the session accepts peers, for `connection_status`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listening {
    /// A peer listen socket is bound.
    pub listening: bool,
    /// Some peer has connected to it.
    pub had_incoming: bool,
}

/// `transfer/info` from the session's stats.
pub fn transfer_info(stats: &SessionStats, listening: Listening) -> TransferInfo {
    TransferInfo {
        dl_info_speed: stats.download_rate,
        dl_info_data: stats.downloaded,
        up_info_speed: stats.upload_rate,
        up_info_data: stats.uploaded,
        dl_rate_limit: stats.rate_limits.download.unwrap_or(0),
        up_rate_limit: stats.rate_limits.upload.unwrap_or(0),
        dht_nodes: stats.dht.as_ref().map_or(0, |d| d.routing_table_size),
        connection_status: match (listening.listening, listening.had_incoming) {
            (false, _) => "disconnected",
            (true, true) => "connected",
            (true, false) => "firewalled",
        },
    }
}

/// What `server_state` adds to `transfer/info`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ServerFacts {
    /// All-time payload received (over runs).
    pub alltime_dl: u64,
    /// All-time payload sent.
    pub alltime_ul: u64,
    /// Bytes thrown away this session.
    pub total_wasted_session: u64,
    /// Connected peers over all torrents.
    pub total_peer_connections: usize,
    /// The queue is on.
    pub queueing: bool,
    /// The alternative ("slow") rate limits are in force.
    pub use_alt_speed_limits: bool,
    /// Free bytes where new torrents are saved.
    pub free_space_on_disk: u64,
}

/// `server_state` of `sync/maindata` (qBittorrent's keys, the cache
/// figures of libtorrent shown as 0).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ServerState {
    #[serde(flatten)]
    pub transfer: TransferInfo,
    pub alltime_dl: u64,
    pub alltime_ul: u64,
    pub total_wasted_session: u64,
    /// Two decimals, "-" until something moved both ways.
    pub global_ratio: String,
    pub total_peer_connections: usize,
    pub queueing: bool,
    pub use_alt_speed_limits: bool,
    /// Milliseconds between refreshes a client should use.
    pub refresh_interval: u32,
    pub free_space_on_disk: u64,
    pub use_subcategories: bool,
    pub read_cache_hits: &'static str,
    pub read_cache_overload: &'static str,
    pub write_cache_overload: &'static str,
    pub queued_io_jobs: u32,
    pub average_time_queue: u32,
    pub total_buffers_size: u64,
    pub total_queued_size: u64,
}

/// The `server_state` object.
pub fn server_state(transfer: TransferInfo, facts: &ServerFacts) -> ServerState {
    let global_ratio = if facts.alltime_dl > 0 && facts.alltime_ul > 0 {
        format!("{:.2}", facts.alltime_ul as f64 / facts.alltime_dl as f64)
    } else {
        "-".to_owned()
    };
    ServerState {
        transfer,
        alltime_dl: facts.alltime_dl,
        alltime_ul: facts.alltime_ul,
        total_wasted_session: facts.total_wasted_session,
        global_ratio,
        total_peer_connections: facts.total_peer_connections,
        queueing: facts.queueing,
        use_alt_speed_limits: facts.use_alt_speed_limits,
        refresh_interval: 1500,
        free_space_on_disk: facts.free_space_on_disk,
        use_subcategories: false,
        read_cache_hits: "0",
        read_cache_overload: "0",
        write_cache_overload: "0",
        queued_io_jobs: 0,
        average_time_queue: 0,
        total_buffers_size: 0,
        total_queued_size: 0,
    }
}

/// One category as `torrents/categories` and `sync/maindata` show it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    pub name: String,
    /// "" for the default save path.
    #[serde(rename = "savePath")]
    pub save_path: String,
}

/// Why a category name is refused (qBittorrent's `isValidCategoryName`).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("Invalid category name")]
pub struct InvalidCategory;

/// Checks a category name as qBittorrent does: not empty, no leading or
/// trailing `/`, no `//`, no `\`. Subcategories (`a/b`) are accepted as
/// plain names.
pub fn check_category_name(name: &str) -> Result<(), InvalidCategory> {
    let bad = name.is_empty()
        || name.starts_with('/')
        || name.ends_with('/')
        || name.contains("//")
        || name.contains('\\');
    if bad {
        Err(InvalidCategory)
    } else {
        Ok(())
    }
}

/// `torrents/categories`: name -> category.
pub fn categories<'a>(list: impl IntoIterator<Item = &'a Category>) -> BTreeMap<String, Category> {
    list.into_iter()
        .map(|c| (c.name.clone(), c.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bittorrent::limits::RateLimits;

    fn session_stats() -> SessionStats {
        SessionStats {
            download_rate: 100,
            upload_rate: 50,
            downloaded: 1000,
            uploaded: 500,
            rate_limits: RateLimits {
                download: Some(2048),
                upload: None,
            },
            ..SessionStats::default()
        }
    }

    #[test]
    fn transfer_info_keys_and_connection_status() {
        let stats = session_stats();
        let up = Listening {
            listening: true,
            had_incoming: false,
        };
        let json = serde_json::to_value(transfer_info(&stats, up)).unwrap();
        assert_eq!(json["dl_info_speed"], 100);
        assert_eq!(json["up_info_data"], 500);
        assert_eq!(json["dl_rate_limit"], 2048);
        assert_eq!(json["up_rate_limit"], 0);
        assert_eq!(json["dht_nodes"], 0);
        assert_eq!(json["connection_status"], "firewalled");
        let none = Listening {
            listening: false,
            had_incoming: true,
        };
        assert_eq!(
            transfer_info(&stats, none).connection_status,
            "disconnected"
        );
    }

    #[test]
    fn server_state_flattens_transfer_info_and_formats_the_ratio() {
        let facts = ServerFacts {
            alltime_dl: 3000,
            alltime_ul: 1000,
            total_wasted_session: 0,
            total_peer_connections: 4,
            queueing: true,
            use_alt_speed_limits: false,
            free_space_on_disk: 1 << 30,
        };
        let listening = Listening {
            listening: true,
            had_incoming: true,
        };
        let state = server_state(transfer_info(&session_stats(), listening), &facts);
        let json = serde_json::to_value(&state).unwrap();
        assert_eq!(json["global_ratio"], "0.33");
        assert_eq!(json["connection_status"], "connected");
        assert_eq!(json["queueing"], true);
        assert_eq!(json["refresh_interval"], 1500);
        let none = ServerFacts {
            alltime_ul: 0,
            ..facts
        };
        let state = server_state(transfer_info(&session_stats(), listening), &none);
        assert_eq!(state.global_ratio, "-");
    }

    #[test]
    fn category_names_and_json() {
        assert!(check_category_name("tv").is_ok());
        assert!(check_category_name("tv/hd").is_ok());
        for bad in ["", "/tv", "tv/", "a//b", "a\\b"] {
            assert_eq!(check_category_name(bad), Err(InvalidCategory), "{bad}");
        }
        let list = [Category {
            name: "tv".to_owned(),
            save_path: "/srv/tv".to_owned(),
        }];
        let json = serde_json::to_value(categories(&list)).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"tv": {"name": "tv", "savePath": "/srv/tv"}})
        );
    }
}
