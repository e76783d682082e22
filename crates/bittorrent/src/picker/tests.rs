use crate::picker::*;
use crate::types::BLOCK_SIZE;
use proptest::prelude::*;
// Explicit, so proptest's own `Rng` re-export does not shadow ours.
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::{BTreeSet, HashSet};

mod runs;

const B: u32 = BLOCK_SIZE;

fn bf(len: usize, set: &[usize]) -> Bitfield {
    let mut b = Bitfield::new(len);
    for &i in set {
        b.set(i);
    }
    b
}

fn none() -> HashSet<BlockInfo> {
    HashSet::new()
}

/// `count` pieces of `blocks` full blocks each.
fn picker(count: usize, blocks: u32, seed: u64) -> Picker {
    Picker::new(count, blocks * B, u64::from(blocks * B) * count as u64).with_rng_seed(seed)
}

/// Requests and receives every block of `piece`, then verifies it.
fn download(p: &mut Picker, piece: u32, count: usize) {
    let blocks = p.pick(&bf(count, &[piece as usize]), &none(), usize::MAX);
    assert!(!blocks.is_empty());
    for b in blocks {
        assert!(matches!(p.block_received(b), Received::Fresh { .. }));
    }
    p.piece_verified(piece);
}

fn pieces_of(blocks: &[BlockInfo]) -> BTreeSet<u32> {
    blocks.iter().map(|b| b.piece).collect()
}

#[test]
fn geometry_last_piece_and_last_block_are_short() {
    // 3 pieces of 2.5 blocks (not a multiple of BLOCK_SIZE); the last
    // piece is 1 block + 100 bytes.
    let plen = 2 * B + B / 2;
    let total = 2 * u64::from(plen) + u64::from(B) + 100;
    let p = Picker::new(3, plen, total);
    assert_eq!(p.piece_len(0), plen);
    assert_eq!(p.piece_len(1), plen);
    assert_eq!(p.piece_len(2), B + 100);
    assert_eq!(p.piece_len(3), 0);
    assert_eq!(p.blocks_in_piece(0), 3);
    assert_eq!(p.blocks_in_piece(2), 2);
    assert_eq!(p.block_info(0, 2).unwrap().length, B / 2);
    assert_eq!(p.block_info(2, 1).unwrap().length, 100);
    assert_eq!(p.block_info(2, 2), None);
    assert_eq!(p.block_info(9, 0), None);
    // Exact multiple: the last piece is full.
    let p = Picker::new(2, 2 * B, 4 * u64::from(B));
    assert_eq!(p.piece_len(1), 2 * B);
    assert_eq!(Picker::new(1, B, 10).piece_len(0), 10);
}

#[test]
fn last_piece_short_last_block_is_picked_and_received_with_its_length() {
    let total = 3 * u64::from(2 * B) + 100;
    let mut p = Picker::new(4, 2 * B, total).with_rng_seed(1);
    let blocks = p.pick(&bf(4, &[3]), &none(), 10);
    assert_eq!(
        blocks,
        vec![BlockInfo {
            piece: 3,
            begin: 0,
            length: 100
        }]
    );
    let wrong = BlockInfo {
        length: B,
        ..blocks[0]
    };
    assert_eq!(p.block_received(wrong), Received::Unexpected);
    assert_eq!(
        p.block_received(blocks[0]),
        Received::Fresh {
            piece_complete: true
        }
    );
    p.assert_consistent();
}

#[test]
fn random_first_pieces_then_rarest_first() {
    let n = 20;
    let mut firsts = BTreeSet::new();
    for seed in 0..40 {
        let mut p = picker(n, 1, seed);
        p.add_peer(&Bitfield::full(n));
        p.add_peer(&Bitfield::full(n));
        p.add_peer(&bf(n, &[7])); // piece 7 is the most available
        p.add_peer(&bf(n, &[7]));
        let all = Bitfield::full(n);
        // Random phase: pieces the peer has, any availability.
        let mut started = Vec::new();
        for _ in 0..Picker::RANDOM_FIRST_PIECES {
            let got = p.pick(&all, &none(), 1);
            assert_eq!(got.len(), 1);
            started.push(got[0].piece);
        }
        firsts.insert(started[0]);
        // Make piece 13 the rarest: every other remaining piece gets
        // one more peer.
        let others: Vec<usize> = (0..n).filter(|&i| i != 13).collect();
        p.add_peer(&bf(n, &others));
        if !started.contains(&13) {
            assert_eq!(p.pick(&all, &none(), 1)[0].piece, 13, "seed {seed}");
        }
        p.assert_consistent();
    }
    assert!(firsts.len() > 5, "first pieces not random: {firsts:?}");
    assert!(firsts.iter().any(|&f| f != 7));
}

#[test]
fn rarest_first_after_random_phase_and_random_ties() {
    let n = 12;
    let mut chosen = BTreeSet::new();
    for seed in 0..50 {
        let mut p = picker(n, 1, seed);
        for i in 0..4 {
            p.mark_have(i); // the random phase is over
        }
        p.add_peer(&Bitfield::full(n));
        p.add_peer(&Bitfield::full(n));
        // Pieces 4..8 have availability 2, pieces 8, 9, 10 have 1
        // (tied rarest), 11 has 3.
        p.remove_peer(&bf(n, &[8, 9, 10]));
        p.add_peer(&bf(n, &[11]));
        assert_eq!(p.availability(8), 1);
        assert_eq!(p.availability(4), 2);
        assert_eq!(p.availability(11), 3);
        let got = p.pick(&Bitfield::full(n), &none(), 1);
        assert!([8, 9, 10].contains(&got[0].piece), "seed {seed}: {got:?}");
        chosen.insert(got[0].piece);
        // Then the other two rarest before any more common piece.
        let got = p.pick(&Bitfield::full(n), &none(), 2);
        assert!(got.iter().all(|b| [8, 9, 10].contains(&b.piece)));
        let got = p.pick(&Bitfield::full(n), &none(), 4);
        assert_eq!(pieces_of(&got), BTreeSet::from([4, 5, 6, 7]));
        assert_eq!(p.pick(&Bitfield::full(n), &none(), 4)[0].piece, 11);
    }
    assert_eq!(chosen.len(), 3, "ties not broken randomly: {chosen:?}");
}

#[test]
fn rarest_among_pieces_the_peer_has() {
    let n = 10;
    let mut p = picker(n, 1, 3);
    for i in 0..4 {
        p.mark_have(i);
    }
    p.add_peer(&bf(n, &[4])); // 4 is rarest overall, peer lacks it
    p.add_peer(&bf(n, &[5, 6, 7, 8, 9]));
    p.add_peer(&bf(n, &[5, 6, 7, 9]));
    let got = p.pick(&bf(n, &[5, 6, 7, 8, 9]), &none(), 1);
    assert_eq!(got[0].piece, 8);
}

#[test]
fn peer_lacking_a_piece_never_gets_its_blocks() {
    let n = 8;
    let mut p = picker(n, 4, 5);
    let has = bf(n, &[2, 6]);
    let got = p.pick(&has, &none(), 100);
    assert_eq!(got.len(), 8);
    assert_eq!(pieces_of(&got), BTreeSet::from([2, 6]));
    assert!(p.pick(&has, &got.iter().copied().collect(), 100).is_empty());
    assert!(p.pick(&Bitfield::new(n), &none(), 100).is_empty());
    // Wrong-length bitfields are not a reason to panic.
    assert!(p.pick(&Bitfield::new(3), &none(), 100).is_empty());
    let long = p.pick(&Bitfield::full(100), &none(), 100);
    assert!(long.iter().all(|b| (b.piece as usize) < n));
    p.assert_consistent();
}

