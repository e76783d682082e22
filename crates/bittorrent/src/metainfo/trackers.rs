//! The trackers (BEP 12 `announce-list`, else `announce`) and web seeds
//! (BEP 19 `url-list`) of a torrent.

use std::collections::HashSet;

use crate::bencode::{Node, Value};

/// Trims a URL; `None` if it is not UTF-8 or empty.
fn clean_url(bytes: &[u8]) -> Option<String> {
    let url = std::str::from_utf8(bytes).ok()?.trim();
    (!url.is_empty()).then(|| url.to_owned())
}

/// Tracker tiers: `announce-list` if it yields any URL, else `announce`.
pub(crate) fn trackers(root: &Node<'_>) -> Vec<Vec<String>> {
    let mut seen = HashSet::new();
    let mut tiers = Vec::new();
    let list = root.get(b"announce-list").and_then(|n| n.value.as_list());
    for tier in list.unwrap_or_default() {
        let mut urls = Vec::new();
        for url in tier.value.as_list().unwrap_or_default() {
            if let Some(url) = url.value.as_bytes().and_then(clean_url) {
                if seen.insert(url.clone()) {
                    urls.push(url);
                }
            }
        }
        if !urls.is_empty() {
            tiers.push(urls);
        }
    }
    if tiers.is_empty() {
        if let Some(url) = root
            .get(b"announce")
            .and_then(|n| n.value.as_bytes())
            .and_then(clean_url)
        {
            tiers.push(vec![url]);
        }
    }
    tiers
}

/// BEP 19 web seeds: `url-list` as a string or a list of strings, keeping
/// only the usable entries (see [`check_web_seed_url`]), each once (two
/// entries are the same when they parse to the same URL), in order. An entry
/// is kept as written (trimmed), not normalised.
pub(crate) fn url_list(root: &Node<'_>) -> Vec<String> {
    let candidates: Vec<&[u8]> = match root.get(b"url-list").map(|n| &n.value) {
        Some(Value::Bytes(url)) => vec![url],
        Some(Value::List(list)) => list.iter().filter_map(|n| n.value.as_bytes()).collect(),
        _ => Vec::new(),
    };
    let mut seen = HashSet::new();
    let mut urls = Vec::new();
    for url in candidates.into_iter().filter_map(clean_url) {
        match check_web_seed_url(&url) {
            Ok(parsed) => {
                if seen.insert(parsed.to_string()) {
                    urls.push(url);
                }
            }
            Err(e) => log::debug!("ignoring web seed: {e}"),
        }
    }
    urls
}

/// Why a web seed URL (a `url-list` entry or one the user gave) cannot be
/// used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WebSeedUrlError {
    /// Not an absolute URL (a relative path, a bare host name, garbage).
    #[error("web seed {url:?} is not an absolute http(s) URL: {reason}")]
    NotAbsolute {
        /// The URL as given.
        url: String,
        /// What the URL parser said.
        reason: String,
    },
    /// An absolute URL whose scheme is not `http` or `https`.
    #[error("web seed {url:?}: scheme {scheme:?} is not http or https")]
    Scheme {
        /// The URL as given.
        url: String,
        /// Its scheme.
        scheme: String,
    },
}

/// Checks that `url` (trimmed) is usable as a web seed: an absolute `http` or
/// `https` URL with a host, and returns it parsed.
///
/// # Errors
/// [`WebSeedUrlError::NotAbsolute`] when it does not parse as an absolute
/// URL (`/8/items/`, `example.com/file`, empty), [`WebSeedUrlError::Scheme`]
/// for another scheme (`ftp:`, `file:`).
pub fn check_web_seed_url(url: &str) -> Result<reqwest::Url, WebSeedUrlError> {
    let trimmed = url.trim();
    let parsed = reqwest::Url::parse(trimmed).map_err(|e| WebSeedUrlError::NotAbsolute {
        url: trimmed.to_owned(),
        reason: e.to_string(),
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(WebSeedUrlError::Scheme {
            url: trimmed.to_owned(),
            scheme: parsed.scheme().to_owned(),
        });
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(WebSeedUrlError::NotAbsolute {
            url: trimmed.to_owned(),
            reason: "no host".to_owned(),
        });
    }
    Ok(parsed)
}
