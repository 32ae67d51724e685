#!/usr/bin/env python3
"""Reads one screen from an RFB 3.8 server at HOST PORT (security type
None, Raw encoding only) and prints a JSON report: the banner, the size,
how many distinct pixel values the screen has and the fraction of pixels
that differ from the most common one (the background)."""
import collections
import json
import socket
import struct
import sys


def recv(s, n):
    data = bytearray()
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("server closed the connection")
        data += chunk
    return bytes(data)


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    s = socket.create_connection((host, port), timeout=20)
    banner = recv(s, 12)
    s.sendall(b"RFB 003.008\n")
    count = recv(s, 1)[0]
    if count == 0:
        raise SystemExit("server refused: " + recv(s, struct.unpack(">I", recv(s, 4))[0]).decode())
    types = recv(s, count)
    if 1 not in types:
        raise SystemExit(f"no 'None' security type: {list(types)}")
    s.sendall(b"\x01")
    if struct.unpack(">I", recv(s, 4))[0] != 0:
        raise SystemExit("security handshake failed")
    s.sendall(b"\x01")  # ClientInit: shared
    width, height = struct.unpack(">HH", recv(s, 4))
    bpp = recv(s, 16)[0]
    name = recv(s, struct.unpack(">I", recv(s, 4))[0])
    s.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))  # full update
    while True:
        kind = recv(s, 1)[0]
        if kind == 0:
            break
        if kind == 2:  # Bell
            continue
        if kind == 1:  # SetColourMapEntries
            _, _, n = struct.unpack(">BHH", recv(s, 5))
            recv(s, 6 * n)
            continue
        raise SystemExit(f"unexpected server message {kind}")
    recv(s, 1)
    rects = struct.unpack(">H", recv(s, 2))[0]
    size = bpp // 8
    counts = collections.Counter()
    covered = 0
    for _ in range(rects):
        x, y, w, h, encoding = struct.unpack(">HHHHi", recv(s, 12))
        if encoding != 0:
            raise SystemExit(f"unexpected encoding {encoding}")
        pixels = recv(s, w * h * size)
        covered += w * h
        for i in range(0, len(pixels), size):
            counts[pixels[i:i + size]] += 1
    s.close()
    total = sum(counts.values())
    background = counts.most_common(1)[0][1] if counts else 0
    print(json.dumps({
        "banner": banner.decode(),
        "width": width,
        "height": height,
        "name": name.decode(errors="replace"),
        "rects": rects,
        "covered": covered,
        "distinct": len(counts),
        "foreground_fraction": (total - background) / max(1, total),
    }))


main()
