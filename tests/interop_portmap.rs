//! Port mapping against a real gateway: Debian's miniupnpd (nftables build), which serves
//! UPnP IGD, NAT-PMP and PCP. For each protocol in turn, a library session listening on
//! 127.0.0.1 (TCP, and UDP for uTP) maps its port through that protocol alone; the proof
//! comes from miniupnpd's own records: its lease file (`PROTO:eport:iaddr:iport:expiry:desc`)
//! and its DNAT rules in nftables show the mapping, a later expiry shows the renewal (a 6 s
//! lease, renewed at half), and both are empty again after the session's graceful shutdown.
//! Before the session starts, the test itself holds the external TCP port equal to our listen
//! port (a raw NAT-PMP request from 127.0.0.2, another LAN host), so the gateway gives our TCP
//! mapping another external port: a torrent added once mapped announces that port, not the
//! listen port, to a minimal HTTP tracker in the test.
//!
//! Each protocol runs in a network namespace of its own: the outer test re-runs this test
//! binary under `unshare --net` for the inner (ignored) test, which sets the namespace up:
//! `lo` (LAN side: miniupnpd listens on 127.0.0.1, SSDP on `lo`) and a veth `pm0` holding
//! 127.77.0.1 (WAN side). Every address is in 127.0.0.0/8 except one: miniupnpd 2.3.1 refuses
//! to map anything when its external address is private or reserved (127/8 included), so
//! `ext_ip` declares 11.22.33.44 as its public address. That is only a value it reports;
//! nothing is sent to it, and the namespace has no link out. SSDP discovery is unicast to
//! 127.0.0.1:1900 (the `ssdp` setting); NAT-PMP and PCP go to the gateway 127.0.0.1:5351.
//! A fourth run, `upnp-multicast`, leaves `ssdp` unset: discovery goes to the SSDP multicast
//! group 239.255.255.250:1900 as on a real LAN. There `lo` gets the MULTICAST flag and the
//! route for 224.0.0.0/4 (the namespace's only multicast route), miniupnpd joins the group on
//! `lo`, and the search loops back to it: the group never leaves the namespace.
//!
//! Run alone with `cargo test -p bittorrent-cli --test interop_portmap -- --nocapture`
//! (as root: it creates network namespaces).

#[macro_use]
mod harness;

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bittorrent::portmap::{MapTransport, PortMapConfig, PortMapProtocol};
use bittorrent::prelude::*;
use harness::wait::poll;
use harness::{Proc, Tool};

/// The inner test reads the protocol to test from this variable.
const PROTOCOL_VAR: &str = "BT_PORTMAP_PROTOCOL";

/// The public address miniupnpd is told it has (see the module doc).
const EXTERNAL_IP: &str = "11.22.33.44";

/// The lease we ask for; renewed at half.
const LEASE: Duration = Duration::from_secs(6);

/// miniupnpd's nftables chains (the names it uses by default), made before it starts.
const NFT_RULES: &str = "\
table inet filter {
    chain miniupnpd {
    }
    chain prerouting_miniupnpd {
    }
    chain postrouting_miniupnpd {
    }
    chain forward {
        type filter hook forward priority 0; policy drop;
        jump miniupnpd
    }
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        jump prerouting_miniupnpd
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        jump postrouting_miniupnpd
    }
}
";

#[test]
fn miniupnpd_maps_renews_and_removes_over_each_protocol() {
    require!(Tool::Miniupnpd);
    if !Command::new("unshare")
        .args(["--net", "true"])
        .status()
        .is_ok_and(|s| s.success())
    {
        assert!(
            std::env::var("BT_INTEROP_REQUIRED").as_deref() != Ok("1"),
            "cannot create a network namespace (BT_INTEROP_REQUIRED=1): run as root"
        );
        eprintln!("skipping: cannot create a network namespace (not root?)");
        return;
    }
    let exe = std::env::current_exe().expect("test binary path");
    for protocol in ["upnp", "natpmp", "pcp", "upnp-multicast"] {
        let out = Command::new("unshare")
            .args(["--net", "--"])
            .arg(&exe)
            .args(["--exact", "inner_one_protocol", "--ignored", "--nocapture"])
            .env(PROTOCOL_VAR, protocol)
            .output()
            .expect("run the inner test under unshare");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        println!("--- {protocol} ---\n{text}");
        assert!(
            out.status.success(),
            "{protocol}: inner test failed:\n{text}"
        );
        assert!(
            text.contains("1 passed"),
            "{protocol}: inner test did not run:\n{text}"
        );
    }
}

