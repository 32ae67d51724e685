#!/usr/bin/env python3
"""A stand-in VNC viewer for bench/launch.sh: notes when the RFB banner
arrives, then pulls $BENCH_MIB MiB through the tunnel and notes the rate
and the peak RSS of its parent (olive2022 launch, for ours)."""
import os
import socket
import sys
import time

arg = sys.argv[-1]
if arg.startswith("vnc://"):
    host, port = arg[len("vnc://"):].rsplit(":", 1)
elif "::" in arg:
    host, port = arg.split("::", 1)
else:
    host, display = arg.rsplit(":", 1)
    port = 5900 + int(display)
s = socket.create_connection((host, int(port)), timeout=30)
banner = b""
while len(banner) < 12:
    banner += s.recv(12 - len(banner))
banner_at = time.time()
mib = int(os.environ.get("BENCH_MIB", "256"))
if mib == 0:  # a real VNC server: the banner is all we wanted
    with open(os.environ["BENCH_OUT"], "w") as out:
        out.write(f"{banner_at} 0 0 0\n")
    sys.exit(0)
s.sendall(b"BULK %d\n" % mib)
start, total = time.time(), 0
while True:
    chunk = s.recv(1 << 20)
    if not chunk:
        break
    total += len(chunk)
seconds = time.time() - start
hwm = "0"
try:
    with open(f"/proc/{os.getppid()}/status") as status:
        hwm = next(line.split()[1] for line in status if line.startswith("VmHWM"))
except (OSError, StopIteration):
    pass
with open(os.environ["BENCH_OUT"], "w") as out:
    out.write(f"{banner_at} {total / seconds / 2**20:.1f} {hwm} {total}\n")
