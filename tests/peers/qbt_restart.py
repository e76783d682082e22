#!/usr/bin/env python3
"""State across restarts of a qBittorrent Web API v2 server (qbittorrent-api client, loopback).

    qbt_restart.py setup --url U --user U --password PW --save DIR --state FILE
        --downloading FILE:HEX:CONTENT --complete FILE:HEX:CONTENT
    qbt_restart.py check (same) [--graceful] [--gain G] [--resnapshot] [--wait-complete]

setup: categories (one with a save path), tags; the `complete` torrent added with category and
tags, downloaded, then paused with per-torrent rate limits and share limits; the `downloading`
torrent added (its seeder is capped: it stays in the middle); global preferences (share limits,
upload limit); once the download passed 5 %, everything is written to FILE (a snapshot).
check (after a restart): every torrent of the snapshot is back with the same name, size,
category, tags, save path, added_on, limits, share limits and paused state; the complete one
still complete; categories, tags, preferences and transfer limits as before; with --graceful
the download kept its progress; then the download goes on (progress + G), --resnapshot writes
the snapshot again, --wait-complete waits for its completion and compares its content.
Prints `OK ...` lines, `PASS` at the end; `FAIL ...` and exit 1 on any mismatch.
"""

import argparse
import json
import os

import qbittorrentapi

from qbt_common import (COMPLETE, PAUSED, check, check_eq, fail, norm_path, same_content, say,
                        tags_of, wait_until)

TORRENT_FIELDS = ("name", "size", "category", "save_path", "added_on", "dl_limit", "up_limit",
                  "ratio_limit", "seeding_time_limit")
TRANSIENT = {"checkingResumeData", "checkingUP", "checkingDL", "moving", "allocating", "unknown"}
PREF_KEYS = ("max_ratio_enabled", "max_ratio", "max_seeding_time_enabled", "max_seeding_time",
             "up_limit", "dl_limit", "queueing_enabled")


def client_of(args):
    client = qbittorrentapi.Client(host=args.url, username=args.user, password=args.password,
                                   REQUESTS_ARGS={"timeout": 15})
    client.auth_log_in()
    return client


def info(client, h):
    found = [t for t in client.torrents_info(torrent_hashes=h) if t["hash"] == h]
    return found[0] if found else None


def snapshot(client, args):
    hashes = [args.downloading[1], args.complete[1]]
    torrents = {}
    for h in hashes:
        t = info(client, h)
        check(t is not None, "torrent %s not listed" % h)
        entry = {k: t[k] for k in TORRENT_FIELDS}
        entry["save_path"] = norm_path(entry["save_path"])
        entry.update(tags=sorted(tags_of(t)), paused=t["state"] in PAUSED,
                     progress=t["progress"], completion_on=t["completion_on"])
        torrents[h] = entry
    prefs = client.app_preferences()
    cats = {n: norm_path(c.get("savePath")) for n, c in client.torrents_categories().items()}
    return {"torrents": torrents, "categories": cats, "tags": sorted(client.torrents_tags()),
            "prefs": {k: prefs.get(k) for k in PREF_KEYS},
            "transfer": [client.transfer_download_limit(), client.transfer_upload_limit()]}


def setup(client, args):
    ctorrent, chash, _ = args.complete
    client.torrents_create_category(name="movies", save_path=os.path.join(args.save, "movies"))
    client.torrents_create_category(name="keep")
    client.torrents_create_tags(tags=["t-one", "t-two", "spare"])
    with open(ctorrent, "rb") as f:
        check_eq(client.torrents_add(torrent_files=f.read(), save_path=args.save,
                                     category="keep", tags=["t-one", "t-two"]), "Ok.",
                 "torrents/add of the complete one")
    wait_until("completion of the small torrent", 60, lambda: (lambda t: t and t["progress"] == 1
                                                               and t["state"] in COMPLETE)(
        info(client, chash)))
    client.torrents_pause(torrent_hashes=chash)
    client.torrents_set_download_limit(limit=400_000, torrent_hashes=chash)
    client.torrents_set_upload_limit(limit=300_000, torrent_hashes=chash)
    client.torrents_set_share_limits(ratio_limit=3.25, seeding_time_limit=77,
                                     inactive_seeding_time_limit=-2, torrent_hashes=chash)
    dtorrent, dhash, _ = args.downloading
    with open(dtorrent, "rb") as f:
        check_eq(client.torrents_add(torrent_files=f.read(), save_path=args.save,
                                     category="movies", tags=["t-one"]), "Ok.",
                 "torrents/add of the downloading one")
    client.app_set_preferences({"max_ratio_enabled": True, "max_ratio": 6.5,
                                "max_seeding_time_enabled": True, "max_seeding_time": 321})
    client.transfer_set_upload_limit(limit=7 * 1024 * 1024)
    wait_state(client, chash, PAUSED)
    wait_until("the download past 5 %", 60,
               lambda: (lambda t: t and 0.05 <= t["progress"])(info(client, dhash)))
    snap = snapshot(client, args)
    check(snap["torrents"][dhash]["progress"] < 0.9,
          "the download is not in the middle: %r" % snap["torrents"][dhash]["progress"])
    say("OK set up: %s" % json.dumps(snap, sort_keys=True))
    return snap


