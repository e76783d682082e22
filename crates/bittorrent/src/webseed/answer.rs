//! The checks on a web seed's answers, pure: is this the range asked for
//! (status, `Content-Range`, `Content-Length`), is the server fast enough,
//! and the assembly of streamed bytes into whole pieces.

use std::ops::Range;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::store::Layout;
use crate::webseed::WebSeedError;

/// One range request: `length` bytes at `offset` of a file of `file_length`
/// bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Asked {
    /// First byte inside the file.
    pub(crate) offset: u64,
    /// Bytes asked for, at least 1.
    pub(crate) length: u64,
    /// The file's length in the torrent.
    pub(crate) file_length: u64,
}

impl Asked {
    /// The last byte asked for (inclusive, as in `Range: bytes=a-b`).
    pub(crate) fn last(&self) -> u64 {
        self.offset + self.length.saturating_sub(1)
    }
}

/// A parsed `Content-Range: bytes first-last/total` (RFC 9110 14.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ContentRange {
    /// First byte (inclusive).
    pub(crate) first: u64,
    /// Last byte (inclusive), at least `first`.
    pub(crate) last: u64,
    /// The whole representation's length, `None` for `*`.
    pub(crate) total: Option<u64>,
}

/// Parses a `Content-Range` value for a satisfied byte range; `None` for
/// anything else (another unit, `bytes */123`, a malformed or inverted
/// range, a total not past the last byte, numbers over `u64`).
pub(crate) fn parse_content_range(value: &[u8]) -> Option<ContentRange> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (unit, rest) = value.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, total) = rest.trim_start().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last) = (number(first)?, number(last)?);
    let total = match total {
        "*" => None,
        total => Some(number(total)?),
    };
    let valid = first <= last && total.is_none_or(|total| last < total);
    valid.then_some(ContentRange { first, last, total })
}

/// A decimal number of at least one digit (no sign, no spaces).
fn number(digits: &str) -> Option<u64> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Checks the head of the answer to `asked`: a 206 whose `Content-Range` is
/// exactly the range asked for (and whose total, if given, is the file's
/// length), or a 200 when the whole file was asked for; a `Content-Length`,
/// when there is one, must be the range's length.
///
/// # Errors
/// [`WebSeedError::Status`] for another status, [`WebSeedError::BadAnswer`]
/// for a 206 or 200 that does not hold exactly the bytes asked for.
pub(crate) fn check_head(
    status: u16,
    content_range: Option<&[u8]>,
    content_length: Option<u64>,
    asked: Asked,
) -> Result<(), WebSeedError> {
    let bad = |what: String| Err(WebSeedError::BadAnswer(what));
    match status {
        206 => {
            let Some(raw) = content_range else {
                return bad("206 without Content-Range".into());
            };
            let Some(range) = parse_content_range(raw) else {
                return bad(format!(
                    "malformed Content-Range {:?}",
                    String::from_utf8_lossy(raw)
                ));
            };
            if range.first != asked.offset || range.last != asked.last() {
                return bad(format!(
                    "Content-Range {}-{} for bytes {}-{}",
                    range.first,
                    range.last,
                    asked.offset,
                    asked.last()
                ));
            }
            if range.total.is_some_and(|total| total != asked.file_length) {
                return bad(format!(
                    "the file is {} bytes on the server, {} in the torrent",
                    range.total.unwrap_or_default(),
                    asked.file_length
                ));
            }
        }
        200 if asked.offset == 0 && asked.length == asked.file_length => {}
        200 => return bad("200 (the whole file) for a range: the server ignores ranges".into()),
        status => return Err(WebSeedError::Status(status)),
    }
    match content_length {
        Some(length) if length != asked.length => bad(format!(
            "Content-Length {length} for {} bytes asked",
            asked.length
        )),
        _ => Ok(()),
    }
}

/// Is the server fast enough: at least `min_rate` bytes per second over
/// each window of `window` (measured from the start of a run, across its
/// requests).
#[derive(Clone, Debug)]
pub(crate) struct SpeedCheck {
    min_rate: u64,
    window: Duration,
    start: Instant,
    bytes: u64,
}

impl SpeedCheck {
    /// A check whose first window starts `now`.
    pub(crate) fn new(min_rate: u64, window: Duration, now: Instant) -> Self {
        Self {
            min_rate,
            window,
            start: now,
            bytes: 0,
        }
    }

