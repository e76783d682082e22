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

/// BEP 19 web seeds: `url-list` as a string or a list of strings.
pub(crate) fn url_list(root: &Node<'_>) -> Vec<String> {
    let candidates: Vec<&[u8]> = match root.get(b"url-list").map(|n| &n.value) {
        Some(Value::Bytes(url)) => vec![url],
        Some(Value::List(list)) => list.iter().filter_map(|n| n.value.as_bytes()).collect(),
        _ => Vec::new(),
    };
    let mut seen = HashSet::new();
    candidates
        .into_iter()
        .filter_map(clean_url)
        .filter(|url| seen.insert(url.clone()))
        .collect()
}
