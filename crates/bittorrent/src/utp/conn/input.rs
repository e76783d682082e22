//! Received packets: the handshake, acknowledgements (cumulative and
//! selective, duplicate ACKs, fast retransmit), data and FIN, RESET.

use std::time::Instant;

use crate::utp::conn::send::Acked;
use crate::utp::conn::{seq, Closed, Connection, State};
use crate::utp::demux::{Header, PacketType};
use crate::utp::packet::Packet;

/// Duplicate ACKs (or packets SACKed past a hole) that mean a loss.
const DUP_ACKS: u32 = 3;
/// Most packets one SACK may send for a fast resend.
const MAX_FAST_RESENDS: usize = 8;

impl Connection {
    /// One received datagram for this connection (already demuxed).
    /// Malformed or out-of-place input is ignored; never panics.
    pub(crate) fn handle_datagram(&mut self, datagram: &[u8], now: Instant) {
        let Some(p) = Packet::parse(datagram) else {
            return;
        };
        if !self.admit(&p.header, datagram) {
            return;
        }
        let h = p.header;
        self.timeouts = 0;
        self.peer_wnd = h.wnd_size as usize;
        if h.timestamp_us != 0 {
            self.reply_micro = self.now_us(now).wrapping_sub(h.timestamp_us);
        }
        self.cc.on_delay_sample(h.timestamp_diff_us, now);
        self.on_acks(&p, now);
        match h.packet_type {
            PacketType::Data => {
                self.recv.insert(h.seq_nr, p.payload);
                self.ack_owed = true;
                self.sack_owed |= self.recv.has_holes();
            }
            PacketType::Fin => {
                self.recv.fin(h.seq_nr);
                self.ack_owed = true;
            }
            _ => {}
        }
        self.check_done();
    }

    /// Whether a packet goes on to the ACK and data handling: answers a
    /// resent SYN, takes a RESET, completes our handshake, drops what is
    /// not for this connection or out of range.
    fn admit(&mut self, h: &Header, datagram: &[u8]) -> bool {
        if self.closed.is_some() {
            // Ended in order: the peer may not have our ACK of its FIN.
            if self.closed == Some(Closed::Fin) && h.packet_type == PacketType::Fin {
                self.ack_owed = true;
            }
            return false;
        }
        if h.packet_type == PacketType::Syn {
            if self.is_resent_syn(datagram) {
                self.ack_owed = true;
            }
            return false;
        }
        if h.connection_id != self.recv_id {
            return false;
        }
        if h.packet_type == PacketType::Reset {
            let why = if self.state == State::SynSent {
                Closed::Refused
            } else {
                Closed::Reset
            };
            self.end(why);
            return false;
        }
        // An ACK of something never sent: forged or broken, ignored.
        if seq::after(h.ack_nr, self.send.next_seq().wrapping_sub(1)) {
            return false;
        }
        let carries_seq = matches!(h.packet_type, PacketType::Data | PacketType::Fin);
        match self.state {
            State::SynSent => {
                if h.ack_nr != self.send.first_seq() {
                    return false;
                }
                self.state = State::Connected;
                self.connect_deadline = None;
                self.recv.set_ack_nr(h.seq_nr.wrapping_sub(1));
            }
            _ if carries_seq && self.recv.too_far(h.seq_nr) => return false,
            State::SynRecv => self.state = State::Connected,
            _ => {}
        }
        true
    }

    /// The ACK fields of a packet.
    fn on_acks(&mut self, p: &Packet<'_>, now: Instant) {
        let h = p.header;
        let in_flight_before = self.send.in_flight();
        let first_before = self.send.first_seq();
        let mut acked = self.send.ack_upto(h.ack_nr, now);
        if acked.packets > 0 {
            self.dup_acks = 0;
        } else if h.packet_type == PacketType::State
            && h.ack_nr == first_before.wrapping_sub(1)
            && self.send.outstanding() > 0
        {
            self.dup_acks += 1;
            if self.dup_acks >= DUP_ACKS {
                self.fast_resend(first_before);
            }
        }
        if let Some(bits) = p.sack {
            self.on_sack(h.ack_nr, bits, now, &mut acked);
        }
        if acked.packets == 0 {
            return;
        }
        if let Some(us) = acked.rtt_us {
            self.rtt.sample(us);
        }
        self.fin_acked |= acked.fin;
        if let Some(s) = self.small_in_flight {
            if self.send.get(s).is_none_or(|r| r.acked) {
                self.small_in_flight = None;
            }
        }
        let saturated = in_flight_before + self.config.max_payload > self.cc.window();
        self.cc.on_ack(acked.bytes, saturated);
        if self.send.first_seq() != first_before {
            self.rto_at = (self.send.outstanding() > 0).then(|| now + self.rtt.rto());
        }
    }

    /// A selective ACK: bit `i` is packet `ack_nr + 2 + i`. A packet with
    /// `DUP_ACKS` or more packets SACKed after it is taken as lost.
    fn on_sack(&mut self, ack_nr: u16, bits: &[u8], now: Instant, acked: &mut Acked) {
        let base = ack_nr.wrapping_add(2);
        let mut after = 0u32;
        let mut resent = 0;
        let mut lost = None;
        for i in (0..bits.len() * 8).rev() {
            let seq_nr = base.wrapping_add(i as u16);
            if bits[i / 8] & (1 << (i % 8)) != 0 {
                self.send.sack(seq_nr, now, acked);
                after += 1;
            } else if after >= DUP_ACKS
                && resent < MAX_FAST_RESENDS
                && !seq::after(self.fast_resend_seq, seq_nr)
                && self.send.mark_resend(seq_nr)
            {
                resent += 1;
                lost = lost.or(Some(seq_nr));
            }
        }
        // The packet right after `ack_nr` is missing too.
        let first = ack_nr.wrapping_add(1);
        if after >= DUP_ACKS
            && !seq::after(self.fast_resend_seq, first)
            && self.send.mark_resend(first)
        {
            lost = lost.or(Some(first));
        }
        if let Some(highest) = lost {
            self.fast_resend_seq = highest.wrapping_add(1);
            self.on_loss(highest);
        }
    }

    /// Three duplicate ACKs: resend the oldest packet.
    fn fast_resend(&mut self, seq_nr: u16) {
        if !seq::after(self.fast_resend_seq, seq_nr) && self.send.mark_resend(seq_nr) {
            self.fast_resend_seq = seq_nr.wrapping_add(1);
            self.on_loss(seq_nr);
        }
    }

    /// A loss: halve the window, once per window of packets.
    fn on_loss(&mut self, seq_nr: u16) {
        if seq::after(seq_nr, self.loss_seq) {
            self.cc.on_loss();
            self.loss_seq = self.send.next_seq().wrapping_sub(1);
        }
    }
}
