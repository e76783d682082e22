//! Resume records: `ResumeRecord::decode`; whatever it accepts must survive
//! `encode` then `decode` unchanged, be canonical after one round, and pass
//! `decode_for` with its own geometry.
#![no_main]

use libfuzzer_sys::fuzz_target;

use bittorrent::resume::ResumeRecord;

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
});
