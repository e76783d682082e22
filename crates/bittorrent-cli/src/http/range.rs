//! Byte ranges (RFC 9110 §14): what a `Range` header asks of a representation.
//!
//! Pure: a header value and a length in, a [`RangeOutcome`] out.
//!
//! # Policy
//! - A range unit other than `bytes`, or a syntactically invalid ranges-specifier
//!   (`bytes=5-2`, `bytes=`, `bytes=a-b`, whitespace inside a range-spec), is ignored:
//!   [`RangeOutcome::Full`], as RFC 9110 §14.2 allows.
//! - One range-spec: satisfiable → [`RangeOutcome::Partial`] (last-pos clamped to `len - 1`,
//!   a suffix longer than the representation selects all of it); unsatisfiable (first-pos
//!   `>= len`, or a zero suffix `bytes=-0`) → [`RangeOutcome::Unsatisfiable`].
//! - Several range-specs: never `multipart/byteranges`. Unsatisfiable specs are dropped
//!   (§14.1.1); if none is left → `Unsatisfiable`; the rest are coalesced where they overlap
//!   or touch (§14.3 allows it); if that leaves one range → `Partial`, otherwise the Range
//!   header is ignored → `Full`, as it is when the coalesced range is the whole representation.
//!   So `bytes=0-1,2-5` is a 206 of `0..=5` and `bytes=0-0,-1` is a 200.
//! - More than [`MAX_RANGE_SPECS`] range-specs are ignored (`Full`).
//! - A zero-length representation has no byte a 206 could describe: int-ranges are
//!   unsatisfiable and a non-zero suffix gives `Full` (an empty 200).

/// The most range-specs one `Range` header may hold before it is ignored.
pub const MAX_RANGE_SPECS: usize = 64;

/// What to send for a request's `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeOutcome {
    /// The whole representation, with a 200.
    Full,
    /// Bytes `start..=end` (inclusive, `start <= end < len`), with a 206 and
    /// `Content-Range: bytes start-end/len`.
    Partial {
        /// First byte sent.
        start: u64,
        /// Last byte sent (inclusive).
        end: u64,
    },
    /// Nothing the client asked for exists: a 416 with `Content-Range: bytes */len`.
    Unsatisfiable,
}

impl RangeOutcome {
    /// How many bytes the response body holds, for a representation of `len` bytes.
    pub fn body_len(&self, len: u64) -> u64 {
        match *self {
            RangeOutcome::Full => len,
            RangeOutcome::Partial { start, end } => end - start + 1,
            RangeOutcome::Unsatisfiable => 0,
        }
    }
}

/// The `Content-Range` value of a 206: `bytes start-end/len`.
pub fn content_range(start: u64, end: u64, len: u64) -> String {
    format!("bytes {start}-{end}/{len}")
}

/// The `Content-Range` value of a 416: `bytes */len`.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// Decides what to send for the `Range` header `value` on a representation of `len` bytes.
///
/// Never fails: anything that is not a valid `bytes` ranges-specifier is ignored
/// ([`RangeOutcome::Full`]). See the module documentation for the policy.
pub fn parse_range(value: &str, len: u64) -> RangeOutcome {
    match parse_specs(value) {
        Some(specs) => resolve(&specs, len),
        None => RangeOutcome::Full,
    }
}

/// One range-spec as written, before it meets a length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Spec {
    /// `first-` or `first-last`; `None` bounds are numbers above `u64::MAX`.
    Int {
        first: Option<u64>,
        last: Option<Option<u64>>,
    },
    /// `-n`; `None` is a number above `u64::MAX`.
    Suffix(Option<u64>),
}

/// The range-specs of a `bytes` ranges-specifier, or `None` if it is invalid,
/// of another unit, or has too many specs.
fn parse_specs(value: &str) -> Option<Vec<Spec>> {
    // Field values arrive without leading/trailing OWS in principle; be lenient.
    let value = value.trim_matches(is_ows);
    let (unit, set) = value.split_once('=')?;
    // Range units compare case-insensitively (§14.1); no OWS around '=' in the grammar.
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let mut specs = Vec::new();
    // range-set = 1#range-spec: OWS around commas, empty elements ignored (§5.6.1.2).
    for element in set.split(',') {
        let element = element.trim_matches(is_ows);
        if element.is_empty() {
            continue;
        }
        if specs.len() == MAX_RANGE_SPECS {
            return None;
        }
        specs.push(parse_spec(element)?);
    }
    if specs.is_empty() {
        return None;
    }
    Some(specs)
}

