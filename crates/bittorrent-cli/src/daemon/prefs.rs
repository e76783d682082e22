//! The daemon's preferences, under qBittorrent's key names and units (rates
//! in bytes per second with 0 for unlimited, times in minutes, -1 for
//! "none"), and what `app/setPreferences` may change.

use std::path::PathBuf;
use std::time::Duration;

use bittorrent::prelude::{EncryptionPolicy, QueueConfig, RateLimits, ShareLimits};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

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

/// The persisted preferences (DAEMON-SPEC: `config.json`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// Default save path of new torrents.
    pub save_path: PathBuf,
    /// Global download limit, bytes/s; 0: none.
    pub dl_limit: u64,
    /// Global upload limit, bytes/s; 0: none.
    pub up_limit: u64,
    /// The alternative ("slow") download limit.
    pub alt_dl_limit: u64,
    /// The alternative upload limit.
    pub alt_up_limit: u64,
    /// Whether the alternative pair is in force (`transfer/toggleSpeedLimitsMode`).
    pub alt_speed_enabled: bool,
    /// Whether the queue limits apply.
    pub queueing_enabled: bool,
    /// Most active downloads; -1: no limit.
    pub max_active_downloads: i64,
    /// Most active seeds; -1: no limit.
    pub max_active_uploads: i64,
    /// Most active torrents; -1: no limit.
    pub max_active_torrents: i64,
    /// Whether `max_ratio` applies.
    pub max_ratio_enabled: bool,
    /// The global ratio limit.
    pub max_ratio: f64,
    /// Whether `max_seeding_time` applies.
    pub max_seeding_time_enabled: bool,
    /// The global seeding-time limit, minutes.
    pub max_seeding_time: i64,
    /// What happens at a share limit: 0 stop, 1 remove, 3 remove with files.
    pub max_ratio_act: u8,
    /// The peer port (takes effect at the next start).
    pub listen_port: u16,
    /// 0 prefer encryption, 1 require, 2 disable (next start).
    pub encryption: u8,
    /// DHT on (next start).
    pub dht: bool,
    /// PEX on (next start).
    pub pex: bool,
    /// Loopback clients need no login.
    pub bypass_local_auth: bool,
}

impl Default for Preferences {
    fn default() -> Self {
        Self {
            save_path: PathBuf::new(),
            dl_limit: 0,
            up_limit: 0,
            alt_dl_limit: 10 * 1024,
            alt_up_limit: 10 * 1024,
            alt_speed_enabled: false,
            queueing_enabled: false,
            max_active_downloads: 3,
            max_active_uploads: 3,
            max_active_torrents: 5,
            max_ratio_enabled: false,
            max_ratio: 1.0,
            max_seeding_time_enabled: false,
            max_seeding_time: 1440,
            max_ratio_act: 0,
            listen_port: 6881,
            encryption: 0,
            dht: true,
            pex: true,
            bypass_local_auth: false,
        }
    }
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
    /// A new user name.
    pub username: Option<String>,
    /// A new password (in clear, to be hashed at once).
    pub password: Option<String>,
}

/// A limit of 0 is none.
fn limit(value: u64) -> Option<u64> {
    (value > 0).then_some(value)
}

/// A count of -1 (any negative) is none.
fn count(value: i64) -> Option<usize> {
    usize::try_from(value).ok()
}

impl Preferences {
    /// The session's rate limits in force (the alternative pair when toggled).
    pub fn rate_limits(&self) -> RateLimits {
        let (down, up) = if self.alt_speed_enabled {
            (self.alt_dl_limit, self.alt_up_limit)
        } else {
            (self.dl_limit, self.up_limit)
        };
        RateLimits {
            download: limit(down),
            upload: limit(up),
        }
    }

    /// The session's queue limits (none when queueing is off).
    pub fn queue(&self) -> QueueConfig {
        if !self.queueing_enabled {
            return QueueConfig::default();
        }
        QueueConfig {
            max_active_downloads: count(self.max_active_downloads),
            max_active_seeds: count(self.max_active_uploads),
            max_active_torrents: count(self.max_active_torrents),
        }
    }

