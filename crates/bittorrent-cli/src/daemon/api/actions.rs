//! `torrents/*` actions on a list of torrents (`hashes`: `h1|h2|...` or
//! `all`; hashes the daemon does not have are skipped, as qBittorrent
//! does): each changes the record and tells the library.

use std::path::PathBuf;
use std::sync::Arc;

use axum::extract::State;
use axum::response::Json;
use bittorrent::limits::QueueMove;
use bittorrent::prelude::*;
use serde_json::{Map, Value};

use crate::daemon::error::ApiError;
use crate::daemon::model::TorrentRecord;
use crate::daemon::params::Params;
use crate::daemon::qbt::params::{self, Hashes};
use crate::daemon::service::Daemon;
use crate::daemon::torrents;

/// The torrents named by `hashes` that the daemon has, in queue order.
///
/// # Errors
/// 400 when `hashes` is missing or holds something that is not an info-hash.
pub fn hashes(daemon: &Daemon, params: &Params) -> Result<Vec<String>, ApiError> {
    let list = parse_hashes(params.required("hashes")?)?;
    Ok(daemon.select(list.as_deref()))
}

/// `all` (`None`) or the `|`-separated info-hashes, lowercase hex.
///
/// # Errors
/// 400 for an entry that is not 40 hex digits.
pub fn parse_hashes(list: &str) -> Result<Option<Vec<String>>, ApiError> {
    match params::parse_hashes(list).map_err(|e| ApiError::bad(e.to_string()))? {
        Hashes::All => Ok(None),
        Hashes::Some(list) => Ok(Some(list.iter().map(InfoHash::to_hex).collect())),
    }
}

/// One torrent named by `hash` (endpoints about a single torrent).
///
/// # Errors
/// 400 when missing or malformed, 404 when the daemon does not have it.
pub fn one_hash(daemon: &Daemon, params: &Params) -> Result<String, ApiError> {
    let hash = params::parse_hash(params.required("hash")?)
        .map_err(|e| ApiError::bad(e.to_string()))?
        .to_hex();
    if daemon.read(|m| m.get(&hash).is_none()) {
        return Err(ApiError::no_torrent());
    }
    Ok(hash)
}

/// Sets a field of each record, then calls the library for each torrent.
async fn each<F, C, Fut>(
    daemon: &Daemon,
    hashes: &[String],
    mut change: F,
    call: C,
) -> Result<(), ApiError>
where
    F: FnMut(&mut TorrentRecord),
    C: Fn(TorrentHandle, TorrentRecord) -> Fut,
    Fut: std::future::Future<Output = Result<(), bittorrent::torrent::TorrentError>>,
{
    for hash in hashes {
        let Some(record) = daemon.change_records(|m| {
            m.get_mut(hash).map(|r| {
                change(r);
                r.clone()
            })
        }) else {
            continue;
        };
        if let Ok(handle) = daemon.handle(hash).await {
            if let Err(e) = call(handle, record).await {
                log::warn!("[{hash}] {e}");
            }
        }
    }
    Ok(())
}

/// `torrents/stop` (and `pause`).
pub async fn stop(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| r.paused = true,
        |h, _| async move { h.pause().await },
    )
    .await
}

/// `torrents/start` (and `resume`).
pub async fn start(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| r.paused = false,
        |h, _| async move { h.resume().await },
    )
    .await
}

/// `torrents/recheck`.
pub async fn recheck(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |_| {},
        |h, _| async move { h.recheck().await },
    )
    .await
}

/// `torrents/reannounce`.
pub async fn reannounce(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |_| {},
        |h, _| async move { h.reannounce().await },
    )
    .await
}

/// `torrents/delete` (`deleteFiles`: its files and resume record too).
pub async fn delete(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let with_files = params.flag("deleteFiles", false)?;
    for hash in hashes(&daemon, &params)? {
        torrents::delete(&daemon, &hash, with_files).await?;
    }
    Ok(())
}