/// One `int-range` or `suffix-range`, without surrounding whitespace.
fn parse_spec(spec: &str) -> Option<Spec> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(Spec::Suffix(parse_digits(last)?));
    }
    let first_pos = parse_digits(first)?;
    if last.is_empty() {
        return Some(Spec::Int {
            first: first_pos,
            last: None,
        });
    }
    let last_pos = parse_digits(last)?;
    // "A range-spec is invalid if ... last-pos is less than first-pos" (§14.1.1).
    if compare_digits(first, last) == std::cmp::Ordering::Greater {
        return None;
    }
    Some(Spec::Int {
        first: first_pos,
        last: Some(last_pos),
    })
}

/// `1*DIGIT` as a number: `None` if not digits, `Some(None)` if above `u64::MAX`.
fn parse_digits(s: &str) -> Option<Option<u64>> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut n: u64 = 0;
    for b in s.bytes() {
        match n
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
        {
            Some(next) => n = next,
            None => return Some(None),
        }
    }
    Some(Some(n))
}

/// Compares two digit strings by value, whatever their size.
fn compare_digits(a: &str, b: &str) -> std::cmp::Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Optional whitespace (OWS): spaces and horizontal tabs.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

/// Meets the specs with the representation's length.
fn resolve(specs: &[Spec], len: u64) -> RangeOutcome {
    let mut ranges: Vec<(u64, u64)> = Vec::with_capacity(specs.len());
    let mut empty_but_satisfiable = false;
    for spec in specs {
        match *spec {
            Spec::Int { first, last } => {
                // A number above u64::MAX is past the end of anything.
                let Some(first) = first.filter(|&f| f < len) else {
                    continue;
                };
                let last = match last {
                    Some(Some(last)) => last.min(len - 1),
                    Some(None) | None => len - 1,
                };
                ranges.push((first, last));
            }
            Spec::Suffix(n) => {
                let n = n.unwrap_or(u64::MAX);
                if n == 0 {
                    continue;
                }
                if len == 0 {
                    empty_but_satisfiable = true;
                    continue;
                }
                ranges.push((len - n.min(len), len - 1));
            }
        }
    }
    if ranges.is_empty() {
        return if empty_but_satisfiable {
            RangeOutcome::Full
        } else {
            RangeOutcome::Unsatisfiable
        };
    }
    ranges.sort_unstable();
    let (start, mut end) = ranges[0];
    for &(s, e) in &ranges[1..] {
        // Overlapping or adjacent (s <= end + 1, without overflow: end < len <= u64::MAX).
        if s <= end.saturating_add(1) {
            end = end.max(e);
        } else {
            return RangeOutcome::Full;
        }
    }
    if start == 0 && end == len - 1 && ranges.len() > 1 {
        // Several specs that add up to everything: a plain 200 says the same.
        return RangeOutcome::Full;
    }
    RangeOutcome::Partial { start, end }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(start: u64, end: u64) -> RangeOutcome {
        RangeOutcome::Partial { start, end }
    }

    #[test]
    fn rfc9110_examples() {
        // RFC 9110 §14.1.2, a representation of 10000 bytes.
        assert_eq!(parse_range("bytes=0-499", 10000), partial(0, 499));
        assert_eq!(parse_range("bytes=500-999", 10000), partial(500, 999));
        assert_eq!(parse_range("bytes=-500", 10000), partial(9500, 9999));
        assert_eq!(parse_range("bytes=9500-", 10000), partial(9500, 9999));
        // First and last bytes only: two disjoint ranges, no multipart here → 200.
        assert_eq!(parse_range("bytes=0-0,-1", 10000), RangeOutcome::Full);
    }

    #[test]
    fn two_bytes() {
        let r = parse_range("bytes=0-1", 100);
        assert_eq!(r, partial(0, 1));
        assert_eq!(r.body_len(100), 2);
        assert_eq!(content_range(0, 1, 100), "bytes 0-1/100");
    }

    #[test]
    fn last_pos_clamped_and_long_suffix() {
        assert_eq!(parse_range("bytes=5-1000", 10), partial(5, 9));
        assert_eq!(parse_range("bytes=-1000", 10), partial(0, 9));
        assert_eq!(parse_range("bytes=0-", 10), partial(0, 9));
        assert_eq!(parse_range("bytes=9-9", 10), partial(9, 9));
    }

    #[test]
    fn unsatisfiable() {
        assert_eq!(parse_range("bytes=10-", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=999999-", 10),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=10-20", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0,20-", 10), RangeOutcome::Unsatisfiable);
        assert_eq!(unsatisfied_range(10), "bytes */10");
    }

    #[test]
    fn empty_representation() {
        assert_eq!(parse_range("bytes=0-", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 0), RangeOutcome::Unsatisfiable);
        assert_eq!(parse_range("bytes=-5", 0), RangeOutcome::Full);
        assert_eq!(parse_range("garbage", 0), RangeOutcome::Full);
    }

    #[test]
    fn invalid_is_ignored() {
        for value in [
            "bytes=5-2",
            "bytes=",
            "bytes=,",
            "bytes=-",
            "bytes=a-b",
            "bytes=1-b",
            "bytes=+1-2",
            "bytes=1-+2",
            "bytes=0x10-",
            "bytes=--1",
            "bytes=1-2-3",
            "bytes=0-1,5-2",
            "bytes=0 -1",
            "bytes=0- 1",
            "bytes =0-1",
            "bytes= 0-1x",
            "bytes0-1",
            "0-1",
            "",
            "=",
            "bytes=\u{00e9}-1",
        ] {
            assert_eq!(parse_range(value, 10000), RangeOutcome::Full, "{value:?}");
        }
    }

    #[test]
    fn other_units_are_ignored() {
        assert_eq!(parse_range("items=0-1", 100), RangeOutcome::Full);
        assert_eq!(parse_range("none", 100), RangeOutcome::Full);
        assert_eq!(parse_range("Bytes=0-1", 100), partial(0, 1));
        assert_eq!(parse_range("BYTES=0-1", 100), partial(0, 1));
    }

    #[test]
    fn whitespace_around_elements() {
        assert_eq!(parse_range("  bytes=0-1 ", 100), partial(0, 1));
        assert_eq!(parse_range("bytes=0-1 ,\t2-3", 100), partial(0, 3));
        assert_eq!(parse_range("bytes= 0-1", 100), partial(0, 1));
        assert_eq!(parse_range("bytes=, ,0-1,,", 100), partial(0, 1));
    }

    #[test]
    fn huge_numbers() {
        let huge = "99999999999999999999999999";
        assert_eq!(
            parse_range(&format!("bytes={huge}-"), 100),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(
            parse_range(&format!("bytes={huge}-{huge}9"), 100),
            RangeOutcome::Unsatisfiable
        );
        // first > last even though both overflow: invalid, not unsatisfiable.
        assert_eq!(
            parse_range(&format!("bytes={huge}9-{huge}"), 100),
            RangeOutcome::Full
        );
        assert_eq!(parse_range(&format!("bytes=5-{huge}"), 100), partial(5, 99));
        assert_eq!(parse_range(&format!("bytes=-{huge}"), 100), partial(0, 99));
        let max = u64::MAX;
        assert_eq!(
            parse_range(&format!("bytes=0-{max}"), max),
            partial(0, max - 1)
        );
        assert_eq!(
            parse_range(&format!("bytes={max}-"), max),
            RangeOutcome::Unsatisfiable
        );
        assert_eq!(parse_range("bytes=-1", max), partial(max - 1, max - 1));
        assert_eq!(parse_range("bytes=007-0009", 100), partial(7, 9));
    }

    #[test]
    fn several_ranges() {
        // Overlapping or adjacent ranges coalesce into one 206.
        assert_eq!(parse_range("bytes=0-1,2-5", 100), partial(0, 5));
        assert_eq!(parse_range("bytes=10-20,0-15", 100), partial(0, 20));
        assert_eq!(parse_range("bytes=90-,-5", 100), partial(90, 99));
        // Unsatisfiable specs are dropped.
        assert_eq!(parse_range("bytes=0-4,500-", 100), partial(0, 4));
        assert_eq!(
            parse_range("bytes=500-,600-", 100),
            RangeOutcome::Unsatisfiable
        );
        // Disjoint ranges would need multipart: 200 instead.
        assert_eq!(parse_range("bytes=0-1,5-9", 100), RangeOutcome::Full);
        // Adding up to the whole representation: 200.
        assert_eq!(parse_range("bytes=0-49,50-", 100), RangeOutcome::Full);
        assert_eq!(parse_range("bytes=0-0,-1", 2), RangeOutcome::Full);
    }

    #[test]
    fn too_many_specs_are_ignored() {
        let many = vec!["0-0"; MAX_RANGE_SPECS].join(",");
        assert_eq!(parse_range(&format!("bytes={many}"), 100), partial(0, 0));
        let too_many = vec!["0-0"; MAX_RANGE_SPECS + 1].join(",");
        assert_eq!(
            parse_range(&format!("bytes={too_many}"), 100),
            RangeOutcome::Full
        );
    }

    #[test]
    fn body_len() {
        assert_eq!(RangeOutcome::Full.body_len(10), 10);
        assert_eq!(partial(3, 5).body_len(10), 3);
        assert_eq!(RangeOutcome::Unsatisfiable.body_len(10), 0);
    }
}
