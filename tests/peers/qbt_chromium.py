#!/usr/bin/env python3
"""Headless Chromium drives a Web API server's page (loopback only), over the DevTools protocol.

    qbt_chromium.py --url http://127.0.0.1:P --user U --password PW --save DIR --chromium BIN
        --listed FILE:HEX:CONTENT     added first through the API (.torrent); the page must list it
        --magnet URI:HEX:CONTENT      typed into the page; its x.pe is a seeder of CONTENT

The page's elements (agreed with the daemon's page): #login-user, #login-pass, #login-button
(shown when a login is needed), #torrent-list with a `tr[data-hash=HASH]` per torrent,
#magnet-input and #add-button (--no-login: the page must not ask for a login). Chromium runs with a fresh profile, no sandbox (root), and no
background networking; it is stopped at the end. The flow: add the listed torrent through the
API; load the page, log in through its form if it shows one; wait for the listed torrent's row;
click #magnet-input, type the magnet, click #add-button (real mouse events); then through the API
the magnet torrent is there and downloads to completion from the seeder, and the page lists it.
Prints `OK ...` lines, `PASS` at the end; `FAIL ...` and exit 1 on any mismatch.
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import subprocess
import tempfile
import urllib.request

import qbittorrentapi
import websocket

from qbt_common import COMPLETE, check, check_eq, fail, same_content, say, wait_until


def die_with_parent():
    """Chromium gets SIGKILL if this script dies (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(1, signal.SIGKILL)


class Browser:
    def __init__(self, binary):
        self.profile = tempfile.mkdtemp(prefix="bt-chromium-")
        self.log = open(os.path.join(self.profile, "chromium.log"), "w")
        self.proc = subprocess.Popen([
            binary, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
            "--user-data-dir=" + self.profile, "--no-first-run", "--no-default-browser-check",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--disable-extensions", "--disable-default-apps", "--metrics-recording-only",
            "--window-size=1200,900", "about:blank",
        ], stdin=subprocess.DEVNULL, stdout=self.log, stderr=self.log,
            preexec_fn=die_with_parent)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        wait_until("Chromium's DevToolsActivePort", 30, lambda: self.alive()
                   and os.path.exists(port_file) and open(port_file).read().split("\n")[0])
        port = int(open(port_file).read().split("\n")[0])
        with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % port, timeout=10) as r:
            targets = json.load(r)
        pages = [t for t in targets if t.get("type") == "page"]
        check(pages, "no page target in %r" % targets)
        self.ws = websocket.create_connection(pages[0]["webSocketDebuggerUrl"], timeout=30,
                                              suppress_origin=True)
        self.next_id = 0

    def alive(self):
        if self.proc.poll() is not None:
            self.log.flush()
            fail("chromium exited (%s): %s" % (self.proc.returncode, self.tail()))
        return True

    def tail(self):
        with open(os.path.join(self.profile, "chromium.log")) as f:
            return f.read()[-2000:]

    def send(self, method, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    fail("%s: %r" % (method, msg["error"]))
                return msg.get("result", {})

    def eval(self, expr):
        res = self.send("Runtime.evaluate", expression=expr, returnByValue=True,
                        awaitPromise=True)
        if "exceptionDetails" in res:
            fail("page script %r: %r" % (expr, res["exceptionDetails"]))
        return res.get("result", {}).get("value")

    def visible(self, selector):
        return self.eval("(() => { const e = document.querySelector(%s); "
                         "return !!e && e.offsetParent !== null; })()" % json.dumps(selector))

    def click(self, selector):
        """A real left click (mouse pressed and released) at the element's centre."""
        rect = self.eval("(() => { const e = document.querySelector(%s); if (!e) return null; "
                         "e.scrollIntoView(); const r = e.getBoundingClientRect(); "
                         "return [r.x + r.width / 2, r.y + r.height / 2]; })()"
                         % json.dumps(selector))
        check(rect, "no %s on the page to click" % selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", type=kind, x=rect[0], y=rect[1],
                      button="left", clickCount=1)

    def type_into(self, selector, text):
        self.click(selector)
        check(self.eval("document.activeElement === document.querySelector(%s)"
                        % json.dumps(selector)), "clicking %s did not focus it" % selector)
        self.send("Input.insertText", text=text)

    def close(self):
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001 (closing anyway)
            pass
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


def info(client, h):
    found = [t for t in client.torrents_info(torrent_hashes=h) if t["hash"] == h]
    return found[0] if found else None


def drive(b, args, client):
    listed, magnet = args.listed[1], args.magnet
    b.send("Page.enable")
    b.send("Page.navigate", url=args.url + "/")
    row = 'tr[data-hash="%s"]' % listed
    shown = wait_until("the page showing its list or its login form", 30,
                       lambda: b.alive() and ("list" if b.eval(
                           "!!document.querySelector(%s)" % json.dumps("#torrent-list " + row))
                           else "login" if b.visible("#login-user") else False))
    if shown == "login" and args.no_login:
        fail("the page asks for a login from 127.0.0.1 under --bypass-local-auth")
    if shown == "login":
        b.type_into("#login-user", args.user)
        b.type_into("#login-pass", args.password)
        b.click("#login-button")
        say("OK logged in through the page's form")
    wait_until("the row of the listed torrent", 30, lambda: b.alive() and b.eval(
        "!!document.querySelector(%s)" % json.dumps("#torrent-list " + row)))
    say("OK #torrent-list shows %s" % listed)
    b.type_into("#magnet-input", magnet[0])
    b.click("#add-button")
    say("OK typed the magnet and clicked #add-button")
    t = wait_until("the magnet's torrent in torrents/info", 20, lambda: info(client, magnet[1]))
    say("OK added through the page: %s, state %s" % (t["hash"], t["state"]))

    def complete():
        t = info(client, magnet[1])
        return t if t and t["progress"] == 1 and t["state"] in COMPLETE else False
    t = wait_until("the magnet's download from the seeder", 60, complete)
    check_eq(t["downloaded"] >= t["size"] or t["amount_left"] == 0, True, "downloaded bytes")
    content = magnet[2]
    why = same_content(os.path.join(t["save_path"], os.path.basename(content)), content)
    check(why is None, "content of the page's download: %s" % why)
    wait_until("the page listing the new torrent", 20, lambda: b.eval(
        "!!document.querySelector(%s)" % json.dumps('#torrent-list tr[data-hash="%s"]'
                                                    % magnet[1])))
    say("OK downloaded from the seeder; the page lists it")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for name in ("--url", "--user", "--password", "--save", "--chromium"):
        ap.add_argument(name, required=True)
    split = lambda s: s.rsplit(":", 2)  # noqa: E731
    ap.add_argument("--listed", required=True, type=split)
    ap.add_argument("--magnet", required=True, type=split)
    ap.add_argument("--no-login", action="store_true",
                    help="the page must show the list without a login (bypass on loopback)")
    args = ap.parse_args()
    client = qbittorrentapi.Client(host=args.url, username=args.user, password=args.password,
                                   REQUESTS_ARGS={"timeout": 15})
    client.auth_log_in()
    with open(args.listed[0], "rb") as f:
        check_eq(client.torrents_add(torrent_files=f.read(), save_path=args.save), "Ok.",
                 "torrents/add of the listed torrent")
    wait_until("the listed torrent in torrents/info", 10, lambda: info(client, args.listed[1]))
    b = Browser(args.chromium)
    try:
        drive(b, args, client)
    finally:
        b.close()
    say("PASS")


if __name__ == "__main__":
    main()