/// `torrents/addPeers` (`hashes`, `peers`: `|`-separated `IP:port`).
pub async fn add_peers(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let peers = params
        .required("peers")?
        .split('|')
        .filter(|p| !p.trim().is_empty())
        .map(|p| p.trim().parse::<std::net::SocketAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::bad("peers: not a list of IP:port"))?;
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |_| {},
        |h, _| {
            let peers = peers.clone();
            async move { h.add_peers(peers).await }
        },
    )
    .await
}

/// `torrents/setForceStart` (`value`).
pub async fn set_force_start(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let force = params.flag("value", false)?;
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| {
            r.forced = force;
            r.paused &= !force;
        },
        |h, _| async move { h.set_force_start(force).await },
    )
    .await
}

/// A rate limit parameter: bytes/s, 0 or negative for none.
fn limit_param(params: &Params) -> Result<Option<u64>, ApiError> {
    let limit: i64 = params
        .number("limit")?
        .ok_or_else(|| ApiError::bad("Missing required parameter: limit"))?;
    Ok(u64::try_from(limit).ok().filter(|&l| l > 0))
}

/// `torrents/setDownloadLimit` (`limit`, bytes/s).
pub async fn set_download_limit(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let limit = limit_param(&params)?;
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| r.dl_limit = limit,
        |h, r| async move { h.set_rate_limits(r.rate_limits()).await },
    )
    .await
}

/// `torrents/setUploadLimit` (`limit`, bytes/s).
pub async fn set_upload_limit(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let limit = limit_param(&params)?;
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| r.up_limit = limit,
        |h, r| async move { h.set_rate_limits(r.rate_limits()).await },
    )
    .await
}

fn limits_of(
    daemon: &Daemon,
    params: &Params,
    pick: fn(&TorrentRecord) -> Option<u64>,
) -> Result<Json<Value>, ApiError> {
    let hashes = hashes(daemon, params)?;
    let map: Map<String, Value> = daemon.read(|m| {
        hashes
            .iter()
            .filter_map(|h| m.get(h))
            .map(|r| (r.hash.clone(), Value::from(pick(r).unwrap_or(0))))
            .collect()
    });
    Ok(Json(Value::Object(map)))
}

/// `torrents/downloadLimit`: `{hash: bytes/s}` (0: none).
pub async fn download_limit(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    limits_of(&daemon, &params, |r| r.dl_limit)
}

/// `torrents/uploadLimit`.
pub async fn upload_limit(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    limits_of(&daemon, &params, |r| r.up_limit)
}

/// `torrents/setShareLimits` (`ratioLimit`, `seedingTimeLimit` in minutes;
/// -2 the global limit, -1 none).
pub async fn set_share_limits(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let ratio: f64 = params
        .number("ratioLimit")?
        .ok_or_else(|| ApiError::bad("Missing required parameter: ratioLimit"))?;
    let minutes: i64 = params
        .number("seedingTimeLimit")?
        .ok_or_else(|| ApiError::bad("Missing required parameter: seedingTimeLimit"))?;
    if !ratio.is_finite() || ratio < -2.0 || minutes < -2 {
        return Err(ApiError::bad("Invalid share limits"));
    }
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| (r.ratio_limit, r.seeding_time_limit) = (ratio, minutes),
        |h, r| async move { h.set_share_limits(r.share_limits()).await },
    )
    .await
}

/// `torrents/toggleSequentialDownload` (sequential wins over first/last).
pub async fn toggle_sequential(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| r.sequential = !r.sequential,
        |h, r| async move { h.set_mode(r.mode()).await },
    )
    .await
}

/// `torrents/toggleFirstLastPiecePrio` (the library's streaming mode).
pub async fn toggle_first_last(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let hashes = hashes(&daemon, &params)?;
    each(
        &daemon,
        &hashes,
        |r| r.first_last = !r.first_last,
        |h, r| async move { h.set_mode(r.mode()).await },
    )
    .await
}

