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
}
