//! The HTTP/1.1 server: routes, responses and the streaming file body.
//!
//! Each connection is a task that hyper drives; a file body is read from a [`FileReader`]
//! in chunks of [`CHUNK_SIZE`] bytes as the client takes them, so nothing buffers a whole
//! file and a reader that waits (for pieces not yet downloaded) only delays its own response.
//!
//! # Shutdown
//! When the token is cancelled the server stops accepting, idle keep-alive connections close,
//! file bodies in flight end at once (the client sees a short body and can resume with a
//! `Range`), and [`serve`] returns once every connection task is done; a connection that
//! cannot even flush within [`SHUTDOWN_GRACE`] is dropped.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, error, info, trace};
use tokio::io::{AsyncRead, AsyncSeek};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinError, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::http::handler::handle;
use crate::http::stalled::Stalled;

/// How many bytes a file body reads and sends at a time.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// How long a connection may take to send its request head before it is closed.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a connection may take to close after shutdown before it is dropped.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Connections served at once by default; more are answered `503` and closed.
pub const MAX_CONNECTIONS: usize = 64;

/// How long a client may leave our response unread (its socket full) by default
/// before its connection is dropped. (A client that sends no request is dropped after
/// [`HEADER_READ_TIMEOUT`].)
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The answer to a connection beyond the cap.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\
Retry-After: 1\r\nConnection: close\r\n\r\n";

/// What one server allows its clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served at once; more are answered `503` and closed.
    pub max_connections: usize,
    /// How long a client may leave our response unread before it is dropped.
    pub idle_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: MAX_CONNECTIONS,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// How many times in a row accepting may fail (with a doubling pause from 10 ms)
/// before [`serve`] gives up.
const MAX_ACCEPT_FAILURES: u32 = 10;

/// One file the server offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileInfo {
    /// The path inside the torrent: relative, `/`-separated.
    pub path: String,
    /// The size in bytes.
    pub length: u64,
}

/// What the server serves: a list of files, each readable at any offset (the torrent
/// implementation will wait for pieces that are not downloaded yet).
pub trait FileSource: Send + Sync + 'static {
    /// The files, in index order; the index in a URL is a position in this list.
    fn files(&self) -> Vec<FileInfo>;

    /// A new reader over file `index`, positioned anywhere (the server seeks before reading),
    /// or `None` if there is no such file (a 404).
    fn open(&self, index: usize) -> Option<Box<dyn FileReader>>;
}

/// A readable, seekable file: what [`FileSource::open`] returns.
pub trait FileReader: AsyncRead + AsyncSeek + Send + Unpin {}

impl<T: AsyncRead + AsyncSeek + Send + Unpin> FileReader for T {}

/// Serves `source` over HTTP/1.1 on `listener` until `shutdown` is cancelled.
///
/// Returns after shutdown once every connection has ended (see the module documentation).
///
/// # Errors
/// The listener's error if accepting fails [`MAX_ACCEPT_FAILURES`] times in a row (for
/// example the process is out of file descriptors for that long); a failed connection
/// does not count.
pub async fn serve(
    listener: TcpListener,
    source: Arc<dyn FileSource>,
    shutdown: CancellationToken,
) -> io::Result<()> {
    serve_with(listener, source, shutdown, Limits::default()).await
}

/// [`serve`] with other [`Limits`].
///
/// # Errors
/// As [`serve`].
pub async fn serve_with(
    listener: TcpListener,
    source: Arc<dyn FileSource>,
    shutdown: CancellationToken,
    limits: Limits,
) -> io::Result<()> {
    match listener.local_addr() {
        Ok(addr) => info!("HTTP server listening on http://{addr}/"),
        Err(e) => info!("HTTP server listening (address unknown: {e})"),
    }
    let mut connections = Connections {
        source,
        limits,
        slots: Arc::new(Semaphore::new(limits.max_connections)),
        token: shutdown.child_token(),
        tasks: JoinSet::new(),
    };
    let mut failures = 0u32;
    let result = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            // Reaps finished connections; `None` (no task left) is excluded by the guard.
            joined = connections.tasks.join_next(), if !connections.tasks.is_empty() => {
                if let Some(joined) = joined {
                    log_join(joined);
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    failures = 0;
                    connections.admit(stream, peer);
                }
                Err(e) => {
                    if let Some(result) = accept_failed(e, &mut failures, &shutdown).await {
                        break result;
                    }
                }
            },
        }
    };
    drop(listener);
    connections.close().await;
    info!("HTTP server stopped");
    result
}

