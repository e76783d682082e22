//! Inputs other than commands: peer events, job results, tracker and DHT
//! answers, the metadata fetch, the tick. Each goes to the phase it is for.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use tokio::task::JoinError;

use crate::config::SessionConfig;
use crate::dht::{Announced, DhtError};
use crate::event::Event;
use crate::metainfo::MetaInfo;
use crate::peer::PeerEvent;
use crate::portmap::MapTransport;
use crate::store::Store;
use crate::torrent::actor::jobs::JobOutput;
use crate::torrent::actor::magnet::MetadataPhase;
use crate::torrent::actor::{Phase, Running, Shell};
use crate::torrent::check::Checked;
use crate::torrent::core::swarm::Ourselves;
use crate::torrent::core::{CoreConfig, TorrentCore};
use crate::torrent::error::{Job, JobError, MetadataPhaseError};
use crate::tracker::TrackerUpdate;

impl Shell {
    pub(super) fn on_peer_event(&mut self, event: PeerEvent) {
        let gone = match &event {
            PeerEvent::Disconnected { addr, .. } => Some(*addr),
            _ => None,
        };
        if let Some(core) = self.core() {
            core.peer_event(event, Instant::now());
        }
        if let Some(addr) = gone {
            self.peers.remove(&addr);
        }
    }

    pub(super) fn on_job(&mut self, job: Job, result: Result<JobOutput, JobError>) {
        let now = Instant::now();
        let tag = self.tag.clone();
        let Some(core) = self.core() else {
            return;
        };
        match (job, result) {
            (_, Ok(JobOutput::Checked(checked))) => core.checked(&checked, now),
            (Job::Check, Err(e)) => {
                log::error!("{tag} checking failed: {e}; starting from scratch");
                let nothing = Checked::nothing(core.meta().piece_count());
                core.checked(&nothing, now);
            }
            (_, Ok(JobOutput::Disk(done))) => core.disk_done(done, now),
            (Job::Disk(lane), Err(e)) => {
                log::error!("{tag} {e}");
                core.disk_lost(lane, now);
            }
            (Job::Finalize, result) => core.finalized(result.map(drop)),
            (Job::SaveResume, result) => core.resume_saved(result.map(drop)),
            (Job::StoreSelection, result) => core.selection_stored(result.map(drop)),
            // A check or verification returns its own output.
            (Job::Check | Job::Disk(_), Ok(JobOutput::Done)) => {}
        }
    }

    pub(super) fn on_tracker(&mut self, update: TrackerUpdate) {
        let now = Instant::now();
        let phase = match &mut self.phase {
            Phase::Running(running) => return running.core.tracker(update, now),
            Phase::Metadata(phase) => phase,
            Phase::Ended => return,
        };
        let info_hash = self.info_hash;
        let event = match update {
            TrackerUpdate::Announced { url, peers, .. } => {
                phase.add_candidates(peers.iter().copied());
                Event::TrackerAnnounced {
                    info_hash,
                    url,
                    peers: peers.len(),
                }
            }
            TrackerUpdate::Failed { url, error } => Event::TrackerError {
                info_hash,
                url,
                message: error,
            },
        };
        self.emit(event);
    }

    /// A DHT peer lookup of the metadata phase ended.
    pub(super) fn on_lookup(
        &mut self,
        found: Result<Result<Vec<SocketAddr>, DhtError>, JoinError>,
    ) {
        let peers = match found {
            Ok(Ok(peers)) => peers,
            Ok(Err(e)) => return log::debug!("{} DHT lookup failed: {e}", self.tag),
            Err(e) => return log::warn!("{} DHT lookup task failed: {e}", self.tag),
        };
        log::debug!("{} DHT: {} peers", self.tag, peers.len());
        match &mut self.phase {
            Phase::Metadata(phase) => phase.add_candidates(peers),
            Phase::Running(running) => running.core.add_candidates(peers, false, Instant::now()),
            Phase::Ended => {}
        }
    }

