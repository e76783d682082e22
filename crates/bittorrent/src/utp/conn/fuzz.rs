//! The entry point of the `utp_conn` fuzz target: arbitrary datagrams fed
//! to a connected connection (and to `accept`).

use std::time::{Duration, Instant};

use crate::utp::conn::{Config, Connection, MAX_DATAGRAM};
use crate::utp::packet::Packet;

/// Everything `c` has to send now; each must parse as a uTP packet, and
/// the loop must end.
fn drain(c: &mut Connection, now: Instant, buf: &mut [u8]) -> Option<(u16, u16)> {
    let mut last = None;
    for _ in 0..100_000 {
        let Some(n) = c.poll_transmit(now, buf) else {
            return last;
        };
        assert!(n <= MAX_DATAGRAM, "datagram of {n} bytes");
        let Some(p) = Packet::parse(&buf[..n]) else {
            panic!("sent a datagram that does not parse");
        };
        last = Some((p.header.seq_nr, p.header.ack_nr));
    }
    panic!("poll_transmit does not end");
}

/// Input: records of `[control, len, len bytes]`. The control byte's low
/// bits patch the datagram toward what the connection accepts (its
/// connection id, an ACK of what it sent, the next sequence number), the
/// high bits advance the clock and pick reads, writes and timers. Checks
/// that nothing panics and every datagram sent parses.
#[doc(hidden)]
pub fn fuzz_connection(data: &[u8]) {
    let t0 = Instant::now();
    let mut now = t0;
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let config = Config {
        recv_window: 64 << 10,
        send_buffer: 64 << 10,
        ..Config::default()
    };
    // A connected pair; `b` is the one fuzzed.
    let mut a = Connection::connect(config.clone(), 1000, 65_530, now);
    let Some(n) = a.poll_transmit(now, &mut buf) else {
        return;
    };
    let Some(mut b) = Connection::accept(config.clone(), &buf[..n], 2, now) else {
        return;
    };
    let _ = Connection::accept(config, data, 3, now);
    b.write(&[0x55; 20_000]);
    let (mut b_seq, mut b_ack) = drain(&mut b, now, &mut buf).unwrap_or((0, 0));
    let mut rest = data;
    let mut read_buf = [0u8; 4096];
    while let [control, len, tail @ ..] = rest {
        let len = usize::from(*len).min(tail.len());
        let mut d = tail[..len].to_vec();
        rest = &tail[len..];
        if d.len() >= 20 {
            if control & 1 != 0 {
                d[2..4].copy_from_slice(&b.recv_id().to_be_bytes());
            }
            if control & 2 != 0 {
                d[18..20]
                    .copy_from_slice(&b_seq.wrapping_sub(u16::from(control >> 5)).to_be_bytes());
            }
            if control & 4 != 0 {
                d[16..18].copy_from_slice(&b_ack.wrapping_add(1).to_be_bytes());
            }
        }
        b.handle_datagram(&d, now);
        if control & 8 != 0 {
            now += Duration::from_millis(u64::from(*control) * 7);
            if b.poll_timeout().is_some_and(|t| t <= now) {
                b.handle_timeout(now);
            }
        }
        if control & 16 != 0 {
            while b.read(&mut read_buf) > 0 {}
            b.write(&d);
        }
        if let Some((s, a)) = drain(&mut b, now, &mut buf) {
            (b_seq, b_ack) = (s, a);
        }
    }
    b.close(now);
    drain(&mut b, now, &mut buf);
}
