//! Torrents in and out of the session: building a library `Torrent` from a
//! record (at add, at restart, after a move), restoring every record at
//! start, removing one (with its files), moving one's files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bittorrent::magnet::Magnet;
use bittorrent::metainfo::MetaInfo;
use bittorrent::prelude::*;
use bittorrent::session::SessionError;
use bittorrent::store::RESUME_DIR;

use crate::daemon::error::ApiError;
use crate::daemon::model::{SourceRecord, TorrentRecord};
use crate::daemon::persist::{self, DataDir};
use crate::daemon::service::Daemon;

/// What a torrent is made from.
pub enum Origin {
    /// Its metainfo.
    Meta(MetaInfo),
    /// A magnet link (the metainfo is saved as `DATA/torrents/<hash>.torrent`
    /// when it arrives).
    Magnet(Magnet),
}

/// The library torrent for `record`, with every option it records.
///
/// # Errors
/// [`ApiError::Conflict`] when the store cannot be made (unsafe paths).
pub fn build(
    origin: Origin,
    record: &TorrentRecord,
    data: &DataDir,
    use_trackers: bool,
) -> Result<Torrent, ApiError> {
    let save_path = record.save_path.clone();
    let torrent = match origin {
        Origin::Meta(meta) => {
            let store = FileStore::from_meta_info(&save_path, &meta)
                .map_err(|e| ApiError::Conflict(format!("{}: {e}", meta.name)))?;
            Torrent::new(meta, store)
        }
        Origin::Magnet(magnet) => {
            let path = data.torrent_path(&record.hash);
            Torrent::from_magnet(magnet, move |meta| {
                // Before the store exists: a restart from here on finds the file.
                if let Err(e) = persist::write_atomic(&path, &meta.to_torrent_bytes()) {
                    log::error!("cannot save the metainfo of {}: {e}", meta.name);
                }
                FileStore::from_meta_info(&save_path, meta)
            })
        }
    };
    let mut torrent = torrent
        .with_trackers(use_trackers)
        .with_mode(record.mode())
        .with_paused(record.paused)
        .with_force_start(record.forced)
        .with_rate_limits(record.rate_limits())
        .with_share_limits(record.share_limits())
        .with_totals(record.totals());
    if record.file_priorities.is_some() {
        let record = record.clone();
        torrent = torrent.with_file_priorities(move |meta| record.priorities(meta.files.len()));
    }
    Ok(torrent)
}

/// The origin of a saved record: its .torrent copy if there is one (a
/// magnet whose metadata arrived just before a crash has one too), else
/// its magnet link.
///
/// # Errors
/// A message when neither is usable.
pub fn saved_origin(record: &TorrentRecord, data: &DataDir) -> Result<Origin, String> {
    let path = data.torrent_path(&record.hash);
    match MetaInfo::load(&path) {
        Ok(meta) => return Ok(Origin::Meta(meta)),
        Err(e) if path.exists() => log::error!("{}: {e}", path.display()),
        Err(_) => {}
    }
    match &record.source {
        SourceRecord::Magnet(uri) => Magnet::parse(uri)
            .map(Origin::Magnet)
            .map_err(|e| format!("{}: {e}", record.hash)),
        SourceRecord::Torrent => Err(format!("{} is missing", path.display())),
    }
}

/// Adds every saved torrent to the session, in queue order. A torrent that
/// cannot be restored is logged and kept in the records (nothing is lost).
pub async fn restore(daemon: &Daemon) {
    let records = daemon.read(|m| m.torrents.clone());
    let mut restored = 0;
    for record in &records {
        let torrent = saved_origin(record, &daemon.data).and_then(|origin| {
            build(origin, record, &daemon.data, daemon.options.use_trackers)
                .map_err(|e| e.to_string())
        });
        match torrent {
            Ok(torrent) => match daemon.session.add_torrent_and_wait(torrent).await {
                Ok(_) => restored += 1,
                Err(e) => log::error!("cannot restore {}: {e}", record.hash),
            },
            Err(e) => log::error!("cannot restore {}: {e}", record.hash),
        }
    }
    log::info!("restored {restored} of {} torrent(s)", records.len());
}

/// Adds `torrent` to the session.
///
/// # Errors
/// 409 for a torrent already there, 500 if the session has stopped.
pub async fn add(daemon: &Daemon, torrent: Torrent) -> Result<TorrentHandle, ApiError> {
    match daemon.session.add_torrent_and_wait(torrent).await {
        Ok(handle) => Ok(handle),
        Err(SessionError::DuplicateTorrent(h)) => {
            Err(ApiError::Conflict(format!("torrent {h} is already there")))
        }
        Err(e) => Err(e.into()),
    }
}

