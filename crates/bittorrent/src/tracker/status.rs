//! What each tracker of a torrent is doing, for a display: the announce loop
//! records every attempt on a [`TrackerBoard`] and publishes its rows. Pure.

use std::time::Instant;

/// One tracker as the announce loop last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrackerStatus {
    /// The announce URL.
    pub url: String,
    /// Its BEP 12 tier, from 0.
    pub tier: usize,
    /// What the last contact gave.
    pub state: TrackerState,
    /// When the announce loop contacts it next, if it will: after a failure,
    /// when the round is retried; after a success, its next regular announce.
    pub next_announce: Option<Instant>,
}

/// The outcome of a tracker's last contact.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum TrackerState {
    /// Not contacted: its turn has not come, or a tracker before it answers
    /// (BEP 12 stops at the first tracker that answers).
    #[default]
    NotContacted,
    /// An announce to it is in flight.
    Contacting,
    /// Its last announce succeeded.
    Working {
        /// Peers it returned.
        peers: usize,
    },
    /// Its last announce failed; the loop retries with backoff.
    Failing {
        /// Why, in a few words ([`TrackerError::brief`](crate::tracker::TrackerError::brief)).
        reason: String,
        /// Failures in a row.
        failures: u32,
    },
}

/// The status of every tracker of one announce loop, in tier order.
///
/// Invariant: one row per distinct URL; `next_announce` is set only on rows
/// contacted in the last finished round.
#[derive(Clone, Debug, Default)]
pub(crate) struct TrackerBoard {
    rows: Vec<TrackerStatus>,
    /// Rows contacted in the round under way.
    this_round: Vec<bool>,
    /// Failures in a row, per row.
    failures: Vec<u32>,
}

impl TrackerBoard {
    /// A board of `tiers`, every tracker not contacted yet.
    pub(crate) fn new(tiers: &[Vec<String>]) -> Self {
        let rows: Vec<TrackerStatus> = tiers
            .iter()
            .enumerate()
            .flat_map(|(tier, urls)| {
                urls.iter().map(move |url| TrackerStatus {
                    url: url.clone(),
                    tier,
                    state: TrackerState::NotContacted,
                    next_announce: None,
                })
            })
            .collect();
        let this_round = vec![false; rows.len()];
        let failures = vec![0; rows.len()];
        Self {
            rows,
            this_round,
            failures,
        }
    }

    /// Every row, in tier order.
    pub(crate) fn rows(&self) -> &[TrackerStatus] {
        &self.rows
    }

    fn index(&self, url: &str) -> Option<usize> {
        self.rows.iter().position(|r| r.url == url)
    }

    /// An announce to `url` starts.
    pub(crate) fn contacting(&mut self, url: &str) {
        if let Some(i) = self.index(url) {
            self.this_round[i] = true;
            self.rows[i].state = TrackerState::Contacting;
            self.rows[i].next_announce = None;
        }
    }

    /// `url` answered with `peers` peers.
    pub(crate) fn working(&mut self, url: &str, peers: usize) {
        if let Some(i) = self.index(url) {
            self.failures[i] = 0;
            self.rows[i].state = TrackerState::Working { peers };
        }
    }

    /// The announce to `url` failed for `reason`.
    pub(crate) fn failed(&mut self, url: &str, reason: String) {
        if let Some(i) = self.index(url) {
            self.failures[i] = self.failures[i].saturating_add(1);
            let failures = self.failures[i];
            self.rows[i].state = TrackerState::Failing { reason, failures };
        }
    }

    /// The round is over; the next one starts at `next`.
    pub(crate) fn round_done(&mut self, next: Instant) {
        for (row, contacted) in self.rows.iter_mut().zip(&mut self.this_round) {
            row.next_announce = std::mem::take(contacted).then_some(next);
        }
    }

    /// The loop has stopped: nothing is scheduled any more.
    pub(crate) fn stopped(&mut self) {
        for row in &mut self.rows {
            row.next_announce = None;
            if row.state == TrackerState::Contacting {
                row.state = TrackerState::NotContacted;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn board() -> TrackerBoard {
        TrackerBoard::new(&[
            vec!["http://a/announce".into(), "udp://b:1".into()],
            vec!["http://c/announce".into()],
        ])
    }

    #[test]
    fn starts_not_contacted_in_tier_order() {
        let board = board();
        let tiers: Vec<_> = board
            .rows()
            .iter()
            .map(|r| (r.url.as_str(), r.tier))
            .collect();
        assert_eq!(
            tiers,
            [
                ("http://a/announce", 0),
                ("udp://b:1", 0),
                ("http://c/announce", 1)
            ]
        );
        assert!(board
            .rows()
            .iter()
            .all(|r| r.state == TrackerState::NotContacted && r.next_announce.is_none()));
    }

    #[test]
    fn a_round_records_each_contact_and_schedules_only_those() {
        let mut board = board();
        let now = Instant::now();
        board.contacting("http://a/announce");
        assert_eq!(board.rows()[0].state, TrackerState::Contacting);
        board.failed("http://a/announce", "connection refused".into());
        board.contacting("udp://b:1");
        board.working("udp://b:1", 7);
        let next = now + Duration::from_secs(1800);
        board.round_done(next);
        let rows = board.rows();
        assert_eq!(
            rows[0].state,
            TrackerState::Failing {
                reason: "connection refused".into(),
                failures: 1
            }
        );
        assert_eq!(rows[1].state, TrackerState::Working { peers: 7 });
        assert_eq!(rows[2].state, TrackerState::NotContacted);
        assert_eq!(rows[0].next_announce, Some(next));
        assert_eq!(rows[1].next_announce, Some(next));
        assert_eq!(rows[2].next_announce, None);

        // A second failure counts; a round that skips a row unschedules it.
        board.contacting("http://a/announce");
        board.failed("http://a/announce", "timed out".into());
        board.round_done(next);
        assert_eq!(
            board.rows()[0].state,
            TrackerState::Failing {
                reason: "timed out".into(),
                failures: 2
            }
        );
        assert_eq!(board.rows()[1].next_announce, None);
    }

    #[test]
    fn stopping_unschedules_and_ends_contacts() {
        let mut board = board();
        board.contacting("http://c/announce");
        board.stopped();
        assert_eq!(board.rows()[2].state, TrackerState::NotContacted);
        // Unknown URLs are ignored.
        board.working("http://elsewhere/", 1);
        assert_eq!(board.rows().len(), 3);
    }
}
