//! The torrent's peer set: one entry per connection (dialled or accepted),
//! its interest, request pipeline, choke state and PEX state. Pure: it
//! returns [`Action`]s instead of talking to peers.
//!
//! Invariant: a block is in a peer's `in_flight` exactly while a request of
//! ours for it is outstanding (not answered, cancelled, rejected, or voided
//! by a choke from a peer without the Fast extension; with it a choke voids
//! nothing, the peer answers each request with the block or a reject); the
//! picker's requester count for the block matches.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::bitfield::Bitfield;
use crate::choker::{Choker, PeerView};
use crate::extension::{PexFlags, PexPeer, PexState};
use crate::peer::PeerCommand;
use crate::picker::Picker;
use crate::torrent::core::piece::Contributor;
use crate::torrent::core::unasked::UnaskedBlocks;
use crate::torrent::core::Action;
use crate::torrent::RateMeter;
use crate::types::{BlockInfo, PeerId, BLOCK_SIZE};

/// Pipeline depth bounds (blocks requested and not yet received, per peer).
pub(crate) const MIN_PIPELINE: usize = 32;
pub(crate) const MAX_PIPELINE: usize = 256;
/// Bytes requested and not yet received, over all peers: each peer's
/// pipeline is held to its share. What is in flight lands in memory, even
/// once verification stops new requests, so this bounds the piece data we
/// hold (with `pieces::MAX_VERIFY_BACKLOG`) whatever the number of peers.
pub(crate) const REQUEST_BUDGET: u64 = 8 * 1024 * 1024;
/// A peer that owes us blocks and sends none for this long is dropped.
pub(crate) const SNUB_TIMEOUT: Duration = Duration::from_secs(60);

/// The torrent's view of one peer connection.
#[derive(Debug)]
pub(crate) struct PeerEntry {
    /// Handshake done.
    pub connected: bool,
    /// The peer dialled us.
    pub inbound: bool,
    /// From its handshake.
    pub peer_id: Option<PeerId>,
    /// Pieces the peer has (exactly what was added to the picker's availability).
    pub bitfield: Bitfield,
    /// A `bitfield` message arrived.
    pub bitfield_seen: bool,
    /// We asked for the connection to close: no more requests or haves.
    pub closing: bool,
    /// Blocks requested from this peer and not yet answered.
    pub in_flight: HashSet<BlockInfo>,
    pub choking_us: bool,
    pub am_interested: bool,
    pub am_choking: bool,
    pub peer_interested: bool,
    /// Payload it sent us.
    pub rate: RateMeter,
    /// Payload we sent it.
    pub upload: RateMeter,
    /// Current pipeline depth target.
    pub target: usize,
    /// Last time a requested block arrived (or the pipeline was empty).
    pub last_block: Instant,
    /// Last time any block arrived from it (for the choker's snubbing).
    pub last_piece: Option<Instant>,
    pub connected_at: Instant,
    pub last_unchoked: Option<Instant>,
    /// Blocks it sent that no request of ours waited for.
    pub unasked: UnaskedBlocks,
    /// What we last told it through peer exchange.
    pub pex: PexState,
    /// Among the faster half of our peers by download rate (urgent pieces go
    /// to fast peers first).
    pub fast: bool,
    /// Pieces it serves us while it chokes us (BEP 6 allowed-fast; the peer
    /// actor bounds how many).
    pub allowed_fast: Vec<u32>,
}

impl PeerEntry {
    fn new(piece_count: usize, inbound: bool, now: Instant) -> Self {
        Self {
            connected: false,
            inbound,
            peer_id: None,
            bitfield: Bitfield::new(piece_count),
            bitfield_seen: false,
            closing: false,
            in_flight: HashSet::new(),
            choking_us: true,
            am_interested: false,
            am_choking: true,
            peer_interested: false,
            rate: RateMeter::new(now),
            upload: RateMeter::new(now),
            target: MIN_PIPELINE,
            last_block: now,
            last_piece: None,
            connected_at: now,
            last_unchoked: None,
            unasked: UnaskedBlocks::default(),
            pex: PexState::new(),
            fast: true,
            allowed_fast: Vec::new(),
        }
    }

