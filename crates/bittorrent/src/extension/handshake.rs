//! BEP 10: the reserved bit that announces the extension protocol, the extended handshake
//! (extended message id 0) and the per-peer map of extension message ids.
//!
//! # Decoding is tolerant
//! The top level must be a bencoded dictionary (and nothing else), but every key in it is
//! optional: unknown keys are ignored, and so is a known key whose value has the wrong type
//! or is out of range (a port of 0 or 70000, a `yourip` of 5 bytes, an `m` entry that is
//! not an integer in 0..=255). At most [`MAX_M_ENTRIES`] entries of `m` are kept, names
//! longer than [`MAX_NAME_LEN`] bytes are skipped and `v` is cut to [`MAX_VERSION_LEN`]
//! characters.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::bencode::{self, Node, Value};
use crate::extension::{encode_dict, get_bytes, get_int, ExtensionError};

/// Index of the reserved handshake byte that holds the extension protocol bit.
pub const EXTENSION_BYTE: usize = 5;

/// The extension protocol bit in `reserved[EXTENSION_BYTE]` (bit 20 counted from the
/// right of the 64 reserved bits).
pub const EXTENSION_BIT: u8 = 0x10;

/// Most `m` entries kept from a peer's handshake.
pub const MAX_M_ENTRIES: usize = 64;

/// Longest extension name (in bytes) kept from `m`.
pub const MAX_NAME_LEN: usize = 64;

/// Longest client version string (in characters) kept from `v`.
pub const MAX_VERSION_LEN: usize = 128;

/// Whether a peer's reserved handshake bytes announce the extension protocol.
pub fn supports_extensions(reserved: &[u8; 8]) -> bool {
    reserved[EXTENSION_BYTE] & EXTENSION_BIT != 0
}

/// Sets the extension protocol bit in our reserved handshake bytes.
pub fn set_extension_bit(reserved: &mut [u8; 8]) {
    reserved[EXTENSION_BYTE] |= EXTENSION_BIT;
}

/// The extended handshake (BEP 10, extended message id 0).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExtendedHandshake {
    /// Extension name → the id the sender wants to receive it under; 0 disables it.
    pub m: BTreeMap<String, u8>,
    /// Client name and version.
    pub v: Option<String>,
    /// The sender's TCP listen port.
    pub p: Option<u16>,
    /// How many outstanding requests the sender queues.
    pub reqq: Option<u32>,
    /// Size of the info dictionary in bytes (BEP 9), sent by peers that have it.
    pub metadata_size: Option<u64>,
    /// Our address as the sender sees it (4 or 16 bytes on the wire).
    pub yourip: Option<IpAddr>,
    /// The sender's own IPv4 address.
    pub ipv4: Option<Ipv4Addr>,
    /// The sender's own IPv6 address.
    pub ipv6: Option<Ipv6Addr>,
}

impl ExtendedHandshake {
    /// A handshake advertising the local ids of `ids`, with every other field empty.
    pub fn new(ids: &ExtensionIds) -> Self {
        Self {
            m: ids.local_m(),
            ..Self::default()
        }
    }

    /// Decodes the body of an extended handshake (after the extended id byte).
    ///
    /// # Errors
    /// [`ExtensionError::Bencode`] when the body is not exactly one bencoded value and
    /// [`ExtensionError::NotADict`] when that value is not a dictionary. Bad optional
    /// keys are ignored (see the module docs).
    pub fn decode(body: &[u8]) -> Result<Self, ExtensionError> {
        let root = bencode::decode(body)?;
        if root.value.as_dict().is_none() {
            return Err(ExtensionError::NotADict);
        }
        let mut m = BTreeMap::new();
        if let Some(entries) = root.get(b"m").and_then(|n| n.value.as_dict()) {
            for (name, node) in entries {
                if m.len() >= MAX_M_ENTRIES {
                    break;
                }
                let Ok(name) = std::str::from_utf8(name) else {
                    continue;
                };
                let id = node.value.as_int().and_then(|i| u8::try_from(i).ok());
                if let (Some(id), true) = (id, name.len() <= MAX_NAME_LEN) {
                    m.insert(name.to_owned(), id);
                }
            }
        }
        let v = get_bytes(&root, b"v").map(|v| {
            String::from_utf8_lossy(v)
                .chars()
                .take(MAX_VERSION_LEN)
                .collect()
        });
        Ok(Self {
            m,
            v,
            p: get_int(&root, b"p")
                .and_then(|p| u16::try_from(p).ok())
                .filter(|&p| p != 0),
            reqq: get_int(&root, b"reqq").and_then(|r| u32::try_from(r).ok()),
            metadata_size: get_int(&root, b"metadata_size").and_then(|s| u64::try_from(s).ok()),
            yourip: get_bytes(&root, b"yourip").and_then(ip_from_bytes),
            ipv4: get_bytes(&root, b"ipv4")
                .and_then(|b| <[u8; 4]>::try_from(b).ok())
                .map(Ipv4Addr::from),
            ipv6: get_bytes(&root, b"ipv6")
                .and_then(|b| <[u8; 16]>::try_from(b).ok())
                .map(Ipv6Addr::from),
        })
    }

