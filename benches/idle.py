#!/usr/bin/env python3
"""Memory per idle connection: what a worker holds for each connection that
waits (for its next request, for the rest of its head, for a body).

    python3 benches/idle.py [--connections 1000] [--rounds 3] [--binary target/release/rwsgi]

For each kind of waiting connection it starts rwsgi (one worker, one
thread: the hello app on an HTTP, a uwsgi and a FastCGI socket), opens N
connections of that kind, waits until the worker has read what they sent,
and reads the worker's RSS (/proc/PID/status VmRSS) before and after. The
difference divided by N is the user-space memory one such connection costs
(kernel socket buffers are not in RSS). Each kind is measured `--rounds`
times; the median is reported, per connection and per 1,000. Standard
library only.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_kib(pid: int) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB", text, re.M).group(1))


def uwsgi_header_only() -> bytes:
    # modifier1 0, a datasize of 100, modifier2 0: the vars never come.
    return struct.pack("<BHB", 0, 100, 0)


def fastcgi_begin_only() -> bytes:
    # FCGI_BEGIN_REQUEST, id 1, role responder, keep-conn: then nothing.
    content = struct.pack(">HB5x", 1, 1)
    return struct.pack(">BBHHBx", 1, 1, 1, len(content), 0) + content


KINDS = {
    # kind: (protocol, bytes sent, whether a response is read first)
    "idle keep-alive (HTTP)": ("http", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True),
    "partial head (HTTP)": ("http", b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow:", False),
    # Within post-buffering: read ahead, before the app is called.
    "stalled body (HTTP)": (
        "http",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\n" + b"x" * 100,
        False,
    ),
    "uwsgi header only": ("uwsgi", uwsgi_header_only(), False),
    "FastCGI BEGIN_REQUEST only": ("fastcgi", fastcgi_begin_only(), False),
}


def start(binary: str, ports: dict[str, int]) -> subprocess.Popen:
    app = ROOT / "examples/hello/app.py"
    cmd = [
        binary,
        "--http-socket", f"{HOST}:{ports['http']}",
        "--socket", f"{HOST}:{ports['uwsgi']}",
        "--fastcgi-socket", f"{HOST}:{ports['fastcgi']}",
        "--wsgi-file", str(app),
        "--disable-logging",
        "--socket-timeout", "120",
        "--http-keepalive-timeout", "120",
    ]
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection((HOST, ports["http"]), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit("rwsgi did not start")


def measure(binary: str, kind: str, n: int) -> float:
    protocol, payload, read_first = KINDS[kind]
    ports = {p: free_port() for p in ("http", "uwsgi", "fastcgi")}
    proc = start(binary, ports)
    conns = []
    try:
        # Warm up: a few requests so first-use allocations are not counted.
        for _ in range(20):
            with socket.create_connection((HOST, ports["http"])) as s:
                s.sendall(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
                while s.recv(65536):
                    pass
        time.sleep(0.3)
        before = rss_kib(proc.pid)
        for _ in range(n):
            s = socket.create_connection((HOST, ports[protocol]))
            s.sendall(payload)
            if read_first:
                got = b""
                while b"Hello" not in got:
                    got += s.recv(65536)
            conns.append(s)
        # Let the worker read what they sent.
        time.sleep(1.0)
        after = rss_kib(proc.pid)
        return (after - before) / n
    finally:
        for s in conns:
            s.close()
        proc.terminate()
        proc.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--binary", default=str(ROOT / "target/release/rwsgi"))
    parser.add_argument("--kinds", default=",".join(KINDS), help="comma-separated, from: " + ", ".join(KINDS))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.connections + 64 > hard:
        raise SystemExit(f"--connections {args.connections} needs more descriptors than ulimit -Hn ({hard})")
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    print(f"user-space memory per waiting connection ({args.connections} connections, "
          f"median of {args.rounds} rounds; rwsgi {args.binary})\n")
    print("| connection | KiB per connection | MiB per 1,000 |")
    print("| --- | --- | --- |")
    for kind in args.kinds.split(","):
        per = statistics.median(measure(args.binary, kind, args.connections) for _ in range(args.rounds))
        print(f"| {kind} | {per:.2f} | {per * 1000 / 1024:.1f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
