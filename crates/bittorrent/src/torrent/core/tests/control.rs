//! Whether the torrent runs: started paused, queued, share limits, a store
//! error, a recheck, a reannounce; and the counters that go with them.

use crate::limits::{ShareLimit, ShareLimits, TorrentShareLimits};
use crate::torrent::core::control::RunOptions;
use crate::torrent::core::tests::*;
use crate::torrent::{PieceState, Totals};

fn started(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::StartAnnouncer))
}

fn stopped(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::StopAnnouncer))
}

fn share_stops(out: &[Action]) -> usize {
    emitted(out, |e| matches!(e, Event::ShareLimitReached { .. }))
}

/// A rig with these run options, checked with `have`, one candidate known.
fn rig_with(options: RunOptions, pieces: u64, have: &[u32]) -> (Rig, Vec<Action>) {
    let mut rig = Rig::new(&[pieces * u64::from(PIECE)], Vec::new());
    rig.core.set_run_options(options);
    rig.core.add_candidates([addr(1)], true, rig.now);
    let mut checked = Checked::nothing(pieces as usize);
    for &i in have {
        checked.have.set(i as usize);
    }
    rig.core.checked(&checked, rig.now);
    let out = rig.settle();
    (rig, out)
}

#[test]
fn a_torrent_started_paused_checks_then_waits_for_resume() {
    let paused = RunOptions {
        paused: true,
        ..RunOptions::default()
    };
    let (mut rig, out) = rig_with(paused, 4, &[]);
    assert!(!started(&out) && dials(&out).is_empty(), "{out:?}");
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Paused);
    assert_eq!(rig.core.admit(addr(9), rig.now), Err(Refusal::NotActive));
    rig.core.resume(rig.now);
    let out = rig.settle();
    assert!(started(&out));
    assert_eq!(dials(&out), [addr(1)]);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentResumed { .. })),
        1
    );
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Downloading);
}

#[test]
fn a_pause_during_the_check_holds_after_it() {
    let mut rig = Rig::new(&[2 * u64::from(PIECE)], Vec::new());
    rig.core.pause(rig.now);
    rig.core.checked(&Checked::nothing(2), rig.now);
    let out = rig.settle();
    assert!(!started(&out));
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Paused);
}

#[test]
fn a_queued_torrent_holds_like_a_paused_one_but_says_queued() {
    let queued = RunOptions {
        queued: true,
        ..RunOptions::default()
    };
    let (mut rig, out) = rig_with(queued, 4, &[]);
    assert!(!started(&out) && dials(&out).is_empty());
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.state, TorrentState::Queued);
    assert!(!rig.core.standing().paused, "queued is not paused");
    rig.core.set_queued(false, rig.now);
    let out = rig.settle();
    assert!(started(&out));
    assert_eq!(dials(&out), [addr(1)]);
    rig.core.set_queued(true, rig.now);
    let out = rig.settle();
    assert!(stopped(&out));
    assert_eq!(disconnects(&out), [addr(1)]);
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Queued);
}

#[test]
fn a_seed_pauses_once_at_its_ratio_and_again_when_resumed_over_it() {
    let limited = RunOptions {
        share_limits: TorrentShareLimits {
            ratio: ShareLimit::Limit(1.0),
            ..TorrentShareLimits::default()
        },
        ..RunOptions::default()
    };
    let (mut rig, out) = rig_with(limited, 4, &[0, 1, 2, 3]);
    assert!(started(&out));
    assert_eq!(share_stops(&out), 0);
    rig.connect(2, Bitfield::new(4));
    // Nothing downloaded: the ratio is uploaded over the wanted size.
    let size = 4 * u64::from(PIECE);
    let bytes = size - 1;
    rig.peer(PeerEvent::Uploaded {
        addr: addr(2),
        bytes,
    });
    assert_eq!(share_stops(&rig.tick()), 0, "ratio just under 1");
    rig.peer(PeerEvent::Uploaded {
        addr: addr(2),
        bytes: 1,
    });
    let out = rig.tick();
    assert_eq!(share_stops(&out), 1);
    assert!(stopped(&out));
    assert!(disconnects(&out).contains(&addr(2)));
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.state, TorrentState::Paused);
    assert!((stats.ratio() - 1.0).abs() < 1e-9, "{}", stats.ratio());
    assert_eq!(share_stops(&rig.tick()), 0, "published once");
    // Resumed while still over it: paused again (qBittorrent's way).
    rig.core.resume(rig.now);
    let out = rig.settle();
    assert_eq!(share_stops(&out), 1);
    assert!(!started(&out));
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Paused);
    // With the limit lifted, a resume runs.
    rig.core.set_share_limits(
        TorrentShareLimits {
            ratio: ShareLimit::Unlimited,
            ..TorrentShareLimits::default()
        },
        rig.now,
    );
    rig.core.resume(rig.now);
    assert!(started(&rig.settle()));
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Seeding);
}

#[test]
fn the_sessions_seeding_time_limit_counts_carried_over_time() {
    let carried = RunOptions {
        totals: Totals {
            downloaded: 10,
            uploaded: 20,
            seeding_time: Duration::from_secs(50),
        },
        ..RunOptions::default()
    };
    let (mut rig, _) = rig_with(carried, 2, &[0, 1]);
    let limits = ShareLimits {
        seeding_time: Some(Duration::from_secs(60)),
        ..ShareLimits::default()
    };
    rig.core.set_session_share(limits, rig.now);
    for _ in 0..9 {
        rig.advance(1);
        assert_eq!(share_stops(&rig.tick()), 0);
    }
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.seeding_time, Duration::from_secs(59));
    assert_eq!(stats.active_time, Duration::from_secs(9));
    assert_eq!((stats.total_downloaded, stats.total_uploaded), (10, 20));
    assert_eq!(stats.completed_at, None, "complete from the start");
    rig.advance(1);
    assert_eq!(share_stops(&rig.tick()), 1);
    // Paused: the clocks stop.
    rig.advance(30);
    rig.tick();
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.seeding_time, Duration::from_secs(60));
    assert_eq!(stats.active_time, Duration::from_secs(10));
}

