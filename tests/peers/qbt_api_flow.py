#!/usr/bin/env python3
"""The qbittorrent-api (PyPI) client against a qBittorrent Web API v2 server on loopback.

    qbt_api_flow.py --url http://127.0.0.1:P --user U --password PW --save DIR --tracker URL
        --torrent FILE:HEX:CONTENT      added as a .torrent (bytes), category and tags
        --magnet URI:HEX:CONTENT        added as a magnet (metadata from the seeder in x.pe)
        --limited FILE:HEX:CONTENT      the rate-limit case (several MiB)

CONTENT is the seeder's copy of the payload (compared byte for byte with the download in DIR).
Log in (and a wrong password refused); add the .torrent and the magnet with category `proof` and
tags; poll torrents/info until both are complete; read files, properties, trackers; pause and
resume with the client (stop/start on Web API >= 2.11) and with the raw endpoints torrents/pause
and torrents/resume (and stop/start where they exist); set per-torrent and global rate limits and
share limits and read them back; measure a per-torrent then a global download limit of 1 MB/s
on the third torrent; delete all with their files and check the files are gone.
Prints `OK ...` lines as it goes, `PASS` at the end; `FAIL ...` and exit 1 on any mismatch.
"""

import argparse
import os
import time

import qbittorrentapi
import requests

from qbt_common import (COMPLETE, PAUSED, api_version_at_least, check, check_eq,
                        fail, norm_path, same_content, say, tags_of, wait_until)

LIMIT = 1_000_000  # bytes/s, the measured download limit


def triple(text):
    parts = text.rsplit(":", 2)
    if len(parts) != 3:
        raise argparse.ArgumentTypeError("expected X:HEX:CONTENT, got %r" % text)
    return parts


def info(client, h):
    found = [t for t in client.torrents_info(torrent_hashes=h) if t["hash"] == h]
    return found[0] if found else None


def login(args):
    bad = qbittorrentapi.Client(host=args.url, username=args.user, password="wrong-password",
                                REQUESTS_ARGS={"timeout": 15})
    try:
        bad.auth_log_in()
        fail("login with a wrong password succeeded")
    except qbittorrentapi.LoginFailed:
        say("OK wrong password refused")
    client = qbittorrentapi.Client(host=args.url, username=args.user, password=args.password,
                                   REQUESTS_ARGS={"timeout": 15})
    client.auth_log_in()
    check(client.is_logged_in, "not logged in after auth/login")
    version = client.app_web_api_version()
    say("OK logged in: app %s, Web API %s" % (client.app_version(), version))
    check(api_version_at_least(version, "2.8"), "webapiVersion %r below 2.8" % version)
    return client, version


def add_both(client, args):
    (tfile, thash, _), (magnet, mhash, _) = args.torrent, args.magnet
    client.torrents_create_category(name="proof")
    with open(tfile, "rb") as f:
        body = f.read()
    r = client.torrents_add(torrent_files=body, category="proof", tags=["alpha", "beta"],
                            save_path=args.save)
    check_eq(r, "Ok.", "torrents/add of a .torrent")
    r = client.torrents_add(urls=magnet, category="proof", tags=["beta"], save_path=args.save)
    check_eq(r, "Ok.", "torrents/add of a magnet")
    listed = {t["hash"] for t in client.torrents_info(category="proof")}
    wait_until("both torrents listed", 10,
               lambda: {thash, mhash} <= {t["hash"] for t in client.torrents_info(category="proof")})
    say("OK added a .torrent and a magnet (listed at once: %d)" % len(listed))


def wait_complete(client, h, timeout=90):
    def done():
        t = info(client, h)
        if t and t["progress"] == 1 and t["state"] in COMPLETE:
            return t
        return False
    return wait_until("completion of %s" % h, timeout, done)


def check_torrent(client, args, spec, tags, tracker):
    _, h, content = spec
    t = wait_complete(client, h)
    size = os.path.getsize(content) if os.path.isfile(content) else sum(
        os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(content) for f in fs)
    name = os.path.basename(content)
    check_eq(t["name"], name, "name of %s" % h)
    check_eq(t["size"], size, "size of %s" % name)
    check_eq(t["category"], "proof", "category of %s" % name)
    check_eq(tags_of(t), tags, "tags of %s" % name)
    check_eq(norm_path(t["save_path"]), norm_path(args.save), "save_path of %s" % name)
    check_eq(t["amount_left"], 0, "amount_left of %s" % name)
    # Counters may lag the state by a refresh (qBittorrent updates its stats every 1.5 s).
    t = wait_until("downloaded >= size %d of %s" % (size, name), 10,
                   lambda: (lambda t: t if t["downloaded"] >= size else False)(info(client, h)))
    check(t["added_on"] > 0 and t["completion_on"] >= t["added_on"],
          "added_on %r / completion_on %r of %s" % (t["added_on"], t["completion_on"], name))
    why = same_content(os.path.join(args.save, name), content)
    check(why is None, "content of %s: %s" % (name, why))

    files = client.torrents_files(torrent_hash=h)
    check_eq(sum(f["size"] for f in files), size, "sum of torrents/files sizes of %s" % name)
    check(all(f["progress"] == 1 for f in files), "a file of %s not at progress 1" % name)
    check(all(f["name"].split("/")[0] == name or len(files) == 1 for f in files),
          "file names of %s: %r" % (name, [f["name"] for f in files]))
    p = client.torrents_properties(torrent_hash=h)
    check_eq(p["total_size"], size, "properties total_size of %s" % name)
    check_eq(norm_path(p["save_path"]), norm_path(args.save), "properties save_path of %s" % name)
    check(p["pieces_num"] > 0 and p["pieces_have"] == p["pieces_num"],
          "properties pieces %r/%r of %s" % (p["pieces_have"], p["pieces_num"], name))
    check(p["piece_size"] > 0, "properties piece_size %r" % p["piece_size"])
    urls = [tr["url"] for tr in client.torrents_trackers(torrent_hash=h)]
    if tracker:
        check(tracker in urls, "trackers of %s: %r lack %s" % (name, urls, tracker))
    say("OK %s complete: info, files (%d), properties, trackers (%d) read" % (name, len(files),
                                                                             len(urls)))


