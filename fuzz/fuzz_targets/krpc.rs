//! A DHT datagram: the KRPC decoder (BEP 5, with BEP 32's `want`, `nodes6`
//! and IPv6 `values`, BEP 42's `ip` and BEP 43's `ro`).
//!
//! Checked: decoding never panics; a decoded message encodes to a datagram
//! that decodes to the same message (an error's text only up to its code,
//! since the decoder shortens and repairs the text); a query that could not
//! be decoded but has a transaction id gets an error reply that decodes as
//! an error with that id.
#![no_main]

use libfuzzer_sys::fuzz_target;

use bittorrent::dht::krpc::{Body, KrpcError, Message, MAX_DATAGRAM};

fuzz_target!(|data: &[u8]| {
    match Message::decode(data) {
        Ok(msg) => {
            let bytes = msg.encode();
            if bytes.len() > MAX_DATAGRAM {
                return;
            }
            let again = Message::decode(&bytes).expect("our encoding decodes");
            match (&msg.body, &again.body) {
                (Body::Error(a), Body::Error(b)) => {
                    assert_eq!(a.code, b.code);
                    assert_eq!(msg.tid, again.tid);
                }
                _ => assert_eq!(again, msg),
            }
        }
        Err(e) => {
            if let Some(reply) = e.error_reply() {
                let tid = match &e {
                    KrpcError::InvalidQuery { tid, .. } | KrpcError::UnknownMethod { tid, .. } => {
                        tid.clone()
                    }
                    other => panic!("a reply for {other:?}"),
                };
                let decoded = Message::decode(&reply.encode()).expect("the reply decodes");
                assert_eq!(decoded.tid, tid);
                assert!(matches!(decoded.body, Body::Error(_)));
            }
        }
    }
});
