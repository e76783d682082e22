//! The core with web seeds (BEP 19): runs handed out after the check,
//! pieces fed in as blocks, failures backed off or dropped, bad data
//! attributed to its web seed, peers and web seeds side by side.

use crate::torrent::core::tests::*;
use crate::torrent::core::webseeds::{BACKOFF_FIRST, RUN_BYTES};
use crate::torrent::WebSeedState;

const A: WebSeedId = WebSeedId(0);
const B: WebSeedId = WebSeedId(1);

fn add_web_seed(rig: &mut Rig, url: &str) -> WebSeedId {
    let id = rig.core.add_web_seed(Arc::from(url)).unwrap();
    rig.settle();
    id
}

/// The runs the core asked the web seeds for, in order.
fn fetches(actions: &[Action]) -> Vec<(WebSeedId, std::ops::Range<u32>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::WebSeed(id, WebSeedCommand::Fetch { pieces }) => Some((*id, pieces.clone())),
            _ => None,
        })
        .collect()
}

fn web_failures(actions: &[Action]) -> Vec<(String, bool)> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Emit(Event::WebSeedFailed { url, dropped, .. }) => {
                Some((url.clone(), *dropped))
            }
            _ => None,
        })
        .collect()
}

fn complete(out: &[Action]) -> usize {
    emitted(out, |e| matches!(e, Event::TorrentComplete { .. }))
}

fn piece(rig: &Rig, seed: WebSeedId, index: u32) -> WebSeedEvent {
    WebSeedEvent::Piece {
        seed,
        index,
        data: rig.piece_data(index),
    }
}

#[test]
fn a_torrent_downloads_from_its_web_seed_alone_once_checked() {
    let mut rig = Rig::new(&[6 * u64::from(PIECE) + 100], Vec::new());
    rig.web.insert(A, Serve::Good);
    assert_eq!(add_web_seed(&mut rig, "http://127.0.0.1/f"), A);
    rig.tick();
    assert!(rig.runs.is_empty(), "not while checking");
    rig.core.checked(&Checked::nothing(7), rig.now);
    let out = rig.settle();
    assert_eq!(complete(&out), 1);
    assert_eq!(rig.store.contents(), rig.data, "every byte stored");
    let stats = rig.core.stats(rig.now);
    let total = rig.data.len() as u64;
    assert_eq!(stats.web_seed_downloaded, total);
    assert_eq!(
        stats.downloaded, total,
        "web seed bytes are downloaded bytes"
    );
    assert_eq!((stats.wasted, stats.web_seeds_active), (0, 0));
    assert_eq!(stats.web_seeds.len(), 1);
    assert_eq!(stats.web_seeds[0].url, "http://127.0.0.1/f");
    assert_eq!(stats.web_seeds[0].state, WebSeedState::Idle);
    assert!(stats.complete);
    assert_eq!(rig.runs, [(A, 0..7)]);
    rig.advance(10);
    rig.tick();
    assert_eq!(rig.runs.len(), 1, "complete: no more runs");
}

#[test]
fn two_web_seeds_split_the_torrent_and_continue_their_own_runs() {
    // 8 pieces; with two web seeds a run is at most half of what is left.
    let mut rig = Rig::checked(&[8 * u64::from(PIECE)], Vec::new(), &[]);
    add_web_seed(&mut rig, "http://a/f");
    add_web_seed(&mut rig, "http://b/f");
    let out = rig.tick();
    assert_eq!(fetches(&out), [(A, 0..4), (B, 6..8)]);
    assert_eq!(rig.core.stats(rig.now).web_seeds_active, 2);
    // The cap on partial pieces grows by what the runs hold.
    let peers_cap = rig.core.peers.partial_cap(PIECE, 128 * 1024 * 1024);
    assert_eq!(rig.core.flow.picker().max_partial_pieces(), peers_cap + 6);
    for index in 0..4 {
        rig.web_event(piece(&rig, A, index));
    }
    let out = rig.web_event(WebSeedEvent::RunEnded {
        seed: A,
        undelivered: 4..4,
        outcome: Ok(()),
    });
    assert_eq!(fetches(&out), [(A, 4..6)], "A goes on where it stopped");
    assert_eq!(rig.core.stats(rig.now).pieces_have, 4);
}

