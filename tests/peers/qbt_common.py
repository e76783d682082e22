"""Shared helpers of the qBittorrent Web API flows (tests/peers/qbt_*.py): failing with a clear
message, polling, the state strings of qBittorrent 4.x and 5.x, comparing downloaded content.

Every flow only ever talks to the server URL it is given (127.0.0.1) and exits non-zero with a
`FAIL ...` line on the first mismatch.
"""

import filecmp
import os
import sys
import time

# qBittorrent 5 renamed paused* to stopped*; the flows accept both (4.5 is the reference here).
PAUSED = {"pausedDL", "pausedUP", "stoppedDL", "stoppedUP"}
COMPLETE = {"uploading", "stalledUP", "pausedUP", "stoppedUP", "queuedUP", "forcedUP",
            "checkingUP"}
DOWNLOADING = {"downloading", "stalledDL", "metaDL", "forcedDL", "forcedMetaDL", "queuedDL",
               "checkingDL"}
ALL_STATES = PAUSED | COMPLETE | DOWNLOADING | {
    "error", "missingFiles", "checkingResumeData", "moving", "unknown", "allocating"}


def say(msg):
    sys.stdout.write(msg + "\n")
    sys.stdout.flush()


def fail(msg):
    say("FAIL " + msg)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)


def check_eq(got, want, what):
    if got != want:
        fail("%s: got %r, want %r" % (what, got, want))


def wait_until(what, timeout, fn, every=0.25):
    """Calls fn() until it returns a truthy value (returned); fails after timeout seconds
    with the last value fn returned in the message."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fn()
        if last:
            return last
        if time.monotonic() >= deadline:
            fail("no %s after %.0fs (last: %r)" % (what, timeout, last))
        time.sleep(every)


def api_version_at_least(version, want):
    def parts(v):
        return tuple(int(p) for p in v.split(".") if p.isdigit())
    return parts(version) >= parts(want)


def same_content(downloaded, original):
    """Whether the file or tree `downloaded` equals `original` byte for byte; else the reason."""
    if os.path.isfile(original):
        if not os.path.isfile(downloaded):
            return "%s is missing" % downloaded
        if not filecmp.cmp(downloaded, original, shallow=False):
            return "%s differs from %s" % (downloaded, original)
        return None
    for root, _dirs, files in os.walk(original):
        for f in files:
            rel = os.path.relpath(os.path.join(root, f), original)
            why = same_content(os.path.join(downloaded, rel), os.path.join(original, rel))
            if why:
                return why
    return None


def norm_path(p):
    return os.path.normpath(p) if p else p


def tags_of(t):
    """A torrents/info entry's tags as a set (qBittorrent joins them with ", ")."""
    return {x.strip() for x in (t.get("tags") or "").split(",") if x.strip()}