/// Every path a torrent keeps under its save path: its files (pad files
/// aside) and its resume record and part file.
pub fn data_paths(save_path: &Path, meta: &MetaInfo) -> Vec<PathBuf> {
    let hex = meta.info_hash.to_hex();
    let mut paths: Vec<PathBuf> = meta
        .files
        .iter()
        .filter(|f| !f.pad)
        .map(|f| save_path.join(&f.path))
        .collect();
    for ext in ["resume", "parts"] {
        paths.push(save_path.join(RESUME_DIR).join(format!("{hex}.{ext}")));
    }
    paths
}

/// The torrent's own folder (multi-file torrents), removed when empty.
fn torrent_dir(save_path: &Path, meta: &MetaInfo) -> Option<PathBuf> {
    meta.multi_file.then(|| save_path.join(&meta.name))
}

/// Deletes the torrent's files, resume record and part file, and the
/// folders of a multi-file torrent that are left empty; nothing else.
pub fn delete_data(save_path: &Path, meta: &MetaInfo) {
    for path in data_paths(save_path, meta) {
        match std::fs::remove_file(&path) {
            Ok(()) => log::debug!("deleted {}", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => log::error!("cannot delete {}: {e}", path.display()),
        }
    }
    if let Some(dir) = torrent_dir(save_path, meta) {
        remove_empty_dirs(&dir);
    }
}

/// Removes `dir` and its subfolders if they hold no file.
fn remove_empty_dirs(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_empty_dirs(&entry.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Moves the torrent's data from `from` to `to` (rename, or copy and delete
/// across file systems). Files not there yet are skipped.
///
/// # Errors
/// The first failure; files already moved stay moved (the caller re-adds
/// the torrent at `to`, whose check finds what is there).
pub fn move_data(from: &Path, to: &Path, meta: &MetaInfo) -> std::io::Result<()> {
    for source in data_paths(from, meta) {
        let Ok(relative) = source.strip_prefix(from) else {
            continue;
        };
        let target = to.join(relative);
        if !source.exists() {
            continue;
        }
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        if std::fs::rename(&source, &target).is_err() {
            std::fs::copy(&source, &target)?;
            std::fs::remove_file(&source)?;
        }
    }
    if let Some(dir) = torrent_dir(from, meta) {
        remove_empty_dirs(&dir);
    }
    Ok(())
}

/// How long a removed torrent's actor may take to end (its last resume
/// record written) before its files are touched anyway.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(15);

/// Removes a torrent from the session and waits until its actor has ended.
async fn remove_and_wait(daemon: &Daemon, hash: &str) -> Result<(), ApiError> {
    let handle = daemon.handle(hash).await.ok();
    if let Some(info_hash) = InfoHash::from_hex(hash) {
        daemon.session.remove_torrent(info_hash).await?;
    }
    if let Some(handle) = handle {
        let gone = async {
            while handle.stats().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        };
        if tokio::time::timeout(REMOVE_TIMEOUT, gone).await.is_err() {
            log::warn!("[{hash}] still running {REMOVE_TIMEOUT:?} after its removal");
        }
    }
    Ok(())
}

/// The metainfo of a torrent: from the session, else its saved copy.
async fn known_meta(daemon: &Daemon, hash: &str) -> Option<Arc<MetaInfo>> {
    match meta_of(daemon, hash).await {
        Some(meta) => Some(meta),
        None => MetaInfo::load(daemon.data.torrent_path(hash))
            .ok()
            .map(Arc::new),
    }
}

/// Removes a torrent: from the session, its record and its .torrent copy;
/// with `with_files`, its files, resume record and part file too.
///
/// # Errors
/// 404 for an unknown torrent; 500 if the session has stopped.
pub async fn delete(daemon: &Daemon, hash: &str, with_files: bool) -> Result<(), ApiError> {
    if daemon.read(|m| m.get(hash).is_none()) {
        return Err(ApiError::no_torrent());
    }
    let meta = known_meta(daemon, hash).await;
    remove_and_wait(daemon, hash).await?;
    let Some(record) = daemon.change_records(|m| m.remove(hash)) else {
        return Ok(());
    };
    let path = daemon.data.torrent_path(hash);
    let removed = tokio::task::spawn_blocking(move || {
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::error!("cannot delete {}: {e}", path.display());
            }
        }
        if let (true, Some(meta)) = (with_files, meta) {
            delete_data(&record.save_path, &meta);
        }
    });
    removed
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    log::info!(
        "[{hash}] removed{}",
        if with_files { " with its files" } else { "" }
    );
    Ok(())
}

/// Moves a torrent's data to `location`: out of the session, files and
/// resume record moved, back in at the new path (its check is quick: the
/// resume record moved with the files).
///
/// # Errors
/// 404 for an unknown torrent; 409 when the files cannot be moved (the
/// torrent is re-added where it was).
pub async fn set_location(daemon: &Daemon, hash: &str, location: &Path) -> Result<(), ApiError> {
    let snapshot = daemon.snapshot(hash).await?;
    let old = snapshot.record.save_path.clone();
    if old == location {
        return Ok(());
    }
    let meta = known_meta(daemon, hash).await;
    remove_and_wait(daemon, hash).await?;
    let moved = match &meta {
        Some(meta) => {
            let (from, to, meta) = (old.clone(), location.to_path_buf(), Arc::clone(meta));
            tokio::task::spawn_blocking(move || move_data(&from, &to, &meta))
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))
                .and_then(|r| r)
        }
        None => std::fs::create_dir_all(location),
    };
    let target = match &moved {
        Ok(()) => location.to_path_buf(),
        Err(e) => {
            log::error!("[{hash}] cannot move to {}: {e}", location.display());
            old
        }
    };
    let record = daemon.change_records(|m| {
        let record = m.get_mut(hash)?;
        record.save_path.clone_from(&target);
        if let Some(stats) = &snapshot.stats {
            record.downloaded = record.downloaded.max(stats.total_downloaded);
            record.uploaded = record.uploaded.max(stats.total_uploaded);
            record.seeding_time = record.seeding_time.max(stats.seeding_time.as_secs());
        }
        Some(record.clone())
    });
    let record = record.ok_or_else(ApiError::no_torrent)?;
    let origin = saved_origin(&record, &daemon.data).map_err(ApiError::Internal)?;
    let torrent = build(origin, &record, &daemon.data, daemon.options.use_trackers)?;
    add(daemon, torrent).await?;
    moved.map_err(|e| ApiError::Conflict(format!("Cannot move the files: {e}")))
}

