//! A hostile HTTP server on 127.0.0.1 (std::net and threads), for the web seed failures
//! nginx does not do on its own (see [`BadMode`]): 404 for everything, half a body then a
//! close, a trickle, the wrong range, the whole file for a range, a redirect loop. It counts
//! the requests it got. Dropping it closes its listener; its connections end at their next
//! request or read timeout.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use percent_encoding::percent_decode_str;

/// How the server answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BadMode {
    /// `404 Not Found` to every request, on a kept-alive connection.
    NotFound,
    /// The file under the root (with `Range`: `206` and the right `Content-Range` and
    /// `Content-Length`), but only the first half of the body, then it closes the connection.
    CloseMidResponse,
    /// The file under the root as [`BadMode::CloseMidResponse`] has it, but the whole body, at
    /// [`TRICKLE_RATE`] bytes/s.
    Trickle,
    /// `206` for a range one byte off the one asked for (further, or before at the end of the
    /// file; `Content-Range` says so, `Content-Length` is the length asked for), with those
    /// bytes; for a range of the whole file, the right bytes but a file length one too long.
    WrongRange,
    /// `200` and the whole file, whatever the `Range` asked for.
    IgnoresRange,
    /// `302` to the same URL, for ever.
    RedirectLoop,
}

/// How fast a [`BadMode::Trickle`] server sends a body: 20 KiB/s, above the web seed task's
/// too-slow limit (8 KiB/s), so only the torrent's taking over its run keeps it from holding
/// the download's end.
pub const TRICKLE_RATE: u64 = 20 * 1024;

/// The server; stops accepting on drop.
pub struct BadHttp {
    /// Its port on 127.0.0.1.
    pub port: u16,
    requests: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl BadHttp {
    /// Starts the server answering as `mode` says, with the files under `root`.
    pub fn start(mode: BadMode, root: &Path) -> BadHttp {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        let requests = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let server = Server {
            mode,
            root: root.to_path_buf(),
            requests: requests.clone(),
        };
        let stopping = stop.clone();
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let server = server.clone();
                thread::spawn(move || server.serve(conn));
            }
        });
        BadHttp {
            port,
            requests,
            stop,
        }
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Requests received so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for BadHttp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop up so it sees the flag and drops the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

#[derive(Clone)]
struct Server {
    mode: BadMode,
    root: PathBuf,
    requests: Arc<AtomicU64>,
}

/// A request's target (as sent), its path (percent-decoded) and its `Range` header.
struct Request {
    target: String,
    path: String,
    range: Option<String>,
}

impl Server {
    /// Answers the requests of one connection until it closes (or this server closes it).
    fn serve(&self, mut conn: TcpStream) {
        let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
        let mut buf = Vec::new();
        while let Some(request) = read_request(&mut conn, &mut buf) {
            self.requests.fetch_add(1, Ordering::SeqCst);
            let keep_going = match self.mode {
                BadMode::NotFound => not_found(&mut conn),
                BadMode::RedirectLoop => {
                    let head = format!(
                        "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\n\r\n",
                        request.target
                    );
                    conn.write_all(head.as_bytes()).is_ok()
                }
                _ => self.answer(&mut conn, &request),
            };
            if !keep_going {
                break;
            }
        }
        let _ = conn.shutdown(Shutdown::Both);
    }

    /// Answers with the file as the mode says; returns whether the connection goes on.
    fn answer(&self, conn: &mut TcpStream, request: &Request) -> bool {
        let Some(data) = self.file(&request.path) else {
            return not_found(conn);
        };
        let total = data.len() as u64;
        let range = match self.mode {
            BadMode::IgnoresRange => None,
            _ => request.range.as_deref().map(|r| parse_range(r, total)),
        };
        // The file length Content-Range gives.
        let mut length = total;
        let (status, start, end) = match range {
            None => ("200 OK", 0, total),
            Some(Some((start, end))) if self.mode == BadMode::WrongRange => {
                let (start, end) = match (start, end) {
                    (s, e) if e < total => (s + 1, e + 1),
                    (s, e) if s > 0 => (s - 1, e - 1),
                    (s, e) => {
                        length += 1;
                        (s, e)
                    }
                };
                ("206 Partial Content", start, end)
            }
            Some(Some((start, end))) => ("206 Partial Content", start, end),
            Some(None) => {
                let head = format!(
                    "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{total}\r\n\
                     Content-Length: 0\r\n\r\n"
                );
                return conn.write_all(head.as_bytes()).is_ok();
            }
        };
        let mut head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nAccept-Ranges: bytes\r\n",
            end - start
        );
        if status.starts_with("206") {
            head += &format!("Content-Range: bytes {start}-{}/{length}\r\n", end - 1);
        }
        head += "\r\n";
        if conn.write_all(head.as_bytes()).is_err() {
            return false;
        }
        let body = &data[start as usize..end as usize];
        if self.mode == BadMode::CloseMidResponse {
            let _ = conn.write_all(&body[..body.len() / 2]);
            return false;
        }
        if self.mode != BadMode::Trickle {
            return conn.write_all(body).is_ok();
        }
        // 256 bytes every 50 ms.
        let chunk = (TRICKLE_RATE / 20) as usize;
        for part in body.chunks(chunk) {
            if conn.write_all(part).is_err() {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
        true
    }

    /// The bytes of the file at the URL path `path` under the root, if there is one.
    fn file(&self, path: &str) -> Option<Vec<u8>> {
        let rel = Path::new(path.trim_start_matches('/'));
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            return None;
        }
        std::fs::read(self.root.join(rel)).ok()
    }
}

/// Answers 404 with a small body, keeping the connection; false if it broke.
fn not_found(conn: &mut TcpStream) -> bool {
    let answer = "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\n\
                  not found\n";
    conn.write_all(answer.as_bytes()).is_ok()
}

/// Reads one request's head (a body is never expected) from `conn`, keeping bytes that
/// follow it in `buf`; None when the connection ends or sends something that is not HTTP.
fn read_request(conn: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Request> {
    let end = loop {
        if let Some(pos) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    buf.drain(..end);
    let mut lines = head.lines();
    let target = lines.next()?.split(' ').nth(1)?;
    let target = target.split('?').next().unwrap_or(target);
    let path = percent_decode_str(target).decode_utf8().ok()?.into_owned();
    let target = target.to_string();
    let range = lines.find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.eq_ignore_ascii_case("range")
            .then(|| value.trim().to_string())
    });
    Some(Request {
        target,
        path,
        range,
    })
}

/// `bytes=a-b` or `bytes=a-` as the half-open range `a..b+1` of a file of `total` bytes.
fn parse_range(header: &str, total: u64) -> Option<(u64, u64)> {
    let (first, last) = header.strip_prefix("bytes=")?.split_once('-')?;
    let start: u64 = first.trim().parse().ok()?;
    let end = match last.trim() {
        "" => total,
        last => last.parse::<u64>().ok()?.saturating_add(1).min(total),
    };
    (start < end).then_some((start, end))
}