#[test]
fn partial_pieces_are_finished_before_new_ones_start() {
    let n = 10;
    let mut p = picker(n, 4, 9);
    let all = Bitfield::full(n);
    let first = p.pick(&all, &none(), 1);
    assert_eq!(p.partial_pieces(), 1);
    let piece = first[0].piece;
    // Another peer gets the 3 remaining blocks of that piece first.
    let second = p.pick(&all, &none(), 5);
    assert_eq!(second.len(), 5);
    assert!(second[..3].iter().all(|b| b.piece == piece));
    assert_ne!(second[3].piece, piece);
    assert_eq!(second[3].piece, second[4].piece);
    // Received blocks are not handed out again; a cancelled one is, first.
    assert!(matches!(
        p.block_received(first[0]),
        Received::Fresh {
            piece_complete: false
        }
    ));
    p.cancel(second[1]);
    let third = p.pick(&all, &none(), 1);
    assert_eq!(third, vec![second[1]]);
    p.assert_consistent();
}

/// A picker of `n` pieces of 4 blocks, past the random first pieces
/// (0..4 verified), a seed and a fellow with only piece 4 connected.
fn seed_and_fellow(n: usize) -> (Picker, Bitfield, Bitfield) {
    let mut p = picker(n, 4, 21);
    let seed = Bitfield::full(n);
    let fellow = bf(n, &[4]);
    p.add_peer(&seed);
    p.add_peer(&fellow);
    for i in 0..4 {
        p.mark_have(i);
    }
    // The fellow's pipeline had room for one block of piece 4.
    assert_eq!(pieces_of(&p.pick(&fellow, &none(), 1)), BTreeSet::from([4]));
    (p, seed, fellow)
}

#[test]
fn a_partial_piece_a_fellow_has_is_left_to_it_while_the_seed_has_rarer_ones() {
    let n = 8;
    let (mut p, seed, fellow) = seed_and_fellow(n);
    // The seed's upload goes to pieces only it has (5, 6, 7), not to the
    // three free blocks of piece 4.
    let from_seed = p.pick(&seed, &none(), 8);
    assert_eq!(from_seed.len(), 8);
    assert!(!pieces_of(&from_seed).contains(&4), "{from_seed:?}");
    // The fellow finishes piece 4.
    let from_fellow = p.pick(&fellow, &none(), 8);
    assert_eq!(from_fellow.len(), 3);
    assert_eq!(pieces_of(&from_fellow), BTreeSet::from([4]));
    p.assert_consistent();
}

#[test]
fn the_seed_finishes_a_shared_partial_piece_when_nothing_rarer_is_left() {
    let n = 6;
    let (mut p, seed, _) = seed_and_fellow(n);
    // Piece 5 is the only rarer one: 4 blocks of it, then piece 4's.
    let from_seed = p.pick(&seed, &none(), 7);
    assert_eq!(from_seed.len(), 7);
    assert_eq!(from_seed.iter().filter(|b| b.piece == 5).count(), 4);
    assert_eq!(from_seed.iter().filter(|b| b.piece == 4).count(), 3);
    p.assert_consistent();
}

#[test]
fn shared_partial_pieces_are_finished_first_at_the_cap_and_in_sequential_mode() {
    let n = 8;
    let (mut p, seed, _) = seed_and_fellow(n);
    p.set_max_partial_pieces(1);
    let from_seed = p.pick(&seed, &none(), 3);
    assert_eq!(pieces_of(&from_seed), BTreeSet::from([4]), "at the cap");

    let (mut p, seed, _) = seed_and_fellow(n);
    p.set_mode(PickMode::Sequential);
    let from_seed = p.pick(&seed, &none(), 3);
    assert_eq!(pieces_of(&from_seed), BTreeSet::from([4]), "sequential");
    p.assert_consistent();
}

#[test]
fn equally_available_partial_pieces_are_finished_first_from_any_seed() {
    // Four seeds: every piece equally common, so nothing is rarer than a
    // started piece and each seed finishes it (bounded buffers).
    let n = 8;
    let mut p = picker(n, 4, 22);
    let seed = Bitfield::full(n);
    for _ in 0..4 {
        p.add_peer(&seed);
    }
    let first = p.pick(&seed, &none(), 1);
    let second = p.pick(&seed, &none(), 3);
    assert_eq!(pieces_of(&second), pieces_of(&first));
    p.assert_consistent();
}

#[test]
fn oldest_partial_first_and_high_partials_before_normal() {
    let n = 10;
    let mut p = picker(n, 2, 2);
    let all = Bitfield::full(n);
    let a = p.pick(&all, &none(), 1)[0].piece;
    let b = p.pick(
        &bf(
            n,
            &((0..n).filter(|&i| i != a as usize).collect::<Vec<_>>()),
        ),
        &none(),
        1,
    )[0]
    .piece;
    assert_ne!(a, b);
    // Oldest first.
    assert_eq!(p.pick(&all, &none(), 1)[0].piece, a);
    p.cancel(BlockInfo {
        piece: a,
        begin: B,
        length: B,
    });
    // b goes High: its free block comes before a's.
    p.set_priority(b, Priority::High);
    assert_eq!(p.pick(&all, &none(), 1)[0].piece, b);
    assert_eq!(p.pick(&all, &none(), 1)[0].piece, a);
    p.assert_consistent();
}

#[test]
fn one_pick_starts_several_pieces_for_deep_pipelines() {
    let n = 100;
    let mut p = picker(n, 4, 4);
    let got = p.pick(&Bitfield::full(n), &none(), 200);
    assert_eq!(got.len(), 200);
    assert_eq!(pieces_of(&got).len(), 50);
    assert_eq!(p.partial_pieces(), 50);
    let unique: HashSet<_> = got.iter().collect();
    assert_eq!(unique.len(), 200);
    // Each started piece's blocks are handed out whole.
    for piece in pieces_of(&got) {
        assert_eq!(got.iter().filter(|b| b.piece == piece).count(), 4);
    }
    p.assert_consistent();
}

#[test]
fn skip_pieces_are_never_requested() {
    let n = 6;
    let mut p = picker(n, 2, 1);
    p.set_priorities(0..n as u32, Priority::Skip);
    p.set_priority(4, Priority::Normal);
    p.set_priorities(5..1000, Priority::Skip); // clamped
    assert!(!p.is_interesting(&bf(n, &[0, 1, 2, 3, 5])));
    assert!(p.is_interesting(&bf(n, &[4])));
    assert_eq!(p.pieces_left(), 1);
    let got = p.pick(&Bitfield::full(n), &none(), 100);
    assert_eq!(pieces_of(&got), BTreeSet::from([4]));
    // Endgame does not hand out Skip pieces either.
    assert!(p.in_endgame());
    assert!(p
        .pick(&Bitfield::full(n), &got.iter().copied().collect(), 100)
        .is_empty());
    for b in got {
        p.block_received(b);
    }
    p.piece_verified(4);
    assert!(p.is_complete());
    assert!(!p.in_endgame());
    assert!(p.pick(&Bitfield::full(n), &none(), 100).is_empty());
    p.assert_consistent();
}

