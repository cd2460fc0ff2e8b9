#!/usr/bin/env python3
"""Instructions per request: rwsgi's own cost, counted rather than timed.

    python3 benches/instructions.py [--binary target/release/rwsgi]
        [--protocols http,uwsgi] [--requests 5000] [--threads 1] [--top 15]

On a shared machine wall-clock figures move by 10 % between runs, more than
most single changes to the request path are worth. This runs the server
under valgrind's callgrind, which counts the instructions every function
executes (user space only: the kernel's side of each syscall is not in
it), drives it with hello-world requests, and reports the count per
request, which does not depend on what else the machine is doing. The
server runs twice, for N/5 and for N requests; the difference divided by
the difference in requests is the cost of a request, without start-up.

- `http`: `--http-socket`, 8 keep-alive connections, one request at a
  time each, as wrk sends them.
- `uwsgi`: `--socket` on a unix socket, a connection per request with the
  variables nginx's stock `uwsgi_params` sends, as `uwsgi_pass` does.

The server runs with `PYTHONHASHSEED=0`: with the hash of `str` seeded at
random, how often the environ's dict probes collide changes from run to
run, and with it a few hundred instructions of the count.

Read the figures as a count, not a time: callgrind counts each step of a
`rep movs`/`rep stos` (large `memcpy`, `memset`) as an instruction, which
the CPU does far faster, and it does not see cache misses or the kernel.
Compare counts of two builds; confirm what matters with `load.py`.

Needs valgrind (`apt-get install -y valgrind`). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
APP = ROOT / "benches" / "apps" / "hello.py"
CONNECTIONS = 8

HTTP_REQUEST = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: wrk\r\n"
                b"Accept: */*\r\n\r\n")

# What nginx's stock uwsgi_params sends for that request, plus its headers.
UWSGI_VARS = [
    ("QUERY_STRING", ""), ("REQUEST_METHOD", "GET"), ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""), ("REQUEST_URI", "/"), ("PATH_INFO", "/"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"), ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "http"), ("HTTPS", ""), ("REMOTE_ADDR", "127.0.0.1"),
    ("REMOTE_PORT", "51234"), ("SERVER_PORT", "8080"), ("SERVER_NAME", "localhost"),
    ("HTTP_HOST", "127.0.0.1:8080"), ("HTTP_USER_AGENT", "wrk"), ("HTTP_ACCEPT", "*/*"),
]


def uwsgi_packet() -> bytes:
    body = b"".join(struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
                    for k, v in UWSGI_VARS)
    return struct.pack("<BHB", 0, len(body), 0) + body


def read_http_response(sock: socket.socket, buf: bytes) -> bytes:
    """Reads one response with a Content-Length; returns what follows it."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", buf[:end + 2]).group(1))
            if len(buf) >= end + 4 + length:
                return buf[end + 4 + length:]
        data = sock.recv(65536)
        if not data:
            raise SystemExit("the server closed a keep-alive connection")
        buf += data


def http_requests(address: str, count: int) -> None:
    """`count` requests, one after the other, on one keep-alive connection."""
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        buf = b""
        for _ in range(count):
            sock.sendall(HTTP_REQUEST)
            buf = read_http_response(sock, buf)


def uwsgi_requests(path: str, count: int) -> None:
    """`count` requests, one after the other, a connection each."""
    packet = uwsgi_packet()
    for _ in range(count):
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(path)
            sock.sendall(packet)
            answer = b""
            while data := sock.recv(65536):
                answer += data
            if not answer.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"unexpected uwsgi answer: {answer[:80]!r}")


SEND = {"http": http_requests, "uwsgi": uwsgi_requests}


def drive(protocol: str, address: str, requests: int) -> None:
    """`requests` over CONNECTIONS clients at once; the first failure is raised."""
    failures: list[BaseException] = []

    def client() -> None:
        try:
            SEND[protocol](address, requests // CONNECTIONS)
        except Exception as err:  # noqa: BLE001 - reported below
            failures.append(err)

    threads = [threading.Thread(target=client) for _ in range(CONNECTIONS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"{protocol}: {failures[0]!r}")


def reachable(protocol: str, address: str) -> bool:
    try:
        SEND[protocol](address, 1)
        return True
    except (OSError, RuntimeError):
        return False


def counted_run(binary: str, protocol: str, threads: int, requests: int,
                tmp: Path) -> tuple[int, Path]:
    """Starts the server under callgrind, serves `requests`, stops it;
    its total instruction count and the profile's path."""
    if protocol == "http":
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            address = f"127.0.0.1:{probe.getsockname()[1]}"
        listen = ["--http-socket", address]
    else:
        address = str(tmp / f"uwsgi-{requests}.sock")
        listen = ["--socket", address]
    profile = tmp / f"callgrind-{protocol}-{requests}.out"
    log = open(tmp / f"server-{protocol}-{requests}.log", "wb")
    server = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={profile}", binary, *listen,
         "--wsgi-file", str(APP), "--threads", str(threads), "--disable-logging"],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONHASHSEED": "0"})
    try:
        deadline = time.monotonic() + 120
        while not reachable(protocol, address):
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"rwsgi did not start under valgrind: see {log.name}")
            time.sleep(0.5)
        drive(protocol, address, requests)
    finally:
        server.send_signal(2)
        server.wait(timeout=120)
    text = profile.read_text(errors="replace")
    total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    if not total:
        raise SystemExit(f"no instruction count in {profile}")
    return int(total.group(1)), profile


def exclusive_by_function(profile: Path) -> dict[str, int]:
    out = subprocess.run(["callgrind_annotate", "--threshold=100", str(profile)],
                         capture_output=True, text=True, check=True).stdout
    # The table after the "file:function" header, up to the blank line that
    # ends it (the source annotations follow). Code inlined from several
    # files is listed once per file: summed by function.
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.rstrip().endswith("file:function")) + 2
    counts: dict[str, int] = {}
    for line in lines[start:]:
        match = re.match(r"\s*([\d,]+) \([ \d.]+%\)\s+(\S.*?)(?: \[[^\]]*\])?$", line)
        if not match:
            break
        name = match.group(2).split(":", 1)[-1]
        counts[name] = counts.get(name, 0) + int(match.group(1).replace(",", ""))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--binary", default=str(ROOT / "target" / "release" / "rwsgi"))
    parser.add_argument("--protocols", default="http,uwsgi")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=15,
                        help="functions listed by their own instructions per request")
    args = parser.parse_args()
    few, many = args.requests // 5, args.requests
    print(f"{args.binary}, --threads {args.threads}, hello world "
          f"({few} and {many} requests, the difference counted)")
    with tempfile.TemporaryDirectory(prefix="rwsgi-instructions-") as tmp:
        for protocol in args.protocols.split(","):
            low, low_profile = counted_run(args.binary, protocol, args.threads, few, Path(tmp))
            high, high_profile = counted_run(args.binary, protocol, args.threads, many, Path(tmp))
            per_request = (high - low) / (many - few)
            print(f"\n{protocol}: {per_request:,.0f} instructions per request")
            before, after = exclusive_by_function(low_profile), exclusive_by_function(high_profile)
            own = {name: (count - before.get(name, 0)) / (many - few)
                   for name, count in after.items()}
            for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"  {count:8,.0f}  {name[:110]}")


if __name__ == "__main__":
    sys.exit(main())
