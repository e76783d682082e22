//! `--serve`: a torrent's files over HTTP while it downloads.

use std::sync::Arc;
use std::time::Duration;

use bittorrent::prelude::*;
use bittorrent::torrent::StreamParts;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::http::{self, FileInfo, FileReader, FileSource};

/// The selected files of one torrent (pad files left out), each opened as a
/// streaming reader that waits for the pieces it needs.
struct TorrentFiles {
    parts: StreamParts,
    /// Index in the torrent's file list of each served file.
    indices: Vec<usize>,
}

impl FileSource for TorrentFiles {
    fn files(&self) -> Vec<FileInfo> {
        let files = &self.parts.meta_info().files;
        self.indices
            .iter()
            .map(|&i| FileInfo {
                path: files[i]
                    .path
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/"),
                length: files[i].length,
            })
            .collect()
    }

    fn open(&self, index: usize) -> Option<Box<dyn FileReader>> {
        let file = *self.indices.get(index)?;
        let reader = self.parts.open(file)?;
        Some(Box::new(reader))
    }
}

/// Waits until the torrent's metadata is known (magnet links), then serves
/// its files on `listener` until `stop` fires.
pub async fn run(
    session: SessionHandle,
    torrent: Option<InfoHash>,
    listener: TcpListener,
    stop: CancellationToken,
) {
    let Some(info_hash) = torrent else { return };
    let parts = loop {
        let handle = match session.torrent(info_hash).await {
            Ok(Some(handle)) => Some(handle),
            Ok(None) => None,
            Err(_) => return,
        };
        if let Some(handle) = handle {
            match handle.stream_parts().await {
                Ok(Some(parts)) => break parts,
                Ok(None) => {}
                Err(_) => return,
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    };
    // Selected files only (a skipped file could not be streamed).
    let priorities = match session.torrent(info_hash).await {
        Ok(Some(handle)) => handle.file_priorities().await.unwrap_or_default(),
        _ => Vec::new(),
    };
    let indices = (0..parts.meta_info().files.len())
        .filter(|&i| !parts.meta_info().files[i].pad)
        .filter(|&i| priorities.get(i) != Some(&Priority::Skip))
        .collect();
    if let Ok(addr) = listener.local_addr() {
        eprintln!("serving {} at http://{addr}/", parts.meta_info().name);
    }
    let source = Arc::new(TorrentFiles { parts, indices });
    if let Err(e) = http::serve(listener, source, stop).await {
        log::error!("HTTP server failed: {e}");
    }
}
