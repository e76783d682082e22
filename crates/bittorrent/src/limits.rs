//! The settings a long-running client turns: transfer-rate limits, share
//! limits (when seeding stops) and the queue (how many torrents run at once).
//! A leaf module of plain data, read by the session and its torrents.

use std::time::Duration;

/// Transfer-rate limits, in payload bytes per second; `None` (or 0, as in
/// qBittorrent's API) is unlimited.
/// The session's apply to all its torrents together
/// ([`SessionConfig::rate_limits`](crate::session::SessionConfig::rate_limits),
/// [`SessionHandle::set_rate_limits`](crate::session::SessionHandle::set_rate_limits));
/// a torrent's apply to it alone, under the session's
/// ([`TorrentHandle::set_rate_limits`](crate::torrent::TorrentHandle::set_rate_limits)).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateLimits {
    /// Most bytes per second received.
    pub download: Option<u64>,
    /// Most bytes per second sent.
    pub upload: Option<u64>,
}

/// When seeding stops: at a share ratio (all-time uploaded / downloaded) or
/// after a seeding time, whichever comes first. A torrent that reaches a
/// limit is paused and an
/// [`Event::ShareLimitReached`](crate::session::Event::ShareLimitReached)
/// is published (an embedder may then remove it).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ShareLimits {
    /// Stop at this ratio; `None`: no ratio limit.
    pub ratio: Option<f64>,
    /// Stop after seeding this long (all-time, see
    /// [`Totals`](crate::torrent::Totals)); `None`: no time limit.
    pub seeding_time: Option<Duration>,
}

/// One of a torrent's share limits: the session's, none, or its own.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum ShareLimit<T> {
    /// Whatever the session's [`ShareLimits`] say (the default).
    #[default]
    Session,
    /// No limit for this torrent, whatever the session says.
    Unlimited,
    /// This torrent's own limit.
    Limit(T),
}

impl<T: Copy> ShareLimit<T> {
    /// The limit in force, given the session's.
    pub fn resolve(self, session: Option<T>) -> Option<T> {
        match self {
            Self::Session => session,
            Self::Unlimited => None,
            Self::Limit(value) => Some(value),
        }
    }
}

/// A torrent's share limits, each its own or the session's.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TorrentShareLimits {
    /// The ratio limit.
    pub ratio: ShareLimit<f64>,
    /// The seeding-time limit.
    pub seeding_time: ShareLimit<Duration>,
}

impl TorrentShareLimits {
    /// The limits in force, given the session's.
    pub fn resolve(&self, session: &ShareLimits) -> ShareLimits {
        ShareLimits {
            ratio: self.ratio.resolve(session.ratio),
            seeding_time: self.seeding_time.resolve(session.seeding_time),
        }
    }
}

impl ShareLimits {
    /// Whether a complete torrent with this share `ratio` and all-time
    /// `seeding_time` has reached a limit (either one is enough).
    pub fn reached(&self, ratio: f64, seeding_time: Duration) -> bool {
        let by_ratio = self.ratio.is_some_and(|max| ratio >= max);
        let by_time = self.seeding_time.is_some_and(|max| seeding_time >= max);
        by_ratio || by_time
    }
}

/// How many torrents run at once; `None` is no limit. Torrents beyond a
/// limit wait in state [`Queued`](crate::torrent::TorrentState::Queued), in
/// the session's queue order (the order they were added, changed with
/// [`SessionHandle::move_in_queue`](crate::session::SessionHandle::move_in_queue)).
/// Paused torrents do not count; force-started ones run regardless and
/// count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueConfig {
    /// Most torrents downloading (including checking and fetching metadata).
    pub max_active_downloads: Option<usize>,
    /// Most torrents seeding (complete, uploading).
    pub max_active_seeds: Option<usize>,
    /// Most torrents active in all.
    pub max_active_torrents: Option<usize>,
}

/// A move of one torrent in the session's queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueueMove {
    /// To the front: the first to run.
    Top,
    /// To the back.
    Bottom,
    /// One place towards the front.
    Up,
    /// One place towards the back.
    Down,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torrent_limit_overrides_or_inherits_the_session_one() {
        let session = ShareLimits {
            ratio: Some(2.0),
            seeding_time: Some(Duration::from_secs(60)),
        };
        let own = TorrentShareLimits {
            ratio: ShareLimit::Limit(1.0),
            seeding_time: ShareLimit::Unlimited,
        };
        assert_eq!(
            own.resolve(&session),
            ShareLimits {
                ratio: Some(1.0),
                seeding_time: None
            }
        );
        assert_eq!(TorrentShareLimits::default().resolve(&session), session);
    }

    #[test]
    fn either_limit_is_enough_and_none_never_stops() {
        let minute = Duration::from_secs(60);
        let limits = ShareLimits {
            ratio: Some(1.5),
            seeding_time: Some(minute),
        };
        assert!(!limits.reached(1.49, minute - Duration::from_secs(1)));
        assert!(limits.reached(1.5, Duration::ZERO));
        assert!(limits.reached(0.0, minute));
        assert!(!ShareLimits::default().reached(1e9, Duration::MAX));
        let time_only = ShareLimits {
            seeding_time: Some(minute),
            ..ShareLimits::default()
        };
        assert!(!time_only.reached(100.0, Duration::ZERO));
        // A zero ratio limit stops at once (qBittorrent's "ratio 0").
        let zero = ShareLimits {
            ratio: Some(0.0),
            ..ShareLimits::default()
        };
        assert!(zero.reached(0.0, Duration::ZERO));
    }
}
