//! Peer events and connections in the core: what each message a peer sends
//! costs (O(1) amortised, except a peer's one bitfield), dialling, accepting,
//! disconnecting and banning.

use std::net::SocketAddr;
use std::time::Instant;

use crate::bitfield::Bitfield;
use crate::event::Event;
use crate::peer::{DisconnectReason, PeerEvent};
use crate::torrent::core::peers::Refusal;
use crate::torrent::core::pieces::BanReason;
use crate::torrent::core::{Action, State, TorrentCore};
use crate::types::{BlockInfo, PeerId};

impl TorrentCore {
    /// Handles one event of a peer actor.
    pub(crate) fn peer_event(&mut self, event: PeerEvent, now: Instant) {
        match event {
            PeerEvent::Connected { addr, peer_id } => self.on_connected(addr, peer_id, now),
            PeerEvent::Bitfield { addr, bitfield } => self.on_bitfield(addr, bitfield, now),
            PeerEvent::Have { addr, piece } => self.on_have(addr, piece, now),
            PeerEvent::Choked { addr, fast } => {
                let voided = self.peers.choked_us(addr, fast, self.flow.picker_mut());
                if voided > 0 {
                    self.request_more_all(now);
                }
            }
            PeerEvent::Rejected { addr, block } => self.on_rejected(addr, block, now),
            PeerEvent::AllowedFast { addr, piece } => {
                if self.peers.allowed_fast(addr, piece) {
                    self.request_more(addr, now);
                }
            }
            PeerEvent::Unchoked { addr } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                peer.choking_us = false;
                peer.last_block = now;
                self.request_more(addr, now);
            }
            PeerEvent::Interest { addr, interested } => {
                let Some(peer) = self.peers.get_mut(&addr) else {
                    return;
                };
                peer.peer_interested = interested;
                if interested {
                    self.peers.unchoke_if_slot_free(addr, now, &mut self.out);
                }
            }
            PeerEvent::Pex { addr, added } => {
                log::debug!(
                    "{} {addr} told us of {} peers (PEX)",
                    self.tag(),
                    added.len()
                );
                self.add_candidates(added, false, now);
            }
            PeerEvent::Uploaded { addr, bytes } => {
                self.upload.add(bytes, now);
                if let Some(peer) = self.peers.get_mut(&addr) {
                    peer.upload.add(bytes, now);
                }
            }
            PeerEvent::Block { addr, block, data } => self.on_block(addr, block, data, now),
            PeerEvent::Disconnected { addr, reason } => self.on_disconnected(addr, reason, now),
        }
    }

    fn on_connected(&mut self, addr: SocketAddr, peer_id: PeerId, now: Instant) {
        if !self.peers.contains(&addr) {
            return;
        }
        if !self.peers.handshaken(addr, peer_id, now) {
            // The same client reached through a second address (or both
            // sides dialled each other): keep one connection.
            log::debug!("{} {addr} is a duplicate of a connected peer", self.tag());
            self.peers.disconnect(addr, &mut self.out);
            return;
        }
        self.swarm.connected(addr);
        self.cap_partial_pieces();
        log::debug!("{} {addr} connected ({peer_id:?})", self.tag());
        self.emit(Event::PeerConnected {
            info_hash: self.info_hash,
            addr,
        });
    }

    /// A peer's bitfield. The first one sets its availability. A later one
    /// (the peer's guard already turns those into `have`s; aria2 1.36 was
    /// seen sending several) counts as the `have`s of its new pieces only;
    /// pieces it no longer lists are ignored. Its cost is that of reading
    /// the message plus O(1) per piece the peer gained.
    fn on_bitfield(&mut self, addr: SocketAddr, bitfield: Bitfield, now: Instant) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if peer.bitfield_seen {
            for piece in gained(&peer.bitfield, &bitfield) {
                self.on_have(addr, piece, now);
            }
            return;
        }
        peer.bitfield_seen = true;
        let picker = self.flow.picker_mut();
        picker.remove_peer(&peer.bitfield);
        picker.add_peer(&bitfield);
        peer.bitfield = bitfield;
        self.update_interest(addr, now);
        self.drop_if_both_seeds(addr);
    }

    /// A `have`: O(1). A duplicate changes nothing; a new piece we want
    /// makes us interested.
    fn on_have(&mut self, addr: SocketAddr, piece: u32, now: Instant) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if !peer.bitfield.set(piece as usize) {
            return;
        }
        let picker = self.flow.picker_mut();
        picker.peer_has(piece);
        let wanted = !self.complete && picker.wants(piece);
        if wanted {
            // At once, not at the next tick: in a swarm a fellow's new piece
            // is what spares the seeder's upload.
            if !peer.am_interested {
                self.peers.set_interest(addr, true, &mut self.out);
            }
            self.request_more(addr, now);
        }
        self.drop_if_both_seeds(addr);
    }

    /// A peer rejected a request of ours (BEP 6): the block goes back to the
    /// picker at once and to the other peers' pipelines; the rejecting peer
    /// is topped up at its next block or tick, not now (a peer that rejects
    /// at once would otherwise be asked again in a loop).
    fn on_rejected(&mut self, addr: SocketAddr, block: BlockInfo, now: Instant) {
        if !self.peers.rejected(addr, block, self.flow.picker_mut()) {
            return;
        }
        for other in self.peers.addrs() {
            if other != addr {
                self.request_more(other, now);
            }
        }
    }

    /// Two seeds have nothing to exchange: close the connection.
    pub(crate) fn drop_if_both_seeds(&mut self, addr: SocketAddr) {
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        if self.complete && peer.bitfield.is_full() {
            log::debug!("{} {addr} is a seed too; disconnecting", self.tag());
            self.peers.disconnect(addr, &mut self.out);
        }
    }

    fn on_disconnected(&mut self, addr: SocketAddr, reason: DisconnectReason, now: Instant) {
        let Some(peer) = self.peers.remove(&addr) else {
            return;
        };
        let picker = self.flow.picker_mut();
        picker.remove_peer(&peer.bitfield);
        for block in peer.in_flight {
            picker.cancel(block);
        }
        if peer.connected {
            log::debug!("{} {addr} disconnected: {reason}", self.tag());
            self.emit(Event::PeerDisconnected {
                info_hash: self.info_hash,
                addr,
                reason: reason.to_string(),
            });
        } else {
            log::debug!("{} could not connect to {addr}: {reason}", self.tag());
        }
        if !peer.inbound && reason.is_self_connection() {
            self.swarm.found_us(addr);
        } else if reason.backs_off() && !self.swarm.is_banned(&addr) {
            self.swarm.failed(addr, now);
        }
        self.cap_partial_pieces();
        self.request_more_all(now);
        self.connect_more(now);
    }

    /// Takes an inbound connection from `addr` unless a limit or rule says
    /// no; the caller starts the peer actor on `Ok`.
    pub(crate) fn admit(&mut self, addr: SocketAddr, now: Instant) -> Result<(), Refusal> {
        if self.state != State::Active {
            return Err(Refusal::NotActive);
        }
        self.peers.may_accept(&addr)?;
        if self.swarm.is_banned(&addr) {
            return Err(Refusal::Banned);
        }
        self.peers.add(addr, true, now);
        Ok(())
    }

    /// Dials candidates while below the connection limit.
    pub(crate) fn connect_more(&mut self, now: Instant) {
        if self.state != State::Active {
            return;
        }
        while self.peers.may_dial() {
            let peers = &self.peers;
            let Some(addr) = self.swarm.next(now, |a| peers.contains(a)) else {
                break;
            };
            log::debug!("{} connecting to {addr}", self.tag());
            self.peers.add(addr, false, now);
            self.out.push(Action::Dial(addr));
        }
    }

    /// Disconnects `addr` and never connects to it again in this session.
    pub(crate) fn ban(&mut self, addr: SocketAddr, why: BanReason) {
        if self.swarm.is_banned(&addr) {
            return;
        }
        log::warn!("{} banning {addr}: {why}", self.tag());
        self.swarm.ban(addr);
        if self.peers.contains(&addr) {
            self.peers.disconnect(addr, &mut self.out);
        }
    }

    /// Tells `addr` whether we are interested (when that changed), and tops
    /// up its requests. `O(pieces / 8)`: on a bitfield or a selection change.
    pub(crate) fn update_interest(&mut self, addr: SocketAddr, now: Instant) {
        let Some(peer) = self.peers.get(&addr) else {
            return;
        };
        let want = !self.complete && self.flow.picker().is_interesting(&peer.bitfield);
        self.peers.set_interest(addr, want, &mut self.out);
        if want {
            self.request_more(addr, now);
        }
    }

    /// Fills `addr`'s pipeline, unless verification is backlogged.
    pub(crate) fn request_more(&mut self, addr: SocketAddr, now: Instant) {
        if self.flow.backlogged() || self.state != State::Active {
            return;
        }
        self.peers
            .fill(addr, self.flow.picker_mut(), now, &mut self.out);
    }

    pub(crate) fn request_more_all(&mut self, now: Instant) {
        for addr in self.peers.addrs() {
            self.request_more(addr, now);
        }
    }
}

/// The pieces set in `new` but not in `old`, a byte at a time.
fn gained(old: &Bitfield, new: &Bitfield) -> Vec<u32> {
    let mut pieces = Vec::new();
    for (i, (&o, &n)) in old.as_bytes().iter().zip(new.as_bytes()).enumerate() {
        let mut bits = n & !o;
        while bits != 0 {
            let bit = bits.leading_zeros() as usize;
            bits &= !(0x80 >> bit);
            pieces.push((i * 8 + bit) as u32);
        }
    }
    pieces
}
