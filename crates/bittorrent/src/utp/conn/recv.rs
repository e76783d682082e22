//! The receive side: in-order payload goes straight into the read ring;
//! packets past a hole wait in slots (bounded by the window) and drain
//! when it fills; the selective ACK is written from the slots.
//!
//! Invariants: `ack_nr` is the last sequence number received in order;
//! `slots[i]` holds packet `ack_nr + 2 + i` (SACK bit `i`) or nothing;
//! `ready.len() + held` stays within the window plus one packet.

use std::collections::VecDeque;

use crate::utp::conn::seq;
use crate::utp::packet::MAX_SACK;

/// What became of a received DATA packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Received {
    /// In order: `ack_nr` moved.
    InOrder,
    /// Past a hole: held for later.
    Held,
    /// Already had it (or before the window): only worth an ACK.
    Duplicate,
    /// No room, or too far ahead: dropped.
    Dropped,
}

/// Receive buffer, reorder slots and the peer's FIN.
#[derive(Debug)]
pub(crate) struct RecvQueue {
    ready: VecDeque<u8>,
    ack_nr: u16,
    slots: VecDeque<Option<Vec<u8>>>,
    held: usize,
    pool: Vec<Vec<u8>>,
    fin: Option<u16>,
    window: usize,
    max_slots: usize,
}

impl RecvQueue {
    /// Empty, with `ack_nr` the last sequence number seen in order.
    pub(crate) fn new(window: usize, max_payload: usize, ack_nr: u16) -> Self {
        Self {
            ready: VecDeque::new(),
            ack_nr,
            slots: VecDeque::new(),
            held: 0,
            pool: Vec::new(),
            fin: None,
            window,
            max_slots: (window / max_payload.max(1)).clamp(16, MAX_SACK * 8),
        }
    }

    /// The last sequence number received in order.
    pub(crate) fn ack_nr(&self) -> u16 {
        self.ack_nr
    }

    /// Sets `ack_nr` (when the SYN-ACK tells it).
    pub(crate) fn set_ack_nr(&mut self, ack_nr: u16) {
        self.ack_nr = ack_nr;
    }

    /// The window to advertise: free buffer space.
    pub(crate) fn window(&self) -> usize {
        self.window.saturating_sub(self.ready.len() + self.held)
    }

    /// In-order bytes waiting for `read`.
    pub(crate) fn ready(&self) -> usize {
        self.ready.len()
    }

    /// Some packet past a hole is held (a SACK is worth sending).
    pub(crate) fn has_holes(&self) -> bool {
        !self.slots.is_empty()
    }

    /// `seq_nr` lies past what the reorder slots can hold.
    pub(crate) fn too_far(&self, seq_nr: u16) -> bool {
        let d = seq_nr.wrapping_sub(self.ack_nr);
        seq::after(seq_nr, self.ack_nr) && usize::from(d) > self.max_slots + 1
    }