    /// The session's share limits.
    pub fn share_limits(&self) -> ShareLimits {
        ShareLimits {
            ratio: (self.max_ratio_enabled && self.max_ratio >= 0.0).then_some(self.max_ratio),
            seeding_time: (self.max_seeding_time_enabled && self.max_seeding_time >= 0)
                .then(|| Duration::from_secs(self.max_seeding_time as u64 * 60)),
        }
    }

    /// What to do at a share limit.
    pub fn share_action(&self) -> ShareAction {
        match self.max_ratio_act {
            1 => ShareAction::Remove,
            3 => ShareAction::RemoveWithFiles,
            _ => ShareAction::Stop,
        }
    }

    /// The encryption policy.
    pub fn encryption_policy(&self) -> EncryptionPolicy {
        match self.encryption {
            1 => EncryptionPolicy::Require,
            2 => EncryptionPolicy::Disable,
            _ => EncryptionPolicy::Prefer,
        }
    }

    /// Applies the keys of an `app/setPreferences` JSON object that we
    /// support (others are ignored, as qBittorrent ignores unknown keys). All
    /// or nothing: a bad value changes nothing.
    ///
    /// # Errors
    /// A message naming the first key whose value is of the wrong type or range.
    pub fn apply(&mut self, json: &Map<String, Value>) -> Result<PrefChanges, String> {
        let mut next = self.clone();
        let mut changes = PrefChanges::default();
        for (key, value) in json {
            next.apply_one(key, value, &mut changes)
                .map_err(|e| format!("{key}: {e}"))?;
        }
        *self = next;
        Ok(changes)
    }

    fn apply_one(
        &mut self,
        key: &str,
        value: &Value,
        changes: &mut PrefChanges,
    ) -> Result<(), String> {
        match key {
            "save_path" => {
                let path = string(value)?;
                if path.is_empty() {
                    return Err("empty".into());
                }
                self.save_path = PathBuf::from(path);
            }
            "dl_limit" => (self.dl_limit, changes.rates) = (rate(value)?, true),
            "up_limit" => (self.up_limit, changes.rates) = (rate(value)?, true),
            "alt_dl_limit" => (self.alt_dl_limit, changes.rates) = (rate(value)?, true),
            "alt_up_limit" => (self.alt_up_limit, changes.rates) = (rate(value)?, true),
            "queueing_enabled" => (self.queueing_enabled, changes.queue) = (boolean(value)?, true),
            "max_active_downloads" => {
                (self.max_active_downloads, changes.queue) = (int(value)?, true)
            }
            "max_active_uploads" => (self.max_active_uploads, changes.queue) = (int(value)?, true),
            "max_active_torrents" => {
                (self.max_active_torrents, changes.queue) = (int(value)?, true)
            }
            "max_ratio_enabled" => {
                (self.max_ratio_enabled, changes.share) = (boolean(value)?, true)
            }
            "max_ratio" => (self.max_ratio, changes.share) = (float(value)?, true),
            "max_seeding_time_enabled" => {
                (self.max_seeding_time_enabled, changes.share) = (boolean(value)?, true);
            }
            "max_seeding_time" => (self.max_seeding_time, changes.share) = (int(value)?, true),
            "max_ratio_act" => {
                self.max_ratio_act = match int(value)? {
                    a @ (0 | 1 | 3) => a as u8,
                    _ => return Err("0 (stop), 1 (remove) or 3 (remove with files)".into()),
                };
            }
            "listen_port" => {
                let port = int(value)?;
                self.listen_port = u16::try_from(port).map_err(|_| "not a port")?;
                changes.restart = true;
            }
            "encryption" => {
                self.encryption = match int(value)? {
                    e @ 0..=2 => e as u8,
                    _ => return Err("0, 1 or 2".into()),
                };
                changes.restart = true;
            }
            "dht" => (self.dht, changes.restart) = (boolean(value)?, true),
            "pex" => (self.pex, changes.restart) = (boolean(value)?, true),
            "bypass_local_auth" => self.bypass_local_auth = boolean(value)?,
            "web_ui_username" => {
                let name = string(value)?;
                if name.len() < 3 {
                    return Err("at least 3 characters".into());
                }
                changes.username = Some(name.to_owned());
            }
            "web_ui_password" => {
                let password = string(value)?;
                if password.len() < 6 {
                    return Err("at least 6 characters".into());
                }
                changes.password = Some(password.to_owned());
            }
            _ => {}
        }
        Ok(())
    }
}

