//! Carrying out the core's actions: peers, blocking jobs, announcers, DHT.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::{watch, Notify};

use crate::event::Event;
use crate::peer::{Origin, PeerCommand, PeerHandle, PeerParams};
use crate::store::Store;
use crate::torrent::actor::jobs::JobOutput;
use crate::torrent::actor::{Phase, Shell, TrackerLinks};
use crate::torrent::check;
use crate::torrent::core::Action;
use crate::torrent::error::Job;
use crate::tracker::{run_announcer, AnnouncerConfig, TrackerStatus, TransferStats};

impl Shell {
    /// Carries out everything the core decided, including what it decides
    /// while the shell reports back (a web seed whose task is gone).
    pub(super) fn perform_all(&mut self) {
        loop {
            let Phase::Running(running) = &mut self.phase else {
                return;
            };
            let actions = running.core.take_actions();
            if actions.is_empty() {
                return;
            }
            let store = Arc::clone(&running.store);
            for action in actions {
                self.perform(action, &store);
            }
        }
    }

    fn perform(&mut self, action: Action, store: &Arc<dyn Store>) {
        match action {
            Action::Peer(addr, cmd) => self.send(addr, cmd),
            Action::Disconnect(addr) => {
                if let Some(peer) = self.peers.get(&addr) {
                    peer.disconnect();
                }
            }
            Action::Dial(addr) => self.spawn_peer(addr, Origin::Outbound),
            Action::Emit(mut event) => {
                if let Event::Stats { stats, .. } = &mut event {
                    stats.trackers = self.tracker_statuses();
                    stats.rate_limits = self.connector.limits().torrent_limits();
                }
                self.emit(event);
            }
            Action::Disk(batch) => {
                let store = Arc::clone(store);
                self.jobs.spawn(Job::Disk(batch.lane), move || {
                    Ok(JobOutput::Disk(batch.run(&*store)))
                });
            }
            Action::SaveResume(have) => {
                let store = Arc::clone(store);
                self.jobs.spawn(Job::SaveResume, move || {
                    store.save_resume(&have).map(|()| JobOutput::Done)
                });
            }
            Action::StoreSelection(wanted) => {
                let store = Arc::clone(store);
                self.jobs.spawn(Job::StoreSelection, move || {
                    store.set_wanted_files(&wanted).map(|()| JobOutput::Done)
                });
            }
            Action::Finalize => {
                let store = Arc::clone(store);
                self.jobs.spawn(Job::Finalize, move || {
                    store.finalize().map(|()| JobOutput::Done)
                });
            }
            Action::StartAnnouncer => {
                if let Phase::Running(running) = &self.phase {
                    let tiers = running.meta.trackers.clone();
                    self.start_announcer(tiers);
                }
            }
            Action::StopAnnouncer => self.stop_announcer(),
            Action::Transfer(stats) => {
                self.set_transfer(stats);
            }
            Action::DhtAnnounce => self.spawn_dht_announce(),
            Action::Check { full } => self.spawn_check(full),
            Action::Reannounce => self.wake_announcer(),
            Action::WebSeed(id, command) => self.send_web_seed(id, command),
            Action::DropWebSeed(id) => self.stop_web_seed(id),
        }
    }

    /// Sends a command without waiting: a peer whose mailbox is full is too
    /// slow and is dropped (its requests return to the picker when it
    /// reports the disconnect).
    fn send(&mut self, addr: SocketAddr, cmd: PeerCommand) {
        if self.stopping {
            return;
        }
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        if peer.send(cmd).is_err() {
            log::debug!("{} {addr} mailbox full; dropping", self.tag);
            peer.disconnect();
        }
    }

