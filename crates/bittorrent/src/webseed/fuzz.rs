//! The entry of the `webseed` fuzz target (fuzz/): arbitrary bytes as a
//! `Content-Range` header, a web seed URL and an info dictionary. Not an API.

use crate::metainfo::check_web_seed_url;
use crate::webseed::answer::{check_head, parse_content_range, Asked};
use crate::webseed::urls::fuzz_file_paths;

/// Runs `data` through the answer checks and the URL building. The first
/// byte steers the choices; the rest is `header \n url \n info`. Panics only
/// when an invariant breaks: a parsed range that is inverted, past its
/// total, or not what it prints as; a URL that does not start with its base.
pub fn webseed(data: &[u8]) {
    let Some((&ctl, data)) = data.split_first() else {
        return;
    };
    let mut parts = data.splitn(3, |&b| b == b'\n');
    let header = parts.next().unwrap_or_default();
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let info = parts.next().unwrap_or_default();

    if let Some(range) = parse_content_range(header) {
        assert!(range.first <= range.last, "{range:?}");
        assert!(range.total.is_none_or(|t| range.last < t), "{range:?}");
        let total = range.total.map_or("*".to_owned(), |t| t.to_string());
        let printed = format!("bytes {}-{}/{total}", range.first, range.last);
        assert_eq!(parse_content_range(printed.as_bytes()), Some(range));
    }
    let length = u64::from(ctl >> 2) + 1;
    for offset in [0, u64::from(ctl), u64::MAX - length] {
        let asked = Asked {
            offset,
            length,
            file_length: offset.saturating_add(length),
        };
        for status in [200, 206, 404] {
            let content_length = (ctl & 1 == 1).then_some(length);
            let _ = check_head(status, Some(header), content_length, asked);
        }
    }

    let _ = check_web_seed_url(&url);
    fuzz_file_paths(&url, info, ctl & 2 == 2, usize::from(ctl));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_point_runs_on_odd_input() {
        webseed(b"");
        webseed(b"\x03bytes 0-9/10\nhttp://h/d/\nd5:filesld6:lengthi1e4:pathl1:aeee4:name1:ne");
        webseed(b"\xffbytes 18446744073709551614-18446744073709551614/*\n\n");
        webseed(b"\x00\xff\xfe\n\xff\n\xff");
    }
}