#[test]
fn skipping_a_partial_piece_stops_handing_out_its_blocks() {
    let n = 3;
    let mut p = picker(n, 4, 1);
    let got = p.pick(&bf(n, &[1]), &none(), 2);
    p.set_priority(1, Priority::Skip);
    assert!(p.pick(&bf(n, &[1]), &none(), 10).is_empty());
    // Requested blocks still arrive fine.
    assert!(matches!(p.block_received(got[0]), Received::Fresh { .. }));
    p.set_priority(1, Priority::Normal);
    assert_eq!(p.pick(&bf(n, &[1]), &none(), 10).len(), 2);
    p.assert_consistent();
}

#[test]
fn high_before_normal() {
    let n = 10;
    for seed in 0..20 {
        let mut p = picker(n, 1, seed);
        p.add_peer(&Bitfield::full(n));
        // Past the random phase, 7 is the rarest piece.
        p.add_peer(&bf(n, &[0, 1, 2, 3, 4, 5, 6, 8, 9]));
        for i in [0, 2, 4, 5] {
            p.mark_have(i);
        }
        p.add_peer(&Bitfield::full(n));
        p.set_priority(3, Priority::High);
        p.set_priority(9, Priority::High);
        let got = p.pick(&Bitfield::full(n), &none(), 2);
        assert_eq!(pieces_of(&got), BTreeSet::from([3, 9]), "seed {seed}");
        // A peer without High pieces still gets Normal ones.
        let got = p.pick(&bf(n, &[1]), &none(), 1);
        assert_eq!(got[0].piece, 1);
        // Then rarest-first among Normal pieces.
        assert_eq!(p.pick(&Bitfield::full(n), &none(), 1)[0].piece, 7);
    }
}

#[test]
fn endgame_hands_out_duplicates_only_when_nothing_is_free() {
    let n = 2;
    let mut p = picker(n, 2, 7);
    let a_has = bf(n, &[0]);
    let a = p.pick(&a_has, &none(), 10);
    assert_eq!(a.len(), 2);
    // Piece 1 is still free: no endgame, and A (lacking it) gets nothing.
    assert!(!p.in_endgame());
    assert!(p.pick(&a_has, &a.iter().copied().collect(), 10).is_empty());
    // B has both: gets piece 1's free blocks, no duplicates yet.
    let b_has = Bitfield::full(n);
    let b = p.pick(&b_has, &none(), 1);
    assert_eq!(b[0].piece, 1);
    assert!(!p.in_endgame());
    let mut b_flight: HashSet<_> = b.iter().copied().collect();
    // The last free block goes to B, then duplicates of A's blocks in the
    // same call (endgame starts).
    let b2 = p.pick(&b_has, &b_flight, 10);
    assert!(p.in_endgame());
    assert_eq!(b2.len(), 3);
    assert_eq!(b2[0].piece, 1);
    assert_eq!(pieces_of(&b2[1..]), BTreeSet::from([0]));
    b_flight.extend(b2.iter().copied());
    // B never gets a block twice.
    assert!(p.pick(&b_has, &b_flight, 10).is_empty());
    // C: fewest requesters first. Piece 1's blocks have 1 requester,
    // piece 0's have 2.
    let c = p.pick(&b_has, &none(), 2);
    assert_eq!(pieces_of(&c), BTreeSet::from([1]));
    let c2 = p.pick(&b_has, &c.iter().copied().collect(), 10);
    assert_eq!(pieces_of(&c2), BTreeSet::from([0]));
    // Piece 0 block 0 is requested by A, B, C. It arrives from A.
    let blk = a[0];
    assert_eq!(
        p.block_received(blk),
        Received::Fresh {
            piece_complete: false
        }
    );
    assert_eq!(p.block_received(blk), Received::Duplicate);
    // The torrent cancels the copies at B and C: ignored, it is received.
    p.cancel(blk);
    p.cancel(blk);
    p.assert_consistent();
    // Piece 0 block 1 (A, B, C): cancel twice, still requested by one,
    // so not free; the third cancel frees it.
    let blk1 = a[1];
    p.cancel(blk1);
    p.cancel(blk1);
    assert!(p.in_endgame());
    p.cancel(blk1);
    assert!(!p.in_endgame());
    let d = p.pick(&b_has, &none(), 1);
    assert_eq!(d, vec![blk1]);
    assert!(matches!(
        p.block_received(blk1),
        Received::Fresh {
            piece_complete: true
        }
    ));
    p.piece_verified(0);
    p.assert_consistent();
    // Cancel everything for piece 1 (B and C): it becomes missing again.
    for blk in c.iter().chain(&b).chain(&b2[..1]) {
        p.cancel(*blk);
    }
    assert_eq!(p.partial_pieces(), 0);
    assert!(!p.in_endgame());
    p.assert_consistent();
    assert_eq!(p.pick(&b_has, &none(), 10).len(), 2);
}

#[test]
fn cancel_returns_an_untouched_piece_to_missing() {
    let n = 4;
    let mut p = picker(n, 2, 1);
    let got = p.pick(&bf(n, &[2]), &none(), 2);
    p.cancel(got[0]);
    assert_eq!(p.partial_pieces(), 1);
    p.cancel(got[1]);
    assert_eq!(p.partial_pieces(), 0);
    p.assert_consistent();
    // Unknown blocks are ignored.
    p.cancel(got[1]);
    p.cancel(BlockInfo {
        piece: 99,
        begin: 0,
        length: B,
    });
    p.cancel(BlockInfo {
        piece: 2,
        begin: 1,
        length: B,
    });
    p.assert_consistent();
    // A received block keeps the piece partial.
    let got = p.pick(&bf(n, &[2]), &none(), 2);
    p.block_received(got[0]);
    p.cancel(got[1]);
    assert_eq!(p.partial_pieces(), 1);
    assert_eq!(p.pick(&bf(n, &[2]), &none(), 5), vec![got[1]]);
    p.assert_consistent();
}

#[test]
fn failed_piece_is_pickable_again() {
    let n = 3;
    let mut p = picker(n, 2, 1);
    let got = p.pick(&bf(n, &[1]), &none(), 5);
    assert_eq!(
        p.block_received(got[0]),
        Received::Fresh {
            piece_complete: false
        }
    );
    assert_eq!(
        p.block_received(got[1]),
        Received::Fresh {
            piece_complete: true
        }
    );
    // Complete, awaiting verification: no more blocks, duplicates.
    assert_eq!(p.block_received(got[1]), Received::Duplicate);
    assert!(p.pick(&bf(n, &[1]), &none(), 5).is_empty());
    p.piece_failed(1);
    p.assert_consistent();
    assert_eq!(p.block_received(got[0]), Received::Unexpected);
    let again = p.pick(&bf(n, &[1]), &none(), 5);
    assert_eq!(again, got);
    // Failing a verified or out-of-range piece is ignored.
    p.piece_failed(0);
    p.piece_failed(77);
    p.mark_have(2);
    p.piece_failed(2);
    assert!(p.have().get(2));
    p.assert_consistent();
}

