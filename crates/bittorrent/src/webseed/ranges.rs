//! A run of pieces as HTTP range requests, pure: one request per file the
//! run spans (pad files never requested, their bytes are zeros).

// helper webseed-http: `pub(crate) fn requests(layout, pieces: Range<u32>)
// -> Vec<RangeRequest { file: usize, offset: u64, length: u64 }>` plus what
// to zero-fill, unit-tested across file boundaries.
