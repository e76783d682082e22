//! `torrents/add`: .torrent files (multipart `torrents`) and/or `urls`
//! (newline-separated magnet links, or http(s) URLs of .torrent files),
//! with the options qBittorrent takes.

use std::sync::Arc;

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::header::CONTENT_TYPE;
use bittorrent::magnet::Magnet;
use bittorrent::metainfo::MetaInfo;

use crate::daemon::error::ApiError;
use crate::daemon::model::{split_tags, SourceRecord, TorrentRecord};
use crate::daemon::params::Params;
use crate::daemon::persist;
use crate::daemon::server::MAX_ADD_BODY;
use crate::daemon::service::{unix_now, Daemon};
use crate::daemon::torrents::{self, Origin};

/// The options of one `torrents/add` call, checked.
struct AddOptions {
    savepath: Option<String>,
    category: String,
    tags: Vec<String>,
    paused: bool,
    sequential: bool,
    first_last: bool,
    ratio_limit: Option<f64>,
    seeding_time_limit: Option<i64>,
    up_limit: Option<i64>,
    dl_limit: Option<i64>,
    rename: Option<String>,
}

impl AddOptions {
    fn from_params(p: &Params, add_stopped: bool) -> Result<Self, ApiError> {
        Ok(Self {
            savepath: p
                .get("savepath")
                .filter(|s| !s.is_empty())
                .map(str::to_owned),
            category: p.get("category").unwrap_or("").trim().to_owned(),
            tags: split_tags(p.get("tags").unwrap_or(""))?,
            // `stopped` (5.0) or `paused` (4.x); the preference when neither.
            paused: match (p.get("stopped"), p.get("paused")) {
                (Some(_), _) => p.flag("stopped", add_stopped)?,
                (None, Some(_)) => p.flag("paused", add_stopped)?,
                (None, None) => add_stopped,
            },
            sequential: p.flag("sequentialDownload", false)?,
            first_last: p.flag("firstLastPiecePrio", false)?,
            ratio_limit: p.number("ratioLimit")?,
            seeding_time_limit: p.number("seedingTimeLimit")?,
            up_limit: p.number("upLimit")?,
            dl_limit: p.number("dlLimit")?,
            rename: p.get("rename").filter(|s| !s.is_empty()).map(str::to_owned),
        })
    }

    /// A new record for `hash` with these options.
    fn record(&self, daemon: &Daemon, hash: String, source: SourceRecord) -> TorrentRecord {
        let save_path = daemon.read(|m| m.save_path_for(self.savepath.as_deref(), &self.category));
        let mut r = TorrentRecord::new(hash, source, save_path, unix_now());
        r.category.clone_from(&self.category);
        r.tags = self.tags.iter().cloned().collect();
        r.paused = self.paused;
        r.sequential = self.sequential;
        r.first_last = self.first_last;
        r.ratio_limit = self
            .ratio_limit
            .map_or(-2.0, |l| if l < 0.0 { l.max(-2.0) } else { l });
        r.seeding_time_limit = self.seeding_time_limit.map_or(-2, |l| l.max(-2));
        r.up_limit = self
            .up_limit
            .and_then(|l| u64::try_from(l).ok())
            .filter(|&l| l > 0);
        r.dl_limit = self
            .dl_limit
            .and_then(|l| u64::try_from(l).ok())
            .filter(|&l| l > 0);
        r.name.clone_from(&self.rename);
        r
    }
}

/// What a request asks to add, read and checked before anything is added.
#[derive(Default)]
struct AddRequest {
    params: Params,
    files: Vec<Vec<u8>>,
}

async fn read_multipart(mut form: Multipart) -> Result<AddRequest, ApiError> {
    let mut request = AddRequest::default();
    let bad = |e: axum::extract::multipart::MultipartError| match e.status().as_u16() {
        413 => ApiError::TooLarge,
        _ => ApiError::bad(e.body_text()),
    };
    while let Some(field) = form.next_field().await.map_err(bad)? {
        let name = field.name().unwrap_or("").to_owned();
        if name == "torrents" || field.file_name().is_some() {
            request
                .files
                .push(field.bytes().await.map_err(bad)?.to_vec());
        } else {
            let value = field.text().await.map_err(bad)?;
            request.params.push(name, value);
        }
    }
    Ok(request)
}

