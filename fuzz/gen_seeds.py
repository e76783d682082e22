#!/usr/bin/env python3
"""Writes the handcrafted seed inputs of the wire, tracker, resume, uTP and KRPC targets
into corpus/<target>/. Run from fuzz/: python3 gen_seeds.py. (The metainfo
seeds are copies of ../torrents/*.torrent and ../tests/hostile/*.torrent.)"""
import os
import struct


def msg(msg_id=None, payload=b""):
    if msg_id is None:
        return struct.pack(">I", 0)
    return struct.pack(">IB", 1 + len(payload), msg_id) + payload


def handshake(reserved=b"\0" * 8, info_hash=b"\xab" * 20, peer_id=b"-BT0001-abcdefghijkl"):
    return b"\x13BitTorrent protocol" + reserved + info_hash + peer_id


def bstr(b):
    return str(len(b)).encode() + b":" + b


def write(target, name, data):
    os.makedirs(f"corpus/{target}", exist_ok=True)
    with open(f"corpus/{target}/{name}", "wb") as f:
        f.write(data)


block = struct.pack(">III", 3, 16384, 16384)
stream = b"".join([
    msg(), msg(0), msg(1), msg(2), msg(3), msg(4, struct.pack(">I", 7)),
    msg(5, b"\xff\xfe\x80"), msg(6, block), msg(7, struct.pack(">II", 3, 0) + b"data" * 8),
    msg(8, block), msg(9, struct.pack(">H", 6881)), msg(20, b"\x00d1:mde"),
    # BEP 6: suggest, have-all, have-none, reject-request, allowed-fast.
    msg(13, struct.pack(">I", 2)), msg(14), msg(15), msg(16, block), msg(17, struct.pack(">I", 5)),
])

# wire_messages: [chunk control, cap control, stream]
write("wire_messages", "all-whole", b"\x00\x00" + stream)
write("wire_messages", "all-bytewise", b"\x01\x00" + stream)
write("wire_messages", "all-chunks7", b"\x07\x00" + stream)
write("wire_messages", "small-cap", b"\x05\x90" + stream)
write("wire_messages", "partial-tail", b"\x03\x00" + stream + msg(7, b"\0" * 8)[:-3])
write("wire_messages", "bad-have-len", b"\x00\x00" + msg(1) + struct.pack(">IB", 4, 4) + b"\0\0\0")
write("wire_messages", "too-long", b"\x00\x00" + struct.pack(">I", 0x7FFFFFFF) + b"\x07")

# wire_handshake: [chunk control, stream]
write("wire_handshake", "bare", b"\x00" + handshake())
write("wire_handshake", "bytewise", b"\x01" + handshake())
write("wire_handshake", "ext-bits-then-messages", b"\x0b" + handshake(reserved=b"\0\0\0\0\0\x10\0\x05") + stream)
write("wire_handshake", "early-bitfield", b"\x45" + handshake() + msg(5, b"\xf0") + msg(1))
write("wire_handshake", "bad-protocol", b"\x04" + b"\x13BitTorrent protocoX" + b"\0" * 48)
write("wire_handshake", "short", b"\x00" + handshake()[:40])

# tracker_response
peers = bytes([10, 0, 0, 1, 0x1a, 0xe1, 192, 168, 1, 2, 0x1a, 0xe2])
peers6 = bytes(15) + b"\x01" + b"\x1a\xe1"
write("tracker_response", "compact",
      b"d8:completei5e10:incompletei3e8:intervali1800e12:min intervali900e5:peers" + bstr(peers) + b"e")
write("tracker_response", "compact-v6",
      b"d8:intervali60e5:peers" + bstr(peers) + b"6:peers6" + bstr(peers6) + b"10:tracker id3:abce")
def dict_peer(ip, port, peer_id=b""):
    out = b"d2:ip" + bstr(ip)
    if peer_id:
        out += b"7:peer id" + bstr(peer_id)
    return out + b"4:porti%dee" % port


write("tracker_response", "dict-peers",
      b"d8:intervali900e5:peersl" + dict_peer(b"10.0.0.1", 6881, b"-XX0001-abcdefghijkl")
      + dict_peer(b"[::1]", 51413) + dict_peer(b"example.com", 80) + dict_peer(b"10.0.0.1", 6881) + b"ee")
write("tracker_response", "failure", b"d14:failure reason17:torrent not founde")
write("tracker_response", "warning", b"d15:warning message4:slow8:intervali-5e5:peers0:e")

# resume: records as ResumeRecord::encode writes them (version 2: seven integers per file, or
# an empty list for a missing file; a lease; an optional part file stamp)
def stamp(f):
    return b"le" if f is None else b"l" + b"".join(b"i%de" % v for v in f) + b"e"


def resume(files, info_hash, count, pieces, lease=(1700000002, 0), parts=None, extra=b""):
    out = b"d5:filesl" + b"".join(stamp(f) for f in files) + b"e"
    out += b"9:info-hash" + bstr(info_hash) + b"5:leaseli%dei%dee" % lease
    if parts is not None:
        out += b"5:parts" + stamp(parts)
    out += extra + b"11:piece-counti%de" % count
    out += b"6:pieces" + bstr(pieces) + b"7:versioni2ee"
    return out