    /// Chokes or unchokes the peer if that changes anything.
    fn set_choke(&mut self, addr: SocketAddr, choke: bool, now: Instant, out: &mut Vec<Action>) {
        if self.am_choking == choke {
            return;
        }
        self.am_choking = choke;
        if !choke {
            self.last_unchoked = Some(now);
        }
        out.push(Action::Peer(addr, PeerCommand::Choke(choke)));
    }
}

/// Why an inbound connection is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Refusal {
    /// Paused or still checking.
    #[error("torrent not active")]
    NotActive,
    /// `max_connections_per_torrent` reached.
    #[error("connection limit reached")]
    Limit,
    /// A connection to that address exists.
    #[error("already connected")]
    AlreadyConnected,
    /// Banned in this session.
    #[error("banned")]
    Banned,
}

/// Every connection of one torrent.
#[derive(Debug)]
pub(crate) struct PeerSet {
    peers: HashMap<SocketAddr, PeerEntry>,
    piece_count: usize,
    /// Dial while fewer connections than this.
    max_dial: usize,
    /// Accept inbound connections while fewer than this.
    max_connections: usize,
    /// Regular upload slots.
    upload_slots: usize,
}

impl PeerSet {
    pub(crate) fn new(
        piece_count: usize,
        max_dial: usize,
        max_connections: usize,
        upload_slots: usize,
    ) -> Self {
        Self {
            peers: HashMap::new(),
            piece_count,
            max_dial,
            max_connections,
            upload_slots,
        }
    }

    pub(crate) fn contains(&self, addr: &SocketAddr) -> bool {
        self.peers.contains_key(addr)
    }

    pub(crate) fn get(&self, addr: &SocketAddr) -> Option<&PeerEntry> {
        self.peers.get(addr)
    }

    pub(crate) fn get_mut(&mut self, addr: &SocketAddr) -> Option<&mut PeerEntry> {
        self.peers.get_mut(addr)
    }

    pub(crate) fn addrs(&self) -> Vec<SocketAddr> {
        self.peers.keys().copied().collect()
    }

    /// Connections that completed their handshake.
    pub(crate) fn connected(&self) -> impl Iterator<Item = (&SocketAddr, &PeerEntry)> {
        self.peers.iter().filter(|(_, p)| p.connected)
    }

    /// Asks for `addr`'s connection to close (once); its `Disconnected`
    /// event follows.
    pub(crate) fn disconnect(&mut self, addr: SocketAddr, out: &mut Vec<Action>) {
        if let Some(peer) = self.peers.get_mut(&addr) {
            if !peer.closing {
                peer.closing = true;
                out.push(Action::Disconnect(addr));
            }
        }
    }

    /// Whether another outbound connection may be made.
    pub(crate) fn may_dial(&self) -> bool {
        self.peers.len() < self.max_dial
    }

    /// Whether an inbound connection from `addr` may be taken (the caller
    /// checks bans and the torrent's state).
    pub(crate) fn may_accept(&self, addr: &SocketAddr) -> Result<(), Refusal> {
        if self.peers.len() >= self.max_connections {
            Err(Refusal::Limit)
        } else if self.peers.contains_key(addr) {
            Err(Refusal::AlreadyConnected)
        } else {
            Ok(())
        }
    }

    /// A connection being made (dialled or accepted).
    pub(crate) fn add(&mut self, addr: SocketAddr, inbound: bool, now: Instant) {
        let entry = PeerEntry::new(self.piece_count, inbound, now);
        self.peers.insert(addr, entry);
    }

    pub(crate) fn remove(&mut self, addr: &SocketAddr) -> Option<PeerEntry> {
        self.peers.remove(addr)
    }

    /// The handshake with `addr` completed. False if the peer id is already
    /// connected through another address (the caller drops this one).
    pub(crate) fn handshaken(&mut self, addr: SocketAddr, peer_id: PeerId, now: Instant) -> bool {
        if self.peers.values().any(|p| p.peer_id == Some(peer_id)) {
            return false;
        }
        let Some(peer) = self.peers.get_mut(&addr) else {
            return false;
        };
        peer.connected = true;
        peer.peer_id = Some(peer_id);
        peer.last_block = now;
        peer.connected_at = now;
        true
    }