    /// Counts `bytes` received `now`; when the window is over, checks its
    /// rate and starts the next window.
    ///
    /// # Errors
    /// [`WebSeedError::TooSlow`] when the window that ended got less than
    /// `min_rate` bytes per second.
    pub(crate) fn record(&mut self, bytes: usize, now: Instant) -> Result<(), WebSeedError> {
        self.bytes = self.bytes.saturating_add(bytes as u64);
        let elapsed = now.saturating_duration_since(self.start);
        if elapsed < self.window || elapsed.is_zero() {
            return Ok(());
        }
        let rate = self.bytes as f64 / elapsed.as_secs_f64();
        if rate < self.min_rate as f64 {
            return Err(WebSeedError::TooSlow(format!(
                "{} bytes in {:.1} s, below {} B/s",
                self.bytes,
                elapsed.as_secs_f64(),
                self.min_rate
            )));
        }
        self.start = now;
        self.bytes = 0;
        Ok(())
    }

    /// Leaves `pause` (time spent waiting on the torrent, not the server)
    /// out of the current window.
    pub(crate) fn exclude(&mut self, pause: Duration) {
        self.start += pause;
    }
}

/// Bytes of a run, in order, made into whole pieces: one piece buffer at a
/// time, allocated at the piece's exact length.
#[derive(Debug)]
pub(crate) struct Assembler {
    /// The piece being filled (the first not delivered).
    next: u32,
    end: u32,
    buf: BytesMut,
    /// The length of piece `next` (0 before its buffer is allocated).
    want: usize,
}

impl Assembler {
    /// Assembles the pieces of `run`.
    pub(crate) fn new(run: Range<u32>) -> Self {
        Self {
            next: run.start,
            end: run.end,
            buf: BytesMut::new(),
            want: 0,
        }
    }

    /// The first piece not yet returned.
    pub(crate) fn next(&self) -> u32 {
        self.next
    }

    /// Takes bytes from the front of `data` into the current piece (at most
    /// up to its end); returns the piece when it is whole. Bytes past the
    /// run's end are dropped.
    pub(crate) fn fill(&mut self, layout: &Layout, data: &mut &[u8]) -> Option<(u32, Bytes)> {
        let Some(room) = self.room(layout) else {
            *data = &[];
            return None;
        };
        let (now, rest) = data.split_at(room.min(data.len()));
        self.buf.extend_from_slice(now);
        *data = rest;
        self.complete()
    }

    /// Takes zeros (pad files) from `count` into the current piece, like
    /// [`Assembler::fill`].
    pub(crate) fn fill_zeros(&mut self, layout: &Layout, count: &mut u64) -> Option<(u32, Bytes)> {
        let Some(room) = self.room(layout) else {
            *count = 0;
            return None;
        };
        let take = usize::try_from(*count).unwrap_or(usize::MAX).min(room);
        self.buf.resize(self.buf.len() + take, 0);
        *count -= take as u64;
        self.complete()
    }

    /// Room left in the current piece, allocating its buffer first; `None`
    /// (and the input dropped) past the run's end.
    fn room(&mut self, layout: &Layout) -> Option<usize> {
        if self.next >= self.end {
            return None;
        }
        if self.want == 0 {
            // 0 only past the torrent's last piece: drop the input rather
            // than loop on a piece that never fills.
            self.want = layout.piece_len(self.next) as usize;
            self.buf = BytesMut::with_capacity(self.want);
        }
        (self.want > 0).then(|| self.want - self.buf.len())
    }

