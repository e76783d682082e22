//! `sync/maindata`: the answer to a poll with `rid`. The last few answers
//! are kept by response id; a client that sends the id of one of them gets
//! only what changed since (changed fields of changed torrents, removed
//! torrents, categories, tags, trackers, and the changed `server_state`
//! keys), any other id (0, unknown, too old) a full update, as qBittorrent
//! 5.0 answers. The kept answers are shared by every client, so several
//! pollers each get correct deltas.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;

use serde_json::{json, Map, Value};

use crate::daemon::qbt::session::{Category, ServerState};
use crate::daemon::qbt::views::{TorrentInfo, TorrentInput};

/// Response ids cycle from 1 to this (qBittorrent's).
const MAX_RID: u64 = 1_000_000;

/// Everything `sync/maindata` reports at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct MainData {
    /// Hash -> the `torrents/info` object without `hash`.
    pub torrents: BTreeMap<String, Map<String, Value>>,
    /// Name -> category object.
    pub categories: BTreeMap<String, Map<String, Value>>,
    /// Every tag.
    pub tags: BTreeSet<String>,
    /// Tracker URL -> hashes of the torrents that use it.
    pub trackers: BTreeMap<String, Vec<String>>,
    /// The `server_state` object.
    pub server_state: Map<String, Value>,
}

/// A value's JSON object (empty for anything else).
fn object(value: impl serde::Serialize) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(map)) => map,
        _ => Map::new(),
    }
}

impl MainData {
    /// The data from the daemon's views.
    pub fn new<'a>(
        torrents: &[TorrentInfo],
        categories: impl IntoIterator<Item = &'a Category>,
        tags: impl IntoIterator<Item = &'a String>,
        trackers: BTreeMap<String, Vec<String>>,
        server_state: &ServerState,
    ) -> Self {
        Self {
            torrents: torrents
                .iter()
                .map(|t| {
                    let mut map = object(t);
                    map.remove("hash");
                    (t.hash.clone(), map)
                })
                .collect(),
            categories: categories
                .into_iter()
                .map(|c| (c.name.clone(), object(c)))
                .collect(),
            tags: tags.into_iter().cloned().collect(),
            trackers,
            server_state: object(server_state),
        }
    }

    /// The whole data as a full update.
    fn full(&self) -> Map<String, Value> {
        let mut out = Map::new();
        out.insert("full_update".to_owned(), Value::Bool(true));
        insert_nonempty(&mut out, "torrents", objects(&self.torrents));
        insert_nonempty(&mut out, "categories", objects(&self.categories));
        if !self.tags.is_empty() {
            out.insert("tags".to_owned(), json!(self.tags));
        }
        if !self.trackers.is_empty() {
            out.insert("trackers".to_owned(), json!(self.trackers));
        }
        out.insert(
            "server_state".to_owned(),
            Value::Object(self.server_state.clone()),
        );
        out
    }

    /// What changed from `old` to `self`.
    fn delta(&self, old: &Self) -> Map<String, Value> {
        let mut out = Map::new();
        diff_objects(&mut out, "torrents", &old.torrents, &self.torrents);
        diff_objects(&mut out, "categories", &old.categories, &self.categories);
        let added: Vec<_> = self.tags.difference(&old.tags).collect();
        let removed: Vec<_> = old.tags.difference(&self.tags).collect();
        if !added.is_empty() {
            out.insert("tags".to_owned(), json!(added));
        }
        if !removed.is_empty() {
            out.insert("tags_removed".to_owned(), json!(removed));
        }
        let changed: Map<String, Value> = self
            .trackers
            .iter()
            .filter(|(url, hashes)| old.trackers.get(*url) != Some(hashes))
            .map(|(url, hashes)| (url.clone(), json!(hashes)))
            .collect();
        insert_nonempty(&mut out, "trackers", changed);
        let gone: Vec<_> = old
            .trackers
            .keys()
            .filter(|url| !self.trackers.contains_key(*url))
            .collect();
        if !gone.is_empty() {
            out.insert("trackers_removed".to_owned(), json!(gone));
        }
        let server = changed_fields(&old.server_state, &self.server_state);
        insert_nonempty(&mut out, "server_state", server);
        out
    }
}

