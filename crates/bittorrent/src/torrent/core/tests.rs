//! The core driven with inputs and judged by its actions: seeded picker and
//! choker, a `MemoryStore`, a clock that only moves when the test says. No
//! sockets, no tasks, no sleeping.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use sha1::{Digest, Sha1};
use tokio::sync::oneshot;

use crate::peer::{DisconnectReason, PeerError, PeerEvent};
use crate::store::MemoryStore;
use crate::torrent::check::Checked;
use crate::torrent::core::peers::Refusal;
use crate::torrent::core::*;
use crate::torrent::{TorrentError, TorrentState};
use crate::tracker::TrackerUpdate;
use crate::types::{BlockInfo, PeerId, BLOCK_SIZE};
use crate::webseed::{WebSeedCommand, WebSeedError, WebSeedEvent, WebSeedId};

mod control;
mod fast;
mod schedule;
mod webseeds;

/// Two blocks per piece.
const PIECE: u32 = 2 * BLOCK_SIZE;
/// Our listen port (on 127.0.0.1).
const LISTEN: u16 = 6881;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A torrent of files of these lengths, with real piece hashes.
fn torrent(files: &[u64]) -> (Arc<MetaInfo>, Vec<u8>) {
    let total: u64 = files.iter().sum();
    let data: Vec<u8> = (0..total).map(|i| (i * 7 % 251) as u8).collect();
    let names: Vec<String> = (0..files.len()).map(|i| format!("f{i}")).collect();
    let entries: Vec<(&str, u64, bool)> = names
        .iter()
        .zip(files)
        .map(|(n, &len)| (n.as_str(), len, false))
        .collect();
    let mut meta = MetaInfo::for_test("t", PIECE, &entries);
    meta.piece_hashes = data
        .chunks(PIECE as usize)
        .map(|c| Sha1::digest(c).into())
        .collect();
    (Arc::new(meta), data)
}

fn config() -> CoreConfig {
    CoreConfig {
        max_peers: 4,
        max_connections: 6,
        upload_slots: 2,
        use_trackers: true,
        use_dht: false,
        seed: Some(7),
        ourselves: swarm::Ourselves::new(addr(LISTEN), []),
    }
}

/// An input the rig feeds back to the core.
enum Input {
    Peer(PeerEvent),
    Disk(disk::DiskDone),
    Finalized,
    Saved,
    SelectionStored,
    Web(WebSeedEvent),
}

/// How a web seed the rig plays answers a run.
#[derive(Clone, Debug)]
enum Serve {
    /// Every piece, right.
    Good,
    /// Every piece, with wrong bytes.
    Corrupt,
    /// This many pieces, then the run fails with this error.
    FailAfter(u32, WebSeedError),
}

/// A core, its store, the clock, and the peers' behaviour.
struct Rig {
    core: TorrentCore,
    data: Vec<u8>,
    store: MemoryStore,
    now: Instant,
    /// Peers that send corrupt blocks.
    liars: Vec<SocketAddr>,
    /// Peers that never answer requests.
    silent: Vec<SocketAddr>,
    /// Verifications the rig holds instead of running (to test ordering).
    hold_verifications: bool,
    held: Vec<disk::DiskBatch>,
    /// Store jobs asked for, in order (resume records apart).
    store_jobs: Vec<&'static str>,
    /// Resume records written.
    records: usize,
    /// Blocks requested from (and served by) the answering peers.
    served: Vec<BlockInfo>,
    /// The web seeds the rig answers for (a `Fetch` to another is left to
    /// the test).
    web: HashMap<WebSeedId, Serve>,
    /// The runs those web seeds were asked for.
    runs: Vec<(WebSeedId, std::ops::Range<u32>)>,
}

impl Rig {
    fn new(files: &[u64], priorities: Vec<Priority>) -> Self {
        let (meta, data) = torrent(files);
        Self::with_meta(meta, data, priorities)
    }

