//! A connected uTP connection (utp/conn) fed arbitrary datagrams, some
//! patched toward what it accepts (its connection id, a plausible ACK and
//! sequence number), with the clock, reads, writes and timers driven by
//! the input.
//!
//! Checked: nothing panics (no arithmetic overflow, no slice out of range,
//! no broken invariant of the send and receive queues), `poll_transmit`
//! always ends, and every datagram it writes parses as a uTP packet.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bittorrent::utp::fuzz_connection(data);
});
