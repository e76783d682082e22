//! `app/preferences` and `app/setPreferences`: the preference keys the
//! daemon supports, with qBittorrent 5.0's names, units (rates in bytes per
//! second, 0 unlimited; seeding time in minutes; -1 "off") and defaults, and
//! the lenient parsing of the `json` object `setPreferences` receives
//! (unknown keys are ignored, as qBittorrent does).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::daemon::qbt::auth::Secret;

/// The preferences the daemon supports. Persisted as is (serde); a key
/// missing from a saved file takes its default.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Preferences {
    /// Default save path of new torrents.
    pub save_path: String,
    /// Global download limit, bytes per second, 0 unlimited.
    pub dl_limit: u64,
    /// Global upload limit.
    pub up_limit: u64,
    /// The alternative ("slow") download limit.
    pub alt_dl_limit: u64,
    /// The alternative upload limit.
    pub alt_up_limit: u64,
    /// The queue is on.
    pub queueing_enabled: bool,
    /// Most downloading torrents, -1 unlimited.
    pub max_active_downloads: i64,
    /// Most seeding torrents, -1 unlimited.
    pub max_active_uploads: i64,
    /// Most active torrents, -1 unlimited.
    pub max_active_torrents: i64,
    /// A global ratio limit is set.
    pub max_ratio_enabled: bool,
    /// The global ratio limit, -1 when off.
    pub max_ratio: f64,
    /// A global seeding-time limit is set.
    pub max_seeding_time_enabled: bool,
    /// The global seeding-time limit in minutes, -1 when off.
    pub max_seeding_time: i64,
    /// What reaching a share limit does: 0 stop (the only one supported).
    pub max_ratio_act: i64,
    /// Peer listen port (0: any).
    pub listen_port: u16,
    /// 0 prefer encryption, 1 require it, 2 off.
    pub encryption: u8,
    /// DHT on.
    pub dht: bool,
    /// PEX on.
    pub pex: bool,
    /// Local peer discovery (never on here).
    pub lsd: bool,
    /// UPnP / NAT-PMP port mapping on.
    pub upnp: bool,
    /// New torrents start stopped.
    pub add_stopped_enabled: bool,
    /// Clients on loopback need no login.
    pub bypass_local_auth: bool,
    /// The Web API user name.
    pub web_ui_username: String,
    /// Failed logins before a ban (0: never banned).
    pub web_ui_max_auth_fail_count: u32,
    /// Ban length, seconds.
    pub web_ui_ban_duration: u64,
    /// Idle time before a session ends, seconds.
    pub web_ui_session_timeout: u64,
}

impl Default for Preferences {
    /// qBittorrent's defaults (queueing on, 3 downloads, 3 seeds, 5 in all;
    /// alternative limits 10 KiB/s), save path empty until the daemon sets
    /// it.
    fn default() -> Self {
        Self {
            save_path: String::new(),
            dl_limit: 0,
            up_limit: 0,
            alt_dl_limit: 10 * 1024,
            alt_up_limit: 10 * 1024,
            queueing_enabled: true,
            max_active_downloads: 3,
            max_active_uploads: 3,
            max_active_torrents: 5,
            max_ratio_enabled: false,
            max_ratio: -1.0,
            max_seeding_time_enabled: false,
            max_seeding_time: -1,
            max_ratio_act: 0,
            listen_port: 6881,
            encryption: 0,
            dht: true,
            pex: true,
            lsd: false,
            upnp: true,
            add_stopped_enabled: false,
            bypass_local_auth: false,
            web_ui_username: "admin".to_owned(),
            web_ui_max_auth_fail_count: 5,
            web_ui_ban_duration: 3600,
            web_ui_session_timeout: 3600,
        }
    }
}

/// Why `setPreferences` was refused (nothing is changed then).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefsError {
    /// The `json` parameter is not a JSON object.
    #[error("'json' is not a JSON object")]
    NotAnObject,
    /// A key has a value of the wrong type or out of range.
    #[error("invalid value for '{0}'")]
    Invalid(String),
}

/// What a `setPreferences` changed that the daemon must act on beyond the
/// stored preferences.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// A new Web API password, to hash and store (never logged).
    pub password: Option<Secret>,
}

/// Reads keys of a `setPreferences` object with qBittorrent's leniency:
/// numbers may come as strings, booleans as "true"/"false".
struct Reader<'a>(&'a Map<String, Value>);

impl Reader<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    fn bool(&self, key: &str) -> Result<Option<bool>, PrefsError> {
        self.get(key)
            .map(|v| as_bool(v).ok_or_else(|| invalid(key)))
            .transpose()
    }

    fn int(&self, key: &str, min: i64, max: i64) -> Result<Option<i64>, PrefsError> {
        self.get(key)
            .map(|v| {
                as_f64(v)
                    .filter(|n| n.fract() == 0.0 && *n >= min as f64 && *n <= max as f64)
                    .map(|n| n as i64)
                    .ok_or_else(|| invalid(key))
            })
            .transpose()
    }

    fn float(&self, key: &str) -> Result<Option<f64>, PrefsError> {
        self.get(key)
            .map(|v| {
                as_f64(v)
                    .filter(|n| n.is_finite())
                    .ok_or_else(|| invalid(key))
            })
            .transpose()
    }

    fn string(&self, key: &str) -> Result<Option<String>, PrefsError> {
        self.get(key)
            .map(|v| v.as_str().map(str::to_owned).ok_or_else(|| invalid(key)))
            .transpose()
    }
}

