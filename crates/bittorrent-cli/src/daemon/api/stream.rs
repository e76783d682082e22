//! `/stream/<infohash>/<file index>`: a torrent's file over HTTP with range
//! requests, by the range server of `--serve` (`crate::http`); a reader
//! waits for the pieces it needs, which the torrent fetches first.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use bittorrent::torrent::StreamParts;

use crate::daemon::error::ApiError;
use crate::daemon::service::Daemon;
use crate::http::{self, FileInfo, FileReader, FileSource};

/// Every file of one torrent, by its index in the metainfo (a skipped or
/// pad file is a 404).
struct TorrentFiles {
    parts: StreamParts,
    skipped: Vec<bool>,
}

impl FileSource for TorrentFiles {
    fn files(&self) -> Vec<FileInfo> {
        self.parts
            .meta_info()
            .files
            .iter()
            .map(|f| FileInfo {
                path: f.path.to_string_lossy().replace('\\', "/"),
                length: f.length,
            })
            .collect()
    }

    fn open(&self, index: usize) -> Option<Box<dyn FileReader>> {
        let file = self.parts.meta_info().files.get(index)?;
        if file.pad || self.skipped.get(index).copied().unwrap_or(false) {
            return None;
        }
        Some(Box::new(self.parts.open(index)?))
    }
}

/// `GET|HEAD /stream/<infohash>/<index>`.
pub async fn stream(
    State(daemon): State<Arc<Daemon>>,
    Path((hash, index)): Path<(String, String)>,
    req: Request,
) -> Result<Response, ApiError> {
    let hash = hash.to_ascii_lowercase();
    let index: usize = index
        .parse()
        .map_err(|_| ApiError::NotFound("No such file".into()))?;
    let handle = daemon.handle(&hash).await?;
    let parts = handle
        .stream_parts()
        .await
        .map_err(|_| ApiError::no_torrent())?
        .ok_or_else(|| ApiError::Conflict("Torrent's metadata has not yet downloaded".into()))?;
    let skipped = handle
        .file_priorities()
        .await
        .unwrap_or_default()
        .into_iter()
        .map(|p| p == bittorrent::prelude::Priority::Skip)
        .collect();
    let source = TorrentFiles { parts, skipped };
    if source.open(index).is_none() {
        return Err(ApiError::NotFound("No such file".into()));
    }
    let response = http::file_response(req.method(), req.headers(), &source, index, &daemon.stop);
    Ok(response.map(Body::new).into_response())
}