#[test]
fn an_incomplete_torrent_is_never_stopped_by_a_share_limit() {
    let zero = RunOptions {
        share_limits: TorrentShareLimits {
            ratio: ShareLimit::Limit(0.0),
            ..TorrentShareLimits::default()
        },
        ..RunOptions::default()
    };
    let (mut rig, _) = rig_with(zero, 2, &[0]);
    assert_eq!(share_stops(&rig.tick()), 0);
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentComplete { .. })),
        1
    );
    let stats = rig.core.stats(rig.now);
    assert!(stats.completed_at.is_some());
    assert_eq!(share_stops(&rig.tick()), 1, "complete: ratio 0 reached");
}

#[test]
fn a_store_error_keeps_the_torrent_in_state_error_until_a_resume() {
    let (mut rig, _) = rig_with(RunOptions::default(), 4, &[]);
    rig.connect(1, Bitfield::new(4));
    rig.core.fail("disk full".to_owned());
    let out = rig.settle();
    assert!(stopped(&out));
    assert_eq!(disconnects(&out), [addr(1)]);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentError { .. })),
        1
    );
    rig.disconnected(1, DisconnectReason::Local);
    let stats = rig.core.stats(rig.now);
    assert_eq!(stats.state, TorrentState::Error);
    assert_eq!(stats.error.as_deref(), Some("disk full"));
    assert!(
        rig.core.standing().paused,
        "an error does not count in the queue"
    );
    rig.core.resume(rig.now);
    assert!(started(&rig.settle()));
    let stats = rig.core.stats(rig.now);
    assert_eq!(
        (stats.state, stats.error),
        (TorrentState::Downloading, None)
    );
}

#[test]
fn seeds_and_leechers_and_piece_states() {
    let (mut rig, _) = rig_with(RunOptions::default(), 4, &[3]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    rig.connect(1, seed);
    rig.connect(2, Bitfield::new(4));
    let stats = rig.core.stats(rig.now);
    assert_eq!((stats.peers, stats.seeds, stats.leechers), (2, 1, 1));
    let states = rig.core.piece_states();
    assert_eq!(states[3], PieceState::Have);
    assert!(
        states[..3].iter().all(|s| *s == PieceState::Downloading),
        "requested from the silent seed: {states:?}"
    );
    let piece = u64::from(PIECE);
    assert_eq!(rig.core.file_progress(), [piece]);
}

#[test]
fn a_recheck_waits_for_the_peers_then_hashes_every_piece_again() {
    let (mut rig, _) = rig_with(RunOptions::default(), 4, &[0, 1, 2, 3]);
    rig.connect(2, Bitfield::new(4));
    rig.core.recheck(rig.now);
    let out = rig.settle();
    assert!(stopped(&out));
    assert_eq!(disconnects(&out), [addr(1), addr(2)]);
    assert!(!out.iter().any(|a| matches!(a, Action::Check { .. })));
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Checking);
    rig.disconnected(1, DisconnectReason::Local);
    let out = rig.disconnected(2, DisconnectReason::Local);
    assert!(!out.iter().any(|a| matches!(a, Action::Check { .. })));
    let out = rig.tick();
    assert!(
        out.iter()
            .any(|a| matches!(a, Action::Check { full: true })),
        "{out:?}"
    );
    assert_eq!(rig.core.piece_states(), [PieceState::Missing; 4]);
    // The check finds piece 1 corrupt.
    let mut checked = Checked::nothing(4);
    for i in [0, 2, 3] {
        checked.have.set(i);
    }
    rig.core.checked(&checked, rig.now);
    let out = rig.settle();
    assert!(started(&out), "it ran before, so it runs again");
    let stats = rig.core.stats(rig.now);
    assert_eq!(
        (stats.state, stats.pieces_have),
        (TorrentState::Downloading, 3)
    );
    assert_eq!(rig.core.piece_states()[1], PieceState::Missing);
}

#[test]
fn a_paused_torrent_stays_paused_after_a_recheck() {
    let (mut rig, _) = rig_with(RunOptions::default(), 2, &[0, 1]);
    rig.core.pause(rig.now);
    rig.settle();
    rig.disconnected(1, DisconnectReason::Local);
    rig.core.recheck(rig.now);
    let out = rig.settle();
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Check { full: true })));
    let mut checked = Checked::nothing(2);
    checked.have.set(0);
    checked.have.set(1);
    rig.core.checked(&checked, rig.now);
    assert!(!started(&rig.settle()));
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Paused);
}

#[test]
fn a_reannounce_wakes_the_announce_loop_of_a_running_torrent_only() {
    let (mut rig, _) = rig_with(RunOptions::default(), 2, &[]);
    rig.core.reannounce(rig.now);
    let out = rig.settle();
    assert!(out.iter().any(|a| matches!(a, Action::Reannounce)));
    rig.core.pause(rig.now);
    rig.settle();
    rig.core.reannounce(rig.now);
    assert!(!rig.settle().iter().any(|a| matches!(a, Action::Reannounce)));
}