    /// The running phase's DHT announce ended.
    pub(super) fn on_dht_announce(
        &mut self,
        found: Result<Result<Announced, DhtError>, JoinError>,
    ) {
        let result = match found {
            Ok(Ok(announced)) => {
                log::debug!(
                    "{} DHT: {} peers, announced to {} nodes",
                    self.tag,
                    announced.peers.len(),
                    announced.nodes
                );
                Ok(announced.peers)
            }
            Ok(Err(e)) => Err(e.to_string()),
            Err(e) => {
                log::warn!("{} DHT task failed: {e}", self.tag);
                Err(e.to_string())
            }
        };
        if let Some(core) = self.core() {
            core.dht_done(result, Instant::now());
        }
    }

    /// The metadata fetch ended: with the info dictionary, or cancelled.
    pub(super) fn on_metadata(&mut self, info: Option<Bytes>) {
        let Phase::Metadata(phase) = std::mem::replace(&mut self.phase, Phase::Ended) else {
            return;
        };
        let Some(info) = info else {
            return; // Cancelled: the loop ends.
        };
        if let Err(e) = self.enter_running(*phase, &info) {
            log::error!("{} {e}", self.tag);
            let message = e.to_string();
            self.emit(Event::TorrentError {
                info_hash: self.info_hash,
                message,
            });
            self.cancel.cancel();
        }
    }

    fn enter_running(
        &mut self,
        phase: MetadataPhase,
        info: &[u8],
    ) -> Result<(), MetadataPhaseError> {
        let (meta, make_store) = phase.into_meta(info)?;
        log::info!("{} metadata received: {:?}", self.tag, meta.name);
        self.emit(Event::MetadataReceived {
            info_hash: self.info_hash,
            name: meta.name.clone(),
        });
        let store = make_store(&meta)?;
        // The magnet's announce loop goes on with the real totals.
        self.start_running(meta, store);
        Ok(())
    }

    /// The metainfo and store are known: make the core and check the store.
    pub(super) fn start_running(&mut self, meta: MetaInfo, store: Arc<dyn Store>) {
        let now = Instant::now();
        let files = match self.pending.file_priorities.take() {
            Some(decide) => decide(&meta),
            None => Vec::new(),
        };
        let meta = Arc::new(meta);
        // BEP 27: a private torrent gets its peers from its trackers only.
        if meta.private {
            self.dht = None;
        }
        let use_trackers = self.pending.use_trackers && self.config.use_trackers;
        let config = CoreConfig {
            max_peers: self.config.max_peers_per_torrent,
            max_connections: self.config.max_connections_per_torrent,
            upload_slots: self.config.upload_slots,
            use_trackers: use_trackers && !meta.trackers.is_empty(),
            use_dht: self.dht.is_some(),
            seed: None,
            ourselves: Ourselves::clone(&self.ourselves),
        };
        log::info!(
            "{} checking {:?}: {} pieces of {} bytes, {} bytes",
            self.tag,
            meta.name,
            meta.piece_count(),
            meta.piece_length,
            meta.total_length
        );
        let (mode, peers) = (self.pending.mode, &self.pending.peers);
        let mut core = TorrentCore::new(Arc::clone(&meta), config, files, mode, peers, now);
        core.set_run_options(self.pending.run);
        core.set_session_share(*self.links.share.borrow(), now);
        self.set_transfer(core.transfer());
        self.phase = Phase::Running(Box::new(Running {
            core,
            meta: Arc::clone(&meta),
            store,
        }));
        self.start_web_seeds(&meta);
        self.spawn_check(false);
    }

    /// The session's share limits changed: a torrent past them stops now.
    pub(super) fn on_session_share(&mut self) {
        let share = *self.links.share.borrow_and_update();
        if let Some(core) = self.core() {
            core.set_session_share(share, Instant::now());
        }
    }

    pub(super) fn on_tick(&mut self) {
        let now = Instant::now();
        match &mut self.phase {
            Phase::Running(running) => {
                running.core.set_mapped(&mapped_tcp(&self.config));
                let share = *self.links.share.borrow();
                running.core.set_session_share(share, now);
                running.core.tick(now);
                self.publish_transfer(now);
            }
            Phase::Metadata(_) => self.lookup_if_due(now),
            Phase::Ended => {}
        }
    }
}

/// The external endpoints of our TCP port mappings (those are us too).
fn mapped_tcp(config: &SessionConfig) -> Vec<SocketAddr> {
    (config.external_port.mappings().into_iter())
        .filter(|m| m.transport == MapTransport::Tcp)
        .map(|m| m.external)
        .collect()
}
