//! One connection driven by hand: header fields of the handshake as
//! libtorrent expects them, ACK/SACK bookkeeping, timers, RESET, garbage.

use std::time::{Duration, Instant};

use crate::utp::conn::tests::sim::Rng;
use crate::utp::conn::{Closed, Config, Connection, State, MAX_DATAGRAM};
use crate::utp::demux::{Header, PacketType};
use crate::utp::packet::{Out, Packet};

const MSS: usize = 1400;

/// Every datagram `c` has to send now.
fn drain(c: &mut Connection, now: Instant) -> Vec<Vec<u8>> {
    let mut buf = [0u8; MAX_DATAGRAM];
    let mut out = Vec::new();
    while let Some(n) = c.poll_transmit(now, &mut buf) {
        out.push(buf[..n].to_vec());
        assert!(out.len() < 100_000, "poll_transmit never ends");
    }
    out
}

fn header(d: &[u8]) -> Header {
    Packet::parse(d).unwrap().header
}

/// A connected pair: `a` (recv_id 1000, first seq 500) and `b` (first
/// seq 7000).
fn pair(config: Config, now: Instant) -> (Connection, Connection) {
    let mut a = Connection::connect(config.clone(), 1000, 500, now);
    let syn = drain(&mut a, now);
    let mut b = Connection::accept(config, &syn[0], 7000, now).unwrap();
    for d in drain(&mut b, now) {
        a.handle_datagram(&d, now);
    }
    (a, b)
}

#[test]
fn handshake_fields_as_libtorrent_expects() {
    let now = Instant::now();
    let mut a = Connection::connect(Config::default(), 1000, 500, now);
    assert_eq!((a.state(), a.is_established()), (State::SynSent, false));
    let syn = drain(&mut a, now);
    assert_eq!(syn.len(), 1);
    let h = header(&syn[0]);
    assert_eq!(h.packet_type, PacketType::Syn);
    assert_eq!((h.connection_id, h.seq_nr, h.ack_nr), (1000, 500, 0));
    assert_eq!(h.wnd_size, 6 << 20);

    let mut b = Connection::accept(Config::default(), &syn[0], 7000, now).unwrap();
    assert_eq!(b.recv_id(), 1001);
    assert!(b.is_established());
    assert!(b.is_resent_syn(&syn[0]));
    // The acceptor's data goes after its SYN-ACK.
    assert_eq!(b.write(b"hi"), 2);
    let out = drain(&mut b, now);
    let (ack, data) = (header(&out[0]), header(&out[1]));
    assert_eq!(ack.packet_type, PacketType::State);
    assert_eq!(
        (ack.connection_id, ack.seq_nr, ack.ack_nr),
        (1000, 7000, 500)
    );
    assert_eq!(data.packet_type, PacketType::Data);
    assert_eq!((data.seq_nr, data.ack_nr), (7000, 500));

    for d in &out {
        a.handle_datagram(d, now);
    }
    assert_eq!(a.state(), State::Connected);
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf), 2);
    assert_eq!(a.write(b"hello"), 5);
    let out = drain(&mut a, now);
    let h = header(&out[0]);
    assert_eq!(h.packet_type, PacketType::Data);
    assert_eq!((h.connection_id, h.seq_nr, h.ack_nr), (1001, 501, 7000));
    assert_eq!(Packet::parse(&out[0]).unwrap().payload, b"hello");
    assert_eq!(out.len(), 1, "the data carried the ACK");
    b.handle_datagram(&out[0], now);
    assert_eq!(b.state(), State::Connected);
    assert_eq!(b.read(&mut buf), 5);
    assert_eq!(&buf[..5], b"hello");
    let ack = drain(&mut b, now);
    assert_eq!(header(&ack[0]).ack_nr, 501);
    assert_eq!(header(&ack[0]).seq_nr, 7001);
}

#[test]
fn sack_resends_the_hole_and_halves_the_window() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Config::default(), now);
    let before = a.congestion_window();
    assert_eq!(a.write(&vec![1u8; before]), before);
    let data = drain(&mut a, now);
    assert_eq!(data.len(), before / MSS);
    // The first is lost: b holds the rest and SACKs them.
    for d in &data[1..] {
        b.handle_datagram(d, now);
    }
    let acks = drain(&mut b, now);
    assert_eq!(acks.len(), 1, "one ACK for the batch");
    let p = Packet::parse(&acks[0]).unwrap();
    assert_eq!(p.header.ack_nr, 500);
    // Bits 0..=8: packets 502..=510.
    assert_eq!(p.sack, Some(&[0xff, 0x01, 0, 0][..]));
    a.handle_datagram(&acks[0], now);
    assert!(a.congestion_window() < before, "{}", a.congestion_window());
    let resent = drain(&mut a, now);
    assert_eq!(resent.len(), 1);
    assert_eq!(header(&resent[0]).seq_nr, 501);
    assert_eq!(a.retransmissions(), 1);
    b.handle_datagram(&resent[0], now);
    let mut buf = vec![0u8; 2 * before];
    assert_eq!(b.read(&mut buf), before);
    let ack = drain(&mut b, now);
    assert_eq!(header(&ack[0]).ack_nr, 510);
    assert_eq!(Packet::parse(&ack[0]).unwrap().sack, None);
}