async fn move_queue(daemon: &Daemon, params: &Params, to: QueueMove) -> Result<(), ApiError> {
    if !daemon.read(|m| m.config.preferences.queueing_enabled) {
        return Err(ApiError::Conflict(
            "Torrent queueing must be enabled".into(),
        ));
    }
    let mut hashes = hashes(daemon, params)?;
    // Moving to the top goes last-first, so the list keeps its order there.
    if matches!(to, QueueMove::Top | QueueMove::Up) {
        hashes.reverse();
    }
    for hash in hashes {
        if let Some(info_hash) = InfoHash::from_hex(&hash) {
            daemon.session.move_in_queue(info_hash, to).await?;
        }
    }
    Ok(())
}

/// `torrents/topPrio`.
pub async fn top_prio(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    move_queue(&daemon, &params, QueueMove::Top).await
}

/// `torrents/bottomPrio`.
pub async fn bottom_prio(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    move_queue(&daemon, &params, QueueMove::Bottom).await
}

/// `torrents/increasePrio`.
pub async fn increase_prio(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    move_queue(&daemon, &params, QueueMove::Up).await
}

/// `torrents/decreasePrio`.
pub async fn decrease_prio(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    move_queue(&daemon, &params, QueueMove::Down).await
}

/// `torrents/setLocation` (`location`).
pub async fn set_location(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<(), ApiError> {
    let location = params.required("location")?.trim();
    if location.is_empty() {
        return Err(ApiError::bad("Save path cannot be empty"));
    }
    let location = PathBuf::from(location);
    std::fs::create_dir_all(&location)
        .map_err(|e| ApiError::Conflict(format!("Cannot create the save path: {e}")))?;
    for hash in hashes(&daemon, &params)? {
        torrents::set_location(&daemon, &hash, &location).await?;
    }
    Ok(())
}

/// `torrents/rename` (`hash`, `name`).
pub async fn rename(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let hash = one_hash(&daemon, &params)?;
    let name = params.required("name")?.trim().to_owned();
    if name.is_empty() {
        return Err(ApiError::bad("Incorrect torrent name"));
    }
    daemon.change_records(|m| m.get_mut(&hash).map(|r| r.name = Some(name)));
    Ok(())
}

/// `torrents/filePrio` (`hash`, `id`: `|`-separated file indices,
/// `priority`: 0 skip, 1 normal, 6 high, 7 maximal).
pub async fn file_prio(State(daemon): State<Arc<Daemon>>, params: Params) -> Result<(), ApiError> {
    let hash = one_hash(&daemon, &params)?;
    let priority: i64 = params
        .number("priority")?
        .ok_or_else(|| ApiError::bad("Missing required parameter: priority"))?;
    if !crate::daemon::model::valid_priority(priority) {
        return Err(ApiError::bad("Priority is not valid"));
    }
    let ids = params
        .required("id")?
        .split('|')
        .map(|i| i.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| ApiError::bad("File IDs must be integers"))?;
    let handle = daemon.handle(&hash).await?;
    let mut all = handle
        .file_priorities()
        .await
        .map_err(|_| ApiError::Conflict("Torrent's metadata has not yet downloaded".into()))?;
    for &id in &ids {
        let slot = all
            .get_mut(id)
            .ok_or_else(|| ApiError::Conflict(format!("File ID is not valid: {id}")))?;
        *slot = crate::daemon::model::priority(priority as u8);
    }
    handle
        .set_file_priorities(all.clone())
        .await
        .map_err(|e| ApiError::Conflict(e.to_string()))?;
    daemon.change_records(|m| {
        if let Some(r) = m.get_mut(&hash) {
            let mut saved = r.file_priorities.clone().unwrap_or_else(|| {
                all.iter()
                    .map(|&p| crate::daemon::model::qbt_priority(p))
                    .collect()
            });
            saved.resize(all.len(), 1);
            for &id in &ids {
                saved[id] = priority as u8;
            }
            r.file_priorities = Some(saved);
        }
    });
    Ok(())
}