#[test]
fn block_received_rejects_bad_geometry_and_unrequested_blocks() {
    let n = 3;
    let mut p = Picker::new(n, 2 * B, 5 * u64::from(B) + 10).with_rng_seed(1);
    let got = p.pick(&bf(n, &[0]), &none(), 1);
    let ok = got[0];
    for bad in [
        BlockInfo { piece: 3, ..ok },
        BlockInfo {
            piece: u32::MAX,
            ..ok
        },
        BlockInfo { begin: 1, ..ok },
        BlockInfo { begin: 2 * B, ..ok },
        BlockInfo {
            begin: u32::MAX,
            ..ok
        },
        BlockInfo {
            length: B - 1,
            ..ok
        },
        BlockInfo {
            length: B + 1,
            ..ok
        },
        BlockInfo { length: 0, ..ok },
    ] {
        assert_eq!(p.block_received(bad), Received::Unexpected, "{bad:?}");
    }
    // Free block of a partial piece, block of a missing piece: never asked.
    assert_eq!(
        p.block_received(BlockInfo { begin: B, ..ok }),
        Received::Unexpected
    );
    assert_eq!(
        p.block_received(BlockInfo { piece: 1, ..ok }),
        Received::Unexpected
    );
    assert!(matches!(p.block_received(ok), Received::Fresh { .. }));
    assert_eq!(p.block_received(ok), Received::Duplicate);
    p.mark_have(1);
    assert_eq!(
        p.block_received(BlockInfo { piece: 1, ..ok }),
        Received::Duplicate
    );
    // The last piece is 1 block + 10 bytes.
    let last = BlockInfo {
        piece: 2,
        begin: B,
        length: 10,
    };
    assert_eq!(
        p.block_received(BlockInfo { length: B, ..last }),
        Received::Unexpected
    );
    p.assert_consistent();
}

#[test]
fn verifying_everything_completes() {
    let n = 5;
    let mut p = picker(n, 3, 11);
    p.mark_have(0);
    p.mark_have(0);
    p.mark_have(99);
    assert!(!p.is_complete());
    for i in 1..n as u32 {
        assert!(p.is_interesting(&Bitfield::full(n)));
        download(&mut p, i, n);
    }
    assert!(p.is_complete());
    assert!(p.have().is_full());
    assert!(!p.is_interesting(&Bitfield::full(n)));
    assert!(!p.in_endgame());
    assert_eq!(p.pieces_left(), 0);
    p.assert_consistent();
    // A zero-piece torrent is complete from the start.
    assert!(Picker::new(0, B, 0).is_complete());
}

#[test]
fn is_interesting_tracks_wanted_pieces() {
    let n = 20;
    let mut p = picker(n, 1, 1);
    assert!(!p.is_interesting(&Bitfield::new(n)));
    assert!(p.is_interesting(&bf(n, &[19])));
    p.mark_have(19);
    assert!(!p.is_interesting(&bf(n, &[19])));
    p.set_priority(18, Priority::Skip);
    assert!(!p.is_interesting(&bf(n, &[18, 19])));
    // Partial and complete pieces are still interesting.
    let got = p.pick(&bf(n, &[3]), &none(), 1);
    assert!(p.is_interesting(&bf(n, &[3])));
    p.block_received(got[0]);
    assert!(p.is_interesting(&bf(n, &[3])));
    // Wrong-length bitfields don't panic.
    assert!(p.is_interesting(&Bitfield::full(3)));
    assert!(!p.is_interesting(&Bitfield::new(0)));
}

#[test]
fn availability_never_underflows() {
    let n = 9;
    let mut p = picker(n, 1, 1);
    p.remove_peer(&Bitfield::full(n));
    assert_eq!(p.availability(0), 0);
    p.add_peer(&bf(n, &[8]));
    p.peer_has(8);
    p.peer_has(9);
    p.peer_has(u32::MAX);
    assert_eq!(p.availability(8), 2);
    p.remove_peer(&Bitfield::full(40));
    p.remove_peer(&Bitfield::full(40));
    p.remove_peer(&Bitfield::full(40));
    assert_eq!(p.availability(8), 0);
    assert_eq!(p.availability(100), 0);
    p.add_peer(&Bitfield::full(40)); // bits past the piece count ignored
    assert_eq!(p.availability(8), 1);
}

#[test]
fn partial_cap_limits_new_pieces_but_never_starves_a_peer() {
    let n = 10;
    let mut p = picker(n, 4, 1);
    p.set_max_partial_pieces(2);
    let all = Bitfield::full(n);
    let a = p.pick(&all, &none(), 1);
    let b = p.pick(&all, &none(), 4);
    // b: 3 blocks of a's piece, then one new piece (cap 2 not reached).
    assert_eq!(pieces_of(&b).len(), 2);
    assert_eq!(p.partial_pieces(), 2);
    // At the cap: the rest of the second piece only.
    let c = p.pick(&all, &none(), 10);
    assert_eq!(c.len(), 3);
    assert_eq!(p.partial_pieces(), 2);
    // Nothing free in partials for this peer: it may start pieces.
    let d = p.pick(&all, &none(), 8);
    assert_eq!(d.len(), 8);
    assert_eq!(p.partial_pieces(), 4);
    // A peer that lacks the partial pieces is not starved either.
    let partial: BTreeSet<u32> = pieces_of(&a)
        .into_iter()
        .chain(pieces_of(&b))
        .chain(pieces_of(&d))
        .collect();
    let other: Vec<usize> = (0..n).filter(|i| !partial.contains(&(*i as u32))).collect();
    let e = p.pick(&bf(n, &other), &none(), 1);
    assert_eq!(e.len(), 1);
    p.assert_consistent();
}

#[test]
fn in_flight_blocks_are_never_returned() {
    let n = 2;
    let mut p = picker(n, 3, 1);
    // The caller claims blocks in flight that the picker thinks free.
    let claimed: HashSet<_> = [p.block_info(0, 0).unwrap(), p.block_info(1, 1).unwrap()]
        .into_iter()
        .collect();
    let got = p.pick(&Bitfield::full(n), &claimed, 100);
    assert_eq!(got.len(), 4);
    assert!(got.iter().all(|b| !claimed.contains(b)));
    p.assert_consistent();
    // All blocks of a new piece in flight: the piece stays missing.
    let mut q = picker(1, 1, 1);
    let only: HashSet<_> = [q.block_info(0, 0).unwrap()].into_iter().collect();
    assert!(q.pick(&Bitfield::full(1), &only, 5).is_empty());
    assert_eq!(q.partial_pieces(), 0);
    q.assert_consistent();
}

/// `secs` seconds after `t0`.
fn at(t0: Instant, secs: f64) -> Instant {
    t0 + Duration::from_secs_f64(secs)
}

/// How many peers `block` is requested from (0 unless requested).
fn requesters(p: &Picker, block: BlockInfo) -> u32 {
    match p
        .partials
        .get(&block.piece)
        .map(|x| x.blocks[block.index_in_piece()])
    {
        Some(BlockState::Requested(n)) => n,
        _ => 0,
    }
}

fn pieces_in_order(blocks: &[BlockInfo]) -> Vec<u32> {
    blocks.iter().map(|b| b.piece).collect()
}

#[test]
fn urgent_pieces_come_before_rarer_partial_and_high_pieces() {
    let n = 10;
    let t0 = Instant::now();
    let mut p = picker(n, 4, 3);
    for i in 0..4 {
        p.mark_have(i); // the random phase is over
    }
    p.add_peer(&Bitfield::full(n));
    p.add_peer(&Bitfield::full(n));
    p.add_peer(&bf(n, &[9]));
    p.add_peer(&bf(n, &[9]));
    p.remove_peer(&bf(n, &[5, 7])); // 5 and 7 are the rarest
    assert_eq!(p.availability(9), 4);
    assert_eq!(p.availability(8), 2);
    let all = Bitfield::full(n);
    // A partial Normal piece (the rarest) and a partial High piece.
    let first = p.pick(&all, &none(), 1);
    assert!([5, 7].contains(&first[0].piece));
    let normal = first[0].piece;
    p.set_priority(6, Priority::High);
    assert_eq!(p.pick(&bf(n, &[6]), &none(), 1)[0].piece, 6);
    p.set_max_partial_pieces(1);
    p.set_mode(PickMode::Streaming);
    // 9 is the most common piece, 8 is common too; 8 is due first.
    assert!(p.set_deadline(9, at(t0, 20.0)));
    assert!(p.set_deadline(8, at(t0, 10.0)));
    let got = p.pick_at(&all, &none(), 16, t0, true);
    let mut expected = vec![8; 4];
    expected.extend([9; 4]);
    expected.extend([6; 3]); // then High partials, then Normal ones
    expected.extend([normal; 3]);
    assert_eq!(pieces_in_order(&got), expected);
    assert_eq!(
        got[..4],
        (0..4)
            .map(|b| p.block_info(8, b).unwrap())
            .collect::<Vec<_>>()[..]
    );
    // Urgent pieces ignore the partial cap (1).
    assert_eq!(p.partial_pieces(), 4);
    assert!(!p.in_endgame());
    p.assert_consistent();
}

