//! Routes and responses: which request gets which status, headers and body.

use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use log::error;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use crate::http::body::ResponseBody;
use crate::http::mime;
use crate::http::range::{self, RangeOutcome};
use crate::http::server::{FileInfo, FileSource};

/// Where a request path leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// `/`: the list of files.
    Index,
    /// `/files/<index>[/<anything>]`.
    File(usize),
    /// Anything else.
    NotFound,
}

/// Maps a request path to a [`Route`].
fn route(path: &str) -> Route {
    if path == "/" {
        return Route::Index;
    }
    let Some(rest) = path.strip_prefix("/files/") else {
        return Route::NotFound;
    };
    let index = rest.split_once('/').map_or(rest, |(index, _)| index);
    if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return Route::NotFound;
    }
    index.parse().map_or(Route::NotFound, Route::File)
}

/// Answers one request. Never fails: every problem is a status code.
pub(super) fn handle(
    req: &Request<Incoming>,
    source: &dyn FileSource,
    shutdown: &CancellationToken,
) -> Response<ResponseBody> {
    let route = route(req.uri().path());
    if route == Route::NotFound {
        return status_page(StatusCode::NOT_FOUND);
    }
    let Some(head) = is_head(req.method()) else {
        return method_not_allowed();
    };
    match route {
        Route::Index => index(source, wants_json(req.uri().query()), head),
        Route::File(i) => file(source, i, req.headers(), head, shutdown),
        Route::NotFound => status_page(StatusCode::NOT_FOUND),
    }
}

/// The response to a request for file `index` of `source` made through
/// another server's route (the daemon's `/stream/<hash>/<index>`): `GET` and
/// `HEAD` as `/files/<index>`, 405 for other methods.
pub fn file_response(
    method: &Method,
    headers: &HeaderMap,
    source: &dyn FileSource,
    index: usize,
    shutdown: &CancellationToken,
) -> Response<ResponseBody> {
    match is_head(method) {
        Some(head) => file(source, index, headers, head, shutdown),
        None => method_not_allowed(),
    }
}

/// Whether `method` is `HEAD` (true) or `GET` (false); `None` for any
/// other, which the server does not serve.
fn is_head(method: &Method) -> Option<bool> {
    match *method {
        Method::GET => Some(false),
        Method::HEAD => Some(true),
        _ => None,
    }
}

/// 405, naming the methods served.
fn method_not_allowed() -> Response<ResponseBody> {
    let mut response = status_page(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    response
}

/// Whether the query string holds a `json` parameter.
fn wants_json(query: Option<&str>) -> bool {
    query.is_some_and(|q| {
        q.split('&')
            .any(|param| param.split_once('=').map_or(param, |(name, _)| name) == "json")
    })
}

/// The response to `GET|HEAD /files/<index>`.
fn file(
    source: &dyn FileSource,
    index: usize,
    headers: &HeaderMap,
    head: bool,
    shutdown: &CancellationToken,
) -> Response<ResponseBody> {
    let Some(info) = source.files().into_iter().nth(index) else {
        return status_page(StatusCode::NOT_FOUND);
    };
    let len = info.length;
    let outcome = requested_range(headers, head, len);
    let mut response = Response::new(ResponseBody::empty());
    let h = response.headers_mut();
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let Some((start, body_len)) = range_status(&mut response, outcome, len) else {
        return response;
    };
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(mime::content_type(&info.path)),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body_len));
    if head || body_len == 0 {
        return response;
    }
    let Some(reader) = source.open(index) else {
        return status_page(StatusCode::NOT_FOUND);
    };
    let label = format!("file {index} ({})", info.path);
    *response.body_mut() = ResponseBody::file(
        reader,
        start,
        body_len,
        label,
        shutdown.clone().cancelled_owned(),
    );
    response
}

/// Which bytes of a file of `len` bytes the request asks for.
fn requested_range(headers: &HeaderMap, head: bool, len: u64) -> RangeOutcome {
    // Range handling is defined for GET only (RFC 9110 §14.2). We send no validators
    // (ETag, Last-Modified), so an If-Range can never match: the whole file (§13.1.5).
    if head || headers.contains_key(header::IF_RANGE) {
        return RangeOutcome::Full;
    }
    let mut ranges = headers.get_all(header::RANGE).iter();
    match (ranges.next(), ranges.next()) {
        (Some(value), None) => value
            .to_str()
            .map_or(RangeOutcome::Full, |v| range::parse_range(v, len)),
        // None, or several Range fields: not a valid ranges-specifier.
        _ => RangeOutcome::Full,
    }
}

