//! [`Daemon`]: the model over one `SessionHandle`, shared by every request
//! handler. A change to the model is made under its lock (never held across
//! an await) and marks it dirty; the saver task writes it soon after
//! (debounced), so every change reaches the disk within a moment.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bittorrent::metainfo::MetaInfo;
use bittorrent::prelude::*;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::daemon::auth::Auth;
use crate::daemon::error::ApiError;
use crate::daemon::model::{Model, TorrentRecord};
use crate::daemon::persist::DataDir;
use crate::daemon::prefs::{self, PrefChanges};
use crate::daemon::qbt::sync::MainDataSync;

/// How long the saver waits after a change for more changes before writing.
const SAVE_DEBOUNCE: Duration = Duration::from_millis(100);

/// `sync/maindata` answers kept for clients polling with their `rid`.
const MAINDATA_KEPT: usize = 16;

/// Settings of this run that are not preferences (from the command line).
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Torrents announce to their trackers.
    pub use_trackers: bool,
    /// The Web API's port.
    pub api_port: u16,
    /// The DHT runs.
    pub dht: bool,
    /// PEX runs.
    pub pex: bool,
}

/// The daemon's shared state.
pub struct Daemon {
    /// The library session.
    pub session: SessionHandle,
    /// Where state is persisted.
    pub data: DataDir,
    /// Fired to stop the daemon (signal or `app/shutdown`).
    pub stop: CancellationToken,
    /// This run's options.
    pub options: RunOptions,
    /// Login state.
    pub auth: Auth,
    maindata: Mutex<MainDataSync>,
    model: Mutex<Model>,
    config_dirty: AtomicBool,
    records_dirty: AtomicBool,
    wake_saver: Notify,
    /// One save at a time (the saver and a request's flush share the
    /// temporary file names).
    saving: tokio::sync::Mutex<()>,
}

/// One torrent as a request sees it: the record, and what the library says.
#[derive(Clone, Debug)]
pub struct Snapshot {
    /// The daemon's record.
    pub record: TorrentRecord,
    /// The library's stats (`None` if the torrent's actor is gone).
    pub stats: Option<TorrentStats>,
    /// The metainfo, once known.
    pub meta: Option<Arc<MetaInfo>>,
}