def maindata(client, hashes):
    """sync/maindata as Flood and VueTorrent poll it: a full update, then a delta by rid."""
    full = client.sync_maindata(rid=0)
    check(full.get("full_update") is True, "sync/maindata rid=0 is not a full update")
    check(set(hashes) <= set(full.get("torrents", {})), "sync/maindata lacks the torrents")
    check("proof" in full.get("categories", {}), "sync/maindata lacks the category")
    check("dl_info_speed" in full.get("server_state", {}), "sync/maindata lacks server_state")
    delta = client.sync_maindata(rid=full["rid"])
    check(delta["rid"] != full["rid"], "sync/maindata rid did not change")
    check(not delta.get("full_update"), "sync/maindata delta is a full update")
    unchanged = [h for h, t in delta.get("torrents", {}).items() if "name" in t]
    check(not unchanged, "sync/maindata delta repeats unchanged names of %r" % unchanged)
    t = client.transfer_info()
    check("dl_info_data" in t and "connection_status" in t, "transfer/info fields: %r" % t)
    say("OK sync/maindata full update then delta (rid %d -> %d), transfer/info"
        % (full["rid"], delta["rid"]))


def raw_session(args):
    s = requests.Session()
    r = s.post(args.url + "/api/v2/auth/login",
               data={"username": args.user, "password": args.password}, timeout=15)
    check(r.status_code == 200 and r.text == "Ok.", "raw login: %d %r" % (r.status_code, r.text))
    check("SID" in s.cookies, "raw login set no SID cookie: %r" % s.cookies)
    return s


def wait_state(client, h, states, what):
    def ok():
        t = info(client, h)
        return t["state"] if t and t["state"] in states else False
    return wait_until("%s of %s" % (what, h), 20, ok)


def pause_resume(client, args, version):
    h = args.torrent[1]
    client.torrents_pause(torrent_hashes=h)  # stop on Web API >= 2.11, else pause
    wait_state(client, h, PAUSED, "paused state after the client's pause")
    client.torrents_resume(torrent_hashes=h)
    wait_state(client, h, COMPLETE - PAUSED, "running state after the client's resume")
    s = raw_session(args)
    names = [("pause", "resume")]
    if api_version_at_least(version, "2.11"):
        names.append(("stop", "start"))
    for stop, start in names:
        r = s.post(args.url + "/api/v2/torrents/" + stop, data={"hashes": h}, timeout=15)
        check_eq(r.status_code, 200, "torrents/%s status" % stop)
        wait_state(client, h, PAUSED, "paused state after torrents/%s" % stop)
        r = s.post(args.url + "/api/v2/torrents/" + start, data={"hashes": h}, timeout=15)
        check_eq(r.status_code, 200, "torrents/%s status" % start)
        wait_state(client, h, COMPLETE - PAUSED, "running state after torrents/%s" % start)
    say("OK pause/resume with the client and with torrents/%s" % ", torrents/".join(
        a + "+" + b for a, b in names))


