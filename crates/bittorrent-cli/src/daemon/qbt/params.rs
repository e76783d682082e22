//! Parsers of the Web API's request parameters, shared by the endpoints:
//! `hashes` ("h1|h2" or "all"), booleans, file ids and priorities, tag
//! lists, rate limits and share limits, each as qBittorrent 5.0 reads them
//! but with a typed error (a 400 answer) where qBittorrent would silently
//! take 0.

use std::time::Duration;

use bittorrent::limits::{ShareLimit, TorrentShareLimits};
use bittorrent::types::InfoHash;

/// A parameter the handler cannot use; answered with 400 and this text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParamError {
    /// A required parameter is missing.
    #[error("Missing required parameter: {0}")]
    Missing(&'static str),
    /// A hash is not 40 hex digits.
    #[error("Invalid torrent hash: {0}")]
    BadHash(String),
    /// A value of the wrong form.
    #[error("Invalid value for '{name}': {value}")]
    Invalid {
        /// The parameter.
        name: &'static str,
        /// What was given (cut to 64 characters).
        value: String,
    },
}

/// An [`ParamError::Invalid`] for `value`.
pub fn invalid(name: &'static str, value: &str) -> ParamError {
    ParamError::Invalid {
        name,
        value: value.chars().take(64).collect(),
    }
}

/// The torrents a request names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hashes {
    /// `all`.
    All,
    /// These, in the order given, without repeats.
    Some(Vec<InfoHash>),
}

impl Hashes {
    /// Whether `hash` is named.
    pub fn contains(&self, hash: &InfoHash) -> bool {
        match self {
            Self::All => true,
            Self::Some(list) => list.contains(hash),
        }
    }
}

/// Parses a `hashes` parameter: `all` (any case) or 40-hex-digit hashes
/// (any case) separated by `|`; empty parts are skipped.
///
/// # Errors
/// [`ParamError::Missing`] for nothing but separators;
/// [`ParamError::BadHash`] for a part that is not 40 hex digits.
pub fn parse_hashes(param: &str) -> Result<Hashes, ParamError> {
    let param = param.trim();
    if param.eq_ignore_ascii_case("all") {
        return Ok(Hashes::All);
    }
    let mut list = Vec::new();
    for part in param.split('|').map(str::trim).filter(|p| !p.is_empty()) {
        let hash = parse_hash(part)?;
        if !list.contains(&hash) {
            list.push(hash);
        }
    }
    if list.is_empty() {
        return Err(ParamError::Missing("hashes"));
    }
    Ok(Hashes::Some(list))
}

/// Parses one `hash` parameter (40 hex digits, any case).
///
/// # Errors
/// [`ParamError::BadHash`] otherwise.
pub fn parse_hash(param: &str) -> Result<InfoHash, ParamError> {
    let param = param.trim();
    if param.len() != 40 {
        return Err(ParamError::BadHash(param.chars().take(64).collect()));
    }
    InfoHash::from_hex(param).ok_or_else(|| ParamError::BadHash(param.to_owned()))
}

