//! Web seed URLs (BEP 19), pure: where each file of the torrent is on a
//! server.
//!
//! - Single-file torrent: the URL is the file itself; a URL ending in `/` is
//!   the directory that holds it, and the file's name is appended.
//! - Multi-file torrent: URL (`/` added if missing) + name + `/` + path, each
//!   element percent-encoded.
//!
//! The name and path elements are the torrent's own bytes (`name.utf-8` and
//! `path.utf-8` preferred, as the parser does), not the sanitized
//! [`FileEntry::path`](crate::metainfo::FileEntry::path): the server holds the
//! files under the names their creator gave them, and sanitizing can change
//! a name (a removed `/`, a NUL made `_`, a duplicate renamed `bar.1.txt`,
//! invalid UTF-8 replaced by U+FFFD). When the torrent's bytes are not usable
//! for a URL (an element that is empty, `.` or `..`, which a URL parser would
//! resolve against the server's directories, or no `info` bytes at all), the
//! sanitized path is used instead.
//!
//! Which `url-list` entries are usable at all is decided when the torrent is
//! parsed ([`crate::metainfo::check_web_seed_url`]).

use percent_encoding::{percent_encode, AsciiSet, NON_ALPHANUMERIC};

use crate::bencode::{self, Node};
use crate::metainfo::MetaInfo;

/// What is percent-encoded in a name or path element: everything but RFC
/// 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`). So `/`, space, `%`,
/// `#`, `?`, `+` and every non-ASCII byte are encoded.
const ELEMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The location of every file of a torrent relative to a web seed's URL,
/// percent-encoded, computed once per torrent and shared by its web seeds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FilePaths {
    /// Single-file torrent: the encoded name (used only when the URL ends in
    /// `/`). Multi-file torrent: unused.
    name: String,
    /// One encoded relative path per file (`name/dir/file`), empty for a
    /// single-file torrent.
    files: Vec<String>,
    multi_file: bool,
}

impl FilePaths {
    /// The encoded paths of `meta`'s files, from its `info` bytes where they
    /// are usable (see the module doc), else from its sanitized paths.
    pub(crate) fn new(meta: &MetaInfo) -> Self {
        let raw = raw_paths(&meta.info_bytes, meta.multi_file);
        let name = match &raw {
            Some(raw) => encode(raw.name),
            None => encode(meta.name.as_bytes()),
        };
        if !meta.multi_file {
            return Self {
                name,
                files: Vec::new(),
                multi_file: false,
            };
        }
        let files = match raw.filter(|raw| raw.files.len() == meta.files.len()) {
            Some(raw) => raw
                .files
                .iter()
                .zip(&meta.files)
                .map(|(elements, file)| match elements {
                    Some(elements) => join(raw.name, elements),
                    None => sanitized(&file.path),
                })
                .collect(),
            None => meta.files.iter().map(|f| sanitized(&f.path)).collect(),
        };
        Self {
            name,
            files,
            multi_file: true,
        }
    }

    /// The URL of file `file` on the web seed at `base` (a usable URL);
    /// `None` for an index past the last file. A query in `base` stays at
    /// the end (`http://h/d/?key=v` → `http://h/d/name/file?key=v`); a
    /// fragment is dropped.
    pub(crate) fn url(&self, base: &str, file: usize) -> Option<String> {
        let (dir, query) = split_base(base);
        if !self.multi_file {
            return (file == 0).then(|| {
                if dir.ends_with('/') {
                    format!("{dir}{}{query}", self.name)
                } else {
                    format!("{dir}{query}")
                }
            });
        }
        let path = self.files.get(file)?;
        let slash = if dir.ends_with('/') { "" } else { "/" };
        Some(format!("{dir}{slash}{path}{query}"))
    }
}

/// A web seed URL as the part the file path extends and its query (with
/// its `?`, or empty), without a fragment.
fn split_base(base: &str) -> (&str, &str) {
    let base = base.trim();
    let base = base.split('#').next().unwrap_or(base);
    base.split_at(base.find('?').unwrap_or(base.len()))
}

/// The torrent's own name and path elements, as bytes.
struct RawPaths<'a> {
    name: &'a [u8],
    /// Per file: its path elements, `None` when they are not usable in a URL.
    files: Vec<Option<Vec<&'a [u8]>>>,
}