#[test]
fn rarest_first_mode_keeps_deadlines_but_ignores_them() {
    let n = 10;
    let t0 = Instant::now();
    let mut p = picker(n, 1, 5);
    for i in 0..4 {
        p.mark_have(i);
    }
    p.add_peer(&Bitfield::full(n));
    p.add_peer(&bf(n, &[4, 5, 6, 7, 8])); // 9 is the rarest
    assert!(p.set_deadline(4, t0));
    assert_eq!(p.mode(), PickMode::RarestFirst);
    assert!(!p.may_have_duplicates());
    let all = Bitfield::full(n);
    assert_eq!(p.pick_at(&all, &none(), 1, t0, true)[0].piece, 9);
    p.set_mode(PickMode::Streaming);
    assert!(p.may_have_duplicates());
    assert_eq!(p.pick_at(&all, &none(), 1, t0, true)[0].piece, 4);
    // `pick` (no clock) honours deadlines too, as a fast peer.
    assert!(p.set_deadline(6, t0));
    assert_eq!(p.pick(&all, &none(), 1)[0].piece, 6);
    p.assert_consistent();
}

#[test]
fn urgent_window_follows_the_reader() {
    let n = 30;
    let t0 = Instant::now();
    let mut p = picker(n, 2, 8);
    p.add_peer(&Bitfield::full(n));
    p.add_peer(&bf(n, &(0..15).collect::<Vec<_>>())); // 15.. are rarer
    p.set_mode(PickMode::Streaming);
    let all = Bitfield::full(n);
    let window = 4;
    // The reader plays piece r at second r; it keeps deadlines on the
    // next `window` pieces, and the picker follows it.
    for r in 0..12u32 {
        let now = at(t0, f64::from(r));
        for k in r..r + window {
            assert!(p.set_deadline(k, at(t0, f64::from(k + 1))));
        }
        assert_eq!(p.deadline_count(), window as usize);
        let got = p.pick_at(&all, &none(), 2, now, true);
        assert_eq!(pieces_in_order(&got), vec![r, r], "reader at {r}");
        for b in got {
            p.block_received(b);
        }
        p.piece_verified(r);
        // The deadline of a verified piece is gone.
        assert_eq!(p.deadline(r), None);
        assert_eq!(p.deadline_count(), window as usize - 1);
    }
    // The reader seeks to piece 20.
    p.clear_deadlines();
    assert_eq!(p.deadline_count(), 0);
    for k in 20..24 {
        p.set_deadline(k, at(t0, f64::from(k)));
    }
    let got = p.pick_at(&all, &none(), 4, at(t0, 13.0), true);
    assert_eq!(pieces_in_order(&got), vec![20, 20, 21, 21]);
    // Deadlines moved: the earliest one wins, a new deadline replaces
    // the old one.
    p.clear_deadline(22);
    p.clear_deadline(23);
    p.set_deadline(25, at(t0, 30.0));
    p.set_deadline(26, at(t0, 29.0));
    p.set_deadline(25, at(t0, 28.0));
    assert_eq!(p.deadline(25), Some(at(t0, 28.0)));
    // 20 and 21 keep theirs until verified.
    assert_eq!(p.deadline_count(), 4);
    let got = p.pick_at(&all, &none(), 4, at(t0, 13.0), true);
    assert_eq!(pieces_in_order(&got), vec![25, 25, 26, 26]);
    // No deadline left: rarest first among the rest (15.. are rarer).
    let got = p.pick_at(&all, &none(), 2, at(t0, 13.0), true);
    assert!(got[0].piece >= 15, "{got:?}");
    p.assert_consistent();
}

#[test]
fn skip_pieces_are_never_requested_even_with_a_deadline() {
    let n = 6;
    let t0 = Instant::now();
    let mut p = picker(n, 1, 1);
    p.set_mode(PickMode::Streaming);
    p.set_priority(2, Priority::Skip);
    assert!(!p.set_deadline(2, t0)); // refused
    assert!(p.set_deadline(3, t0));
    p.set_priority(3, Priority::Skip); // drops the deadline
    assert_eq!(p.deadline(3), None);
    p.mark_have(4);
    assert!(!p.set_deadline(4, t0)); // verified
    assert!(!p.set_deadline(99, t0)); // out of range
    assert!(!p.set_deadline(u32::MAX, t0));
    assert!(p.set_deadline(1, t0));
    assert_eq!(p.deadline_count(), 1);
    let all = Bitfield::full(n);
    let got = p.pick_at(&all, &none(), 100, at(t0, 5.0), true);
    assert_eq!(got[0].piece, 1);
    assert_eq!(pieces_of(&got), BTreeSet::from([0, 1, 5]));
    // Near the deadline, with everything requested: still no Skip piece.
    let flight: HashSet<_> = got.iter().copied().collect();
    assert!(p.pick_at(&all, &flight, 100, at(t0, 5.0), true).is_empty());
    assert!(p
        .pick_at(&all, &none(), 100, at(t0, 5.0), true)
        .iter()
        .all(|b| ![2, 3].contains(&b.piece)));
    // A piece set back to Normal does not get its deadline back.
    p.set_priority(3, Priority::Normal);
    assert_eq!(p.deadline(3), None);
    p.assert_consistent();
}