    /// A rig for this torrent and its payload.
    fn with_meta(meta: Arc<MetaInfo>, data: Vec<u8>, priorities: Vec<Priority>) -> Self {
        let now = Instant::now();
        let store = MemoryStore::new(&meta);
        let core = TorrentCore::new(meta, config(), priorities, PickMode::RarestFirst, &[], now);
        Self {
            core,
            data,
            store,
            now,
            liars: Vec::new(),
            silent: Vec::new(),
            hold_verifications: false,
            held: Vec::new(),
            store_jobs: Vec::new(),
            records: 0,
            served: Vec::new(),
            web: HashMap::new(),
            runs: Vec::new(),
        }
    }

    /// A rig whose check found `have`.
    fn checked(files: &[u64], priorities: Vec<Priority>, have: &[u32]) -> Self {
        let mut rig = Self::new(files, priorities);
        let mut checked = Checked::nothing(rig.core.meta.piece_count());
        for &i in have {
            checked.have.set(i as usize);
        }
        checked.trusted = have.len();
        checked.exact = true;
        rig.core.checked(&checked, rig.now);
        rig
    }

    fn advance(&mut self, secs: u64) {
        self.now += Duration::from_secs(secs);
    }

    fn peer(&mut self, event: PeerEvent) -> Vec<Action> {
        self.core.peer_event(event, self.now);
        self.settle()
    }

    /// Registers (dialled or admitted) and handshakes `addr`, with `has`.
    fn connect(&mut self, port: u16, has: Bitfield) -> Vec<Action> {
        let addr = addr(port);
        if !self.core.peers.contains(&addr) {
            self.core.admit(addr, self.now).expect("admitted");
        }
        let peer_id = PeerId([port as u8; 20]);
        let mut out = self.peer(PeerEvent::Connected { addr, peer_id });
        out.extend(self.peer(PeerEvent::Bitfield {
            addr,
            bitfield: has,
        }));
        out.extend(self.peer(PeerEvent::Unchoked { addr }));
        out
    }

    fn full(&self) -> Bitfield {
        Bitfield::full(self.core.meta.piece_count())
    }

    fn piece_data(&self, piece: u32) -> Bytes {
        let start = piece as usize * PIECE as usize;
        let end = (start + PIECE as usize).min(self.data.len());
        Bytes::copy_from_slice(&self.data[start..end])
    }

    fn web_event(&mut self, event: WebSeedEvent) -> Vec<Action> {
        self.core.web_seed_event(event, self.now);
        self.settle()
    }

    fn block_data(&self, block: BlockInfo) -> Bytes {
        let start = (u64::from(block.piece) * u64::from(PIECE) + u64::from(block.begin)) as usize;
        Bytes::copy_from_slice(&self.data[start..start + block.length as usize])
    }

    /// Plays the peers and the blocking jobs until the core asks for
    /// nothing more; returns the actions the rig did not carry out.
    fn settle(&mut self) -> Vec<Action> {
        let mut left = Vec::new();
        let mut inputs = VecDeque::new();
        loop {
            for action in self.core.take_actions() {
                if let Some(action) = self.play(action, &mut inputs) {
                    left.push(action);
                }
            }
            let Some(input) = inputs.pop_front() else {
                return left;
            };
            match input {
                Input::Peer(event) => self.core.peer_event(event, self.now),
                Input::Disk(done) => self.core.disk_done(done, self.now),
                Input::Finalized => self.core.finalized(Ok(())),
                Input::Saved => self.core.resume_saved(Ok(())),
                Input::SelectionStored => self.core.selection_stored(Ok(())),
                Input::Web(event) => self.core.web_seed_event(event, self.now),
            }
        }
    }

