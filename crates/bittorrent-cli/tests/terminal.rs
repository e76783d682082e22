//! The progress display on a real terminal: the CLI runs in a tmux pane and
//! the test reads the screen with `tmux capture-pane`, frame after frame.
//!
//! The torrent has one tracker, on 127.0.0.1 where nothing listens, and the
//! DHT is off: nothing leaves the machine and no peer ever comes, which is
//! what a newcomer without network sees. Run it in a loopback-only namespace
//! all the same (`unshare --net`), like the interop tests.
//!
//! Needs tmux (scripts/install-test-deps installs it); without it the test is
//! skipped, or fails under `BT_INTEROP_REQUIRED=1`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const CLI: &str = env!("CARGO_BIN_EXE_bittorrent-cli");
const NAME: &str = "terminal-test.bin";
/// How long a frame may take to show what is expected.
const WAIT: Duration = Duration::from_secs(20);

/// A private tmux server (its own socket, in the test's temporary directory)
/// holding one pane; killed on drop.
struct Tmux {
    socket: PathBuf,
}

impl Tmux {
    /// Starts the shell command `script` in a detached `width`×`height`
    /// pane.
    fn start(dir: &Path, script: &str, width: u16, height: u16) -> Self {
        let tmux = Self {
            socket: dir.join("tmux.socket"),
        };
        let (w, h) = (width.to_string(), height.to_string());
        let size = ["-x", w.as_str(), "-y", h.as_str()];
        let mut args = vec!["-f", "/dev/null", "new-session", "-d"];
        args.extend_from_slice(&size);
        // One argument: tmux hands it to the shell, as typed.
        args.push(script);
        tmux.run(&args);
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        let out = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// The screen as the user sees it, trailing blank lines left out.
    fn frame(&self) -> Vec<String> {
        let out = self.run(&["capture-pane", "-p"]);
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines: Vec<String> = text.lines().map(|l| l.trim_end().to_string()).collect();
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        lines
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .arg("-S")
            .arg(&self.socket)
            .arg("kill-server")
            .output();
    }
}

fn have_tmux() -> bool {
    let found = Command::new("tmux").arg("-V").output().is_ok();
    let required = std::env::var("BT_INTEROP_REQUIRED").is_ok_and(|v| v == "1");
    assert!(
        found || !required,
        "tmux is missing (BT_INTEROP_REQUIRED=1)"
    );
    if !found {
        eprintln!("skipping: tmux is missing (scripts/install-test-deps installs it)");
    }
    found
}

/// A URL on 127.0.0.1 where nothing listens.
fn dead_tracker() -> String {
    let dead = TcpListener::bind("127.0.0.1:0").expect("bind");
    format!("http://{}/announce", dead.local_addr().expect("addr"))
}

/// A .torrent of a 64 MiB file whose only tracker is `announce`. No data
/// exists for it: the pieces' hashes are made up.
fn write_torrent(path: &Path, announce: &str) {
    let pieces: Vec<u8> = (0..64 * 20).map(|i| (i * 7 % 251) as u8).collect();
    let mut out = Vec::new();
    out.extend_from_slice(format!("d8:announce{}:{announce}4:info", announce.len()).as_bytes());
    out.extend_from_slice(format!("d6:lengthi{}e", 64u64 << 20).as_bytes());
    out.extend_from_slice(format!("4:name{}:{NAME}", NAME.len()).as_bytes());
    out.extend_from_slice(format!("12:piece lengthi{}e", 1u64 << 20).as_bytes());
    out.extend_from_slice(format!("6:pieces{}:", pieces.len()).as_bytes());
    out.extend_from_slice(&pieces);
    out.extend_from_slice(b"ee");
    std::fs::write(path, out).expect("write the torrent");
}

/// Polls frames until one satisfies `done`; returns every frame seen.
fn frames_until(tmux: &Tmux, what: &str, done: impl Fn(&[String]) -> bool) -> Vec<Vec<String>> {
    let start = Instant::now();
    let mut frames = Vec::new();
    loop {
        let frame = tmux.frame();
        let finished = done(&frame);
        frames.push(frame);
        if finished {
            return frames;
        }
        assert!(
            start.elapsed() < WAIT,
            "no frame with {what} within {WAIT:?}; last frame:\n{}",
            frames.last().map(|f| f.join("\n")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The shell printed the CLI's exit status (`exit N`, on a line of its own).
fn exited(frame: &[String]) -> bool {
    frame.iter().any(|l| l.starts_with("exit "))
}

fn has(frame: &[String], needle: &str) -> bool {
    frame.iter().any(|l| l.contains(needle))
}

/// The invariant of every frame: the torrent's bar (the line that starts
/// with its name) is drawn once, below every log line — a log line written
/// through the bars, or a redraw one line off, leaves a torn copy above.
fn check_not_torn(frame: &[String]) {
    let shown = |f: &[String]| f.join("\n");
    let bars: Vec<usize> = (0..frame.len())
        .filter(|&i| frame[i].starts_with(NAME))
        .collect();
    assert!(bars.len() <= 1, "the bar is drawn twice:\n{}", shown(frame));
    if let Some(&bar) = bars.first() {
        let below = &frame[bar..];
        assert!(
            !below.iter().any(|l| l.starts_with('[')),
            "a log line below the bar:\n{}",
            shown(frame)
        );
    }
    assert!(
        !has(frame, "100%"),
        "100% with nothing downloaded:\n{}",
        shown(frame)
    );
}

#[test]
fn the_progress_display_on_a_terminal() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let tracker = dead_tracker();
    let torrent = dir.path().join("test.torrent");
    write_torrent(&torrent, &tracker);
    let out = dir.path().join("out");
    let (torrent, out) = (torrent.to_str().unwrap(), out.to_str().unwrap());
    // As from a shell: the CLI, then its exit status on a line of its own
    // (the shell stays, so the screen stays).
    let script = format!(
        "env -u RUST_LOG '{CLI}' '{torrent}' -o '{out}' --no-dht --no-port-mapping --bind 127.0.0.1 -p 0; \
         echo \"exit $?\"; sleep 600"
    );
    let tmux = Tmux::start(dir.path(), &script, 120, 30);

    let short = tracker.trim_end_matches("/announce");
    let failing = format!("tracker {short}: failing: connection refused");
    let status = "peers: 0 connected, 0 known | DHT off | trackers: 0 of 1 ok";
    let frames = frames_until(&tmux, "the tracker failing", |f| {
        has(f, &failing) && has(f, status) && has(f, "ETA unknown")
    });
    for frame in &frames {
        check_not_torn(frame);
    }
    let last = frames.last().unwrap();
    let bar = last.iter().find(|l| l.starts_with(NAME)).unwrap();
    assert!(
        bar.contains("  0% ") && bar.contains("0 B/s ETA unknown"),
        "{bar}"
    );
    // The engine's warning, printed above the bar, whole.
    let warning = format!("announce to {tracker} failed: connection refused");
    assert!(
        last.iter()
            .any(|l| l.starts_with("[WARN") && l.ends_with(&warning)),
        "no whole warning line in:\n{}",
        last.join("\n")
    );

    tmux.run(&["send-keys", "C-c"]);
    let frames = frames_until(&tmux, "the exit", exited);
    for frame in &frames {
        check_not_torn(frame);
    }
    let mut last = frames.last().unwrap().clone();
    let shown = last.join("\n");
    assert_eq!(last.pop().as_deref(), Some("exit 1"), "{shown}");
    assert!(!has(&last, "ERROR"), "an error was logged:\n{shown}");
    assert!(
        last.iter()
            .any(|l| l == "stopping (Ctrl-C again to exit at once)"),
        "{shown}"
    );
    // The last line is the exit message alone, right below the bar.
    let n = last.len();
    assert!(n >= 2, "{shown}");
    assert_eq!(
        last[n - 1],
        format!("error: stopped with 1 torrent(s) incomplete: {NAME}"),
        "{shown}"
    );
    assert!(last[n - 2].starts_with(NAME), "{shown}");
    assert!(!has(&last, "^C"), "{shown}");
    // The warning is still there, above: no redraw started a line too high.
    assert!(
        last.iter()
            .any(|l| l.starts_with("[WARN") && l.ends_with(&warning)),
        "{shown}"
    );
    eprintln!("the last frame:\n{shown}");
}

#[test]
fn a_magnet_shows_its_trackers_while_the_metadata_is_fetched() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let tracker = dead_tracker();
    let encoded: String = tracker
        .bytes()
        .map(|b| match b {
            b':' | b'/' => format!("%{b:02X}"),
            _ => char::from(b).to_string(),
        })
        .collect();
    let magnet = format!(
        "magnet:?xt=urn:btih:{}&dn=magnet-test&tr={encoded}",
        "ab".repeat(20)
    );
    let out = dir.path().join("out");
    let script = format!(
        "env -u RUST_LOG '{CLI}' '{magnet}' -o '{}' --no-dht --no-port-mapping --bind 127.0.0.1 -p 0; \
         echo \"exit $?\"; sleep 600",
        out.display()
    );
    let tmux = Tmux::start(dir.path(), &script, 120, 30);
    let short = tracker.trim_end_matches("/announce");
    let failing = format!("tracker {short}: failing: connection refused");
    let frames = frames_until(&tmux, "the magnet's tracker failing", |f| has(f, &failing));
    let last = frames.last().unwrap();
    let shown = last.join("\n");
    assert!(
        last.iter().any(|l| l.starts_with("magnet-test")
            && l.ends_with("fetching the torrent's metadata from peers")),
        "{shown}"
    );
    assert!(
        has(
            last,
            "peers: 0 connected, 0 known | DHT off | trackers: 0 of 1 ok"
        ),
        "{shown}"
    );
    tmux.run(&["send-keys", "C-c"]);
    let frames = frames_until(&tmux, "the exit", exited);
    let last = frames.last().unwrap();
    assert!(!has(last, "ERROR"), "{}", last.join("\n"));
}
