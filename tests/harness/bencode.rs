//! A small bencode reader and writer for the tests, independent of the engine's code: to
//! read .torrent files and resume records, and to craft hostile .torrent files by hand.

use std::collections::BTreeMap;

/// A bencoded value. Dictionaries keep their keys sorted (as bencode requires).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bencode {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Bencode>),
    Dict(BTreeMap<Vec<u8>, Bencode>),
}

impl Bencode {
    /// A byte string.
    pub fn bytes(b: impl AsRef<[u8]>) -> Bencode {
        Bencode::Bytes(b.as_ref().to_vec())
    }

    /// A dictionary from `(key, value)` pairs.
    pub fn dict<K: AsRef<[u8]>>(pairs: impl IntoIterator<Item = (K, Bencode)>) -> Bencode {
        Bencode::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_ref().to_vec(), v))
                .collect(),
        )
    }

    /// The value of `key` in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Bencode> {
        match self {
            Bencode::Dict(d) => d.get(key.as_bytes()),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Bencode::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Bencode::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Bencode]> {
        match self {
            Bencode::List(l) => Some(l),
            _ => None,
        }
    }

    /// The bencoded bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Bencode::Int(i) => out.extend_from_slice(format!("i{i}e").as_bytes()),
            Bencode::Bytes(b) => {
                out.extend_from_slice(format!("{}:", b.len()).as_bytes());
                out.extend_from_slice(b);
            }
            Bencode::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Bencode::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    Bencode::Bytes(k.clone()).encode_into(out);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes exactly one value that spans all of `input`.
    pub fn decode(input: &[u8]) -> Result<Bencode, String> {
        let (value, end) = decode_at(input, 0, 0)?;
        if end != input.len() {
            return Err(format!(
                "{} trailing bytes after the value",
                input.len() - end
            ));
        }
        Ok(value)
    }
}

fn decode_at(b: &[u8], i: usize, depth: usize) -> Result<(Bencode, usize), String> {
    if depth > 64 {
        return Err("nested too deep".into());
    }
    match b.get(i).copied() {
        None => Err(format!("unexpected end at {i}")),
        Some(b'i') => {
            let end = i + b[i..]
                .iter()
                .position(|&c| c == b'e')
                .ok_or(format!("unterminated integer at {i}"))?;
            let text = std::str::from_utf8(&b[i + 1..end]).map_err(|e| e.to_string())?;
            let n = text
                .parse()
                .map_err(|e| format!("integer {text:?} at {i}: {e}"))?;
            Ok((Bencode::Int(n), end + 1))
        }
        Some(b'l') => {
            let mut j = i + 1;
            let mut items = Vec::new();
            while b.get(j) != Some(&b'e') {
                let (v, next) = decode_at(b, j, depth + 1)?;
                items.push(v);
                j = next;
            }
            Ok((Bencode::List(items), j + 1))
        }
        Some(b'd') => {
            let mut j = i + 1;
            let mut map = BTreeMap::new();
            while b.get(j) != Some(&b'e') {
                let (k, next) = decode_at(b, j, depth + 1)?;
                let Bencode::Bytes(k) = k else {
                    return Err(format!("dictionary key at {j} is not a string"));
                };
                let (v, next) = decode_at(b, next, depth + 1)?;
                if map.insert(k, v).is_some() {
                    return Err(format!("duplicate key at {j}"));
                }
                j = next;
            }
            Ok((Bencode::Dict(map), j + 1))
        }
        Some(c) if c.is_ascii_digit() => {
            let colon = i + b[i..]
                .iter()
                .position(|&c| c == b':')
                .ok_or(format!("string length without ':' at {i}"))?;
            let len: usize = std::str::from_utf8(&b[i..colon])
                .map_err(|e| e.to_string())?
                .parse()
                .map_err(|e| format!("string length at {i}: {e}"))?;
            let end = colon + 1 + len;
            if end > b.len() {
                return Err(format!("string at {i} runs past the end"));
            }
            Ok((Bencode::Bytes(b[colon + 1..end].to_vec()), end))
        }
        Some(c) => Err(format!("unexpected byte {c:#04x} at {i}")),
    }
}