#[test]
fn urgent_duplicates_near_the_deadline_stay_within_the_limit() {
    let n = 12;
    let t0 = Instant::now();
    let near = at(t0, 9.8); // within URGENT_NEAR of the deadline
    let mut p = picker(n, 4, 2);
    p.set_mode(PickMode::Streaming);
    p.set_deadline(2, at(t0, 10.0));
    // (Enough pieces that the picks below never reach endgame.)
    let all = Bitfield::full(n);
    // A (fast) gets piece 2.
    let a = p.pick_at(&all, &none(), 4, t0, true);
    assert_eq!(pieces_in_order(&a), vec![2; 4]);
    // B (fast), far from the deadline: no duplicate, half another piece.
    let b = p.pick_at(&all, &none(), 2, t0, true);
    assert!(b.iter().all(|x| x.piece != 2));
    assert_eq!(pieces_of(&b).len(), 1);
    // C (fast), near: duplicates of piece 2 first, then B's piece.
    let mut c: HashSet<_> = HashSet::new();
    let got = p.pick_at(&all, &c, 6, near, true);
    assert_eq!(got[..4], a[..]);
    assert_eq!(pieces_of(&got[4..]), pieces_of(&b));
    assert!(!p.in_endgame());
    assert!(a.iter().all(|&x| requesters(&p, x) == 2));
    c.extend(got);
    // C again, D (fast) and E (slow), near: the limit is reached.
    for (flight, fast) in [(&c, true), (&none(), true), (&none(), false)] {
        let got = p.pick_at(&all, flight, 10, near, fast);
        assert!(got.iter().all(|x| x.piece != 2), "{got:?}");
    }
    assert!(a.iter().all(|&x| requesters(&p, x) == 2));
    p.assert_consistent();
    // a[0] arrives from A; the torrent withdraws C's copy (ignored).
    assert_eq!(
        p.block_received(a[0]),
        Received::Fresh {
            piece_complete: false
        }
    );
    p.cancel(a[0]);
    assert_eq!(p.block_received(a[0]), Received::Duplicate);
    // C's copy of a[1] times out: D may duplicate it, and only it.
    p.cancel(a[1]);
    assert_eq!(requesters(&p, a[1]), 1);
    let d = p.pick_at(&bf(n, &[2]), &none(), 10, near, true);
    assert_eq!(d, vec![a[1]]);
    assert_eq!(requesters(&p, a[1]), 2);
    // A and D drop a[1]: it is free again, and handed out fresh.
    p.cancel(a[1]);
    p.cancel(a[1]);
    assert_eq!(requesters(&p, a[1]), 0);
    p.assert_consistent();
    let e = p.pick_at(&bf(n, &[2]), &none(), 1, t0, true);
    assert_eq!(e, vec![a[1]]);
    // `pick` has no clock: never an urgent duplicate.
    assert!(p.pick(&bf(n, &[2]), &none(), 10).is_empty());
    p.assert_consistent();
}

#[test]
fn urgent_blocks_go_to_fast_peers_and_to_slow_ones_only_near_the_deadline() {
    let n = 8;
    let t0 = Instant::now();
    let mut p = picker(n, 2, 4);
    p.set_mode(PickMode::Streaming);
    p.set_deadline(5, at(t0, 10.0));
    let all = Bitfield::full(n);
    // A slow peer far from the deadline: everything but piece 5.
    let slow = p.pick_at(&all, &none(), 4, t0, false);
    assert_eq!(slow.len(), 4);
    assert!(slow.iter().all(|b| b.piece != 5));
    // ... and nothing at all if piece 5 is all it has.
    assert!(p.pick_at(&bf(n, &[5]), &none(), 4, t0, false).is_empty());
    // A fast peer gets it first.
    let fast = p.pick_at(&all, &none(), 1, t0, true);
    assert_eq!(fast, vec![p.block_info(5, 0).unwrap()]);
    // Partial now, with a free block: still reserved for fast peers.
    let slow = p.pick_at(&all, &none(), 2, at(t0, 9.7), false);
    assert_eq!(slow.len(), 2);
    assert!(slow.iter().all(|b| b.piece != 5), "{slow:?}");
    assert!(p
        .pick_at(&bf(n, &[5]), &none(), 4, at(t0, 9.7), false)
        .is_empty());
    // Near the deadline a slow peer takes the free block, first.
    let slow = p.pick_at(&all, &none(), 1, at(t0, 9.8), false);
    assert_eq!(slow, vec![p.block_info(5, 1).unwrap()]);
    // It gets no duplicate (not endgame: other pieces are free).
    assert!(!p.in_endgame());
    assert!(p
        .pick_at(&bf(n, &[5]), &none(), 4, at(t0, 9.8), false)
        .is_empty());
    // A late deadline counts as near: a second fast peer duplicates both.
    let late = p.pick_at(&bf(n, &[5]), &none(), 100, at(t0, 60.0), true);
    assert_eq!(pieces_in_order(&late), vec![5, 5]);
    p.assert_consistent();
}

#[test]
fn sequential_mode_takes_the_lowest_wanted_index_first() {
    let n = 10;
    let t0 = Instant::now();
    let mut p = picker(n, 1, 6);
    p.add_peer(&Bitfield::full(n));
    p.add_peer(&bf(n, &[0, 1, 2, 3, 4, 5, 6, 7, 8])); // 9 is the rarest
    p.set_mode(PickMode::Sequential);
    p.mark_have(1);
    p.set_priority(3, Priority::Skip);
    p.set_priority(7, Priority::High);
    let all = Bitfield::full(n);
    let one = |p: &mut Picker, has: &Bitfield| p.pick_at(has, &none(), 1, t0, true)[0];
    assert_eq!(one(&mut p, &all).piece, 7); // High first
    let zero = one(&mut p, &all);
    assert_eq!(zero.piece, 0);
    assert_eq!(pieces_in_order(&p.pick(&all, &none(), 2)), vec![2, 4]);
    let lacks_5 = bf(n, &[0, 1, 2, 3, 4, 6, 7, 8, 9]);
    assert_eq!(one(&mut p, &lacks_5).piece, 6);
    assert_eq!(one(&mut p, &all).piece, 5);
    // A piece that becomes missing again is first again.
    p.cancel(zero);
    assert_eq!(one(&mut p, &all).piece, 0);
    p.set_priority(3, Priority::Normal);
    assert_eq!(pieces_in_order(&p.pick(&all, &none(), 2)), vec![3, 8]);
    // A deadline comes before the lowest index.
    p.cancel(zero);
    p.set_deadline(9, t0);
    assert_eq!(one(&mut p, &all).piece, 9);
    p.assert_consistent();
}

#[test]
fn wanted_bytes_follow_priorities_and_verification() {
    let plen = 2 * B;
    let mut p = Picker::new(3, plen, 2 * u64::from(plen) + 100);
    assert_eq!(p.wanted_bytes(), 4 * u64::from(B) + 100);
    assert_eq!(p.missing_wanted_bytes(), p.wanted_bytes());
    p.set_priority(2, Priority::Skip);
    assert_eq!(p.wanted_bytes(), 4 * u64::from(B));
    p.mark_have(0);
    assert_eq!(p.wanted_bytes(), 4 * u64::from(B));
    assert_eq!(p.missing_wanted_bytes(), 2 * u64::from(B));
    p.set_priority(1, Priority::Skip);
    assert_eq!(p.missing_wanted_bytes(), 0);
    assert!(p.is_complete());
    p.set_priority(2, Priority::High);
    assert_eq!(p.missing_wanted_bytes(), 100);
    assert!(!p.is_complete());
    assert_eq!(Picker::new(0, B, 0).wanted_bytes(), 0);
    assert_eq!(Picker::new(0, B, 0).missing_wanted_bytes(), 0);
}

/// One simulated peer.
struct SimPeer {
    has: Bitfield,
    in_flight: HashSet<BlockInfo>,
    /// What the torrent would pass as `fast` to `pick_at`.
    fast: bool,
}

fn random_peer(rng: &mut StdRng, n: usize) -> SimPeer {
    let density: f64 = rng.gen_range(0.1..1.0);
    let mut has = Bitfield::new(n);
    for i in 0..n {
        if rng.gen_bool(density) {
            has.set(i);
        }
    }
    SimPeer {
        has,
        in_flight: HashSet::new(),
        fast: rng.gen_bool(0.5),
    }
}

/// Every request the picker counts is one the simulated peers hold:
/// `Requested(n)` blocks are in flight at exactly n peers, every other
/// block at none.
fn check_requests(p: &Picker, peers: &[SimPeer], seed: u64) {
    let mut held: HashMap<BlockInfo, u32> = HashMap::new();
    for peer in peers {
        for &b in &peer.in_flight {
            *held.entry(b).or_default() += 1;
        }
    }
    for (&b, &count) in &held {
        assert_eq!(requesters(p, b), count, "seed {seed}: {b:?}");
    }
    for (&piece, partial) in &p.partials {
        for (i, state) in partial.blocks.iter().enumerate() {
            if let BlockState::Requested(n) = state {
                let b = p.block_info(piece, i as u32).unwrap();
                assert_eq!(held.get(&b), Some(n), "seed {seed}: {b:?}");
            }
        }
    }
}