/// Tracker URL -> hashes of the torrents announcing to it (the trackers
/// they report, else their metainfo's).
pub fn tracker_map(inputs: &[TorrentInput<'_>]) -> BTreeMap<String, Vec<String>> {
    let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for input in inputs {
        let hash = input.hash.to_hex();
        let urls: Vec<String> = if input.stats.trackers.is_empty() {
            input
                .meta
                .map(|m| m.trackers.iter().flatten().cloned().collect())
                .unwrap_or_default()
        } else {
            input.stats.trackers.iter().map(|t| t.url.clone()).collect()
        };
        for url in urls {
            let hashes = map.entry(url).or_default();
            if !hashes.contains(&hash) {
                hashes.push(hash.clone());
            }
        }
    }
    map
}

fn objects(map: &BTreeMap<String, Map<String, Value>>) -> Map<String, Value> {
    map.iter()
        .map(|(k, v)| (k.clone(), Value::Object(v.clone())))
        .collect()
}

fn insert_nonempty(out: &mut Map<String, Value>, key: &str, map: Map<String, Value>) {
    if !map.is_empty() {
        out.insert(key.to_owned(), Value::Object(map));
    }
}

/// The fields of `new` whose value differs from `old`'s.
fn changed_fields(old: &Map<String, Value>, new: &Map<String, Value>) -> Map<String, Value> {
    new.iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// `key`: new items whole and changed items' changed fields; `key_removed`:
/// the names of items gone.
fn diff_objects(
    out: &mut Map<String, Value>,
    key: &str,
    old: &BTreeMap<String, Map<String, Value>>,
    new: &BTreeMap<String, Map<String, Value>>,
) {
    let mut changed = Map::new();
    for (name, item) in new {
        let delta = match old.get(name) {
            None => item.clone(),
            Some(before) => changed_fields(before, item),
        };
        if !delta.is_empty() {
            changed.insert(name.clone(), Value::Object(delta));
        }
    }
    insert_nonempty(out, key, changed);
    let removed: Vec<&String> = old.keys().filter(|k| !new.contains_key(*k)).collect();
    if !removed.is_empty() {
        out.insert(format!("{key}_removed"), json!(removed));
    }
}

/// The kept answers. Invariant: at most `keep` snapshots, the newest last,
/// each under the response id it was sent with.
#[derive(Debug)]
pub struct MainDataSync {
    kept: VecDeque<(u64, Arc<MainData>)>,
    keep: usize,
    last_rid: u64,
}

impl MainDataSync {
    /// Keeps the last `keep` answers (at least 1).
    pub fn new(keep: usize) -> Self {
        Self {
            kept: VecDeque::new(),
            keep: keep.max(1),
            last_rid: 0,
        }
    }

    /// The answer to a poll with `rid` (0, negative or unparsable: a full
    /// update) given the data now; `now` is kept under the new response id,
    /// which the answer carries as `rid`.
    pub fn answer(&mut self, rid: i64, now: MainData) -> Value {
        let base = u64::try_from(rid)
            .ok()
            .filter(|r| *r > 0)
            .and_then(|r| self.kept.iter().find(|(id, _)| *id == r))
            .map(|(_, data)| Arc::clone(data));
        let mut out = match base {
            Some(old) => now.delta(&old),
            None => now.full(),
        };
        let id = (self.last_rid % MAX_RID) + 1;
        self.last_rid = id;
        out.insert("rid".to_owned(), json!(id));
        self.kept.retain(|(kept, _)| *kept != id);
        self.kept.push_back((id, Arc::new(now)));
        while self.kept.len() > self.keep {
            self.kept.pop_front();
        }
        Value::Object(out)
    }
}

#[cfg(test)]
mod tests;