def wait_state(client, h, states):
    wait_until("state in %s of %s" % (sorted(states), h), 20,
               lambda: (lambda t: t and t["state"] in states)(info(client, h)))


def compare(client, args, old):
    def settled():
        # Back, and past the start-up states (qBittorrent shows checkingResumeData first).
        ts = [info(client, h) for h in old["torrents"]]
        return all(t and t["state"] not in TRANSIENT for t in ts) or [
            t and t["state"] for t in ts]
    wait_until("every torrent back and settled", 30,
               lambda: settled() is True)
    new = snapshot(client, args)
    for h, was in old["torrents"].items():
        now = new["torrents"][h]
        for key in TORRENT_FIELDS + ("tags", "paused"):
            check_eq(now[key], was[key], "%s of %s after the restart" % (key, was["name"]))
    done = new["torrents"][args.complete[1]]
    check_eq((done["progress"], done["completion_on"]),
             (1, old["torrents"][args.complete[1]]["completion_on"]),
             "progress, completion_on of the complete torrent")
    check_eq(new["categories"], old["categories"], "categories")
    check(set(old["tags"]) <= set(new["tags"]), "tags %r lack some of %r" % (new["tags"],
                                                                          old["tags"]))
    check_eq(new["prefs"], old["prefs"], "preferences")
    check_eq(new["transfer"], old["transfer"], "transfer limits")
    before = old["torrents"][args.downloading[1]]["progress"]
    after = new["torrents"][args.downloading[1]]["progress"]
    say("OK everything back; the download at %.3f (was %.3f)" % (after, before))
    if args.graceful:
        check(after >= before, "the download lost progress: %.3f -> %.3f" % (before, after))
    return max(before, after)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("step", choices=["setup", "check"])
    for name in ("--url", "--user", "--password", "--save", "--state"):
        ap.add_argument(name, required=True)
    split = lambda s: s.rsplit(":", 2)  # noqa: E731
    ap.add_argument("--downloading", required=True, type=split)
    ap.add_argument("--complete", required=True, type=split)
    ap.add_argument("--graceful", action="store_true")
    ap.add_argument("--gain", type=float, default=0.0)
    ap.add_argument("--resnapshot", action="store_true")
    ap.add_argument("--wait-complete", action="store_true")
    args = ap.parse_args()
    client = client_of(args)
    if args.step == "setup":
        with open(args.state, "w") as f:
            json.dump(setup(client, args), f)
        say("PASS")
        return
    with open(args.state) as f:
        old = json.load(f)
    progress = compare(client, args, old)
    h = args.downloading[1]
    if args.gain:
        wait_until("the download going on past %.3f" % (progress + args.gain), 60,
                   lambda: (lambda t: t["progress"] >= progress + args.gain)(info(client, h)))
        say("OK the download goes on")
    if args.resnapshot:
        snap = snapshot(client, args)
        check(snap["torrents"][h]["progress"] < 0.95, "the download is no longer in the middle")
        with open(args.state, "w") as f:
            json.dump(snap, f)
        say("OK snapshot again at %.3f" % snap["torrents"][h]["progress"])
    if args.wait_complete:
        wait_until("completion of the download", 90, lambda: (lambda t: t["progress"] == 1 and
                                                              t["state"] in COMPLETE)(info(client, h)))
        content = args.downloading[2]
        why = same_content(os.path.join(args.save, os.path.basename(content)), content)
        if why:
            fail("content after the restarts: %s" % why)
        say("OK the download completed after the restarts, content equal")
    say("PASS")


if __name__ == "__main__":
    main()
