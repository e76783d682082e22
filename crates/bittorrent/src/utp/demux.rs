//! Telling the datagrams on the shared UDP port apart (pure): a bencoded
//! dictionary is the DHT's (KRPC), a well-formed uTP header is a uTP
//! packet, anything else is dropped. The same rule as libtorrent's.

use thiserror::Error;

/// Length of the fixed uTP header (BEP 29).
pub const HEADER_LEN: usize = 20;
/// The uTP version this header layout belongs to.
const VERSION: u8 = 1;

/// Whose a datagram on the shared port is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datagram {
    /// A KRPC message for the DHT (a bencoded dictionary).
    Dht,
    /// A uTP packet with a well-formed header and extension chain.
    Utp,
    /// Neither: dropped.
    Unknown,
}

/// Classifies one datagram by its shape.
pub fn classify(bytes: &[u8]) -> Datagram {
    match bytes.first() {
        Some(b'd') => Datagram::Dht,
        Some(_) if Header::parse(bytes).is_ok() => Datagram::Utp,
        _ => Datagram::Unknown,
    }
}

/// The uTP packet types (the high nibble of the first byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `ST_DATA`: carries payload.
    Data,
    /// `ST_FIN`: the sender's last packet.
    Fin,
    /// `ST_STATE`: an acknowledgement without payload.
    State,
    /// `ST_RESET`: ends the connection at once.
    Reset,
    /// `ST_SYN`: opens a connection.
    Syn,
}

impl PacketType {
    fn from_nibble(n: u8) -> Option<Self> {
        Some(match n {
            0 => Self::Data,
            1 => Self::Fin,
            2 => Self::State,
            3 => Self::Reset,
            4 => Self::Syn,
            _ => return None,
        })
    }
}

/// Why bytes are not a uTP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum HeaderError {
    /// Shorter than the fixed header.
    #[error("shorter than a uTP header")]
    Short,
    /// Not version 1.
    #[error("uTP version {0}, not 1")]
    Version(u8),
    /// A packet type above 4.
    #[error("unknown uTP packet type {0}")]
    Type(u8),
    /// An extension runs past the end of the datagram.
    #[error("uTP extension past the end of the packet")]
    Extension,
}

/// The fixed uTP header (BEP 29), plus where the payload starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The packet type.
    pub packet_type: PacketType,
    /// The connection id.
    pub connection_id: u16,
    /// The sender's clock, in microseconds.
    pub timestamp_us: u32,
    /// The sender's measured one-way delay of our last packet.
    pub timestamp_diff_us: u32,
    /// The sender's receive window, in bytes.
    pub wnd_size: u32,
    /// This packet's sequence number.
    pub seq_nr: u16,
    /// The last sequence number the sender received in order.
    pub ack_nr: u16,
    /// Offset of the payload, after the header and every extension.
    pub payload_offset: usize,
}

impl Header {
    /// Parses the fixed header and walks the extension chain (each
    /// extension: next type, length, that many bytes) to the payload.
    ///
    /// # Errors
    /// [`HeaderError`] when the bytes are not a uTP packet.
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        let fixed: &[u8; HEADER_LEN] = bytes
            .get(..HEADER_LEN)
            .and_then(|b| b.try_into().ok())
            .ok_or(HeaderError::Short)?;
        let version = fixed[0] & 0x0f;
        if version != VERSION {
            return Err(HeaderError::Version(version));
        }
        let packet_type =
            PacketType::from_nibble(fixed[0] >> 4).ok_or(HeaderError::Type(fixed[0] >> 4))?;
        let u16_at = |i: usize| u16::from_be_bytes([fixed[i], fixed[i + 1]]);
        let u32_at =
            |i: usize| u32::from_be_bytes([fixed[i], fixed[i + 1], fixed[i + 2], fixed[i + 3]]);
        let mut next = fixed[1];
        let mut at = HEADER_LEN;
        while next != 0 {
            let [kind, len] = bytes
                .get(at..at + 2)
                .and_then(|b| <[u8; 2]>::try_from(b).ok())
                .ok_or(HeaderError::Extension)?;
            at += 2 + usize::from(len);
            if at > bytes.len() {
                return Err(HeaderError::Extension);
            }
            next = kind;
        }
        Ok(Self {
            packet_type,
            connection_id: u16_at(2),
            timestamp_us: u32_at(4),
            timestamp_diff_us: u32_at(8),
            wnd_size: u32_at(12),
            seq_nr: u16_at(16),
            ack_nr: u16_at(18),
            payload_offset: at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header as libtorrent sends it: type, version, extension, fields.
    fn packet(kind: u8, ext: u8, tail: &[u8]) -> Vec<u8> {
        let mut p = vec![kind << 4 | 1, ext];
        p.extend_from_slice(&0x1234u16.to_be_bytes());
        p.extend_from_slice(&1_000_000u32.to_be_bytes());
        p.extend_from_slice(&250u32.to_be_bytes());
        p.extend_from_slice(&(1u32 << 20).to_be_bytes());
        p.extend_from_slice(&7u16.to_be_bytes());
        p.extend_from_slice(&6u16.to_be_bytes());
        p.extend_from_slice(tail);
        p
    }

    #[test]
    fn parses_the_fixed_header() {
        let h = Header::parse(&packet(4, 0, b"")).unwrap();
        assert_eq!(h.packet_type, PacketType::Syn);
        assert_eq!(h.connection_id, 0x1234);
        assert_eq!(h.timestamp_us, 1_000_000);
        assert_eq!(h.timestamp_diff_us, 250);
        assert_eq!(h.wnd_size, 1 << 20);
        assert_eq!((h.seq_nr, h.ack_nr), (7, 6));
        assert_eq!(h.payload_offset, HEADER_LEN);
    }

    #[test]
    fn walks_the_extension_chain_to_the_payload() {
        // A selective ACK (4 bytes of bitmask), then payload.
        let p = packet(2, 1, &[0, 4, 0xff, 0, 0, 1, b'x', b'y']);
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.packet_type, PacketType::State);
        assert_eq!(&p[h.payload_offset..], b"xy");
        // Two extensions in a row.
        let p = packet(0, 1, &[2, 4, 1, 2, 3, 4, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(Header::parse(&p).unwrap().payload_offset, p.len());
    }

    #[test]
    fn refuses_what_is_not_utp() {
        assert_eq!(Header::parse(&[0x41; 19]), Err(HeaderError::Short));
        let mut p = packet(4, 0, b"");
        p[0] = 0x42;
        assert_eq!(Header::parse(&p), Err(HeaderError::Version(2)));
        assert_eq!(Header::parse(&packet(5, 0, b"")), Err(HeaderError::Type(5)));
        assert_eq!(
            Header::parse(&packet(2, 1, &[0, 4, 1, 2])),
            Err(HeaderError::Extension)
        );
        assert_eq!(
            Header::parse(&packet(2, 1, &[0])),
            Err(HeaderError::Extension)
        );
    }

    #[test]
    fn classifies_by_shape() {
        assert_eq!(
            classify(b"d1:ad2:id20:aaaaaaaaaaaaaaaaaaaae1:q4:ping1:t2:aa1:y1:qe"),
            Datagram::Dht
        );
        for kind in 0..=4 {
            assert_eq!(classify(&packet(kind, 0, b"payload")), Datagram::Utp);
        }
        assert_eq!(classify(b""), Datagram::Unknown);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n\r\n"), Datagram::Unknown);
        assert_eq!(classify(&packet(2, 1, &[0, 200])), Datagram::Unknown);
    }
}
