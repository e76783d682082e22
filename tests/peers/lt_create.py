#!/usr/bin/env python3
"""Makes a v1 .torrent with libtorrent, with BEP 47 pad files, for loopback interop tests.

    lt_create.py --content PATH --out T.torrent --piece-size BYTES [--web-seed URL ...]

libtorrent's `canonical_files` puts a pad file (attr "p", path .pad/<length>) after every file
that does not end on a piece boundary, so every file starts a piece. --web-seed adds a url-list
entry. No tracker. Prints `INFOHASH <hex>` on success.
"""

import argparse
import os
import warnings

import libtorrent as lt

warnings.simplefilter("ignore", DeprecationWarning)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--content", required=True, help="file or directory")
    ap.add_argument("--out", required=True, help=".torrent to write")
    ap.add_argument("--piece-size", type=int, required=True)
    ap.add_argument("--web-seed", action="append", default=[])
    args = ap.parse_args()

    content = os.path.abspath(args.content)
    fs = lt.file_storage()
    lt.add_files(fs, content)
    flags = lt.create_torrent.v1_only | lt.create_torrent.canonical_files
    ct = lt.create_torrent(fs, args.piece_size, flags=flags)
    for url in args.web_seed:
        ct.add_url_seed(url)
    lt.set_piece_hashes(ct, os.path.dirname(content))
    data = lt.bencode(ct.generate())
    with open(args.out, "wb") as f:
        f.write(data)
    print("INFOHASH %s" % lt.torrent_info(args.out).info_hash())


if __name__ == "__main__":
    main()