    /// Encodes the body of an extended handshake (canonical bencode; `m` is always present).
    pub fn encode(&self) -> Vec<u8> {
        let ipv4 = self.ipv4.map(|ip| ip.octets());
        let ipv6 = self.ipv6.map(|ip| ip.octets());
        let yourip: Option<Vec<u8>> = self.yourip.map(|ip| match ip {
            IpAddr::V4(v4) => v4.octets().to_vec(),
            IpAddr::V6(v6) => v6.octets().to_vec(),
        });
        let m = self
            .m
            .iter()
            .map(|(name, &id)| (name.as_bytes(), Node::new(Value::Int(id.into()))))
            .collect();

        let mut entries: Vec<(&[u8], Value<'_>)> = Vec::new();
        if let Some(ip) = &ipv4 {
            entries.push((b"ipv4", Value::Bytes(ip)));
        }
        if let Some(ip) = &ipv6 {
            entries.push((b"ipv6", Value::Bytes(ip)));
        }
        entries.push((b"m", Value::Dict(m)));
        if let Some(size) = self.metadata_size {
            entries.push((b"metadata_size", Value::Int(clamp_i64(size))));
        }
        if let Some(p) = self.p {
            entries.push((b"p", Value::Int(p.into())));
        }
        if let Some(reqq) = self.reqq {
            entries.push((b"reqq", Value::Int(reqq.into())));
        }
        if let Some(v) = &self.v {
            entries.push((b"v", Value::Bytes(v.as_bytes())));
        }
        if let Some(ip) = &yourip {
            entries.push((b"yourip", Value::Bytes(ip)));
        }
        encode_dict(entries)
    }
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn ip_from_bytes(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        Some(IpAddr::from(v4))
    } else {
        <[u8; 16]>::try_from(bytes).ok().map(IpAddr::from)
    }
}

/// An extension we implement.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Extension {
    /// BEP 9 `ut_metadata`.
    Metadata,
    /// BEP 11 `ut_pex`.
    Pex,
}

impl Extension {
    /// Every extension we implement.
    pub const ALL: [Extension; 2] = [Extension::Metadata, Extension::Pex];

    /// Its name in the handshake's `m` dictionary.
    pub fn name(self) -> &'static str {
        match self {
            Extension::Metadata => "ut_metadata",
            Extension::Pex => "ut_pex",
        }
    }

    /// The extension with this `m` name, if we implement it.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.name() == name)
    }

    fn index(self) -> usize {
        match self {
            Extension::Metadata => 0,
            Extension::Pex => 1,
        }
    }
}

/// The extension message ids of one connection, both ways.
///
/// *Local* ids are the ones we advertise in our handshake: the peer sends us
/// messages with them. *Remote* ids come from the peer's handshake: we send with them.
/// Id 0 means disabled and is never returned. Local ids are distinct (enforced by
/// [`ExtensionIds::set_local`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionIds {
    local: [u8; 2],
    remote: [u8; 2],
}

impl Default for ExtensionIds {
    fn default() -> Self {
        Self::new()
    }
}

impl ExtensionIds {
    /// Our default local ids: `ut_metadata` = 1, `ut_pex` = 2; nothing known of the peer.
    pub fn new() -> Self {
        Self {
            local: [1, 2],
            remote: [0, 0],
        }
    }

    /// Sets our local id for `ext` (0 disables it, e.g. PEX on a private torrent).
    /// Returns `false`, changing nothing, if another extension already uses `id`.
    pub fn set_local(&mut self, ext: Extension, id: u8) -> bool {
        let taken = Extension::ALL
            .into_iter()
            .any(|other| other != ext && id != 0 && self.local[other.index()] == id);
        if !taken {
            self.local[ext.index()] = id;
        }
        !taken
    }

    /// Our id for `ext`, if enabled.
    pub fn local_id(&self, ext: Extension) -> Option<u8> {
        Some(self.local[ext.index()]).filter(|&id| id != 0)
    }

    /// The peer's id for `ext`, if it enabled it.
    pub fn remote_id(&self, ext: Extension) -> Option<u8> {
        Some(self.remote[ext.index()]).filter(|&id| id != 0)
    }

    /// Which extension an incoming message with extended id `id` belongs to.
    pub fn local_extension(&self, id: u8) -> Option<Extension> {
        Self::find(&self.local, id)
    }

    /// Which extension the peer maps to `id`.
    pub fn remote_extension(&self, id: u8) -> Option<Extension> {
        Self::find(&self.remote, id)
    }