/// BEP 29 lets any packet carry the selective ACK: one on a DATA packet
/// (some peers piggyback it) is honoured as on a STATE, and its payload
/// is still taken.
#[test]
fn a_sack_on_a_data_packet_is_honoured() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Config::default(), now);
    let before = a.congestion_window();
    assert_eq!(a.write(&vec![1u8; before]), before);
    let data = drain(&mut a, now);
    for d in &data[1..] {
        b.handle_datagram(d, now);
    }
    let state = drain(&mut b, now);
    let sack = Packet::parse(&state[0]).unwrap().sack.unwrap().to_vec();
    assert_eq!(b.write(b"hi"), 2);
    let out = drain(&mut b, now);
    let plain = out.last().unwrap();
    assert_eq!(header(plain).packet_type, PacketType::Data);
    assert_eq!(header(plain).ack_nr, 500);
    // b's DATA, with the SACK of its STATE spliced in.
    let mut with_sack = plain[..20].to_vec();
    with_sack[1] = 1;
    with_sack.extend_from_slice(&[0, sack.len() as u8]);
    with_sack.extend_from_slice(&sack);
    with_sack.extend_from_slice(&plain[20..]);
    let p = Packet::parse(&with_sack).unwrap();
    assert_eq!((p.sack, p.payload), (Some(&sack[..]), &b"hi"[..]));

    a.handle_datagram(&with_sack, now);
    assert!(a.congestion_window() < before, "the SACK told of a loss");
    let resent: Vec<_> = drain(&mut a, now)
        .into_iter()
        .filter(|d| header(d).packet_type == PacketType::Data)
        .collect();
    assert_eq!(resent.len(), 1, "only the hole is sent again");
    assert_eq!(header(&resent[0]).seq_nr, 501);
    let mut buf = [0u8; 8];
    assert_eq!(a.read(&mut buf), 2);
    assert_eq!(&buf[..2], b"hi");
}

#[test]
fn three_duplicate_acks_resend() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Config::default(), now);
    a.write(&[2u8; 5 * MSS]);
    let data = drain(&mut a, now);
    // Each packet after the lost one makes b send an ACK of 500 (with a
    // SACK); take the SACK away to see the duplicate-ACK path.
    let mut dups = Vec::new();
    for d in &data[1..] {
        b.handle_datagram(d, now);
        for ack in drain(&mut b, now) {
            let h = header(&ack);
            let mut plain = [0u8; 20];
            Out {
                packet_type: h.packet_type,
                connection_id: h.connection_id,
                timestamp_us: h.timestamp_us,
                timestamp_diff_us: h.timestamp_diff_us,
                wnd_size: h.wnd_size,
                seq_nr: h.seq_nr,
                ack_nr: h.ack_nr,
            }
            .write(&mut plain, 0);
            dups.push(plain);
        }
    }
    assert_eq!(dups.len(), 4);
    for d in &dups[..2] {
        a.handle_datagram(d, now);
        assert!(drain(&mut a, now).is_empty());
    }
    a.handle_datagram(&dups[2], now);
    let resent = drain(&mut a, now);
    assert_eq!(resent.len(), 1);
    assert_eq!(header(&resent[0]).seq_nr, 501);
}

#[test]
fn connect_times_out_after_resending_the_syn() {
    let t0 = Instant::now();
    let config = Config {
        connect_timeout: Duration::from_secs(5),
        ..Config::default()
    };
    let mut a = Connection::connect(config, 1, 1, t0);
    let mut syns = drain(&mut a, t0).len();
    while let Some(t) = a.poll_timeout() {
        a.handle_timeout(t);
        syns += drain(&mut a, t).len();
        if a.closed().is_some() {
            assert_eq!(t - t0, Duration::from_secs(5));
            break;
        }
    }
    assert_eq!(a.closed(), Some(Closed::TimedOut));
    // 1 s, then 2 s: SYNs at 0, 1 and 3 s.
    assert_eq!(syns, 3);
}

#[test]
fn a_reset_answering_the_syn_is_a_refusal() {
    let now = Instant::now();
    let mut a = Connection::connect(Config::default(), 1000, 500, now);
    drain(&mut a, now);
    let mut reset = [0u8; 20];
    let mut out = Out {
        packet_type: PacketType::Reset,
        connection_id: 999,
        timestamp_us: 0,
        timestamp_diff_us: 0,
        wnd_size: 0,
        seq_nr: 1,
        ack_nr: 500,
    };
    out.write(&mut reset, 0);
    a.handle_datagram(&reset, now);
    assert_eq!(a.closed(), None, "another connection's RESET");
    out.connection_id = 1000;
    out.write(&mut reset, 0);
    a.handle_datagram(&reset, now);
    assert_eq!(a.closed(), Some(Closed::Refused));
    assert!(a.readable() && a.writable());
}

