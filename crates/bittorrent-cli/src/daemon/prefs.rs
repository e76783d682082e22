//! What the preferences (`qbt::prefs::Preferences`, qBittorrent's keys and
//! units) mean to the library: rate limits (with the alternative pair),
//! the queue, share limits and their action, encryption; and which of them
//! an `app/setPreferences` changed.

use std::time::Duration;

use bittorrent::prelude::{EncryptionPolicy, QueueConfig, RateLimits, ShareLimits};

use crate::daemon::qbt::prefs::Preferences;

/// qBittorrent's `max_ratio_act`: what happens when a share limit is reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShareAction {
    /// 0: stop (the library pauses the torrent).
    Stop,
    /// 1: remove the torrent, keep its files.
    Remove,
    /// 3: remove the torrent and its files.
    RemoveWithFiles,
}

/// What an `app/setPreferences` call changed, so the caller tells the library.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PrefChanges {
    /// The global (or alternative) rate limits.
    pub rates: bool,
    /// The queue limits.
    pub queue: bool,
    /// The global share limits.
    pub share: bool,
    /// Something that takes effect at the next start (port, encryption, DHT, PEX).
    pub restart: bool,
}

impl PrefChanges {
    /// What differs from `before` to `after` (the alternative limits in
    /// force when `alt`).
    pub fn between(before: &Preferences, after: &Preferences, alt: bool) -> Self {
        Self {
            rates: rate_limits(before, alt) != rate_limits(after, alt),
            queue: queue(before) != queue(after),
            share: share_limits(before) != share_limits(after),
            restart: (
                before.listen_port,
                before.encryption,
                before.dht,
                before.pex,
            ) != (after.listen_port, after.encryption, after.dht, after.pex),
        }
    }
}

/// A limit of 0 is none.
fn limit(value: u64) -> Option<u64> {
    (value > 0).then_some(value)
}

/// A count of -1 (any negative) is none.
fn count(value: i64) -> Option<usize> {
    usize::try_from(value).ok()
}

/// The session's rate limits in force (the alternative pair when `alt`).
pub fn rate_limits(prefs: &Preferences, alt: bool) -> RateLimits {
    let (down, up) = if alt {
        (prefs.alt_dl_limit, prefs.alt_up_limit)
    } else {
        (prefs.dl_limit, prefs.up_limit)
    };
    RateLimits {
        download: limit(down),
        upload: limit(up),
    }
}

/// The session's queue limits (none when queueing is off).
pub fn queue(prefs: &Preferences) -> QueueConfig {
    if !prefs.queueing_enabled {
        return QueueConfig::default();
    }
    QueueConfig {
        max_active_downloads: count(prefs.max_active_downloads),
        max_active_seeds: count(prefs.max_active_uploads),
        max_active_torrents: count(prefs.max_active_torrents),
    }
}

/// The session's share limits.
pub fn share_limits(prefs: &Preferences) -> ShareLimits {
    ShareLimits {
        ratio: (prefs.max_ratio_enabled && prefs.max_ratio >= 0.0).then_some(prefs.max_ratio),
        seeding_time: (prefs.max_seeding_time_enabled && prefs.max_seeding_time >= 0)
            .then(|| Duration::from_secs(prefs.max_seeding_time as u64 * 60)),
    }
}

/// What to do at a share limit (2, super seeding, is not supported: stop).
pub fn share_action(prefs: &Preferences) -> ShareAction {
    match prefs.max_ratio_act {
        1 => ShareAction::Remove,
        3 => ShareAction::RemoveWithFiles,
        _ => ShareAction::Stop,
    }
}

/// The encryption policy.
pub fn encryption_policy(prefs: &Preferences) -> EncryptionPolicy {
    match prefs.encryption {
        1 => EncryptionPolicy::Require,
        2 => EncryptionPolicy::Disable,
        _ => EncryptionPolicy::Prefer,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_toggle_and_zero_is_none() {
        let prefs = Preferences {
            dl_limit: 100,
            up_limit: 0,
            alt_dl_limit: 5,
            alt_up_limit: 6,
            ..Preferences::default()
        };
        let normal = RateLimits {
            download: Some(100),
            upload: None,
        };
        assert_eq!(rate_limits(&prefs, false), normal);
        let alt = RateLimits {
            download: Some(5),
            upload: Some(6),
        };
        assert_eq!(rate_limits(&prefs, true), alt);
    }

    #[test]
    fn queue_and_share_limits_only_when_enabled() {
        let mut prefs = Preferences {
            queueing_enabled: false,
            ..Preferences::default()
        };
        assert_eq!(queue(&prefs), QueueConfig::default());
        assert_eq!(share_limits(&prefs), ShareLimits::default());
        let before = prefs.clone();
        prefs
            .apply_json(
                r#"{"queueing_enabled":true,"max_active_downloads":2,"max_active_uploads":-1,
                    "max_ratio_enabled":true,"max_ratio":1.5,"max_seeding_time_enabled":true,
                    "max_seeding_time":2}"#,
            )
            .unwrap();
        assert_eq!(
            queue(&prefs),
            QueueConfig {
                max_active_downloads: Some(2),
                max_active_seeds: None,
                max_active_torrents: Some(5)
            }
        );
        assert_eq!(
            share_limits(&prefs),
            ShareLimits {
                ratio: Some(1.5),
                seeding_time: Some(Duration::from_secs(120))
            }
        );
        let changes = PrefChanges::between(&before, &prefs, false);
        assert!(changes.queue && changes.share && !changes.rates && !changes.restart);
    }

    #[test]
    fn changes_name_what_the_library_must_hear() {
        let before = Preferences::default();
        let mut after = before.clone();
        after
            .apply_json(r#"{"dl_limit":2048,"listen_port":7000}"#)
            .unwrap();
        let changes = PrefChanges::between(&before, &after, false);
        assert!(changes.rates && changes.restart && !changes.queue);
        // The normal pair changed while the alternative one is in force.
        assert!(!PrefChanges::between(&before, &after, true).rates);
    }

    #[test]
    fn share_actions_and_encryption() {
        let mut prefs = Preferences::default();
        assert_eq!(share_action(&prefs), ShareAction::Stop);
        prefs.max_ratio_act = 3;
        assert_eq!(share_action(&prefs), ShareAction::RemoveWithFiles);
        prefs.max_ratio_act = 1;
        assert_eq!(share_action(&prefs), ShareAction::Remove);
        prefs.encryption = 1;
        assert_eq!(encryption_policy(&prefs), EncryptionPolicy::Require);
    }
}
