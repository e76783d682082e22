#!/usr/bin/env python3
"""The Web API calls of the *arr apps (Sonarr, Radarr: their qBittorrent v2 proxy), made with curl
against a qBittorrent Web API v2 server on loopback, asserting status codes and JSON fields.

    qbt_arr_flow.py --url http://127.0.0.1:P --user U --password PW --save DIR
        --magnet URI:HEX:CONTENT     a magnet whose x.pe is a seeder of CONTENT

Without a cookie: 403. Login (wrong password: `Fails.`; right: `Ok.` and an SID in the cookie
jar); app/webapiVersion, app/version, app/preferences; categories, createCategory (again: 409);
torrents/add (multipart: urls, category, savepath, paused/stopped); torrents/info?category=;
properties (unknown hash: 404); start (resume before Web API 2.11) and wait for completion;
files; setCategory (to an unknown category: 409); setShareLimits read back; topPrio (409 when
queueing is off); a GET of a POST-only action (405); delete with deleteFiles; logout (then 403).
Prints `OK ...` lines, `PASS` at the end; `FAIL ...` and exit 1 on any mismatch.
"""

import argparse
import json
import os
import re
import subprocess
import tempfile

from qbt_common import (COMPLETE, PAUSED, api_version_at_least, check, check_eq, fail,
                        norm_path, say, wait_until)

UNKNOWN = "0123456789abcdef0123456789abcdef01234567"


class Curl:
    def __init__(self, url, jar):
        self.url = url
        self.jar = jar

    def call(self, method, path, data=None, form=None, query=None, cookies=True):
        """One curl request; returns (status code, body text)."""
        out = tempfile.NamedTemporaryFile(delete=False)
        out.close()
        cmd = ["curl", "-sS", "--max-time", "15", "-o", out.name, "-w", "%{http_code}",
               "-X", method]
        if cookies:
            cmd += ["-b", self.jar, "-c", self.jar]
        for k, v in (data or {}).items():
            cmd += ["--data-urlencode", "%s=%s" % (k, v)]
        for k, v in (form or {}).items():
            cmd += ["-F", "%s=%s" % (k, v)]
        target = self.url + "/api/v2/" + path
        if query:
            cmd += ["-G"] if method == "GET" else []
            for k, v in query.items():
                cmd += ["--data-urlencode", "%s=%s" % (k, v)]
        cmd.append(target)
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        with open(out.name, "rb") as f:
            body = f.read().decode("utf-8", "replace")
        os.unlink(out.name)
        if res.returncode != 0:
            fail("curl %s %s: exit %d %s" % (method, path, res.returncode, res.stderr.strip()))
        return int(res.stdout.strip() or 0), body

    def ok(self, method, path, want=200, **kw):
        code, body = self.call(method, path, **kw)
        if code != want:
            fail("%s %s: status %d (want %d), body %r" % (method, path, code, want, body[:300]))
        return body

    def json(self, method, path, **kw):
        body = self.ok(method, path, **kw)
        try:
            return json.loads(body)
        except ValueError:
            fail("%s %s: not JSON: %r" % (method, path, body[:300]))


def login(c, args):
    code, _ = c.call("GET", "app/webapiVersion", cookies=False)
    check_eq(code, 403, "app/webapiVersion without a cookie")
    body = c.ok("POST", "auth/login", data={"username": args.user, "password": "nope"})
    check_eq(body, "Fails.", "auth/login with a wrong password")
    body = c.ok("POST", "auth/login", data={"username": args.user, "password": args.password})
    check_eq(body, "Ok.", "auth/login")
    with open(c.jar) as f:
        check("\tSID\t" in f.read(), "no SID cookie in the jar after login")
    version = c.ok("GET", "app/webapiVersion")
    check(re.fullmatch(r"2\.\d+(\.\d+)?", version), "webapiVersion %r" % version)
    app = c.ok("GET", "app/version")
    check(app.startswith("v"), "app/version %r" % app)
    prefs = c.json("GET", "app/preferences")
    for key in ("save_path", "queueing_enabled", "max_ratio_enabled", "max_ratio",
                "max_seeding_time_enabled", "max_seeding_time", "dht"):
        check(key in prefs, "app/preferences lacks %r" % key)
    say("OK login, webapiVersion %s, app/version %s, preferences" % (version, app))
    return version, prefs