/// One protocol, in a fresh network namespace (run by the test above).
#[test]
#[ignore = "run by miniupnpd_maps_renews_and_removes_over_each_protocol in its own namespace"]
fn inner_one_protocol() {
    let name = std::env::var(PROTOCOL_VAR).expect("BT_PORTMAP_PROTOCOL set by the outer test");
    let (protocol, multicast) = match name.as_str() {
        "upnp" => (PortMapProtocol::Upnp, false),
        "upnp-multicast" => (PortMapProtocol::Upnp, true),
        "natpmp" => (PortMapProtocol::NatPmp, false),
        "pcp" => (PortMapProtocol::Pcp, false),
        other => panic!("unknown protocol {other}"),
    };
    let dir = harness::scratch();
    set_up_namespace(dir.path(), multicast);
    let mut gateway = start_miniupnpd(dir.path());
    if multicast {
        let groups = output("ip", &["maddr", "show", "dev", "lo"]);
        assert!(
            groups.contains("239.255.255.250"),
            "miniupnpd did not join the SSDP group on lo: {groups}\n{}",
            gateway.tail(40)
        );
    }
    // Multicast: no `ssdp` setting, so discovery goes to the standard group.
    let ssdp = (!multicast).then(|| SocketAddr::from(([127, 0, 0, 1], 1900)));
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    rt.block_on(map_renew_remove(protocol, ssdp, dir.path(), &mut gateway));
}

async fn map_renew_remove(
    protocol: PortMapProtocol,
    ssdp: Option<SocketAddr>,
    dir: &Path,
    gateway: &mut Proc,
) {
    let leases = &dir.join("leases");
    let port = harness::free_port();
    let taken = take_external_tcp_port(port);
    let config = SessionConfig {
        listen: Some(SocketAddr::from(([127, 0, 0, 1], port))),
        port_mapping: Some(PortMapConfig {
            protocols: vec![protocol],
            gateway: Some([127, 0, 0, 1].into()),
            ssdp,
            lease: LEASE,
            ..PortMapConfig::default()
        }),
        ..SessionConfig::default()
    };
    let started = Instant::now();
    let (session, mut events) = Session::spawn_with(config);
    assert_eq!(session.listen_addr().map(|a| a.port()), Some(port));

    // Mapped: our events, then miniupnpd's lease file and DNAT rules. The TCP port was
    // taken, so TCP gets another external port; UDP gets the listen port.
    let mut mapped = Vec::new();
    let mut tcp_external = 0;
    while mapped.len() < 2 {
        let event = tokio::time::timeout(Duration::from_secs(30), events.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no PortMapped event in 30 s; gateway log:\n{}",
                    gateway.tail(40)
                )
            })
            .expect("event stream open");
        match event {
            Event::PortMapped {
                protocol: p,
                transport,
                internal_port,
                external,
            } => {
                assert_eq!((p, internal_port), (protocol, port));
                assert_eq!(external.ip().to_string(), EXTERNAL_IP);
                if transport == MapTransport::Tcp {
                    tcp_external = external.port();
                } else {
                    assert_eq!(external.port(), port, "UDP");
                }
                mapped.push(transport);
            }
            Event::PortMappingFailed { transport, message } => {
                panic!("{transport}: {message}; gateway log:\n{}", gateway.tail(40))
            }
            _ => {}
        }
    }
    let map_time = started.elapsed();
    mapped.sort_by_key(|t| *t == MapTransport::Udp);
    assert_eq!(mapped, [MapTransport::Tcp, MapTransport::Udp]);
    assert_ne!(
        tcp_external, port,
        "the gateway gave the taken TCP port again"
    );
    let first = lease_expiries(leases, (tcp_external, port));
    assert!(
        first.0.is_some() && first.1.is_some(),
        "miniupnpd's lease file lacks TCP {tcp_external} or UDP {port}: {:?}",
        fs::read_to_string(leases)
    );
    let rules = dnat_rules(port);
    assert_eq!(rules.len(), 2, "DNAT rules to {port}: {rules:?}");
    let stats = session.stats().await.expect("stats");
    assert_eq!(stats.port_mappings.len(), 2, "{:?}", stats.port_mappings);
    println!(
        "{protocol}: TCP {port} (as {tcp_external}) and UDP {port} mapped in {map_time:?}; \
         rules {rules:?}"
    );

    // The trackers hear the external TCP port.
    let announced = announce_port(&session, dir).await;
    assert_eq!(
        announced, tcp_external,
        "announced port (listen port {port})"
    );
    println!("{protocol}: announced port {announced} (listen port {port})");

    // Renewed: miniupnpd's expiry moves on (we renew at half the 6 s lease).
    let renewed = poll(Duration::from_secs(20), Duration::from_millis(200), || {
        let now = lease_expiries(leases, (tcp_external, port));
        (now.0 > first.0 && now.1 > first.1).then_some(now)
    });
    let renewed = renewed.unwrap_or_else(|| {
        panic!(
            "no renewal seen in 20 s (first expiries {first:?}): {:?}\n{}",
            fs::read_to_string(leases),
            gateway.tail(40)
        )
    });
    println!("{protocol}: renewed, expiries {first:?} -> {renewed:?}");
    assert_eq!(dnat_rules(port).len(), 2, "the rules survive renewal");

    // Removed on shutdown, within the session's graceful shutdown.
    let stopping = Instant::now();
    session.shutdown();
    tokio::time::timeout(Duration::from_secs(15), session.join())
        .await
        .expect("session stops within 15 s");
    let shutdown = stopping.elapsed();
    assert_eq!(
        lease_expiries(leases, (tcp_external, port)),
        (None, None),
        "lease file after shutdown: {:?}\n{}",
        fs::read_to_string(leases),
        gateway.tail(40)
    );
    assert!(
        dnat_rules(port).is_empty(),
        "rules after shutdown: {:?}",
        dnat_rules(port)
    );
    println!("{protocol}: mappings deleted; shutdown took {shutdown:?}");
    // Only ours: the test's own mapping of the taken port is still there.
    assert!(
        lease_expiries(leases, (taken, 0)).0.is_some(),
        "the other mapping was deleted too: {:?}",
        fs::read_to_string(leases)
    );
}

