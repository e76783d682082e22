//! Whole transfers over the simulated link.

use std::time::Duration;

use crate::utp::conn::tests::sim::{LinkConfig, Pair, Rng};
use crate::utp::conn::{Closed, Config};

const MIB: usize = 1 << 20;

fn link(delay_ms: u64, jitter_ms: u64, loss: f64) -> LinkConfig {
    LinkConfig {
        delay: Duration::from_millis(delay_ms),
        jitter: Duration::from_millis(jitter_ms),
        loss,
        rate: None,
    }
}

/// Sends `size` random bytes over `l` both ways; checks they arrive
/// byte-identical and both ends close in order.
fn transfer(l: LinkConfig, size: usize, seed: u64) -> Pair {
    let data = Rng::new(seed ^ 0xda7a).bytes(size);
    let mut pair = Pair::new(Config::default(), l, l, seed);
    let ends = pair.transfer(&data, Duration::from_secs(600));
    assert_eq!(pair.received.len(), data.len());
    assert!(pair.received == data, "bytes differ");
    assert_eq!(ends, (Closed::Fin, Closed::Fin));
    pair
}

#[test]
fn lossless() {
    let pair = transfer(link(10, 0, 0.0), 4 * MIB, 1);
    assert_eq!(pair.ab.dropped, 0);
    assert_eq!(pair.a.retransmissions(), 0);
    // 4 MiB in 1400-byte packets, plus SYN, FIN and the ACK of b's FIN.
    let data_packets = (4 * MIB).div_ceil(1400) as u64;
    assert_eq!(pair.ab.sent, data_packets + 3);
}

#[test]
fn one_percent_loss() {
    let pair = transfer(link(10, 0, 0.01), 4 * MIB, 2);
    assert!(pair.ab.dropped > 0);
    assert!(pair.a.retransmissions() >= pair.ab.dropped / 2);
}

#[test]
fn ten_percent_loss() {
    let pair = transfer(link(10, 0, 0.10), 4 * MIB, 3);
    assert!(pair.ab.dropped > 100);
}

#[test]
fn reordering() {
    transfer(link(10, 20, 0.0), 4 * MIB, 4);
}

#[test]
fn reordering_and_loss() {
    transfer(link(5, 10, 0.05), 4 * MIB, 5);
}

#[test]
fn several_seeds_with_loss() {
    for seed in 10..16 {
        transfer(link(2, 3, 0.03), MIB / 2, seed);
    }
}

/// Not a test: the core's cost per packet. 256 MiB over a lossless link
/// with 50 µs each way, both connections on one thread; prints packets per
/// second of wall time. Run:
/// `cargo test --release -p bittorrent --lib utp::conn::tests::transfer::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_256_mib() {
    let size = 256 * MIB;
    let l = LinkConfig {
        delay: Duration::from_micros(50),
        ..LinkConfig::default()
    };
    let data = Rng::new(7).bytes(size);
    let mut pair = Pair::new(Config::default(), l, l, 7);
    let wall = std::time::Instant::now();
    let ends = pair.transfer(&data, Duration::from_secs(3600));
    let secs = wall.elapsed().as_secs_f64();
    assert_eq!(ends, (Closed::Fin, Closed::Fin));
    assert!(pair.received == data);
    let packets = pair.ab.sent + pair.ba.sent;
    println!(
        "256 MiB: {packets} datagrams ({} data, {} acks) in {secs:.3} s wall: {:.0} datagrams/s, {:.0} MB/s; simulated {:?}",
        pair.ab.sent,
        pair.ba.sent,
        packets as f64 / secs,
        size as f64 / secs / 1e6,
        pair.now - pair.start,
    );
}
