//! A strict bencode decoder that remembers where each value lies in the input
//! (so the info-hash is taken over the exact bytes), with a nesting limit.
//!
//! # Strictness
//! - Integers: `i<digits>e` with an optional `-`; no leading zeros (except `i0e`),
//!   no `-0`, no empty digits, and the value must fit an `i64`.
//! - Byte strings: `<len>:<bytes>`; the length has no leading zeros (except `0`)
//!   and is checked against the remaining input before anything is sliced, so a
//!   huge length prefix is an error, never an allocation.
//! - Dictionaries: keys are byte strings; a repeated key is an error. Keys out of
//!   sorted order are *accepted* (real v1 torrents have them, and the info-hash is
//!   taken over the raw bytes anyway, so no re-encoding ever "fixes" them).
//! - Nesting: at most [`MAX_DEPTH`] lists/dictionaries deep, so a maliciously deep
//!   input is a clean error, not a stack overflow.
//! - Trailing bytes: [`decode`] rejects them; [`decode_prefix`] returns how many
//!   bytes the first value used, so a caller (the .torrent parser) can accept and
//!   report trailing bytes after a complete value.
//!
//! Every decoded value is a [`Node`]: the [`Value`] plus the exact input bytes it
//! was decoded from ([`Node::raw`]) and their offset.

use std::collections::HashSet;

/// Maximum nesting depth of lists and dictionaries (the top-level container
/// counts as depth 1).
pub const MAX_DEPTH: usize = 64;

/// A decoded value together with the exact bytes it was decoded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Node<'a> {
    /// The value.
    pub value: Value<'a>,
    /// The exact input bytes of this value (empty for nodes built in code with
    /// [`Node::new`]).
    pub raw: &'a [u8],
    /// Offset of [`Node::raw`] in the decoded input.
    pub offset: usize,
}

/// A bencoded value. Byte strings borrow from the input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value<'a> {
    /// `i<n>e`.
    Int(i64),
    /// `<len>:<bytes>`.
    Bytes(&'a [u8]),
    /// `l...e`.
    List(Vec<Node<'a>>),
    /// `d...e`: keys and values in input order (keys are unique).
    Dict(Vec<(&'a [u8], Node<'a>)>),
}

/// Why some bytes are not (strict) bencode. Every variant carries the byte
/// offset where the problem was found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The input ended inside a value.
    #[error("unexpected end of input at byte {offset}")]
    UnexpectedEof {
        /// Offset of the end of the input.
        offset: usize,
    },
    /// A byte that cannot start (or continue) a value here.
    #[error("unexpected byte {byte:#04x} at byte {offset}")]
    UnexpectedByte {
        /// Offset of the byte.
        offset: usize,
        /// The byte.
        byte: u8,
    },
    /// An integer that is empty, has a leading zero or is `-0`.
    #[error("malformed integer at byte {offset}")]
    InvalidInteger {
        /// Offset of the `i`.
        offset: usize,
    },
    /// An integer that does not fit an `i64`.
    #[error("integer out of range at byte {offset}")]
    IntegerOverflow {
        /// Offset of the `i`.
        offset: usize,
    },
    /// A malformed string length (leading zero, missing `:` or too many digits).
    #[error("malformed string length at byte {offset}")]
    InvalidLength {
        /// Offset of the first digit.
        offset: usize,
    },
    /// A string length that runs past the end of the input.
    #[error("string of {length} bytes at byte {offset} runs past the end of the input")]
    StringTooLong {
        /// Offset of the first digit of the length.
        offset: usize,
        /// The announced length.
        length: u64,
    },
    /// Lists/dictionaries nested deeper than [`MAX_DEPTH`].
    #[error("nesting deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep {
        /// Offset of the container that is one level too deep.
        offset: usize,
    },
    /// A dictionary key that is not a byte string.
    #[error("dictionary key at byte {offset} is not a byte string")]
    KeyNotString {
        /// Offset of the key.
        offset: usize,
    },
    /// A key that appears twice in one dictionary.
    #[error("duplicate dictionary key {key:?} at byte {offset}")]
    DuplicateKey {
        /// Offset of the second occurrence.
        offset: usize,
        /// The key (lossily decoded, for the message).
        key: String,
    },
    /// Bytes left after a complete value (only from [`decode`]).
    #[error("{count} trailing bytes after the value, at byte {offset}")]
    TrailingBytes {
        /// Offset of the first trailing byte.
        offset: usize,
        /// How many bytes are left.
        count: usize,
    },
}

