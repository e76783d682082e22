//! Runs of whole pieces for web seeds (`picker/runs.rs`).

use crate::picker::tests::*;

/// Every block of `run` is requested once, and arrives: the pieces
/// complete.
fn deliver(p: &mut Picker, run: std::ops::Range<u32>) {
    for piece in run {
        for b in 0..p.blocks_in_piece(piece) {
            let block = p.block_info(piece, b).unwrap();
            let complete = b + 1 == p.blocks_in_piece(piece);
            assert_eq!(
                p.block_received(block),
                Received::Fresh {
                    piece_complete: complete
                },
                "piece {piece} block {b}"
            );
        }
    }
}

#[test]
fn a_run_is_whole_missing_pieces_and_peers_are_not_handed_them() {
    let n = 10;
    let mut p = picker(n, 4, 1);
    assert_eq!(
        p.pick_run(4, None),
        Some(0..4),
        "nothing in progress: from 0"
    );
    p.assert_consistent();
    assert_eq!(p.partial_pieces(), 4);
    assert!(!p.in_endgame());
    // A peer with every piece gets none of the run's blocks.
    let got = p.pick(&Bitfield::full(n), &none(), 24);
    assert_eq!(pieces_of(&got), (4..10).collect());
    assert!(p.in_endgame(), "every block is now requested");
    // In endgame the peer gets the run's blocks as duplicates.
    let dups = p.pick(
        &Bitfield::full(n),
        &got.iter().copied().collect(),
        usize::MAX,
    );
    assert_eq!(pieces_of(&dups), (0..4).collect());
    assert_eq!(dups.len(), 16);
    p.assert_consistent();
}

#[test]
fn a_run_continues_where_the_last_one_ended_and_stops_at_a_piece_in_progress() {
    let n = 12;
    let mut p = picker(n, 2, 1);
    assert_eq!(p.pick_run(3, None), Some(0..3));
    // A peer starts piece 7.
    let got = p.pick(&bf(n, &[7]), &none(), 1);
    assert_eq!(pieces_of(&got), [7].into());
    assert_eq!(p.pick_run(3, Some(3)), Some(3..6));
    assert_eq!(p.pick_run(3, Some(6)), Some(6..7), "stops before piece 7");
    // Piece 7 is in progress: not continued; the longest stretch is 8..12,
    // whose start touches piece 7, so the run starts in its middle.
    assert_eq!(p.pick_run(3, Some(7)), Some(10..12));
    p.assert_consistent();
}

#[test]
fn a_second_web_seed_starts_in_the_middle_of_what_is_left() {
    let n = 100;
    let mut p = picker(n, 1, 1);
    assert_eq!(p.pick_run(10, None), Some(0..10));
    // 10..100 is left; its start touches the first run: the middle.
    assert_eq!(p.pick_run(10, None), Some(55..65));
    // 10..55 is now the longest, after the first run: its middle.
    assert_eq!(p.pick_run(10, None), Some(32..42));
    // The first seed goes on where it stopped.
    assert_eq!(p.pick_run(10, Some(10)), Some(10..20));
    p.assert_consistent();
}

#[test]
fn a_stretch_after_verified_pieces_is_started_at_its_start() {
    let n = 8;
    let mut p = picker(n, 1, 1);
    p.mark_have(0);
    p.mark_have(1);
    assert_eq!(p.pick_run(3, None), Some(2..5));
}

#[test]
fn skipped_pieces_break_runs_and_high_pieces_come_first() {
    let n = 10;
    let mut p = picker(n, 1, 1);
    p.set_priorities(3..5, Priority::Skip);
    assert_eq!(p.pick_run(10, None), Some(5..10), "the longest stretch");
    assert_eq!(p.pick_run(10, Some(10)), Some(0..3), "10 is out of range");
    assert_eq!(p.pick_run(10, None), None, "only skipped pieces left");
    let mut p = picker(n, 1, 1);
    p.set_priorities(6..8, Priority::High);
    assert_eq!(p.pick_run(10, Some(0)), Some(6..8), "High before Normal");
    assert_eq!(p.pick_run(10, Some(8)), Some(8..10));
    assert_eq!(p.pick_run(0, None), None);
    p.assert_consistent();
}

#[test]
fn sequential_mode_runs_start_at_the_lowest_missing_piece() {
    let n = 10;
    let mut p = picker(n, 1, 1);
    p.set_mode(PickMode::Sequential);
    p.pick(&bf(n, &[0]), &none(), 1);
    assert_eq!(p.pick_run(3, None), Some(1..4));
    assert_eq!(p.pick_run(3, None), Some(4..7));
}

#[test]
fn undelivered_pieces_go_back_and_delivered_ones_complete() {
    let n = 6;
    let mut p = picker(n, 3, 1);
    let run = p.pick_run(6, None).unwrap();
    assert_eq!(run, 0..6);
    deliver(&mut p, 0..2);
    for piece in 2..6 {
        p.cancel_piece(piece);
    }
    p.assert_consistent();
    assert_eq!(p.partial_pieces(), 0, "given back pieces are missing");
    // Peers get them now, first copies rather than duplicates.
    let got = p.pick(&Bitfield::full(n), &none(), usize::MAX);
    assert_eq!(pieces_of(&got), (2..6).collect());
    assert!(got.iter().all(|&b| requesters(&p, b) == 1));
    // Cancelling a complete or missing piece changes nothing.
    p.cancel_piece(0);
    p.cancel_piece(99);
    p.assert_consistent();
}

#[test]
fn a_piece_given_back_after_an_endgame_duplicate_stays_requested_by_the_peer() {
    let n = 1;
    let mut p = picker(n, 2, 1);
    assert_eq!(p.pick_run(1, None), Some(0..1));
    let dups = p.pick(&Bitfield::full(n), &none(), usize::MAX);
    assert_eq!(dups.len(), 2, "endgame duplicates");
    p.cancel_piece(0);
    assert!(dups.iter().all(|&b| requesters(&p, b) == 1));
    assert_eq!(p.partial_pieces(), 1);
    p.assert_consistent();
}

#[test]
fn a_piece_requested_again_needs_two_give_backs_to_be_missing() {
    let mut p = picker(4, 4, 1);
    assert_eq!(p.pick_run(1, None), Some(0..1));
    assert!(p.request_piece_again(0));
    assert!(!p.request_piece_again(3), "not partial");
    p.assert_consistent();
    p.cancel_piece(0);
    p.assert_consistent();
    assert_eq!(p.partial_pieces(), 1, "the other copy still holds it");
    // Not handed out again: the next run starts after it, in the middle
    // of what is left since piece 0 is in progress.
    assert_eq!(p.pick_run(4, None), Some(2..4));
    p.cancel_piece(0);
    p.assert_consistent();
    assert_eq!(p.pick_run(4, None), Some(0..2), "missing again");
    // The second copy arrives after the first: a duplicate.
    assert!(p.request_piece_again(0));
    deliver(&mut p, 0..1);
    let block = p.block_info(0, 0).unwrap();
    assert_eq!(p.block_received(block), Received::Duplicate);
    p.cancel_piece(0);
    p.assert_consistent();
}
