//! `/metrics`: the session's and each torrent's figures in the Prometheus
//! text format (0.0.4), rendered by the Prometheus project's Rust client
//! (`prometheus-client`: HELP/TYPE lines, label escaping) from a snapshot
//! taken per scrape. Per-torrent series carry `infohash` and `name` labels.

use prometheus_client::encoding::prometheus_text;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use bittorrent::session::SessionStats;
use bittorrent::tracker::TrackerState;

use crate::daemon::qbt::state::QbtState;
use crate::daemon::qbt::views::{display_name, state_of, TorrentInput};

/// The `Content-Type` of the answer.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Every state string, so each `bittorrent_torrents` series exists (at 0)
/// from the first scrape.
const STATES: [QbtState; 15] = [
    QbtState::Error,
    QbtState::Uploading,
    QbtState::StoppedUp,
    QbtState::QueuedUp,
    QbtState::StalledUp,
    QbtState::CheckingUp,
    QbtState::ForcedUp,
    QbtState::Downloading,
    QbtState::MetaDl,
    QbtState::ForcedMetaDl,
    QbtState::StoppedDl,
    QbtState::QueuedDl,
    QbtState::StalledDl,
    QbtState::CheckingDl,
    QbtState::ForcedDl,
];

/// Labels of a per-torrent series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TorrentLabels {
    infohash: String,
    name: String,
}

/// Labels of the torrents-by-state series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

type RateGauge = Gauge<f64, AtomicU64>;

/// The per-torrent families.
#[derive(Default)]
struct TorrentFamilies {
    download_rate: Family<TorrentLabels, RateGauge>,
    upload_rate: Family<TorrentLabels, RateGauge>,
    downloaded: Family<TorrentLabels, Counter>,
    uploaded: Family<TorrentLabels, Counter>,
    peers: Family<TorrentLabels, Gauge>,
    seeds: Family<TorrentLabels, Gauge>,
    pieces_have: Family<TorrentLabels, Gauge>,
    pieces_total: Family<TorrentLabels, Gauge>,
    hash_failures: Family<TorrentLabels, Counter>,
    tracker_errors: Family<TorrentLabels, Gauge>,
    error: Family<TorrentLabels, Gauge>,
}

impl TorrentFamilies {
    fn register(&self, registry: &mut Registry) {
        let torrent = registry.sub_registry_with_prefix("torrent");
        let f = self;
        torrent.register(
            "download_rate_bytes",
            "Download rate, payload bytes per second",
            f.download_rate.clone(),
        );
        torrent.register(
            "upload_rate_bytes",
            "Upload rate, payload bytes per second",
            f.upload_rate.clone(),
        );
        torrent.register(
            "downloaded_bytes",
            "Payload bytes received, all time",
            f.downloaded.clone(),
        );
        torrent.register(
            "uploaded_bytes",
            "Payload bytes sent, all time",
            f.uploaded.clone(),
        );
        torrent.register("peers", "Connected peers", f.peers.clone());
        torrent.register(
            "seeds",
            "Connected peers that have every piece",
            f.seeds.clone(),
        );
        torrent.register("pieces_have", "Verified pieces", f.pieces_have.clone());
        torrent.register("pieces", "Pieces in the torrent", f.pieces_total.clone());
        torrent.register(
            "hash_failures",
            "Pieces that failed their hash check this session",
            f.hash_failures.clone(),
        );
        torrent.register(
            "tracker_errors",
            "Trackers whose last announce failed",
            f.tracker_errors.clone(),
        );
        torrent.register(
            "error",
            "1 when the torrent stopped on an error (a disk error)",
            f.error.clone(),
        );
    }
}

/// Trackers of `input` whose last announce failed.
fn tracker_errors(input: &TorrentInput<'_>) -> usize {
    input
        .stats
        .trackers
        .iter()
        .filter(|t| matches!(t.state, TrackerState::Failing { .. }))
        .count()
}

fn to_i64(value: usize) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Records one torrent's figures.
fn record_torrent(f: &TorrentFamilies, input: &TorrentInput<'_>, state: QbtState) {
    let labels = TorrentLabels {
        infohash: input.hash.to_hex(),
        name: display_name(input),
    };
    let stats = input.stats;
    f.download_rate
        .get_or_create(&labels)
        .set(stats.download_rate);
    f.upload_rate.get_or_create(&labels).set(stats.upload_rate);
    f.downloaded
        .get_or_create(&labels)
        .inc_by(stats.total_downloaded);
    f.uploaded
        .get_or_create(&labels)
        .inc_by(stats.total_uploaded);
    f.peers.get_or_create(&labels).set(to_i64(stats.peers));
    f.seeds.get_or_create(&labels).set(to_i64(stats.seeds));
    f.pieces_have
        .get_or_create(&labels)
        .set(to_i64(stats.pieces_have));
    f.pieces_total
        .get_or_create(&labels)
        .set(to_i64(stats.pieces_total));
    f.hash_failures
        .get_or_create(&labels)
        .inc_by(stats.hash_failures);
    f.tracker_errors
        .get_or_create(&labels)
        .set(to_i64(tracker_errors(input)));
    f.error
        .get_or_create(&labels)
        .set(i64::from(state == QbtState::Error));
}

