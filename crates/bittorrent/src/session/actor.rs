//! The session actor's state and run loop.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::session::command::SessionCommand;
use crate::session::{Event, SessionConfig, SessionError};
use crate::torrent::TorrentHandle;
use crate::types::InfoHash;

/// Runs the session until `cancel` fires or every handle is dropped, then
/// stops every torrent, waits for them, and fires `finished`.
pub(crate) async fn run(
    config: SessionConfig,
    mut rx: mpsc::Receiver<SessionCommand>,
    events: broadcast::Sender<Event>,
    cancel: CancellationToken,
    finished: CancellationToken,
) {
    let config = Arc::new(config);
    let mut torrents: HashMap<InfoHash, TorrentHandle> = HashMap::new();
    let mut tasks: JoinSet<InfoHash> = JoinSet::new();
    log::debug!("session started, peer id {:?}", config.peer_id);

    loop {
        tokio::select! {
            _ = cancel.cancelled() => break,
            cmd = rx.recv() => match cmd {
                Some(cmd) => handle(cmd, &config, &mut torrents, &mut tasks, &events, &cancel),
                None => break,
            },
            Some(ended) = tasks.join_next(), if !tasks.is_empty() => match ended {
                Ok(info_hash) => {
                    log::debug!("[{}] torrent task ended", info_hash.short());
                    torrents.remove(&info_hash);
                }
                Err(e) => log::error!("a torrent task failed: {e}"),
            },
        }
    }

    log::info!("session shutting down ({} torrents)", torrents.len());
    cancel.cancel();
    drop(torrents);
    while let Some(res) = tasks.join_next().await {
        if let Err(e) = res {
            log::error!("a torrent task failed during shutdown: {e}");
        }
    }
    drop(events);
    finished.cancel();
    log::debug!("session ended");
}

fn handle(
    cmd: SessionCommand,
    config: &Arc<SessionConfig>,
    torrents: &mut HashMap<InfoHash, TorrentHandle>,
    tasks: &mut JoinSet<InfoHash>,
    events: &broadcast::Sender<Event>,
    cancel: &CancellationToken,
) {
    match cmd {
        SessionCommand::AddTorrent { torrent, reply } => {
            let info_hash = torrent.info_hash();
            let result = if torrents.contains_key(&info_hash) {
                let err = SessionError::DuplicateTorrent(info_hash);
                log::warn!("{err}");
                let _ = events.send(Event::Error {
                    message: err.to_string(),
                });
                Err(err)
            } else {
                let name = torrent.name().to_owned();
                let (handle, task) = TorrentHandle::spawn(
                    torrent,
                    Arc::clone(config),
                    events.clone(),
                    cancel.child_token(),
                );
                tasks.spawn(async move {
                    if let Err(e) = task.await {
                        log::error!("[{}] torrent task failed: {e}", info_hash.short());
                    }
                    info_hash
                });
                torrents.insert(info_hash, handle.clone());
                log::info!("[{}] added torrent {name:?}", info_hash.short());
                let _ = events.send(Event::TorrentAdded { info_hash, name });
                Ok(handle)
            };
            if let Some(reply) = reply {
                let _ = reply.send(result);
            }
        }
        SessionCommand::GetTorrent { info_hash, reply } => {
            let _ = reply.send(torrents.get(&info_hash).cloned());
        }
        SessionCommand::ListTorrents { reply } => {
            let _ = reply.send(torrents.values().cloned().collect());
        }
    }
}