    fn play(&mut self, action: Action, inputs: &mut VecDeque<Input>) -> Option<Action> {
        match action {
            Action::Peer(addr, PeerCommand::Request(blocks)) if !self.silent.contains(&addr) => {
                self.served.extend(&blocks);
                for block in blocks {
                    let mut data = self.block_data(block);
                    if self.liars.contains(&addr) {
                        data = Bytes::from(vec![0xee; data.len()]);
                    }
                    inputs.push_back(Input::Peer(PeerEvent::Block { addr, block, data }));
                }
                None
            }
            Action::WebSeed(seed, WebSeedCommand::Fetch { pieces })
                if self.web.contains_key(&seed) =>
            {
                let serve = self.web[&seed].clone();
                self.runs.push((seed, pieces.clone()));
                let (deliver, outcome) = match serve.clone() {
                    Serve::Good | Serve::Corrupt => (pieces.len() as u32, Ok(())),
                    Serve::FailAfter(n, e) => (n.min(pieces.len() as u32), Err(e)),
                };
                let delivered = pieces.start..pieces.start + deliver;
                for index in delivered.clone() {
                    let mut data = self.piece_data(index);
                    if matches!(serve, Serve::Corrupt) {
                        data = Bytes::from(vec![0xee; data.len()]);
                    }
                    inputs.push_back(Input::Web(WebSeedEvent::Piece { seed, index, data }));
                }
                let undelivered = delivered.end..pieces.end;
                inputs.push_back(Input::Web(WebSeedEvent::RunEnded {
                    seed,
                    undelivered,
                    outcome,
                }));
                None
            }
            Action::Disk(batch) if self.hold_verifications => {
                self.held.push(batch);
                None
            }
            Action::Disk(batch) => {
                inputs.push_back(Input::Disk(batch.run(&self.store)));
                None
            }
            Action::Finalize => {
                self.store_jobs.push("finalize");
                inputs.push_back(Input::Finalized);
                None
            }
            Action::SaveResume(_) => {
                self.records += 1;
                inputs.push_back(Input::Saved);
                None
            }
            Action::StoreSelection(_) => {
                self.store_jobs.push("selection");
                inputs.push_back(Input::SelectionStored);
                None
            }
            other => Some(other),
        }
    }

    /// Runs the held verifications.
    fn release_verifications(&mut self) -> Vec<Action> {
        self.hold_verifications = false;
        for batch in std::mem::take(&mut self.held) {
            let done = batch.run(&self.store);
            self.core.disk_done(done, self.now);
        }
        self.settle()
    }

    fn tick(&mut self) -> Vec<Action> {
        self.core.tick(self.now);
        self.settle()
    }

    fn disconnected(&mut self, port: u16, reason: DisconnectReason) -> Vec<Action> {
        let addr = addr(port);
        self.peer(PeerEvent::Disconnected { addr, reason })
    }
}

fn dials(actions: &[Action]) -> Vec<SocketAddr> {
    let mut dials: Vec<SocketAddr> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Dial(addr) => Some(*addr),
            _ => None,
        })
        .collect();
    dials.sort();
    dials
}

fn disconnects(actions: &[Action]) -> Vec<SocketAddr> {
    let mut out: Vec<SocketAddr> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Disconnect(addr) => Some(*addr),
            _ => None,
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

fn emitted(actions: &[Action], pred: impl Fn(&Event) -> bool) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::Emit(e) if pred(e)))
        .count()
}

fn requested(actions: &[Action]) -> Vec<BlockInfo> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Peer(_, PeerCommand::Request(blocks)) => Some(blocks.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn failed() -> DisconnectReason {
    DisconnectReason::Failed(PeerError::Closed)
}

#[test]
fn a_whole_download_from_one_seed() {
    let mut rig = Rig::new(&[5 * u64::from(PIECE) + 100], Vec::new());
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Checking);
    rig.core.checked(&Checked::nothing(6), rig.now);
    let started = rig.settle();
    assert!(started.iter().any(|a| matches!(a, Action::StartAnnouncer)));
    assert_eq!(rig.records, 1, "a record of the files as they are, at once");
    rig.core.add_candidates([addr(1)], true, rig.now);
    assert_eq!(dials(&rig.settle()), [addr(1)]);
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::PieceVerified { .. })),
        6
    );
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentComplete { .. })),
        1
    );
    assert_eq!(rig.store.contents(), rig.data, "every byte stored");
    assert_eq!(rig.store_jobs, ["finalize"]);
    assert_eq!(rig.records, 2, "and one once finalized");
    assert_eq!(disconnects(&out), [addr(1)], "two seeds part");
    let stats = rig.core.stats(rig.now);
    assert!(stats.complete);
    assert_eq!(stats.state, TorrentState::Seeding);
    assert_eq!(stats.wasted, 0);
    assert_eq!(stats.bytes_have, rig.data.len() as u64);
}

