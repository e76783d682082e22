//! Blocks and verifications in the core: a block arrives (and is queued
//! for the writer), a batch of writes and verifications ends (or is lost).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::event::Event;
use crate::peer::PeerCommand;
use crate::torrent::core::disk::DiskDone;
use crate::torrent::core::piece::Contributor;
use crate::torrent::core::pieces::{BlockFate, Verdict};
use crate::torrent::core::{Action, State, TorrentCore};
use crate::types::BlockInfo;

impl TorrentCore {
    pub(crate) fn on_block(
        &mut self,
        addr: SocketAddr,
        block: BlockInfo,
        data: Bytes,
        now: Instant,
    ) {
        let len = data.len() as u64;
        self.download.add(len, now);
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        peer.rate.add(len, now);
        peer.last_piece = Some(now);
        if !peer.in_flight.remove(&block) {
            // Late after a cancel or choke, or never asked for.
            self.flow.add_wasted(len);
            if peer.unasked.arrived(len) {
                log::warn!(
                    "{} {addr} keeps sending unrequested blocks; dropping",
                    self.tag()
                );
                self.peers.disconnect(addr, &mut self.out);
            }
            return;
        }
        peer.last_block = now;
        let from = Contributor::Peer(addr);
        if let BlockFate::Kept { complete } = self.flow.block(from, block, data) {
            if self.flow.picker().may_have_duplicates() {
                self.peers.cancel_duplicates(from, block, &mut self.out);
            }
            let _ = complete;
            self.start_writes();
        }
        self.request_more(addr, now);
    }

    /// Whether more blocks may come in now: not while the writer's queue is
    /// past its bound (the shell then leaves peer events in their mailbox,
    /// so peers stop reading their sockets: TCP backpressure, and the bytes
    /// in memory stay bounded whatever was requested).
    pub(crate) fn takes_blocks(&self) -> bool {
        !self.flow.backlogged()
    }

    /// Starts the writer on what is queued if that is due (everything at
    /// once while stopping or before a recheck).
    pub(crate) fn start_writes(&mut self) {
        let force = self.state == State::Stopping || self.control.recheck_due;
        self.flow.start_writes(&mut self.out, force);
    }

    /// A batch of writes and verifications ended.
    pub(crate) fn disk_done(&mut self, done: DiskDone, now: Instant) {
        let was_backlogged = self.flow.backlogged();
        let mut bans = Vec::new();
        let verdicts = self.flow.disk_done(done, &mut bans);
        self.store_selection();
        self.start_writes();
        for (who, why) in bans {
            match who {
                Contributor::Peer(addr) => self.ban(addr, why),
                Contributor::WebSeed(seed) => self.drop_web_seed(seed, why.to_string(), now),
            }
        }
        let mut more = was_backlogged && !self.flow.backlogged();
        for (piece, verdict) in verdicts {
            more |= self.verdict(piece, verdict);
        }
        if more {
            self.request_more_all(now);
            self.schedule_web_seeds(now);
        }
    }

    /// Acts on one piece's verdict; true when pieces are wanted again.
    fn verdict(&mut self, piece: u32, verdict: Verdict) -> bool {
        match verdict {
            Verdict::Good => self.piece_verified(piece),
            Verdict::Failed { contributors } => {
                self.control.hash_failures += 1;
                let from: Vec<String> = contributors.iter().map(|c| c.to_string()).collect();
                log::warn!(
                    "{} piece {piece} failed its hash check (from {})",
                    self.tag(),
                    from.join(", ")
                );
                self.emit(Event::PieceFailed {
                    info_hash: self.info_hash,
                    piece,
                });
                return true;
            }
            Verdict::StoreFailed(e) => {
                // Downloaded again once a resume retries.
                self.flow.picker_mut().piece_failed(piece);
                if self.control.error.is_none() {
                    self.fail(format!("storage failed on piece {piece}: {e}"));
                }
            }
        }
        false
    }

    fn piece_verified(&mut self, piece: u32) {
        self.readers.verified(piece);
        self.resume_dirty = true;
        log::trace!("{} piece {piece} verified", self.tag());
        self.emit(Event::PieceVerified {
            info_hash: self.info_hash,
            piece,
        });
        if self.state != State::Stopping {
            let addrs: Vec<SocketAddr> = (self.peers.connected())
                .filter(|(_, p)| !p.closing)
                .map(|(a, _)| *a)
                .collect();
            for addr in addrs {
                self.out.push(Action::Peer(addr, PeerCommand::Have(piece)));
            }
        }
        self.publish_transfer();
        if self.flow.picker().is_complete() && !self.complete {
            self.on_complete();
        }
    }

    /// A batch of writes and verifications ended without a result: the
    /// pieces it touched are downloaded again.
    pub(crate) fn disk_lost(&mut self, lane: usize, now: Instant) {
        log::error!(
            "{} a batch of writes and verifications was lost; downloading its pieces again",
            self.tag()
        );
        self.flow.disk_lost(lane);
        self.store_selection();
        self.start_writes();
        self.request_more_all(now);
        self.schedule_web_seeds(now);
    }

    /// Whether `addr` is banned (for tests).
    #[cfg(test)]
    pub(crate) fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.swarm.is_banned(addr)
    }
}
