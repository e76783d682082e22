//! Web seeds: arbitrary bytes as a `Content-Range` header (parsed and
//! checked against ranges asked for), a web seed URL (validated) and an info
//! dictionary (its raw names made into file URLs). Nothing may panic, a
//! parsed range must print back as itself, and every file URL must start
//! with the web seed's URL.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    bittorrent::webseed::fuzz::webseed(data);
});