def limits(client, args):
    h = args.torrent[1]
    client.torrents_set_download_limit(limit=300_000, torrent_hashes=h)
    client.torrents_set_upload_limit(limit=200_000, torrent_hashes=h)
    check_eq(client.torrents_download_limit(torrent_hashes=h).get(h), 300_000,
             "torrents/downloadLimit")
    check_eq(client.torrents_upload_limit(torrent_hashes=h).get(h), 200_000,
             "torrents/uploadLimit")
    t = info(client, h)
    check_eq((t["dl_limit"], t["up_limit"]), (300_000, 200_000), "torrents/info dl/up_limit")
    client.torrents_set_share_limits(ratio_limit=1.5, seeding_time_limit=90,
                                     inactive_seeding_time_limit=-2, torrent_hashes=h)
    t = info(client, h)
    check_eq((t["ratio_limit"], t["seeding_time_limit"]), (1.5, 90),
             "torrents/info ratio_limit, seeding_time_limit")
    # Global limits: qBittorrent keeps them in KiB/s, so read back within a KiB.
    client.transfer_set_download_limit(limit=2_048_000)
    client.transfer_set_upload_limit(limit=1_024_000)
    dl, ul = client.transfer_download_limit(), client.transfer_upload_limit()
    check(abs(dl - 2_048_000) < 1024 and abs(ul - 1_024_000) < 1024,
          "transfer limits read back %r/%r" % (dl, ul))
    client.app_set_preferences({"dl_limit": 0, "up_limit": 0, "max_ratio_enabled": True,
                                "max_ratio": 4.5, "max_seeding_time_enabled": True,
                                "max_seeding_time": 600})
    p = client.app_preferences()
    check_eq((p["dl_limit"], p["up_limit"]), (0, 0), "preferences dl_limit/up_limit")
    check_eq((p["max_ratio_enabled"], p["max_ratio"], p["max_seeding_time_enabled"],
              p["max_seeding_time"]), (True, 4.5, True, 600), "preferences share limits")
    check_eq(client.transfer_download_limit(), 0, "transfer/downloadLimit after preferences")
    client.app_set_preferences({"max_ratio_enabled": False, "max_seeding_time_enabled": False})
    client.torrents_set_download_limit(limit=0, torrent_hashes=h)
    client.torrents_set_upload_limit(limit=0, torrent_hashes=h)
    say("OK per-torrent, global and share limits read back")


def downloaded_at(client, h):
    t = info(client, h)
    check(t["progress"] < 1, "the download completed while measuring (limit ignored)")
    return t["downloaded"], time.monotonic()


def measure(client, h, what, seconds=5.0):
    """The rate under a 1 MB/s limit from the `downloaded` counter, within a generous band. A
    limiter may hand out bursts: when the first window is out of the band, the rate over it
    and a second window together is judged."""
    d0, t0 = downloaded_at(client, h)
    rate = 0.0
    for _window in range(2):
        time.sleep(seconds)
        d1, t1 = downloaded_at(client, h)
        rate = (d1 - d0) / (t1 - t0)
        say("%s: %.2f MB/s over %.1f s" % (what, rate / 1e6, t1 - t0))
        if 0.3 * LIMIT <= rate <= 1.6 * LIMIT:
            say("OK %s: %.2f MB/s under a %.1f MB/s limit" % (what, rate / 1e6, LIMIT / 1e6))
            return
    fail("%s: %.2f MB/s under a %.1f MB/s limit" % (what, rate / 1e6, LIMIT / 1e6))


def rate_limit(client, args):
    tfile, h, content = args.limited
    with open(tfile, "rb") as f:
        body = f.read()
    check_eq(client.torrents_add(torrent_files=body, save_path=args.save, is_paused=True,
                                 category="proof"), "Ok.", "torrents/add paused")
    wait_until("the paused torrent listed", 10, lambda: info(client, h))
    wait_state(client, h, PAUSED, "paused state of a torrent added paused")
    client.torrents_set_download_limit(limit=LIMIT, torrent_hashes=h)
    client.torrents_resume(torrent_hashes=h)
    wait_until("download start", 30, lambda: info(client, h)["downloaded"] > 64 * 1024)
    measure(client, h, "per-torrent download limit")
    client.transfer_set_download_limit(limit=LIMIT)
    client.torrents_set_download_limit(limit=0, torrent_hashes=h)
    time.sleep(1)
    measure(client, h, "global download limit")
    client.transfer_set_download_limit(limit=0)
    wait_complete(client, h, 60)
    why = same_content(os.path.join(args.save, os.path.basename(content)), content)
    check(why is None, "content of the rate-limited torrent: %s" % why)
    say("OK limits lifted, the rate-limited torrent completed")


def delete_all(client, args):
    specs = [args.torrent, args.magnet, args.limited]
    hashes = [h for _, h, _ in specs]
    client.torrents_delete(delete_files=True, torrent_hashes=hashes)
    wait_until("the torrents gone from torrents/info", 20,
               lambda: not set(hashes) & {t["hash"] for t in client.torrents_info()})
    paths = [os.path.join(args.save, os.path.basename(c)) for _, _, c in specs]
    wait_until("the files deleted", 20, lambda: not any(os.path.exists(p) for p in paths))
    say("OK deleted with their files")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--save", required=True)
    ap.add_argument("--tracker", default="")
    ap.add_argument("--torrent", type=triple, required=True)
    ap.add_argument("--magnet", type=triple, required=True)
    ap.add_argument("--limited", type=triple, required=True)
    args = ap.parse_args()

    client, version = login(args)
    add_both(client, args)
    check_torrent(client, args, args.torrent, {"alpha", "beta"}, args.tracker)
    check_torrent(client, args, args.magnet, {"beta"}, None)
    check("proof" in client.torrents_categories(), "category proof not listed")
    check({"alpha", "beta"} <= set(client.torrents_tags()), "tags not listed")
    maindata(client, [args.torrent[1], args.magnet[1]])
    pause_resume(client, args, version)
    limits(client, args)
    rate_limit(client, args)
    delete_all(client, args)
    client.auth_log_out()
    say("PASS")


if __name__ == "__main__":
    main()
