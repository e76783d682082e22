//! nginx (Debian's) as a web seed: a static file server on 127.0.0.1 of a directory, with
//! range requests, an optional rate limit per connection, and an access log the tests read.
//!
//! Each server has its own config file, pid file, logs and temp paths in a directory of the
//! test, runs in the foreground as one process (`daemon off; master_process off`), and is
//! killed on drop. Nothing of the system's nginx (its config, logs, service) is used.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::harness::net::{accepts, free_port};
use crate::harness::proc::Proc;
use crate::harness::tools::which;
use crate::harness::wait::{poll, POLL, START_TIMEOUT};

/// The nginx binary: on PATH, else Debian's /usr/sbin/nginx (a user's PATH may lack sbin).
pub fn nginx_binary() -> Option<PathBuf> {
    which("nginx").or_else(|| {
        let sbin = PathBuf::from("/usr/sbin/nginx");
        sbin.is_file().then_some(sbin)
    })
}

/// One line of the access log: `<status> <body bytes> <connection> <seconds> "<range>"
/// "<method> <uri> <proto>"`.
#[derive(Clone, Debug, PartialEq)]
pub struct Access {
    /// The request line, e.g. `GET /pub/a.bin HTTP/1.1`.
    pub request: String,
    pub status: u16,
    /// Body bytes sent (fewer than asked if the client went away).
    pub bytes: u64,
    /// The request's `Range` header, or "-".
    pub range: String,
    /// nginx's serial number of the connection it came on.
    pub connection: u64,
    /// Seconds from its first byte read to its last byte sent.
    pub seconds: f64,
}

/// An nginx serving `root` on 127.0.0.1; killed on drop.
pub struct Nginx {
    proc: Proc,
    /// Its port on 127.0.0.1.
    pub port: u16,
    access_log: PathBuf,
}

impl Nginx {
    /// Starts nginx named `name` (its files in `log_dir/<name>-nginx/`) serving the files
    /// under `root`, each request capped at `limit_rate` bytes/s if given; returns once it
    /// accepts connections. nginx's cap is coarse: by the whole second, and a second's worth
    /// ahead (it allows rate × (whole seconds since the request began + 1) bytes), so a
    /// request of at most `limit_rate` bytes goes out at once, a larger one takes about
    /// size / rate - 1 seconds.
    pub fn start(name: &str, root: &Path, log_dir: &Path, limit_rate: Option<u64>) -> Nginx {
        let binary = nginx_binary().expect("nginx installed (see Tool::Nginx)");
        let dir = log_dir.join(format!("{name}-nginx"));
        fs::create_dir_all(&dir).expect("create nginx dir");
        let conf = dir.join("nginx.conf");
        // The free port may be taken by another test before nginx binds it: try another.
        for attempt in 1.. {
            let port = free_port();
            fs::write(&conf, config(&dir, root, port, limit_rate)).expect("write nginx.conf");
            let mut cmd = Command::new(&binary);
            // -e: the error log before the config is read (else the compiled-in /var/log path).
            cmd.arg("-e")
                .arg("stderr")
                .arg("-p")
                .arg(&dir)
                .arg("-c")
                .arg(&conf);
            let mut proc = Proc::spawn(name, cmd, log_dir);
            let up = poll(START_TIMEOUT, POLL, || {
                if accepts(port) {
                    return Some(true);
                }
                proc.try_wait().map(|_| false)
            });
            match up {
                Some(true) => {
                    return Nginx {
                        proc,
                        port,
                        access_log: dir.join("access.log"),
                    }
                }
                Some(false) if attempt < 3 && proc.output().contains("Address already in use") => {
                    continue
                }
                Some(false) => panic!("{}", proc.failure("exited at start-up")),
                None => panic!(
                    "{}",
                    proc.failure(&format!("does not listen on port {port}"))
                ),
            }
        }
        unreachable!("the loop returns or panics")
    }

    /// `http://127.0.0.1:<port><path>` (`path` starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// The requests it has logged so far (nginx logs a request when its answer is over).
    pub fn accesses(&self) -> Vec<Access> {
        let text = fs::read_to_string(&self.access_log).unwrap_or_default();
        text.lines()
            .map(|line| {
                parse_access(line).unwrap_or_else(|| panic!("bad access log line {line:?}"))
            })
            .collect()
    }

    /// Body bytes it sent so far, over every logged request.
    pub fn bytes_sent(&self) -> u64 {
        self.accesses().iter().map(|a| a.bytes).sum()
    }

    /// The access log's lines, for a failure message.
    pub fn access_log(&self) -> String {
        fs::read_to_string(&self.access_log).unwrap_or_default()
    }

    pub fn proc(&mut self) -> &mut Proc {
        &mut self.proc
    }
}

/// The whole config: one process in the foreground, every path under `dir`, errors on
/// stderr (the [`Proc`]'s log), one static server of `root` on 127.0.0.1:`port`.
fn config(dir: &Path, root: &Path, port: u16, limit_rate: Option<u64>) -> String {
    let d = dir.display();
    let limit = limit_rate
        .map(|rate| format!("limit_rate {rate};"))
        .unwrap_or_default();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {d}/nginx.pid;
error_log stderr info;
events {{ worker_connections 256; }}
http {{
    log_format webseed '$status $body_bytes_sent $connection $request_time "$http_range" "$request"';
    access_log {d}/access.log webseed;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    types {{ }}
    default_type application/octet-stream;
    sendfile on;
    keepalive_requests 10000;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        {limit}
    }}
}}
"#,
        root = root.display(),
    )
}

/// Parses a line of the `webseed` log format (nginx escapes `"` in the fields as `\x22`).
fn parse_access(line: &str) -> Option<Access> {
    let mut parts = line.splitn(5, ' ');
    let status = parts.next()?.parse().ok()?;
    let bytes = parts.next()?.parse().ok()?;
    let connection = parts.next()?.parse().ok()?;
    let seconds = parts.next()?.parse().ok()?;
    let (range, request) = parts.next()?.split_once("\" \"")?;
    Some(Access {
        request: request.strip_suffix('"')?.to_string(),
        status,
        bytes,
        range: range.strip_prefix('"')?.to_string(),
        connection,
        seconds,
    })
}
