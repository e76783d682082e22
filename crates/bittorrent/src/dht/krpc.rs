//! KRPC, the DHT's message format (BEP 5): one bencoded dictionary per UDP
//! datagram, with BEP 32's `want` and `nodes6`, BEP 42's `ip` and BEP 43's
//! `ro`. Pure: bytes in, [`Message`] out, and back.
//!
//! Decoding is strict and bounded: the datagram is at most [`MAX_DATAGRAM`]
//! bytes (so every allocation is bounded by it), nesting is bounded by the
//! bencode decoder, transaction ids and tokens have length caps, ids are exactly
//! 20 bytes and compact node lists a whole number of entries. A query that is
//! malformed or names an unknown method still yields its transaction id (see
//! [`KrpcError::error_reply`]) so the caller can answer with error 203 or 204.

use std::net::SocketAddr;

use crate::bencode::{self, Node, Value};
use crate::dht::node::{
    decode_nodes, encode_nodes, parse_compact_addr, put_compact_addr, NodeId, NodeInfo,
    COMPACT_NODE_V4, COMPACT_NODE_V6,
};
use crate::types::InfoHash;

mod want;

pub use crate::dht::krpc::want::Want;

/// Largest datagram we decode; longer ones are rejected unread.
pub const MAX_DATAGRAM: usize = 4096;
/// Longest transaction id we accept (ours are 4 bytes).
pub const MAX_TID_LEN: usize = 32;
/// Longest token we accept (ours are 20 bytes).
pub const MAX_TOKEN_LEN: usize = 64;

/// One KRPC message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// The transaction id, echoed by the response.
    pub tid: Vec<u8>,
    /// Query, response or error.
    pub body: Body,
    /// BEP 43: the querier is a read-only node (`ro` = 1 at the top level):
    /// answer it, but keep it out of the routing table. Queries only: it is
    /// neither sent nor read on responses and errors.
    pub read_only: bool,
}

/// The three kinds of KRPC message (`y` = `q`, `r` or `e`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Body {
    /// A query (`y` = `q`).
    Query(Query),
    /// A response (`y` = `r`).
    Response(Response),
    /// An error (`y` = `e`).
    Error(ErrorMessage),
}

/// The four queries of BEP 5.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Query {
    /// `ping`: are you there?
    Ping {
        /// The querying node's id.
        id: NodeId,
    },
    /// `find_node`: the nodes you know closest to `target`.
    FindNode {
        /// The querying node's id.
        id: NodeId,
        /// The id looked for.
        target: NodeId,
        /// The address families of the nodes wanted (BEP 32).
        want: Want,
    },
    /// `get_peers`: peers of a torrent, or the closest nodes, and a token.
    GetPeers {
        /// The querying node's id.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// The address families of the nodes wanted (BEP 32).
        want: Want,
    },
    /// `announce_peer`: the querying node downloads the torrent on `port`.
    AnnouncePeer {
        /// The querying node's id.
        id: NodeId,
        /// The torrent.
        info_hash: InfoHash,
        /// The peer's TCP port (ignored when `implied_port`).
        port: u16,
        /// Use the datagram's source port instead of `port`.
        implied_port: bool,
        /// The token from an earlier `get_peers` response.
        token: Vec<u8>,
    },
}

impl Query {
    /// The querying node's id.
    pub fn id(&self) -> NodeId {
        match self {
            Query::Ping { id }
            | Query::FindNode { id, .. }
            | Query::GetPeers { id, .. }
            | Query::AnnouncePeer { id, .. } => *id,
        }
    }

    /// The method name (`q` value).
    pub fn method(&self) -> &'static str {
        match self {
            Query::Ping { .. } => "ping",
            Query::FindNode { .. } => "find_node",
            Query::GetPeers { .. } => "get_peers",
            Query::AnnouncePeer { .. } => "announce_peer",
        }
    }
}