    /// Starts a peer actor for `addr` (the core has registered it).
    pub(super) fn spawn_peer(&mut self, addr: SocketAddr, origin: Origin) {
        if self.stopping {
            return;
        }
        let Phase::Running(running) = &self.phase else {
            return;
        };
        let params = PeerParams {
            meta: Arc::clone(&running.meta),
            store: Arc::clone(&running.store),
            our_id: self.config.peer_id,
            have: running.core.have().clone(),
            connect_timeout: self.config.connect_timeout,
            connector: self.connector.clone(),
            listen_port: self.config.port,
            pex: self.config.pex && !running.meta.private,
            send_from_files: self.config.send_from_files,
        };
        let (handle, task) = PeerHandle::start(
            addr,
            origin,
            params,
            self.peer_events.sender(),
            self.cancel.child_token(),
        );
        self.peer_tasks.spawn(task);
        self.peers.insert(addr, handle);
    }

    /// Starts an announce loop over `tiers`.
    pub(super) fn start_announcer(&mut self, tiers: Vec<Vec<String>>) {
        if self.stopping || self.announcer.is_some() {
            return;
        }
        let mut cfg =
            AnnouncerConfig::new(tiers, self.info_hash, self.config.peer_id, self.config.port);
        let transfer = self.transfer;
        let links = self.trackers.get_or_insert_with(|| {
            Box::new(TrackerLinks {
                transfer: watch::channel(transfer).0,
                status: watch::channel(Vec::new()).0,
                reannounce: Arc::new(Notify::new()),
            })
        });
        cfg.status = Some(links.status.clone());
        cfg.ipv6 = self.config.announce_ipv6;
        cfg.external_port = self.config.external_port.clone();
        cfg.reannounce = Some(Arc::clone(&links.reannounce));
        let transfer = links.transfer.subscribe();
        let token = self.cancel.child_token();
        self.announcers.spawn(run_announcer(
            cfg,
            transfer,
            self.tracker_updates.sender(),
            token.clone(),
        ));
        self.announcer = Some(token);
    }

    /// New totals for the trackers.
    pub(super) fn set_transfer(&mut self, transfer: TransferStats) {
        self.transfer = transfer;
        if let Some(links) = &self.trackers {
            links.transfer.send_replace(transfer);
        }
    }

    /// Each tracker's status (none before the first announce loop).
    pub(super) fn tracker_statuses(&self) -> Vec<TrackerStatus> {
        match &self.trackers {
            Some(links) => links.status.borrow().clone(),
            None => Vec::new(),
        }
    }

    /// Wakes the announce loop for an announce now, if one runs.
    pub(super) fn wake_announcer(&self) {
        if let Some(links) = &self.trackers {
            links.reannounce.notify_one();
        }
    }

    /// Stops the announce loop; it sends `stopped` (with a short timeout) in
    /// the background and is reaped from `announcers`.
    pub(super) fn stop_announcer(&mut self) {
        if let Some(token) = self.announcer.take() {
            token.cancel();
        }
    }

    fn spawn_dht_announce(&mut self) {
        let Some(dht) = self.dht.clone() else {
            return;
        };
        let (info_hash, port) = (self.info_hash, self.config.port);
        self.dht_announce
            .spawn(async move { dht.announce(info_hash, port).await });
    }

    /// The metadata phase's DHT lookup, when due.
    pub(super) fn lookup_if_due(&mut self, now: Instant) {
        let Phase::Metadata(phase) = &mut self.phase else {
            return;
        };
        let Some(dht) = self.dht.clone() else {
            return;
        };
        if !self.lookups.is_empty() || now < phase.next_lookup {
            return;
        }
        phase.next_lookup = now + super::magnet::LOOKUP_EVERY;
        let info_hash = self.info_hash;
        self.lookups
            .spawn(async move { dht.get_peers(info_hash).await });
    }

    /// Starts the check of a torrent whose metainfo and store are known;
    /// `full` hashes every piece, ignoring the resume record.
    pub(super) fn spawn_check(&mut self, full: bool) {
        let Phase::Running(running) = &self.phase else {
            return;
        };
        let store = Arc::clone(&running.store);
        let meta = Arc::clone(&running.meta);
        let wanted = running.core.wanted_files();
        let cancel = self.cancel.clone();
        let limit = Arc::clone(&self.links.checks);
        self.jobs.spawn_limited(Job::Check, limit, move || {
            let checked = check::check(&store, &meta, &wanted, full, &cancel);
            Ok(JobOutput::Checked(checked))
        });
    }
}