/// The server's connections: their slots, their tasks and what they share.
struct Connections {
    /// What every connection serves.
    source: Arc<dyn FileSource>,
    /// What every connection is allowed.
    limits: Limits,
    /// One permit per connection being served.
    slots: Arc<Semaphore>,
    /// The connections' own token: cancelled by `shutdown`, or by [`serve_with`] when it
    /// returns early, without cancelling the caller's token.
    token: CancellationToken,
    /// One task per connection.
    tasks: JoinSet<()>,
}

impl Connections {
    /// Starts serving an accepted connection, or answers it `503` if every slot is taken.
    fn admit(&mut self, stream: TcpStream, peer: SocketAddr) {
        let Ok(slot) = Arc::clone(&self.slots).try_acquire_owned() else {
            debug!(
                "{peer}: HTTP busy ({} connections)",
                self.limits.max_connections
            );
            // Never waits: a fresh socket's send buffer takes these bytes.
            let _ = stream.try_write(BUSY);
            return;
        };
        let source = Arc::clone(&self.source);
        let token = self.token.child_token();
        let stream = Stalled::new(stream, self.limits.idle_timeout);
        self.tasks.spawn(async move {
            connection(stream, peer, source, token).await;
            drop(slot);
        });
    }

    /// Cancels every connection and waits until their tasks are done.
    async fn close(mut self) {
        self.token.cancel();
        while let Some(joined) = self.tasks.join_next().await {
            log_join(joined);
        }
    }
}

/// Logs a connection task that failed (panicked).
fn log_join(joined: Result<(), JoinError>) {
    if let Err(e) = joined {
        error!("HTTP connection task failed: {e}");
    }
}

/// Handles a failed accept: `Some(result)` when [`serve_with`] should return it, `None`
/// to go on accepting (after a pause that doubles with each failure in a row).
async fn accept_failed(
    e: io::Error,
    failures: &mut u32,
    shutdown: &CancellationToken,
) -> Option<io::Result<()>> {
    if is_connection_error(&e) {
        debug!("HTTP accept: {e}");
        return None;
    }
    *failures += 1;
    if *failures >= MAX_ACCEPT_FAILURES {
        error!("HTTP server stops: accept failed {failures} times: {e}");
        return Some(Err(e));
    }
    let pause = Duration::from_millis(10u64 << *failures);
    error!("HTTP accept failed (retrying in {pause:?}): {e}");
    tokio::select! {
        () = shutdown.cancelled() => Some(Ok(())),
        () = tokio::time::sleep(pause) => None,
    }
}

