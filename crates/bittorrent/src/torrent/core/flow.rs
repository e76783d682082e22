//! Blocks and verifications in the core: a block arrives, a piece
//! completes, its verification ends (or is lost).

use std::net::SocketAddr;
use std::time::Instant;

use bytes::Bytes;

use crate::event::Event;
use crate::peer::PeerCommand;
use crate::torrent::core::piece::Contributor;
use crate::torrent::core::pieces::{BlockFate, Verdict};
use crate::torrent::core::verify::Verified;
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
            if complete {
                self.flow.start_verifications(&mut self.out);
            }
        }
        self.request_more(addr, now);
    }

    /// A verification ended.
    pub(crate) fn verified(&mut self, verified: Verified, now: Instant) {
        let was_backlogged = self.flow.backlogged();
        let piece = verified.piece;
        let mut bans = Vec::new();
        let verdict = self.flow.verified(verified, &mut bans);
        self.store_selection();
        self.flow.start_verifications(&mut self.out);
        for (who, why) in bans {
            match who {
                Contributor::Peer(addr) => self.ban(addr, why),
                Contributor::WebSeed(seed) => self.drop_web_seed(seed, why.to_string(), now),
            }
        }
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
                self.request_more_all(now);
                self.schedule_web_seeds(now);
            }
            Verdict::StoreFailed(e) => {
                // Downloaded again once a resume retries.
                self.flow.picker_mut().piece_failed(piece);
                self.fail(format!("storage failed on piece {piece}: {e}"));
            }
        }
        if was_backlogged && !self.flow.backlogged() {
            self.request_more_all(now);
            self.schedule_web_seeds(now);
        }
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

    /// A verification job ended without a result: its piece is downloaded
    /// again.
    pub(crate) fn verification_lost(&mut self, piece: u32, now: Instant) {
        log::error!(
            "{} the verification of piece {piece} was lost; downloading it again",
            self.tag()
        );
        self.flow.verification_lost(piece);
        self.store_selection();
        self.flow.start_verifications(&mut self.out);
        self.request_more_all(now);
        self.schedule_web_seeds(now);
    }

    /// Whether `addr` is banned (for tests).
    #[cfg(test)]
    pub(crate) fn is_banned(&self, addr: &SocketAddr) -> bool {
        self.swarm.is_banned(addr)
    }
}