/// ICMP "port unreachable" refuses a connect still waiting for its
/// SYN-ACK, silently (nobody listens to a RESET); an established
/// connection, at either end, ignores it.
#[test]
fn port_unreachable_refuses_only_a_pending_connect() {
    let now = Instant::now();
    let mut a = Connection::connect(Config::default(), 1000, 500, now);
    drain(&mut a, now);
    assert!(a.on_port_unreachable());
    assert_eq!(a.closed(), Some(Closed::Refused));
    assert!(a.writable(), "the connect's waiter is woken");
    assert!(
        drain(&mut a, now).is_empty(),
        "nothing answers a closed port"
    );
    assert!(!a.on_port_unreachable(), "once");

    let (mut a, mut b) = pair(Config::default(), now);
    assert!(!a.on_port_unreachable() && !b.on_port_unreachable());
    assert_eq!((a.closed(), b.closed()), (None, None));
    assert_eq!(a.write(b"still up"), 8);
}

#[test]
fn reset_ends_both_ends() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Config::default(), now);
    a.reset();
    assert_eq!(a.closed(), Some(Closed::Reset));
    let out = drain(&mut a, now);
    assert_eq!(out.len(), 1);
    assert_eq!(header(&out[0]).packet_type, PacketType::Reset);
    assert_eq!(header(&out[0]).connection_id, 1001);
    b.handle_datagram(&out[0], now);
    assert_eq!(b.closed(), Some(Closed::Reset));
    assert_eq!(b.write(b"x"), 0);
}

#[test]
fn unanswered_data_gives_up_after_max_retransmissions_with_backoff() {
    let t0 = Instant::now();
    let config = Config {
        max_retransmissions: 4,
        ..Config::default()
    };
    let (mut a, _b) = pair(config, t0);
    a.write(b"into the void");
    drain(&mut a, t0);
    let mut last = t0;
    let mut gaps = Vec::new();
    while let Some(t) = a.poll_timeout() {
        a.handle_timeout(t);
        drain(&mut a, t);
        gaps.push(t - last);
        last = t;
        if a.closed().is_some() {
            break;
        }
    }
    assert_eq!(a.closed(), Some(Closed::TimedOut));
    assert_eq!(a.retransmissions(), 4);
    // The minimum (the handshake measured ~0 s), then doubling.
    let ms: Vec<u128> = gaps.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [500, 1000, 2000, 4000, 8000]);
}

#[test]
fn close_sends_fin_after_the_data_and_both_end_in_order() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Config::default(), now);
    a.write(&[3u8; 3000]);
    a.close(now);
    assert!(!a.writable() && a.write(b"late") == 0);
    let out = drain(&mut a, now);
    let kinds: Vec<PacketType> = out.iter().map(|d| header(d).packet_type).collect();
    assert_eq!(
        kinds,
        [
            PacketType::Data,
            PacketType::Data,
            PacketType::Data,
            PacketType::Fin
        ]
    );
    assert_eq!(a.state(), State::FinSent);
    // b gets the FIN before a data packet: eof only after the hole.
    b.handle_datagram(&out[3], now);
    b.handle_datagram(&out[0], now);
    assert!(!b.is_eof());
    b.handle_datagram(&out[2], now);
    b.handle_datagram(&out[1], now);
    let mut buf = [0u8; 4000];
    assert_eq!(b.read(&mut buf), 3000);
    assert!(b.is_eof() && b.readable());
    b.close(now);
    for d in drain(&mut b, now) {
        a.handle_datagram(&d, now);
    }
    assert_eq!(a.read(&mut buf), 0);
    assert!(a.is_eof());
    assert_eq!(a.closed(), Some(Closed::Fin));
    for d in drain(&mut a, now) {
        b.handle_datagram(&d, now);
    }
    assert_eq!(b.closed(), Some(Closed::Fin));
}

#[test]
fn garbage_never_panics() {
    let now = Instant::now();
    let (mut a, mut b) = pair(Config::default(), now);
    a.write(&[9u8; 20 * MSS]);
    let real = drain(&mut a, now);
    let mut rng = Rng::new(99);
    for i in 0..20_000 {
        let len = (rng.next_u64() % 100) as usize;
        let mut d = match i % 3 {
            0 => rng.bytes(len),
            1 => real[i % real.len()].clone(),
            _ => {
                let mut d = rng.bytes(20 + len % 40);
                d[0] = (rng.next_u64() % 5) as u8 * 16 + 1;
                d[1] = 0;
                d[2..4].copy_from_slice(&1001u16.to_be_bytes());
                d
            }
        };
        if i % 3 == 1 {
            let at = (rng.next_u64() as usize) % d.len();
            d[at] ^= rng.next_u64() as u8;
            d.truncate((rng.next_u64() as usize) % (d.len() + 1));
        }
        b.handle_datagram(&d, now);
        drain(&mut b, now);
        b.handle_timeout(now + Duration::from_millis(i as u64));
    }
}

#[test]
fn the_fuzz_entry_survives_random_input() {
    let mut rng = Rng::new(5);
    for _ in 0..300 {
        let len = (rng.next_u64() % 3000) as usize;
        crate::utp::fuzz_connection(&rng.bytes(len));
    }
}
