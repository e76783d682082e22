//! Progress display: on a terminal, a bar per torrent with the status of its
//! peer sources below it; plain periodic lines otherwise.
//!
//! Everything written to stderr while the bars are shown goes through
//! [`Progress::println`] or the logger (see `logging`), which clear the bars
//! first and draw them again below the new line, so nothing tears them.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use bittorrent::prelude::*;
use bittorrent::torrent::TorrentStats;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::status::{self, Dht};

/// How often plain (non-terminal) progress lines are printed per torrent.
const PLAIN_INTERVAL: Duration = Duration::from_secs(5);
/// Width of the torrent's name before its bar.
const NAME_WIDTH: usize = 30;

/// Shows each torrent's progress.
pub struct Progress {
    mode: Mode,
    torrents: HashMap<InfoHash, Entry>,
    dht: Dht,
    trackers_off: bool,
}

enum Mode {
    Quiet,
    Bars(MultiProgress),
    Lines,
}

struct Entry {
    name: String,
    /// The bar, once its size is known; a line of text before.
    bar: Option<ProgressBar>,
    /// The status lines under the bar.
    status: Option<ProgressBar>,
    /// The bar shows a fraction (not a waiting message).
    measuring: bool,
    last_line: Option<Instant>,
    /// Plain output: each tracker's last printed state.
    tracker_lines: HashMap<String, String>,
    /// When its last stats arrived.
    last_stats: Option<Instant>,
}

/// The draw target of the bars: stderr when it is a terminal and the display
/// is wanted, else hidden (then the logger writes straight through).
pub fn bars(quiet: bool) -> MultiProgress {
    if !quiet && std::io::stderr().is_terminal() {
        MultiProgress::with_draw_target(ProgressDrawTarget::stderr())
    } else {
        MultiProgress::with_draw_target(ProgressDrawTarget::hidden())
    }
}