/// A response (`r` dictionary). Which fields are set depends on the query.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Response {
    /// The responding node's id.
    pub id: NodeId,
    /// Closer nodes (`nodes`, and `nodes6` for IPv6).
    pub nodes: Vec<NodeInfo>,
    /// Peers of the torrent (`values`).
    pub values: Vec<SocketAddr>,
    /// The token to use in a later `announce_peer`.
    pub token: Option<Vec<u8>>,
    /// The querying node's address as the responder saw it: the top-level
    /// `ip` of BEP 42 (how a node learns its external IP). An `ip` of another
    /// size than 6 or 18 bytes is ignored.
    pub requester: Option<SocketAddr>,
}

/// The error codes of BEP 5.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// 201.
    Generic,
    /// 202.
    Server,
    /// 203: malformed packet, invalid arguments or bad token.
    Protocol,
    /// 204.
    MethodUnknown,
    /// Any other code.
    Other(i64),
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> i64 {
        match self {
            ErrorCode::Generic => 201,
            ErrorCode::Server => 202,
            ErrorCode::Protocol => 203,
            ErrorCode::MethodUnknown => 204,
            ErrorCode::Other(c) => c,
        }
    }

    /// The variant for a numeric code.
    pub fn from_code(code: i64) -> Self {
        match code {
            201 => ErrorCode::Generic,
            202 => ErrorCode::Server,
            203 => ErrorCode::Protocol,
            204 => ErrorCode::MethodUnknown,
            c => ErrorCode::Other(c),
        }
    }
}

/// An error message (`e` list: code and text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ErrorMessage {
    /// The code.
    pub code: ErrorCode,
    /// Human-readable text.
    pub message: String,
}

/// Why a datagram is not a usable KRPC message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KrpcError {
    /// Longer than [`MAX_DATAGRAM`].
    #[error("datagram of {0} bytes is too long")]
    TooLong(usize),
    /// Not (strict) bencode.
    #[error("not bencode: {0}")]
    Bencode(#[from] bencode::DecodeError),
    /// Bencode, but no KRPC envelope (dictionary with `t` and `y`).
    #[error("not a KRPC message: {0}")]
    NotKrpc(&'static str),
    /// A query with missing or invalid arguments.
    #[error("invalid query: {reason}")]
    InvalidQuery {
        /// The query's transaction id, for the error reply.
        tid: Vec<u8>,
        /// What is wrong.
        reason: &'static str,
    },
    /// A query naming a method we do not know.
    #[error("unknown method {method:?}")]
    UnknownMethod {
        /// The query's transaction id, for the error reply.
        tid: Vec<u8>,
        /// The method name (lossily decoded).
        method: String,
    },
    /// A malformed response or error message.
    #[error("invalid response: {0}")]
    InvalidResponse(&'static str),
}

impl KrpcError {
    /// The error message to send back, for a query we could not serve:
    /// 203 for an invalid query, 204 for an unknown method; `None` otherwise.
    pub fn error_reply(&self) -> Option<Message> {
        let (tid, code, message) = match self {
            KrpcError::InvalidQuery { tid, reason } => (
                tid,
                ErrorCode::Protocol,
                format!("Protocol Error: {reason}"),
            ),
            KrpcError::UnknownMethod { tid, .. } => {
                (tid, ErrorCode::MethodUnknown, "Method Unknown".to_string())
            }
            _ => return None,
        };
        Some(Message {
            tid: tid.clone(),
            body: Body::Error(ErrorMessage { code, message }),
            read_only: false,
        })
    }
}

impl Message {
    /// Decodes one datagram.
    ///
    /// # Errors
    /// A [`KrpcError`] saying why the datagram is unusable.
    pub fn decode(datagram: &[u8]) -> Result<Message, KrpcError> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(KrpcError::TooLong(datagram.len()));
        }
        let root = bencode::decode(datagram)?;
        if root.value.as_dict().is_none() {
            return Err(KrpcError::NotKrpc("not a dictionary"));
        }
        let tid = bytes_of(&root, b"t").ok_or(KrpcError::NotKrpc("no transaction id"))?;
        if tid.len() > MAX_TID_LEN {
            return Err(KrpcError::NotKrpc("transaction id too long"));
        }
        let tid = tid.to_vec();
        let body = match bytes_of(&root, b"y").ok_or(KrpcError::NotKrpc("no message type"))? {
            b"q" => Body::Query(decode_query(&root, &tid)?),
            b"r" => Body::Response(decode_response(&root)?),
            b"e" => Body::Error(decode_error(&root)?),
            _ => return Err(KrpcError::NotKrpc("unknown message type")),
        };
        // BEP 43: `ro` is 1 or absent; any other value reads as absent.
        let read_only = matches!(body, Body::Query(_))
            && root.get(b"ro").and_then(|n| n.value.as_int()) == Some(1);
        Ok(Message {
            tid,
            body,
            read_only,
        })
    }

    /// Encodes the message as a datagram (canonical bencode, sorted keys).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(128);
        out.push(b'd');
        match &self.body {
            Body::Query(q) => {
                put_bytes(b"a", &mut out);
                put_query_args(q, &mut out);
                put_bytes(b"q", &mut out);
                put_bytes(q.method().as_bytes(), &mut out);
                if self.read_only {
                    put_bytes(b"ro", &mut out);
                    put_int(1, &mut out);
                }
            }
            Body::Response(r) => {
                if let Some(requester) = &r.requester {
                    let mut compact = Vec::with_capacity(18);
                    put_compact_addr(requester, &mut compact);
                    put_bytes(b"ip", &mut out);
                    put_bytes(&compact, &mut out);
                }
                put_bytes(b"r", &mut out);
                put_response(r, &mut out);
            }
            Body::Error(e) => {
                put_bytes(b"e", &mut out);
                out.push(b'l');
                put_int(e.code.code(), &mut out);
                put_bytes(e.message.as_bytes(), &mut out);
                out.push(b'e');
            }
        }
        put_bytes(b"t", &mut out);
        put_bytes(&self.tid, &mut out);
        put_bytes(b"y", &mut out);
        put_bytes(
            match self.body {
                Body::Query(_) => b"q",
                Body::Response(_) => b"r",
                Body::Error(_) => b"e",
            },
            &mut out,
        );
        out.push(b'e');
        out
    }
}

