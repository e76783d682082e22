//! `torrents/info`'s selection as qBittorrent 5.0 does it: the state
//! `filter`, `category` ("" = none), `tag` ("" = untagged), `hashes`,
//! `private`, then `sort` by any field, `reverse`, and `offset` (negative:
//! from the end) / `limit`.

use std::cmp::Ordering;

use serde_json::Value;

use crate::daemon::qbt::params::{invalid, parse_bool, parse_hashes, Hashes, ParamError};
use crate::daemon::qbt::views::TorrentInfo;

/// The state filters of `torrents/info`. An unknown name is `All`, as
/// qBittorrent takes it; the pre-5.0 names `paused`/`resumed` are read as
/// `stopped`/`running`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Filter {
    /// Every torrent.
    #[default]
    All,
    /// Incomplete ones (qBittorrent's `isDownloading`, stopped included).
    Downloading,
    /// Complete and running.
    Seeding,
    /// Complete.
    Completed,
    /// Stopped by the user.
    Stopped,
    /// Not stopped.
    Running,
    /// Moving data.
    Active,
    /// Not moving data.
    Inactive,
    /// stalledUP or stalledDL.
    Stalled,
    /// stalledUP.
    StalledUploading,
    /// stalledDL.
    StalledDownloading,
    /// Checking data.
    Checking,
    /// Moving files (never here).
    Moving,
    /// In error.
    Errored,
}

impl Filter {
    /// The filter named `name`.
    pub fn parse(name: &str) -> Self {
        match name {
            "downloading" => Self::Downloading,
            "seeding" => Self::Seeding,
            "completed" => Self::Completed,
            "stopped" | "paused" => Self::Stopped,
            "running" | "resumed" => Self::Running,
            "active" => Self::Active,
            "inactive" => Self::Inactive,
            "stalled" => Self::Stalled,
            "stalled_uploading" => Self::StalledUploading,
            "stalled_downloading" => Self::StalledDownloading,
            "checking" => Self::Checking,
            "moving" => Self::Moving,
            "errored" => Self::Errored,
            _ => Self::All,
        }
    }

    /// Whether `torrent` passes.
    pub fn matches(self, torrent: &TorrentInfo) -> bool {
        use crate::daemon::qbt::state::QbtState as S;
        let state = torrent.state;
        match self {
            Self::All => true,
            Self::Downloading => state.is_downloading(),
            Self::Seeding => state.is_uploading(),
            Self::Completed => state.is_completed(),
            Self::Stopped => state.is_stopped(),
            Self::Running => !state.is_stopped(),
            Self::Active => state.is_active(torrent.upspeed),
            Self::Inactive => !state.is_active(torrent.upspeed),
            Self::Stalled => matches!(state, S::StalledUp | S::StalledDl),
            Self::StalledUploading => state == S::StalledUp,
            Self::StalledDownloading => state == S::StalledDl,
            Self::Checking => state.is_checking(),
            Self::Moving => false,
            Self::Errored => state == S::Error,
        }
    }
}

/// The parameters of one `torrents/info` request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct InfoQuery {
    /// The state filter.
    pub filter: Filter,
    /// Only this category ("" = uncategorized); `None`: any.
    pub category: Option<String>,
    /// Only torrents with this tag ("" = untagged); `None`: any.
    pub tag: Option<String>,
    /// Only these torrents; `None`: any.
    pub hashes: Option<Hashes>,
    /// Only private (true) or public (false) torrents; `None`: any.
    pub private: Option<bool>,
    /// A field to sort by.
    pub sort: Option<String>,
    /// Sort descending.
    pub reverse: bool,
    /// Most torrents answered; 0 or less: all.
    pub limit: i64,
    /// Torrents skipped; negative: counted from the end.
    pub offset: i64,
}

/// Why a `torrents/info` request is refused (400).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// A bad parameter.
    #[error(transparent)]
    Param(#[from] ParamError),
    /// `sort` names no field.
    #[error("'sort' parameter is invalid")]
    BadSort,
}

impl InfoQuery {
    /// Reads the query from the request's parameters (`get` gives one by
    /// name).
    ///
    /// # Errors
    /// [`QueryError::Param`] for bad `hashes`, `limit` or `offset`.
    pub fn from_params<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Result<Self, QueryError> {
        let int = |name: &'static str| -> Result<i64, ParamError> {
            match get(name).map(str::trim) {
                None | Some("") => Ok(0),
                Some(v) => v.parse().map_err(|_| invalid(name, v)),
            }
        };
        let hashes = match get("hashes").map(str::trim) {
            None | Some("") => None,
            Some(v) => Some(parse_hashes(v)?),
        };
        Ok(Self {
            filter: get("filter").map_or(Filter::All, Filter::parse),
            category: get("category").map(str::to_owned),
            tag: get("tag").map(str::to_owned),
            hashes,
            private: get("private").and_then(parse_bool),
            sort: get("sort").filter(|s| !s.is_empty()).map(str::to_owned),
            reverse: get("reverse").and_then(parse_bool).unwrap_or(false),
            limit: int("limit")?,
            offset: int("offset")?,
        })
    }

    /// Whether `torrent` is selected (before sorting and paging).
    pub fn matches(&self, torrent: &TorrentInfo) -> bool {
        let tag_ok = match self.tag.as_deref() {
            None => true,
            Some("") => torrent.tags.is_empty(),
            Some(tag) => torrent.tags.split(", ").any(|t| t == tag),
        };
        self.filter.matches(torrent)
            && self
                .category
                .as_ref()
                .is_none_or(|c| *c == torrent.category)
            && tag_ok
            && self.hashes.as_ref().is_none_or(|h| {
                crate::daemon::qbt::params::parse_hash(&torrent.hash).is_ok_and(|x| h.contains(&x))
            })
            && self.private.is_none_or(|p| torrent.private == Some(p))
    }

    /// The answer: the selected torrents as JSON objects, sorted and paged.
    ///
    /// # Errors
    /// [`QueryError::BadSort`] when `sort` names no field.
    pub fn select(&self, torrents: &[TorrentInfo]) -> Result<Vec<Value>, QueryError> {
        let mut list: Vec<Value> = torrents
            .iter()
            .filter(|t| self.matches(t))
            .filter_map(|t| serde_json::to_value(t).ok())
            .collect();
        if let (Some(field), Some(first)) = (&self.sort, list.first()) {
            if first.get(field).is_none() {
                return Err(QueryError::BadSort);
            }
            list.sort_by(|a, b| {
                let order = compare(&a[field], &b[field]);
                if self.reverse {
                    order.reverse()
                } else {
                    order
                }
            });
        }
        Ok(page(list, self.offset, self.limit))
    }
}

/// Orders two JSON values of one field: numbers numerically, strings and
/// booleans naturally, `null` first.
fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.total_cmp(&y)
        }
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Null, _) => Ordering::Less,
        (_, Value::Null) => Ordering::Greater,
        _ => Ordering::Equal,
    }
}

/// qBittorrent's paging: a negative offset counts from the end; an offset
/// out of range is 0; a limit of 0 or less is no limit.
fn page<T>(list: Vec<T>, offset: i64, limit: i64) -> Vec<T> {
    let size = i64::try_from(list.len()).unwrap_or(i64::MAX);
    let mut offset = if offset < 0 { size + offset } else { offset };
    if offset >= size || offset < 0 {
        offset = 0;
    }
    let skip = usize::try_from(offset).unwrap_or(0);
    let take = usize::try_from(limit)
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(usize::MAX);
    list.into_iter().skip(skip).take(take).collect()
}

#[cfg(test)]
mod tests;
