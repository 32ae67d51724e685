#!/usr/bin/env python3
"""A test VNC viewer: speaks RFB 3.8 with the server at vnc://HOST:PORT,
asks for one full framebuffer update and reports what it saw as JSON in
$RFB_REPORT. With RFB_CONNECTIONS=N it first opens N-1 extra connections
at once (several connections through the tunnel), then reconnects."""
import json
import os
import socket
import struct
import sys


def connect(host, port):
    s = socket.create_connection((host, port), timeout=20)
    return s


def recv(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise SystemExit("server closed the connection")
        data += chunk
    return data


def session(host, port):
    s = connect(host, port)
    banner = recv(s, 12)
    s.sendall(b"RFB 003.008\n")
    count = recv(s, 1)[0]
    types = recv(s, count)
    if 1 not in types:
        raise SystemExit(f"no 'None' security type: {list(types)}")
    s.sendall(b"\x01")
    if struct.unpack(">I", recv(s, 4))[0] != 0:
        raise SystemExit("security handshake failed")
    s.sendall(b"\x01")  # ClientInit: shared
    width, height = struct.unpack(">HH", recv(s, 4))
    bpp, depth, big_endian, true_colour, rmax, gmax, bmax, rshift, gshift, bshift = struct.unpack(
        ">BBBBHHHBBB", recv(s, 13))
    recv(s, 3)
    name = recv(s, struct.unpack(">I", recv(s, 4))[0])
    s.sendall(struct.pack(">BxHi", 2, 1, 0))  # SetEncodings: Raw only
    s.sendall(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
    while True:
        kind = recv(s, 1)[0]
        if kind == 0:
            break
        if kind == 2:  # Bell
            continue
        raise SystemExit(f"unexpected server message {kind}")
    recv(s, 1)
    rects = struct.unpack(">H", recv(s, 2))[0]
    x, y, w, h, encoding = struct.unpack(">HHHHi", recv(s, 12))
    size = bpp // 8
    pixels = recv(s, w * h * size)
    red = 0
    order = "big" if big_endian else "little"
    for i in range(0, len(pixels), size * 97):  # a sample of the pixels
        value = int.from_bytes(pixels[i:i + size], order)
        r, g, b = (value >> rshift) & rmax, (value >> gshift) & gmax, (value >> bshift) & bmax
        if r == rmax and g == 0 and b == 0:
            red += 1
    s.close()
    return {"banner": banner.decode(), "width": width, "height": height, "name": name.decode(),
            "rects": rects, "encoding": encoding, "rect": [x, y, w, h],
            "red_fraction": red / max(1, len(range(0, len(pixels), size * 97)))}


def main():
    address = sys.argv[1]
    if not address.startswith("vnc://"):
        raise SystemExit(f"expected vnc://HOST:PORT, got {sys.argv[1:]}")
    host, port = address[len("vnc://"):].rsplit(":", 1)
    extra = int(os.environ.get("RFB_CONNECTIONS", "1")) - 1
    held = [connect(host, int(port)) for _ in range(extra)]
    banners = [recv(s, 12).decode() for s in held]
    for s in held:
        s.close()
    report = session(host, int(port))
    report["extra_banners"] = banners
    report["argv"] = sys.argv[1:]
    with open(os.environ["RFB_REPORT"], "w") as f:
        json.dump(report, f)


main()
