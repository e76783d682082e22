//! The daemon's model: what it knows beyond the library (each torrent's save
//! path, category, tags, dates, limits, flags, all-time totals; categories,
//! tags, preferences, credentials). Plain data and synchronous operations,
//! unit-tested; the `service` module pairs each change with library calls
//! and asks the saver to persist it.
//!
//! Invariant: every torrent in the session has exactly one record here, in
//! queue order; a torrent's category is "" or one of `config.categories`,
//! and its tags are all in `config.tags`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use bittorrent::limits::{ShareLimit, TorrentShareLimits};
use bittorrent::prelude::{PickMode, Priority, RateLimits};
use bittorrent::torrent::Totals;
use serde::{Deserialize, Serialize};

use crate::daemon::error::ApiError;
use crate::daemon::qbt::prefs::Preferences;
use crate::daemon::qbt::session::check_category_name;

/// `config.json`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    /// The Web API password in qBittorrent's PBKDF2 format (never in clear;
    /// "" when none is set: a temporary one is made at each start). The
    /// user name is `preferences.web_ui_username`.
    #[serde(default)]
    pub password_hash: String,
    /// The preferences.
    #[serde(default)]
    pub preferences: Preferences,
    /// The alternative rate limits are in force.
    #[serde(default)]
    pub alt_speed_enabled: bool,
    /// Categories by name.
    #[serde(default)]
    pub categories: BTreeMap<String, Category>,
    /// Every tag.
    #[serde(default)]
    pub tags: BTreeSet<String>,
}

impl Config {
    /// A config with this password hash and default preferences.
    pub fn new(password_hash: &str) -> Self {
        Self {
            password_hash: password_hash.into(),
            preferences: Preferences::default(),
            alt_speed_enabled: false,
            categories: BTreeMap::new(),
            tags: BTreeSet::new(),
        }
    }
}

/// A category.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Category {
    /// Where its torrents are saved when added without a save path ("" for
    /// the default save path).
    #[serde(default, rename = "savePath")]
    pub save_path: String,
}

/// Where a torrent's metainfo comes from at restart.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceRecord {
    /// `DATA/torrents/<hash>.torrent`.
    Torrent,
    /// A magnet link whose metadata has not arrived yet.
    Magnet(String),
}

/// One torrent, as `torrents.json` keeps it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TorrentRecord {
    /// The info-hash, lowercase hex.
    pub hash: String,
    /// Where the metainfo comes from.
    pub source: SourceRecord,
    /// Where the data is.
    pub save_path: PathBuf,
    /// A name given by `rename` (else the metainfo's).
    #[serde(default)]
    pub name: Option<String>,
    /// "" or a category name.
    #[serde(default)]
    pub category: String,
    /// Tags.
    #[serde(default)]
    pub tags: BTreeSet<String>,
    /// Unix time it was added.
    pub added_on: i64,
    /// Unix time it completed, if it did.
    #[serde(default)]
    pub completion_on: Option<i64>,
    /// Stopped by the user (or a share limit).
    #[serde(default)]
    pub paused: bool,
    /// Force-started.
    #[serde(default)]
    pub forced: bool,
    /// Own download limit, bytes/s.
    #[serde(default)]
    pub dl_limit: Option<u64>,
    /// Own upload limit, bytes/s.
    #[serde(default)]
    pub up_limit: Option<u64>,
    /// qBittorrent's ratio limit: -2 the global one, -1 none, else the limit.
    #[serde(default = "global_limit")]
    pub ratio_limit: f64,
    /// Seeding-time limit in minutes: -2 global, -1 none.
    #[serde(default = "global_minutes")]
    pub seeding_time_limit: i64,
    /// Sequential download.
    #[serde(default)]
    pub sequential: bool,
    /// First and last pieces first.
    #[serde(default)]
    pub first_last: bool,
    /// qBittorrent file priorities (0 skip, 1 normal, 6 high, 7 maximal),
    /// once the files are known.
    #[serde(default)]
    pub file_priorities: Option<Vec<u8>>,
    /// All-time payload downloaded, as of the last save.
    #[serde(default)]
    pub downloaded: u64,
    /// All-time payload uploaded.
    #[serde(default)]
    pub uploaded: u64,
    /// All-time seconds seeding.
    #[serde(default)]
    pub seeding_time: u64,
}