fn put_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    bencode::encode_into(&Value::Bytes(bytes), out);
}

fn put_int(i: i64, out: &mut Vec<u8>) {
    bencode::encode_into(&Value::Int(i), out);
}

/// The `a` dictionary of a query, keys in sorted order.
fn put_query_args(q: &Query, out: &mut Vec<u8>) {
    out.push(b'd');
    put_bytes(b"id", out);
    put_bytes(&q.id().0, out);
    match q {
        Query::Ping { .. } => {}
        Query::FindNode { target, want, .. } => {
            put_bytes(b"target", out);
            put_bytes(&target.0, out);
            want.encode(out);
        }
        Query::GetPeers {
            info_hash, want, ..
        } => {
            put_bytes(b"info_hash", out);
            put_bytes(&info_hash.0, out);
            want.encode(out);
        }
        Query::AnnouncePeer {
            info_hash,
            port,
            implied_port,
            token,
            ..
        } => {
            put_bytes(b"implied_port", out);
            put_int(i64::from(*implied_port), out);
            put_bytes(b"info_hash", out);
            put_bytes(&info_hash.0, out);
            put_bytes(b"port", out);
            put_int(i64::from(*port), out);
            put_bytes(b"token", out);
            put_bytes(token, out);
        }
    }
    out.push(b'e');
}

/// The `r` dictionary of a response, keys in sorted order.
fn put_response(r: &Response, out: &mut Vec<u8>) {
    out.push(b'd');
    put_bytes(b"id", out);
    put_bytes(&r.id.0, out);
    let v4 = encode_nodes(&r.nodes, false);
    if !v4.is_empty() {
        put_bytes(b"nodes", out);
        put_bytes(&v4, out);
    }
    let v6 = encode_nodes(&r.nodes, true);
    if !v6.is_empty() {
        put_bytes(b"nodes6", out);
        put_bytes(&v6, out);
    }
    if let Some(token) = &r.token {
        put_bytes(b"token", out);
        put_bytes(token, out);
    }
    if !r.values.is_empty() {
        put_bytes(b"values", out);
        out.push(b'l');
        let mut compact = Vec::with_capacity(18);
        for peer in &r.values {
            compact.clear();
            put_compact_addr(peer, &mut compact);
            put_bytes(&compact, out);
        }
        out.push(b'e');
    }
    out.push(b'e');
}

