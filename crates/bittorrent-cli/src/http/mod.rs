//! Serving a torrent's files over HTTP/1.1, for players and browsers that stream.
//!
//! # Layout
//! - [`range`]: pure RFC 9110 §14 `Range` handling (which bytes to send, 200/206/416).
//! - [`mime`]: `Content-Type` from a file name's extension.
//! - [`server`]: the hyper server over a [`FileSource`], so it can be tested without a torrent:
//!   accepting, the connection cap, each connection's lifetime and shutdown.
//! - `handler`: routes and responses (status, headers, the index page).
//! - `body`: the response body, a file streamed chunk by chunk.
//! - `stalled`: the client stream that drops a client that stops reading.
//!
//! # Routes
//! - `GET /`: an HTML list of the files, each linked as `/files/<index>/<percent-encoded path>`.
//!   `GET /?json` (a `json` query parameter, any value) gives the same list as JSON:
//!   `{"files":[{"index":0,"path":"a/b.mp4","length":123,"url":"/files/0/a/b.mp4",
//!   "content_type":"video/mp4"}]}`.
//! - `GET|HEAD /files/<index>` and `/files/<index>/<anything>`: the file, with
//!   `Accept-Ranges: bytes`; a single satisfiable byte range (or several that coalesce into
//!   one) gives a 206, an unsatisfiable one a 416, anything else a 200 of the whole file.
//!   Only the index selects the file; the rest of the path is a name for the browser.
//! - Other methods on these paths: 405 with `Allow: GET, HEAD`; other paths: 404.
//!
//! The server binds whatever listener it is given; the CLI gives it a loopback one by default.

mod body;
mod handler;
pub mod mime;
pub mod range;
pub mod server;
mod stalled;

pub use handler::file_response;
pub use server::{serve, FileInfo, FileReader, FileSource};