impl<'a> Node<'a> {
    /// A node for a value built in code (no input bytes); for [`encode`].
    pub fn new(value: Value<'a>) -> Self {
        Self {
            value,
            raw: &[],
            offset: 0,
        }
    }

    /// The value of `key` if this node is a dictionary that has it.
    pub fn get(&self, key: &[u8]) -> Option<&Node<'a>> {
        self.value.get(key)
    }
}

impl<'a> Value<'a> {
    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The byte string, if this is one.
    pub fn as_bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The elements, if this is a list.
    pub fn as_list(&self) -> Option<&[Node<'a>]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// The entries, if this is a dictionary.
    pub fn as_dict(&self) -> Option<&[(&'a [u8], Node<'a>)]> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value of `key` if this is a dictionary that has it.
    pub fn get(&self, key: &[u8]) -> Option<&Node<'a>> {
        self.as_dict()?
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }
}

/// Decodes exactly one value that must span the whole input.
///
/// # Errors
/// Any [`DecodeError`], including [`DecodeError::TrailingBytes`] when bytes are
/// left after the value.
pub fn decode(input: &[u8]) -> Result<Node<'_>, DecodeError> {
    let (node, used) = decode_prefix(input)?;
    if used < input.len() {
        return Err(DecodeError::TrailingBytes {
            offset: used,
            count: input.len() - used,
        });
    }
    Ok(node)
}

/// Decodes the first value of `input` and returns it with the number of bytes
/// it used; whatever follows is left to the caller.
///
/// # Errors
/// Any [`DecodeError`] but [`DecodeError::TrailingBytes`].
pub fn decode_prefix(input: &[u8]) -> Result<(Node<'_>, usize), DecodeError> {
    let mut decoder = Decoder { input, pos: 0 };
    let node = decoder.value(0)?;
    Ok((node, decoder.pos))
}

/// Encodes a value (dictionary entries in the order given: sort them first
/// for canonical bencode).
pub fn encode(value: &Value<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(value, &mut out);
    out
}

/// Appends the encoding of `value` to `out` (see [`encode`]).
pub fn encode_into(value: &Value<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Int(i) => {
            out.push(b'i');
            out.extend_from_slice(i.to_string().as_bytes());
            out.push(b'e');
        }
        Value::Bytes(b) => encode_bytes(b, out),
        Value::List(list) => {
            out.push(b'l');
            for node in list {
                encode_into(&node.value, out);
            }
            out.push(b'e');
        }
        Value::Dict(entries) => {
            out.push(b'd');
            for (key, node) in entries {
                encode_bytes(key, out);
                encode_into(&node.value, out);
            }
            out.push(b'e');
        }
    }
}

fn encode_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(bytes.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(bytes);
}

