//! Streaming readers: who waits for which piece, and each reader's
//! read-ahead window of urgent pieces (picker deadlines). Pure.
//!
//! Invariant: a window or waiter of a dropped reader is released within a
//! tick even when the reader's `ReaderGone` was lost (its mailbox was full):
//! each window holds the reader's `alive` token, each waiter its reply.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Weak;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::picker::{Picker, Priority};
use crate::torrent::TorrentError;

/// Bytes after a streaming reader's position made urgent (read-ahead).
pub(crate) const READ_AHEAD_BYTES: u64 = 4 * 1024 * 1024;
/// Deadline of the piece a reader waits for, from now.
pub(crate) const READ_DEADLINE: Duration = Duration::from_millis(500);
/// Each following piece of the read-ahead window gets this much more time.
pub(crate) const READ_DEADLINE_STEP: Duration = Duration::from_millis(250);

/// Where a waiting reader's answer goes.
pub(crate) type Waiter = oneshot::Sender<Result<(), TorrentError>>;

/// One reader's read-ahead window.
#[derive(Debug)]
struct Window {
    pieces: Range<u32>,
    /// Dead once the reader is dropped.
    alive: Weak<()>,
}

/// Every streaming reader of one torrent.
#[derive(Debug, Default)]
pub(crate) struct Readers {
    windows: HashMap<u64, Window>,
    waiters: HashMap<u32, Vec<Waiter>>,
}

/// What a reader asking for a piece gets.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Wait {
    /// Answered at once (verified, or an error).
    Answered,
    /// Waiting; its window moved (the picker has new deadlines).
    Waiting,
}

impl Readers {
    /// True when no reader has a window (no urgent pieces).
    pub(crate) fn is_empty(&self) -> bool {
        self.windows.is_empty()
    }

