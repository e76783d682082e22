//! The per-torrent summary printed with `--json`.

use bittorrent::prelude::*;
use bittorrent::torrent::WebSeedState;
use serde::Serialize;

/// What `--json` prints for one torrent.
#[derive(Serialize, Debug)]
pub struct Summary {
    info_hash: String,
    name: String,
    complete: bool,
    downloaded: u64,
    uploaded: u64,
    wasted: u64,
    /// Of `downloaded`, what came from web seeds.
    web_seed_downloaded: u64,
    /// Web seeds given up (a permanent error, bad data, too many failures).
    web_seeds_dropped: usize,
}

/// Takes every torrent's final counters (before shutdown).
pub async fn collect(session: &SessionHandle) -> Vec<Summary> {
    let Ok(torrents) = session.torrents().await else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for torrent in torrents {
        let name = torrent.name().to_owned();
        if let Ok(stats) = torrent.stats().await {
            out.push(Summary {
                info_hash: torrent.info_hash().to_hex(),
                name,
                complete: stats.complete,
                downloaded: stats.downloaded,
                uploaded: stats.uploaded,
                wasted: stats.wasted,
                web_seed_downloaded: stats.web_seed_downloaded,
                web_seeds_dropped: (stats.web_seeds.iter())
                    .filter(|w| w.state == WebSeedState::Dropped)
                    .count(),
            });
        }
    }
    out
}

/// One JSON object per line on stdout.
pub fn print_json(summaries: &[Summary]) {
    for s in summaries {
        match serde_json::to_string(s) {
            Ok(line) => println!("{line}"),
            Err(e) => eprintln!("error: cannot encode the summary: {e}"),
        }
    }
}
