//! The next packet to send, in priority order: RESET, a SACK, resends,
//! new data, FIN, a plain ACK or window update. Every packet carries our
//! `ack_nr` and window, so data going out also acknowledges.

use std::time::Instant;

use crate::utp::conn::send::{Kind, Sent};
use crate::utp::conn::{Closed, Connection, State, MAX_DATAGRAM};
use crate::utp::demux::PacketType;
use crate::utp::packet::Out;

impl Connection {
    /// The next datagram to send, written into `buf` (`len >=
    /// MAX_DATAGRAM`); `None` when nothing is due now. Call in a loop until
    /// `None` after every event.
    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if buf.len() < MAX_DATAGRAM {
            return None;
        }
        if self.reset_pending {
            self.reset_pending = false;
            let seq_nr = self.send.next_seq();
            return Some(self.header(PacketType::Reset, seq_nr, now).write(buf, 0));
        }
        match self.closed {
            // The ACK of the peer's FIN still goes out.
            Some(Closed::Fin) if self.ack_owed => return Some(self.write_state(now, buf)),
            Some(_) => return None,
            None => {}
        }
        // The SYN-ACK goes before any data: libtorrent takes data in place
        // of it as acknowledging one packet too many.
        let syn_ack = self.state == State::SynRecv && self.ack_owed;
        if syn_ack || (self.sack_owed && self.recv.has_holes()) {
            return Some(self.write_state(now, buf));
        }
        if let Some(n) = self.transmit_resend(now, buf) {
            return Some(n);
        }
        if self.state == State::SynSent {
            return None;
        }
        if let Some(n) = self.transmit_new(now, buf) {
            return Some(n);
        }
        if let Some(n) = self.transmit_fin(now, buf) {
            return Some(n);
        }
        if self.ack_owed || self.window_update_owed() {
            return Some(self.write_state(now, buf));
        }
        None
    }

    fn header(&self, packet_type: PacketType, seq_nr: u16, now: Instant) -> Out {
        Out {
            packet_type,
            connection_id: match packet_type {
                PacketType::Syn => self.recv_id,
                _ => self.send_id,
            },
            timestamp_us: self.now_us(now),
            timestamp_diff_us: self.reply_micro,
            wnd_size: self.recv.window().min(u32::MAX as usize) as u32,
            seq_nr,
            ack_nr: self.recv.ack_nr(),
        }
    }

    /// Bookkeeping for any packet sent: it carried our ACK and window.
    fn sent(&mut self, now: Instant) {
        self.ack_owed = false;
        self.adv_wnd = self.recv.window();
        self.last_send = now;
    }

    /// What the congestion window and the peer's window allow in flight.
    fn send_window(&self) -> usize {
        self.cc.window().min(self.peer_wnd)
    }

    fn write_record(&mut self, seq_nr: u16, rec: &Sent, now: Instant, buf: &mut [u8]) -> usize {
        let packet_type = match rec.kind {
            Kind::Syn => PacketType::Syn,
            Kind::Data => PacketType::Data,
            Kind::Fin => PacketType::Fin,
        };
        let at = self.header(packet_type, seq_nr, now).write(buf, 0);
        let end = at + rec.len as usize;
        self.send.copy_payload(rec, &mut buf[at..end]);
        self.sent(now);
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        end
    }

    fn transmit_resend(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        let (seq_nr, rec) = self.send.next_resend()?;
        let in_flight = self.send.in_flight();
        if in_flight > 0 && in_flight + rec.len as usize > self.send_window() {
            return None;
        }
        let n = self.write_record(seq_nr, &rec, now, buf);
        self.send.resent(seq_nr, now);
        if rec.transmissions > 0 {
            self.resent += 1;
        }
        Some(n)
    }

    fn transmit_new(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if self.fin_sent.is_some() || !matches!(self.state, State::SynRecv | State::Connected) {
            return None;
        }
        let mss = self.config.max_payload;
        let len = self.send.unsent().min(mss);
        if len == 0 || (len < mss && !self.fin_requested && self.small_in_flight.is_some()) {
            return None;
        }
        let in_flight = self.send.in_flight();
        if in_flight + len > self.send_window() {
            if !self.probe_due {
                // The peer's window is shut and nothing is in flight to
                // bring a new one: probe with one packet after a timeout.
                if in_flight == 0 && self.probe_at.is_none() {
                    self.probe_at = Some(now + self.rtt.rto());
                }
                return None;
            }
            self.probe_due = false;
        }
        self.probe_at = None;
        let seq_nr = self.send.push(Kind::Data, len, now);
        if len < mss {
            self.small_in_flight = Some(seq_nr);
        }
        let rec = *self.send.get(seq_nr)?;
        Some(self.write_record(seq_nr, &rec, now, buf))
    }

    fn transmit_fin(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        if !self.fin_requested
            || self.fin_sent.is_some()
            || self.send.unsent() > 0
            || !matches!(self.state, State::SynRecv | State::Connected)
        {
            return None;
        }
        let seq_nr = self.send.push(Kind::Fin, 0, now);
        self.fin_sent = Some(seq_nr);
        self.state = State::FinSent;
        let rec = *self.send.get(seq_nr)?;
        Some(self.write_record(seq_nr, &rec, now, buf))
    }

    /// A STATE: our ACK, window and (with holes) the selective ACK. Its
    /// `seq_nr` is the next we will send, or our FIN's once it is out.
    fn write_state(&mut self, now: Instant, buf: &mut [u8]) -> usize {
        let sack_len = self.recv.sack_len();
        let seq_nr = self.fin_sent.unwrap_or_else(|| self.send.next_seq());
        let at = self
            .header(PacketType::State, seq_nr, now)
            .write(buf, sack_len as u8);
        self.recv.write_sack(&mut buf[at..at + sack_len]);
        self.sack_owed = false;
        self.sent(now);
        at + sack_len
    }

    /// Reading opened the window enough that the peer should hear of it.
    fn window_update_owed(&self) -> bool {
        let wnd = self.recv.window();
        self.is_established()
            && !self.recv.fin_reached()
            && wnd > self.adv_wnd
            && (wnd - self.adv_wnd >= self.config.recv_window / 8
                || (self.adv_wnd < self.config.max_payload && wnd >= self.config.max_payload))
    }
}