fn invalid(key: &str) -> PrefsError {
    PrefsError::Invalid(key.to_owned())
}

fn as_bool(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Some(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Some(false),
        Value::Number(n) => n.as_i64().map(|n| n != 0),
        _ => None,
    }
}

fn as_f64(value: &Value) -> Option<f64> {
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// A limit in bytes per second: 0 or less is unlimited (0).
fn rate(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A queue size: below 0 is unlimited (-1).
fn slots(value: i64) -> i64 {
    value.max(-1)
}

impl Preferences {
    /// Applies a `setPreferences` `json` text. Every key is checked before
    /// any is applied: on an error nothing changes.
    ///
    /// # Errors
    /// [`PrefsError`] for text that is not a JSON object or a value of the
    /// wrong type.
    pub fn apply_json(&mut self, json: &str) -> Result<Applied, PrefsError> {
        let value: Value = serde_json::from_str(json).map_err(|_| PrefsError::NotAnObject)?;
        let map = value.as_object().ok_or(PrefsError::NotAnObject)?;
        let mut next = self.clone();
        let applied = next.apply(&Reader(map))?;
        *self = next;
        Ok(applied)
    }

    fn apply(&mut self, r: &Reader<'_>) -> Result<Applied, PrefsError> {
        const BIG: i64 = i64::MAX / 2;
        if let Some(v) = r.string("save_path")? {
            self.save_path = v;
        }
        for (key, field) in [
            ("dl_limit", &mut self.dl_limit),
            ("up_limit", &mut self.up_limit),
            ("alt_dl_limit", &mut self.alt_dl_limit),
            ("alt_up_limit", &mut self.alt_up_limit),
        ] {
            if let Some(v) = r.int(key, -BIG, BIG)? {
                *field = rate(v);
            }
        }
        for (key, field) in [
            ("max_active_downloads", &mut self.max_active_downloads),
            ("max_active_uploads", &mut self.max_active_uploads),
            ("max_active_torrents", &mut self.max_active_torrents),
        ] {
            if let Some(v) = r.int(key, -BIG, BIG)? {
                *field = slots(v);
            }
        }
        for (key, field) in [
            ("queueing_enabled", &mut self.queueing_enabled),
            ("dht", &mut self.dht),
            ("pex", &mut self.pex),
            ("upnp", &mut self.upnp),
            ("add_stopped_enabled", &mut self.add_stopped_enabled),
            ("bypass_local_auth", &mut self.bypass_local_auth),
        ] {
            if let Some(v) = r.bool(key)? {
                *field = v;
            }
        }
        // LSD is not implemented: accepted (clients send every key), kept off.
        r.bool("lsd")?;
        self.apply_share_limits(r)?;
        self.apply_connection(r)?;
        self.apply_web_ui(r)
    }

    /// qBittorrent reads `max_ratio` with `max_ratio_enabled`; a
    /// `max_ratio` alone changes an enabled limit.
    fn apply_share_limits(&mut self, r: &Reader<'_>) -> Result<(), PrefsError> {
        let ratio = r.float("max_ratio")?;
        let enabled = r
            .bool("max_ratio_enabled")?
            .unwrap_or(self.max_ratio_enabled);
        self.max_ratio_enabled = enabled;
        self.max_ratio = match (enabled, ratio) {
            (false, _) => -1.0,
            (true, Some(v)) if v >= 0.0 => v,
            (true, Some(_)) => {
                self.max_ratio_enabled = false;
                -1.0
            }
            (true, None) => self.max_ratio.max(0.0),
        };
        let time = r.int("max_seeding_time", i64::MIN / 2, i64::MAX / 2)?;
        let enabled = r
            .bool("max_seeding_time_enabled")?
            .unwrap_or(self.max_seeding_time_enabled);
        self.max_seeding_time_enabled = enabled;
        self.max_seeding_time = match (enabled, time) {
            (false, _) => -1,
            (true, Some(v)) if v >= 0 => v,
            (true, Some(_)) => {
                self.max_seeding_time_enabled = false;
                -1
            }
            (true, None) => self.max_seeding_time.max(0),
        };
        if let Some(v) = r.int("max_ratio_act", 0, 3)? {
            self.max_ratio_act = v;
        }
        Ok(())
    }

    fn apply_connection(&mut self, r: &Reader<'_>) -> Result<(), PrefsError> {
        if let Some(v) = r.int("listen_port", 0, 65535)? {
            self.listen_port = v as u16;
        }
        if r.bool("random_port")? == Some(true) {
            self.listen_port = 0;
        }
        if let Some(v) = r.int("encryption", 0, 2)? {
            self.encryption = v as u8;
        }
        Ok(())
    }

    fn apply_web_ui(&mut self, r: &Reader<'_>) -> Result<Applied, PrefsError> {
        if let Some(v) = r.string("web_ui_username")? {
            if v.is_empty() {
                return Err(invalid("web_ui_username"));
            }
            self.web_ui_username = v;
        }
        if let Some(v) = r.int("web_ui_max_auth_fail_count", 0, i64::from(u32::MAX))? {
            self.web_ui_max_auth_fail_count = v as u32;
        }
        if let Some(v) = r.int("web_ui_ban_duration", 1, i64::from(u32::MAX))? {
            self.web_ui_ban_duration = v as u64;
        }
        if let Some(v) = r.int("web_ui_session_timeout", 1, i64::from(u32::MAX))? {
            self.web_ui_session_timeout = v as u64;
        }
        let password = r.string("web_ui_password")?;
        if password.as_deref() == Some("") {
            return Err(invalid("web_ui_password"));
        }
        Ok(Applied {
            password: password.map(Secret::new),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_serialize_with_qbittorrent_keys() {
        let json = serde_json::to_value(Preferences::default()).unwrap();
        assert_eq!(json["max_ratio"], -1.0);
        assert_eq!(json["max_seeding_time"], -1);
        assert_eq!(json["queueing_enabled"], true);
        assert_eq!(json["web_ui_username"], "admin");
        assert_eq!(json["bypass_local_auth"], false);
        assert!(json.get("web_ui_password").is_none());
    }

    #[test]
    fn set_preferences_applies_known_keys_and_ignores_others() {
        let mut p = Preferences::default();
        let applied = p
            .apply_json(
                r#"{"dl_limit": 2097152, "up_limit": "-1", "dht": false, "pex": "false",
                    "max_ratio_enabled": true, "max_ratio": 1.5, "listen_port": 51413,
                    "encryption": 1, "queueing_enabled": false, "max_active_downloads": -5,
                    "save_path": "/srv", "some_unknown_key": [1, 2]}"#,
            )
            .unwrap();
        assert_eq!(applied, Applied::default());
        assert_eq!((p.dl_limit, p.up_limit), (2_097_152, 0));
        assert!(!p.dht && !p.pex && !p.queueing_enabled);
        assert_eq!((p.max_ratio_enabled, p.max_ratio), (true, 1.5));
        assert_eq!((p.listen_port, p.encryption), (51413, 1));
        assert_eq!(p.max_active_downloads, -1);
        assert_eq!(p.save_path, "/srv");
    }

    #[test]
    fn share_limits_follow_their_enabled_flags() {
        let mut p = Preferences::default();
        p.apply_json(r#"{"max_seeding_time_enabled": true, "max_seeding_time": 90}"#)
            .unwrap();
        assert_eq!(p.max_seeding_time, 90);
        p.apply_json(r#"{"max_seeding_time": 30}"#).unwrap();
        assert_eq!(p.max_seeding_time, 30, "changed while enabled");
        p.apply_json(r#"{"max_seeding_time_enabled": false}"#)
            .unwrap();
        assert_eq!(
            (p.max_seeding_time_enabled, p.max_seeding_time),
            (false, -1)
        );
        p.apply_json(r#"{"max_ratio": 2}"#).unwrap();
        assert_eq!(p.max_ratio, -1.0, "a ratio alone does not enable the limit");
    }

    #[test]
    fn a_bad_value_changes_nothing() {
        let mut p = Preferences::default();
        let before = p.clone();
        assert_eq!(
            p.apply_json(r#"{"dl_limit": 100, "listen_port": 70000}"#),
            Err(PrefsError::Invalid("listen_port".to_owned()))
        );
        assert_eq!(
            p.apply_json(r#"{"dht": "maybe"}"#),
            Err(PrefsError::Invalid("dht".to_owned()))
        );
        assert_eq!(p.apply_json("[1]"), Err(PrefsError::NotAnObject));
        assert_eq!(p.apply_json("{not json"), Err(PrefsError::NotAnObject));
        assert_eq!(p, before);
    }

    #[test]
    fn a_new_password_is_handed_back_not_stored() {
        let mut p = Preferences::default();
        let applied = p
            .apply_json(r#"{"web_ui_password": "hunter22", "web_ui_username": "me"}"#)
            .unwrap();
        assert_eq!(
            applied.password.as_ref().map(Secret::expose),
            Some("hunter22")
        );
        assert_eq!(p.web_ui_username, "me");
        assert!(!serde_json::to_string(&p).unwrap().contains("hunter22"));
        assert!(p.apply_json(r#"{"web_ui_password": ""}"#).is_err());
    }

    #[test]
    fn a_saved_file_missing_keys_takes_defaults() {
        let p: Preferences = serde_json::from_str(r#"{"dl_limit": 5}"#).unwrap();
        assert_eq!(p.dl_limit, 5);
        assert_eq!(p.max_active_torrents, 5);
    }
}