/// The metainfo of a torrent in the session, if known.
pub async fn meta_of(daemon: &Daemon, hash: &str) -> Option<Arc<MetaInfo>> {
    let handle = daemon.handle(hash).await.ok()?;
    handle.meta_info().await.ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    use bittorrent::create::TorrentBuilder;

    fn multi_file_meta(dir: &Path) -> MetaInfo {
        let root = dir.join("album");
        std::fs::create_dir_all(root.join("cd1")).unwrap();
        std::fs::write(root.join("cd1/a.flac"), vec![1u8; 40_000]).unwrap();
        std::fs::write(root.join("b.txt"), b"text").unwrap();
        let created = TorrentBuilder::new(&root).build().unwrap();
        MetaInfo::from_bytes(&created.bytes).unwrap()
    }

    #[test]
    fn data_is_moved_then_deleted_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let (from, to) = (dir.path().join("from"), dir.path().join("to"));
        let meta = multi_file_meta(&dir.path().join("src"));
        std::fs::create_dir_all(&from).unwrap();
        copy_tree(&dir.path().join("src/album"), &from.join("album"));
        std::fs::create_dir_all(from.join(RESUME_DIR)).unwrap();
        let resume = format!("{}.resume", meta.info_hash.to_hex());
        std::fs::write(from.join(RESUME_DIR).join(&resume), b"r").unwrap();
        std::fs::write(from.join("other.txt"), b"keep").unwrap();

        move_data(&from, &to, &meta).unwrap();
        assert!(to.join("album/cd1/a.flac").exists());
        assert!(to.join(RESUME_DIR).join(&resume).exists());
        assert!(!from.join("album").exists());
        assert!(from.join("other.txt").exists());

        std::fs::write(to.join("album/mine.txt"), b"not the torrent's").unwrap();
        delete_data(&to, &meta);
        assert!(!to.join("album/cd1").exists());
        assert!(!to.join(RESUME_DIR).join(&resume).exists());
        assert!(to.join("album/mine.txt").exists());
    }

    fn copy_tree(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                copy_tree(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), target).unwrap();
            }
        }
    }
}