/// Maps external TCP `port` to 127.0.0.2:`port` (another LAN host) with a raw NAT-PMP request
/// (RFC 6886 §3.3), so that the port is taken when our session asks for it. Returns it.
fn take_external_tcp_port(port: u16) -> u16 {
    let socket = UdpSocket::bind("127.0.0.2:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let mut request = vec![0, 2, 0, 0];
    request.extend_from_slice(&port.to_be_bytes());
    request.extend_from_slice(&port.to_be_bytes());
    request.extend_from_slice(&600u32.to_be_bytes());
    socket
        .send_to(&request, "127.0.0.1:5351")
        .expect("send NAT-PMP");
    let mut reply = [0u8; 16];
    let n = socket.recv(&mut reply).expect("NAT-PMP answer");
    assert_eq!(n, 16, "NAT-PMP answer {:?}", &reply[..n]);
    assert_eq!(&reply[..4], &[0, 130, 0, 0], "NAT-PMP result");
    assert_eq!(
        u16::from_be_bytes([reply[10], reply[11]]),
        port,
        "taken port"
    );
    port
}

/// Adds a torrent announcing to a minimal HTTP tracker (one request, answered with no
/// peers) and returns the `port=` of its announce.
async fn announce_port(session: &SessionHandle, dir: &Path) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind tracker");
    let url = format!(
        "http://127.0.0.1:{}/announce",
        listener.local_addr().expect("addr").port()
    );
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((mut conn, _)) = listener.accept() else {
            return;
        };
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        while !request.windows(4).any(|w| w == b"\r\n\r\n") {
            match conn.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => request.extend_from_slice(&buf[..n]),
            }
        }
        let body = b"d8:intervali1800e5:peers0:e";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = conn.write_all(head.as_bytes());
        let _ = conn.write_all(body);
        let _ = tx.send(String::from_utf8_lossy(&request).into_owned());
    });
    let torrent = dir.join("announce.torrent");
    let data = vec![7u8; 40_000];
    harness::meta::craft_torrent(&torrent, Some(&url), b"a", &[(vec![], data)], 16_384);
    let meta = MetaInfo::load(&torrent).expect("load the crafted torrent");
    let store = MemoryStore::new(&meta);
    session.add_torrent(Torrent::new(meta, store));
    let request = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(30)))
        .await
        .expect("join")
        .expect("an announce within 30 s");
    let line = request.lines().next().unwrap_or_default().to_string();
    line.split(['?', '&', ' '])
        .find_map(|kv| kv.strip_prefix("port="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in the announce {line:?}"))
}

/// `lo` up, the veth `pm0` (WAN side) holding 127.77.0.1, miniupnpd's nftables chains; with
/// `multicast`, `lo` carries multicast and is the route for 224.0.0.0/4 (SSDP's group).
fn set_up_namespace(dir: &Path, multicast: bool) {
    run("ip", &["link", "set", "lo", "up"]);
    if multicast {
        run("ip", &["link", "set", "lo", "multicast", "on"]);
        run("ip", &["route", "add", "224.0.0.0/4", "dev", "lo"]);
    }
    run(
        "ip",
        &["link", "add", "pm0", "type", "veth", "peer", "name", "pm1"],
    );
    run("ip", &["addr", "add", "127.77.0.1/32", "dev", "pm0"]);
    run("ip", &["link", "set", "pm1", "up"]);
    run("ip", &["link", "set", "pm0", "up"]);
    let rules = dir.join("rules.nft");
    fs::write(&rules, NFT_RULES).expect("write nft rules");
    run("nft", &["-f", rules.to_str().expect("utf-8 path")]);
}

/// miniupnpd in the foreground (`-d`), its configuration, lease file and pid file in `dir`;
/// returns once it listens for NAT-PMP/PCP (its HTTP and SSDP sockets are open by then).
fn start_miniupnpd(dir: &Path) -> Proc {
    let conf = dir.join("miniupnpd.conf");
    let text = format!(
        "ext_ifname=pm0\n\
         ext_ip={EXTERNAL_IP}\n\
         ext_perform_stun=no\n\
         listening_ip=lo\n\
         http_port=0\n\
         enable_upnp=yes\n\
         enable_natpmp=yes\n\
         secure_mode=no\n\
         system_uptime=yes\n\
         lease_file={}\n\
         min_lifetime=2\n\
         max_lifetime=86400\n\
         uuid=3d3cec3a-8cf0-11e0-98ee-001a6bd2d07b\n\
         allow 1024-65535 127.0.0.0/8 1024-65535\n\
         deny 0-65535 0.0.0.0/0 0-65535\n",
        dir.join("leases").display()
    );
    fs::write(&conf, text).expect("write miniupnpd.conf");
    let mut cmd = Command::new("miniupnpd");
    cmd.arg("-f").arg(&conf).arg("-d");
    cmd.arg("-P").arg(dir.join("miniupnpd.pid"));
    let mut gateway = Proc::spawn("miniupnpd", cmd, dir);
    assert!(
        gateway.wait_contains("Listening for NAT-PMP/PCP traffic", Duration::from_secs(10)),
        "miniupnpd did not start:\n{}",
        gateway.tail(40)
    );
    gateway
}

/// The expiry times miniupnpd's lease file gives the mappings of external TCP port `tcp` and
/// external UDP port `udp`.
fn lease_expiries(leases: &Path, (tcp, udp): (u16, u16)) -> (Option<u64>, Option<u64>) {
    let text = fs::read_to_string(leases).unwrap_or_default();
    let find = |proto: &str, port: u16| {
        text.lines().find_map(|line| {
            let f: Vec<&str> = line.split(':').collect();
            (f.len() >= 5 && f[0] == proto && f[1] == port.to_string())
                .then(|| f[4].parse::<u64>().ok())
                .flatten()
        })
    };
    (find("TCP", tcp), find("UDP", udp))
}

/// miniupnpd's DNAT rules to 127.0.0.1:`port` in its nftables chain.
fn dnat_rules(port: u16) -> Vec<String> {
    let out = Command::new("nft")
        .args(["list", "chain", "inet", "filter", "prerouting_miniupnpd"])
        .output()
        .expect("run nft");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.ends_with(&format!("dnat ip to 127.0.0.1:{port}")))
        .map(|l| l.trim().to_string())
        .collect()
}

/// The standard output of a command that must succeed.
fn output(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(out.status.success(), "{program} {args:?}: {}", out.status);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program)
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(status.success(), "{program} {args:?}: {status}");
}
