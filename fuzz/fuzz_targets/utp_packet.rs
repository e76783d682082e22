//! A datagram on the session's shared UDP port: the demultiplexer
//! (`classify`) and the uTP header parser behind it.
//!
//! Checked: a datagram starting with `d` goes to the DHT; any other goes to
//! uTP exactly when the header parses; a parsed header has version 1, a
//! known type, fields equal to the big-endian bytes, and its payload offset
//! lies after the fixed header and within the datagram, with the extension
//! chain between them well formed.
#![no_main]

use libfuzzer_sys::fuzz_target;

use bittorrent::utp::{classify, Datagram, Header, HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let parsed = Header::parse(data);
    let expected = match (data.first(), &parsed) {
        (Some(b'd'), _) => Datagram::Dht,
        (Some(_), Ok(_)) => Datagram::Utp,
        _ => Datagram::Unknown,
    };
    assert_eq!(classify(data), expected);
    let Ok(header) = parsed else {
        return;
    };
    assert_eq!(data[0] & 0x0f, 1, "version");
    assert!(data[0] >> 4 <= 4, "type");
    let u16_at = |i: usize| u16::from_be_bytes([data[i], data[i + 1]]);
    let u32_at = |i: usize| u32::from_be_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    assert_eq!(header.connection_id, u16_at(2));
    assert_eq!(header.timestamp_us, u32_at(4));
    assert_eq!(header.timestamp_diff_us, u32_at(8));
    assert_eq!(header.wnd_size, u32_at(12));
    assert_eq!(header.seq_nr, u16_at(16));
    assert_eq!(header.ack_nr, u16_at(18));
    assert!(header.payload_offset >= HEADER_LEN && header.payload_offset <= data.len());
    // Walk the chain again: it must end exactly at the payload.
    let (mut next, mut at) = (data[1], HEADER_LEN);
    while next != 0 {
        next = data[at];
        at += 2 + usize::from(data[at + 1]);
    }
    assert_eq!(at, header.payload_offset);
});