fn string(value: &Value) -> Result<&str, String> {
    value.as_str().ok_or_else(|| "not a string".into())
}

fn boolean(value: &Value) -> Result<bool, String> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err("not a boolean".into()),
    }
}

fn int(value: &Value) -> Result<i64, String> {
    match value {
        Value::Number(n) => n.as_i64().ok_or_else(|| "not an integer".into()),
        Value::String(s) => s.trim().parse().map_err(|_| "not an integer".into()),
        _ => Err("not an integer".into()),
    }
}

fn float(value: &Value) -> Result<f64, String> {
    let f = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    f.filter(|f| f.is_finite())
        .ok_or_else(|| "not a number".into())
}

/// A rate limit: bytes/s, 0 or negative for none.
fn rate(value: &Value) -> Result<u64, String> {
    Ok(u64::try_from(int(value)?).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> Map<String, Value> {
        serde_json::from_str(text).unwrap()
    }

    #[test]
    fn limits_follow_the_toggle_and_zero_is_none() {
        let mut prefs = Preferences {
            dl_limit: 100,
            up_limit: 0,
            alt_dl_limit: 5,
            alt_up_limit: 6,
            ..Preferences::default()
        };
        assert_eq!(
            prefs.rate_limits(),
            RateLimits {
                download: Some(100),
                upload: None
            }
        );
        prefs.alt_speed_enabled = true;
        assert_eq!(
            prefs.rate_limits(),
            RateLimits {
                download: Some(5),
                upload: Some(6)
            }
        );
    }

    #[test]
    fn queue_and_share_limits_only_when_enabled() {
        let mut prefs = Preferences::default();
        assert_eq!(prefs.queue(), QueueConfig::default());
        assert_eq!(prefs.share_limits(), ShareLimits::default());
        prefs
            .apply(&json(
                r#"{"queueing_enabled":true,"max_active_downloads":2,"max_active_uploads":-1,
                    "max_ratio_enabled":true,"max_ratio":1.5,"max_seeding_time_enabled":true,
                    "max_seeding_time":2}"#,
            ))
            .unwrap();
        assert_eq!(
            prefs.queue(),
            QueueConfig {
                max_active_downloads: Some(2),
                max_active_seeds: None,
                max_active_torrents: Some(5)
            }
        );
        assert_eq!(
            prefs.share_limits(),
            ShareLimits {
                ratio: Some(1.5),
                seeding_time: Some(Duration::from_secs(120))
            }
        );
    }

    #[test]
    fn set_preferences_reports_what_changed_and_ignores_unknown_keys() {
        let mut prefs = Preferences::default();
        let changes = prefs
            .apply(&json(
                r#"{"dl_limit":2048,"listen_port":7000,"web_ui_password":"secret1","locale":"fr"}"#,
            ))
            .unwrap();
        assert!(changes.rates && changes.restart && !changes.queue);
        assert_eq!(changes.password.as_deref(), Some("secret1"));
        assert_eq!((prefs.dl_limit, prefs.listen_port), (2048, 7000));
        assert_eq!(prefs.rate_limits().download, Some(2048));
    }

    #[test]
    fn a_bad_value_changes_nothing() {
        let mut prefs = Preferences::default();
        let before = prefs.clone();
        for bad in [
            r#"{"dl_limit":100,"listen_port":70000}"#,
            r#"{"dht":"maybe"}"#,
            r#"{"max_ratio_act":2}"#,
            r#"{"encryption":5}"#,
            r#"{"save_path":""}"#,
            r#"{"max_ratio":"x"}"#,
            r#"{"web_ui_password":"123"}"#,
        ] {
            assert!(prefs.apply(&json(bad)).is_err(), "{bad}");
            assert_eq!(prefs, before, "{bad}");
        }
    }

    #[test]
    fn share_actions_and_encryption() {
        let mut prefs = Preferences::default();
        assert_eq!(prefs.share_action(), ShareAction::Stop);
        prefs.max_ratio_act = 3;
        assert_eq!(prefs.share_action(), ShareAction::RemoveWithFiles);
        prefs.encryption = 1;
        assert_eq!(prefs.encryption_policy(), EncryptionPolicy::Require);
    }
}
