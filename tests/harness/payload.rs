//! Test payloads, generated at test time into temporary directories: deterministic
//! pseudo-random files and trees, and videos made with ffmpeg.

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// A temporary directory for one test (deleted at the end).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("bt-interop-")
        .tempdir()
        .expect("create temp dir")
}

/// Writes `len` deterministic pseudo-random bytes (splitmix64 seeded with `seed`) to `path`.
pub fn write_payload(path: &Path, len: u64, seed: u64) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create payload dir");
    }
    let mut file = std::io::BufWriter::new(File::create(path).expect("create payload file"));
    let mut state = seed.wrapping_mul(0x2545_f491_4f6c_dd1d);
    let mut left = len;
    while left > 0 {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        let n = left.min(8) as usize;
        file.write_all(&z.to_le_bytes()[..n])
            .expect("write payload");
        left -= n as u64;
    }
    file.flush().expect("flush payload");
}

/// Writes a tree of files: `(relative path, size)` under `root`, each with its own seed.
pub fn write_tree(root: &Path, files: &[(&str, u64)]) {
    fs::create_dir_all(root).expect("create tree root");
    for (i, (rel, len)) in files.iter().enumerate() {
        write_payload(&root.join(rel), *len, 1000 + i as u64);
    }
}

/// Encodes `seconds` of ffmpeg's test pattern at `width`x`height`, 25 frames/s, as MPEG-4
/// Part 2 in an MP4 file at `path`. Every frame is a key frame (about 6.5 MB for 20 s at
/// 640x360), and the `moov` atom (the index a player needs first) comes after the frames, at
/// the end of the file, as ffmpeg writes it without `-movflags +faststart`.
pub fn write_video(path: &Path, seconds: u32, width: u32, height: u32) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("create video dir");
    }
    let source = format!("testsrc=duration={seconds}:size={width}x{height}:rate=25");
    let res = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-y"])
        .args(["-f", "lavfi", "-i", &source])
        .args(["-c:v", "mpeg4", "-q:v", "3", "-g", "1"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        res.status.success(),
        "ffmpeg failed: {}",
        String::from_utf8_lossy(&res.stderr)
    );
}
