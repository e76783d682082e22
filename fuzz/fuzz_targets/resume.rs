//! Resume records: `ResumeRecord::decode`; whatever it accepts must survive
//! `encode` then `decode` unchanged, be canonical after one round, and pass
//! `decode_for` with its own geometry. Then `recovery::plan` on it, against a
//! layout of its geometry and files exactly as stamped: it must trust only
//! listed pieces, never trust and hash the same piece, call the record exact,
//! and hash everything when told to skip it.
#![no_main]

use std::path::PathBuf;

use libfuzzer_sys::fuzz_target;

use bittorrent::metainfo::FileEntry;
use bittorrent::recovery::{self, DataMap, DiskState, OnDisk};
use bittorrent::resume::ResumeRecord;
use bittorrent::store::Layout;

/// Bytes per piece of the made-up layout.
const PIECE: u64 = 16;

fuzz_target!(|data: &[u8]| {
    let Ok(record) = ResumeRecord::decode(data) else {
        return;
    };
    let encoded = record.encode();
    match ResumeRecord::decode(&encoded) {
        Ok(again) => assert_eq!(again, record, "decode(encode(r)) != r"),
        Err(e) => panic!("an accepted record re-encodes to something refused: {e}"),
    }
    assert_eq!(
        ResumeRecord::decode(&encoded)
            .map(|r| r.encode())
            .ok()
            .as_deref(),
        Some(&encoded[..]),
        "encoding is not canonical"
    );
    let checked = ResumeRecord::decode_for(
        data,
        record.info_hash,
        record.have.len(),
        record.files.len(),
    );
    assert!(checked.is_ok(), "decode_for refused its own geometry");
    plan_on_unchanged_files(&record);
});

/// `record`'s pieces spread over its files (the last takes the rest), the
/// disk exactly as the record stamped it, all data.
fn plan_on_unchanged_files(record: &ResumeRecord) {
    let n = record.files.len() as u64;
    let total = record.have.len() as u64 * PIECE;
    if n == 0 || total == 0 {
        return;
    }
    let each = total / n;
    let files = (0..n)
        .map(|i| FileEntry {
            path: PathBuf::from(format!("f{i}")),
            length: if i == n - 1 { total - each * i } else { each },
            offset: each * i,
            pad: false,
        })
        .collect();
    let layout = Layout {
        piece_length: PIECE as u32,
        total_length: total,
        files,
    };
    let on_disk = |stamp: Option<bittorrent::resume::FileStamp>| OnDisk {
        stamp,
        data: DataMap::full(stamp.map_or(0, |s| s.length)),
    };
    let no_parts = |_: u32, _: usize| false;
    let disk = DiskState {
        files: record.files.iter().map(|&s| on_disk(s)).collect(),
        parts: on_disk(record.parts),
        in_parts: &no_parts,
        parts_damaged: false,
    };
    let plan = recovery::plan(&layout, Some(record), &disk, false);
    assert!(plan.exact, "unchanged files, yet not exact");
    for piece in plan.trusted.iter_ones() {
        assert!(record.have.get(piece), "trusted piece {piece} is not listed");
        assert!(!plan.to_hash.get(piece), "piece {piece} trusted and hashed");
    }
    let skip = recovery::plan(&layout, Some(record), &disk, true);
    assert_eq!(skip.to_hash.count_ones(), record.have.len(), "skip hashes all");
    assert_eq!(skip.trusted.count_ones(), 0, "skip trusts nothing");
}