fn bytes_of<'a>(node: &Node<'a>, key: &[u8]) -> Option<&'a [u8]> {
    node.get(key)?.value.as_bytes()
}

fn id_of(node: &Node<'_>, key: &[u8]) -> Option<NodeId> {
    NodeId::from_slice(bytes_of(node, key)?)
}

fn decode_query(root: &Node<'_>, tid: &[u8]) -> Result<Query, KrpcError> {
    let method = known_method(root, tid)?;
    let args = root
        .get(b"a")
        .ok_or_else(|| invalid_query(tid, "no arguments"))?;
    if args.value.as_dict().is_none() {
        return Err(invalid_query(tid, "arguments are not a dictionary"));
    }
    let id = id_of(args, b"id").ok_or_else(|| invalid_query(tid, "missing or invalid id"))?;
    Ok(match method {
        b"ping" => Query::Ping { id },
        b"find_node" => Query::FindNode {
            id,
            target: id_of(args, b"target")
                .ok_or_else(|| invalid_query(tid, "missing or invalid target"))?,
            want: Want::decode(args.get(b"want")),
        },
        b"get_peers" => Query::GetPeers {
            id,
            info_hash: info_hash_arg(args, tid)?,
            want: Want::decode(args.get(b"want")),
        },
        _ => decode_announce_peer(args, id, tid)?,
    })
}

fn invalid_query(tid: &[u8], reason: &'static str) -> KrpcError {
    KrpcError::InvalidQuery {
        tid: tid.to_vec(),
        reason,
    }
}

/// The `q` of a query: one of the four BEP 5 methods.
fn known_method<'a>(root: &Node<'a>, tid: &[u8]) -> Result<&'a [u8], KrpcError> {
    let method = bytes_of(root, b"q").ok_or_else(|| invalid_query(tid, "no method"))?;
    let known = [&b"ping"[..], b"find_node", b"get_peers", b"announce_peer"];
    if !known.contains(&method) {
        return Err(KrpcError::UnknownMethod {
            tid: tid.to_vec(),
            method: String::from_utf8_lossy(&method[..method.len().min(64)]).into_owned(),
        });
    }
    Ok(method)
}

/// The 20-byte `info_hash` argument.
fn info_hash_arg(args: &Node<'_>, tid: &[u8]) -> Result<InfoHash, KrpcError> {
    bytes_of(args, b"info_hash")
        .and_then(|b| <[u8; 20]>::try_from(b).ok())
        .map(InfoHash)
        .ok_or_else(|| invalid_query(tid, "missing or invalid info_hash"))
}

/// The arguments of `announce_peer`: `implied_port` (0 or 1), a `port`
/// (optional when implied), a bounded `token` and the `info_hash`.
fn decode_announce_peer(args: &Node<'_>, id: NodeId, tid: &[u8]) -> Result<Query, KrpcError> {
    let implied_port = match args.get(b"implied_port") {
        None => false,
        Some(n) => match n.value.as_int() {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(invalid_query(tid, "invalid implied_port")),
        },
    };
    let port = match args.get(b"port").map(|n| n.value.as_int()) {
        Some(Some(p)) => u16::try_from(p).map_err(|_| invalid_query(tid, "invalid port"))?,
        None if implied_port => 0,
        _ => return Err(invalid_query(tid, "missing or invalid port")),
    };
    let token = bytes_of(args, b"token")
        .filter(|t| t.len() <= MAX_TOKEN_LEN)
        .ok_or_else(|| invalid_query(tid, "missing or invalid token"))?;
    Ok(Query::AnnouncePeer {
        id,
        info_hash: info_hash_arg(args, tid)?,
        port,
        implied_port,
        token: token.to_vec(),
    })
}