#[test]
fn a_sole_sender_of_a_bad_piece_is_banned_and_the_piece_comes_from_another() {
    let mut rig = Rig::checked(&[2 * u64::from(PIECE)], Vec::new(), &[]);
    rig.liars.push(addr(1));
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(emitted(&out, |e| matches!(e, Event::PieceFailed { .. })), 2);
    assert_eq!(disconnects(&out), [addr(1)]);
    assert!(rig.core.is_banned(&addr(1)));
    rig.disconnected(1, DisconnectReason::Local);
    assert!(rig.core.admit(addr(1), rig.now) == Err(Refusal::Banned));
    let seed = rig.full();
    let out = rig.connect(2, seed);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentComplete { .. })),
        1
    );
    assert_eq!(rig.store.contents(), rig.data);
    assert_eq!(rig.core.stats(rig.now).wasted, 2 * u64::from(PIECE));
}

#[test]
fn failures_back_off_and_doubling_while_our_own_closes_do_not() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    rig.core.add_candidates([addr(1)], true, rig.now);
    assert_eq!(dials(&rig.settle()), [addr(1)]);
    rig.disconnected(1, failed());
    rig.advance(14);
    assert!(dials(&rig.tick()).is_empty(), "backing off 15 s");
    rig.advance(1);
    assert_eq!(dials(&rig.tick()), [addr(1)]);
    rig.disconnected(1, failed());
    rig.advance(29);
    assert!(dials(&rig.tick()).is_empty(), "second failure: 30 s");
    rig.advance(1);
    assert_eq!(dials(&rig.tick()), [addr(1)]);
    rig.disconnected(1, DisconnectReason::Local);
    rig.advance(15);
    assert_eq!(
        dials(&rig.tick()),
        [addr(1)],
        "a close of ours adds nothing"
    );
}

#[test]
fn we_never_dial_ourselves_and_an_address_that_was_us_never_again() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    rig.core
        .add_candidates([addr(LISTEN), addr(1)], true, rig.now);
    assert_eq!(
        dials(&rig.settle()),
        [addr(1)],
        "our listen endpoint is not"
    );
    let us = DisconnectReason::Failed(PeerError::SelfConnection);
    rig.disconnected(1, us);
    rig.core.add_candidates([addr(1)], true, rig.now);
    rig.advance(24 * 3600);
    assert!(dials(&rig.tick()).is_empty(), "it was us: never again");
    assert_eq!(rig.core.admit(addr(2), rig.now), Ok(()));
    let us = DisconnectReason::Failed(PeerError::SelfConnection);
    rig.disconnected(2, us);
    rig.core.add_candidates([addr(2)], false, rig.now);
    assert_eq!(
        dials(&rig.settle()),
        [addr(2)],
        "an inbound connection's source port is not where it listens"
    );
}

#[test]
fn connection_limits_bound_dials_and_inbound() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    rig.core.add_candidates((1..=10).map(addr), false, rig.now);
    let dialled = dials(&rig.settle());
    assert_eq!(dialled.len(), 4, "max_peers");
    let again = rig.core.admit(dialled[0], rig.now);
    assert_eq!(again, Err(Refusal::AlreadyConnected));
    assert_eq!(rig.core.admit(addr(20), rig.now), Ok(()));
    assert_eq!(rig.core.admit(addr(21), rig.now), Ok(()));
    assert_eq!(rig.core.admit(addr(22), rig.now), Err(Refusal::Limit));
    assert!(dials(&rig.tick()).is_empty(), "full");
}

#[test]
fn pause_disconnects_and_stops_announcing_resume_undoes_it() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    rig.core.add_candidates([addr(1), addr(2)], false, rig.now);
    rig.settle();
    rig.core.pause(rig.now);
    let out = rig.settle();
    assert_eq!(disconnects(&out), [addr(1), addr(2)]);
    assert!(out.iter().any(|a| matches!(a, Action::StopAnnouncer)));
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentPaused { .. })),
        1
    );
    assert_eq!(rig.core.admit(addr(3), rig.now), Err(Refusal::NotActive));
    rig.disconnected(1, DisconnectReason::Local);
    rig.disconnected(2, DisconnectReason::Local);
    rig.advance(20);
    assert!(dials(&rig.tick()).is_empty(), "paused: no dials");
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Paused);
    rig.core.resume(rig.now);
    let out = rig.settle();
    assert!(out.iter().any(|a| matches!(a, Action::StartAnnouncer)));
    assert_eq!(dials(&out), [addr(1), addr(2)]);
}

