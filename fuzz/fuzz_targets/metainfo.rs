//! .torrent parsing: the strict bencode decoder and `MetaInfo::from_bytes`,
//! then the store's view of a parsed torrent.
//!
//! Checked on every accepted torrent: file paths are relative and made only
//! of normal components; the files tile the byte stream (`Layout::check`);
//! the piece geometry agrees between `MetaInfo` and `Layout`; and the file
//! runs of the first, second and last pieces cover each piece exactly.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;

use bittorrent::bencode;
use bittorrent::metainfo::MetaInfo;
use bittorrent::store::Layout;

fuzz_target!(|data: &[u8]| {
    if let Ok(node) = bencode::decode(data) {
        // A strictly decoded value spans the input and, with sorted keys,
        // re-encodes to it; in any case the raw span is the input.
        assert_eq!(node.raw, data);
        assert_eq!(node.offset, 0);
    }

    let Ok(meta) = MetaInfo::from_bytes(data) else {
        return;
    };
    assert!(meta.total_length > 0);
    assert!(meta.piece_length > 0);
    assert!(!meta.files.is_empty());
    for file in &meta.files {
        assert!(
            file.path.components().next().is_some(),
            "empty path in {:?}",
            meta.files
        );
        for component in file.path.components() {
            assert!(
                matches!(component, Component::Normal(_)),
                "path {:?} has a {component:?} component",
                file.path
            );
        }
    }

    let layout = Layout::from_meta_info(&meta);
    if let Err(e) = layout.check() {
        panic!("parsed torrent has an inconsistent layout: {e}");
    }
    let count = meta.piece_count();
    assert_eq!(layout.piece_count(), count);
    let Ok(last) = u32::try_from(count - 1) else {
        panic!("more pieces than u32 indices: {count}");
    };
    for index in [0, 1, last / 2, last, last.saturating_add(1)] {
        let len = layout.piece_len(index);
        assert_eq!(len, meta.piece_len(index), "piece {index} length");
        if index > last {
            assert_eq!(len, 0);
            assert!(layout.slices(index, 0, 1).is_none());
            continue;
        }
        assert!(len > 0, "piece {index} is empty");
        let Some(slices) = layout.slices(index, 0, u64::from(len)) else {
            panic!("piece {index} is not covered by the files");
        };
        let covered: u64 = slices.iter().map(|s| s.length).sum();
        assert_eq!(covered, u64::from(len), "piece {index} runs");
        for s in &slices {
            let file = &layout.files[s.file];
            assert!(s.length > 0 && s.offset + s.length <= file.length);
        }
        // One byte past the piece is refused.
        assert!(layout.slices(index, 0, u64::from(len) + 1).is_none());
    }
});