fn decode_response(root: &Node<'_>) -> Result<Response, KrpcError> {
    let r = root
        .get(b"r")
        .filter(|r| r.value.as_dict().is_some())
        .ok_or(KrpcError::InvalidResponse("no r dictionary"))?;
    let id = id_of(r, b"id").ok_or(KrpcError::InvalidResponse("missing or invalid id"))?;
    let mut nodes = Vec::new();
    for (key, entry_len) in [
        (&b"nodes"[..], COMPACT_NODE_V4),
        (b"nodes6", COMPACT_NODE_V6),
    ] {
        if let Some(field) = r.get(key) {
            let bytes = field
                .value
                .as_bytes()
                .ok_or(KrpcError::InvalidResponse("nodes is not a string"))?;
            let mut list = decode_nodes(bytes, entry_len)
                .ok_or(KrpcError::InvalidResponse("malformed compact nodes"))?;
            nodes.append(&mut list);
        }
    }
    let mut values = Vec::new();
    if let Some(field) = r.get(b"values") {
        let list = field
            .value
            .as_list()
            .ok_or(KrpcError::InvalidResponse("values is not a list"))?;
        // Entries of the wrong size are skipped rather than failing the lookup.
        values.extend(
            list.iter()
                .filter_map(|n| n.value.as_bytes().and_then(parse_compact_addr)),
        );
    }
    let token = match r.get(b"token") {
        None => None,
        Some(t) => Some(
            t.value
                .as_bytes()
                .filter(|t| t.len() <= MAX_TOKEN_LEN)
                .ok_or(KrpcError::InvalidResponse("invalid token"))?
                .to_vec(),
        ),
    };
    let requester = bytes_of(root, b"ip").and_then(parse_compact_addr);
    Ok(Response {
        id,
        nodes,
        values,
        token,
        requester,
    })
}