const MODES: [PickMode; 3] = [
    PickMode::RarestFirst,
    PickMode::Sequential,
    PickMode::Streaming,
];

/// Drives the picker like a torrent would, with random peers (fast or
/// slow) that request, deliver, cancel, disconnect and corrupt pieces,
/// under a virtual clock, in a random mode, with a reader that keeps
/// deadlines on a window ahead of it and sometimes seeks.
fn simulate(seed: u64) -> SimStats {
    let mut stats = SimStats::default();
    let mut rng = StdRng::seed_from_u64(seed);
    let n = rng.gen_range(1..40);
    let piece_blocks = rng.gen_range(1..5u32);
    let piece_length = piece_blocks * B - rng.gen_range(0..2) * 1000;
    let total =
        u64::from(piece_length) * (n as u64 - 1) + rng.gen_range(1..=u64::from(piece_length));
    let mut p = Picker::new(n, piece_length, total).with_rng_seed(seed);
    if rng.gen_bool(0.3) {
        p.set_max_partial_pieces(rng.gen_range(1..5));
    }
    let mut skipped = BTreeSet::new();
    for i in 0..n as u32 {
        match rng.gen_range(0..10) {
            0 => {
                p.set_priority(i, Priority::Skip);
                skipped.insert(i);
            }
            1 => p.set_priority(i, Priority::High),
            2 => p.mark_have(i),
            _ => {}
        }
    }
    p.set_mode(MODES[rng.gen_range(0..3)]);
    let window = rng.gen_range(1..8u32);
    let mut reader = 0u32;
    let t0 = Instant::now();
    let mut now = t0;
    let mut peers: Vec<SimPeer> = Vec::new();
    // A seed guarantees completion is possible.
    peers.push(SimPeer {
        has: Bitfield::full(n),
        in_flight: HashSet::new(),
        fast: rng.gen_bool(0.5),
    });
    for _ in 0..rng.gen_range(1..6) {
        peers.push(random_peer(&mut rng, n));
    }
    for peer in &peers {
        p.add_peer(&peer.has);
    }
    let mut steps = 0;
    while !p.is_complete() {
        steps += 1;
        assert!(steps < 200_000, "seed {seed}: no progress");
        now += Duration::from_millis(rng.gen_range(0..100));
        // The reader moves past what it can read and keeps its window.
        while (reader as usize) < n && (p.have().get(reader as usize) || skipped.contains(&reader))
        {
            reader += 1;
        }
        for piece in reader..(reader + window).min(n as u32) {
            if p.deadline(piece).is_none() {
                let due = now + Duration::from_millis(700 * u64::from(piece - reader + 1));
                let settable = !skipped.contains(&piece) && !p.have().get(piece as usize);
                assert_eq!(p.set_deadline(piece, due), settable, "seed {seed}");
            }
        }
        let k = rng.gen_range(0..peers.len());
        match rng.gen_range(0..104) {
            // Request.
            0..=39 => {
                let max = if rng.gen_bool(0.1) {
                    200
                } else {
                    rng.gen_range(0..6)
                };
                let fast = peers[k].fast;
                let got = p.pick_at(&peers[k].has, &peers[k].in_flight, max, now, fast);
                assert!(got.len() <= max);
                let endgame = p.in_endgame();
                let streaming = p.mode() != PickMode::RarestFirst;
                let mut seen = HashSet::new();
                for b in &got {
                    assert!(seen.insert(*b), "seed {seed}: twice in one pick");
                    assert!(peers[k].has.get(b.piece as usize), "peer lacks it");
                    assert!(!skipped.contains(&b.piece), "skip piece picked");
                    assert!(!peers[k].in_flight.contains(b), "same peer twice");
                    let deadline = p.deadline(b.piece).filter(|_| streaming);
                    let near = deadline.is_some_and(|d| now + Picker::URGENT_NEAR >= d);
                    if deadline.is_some() {
                        stats.urgent += 1;
                        assert!(fast || near || endgame, "seed {seed}: slow got reserved");
                    }
                    let elsewhere = peers.iter().filter(|q| q.in_flight.contains(b)).count();
                    if elsewhere > 0 {
                        stats.duplicates += 1;
                        if !endgame {
                            assert!(near && fast, "seed {seed}: duplicate outside endgame");
                            assert!(elsewhere < Picker::MAX_URGENT_REQUESTERS as usize);
                            stats.urgent_duplicates += 1;
                        }
                    }
                    assert_eq!(Some(*b), p.block_info(b.piece, b.index_in_piece() as u32));
                }
                peers[k].in_flight.extend(got);
            }
            // Deliver a block.
            40..=79 => {
                let Some(&b) = peers[k].in_flight.iter().min() else {
                    continue;
                };
                peers[k].in_flight.remove(&b);
                match p.block_received(b) {
                    Received::Fresh { piece_complete } => {
                        // Cancel the endgame copies at other peers.
                        for q in peers.iter_mut() {
                            if q.in_flight.remove(&b) {
                                p.cancel(b);
                            }
                        }
                        if piece_complete {
                            if rng.gen_bool(0.1) {
                                stats.failures += 1;
                                p.piece_failed(b.piece);
                            } else {
                                p.piece_verified(b.piece);
                            }
                        }
                    }
                    Received::Duplicate => {}
                    Received::Unexpected => panic!("seed {seed}: requested block unexpected"),
                }
            }
            // Cancel one request (timeout, choke).
            80..=91 => {
                if let Some(&b) = peers[k].in_flight.iter().max() {
                    peers[k].in_flight.remove(&b);
                    p.cancel(b);
                }
            }
            // Disconnect and replace.
            92..=96 => {
                if k == 0 {
                    continue; // keep the seed
                }
                stats.disconnects += 1;
                let gone = peers.swap_remove(k);
                for b in gone.in_flight {
                    p.cancel(b);
                }
                p.remove_peer(&gone.has);
                let fresh = random_peer(&mut rng, n);
                p.add_peer(&fresh.has);
                peers.push(fresh);
            }
            // A peer announces a piece.
            97..=99 => {
                let i = rng.gen_range(0..n);
                if peers[k].has.set(i) {
                    p.peer_has(i as u32);
                }
            }
            // The reader seeks.
            100 | 101 => {
                p.clear_deadlines();
                reader = rng.gen_range(0..n as u32);
            }
            // One deadline is withdrawn (the reader skipped a piece).
            102 => p.clear_deadline(rng.gen_range(0..n as u32)),
            // The user switches modes.
            _ => p.set_mode(MODES[rng.gen_range(0..3)]),
        }
        if steps % 16 == 0 {
            p.assert_consistent();
            check_requests(&p, &peers, seed);
        }
    }
    p.assert_consistent();
    for i in 0..n as u32 {
        if !skipped.contains(&i) {
            assert!(p.have().get(i as usize), "seed {seed}: piece {i} missing");
        }
    }
    assert!(!p.in_endgame());
    assert_eq!(
        p.deadline_count(),
        0,
        "seed {seed}: deadline on a verified piece"
    );
    check_requests(&p, &peers, seed);
    stats
}

/// What a simulation exercised, so the test can check it was not vacuous.
#[derive(Default)]
struct SimStats {
    duplicates: usize,
    urgent: usize,
    urgent_duplicates: usize,
    failures: usize,
    disconnects: usize,
}

