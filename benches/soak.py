#!/usr/bin/env python3
"""A soak run: rwsgi behind a real nginx on all three protocols, under a
mixed load, while it is reloaded, resized and has workers killed.

    python3 benches/soak.py [--duration 300] [--chaos-every 10] [--venv .venv]

rwsgi runs `--master --processes 2 --threads 2` with an HTTP, a uwsgi and a
FastCGI unix socket; nginx passes /h/ with proxy_pass (keep-alive), /u/
with uwsgi_pass and /f/ with fastcgi_pass (keep-alive, keep_conn). The app
(benches/apps/soak.py) answers hello world, 64 KiB, a 1 MiB upload hashed,
and a Flask route.

The load: client threads through nginx (hello, 64 KiB, 1 MiB uploads,
Flask, over the three protocols in turn, each response checked), slow
clients straight to rwsgi's HTTP socket (a head sent a few bytes at a
time), and clients that vanish halfway through a 1 MiB body. Meanwhile,
every --chaos-every seconds, in turn: SIGHUP (reload), SIGUSR2 (chain
reload), SIGTTIN (a worker more), SIGTTOU (one fewer), SIGKILL of a worker.

Report: requests sent, answered, failed. A failure is explained when the
request was in flight at a SIGKILL (its worker may have died with it), or
when nginx sent it, within 2 s of one, on a keep-alive connection to the
killed worker (nginx answers 502 and, for a POST, does not retry); any
other failure is a defect (exit status 1). RSS of each worker and the master,
and their open descriptors, sampled over the run; p50 and p99 latency.
Needs nginx (/usr/sbin/nginx or on PATH) and a virtualenv with Flask (make
venv). Standard library only.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import nginx_prologue

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
UPLOAD = bytes(random.Random(7).getrandbits(8) for _ in range(1 << 20))
UPLOAD_SHA = hashlib.sha256(UPLOAD).hexdigest().encode()
BIG = b"x" * 65536


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", shutil.which("nginx")):
        if candidate and os.path.exists(candidate):
            return candidate
    raise SystemExit("soak: nginx is needed (apt-get install nginx)")


UWSGI_PARAMS = """\
uwsgi_param QUERY_STRING $query_string;
uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type;
uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri;
uwsgi_param PATH_INFO $document_uri;
uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REMOTE_ADDR $remote_addr;
uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port;
uwsgi_param SERVER_NAME $server_name;
"""

FASTCGI_PARAMS = """\
fastcgi_param QUERY_STRING $query_string;
fastcgi_param REQUEST_METHOD $request_method;
fastcgi_param CONTENT_TYPE $content_type;
fastcgi_param CONTENT_LENGTH $content_length;
fastcgi_param SCRIPT_NAME $fastcgi_script_name;
fastcgi_param REQUEST_URI $request_uri;
fastcgi_param DOCUMENT_URI $document_uri;
fastcgi_param SERVER_PROTOCOL $server_protocol;
fastcgi_param REMOTE_ADDR $remote_addr;
fastcgi_param REMOTE_PORT $remote_port;
fastcgi_param SERVER_PORT $server_port;
fastcgi_param SERVER_NAME $server_name;
"""


def nginx_config(tmp: Path, port: int) -> str:
    (tmp / "uwsgi_params").write_text(UWSGI_PARAMS)
    (tmp / "fastcgi_params").write_text(FASTCGI_PARAMS)
    return nginx_prologue.nginx_config(tmp, f"""\
    client_max_body_size 10m;
    client_body_buffer_size 2m;
    upstream http_app {{ server unix:{tmp}/http.sock; keepalive 16; }}
    upstream uwsgi_app {{ server unix:{tmp}/uwsgi.sock; }}
    upstream fastcgi_app {{ server unix:{tmp}/fastcgi.sock; keepalive 16; }}
    server {{
        listen {HOST}:{port};
        location /h/ {{
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass http://http_app;
        }}
        location /u/ {{
            include {tmp}/uwsgi_params;
            uwsgi_pass uwsgi_app;
        }}
        location /f/ {{
            include {tmp}/fastcgi_params;
            fastcgi_keep_conn on;
            fastcgi_pass fastcgi_app;
        }}
    }}""")


@dataclass
class Tally:
    """What happened to the requests, shared by the client threads."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent: int = 0
    answered: int = 0
    # (start, end, what) of each failed request
    failures: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    by_protocol: dict = field(default_factory=dict)
    slow_answered: int = 0
    vanished: int = 0

    def record(self, protocol: str, started: float, ok: bool, what: str) -> None:
        ended = time.monotonic()
        with self.lock:
            self.sent += 1
            counts = self.by_protocol.setdefault(protocol, [0, 0])
            counts[0] += 1
            if ok:
                self.answered += 1
                counts[1] += 1
                self.latencies.append(ended - started)
            else:
                self.failures.append((started, ended, what))