fn global_limit() -> f64 {
    -2.0
}

fn global_minutes() -> i64 {
    -2
}

impl TorrentRecord {
    /// A new record with default options.
    pub fn new(hash: String, source: SourceRecord, save_path: PathBuf, added_on: i64) -> Self {
        Self {
            hash,
            source,
            save_path,
            name: None,
            category: String::new(),
            tags: BTreeSet::new(),
            added_on,
            completion_on: None,
            paused: false,
            forced: false,
            dl_limit: None,
            up_limit: None,
            ratio_limit: global_limit(),
            seeding_time_limit: global_minutes(),
            sequential: false,
            first_last: false,
            file_priorities: None,
            downloaded: 0,
            uploaded: 0,
            seeding_time: 0,
        }
    }

    /// Its own rate limits.
    pub fn rate_limits(&self) -> RateLimits {
        RateLimits {
            download: self.dl_limit,
            upload: self.up_limit,
        }
    }

    /// Its share limits, in the library's terms.
    pub fn share_limits(&self) -> TorrentShareLimits {
        TorrentShareLimits {
            ratio: match self.ratio_limit {
                -2.0 => ShareLimit::Session,
                r if r < 0.0 => ShareLimit::Unlimited,
                r => ShareLimit::Limit(r),
            },
            seeding_time: match self.seeding_time_limit {
                -2 => ShareLimit::Session,
                m if m < 0 => ShareLimit::Unlimited,
                m => ShareLimit::Limit(Duration::from_secs(m as u64 * 60)),
            },
        }
    }

    /// The pick mode: sequential wins over first/last (streaming).
    pub fn mode(&self) -> PickMode {
        match (self.sequential, self.first_last) {
            (true, _) => PickMode::Sequential,
            (false, true) => PickMode::Streaming,
            (false, false) => PickMode::RarestFirst,
        }
    }

    /// The library priorities of its `files` files (Normal where unknown).
    pub fn priorities(&self, files: usize) -> Vec<Priority> {
        let saved = self.file_priorities.as_deref().unwrap_or(&[]);
        (0..files)
            .map(|i| saved.get(i).map_or(Priority::Normal, |&p| priority(p)))
            .collect()
    }

    /// What it transferred before this run.
    pub fn totals(&self) -> Totals {
        Totals {
            downloaded: self.downloaded,
            uploaded: self.uploaded,
            seeding_time: Duration::from_secs(self.seeding_time),
        }
    }
}

/// The library priority of a qBittorrent file priority (0 skip, 1 normal,
/// 6 high, 7 maximal = high).
pub fn priority(qbt: u8) -> Priority {
    match qbt {
        0 => Priority::Skip,
        6 | 7 => Priority::High,
        _ => Priority::Normal,
    }
}

/// The qBittorrent file priority of a library one.
pub fn qbt_priority(priority: Priority) -> u8 {
    match priority {
        Priority::Skip => 0,
        Priority::Normal => 1,
        Priority::High => 6,
    }
}

/// Whether `qbt` is a file priority the API accepts.
pub fn valid_priority(qbt: i64) -> bool {
    matches!(qbt, 0 | 1 | 6 | 7)
}

/// `torrents.json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TorrentsFile {
    /// The format version (1).
    pub version: u32,
    /// Every torrent, in queue order.
    pub torrents: Vec<TorrentRecord>,
}

/// The whole model: the config and the torrents' records.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    /// Credentials, preferences, categories, tags.
    pub config: Config,
    /// The torrents, in queue order.
    pub torrents: Vec<TorrentRecord>,
}

/// Tags from a comma-separated list (trimmed, empty ones left out).
///
/// # Errors
/// 400 for a tag qBittorrent refuses (over 255 bytes).
pub fn split_tags(list: &str) -> Result<Vec<String>, ApiError> {
    crate::daemon::qbt::params::parse_tags(list).map_err(|e| ApiError::bad(e.to_string()))
}

impl Model {
    /// The record of `hash`.
    pub fn get(&self, hash: &str) -> Option<&TorrentRecord> {
        self.torrents.iter().find(|r| r.hash == hash)
    }

    /// The record of `hash`, to change.
    pub fn get_mut(&mut self, hash: &str) -> Option<&mut TorrentRecord> {
        self.torrents.iter_mut().find(|r| r.hash == hash)
    }

