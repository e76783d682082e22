//! The session's queue, pure: the order of its torrents, and which of them
//! run and which wait in state
//! [`Queued`](crate::torrent::TorrentState::Queued) under a
//! [`QueueConfig`].
//!
//! Rules (qBittorrent's, over libtorrent's auto-managed torrents):
//! - paused (and failed) torrents neither run by the queue nor count;
//! - force-started torrents always run, and count against every limit;
//! - the others, in queue order, run while their class (downloading, which
//!   includes checking and fetching metadata, or seeding) and the total
//!   are under their limits; the rest are queued.

use std::collections::HashSet;

use crate::limits::{QueueConfig, QueueMove};
use crate::torrent::status::Standing;
use crate::types::InfoHash;

/// The session's queue order.
#[derive(Debug, Default)]
pub(crate) struct Queue {
    order: Vec<InfoHash>,
    /// The torrents in `order`, to refuse a second push without a scan.
    members: HashSet<InfoHash>,
}

impl Queue {
    /// The order, the first to run first.
    pub(crate) fn order(&self) -> &[InfoHash] {
        &self.order
    }

    /// A new torrent goes to the back.
    pub(crate) fn push(&mut self, info_hash: InfoHash) {
        if self.members.insert(info_hash) {
            self.order.push(info_hash);
        }
    }

    pub(crate) fn remove(&mut self, info_hash: &InfoHash) {
        if self.members.remove(info_hash) {
            self.order.retain(|h| h != info_hash);
        }
    }

    /// Moves a torrent; false if it is not in the queue. A move past either
    /// end leaves it where it is.
    pub(crate) fn move_to(&mut self, info_hash: &InfoHash, to: QueueMove) -> bool {
        let Some(at) = self.order.iter().position(|h| h == info_hash) else {
            return false;
        };
        let last = self.order.len() - 1;
        match to {
            QueueMove::Top => self.order[..=at].rotate_right(1),
            QueueMove::Bottom => self.order[at..].rotate_left(1),
            QueueMove::Up if at > 0 => self.order.swap(at, at - 1),
            QueueMove::Down if at < last => self.order.swap(at, at + 1),
            QueueMove::Up | QueueMove::Down => {}
        }
        true
    }
}

/// Which torrents are held back: one flag per entry of `standings` (given
/// in queue order), true for queued.
pub(crate) fn decide(config: &QueueConfig, standings: &[Standing]) -> Vec<bool> {
    let under = |limit: Option<usize>, count: usize| limit.is_none_or(|max| count < max);
    let (mut downloads, mut seeds) = (0, 0);
    for s in standings.iter().filter(|s| s.force && !s.paused) {
        if s.seeding {
            seeds += 1;
        } else {
            downloads += 1;
        }
    }
    let mut queued = Vec::with_capacity(standings.len());
    for s in standings {
        if s.paused || s.force {
            queued.push(false);
            continue;
        }
        let total_room = under(config.max_active_torrents, downloads + seeds);
        let (class, max) = if s.seeding {
            (&mut seeds, config.max_active_seeds)
        } else {
            (&mut downloads, config.max_active_downloads)
        };
        let runs = total_room && under(max, *class);
        if runs {
            *class += 1;
        }
        queued.push(!runs);
    }
    queued
}

#[cfg(test)]
mod tests {
    use super::*;

    const DL: Standing = Standing {
        paused: false,
        force: false,
        seeding: false,
    };
    const SEED: Standing = Standing {
        seeding: true,
        ..DL
    };
    const PAUSED: Standing = Standing { paused: true, ..DL };
    const FORCED: Standing = Standing { force: true, ..DL };

    fn limits(dl: Option<usize>, seeds: Option<usize>, all: Option<usize>) -> QueueConfig {
        QueueConfig {
            max_active_downloads: dl,
            max_active_seeds: seeds,
            max_active_torrents: all,
        }
    }

    #[test]
    fn without_limits_nothing_is_queued() {
        let all = [DL, SEED, PAUSED, FORCED];
        assert_eq!(decide(&QueueConfig::default(), &all), [false; 4]);
    }

    #[test]
    fn downloads_beyond_the_limit_wait_in_queue_order() {
        let config = limits(Some(1), None, None);
        assert_eq!(decide(&config, &[DL, DL, SEED]), [false, true, false]);
        assert_eq!(
            decide(&config, &[SEED, DL, DL, DL]),
            [false, false, true, true]
        );
    }

    #[test]
    fn paused_torrents_do_not_count() {
        let config = limits(Some(1), Some(1), None);
        assert_eq!(decide(&config, &[PAUSED, DL, DL]), [false, false, true]);
        let paused_seed = Standing {
            paused: true,
            ..SEED
        };
        assert_eq!(decide(&config, &[paused_seed, SEED]), [false, false]);
    }

    #[test]
    fn forced_torrents_run_and_count_wherever_they_are() {
        let config = limits(Some(1), None, None);
        // The forced one at the back takes the only download slot.
        assert_eq!(decide(&config, &[DL, DL, FORCED]), [true, true, false]);
        // Two forced ones both run, over the limit.
        assert_eq!(decide(&config, &[FORCED, DL, FORCED]), [false, true, false]);
        // A forced but paused torrent neither runs nor counts.
        let forced_paused = Standing {
            paused: true,
            ..FORCED
        };
        assert_eq!(decide(&config, &[forced_paused, DL]), [false, false]);
    }

    #[test]
    fn the_total_limit_covers_both_classes() {
        let config = limits(Some(2), Some(2), Some(2));
        assert_eq!(
            decide(&config, &[SEED, DL, DL, SEED]),
            [false, false, true, true]
        );
        let zero = limits(Some(0), None, None);
        assert_eq!(decide(&zero, &[DL, SEED]), [true, false]);
    }

    #[test]
    fn seeds_have_their_own_limit() {
        let config = limits(None, Some(1), None);
        assert_eq!(decide(&config, &[SEED, DL, SEED]), [false, false, true]);
    }

    fn hash(n: u8) -> InfoHash {
        InfoHash([n; 20])
    }

    fn queue(n: u8) -> Queue {
        let mut q = Queue::default();
        for i in 0..n {
            q.push(hash(i));
        }
        q
    }

    #[test]
    fn moves_reorder_the_queue() {
        let mut q = queue(4);
        assert!(q.move_to(&hash(2), QueueMove::Top));
        assert_eq!(q.order(), [hash(2), hash(0), hash(1), hash(3)]);
        assert!(q.move_to(&hash(0), QueueMove::Bottom));
        assert_eq!(q.order(), [hash(2), hash(1), hash(3), hash(0)]);
        assert!(q.move_to(&hash(3), QueueMove::Up));
        assert_eq!(q.order(), [hash(2), hash(3), hash(1), hash(0)]);
        assert!(q.move_to(&hash(2), QueueMove::Down));
        assert_eq!(q.order(), [hash(3), hash(2), hash(1), hash(0)]);
    }

    #[test]
    fn moves_past_the_ends_and_unknown_torrents_change_nothing() {
        let mut q = queue(3);
        assert!(q.move_to(&hash(0), QueueMove::Up));
        assert!(q.move_to(&hash(2), QueueMove::Down));
        assert!(q.move_to(&hash(0), QueueMove::Top));
        assert!(q.move_to(&hash(2), QueueMove::Bottom));
        assert_eq!(q.order(), [hash(0), hash(1), hash(2)]);
        assert!(!q.move_to(&hash(9), QueueMove::Top));
        q.push(hash(1));
        q.remove(&hash(0));
        assert_eq!(q.order(), [hash(1), hash(2)]);
    }
}
