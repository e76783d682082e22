//! Progress display: bars on a terminal, plain periodic lines otherwise.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bittorrent::prelude::*;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often plain (non-terminal) progress lines are printed per torrent.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);

/// Shows each torrent's progress.
pub struct Progress {
    mode: Mode,
    torrents: HashMap<InfoHash, Entry>,
}

enum Mode {
    Quiet,
    Bars(MultiProgress),
    Lines,
}

struct Entry {
    name: String,
    bar: Option<ProgressBar>,
    last_line: Option<Instant>,
}

impl Progress {
    /// Bars when stderr is a terminal, lines otherwise, nothing if `quiet`.
    pub fn new(quiet: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bars(MultiProgress::with_draw_target(ProgressDrawTarget::stderr()))
        } else {
            Mode::Lines
        };
        Self {
            mode,
            torrents: HashMap::new(),
        }
    }

    /// Registers a torrent (its size becomes known from its first stats).
    pub fn add(&mut self, info_hash: InfoHash, name: &str) {
        let bar = match &self.mode {
            Mode::Bars(multi) => {
                let bar = multi.add(ProgressBar::new(0));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:20!} [{bar:30}] {percent:>3}% {binary_bytes_per_sec:>12} \
                         ETA {eta:>4} {msg}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
                );
                bar.set_prefix(name.to_owned());
                Some(bar)
            }
            _ => None,
        };
        self.torrents.insert(
            info_hash,
            Entry {
                name: name.to_owned(),
                bar,
                last_line: None,
            },
        );
    }

    /// The display name of a torrent.
    pub fn name(&self, info_hash: &InfoHash) -> String {
        self.torrents
            .get(info_hash)
            .map_or_else(|| info_hash.to_hex(), |e| e.name.clone())
    }

    /// Updates the display from a session event.
    pub fn on_event(&mut self, event: &Event) {
        let lines = matches!(self.mode, Mode::Lines);
        match event {
            Event::Stats { info_hash, stats } => {
                let Some(entry) = self.torrents.get_mut(info_hash) else {
                    return;
                };
                if let Some(bar) = &entry.bar {
                    // Of the selected files only.
                    bar.set_length(stats.bytes_wanted);
                    bar.set_position(stats.bytes_wanted - stats.bytes_left.min(stats.bytes_wanted));
                    bar.set_message(format!("{} peers", stats.peers));
                } else if lines {
                    let now = Instant::now();
                    if entry
                        .last_line
                        .is_none_or(|t| now.duration_since(t) >= PLAIN_INTERVAL)
                    {
                        entry.last_line = Some(now);
                        eprintln!("{}", plain_line(&entry.name, stats));
                    }
                }
            }
            Event::TorrentComplete { info_hash } => {
                let Some(entry) = self.torrents.get_mut(info_hash) else {
                    return;
                };
                if let Some(bar) = &entry.bar {
                    bar.set_position(bar.length().unwrap_or(0));
                    bar.finish_with_message("done");
                } else if lines {
                    eprintln!("{}: complete", entry.name);
                }
            }
            Event::MetadataReceived { info_hash, name } => {
                if let Some(entry) = self.torrents.get_mut(info_hash) {
                    entry.name = name.clone();
                    if let Some(bar) = &entry.bar {
                        bar.set_prefix(name.clone());
                    }
                }
            }
            Event::TrackerError { url, message, .. } if lines => {
                eprintln!("tracker {url}: {message}");
            }
            _ => {}
        }
    }

    /// Leaves the bars on screen.
    pub fn finish(&self) {
        for entry in self.torrents.values() {
            if let Some(bar) = &entry.bar {
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

fn plain_line(name: &str, stats: &bittorrent::torrent::TorrentStats) -> String {
    // Of the selected files only.
    let done = stats.bytes_wanted - stats.bytes_left.min(stats.bytes_wanted);
    let percent = if stats.bytes_wanted == 0 {
        100.0
    } else {
        done as f64 * 100.0 / stats.bytes_wanted as f64
    };
    let rate = stats.download_rate;
    let eta = if rate > 0.0 {
        format!("{:.0}s", stats.bytes_left as f64 / rate)
    } else {
        "-".into()
    };
    format!(
        "{name}: {percent:5.1}% {:>8.2} MiB/s ETA {eta} peers {}",
        rate / (1024.0 * 1024.0),
        stats.peers
    )
}