/// The raw name and path elements of the info dictionary `info`; `None` when
/// it does not parse or its name is not usable.
fn raw_paths(info: &[u8], multi_file: bool) -> Option<RawPaths<'_>> {
    let info = bencode::decode(info).ok()?;
    let name = utf8_variant(&info, b"name.utf-8", b"name")
        .and_then(|n| n.value.as_bytes())
        .filter(|name| usable_element(name))?;
    let files = if multi_file {
        info.get(b"files")?
            .value
            .as_list()?
            .iter()
            .map(|file| {
                let elements = utf8_variant(file, b"path.utf-8", b"path")?;
                let elements: Vec<&[u8]> = elements
                    .value
                    .as_list()?
                    .iter()
                    .map(|e| e.value.as_bytes())
                    .collect::<Option<_>>()?;
                let usable = !elements.is_empty() && elements.iter().all(|e| usable_element(e));
                usable.then_some(elements)
            })
            .collect()
    } else {
        Vec::new()
    };
    Some(RawPaths { name, files })
}

/// The node under `preferred` when it is a list or a string, else under
/// `fallback`.
fn utf8_variant<'n, 'a>(
    dict: &'n Node<'a>,
    preferred: &[u8],
    fallback: &[u8],
) -> Option<&'n Node<'a>> {
    dict.get(preferred)
        .filter(|n| n.value.as_bytes().is_some() || n.value.as_list().is_some())
        .or_else(|| dict.get(fallback))
}

/// A name or path element that means itself in a URL path.
fn usable_element(element: &[u8]) -> bool {
    !matches!(element, b"" | b"." | b"..")
}

fn encode(element: &[u8]) -> String {
    percent_encode(element, ELEMENT).to_string()
}

/// `name/e1/e2/...`, each part encoded.
fn join(name: &[u8], elements: &[&[u8]]) -> String {
    let mut path = encode(name);
    for element in elements {
        path.push('/');
        path.push_str(&encode(element));
    }
    path
}

/// A sanitized path (name first) as an encoded relative URL path.
fn sanitized(path: &std::path::Path) -> String {
    let elements: Vec<String> = path
        .iter()
        .map(|c| encode(c.to_string_lossy().as_bytes()))
        .collect();
    elements.join("/")
}