#[test]
fn simulation_always_completes_without_early_duplicates() {
    let mut total = SimStats::default();
    for seed in 0..150 {
        let s = simulate(seed);
        total.duplicates += s.duplicates;
        total.urgent += s.urgent;
        total.urgent_duplicates += s.urgent_duplicates;
        total.failures += s.failures;
        total.disconnects += s.disconnects;
    }
    assert!(total.duplicates > 0, "endgame never reached");
    assert!(total.urgent > 0, "no urgent block ever picked");
    assert!(total.urgent_duplicates > 0, "no urgent duplicate");
    assert!(total.failures > 0, "no piece ever failed");
    assert!(total.disconnects > 0, "no peer ever left");
}

#[derive(Clone, Debug)]
enum Op {
    Pick(Vec<u8>, usize),
    Received(u32, u32, u32),
    Cancel(u32, u32, u32),
    Verified(u32),
    Failed(u32),
    Have(u32),
    AddPeer(Vec<u8>),
    RemovePeer(Vec<u8>),
    PeerHas(u32),
    Priority(u32, u8),
    Priorities(u32, u32, u8),
    PickAt(Vec<u8>, usize, u16, bool),
    Deadline(u32, u16),
    ClearDeadline(u32),
    ClearDeadlines,
    Mode(u8),
    PickRun(u32, Option<u32>),
    CancelPiece(u32),
}

fn bogus_u32() -> impl Strategy<Value = u32> {
    prop_oneof![0..12u32, Just(u32::MAX), any::<u32>()]
}

fn bogus_begin() -> impl Strategy<Value = u32> {
    prop_oneof![
        (0..4u32).prop_map(|b| b * B),
        0..(4 * B),
        Just(u32::MAX),
        any::<u32>()
    ]
}

fn bogus_len() -> impl Strategy<Value = u32> {
    prop_oneof![Just(B), Just(100u32), 0..(2 * B), any::<u32>()]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (prop::collection::vec(any::<u8>(), 0..4), 0..300usize).prop_map(|(b, m)| Op::Pick(b, m)),
        (bogus_u32(), bogus_begin(), bogus_len()).prop_map(|(p, b, l)| Op::Received(p, b, l)),
        (bogus_u32(), bogus_begin(), bogus_len()).prop_map(|(p, b, l)| Op::Cancel(p, b, l)),
        bogus_u32().prop_map(Op::Verified),
        bogus_u32().prop_map(Op::Failed),
        bogus_u32().prop_map(Op::Have),
        prop::collection::vec(any::<u8>(), 0..4).prop_map(Op::AddPeer),
        prop::collection::vec(any::<u8>(), 0..4).prop_map(Op::RemovePeer),
        bogus_u32().prop_map(Op::PeerHas),
        (bogus_u32(), 0..3u8).prop_map(|(i, p)| Op::Priority(i, p)),
        (bogus_u32(), bogus_u32(), 0..3u8).prop_map(|(a, b, p)| Op::Priorities(a, b, p)),
        (
            prop::collection::vec(any::<u8>(), 0..4),
            0..300usize,
            any::<u16>(),
            any::<bool>()
        )
            .prop_map(|(b, m, t, f)| Op::PickAt(b, m, t, f)),
        (bogus_u32(), any::<u16>()).prop_map(|(i, t)| Op::Deadline(i, t)),
        bogus_u32().prop_map(Op::ClearDeadline),
        Just(Op::ClearDeadlines),
        (0..3u8).prop_map(Op::Mode),
        (0..5u32, prop::option::of(bogus_u32())).prop_map(|(m, c)| Op::PickRun(m, c)),
        bogus_u32().prop_map(Op::CancelPiece),
    ]
}

/// A bitfield of any length from raw bytes (spare bits cleared the
/// way `from_bytes` would refuse them, so build bit by bit).
fn raw_bitfield(bytes: &[u8]) -> Bitfield {
    let len = bytes.len() * 8 - bytes.first().map_or(0, |b| usize::from(b % 8));
    let mut b = Bitfield::new(len);
    for i in 0..len {
        if bytes[i / 8] & (0x80 >> (i % 8)) != 0 {
            b.set(i);
        }
    }
    b
}

fn prio(p: u8) -> Priority {
    [Priority::Skip, Priority::Normal, Priority::High][usize::from(p % 3)]
}

proptest! {
    #[test]
    fn bogus_inputs_never_panic(
        count in 0..12usize,
        blocks in 1..4u32,
        short in 0..B,
        ops in prop::collection::vec(op(), 0..80),
    ) {
        let plen = blocks * B;
        let total = (u64::from(plen) * count as u64).saturating_sub(u64::from(short));
        let mut p = Picker::new(count, plen, total).with_rng_seed(0);
        let mut in_flight = HashSet::new();
        let t0 = Instant::now();
        let ms = |t: u16| t0 + Duration::from_millis(u64::from(t));
        for op in ops {
            match op {
                Op::Pick(bytes, max) => {
                    let got = p.pick(&raw_bitfield(&bytes), &in_flight, max);
                    prop_assert!(got.len() <= max);
                    for b in got {
                        prop_assert!(in_flight.insert(b));
                    }
                }
                Op::Received(piece, begin, length) => {
                    let b = BlockInfo { piece, begin, length };
                    in_flight.remove(&b);
                    p.block_received(b);
                }
                Op::Cancel(piece, begin, length) => {
                    let b = BlockInfo { piece, begin, length };
                    in_flight.remove(&b);
                    p.cancel(b);
                }
                Op::Verified(i) => p.piece_verified(i),
                Op::Failed(i) => p.piece_failed(i),
                Op::Have(i) => p.mark_have(i),
                Op::AddPeer(bytes) => p.add_peer(&raw_bitfield(&bytes)),
                Op::RemovePeer(bytes) => p.remove_peer(&raw_bitfield(&bytes)),
                Op::PeerHas(i) => p.peer_has(i),
                Op::Priority(i, x) => p.set_priority(i, prio(x)),
                Op::Priorities(a, b, x) => p.set_priorities(a..b, prio(x)),
                Op::PickAt(bytes, max, t, fast) => {
                    let got = p.pick_at(&raw_bitfield(&bytes), &in_flight, max, ms(t), fast);
                    prop_assert!(got.len() <= max);
                    for b in got {
                        prop_assert!(in_flight.insert(b));
                    }
                }
                Op::Deadline(i, t) => {
                    let set = p.set_deadline(i, ms(t));
                    prop_assert_eq!(set, p.deadline(i) == Some(ms(t)));
                }
                Op::ClearDeadline(i) => p.clear_deadline(i),
                Op::ClearDeadlines => p.clear_deadlines(),
                Op::Mode(m) => p.set_mode(MODES[usize::from(m)]),
                Op::PickRun(max, continue_at) => {
                    if let Some(run) = p.pick_run(max, continue_at) {
                        prop_assert!(!run.is_empty() && run.len() <= max as usize);
                        prop_assert!(run.end as usize <= count);
                    }
                }
                Op::CancelPiece(i) => p.cancel_piece(i),
            }
            p.assert_consistent();
            let _ = (p.in_endgame(), p.may_have_duplicates(), p.is_interesting(&raw_bitfield(&[0xff])));
            prop_assert_eq!(p.is_complete(), p.missing_wanted_bytes() == 0);
            prop_assert!(p.missing_wanted_bytes() <= p.wanted_bytes());
            prop_assert!(p.wanted_bytes() <= total);
        }
    }
}