    fn complete(&mut self) -> Option<(u32, Bytes)> {
        if self.want == 0 || self.buf.len() < self.want {
            return None;
        }
        let index = self.next;
        self.next += 1;
        self.want = 0;
        Some((index, std::mem::take(&mut self.buf).freeze()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metainfo::MetaInfo;

    #[test]
    fn content_range_parsing() {
        let range = |first, last, total| Some(ContentRange { first, last, total });
        assert_eq!(parse_content_range(b"bytes 0-9/10"), range(0, 9, Some(10)));
        assert_eq!(parse_content_range(b" BYTES  5-5/*"), range(5, 5, None));
        let max = u64::MAX;
        assert_eq!(
            parse_content_range(format!("bytes 0-{}/{max}", max - 1).as_bytes()),
            range(0, max - 1, Some(max))
        );
        for bad in [
            &b""[..],
            b"bytes",
            b"bytes */10",
            b"items 0-9/10",
            b"bytes 9-0/10",
            b"bytes 0-10/10",
            b"bytes -1-9/10",
            b"bytes +0-9/10",
            b"bytes 0-9/",
            b"bytes 0 -9/10",
            b"bytes 0-99999999999999999999/*",
            b"bytes 0-9/10 x",
            b"bytes \xff-9/10",
        ] {
            assert_eq!(
                parse_content_range(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    const ASKED: Asked = Asked {
        offset: 10,
        length: 5,
        file_length: 100,
    };

    #[test]
    fn head_206_must_match_the_range_asked() {
        assert_eq!(
            check_head(206, Some(b"bytes 10-14/100"), Some(5), ASKED),
            Ok(())
        );
        assert_eq!(check_head(206, Some(b"bytes 10-14/*"), None, ASKED), Ok(()));
        for (range, length) in [
            (None, Some(5)),
            (Some(&b"bytes 10-15/100"[..]), Some(5)),
            (Some(b"bytes 11-14/100"), Some(4)),
            (Some(b"bytes 10-14/101"), Some(5)),
            (Some(b"bytes 10-14/100"), Some(6)),
            (Some(b"garbage"), None),
        ] {
            assert!(
                matches!(
                    check_head(206, range, length, ASKED),
                    Err(WebSeedError::BadAnswer(_))
                ),
                "{range:?} {length:?}"
            );
        }
    }

    #[test]
    fn head_200_only_for_the_whole_file() {
        let whole = Asked {
            offset: 0,
            length: 100,
            file_length: 100,
        };
        assert_eq!(check_head(200, None, Some(100), whole), Ok(()));
        assert_eq!(check_head(200, None, None, whole), Ok(()));
        assert!(matches!(
            check_head(200, None, Some(99), whole),
            Err(WebSeedError::BadAnswer(_))
        ));
        assert!(matches!(
            check_head(200, None, Some(5), ASKED),
            Err(WebSeedError::BadAnswer(_))
        ));
    }

    #[test]
    fn head_other_statuses_are_status_errors() {
        for status in [204, 301, 404, 410, 416, 500, 503] {
            assert_eq!(
                check_head(status, Some(b"bytes 10-14/100"), Some(5), ASKED),
                Err(WebSeedError::Status(status))
            );
        }
    }

    #[test]
    fn speed_check_per_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut check = SpeedCheck::new(100, s(10), t0);
        assert_eq!(check.record(10, t0 + s(5)), Ok(()));
        // 1,000 bytes over the first 10 s: exactly the minimum.
        assert_eq!(check.record(990, t0 + s(10)), Ok(()));
        // The next window starts at 10 s: a trickle of 50 B/s fails.
        assert_eq!(check.record(300, t0 + s(16)), Ok(()));
        assert!(matches!(
            check.record(200, t0 + s(20)),
            Err(WebSeedError::TooSlow(_))
        ));
        // Time spent waiting on the torrent does not count.
        let mut check = SpeedCheck::new(100, s(10), t0);
        check.exclude(s(8));
        assert_eq!(check.record(300, t0 + s(12)), Ok(()));
        assert!(matches!(
            check.record(600, t0 + s(18)),
            Err(WebSeedError::TooSlow(_))
        ));
    }

    #[test]
    fn assembler_makes_whole_pieces_across_chunks() {
        // Pieces of 4 bytes, the last (index 2) of 2.
        let layout = Layout::from_meta_info(&MetaInfo::for_test("t", 4, &[("a", 10, false)]));
        let mut asm = Assembler::new(0..3);
        let mut data = &b"abc"[..];
        assert_eq!(asm.fill(&layout, &mut data), None);
        assert!(data.is_empty());
        let mut data = &b"defgh"[..];
        let (index, piece) = asm.fill(&layout, &mut data).unwrap();
        assert_eq!((index, &piece[..]), (0, &b"abcd"[..]));
        assert_eq!(data, b"efgh");
        let (index, piece) = asm.fill(&layout, &mut data).unwrap();
        assert_eq!((index, &piece[..]), (1, &b"efgh"[..]));
        let mut zeros = 2;
        let (index, piece) = asm.fill_zeros(&layout, &mut zeros).unwrap();
        assert_eq!((index, &piece[..], zeros), (2, &[0u8, 0][..], 0));
        assert_eq!(asm.next(), 3);
        // Past the run's end, input is dropped.
        let mut data = &b"xyz"[..];
        assert_eq!(asm.fill(&layout, &mut data), None);
        assert!(data.is_empty());
        // So is input for pieces past the torrent's end.
        let mut asm = Assembler::new(3..5);
        let mut data = &b"xyz"[..];
        assert_eq!(asm.fill(&layout, &mut data), None);
        assert!(data.is_empty());
        let mut zeros = 7;
        assert_eq!(asm.fill_zeros(&layout, &mut zeros), None);
        assert_eq!(zeros, 0);
    }

    #[test]
    fn assembler_buffer_has_the_exact_piece_length() {
        let layout = Layout::from_meta_info(&MetaInfo::for_test("t", 1000, &[("a", 1500, false)]));
        let mut asm = Assembler::new(1..2);
        let mut data = &[1u8; 10][..];
        assert_eq!(asm.fill(&layout, &mut data), None);
        assert_eq!(asm.buf.capacity(), 500);
    }
}