    /// One DATA packet.
    pub(crate) fn insert(&mut self, seq_nr: u16, payload: &[u8]) -> Received {
        if !seq::after(seq_nr, self.ack_nr) || self.fin.is_some_and(|f| !seq::after(f, seq_nr)) {
            return Received::Duplicate;
        }
        let d = usize::from(seq_nr.wrapping_sub(self.ack_nr));
        if d > self.max_slots + 1 || self.ready.len() + self.held >= self.window {
            return Received::Dropped;
        }
        if d == 1 {
            self.ready.extend(payload);
            self.ack_nr = seq_nr;
            self.drain_slots();
            return Received::InOrder;
        }
        let i = d - 2;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].is_some() {
            return Received::Duplicate;
        }
        let mut buf = self.pool.pop().unwrap_or_default();
        buf.clear();
        buf.extend_from_slice(payload);
        self.held += buf.len();
        self.slots[i] = Some(buf);
        Received::Held
    }

    fn drain_slots(&mut self) {
        // Stops at the first empty slot (the next hole), or the end.
        while let Some(Some(buf)) = self.slots.pop_front() {
            self.held -= buf.len();
            self.ready.extend(&buf);
            self.ack_nr = self.ack_nr.wrapping_add(1);
            if self.pool.len() < self.max_slots {
                self.pool.push(buf);
            }
        }
        self.reach_fin();
    }

    /// Steps `ack_nr` onto the FIN once everything before it is in.
    fn reach_fin(&mut self) {
        if self.fin == Some(self.ack_nr.wrapping_add(1)) {
            self.ack_nr = self.ack_nr.wrapping_add(1);
            self.slots.clear();
        }
    }

    /// The peer's FIN, at `seq_nr` (it carries no payload).
    pub(crate) fn fin(&mut self, seq_nr: u16) {
        if self.fin.is_some() || !seq::after(seq_nr, self.ack_nr) {
            return;
        }
        self.fin = Some(seq_nr);
        // Nothing past the FIN counts.
        let keep = usize::from(seq_nr.wrapping_sub(self.ack_nr)).saturating_sub(2);
        while self.slots.len() > keep {
            if let Some(Some(buf)) = self.slots.pop_back() {
                self.held -= buf.len();
            }
        }
        self.reach_fin();
    }

    /// The peer's FIN came and everything before it too.
    pub(crate) fn fin_reached(&self) -> bool {
        self.fin == Some(self.ack_nr)
    }

    /// `fin_reached` and every byte was read.
    pub(crate) fn is_eof(&self) -> bool {
        self.fin_reached() && self.ready.is_empty()
    }

    /// Copies in-order bytes into `buf`.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> usize {
        let (a, b) = self.ready.as_slices();
        let n_a = a.len().min(buf.len());
        buf[..n_a].copy_from_slice(&a[..n_a]);
        let n_b = b.len().min(buf.len() - n_a);
        buf[n_a..n_a + n_b].copy_from_slice(&b[..n_b]);
        self.ready.drain(..n_a + n_b);
        n_a + n_b
    }

    /// Bytes of SACK bitmask to send (a multiple of 4; 0 without holes).
    pub(crate) fn sack_len(&self) -> usize {
        if self.slots.is_empty() {
            return 0;
        }
        (self.slots.len().div_ceil(32) * 4).min(MAX_SACK)
    }

    /// Writes the bitmask: bit `i` is packet `ack_nr + 2 + i`.
    pub(crate) fn write_sack(&self, out: &mut [u8]) {
        out.fill(0);
        for (i, slot) in self.slots.iter().enumerate().take(out.len() * 8) {
            if slot.is_some() {
                out[i / 8] |= 1 << (i % 8);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(q: &mut RecvQueue) -> Vec<u8> {
        let mut out = vec![0; 1 << 16];
        let n = q.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn reorders_and_writes_the_sack() {
        let mut q = RecvQueue::new(1 << 16, 100, 65_533);
        assert_eq!(q.insert(65_535, b"c"), Received::Held);
        assert_eq!(q.insert(1, b"e"), Received::Held);
        assert_eq!(q.insert(1, b"e"), Received::Duplicate);
        let mut sack = [0xff; 4];
        assert_eq!(q.sack_len(), 4);
        q.write_sack(&mut sack);
        // ack_nr 65533: bit 0 = 65535, bit 2 = 1.
        assert_eq!(sack, [0b101, 0, 0, 0]);
        assert_eq!(q.insert(65_534, b"b"), Received::InOrder);
        assert_eq!(q.ack_nr(), 65_535);
        assert_eq!(q.insert(0, b"d"), Received::InOrder);
        assert_eq!((q.ack_nr(), q.has_holes()), (1, false));
        assert_eq!(read_all(&mut q), b"bcde");
        assert_eq!(q.insert(65_000, b"old"), Received::Duplicate);
    }

    #[test]
    fn the_window_bounds_what_is_held() {
        let mut q = RecvQueue::new(2000, 1000, 0);
        assert_eq!(q.insert(1, &[1; 1000]), Received::InOrder);
        assert_eq!(q.insert(3, &[3; 1000]), Received::Held);
        assert_eq!(q.window(), 0);
        assert_eq!(q.insert(2, &[2; 1000]), Received::Dropped);
        assert_eq!(q.insert(5000, b"x"), Received::Dropped);
        assert!(q.too_far(5000));
        assert_eq!(read_all(&mut q).len(), 1000);
        assert_eq!(q.insert(2, &[2; 1000]), Received::InOrder);
        assert_eq!((q.ack_nr(), q.ready()), (3, 2000));
    }

    #[test]
    fn fin_out_of_order_ends_after_the_hole_fills() {
        let mut q = RecvQueue::new(1 << 16, 100, 10);
        q.fin(13);
        assert_eq!(q.insert(14, b"past fin"), Received::Duplicate);
        assert_eq!(q.insert(12, b"b"), Received::Held);
        assert!(!q.fin_reached());
        assert_eq!(q.insert(11, b"a"), Received::InOrder);
        assert!(q.fin_reached());
        assert_eq!(q.ack_nr(), 13);
        assert!(!q.is_eof());
        assert_eq!(read_all(&mut q), b"ab");
        assert!(q.is_eof());
    }
}