write("resume", "empty", resume([(1000, 1700000000, 5, 1700000000, 6, 2049, 12)], b"\x11" * 20, 10, b"\x00\x00"))
write("resume", "partial", resume([(5, 6, 7, 8, 9, 10, 11), None, (65536, -1, 999999999, 0, 0, -1, -2)],
                                  b"\xab" * 20, 9, b"\xa5\x80", parts=(300, 1, 2, 3, 4, 5, 6)))
write("resume", "full", resume([(16384 * 16, 1, 2, 3, 4, 5, 6)], b"h" * 20, 16, b"\xff\xff"))
write("resume", "unknown-key", resume([(1, 2, 3, 4, 5, 6, 7)], b"\x00" * 20, 1, b"\x80",
                                      extra=b"8:pa-extrali1ee"))


def utp(kind, ext=0, tail=b"", conn=0x1234, seq=7, ack=6):
    return struct.pack(">BBHIIIHH", kind << 4 | 1, ext, conn, 1000000, 250, 1 << 20, seq, ack) + tail


write("utp_packet", "syn", utp(4))
write("utp_packet", "data", utp(0, tail=b"\x00\x00\x00\x0d\x07" + b"x" * 40))
write("utp_packet", "state-sack", utp(2, ext=1, tail=b"\x00\x04\xff\x00\x00\x01"))
write("utp_packet", "two-extensions", utp(0, ext=1, tail=b"\x02\x04\x01\x02\x03\x04\x00\x08" + b"\x00" * 8))
write("utp_packet", "fin", utp(1))
write("utp_packet", "reset", utp(3))
write("utp_packet", "krpc-ping", b"d1:ad2:id20:abcdefghij0123456789e1:q4:ping1:t2:aa1:y1:qe")
write("utp_packet", "truncated-extension", utp(2, ext=1, tail=b"\x00\x08\x01"))

NODE_ID = b"abcdefghij0123456789"
write("krpc", "ping", b"d1:ad2:id20:" + NODE_ID + b"e1:q4:ping1:t2:aa1:y1:qe")
write("krpc", "ping-read-only", b"d1:ad2:id20:" + NODE_ID + b"e1:q4:ping2:roi1e1:t2:aa1:y1:qe")
write("krpc", "find-node-want", b"d1:ad2:id20:" + NODE_ID + b"6:target20:" + NODE_ID
      + b"4:wantl2:n42:n6ee1:q9:find_node1:t2:aa1:y1:qe")
write("krpc", "get-peers", b"d1:ad2:id20:" + NODE_ID + b"9:info_hash20:" + NODE_ID
      + b"4:wantl2:n6ee1:q9:get_peers1:t2:aa1:y1:qe")
write("krpc", "announce-peer", b"d1:ad2:id20:" + NODE_ID + b"12:implied_porti1e9:info_hash20:" + NODE_ID
      + b"4:porti6881e5:token8:aoeusnthe1:q13:announce_peer1:t2:aa1:y1:qe")
v6 = bytes(15) + b"\x01"
write("krpc", "response-nodes6-values", b"d2:ip6:\x7c\x1f\x4b\x15\x1a\xe11:rd2:id20:" + NODE_ID
      + b"5:nodes26:" + NODE_ID + b"\x7f\x00\x00\x01\x1a\xe1"
      + b"6:nodes638:" + NODE_ID + v6 + b"\x1a\xe1"
      + b"5:token4:tok16:valuesl6:\x7f\x00\x00\x01\x1a\xe118:" + v6 + b"\x1a\xe1ee1:t2:aa1:y1:re")
write("krpc", "error", b"d1:eli201e23:A Generic Error Ocurrede1:t2:aa1:y1:ee")
write("krpc", "unknown-method", b"d1:ad2:id20:" + NODE_ID + b"e1:q4:vote1:t2:xy1:y1:qe")

# webseed: [control byte] Content-Range value \n web seed URL \n info dictionary
info_multi = (b"d5:filesld6:lengthi10e4:pathl5:dir a6:b#?.txteed4:attr1:p6:lengthi6e4:pathl1:.eee"
              b"4:name4:mine12:piece lengthi16e6:pieces20:" + b"x" * 20 + b"e")
info_single = b"d6:lengthi99e4:name8:arch.iso12:piece lengthi16e6:pieces140:" + b"x" * 140 + b"e"
write("webseed", "multi", b"\x03bytes 0-9/10\nhttps://archive.org/download/\n" + info_multi)
write("webseed", "single-dir", b"\x01bytes 16-31/*\nhttp://127.0.0.1:8080/iso/\n" + info_single)
write("webseed", "single-file", b"\x00BYTES 0-98/99\nhttp://h/arch.iso\n" + info_single)
write("webseed", "relative", b"\x02bytes */99\n/8/items/\n" + info_multi)
write("webseed", "utf8-path", b"\x07bytes 1-1/2\nhttp://[::1]/x\n"
      b"d5:filesld6:lengthi1e4:pathl3:\xe9t\xe9e10:path.utf-8l5:\xc3\xa9t\xc3\xa9eee"
      b"4:name1:n12:piece lengthi16e6:pieces20:" + b"x" * 20 + b"e")