#[test]
fn a_corrupt_web_seed_is_dropped_and_the_good_one_completes() {
    let mut rig = Rig::checked(&[8 * u64::from(PIECE)], Vec::new(), &[]);
    rig.web.insert(A, Serve::Corrupt);
    rig.web.insert(B, Serve::Good);
    add_web_seed(&mut rig, "http://bad/f");
    add_web_seed(&mut rig, "http://good/f");
    let out = rig.tick();
    assert_eq!(rig.runs[..2], [(A, 0..4), (B, 6..8)]);
    assert_eq!(web_failures(&out), [("http://bad/f".to_owned(), true)]);
    assert!(out.iter().any(|a| matches!(a, Action::DropWebSeed(A))));
    assert_eq!(complete(&out), 1);
    assert_eq!(rig.store.contents(), rig.data);
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.web_seeds[0].state, WebSeedState::Dropped);
    let error = stats.web_seeds[0].last_error.clone().unwrap();
    assert!(error.contains("hash check"), "{error}");
    assert!(
        stats.wasted >= 4 * u64::from(PIECE),
        "A's first run at least"
    );
    assert!(
        emitted(&out, |e| matches!(e, Event::PieceFailed { .. })) >= 1,
        "at least the first bad piece"
    );
}

#[test]
fn a_failed_run_gives_back_its_rest_backs_off_then_continues() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    let slow = WebSeedError::TooSlow("2 B/s".into());
    rig.web.insert(A, Serve::FailAfter(1, slow));
    add_web_seed(&mut rig, "http://slow/f");
    let out = rig.tick();
    assert_eq!(rig.runs, [(A, 0..4)]);
    assert_eq!(web_failures(&out), [("http://slow/f".to_owned(), false)]);
    // The undelivered pieces are free again: a peer is asked for them.
    rig.silent.push(addr(1));
    let seed = rig.full();
    let asked: std::collections::BTreeSet<u32> = requested(&rig.connect(1, seed))
        .iter()
        .map(|b| b.piece)
        .collect();
    assert_eq!(asked, [1, 2, 3].into());
    rig.disconnected(1, DisconnectReason::Local);
    rig.web.insert(A, Serve::Good);
    rig.advance(BACKOFF_FIRST.as_secs() - 1);
    rig.tick();
    assert_eq!(rig.runs.len(), 1, "backing off");
    rig.advance(1);
    let out = rig.tick();
    assert_eq!(rig.runs[1], (A, 1..4), "continues after piece 0");
    assert_eq!(complete(&out), 1);
    let status = &rig.core.stats(rig.now).web_seeds[0];
    assert_eq!((status.failures, status.state), (0, WebSeedState::Idle));
    assert_eq!(status.last_error.as_deref(), Some("too slow: 2 B/s"));
}

#[test]
fn a_permanent_error_drops_the_web_seed_at_once() {
    let mut rig = Rig::checked(&[2 * u64::from(PIECE)], Vec::new(), &[]);
    rig.web
        .insert(A, Serve::FailAfter(0, WebSeedError::Status(404)));
    add_web_seed(&mut rig, "http://gone/f");
    let out = rig.tick();
    assert_eq!(web_failures(&out), [("http://gone/f".to_owned(), true)]);
    assert!(out.iter().any(|a| matches!(a, Action::DropWebSeed(A))));
    rig.advance(600);
    rig.tick();
    assert_eq!(rig.runs, [(A, 0..2)], "never asked again");
    assert_eq!(
        rig.core.stats(rig.now).web_seeds[0].state,
        WebSeedState::Dropped
    );
}

