//! The .torrent bytes, key for key as mktorrent writes them.
//!
//! The `info` dictionary holds `length` (a single file) or `files` (a
//! folder, even one holding a single file), then `name`, `piece length`,
//! `pieces`, then `private` (only when set, as `1`) and `source` (only when
//! given): mktorrent's keys for the same options, so that the same content
//! and piece length give mktorrent's info-hash. Around it: `announce` (the
//! first tracker), `announce-list` (only when there is more than one tracker),
//! `comment`, `created by`, `creation date`, and `url-list` (a string for one
//! web seed, a list for more).

use std::os::unix::ffi::OsStrExt;

use crate::bencode::{encode, encode_into, Node, Value};
use crate::create::scan::Content;

/// The fields of a .torrent besides the content and its hashes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Extras {
    pub trackers: Vec<Vec<String>>,
    pub web_seeds: Vec<String>,
    pub private: bool,
    pub source: Option<String>,
    pub comment: Option<String>,
    pub created_by: Option<String>,
    pub creation_date: Option<i64>,
}

fn node(value: Value<'_>) -> Node<'_> {
    Node::new(value)
}

fn bytes(b: &[u8]) -> Node<'_> {
    node(Value::Bytes(b))
}

/// The bencoded `info` dictionary (keys in sorted order).
pub(crate) fn info_dict(
    content: &Content,
    piece_length: u32,
    pieces: &[u8],
    extras: &Extras,
) -> Vec<u8> {
    let mut entries: Vec<(&[u8], Node<'_>)> = Vec::new();
    if content.is_folder {
        let files = content
            .files
            .iter()
            .map(|file| {
                let path = file.components.iter().map(|c| bytes(c.as_bytes()));
                node(Value::Dict(vec![
                    (b"length", node(Value::Int(length(file.length)))),
                    (b"path", node(Value::List(path.collect()))),
                ]))
            })
            .collect();
        entries.push((b"files", node(Value::List(files))));
    } else {
        entries.push((b"length", node(Value::Int(length(content.total_length())))));
    }
    entries.push((b"name", bytes(content.name.as_bytes())));
    entries.push((b"piece length", node(Value::Int(piece_length.into()))));
    entries.push((b"pieces", bytes(pieces)));
    if extras.private {
        entries.push((b"private", node(Value::Int(1))));
    }
    if let Some(source) = &extras.source {
        entries.push((b"source", bytes(source.as_bytes())));
    }
    encode(&Value::Dict(entries))
}

/// A file length as a bencode integer (lengths past `i64::MAX` do not exist).
fn length(len: u64) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

/// The whole .torrent around an already encoded `info` dictionary.
pub(crate) fn torrent(info: &[u8], extras: &Extras) -> Vec<u8> {
    let mut out = b"d".to_vec();
    let urls: Vec<&String> = extras.trackers.iter().flatten().collect();
    if let Some(first) = urls.first() {
        key_bytes(&mut out, b"announce", first.as_bytes());
    }
    if urls.len() > 1 {
        let tiers = extras
            .trackers
            .iter()
            .filter(|tier| !tier.is_empty())
            .map(|tier| {
                node(Value::List(
                    tier.iter().map(|u| bytes(u.as_bytes())).collect(),
                ))
            })
            .collect();
        encode_into(&Value::Bytes(b"announce-list"), &mut out);
        encode_into(&Value::List(tiers), &mut out);
    }
    if let Some(comment) = &extras.comment {
        key_bytes(&mut out, b"comment", comment.as_bytes());
    }
    if let Some(created_by) = &extras.created_by {
        key_bytes(&mut out, b"created by", created_by.as_bytes());
    }
    if let Some(date) = extras.creation_date {
        encode_into(&Value::Bytes(b"creation date"), &mut out);
        encode_into(&Value::Int(date), &mut out);
    }
    encode_into(&Value::Bytes(b"info"), &mut out);
    out.extend_from_slice(info);
    match extras.web_seeds.as_slice() {
        [] => {}
        [one] => key_bytes(&mut out, b"url-list", one.as_bytes()),
        many => {
            let list = many.iter().map(|u| bytes(u.as_bytes())).collect();
            encode_into(&Value::Bytes(b"url-list"), &mut out);
            encode_into(&Value::List(list), &mut out);
        }
    }
    out.push(b'e');
    out
}

fn key_bytes(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    encode_into(&Value::Bytes(key), out);
    encode_into(&Value::Bytes(value), out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::create::scan::InputFile;

    fn content(is_folder: bool) -> Content {
        let file = |components: &[&str], length| InputFile {
            disk_path: "unused".into(),
            components: components.iter().map(|c| c.into()).collect(),
            length,
        };
        Content {
            name: "n".into(),
            is_folder,
            files: if is_folder {
                vec![file(&["a", "b"], 3), file(&["c"], 0)]
            } else {
                vec![file(&[], 3)]
            },
        }
    }

    #[test]
    fn the_info_dictionary_is_mktorrents_byte_for_byte() {
        let pieces = [9u8; 20];
        let plain = Extras::default();
        let single = info_dict(&content(false), 16384, &pieces, &plain);
        let mut expected = b"d6:lengthi3e4:name1:n12:piece lengthi16384e6:pieces20:".to_vec();
        expected.extend_from_slice(&pieces);
        expected.push(b'e');
        assert_eq!(single, expected);

        let extras = Extras {
            private: true,
            source: Some("SRC".into()),
            ..Extras::default()
        };
        let multi = info_dict(&content(true), 32768, &pieces, &extras);
        let mut expected = b"d5:filesld6:lengthi3e4:pathl1:a1:beed6:lengthi0e4:pathl1:ceee\
4:name1:n12:piece lengthi32768e6:pieces20:"
            .to_vec();
        expected.extend_from_slice(&pieces);
        expected.extend_from_slice(b"7:privatei1e6:source3:SRCe");
        assert_eq!(multi, expected);
    }

    #[test]
    fn announce_list_only_for_several_trackers_and_url_list_a_string_for_one() {
        let one = Extras {
            trackers: vec![vec!["http://t/a".into()]],
            web_seeds: vec!["http://w/".into()],
            created_by: Some("me".into()),
            ..Extras::default()
        };
        assert_eq!(
            torrent(b"de", &one),
            b"d8:announce10:http://t/a10:created by2:me4:infode8:url-list9:http://w/e".to_vec()
        );
        let many = Extras {
            trackers: vec![vec!["u1".into(), "u2".into()], vec!["u3".into()]],
            web_seeds: vec!["w1".into(), "w2".into()],
            comment: Some("hi".into()),
            creation_date: Some(7),
            ..Extras::default()
        };
        assert_eq!(
            torrent(b"de", &many),
            b"d8:announce2:u113:announce-listll2:u12:u2el2:u3ee7:comment2:hi\
13:creation datei7e4:infode8:url-listl2:w12:w2ee"
                .to_vec()
        );
    }
}