/// `torrents/add`: `Ok.` when at least one torrent was added, `Fails.` when
/// none was (already there, or a bad link); 415 for a .torrent file that is
/// not valid (then nothing is added).
pub async fn add(
    State(daemon): State<Arc<Daemon>>,
    req: Request,
) -> Result<&'static str, ApiError> {
    let request = read_request(req).await?;
    let add_stopped = daemon.read(|m| m.config.preferences.add_stopped_enabled);
    let options = AddOptions::from_params(&request.params, add_stopped)?;
    let mut metas = request
        .files
        .iter()
        .map(|bytes| MetaInfo::from_bytes(bytes))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::UnsupportedMedia(format!("Torrent file is not valid: {e}")))?;
    let (fetched, magnets) = read_urls(request.params.get("urls").unwrap_or("")).await;
    metas.extend(fetched);
    daemon.change(|m| {
        m.ensure_category(&options.category)?;
        m.create_tags(&options.tags);
        Ok::<_, ApiError>(())
    })?;
    let mut added = 0;
    for meta in metas {
        added += usize::from(add_one(&daemon, &options, Origin::Meta(meta)).await?);
    }
    for magnet in magnets {
        added += usize::from(add_one(&daemon, &options, Origin::Magnet(magnet)).await?);
    }
    Ok(if added > 0 { "Ok." } else { "Fails." })
}

/// The request's fields and files: multipart, or a plain form (`urls` only).
async fn read_request(req: Request) -> Result<AddRequest, ApiError> {
    let multipart = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("multipart/form-data"));
    if multipart {
        let form = Multipart::from_request(req, &())
            .await
            .map_err(|e| ApiError::bad(e.body_text()))?;
        return read_multipart(form).await;
    }
    Ok(AddRequest {
        params: Params::from_request(req, &()).await?,
        files: Vec::new(),
    })
}

/// The `urls` lines: .torrent files fetched from http(s) URLs, and magnet
/// links; a line that is neither (or fails) is skipped with a warning.
async fn read_urls(urls: &str) -> (Vec<MetaInfo>, Vec<Magnet>) {
    let (mut metas, mut magnets) = (Vec::new(), Vec::new());
    for url in urls.lines().map(str::trim).filter(|u| !u.is_empty()) {
        if url.starts_with("http://") || url.starts_with("https://") {
            match fetch_torrent(url).await {
                Ok(meta) => metas.push(meta),
                Err(e) => log::warn!("torrents/add: {url}: {e}"),
            }
            continue;
        }
        match Magnet::parse(url) {
            Ok(magnet) => magnets.push(magnet),
            Err(e) => log::warn!("torrents/add: {e}"),
        }
    }
    (metas, magnets)
}

/// Adds one torrent: its .torrent copy and record first (a crash from here
/// on restores it), then the session. False for one already there.
async fn add_one(daemon: &Daemon, options: &AddOptions, origin: Origin) -> Result<bool, ApiError> {
    let (hash, source) = match &origin {
        Origin::Meta(meta) => (meta.info_hash.to_hex(), SourceRecord::Torrent),
        Origin::Magnet(magnet) => (
            magnet.info_hash.to_hex(),
            SourceRecord::Magnet(magnet.to_uri()),
        ),
    };
    if daemon.read(|m| m.get(&hash).is_some()) {
        log::info!("torrents/add: {hash} is already there");
        return Ok(false);
    }
    if let Origin::Meta(meta) = &origin {
        let (path, bytes) = (daemon.data.torrent_path(&hash), meta.to_torrent_bytes());
        tokio::task::spawn_blocking(move || persist::write_atomic(&path, &bytes))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    let record = options.record(daemon, hash.clone(), source);
    let torrent = torrents::build(origin, &record, &daemon.data, daemon.options.use_trackers)?;
    daemon.change_records(|m| m.torrents.push(record));
    match torrents::add(daemon, torrent).await {
        Ok(_) => {
            log::info!("[{hash}] added");
            Ok(true)
        }
        Err(e) => {
            daemon.change_records(|m| m.remove(&hash));
            Err(e)
        }
    }
}

/// Downloads a .torrent file (at most [`MAX_ADD_BODY`] bytes).
async fn fetch_torrent(url: &str) -> Result<MetaInfo, String> {
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut response = client
        .get(url)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if bytes.len() + chunk.len() > MAX_ADD_BODY {
            return Err("larger than 100 MiB".into());
        }
        bytes.extend_from_slice(&chunk);
    }
    MetaInfo::from_bytes(&bytes).map_err(|e| e.to_string())
}
