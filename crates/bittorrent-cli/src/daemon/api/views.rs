//! The read endpoints: `torrents/info`, `properties`, `files`, `trackers`,
//! `pieceStates`, `sync/maindata`, `/metrics`. Each gathers records and the
//! library's stats ([`Gathered`]) and hands them to the pure views of `qbt`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Json, Response};
use bittorrent::metainfo::MetaInfo;
use bittorrent::prelude::*;
use bittorrent::session::SessionStats;
use serde_json::Value;

use crate::daemon::api::actions::one_hash;
use crate::daemon::error::ApiError;
use crate::daemon::model::{SourceRecord, TorrentRecord};
use crate::daemon::params::Params;
use crate::daemon::prefs;
use crate::daemon::qbt::query::InfoQuery;
use crate::daemon::qbt::session::{self as qsession, Category, Listening, ServerFacts};
use crate::daemon::qbt::sync::{tracker_map, MainData};
use crate::daemon::qbt::views::{self, TorrentInfo, TorrentInput, ViewContext};
use crate::daemon::qbt::{details, metrics};
use crate::daemon::service::{unix_now, Daemon};

/// The view record of a daemon record.
fn view_record(r: &TorrentRecord) -> views::TorrentRecord {
    views::TorrentRecord {
        name: r.name.clone(),
        save_path: r.save_path.display().to_string(),
        category: r.category.clone(),
        tags: r.tags.clone(),
        added_on: r.added_on,
        completion_on: r.completion_on,
        last_activity: None,
        sequential: r.sequential,
        first_last_piece: r.first_last,
        magnet_uri: match &r.source {
            SourceRecord::Magnet(uri) => Some(uri.clone()),
            SourceRecord::Torrent => None,
        },
        file_priorities: r.file_priorities.clone().unwrap_or_default(),
        prior_active_time: Duration::ZERO,
    }
}

/// The library's stats of a torrent, with the daemon's settings (which it
/// set) and all-time totals (at least what was saved) laid over them; a
/// torrent whose actor is not running is in error.
fn view_stats(r: &TorrentRecord, stats: Option<TorrentStats>) -> TorrentStats {
    let mut stats = stats.unwrap_or_else(|| TorrentStats {
        state: TorrentState::Error,
        error: Some("not running".into()),
        ..TorrentStats::default()
    });
    stats.rate_limits = r.rate_limits();
    stats.share_limits = r.share_limits();
    stats.force_start = r.forced;
    stats.total_downloaded = stats.total_downloaded.max(r.downloaded);
    stats.total_uploaded = stats.total_uploaded.max(r.uploaded);
    stats.seeding_time = stats.seeding_time.max(Duration::from_secs(r.seeding_time));
    stats
}

/// Everything the views need, owned; [`Gathered::inputs`] borrows it.
pub struct Gathered {
    hashes: Vec<InfoHash>,
    records: Vec<views::TorrentRecord>,
    stats: Vec<TorrentStats>,
    metas: Vec<Option<Arc<MetaInfo>>>,
    positions: HashMap<InfoHash, usize>,
    /// The context of the views.
    pub ctx: ViewContext,
    /// The session's stats.
    pub session: SessionStats,
}

impl Gathered {
    /// Records and stats of the torrents `hashes` names (`None`: all).
    pub async fn new(daemon: &Daemon, hashes: Option<&[String]>) -> Self {
        let snapshots = daemon.snapshots(hashes).await;
        let session = daemon.session.stats().await.unwrap_or_default();
        let (prefs, dht) = daemon.read(|m| {
            let p = &m.config.preferences;
            (prefs::share_limits(p), (p.queueing_enabled, p.dht, p.pex))
        });
        let mut out = Self {
            hashes: Vec::new(),
            records: Vec::new(),
            stats: Vec::new(),
            metas: Vec::new(),
            positions: HashMap::new(),
            ctx: ViewContext {
                now_unix: unix_now(),
                now: Instant::now(),
                queueing: dht.0,
                share_limits: prefs,
                dht: dht.1 && daemon.options.dht,
                pex: dht.2 && daemon.options.pex,
            },
            session,
        };
        for s in snapshots {
            let Some(hash) = InfoHash::from_hex(&s.record.hash) else {
                continue;
            };
            out.hashes.push(hash);
            out.records.push(view_record(&s.record));
            out.stats.push(view_stats(&s.record, s.stats));
            out.metas.push(s.meta);
        }
        let complete: HashMap<InfoHash, bool> = out
            .hashes
            .iter()
            .zip(&out.stats)
            .map(|(h, s)| (*h, s.complete))
            .collect();
        out.positions = views::queue_positions(&out.session.queue, |h| {
            complete.get(h).copied().unwrap_or(false)
        });
        out
    }

    /// One input per torrent.
    pub fn inputs(&self) -> Vec<TorrentInput<'_>> {
        (0..self.hashes.len())
            .map(|i| TorrentInput {
                hash: self.hashes[i],
                record: &self.records[i],
                stats: &self.stats[i],
                meta: self.metas[i].as_deref(),
                queue_position: self.positions.get(&self.hashes[i]).copied(),
            })
            .collect()
    }

    /// The `torrents/info` objects.
    pub fn infos(&self) -> Vec<TorrentInfo> {
        self.inputs()
            .iter()
            .map(|input| views::torrent_info(input, &self.ctx))
            .collect()
    }
}

