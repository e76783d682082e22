//! The message codec alone, on bytes arriving in fuzzer-chosen chunks.
//!
//! Input: `[chunk control, cap control, stream...]`. The chunk control byte
//! picks the chunk sizes (see `Chunks`); the cap control byte picks the
//! codec's frame cap: below 128 the default, else `2 * (byte - 128)` so the
//! `FrameTooLong` path is reachable with short inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;

use bittorrent::wire::MessageCodec;
use bittorrent_fuzz::{Chunks, MessageStream};

fuzz_target!(|data: &[u8]| {
    let [chunk_ctl, cap_ctl, stream @ ..] = data else {
        return;
    };
    let codec = if *cap_ctl < 128 {
        MessageCodec::default()
    } else {
        MessageCodec::new(2 * usize::from(cap_ctl - 128))
    };
    let mut messages = MessageStream::new(codec);
    for chunk in Chunks::new(*chunk_ctl, stream) {
        messages.feed(chunk);
    }
    messages.finish();
});