/// Errors of one incoming connection, not of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Drives one client connection until it closes or the server shuts down.
async fn connection(
    stream: Stalled<TcpStream>,
    peer: SocketAddr,
    source: Arc<dyn FileSource>,
    shutdown: CancellationToken,
) {
    debug!("{peer}: HTTP connection");
    let service = {
        let shutdown = shutdown.clone();
        service_fn(move |req: Request<Incoming>| {
            let source = Arc::clone(&source);
            let shutdown = shutdown.clone();
            async move {
                let method = req.method().clone();
                let uri = req.uri().clone();
                let response = handle(&req, source.as_ref(), &shutdown);
                trace!("{peer}: {method} {uri} -> {}", response.status());
                Ok::<_, Infallible>(response)
            }
        })
    };
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                Ok(result) => result,
                Err(_) => {
                    debug!("{peer}: HTTP connection dropped at shutdown");
                    return;
                }
            }
        }
    };
    match result {
        Ok(()) => debug!("{peer}: HTTP connection closed"),
        Err(e) => debug!("{peer}: HTTP connection ended: {e}"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    use std::future::Future;
    use std::io::{Cursor, SeekFrom};
    use std::pin::Pin;
    use std::sync::Mutex;
    use std::task::Waker;
    use std::task::{Context, Poll};

    use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadBuf};
    use tokio::sync::oneshot;
    use tokio::task::JoinHandle;

    /// Bounds every wait in these tests.
    const TIMEOUT: Duration = Duration::from_secs(10);

    type Headers = Vec<(String, String)>;

    type Opener = Box<dyn Fn() -> Box<dyn FileReader> + Send + Sync>;

    /// An in-memory source: each file has a name, a length and a way to open it.
    struct TestSource {
        files: Vec<(FileInfo, Opener)>,
    }

    impl FileSource for TestSource {
        fn files(&self) -> Vec<FileInfo> {
            self.files.iter().map(|(info, _)| info.clone()).collect()
        }

        fn open(&self, index: usize) -> Option<Box<dyn FileReader>> {
            self.files.get(index).map(|(_, open)| open())
        }
    }

    impl TestSource {
        fn new() -> Self {
            TestSource { files: Vec::new() }
        }

        fn with_bytes(self, path: &str, data: Vec<u8>) -> Self {
            let len = data.len() as u64;
            self.with_reader(path, len, move || Box::new(Cursor::new(data.clone())))
        }

        fn with_reader(
            mut self,
            path: &str,
            length: u64,
            open: impl Fn() -> Box<dyn FileReader> + Send + Sync + 'static,
        ) -> Self {
            let info = FileInfo {
                path: path.to_owned(),
                length,
            };
            self.files.push((info, Box::new(open)));
            self
        }
    }

    /// `len` bytes that differ from their neighbours, so a wrong offset shows.
    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    const MOVIE: &str = "movie.mp4";
    const NOTES: &str = "Sub Dir/notes & <café>.txt";

    /// The two-file source most tests use: a 10000-byte movie and a small text file.
    fn two_files() -> TestSource {
        TestSource::new()
            .with_bytes(MOVIE, pattern(10000))
            .with_bytes(NOTES, b"hello, notes\n".to_vec())
    }

    struct Server {
        addr: SocketAddr,
        shutdown: CancellationToken,
        task: JoinHandle<io::Result<()>>,
    }

    async fn start(source: TestSource) -> Server {
        start_with(source, Limits::default()).await
    }

    async fn start_with(source: TestSource, limits: Limits) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let source = Arc::new(source);
        let task = tokio::spawn(serve_with(listener, source, shutdown.clone(), limits));
        Server {
            addr,
            shutdown,
            task,
        }
    }

    impl Server {
        async fn stop(self) {
            self.shutdown.cancel();
            let result = tokio::time::timeout(TIMEOUT, self.task).await;
            result.unwrap().unwrap().unwrap();
        }
    }

    /// A parsed response.
    #[derive(Debug)]
    struct Reply {
        status: u16,
        headers: Headers,
        body: Vec<u8>,
    }

    impl Reply {
        fn header(&self, name: &str) -> Option<&str> {
            let mut found = self
                .headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(name));
            let value = found.next().map(|(_, v)| v.as_str());
            assert!(found.next().is_none(), "several {name} headers");
            value
        }
    }

    /// Splits a raw response into head and body, if the head is complete.
    fn parse_head(raw: &[u8]) -> Option<(u16, Headers, usize)> {
        let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&raw[..end]).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(parts.next(), Some("HTTP/1.1"), "{status_line}");
        let status = parts.next().unwrap().parse().unwrap();
        let headers = lines
            .map(|line| {
                let (name, value) = line.split_once(':').unwrap();
                (name.trim().to_owned(), value.trim().to_owned())
            })
            .collect();
        Some((status, headers, end + 4))
    }

    /// Opens a connection and sends `method path` with `extra` header lines and
    /// `Connection: close`.
    async fn send(addr: SocketAddr, method: &str, path: &str, extra: &[&str]) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\n");
        for line in extra {
            request.push_str(line);
            request.push_str("\r\n");
        }
        request.push_str("Connection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        stream
    }

    /// Reads until the server closes (a reset counts as a close).
    async fn read_all(mut stream: TcpStream) -> Vec<u8> {
        let mut raw = Vec::new();
        let read = async {
            let mut buf = [0u8; 16 * 1024];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => raw.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(TIMEOUT, read).await.unwrap();
        raw
    }

    /// Reads until the server closes and parses the response.
    async fn read_reply(stream: TcpStream) -> Reply {
        let raw = read_all(stream).await;
        let (status, headers, body_start) = parse_head(&raw).expect("a response head");
        Reply {
            status,
            headers,
            body: raw[body_start..].to_vec(),
        }
    }

    async fn request(addr: SocketAddr, method: &str, path: &str, extra: &[&str]) -> Reply {
        read_reply(send(addr, method, path, extra).await).await
    }

    async fn get_range(addr: SocketAddr, range: &str) -> Reply {
        let header = format!("Range: {range}");
        request(addr, "GET", "/files/0/movie.mp4", &[&header]).await
    }

    #[tokio::test]
    async fn get_full_file() {
        let server = start(two_files()).await;
        let reply = request(server.addr, "GET", "/files/0/movie.mp4", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, pattern(10000));
        assert_eq!(reply.header("content-length"), Some("10000"));
        assert_eq!(reply.header("content-type"), Some("video/mp4"));
        assert_eq!(reply.header("accept-ranges"), Some("bytes"));
        assert_eq!(reply.header("content-range"), None);

        // The name part of the path is decoration; the index alone picks the file.
        let reply = request(server.addr, "GET", "/files/1", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body, b"hello, notes\n");
        assert_eq!(
            reply.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        server.stop().await;
    }

    #[tokio::test]
    async fn rfc9110_range_forms() {
        let server = start(two_files()).await;
        let data = pattern(10000);
        for (range, start, end) in [
            ("bytes=0-499", 0, 499),
            ("bytes=500-999", 500, 999),
            ("bytes=-500", 9500, 9999),
            ("bytes=9500-", 9500, 9999),
            ("bytes=9000-99999", 9000, 9999),
            ("bytes=0-1,2-5", 0, 5),
        ] {
            let reply = get_range(server.addr, range).await;
            assert_eq!(reply.status, 206, "{range}");
            assert_eq!(reply.body, &data[start..=end], "{range}");
            let content_range = format!("bytes {start}-{end}/10000");
            assert_eq!(
                reply.header("content-range"),
                Some(&*content_range),
                "{range}"
            );
            let content_length = (end - start + 1).to_string();
            assert_eq!(
                reply.header("content-length"),
                Some(&*content_length),
                "{range}"
            );
            assert_eq!(reply.header("content-type"), Some("video/mp4"));
            assert_eq!(reply.header("accept-ranges"), Some("bytes"));
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn first_two_bytes() {
        let server = start(two_files()).await;
        let reply = get_range(server.addr, "bytes=0-1").await;
        assert_eq!(reply.status, 206);
        assert_eq!(reply.body, &pattern(10000)[..2]);
        assert_eq!(reply.body.len(), 2);
        assert_eq!(reply.header("content-length"), Some("2"));
        assert_eq!(reply.header("content-range"), Some("bytes 0-1/10000"));
        server.stop().await;
    }

    #[tokio::test]
    async fn ranges_that_are_ignored_give_the_whole_file() {
        let server = start(two_files()).await;
        // Disjoint ranges (no multipart), garbage, another unit.
        for range in ["bytes=0-0,-1", "bytes=5-2", "lines=1-2", "bytes=x-"] {
            let reply = get_range(server.addr, range).await;
            assert_eq!(reply.status, 200, "{range}");
            assert_eq!(reply.body, pattern(10000), "{range}");
            assert_eq!(reply.header("content-range"), None, "{range}");
        }
        // No validators are sent, so an If-Range never matches: 200.
        let reply = request(
            server.addr,
            "GET",
            "/files/0",
            &["Range: bytes=0-1", "If-Range: \"abc\""],
        )
        .await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), 10000);
        // Two Range fields: not a valid ranges-specifier.
        let reply = request(
            server.addr,
            "GET",
            "/files/0",
            &["Range: bytes=0-1", "Range: bytes=2-3"],
        )
        .await;
        assert_eq!(reply.status, 200);
        server.stop().await;
    }

    #[tokio::test]
    async fn unsatisfiable_range_is_416() {
        let server = start(two_files()).await;
        for range in ["bytes=999999-", "bytes=10000-", "bytes=-0"] {
            let reply = get_range(server.addr, range).await;
            assert_eq!(reply.status, 416, "{range}");
            assert_eq!(reply.header("content-range"), Some("bytes */10000"));
            assert!(reply.body.is_empty());
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn head_sends_headers_without_body() {
        let server = start(two_files()).await;
        let reply = request(server.addr, "HEAD", "/files/0/movie.mp4", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-length"), Some("10000"));
        assert_eq!(reply.header("content-type"), Some("video/mp4"));
        assert_eq!(reply.header("accept-ranges"), Some("bytes"));
        assert!(reply.body.is_empty());

        // Range is defined for GET only: HEAD ignores it.
        let reply = request(server.addr, "HEAD", "/files/0", &["Range: bytes=0-1"]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-length"), Some("10000"));
        assert!(reply.body.is_empty());

        let reply = request(server.addr, "HEAD", "/", &[]).await;
        assert_eq!(reply.status, 200);
        assert!(reply.header("content-length").is_some_and(|l| l != "0"));
        assert!(reply.body.is_empty());
        server.stop().await;
    }

    #[tokio::test]
    async fn unknown_paths_are_404() {
        let server = start(two_files()).await;
        for path in [
            "/nope",
            "/files",
            "/files/",
            "/files/2/x",
            "/files/abc",
            "/files/-1",
            "/files/+1",
            "/files/99999999999999999999999999/x",
            "/index.html",
        ] {
            let reply = request(server.addr, "GET", path, &[]).await;
            assert_eq!(reply.status, 404, "{path}");
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn other_methods_are_405() {
        let server = start(two_files()).await;
        for (method, path) in [
            ("POST", "/files/0/movie.mp4"),
            ("DELETE", "/"),
            ("PUT", "/files/1"),
        ] {
            let reply = request(server.addr, method, path, &[]).await;
            assert_eq!(reply.status, 405, "{method} {path}");
            assert_eq!(reply.header("allow"), Some("GET, HEAD"));
        }
        server.stop().await;
    }

    #[tokio::test]
    async fn index_lists_files_as_html() {
        let server = start(two_files()).await;
        let reply = request(server.addr, "GET", "/", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("content-type"),
            Some("text/html; charset=utf-8")
        );
        let html = String::from_utf8(reply.body).unwrap();
        assert!(html.contains("<a href=\"/files/0/movie.mp4\">movie.mp4</a> (10000 bytes)"));
        assert!(html.contains(
            "<a href=\"/files/1/Sub%20Dir/notes%20%26%20%3Ccaf%C3%A9%3E.txt\">\
             Sub Dir/notes &amp; &lt;café&gt;.txt</a> (13 bytes)"
        ));

        // The links work.
        let reply = request(server.addr, "GET", "/files/1/Sub%20Dir/notes", &[]).await;
        assert_eq!(reply.body, b"hello, notes\n");
        server.stop().await;
    }

    #[tokio::test]
    async fn index_lists_files_as_json() {
        let server = start(two_files()).await;
        let reply = request(server.addr, "GET", "/?json", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-type"), Some("application/json"));
        let listing: serde_json::Value = serde_json::from_slice(&reply.body).unwrap();
        let expected = serde_json::json!({"files": [
            {"index": 0, "path": MOVIE, "length": 10000, "url": "/files/0/movie.mp4",
             "content_type": "video/mp4"},
            {"index": 1, "path": NOTES, "length": 13,
             "url": "/files/1/Sub%20Dir/notes%20%26%20%3Ccaf%C3%A9%3E.txt",
             "content_type": "text/plain; charset=utf-8"},
        ]});
        assert_eq!(listing, expected);
        server.stop().await;
    }

    #[tokio::test]
    async fn empty_file() {
        let server = start(TestSource::new().with_bytes("empty.bin", Vec::new())).await;
        let reply = request(server.addr, "GET", "/files/0", &[]).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("content-length"), Some("0"));
        assert!(reply.body.is_empty());
        let reply = request(server.addr, "GET", "/files/0", &["Range: bytes=0-"]).await;
        assert_eq!(reply.status, 416);
        assert_eq!(reply.header("content-range"), Some("bytes */0"));
        server.stop().await;
    }

    #[tokio::test]
    async fn keep_alive_serves_several_requests() {
        let server = start(two_files()).await;
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        let requests = "GET /files/0 HTTP/1.1\r\nHost: x\r\nRange: bytes=0-1\r\n\r\n\
                        GET /files/1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        stream.write_all(requests.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        tokio::time::timeout(TIMEOUT, stream.read_to_end(&mut raw))
            .await
            .unwrap()
            .unwrap();
        let (status, _, body_start) = parse_head(&raw).unwrap();
        assert_eq!(status, 206);
        assert_eq!(&raw[body_start..body_start + 2], &pattern(2)[..]);
        let (status, _, second_start) = parse_head(&raw[body_start + 2..]).unwrap();
        assert_eq!(status, 200);
        assert_eq!(&raw[body_start + 2 + second_start..], b"hello, notes\n");
        server.stop().await;
    }

    /// How much of a [`GatedReader`]'s data may be read so far.
    #[derive(Default)]
    struct Gate {
        state: Mutex<GateState>,
    }

    #[derive(Default)]
    struct GateState {
        open_to: u64,
        wakers: Vec<Waker>,
    }

    impl Gate {
        fn open_to(&self, n: u64) {
            let wakers = {
                let mut state = self.state.lock().unwrap();
                state.open_to = n;
                std::mem::take(&mut state.wakers)
            };
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    /// A reader that returns `Pending` past what its gate allows (like a torrent file whose
    /// pieces are not downloaded yet), fails at `fail_at` once the gate is past it, and
    /// reports its drop.
    struct GatedReader {
        data: Arc<Vec<u8>>,
        pos: u64,
        gate: Arc<Gate>,
        fail_at: Option<u64>,
        _dropped: oneshot::Sender<()>,
    }

    impl AsyncRead for GatedReader {
        fn poll_read(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            let len = self.data.len() as u64;
            if self.pos >= len {
                return Poll::Ready(Ok(()));
            }
            let open_to = {
                let mut state = self.gate.state.lock().unwrap();
                if state.open_to <= self.pos {
                    state.wakers.push(cx.waker().clone());
                    return Poll::Pending;
                }
                state.open_to.min(len)
            };
            if self.fail_at.is_some_and(|at| self.pos >= at) {
                return Poll::Ready(Err(io::Error::other("disk on fire")));
            }
            let until = self.fail_at.map_or(open_to, |at| at.min(open_to));
            let n = (until - self.pos).min(buf.remaining() as u64) as usize;
            let pos = self.pos as usize;
            buf.put_slice(&self.data[pos..pos + n]);
            self.pos += n as u64;
            Poll::Ready(Ok(()))
        }
    }

    impl AsyncSeek for GatedReader {
        fn start_seek(mut self: Pin<&mut Self>, position: SeekFrom) -> io::Result<()> {
            match position {
                SeekFrom::Start(pos) => {
                    self.pos = pos;
                    Ok(())
                }
                _ => Err(io::Error::other("only SeekFrom::Start in tests")),
            }
        }

        fn poll_complete(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<u64>> {
            Poll::Ready(Ok(self.pos))
        }
    }

    /// A one-file source over a gated reader; the receiver resolves when the reader drops.
    fn gated_source(
        data: Arc<Vec<u8>>,
        gate: Arc<Gate>,
        fail_at: Option<u64>,
    ) -> (TestSource, oneshot::Receiver<()>) {
        let (tx, rx) = oneshot::channel();
        let tx = Mutex::new(Some(tx));
        let len = data.len() as u64;
        let source = TestSource::new().with_reader("slow.mkv", len, move || {
            let sender = tx.lock().unwrap().take().expect("opened once");
            Box::new(GatedReader {
                data: Arc::clone(&data),
                pos: 0,
                gate: Arc::clone(&gate),
                fail_at,
                _dropped: sender,
            })
        });
        (source, rx)
    }

    /// Reads from `stream` until `raw` holds at least `want` bytes (within [`TIMEOUT`]).
    async fn read_at_least(stream: &mut TcpStream, raw: &mut Vec<u8>, want: usize) {
        let read = async {
            let mut buf = [0u8; 16 * 1024];
            while raw.len() < want {
                let n = stream.read(&mut buf).await.unwrap();
                assert_ne!(n, 0, "closed after {} bytes", raw.len());
                raw.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(TIMEOUT, read)
            .await
            .expect("data in time");
    }

    /// Reads a response head from `stream`: its status, headers and the body bytes
    /// read along with it.
    async fn read_head(stream: &mut TcpStream) -> (u16, Headers, Vec<u8>) {
        let mut raw = Vec::new();
        loop {
            if let Some((status, headers, start)) = parse_head(&raw) {
                return (status, headers, raw.split_off(start));
            }
            let want = raw.len() + 1;
            read_at_least(stream, &mut raw, want).await;
        }
    }

    /// A future that must not complete: fails the test if it does within `wait`.
    async fn assert_pending(future: impl Future, wait: Duration) {
        assert!(tokio::time::timeout(wait, future).await.is_err());
    }

    #[tokio::test]
    async fn streams_before_the_data_is_all_available() {
        let data = Arc::new(pattern(1 << 20));
        let gate = Arc::new(Gate::default());
        let first = 3 * CHUNK_SIZE / 2;
        gate.open_to(first as u64);
        let (source, _dropped) = gated_source(Arc::clone(&data), Arc::clone(&gate), None);
        let server = start(source).await;

        let mut stream = send(server.addr, "GET", "/files/0", &[]).await;
        let (status, _, mut body) = read_head(&mut stream).await;
        assert_eq!(status, 200);
        // Everything that is available arrives while the rest is not.
        read_at_least(&mut stream, &mut body, first).await;
        assert_eq!(body, data[..first]);
        let mut byte = [0u8; 1];
        assert_pending(stream.read(&mut byte), Duration::from_millis(200)).await;

        gate.open_to(data.len() as u64);
        body.extend_from_slice(&read_all(stream).await);
        assert_eq!(body, *data);
        server.stop().await;
    }

    #[tokio::test]
    async fn client_disconnect_drops_the_reader() {
        let data = Arc::new(pattern(8 << 20));
        let gate = Arc::new(Gate::default());
        gate.open_to(CHUNK_SIZE as u64);
        let (source, dropped) = gated_source(Arc::clone(&data), Arc::clone(&gate), None);
        let server = start(source).await;

        let mut stream = send(server.addr, "GET", "/files/0", &[]).await;
        let mut raw = Vec::new();
        read_at_least(&mut stream, &mut raw, CHUNK_SIZE).await;
        drop(stream);
        // Whether hyper notices the close while waiting or on its next write, the
        // response ends and its reader with it.
        gate.open_to(data.len() as u64);
        let dropped = tokio::time::timeout(TIMEOUT, dropped).await;
        assert!(dropped.is_ok(), "the reader outlived its client");
        server.stop().await;
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_get_503_and_a_freed_slot_serves_again() {
        let limits = Limits {
            max_connections: 2,
            ..Limits::default()
        };
        let server = start_with(two_files(), limits).await;
        let first = TcpStream::connect(server.addr).await.unwrap();
        let _second = TcpStream::connect(server.addr).await.unwrap();
        let reply = request(server.addr, "GET", "/", &[]).await;
        assert_eq!(reply.status, 503);
        drop(first);
        // The slot is freed once the server notices the close.
        let served = async {
            loop {
                if request(server.addr, "GET", "/", &[]).await.status == 200 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(TIMEOUT, served)
            .await
            .expect("a slot frees up");
        server.stop().await;
    }

    #[tokio::test]
    async fn a_client_that_stops_reading_is_dropped() {
        let data = Arc::new(pattern(32 << 20));
        let gate = Arc::new(Gate::default());
        gate.open_to(data.len() as u64);
        let (source, dropped) = gated_source(Arc::clone(&data), gate, None);
        let limits = Limits {
            idle_timeout: Duration::from_millis(300),
            ..Limits::default()
        };
        let server = start_with(source, limits).await;
        // Asks for 32 MiB and reads none of it: the socket buffers fill up.
        let stream = send(server.addr, "GET", "/files/0", &[]).await;
        let dropped = tokio::time::timeout(TIMEOUT, dropped).await;
        assert!(dropped.is_ok(), "the stalled client's response lived on");
        drop(stream);
        server.stop().await;
    }

    #[tokio::test]
    async fn reader_error_ends_the_connection() {
        let data = Arc::new(pattern(1 << 20));
        let gate = Arc::new(Gate::default());
        let fail_at = 100_000;
        gate.open_to(fail_at);
        let (source, dropped) = gated_source(Arc::clone(&data), Arc::clone(&gate), Some(fail_at));
        let server = start(source).await;

        let mut stream = send(server.addr, "GET", "/files/0", &[]).await;
        let (status, headers, mut body) = read_head(&mut stream).await;
        assert_eq!(status, 200);
        assert!(headers.contains(&("content-length".to_owned(), "1048576".to_owned())));
        read_at_least(&mut stream, &mut body, fail_at as usize).await;
        // The next read fails: the connection closes with the body short, so the
        // client knows the response is incomplete.
        gate.open_to(data.len() as u64);
        body.extend_from_slice(&read_all(stream).await);
        assert_eq!(body, data[..fail_at as usize]);
        tokio::time::timeout(TIMEOUT, dropped).await.unwrap().ok();
        server.stop().await;
    }

    #[tokio::test]
    async fn shutdown_ends_a_waiting_response() {
        let data = Arc::new(pattern(1 << 20));
        let gate = Arc::new(Gate::default());
        gate.open_to(10);
        let (source, dropped) = gated_source(Arc::clone(&data), gate, None);
        let server = start(source).await;

        let mut stream = send(server.addr, "GET", "/files/0", &["Range: bytes=5-"]).await;
        let (status, _, mut body) = read_head(&mut stream).await;
        assert_eq!(status, 206);
        // An idle keep-alive connection too.
        let idle = TcpStream::connect(server.addr).await.unwrap();

        let addr = server.addr;
        server.stop().await;
        tokio::time::timeout(TIMEOUT, dropped).await.unwrap().ok();
        // The response ends short: only what was available went out.
        body.extend_from_slice(&read_all(stream).await);
        assert_eq!(body, data[5..10]);
        let mut rest = Vec::new();
        let mut idle = idle;
        let closed = tokio::time::timeout(TIMEOUT, idle.read_to_end(&mut rest)).await;
        assert!(closed.is_ok(), "idle connection left open");
        assert!(TcpStream::connect(addr).await.is_err(), "still accepting");
    }
}