/// Sets the status and `Content-Range` of a file response for `outcome`; returns where
/// the body starts and how long it is, or `None` for a 416 (no body).
fn range_status(
    response: &mut Response<ResponseBody>,
    outcome: RangeOutcome,
    len: u64,
) -> Option<(u64, u64)> {
    match outcome {
        RangeOutcome::Unsatisfiable => {
            *response.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
            insert_string(
                response.headers_mut(),
                header::CONTENT_RANGE,
                range::unsatisfied_range(len),
            );
            None
        }
        RangeOutcome::Full => Some((0, len)),
        RangeOutcome::Partial { start, end } => {
            *response.status_mut() = StatusCode::PARTIAL_CONTENT;
            insert_string(
                response.headers_mut(),
                header::CONTENT_RANGE,
                range::content_range(start, end, len),
            );
            Some((start, outcome.body_len(len)))
        }
    }
}

/// Inserts a header whose value we formatted from numbers (always valid).
fn insert_string(headers: &mut HeaderMap, name: header::HeaderName, value: String) {
    if let Ok(value) = HeaderValue::try_from(value) {
        headers.insert(name, value);
    }
}

/// Characters left as they are in a path segment: RFC 3986 unreserved.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The link to file `index`: `/files/<index>/<path, each segment percent-encoded>`.
///
/// Empty, `.` and `..` segments are left out: browsers would resolve them away.
pub fn file_url(index: usize, path: &str) -> String {
    let mut url = format!("/files/{index}");
    for segment in path.split('/') {
        if segment.is_empty() || segment == "." || segment == ".." {
            continue;
        }
        url.push('/');
        url.extend(utf8_percent_encode(segment, SEGMENT));
    }
    url
}

/// One file in the JSON listing.
#[derive(Serialize)]
struct ListingEntry<'a> {
    index: usize,
    path: &'a str,
    length: u64,
    url: String,
    content_type: &'static str,
}

/// The JSON listing.
#[derive(Serialize)]
struct Listing<'a> {
    files: Vec<ListingEntry<'a>>,
}

/// The response to `GET|HEAD /`.
fn index(source: &dyn FileSource, json: bool, head: bool) -> Response<ResponseBody> {
    let files = source.files();
    let (body, content_type) = if json {
        let listing = Listing {
            files: files
                .iter()
                .enumerate()
                .map(|(index, f)| ListingEntry {
                    index,
                    path: &f.path,
                    length: f.length,
                    url: file_url(index, &f.path),
                    content_type: mime::content_type(&f.path),
                })
                .collect(),
        };
        match serde_json::to_vec(&listing) {
            Ok(body) => (body, "application/json"),
            Err(e) => {
                error!("HTTP file listing: {e}");
                return status_page(StatusCode::INTERNAL_SERVER_ERROR);
            }
        }
    } else {
        (index_html(&files).into_bytes(), "text/html; charset=utf-8")
    };
    let mut response = Response::new(ResponseBody::empty());
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    if !head {
        *response.body_mut() = ResponseBody::bytes(body);
    }
    response
}

/// The HTML list of files.
fn index_html(files: &[FileInfo]) -> String {
    let mut html = String::from(
        "<!DOCTYPE html>\n<html>\n<head><meta charset=\"utf-8\"><title>Files</title></head>\n\
         <body>\n<h1>Files</h1>\n<ul>\n",
    );
    for (index, f) in files.iter().enumerate() {
        html.push_str(&format!(
            "<li><a href=\"{}\">{}</a> ({} bytes)</li>\n",
            escape_html(&file_url(index, &f.path)),
            escape_html(&f.path),
            f.length
        ));
    }
    html.push_str("</ul>\n</body>\n</html>\n");
    html
}

/// Escapes text for HTML content and double-quoted attributes.
fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A short plain-text response with `status`.
fn status_page(status: StatusCode) -> Response<ResponseBody> {
    let text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut response = Response::new(ResponseBody::bytes(text.into_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/"), Route::Index);
        assert_eq!(route("/files/0"), Route::File(0));
        assert_eq!(route("/files/12/a/b.mp4"), Route::File(12));
        assert_eq!(route("/files/3/"), Route::File(3));
        assert_eq!(route("/files/"), Route::NotFound);
        assert_eq!(route("/files//x"), Route::NotFound);
        assert_eq!(route("/files/1x/y"), Route::NotFound);
        assert_eq!(route("/file/1"), Route::NotFound);
        assert_eq!(route(""), Route::NotFound);
    }

    #[test]
    fn json_query() {
        assert!(wants_json(Some("json")));
        assert!(wants_json(Some("a=1&json=1")));
        assert!(!wants_json(Some("jsonx")));
        assert!(!wants_json(None));
    }

    #[test]
    fn file_urls() {
        assert_eq!(file_url(0, "a.mp4"), "/files/0/a.mp4");
        assert_eq!(file_url(1, "dir/a b#?.mkv"), "/files/1/dir/a%20b%23%3F.mkv");
        assert_eq!(file_url(2, "../x//./y"), "/files/2/x/y");
        assert_eq!(file_url(3, ""), "/files/3");
    }

    #[test]
    fn html_escaping() {
        assert_eq!(
            escape_html("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