/// `torrents/info` (filter, category, tag, hashes, private, sort, reverse,
/// limit, offset).
pub async fn info(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Json<Value>, ApiError> {
    let query = InfoQuery::from_params(|name| params.get(name))
        .map_err(|e| ApiError::bad(e.to_string()))?;
    let gathered = Gathered::new(&daemon, None).await;
    let list = query
        .select(&gathered.infos())
        .map_err(|e| ApiError::bad(e.to_string()))?;
    Ok(Json(Value::Array(list)))
}

/// One torrent's gathered inputs (404 if unknown).
async fn one(daemon: &Daemon, params: &Params) -> Result<(String, Gathered), ApiError> {
    let hash = one_hash(daemon, params)?;
    let gathered = Gathered::new(daemon, Some(std::slice::from_ref(&hash))).await;
    if gathered.hashes.is_empty() {
        return Err(ApiError::no_torrent());
    }
    Ok((hash, gathered))
}

/// `torrents/properties` (`hash`).
pub async fn properties(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let (_, g) = one(&daemon, &params).await?;
    let inputs = g.inputs();
    let info = views::torrent_info(&inputs[0], &g.ctx);
    Ok(Json(details::properties(&inputs[0], &info, &g.ctx)).into_response())
}

/// `torrents/files` (`hash`, optional `indexes`: `|`-separated).
pub async fn files(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let (hash, g) = one(&daemon, &params).await?;
    let done = match daemon.handle(&hash).await {
        Ok(handle) => handle.file_progress().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    let mut rows = details::files(&g.inputs()[0], &done);
    if let Some(indexes) = params.get("indexes").filter(|i| !i.is_empty()) {
        let wanted = crate::daemon::qbt::params::parse_file_ids(indexes)
            .map_err(|e| ApiError::bad(e.to_string()))?;
        rows.retain(|row| wanted.contains(&row.index));
    }
    Ok(Json(rows).into_response())
}

/// `torrents/trackers` (`hash`).
pub async fn trackers(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let (_, g) = one(&daemon, &params).await?;
    Ok(Json(details::trackers(&g.inputs()[0], &g.ctx)).into_response())
}

/// `torrents/pieceStates` (`hash`): 0 missing, 1 downloading, 2 have.
pub async fn piece_states(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let hash = one_hash(&daemon, &params)?;
    let handle = daemon.handle(&hash).await?;
    let states = handle.piece_states().await.unwrap_or_default();
    Ok(Json(details::piece_states(&states)).into_response())
}

/// The session-wide facts of `server_state` and `transfer/info`.
fn listening(daemon: &Daemon, g: &Gathered) -> Listening {
    Listening {
        listening: daemon.session.listen_addr().is_some(),
        had_incoming: g.stats.iter().any(|s| s.inbound_peers > 0),
    }
}

/// `transfer/info`.
pub async fn transfer_info(State(daemon): State<Arc<Daemon>>) -> Response {
    let g = Gathered::new(&daemon, Some(&[])).await;
    Json(qsession::transfer_info(&g.session, listening(&daemon, &g))).into_response()
}

/// `sync/maindata` (`rid`): changes since the answer of that id.
pub async fn maindata(
    State(daemon): State<Arc<Daemon>>,
    params: Params,
) -> Result<Response, ApiError> {
    let rid: i64 = params.number("rid")?.unwrap_or(0);
    let g = Gathered::new(&daemon, None).await;
    let infos = g.infos();
    let inputs = g.inputs();
    let (categories, tags, alt, queueing) = daemon.read(|m| {
        let categories: Vec<Category> = m
            .config
            .categories
            .iter()
            .map(|(name, c)| Category {
                name: name.clone(),
                save_path: c.save_path.clone(),
            })
            .collect();
        (
            categories,
            m.config.tags.iter().cloned().collect::<Vec<_>>(),
            m.config.alt_speed_enabled,
            m.config.preferences.queueing_enabled,
        )
    });
    let facts = ServerFacts {
        alltime_dl: g.stats.iter().map(|s| s.total_downloaded).sum(),
        alltime_ul: g.stats.iter().map(|s| s.total_uploaded).sum(),
        total_wasted_session: g.stats.iter().map(|s| s.wasted).sum(),
        total_peer_connections: g.stats.iter().map(|s| s.peers).sum(),
        queueing,
        use_alt_speed_limits: alt,
        free_space_on_disk: 0,
    };
    let transfer = qsession::transfer_info(&g.session, listening(&daemon, &g));
    let state = qsession::server_state(transfer, &facts);
    let now = MainData::new(&infos, &categories, &tags, tracker_map(&inputs), &state);
    let answer = daemon.lock_maindata().answer(rid, now);
    Ok(Json(answer).into_response())
}

/// `/metrics`: the Prometheus text format.
pub async fn metrics(State(daemon): State<Arc<Daemon>>) -> Response {
    let g = Gathered::new(&daemon, None).await;
    let text = metrics::render(&g.session, &g.inputs());
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}
