//! The text of the progress display: rates, ETAs and where peers come from
//! (trackers, the DHT), so that "0 peers" comes with its reason. Pure.

use std::time::{Duration, Instant};

use bittorrent::torrent::{TorrentState, TorrentStats, WebSeedState};
use bittorrent::torrent::{TrackerState, TrackerStatus};
use indicatif::BinaryBytes;

/// Below this download rate (bytes per second) the ETA is unknown.
const MIN_RATE: f64 = 1.0;
/// Tracker lines shown per torrent; the rest are counted.
pub const MAX_TRACKER_LINES: usize = 3;

/// A duration as a person reads it: `45s`, `5m 12s`, `2h 03m`, `3d 04h`.
pub fn duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// Time left at `rate` bytes per second: `unknown` while nothing arrives
/// (a download that has stalled has no end in sight, not an end at 0s).
pub fn eta(bytes_left: u64, rate: f64) -> String {
    if bytes_left == 0 {
        "0s".into()
    } else if rate.is_nan() || rate < MIN_RATE {
        "unknown".into()
    } else {
        duration(Duration::from_secs_f64((bytes_left as f64 / rate).min(1e9)))
    }
}

/// Bytes per second: `1.50 MiB/s`.
pub fn rate(bytes_per_second: f64) -> String {
    format!("{}/s", BinaryBytes(bytes_per_second.max(0.0) as u64))
}

/// The session's DHT as the display sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dht {
    /// `--no-dht`, or the session runs none.
    Off,
    /// Running, with this many nodes in its routing table.
    Nodes {
        /// Nodes in the routing table.
        nodes: usize,
        /// Queries or lookups are under way.
        busy: bool,
        /// It had nothing to start from: no bootstrap router resolved and
        /// no saved node.
        nothing_to_start_from: bool,
    },
}

impl Dht {
    fn text(self) -> String {
        match self {
            Dht::Off => "DHT off".into(),
            Dht::Nodes {
                nodes: 0,
                nothing_to_start_from: true,
                ..
            } => "DHT: no nodes (no bootstrap router could be resolved)".into(),
            Dht::Nodes {
                nodes: 0,
                busy: true,
                ..
            } => "DHT: bootstrapping".into(),
            Dht::Nodes { nodes: 0, .. } => "DHT: no nodes (none answered)".into(),
            Dht::Nodes { nodes: 1, .. } => "DHT: 1 node".into(),
            Dht::Nodes { nodes, .. } => format!("DHT: {nodes} nodes"),
        }
    }
}

/// The first status line of a torrent: its peers and their sources.
pub fn peers_line(stats: &TorrentStats, dht: Dht, trackers_off: bool) -> String {
    let trackers = if trackers_off {
        "trackers off".to_string()
    } else if stats.trackers.is_empty() && stats.state == TorrentState::Checking {
        // The announce loop starts once the check tells what is left.
        "trackers: after the check".to_string()
    } else if stats.trackers.is_empty() {
        "no tracker".to_string()
    } else {
        let ok = stats
            .trackers
            .iter()
            .filter(|t| matches!(t.state, TrackerState::Working { .. }))
            .count();
        let n = stats.trackers.len();
        format!("trackers: {ok} of {n} ok")
    };
    format!(
        "peers: {} connected, {} known | {} | {trackers}{}",
        stats.peers,
        stats.known_peers,
        dht.text(),
        web_seeds(stats)
    )
}

/// The web seeds' part of the peers line: how many fetch, how much came
/// from them, how many were given up (nothing without web seeds).
fn web_seeds(stats: &TorrentStats) -> String {
    if stats.web_seeds.is_empty() {
        return String::new();
    }
    let dropped = stats
        .web_seeds
        .iter()
        .filter(|w| w.state == WebSeedState::Dropped)
        .count();
    let dropped = match dropped {
        0 => String::new(),
        n => format!(", {n} dropped"),
    };
    format!(
        " | web seeds: {} of {} active, {}{dropped}",
        stats.web_seeds_active,
        stats.web_seeds.len(),
        BinaryBytes(stats.web_seed_downloaded)
    )
}

