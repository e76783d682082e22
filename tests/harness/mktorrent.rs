//! Making .torrent files with mktorrent (independent of the engine's code).

use std::path::Path;
use std::process::Command;

/// Makes `out` from the file or directory `content` with mktorrent (pieces of 2^piece_log2
/// bytes); `announce` is the tracker URL, if any.
pub fn make_torrent(content: &Path, announce: Option<&str>, piece_log2: u32, out: &Path) {
    let tiers: Vec<&[&str]> = announce.iter().map(std::slice::from_ref).collect();
    make_torrent_tiers(content, &tiers, piece_log2, out);
}

/// Makes `out` from `content` with mktorrent, announcing to `tiers` (BEP 12 announce-list:
/// one `-a url1,url2` per tier; the first URL also becomes `announce`), with pieces of
/// 2^piece_log2 bytes.
pub fn make_torrent_tiers(content: &Path, tiers: &[&[&str]], piece_log2: u32, out: &Path) {
    let mut cmd = Command::new("mktorrent");
    cmd.arg("-l")
        .arg(piece_log2.to_string())
        .arg("-o")
        .arg(out)
        .args(["-t", "2"]);
    for tier in tiers {
        assert!(!tier.is_empty(), "empty tier");
        cmd.arg("-a").arg(tier.join(","));
    }
    cmd.arg(content);
    let res = cmd.output().expect("run mktorrent");
    assert!(
        res.status.success(),
        "mktorrent failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}