    /// Removes and returns the record of `hash`.
    pub fn remove(&mut self, hash: &str) -> Option<TorrentRecord> {
        let index = self.torrents.iter().position(|r| r.hash == hash)?;
        Some(self.torrents.remove(index))
    }

    /// Creates a category.
    ///
    /// # Errors
    /// 400 for an invalid name, 409 if it exists.
    pub fn create_category(&mut self, name: &str, save_path: &str) -> Result<(), ApiError> {
        if check_category_name(name).is_err() {
            return Err(ApiError::bad("Invalid category name"));
        }
        if self.config.categories.contains_key(name) {
            return Err(ApiError::Conflict("Category already exists".into()));
        }
        self.config.categories.insert(
            name.into(),
            Category {
                save_path: save_path.into(),
            },
        );
        Ok(())
    }

    /// Creates a category unless it exists (torrents/add with a new one).
    ///
    /// # Errors
    /// 400 for an invalid name.
    pub fn ensure_category(&mut self, name: &str) -> Result<(), ApiError> {
        if name.is_empty() || self.config.categories.contains_key(name) {
            return Ok(());
        }
        self.create_category(name, "")
    }

    /// Changes a category's save path.
    ///
    /// # Errors
    /// 409 if there is no such category.
    pub fn edit_category(&mut self, name: &str, save_path: &str) -> Result<(), ApiError> {
        let category = self
            .config
            .categories
            .get_mut(name)
            .ok_or_else(|| ApiError::Conflict("Category does not exist".into()))?;
        category.save_path = save_path.into();
        Ok(())
    }

    /// Removes categories (unknown names are ignored); their torrents get none.
    pub fn remove_categories(&mut self, names: &[&str]) {
        for name in names {
            if self.config.categories.remove(*name).is_some() {
                for record in self.torrents.iter_mut().filter(|r| r.category == *name) {
                    record.category.clear();
                }
            }
        }
    }

    /// Sets the category of torrents ("" for none).
    ///
    /// # Errors
    /// 409 if the category does not exist.
    pub fn set_category(&mut self, hashes: &[String], category: &str) -> Result<(), ApiError> {
        if !category.is_empty() && !self.config.categories.contains_key(category) {
            return Err(ApiError::Conflict("Incorrect category name".into()));
        }
        for hash in hashes {
            if let Some(record) = self.get_mut(hash) {
                record.category = category.into();
            }
        }
        Ok(())
    }

    /// The save path of a new torrent: `savepath` if given, else its
    /// category's, else the default.
    pub fn save_path_for(&self, savepath: Option<&str>, category: &str) -> PathBuf {
        if let Some(path) = savepath.filter(|p| !p.is_empty()) {
            return PathBuf::from(path);
        }
        match self.config.categories.get(category) {
            Some(c) if !c.save_path.is_empty() => PathBuf::from(&c.save_path),
            _ => PathBuf::from(&self.config.preferences.save_path),
        }
    }

    /// Creates tags (existing ones are kept).
    pub fn create_tags(&mut self, tags: &[String]) {
        self.config.tags.extend(tags.iter().cloned());
    }

    /// Deletes tags, from every torrent too.
    pub fn delete_tags(&mut self, tags: &[String]) {
        for tag in tags {
            self.config.tags.remove(tag);
            for record in &mut self.torrents {
                record.tags.remove(tag);
            }
        }
    }

    /// Adds tags to torrents (creating the tags).
    pub fn add_tags(&mut self, hashes: &[String], tags: &[String]) {
        self.create_tags(tags);
        for hash in hashes {
            if let Some(record) = self.get_mut(hash) {
                record.tags.extend(tags.iter().cloned());
            }
        }
    }

    /// Removes tags from torrents (every tag when `tags` is empty).
    pub fn remove_tags(&mut self, hashes: &[String], tags: &[String]) {
        for hash in hashes {
            if let Some(record) = self.get_mut(hash) {
                if tags.is_empty() {
                    record.tags.clear();
                } else {
                    for tag in tags {
                        record.tags.remove(tag);
                    }
                }
            }
        }
    }

    /// The persisted form of the records.
    pub fn records_file(&self) -> TorrentsFile {
        TorrentsFile {
            version: 1,
            torrents: self.torrents.clone(),
        }
    }