/// Unix time now, in seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Daemon {
    /// A daemon over `session` with `model`.
    pub fn new(
        session: SessionHandle,
        data: DataDir,
        model: Model,
        options: RunOptions,
        auth: Auth,
    ) -> Self {
        Self {
            auth,
            maindata: Mutex::new(MainDataSync::new(MAINDATA_KEPT)),
            session,
            data,
            stop: CancellationToken::new(),
            options,
            model: Mutex::new(model),
            config_dirty: AtomicBool::new(false),
            records_dirty: AtomicBool::new(false),
            wake_saver: Notify::new(),
            saving: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Model> {
        // A panic while holding the lock leaves plain data; go on with it.
        self.model.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The `sync/maindata` answers kept by response id.
    pub fn lock_maindata(&self) -> MutexGuard<'_, MainDataSync> {
        self.maindata.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the model.
    pub fn read<R>(&self, f: impl FnOnce(&Model) -> R) -> R {
        f(&self.lock())
    }

    /// Changes the model (config and records) and schedules a save.
    pub fn change<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        let result = f(&mut self.lock());
        self.config_dirty.store(true, Ordering::SeqCst);
        self.records_dirty.store(true, Ordering::SeqCst);
        self.wake_saver.notify_one();
        result
    }

    /// Changes the torrents' records only and schedules a save.
    pub fn change_records<R>(&self, f: impl FnOnce(&mut Model) -> R) -> R {
        let result = f(&mut self.lock());
        self.records_dirty.store(true, Ordering::SeqCst);
        self.wake_saver.notify_one();
        result
    }

    /// Writes whatever changed (both files when `all`), now.
    ///
    /// # Errors
    /// The persistence error, after logging it; the data stays dirty.
    pub async fn save(&self, all: bool) -> Result<(), String> {
        let _saving = self.saving.lock().await;
        let config = self.config_dirty.swap(false, Ordering::SeqCst) || all;
        let records = self.records_dirty.swap(false, Ordering::SeqCst) || all;
        if !config && !records {
            return Ok(());
        }
        let model = self.read(Clone::clone);
        let data = self.data.clone();
        let written = tokio::task::spawn_blocking(move || {
            if config {
                data.save_config(&model.config)?;
            }
            if records {
                data.save_records(&model.records_file())?;
            }
            Ok::<_, crate::daemon::persist::PersistError>(())
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r.map_err(|e| e.to_string()));
        if let Err(e) = &written {
            log::error!("cannot save the daemon's state: {e}");
            self.config_dirty.fetch_or(config, Ordering::SeqCst);
            self.records_dirty.fetch_or(records, Ordering::SeqCst);
        }
        written
    }

    /// The saver: writes each change soon after it is made, until `stop`.
    pub async fn run_saver(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.wake_saver.notified() => {}
                _ = self.stop.cancelled() => return,
            }
            tokio::time::sleep(SAVE_DEBOUNCE).await;
            if self.save(false).await.is_err() {
                // Retry after a pause rather than spinning on a full disk.
                tokio::time::sleep(Duration::from_secs(1)).await;
                self.wake_saver.notify_one();
            }
        }
    }

    /// Tells the session the preferences that changed.
    ///
    /// # Errors
    /// 500 if the session has stopped.
    pub async fn apply_preferences(&self, changes: &PrefChanges) -> Result<(), ApiError> {
        let (prefs, alt) =
            self.read(|m| (m.config.preferences.clone(), m.config.alt_speed_enabled));
        if changes.rates {
            self.session
                .set_rate_limits(prefs::rate_limits(&prefs, alt))
                .await?;
        }
        if changes.queue {
            self.session.set_queue(prefs::queue(&prefs)).await?;
        }
        if changes.share {
            self.session
                .set_share_limits(prefs::share_limits(&prefs))
                .await?;
        }
        Ok(())
    }

    /// The handle of torrent `hash` (hex), or 404.
    ///
    /// # Errors
    /// [`ApiError::NotFound`] for a torrent not in the daemon.
    pub async fn handle(&self, hash: &str) -> Result<TorrentHandle, ApiError> {
        if self.read(|m| m.get(hash).is_none()) {
            return Err(ApiError::no_torrent());
        }
        let info_hash = InfoHash::from_hex(hash).ok_or_else(ApiError::no_torrent)?;
        self.session
            .torrent(info_hash)
            .await?
            .ok_or_else(ApiError::no_torrent)
    }

    /// The torrents `hashes` names that the daemon has (`None`: all), in queue order.
    pub fn select(&self, hashes: Option<&[String]>) -> Vec<String> {
        self.read(|m| {
            m.torrents
                .iter()
                .filter(|r| hashes.is_none_or(|h| h.contains(&r.hash)))
                .map(|r| r.hash.clone())
                .collect()
        })
    }

    /// Snapshots of the torrents `hashes` names (`None`: all), in queue order.
    pub async fn snapshots(&self, hashes: Option<&[String]>) -> Vec<Snapshot> {
        let records: Vec<TorrentRecord> = self.read(|m| {
            m.torrents
                .iter()
                .filter(|r| hashes.is_none_or(|h| h.contains(&r.hash)))
                .cloned()
                .collect()
        });
        let mut out = Vec::with_capacity(records.len());
        for record in records {
            let handle = match InfoHash::from_hex(&record.hash) {
                Some(info_hash) => self.session.torrent(info_hash).await.ok().flatten(),
                None => None,
            };
            let (stats, meta) = match handle {
                Some(h) => (h.stats().await.ok(), h.meta_info().await.ok().flatten()),
                None => (None, None),
            };
            out.push(Snapshot {
                record,
                stats,
                meta,
            });
        }
        out
    }

    /// One torrent's snapshot, or 404.
    ///
    /// # Errors
    /// [`ApiError::NotFound`].
    pub async fn snapshot(&self, hash: &str) -> Result<Snapshot, ApiError> {
        self.snapshots(Some(&[hash.to_owned()]))
            .await
            .pop()
            .ok_or_else(ApiError::no_torrent)
    }
}