    /// Sends `interested`/`not interested` when `want` differs from what the
    /// peer was last told.
    pub(crate) fn set_interest(&mut self, addr: SocketAddr, want: bool, out: &mut Vec<Action>) {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if want != peer.am_interested && peer.connected && !peer.closing {
            peer.am_interested = want;
            out.push(Action::Peer(addr, PeerCommand::Interested(want)));
        }
    }

    /// A peer's share of [`REQUEST_BUDGET`] in blocks: the budget split
    /// among the peers that unchoke us, never below [`MIN_PIPELINE`].
    fn request_share(&self) -> usize {
        let budget = (REQUEST_BUDGET / u64::from(BLOCK_SIZE)) as usize;
        let senders = self.peers.values().filter(|p| !p.choking_us).count();
        (budget / senders.max(1)).max(MIN_PIPELINE)
    }

    /// Fills `addr`'s pipeline up to its target depth (within its share of
    /// [`REQUEST_BUDGET`]) with blocks from the picker.
    pub(crate) fn fill(
        &mut self,
        addr: SocketAddr,
        picker: &mut Picker,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let share = self.request_share();
        let Some(peer) = self.peers.get_mut(&addr) else {
            return;
        };
        if !peer.connected || peer.closing || !peer.am_interested {
            return;
        }
        if peer.choking_us && peer.allowed_fast.is_empty() {
            return;
        }
        let room = peer.target.min(share).saturating_sub(peer.in_flight.len());
        // Small top-ups are batched, except when the pipeline is nearly dry.
        if room == 0 || (room < 4 && peer.in_flight.len() > 4) {
            return;
        }
        let blocks = if peer.choking_us {
            // Only its allowed-fast pieces (that it has) while it chokes us.
            let mut mask = Bitfield::new(peer.bitfield.len());
            for &piece in &peer.allowed_fast {
                if peer.bitfield.get(piece as usize) {
                    mask.set(piece as usize);
                }
            }
            picker.pick_at(&mask, &peer.in_flight, room, now, peer.fast)
        } else {
            picker.pick_at(&peer.bitfield, &peer.in_flight, room, now, peer.fast)
        };
        if blocks.is_empty() {
            return;
        }
        if peer.in_flight.is_empty() {
            peer.last_block = now;
        }
        peer.in_flight.extend(blocks.iter().copied());
        out.push(Action::Peer(addr, PeerCommand::Request(blocks)));
    }