/// One line per tracker (at most [`MAX_TRACKER_LINES`], then a count of the
/// others), each with its state and, when failing, why and when it is tried
/// again.
pub fn tracker_lines(trackers: &[TrackerStatus], now: Instant) -> Vec<String> {
    let mut lines: Vec<String> = trackers
        .iter()
        .take(MAX_TRACKER_LINES)
        .map(|t| format!("tracker {}: {}", short_url(&t.url), tracker_state(t, now)))
        .collect();
    if trackers.len() > MAX_TRACKER_LINES {
        lines.push(format!(
            "and {} more trackers",
            trackers.len() - MAX_TRACKER_LINES
        ));
    }
    lines
}

/// A tracker's line without its retry time and failure count, to tell when
/// its state changed (plain output prints only changes).
pub fn tracker_change(t: &TrackerStatus) -> String {
    let state = match &t.state {
        TrackerState::Failing { reason, .. } => format!("failing: {reason}"),
        other => tracker_state(
            &TrackerStatus {
                state: other.clone(),
                ..t.clone()
            },
            Instant::now(),
        ),
    };
    format!("tracker {}: {state}", short_url(&t.url))
}

fn tracker_state(t: &TrackerStatus, now: Instant) -> String {
    match &t.state {
        TrackerState::NotContacted => "not contacted (another tracker answers first)".into(),
        TrackerState::Contacting => "contacting".into(),
        TrackerState::Working { peers } => format!("ok, {peers} peers"),
        TrackerState::Failing { reason, failures } => {
            let times = if *failures > 1 {
                format!(" ({failures} times)")
            } else {
                String::new()
            };
            let retry = t
                .next_announce
                .map(|at| format!(", retry in {}", duration(at.saturating_duration_since(now))))
                .unwrap_or_default();
            format!("failing: {reason}{times}{retry}")
        }
    }
}

/// An announce URL without its path: `http://host:port`, `udp://host:port`.
fn short_url(url: &str) -> &str {
    let rest = url.find("://").map_or(0, |i| i + 3);
    match url[rest..].find('/') {
        Some(i) => &url[..rest + i],
        None => url,
    }
}

