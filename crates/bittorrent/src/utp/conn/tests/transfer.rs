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
    println!(
        "lossless: cwnd max {} cuts {}",
        pair.max_cwnd, pair.cwnd_cuts
    );
    assert_eq!(pair.cwnd_cuts, 0);
    assert!(pair.max_cwnd >= MIB, "slow start grew to {}", pair.max_cwnd);
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
    // The congestion window under loss: cut again and again, kept small.
    println!(
        "10% loss: cwnd max {} cuts {}",
        pair.max_cwnd, pair.cwnd_cuts
    );
    assert!(pair.cwnd_cuts > 20, "{} cuts", pair.cwnd_cuts);
    assert!(pair.max_cwnd < 256 << 10, "cwnd reached {}", pair.max_cwnd);
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

/// A 2 MB/s bottleneck with an unbounded queue in front of it: a sender
/// that filled its windows (4 MiB) would queue ~2 s. LEDBAT keeps the
/// queueing delay near its 100 ms target once past slow start.
#[test]
fn ledbat_keeps_the_queue_near_the_target() {
    let rate = 2_000_000;
    let ab = LinkConfig {
        delay: Duration::from_millis(10),
        rate: Some(rate),
        ..LinkConfig::default()
    };
    let ba = link(10, 0, 0.0);
    let data = Rng::new(21).bytes(16 * MIB);
    let mut pair = Pair::new(Config::default(), ab, ba, 21);
    pair.ab.measure_from = Some(pair.start + Duration::from_secs(3));
    let ends = pair.transfer(&data, Duration::from_secs(60));
    assert_eq!(ends, (Closed::Fin, Closed::Fin));
    assert!(pair.received == data);
    let (sum, n) = pair.ab.queued_us;
    let mean_ms = sum / n / 1000;
    let secs = (pair.now - pair.start).as_secs_f64();
    println!("mean queueing delay {mean_ms} ms over {n} packets, {secs:.1} s");
    assert!(
        (50..=150).contains(&mean_ms),
        "mean queueing delay {mean_ms} ms"
    );
    // And the link stayed busy: within 15% of the bottleneck's time.
    assert!(secs < 1.15 * (16 * MIB) as f64 / rate as f64, "{secs} s");
}

/// The reader stops for a minute: the window closes, the sender probes
/// and does not give up, and the transfer finishes once reading resumes.
#[test]
fn a_paused_reader_closes_the_window_without_killing_the_connection() {
    let config = Config {
        recv_window: 64 << 10,
        ..Config::default()
    };
    let l = link(5, 0, 0.0);
    let data = Rng::new(31).bytes(MIB);
    let mut pair = Pair::new(config, l, l, 31);
    pair.b_reads = false;
    let mut written = 0;
    while pair.now - pair.start < Duration::from_secs(60) {
        assert_eq!(pair.pump(&data, &mut written), None);
    }
    let b = pair.b.as_ref().unwrap();
    assert!(pair.a.closed().is_none() && b.closed().is_none());
    let sent_while_shut = pair.ab.sent;
    // Probes only: far fewer packets than the megabyte needs.
    assert!(sent_while_shut < 200, "{sent_while_shut}");
    pair.b_reads = true;
    while pair.pump(&data, &mut written).is_none() {}
    assert!(pair.received == data);
}
