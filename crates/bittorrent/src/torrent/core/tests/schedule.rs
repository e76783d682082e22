//! When the next tick is due: every second while there is something to
//! tend, rarely while the torrent is quiet.

use crate::limits::{ShareLimit, TorrentShareLimits};
use crate::torrent::core::schedule::{QUIET_TICK, TICK};
use crate::torrent::core::tests::*;

/// A complete torrent, running, with no peer and no candidate.
fn idle_seed() -> Rig {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[0, 1, 2, 3]);
    rig.settle();
    rig
}

fn next(rig: &mut Rig) -> Duration {
    rig.core.next_tick(rig.now, rig.now) - rig.now
}

#[test]
fn an_idle_seed_sleeps_for_the_quiet_tick() {
    let mut rig = idle_seed();
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Seeding);
    assert_eq!(next(&mut rig), QUIET_TICK);
}

#[test]
fn a_torrent_sleeps_while_checking_and_ticks_with_a_candidate() {
    // Thousands added at once wait their turn to check: none ticks.
    let mut rig = Rig::new(&[4 * u64::from(PIECE)], Vec::new());
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Checking);
    assert_eq!(next(&mut rig), QUIET_TICK);
    rig.core.add_candidates([addr(9)], false, rig.now);
    assert_eq!(next(&mut rig), TICK);
}

#[test]
fn a_peer_wakes_it_and_the_upload_keeps_it_awake_until_the_rate_is_zero() {
    let mut rig = idle_seed();
    rig.core.admit(addr(7), rig.now).expect("admitted");
    rig.connect(7, Bitfield::new(4));
    assert_eq!(next(&mut rig), TICK);
    let addr = addr(7);
    rig.peer(PeerEvent::Uploaded {
        addr,
        bytes: u64::from(PIECE),
    });
    rig.disconnected(7, DisconnectReason::Local);
    // Forget it as a candidate to dial again: only the rate is left.
    rig.core.swarm = swarm::Swarm::new(swarm::Ourselves::default());
    rig.advance(1);
    assert_eq!(next(&mut rig), TICK, "the upload rate is still falling");
    rig.advance(10);
    assert_eq!(next(&mut rig), QUIET_TICK);
}

#[test]
fn a_candidate_to_dial_keeps_it_ticking() {
    let mut rig = idle_seed();
    rig.core.add_candidates([addr(9)], false, rig.now);
    assert_eq!(next(&mut rig), TICK);
}

#[test]
fn a_quiet_torrent_wakes_for_its_dht_announce() {
    let mut rig = idle_seed();
    rig.core.config.use_dht = true;
    rig.core.next_dht = rig.now + Duration::from_secs(12);
    assert_eq!(next(&mut rig), Duration::from_secs(12));
    // An announce already due: at the next second.
    rig.core.next_dht = rig.now;
    assert_eq!(next(&mut rig), TICK);
    // One running: its answer is an input, nothing to wait for.
    rig.core.dht_running = true;
    assert_eq!(next(&mut rig), QUIET_TICK);
}

#[test]
fn a_seeding_time_limit_keeps_it_ticking_and_a_paused_torrent_sleeps() {
    let mut rig = idle_seed();
    let limits = TorrentShareLimits {
        seeding_time: ShareLimit::Limit(Duration::from_secs(3600)),
        ..TorrentShareLimits::default()
    };
    rig.core.set_share_limits(limits, rig.now);
    assert_eq!(next(&mut rig), TICK);
    rig.core.pause(rig.now);
    rig.settle();
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Paused);
    assert_eq!(next(&mut rig), QUIET_TICK);
}
