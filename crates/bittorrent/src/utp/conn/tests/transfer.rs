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

/// This thread's CPU time so far (Linux), for the bench.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    Some(Duration::from_nanos(stat.split(' ').next()?.parse().ok()?))
}

/// Not a test: the core's cost per packet. 256 MiB over a lossless link
/// with 50 µs each way, both connections on one thread; prints datagrams
/// per second of CPU time, for the whole simulation and for the time spent
/// inside the connections' calls. Run:
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
    let cpu = thread_cpu();
    let ends = pair.transfer(&data, Duration::from_secs(3600));
    let cpu = thread_cpu().zip(cpu).map(|(b, a)| (b - a).as_secs_f64());
    let wall = wall.elapsed().as_secs_f64();
    assert_eq!(ends, (Closed::Fin, Closed::Fin));
    assert!(pair.received == data);
    let packets = (pair.ab.sent + pair.ba.sent) as f64;
    let core = pair.core.as_secs_f64();
    // Time inside the calls is wall time; scale it by the CPU share.
    let core_cpu = cpu.map_or(core, |c| core * c / wall);
    println!(
        "256 MiB: {} data + {} ack datagrams; wall {wall:.3} s, thread CPU {cpu:.3?} s, \
         in the connections {core:.3} s wall (~{core_cpu:.3} s CPU)",
        pair.ab.sent, pair.ba.sent,
    );
    println!(
        "datagrams per CPU second: whole simulation {:.0}, the two connections alone {:.0} \
         (each datagram is sent by one and received by the other)",
        packets / cpu.unwrap_or(wall),
        packets / core_cpu,
    );
}