    /// The peer choked us: without the Fast extension its requests are
    /// void; with it (`fast`) they stand until served or rejected. Returns
    /// how many were voided.
    pub(crate) fn choked_us(&mut self, addr: SocketAddr, fast: bool, picker: &mut Picker) -> usize {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return 0;
        };
        peer.choking_us = true;
        if fast {
            return 0;
        }
        let voided = peer.in_flight.len();
        for block in peer.in_flight.drain() {
            picker.cancel(block);
        }
        voided
    }

    /// The peer rejected our request for `block` (the peer actor checked we
    /// sent it). An outstanding one goes back to the picker (true); one we
    /// had cancelled was only owed an answer. A piece rejected while the
    /// peer chokes us is no longer asked of it until it unchokes us.
    pub(crate) fn rejected(
        &mut self,
        addr: SocketAddr,
        block: BlockInfo,
        picker: &mut Picker,
    ) -> bool {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return false;
        };
        if peer.choking_us {
            peer.allowed_fast.retain(|&p| p != block.piece);
        }
        if !peer.in_flight.remove(&block) {
            peer.unasked.answered(u64::from(block.length));
            return false;
        }
        picker.cancel(block);
        true
    }

    /// The peer serves `piece` while it chokes us (BEP 6 allowed-fast).
    /// Whether that is news.
    pub(crate) fn allowed_fast(&mut self, addr: SocketAddr, piece: u32) -> bool {
        let Some(peer) = self.peers.get_mut(&addr) else {
            return false;
        };
        if peer.allowed_fast.contains(&piece) {
            return false;
        }
        peer.allowed_fast.push(piece);
        true
    }

    /// Endgame: `block` arrived from `from`; withdraw the same request from
    /// everyone else.
    pub(crate) fn cancel_duplicates(
        &mut self,
        from: Contributor,
        block: BlockInfo,
        out: &mut Vec<Action>,
    ) {
        for (addr, peer) in &mut self.peers {
            if Contributor::Peer(*addr) != from && peer.in_flight.remove(&block) {
                peer.unasked.cancelled(u64::from(block.length));
                out.push(Action::Peer(*addr, PeerCommand::Cancel(block)));
            }
        }
    }

    /// Once a second: pipeline targets from each peer's rate, snubbed peers
    /// dropped, the faster half marked fast. A peer that chokes us (with the
    /// Fast extension, its requests outlive the choke) and neither serves
    /// nor rejects them is not dropped: they are cancelled and go back to
    /// the picker.
    pub(crate) fn tick(&mut self, now: Instant, picker: &mut Picker, out: &mut Vec<Action>) {
        for (addr, peer) in &mut self.peers {
            let rate = peer.rate.rate(now);
            // About a quarter second of data in flight, within bounds.
            let wanted = (rate / 4.0 / f64::from(BLOCK_SIZE)) as usize;
            peer.target = wanted.clamp(MIN_PIPELINE, MAX_PIPELINE);
            let snubbed = now.duration_since(peer.last_block) > SNUB_TIMEOUT;
            if !peer.in_flight.is_empty() && snubbed && peer.choking_us {
                log::debug!("{addr} chokes us and holds our requests; withdrawing them");
                for block in peer.in_flight.drain() {
                    picker.cancel(block);
                    peer.unasked.cancelled(u64::from(block.length));
                    out.push(Action::Peer(*addr, PeerCommand::Cancel(block)));
                }
            } else if !peer.in_flight.is_empty() && snubbed && !peer.closing {
                log::info!("{addr} sent nothing for {SNUB_TIMEOUT:?}; dropping");
                peer.closing = true;
                out.push(Action::Disconnect(*addr));
            }
        }
        self.rank(now);
    }

    /// Marks the faster half of the peers that send us data as fast.
    fn rank(&mut self, now: Instant) {
        let mut rates: Vec<f64> = self.peers.values_mut().map(|p| p.rate.rate(now)).collect();
        rates.sort_by(|a, b| b.total_cmp(a));
        let cut = rates
            .get(rates.len().saturating_sub(1) / 2)
            .copied()
            .unwrap_or(0.0);
        for peer in self.peers.values_mut() {
            peer.fast = peer.rate.rate(now) >= cut;
        }
    }

    /// Partial pieces the picker may keep: enough to fill every pipeline at
    /// its deepest twice over (plus one piece per peer, so none waits for
    /// another's piece), and never more than `max_bytes` of piece buffers.
    /// It depends only on the number of connections, so it is right from
    /// the first request (a cap from the current depths would hold a new
    /// download to a piece or two until its pipelines grow).
    pub(crate) fn partial_cap(&self, piece_length: u32, max_bytes: u64) -> usize {
        let piece_length = u64::from(piece_length.max(1));
        let peers = self.peers.len() as u64;
        let deepest = (MAX_PIPELINE as u64) * u64::from(BLOCK_SIZE);
        let wanted = (2 * deepest * peers.max(1)).div_ceil(piece_length) + peers;
        let bound = (max_bytes / piece_length).max(1);
        wanted.clamp(1, bound) as usize
    }

    /// One round of the choke algorithm: unchoke whom the choker picks,
    /// choke everyone else.
    pub(crate) fn choke_round(
        &mut self,
        choker: &mut Choker<SocketAddr>,
        seeding: bool,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let views: Vec<PeerView<SocketAddr>> = self
            .peers
            .iter_mut()
            .filter(|(_, p)| p.connected)
            .map(|(addr, p)| PeerView {
                id: *addr,
                interested: p.peer_interested,
                choked: p.am_choking,
                download_rate: p.rate.rate(now),
                upload_rate: p.upload.rate(now),
                connected_at: p.connected_at,
                last_unchoked: p.last_unchoked,
                last_piece_received: p.last_piece,
                am_interested: p.am_interested,
            })
            .collect();
        let decision = choker.run_round(&views, seeding, now);
        let unchoke: HashSet<SocketAddr> = decision.unchoke.into_iter().collect();
        log::debug!("choke round: unchoking {unchoke:?}");
        for (addr, peer) in &mut self.peers {
            if peer.connected {
                peer.set_choke(*addr, !unchoke.contains(addr), now, out);
            }
        }
    }

    /// A peer became interested: unchoke it at once if an upload slot is
    /// free, rather than make it wait for the next round.
    pub(crate) fn unchoke_if_slot_free(
        &mut self,
        addr: SocketAddr,
        now: Instant,
        out: &mut Vec<Action>,
    ) {
        let unchoked = self.connected().filter(|(_, p)| !p.am_choking).count();
        if unchoked > self.upload_slots {
            return;
        }
        if let Some(peer) = self.peers.get_mut(&addr) {
            peer.set_choke(addr, false, now, out);
        }
    }

    /// Peer exchange (BEP 11): tells each peer, at most once a minute, which
    /// peers we connected to or dropped since. Only addresses we dialled are
    /// shared (an inbound peer's source port is not where it listens).
    pub(crate) fn pex(&mut self, now: Instant, out: &mut Vec<Action>) {
        let known: Vec<SocketAddr> = self
            .connected()
            .filter(|(_, p)| !p.inbound)
            .map(|(a, _)| *a)
            .collect();
        for (addr, peer) in &mut self.peers {
            if !peer.connected {
                continue;
            }
            let others = known.iter().filter(|a| *a != addr).map(|a| PexPeer {
                addr: *a,
                flags: PexFlags::default(),
            });
            if let Some(msg) = peer.pex.next_message(now, others) {
                out.push(Action::Peer(*addr, PeerCommand::Pex(msg)));
            }
        }
    }

    /// Counters for the torrent's statistics: (connected, interested,
    /// inbound, unchoked).
    /// Connected peers we are interested in: the ones fetching pieces.
    pub(crate) fn serving(&self) -> usize {
        self.connected().filter(|(_, p)| p.am_interested).count()
    }

    pub(crate) fn counts(&self) -> (usize, usize, usize, usize) {
        let connected = self.connected().count();
        let interested = self.peers.values().filter(|p| p.peer_interested).count();
        let inbound = self.connected().filter(|(_, p)| p.inbound).count();
        let unchoked = self.connected().filter(|(_, p)| !p.am_choking).count();
        (connected, interested, inbound, unchoked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn connected_set(n: u16, now: Instant) -> PeerSet {
        let mut set = PeerSet::new(8, 4, 6, 2);
        for i in 1..=n {
            set.add(addr(i), false, now);
            assert!(set.handshaken(addr(i), PeerId([i as u8; 20]), now));
        }
        set
    }

    #[test]
    fn a_second_connection_of_one_peer_id_is_refused() {
        let now = Instant::now();
        let mut set = connected_set(1, now);
        set.add(addr(9), true, now);
        assert!(!set.handshaken(addr(9), PeerId([1; 20]), now));
        assert!(!set.get(&addr(9)).unwrap().connected);
    }

    #[test]
    fn limits_refuse_inbound_and_stop_dialling() {
        let now = Instant::now();
        let mut set = connected_set(4, now);
        assert!(!set.may_dial(), "4 is the dial limit");
        assert_eq!(set.may_accept(&addr(1)), Err(Refusal::AlreadyConnected));
        set.add(addr(5), true, now);
        assert_eq!(set.may_accept(&addr(6)), Ok(()));
        set.add(addr(6), true, now);
        assert_eq!(set.may_accept(&addr(7)), Err(Refusal::Limit));
    }

    #[test]
    fn pipelines_fill_to_target_and_a_choke_voids_them() {
        let now = Instant::now();
        let mut set = connected_set(1, now);
        let mut picker =
            Picker::new(8, 4 * BLOCK_SIZE, 32 * u64::from(BLOCK_SIZE)).with_rng_seed(1);
        let peer = set.get_mut(&addr(1)).unwrap();
        peer.bitfield = Bitfield::full(8);
        picker.add_peer(&peer.bitfield);
        let mut out = Vec::new();
        set.fill(addr(1), &mut picker, now, &mut out);
        assert!(out.is_empty(), "not interested, choked: nothing asked");
        set.set_interest(addr(1), true, &mut out);
        assert!(
            matches!(out[..], [Action::Peer(a, PeerCommand::Interested(true))] if a == addr(1)),
            "{out:?}"
        );
        set.get_mut(&addr(1)).unwrap().choking_us = false;
        out.clear();
        set.fill(addr(1), &mut picker, now, &mut out);
        let [Action::Peer(_, PeerCommand::Request(blocks))] = &out[..] else {
            panic!("one request batch expected: {out:?}");
        };
        assert_eq!(blocks.len(), MIN_PIPELINE, "the whole target at once");
        assert_eq!(set.choked_us(addr(1), false, &mut picker), MIN_PIPELINE);
        assert!(set.get(&addr(1)).unwrap().in_flight.is_empty());
    }

    #[test]
    fn the_request_budget_is_shared_by_the_peers_that_unchoke_us() {
        let now = Instant::now();
        let mut set = connected_set(8, now);
        let budget = (REQUEST_BUDGET / u64::from(BLOCK_SIZE)) as usize;
        assert_eq!(set.request_share(), budget, "nobody unchokes us yet");
        let pieces = 64;
        let mut picker = Picker::new(pieces, 16 * BLOCK_SIZE, 1 << 30).with_rng_seed(1);
        let mut out = Vec::new();
        for i in 1..=4 {
            let peer = set.get_mut(&addr(i)).unwrap();
            peer.bitfield = Bitfield::full(pieces);
            picker.add_peer(&peer.bitfield);
            peer.choking_us = false;
            peer.am_interested = true;
            peer.target = MAX_PIPELINE;
        }
        assert_eq!(set.request_share(), (budget / 4).max(MIN_PIPELINE));
        for i in 1..=4 {
            set.fill(addr(i), &mut picker, now, &mut out);
        }
        let in_flight: usize = (1..=4)
            .map(|i| set.get(&addr(i)).unwrap().in_flight.len())
            .sum();
        assert_eq!(in_flight, 4 * (budget / 4).max(MIN_PIPELINE));
        assert!(in_flight as u64 * u64::from(BLOCK_SIZE) <= REQUEST_BUDGET);
    }

    #[test]
    fn the_partial_piece_cap_follows_the_connections_within_a_bound() {
        let now = Instant::now();
        let none = PeerSet::new(8, 4, 6, 2);
        // Two 4 MiB pipelines' worth in 1 MiB pieces, even before any peer.
        assert_eq!(none.partial_cap(1 << 20, 128 << 20), 8);
        let set = connected_set(2, now);
        assert_eq!(set.partial_cap(1 << 20, 128 << 20), 2 * 8 + 2);
        assert_eq!(set.partial_cap(1 << 20, 4 << 20), 4, "bounded by bytes");
        assert_eq!(set.partial_cap(u32::MAX, 1 << 20), 1, "at least one");
    }

    #[test]
    fn an_interested_peer_is_unchoked_while_a_slot_is_free() {
        let now = Instant::now();
        let mut set = connected_set(4, now);
        let mut out = Vec::new();
        for i in 1..=4 {
            set.unchoke_if_slot_free(addr(i), now, &mut out);
        }
        // Two slots plus the optimistic one: the fourth waits for a round.
        assert_eq!(out.len(), 3, "{out:?}");
        assert!(set.get(&addr(4)).unwrap().am_choking);
    }
}
