#!/usr/bin/env python3
"""A loopback DHT of libtorrent nodes (python bindings), for interop tests of our DHT node.

It runs N libtorrent sessions in one process, node i on 127.0.0.(FIRST+i), every one with the
DHT on and bootstrapped only from the others and from the --bootstrap addresses (our node):
`dht_bootstrap_nodes` is emptied, so the public routers are never contacted. LSD, UPnP, NAT-PMP
and PEX are off. libtorrent restricts local addresses by default; these settings lift that:
dht_restrict_routing_ips, dht_restrict_search_ips, dht_ignore_dark_internet,
dht_prefer_verified_node_ids and dht_enforce_node_id (all False), and its per-IP DHT rate limit
(dht_block_ratelimit) and DHT upload limit are raised, since every node is on 127.0.0.0/8.

    lt_dht.py --nodes N [--bootstrap H:P ...] [--first-ip F | --ipv6] [--stop-with-pid PID]
              [--seed TORRENT --save DIR]      node 0 seeds TORRENT (seed_mode) and announces it
                                              into the DHT only (no tracker, no peer given)
              [--leech MAGNET --save DIR]      node 0 downloads MAGNET, finding peers in the DHT only
              [--announce-every S] [--timeout S] [--dht-log]

Lines printed on stdout (flushed at once), for a harness to parse:
    READY nodes=IP:P,IP:P,...   every node is listening (UDP and TCP on the same port); with
                                --ipv6 every node is on [::1] (BEP 32), as [::1]:P
    ANNOUNCED seconds=S         --seed: node 0's DHT announce got answers (S since start)
    STORED ip=IP port=P node=I  node I stored a peer announced to it (dht_announce_alert)
    DHT_PEERS n=N seconds=S     --leech: a DHT lookup of node 0 returned N peers
    DONE seconds=S              --leech: every piece downloaded and checked; then it exits 0
    ERROR ...                   something failed (exit code non-zero)
"""

import argparse
import os
import signal
import sys
import time
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)


def say(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def fail(msg, code=1):
    say("ERROR " + msg)
    os._exit(code)


def parse_addr(text):
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
    return (host.strip("[]"), int(port))


def node_settings(ip, dht_log):
    mask = lt.alert.category_t.status_notification | lt.alert.category_t.error_notification
    mask |= lt.alert.category_t.dht_notification
    if dht_log:
        mask |= lt.alert.category_t.dht_log_notification
    return {
        "listen_interfaces": ("[%s]:0" if ":" in ip else "%s:0") % ip,
        "outgoing_interfaces": ip,
        "enable_dht": True,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        # Never the public routers: only the nodes given with add_dht_node.
        "dht_bootstrap_nodes": "",
        "dht_restrict_routing_ips": False,
        "dht_restrict_search_ips": False,
        "dht_ignore_dark_internet": False,
        "dht_prefer_verified_node_ids": False,
        "dht_enforce_node_id": False,
        "dht_block_ratelimit": 10000,
        "dht_upload_rate_limit": 10 * 1000 * 1000,
        "dht_aggressive_lookups": True,
        "allow_multiple_connections_per_ip": True,
        "connections_limit": 200,
        "alert_mask": mask,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=4, help="libtorrent DHT nodes to run")
    ap.add_argument("--first-ip", type=int, default=10, help="node i listens on 127.0.0.(F+i)")
    ap.add_argument("--ipv6", action="store_true", help="every node listens on [::1] instead")
    ap.add_argument("--bootstrap", action="append", type=parse_addr, default=[],
                    help="HOST:PORT of another DHT node every node starts from (repeatable)")
    ap.add_argument("--seed", metavar="TORRENT", help="node 0 seeds this .torrent (in --save)")
    ap.add_argument("--leech", metavar="MAGNET", help="node 0 downloads this magnet (into --save)")
    ap.add_argument("--save", help="data directory of --seed / --leech")
    ap.add_argument("--announce-every", type=float, default=3.0,
                    help="seconds between node 0's forced DHT announces of its torrent")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="--leech: give up (exit 3) after this many seconds (0: never)")
    ap.add_argument("--stop-with-pid", type=int, default=0,
                    help="exit when process PID is gone")
    ap.add_argument("--dht-log", action="store_true", help="print libtorrent's DHT log on stderr")
    args = ap.parse_args()
    if (args.seed or args.leech) and not args.save:
        ap.error("--seed and --leech need --save")
    start = time.monotonic()

    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    sessions = []
    addrs = []
    def node_ip(i):
        return "::1" if args.ipv6 else "127.0.0.%d" % (args.first_ip + i)

    for i in range(args.nodes):
        ip = node_ip(i)
        # flags=0: no default plugins (no ut_pex); ut_metadata for magnets.
        ses = lt.session(node_settings(ip, args.dht_log), flags=0)
        ses.add_extension("ut_metadata")
        sessions.append(ses)
    deadline = time.monotonic() + 10
    for ses, i in zip(sessions, range(args.nodes)):
        while ses.listen_port() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        if ses.listen_port() == 0:
            fail("node %d is not listening" % i, 2)
        addrs.append((node_ip(i), ses.listen_port()))
    for i, ses in enumerate(sessions):
        for j, addr in enumerate(addrs):
            if i != j:
                ses.add_dht_node(addr)
        for addr in args.bootstrap:
            ses.add_dht_node(addr)
    say("READY nodes=" + ",".join(("[%s]:%d" if ":" in a[0] else "%s:%d") % a for a in addrs))

    handle = None
    if args.seed:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(args.seed)
        params.save_path = args.save
        params.flags = lt.torrent_flags.seed_mode
        handle = sessions[0].add_torrent(params)
    elif args.leech:
        params = lt.parse_magnet_uri(args.leech)
        params.save_path = args.save
        params.flags &= ~(lt.torrent_flags.auto_managed | lt.torrent_flags.paused)
        handle = sessions[0].add_torrent(params)

    announced = False
    next_announce = 0.0
    while not stop["now"]:
        if args.stop_with_pid and not os.path.exists("/proc/%d" % args.stop_with_pid):
            break
        now = time.monotonic()
        if args.timeout and now - start > args.timeout:
            fail("timed out after %.0fs" % args.timeout, 3)
        if handle is not None and now >= next_announce:
            handle.force_dht_announce()
            next_announce = now + args.announce_every
        for i, ses in enumerate(sessions):
            for a in ses.pop_alerts():
                if isinstance(a, lt.dht_announce_alert):
                    say("STORED ip=%s port=%d node=%d" % (a.ip, a.port, i))
                elif isinstance(a, lt.dht_reply_alert) and i == 0:
                    say("DHT_PEERS n=%d seconds=%.2f" % (a.num_peers, now - start))
                    if args.seed and not announced:
                        announced = True
                        say("ANNOUNCED seconds=%.2f" % (now - start))
                elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                    fail(a.message(), 2)
                elif args.dht_log and isinstance(a, (lt.dht_log_alert, lt.dht_pkt_alert)):
                    sys.stderr.write("node%d %s\n" % (i, a.message()))
        if args.leech and handle is not None and handle.status().is_seeding:
            say("DONE seconds=%.2f" % (time.monotonic() - start))
            handle.flush_cache()
            time.sleep(0.5)
            os._exit(0)
        sessions[0].wait_for_alert(100)
    os._exit(0)


if __name__ == "__main__":
    main()
