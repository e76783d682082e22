//! Writing uTP packets (BEP 29), and reading one whole: the header
//! (parsed by [`Header::parse`]), the selective-ACK extension if any, the
//! payload. Extensions of other types are skipped.

use crate::utp::demux::{Header, PacketType, HEADER_LEN};

/// Extension type of the selective ACK.
pub(crate) const EXT_SACK: u8 = 1;
/// Most bytes of SACK bitmask we write (1024 packets past the hole).
pub(crate) const MAX_SACK: usize = 128;

/// The fields of an outgoing header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Out {
    pub(crate) packet_type: PacketType,
    pub(crate) connection_id: u16,
    pub(crate) timestamp_us: u32,
    pub(crate) timestamp_diff_us: u32,
    pub(crate) wnd_size: u32,
    pub(crate) seq_nr: u16,
    pub(crate) ack_nr: u16,
}

fn type_nibble(t: PacketType) -> u8 {
    match t {
        PacketType::Data => 0,
        PacketType::Fin => 1,
        PacketType::State => 2,
        PacketType::Reset => 3,
        PacketType::Syn => 4,
    }
}

impl Out {
    /// Writes the fixed header and, when `sack_len > 0`, the selective-ACK
    /// extension header; returns where the bitmask (then the payload)
    /// goes. `buf` must hold `HEADER_LEN + 2` bytes at least.
    pub(crate) fn write(&self, buf: &mut [u8], sack_len: u8) -> usize {
        buf[0] = type_nibble(self.packet_type) << 4 | 1;
        buf[1] = if sack_len > 0 { EXT_SACK } else { 0 };
        buf[2..4].copy_from_slice(&self.connection_id.to_be_bytes());
        buf[4..8].copy_from_slice(&self.timestamp_us.to_be_bytes());
        buf[8..12].copy_from_slice(&self.timestamp_diff_us.to_be_bytes());
        buf[12..16].copy_from_slice(&self.wnd_size.to_be_bytes());
        buf[16..18].copy_from_slice(&self.seq_nr.to_be_bytes());
        buf[18..20].copy_from_slice(&self.ack_nr.to_be_bytes());
        if sack_len == 0 {
            return HEADER_LEN;
        }
        buf[20] = 0;
        buf[21] = sack_len;
        HEADER_LEN + 2
    }
}

/// One received packet, borrowed from its datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packet<'a> {
    pub(crate) header: Header,
    /// The selective-ACK bitmask: bit `i` (LSB first in each byte) says
    /// packet `ack_nr + 2 + i` was received.
    pub(crate) sack: Option<&'a [u8]>,
    pub(crate) payload: &'a [u8],
}

impl<'a> Packet<'a> {
    /// `None` when the bytes are not a uTP packet.
    pub(crate) fn parse(datagram: &'a [u8]) -> Option<Self> {
        let header = Header::parse(datagram).ok()?;
        let mut sack = None;
        let mut next = datagram[1];
        let mut at = HEADER_LEN;
        // Header::parse checked that the chain stays inside the datagram.
        while next != 0 {
            let kind = *datagram.get(at)?;
            let len = usize::from(*datagram.get(at + 1)?);
            let body = datagram.get(at + 2..at + 2 + len)?;
            if next == EXT_SACK && sack.is_none() {
                sack = Some(body);
            }
            next = kind;
            at += 2 + len;
        }
        Some(Self {
            header,
            sack,
            payload: datagram.get(header.payload_offset..)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(packet_type: PacketType) -> Out {
        Out {
            packet_type,
            connection_id: 0xbeef,
            timestamp_us: 0xdead_0001,
            timestamp_diff_us: 77,
            wnd_size: 6 << 20,
            seq_nr: 65_535,
            ack_nr: 3,
        }
    }

    #[test]
    fn header_round_trips() {
        for t in [
            PacketType::Data,
            PacketType::Fin,
            PacketType::State,
            PacketType::Reset,
            PacketType::Syn,
        ] {
            let mut buf = [0u8; 64];
            let o = out(t);
            let at = o.write(&mut buf, 0);
            buf[at..at + 3].copy_from_slice(b"abc");
            let p = Packet::parse(&buf[..at + 3]).unwrap();
            let h = p.header;
            assert_eq!(h.packet_type, t);
            assert_eq!(h.connection_id, o.connection_id);
            assert_eq!(h.timestamp_us, o.timestamp_us);
            assert_eq!(h.timestamp_diff_us, o.timestamp_diff_us);
            assert_eq!(h.wnd_size, o.wnd_size);
            assert_eq!((h.seq_nr, h.ack_nr), (o.seq_nr, o.ack_nr));
            assert_eq!(p.sack, None);
            assert_eq!(p.payload, b"abc");
        }
    }

    #[test]
    fn sack_extension_round_trips() {
        let mut buf = [0u8; 64];
        let at = out(PacketType::State).write(&mut buf, 4);
        buf[at..at + 4].copy_from_slice(&[0b101, 0, 0, 0x80]);
        let p = Packet::parse(&buf[..at + 4]).unwrap();
        assert_eq!(p.sack, Some(&[0b101u8, 0, 0, 0x80][..]));
        assert_eq!(p.payload, b"");
    }

    #[test]
    fn unknown_extensions_are_skipped() {
        let mut buf = [0u8; 64];
        out(PacketType::Data).write(&mut buf, 0);
        // An unknown extension (type 2, 3 bytes), then a SACK, then payload.
        buf[1] = 2;
        let tail = [EXT_SACK, 3, 9, 9, 9, 0, 4, 1, 2, 3, 4, b'x'];
        buf[20..20 + tail.len()].copy_from_slice(&tail);
        let p = Packet::parse(&buf[..20 + tail.len()]).unwrap();
        assert_eq!(p.sack, Some(&[1u8, 2, 3, 4][..]));
        assert_eq!(p.payload, b"x");
    }

    #[test]
    fn garbage_is_refused_not_panicked_on() {
        let mut buf = [0u8; 64];
        let at = out(PacketType::State).write(&mut buf, 4);
        for len in 0..at + 4 {
            assert!(Packet::parse(&buf[..len]).is_none(), "{len} bytes");
        }
        assert!(Packet::parse(b"\x41\x00").is_none());
    }
}
