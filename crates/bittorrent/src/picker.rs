//! Which block to request next: rarest-first piece selection with random
//! first pieces, strict completion of started pieces, priorities, and endgame.
//! Pure state; the torrent actor owns one.

use std::collections::HashSet;

use crate::bitfield::Bitfield;
use crate::types::BlockInfo;

/// Download priority of a piece. `Skip` pieces are never requested.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Priority {
    /// Not wanted.
    Skip,
    /// Rarest-first.
    #[default]
    Normal,
    /// Picked before every `Normal` piece.
    High,
}

/// What [`Picker::block_received`] made of a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// First copy of a block we requested. `piece_complete` is true when every
    /// block of its piece has now arrived (the piece is ready to verify).
    Fresh {
        /// All blocks of the piece are in.
        piece_complete: bool,
    },
    /// We already had this block (an endgame duplicate, or a late arrival).
    Duplicate,
    /// Not a block we asked anyone for (wrong geometry, piece we have, ...).
    Unexpected,
}

/// Piece and block bookkeeping for one torrent.
#[derive(Debug)]
pub struct Picker {
    piece_length: u32,
    total_length: u64,
}

impl Picker {
    /// Random pieces picked before switching to rarest-first.
    pub const RANDOM_FIRST_PIECES: usize = 4;

    /// A picker for `piece_count` pieces of `piece_length` bytes (the last one
    /// shorter), nothing had yet.
    pub fn new(piece_count: usize, piece_length: u32, total_length: u64) -> Self {
        let _ = piece_count;
        Self {
            piece_length,
            total_length,
        }
    }

    /// Marks piece `index` as already verified (e.g. found on disk).
    pub fn mark_have(&mut self, index: u32) {
        let _ = index;
        todo!()
    }

    /// A peer announced its bitfield (or connected with one).
    pub fn add_peer(&mut self, has: &Bitfield) {
        let _ = has;
        todo!()
    }

    /// A peer with bitfield `has` disconnected.
    pub fn remove_peer(&mut self, has: &Bitfield) {
        let _ = has;
        todo!()
    }

    /// A peer sent `have index` (the caller checks the peer did not have it).
    pub fn peer_has(&mut self, index: u32) {
        let _ = index;
        todo!()
    }

    /// Whether a peer with bitfield `has` has a wanted piece we lack.
    pub fn is_interesting(&self, has: &Bitfield) -> bool {
        let _ = has;
        todo!()
    }

    /// Chooses up to `max` blocks to request from a peer with bitfield `has`,
    /// and marks them requested. `in_flight` are the blocks already requested
    /// from this peer; in endgame they are not handed out again.
    pub fn pick(
        &mut self,
        has: &Bitfield,
        in_flight: &HashSet<BlockInfo>,
        max: usize,
    ) -> Vec<BlockInfo> {
        let _ = (has, in_flight, max);
        todo!()
    }

    /// A request for `block` was dropped (choke, disconnect, cancel) without
    /// the block arriving.
    pub fn cancel(&mut self, block: BlockInfo) {
        let _ = block;
        todo!()
    }

    /// A block arrived.
    pub fn block_received(&mut self, block: BlockInfo) -> Received {
        let _ = block;
        todo!()
    }

    /// Piece `index` passed its hash check and was stored.
    pub fn piece_verified(&mut self, index: u32) {
        let _ = index;
        todo!()
    }

    /// Piece `index` failed its hash check: all its blocks are wanted again.
    pub fn piece_failed(&mut self, index: u32) {
        let _ = index;
        todo!()
    }

    /// Sets the priority of piece `index`.
    pub fn set_priority(&mut self, index: u32, priority: Priority) {
        let _ = (index, priority);
        todo!()
    }

    /// True when every wanted (non-`Skip`) piece is verified.
    pub fn is_complete(&self) -> bool {
        todo!()
    }

    /// True when no wanted block is left unrequested (duplicates are handed out).
    pub fn in_endgame(&self) -> bool {
        todo!()
    }

    /// Verified pieces.
    pub fn have(&self) -> &Bitfield {
        todo!()
    }

    /// Geometry: length of piece `index`.
    pub fn piece_len(&self, index: u32) -> u32 {
        let _ = (index, self.piece_length, self.total_length);
        todo!()
    }
}