fn waiting_style() -> ProgressStyle {
    ProgressStyle::with_template(&format!("{{prefix:{NAME_WIDTH}!}} {{msg}}"))
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template(&format!(
        "{{prefix:{NAME_WIDTH}!}} [{{bar:30}}] {{percent:>3}}% {{msg}}"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

fn text_style() -> ProgressStyle {
    ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_spinner())
}

impl Progress {
    /// Bars on `bars` when stderr is a terminal, lines otherwise, nothing if
    /// `quiet`. `trackers_off`: the user turned trackers off (`--no-tracker`).
    pub fn new(quiet: bool, bars: MultiProgress, dht: Dht, trackers_off: bool) -> Self {
        let mode = if quiet {
            Mode::Quiet
        } else if bars.is_hidden() {
            Mode::Lines
        } else {
            Mode::Bars(bars)
        };
        Self {
            mode,
            torrents: HashMap::new(),
            dht,
            trackers_off,
        }
    }

    /// Registers a torrent (its size becomes known from its first stats).
    pub fn add(&mut self, info_hash: InfoHash, name: &str) {
        let (bar, status) = match &self.mode {
            Mode::Bars(multi) => {
                let bar = multi.add(ProgressBar::new(0).with_style(waiting_style()));
                bar.set_prefix(name.to_owned());
                bar.set_message("starting");
                let status = multi.add(ProgressBar::new(0).with_style(text_style()));
                (Some(bar), Some(status))
            }
            _ => (None, None),
        };
        let entry = Entry {
            name: name.to_owned(),
            bar,
            status,
            measuring: false,
            last_line: None,
            tracker_lines: HashMap::new(),
            last_stats: None,
        };
        self.torrents.insert(info_hash, entry);
    }

    /// The display name of a torrent.
    pub fn name(&self, info_hash: &InfoHash) -> String {
        self.torrents
            .get(info_hash)
            .map_or_else(|| info_hash.to_hex(), |e| e.name.clone())
    }

    /// The session's DHT, shown in every torrent's status.
    pub fn set_dht(&mut self, dht: Dht) {
        self.dht = dht;
    }

    /// Torrents whose stats have not arrived for `age` (a magnet's torrent
    /// sends none until its metadata is known): ask for them.
    pub fn stale(&self, age: Duration) -> Vec<InfoHash> {
        if matches!(self.mode, Mode::Quiet) {
            return Vec::new();
        }
        let now = Instant::now();
        self.torrents
            .iter()
            .filter(|(_, e)| e.last_stats.is_none_or(|t| now.duration_since(t) >= age))
            .map(|(h, _)| *h)
            .collect()
    }

    /// Prints `line` on stderr above the bars.
    pub fn println(&self, line: &str) {
        match &self.mode {
            Mode::Bars(multi) => {
                if multi.println(line).is_err() {
                    eprintln!("{line}");
                }
            }
            _ => eprintln!("{line}"),
        }
    }

    /// Updates the display from a session event.
    pub fn on_event(&mut self, event: &Event) {
        let lines = matches!(self.mode, Mode::Lines);
        match event {
            Event::Stats { info_hash, stats } => {
                let (dht, trackers_off) = (self.dht, self.trackers_off);
                let Some(entry) = self.torrents.get_mut(info_hash) else {
                    return;
                };
                entry.last_stats = Some(Instant::now());
                if entry.bar.is_some() {
                    entry.show(stats, dht, trackers_off);
                } else if lines {
                    for t in &stats.trackers {
                        let line = status::tracker_change(t);
                        if entry.tracker_lines.get(&t.url) != Some(&line) {
                            eprintln!("{}: {line}", entry.name);
                            entry.tracker_lines.insert(t.url.clone(), line);
                        }
                    }
                    let now = Instant::now();
                    if entry
                        .last_line
                        .is_none_or(|t| now.duration_since(t) >= PLAIN_INTERVAL)
                    {
                        entry.last_line = Some(now);
                        let peers = status::peers_line(stats, dht, trackers_off);
                        eprintln!("{}, {peers}", plain_line(&entry.name, stats));
                    }
                }
            }
            Event::TorrentComplete { info_hash } => {
                let Some(entry) = self.torrents.get_mut(info_hash) else {
                    return;
                };
                if let Some(bar) = &entry.bar {
                    bar.set_style(bar_style());
                    entry.measuring = true;
                    bar.set_length(bar.length().unwrap_or(0).max(1));
                    bar.set_position(bar.length().unwrap_or(1));
                    bar.set_message("done");
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
            _ => {}
        }
    }

    /// Clears the status lines and leaves the bars on screen, the cursor on
    /// a line of its own below them.
    pub fn finish(&self) {
        for entry in self.torrents.values() {
            if let Some(status) = &entry.status {
                status.finish_and_clear();
            }
            if let Some(bar) = &entry.bar {
                if !entry.measuring {
                    // Not "checking" or "fetching" any more.
                    bar.set_message("stopped");
                }
                if !bar.is_finished() {
                    bar.abandon();
                }
            }
        }
    }
}

impl Entry {
    /// Draws `stats`: the bar (or what the torrent waits for) and the status
    /// of its peer sources.
    fn show(&mut self, stats: &TorrentStats, dht: Dht, trackers_off: bool) {
        let (Some(bar), Some(status)) = (&self.bar, &self.status) else {
            return;
        };
        let waiting = match stats.state {
            TorrentState::Checking => Some("checking the data already on disk"),
            TorrentState::FetchingMetadata => Some("fetching the torrent's metadata from peers"),
            _ if stats.bytes_wanted == 0 => Some("nothing to download"),
            _ => None,
        };
        match waiting {
            // Until the size is known the bar would read 100 % (0 of 0).
            Some(message) if !self.measuring => bar.set_message(message),
            Some(_) => {}
            None => {
                if !self.measuring {
                    self.measuring = true;
                    bar.set_style(bar_style());
                }
                bar.set_length(stats.bytes_wanted);
                bar.set_position(stats.bytes_wanted - stats.bytes_left.min(stats.bytes_wanted));
                bar.set_message(rate_and_eta(stats));
            }
        }
        let mut lines = vec![status::peers_line(stats, dht, trackers_off)];
        lines.extend(status::tracker_lines(&stats.trackers, Instant::now()));
        let width = terminal_width();
        let text: Vec<String> = lines
            .iter()
            .map(|l| status::fit(&format!("  {l}"), width))
            .collect();
        status.set_message(text.join("\n"));
    }
}

/// `1.50 MiB/s ETA 5m 12s`, or the upload rate once complete.
fn rate_and_eta(stats: &TorrentStats) -> String {
    if stats.complete {
        format!("done, up {}", status::rate(stats.upload_rate))
    } else {
        format!(
            "{:>12} ETA {}",
            status::rate(stats.download_rate),
            status::eta(stats.bytes_left, stats.download_rate)
        )
    }
}

/// Columns of the terminal on stderr, less one so no line wraps.
fn terminal_width() -> usize {
    let (_, cols) = console::Term::stderr().size();
    usize::from(cols).saturating_sub(1).max(20)
}

fn plain_line(name: &str, stats: &TorrentStats) -> String {
    // Of the selected files only.
    let done = stats.bytes_wanted - stats.bytes_left.min(stats.bytes_wanted);
    let percent = if stats.bytes_wanted == 0 {
        0.0
    } else {
        done as f64 * 100.0 / stats.bytes_wanted as f64
    };
    let rate = stats.download_rate;
    format!(
        "{name}: {percent:5.1}% {:>8.2} MiB/s ETA {}",
        rate / (1024.0 * 1024.0),
        status::eta(stats.bytes_left, rate)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_show_an_unknown_eta_at_zero_rate() {
        let stats = TorrentStats {
            bytes_wanted: 1000,
            bytes_left: 1000,
            ..TorrentStats::default()
        };
        let line = plain_line("x", &stats);
        assert!(line.contains("  0.0%"), "{line}");
        assert!(line.ends_with("ETA unknown"), "{line}");
    }

    #[test]
    fn the_bar_message_has_the_rate_and_eta() {
        let stats = TorrentStats {
            bytes_wanted: 1000,
            bytes_left: 1000,
            ..TorrentStats::default()
        };
        assert!(rate_and_eta(&stats).ends_with("0 B/s ETA unknown"));
    }
}