#[test]
fn a_reader_makes_its_piece_urgent_and_is_answered_when_verified() {
    let mut rig = Rig::checked(&[8 * u64::from(PIECE)], Vec::new(), &[]);
    let token = Arc::new(());
    let (reply, mut answer) = oneshot::channel();
    rig.core
        .wait_piece(6, 1, Arc::downgrade(&token), reply, rig.now);
    rig.settle();
    assert_eq!(rig.core.flow.picker().mode(), PickMode::Streaming);
    assert!(rig.core.flow.picker().deadline(6).is_some());
    // The first peer is asked for the urgent piece first.
    rig.silent.push(addr(1));
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(requested(&out)[0].piece, 6, "{:?}", requested(&out));
    assert!(answer.try_recv().is_err(), "not yet");
    rig.silent.clear();
    rig.disconnected(1, DisconnectReason::Local);
    let seed = rig.full();
    rig.connect(2, seed);
    assert!(matches!(answer.try_recv(), Ok(Ok(()))));
    // Dropped without a `ReaderGone`: the tick releases its window.
    drop(token);
    rig.tick();
    assert!(rig.core.readers.is_empty());
    assert_eq!(rig.core.flow.picker().mode(), PickMode::RarestFirst);
}

#[test]
fn a_reader_of_a_skipped_piece_gets_a_typed_error() {
    let len = 2 * u64::from(PIECE);
    let mut rig = Rig::checked(&[len, len], vec![Priority::Normal, Priority::Skip], &[]);
    let (reply, mut answer) = oneshot::channel();
    rig.core
        .wait_piece(3, 1, std::sync::Weak::new(), reply, rig.now);
    assert!(matches!(
        answer.try_recv(),
        Ok(Err(TorrentError::NotSelected(3)))
    ));
}

#[test]
fn only_selected_files_are_fetched_and_selecting_more_downloads_them() {
    let len = 2 * u64::from(PIECE);
    let mut rig = Rig::checked(&[len, len], vec![Priority::Skip, Priority::Normal], &[]);
    rig.core.add_candidates([addr(1)], false, rig.now);
    rig.settle();
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(disconnects(&out), [addr(1)], "complete: seeds part");
    rig.disconnected(1, DisconnectReason::Local);
    let pieces: Vec<u32> = rig.served.iter().map(|b| b.piece).collect();
    assert_eq!(pieces.len(), 4, "{pieces:?}");
    assert!(
        pieces.iter().all(|&p| p >= 2),
        "only f1's pieces: {pieces:?}"
    );
    let stats = rig.core.stats(rig.now);
    assert!(stats.complete);
    assert_eq!(stats.state, TorrentState::Finished);
    assert_eq!(
        rig.store_jobs,
        ["finalize"],
        "the store had the selection already"
    );
    let out = rig
        .core
        .set_file_priorities(vec![Priority::Normal], rig.now);
    assert!(matches!(out, Err(TorrentError::Selection(_))));
    rig.core
        .set_file_priorities(vec![Priority::Normal; 2], rig.now)
        .unwrap();
    assert_eq!(dials(&rig.settle()), [addr(1)], "the seed is dialled again");
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentComplete { .. })),
        1
    );
    assert_eq!(rig.store_jobs, ["finalize", "selection", "finalize"]);
    assert_eq!(rig.core.stats(rig.now).state, TorrentState::Seeding);
}

#[test]
fn a_new_selection_waits_for_pieces_being_written_and_holds_new_ones() {
    let len = 2 * u64::from(PIECE);
    let mut rig = Rig::checked(&[len, len], Vec::new(), &[]);
    rig.hold_verifications = true;
    let seed = rig.full();
    rig.connect(1, seed);
    assert_eq!(
        rig.held.len(),
        disk::LANES,
        "one batch of writes per lane at a time"
    );
    rig.core
        .set_file_priorities(vec![Priority::Skip, Priority::Normal], rig.now)
        .unwrap();
    rig.settle();
    assert!(rig.store_jobs.is_empty(), "not while pieces are written");
    let out = rig.release_verifications();
    assert_eq!(rig.store_jobs[0], "selection");
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentComplete { .. })),
        1
    );
}

