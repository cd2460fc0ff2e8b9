#!/usr/bin/env python3
"""Memory per worker, app preloaded in the master vs imported by each worker
(lazy-apps), on the Django example: what copy-on-write sharing saves, and
what uWSGI takes for the same.

    python3 benches/rss.py [--workers 4] [--venv .venv] [--binary target/release/rwsgi]
                           [--uwsgi benches/.venv/bin/uwsgi]

For each server and mode it starts the server with the same command line
(master + N workers, examples/django through benches/apps/django_collect.py),
sends a few requests to every worker, then reads /proc/PID/smaps_rollup of
each worker: RSS (counts shared pages in full, in every process) and PSS
(shared pages divided among the processes sharing them: what a worker
really costs). Then each worker runs one full `gc.collect()`, as every
long-running worker does sooner or later, and its PSS is read again. The master is
listed apart. uWSGI is the one `make bench` installs into benches/.venv
(built against the same Python); without it, only rwsgi is measured.
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import signal
import socket
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


def rollup_kib(pid: int) -> dict[str, int]:
    """Rss and Pss of a process, in KiB."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    return {key: int(re.search(rf"^{key}:\s+(\d+) kB", text, re.M).group(1))
            for key in ("Rss", "Pss")}


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return sorted(found)


def measure(binary: str, venv: str, workers: int, lazy: bool) -> dict:
    """Starts `binary` (rwsgi or uWSGI: the flags are the same) and reads
    its processes' memory once every worker has served."""
    port = free_port()
    cmd = [binary, "--http-socket", f"{HOST}:{port}", "--chdir", str(ROOT / "examples/django"),
           "--pythonpath", str(ROOT / "benches/apps"), "--module", "django_collect", "--home", venv, "--master", "--processes", str(workers),
           "--disable-logging"] + (["--lazy-apps"] if lazy else [])
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while len(children(proc.pid)) < workers or not ready(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"{binary} did not start: {log.read().decode(errors='replace')}")
            time.sleep(0.2)
        for _ in range(20 * workers):  # warm every worker (the kernel spreads the accepts)
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            conn.request("GET", "/")
            conn.getresponse().read()
            conn.close()
        time.sleep(0.5)
        workers = children(proc.pid)
        measured = {"master": rollup_kib(proc.pid), "workers": [rollup_kib(pid) for pid in workers]}
        collected: set[int] = set()
        while collected != set(workers):
            if time.monotonic() > deadline:
                raise SystemExit(f"{binary}: not every worker collected: {collected} of {workers}")
            conn = http.client.HTTPConnection(HOST, port, timeout=10)
            conn.request("GET", "/__collect__")
            collected.add(int(conn.getresponse().read()))
            conn.close()
        time.sleep(0.5)
        measured["collected"] = [rollup_kib(pid) for pid in workers]
        return measured
    finally:
        # SIGINT stops both (uWSGI 2.0 reloads on SIGTERM).
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)


def ready(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection(HOST, port, timeout=5)
        conn.request("GET", "/")
        conn.getresponse().read()
        return True
    except OSError:
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--venv", default=os.environ.get("RWSGI_TEST_VENV", str(ROOT / ".venv")),
                        help="a virtualenv with Django (default: $RWSGI_TEST_VENV or .venv)")
    release = ROOT / "target/release/rwsgi"
    parser.add_argument("--binary", default=str(release if release.exists()
                                                else ROOT / "target/debug/rwsgi"))
    parser.add_argument("--uwsgi", default=str(ROOT / "benches/.venv/bin/uwsgi"),
                        help="uWSGI to compare with (default: the one `make bench` installs)")
    args = parser.parse_args()
    servers = [("rwsgi", args.binary)]
    if Path(args.uwsgi).exists():
        servers.append(("uWSGI", args.uwsgi))
    else:
        print(f"({args.uwsgi} not found: run `make bench` once to install uWSGI; rwsgi only)")
    venv = os.path.abspath(args.venv)
    print(f"{', '.join(f'{name}: {path}' for name, path in servers)}; {args.workers} workers; "
          "examples/django; KiB per process")
    print("| server | mode | master RSS | master PSS | worker RSS (mean) | worker PSS (mean) "
          "| total PSS | worker PSS after a full collection (mean) |")
    print("|---|---|---|---|---|---|---|---|")
    for lazy in (False, True):
        for name, binary in servers:
            result = measure(binary, venv, args.workers, lazy)
            ws = result["workers"]
            mean = lambda key, ws=ws: sum(w[key] for w in ws) // max(len(ws), 1)  # noqa: E731
            total = result["master"]["Pss"] + sum(w["Pss"] for w in ws)
            collected = sum(w["Pss"] for w in result["collected"]) // max(len(ws), 1)
            mode = "lazy-apps" if lazy else "preload"
            print(f"| {name} | {mode} | {result['master']['Rss']} | {result['master']['Pss']} | "
                  f"{mean('Rss')} | {mean('Pss')} | {total} | {collected} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