    /// Readers waiting, over all pieces.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.waiters.values().map(Vec::len).sum()
    }

    /// Reader `reader` needs `piece`: answer when it is verified, and make it
    /// and the next pieces urgent (deadlines in the picker).
    pub(crate) fn wait(
        &mut self,
        picker: &mut Picker,
        piece_length: u32,
        request: (u32, u64, Weak<()>),
        reply: Waiter,
        now: Instant,
    ) -> Wait {
        let (piece, reader, alive) = request;
        if piece as usize >= picker.piece_count() {
            let _ = reply.send(Err(TorrentError::NoSuchPiece(piece)));
            return Wait::Answered;
        }
        if picker.have().get(piece as usize) {
            let _ = reply.send(Ok(()));
            return Wait::Answered;
        }
        if picker.priority(piece) == Priority::Skip {
            let _ = reply.send(Err(TorrentError::NotSelected(piece)));
            return Wait::Answered;
        }
        self.waiters.entry(piece).or_default().push(reply);
        // Move this reader's window: earlier deadlines first, a few pieces ahead.
        self.clear_window(picker, reader);
        let window = READ_AHEAD_BYTES
            .div_ceil(u64::from(piece_length.max(1)))
            .max(2);
        let end = (u64::from(piece) + window).min(picker.piece_count() as u64) as u32;
        for (i, p) in (piece..end).enumerate() {
            let deadline = now + READ_DEADLINE + READ_DEADLINE_STEP * i as u32;
            picker.set_deadline(p, deadline);
        }
        let pieces = piece..end;
        self.windows.insert(reader, Window { pieces, alive });
        Wait::Waiting
    }

    /// A reader was dropped: its window is no longer urgent.
    pub(crate) fn gone(&mut self, picker: &mut Picker, reader: u64, now: Instant) {
        if self.clear_window(picker, reader) {
            self.restore_deadlines(picker, now);
        }
    }

    /// Removes `reader`'s window and its deadlines; true if it had one.
    fn clear_window(&mut self, picker: &mut Picker, reader: u64) -> bool {
        let Some(old) = self.windows.remove(&reader) else {
            return false;
        };
        for p in old.pieces {
            picker.clear_deadline(p);
        }
        true
    }

    /// Pieces other readers still wait for keep (or get back) a deadline.
    fn restore_deadlines(&self, picker: &mut Picker, now: Instant) {
        for window in self.windows.values() {
            for p in window.pieces.clone() {
                if picker.deadline(p).is_none() {
                    picker.set_deadline(p, now + READ_DEADLINE);
                }
            }
        }
    }

    /// Piece `piece` was verified: its waiters are answered.
    pub(crate) fn verified(&mut self, piece: u32) {
        for waiter in self.waiters.remove(&piece).unwrap_or_default() {
            let _ = waiter.send(Ok(()));
        }
    }

    /// Waiters on pieces that are no longer wanted get an error.
    pub(crate) fn unselected(&mut self, picker: &Picker) {
        self.waiters.retain(|&piece, waiters| {
            if picker.priority(piece) != Priority::Skip {
                return true;
            }
            for waiter in waiters.drain(..) {
                let _ = waiter.send(Err(TorrentError::NotSelected(piece)));
            }
            false
        });
    }

    /// Releases what dropped readers left behind: windows whose reader is
    /// gone, waiters nobody listens to. True if a window was released.
    pub(crate) fn sweep(&mut self, picker: &mut Picker, now: Instant) -> bool {
        let dead: Vec<u64> = self
            .windows
            .iter()
            .filter(|(_, w)| w.alive.strong_count() == 0)
            .map(|(id, _)| *id)
            .collect();
        for reader in &dead {
            self.clear_window(picker, *reader);
        }
        self.waiters.retain(|_, waiters| {
            waiters.retain(|w| !w.is_closed());
            !waiters.is_empty()
        });
        if !dead.is_empty() {
            self.restore_deadlines(picker, now);
        }
        !dead.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn picker() -> Picker {
        Picker::new(10, 1024 * 1024, 10 * 1024 * 1024).with_rng_seed(5)
    }

    #[test]
    fn a_wait_sets_a_window_and_verification_answers() {
        let (mut readers, mut picker, now) = (Readers::default(), picker(), Instant::now());
        let token = Arc::new(());
        let (tx, mut rx) = oneshot::channel();
        let request = (2, 1, Arc::downgrade(&token));
        let wait = readers.wait(&mut picker, 1024 * 1024, request, tx, now);
        assert_eq!(wait, Wait::Waiting);
        // 4 MiB ahead in 1 MiB pieces: pieces 2..6.
        assert_eq!(picker.deadline_count(), 4);
        assert!(rx.try_recv().is_err(), "not answered yet");
        readers.verified(2);
        assert!(matches!(rx.try_recv(), Ok(Ok(()))));
        readers.gone(&mut picker, 1, now);
        assert_eq!(picker.deadline_count(), 0);
    }

    #[test]
    fn skipped_and_out_of_range_pieces_are_typed_errors() {
        let (mut readers, mut picker, now) = (Readers::default(), picker(), Instant::now());
        picker.set_priority(3, Priority::Skip);
        let (tx, mut rx) = oneshot::channel();
        readers.wait(&mut picker, 1 << 20, (3, 1, Weak::new()), tx, now);
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(TorrentError::NotSelected(3)))
        ));
        let (tx, mut rx) = oneshot::channel();
        readers.wait(&mut picker, 1 << 20, (10, 1, Weak::new()), tx, now);
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(TorrentError::NoSuchPiece(10)))
        ));
        assert!(readers.is_empty());
    }

    #[test]
    fn a_dropped_reader_is_released_at_the_sweep_without_reader_gone() {
        let (mut readers, mut picker, now) = (Readers::default(), picker(), Instant::now());
        let token = Arc::new(());
        let (tx, rx) = oneshot::channel();
        readers.wait(
            &mut picker,
            1 << 20,
            (0, 7, Arc::downgrade(&token)),
            tx,
            now,
        );
        let other = Arc::new(());
        let (tx2, _rx2) = oneshot::channel();
        readers.wait(
            &mut picker,
            1 << 20,
            (1, 8, Arc::downgrade(&other)),
            tx2,
            now,
        );
        assert!(!readers.sweep(&mut picker, now), "both alive");
        // The reader is dropped (its ReaderGone lost to a full mailbox).
        drop((token, rx));
        assert!(readers.sweep(&mut picker, now));
        assert_eq!(readers.waiting(), 1, "only the live reader still waits");
        assert_eq!(picker.deadline(0), None, "the dead window is released");
        assert!(
            picker.deadline(1).is_some(),
            "the live window keeps its pieces"
        );
    }
}