/// Fuzzing entry point: [`FilePaths`] from arbitrary info bytes against an
/// arbitrary base URL must not panic, and every URL it builds starts with
/// the base's path and ends with its query.
pub(crate) fn fuzz_file_paths(base: &str, info: &[u8], multi_file: bool, files: usize) {
    let raw = raw_paths(info, multi_file);
    let paths = FilePaths {
        name: raw.as_ref().map(|r| encode(r.name)).unwrap_or_default(),
        files: raw
            .map(|r| {
                r.files
                    .iter()
                    .map(|f| f.as_ref().map(|e| join(r.name, e)).unwrap_or_default())
                    .collect()
            })
            .unwrap_or_default(),
        multi_file,
    };
    for file in 0..files.min(paths.files.len().max(1)) {
        if let Some(url) = paths.url(base, file) {
            let (dir, query) = split_base(base);
            assert!(url.starts_with(dir), "{url} does not start with {dir}");
            assert!(url.ends_with(query), "{url} does not end with {query}");
            let _ = reqwest::Url::parse(&url);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn single(name: &str) -> MetaInfo {
        let mut meta = MetaInfo::for_test(name, 16, &[("x", 10, false)]);
        meta.multi_file = false;
        meta.files[0].path = name.into();
        meta
    }

    #[test]
    fn single_file_url_is_the_file_or_its_directory() {
        let paths = FilePaths::new(&single("arch linux.iso"));
        assert_eq!(
            paths.url("https://m.org/iso/arch.iso", 0).as_deref(),
            Some("https://m.org/iso/arch.iso")
        );
        assert_eq!(
            paths.url("https://m.org/iso/", 0).as_deref(),
            Some("https://m.org/iso/arch%20linux.iso")
        );
        assert_eq!(paths.url("https://m.org/iso/", 1), None);
        assert_eq!(
            paths.url(" https://m.org/iso/?t=1&u=2#frag ", 0).as_deref(),
            Some("https://m.org/iso/arch%20linux.iso?t=1&u=2")
        );
        assert_eq!(
            paths.url("https://m.org/a.iso?t=1#frag", 0).as_deref(),
            Some("https://m.org/a.iso?t=1")
        );
    }

    #[test]
    fn multi_file_url_is_base_name_and_encoded_path() {
        let meta = MetaInfo::for_test(
            "My Album",
            16,
            &[("CD 1/01 #1?.flac", 10, false), ("cover~ü.jpg", 5, false)],
        );
        let paths = FilePaths::new(&meta);
        for base in ["http://h/dl", "http://h/dl/"] {
            assert_eq!(
                paths.url(base, 0).as_deref(),
                Some("http://h/dl/My%20Album/CD%201/01%20%231%3F.flac"),
                "{base}"
            );
            assert_eq!(
                paths.url(base, 1).as_deref(),
                Some("http://h/dl/My%20Album/cover~%C3%BC.jpg")
            );
        }
        assert_eq!(paths.url("http://h/", 2), None);
        assert_eq!(
            paths.url("http://h/dl?k=v", 1).as_deref(),
            Some("http://h/dl/My%20Album/cover~%C3%BC.jpg?k=v")
        );
    }

    #[test]
    fn element_encoding_keeps_only_unreserved_characters() {
        assert_eq!(encode(b"aZ09-._~"), "aZ09-._~");
        assert_eq!(
            encode(b" %#?/+&=:@\\\x00\xff"),
            "%20%25%23%3F%2F%2B%26%3D%3A%40%5C%00%FF"
        );
    }

    /// A multi-file info dictionary with these raw `path` lists.
    fn info_with_paths(name: &[u8], paths: &[&[&[u8]]]) -> Vec<u8> {
        let mut info = b"d5:filesl".to_vec();
        for path in paths {
            info.extend_from_slice(b"d6:lengthi1e4:pathl");
            for element in *path {
                info.extend_from_slice(format!("{}:", element.len()).as_bytes());
                info.extend_from_slice(element);
            }
            info.extend_from_slice(b"ee");
        }
        info.extend_from_slice(format!("e4:name{}:", name.len()).as_bytes());
        info.extend_from_slice(name);
        info.extend_from_slice(b"12:piece lengthi16e6:pieces20:xxxxxxxxxxxxxxxxxxxxe");
        info
    }

    #[test]
    fn raw_elements_are_used_where_sanitizing_changed_them() {
        let bytes = info_with_paths(
            b"t",
            &[
                &[b"a/b", b"c\0"],
                &[b"dup"],
                &[b"dup"],
                &[b"\xff"],
                &[b"x", b"..", b"y"],
            ],
        );
        let meta = MetaInfo::from_bytes(&[b"d4:info".as_slice(), &bytes, b"e"].concat()).unwrap();
        // The parser's paths differ from the torrent's names ...
        assert_eq!(meta.files[0].path, std::path::Path::new("t/ab/c_"));
        assert_eq!(meta.files[2].path, std::path::Path::new("t/dup.1"));
        let paths = FilePaths::new(&meta);
        let urls: Vec<String> = (0..5).filter_map(|i| paths.url("http://h", i)).collect();
        // ... the URLs use the torrent's own bytes, except where an element
        // would move the URL to another directory (`..`).
        assert_eq!(
            urls,
            [
                "http://h/t/a%2Fb/c%00",
                "http://h/t/dup",
                "http://h/t/dup",
                "http://h/t/%FF",
                "http://h/t/x/y",
            ]
        );
    }

    #[test]
    fn utf8_path_variant_is_preferred() {
        let info = b"d5:filesld6:lengthi1e4:pathl3:\xe9t\xe9e10:path.utf-8l5:\xc3\xa9t\xc3\xa9eee\
                     4:name1:n12:piece lengthi16e6:pieces20:xxxxxxxxxxxxxxxxxxxxe";
        let meta = MetaInfo::from_bytes(&[b"d4:info".as_slice(), info, b"e"].concat()).unwrap();
        let paths = FilePaths::new(&meta);
        assert_eq!(
            paths.url("http://h/", 0).as_deref(),
            Some("http://h/n/%C3%A9t%C3%A9")
        );
    }

    #[test]
    fn without_info_bytes_the_sanitized_paths_are_used() {
        let meta = MetaInfo::for_test("n", 16, &[("a b/c", 3, false)]);
        assert!(meta.info_bytes.is_empty());
        assert_eq!(
            FilePaths::new(&meta).url("http://h", 0).as_deref(),
            Some("http://h/n/a%20b/c")
        );
    }

    #[test]
    fn fuzz_entry_point_survives_odd_input() {
        fuzz_file_paths("http://h/", b"d5:filesle4:name0:e", true, 3);
        fuzz_file_paths("", b"garbage", false, 1);
        fuzz_file_paths("http#://h/a.iso?", b"d4:name1:ae", false, 1);
        fuzz_file_paths(" x ", &info_with_paths(b"..", &[&[b"a"]]), true, 2);
    }
}