    /// Puts the records in `order` (info-hashes, the session's queue);
    /// records not in it keep their place after those that are.
    pub fn reorder(&mut self, order: &[String]) {
        let rank = |hash: &str| order.iter().position(|h| h == hash).unwrap_or(usize::MAX);
        self.torrents.sort_by_key(|r| rank(&r.hash));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Model {
        let mut model = Model {
            config: Config::new("h"),
            torrents: Vec::new(),
        };
        for hash in ["aa", "bb"] {
            let record = TorrentRecord::new(hash.into(), SourceRecord::Torrent, "/d".into(), 1);
            model.torrents.push(record);
        }
        model
    }

    #[test]
    fn categories_are_checked_and_removing_one_clears_its_torrents() {
        let mut model = model();
        assert_eq!(
            model
                .set_category(&["aa".into()], "tv")
                .unwrap_err()
                .status(),
            409
        );
        model.create_category("tv", "/tv").unwrap();
        assert_eq!(model.create_category("tv", "").unwrap_err().status(), 409);
        assert_eq!(model.create_category("/x", "").unwrap_err().status(), 400);
        assert_eq!(model.create_category("", "").unwrap_err().status(), 400);
        model.set_category(&["aa".into()], "tv").unwrap();
        assert_eq!(model.get("aa").unwrap().category, "tv");
        assert_eq!(model.save_path_for(None, "tv"), PathBuf::from("/tv"));
        assert_eq!(model.save_path_for(Some("/x"), "tv"), PathBuf::from("/x"));
        assert_eq!(model.edit_category("nope", "").unwrap_err().status(), 409);
        model.remove_categories(&["tv"]);
        assert_eq!(model.get("aa").unwrap().category, "");
        assert!(model.config.categories.is_empty());
    }

    #[test]
    fn tags_are_created_added_removed_and_deleted_everywhere() {
        let mut model = model();
        let hashes = vec!["aa".to_string(), "bb".to_string(), "zz".to_string()];
        model.add_tags(&hashes, &split_tags(" a, b ,,").unwrap());
        assert_eq!(model.config.tags.len(), 2);
        assert_eq!(model.get("bb").unwrap().tags.len(), 2);
        model.remove_tags(&hashes[..1], &["a".into()]);
        assert_eq!(model.get("aa").unwrap().tags.len(), 1);
        model.delete_tags(&["b".into()]);
        assert!(model.get("aa").unwrap().tags.is_empty());
        assert_eq!(model.get("bb").unwrap().tags.len(), 1);
        model.remove_tags(&hashes[1..2], &[]);
        assert!(model.get("bb").unwrap().tags.is_empty());
    }

    #[test]
    fn record_options_become_library_options() {
        let mut record = TorrentRecord::new("aa".into(), SourceRecord::Torrent, "/d".into(), 1);
        assert_eq!(record.share_limits(), TorrentShareLimits::default());
        assert_eq!(record.mode(), PickMode::RarestFirst);
        record.ratio_limit = -1.0;
        record.seeding_time_limit = 3;
        record.first_last = true;
        assert_eq!(record.share_limits().ratio, ShareLimit::Unlimited);
        assert_eq!(
            record.share_limits().seeding_time,
            ShareLimit::Limit(Duration::from_secs(180))
        );
        assert_eq!(record.mode(), PickMode::Streaming);
        record.sequential = true;
        assert_eq!(record.mode(), PickMode::Sequential);
        record.file_priorities = Some(vec![0, 7]);
        assert_eq!(
            record.priorities(3),
            [Priority::Skip, Priority::High, Priority::Normal]
        );
        assert_eq!(qbt_priority(priority(6)), 6);
        assert!(valid_priority(7) && !valid_priority(2));
    }

    #[test]
    fn reorder_follows_the_queue() {
        let mut model = model();
        model.reorder(&["bb".into(), "aa".into()]);
        assert_eq!(model.torrents[0].hash, "bb");
        model.reorder(&[]);
        assert_eq!(model.torrents[0].hash, "bb");
    }

    #[test]
    fn records_round_trip_through_json() {
        let mut model = model();
        model.torrents[1].source = SourceRecord::Magnet("magnet:?xt=urn:btih:bb".into());
        model.torrents[1].tags.insert("t".into());
        let file = model.records_file();
        let text = serde_json::to_string(&file).unwrap();
        assert_eq!(serde_json::from_str::<TorrentsFile>(&text).unwrap(), file);
    }
}
