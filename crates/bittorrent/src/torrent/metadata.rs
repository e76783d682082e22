//! Fetching a magnet's info dictionary from peers (BEP 9 over BEP 10).
//!
//! Each candidate peer gets a short-lived connection of its own: handshake
//! with the extension bit, extended handshake, then `ut_metadata` requests
//! for the pieces a shared [`MetadataAssembler`] hands out (so several peers
//! fill one dictionary). The assembler checks the SHA-1 against the
//! info-hash; on a mismatch it starts over and the fetch goes on with
//! whoever answers. The connections close once the dictionary is complete;
//! the torrent then dials its peers again as for a .torrent.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::codec::Framed;
use tokio_util::sync::CancellationToken;

use crate::extension::{
    ExtendedHandshake, ExtendedMessage, Extension, ExtensionIds, MetadataAssembler, MetadataError,
    MetadataMessage, HANDSHAKE_ID,
};
use crate::peer::connect::Connector;
use crate::peer::handshake;
use crate::peer::transport::PeerStream;
use crate::types::{InfoHash, PeerId};
use crate::wire::{Handshake, Message, MessageCodec};

/// Peers asked at once.
const MAX_ACTIVE: usize = 8;
/// Time one peer gets to deliver (connect, handshakes, pieces).
const PEER_TIMEOUT: Duration = Duration::from_secs(30);
/// Metadata pieces requested from one peer at a time.
const PIPELINE: usize = 4;
/// Times one address is tried.
const MAX_ATTEMPTS: u32 = 2;

/// What the fetch needs to know.
pub(crate) struct FetchParams {
    pub info_hash: InfoHash,
    pub our_id: PeerId,
    pub connect_timeout: Duration,
    pub connector: Connector,
}

/// Runs until the info dictionary is fetched and verified (returned), or
/// `cancel` fires (`None`). Candidates arrive on `candidates`.
pub(crate) async fn fetch(
    params: FetchParams,
    mut candidates: mpsc::Receiver<SocketAddr>,
    cancel: CancellationToken,
) -> Option<Bytes> {
    let params = Arc::new(params);
    let assembler: Shared = Arc::new(Mutex::new(None));
    let mut tasks: JoinSet<(SocketAddr, Result<Option<Bytes>, String>)> = JoinSet::new();
    let mut queue: Vec<SocketAddr> = Vec::new();
    let mut attempts: std::collections::HashMap<SocketAddr, u32> = Default::default();
    let mut active: HashSet<SocketAddr> = HashSet::new();
    let tag = format!("[{}]", params.info_hash.short());
    let mut open = true;
    loop {
        while active.len() < MAX_ACTIVE {
            let Some(addr) = queue.pop() else { break };
            let n = attempts.entry(addr).or_insert(0);
            if *n >= MAX_ATTEMPTS || active.contains(&addr) {
                continue;
            }
            *n += 1;
            active.insert(addr);
            let (params, assembler) = (Arc::clone(&params), Arc::clone(&assembler));
            tasks.spawn(async move {
                let result =
                    tokio::time::timeout(PEER_TIMEOUT, from_peer(addr, &params, &assembler))
                        .await
                        .unwrap_or_else(|_| Err("timed out".into()));
                (addr, result)
            });
        }
        tokio::select! {
            _ = cancel.cancelled() => return None,
            addr = candidates.recv(), if open => match addr {
                Some(addr) => {
                    if !queue.contains(&addr) {
                        queue.push(addr);
                    }
                }
                None => open = false,
            },
            Some(done) = tasks.join_next(), if !tasks.is_empty() => match done {
                Ok((addr, Ok(Some(info)))) => {
                    log::info!("{tag} metadata ({} bytes) received from {addr}", info.len());
                    return Some(info);
                }
                Ok((addr, Ok(None))) => {
                    active.remove(&addr);
                }
                Ok((addr, Err(e))) => {
                    log::debug!("{tag} no metadata from {addr}: {e}");
                    active.remove(&addr);
                }
                Err(e) => log::warn!("{tag} a metadata task failed: {e}"),
            },
        }
    }
}

type Shared = Arc<Mutex<Option<MetadataAssembler>>>;

fn lock(shared: &Shared) -> MutexGuard<'_, Option<MetadataAssembler>> {
    // A panic elsewhere cannot leave the assembler half-updated in a way that
    // matters: at worst a piece is requested twice.
    shared.lock().unwrap_or_else(|e| e.into_inner())
}

