//! The core with peers that speak the Fast extension (BEP 6): rejects,
//! chokes that void nothing, allowed-fast pieces while choked.

use crate::torrent::core::tests::*;

fn block(piece: u32, n: u32) -> BlockInfo {
    BlockInfo {
        piece,
        begin: n * BLOCK_SIZE,
        length: BLOCK_SIZE,
    }
}

fn in_flight(rig: &Rig, port: u16) -> usize {
    rig.core
        .peers
        .get(&addr(port))
        .map_or(0, |p| p.in_flight.len())
}

fn complete(out: &[Action]) -> usize {
    emitted(out, |e| matches!(e, Event::TorrentComplete { .. }))
}

#[test]
fn a_rejected_block_goes_back_to_the_picker_and_to_another_peer() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    assert_eq!(requested(&rig.connect(1, seed)).len(), 8);
    let out = rig.peer(PeerEvent::Rejected {
        addr: addr(1),
        block: block(2, 1),
    });
    assert!(
        requested(&out).is_empty(),
        "not asked of the rejecting peer again at once"
    );
    assert_eq!(in_flight(&rig, 1), 7);
    // The block is free again: a new peer gets it (first, not as a duplicate).
    let seed = rig.full();
    let out = rig.connect(2, seed);
    assert_eq!(
        rig.served[0],
        block(2, 1),
        "the free block first: {:?}",
        rig.served
    );
    assert_eq!(complete(&out), 1, "endgame duplicates fetch the rest");
    assert_eq!(rig.core.flow.wasted(), 0);
}

#[test]
fn a_choke_from_a_fast_peer_voids_nothing_and_each_block_counts_once() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    rig.connect(1, seed);
    let out = rig.peer(PeerEvent::Choked {
        addr: addr(1),
        fast: true,
    });
    assert!(requested(&out).is_empty());
    assert_eq!(in_flight(&rig, 1), 8, "requests stand after a fast choke");
    // The peer completes one request after its choke and rejects two.
    let b = block(0, 0);
    let data = rig.block_data(b);
    rig.peer(PeerEvent::Block {
        addr: addr(1),
        block: b,
        data,
    });
    for b in [block(1, 0), block(1, 1)] {
        rig.peer(PeerEvent::Rejected {
            addr: addr(1),
            block: b,
        });
    }
    assert_eq!(in_flight(&rig, 1), 5);
    assert_eq!(
        rig.core.flow.wasted(),
        0,
        "a block after a fast choke is wanted"
    );
    // A late reject for a block already served changes nothing.
    rig.peer(PeerEvent::Rejected {
        addr: addr(1),
        block: b,
    });
    assert_eq!(in_flight(&rig, 1), 5);
    let seed = rig.full();
    let out = rig.connect(2, seed);
    assert!(rig.served.contains(&block(1, 0)));
    assert!(!rig.served.contains(&b), "served already");
    assert_eq!(complete(&out), 1);
    // Without the extension a choke voids every request.
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    rig.connect(1, seed);
    rig.peer(PeerEvent::Choked {
        addr: addr(1),
        fast: false,
    });
    assert_eq!(in_flight(&rig, 1), 0);
}

#[test]
fn allowed_fast_pieces_are_fetched_while_choked() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    let a = addr(1);
    rig.core.admit(a, rig.now).expect("admitted");
    let peer_id = PeerId([1; 20]);
    rig.peer(PeerEvent::Connected { addr: a, peer_id });
    let mut has = Bitfield::new(4);
    for piece in [1, 2, 3] {
        has.set(piece);
    }
    let out = rig.peer(PeerEvent::Bitfield {
        addr: a,
        bitfield: has,
    });
    assert!(requested(&out).is_empty(), "choked: nothing asked");
    // A piece it lacks is allowed: still nothing to ask.
    let out = rig.peer(PeerEvent::AllowedFast { addr: a, piece: 0 });
    assert!(requested(&out).is_empty());
    // Piece 2 is allowed: only its blocks are asked (and served), while choked.
    let out = rig.peer(PeerEvent::AllowedFast { addr: a, piece: 2 });
    assert_eq!(requested(&out), []);
    assert!(rig.served.iter().all(|b| b.piece == 2), "{:?}", rig.served);
    assert_eq!(rig.served.len(), 2);
    assert!(rig.core.have().get(2), "piece 2 verified while choked");
    // A rejected allowed piece is not asked again while choked.
    rig.silent.push(a);
    let out = rig.peer(PeerEvent::AllowedFast { addr: a, piece: 3 });
    let asked = requested(&out);
    assert_eq!(asked, [block(3, 0), block(3, 1)]);
    for b in asked {
        rig.peer(PeerEvent::Rejected { addr: a, block: b });
    }
    assert!(requested(&rig.tick()).is_empty());
    // Unchoked, it is asked for everything it has that we lack.
    let out = rig.peer(PeerEvent::Unchoked { addr: a });
    let mut pieces: Vec<u32> = requested(&out).iter().map(|b| b.piece).collect();
    pieces.dedup();
    assert_eq!(pieces.len(), 2, "pieces 1 and 3: {pieces:?}");
}

#[test]
fn a_fast_peer_holding_our_requests_while_choking_us_loses_them_not_the_connection() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    rig.connect(1, seed);
    rig.peer(PeerEvent::Choked {
        addr: addr(1),
        fast: true,
    });
    rig.advance(61);
    let out = rig.tick();
    assert!(disconnects(&out).is_empty(), "{out:?}");
    let cancelled = out
        .iter()
        .filter(|a| matches!(a, Action::Peer(a, PeerCommand::Cancel(_)) if *a == addr(1)))
        .count();
    assert_eq!(cancelled, 8);
    assert_eq!(in_flight(&rig, 1), 0);
    // The blocks are free for another peer; a late reject of one changes nothing.
    rig.peer(PeerEvent::Rejected {
        addr: addr(1),
        block: block(0, 0),
    });
    let seed = rig.full();
    let out = rig.connect(2, seed);
    assert_eq!(rig.served.len(), 8);
    assert_eq!(complete(&out), 1);
}