/// The session-wide series.
fn register_session(
    registry: &mut Registry,
    session: &SessionStats,
    torrents: &[TorrentInput<'_>],
) {
    let rate = |v: u64| {
        let g = RateGauge::default();
        g.set(v as f64);
        g
    };
    let count = |v: u64| {
        let c: Counter = Counter::default();
        c.inc_by(v);
        c
    };
    let gauge = |v: usize| {
        let g: Gauge = Gauge::default();
        g.set(to_i64(v));
        g
    };
    let s = registry.sub_registry_with_prefix("session");
    s.register(
        "download_rate_bytes",
        "Download rate of every torrent, payload bytes per second",
        rate(session.download_rate),
    );
    s.register(
        "upload_rate_bytes",
        "Upload rate of every torrent, payload bytes per second",
        rate(session.upload_rate),
    );
    s.register(
        "downloaded_bytes",
        "Payload bytes received this session",
        count(session.downloaded),
    );
    s.register(
        "uploaded_bytes",
        "Payload bytes sent this session",
        count(session.uploaded),
    );
    let peers: usize = torrents.iter().map(|t| t.stats.peers).sum();
    s.register("peers", "Connected peers over every torrent", gauge(peers));
    let failing: usize = torrents.iter().map(tracker_errors).sum();
    s.register(
        "tracker_errors",
        "Trackers whose last announce failed, over every torrent",
        gauge(failing),
    );
    let disk = torrents
        .iter()
        .filter(|t| state_of(t) == QbtState::Error)
        .count();
    s.register(
        "disk_errors",
        "Torrents stopped on an error (a disk error)",
        gauge(disk),
    );
}

/// The `/metrics` text for the session and its torrents.
pub fn render(session: &SessionStats, torrents: &[TorrentInput<'_>]) -> String {
    let mut registry = Registry::with_prefix("bittorrent");
    register_session(&mut registry, session, torrents);
    let by_state: Family<StateLabels, Gauge> = Family::default();
    for state in STATES {
        by_state
            .get_or_create(&StateLabels {
                state: state.as_str(),
            })
            .set(0);
    }
    let families = TorrentFamilies::default();
    for input in torrents {
        let state = state_of(input);
        by_state
            .get_or_create(&StateLabels {
                state: state.as_str(),
            })
            .inc();
        record_torrent(&families, input, state);
    }
    registry.register("torrents", "Torrents by qBittorrent state", by_state);
    families.register(&mut registry);
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = prometheus_text::encode(&mut out, &registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::qbt::fixtures::{hash, record, stats};
    use bittorrent::torrent::TorrentState;
    use bittorrent::tracker::TrackerStatus;

    #[test]
    fn session_and_torrent_series_with_help_type_and_escaped_labels() {
        let session = SessionStats {
            download_rate: 1500,
            upload_rate: 20,
            downloaded: 1_000_000,
            uploaded: 4096,
            ..SessionStats::default()
        };
        let mut s = stats(1000, 500);
        s.download_rate = 1500.0;
        s.peers = 3;
        s.seeds = 1;
        s.pieces_total = 10;
        s.pieces_have = 4;
        s.hash_failures = 2;
        s.total_downloaded = 700;
        s.trackers = vec![TrackerStatus {
            url: "http://t/".to_owned(),
            tier: 0,
            state: TrackerState::Failing {
                reason: "down".to_owned(),
                failures: 1,
            },
            next_announce: None,
        }];
        let mut rec = record();
        rec.name = Some("a \"quoted\"\\name\nline".to_owned());
        let mut broken = stats(1000, 1000);
        broken.state = TorrentState::Error;
        let plain = record();
        let inputs = [
            TorrentInput {
                hash: hash(0xaa),
                record: &rec,
                stats: &s,
                meta: None,
                queue_position: None,
            },
            TorrentInput {
                hash: hash(0xbb),
                record: &plain,
                stats: &broken,
                meta: None,
                queue_position: None,
            },
        ];
        let text = render(&session, &inputs);
        let labels = format!(
            "{{infohash=\"{}\",name=\"a \\\"quoted\\\"\\\\name\\nline\"}}",
            hash(0xaa).to_hex()
        );
        for line in [
            "# HELP bittorrent_session_download_rate_bytes Download rate of every torrent, payload bytes per second.",
            "# TYPE bittorrent_session_download_rate_bytes gauge",
            "bittorrent_session_download_rate_bytes 1500.0",
            "# TYPE bittorrent_session_downloaded_bytes_total counter",
            "bittorrent_session_downloaded_bytes_total 1000000",
            "bittorrent_session_peers 3",
            "bittorrent_session_tracker_errors 1",
            "bittorrent_session_disk_errors 1",
            "bittorrent_torrents{state=\"downloading\"} 1",
            "bittorrent_torrents{state=\"error\"} 1",
            "bittorrent_torrents{state=\"stalledUP\"} 0",
            &format!("bittorrent_torrent_download_rate_bytes{labels} 1500.0"),
            &format!("bittorrent_torrent_downloaded_bytes_total{labels} 700"),
            &format!("bittorrent_torrent_pieces_have{labels} 4"),
            &format!("bittorrent_torrent_pieces{labels} 10"),
            &format!("bittorrent_torrent_hash_failures_total{labels} 2"),
            &format!("bittorrent_torrent_tracker_errors{labels} 1"),
            &format!("bittorrent_torrent_error{labels} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        let broken_error = format!(
            "bittorrent_torrent_error{{infohash=\"{}\",name=\"{}\"}} 1",
            hash(0xbb).to_hex(),
            hash(0xbb).to_hex()
        );
        assert!(text.lines().any(|l| l == broken_error), "{text}");
        assert!(!text.contains("# EOF"), "0.0.4 text, not OpenMetrics");
    }
}