/// qBittorrent's `parseBool`: "true"/"false" in any case; anything else is
/// `None`.
pub fn parse_bool(param: &str) -> Option<bool> {
    let param = param.trim();
    if param.eq_ignore_ascii_case("true") {
        Some(true)
    } else if param.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// File ids of `torrents/filePrio` ("0|3|4").
///
/// # Errors
/// [`ParamError::Invalid`] for a part that is not a non-negative integer.
pub fn parse_file_ids(param: &str) -> Result<Vec<usize>, ParamError> {
    param
        .split('|')
        .map(|part| part.trim().parse().map_err(|_| invalid("id", part)))
        .collect()
}

/// A file priority of `torrents/filePrio`: 0 (do not download), 1 normal,
/// 6 high, 7 maximal.
///
/// # Errors
/// [`ParamError::Invalid`] for any other value.
pub fn parse_file_priority(param: &str) -> Result<u8, ParamError> {
    match param.trim().parse::<u8>() {
        Ok(p @ (0 | 1 | 6 | 7)) => Ok(p),
        _ => Err(invalid("priority", param)),
    }
}

/// A comma-separated tag list (`tags` of addTags/removeTags/createTags,
/// torrents/add): trimmed, empty parts skipped.
///
/// # Errors
/// [`ParamError::Invalid`] for a tag qBittorrent refuses (containing a
/// comma cannot happen here; a tag longer than 255 bytes is refused).
pub fn parse_tags(param: &str) -> Result<Vec<String>, ParamError> {
    let mut tags: Vec<String> = Vec::new();
    for tag in param.split(',').map(str::trim).filter(|t| !t.is_empty()) {
        if tag.len() > 255 {
            return Err(invalid("tags", tag));
        }
        if !tags.iter().any(|t| t == tag) {
            tags.push(tag.to_owned());
        }
    }
    Ok(tags)
}

/// A rate limit in bytes per second (`limit` of setDownloadLimit,
/// `dlLimit` of torrents/add): 0 or negative is unlimited (`None`).
///
/// # Errors
/// [`ParamError::Invalid`] for a non-integer.
pub fn parse_rate_limit(name: &'static str, param: &str) -> Result<Option<u64>, ParamError> {
    let value: i64 = param.trim().parse().map_err(|_| invalid(name, param))?;
    Ok(u64::try_from(value).ok().filter(|v| *v > 0))
}

/// A ratio limit: -2 the session's, -1 none, else a ratio of 0 or more.
///
/// # Errors
/// [`ParamError::Invalid`] for anything else.
pub fn parse_ratio_limit(param: &str) -> Result<ShareLimit<f64>, ParamError> {
    let value: f64 = param
        .trim()
        .parse()
        .map_err(|_| invalid("ratioLimit", param))?;
    if value == -2.0 {
        Ok(ShareLimit::Session)
    } else if value == -1.0 {
        Ok(ShareLimit::Unlimited)
    } else if value.is_finite() && value >= 0.0 {
        Ok(ShareLimit::Limit(value))
    } else {
        Err(invalid("ratioLimit", param))
    }
}

/// A seeding-time limit in minutes: -2 the session's, -1 none, else 0 or
/// more minutes.
///
/// # Errors
/// [`ParamError::Invalid`] for anything else.
pub fn parse_seeding_time_limit(param: &str) -> Result<ShareLimit<Duration>, ParamError> {
    let value: i64 = param
        .trim()
        .parse()
        .map_err(|_| invalid("seedingTimeLimit", param))?;
    match value {
        -2 => Ok(ShareLimit::Session),
        -1 => Ok(ShareLimit::Unlimited),
        v if v >= 0 => Ok(ShareLimit::Limit(Duration::from_secs(
            v.unsigned_abs().saturating_mul(60),
        ))),
        _ => Err(invalid("seedingTimeLimit", param)),
    }
}

/// The share limits of `torrents/setShareLimits` (`ratioLimit` and
/// `seedingTimeLimit` required, as qBittorrent; `inactiveSeedingTimeLimit`
/// is accepted and ignored).
///
/// # Errors
/// [`ParamError`] for a missing or invalid value.
pub fn parse_share_limits<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<TorrentShareLimits, ParamError> {
    let ratio = get("ratioLimit").ok_or(ParamError::Missing("ratioLimit"))?;
    let time = get("seedingTimeLimit").ok_or(ParamError::Missing("seedingTimeLimit"))?;
    Ok(TorrentShareLimits {
        ratio: parse_ratio_limit(ratio)?,
        seeding_time: parse_seeding_time_limit(time)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn hashes_all_lists_and_errors() {
        assert_eq!(parse_hashes("all"), Ok(Hashes::All));
        assert_eq!(parse_hashes("ALL"), Ok(Hashes::All));
        let upper = A.to_uppercase();
        let both = format!("{A}|{upper}||");
        let hash = InfoHash::from_hex(A).unwrap();
        assert_eq!(parse_hashes(&both), Ok(Hashes::Some(vec![hash])));
        assert!(parse_hashes(A).unwrap().contains(&hash));
        assert_eq!(parse_hashes("|"), Err(ParamError::Missing("hashes")));
        assert_eq!(
            parse_hashes("xyz"),
            Err(ParamError::BadHash("xyz".to_owned()))
        );
        let bad_hex = "g".repeat(40);
        assert_eq!(
            parse_hashes(&bad_hex),
            Err(ParamError::BadHash(bad_hex.clone()))
        );
        assert!(matches!(
            parse_hash(&"a".repeat(64)),
            Err(ParamError::BadHash(_))
        ));
    }

    #[test]
    fn bools_ids_and_priorities() {
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("1"), None);
        assert_eq!(parse_file_ids("0|3| 4"), Ok(vec![0, 3, 4]));
        assert!(parse_file_ids("0|-1").is_err());
        assert!(parse_file_ids("").is_err());
        for ok in ["0", "1", "6", "7"] {
            assert!(parse_file_priority(ok).is_ok());
        }
        for bad in ["2", "-1", "x", ""] {
            assert!(parse_file_priority(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tags_are_trimmed_and_deduplicated() {
        assert_eq!(
            parse_tags(" a, b,,a ,c "),
            Ok(vec!["a".to_owned(), "b".to_owned(), "c".to_owned()])
        );
        assert_eq!(parse_tags(""), Ok(vec![]));
        assert!(parse_tags(&"x".repeat(256)).is_err());
    }

    #[test]
    fn rate_and_share_limits() {
        assert_eq!(parse_rate_limit("limit", "1024"), Ok(Some(1024)));
        assert_eq!(parse_rate_limit("limit", "0"), Ok(None));
        assert_eq!(parse_rate_limit("limit", "-1"), Ok(None));
        assert!(parse_rate_limit("limit", "fast").is_err());
        assert_eq!(parse_ratio_limit("-2"), Ok(ShareLimit::Session));
        assert_eq!(parse_ratio_limit("-1"), Ok(ShareLimit::Unlimited));
        assert_eq!(parse_ratio_limit("1.5"), Ok(ShareLimit::Limit(1.5)));
        assert!(parse_ratio_limit("-3").is_err());
        assert!(parse_ratio_limit("NaN").is_err());
        assert_eq!(
            parse_seeding_time_limit("90"),
            Ok(ShareLimit::Limit(Duration::from_secs(5400)))
        );
        // Found by the daemon_params fuzz target: minutes * 60 overflowed.
        assert_eq!(
            parse_seeding_time_limit(&i64::MAX.to_string()),
            Ok(ShareLimit::Limit(Duration::from_secs(u64::MAX)))
        );
        let params = |k: &str| match k {
            "ratioLimit" => Some("2"),
            "seedingTimeLimit" => Some("-2"),
            _ => None,
        };
        let limits = parse_share_limits(params).unwrap();
        assert_eq!(limits.ratio, ShareLimit::Limit(2.0));
        assert_eq!(limits.seeding_time, ShareLimit::Session);
        assert_eq!(
            parse_share_limits(|_| None),
            Err(ParamError::Missing("ratioLimit"))
        );
    }
}