/// Cuts `line` to `width` characters (a line wider than the terminal wraps,
/// and the bars below it would be drawn one line off).
pub fn fit(line: &str, width: usize) -> String {
    if line.chars().count() <= width {
        line.to_string()
    } else {
        let mut cut: String = line.chars().take(width.saturating_sub(1)).collect();
        cut.push('…');
        cut
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bittorrent::torrent::WebSeedStatus;

    fn tracker(url: &str, state: TrackerState, next: Option<Instant>) -> TrackerStatus {
        TrackerStatus {
            url: url.into(),
            tier: 0,
            state,
            next_announce: next,
        }
    }

    #[test]
    fn eta_is_unknown_while_nothing_arrives() {
        assert_eq!(eta(1000, 0.0), "unknown");
        assert_eq!(eta(1000, 0.5), "unknown");
        assert_eq!(eta(1000, f64::NAN), "unknown");
        assert_eq!(eta(0, 0.0), "0s");
        assert_eq!(eta(1000, 100.0), "10s");
        assert_eq!(eta(3_000_000, 1000.0), "50m 00s");
        assert_eq!(eta(u64::MAX, 1.0), "11574d 01h");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(Duration::from_secs(59)), "59s");
        assert_eq!(duration(Duration::from_secs(312)), "5m 12s");
        assert_eq!(duration(Duration::from_secs(2 * 3600 + 180)), "2h 03m");
        assert_eq!(
            duration(Duration::from_secs(3 * 86400 + 4 * 3600)),
            "3d 04h"
        );
    }

    #[test]
    fn rates_are_binary_units() {
        assert_eq!(rate(0.0), "0 B/s");
        assert_eq!(rate(1.5 * 1024.0 * 1024.0), "1.50 MiB/s");
    }

    #[test]
    fn the_peers_line_names_every_source() {
        let now = Instant::now();
        let stats = TorrentStats {
            peers: 2,
            known_peers: 40,
            trackers: vec![
                tracker(
                    "http://a:1/announce",
                    TrackerState::Working { peers: 40 },
                    None,
                ),
                tracker("udp://b:2", TrackerState::Contacting, None),
            ],
            ..TorrentStats::default()
        };
        let dht = Dht::Nodes {
            nodes: 120,
            busy: false,
            nothing_to_start_from: false,
        };
        assert_eq!(
            peers_line(&stats, dht, false),
            "peers: 2 connected, 40 known | DHT: 120 nodes | trackers: 1 of 2 ok"
        );
        assert_eq!(
            peers_line(&TorrentStats::default(), Dht::Off, true),
            "peers: 0 connected, 0 known | DHT off | trackers off"
        );
        let checking = TorrentStats {
            state: TorrentState::Checking,
            ..TorrentStats::default()
        };
        assert!(peers_line(&checking, Dht::Off, false).ends_with("trackers: after the check"));
        let downloading = TorrentStats {
            state: TorrentState::Downloading,
            ..TorrentStats::default()
        };
        assert!(peers_line(&downloading, Dht::Off, false).ends_with("no tracker"));
        let lines = tracker_lines(&stats.trackers, now);
        assert_eq!(
            lines,
            [
                "tracker http://a:1: ok, 40 peers",
                "tracker udp://b:2: contacting"
            ]
        );
    }

    #[test]
    fn the_peers_line_counts_web_seeds_when_there_are_some() {
        let seed = |state| WebSeedStatus {
            url: "http://w/f".into(),
            state,
            downloaded: 0,
            failures: 0,
            last_error: None,
        };
        let stats = TorrentStats {
            web_seed_downloaded: 3 * 1024 * 1024,
            web_seeds_active: 1,
            web_seeds: vec![
                seed(WebSeedState::Fetching),
                seed(WebSeedState::Dropped),
                seed(WebSeedState::BackingOff),
            ],
            ..TorrentStats::default()
        };
        assert_eq!(
            peers_line(&stats, Dht::Off, true),
            "peers: 0 connected, 0 known | DHT off | trackers off \
             | web seeds: 1 of 3 active, 3.00 MiB, 1 dropped"
        );
        let stats = TorrentStats {
            web_seeds: vec![seed(WebSeedState::Idle)],
            ..TorrentStats::default()
        };
        assert!(peers_line(&stats, Dht::Off, true).ends_with("| web seeds: 0 of 1 active, 0 B"));
    }

    #[test]
    fn an_empty_dht_says_why() {
        let no_router = Dht::Nodes {
            nodes: 0,
            busy: false,
            nothing_to_start_from: true,
        };
        assert!(no_router.text().contains("no bootstrap router"));
        let busy = Dht::Nodes {
            nodes: 0,
            busy: true,
            nothing_to_start_from: false,
        };
        assert_eq!(busy.text(), "DHT: bootstrapping");
    }

    #[test]
    fn a_failing_tracker_says_why_and_when_it_is_retried() {
        let now = Instant::now();
        let failing = TrackerState::Failing {
            reason: "connection refused".into(),
            failures: 3,
        };
        let t = tracker(
            "http://127.0.0.1:9/announce",
            failing,
            Some(now + Duration::from_secs(14)),
        );
        let mut many = vec![t.clone(); 5];
        many[1] = tracker("http://x/a", TrackerState::NotContacted, None);
        let lines = tracker_lines(&many, now);
        assert_eq!(
            lines[0],
            "tracker http://127.0.0.1:9: failing: connection refused (3 times), retry in 14s"
        );
        assert!(lines[1].ends_with("not contacted (another tracker answers first)"));
        assert_eq!(lines.len(), MAX_TRACKER_LINES + 1);
        assert_eq!(lines[MAX_TRACKER_LINES], "and 2 more trackers");
    }

    #[test]
    fn long_lines_are_cut_to_the_terminal() {
        assert_eq!(fit("abcdef", 10), "abcdef");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("", 0), "");
    }
}