def categories(c, args):
    cats = c.json("GET", "torrents/categories")
    check(isinstance(cats, dict), "torrents/categories is not an object: %r" % cats)
    save = os.path.join(args.save, "tv")
    c.ok("POST", "torrents/createCategory", data={"category": "tv-sonarr", "savePath": save})
    c.ok("POST", "torrents/createCategory", want=409,
         data={"category": "tv-sonarr", "savePath": save})
    c.ok("POST", "torrents/createCategory", data={"category": "tv-imported", "savePath": ""})
    cats = c.json("GET", "torrents/categories")
    check("tv-sonarr" in cats, "categories lack tv-sonarr: %r" % cats)
    check_eq(cats["tv-sonarr"].get("name"), "tv-sonarr", "categories[tv-sonarr].name")
    check_eq(norm_path(cats["tv-sonarr"].get("savePath")), norm_path(save),
             "categories[tv-sonarr].savePath")
    say("OK categories, createCategory (and 409 for an existing one)")


def info_of(c, h, **query):
    found = [t for t in c.json("GET", "torrents/info", query=query) if t.get("hash") == h]
    return found[0] if found else None


def add_and_complete(c, args, version):
    magnet, h, content = args.magnet
    body = c.ok("POST", "torrents/add", form={
        "urls": magnet, "category": "tv-sonarr", "savepath": args.save, "paused": "true",
        "stopped": "true"})
    check_eq(body, "Ok.", "torrents/add body")
    t = wait_until("the magnet in torrents/info?category=tv-sonarr", 10,
                   lambda: info_of(c, h, category="tv-sonarr"))
    check_eq(t["category"], "tv-sonarr", "category")
    check(t["state"] in PAUSED, "state %r of a torrent added paused" % t["state"])
    check_eq(norm_path(t["save_path"]), norm_path(args.save), "save_path")
    check(info_of(c, h, category="tv-imported") is None, "listed under another category")
    props = c.json("GET", "torrents/properties", query={"hash": h})
    check_eq(norm_path(props["save_path"]), norm_path(args.save), "properties save_path")
    code, _ = c.call("GET", "torrents/properties", query={"hash": UNKNOWN})
    check_eq(code, 404, "torrents/properties of an unknown hash")
    start = "start" if api_version_at_least(version, "2.11") else "resume"
    c.ok("POST", "torrents/" + start, data={"hashes": h})

    def complete():
        t = info_of(c, h, category="tv-sonarr")
        return t if t and t["progress"] == 1 and t["state"] in COMPLETE else False
    t = wait_until("completion", 60, complete)
    size = os.path.getsize(content)
    check_eq(t["size"], size, "size")
    files = c.json("GET", "torrents/files", query={"hash": h})
    check_eq([(f["name"], f["size"]) for f in files], [(os.path.basename(content), size)],
             "torrents/files")
    props = c.json("GET", "torrents/properties", query={"hash": h})
    check_eq(props["total_size"], size, "properties total_size")
    say("OK torrents/add paused, info?category, properties (404 unknown), %s, completed, files"
        % start)


def manage(c, args, prefs):
    h = args.magnet[1]
    c.ok("POST", "torrents/setCategory", data={"hashes": h, "category": "tv-imported"})
    check_eq(info_of(c, h)["category"], "tv-imported", "category after setCategory")
    c.ok("POST", "torrents/setCategory", want=409, data={"hashes": h, "category": "no-such"})
    c.ok("POST", "torrents/setShareLimits", data={
        "hashes": h, "ratioLimit": "2", "seedingTimeLimit": "60",
        "inactiveSeedingTimeLimit": "-2"})
    t = info_of(c, h)
    check_eq((t["ratio_limit"], t["seeding_time_limit"]), (2, 60), "share limits")
    c.ok("POST", "torrents/topPrio", want=200 if prefs["queueing_enabled"] else 409,
         data={"hashes": h})
    code, _ = c.call("GET", "torrents/delete", query={"hashes": h, "deleteFiles": "true"})
    check_eq(code, 405, "GET torrents/delete")
    check(info_of(c, h) is not None, "a GET of torrents/delete removed the torrent")
    say("OK setCategory (409 unknown), setShareLimits, topPrio, 405 for GET of an action")


def delete(c, args):
    _, h, content = args.magnet
    c.ok("POST", "torrents/delete", data={"hashes": h, "deleteFiles": "true"})
    wait_until("the torrent gone", 20, lambda: info_of(c, h) is None)
    path = os.path.join(args.save, os.path.basename(content))
    wait_until("its file deleted", 20, lambda: not os.path.exists(path))
    c.ok("POST", "auth/logout")
    code, _ = c.call("GET", "torrents/info")
    check_eq(code, 403, "torrents/info after logout")
    say("OK delete with deleteFiles, logout")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--url", "--user", "--password", "--save"):
        ap.add_argument(name, required=True)
    ap.add_argument("--magnet", required=True, type=lambda s: s.rsplit(":", 2))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        c = Curl(args.url, os.path.join(tmp, "cookies"))
        version, prefs = login(c, args)
        categories(c, args)
        add_and_complete(c, args, version)
        manage(c, args, prefs)
        delete(c, args)
    say("PASS")


if __name__ == "__main__":
    main()
