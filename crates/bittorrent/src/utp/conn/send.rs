//! The send side: a ring of written-not-acked bytes plus one small record
//! per packet in flight, indexed by sequence number. Packets are built
//! from the ring when (re)sent, so nothing is allocated per packet.
//!
//! Invariants: `records[i]` has sequence number `first_seq + i`; record
//! offsets grow with their sequence numbers and cover `base..unsent`
//! without gaps; `in_flight` is the payload of the records neither acked
//! nor waiting for a resend.

use std::collections::VecDeque;
use std::time::Instant;

use crate::utp::conn::seq;

/// What a record carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Syn,
    Data,
    Fin,
}

/// One packet sent (or to be sent) and not yet acknowledged.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Sent {
    pub(crate) kind: Kind,
    pub(crate) offset: u64,
    pub(crate) len: u32,
    pub(crate) sent_at: Instant,
    pub(crate) transmissions: u32,
    pub(crate) acked: bool,
    pub(crate) need_resend: bool,
}

/// Send buffer and in-flight bookkeeping.
#[derive(Debug)]
pub(crate) struct SendQueue {
    bytes: VecDeque<u8>,
    base: u64,
    unsent: u64,
    records: VecDeque<Sent>,
    first_seq: u16,
    in_flight: usize,
    capacity: usize,
    /// No record before this index waits for a resend.
    resend_from: usize,
}

/// What an acknowledgement did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Acked {
    /// Records newly acknowledged.
    pub(crate) packets: usize,
    /// Their payload bytes.
    pub(crate) bytes: usize,
    /// The shortest round trip among them sent once (Karn), microseconds.
    pub(crate) rtt_us: Option<u64>,
    /// The FIN was among them.
    pub(crate) fin: bool,
}

impl SendQueue {
    /// Empty; the next packet gets `first_seq`.
    pub(crate) fn new(capacity: usize, first_seq: u16) -> Self {
        Self {
            bytes: VecDeque::new(),
            base: 0,
            unsent: 0,
            records: VecDeque::new(),
            first_seq,
            in_flight: 0,
            capacity,
            resend_from: 0,
        }
    }