#[test]
fn the_tracker_counts_this_sessions_payload_only() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[0, 1]);
    let transfer = rig.core.transfer();
    assert_eq!(
        transfer.downloaded, 0,
        "pieces found at start are not downloaded"
    );
    assert_eq!(transfer.left, 2 * u64::from(PIECE));
    let seed = rig.full();
    rig.connect(1, seed);
    let transfer = rig.core.transfer();
    assert_eq!(transfer.downloaded, 2 * u64::from(PIECE));
    assert_eq!(transfer.left, 0);
    let out = rig.tick();
    let published = out.iter().find_map(|a| match a {
        Action::Transfer(t) => Some(*t),
        _ => None,
    });
    assert_eq!(published, Some(transfer));
}

#[test]
fn tracker_peers_are_dialled_and_failures_reported() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    let update = TrackerUpdate::Announced {
        url: "http://t".into(),
        peers: vec![addr(1), addr(2)],
        warning: None,
    };
    rig.core.tracker(update, rig.now);
    let out = rig.settle();
    assert_eq!(dials(&out), [addr(1), addr(2)]);
    let failure = TrackerUpdate::Failed {
        url: "http://t".into(),
        error: "refused".into(),
    };
    rig.core.tracker(failure, rig.now);
    let out = rig.settle();
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TrackerError { .. })),
        1
    );
}

#[test]
fn duplicate_haves_cost_nothing_and_a_wanted_have_makes_us_interested() {
    let len = 2 * u64::from(PIECE);
    let mut rig = Rig::checked(&[len, len], vec![Priority::Normal, Priority::Skip], &[]);
    rig.silent.push(addr(1));
    let nothing = Bitfield::new(4);
    let out = rig.connect(1, nothing);
    assert!(!out
        .iter()
        .any(|a| matches!(a, Action::Peer(_, PeerCommand::Interested(_)))));
    let have = |piece| PeerEvent::Have {
        addr: addr(1),
        piece,
    };
    assert!(
        rig.peer(have(3)).is_empty(),
        "a skipped piece: not interested"
    );
    assert_eq!(rig.core.flow.picker().availability(3), 1);
    assert!(rig.peer(have(3)).is_empty(), "a duplicate: nothing");
    assert_eq!(rig.core.flow.picker().availability(3), 1, "counted once");
    let out = rig.peer(have(0));
    assert!(matches!(
        out[..],
        [
            Action::Peer(_, PeerCommand::Interested(true)),
            Action::Peer(_, PeerCommand::Request(_))
        ]
    ));
    assert!(rig.peer(have(0)).is_empty());
}

#[test]
fn a_have_of_a_wanted_piece_is_asked_for_at_once_from_an_interesting_peer() {
    // A fellow leecher we already want something from: its next piece is
    // requested when its `have` arrives, not at the next tick.
    let len = 4 * u64::from(PIECE);
    let mut rig = Rig::checked(&[len], Vec::new(), &[]);
    rig.silent.push(addr(1));
    let mut first = Bitfield::new(4);
    first.set(0);
    let out = rig.connect(1, first);
    assert_eq!(
        requested(&out).iter().map(|b| b.piece).collect::<Vec<_>>(),
        [0, 0]
    );
    let out = rig.peer(PeerEvent::Have {
        addr: addr(1),
        piece: 2,
    });
    assert!(
        matches!(out[..], [Action::Peer(_, PeerCommand::Request(_))]),
        "{out:?}"
    );
    assert_eq!(
        requested(&out).iter().map(|b| b.piece).collect::<Vec<_>>(),
        [2, 2]
    );
}

