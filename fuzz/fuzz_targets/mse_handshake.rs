//! The MSE/PE handshake: arbitrary bytes to the receiver and the initiator
//! state machines (raw, in chunks, and as the corruption of a genuine
//! exchange). Neither may panic, and neither may hold more bytes than the
//! spec's bounds allow while it waits.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bittorrent::mse::fuzz::handshake(data);
});
