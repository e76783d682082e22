#!/usr/bin/env python3
"""A stand-in for `bittorrent-cli` built on libtorrent, to check the seeding tests themselves.

It implements the part of bittorrent-cli's interface that tests/interop_seed.rs and
tests/interop_webseed.rs drive:

    lt_cli.py [--seed] [--bind IP] [-p PORT] [-o DIR] [--peer ADDR ...] [--no-tracker] [--json] [-q]
              [--web-seed URL ...] [--no-web-seeds] TORRENT...

Data is checked first (no trust in existing files); with --seed it keeps seeding after the
download completes until SIGINT/SIGTERM, else it exits once every torrent is complete. With
--json it prints on exit one line per torrent:
    {"info_hash":"<hex>","name":"...","complete":true,"downloaded":N,"uploaded":N,"wasted":N}
Run the tests against it with BT_INTEROP_CLI=tests/peers/lt_cli.py. Loopback only, like lt_peer.py:
no DHT, LSD, UPnP, NAT-PMP, uTP or PEX.
"""

import argparse
import json
import os
import signal
import sys
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)


def log(msg):
    sys.stderr.write("[lt_cli] %s\n" % msg)
    sys.stderr.flush()


def parse_peer(text):
    host, _, port = text.rpartition(":")
    return (host.strip("[]"), int(port))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("torrents", nargs="+")
    ap.add_argument("-o", "--output", default=".")
    ap.add_argument("-p", "--port", type=int, default=6881)
    ap.add_argument("--bind", default="127.0.0.1")
    ap.add_argument("--peer", action="append", type=parse_peer, default=[])
    ap.add_argument("--no-tracker", action="store_true")
    ap.add_argument("--seed", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--no-dht", action="store_true")  # the stand-in never runs a DHT
    ap.add_argument("--no-port-mapping", action="store_true")  # nor maps a port
    ap.add_argument("-q", "--quiet", action="store_true")
    ap.add_argument("--web-seed", action="append", default=[])
    ap.add_argument("--no-web-seeds", action="store_true")
    args = ap.parse_args()

    interrupts = {"n": 0}

    def on_signal(_signum, _frame):
        interrupts["n"] += 1
        if interrupts["n"] > 1:
            os._exit(130)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)

    ses = lt.session({
        "listen_interfaces": "%s:%d" % (args.bind, args.port),
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True, "connections_limit": 500,
        "stop_tracker_timeout": 1,
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
    }, 0)
    ses.add_extension("ut_metadata")

    handles = []
    for path in args.torrents:
        p = lt.add_torrent_params()
        p.ti = lt.torrent_info(path)
        if args.no_web_seeds:
            p.ti.set_web_seeds([])
        for url in args.web_seed:
            p.ti.add_url_seed(url)
        p.save_path = args.output
        p.flags = (lt.torrent_flags.default_flags | lt.torrent_flags.disable_dht
                   | lt.torrent_flags.disable_lsd | lt.torrent_flags.disable_pex) \
            & ~lt.torrent_flags.auto_managed & ~lt.torrent_flags.paused
        h = ses.add_torrent(p)
        if args.no_tracker:
            h.replace_trackers([])
        handles.append(h)

    dialed = set()
    seeding_logged = set()
    while interrupts["n"] == 0:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert, lt.listen_failed_alert)):
                log("error: " + a.message())
        done = 0
        for i, h in enumerate(handles):
            st = h.status()
            if st.state in (lt.torrent_status.checking_files,
                            lt.torrent_status.checking_resume_data):
                continue
            if i not in dialed:
                for peer in args.peer:
                    h.connect_peer(peer)
                dialed.add(i)
            if st.is_seeding:
                done += 1
                if i not in seeding_logged:
                    log("%s: seeding" % st.name)
                    seeding_logged.add(i)
        if done == len(handles) and not args.seed:
            break

    if args.json:
        for h in handles:
            st = h.status()
            sys.stdout.write(json.dumps({
                "info_hash": str(h.info_hash()), "name": st.name, "complete": st.is_seeding,
                "downloaded": st.total_payload_download, "uploaded": st.total_payload_upload,
                "wasted": st.total_failed_bytes + st.total_redundant_bytes,
            }, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    complete = all(h.status().is_seeding for h in handles)
    # The session's destructor returns once every tracker has answered its `stopped` announce
    # (or after stop_tracker_timeout): a wait for that event rather than a sleep.
    del ses
    # Like bittorrent-cli: success only when every torrent is complete.
    os._exit(0 if complete else 1)


if __name__ == "__main__":
    main()