/// Recursive-descent decoder; recursion is bounded by [`MAX_DEPTH`].
struct Decoder<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    fn peek(&self) -> Result<u8, DecodeError> {
        self.input
            .get(self.pos)
            .copied()
            .ok_or(DecodeError::UnexpectedEof { offset: self.pos })
    }

    /// Decodes the value at `pos`; `depth` is the number of enclosing containers.
    fn value(&mut self, depth: usize) -> Result<Node<'a>, DecodeError> {
        let start = self.pos;
        let value = match self.peek()? {
            b'i' => Value::Int(self.int()?),
            b'0'..=b'9' => Value::Bytes(self.bytes()?),
            b'l' => {
                self.enter(depth)?;
                let mut list = Vec::new();
                while self.peek()? != b'e' {
                    list.push(self.value(depth + 1)?);
                }
                self.pos += 1;
                Value::List(list)
            }
            b'd' => {
                self.enter(depth)?;
                Value::Dict(self.dict_entries(depth)?)
            }
            byte => {
                return Err(DecodeError::UnexpectedByte {
                    offset: start,
                    byte,
                })
            }
        };
        Ok(Node {
            value,
            raw: &self.input[start..self.pos],
            offset: start,
        })
    }

    /// Checks the depth limit and consumes a container's opening byte.
    fn enter(&mut self, depth: usize) -> Result<(), DecodeError> {
        if depth >= MAX_DEPTH {
            return Err(DecodeError::TooDeep { offset: self.pos });
        }
        self.pos += 1;
        Ok(())
    }

    /// The entries of a dictionary whose `d` was consumed; consumes its `e`.
    fn dict_entries(&mut self, depth: usize) -> Result<Vec<(&'a [u8], Node<'a>)>, DecodeError> {
        let mut entries: Vec<(&'a [u8], Node<'a>)> = Vec::new();
        // While keys arrive in strictly increasing order no duplicate is
        // possible; only an out-of-order key switches to a hash set.
        let mut seen: Option<HashSet<&'a [u8]>> = None;
        while self.peek()? != b'e' {
            let key_offset = self.pos;
            if !self.peek()?.is_ascii_digit() {
                return Err(DecodeError::KeyNotString { offset: key_offset });
            }
            let key = self.bytes()?;
            let duplicate = match &mut seen {
                Some(set) => !set.insert(key),
                None => match entries.last() {
                    Some((last, _)) if key <= *last => {
                        let mut set: HashSet<&'a [u8]> = entries.iter().map(|(k, _)| *k).collect();
                        let duplicate = !set.insert(key);
                        seen = Some(set);
                        duplicate
                    }
                    _ => false,
                },
            };
            if duplicate {
                return Err(DecodeError::DuplicateKey {
                    offset: key_offset,
                    key: String::from_utf8_lossy(key).into_owned(),
                });
            }
            let value = self.value(depth + 1)?;
            entries.push((key, value));
        }
        self.pos += 1;
        Ok(entries)
    }

    /// `i<n>e` at `pos`.
    fn int(&mut self) -> Result<i64, DecodeError> {
        let offset = self.pos;
        self.pos += 1; // 'i'
        let negative = self.peek()? == b'-';
        if negative {
            self.pos += 1;
        }
        let digits_start = self.pos;
        let mut value: i64 = 0;
        loop {
            let byte = self.peek()?;
            match byte {
                b'0'..=b'9' => {
                    let digit = i64::from(byte - b'0');
                    // Accumulate negatively so that i64::MIN is representable.
                    value = value
                        .checked_mul(10)
                        .and_then(|v| {
                            if negative {
                                v.checked_sub(digit)
                            } else {
                                v.checked_add(digit)
                            }
                        })
                        .ok_or(DecodeError::IntegerOverflow { offset })?;
                    self.pos += 1;
                }
                b'e' => break,
                _ => {
                    return Err(DecodeError::UnexpectedByte {
                        offset: self.pos,
                        byte,
                    })
                }
            }
        }
        let digits = &self.input[digits_start..self.pos];
        let malformed = digits.is_empty() || (digits[0] == b'0' && (digits.len() > 1 || negative));
        if malformed {
            return Err(DecodeError::InvalidInteger { offset });
        }
        self.pos += 1; // 'e'
        Ok(value)
    }

    /// `<len>:<bytes>` at `pos`.
    fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let offset = self.pos;
        let mut length: u64 = 0;
        let mut digits = 0usize;
        loop {
            let byte = self.peek()?;
            match byte {
                b'0'..=b'9' => {
                    length = length
                        .checked_mul(10)
                        .and_then(|l| l.checked_add(u64::from(byte - b'0')))
                        .ok_or(DecodeError::InvalidLength { offset })?;
                    digits += 1;
                    self.pos += 1;
                }
                b':' => break,
                _ => {
                    return Err(DecodeError::UnexpectedByte {
                        offset: self.pos,
                        byte,
                    })
                }
            }
        }
        if digits > 1 && self.input[offset] == b'0' {
            return Err(DecodeError::InvalidLength { offset });
        }
        self.pos += 1; // ':'
        let remaining = self.input.len() - self.pos;
        let len = usize::try_from(length)
            .ok()
            .filter(|&len| len <= remaining)
            .ok_or(DecodeError::StringTooLong { offset, length })?;
        let bytes = &self.input[self.pos..self.pos + len];
        self.pos += len;
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(input: &[u8]) -> DecodeError {
        decode(input).unwrap_err()
    }

    #[test]
    fn integers() {
        assert_eq!(decode(b"i0e").unwrap().value, Value::Int(0));
        assert_eq!(decode(b"i42e").unwrap().value, Value::Int(42));
        assert_eq!(decode(b"i-42e").unwrap().value, Value::Int(-42));
        assert_eq!(
            decode(b"i9223372036854775807e").unwrap().value,
            Value::Int(i64::MAX)
        );
        assert_eq!(
            decode(b"i-9223372036854775808e").unwrap().value,
            Value::Int(i64::MIN)
        );
    }

    #[test]
    fn malformed_integers() {
        assert_eq!(err(b"i07e"), DecodeError::InvalidInteger { offset: 0 });
        assert_eq!(err(b"i00e"), DecodeError::InvalidInteger { offset: 0 });
        assert_eq!(err(b"i-0e"), DecodeError::InvalidInteger { offset: 0 });
        assert_eq!(err(b"i-07e"), DecodeError::InvalidInteger { offset: 0 });
        assert_eq!(err(b"ie"), DecodeError::InvalidInteger { offset: 0 });
        assert_eq!(err(b"i-e"), DecodeError::InvalidInteger { offset: 0 });
        assert_eq!(
            err(b"i9223372036854775808e"),
            DecodeError::IntegerOverflow { offset: 0 }
        );
        assert_eq!(
            err(b"i-9223372036854775809e"),
            DecodeError::IntegerOverflow { offset: 0 }
        );
        assert_eq!(
            err(b"i1.5e"),
            DecodeError::UnexpectedByte {
                offset: 2,
                byte: b'.'
            }
        );
        assert_eq!(
            err(b"i+1e"),
            DecodeError::UnexpectedByte {
                offset: 1,
                byte: b'+'
            }
        );
        assert_eq!(err(b"i12"), DecodeError::UnexpectedEof { offset: 3 });
    }

    #[test]
    fn strings() {
        assert_eq!(decode(b"0:").unwrap().value, Value::Bytes(b""));
        assert_eq!(decode(b"4:spam").unwrap().value, Value::Bytes(b"spam"));
        assert_eq!(decode(b"3:a\x00b").unwrap().value, Value::Bytes(b"a\x00b"));
    }

    #[test]
    fn malformed_strings() {
        assert_eq!(err(b"04:spam"), DecodeError::InvalidLength { offset: 0 });
        assert_eq!(
            err(b"5:spam"),
            DecodeError::StringTooLong {
                offset: 0,
                length: 5
            }
        );
        // A huge length prefix is rejected before anything is allocated.
        assert_eq!(
            err(b"18446744073709551615:x"),
            DecodeError::StringTooLong {
                offset: 0,
                length: u64::MAX
            }
        );
        assert_eq!(
            err(b"99999999999999999999999:x"),
            DecodeError::InvalidLength { offset: 0 }
        );
        assert_eq!(err(b"4"), DecodeError::UnexpectedEof { offset: 1 });
        assert_eq!(
            err(b"4x"),
            DecodeError::UnexpectedByte {
                offset: 1,
                byte: b'x'
            }
        );
    }

    #[test]
    fn containers() {
        assert_eq!(decode(b"le").unwrap().value, Value::List(vec![]));
        assert_eq!(decode(b"de").unwrap().value, Value::Dict(vec![]));
        let node = decode(b"d3:bar4:spam3:fooi42e4:listli1e0:ee").unwrap();
        assert_eq!(node.get(b"foo").unwrap().value, Value::Int(42));
        assert_eq!(
            node.get(b"bar").unwrap().value.as_bytes(),
            Some(&b"spam"[..])
        );
        let list = node.get(b"list").unwrap();
        assert_eq!(list.raw, b"li1e0:e");
        assert_eq!(list.offset, 27);
        assert_eq!(list.value.as_list().unwrap().len(), 2);
        assert!(node.get(b"missing").is_none());
    }

    #[test]
    fn raw_span_is_exact() {
        let input = b"d4:infod4:name1:x6:lengthi1ee3:zzzi0ee";
        let node = decode(input).unwrap();
        let info = node.get(b"info").unwrap();
        assert_eq!(info.raw, b"d4:name1:x6:lengthi1ee");
        assert_eq!(&input[info.offset..info.offset + info.raw.len()], info.raw);
        assert_eq!(node.raw, &input[..]);
    }

    #[test]
    fn unsorted_keys_are_accepted() {
        let node = decode(b"d1:bi1e1:ai2ee").unwrap();
        assert_eq!(node.get(b"a").unwrap().value, Value::Int(2));
    }

    #[test]
    fn duplicate_keys_are_rejected() {
        assert!(matches!(
            err(b"d1:ai1e1:ai2ee"),
            DecodeError::DuplicateKey { offset: 7, .. }
        ));
        // Also when the duplicate is only found after keys went out of order.
        assert!(matches!(
            err(b"d1:ai1e1:ci1e1:bi1e1:ci2ee"),
            DecodeError::DuplicateKey { offset: 19, .. }
        ));
    }

    #[test]
    fn non_string_keys_are_rejected() {
        assert_eq!(err(b"di1ei2ee"), DecodeError::KeyNotString { offset: 1 });
        assert_eq!(err(b"dlei2ee"), DecodeError::KeyNotString { offset: 1 });
    }

    #[test]
    fn truncation_is_an_error_everywhere() {
        let full = b"d4:infod5:filesld6:lengthi1e4:pathl1:aeee4:name1:xee";
        decode(full).unwrap();
        for cut in 0..full.len() {
            assert!(decode(&full[..cut]).is_err(), "cut at {cut}");
        }
    }

    #[test]
    fn depth_limit() {
        let ok = [vec![b'l'; MAX_DEPTH], vec![b'e'; MAX_DEPTH]].concat();
        decode(&ok).unwrap();
        let deep = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert_eq!(
            decode(&deep).unwrap_err(),
            DecodeError::TooDeep { offset: MAX_DEPTH }
        );
        // Far deeper than any stack would allow without the limit.
        let very_deep = b"d1:a".repeat(100_000);
        assert!(matches!(
            decode(&very_deep).unwrap_err(),
            DecodeError::TooDeep { .. }
        ));
    }

    #[test]
    fn trailing_bytes() {
        assert_eq!(
            err(b"i1e\n"),
            DecodeError::TrailingBytes {
                offset: 3,
                count: 1
            }
        );
        let (node, used) = decode_prefix(b"dexyz").unwrap();
        assert_eq!(node.value, Value::Dict(vec![]));
        assert_eq!(used, 2);
        assert_eq!(err(b""), DecodeError::UnexpectedEof { offset: 0 });
        assert_eq!(
            err(b"e"),
            DecodeError::UnexpectedByte {
                offset: 0,
                byte: b'e'
            }
        );
    }

    #[test]
    fn encode_round_trips() {
        for input in [
            &b"i0e"[..],
            b"i-17e",
            b"0:",
            b"4:spam",
            b"le",
            b"de",
            b"d3:bar4:spam3:fooli1eli2eedeee",
            b"d1:bi1e1:ai2ee",
        ] {
            let node = decode(input).unwrap();
            assert_eq!(encode(&node.value), input);
        }
        let built = Value::Dict(vec![
            (&b"a"[..], Node::new(Value::Int(-3))),
            (
                b"b",
                Node::new(Value::List(vec![Node::new(Value::Bytes(b"xy"))])),
            ),
        ]);
        assert_eq!(encode(&built), b"d1:ai-3e1:bl2:xyee");
    }
}