    fn find(ids: &[u8; 2], id: u8) -> Option<Extension> {
        if id == 0 {
            return None;
        }
        Extension::ALL.into_iter().find(|e| ids[e.index()] == id)
    }

    /// Applies a handshake from the peer. BEP 10 allows later handshakes that change
    /// only some entries: extensions absent from `m` keep their id, and 0 disables one.
    pub fn update_remote(&mut self, handshake: &ExtendedHandshake) {
        for ext in Extension::ALL {
            if let Some(&id) = handshake.m.get(ext.name()) {
                self.remote[ext.index()] = id;
            }
        }
    }

    /// Our enabled extensions as the `m` dictionary of our handshake.
    pub fn local_m(&self) -> BTreeMap<String, u8> {
        Extension::ALL
            .into_iter()
            .filter_map(|e| Some((e.name().to_owned(), self.local_id(e)?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_bit() {
        let mut reserved = [0u8; 8];
        assert!(!supports_extensions(&reserved));
        set_extension_bit(&mut reserved);
        assert_eq!(reserved, [0, 0, 0, 0, 0, 0x10, 0, 0]);
        assert!(supports_extensions(&reserved));
        let mut others = [0xff, 0xff, 0xff, 0xff, 0xff, 0xef, 0xff, 0xff];
        assert!(!supports_extensions(&others));
        set_extension_bit(&mut others);
        assert_eq!(others, [0xff; 8]);
    }

    #[test]
    fn decode_bep10_style_example() {
        // The shape of BEP 10's example: m, p and a UTF-8 v ("µTorrent 1.2" is 13 bytes).
        let body = "d1:md11:ut_metadatai3e6:ut_pexi1ee1:pi6881e1:v13:µTorrent 1.2e";
        let hs = ExtendedHandshake::decode(body.as_bytes()).unwrap();
        assert_eq!(hs.m.get("ut_metadata"), Some(&3));
        assert_eq!(hs.m.get("ut_pex"), Some(&1));
        assert_eq!(hs.p, Some(6881));
        assert_eq!(hs.v.as_deref(), Some("µTorrent 1.2"));
        assert_eq!(hs.reqq, None);
        // Canonical input encodes back byte for byte.
        assert_eq!(hs.encode(), body.as_bytes());
    }

    #[test]
    fn full_round_trip() {
        let mut hs = ExtendedHandshake::new(&ExtensionIds::new());
        hs.v = Some("bt 0.1".into());
        hs.p = Some(51413);
        hs.reqq = Some(250);
        hs.metadata_size = Some(31235);
        hs.yourip = Some("2001:db8::7".parse().unwrap());
        hs.ipv4 = Some(Ipv4Addr::new(10, 1, 2, 3));
        hs.ipv6 = Some("::1".parse().unwrap());
        let bytes = hs.encode();
        assert!(bytes.starts_with(b"d4:ipv44:\x0a\x01\x02\x034:ipv616:"));
        assert_eq!(ExtendedHandshake::decode(&bytes), Ok(hs.clone()));

        hs.yourip = Some(IpAddr::V4(Ipv4Addr::new(1, 2, 3, 4)));
        let bytes = hs.encode();
        assert!(bytes.ends_with(b"6:yourip4:\x01\x02\x03\x04e"));
        assert_eq!(ExtendedHandshake::decode(&bytes), Ok(hs));
    }

    #[test]
    fn empty_handshake() {
        assert_eq!(ExtendedHandshake::default().encode(), b"d1:mdee");
        assert_eq!(
            ExtendedHandshake::decode(b"de"),
            Ok(ExtendedHandshake::default())
        );
    }

    #[test]
    fn wrong_typed_and_out_of_range_keys_are_ignored() {
        let body = b"d4:ipv43:abc4:ipv64:abcd1:md1:ai-1e1:bi256e1:c1:x1:di0e1:ei255ee\
                     13:metadata_sizei-5e1:pi70000e4:reqqli1ee7:unknowni1e1:vi3e\
                     6:yourip5:abcdee";
        let hs = ExtendedHandshake::decode(body).unwrap();
        let expected: BTreeMap<String, u8> = [("d".to_owned(), 0), ("e".to_owned(), 255)].into();
        assert_eq!(hs.m, expected);
        assert_eq!(
            hs,
            ExtendedHandshake {
                m: expected,
                ..ExtendedHandshake::default()
            }
        );
        // Port 0 and an `m` that is not a dictionary.
        let hs = ExtendedHandshake::decode(b"d1:mi1e1:pi0ee").unwrap();
        assert_eq!(hs, ExtendedHandshake::default());
    }

    #[test]
    fn caps_on_names_and_entries() {
        let mut body = b"d1:md".to_vec();
        let mut names: Vec<String> = (0..100).map(|i| format!("x{i:03}")).collect();
        names.sort();
        for name in &names {
            body.extend_from_slice(format!("{}:{}i1e", name.len(), name).as_bytes());
        }
        let long = "z".repeat(MAX_NAME_LEN + 1);
        body.extend_from_slice(format!("{}:{}i1e", long.len(), long).as_bytes());
        let v = "é".repeat(MAX_VERSION_LEN + 10);
        body.extend_from_slice(format!("e1:v{}:{v}e", v.len()).as_bytes());
        let hs = ExtendedHandshake::decode(&body).unwrap();
        assert_eq!(hs.m.len(), MAX_M_ENTRIES);
        assert!(!hs.m.contains_key(&long));
        assert_eq!(hs.v.unwrap().chars().count(), MAX_VERSION_LEN);

        // A name at the limit is kept.
        let ok = "y".repeat(MAX_NAME_LEN);
        let body = format!("d1:md{}:{ok}i9eee", ok.len());
        assert_eq!(
            ExtendedHandshake::decode(body.as_bytes()).unwrap().m[&ok],
            9
        );
    }

    #[test]
    fn strict_top_level() {
        assert_eq!(
            ExtendedHandshake::decode(b"le"),
            Err(ExtensionError::NotADict)
        );
        assert!(matches!(
            ExtendedHandshake::decode(b"d1:mdeeXX"),
            Err(ExtensionError::Bencode(
                bencode::DecodeError::TrailingBytes { .. }
            ))
        ));
        assert!(matches!(
            ExtendedHandshake::decode(b""),
            Err(ExtensionError::Bencode(_))
        ));
        assert!(matches!(
            ExtendedHandshake::decode(b"d1:md"),
            Err(ExtensionError::Bencode(_))
        ));
    }

    #[test]
    fn extension_ids_both_ways() {
        let mut ids = ExtensionIds::new();
        assert_eq!(ids.local_id(Extension::Metadata), Some(1));
        assert_eq!(ids.local_id(Extension::Pex), Some(2));
        assert_eq!(ids.local_extension(1), Some(Extension::Metadata));
        assert_eq!(ids.local_extension(2), Some(Extension::Pex));
        assert_eq!(ids.local_extension(0), None);
        assert_eq!(ids.local_extension(3), None);
        assert_eq!(ids.remote_id(Extension::Metadata), None);
        assert_eq!(ids.remote_extension(0), None);

        let hs = ExtendedHandshake::decode(b"d1:md11:ut_metadatai5e6:ut_pexi9e3:fooi1eee").unwrap();
        ids.update_remote(&hs);
        assert_eq!(ids.remote_id(Extension::Metadata), Some(5));
        assert_eq!(ids.remote_id(Extension::Pex), Some(9));
        assert_eq!(ids.remote_extension(9), Some(Extension::Pex));
        assert_eq!(ids.remote_extension(1), None);

        // A later handshake disables PEX and leaves ut_metadata alone.
        let hs = ExtendedHandshake::decode(b"d1:md6:ut_pexi0eee").unwrap();
        ids.update_remote(&hs);
        assert_eq!(ids.remote_id(Extension::Pex), None);
        assert_eq!(ids.remote_extension(9), None);
        assert_eq!(ids.remote_id(Extension::Metadata), Some(5));
    }

    #[test]
    fn local_ids_can_be_changed_and_disabled() {
        let mut ids = ExtensionIds::new();
        assert!(!ids.set_local(Extension::Pex, 1)); // taken by ut_metadata
        assert_eq!(ids.local_id(Extension::Pex), Some(2));
        assert!(ids.set_local(Extension::Pex, 0));
        assert_eq!(ids.local_id(Extension::Pex), None);
        assert_eq!(ids.local_extension(2), None);
        assert!(ids.set_local(Extension::Metadata, 2));
        assert_eq!(ids.local_extension(2), Some(Extension::Metadata));
        let m = ids.local_m();
        assert_eq!(m.len(), 1);
        assert_eq!(m["ut_metadata"], 2);
        assert_eq!(
            ExtendedHandshake::new(&ids).encode(),
            b"d1:md11:ut_metadatai2eee"
        );
        assert_eq!(Extension::from_name("ut_pex"), Some(Extension::Pex));
        assert_eq!(Extension::from_name("LT_metadata"), None);
    }

    proptest::proptest! {
        #[test]
        fn decode_never_panics(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            let _ = ExtendedHandshake::decode(&bytes);
        }

        #[test]
        fn decode_never_panics_on_dicts(body in "[a-z0-9:ie]{0,120}") {
            let _ = ExtendedHandshake::decode(format!("d1:md{body}ee").as_bytes());
            let _ = ExtendedHandshake::decode(format!("d{body}e").as_bytes());
        }
    }
}