#[test]
fn peers_duplicate_a_slow_run_in_endgame_and_its_late_pieces_are_wasted() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    add_web_seed(&mut rig, "http://slow/f");
    // One seed: the whole torrent is its run; the rig holds it.
    assert_eq!(fetches(&rig.tick()), [(A, 0..4)]);
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(rig.served.len(), 8, "endgame: every block, duplicated");
    assert_eq!(complete(&out), 1);
    let late = rig.web_event(piece(&rig, A, 0));
    assert!(late.is_empty(), "{late:?}");
    rig.web_event(WebSeedEvent::RunEnded {
        seed: A,
        undelivered: 1..4,
        outcome: Ok(()),
    });
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.wasted, u64::from(PIECE), "the late copy");
    assert_eq!(stats.web_seed_downloaded, u64::from(PIECE));
    assert_eq!(rig.store.contents(), rig.data);
}

#[test]
fn a_web_seed_piece_cancels_the_peers_endgame_duplicates() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    add_web_seed(&mut rig, "http://w/f");
    assert_eq!(fetches(&rig.tick()), [(A, 0..1)]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    assert_eq!(requested(&rig.connect(1, seed)).len(), 2, "duplicates");
    let out = rig.web_event(piece(&rig, A, 0));
    let cancels = out
        .iter()
        .filter(|a| matches!(a, Action::Peer(_, PeerCommand::Cancel(_))))
        .count();
    assert_eq!(cancels, 2);
    assert_eq!(complete(&out), 1);
}

#[test]
fn no_runs_while_paused_and_a_gone_task_gives_its_run_back() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    rig.core.pause(rig.now);
    rig.settle();
    add_web_seed(&mut rig, "http://w/f");
    assert!(fetches(&rig.tick()).is_empty(), "paused");
    rig.core.resume(rig.now);
    assert_eq!(fetches(&rig.settle()), [(A, 0..4)]);
    rig.core.drop_web_seed(A, "its task ended".into(), rig.now);
    let out = rig.settle();
    assert_eq!(web_failures(&out), [("http://w/f".to_owned(), true)]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    assert_eq!(
        requested(&rig.connect(1, seed)).len(),
        8,
        "every block is free again, no duplicates"
    );
    assert_eq!(rig.core.stats(rig.now).web_seeds_active, 0);
}

#[test]
fn a_first_run_is_4_mib_and_a_fast_server_then_gets_8() {
    let pieces = (RUN_BYTES / u64::from(PIECE)) as u32;
    let len = u64::from(2 * pieces + 1) * u64::from(PIECE);
    let mut rig = Rig::checked(&[len], Vec::new(), &[]);
    add_web_seed(&mut rig, "http://w/f");
    let first = pieces / 2;
    assert_eq!(fetches(&rig.tick()), [(A, 0..first)]);
    for index in 0..first {
        rig.web_event(piece(&rig, A, index));
    }
    // 4 MiB in a second: 16 MiB in 4 s, capped to 8 MiB.
    rig.advance(1);
    let out = rig.web_event(WebSeedEvent::RunEnded {
        seed: A,
        undelivered: first..first,
        outcome: Ok(()),
    });
    assert_eq!(fetches(&out), [(A, first..first + pieces)]);
}

#[test]
fn a_web_seed_fetches_only_the_selected_files() {
    let len = 3 * u64::from(PIECE);
    let mut rig = Rig::checked(
        &[len, len, len],
        vec![Priority::Skip, Priority::Normal, Priority::Skip],
        &[],
    );
    rig.web.insert(A, Serve::Good);
    add_web_seed(&mut rig, "http://w/");
    let out = rig.tick();
    assert_eq!(rig.runs, [(A, 3..6)], "f1's pieces only");
    assert_eq!(complete(&out), 1);
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.state, TorrentState::Finished);
    assert_eq!(stats.web_seed_downloaded, len);
}

