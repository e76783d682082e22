#!/usr/bin/env python3
"""Helpers of scripts/bench-many (not a test).

  bench_many.py make DATA_DIR TORRENT_DIR COUNT KIB
      Makes COUNT random files of KIB KiB (DATA_DIR/fNNNNN.bin, kept if already there) and a
      single-file torrent of each with 256 KiB pieces and no tracker (TORRENT_DIR/fNNNNN.torrent),
      with libtorrent's create_torrent.

  bench_many.py seed TORRENT_DIR DATA_DIR PORT [--seed-mode]
      libtorrent seeding every torrent of TORRENT_DIR from DATA_DIR in one session listening on
      127.0.0.1:PORT, with DHT, LSD, UPnP, NAT-PMP and PEX off and no tracker. Prints
      "READY <torrents> <seconds>" once every torrent is checked (--seed-mode: trusts the data,
      no hashing), then sleeps until SIGTERM or SIGINT and prints STOPPED.
"""
import os
import signal
import sys
import time

import libtorrent as lt

PIECE = 256 * 1024


def make(data, torrents, count, kib):
    os.makedirs(data, exist_ok=True)
    os.makedirs(torrents, exist_ok=True)
    for i in range(count):
        name = "f%05d" % i
        path = os.path.join(data, name + ".bin")
        if not os.path.exists(path) or os.path.getsize(path) != kib * 1024:
            with open(path + ".tmp", "wb") as f:
                f.write(os.urandom(kib * 1024))
            os.rename(path + ".tmp", path)
        out = os.path.join(torrents, name + ".torrent")
        if os.path.exists(out):
            continue
        fs = lt.file_storage()
        fs.add_file(name + ".bin", kib * 1024)
        ct = lt.create_torrent(fs, PIECE)
        ct.set_creator("bench-many")
        lt.set_piece_hashes(ct, data)
        with open(out + ".tmp", "wb") as f:
            f.write(lt.bencode(ct.generate()))
        os.rename(out + ".tmp", out)


def seed(torrents, data, port, seed_mode):
    start = time.monotonic()
    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    files = sorted(f for f in os.listdir(torrents) if f.endswith(".torrent"))
    settings = {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "alert_mask": lt.alert_category.error | lt.alert_category.status,
        "alert_queue_size": 4 * len(files) + 1000,
    }
    # flags=0: no default plugins (ut_pex among them).
    ses = lt.session(settings, 0)
    flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd \
        | lt.torrent_flags.disable_pex
    if seed_mode:
        flags |= lt.torrent_flags.seed_mode
    for name in files:
        params = lt.add_torrent_params()
        params.ti = lt.torrent_info(os.path.join(torrents, name))
        params.save_path = data
        params.flags = (lt.torrent_flags.default_flags | flags) & ~lt.torrent_flags.auto_managed \
            & ~lt.torrent_flags.paused
        ses.async_add_torrent(params)
    waiting = len(files)
    ready_states = (lt.torrent_status.seeding, lt.torrent_status.finished)
    last_poll = time.monotonic()
    while waiting and not stop["now"]:
        ses.wait_for_alert(200)
        for a in ses.pop_alerts():
            if isinstance(a, lt.torrent_checked_alert):
                waiting -= 1
            elif isinstance(a, lt.add_torrent_alert) and a.error.value():
                print("lt: add failed: %s" % a.error.message(), file=sys.stderr)
        # seed_mode torrents may skip the checked alert: count the states now and then.
        if waiting and time.monotonic() - last_poll > 1:
            last_poll = time.monotonic()
            statuses = ses.get_torrent_status(lambda s: True, 0)
            if len(statuses) == len(files):
                waiting = sum(1 for s in statuses if s.state not in ready_states)
    if not stop["now"]:
        print("READY %d %.3f" % (len(files), time.monotonic() - start), flush=True)
    while not stop["now"]:
        signal.pause()
    del ses
    print("STOPPED", flush=True)


def main():
    args = sys.argv[1:]
    if len(args) == 5 and args[0] == "make":
        make(args[1], args[2], int(args[3]), int(args[4]))
    elif len(args) in (4, 5) and args[0] == "seed":
        seed(args[1], args[2], int(args[3]), args[4:] == ["--seed-mode"])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