    /// Takes as much of `data` as fits under the capacity.
    pub(crate) fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free());
        self.bytes.extend(&data[..n]);
        n
    }

    /// Bytes `write` would still take.
    pub(crate) fn free(&self) -> usize {
        self.capacity.saturating_sub(self.bytes.len())
    }

    /// Written bytes not yet put in a packet.
    pub(crate) fn unsent(&self) -> usize {
        (self.base + self.bytes.len() as u64 - self.unsent) as usize
    }

    /// Payload bytes in flight (sent, not acked, not waiting for resend).
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Records not yet acknowledged (SYN and FIN included).
    pub(crate) fn outstanding(&self) -> usize {
        self.records.len()
    }

    /// The sequence number the next new packet gets.
    pub(crate) fn next_seq(&self) -> u16 {
        self.first_seq.wrapping_add(self.records.len() as u16)
    }

    /// The oldest unacknowledged sequence number (== `next_seq` when none).
    pub(crate) fn first_seq(&self) -> u16 {
        self.first_seq
    }

    fn index(&self, seq_nr: u16) -> Option<usize> {
        let i = seq::distance(self.first_seq, seq_nr);
        (i < self.records.len()).then_some(i)
    }

    /// The record of `seq_nr`, if in flight.
    pub(crate) fn get(&self, seq_nr: u16) -> Option<&Sent> {
        self.index(seq_nr).map(|i| &self.records[i])
    }

    /// Adds a new packet of the next `len` unsent bytes (0 for SYN/FIN),
    /// sent now; returns its sequence number.
    pub(crate) fn push(&mut self, kind: Kind, len: usize, now: Instant) -> u16 {
        let seq_nr = self.next_seq();
        self.records.push_back(Sent {
            kind,
            offset: self.unsent,
            len: len as u32,
            sent_at: now,
            transmissions: 1,
            acked: false,
            need_resend: false,
        });
        self.unsent += len as u64;
        self.in_flight += len;
        seq_nr
    }

    /// Adds a packet that waits for its first transmission on the resend
    /// path (the SYN).
    pub(crate) fn push_pending(&mut self, kind: Kind, now: Instant) -> u16 {
        let seq_nr = self.push(kind, 0, now);
        if let Some(r) = self.records.back_mut() {
            r.transmissions = 0;
            r.need_resend = true;
        }
        self.resend_from = self.resend_from.min(self.records.len() - 1);
        seq_nr
    }

    /// Copies the payload of a record into `out` (its length).
    pub(crate) fn copy_payload(&self, rec: &Sent, out: &mut [u8]) {
        let start = (rec.offset - self.base) as usize;
        let len = rec.len as usize;
        let (a, b) = self.bytes.as_slices();
        let from_a = a.len().saturating_sub(start).min(len);
        if from_a > 0 {
            out[..from_a].copy_from_slice(&a[start..start + from_a]);
        }
        let b_start = (start + from_a) - a.len().min(start + from_a);
        out[from_a..len].copy_from_slice(&b[b_start..b_start + len - from_a]);
    }

    /// Cumulative ACK of everything up to `ack_nr`.
    pub(crate) fn ack_upto(&mut self, ack_nr: u16, now: Instant) -> Acked {
        let mut acked = Acked::default();
        let Some(last) = self.index(ack_nr) else {
            return acked;
        };
        for _ in 0..=last {
            if let Some(r) = self.records.pop_front() {
                self.count(&r, now, &mut acked);
            }
        }
        self.first_seq = self.first_seq.wrapping_add(last as u16 + 1);
        self.resend_from = self.resend_from.saturating_sub(last + 1);
        self.pop_acked_front();
        acked
    }

    /// Selective ACK of one packet.
    pub(crate) fn sack(&mut self, seq_nr: u16, now: Instant, acked: &mut Acked) {
        let Some(i) = self.index(seq_nr) else {
            return;
        };
        let r = self.records[i];
        if r.acked {
            return;
        }
        self.count(&r, now, acked);
        self.records[i].acked = true;
        if i == 0 {
            self.pop_acked_front();
        }
    }

    fn count(&mut self, r: &Sent, now: Instant, acked: &mut Acked) {
        if r.acked {
            return;
        }
        acked.packets += 1;
        acked.bytes += r.len as usize;
        acked.fin |= r.kind == Kind::Fin;
        if !r.need_resend {
            self.in_flight -= r.len as usize;
            if r.transmissions == 1 {
                let us = now.saturating_duration_since(r.sent_at).as_micros() as u64;
                acked.rtt_us = Some(acked.rtt_us.map_or(us, |m| m.min(us)));
            }
        }
    }

    /// Drops acked records at the front and the bytes only they held.
    fn pop_acked_front(&mut self) {
        while self.records.front().is_some_and(|r| r.acked) {
            self.records.pop_front();
            self.first_seq = self.first_seq.wrapping_add(1);
            self.resend_from = self.resend_from.saturating_sub(1);
        }
        let keep_from = self.records.front().map_or(self.unsent, |r| r.offset);
        let drop = (keep_from - self.base) as usize;
        self.bytes.drain(..drop);
        self.base = keep_from;
    }

    /// Marks one packet for resending; false if it is not in flight.
    pub(crate) fn mark_resend(&mut self, seq_nr: u16) -> bool {
        let Some(i) = self.index(seq_nr) else {
            return false;
        };
        let r = &mut self.records[i];
        if r.acked || r.need_resend {
            return false;
        }
        r.need_resend = true;
        self.in_flight -= r.len as usize;
        self.resend_from = self.resend_from.min(i);
        true
    }

    /// Marks every unacknowledged packet for resending (a timeout).
    pub(crate) fn mark_all_resend(&mut self) {
        for r in self
            .records
            .iter_mut()
            .filter(|r| !r.acked && !r.need_resend)
        {
            r.need_resend = true;
            self.in_flight -= r.len as usize;
        }
        self.resend_from = 0;
    }

    /// The oldest packet waiting for a resend.
    pub(crate) fn next_resend(&mut self) -> Option<(u16, Sent)> {
        while let Some(r) = self.records.get(self.resend_from) {
            if r.need_resend && !r.acked {
                let seq_nr = self.first_seq.wrapping_add(self.resend_from as u16);
                return Some((seq_nr, *r));
            }
            self.resend_from += 1;
        }
        None
    }

    /// Records that `seq_nr` went out again now.
    pub(crate) fn resent(&mut self, seq_nr: u16, now: Instant) {
        if let Some(i) = self.index(seq_nr) {
            let r = &mut self.records[i];
            if r.need_resend {
                r.need_resend = false;
                self.in_flight += r.len as usize;
            }
            r.transmissions += 1;
            r.sent_at = now;
        }
    }

    /// The most transmissions of any outstanding packet.
    pub(crate) fn max_transmissions(&self) -> u32 {
        self.records.front().map_or(0, |r| r.transmissions)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(q: &SendQueue, seq_nr: u16) -> Vec<u8> {
        let r = *q.get(seq_nr).unwrap();
        let mut out = vec![0; r.len as usize];
        q.copy_payload(&r, &mut out);
        out
    }

    #[test]
    fn bytes_stay_until_acked_and_the_capacity_holds() {
        let now = Instant::now();
        let mut q = SendQueue::new(10, 65_534);
        assert_eq!(q.write(b"0123456789abc"), 10);
        assert_eq!(q.free(), 0);
        let a = q.push(Kind::Data, 4, now);
        let b = q.push(Kind::Data, 4, now);
        let c = q.push(Kind::Data, 2, now);
        assert_eq!((a, b, c), (65_534, 65_535, 0));
        assert_eq!((q.in_flight(), q.unsent()), (10, 0));
        assert_eq!(payload(&q, 0), b"89");
        // A SACK of the middle frees nothing; the ack of the first frees
        // both.
        let mut acked = Acked::default();
        q.sack(65_535, now, &mut acked);
        assert_eq!((acked.packets, q.free()), (1, 0));
        let acked = q.ack_upto(65_534, now);
        assert_eq!((acked.packets, acked.bytes), (1, 4));
        assert_eq!((q.free(), q.first_seq(), q.in_flight()), (8, 0, 2));
        assert_eq!(payload(&q, 0), b"89");
        // An ack for something never sent does nothing.
        assert_eq!(q.ack_upto(1, now), Acked::default());
        assert_eq!(q.ack_upto(0, now).bytes, 2);
        assert_eq!((q.free(), q.outstanding()), (10, 0));
    }

    #[test]
    fn payload_across_the_ring_seam() {
        let now = Instant::now();
        let mut q = SendQueue::new(8, 0);
        q.write(b"abcdef");
        q.push(Kind::Data, 6, now);
        q.ack_upto(0, now);
        q.write(b"ghijklmn");
        q.push(Kind::Data, 8, now);
        assert_eq!(payload(&q, 1), b"ghijklmn");
    }

    #[test]
    fn resends_in_order_and_counts_in_flight() {
        let now = Instant::now();
        let mut q = SendQueue::new(100, 10);
        q.write(&[7; 30]);
        for _ in 0..3 {
            q.push(Kind::Data, 10, now);
        }
        assert!(q.mark_resend(11));
        assert!(!q.mark_resend(11));
        assert_eq!(q.in_flight(), 20);
        q.mark_all_resend();
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.next_resend().map(|r| r.0), Some(10));
        q.resent(10, now);
        assert_eq!(q.next_resend().map(|r| r.0), Some(11));
        assert_eq!(q.in_flight(), 10);
        // Acked while waiting for resend: no double counting.
        let acked = q.ack_upto(11, now);
        assert_eq!((acked.bytes, acked.rtt_us.is_none()), (20, true));
        assert_eq!(q.in_flight(), 0);
        assert_eq!(q.next_resend().map(|r| r.0), Some(12));
    }
}
