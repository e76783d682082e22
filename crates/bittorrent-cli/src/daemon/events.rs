//! Follows the session: records what the library reports (completion,
//! metadata, share limits reached) and, every few seconds, each torrent's
//! all-time totals and the queue order, so a kill loses at most that much.

use std::sync::Arc;
use std::time::Duration;

use bittorrent::prelude::*;

use crate::daemon::model::SourceRecord;
use crate::daemon::prefs::{share_action, ShareAction};
use crate::daemon::qbt::views::unix_secs;
use crate::daemon::service::{unix_now, Daemon};

/// How often totals and the queue order are taken into the records.
pub const TOTALS_INTERVAL: Duration = Duration::from_secs(5);

/// Runs until the daemon stops.
pub async fn run(daemon: Arc<Daemon>) {
    let mut events = daemon.session.subscribe();
    let mut tick = tokio::time::interval(TOTALS_INTERVAL);
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(event) => on_event(&daemon, event).await,
                None => return,
            },
            _ = tick.tick() => take_totals(&daemon).await,
            _ = daemon.stop.cancelled() => return,
        }
    }
}

async fn on_event(daemon: &Daemon, event: Event) {
    match event {
        Event::TorrentComplete { info_hash } => {
            let hash = info_hash.to_hex();
            daemon.change_records(|m| {
                if let Some(r) = m.get_mut(&hash) {
                    r.completion_on.get_or_insert_with(unix_now);
                }
            });
        }
        Event::MetadataReceived { info_hash, name } => {
            let hash = info_hash.to_hex();
            // The .torrent copy was written before the store was made.
            let saved = daemon.data.torrent_path(&hash).exists();
            daemon.change_records(|m| {
                if let Some(r) = m.get_mut(&hash) {
                    if saved {
                        r.source = SourceRecord::Torrent;
                    }
                }
            });
            log::info!("{name}: metadata received");
        }
        Event::ShareLimitReached { info_hash } => on_share_limit(daemon, info_hash).await,
        Event::TorrentError { info_hash, message } => {
            log::error!("[{}] {message}", info_hash.short());
        }
        _ => {}
    }
}

/// qBittorrent's `max_ratio_act`: the library has paused the torrent; stop
/// keeps it so, remove takes it out (with its files for 3).
async fn on_share_limit(daemon: &Daemon, info_hash: InfoHash) {
    let hash = info_hash.to_hex();
    let action = daemon.read(|m| share_action(&m.config.preferences));
    log::info!("[{}] share limit reached: {action:?}", info_hash.short());
    match action {
        ShareAction::Stop => daemon.change_records(|m| {
            if let Some(r) = m.get_mut(&hash) {
                r.paused = true;
            }
        }),
        ShareAction::Remove | ShareAction::RemoveWithFiles => {
            let with_files = action == ShareAction::RemoveWithFiles;
            if let Err(e) = crate::daemon::torrents::delete(daemon, &hash, with_files).await {
                log::error!(
                    "[{}] cannot remove at its share limit: {e}",
                    info_hash.short()
                );
            }
        }
    }
}

/// Takes each torrent's all-time totals (they only grow: a smaller figure,
/// from a torrent not yet checked, is ignored) and the session's queue order.
pub async fn take_totals(daemon: &Daemon) {
    let snapshots = daemon.snapshots(None).await;
    let queue = daemon
        .session
        .stats()
        .await
        .map(|s| s.queue)
        .unwrap_or_default();
    let queue: Vec<String> = queue.iter().map(InfoHash::to_hex).collect();
    let changed = daemon.read(|m| {
        snapshots.iter().any(|s| {
            s.stats.as_ref().is_some_and(|st| {
                m.get(&s.record.hash).is_some_and(|r| {
                    st.total_downloaded > r.downloaded
                        || st.total_uploaded > r.uploaded
                        || st.seeding_time.as_secs() > r.seeding_time
                        || (st.complete && r.completion_on.is_none())
                })
            })
        }) || (!queue.is_empty() && m.torrents.iter().map(|r| &r.hash).ne(queue.iter()))
    });
    if !changed {
        return;
    }
    daemon.change_records(|m| {
        for s in &snapshots {
            let (Some(st), Some(r)) = (&s.stats, m.get_mut(&s.record.hash)) else {
                continue;
            };
            r.downloaded = r.downloaded.max(st.total_downloaded);
            r.uploaded = r.uploaded.max(st.total_uploaded);
            r.seeding_time = r.seeding_time.max(st.seeding_time.as_secs());
            // Complete without a TorrentComplete seen (complete on disk at add).
            if st.complete && r.completion_on.is_none() {
                r.completion_on = Some(st.completed_at.map_or_else(unix_now, unix_secs));
            }
        }
        if !queue.is_empty() {
            m.reorder(&queue);
        }
    });
}