#[test]
fn a_later_bitfield_counts_as_the_haves_of_its_new_pieces() {
    let len = 4 * u64::from(PIECE);
    let mut rig = Rig::checked(&[len, len], vec![Priority::Skip, Priority::Normal], &[]);
    rig.silent.push(addr(1));
    let mut first = Bitfield::new(8);
    first.set(0);
    first.set(1);
    let out = rig.connect(1, first);
    assert!(!out
        .iter()
        .any(|a| matches!(a, Action::Peer(_, PeerCommand::Interested(_)))));
    // A later bitfield: 1 is gone (ignored), 2 and 6 are new, 6 is wanted.
    let mut later = Bitfield::new(8);
    for piece in [0, 2, 6] {
        later.set(piece);
    }
    let out = rig.peer(PeerEvent::Bitfield {
        addr: addr(1),
        bitfield: later.clone(),
    });
    assert!(disconnects(&out).is_empty());
    assert!(out
        .iter()
        .any(|a| matches!(a, Action::Peer(_, PeerCommand::Interested(true)))));
    let picker = rig.core.flow.picker();
    let availability: Vec<u32> = (0..8).map(|p| picker.availability(p)).collect();
    assert_eq!(availability, [1, 1, 1, 0, 0, 0, 1, 0]);
    let out = rig.peer(PeerEvent::Bitfield {
        addr: addr(1),
        bitfield: later,
    });
    assert!(out.is_empty(), "nothing new: nothing done");
}

#[test]
fn a_lost_batch_downloads_its_piece_again() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    rig.hold_verifications = true;
    let seed = rig.full();
    rig.connect(1, seed);
    let batch = rig.held.pop().expect("one batch");
    assert!(batch
        .ops
        .iter()
        .any(|op| matches!(op, disk::DiskOp::Verify(_))));
    rig.hold_verifications = false;
    rig.served.clear();
    rig.core.disk_lost(batch.lane, rig.now);
    rig.settle();
    assert_eq!(rig.served.len(), 2, "both blocks again");
    assert!(rig.core.stats(rig.now).complete);
}

#[test]
fn the_partial_piece_cap_follows_the_connections() {
    let mut rig = Rig::checked(&[8 * u64::from(PIECE)], Vec::new(), &[]);
    // Two 256-block pipelines in pieces of 2 blocks, from the start.
    assert_eq!(rig.core.flow.picker().max_partial_pieces(), 256);
    rig.silent.push(addr(1));
    let seed = rig.full();
    rig.connect(1, seed);
    assert_eq!(rig.core.flow.picker().max_partial_pieces(), 257);
    rig.disconnected(1, DisconnectReason::Local);
    assert_eq!(rig.core.flow.picker().max_partial_pieces(), 256);
}

#[test]
fn a_snubbing_peer_is_dropped_and_its_blocks_go_to_others() {
    let mut rig = Rig::checked(&[4 * u64::from(PIECE)], Vec::new(), &[]);
    rig.silent.push(addr(1));
    let seed = rig.full();
    let out = rig.connect(1, seed);
    assert_eq!(requested(&out).len(), 8);
    rig.advance(61);
    let out = rig.tick();
    assert_eq!(disconnects(&out), [addr(1)]);
    rig.disconnected(1, DisconnectReason::Local);
    let seed = rig.full();
    let out = rig.connect(2, seed);
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::TorrentComplete { .. })),
        1
    );
}

#[test]
fn shutdown_verifies_what_is_complete_and_writes_the_record() {
    let mut rig = Rig::checked(&[u64::from(PIECE)], Vec::new(), &[]);
    rig.hold_verifications = true;
    let seed = rig.full();
    rig.connect(1, seed);
    rig.core.stop();
    assert!(rig.core.finish(), "a verification runs");
    assert_eq!(disconnects(&rig.settle()), [addr(1)]);
    let out = rig.release_verifications();
    assert!(
        !out.iter().any(|a| matches!(a, Action::Peer(..))),
        "{out:?}"
    );
    assert_eq!(
        emitted(&out, |e| matches!(e, Event::PieceVerified { .. })),
        1
    );
    assert_eq!(rig.records, 1, "the record is written");
    assert!(!rig.core.finish(), "nothing left to wait for");
    let out = rig.core.take_actions();
    assert!(out.iter().any(|a| matches!(a, Action::StopAnnouncer)));
}
