//! The one command dispatcher, for both phases: commands that need the
//! metainfo answer [`TorrentError::MetadataPending`] while a magnet's
//! metadata is being fetched.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use crate::peer::Origin;
use crate::torrent::actor::{Phase, Shell};
use crate::torrent::{StreamParts, TorrentCommand, TorrentError, TorrentStats};

impl Shell {
    pub(super) fn on_command(&mut self, cmd: TorrentCommand) {
        let now = Instant::now();
        match cmd {
            TorrentCommand::Stats { reply } => drop(reply.send(self.stats(now))),
            TorrentCommand::AddPeers { peers } => match &mut self.phase {
                Phase::Metadata(phase) => phase.add_candidates(peers),
                Phase::Running(running) => running.core.add_candidates(peers, true, now),
                Phase::Ended => {}
            },
            TorrentCommand::Inbound {
                addr,
                conn,
                handshake,
            } => {
                let (conn, handshake) = (*conn, *handshake);
                self.inbound(addr, Origin::Inbound { conn, handshake }, now);
            }
            TorrentCommand::WaitPiece {
                piece,
                reader,
                alive,
                reply,
            } => match self.core() {
                Some(core) => core.wait_piece(piece, reader, alive, reply, now),
                None => drop(reply.send(Err(TorrentError::MetadataPending))),
            },
            TorrentCommand::ReaderGone { reader } => {
                if let Some(core) = self.core() {
                    core.reader_gone(reader, now);
                }
            }
            TorrentCommand::OpenParts { reply } => {
                let _ = reply.send(self.parts());
            }
            TorrentCommand::FilePriorities { reply } => {
                let files = self.core().map(|core| core.file_priorities());
                let _ = reply.send(files.ok_or(TorrentError::MetadataPending));
            }
            TorrentCommand::SetFilePriorities { priorities, reply } => {
                let result = match self.core() {
                    Some(core) => core.set_file_priorities(priorities, now),
                    None => Err(TorrentError::MetadataPending),
                };
                let _ = reply.send(result);
            }
            TorrentCommand::SetMode { mode } => match self.core() {
                Some(core) => core.set_mode(mode, now),
                // Applied once the metadata is known.
                None => self.pending.mode = mode,
            },
            TorrentCommand::Pause => self.pause(now),
            TorrentCommand::Resume => self.resume(now),
            TorrentCommand::SetShareLimits { limits } => self.set_share_limits(limits, now),
            TorrentCommand::SetForceStart { force } => self.set_force_start(force, now),
            TorrentCommand::Reannounce => self.reannounce(now),
            TorrentCommand::Recheck { reply } => drop(reply.send(self.recheck(now))),
            TorrentCommand::PieceStates { reply } => {
                let states = self.core().map(|core| core.piece_states());
                let _ = reply.send(states.ok_or(TorrentError::MetadataPending));
            }
            TorrentCommand::FileProgress { reply } => {
                let files = self.core().map(|core| core.file_progress());
                let _ = reply.send(files.ok_or(TorrentError::MetadataPending));
            }
        }
    }

    /// An inbound connection: a peer actor unless the core refuses it.
    fn inbound(&mut self, addr: SocketAddr, origin: Origin, now: Instant) {
        let admitted = match self.core() {
            Some(core) => core.admit(addr, now).map_err(|why| why.to_string()),
            None => Err("no metadata yet".to_owned()),
        };
        match admitted {
            Ok(()) => self.spawn_peer(addr, origin),
            Err(why) => log::debug!("{} refusing inbound {addr}: {why}", self.tag),
        }
    }

    /// The core's counters (none before the metadata), and each tracker's
    /// status from the announce loop.
    fn stats(&mut self, now: Instant) -> TorrentStats {
        let mut stats = match self.core() {
            Some(core) => core.stats(now),
            None => TorrentStats {
                state: self.state_before_core(),
                force_start: self.pending.run.force_start,
                share_limits: self.pending.run.share_limits,
                total_downloaded: self.pending.run.totals.downloaded,
                total_uploaded: self.pending.run.totals.uploaded,
                seeding_time: self.pending.run.totals.seeding_time,
                ..TorrentStats::default()
            },
        };
        stats.trackers = self.tracker_statuses();
        stats.rate_limits = self.connector.limits().torrent_limits();
        stats
    }

    /// What streaming readers need, once the metadata is known.
    fn parts(&self) -> Result<StreamParts, TorrentError> {
        match &self.phase {
            Phase::Running(running) => Ok(StreamParts {
                tx: None,
                meta: Arc::clone(&running.meta),
                store: Arc::clone(&running.store),
            }),
            _ => Err(TorrentError::MetadataPending),
        }
    }
}
