#!/usr/bin/env python3
"""A libtorrent peer (python bindings) for loopback interop tests and benchmarks.

It only ever talks to 127.0.0.1 (or ::1 with --listen-ip ::1): DHT, LSD, UPnP, NAT-PMP and uTP are
off (--utp-only: uTP on and TCP off, both directions), and the session is created without default
plugins, so there is no PEX (only ut_metadata and smart_ban are added; --pex adds ut_pex too).

    lt_peer.py --torrent T --save DIR --seed  [--seed-mode] [--port P] [--peer H:P ...] [--wait-tracker]
    lt_peer.py --torrent T --save DIR --leech [--keep-seeding] [--port P] [--peer H:P ...] [--timeout S]
    lt_peer.py --torrent T --list-files
    (both take --stop-with-pid PID: exit when that process is gone, and --progress-interval S;
    --upload-limit B caps the upload rate at B bytes/s, for loopback peers too, --download-limit B
    the download rate (--download-limit-seconds S: for the first S seconds only);
    --report-interval S
    prints an UPLOADED_NOW line every S seconds; --tick-interval MS sets libtorrent's tick;
    --send-buffer B sets the per-peer send buffer; --encryption forced|disabled sets MSE/PE: forced
    is in and out encrypted with RC4 only, disabled is plaintext only, default is libtorrent's;
    --utp-only speaks uTP only, no TCP; --utp speaks uTP beside TCP; --listen-ip IP listens on
    IP instead of 127.0.0.1, e.g. ::1 for IPv6 only (libtorrent's listen_interfaces [::1]:P);
    --pex turns peer exchange (ut_pex, BEP 11) on; --peer takes [V6]:P too; --print-peers prints a
    PEER line for each peer it gets connected to)

Lines printed on stdout (flushed at once), for a harness to parse:
    READY port=P            listening on 127.0.0.1:P (or --listen-ip); for a seeder, the torrent is seeding (and, with
                            --wait-tracker, the tracker accepted an announce)
    PROGRESS P% peers=N rate=R pieces=H/T
                            leecher: every --progress-interval seconds (default 5)
    HASHFAIL piece=I        a piece received from peers failed its hash check
    DONE seconds=S bytes=B  leecher: every piece downloaded and checked; then it exits 0 (after an
                            UPLOADED line), or with --keep-seeding goes on seeding until stopped
    UPLOADED bytes=B        payload uploaded since start: a seeder (or a --keep-seeding leecher)
                            prints it when stopped by SIGTERM/SIGINT (then exits 0); a leecher
                            prints it right after DONE, and before the ERROR when interrupted
    UPLOADED_NOW bytes=B    payload uploaded so far (every --report-interval seconds)
    UNLIMITED               --download-limit-seconds are over: the download limit is lifted
    PEER ADDR sources=S     --print-peers: connected to ADDR (IP:PORT or [V6]:PORT, the remote end);
                            S is libtorrent's peer_info.source bits (1 tracker, 2 DHT, 4 PEX, 8 LSD,
                            16 resume data, 32 incoming)
    FILE i size path        --list-files: libtorrent's (sanitized) path of file i under the save
                            path; then it exits 0 (or prints ERROR when it cannot load the torrent)
    ERROR ...               something failed (exit code non-zero)
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


def flush_and_wait(ses, handle, timeout=60.0):
    """Writes every buffered block to disk; returns when libtorrent says it is done."""
    handle.flush_cache()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ses.wait_for_alert(100)
        for a in ses.pop_alerts():
            if isinstance(a, lt.cache_flushed_alert):
                return
            if isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                fail(a.message(), 2)
    fail("disk flush did not finish in %.0fs" % timeout, 2)


def parse_peer(text):
    host, _, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError("expected HOST:PORT or [V6]:PORT, got %r" % text)
    return (host, int(port))


def listen_interface(ip, port):
    """libtorrent's listen_interfaces entry: an IPv6 address goes in brackets."""
    if ":" in ip:
        return "[%s]:%d" % (ip, port)
    return "%s:%d" % (ip, port)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torrent", required=True, help=".torrent file")
    ap.add_argument("--save", default=None, help="save path (data dir; multi-file -> SAVE/<name>/)")
    ap.add_argument("--port", type=int, default=0, help="listen port on 127.0.0.1 (0: any)")
    ap.add_argument("--listen-ip", default="127.0.0.1",
                    help="listen on this address only (e.g. ::1: IPv6 loopback only)")
    ap.add_argument("--print-peers", action="store_true",
                    help="print a PEER line for each newly connected peer (with its sources)")
    ap.add_argument("--pex", action="store_true",
                    help="peer exchange (ut_pex) on: the plugin, and the torrent's disable_pex off")
    mode = ap.add_mutually_exclusive_group(required=True)
    mode.add_argument("--seed", action="store_true", help="seed existing data until killed")
    mode.add_argument("--list-files", action="store_true",
                      help="print libtorrent's path of every file (FILE lines), then exit")
    mode.add_argument("--leech", action="store_true", help="download, then exit 0")
    ap.add_argument("--seed-mode", action="store_true", help="trust existing data, no recheck")
    ap.add_argument("--peer", action="append", type=parse_peer, default=[],
                    help="HOST:PORT to dial directly (repeatable)")
    ap.add_argument("--wait-tracker", action="store_true",
                    help="print READY only after the tracker answered an announce")
    ap.add_argument("--stop-with-pid", type=int, default=0,
                    help="exit when process PID is gone (no orphans if a test harness dies)")
    ap.add_argument("--timeout", type=float, default=0.0,
                    help="leecher: give up (exit 3) after this many seconds (0: never)")
    ap.add_argument("--keep-seeding", action="store_true",
                    help="leecher: after DONE, seed until SIGTERM/SIGINT (then UPLOADED, exit 0)")
    ap.add_argument("--progress-interval", type=float, default=5.0,
                    help="leecher: seconds between PROGRESS lines")
    ap.add_argument("--upload-limit", type=int, default=0,
                    help="upload rate limit in bytes/s (0: none); applies to loopback peers too")
    ap.add_argument("--download-limit", type=int, default=0,
                    help="download rate limit in bytes/s (0: none); applies to loopback peers too")
    ap.add_argument("--download-limit-seconds", type=float, default=0.0,
                    help="lift --download-limit after this many seconds (0: keep it)")
    ap.add_argument("--report-interval", type=float, default=0.0,
                    help="print UPLOADED_NOW bytes=B every this many seconds (0: never)")
    ap.add_argument("--tick-interval", type=int, default=0,
                    help="libtorrent's tick in ms (0: its default, 500; 50 with --report-interval). "
                    "The rate limiter hands out upload quota once a tick: with --upload-limit, a "
                    "shorter tick sends smoothly instead of in bursts")
    ap.add_argument("--send-buffer", type=int, default=0,
                    help="per-peer send buffer in bytes (0: libtorrent's default, which starts at "
                    "500 KiB and grows with the peer's measured rate, so a new connection on "
                    "loopback runs at a third of full speed for up to a second)")
    ap.add_argument("--encryption", choices=["default", "forced", "disabled"], default="default",
                    help="MSE/PE policy: forced = in and out encrypted, RC4 only (pe_forced, "
                    "pe_rc4); disabled = plaintext only (pe_disabled); default: libtorrent's "
                    "(pe_enabled both ways, either method)")
    ap.add_argument("--utp", action="store_true",
                    help="peer connections over uTP (BEP 29) too, in and out, beside TCP")
    ap.add_argument("--utp-only", action="store_true",
                    help="peer connections over uTP only (BEP 29), in and out; TCP is off")
    args = ap.parse_args()
    start = time.monotonic()

    if args.list_files:
        try:
            info = lt.torrent_info(args.torrent)
        except RuntimeError as e:
            fail("cannot load torrent %s: %s" % (args.torrent, e), 2)
        files = info.files()
        for i in range(files.num_files()):
            say("FILE %d %d %s" % (i, files.file_size(i), files.file_path(i)))
        os._exit(0)
    if args.save is None:
        ap.error("--save is required")

    stop = {"now": False}

    def on_signal(_signum, _frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    settings = {
        "listen_interfaces": listen_interface(args.listen_ip, args.port),
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "dht_bootstrap_nodes": "",
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "connections_limit": 500,
        "upload_rate_limit": 0,
        "download_rate_limit": 0,
        "stop_tracker_timeout": 1,
        "alert_mask": lt.alert_category.error | lt.alert_category.status
        | lt.alert_category.tracker | lt.alert_category.storage,
        "user_agent": "lt_peer.py/libtorrent " + lt.__version__,
    }
    if args.utp or args.utp_only:
        settings["enable_outgoing_utp"] = True
        settings["enable_incoming_utp"] = True
    if args.utp_only:
        settings["enable_outgoing_utp"] = True
        settings["enable_incoming_utp"] = True
        settings["enable_outgoing_tcp"] = False
        settings["enable_incoming_tcp"] = False
    if args.report_interval:
        # Transfer counters are updated once per tick (default 500 ms): tick faster, so that
        # UPLOADED_NOW lags less.
        settings["tick_interval"] = 50
    if args.tick_interval:
        settings["tick_interval"] = args.tick_interval
    if args.send_buffer:
        settings["send_buffer_watermark"] = args.send_buffer
        settings["send_buffer_low_watermark"] = args.send_buffer // 4
        settings["send_buffer_watermark_factor"] = 200
    if args.encryption == "forced":
        settings["out_enc_policy"] = int(lt.enc_policy.forced)
        settings["in_enc_policy"] = int(lt.enc_policy.forced)
        settings["allowed_enc_level"] = int(lt.enc_level.rc4)
        settings["prefer_rc4"] = True
    elif args.encryption == "disabled":
        settings["out_enc_policy"] = int(lt.enc_policy.disabled)
        settings["in_enc_policy"] = int(lt.enc_policy.disabled)
    # flags=0: no default plugins (ut_pex among them) and no default features.
    ses = lt.session(settings, 0)
    ses.add_extension("ut_metadata")
    ses.add_extension("smart_ban")
    if args.pex:
        ses.add_extension("ut_pex")

    try:
        info = lt.torrent_info(args.torrent)
    except RuntimeError as e:
        fail("cannot load torrent %s: %s" % (args.torrent, e), 2)
    has_tracker = any(True for _ in info.trackers())

    flags = lt.torrent_flags.disable_dht | lt.torrent_flags.disable_lsd
    if not args.pex:
        flags |= lt.torrent_flags.disable_pex
    if args.seed and args.seed_mode:
        flags |= lt.torrent_flags.seed_mode
    params = lt.add_torrent_params()
    params.ti = info
    params.save_path = args.save
    params.flags = (lt.torrent_flags.default_flags | flags) & ~lt.torrent_flags.auto_managed \
        & ~lt.torrent_flags.paused
    handle = ses.add_torrent(params)
    if args.upload_limit:
        # The per-torrent limit; the session-wide upload_rate_limit would spare loopback peers,
        # which libtorrent puts in its unlimited local peer class.
        handle.set_upload_limit(args.upload_limit)
    if args.download_limit:
        handle.set_download_limit(args.download_limit)

    listening = False
    announced = not (args.wait_tracker and has_tracker)
    ready = False
    dialed = False
    done = False  # leecher: DONE printed (--keep-seeding)
    last_progress = start
    last_report = start
    last_parent_check = start
    download_limited = bool(args.download_limit)
    seen_peers = set()

    while True:
        for a in ses.pop_alerts():
            if isinstance(a, lt.listen_failed_alert):
                fail("listen failed: %s" % a.message(), 2)
            elif isinstance(a, (lt.torrent_error_alert, lt.file_error_alert)):
                fail(a.message(), 2)
            elif isinstance(a, lt.tracker_reply_alert):
                announced = True
            elif isinstance(a, lt.tracker_error_alert):
                say("WARN %s" % a.message())
            elif isinstance(a, lt.hash_failed_alert):
                say("HASHFAIL piece=%d" % a.piece_index)

        if not listening and ses.listen_port() != 0:
            listening = True

        st = handle.status()
        if listening and not dialed and st.state not in (
            lt.torrent_status.checking_files, lt.torrent_status.queued_for_checking,
            lt.torrent_status.checking_resume_data,
        ):
            for peer in args.peer:
                handle.connect_peer(peer)
            dialed = True

        if not ready and listening and announced:
            if args.leech or st.state == lt.torrent_status.seeding:
                say("READY port=%d" % ses.listen_port())
                ready = True

        if args.leech and not done:
            if st.is_seeding or st.state in (lt.torrent_status.finished, lt.torrent_status.seeding):
                # "finished" can come before the disk threads wrote the last blocks: flush them,
                # or a reader (and os._exit) may see holes.
                finished = time.monotonic() - start
                flush_and_wait(ses, handle)
                secs = time.monotonic() - start
                say("DONE seconds=%.3f finished_at=%.3f bytes=%d" % (secs, finished, st.total_wanted_done))
                if not args.keep_seeding:
                    say("UPLOADED bytes=%d" % handle.status().total_payload_upload)
                    os._exit(0)
                done = True
            now = time.monotonic()
            if now - last_progress >= args.progress_interval:
                last_progress = now
                say("PROGRESS %.1f%% peers=%d rate=%.1fMB/s pieces=%d/%d"
                    % (st.progress * 100, st.num_peers, st.download_payload_rate / 1e6,
                       st.num_pieces, info.num_pieces()))
            if args.timeout and now - start > args.timeout:
                say("UPLOADED bytes=%d" % st.total_payload_upload)
                fail("timeout after %.0fs at %.1f%%" % (args.timeout, st.progress * 100), 3)
            if stop["now"]:
                say("UPLOADED bytes=%d" % st.total_payload_upload)
                fail("interrupted at %.1f%%" % (st.progress * 100), 4)
        elif stop["now"]:
            say("UPLOADED bytes=%d" % st.total_payload_upload)
            os._exit(0)

        if download_limited and args.download_limit_seconds \
                and time.monotonic() - start >= args.download_limit_seconds:
            handle.set_download_limit(-1)
            download_limited = False
            say("UNLIMITED")

        if args.report_interval and time.monotonic() - last_report >= args.report_interval:
            last_report = time.monotonic()
            say("UPLOADED_NOW bytes=%d" % handle.status().total_payload_upload)

        if args.print_peers:
            for p in handle.get_peer_info():
                host, port = p.ip
                addr = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
                if addr not in seen_peers:
                    seen_peers.add(addr)
                    say("PEER %s sources=%d" % (addr, int(p.source)))

        if args.stop_with_pid and time.monotonic() - last_parent_check >= 1:
            last_parent_check = time.monotonic()
            try:
                os.kill(args.stop_with_pid, 0)
            except ProcessLookupError:
                fail("process %d is gone, stopping" % args.stop_with_pid, 5)
            except PermissionError:
                pass

        ses.wait_for_alert(50)


if __name__ == "__main__":
    main()
