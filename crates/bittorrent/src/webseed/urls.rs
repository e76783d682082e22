//! Web seed URLs (BEP 19), pure: which `url-list` entries are usable, and
//! where each file of the torrent is on a server.

// helper webseed-http: `pub(crate) fn usable(list: &[String]) -> Vec<String>`
// (absolute http/https URLs, de-duplicated, order kept) and
// `pub(crate) struct FileUrls` (one URL per file of the torrent for one
// server: single-file rules, `/`-ending rule, multi-file url + name + / +
// percent-encoded path elements).
