//! The persisted DHT state: our node id and the routing table's nodes, as a
//! small versioned bencoded dictionary:
//!
//! ```text
//! d 2:id 20:<node id>  5:nodes <26 bytes per IPv4 node>
//!   6:nodes6 <38 bytes per IPv6 node>  7:version i1e e
//! ```
//!
//! Encoding and decoding are pure; [`load`] and [`save`] do the file IO (the
//! save writes a temporary file and renames it, so a crash never leaves half a
//! file).

use std::io;
use std::path::Path;

use crate::bencode;
use crate::dht::node::{
    decode_nodes, encode_nodes, NodeId, NodeInfo, COMPACT_NODE_V4, COMPACT_NODE_V6,
};

/// The format version we write and accept.
pub const VERSION: i64 = 1;
/// Most nodes kept from a state file (a table holds far fewer).
const MAX_NODES: usize = 2000;

/// What survives a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedState {
    /// Our node id.
    pub node_id: NodeId,
    /// Nodes of the routing table.
    pub nodes: Vec<NodeInfo>,
}

/// Why a state file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("state file IO: {0}")]
    Io(#[from] io::Error),
    /// Not bencode.
    #[error("state file is not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// Bencode, but not our format.
    #[error("invalid state file: {0}")]
    Invalid(&'static str),
    /// A version we do not know.
    #[error("unsupported state file version {0}")]
    Version(i64),
}

impl SavedState {
    /// The bencoded form.
    pub fn encode(&self) -> Vec<u8> {
        let v4 = encode_nodes(&self.nodes, false);
        let v6 = encode_nodes(&self.nodes, true);
        let entries = vec![
            (
                &b"id"[..],
                bencode::Node::new(bencode::Value::Bytes(&self.node_id.0)),
            ),
            (b"nodes", bencode::Node::new(bencode::Value::Bytes(&v4))),
            (b"nodes6", bencode::Node::new(bencode::Value::Bytes(&v6))),
            (b"version", bencode::Node::new(bencode::Value::Int(VERSION))),
        ];
        bencode::encode(&bencode::Value::Dict(entries))
    }

    /// Parses the bencoded form.
    ///
    /// # Errors
    /// [`StateError`] if the bytes are not a version-1 state.
    pub fn decode(bytes: &[u8]) -> Result<Self, StateError> {
        let root = bencode::decode(bytes)?;
        let version = root
            .get(b"version")
            .and_then(|v| v.value.as_int())
            .ok_or(StateError::Invalid("no version"))?;
        if version != VERSION {
            return Err(StateError::Version(version));
        }
        let node_id = root
            .get(b"id")
            .and_then(|v| v.value.as_bytes())
            .and_then(NodeId::from_slice)
            .ok_or(StateError::Invalid("missing or invalid id"))?;
        let mut nodes = Vec::new();
        for (key, len) in [
            (&b"nodes"[..], COMPACT_NODE_V4),
            (b"nodes6", COMPACT_NODE_V6),
        ] {
            if let Some(field) = root.get(key) {
                let bytes = field
                    .value
                    .as_bytes()
                    .ok_or(StateError::Invalid("nodes is not a string"))?;
                let mut list =
                    decode_nodes(bytes, len).ok_or(StateError::Invalid("malformed nodes"))?;
                nodes.append(&mut list);
            }
        }
        nodes.truncate(MAX_NODES);
        Ok(Self { node_id, nodes })
    }
}

/// Reads a state file; `Ok(None)` if it does not exist.
///
/// # Errors
/// [`StateError`] if it cannot be read or parsed.
pub async fn load(path: &Path) -> Result<Option<SavedState>, StateError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => SavedState::decode(&bytes).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Writes a state file atomically (temporary file, then rename), creating
/// its directory first if needed.
///
/// # Errors
/// The IO error if creating the directory, writing or renaming fails.
pub async fn save(path: &Path, state: &SavedState) -> io::Result<()> {
    let (path, bytes) = (path.to_path_buf(), state.encode());
    tokio::task::spawn_blocking(move || crate::fsio::write_atomically(&path, &bytes, false))
        .await
        .map_err(io::Error::other)?
        .map_err(|e| {
            io::Error::new(
                e.source.kind(),
                format!("{} {}: {}", e.op, e.path.display(), e.source),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let state = SavedState {
            node_id: NodeId([5; 20]),
            nodes: vec![
                NodeInfo {
                    id: NodeId([1; 20]),
                    addr: "127.0.0.1:1000".parse().unwrap(),
                },
                NodeInfo {
                    id: NodeId([2; 20]),
                    addr: "[::1]:2000".parse().unwrap(),
                },
            ],
        };
        let bytes = state.encode();
        assert!(bytes.starts_with(b"d2:id20:"));
        assert!(bytes.ends_with(b"7:versioni1ee"));
        assert_eq!(SavedState::decode(&bytes).unwrap(), state);
    }

    #[test]
    fn rejects_other_versions_and_garbage() {
        let bytes = b"d2:id20:aaaaaaaaaaaaaaaaaaaa7:versioni2ee";
        assert!(matches!(
            SavedState::decode(bytes),
            Err(StateError::Version(2))
        ));
        assert!(SavedState::decode(b"d7:versioni1ee").is_err());
        assert!(SavedState::decode(b"garbage").is_err());
        let bad_nodes = b"d2:id20:aaaaaaaaaaaaaaaaaaaa5:nodes3:abc7:versioni1ee";
        assert!(SavedState::decode(bad_nodes).is_err());
    }

    #[tokio::test]
    async fn file_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dht.state");
        assert!(load(&path).await.unwrap().is_none());
        let state = SavedState {
            node_id: NodeId([9; 20]),
            nodes: Vec::new(),
        };
        save(&path, &state).await.unwrap();
        assert_eq!(load(&path).await.unwrap(), Some(state.clone()));

        // Its directory is created when missing (a first run that stops
        // before anything else was saved there).
        let nested = dir.path().join("new/.bittorrent/dht.state");
        save(&nested, &state).await.unwrap();
        assert_eq!(load(&nested).await.unwrap(), Some(state));
    }
}