WORKLOADS = [("hello", 5), ("big", 2), ("upload", 1), ("flask", 2)]


def one_request(conn: http.client.HTTPConnection, prefix: str, workload: str) -> tuple[bool, str]:
    if workload == "upload":
        conn.request("POST", f"/{prefix}/upload", body=UPLOAD, headers={"Content-Type": "application/octet-stream"})
        want = UPLOAD_SHA
    elif workload == "big":
        conn.request("GET", f"/{prefix}/big")
        want = BIG
    elif workload == "flask":
        conn.request("GET", f"/{prefix}/flask/soak")
        want = b"hello soak"
    else:
        conn.request("GET", f"/{prefix}/")
        want = b"Hello, World!"
    response = conn.getresponse()
    body = response.read()
    if response.status != 200 or body != want:
        return False, f"{prefix}/{workload}: {response.status} {body[:80]!r}"
    return True, ""


def client(port: int, tally: Tally, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    names = [name for name, weight in WORKLOADS for _ in range(weight)]
    conn = None
    turn = seed
    while not stop.is_set():
        prefix = "huf"[turn % 3]
        turn += 1
        workload = rng.choice(names)
        started = time.monotonic()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(HOST, port, timeout=30)
            ok, what = one_request(conn, prefix, workload)
        except (OSError, http.client.HTTPException) as err:
            ok, what = False, f"{prefix}/{workload}: {type(err).__name__}: {err}"
            if conn is not None:
                conn.close()
            conn = None
        tally.record("http uwsgi fastcgi".split()["huf".index(prefix)], started, ok, what)


def slow_client(sock_path: str, tally: Tally, stop: threading.Event) -> None:
    """Sends a head a few bytes at a time, straight to rwsgi."""
    head = b"GET /h/ HTTP/1.1\r\nHost: soak\r\nX-Slow: yes\r\nConnection: close\r\n\r\n"
    while not stop.is_set():
        started = time.monotonic()
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(30)
                s.connect(sock_path)
                for i in range(0, len(head), 4):
                    s.sendall(head[i:i + 4])
                    time.sleep(0.05)
                got = b""
                while chunk := s.recv(65536):
                    got += chunk
            ok = got.startswith(b"HTTP/1.1 200") and got.endswith(b"Hello, World!")
            what = "" if ok else f"slow: {got[:80]!r}"
        except OSError as err:
            ok, what = False, f"slow: {type(err).__name__}: {err}"
        tally.record("slow http", started, ok, what)


def vanishing_client(sock_path: str, tally: Tally, stop: threading.Event) -> None:
    """Starts a 1 MiB upload and goes away a tenth of the way through."""
    head = b"POST /h/upload HTTP/1.1\r\nHost: soak\r\nContent-Length: 1048576\r\n\r\n"
    while not stop.is_set():
        try:
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(5)
                s.connect(sock_path)
                s.sendall(head + UPLOAD[: 1 << 17])
            with tally.lock:
                tally.vanished += 1
        except OSError:
            pass
        time.sleep(0.05)


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


def rss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) if match else 0


def fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def chaos(master: int, every: float, stop: threading.Event, kills: list, actions: list) -> None:
    """Reloads, resizes and kills, in turn."""
    steps = ["SIGHUP", "SIGUSR2", "SIGTTIN", "SIGTTOU", "SIGKILL"]
    turn = 0
    while not stop.wait(every):
        step = steps[turn % len(steps)]
        turn += 1
        if step == "SIGKILL":
            workers = children(master)
            if not workers:
                continue
            victim = random.choice(workers)
            kills.append(time.monotonic())
            os.kill(victim, signal.SIGKILL)
        else:
            os.kill(master, getattr(signal, step))
        actions.append(step)


def sampler(master: int, stop: threading.Event, samples: list) -> None:
    started = time.monotonic()
    while not stop.wait(2.0):
        workers = children(master)
        samples.append((
            time.monotonic() - started,
            rss_kib(master),
            max((rss_kib(w) for w in workers), default=0),
            fds(master),
            max((fds(w) for w in workers), default=0),
            len(workers),
        ))


def wait_for(path: Path, timeout: float = 20) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        if time.time() > deadline:
            raise SystemExit(f"soak: {path} never appeared")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=300)
    parser.add_argument("--chaos-every", type=float, default=10)
    parser.add_argument("--clients", type=int, default=12)
    parser.add_argument("--venv", default=str(ROOT / ".venv"))
    parser.add_argument("--binary", default=str(ROOT / "target/release/rwsgi"))
    args = parser.parse_args()
    if not os.path.exists(args.binary):
        subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)
    tmp = Path(tempfile.mkdtemp(prefix="rwsgi-soak-"))
    port = free_port()
    (tmp / "nginx.conf").write_text(nginx_config(tmp, port))
    rwsgi_log = open(tmp / "rwsgi.log", "w")
    rwsgi = subprocess.Popen(
        [args.binary, "--master", "--processes", "2", "--threads", "2",
         "--http-socket", str(tmp / "http.sock"), "--socket", str(tmp / "uwsgi.sock"),
         "--fastcgi-socket", str(tmp / "fastcgi.sock"), "--wsgi-file", str(ROOT / "benches/apps/soak.py"),
         "--home", args.venv, "--disable-logging", "--reload-mercy", "10", "--worker-reload-mercy", "10"],
        stdout=rwsgi_log, stderr=subprocess.STDOUT,
    )
    nginx = None
    try:
        for name in ("http.sock", "uwsgi.sock", "fastcgi.sock"):
            wait_for(tmp / name)
        nginx = subprocess.Popen([nginx_binary(), "-c", str(tmp / "nginx.conf"), "-p", str(tmp)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 20
        while True:
            try:
                socket.create_connection((HOST, port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("soak: nginx did not start")
                time.sleep(0.05)
        time.sleep(1)  # the workers' first requests warm them up
        tally, stop, chaos_stop = Tally(), threading.Event(), threading.Event()
        kills, actions, samples = [], [], []
        threads = [threading.Thread(target=client, args=(port, tally, stop, i)) for i in range(args.clients)]
        threads += [threading.Thread(target=slow_client, args=(str(tmp / "http.sock"), tally, stop)) for _ in range(2)]
        threads.append(threading.Thread(target=vanishing_client, args=(str(tmp / "http.sock"), tally, stop)))
        threads.append(threading.Thread(target=sampler, args=(rwsgi.pid, stop, samples)))
        chaos_thread = threading.Thread(target=chaos, args=(rwsgi.pid, args.chaos_every, chaos_stop, kills, actions))
        for thread in threads:
            thread.start()
        chaos_thread.start()
        # The last tenth runs without chaos, so the end state is a settled one.
        time.sleep(args.duration * 0.9)
        chaos_stop.set()
        chaos_thread.join()
        time.sleep(args.duration * 0.1)
        stop.set()
        for thread in threads:
            thread.join()
        return report(args, tally, kills, actions, samples, rwsgi.pid, tmp)
    finally:
        for proc in (nginx, rwsgi):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        rwsgi_log.close()


def growth(samples: list) -> list:
    """What grew past the first fifth of the run by more than the load
    explains: a leak in the master (descriptors, memory) or in the
    workers (descriptors beyond their connections, memory beyond twice
    what they used early on, chaos recycling them included)."""
    if len(samples) < 5:
        return []
    early = samples[: max(1, len(samples) // 5)]
    late = samples[-max(1, len(samples) // 5):]
    bounds = [
        ("master fds", 3, lambda e: max(e) + 2),
        ("master RSS (KiB)", 1, lambda e: max(e) + 8 * 1024),
        ("most worker fds", 4, lambda e: max(e) + 64),
        ("largest worker RSS (KiB)", 2, lambda e: 2 * max(e)),
    ]
    found = []
    for name, column, bound in bounds:
        limit = bound([sample[column] for sample in early])
        worst = min(sample[column] for sample in late)
        if worst > limit:
            found.append(f"{name}: {worst} at the end, against at most {limit}")
    return found


def report(args, tally: Tally, kills: list, actions: list, samples: list, master: int, tmp: Path) -> int:
    # A request in flight when a worker was killed may have died with it;
    # one sent soon after, on a keep-alive connection nginx still held to
    # the dead worker, gets nginx's 502 without ever reaching a live one.
    in_flight = [f for f in tally.failures if any(f[0] <= k <= f[1] + 0.5 for k in kills)]
    stale = [f for f in tally.failures if f not in in_flight and " 502 " in f" {f[2]} "
             and any(0 <= f[0] - k <= 2.0 for k in kills)]
    unexplained = [f for f in tally.failures if f not in in_flight and f not in stale]
    latencies = sorted(tally.latencies)
    p50 = statistics.median(latencies) * 1000 if latencies else 0
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else 0
    print(f"soak: {args.duration:.0f} s, rwsgi --master --processes 2 --threads 2 behind nginx, "
          f"{args.clients} clients + 2 slow + 1 vanishing, chaos every {args.chaos_every:.0f} s")
    print()
    print("| requests sent | answered | failed: in flight at a SIGKILL | failed: nginx's connection to the killed worker | failed otherwise | uploads abandoned | p50 | p99 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {tally.sent} | {tally.answered} | {len(in_flight)} | {len(stale)} | {len(unexplained)} | {tally.vanished} "
          f"| {p50:.1f} ms | {p99:.1f} ms |")
    print()
    print("by protocol (sent / answered): " + ", ".join(
        f"{name} {counts[0]} / {counts[1]}" for name, counts in sorted(tally.by_protocol.items())))
    print("chaos: " + ", ".join(f"{step} ×{actions.count(step)}" for step in dict.fromkeys(actions)))
    print()
    print("| at | master RSS | largest worker RSS | master fds | most worker fds | workers |")
    print("| --- | --- | --- | --- | --- | --- |")
    step = max(1, len(samples) // 10)
    for at, master_rss, worker_rss, master_fds, worker_fds, workers in samples[::step] + samples[-1:]:
        print(f"| {at:.0f} s | {master_rss / 1024:.1f} MiB | {worker_rss / 1024:.1f} MiB | {master_fds} "
              f"| {worker_fds} | {workers} |")
    for started, ended, what in unexplained[:20]:
        print(f"unexplained failure at {started:.1f}–{ended:.1f}: {what}")
    leaks = growth(samples)
    for leak in leaks:
        print(f"grew: {leak}")
    if unexplained or leaks:
        print(f"rwsgi's log: {tmp / 'rwsgi.log'}; nginx's: {tmp / 'nginx-error.log'}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