fn decode_error(root: &Node<'_>) -> Result<ErrorMessage, KrpcError> {
    let list = root
        .get(b"e")
        .and_then(|e| e.value.as_list())
        .ok_or(KrpcError::InvalidResponse("no e list"))?;
    let code = list
        .first()
        .and_then(|n| n.value.as_int())
        .ok_or(KrpcError::InvalidResponse("no error code"))?;
    let message = list
        .get(1)
        .and_then(|n| n.value.as_bytes())
        .map(|m| String::from_utf8_lossy(&m[..m.len().min(256)]).into_owned())
        .unwrap_or_default();
    Ok(ErrorMessage {
        code: ErrorCode::from_code(code),
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(b: u8) -> NodeId {
        NodeId([b; 20])
    }

    #[test]
    fn ping_query_bytes() {
        // The example from BEP 5.
        let bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        let expected = Message {
            read_only: false,
            tid: b"aa".to_vec(),
            body: Body::Query(Query::Ping {
                id: NodeId(*b"abcdefghij0123456789"),
            }),
        };
        assert_eq!(msg, expected);
        assert_eq!(expected.encode(), bytes);
    }

    #[test]
    fn bep43_ro_is_a_top_level_flag_of_queries() {
        // BEP 43's example: `ro` = 1 beside `a`, `q`, `t` and `y`.
        let bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:roi1e1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        assert!(msg.read_only);
        assert_eq!(msg.encode(), bytes);
        let plain = Message {
            read_only: false,
            ..msg.clone()
        };
        assert!(!plain.encode().windows(4).any(|w| w == b"2:ro"));
        // Only 1 means read-only.
        for other in [&b"i0e"[..], b"i2e", b"1:1"] {
            let mut odd = b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping2:ro".to_vec();
            odd.extend_from_slice(other);
            odd.extend_from_slice(b"1:t2:aa1:y1:qe");
            assert!(!Message::decode(&odd).unwrap().read_only, "{other:?}");
        }
        // Responses carry no `ro`: read on one, it is ignored; never written.
        let mut response = b"d1:rd2:id20:".to_vec();
        response.extend_from_slice(&[1; 20]);
        response.extend_from_slice(b"e2:roi1e1:t2:aa1:y1:re");
        let decoded = Message::decode(&response).unwrap();
        assert!(!decoded.read_only);
        let forced = Message {
            read_only: true,
            ..decoded
        };
        assert!(!forced.encode().windows(4).any(|w| w == b"2:ro"));
    }

    #[test]
    fn ping_response_bytes() {
        let bytes = b"d1:rd2:id20:mnopqrstuvwxyz123456e1:t2:aa1:y1:re";
        let msg = Message::decode(bytes).unwrap();
        let expected = Message {
            read_only: false,
            tid: b"aa".to_vec(),
            body: Body::Response(Response {
                id: NodeId(*b"mnopqrstuvwxyz123456"),
                ..Response::default()
            }),
        };
        assert_eq!(msg, expected);
        assert_eq!(expected.encode(), bytes);
    }

    #[test]
    fn error_bytes() {
        let bytes = b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee";
        let msg = Message::decode(bytes).unwrap();
        let expected = Message {
            read_only: false,
            tid: b"aa".to_vec(),
            body: Body::Error(ErrorMessage {
                code: ErrorCode::Generic,
                message: "A Generic Error Ocurred".into(),
            }),
        };
        assert_eq!(msg, expected);
        assert_eq!(expected.encode(), bytes);
    }

    #[test]
    fn find_node_and_get_peers_bytes() {
        let bytes = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456e\
1:q9:find_node1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        assert_eq!(
            msg.body,
            Body::Query(Query::FindNode {
                id: NodeId(*b"abcdefghij0123456789"),
                target: NodeId(*b"mnopqrstuvwxyz123456"),
                want: Want::default(),
            })
        );
        assert_eq!(msg.encode(), bytes);
        let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456e\
1:q9:get_peers1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        assert_eq!(
            msg.body,
            Body::Query(Query::GetPeers {
                id: NodeId(*b"abcdefghij0123456789"),
                info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
                want: Want::default(),
            })
        );
        assert_eq!(msg.encode(), bytes);
    }

    #[test]
    fn announce_peer_bytes() {
        let bytes = b"d1:ad2:id20:abcdefghij012345678912:implied_porti1e9:info_hash20:\
mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        assert_eq!(
            msg.body,
            Body::Query(Query::AnnouncePeer {
                id: NodeId(*b"abcdefghij0123456789"),
                info_hash: InfoHash(*b"mnopqrstuvwxyz123456"),
                port: 6881,
                implied_port: true,
                token: b"aoeusnth".to_vec(),
            })
        );
        assert_eq!(msg.encode(), bytes);
        // Without implied_port it defaults to false.
        let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:\
mnopqrstuvwxyz1234564:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe";
        match Message::decode(bytes).unwrap().body {
            Body::Query(Query::AnnouncePeer { implied_port, .. }) => assert!(!implied_port),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn response_with_nodes_values_token_round_trips() {
        let msg = Message {
            read_only: false,
            tid: vec![0, 1, 2, 3],
            body: Body::Response(Response {
                id: id(7),
                nodes: vec![NodeInfo {
                    id: id(8),
                    addr: "127.0.0.1:7000".parse().unwrap(),
                }],
                values: vec![
                    "127.0.0.1:6881".parse().unwrap(),
                    "10.0.0.2:80".parse().unwrap(),
                ],
                token: Some(b"tok".to_vec()),
                requester: None,
            }),
        };
        let bytes = msg.encode();
        let mut expected = b"d1:rd2:id20:".to_vec();
        expected.extend_from_slice(&[7; 20]);
        expected.extend_from_slice(b"5:nodes26:");
        expected.extend_from_slice(&[8; 20]);
        expected.extend_from_slice(&[127, 0, 0, 1, 0x1b, 0x58]);
        expected.extend_from_slice(b"5:token3:tok6:valuesl6:");
        expected.extend_from_slice(&[127, 0, 0, 1, 0x1a, 0xe1]);
        expected.extend_from_slice(b"6:");
        expected.extend_from_slice(&[10, 0, 0, 2, 0, 80]);
        expected.extend_from_slice(b"ee1:t4:\x00\x01\x02\x031:y1:re");
        assert_eq!(bytes, expected);
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
    }

    #[test]
    fn bep32_want_and_nodes6() {
        let bytes = b"d1:ad2:id20:abcdefghij01234567896:target20:mnopqrstuvwxyz123456\
4:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        let want = Want { n4: true, n6: true };
        assert_eq!(
            msg.body,
            Body::Query(Query::FindNode {
                id: NodeId(*b"abcdefghij0123456789"),
                target: NodeId(*b"mnopqrstuvwxyz123456"),
                want,
            })
        );
        assert_eq!(msg.encode(), bytes);
        let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456\
4:wantl2:n6ee1:q9:get_peers1:t2:aa1:y1:qe";
        let msg = Message::decode(bytes).unwrap();
        let Body::Query(Query::GetPeers { want, .. }) = msg.body else {
            panic!("unexpected {msg:?}");
        };
        assert_eq!(
            want,
            Want {
                n4: false,
                n6: true
            }
        );
        assert_eq!(msg.encode(), bytes);
        // Unknown entries and a want that is no list are ignored.
        let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456\
4:wantl2:n82:n4i6eee1:q9:get_peers1:t2:aa1:y1:qe";
        let Body::Query(Query::GetPeers { want, .. }) = Message::decode(bytes).unwrap().body else {
            panic!("not get_peers");
        };
        assert_eq!(
            want,
            Want {
                n4: true,
                n6: false
            }
        );
        let bytes = b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz123456\
4:wanti1ee1:q9:get_peers1:t2:aa1:y1:qe";
        let Body::Query(Query::GetPeers { want, .. }) = Message::decode(bytes).unwrap().body else {
            panic!("not get_peers");
        };
        assert_eq!(want, Want::default());
        // Which families an answer holds.
        assert!(Want::default().allows(false, false));
        assert!(!Want::default().allows(true, false));
        assert!(Want::default().allows(true, true));
        assert!(Want {
            n4: false,
            n6: true
        }
        .allows(true, false));
        assert!(!Want {
            n4: false,
            n6: true
        }
        .allows(false, false));

        // A response with IPv4 and IPv6 nodes: `nodes` (26 bytes each) and
        // `nodes6` (38 bytes each), split by family, and IPv6 `values`.
        let v6: SocketAddr = "[2001:db8::1]:6881".parse().unwrap();
        let msg = Message {
            read_only: false,
            tid: b"aa".to_vec(),
            body: Body::Response(Response {
                id: id(1),
                nodes: vec![
                    NodeInfo {
                        id: id(2),
                        addr: "127.0.0.1:1".parse().unwrap(),
                    },
                    NodeInfo {
                        id: id(3),
                        addr: v6,
                    },
                ],
                values: vec![v6],
                ..Response::default()
            }),
        };
        let bytes = msg.encode();
        let mut nodes6 = b"6:nodes638:".to_vec();
        nodes6.extend_from_slice(&[3; 20]);
        nodes6.extend_from_slice(
            &"2001:db8::1"
                .parse::<std::net::Ipv6Addr>()
                .unwrap()
                .octets(),
        );
        nodes6.extend_from_slice(&[0x1a, 0xe1]);
        assert!(
            bytes.windows(nodes6.len()).any(|w| w == nodes6),
            "{bytes:?}"
        );
        assert!(bytes.windows(9).any(|w| w == b"5:nodes26"));
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
        // A nodes6 of a wrong length is rejected.
        let mut bad = b"d1:rd2:id20:".to_vec();
        bad.extend_from_slice(&[1; 20]);
        bad.extend_from_slice(b"6:nodes63:abce1:t2:aa1:y1:re");
        assert!(Message::decode(&bad).is_err());
    }

    #[test]
    fn bep42_ip_is_top_level() {
        let msg = Message {
            read_only: false,
            tid: b"aa".to_vec(),
            body: Body::Response(Response {
                id: id(1),
                requester: Some("124.31.75.21:6881".parse().unwrap()),
                ..Response::default()
            }),
        };
        let bytes = msg.encode();
        let mut expected = b"d2:ip6:".to_vec();
        expected.extend_from_slice(&[124, 31, 75, 21, 0x1a, 0xe1]);
        expected.extend_from_slice(b"1:rd2:id20:");
        expected.extend_from_slice(&[1; 20]);
        expected.extend_from_slice(b"e1:t2:aa1:y1:re");
        assert_eq!(bytes, expected);
        assert_eq!(Message::decode(&bytes).unwrap(), msg);
        // An IPv6 requester; an `ip` of the wrong size is ignored, not fatal.
        let v6 = Message {
            read_only: false,
            body: Body::Response(Response {
                id: id(1),
                requester: Some("[2001:db8::1]:80".parse().unwrap()),
                ..Response::default()
            }),
            ..msg.clone()
        };
        assert_eq!(Message::decode(&v6.encode()).unwrap(), v6);
        let mut odd = b"d2:ip5:abcde1:rd2:id20:".to_vec();
        odd.extend_from_slice(&[1; 20]);
        odd.extend_from_slice(b"e1:t2:aa1:y1:re");
        match Message::decode(&odd).unwrap().body {
            Body::Response(r) => assert_eq!(r.requester, None),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unknown_method_yields_204() {
        let bytes = b"d1:ad2:id20:abcdefghij0123456789e1:q4:vote1:t2:xy1:y1:qe";
        let err = Message::decode(bytes).unwrap_err();
        assert!(matches!(err, KrpcError::UnknownMethod { .. }), "{err:?}");
        let reply = err.error_reply().unwrap();
        assert_eq!(reply.tid, b"xy");
        assert_eq!(
            reply.encode(),
            b"d1:eli204e14:Method Unknowne1:t2:xy1:y1:ee"
        );
    }

    #[test]
    fn invalid_queries_yield_203() {
        for bytes in [
            &b"d1:ad2:id3:abce1:q4:ping1:t2:xy1:y1:qe"[..],
            b"d1:q4:ping1:t2:xy1:y1:qe",
            b"d1:ad2:id20:abcdefghij0123456789e1:q9:find_node1:t2:xy1:y1:qe",
            b"d1:ad2:id20:abcdefghij01234567899:info_hash20:mnopqrstuvwxyz1234564:porti70000e\
5:token1:xe1:q13:announce_peer1:t2:xy1:y1:qe",
        ] {
            let err = Message::decode(bytes).unwrap_err();
            let reply = err.error_reply().unwrap_or_else(|| panic!("{err:?}"));
            match reply.body {
                Body::Error(e) => assert_eq!(e.code, ErrorCode::Protocol),
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn garbage_is_rejected_without_reply() {
        for bytes in [
            &b""[..],
            b"i5e",
            b"d1:y1:qe",
            b"d1:t2:aa1:y1:ze",
            b"d1:t2:aa1:y1:re",
            b"d1:rd2:id20:abcdefghij01234567895:nodes3:abce1:t2:aa1:y1:re",
            b"d1:eli201ee",
            b"\xff\x00",
        ] {
            let err = Message::decode(bytes).unwrap_err();
            assert!(err.error_reply().is_none(), "{err:?}");
        }
        let long_tid = format!("d1:t33:{}1:y1:qe", "x".repeat(33));
        assert!(Message::decode(long_tid.as_bytes()).is_err());
        assert!(matches!(
            Message::decode(&vec![b'x'; MAX_DATAGRAM + 1]),
            Err(KrpcError::TooLong(_))
        ));
    }

    proptest::proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            let _ = Message::decode(&bytes);
        }

        #[test]
        fn mutated_messages_never_panic(pos in 0usize..200, byte in proptest::num::u8::ANY) {
            let mut bytes = Message {
                read_only: false,
                tid: vec![1, 2],
                body: Body::Response(Response {
                    id: id(3),
                    nodes: vec![NodeInfo { id: id(4), addr: "127.0.0.1:1".parse().unwrap() }],
                    values: vec!["127.0.0.1:2".parse().unwrap()],
                    token: Some(vec![9; 8]),
                    requester: Some("127.0.0.1:3".parse().unwrap()),
                }),
            }
            .encode();
            let i = pos % bytes.len();
            bytes[i] = byte;
            let _ = Message::decode(&bytes);
        }
    }
}