fn run_ended(seed: WebSeedId, undelivered: std::ops::Range<u32>) -> WebSeedEvent {
    WebSeedEvent::RunEnded {
        seed,
        undelivered,
        outcome: Ok(()),
    }
}

#[test]
fn an_idle_web_seed_takes_over_the_tail_of_a_slow_run() {
    let mut rig = Rig::checked(&[8 * u64::from(PIECE)], Vec::new(), &[]);
    add_web_seed(&mut rig, "http://slow/f");
    add_web_seed(&mut rig, "http://fast/f");
    assert_eq!(fetches(&rig.tick()), [(A, 0..4), (B, 6..8)]);
    rig.web_event(piece(&rig, B, 6));
    rig.web_event(piece(&rig, B, 7));
    // B fetches what is missing besides A's run; with no time passed,
    // A's speed is not known, so nothing is taken over.
    let mut out = rig.web_event(run_ended(B, 8..8));
    while let [(B, next)] = &fetches(&out)[..] {
        let next = next.clone();
        for index in next.clone() {
            rig.web_event(piece(&rig, B, index));
        }
        out = rig.web_event(run_ended(B, next.end..next.end));
    }
    assert!(fetches(&out).is_empty());
    assert_eq!(rig.core.stats(rig.now).pieces_have, 4, "4 and 5 too");
    // A sends one piece in 2 s: B (speed unknown, taken as A's) takes
    // half of the 3 pieces A has left, rounded down.
    rig.web_event(piece(&rig, A, 0));
    rig.advance(2);
    assert_eq!(fetches(&rig.tick()), [(B, 3..4)]);
    rig.web_event(piece(&rig, B, 3));
    // Idle again, B takes half of what A has left (1 and 2), A keeping
    // the piece it is fetching.
    assert_eq!(fetches(&rig.web_event(run_ended(B, 4..4))), [(B, 2..3)]);
    rig.web_event(piece(&rig, B, 2));
    rig.web_event(run_ended(B, 3..3));
    rig.web_event(piece(&rig, A, 1));
    // A's server still sends the pieces B took: wasted.
    rig.web_event(piece(&rig, A, 2));
    rig.web_event(piece(&rig, A, 3));
    rig.web_event(run_ended(A, 4..4));
    rig.tick();
    let stats = rig.core.stats(rig.now);
    assert!(stats.complete, "{} pieces", stats.pieces_have);
    assert!(rig.store.contents() == rig.data, "every byte stored");
    assert_eq!(stats.wasted, 2 * u64::from(PIECE));
    assert_eq!(stats.web_seeds_active, 0);
}

#[test]
fn pad_file_bytes_do_not_count_as_downloaded() {
    // f0, a pad file up to the piece boundary, f2: piece 0 holds 100 pad
    // bytes, which the task fills with zeros without fetching them.
    let len = u64::from(PIECE);
    let entries = [
        ("f0", len - 100, false),
        ("pad", 100, true),
        ("f2", len, false),
    ];
    let mut meta = MetaInfo::for_test("t", PIECE, &entries);
    let mut data: Vec<u8> = (0..2 * len).map(|i| (i * 7 % 251) as u8).collect();
    data[(len - 100) as usize..len as usize].fill(0);
    meta.piece_hashes = data
        .chunks(PIECE as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    let mut rig = Rig::with_meta(Arc::new(meta), data, Vec::new());
    rig.web.insert(A, Serve::Good);
    add_web_seed(&mut rig, "http://a/");
    rig.core.checked(&Checked::nothing(2), rig.now);
    rig.settle();
    let stats = rig.core.stats(rig.now);
    assert!(stats.complete);
    assert_eq!(stats.web_seed_downloaded, 2 * len - 100);
    assert_eq!(stats.downloaded, 2 * len - 100);
}