/// Fetches what one peer can give. `Ok(Some)` is the verified dictionary.
async fn from_peer(
    addr: SocketAddr,
    params: &FetchParams,
    shared: &Shared,
) -> Result<Option<Bytes>, String> {
    let ours = Handshake::new(params.info_hash, params.our_id).with_extensions();
    let initiate = |stream| handshake::initiate(stream, ours.clone());
    let open = params.connector.open_with(addr, params.info_hash, initiate);
    let ((hs, theirs), _) = tokio::time::timeout(params.connect_timeout, open)
        .await
        .map_err(|_| "connect timed out".to_string())?
        .map_err(|e| e.to_string())?;
    handshake::check(&theirs, params.info_hash, params.our_id).map_err(|e| e.to_string())?;
    if !theirs.supports_extensions() {
        return Err("no extension protocol".into());
    }
    let mut conn = handshake::into_messages(hs, MessageCodec::DEFAULT_MAX_FRAME_LEN);

    let mut ids = ExtensionIds::new();
    ids.set_local(Extension::Pex, 0);
    let payload = Bytes::from(ExtendedHandshake::new(&ids).encode());
    conn.send(Message::Extended {
        id: HANDSHAKE_ID,
        payload,
    })
    .await
    .map_err(|e| e.to_string())?;

    let mut outstanding: Vec<u32> = Vec::new();
    let result = exchange(&mut conn, &mut ids, params, shared, &mut outstanding).await;
    // Whatever this peer still owed goes back to the others.
    if let Some(asm) = lock(shared).as_mut() {
        for piece in outstanding {
            asm.release(piece);
        }
    }
    result
}

async fn exchange(
    conn: &mut Framed<PeerStream, MessageCodec>,
    ids: &mut ExtensionIds,
    params: &FetchParams,
    shared: &Shared,
    outstanding: &mut Vec<u32>,
) -> Result<Option<Bytes>, String> {
    // Wakes the loop to pick up pieces that other peers released.
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut handshaken = false;
    loop {
        let msg = tokio::select! {
            msg = conn.next() => match msg {
                Some(Ok(Message::Extended { id, payload })) => {
                    Some(ExtendedMessage::decode_parts(id, payload, ids).map_err(|e| e.to_string())?)
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(e.to_string()),
                None => return Err("closed".into()),
            },
            _ = tick.tick() => None,
        };
        if let Some(msg) = msg {
            match on_message(msg, ids, params, shared, outstanding)? {
                Step::Done(info) => return Ok(Some(info)),
                Step::Handshaken => handshaken = true,
                Step::Continue => {}
            }
        }
        if !handshaken {
            continue;
        }
        if !request_more(conn, ids, shared, outstanding).await? {
            return Ok(None);
        }
        // With nothing outstanding, everything is requested from others: the
        // tick brings us back in case one of them gives its pieces back.
    }
}

/// What a message from the peer means for the exchange.
enum Step {
    /// The verified dictionary is complete.
    Done(Bytes),
    /// The peer's extended handshake arrived: requests may go out.
    Handshaken,
    Continue,
}

/// Handles one extension message of the peer.
fn on_message(
    msg: ExtendedMessage,
    ids: &mut ExtensionIds,
    params: &FetchParams,
    shared: &Shared,
    outstanding: &mut Vec<u32>,
) -> Result<Step, String> {
    match msg {
        ExtendedMessage::Handshake(hs) => {
            ids.update_remote(&hs);
            if ids.remote_id(Extension::Metadata).is_none() {
                return Err("peer does not offer ut_metadata".into());
            }
            let size = hs.metadata_size.ok_or("peer sent no metadata_size")?;
            let mut guard = lock(shared);
            if guard.is_none() {
                let asm =
                    MetadataAssembler::new(params.info_hash, size).map_err(|e| e.to_string())?;
                *guard = Some(asm);
            } else if guard.as_ref().is_some_and(|a| a.total_size() != size) {
                return Err(format!("metadata_size {size} differs from other peers'"));
            }
            Ok(Step::Handshaken)
        }
        ExtendedMessage::Metadata(MetadataMessage::Data { piece, data, .. }) => {
            outstanding.retain(|p| *p != piece);
            let added = match lock(shared).as_mut() {
                Some(asm) => asm.add_piece(piece, data),
                None => return Ok(Step::Continue),
            };
            match added {
                Ok(Some(info)) => Ok(Step::Done(info)),
                Ok(None) => Ok(Step::Continue),
                Err(MetadataError::HashMismatch { .. }) => {
                    log::warn!("metadata did not match the info-hash; starting over");
                    outstanding.clear();
                    Ok(Step::Continue)
                }
                Err(e) => Err(e.to_string()),
            }
        }
        ExtendedMessage::Metadata(MetadataMessage::Reject { piece }) => {
            outstanding.retain(|p| *p != piece);
            if let Some(asm) = lock(shared).as_mut() {
                asm.reject(piece);
            }
            Err(format!("rejected metadata piece {piece}"))
        }
        _ => Ok(Step::Continue),
    }
}

/// Keeps a few requests in flight. False once the dictionary is complete
/// (another peer finished it).
async fn request_more(
    conn: &mut Framed<PeerStream, MessageCodec>,
    ids: &ExtensionIds,
    shared: &Shared,
    outstanding: &mut Vec<u32>,
) -> Result<bool, String> {
    while outstanding.len() < PIPELINE {
        let next = match lock(shared).as_mut() {
            Some(asm) if asm.is_complete() => return Ok(false),
            Some(asm) => asm.next_request(),
            None => None,
        };
        let Some(piece) = next else { break };
        let msg = ExtendedMessage::Metadata(MetadataMessage::Request { piece });
        let (id, body) = msg.encode_parts(ids).map_err(|e| e.to_string())?;
        conn.send(Message::Extended {
            id,
            payload: Bytes::from(body),
        })
        .await
        .map_err(|e| e.to_string())?;
        outstanding.push(piece);
    }
    Ok(true)
}
