#!/usr/bin/env python3
"""Load benchmark: rwsgi against uWSGI, gunicorn, granian, bjoern (and pyruvate).

Every server runs one worker process pinned to CPU core 0 and is driven by
wrk pinned to core 1, on loopback, with the same WSGI apps (benches/apps/).
The peers are installed from PyPI into benches/.venv, made with the Python
running this script (the one rwsgi embeds).  See benches/README.md.

Four more rows put a real nginx in front (wrk -> nginx -> a unix socket ->
app server): uwsgi_pass to rwsgi --socket beside uWSGI --socket, and
fastcgi_pass (keep-conn on) to rwsgi --fastcgi-socket beside uWSGI
--fastcgi-socket.  nginx shares core 1 with wrk; the app server alone is on
core 0.

The `static` workload serves a 4 KiB file: rwsgi and uWSGI from a
--static-map, nginx (one worker, pinned like the others) from its own
`location`, so the ratio says how close rwsgi comes to a web server.

    python3 benches/load.py [--quick] [--duration S] [--servers rwsgi,uwsgi,...]
                            [--workloads hello,big,upload,upload-stream,flask,static] [--threads 1,8]
                            [--install-deps]

Standard library only.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import http.client
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import nginx_prologue

BENCHES = Path(__file__).resolve().parent
ROOT = BENCHES.parent
APPS = BENCHES / "apps"
VENV = BENCHES / ".venv"
RESULTS = BENCHES / "results"
REQUIREMENTS = BENCHES / "requirements.txt"
RWSGI = ROOT / "target" / "release" / "rwsgi"
# The release wheel (`make wheel`), installed into the peers' virtualenv.
WHEELS = ROOT / "dist"

HOST = "127.0.0.1"
CONNECTIONS = 32  # identical for every server and thread count
WRK_THREADS = 1
WRK_TIMEOUT = "5s"
WARMUP_SECONDS = 2
READY_TIMEOUT = 30.0  # seconds a server gets to accept connections
SERVER_CPU = "0"
WRK_CPU = "1"
UPLOAD_BYTES = 1 << 20
NGINX = Path("/usr/sbin/nginx")
NGINX_KEEPALIVE = 16  # idle upstream connections nginx keeps, where the protocol can


# --------------------------------------------------------------------------
# Workloads and servers
# --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    module: str  # benches/apps/<module>.py
    description: str
    lua: str | None = None  # wrk script in benches/apps
    path: str = "/"
    # The servers that can run it (None: every app server).
    servers: tuple[str, ...] | None = None
    # Options added to the server's command line: spelt the same for rwsgi
    # and uWSGI, the only servers of a workload that sets any.
    options: tuple[str, ...] = ()


STATIC_DIR = APPS / "static"  # holds 4k.bin: 4096 bytes of "x"
STATIC_MAP = f"/static={STATIC_DIR}"

WORKLOADS = {
    "hello": Workload("hello", "hello", "GET, 13-byte body, keep-alive"),
    "big": Workload("big", "big", "GET, 64 KiB body"),
    "upload": Workload("upload", "upload", "1 MiB POST, app reads it all", "post_1mib.lua"),
    "upload-stream": Workload("upload-stream", "upload_stream",
                              "1 MiB POST, app reads it in 64 KiB parts", "post_1mib.lua"),
    "upload-spooled": Workload("upload-spooled", "upload",
                               "1 MiB POST, app reads it all, spooled to a file first "
                               "(post-buffering = 8192, as uWSGI configs often set it)",
                               "post_1mib.lua", options=("--post-buffering", "8192"),
                               servers=("rwsgi", "uwsgi", "uwsgi-http11", "rwsgi-uwsgi",
                                        "uwsgi-socket", "rwsgi-fastcgi", "uwsgi-fastcgi")),
    "flask": Workload("flask", "flask_hello", "GET, a Flask app's 13-byte answer, keep-alive"),
    "static": Workload("static", "hello", "GET a 4 KiB file (static-map; nginx: its own location)",
                       path="/static/4k.bin", servers=("rwsgi", "uwsgi", "nginx-static")),
}


@dataclasses.dataclass(frozen=True)
class Server:
    key: str  # name on the command line (--servers)
    label: str  # name in the table
    threaded: bool  # False: run once, threads shown as "-"
    fixed_threads: int | None = None  # run only with this thread count
    optional: bool = False  # silently skipped when not installed
    # Behind nginx: the app server ("rwsgi" or "uwsgi") listens on a unix socket
    # and nginx passes requests to it in `proxy`, a key of UPSTREAMS.
    proxy: str | None = None
    app: str | None = None
    # Worker processes. Rows with more than one use both cores: neither the
    # server nor wrk is pinned.
    workers: int = 1

    @property
    def via_nginx(self) -> bool:
        return self.proxy is not None

    @property
    def runs_rwsgi(self) -> bool:
        return self.key == "rwsgi" or self.app == "rwsgi"


SERVERS = {
    "rwsgi": Server("rwsgi", "rwsgi", True),
    # The same with uWSGI's request line written for every request (to the
    # cell's log file): what logging costs.
    "rwsgi-logging": Server("rwsgi-logging", "rwsgi, request log on", True, app="rwsgi"),
    # The Python package's rwsgi (abi3, run by the venv's python) against
    # the binary above: what the stable ABI and the interpreter cost.
    "rwsgi-wheel": Server("rwsgi-wheel", "rwsgi, the wheel (abi3)", True, app="rwsgi"),
    "uwsgi": Server("uwsgi", "uWSGI --http-socket", True),
    "uwsgi-http11": Server("uwsgi-http11", "uWSGI --http11-socket", True, fixed_threads=8),
    "gunicorn": Server("gunicorn", "gunicorn gthread", True),
    "granian": Server("granian", "granian wsgi", True),
    "bjoern": Server("bjoern", "bjoern", False),
    "pyruvate": Server("pyruvate", "pyruvate", True, optional=True),
    "rwsgi-uwsgi": Server("rwsgi-uwsgi", "nginx → rwsgi --socket", True,
                          proxy="uwsgi", app="rwsgi"),
    "uwsgi-socket": Server("uwsgi-socket", "nginx → uWSGI --socket", True,
                           proxy="uwsgi", app="uwsgi"),
    "rwsgi-fastcgi": Server("rwsgi-fastcgi", "nginx → rwsgi --fastcgi-socket", True,
                            proxy="fastcgi", app="rwsgi"),
    "uwsgi-fastcgi": Server("uwsgi-fastcgi", "nginx → uWSGI --fastcgi-socket", True,
                            proxy="fastcgi", app="uwsgi"),
    "rwsgi-2w": Server("rwsgi-2w", "rwsgi, 2 workers", True, fixed_threads=1,
                       app="rwsgi", workers=2),
    "uwsgi-2w": Server("uwsgi-2w", "uWSGI --http-socket, 2 workers", True, fixed_threads=1,
                       app="uwsgi", workers=2),
    "gunicorn-2w": Server("gunicorn-2w", "gunicorn gthread, 2 workers", True, fixed_threads=1,
                          app="gunicorn", workers=2),
    # A web server alone, for the static workload only.
    "nginx-static": Server("nginx-static", "nginx (one worker)", True, fixed_threads=1),
}

# Ratio columns: (heading, rwsgi's row, the peer's row), same workload and threads.
RATIOS = [
    ("rwsgi ÷ uWSGI --http-socket", "rwsgi", "uwsgi"),
    ("rwsgi ÷ granian", "rwsgi", "granian"),
    ("rwsgi ÷ uWSGI (via nginx uwsgi_pass)", "rwsgi-uwsgi", "uwsgi-socket"),
    ("rwsgi ÷ uWSGI (via nginx fastcgi_pass)", "rwsgi-fastcgi", "uwsgi-fastcgi"),
    ("rwsgi ÷ uWSGI, 2 workers", "rwsgi-2w", "uwsgi-2w"),
    ("rwsgi ÷ gunicorn, 2 workers", "rwsgi-2w", "gunicorn-2w"),
    ("rwsgi ÷ nginx (static file)", "rwsgi", "nginx-static"),
    ("log on ÷ off", "rwsgi-logging", "rwsgi"),
    ("wheel (abi3) ÷ binary", "rwsgi-wheel", "rwsgi"),
]


def runs(server: Server, workload: Workload) -> bool:
    """Whether `server` has a row for `workload`."""
    if workload.servers is not None:
        return server.key in workload.servers
    return server.key != "nginx-static"


def nginx_static_command(port: int) -> list[str]:
    """nginx serving STATIC_DIR at /static/ on `port`: one process, no
    access log, sendfile on, as a site would serve its assets."""
    tmp = Path(tempfile.mkdtemp(prefix="rwsgi-bench-nginx-"))
    (tmp / "nginx.conf").write_text(
        "daemon off;\nmaster_process off;\nworker_processes 1;\n"
        f"pid {tmp}/nginx.pid;\nerror_log {tmp}/error.log;\n"
        "events { worker_connections 1024; }\n"
        "http {\naccess_log off;\nsendfile on;\ntcp_nopush on;\n"
        "keepalive_requests 1000000;\n"
        "types { application/octet-stream bin; }\n"
        f"client_body_temp_path {tmp}/body;\nproxy_temp_path {tmp}/proxy;\n"
        f"fastcgi_temp_path {tmp}/fastcgi;\nuwsgi_temp_path {tmp}/uwsgi;\n"
        f"scgi_temp_path {tmp}/scgi;\n"
        f"server {{ listen {HOST}:{port}; location /static/ {{ alias {STATIC_DIR}/; }} }}\n"
        "}\n")
    return [str(nginx_binary() or NGINX), "-p", str(tmp), "-e", str(tmp / "error.log"),
            "-c", str(tmp / "nginx.conf")]


def venv_bin(name: str) -> str:
    return str(VENV / "bin" / name)


def server_command(key: str, workload: Workload, threads: int, port: int,
                   sock: str = "") -> list[str]:
    """The server's command line (without the taskset prefix), with the
    workload's own options.

    Servers behind nginx listen on the unix socket `sock` instead of `port`."""
    return base_command(key, workload, threads, port, sock) + list(workload.options)


def base_command(key: str, workload: Workload, threads: int, port: int,
                 sock: str = "") -> list[str]:
    """server_command() without the workload's options."""
    app_file = str(APPS / f"{workload.module}.py")
    target = f"{workload.module}:application"
    server = SERVERS[key]
    if key == "nginx-static":
        return nginx_static_command(port)
    # The static workload: the file comes from a static-map, the app never runs.
    static = ["--static-map", STATIC_MAP] if workload.name == "static" else []
    if server.via_nginx:
        flag = UPSTREAMS[server.proxy].socket_flag  # --socket or --fastcgi-socket
        if server.app == "rwsgi":
            return [str(RWSGI), flag, sock, "--wsgi-file", app_file,
                    "--threads", str(threads), "--disable-logging"]
        # As for --http-socket: no master, so the one worker is the only process.
        return [venv_bin("uwsgi"), flag, sock, "--wsgi-file", app_file,
                "--processes", "1", "--threads", str(threads), "--disable-logging"]
    if key == "rwsgi":
        return [str(RWSGI), "--http-socket", f"{HOST}:{port}", "--wsgi-file", app_file,
                "--threads", str(threads), "--disable-logging", *static]
    if key == "rwsgi-logging":
        return [str(RWSGI), "--http-socket", f"{HOST}:{port}", "--wsgi-file", app_file,
                "--threads", str(threads), *static]
    if key == "rwsgi-wheel":
        return [venv_bin("rwsgi"), "--http-socket", f"{HOST}:{port}", "--wsgi-file", app_file,
                "--threads", str(threads), "--disable-logging", *static]
    if server.workers > 1:  # master + workers, the app imported before the fork
        n = str(server.workers)
        if server.app == "rwsgi":
            return [str(RWSGI), "--http-socket", f"{HOST}:{port}", "--wsgi-file", app_file,
                    "--master", "--processes", n, "--threads", str(threads),
                    "--disable-logging"]
        if server.app == "uwsgi":
            return [venv_bin("uwsgi"), "--http-socket", f"{HOST}:{port}", "--wsgi-file",
                    app_file, "--master", "--processes", n, "--threads", str(threads),
                    "--disable-logging"]
        return [venv_bin("gunicorn"), "-w", n, "-k", "gthread", "--threads", str(threads),
                "-b", f"{HOST}:{port}", "--chdir", str(APPS), target, "--log-level", "warning"]
    if key in ("uwsgi", "uwsgi-http11"):
        socket_flag = "--http-socket" if key == "uwsgi" else "--http11-socket"
        # No master: the one worker is the only process.  --threads 1 is
        # uWSGI's default single-threaded mode.
        return [venv_bin("uwsgi"), socket_flag, f"{HOST}:{port}", "--wsgi-file", app_file,
                "--processes", "1", "--threads", str(threads), "--disable-logging", *static]
    if key == "gunicorn":
        return [venv_bin("gunicorn"), "-w", "1", "-k", "gthread", "--threads", str(threads),
                "-b", f"{HOST}:{port}", "--chdir", str(APPS), target, "--log-level", "warning"]
    if key == "granian":
        return [venv_bin("granian"), "--interface", "wsgi", "--workers", "1",
                "--blocking-threads", str(threads), "--host", HOST, "--port", str(port),
                "--working-dir", str(APPS), "--no-ws", "--log-level", "warning", target]
    if key == "bjoern":
        return [venv_bin("python"), str(APPS / "run_bjoern.py"), workload.module, HOST, str(port)]
    if key == "pyruvate":
        return [venv_bin("python"), str(APPS / "run_pyruvate.py"), workload.module, HOST,
                str(port), str(threads)]
    raise KeyError(key)


def nginx_binary() -> str | None:
    if NGINX.exists():
        return str(NGINX)
    return shutil.which("nginx")


def server_available(key: str) -> str | None:
    """None when the server can run; otherwise why not."""
    if (SERVERS[key].via_nginx or key == "nginx-static") and nginx_binary() is None:
        return (f"{NGINX} not installed (`apt-get install -y nginx-light` or `nginx` "
                "on Debian/Ubuntu)")
    server = SERVERS[key]
    if key == "nginx-static":
        return None
    if key == "rwsgi-wheel":
        rwsgi = Path(venv_bin("rwsgi"))
        return None if rwsgi.exists() else f"{rwsgi} missing (`make wheel`, then run again)"
    if server.runs_rwsgi:
        return None if RWSGI.exists() else f"{RWSGI} missing"
    exe = {"uwsgi": "uwsgi", "uwsgi-http11": "uwsgi",
           "gunicorn": "gunicorn", "granian": "granian"}.get(key, server.app)
    if exe:
        return None if Path(venv_bin(exe)).exists() else f"{venv_bin(exe)} not installed"
    module = key  # bjoern, pyruvate
    probe = subprocess.run([venv_bin("python"), "-c", f"import {module}"],
                           capture_output=True, text=True)
    if probe.returncode == 0:
        return None
    lines = probe.stderr.strip().splitlines()
    return f"import {module} failed: {lines[-1] if lines else probe.returncode}"


def server_version(key: str) -> str:
    try:
        if key == "nginx-static":
            return nginx_version()
        if SERVERS[key].runs_rwsgi:
            binary = venv_bin("rwsgi") if key == "rwsgi-wheel" else str(RWSGI)
            out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                                 timeout=10).stdout.strip()
            return out or "?"
        dist = {"uwsgi-http11": "uwsgi"}.get(key, SERVERS[key].app or key)
        out = subprocess.run(
            [venv_bin("python"), "-c",
             f"import importlib.metadata as m; print(m.version({dist!r}))"],
            capture_output=True, text=True, timeout=30).stdout.strip()
        return f"{dist} {out}" if out else "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


# --------------------------------------------------------------------------
# Environment: the rwsgi binary, the venv with the peers
# --------------------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def ensure_rwsgi() -> None:
    if RWSGI.exists():
        return
    log(f"{RWSGI} missing: running cargo build --release")
    subprocess.run(["cargo", "build", "--release"], cwd=ROOT, check=True)


def libev_headers_present() -> bool:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return any(Path(d, "ev.h").exists() for d in ("/usr/include", "/usr/local/include"))
    probe = subprocess.run([cc, "-E", "-x", "c", "-"], input="#include <ev.h>\n",
                           capture_output=True, text=True)
    return probe.returncode == 0


def ensure_libev(install_deps: bool) -> bool:
    """bjoern builds against libev; True when its headers are there."""
    if libev_headers_present():
        return True
    is_root = hasattr(os, "geteuid") and os.geteuid() == 0
    if is_root and (install_deps or os.environ.get("CI")):
        log("libev headers missing: apt-get install -y libev-dev")
        ok = subprocess.run(["apt-get", "install", "-y", "libev-dev"]).returncode == 0
        if not ok:
            subprocess.run(["apt-get", "update"])
            subprocess.run(["apt-get", "install", "-y", "libev-dev"])
        if libev_headers_present():
            return True
    log("*** bjoern needs the libev headers (ev.h), which are missing.\n"
        "*** Install them, e.g. `sudo apt-get install -y libev-dev` (Debian/Ubuntu),\n"
        "*** `sudo dnf install libev-devel` (Fedora) or `brew install libev` (macOS),\n"
        "*** or rerun as root with --install-deps.  bjoern is skipped for now.")
    return False


def parse_requirements() -> list[tuple[str, bool]]:
    """(requirement, optional) per line of requirements.txt."""
    reqs = []
    for line in REQUIREMENTS.read_text().splitlines():
        text, _, comment = line.partition("#")
        text = text.strip()
        if text:
            reqs.append((text, "optional" in comment))
    return reqs


def ensure_venv(install_deps: bool) -> dict[str, str]:
    """Creates benches/.venv and installs the peers; returns install failures."""
    python = Path(venv_bin("python"))
    stamp = VENV / ".installed"
    libev = ensure_libev(install_deps)
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()
                            + (b"libev" if libev else b"")).hexdigest()
    if stamp.exists() and stamp.read_text().strip() == digest and python.exists():
        return {}
    if not python.exists():
        log(f"creating {VENV} with {sys.executable} (Python {platform.python_version()})")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(python), "-m", "pip", "--disable-pip-version-check"]
    subprocess.run(pip + ["install", "--quiet", "--upgrade", "pip", "setuptools", "wheel"],
                   check=True)
    failures: dict[str, str] = {}
    optional_names = set()
    for req, optional in parse_requirements():
        name = re.split(r"[=<>!~\[ ;]", req, maxsplit=1)[0].lower()
        if optional:
            optional_names.add(name)
        if name == "bjoern" and not libev:
            failures[name] = "libev headers missing (apt-get install -y libev-dev)"
            continue
        log(f"pip install {req}" + (" (optional)" if optional else "")
            + (" (builds from source, takes a few minutes)" if name == "uwsgi" else ""))
        done = subprocess.run(pip + ["install", "--quiet", req], capture_output=True, text=True)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            failures[name] = " | ".join(tail) or f"pip exit {done.returncode}"
            log(f"  failed: {failures[name]}")
    if all(name in optional_names for name in failures):
        stamp.write_text(digest + "\n")
    return failures


def install_wheel() -> None:
    """Installs the newest release wheel (dist/, `make wheel`) into the
    peers' virtualenv, for the rwsgi-wheel rows."""
    wheels = sorted(WHEELS.glob("rwsgi-*.whl"), key=lambda w: w.stat().st_mtime)
    if not wheels:
        log(f"no wheel in {WHEELS}: the rwsgi-wheel rows are skipped (`make wheel`)")
        return
    subprocess.run([venv_bin("python"), "-m", "pip", "--disable-pip-version-check", "install",
                    "--quiet", "--force-reinstall", "--no-deps", str(wheels[-1])], check=True)


# --------------------------------------------------------------------------
# Running one cell
# --------------------------------------------------------------------------


_live_groups: set[int] = set()


def kill_group(proc: subprocess.Popen) -> None:
    """Ends the server's whole process group: SIGTERM, then SIGKILL."""
    pgid = proc.pid  # start_new_session=True: the group id is the leader's pid
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None and not group_alive(pgid):
                break
            time.sleep(0.05)
        else:
            continue
        break
    try:  # anything left in the group (a worker that ignored SIGTERM)
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    _live_groups.discard(pgid)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def process_tree(root: int) -> list[int]:
    """root and all its descendants, from /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[1].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime (all threads) summed over pids, from /proc/PID/stat."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def vm_hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class RssSampler(threading.Thread):
    """Max over samples of the sum of VmHWM over the server's process tree."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.peak_kib = 0
        self._halt = threading.Event()

    def sample(self) -> None:
        total = sum(vm_hwm_kib(pid) for pid in process_tree(self.root))
        self.peak_kib = max(self.peak_kib, total)

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> float:
        self._halt.set()
        self.join()
        self.sample()
        return self.peak_kib / 1024


def wait_ready(proc: subprocess.Popen, port: int) -> str | None:
    """Waits (bounded) until the port accepts; None when ready, else why not."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before accepting connections"
        try:
            with socket.create_connection((HOST, port), timeout=0.5):
                return None
        except OSError:
            time.sleep(0.1)
    return f"not accepting connections on port {port} after {READY_TIMEOUT:.0f} s"


def wait_ready_unix(proc: subprocess.Popen, sock: Path) -> str | None:
    """wait_ready for an app server listening on the unix socket `sock`."""
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with status {proc.returncode} before accepting connections"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(0.5)
                s.connect(str(sock))
                return None
        except OSError:
            time.sleep(0.1)
    return f"not accepting connections on {sock} after {READY_TIMEOUT:.0f} s"


# The usual Debian /etc/nginx/uwsgi_params, for systems that lack the file.
_UWSGI_PARAMS = """\
uwsgi_param  QUERY_STRING       $query_string;
uwsgi_param  REQUEST_METHOD     $request_method;
uwsgi_param  CONTENT_TYPE       $content_type;
uwsgi_param  CONTENT_LENGTH     $content_length;
uwsgi_param  REQUEST_URI        $request_uri;
uwsgi_param  PATH_INFO          $document_uri;
uwsgi_param  DOCUMENT_ROOT      $document_root;
uwsgi_param  SERVER_PROTOCOL    $server_protocol;
uwsgi_param  REQUEST_SCHEME     $scheme;
uwsgi_param  HTTPS              $https if_not_empty;
uwsgi_param  REMOTE_ADDR        $remote_addr;
uwsgi_param  REMOTE_PORT        $remote_port;
uwsgi_param  SERVER_PORT        $server_port;
uwsgi_param  SERVER_NAME        $server_name;
"""

# The usual Debian /etc/nginx/fastcgi_params, for systems that lack the file.
# It sends SCRIPT_NAME = the whole path and no PATH_INFO; the bench apps ignore
# the path.
_FASTCGI_PARAMS = """\
fastcgi_param  QUERY_STRING       $query_string;
fastcgi_param  REQUEST_METHOD     $request_method;
fastcgi_param  CONTENT_TYPE       $content_type;
fastcgi_param  CONTENT_LENGTH     $content_length;
fastcgi_param  SCRIPT_NAME        $fastcgi_script_name;
fastcgi_param  REQUEST_URI        $request_uri;
fastcgi_param  DOCUMENT_URI       $document_uri;
fastcgi_param  DOCUMENT_ROOT      $document_root;
fastcgi_param  SERVER_PROTOCOL    $server_protocol;
fastcgi_param  REQUEST_SCHEME     $scheme;
fastcgi_param  HTTPS              $https if_not_empty;
fastcgi_param  GATEWAY_INTERFACE  CGI/1.1;
fastcgi_param  SERVER_SOFTWARE    nginx/$nginx_version;
fastcgi_param  REMOTE_ADDR        $remote_addr;
fastcgi_param  REMOTE_PORT        $remote_port;
fastcgi_param  REMOTE_USER        $remote_user;
fastcgi_param  SERVER_ADDR        $server_addr;
fastcgi_param  SERVER_PORT        $server_port;
fastcgi_param  SERVER_NAME        $server_name;
fastcgi_param  REDIRECT_STATUS    200;
"""


@dataclasses.dataclass(frozen=True)
class Upstream:
    """How nginx talks to an app server behind it."""
    protocol: str  # nginx's directive prefix: uwsgi_pass, fastcgi_pass, ...
    socket_flag: str  # the app server's option to listen in that protocol (rwsgi and uWSGI)
    params: Path  # the params file the location includes
    params_fallback: str  # written into the temp dir when `params` is missing
    keep_conn: bool  # upstream keep-alive: `keepalive N` and `<protocol>_keep_conn on`


UPSTREAMS = {
    # uwsgi_pass has no upstream keep-alive: one connection per request.
    "uwsgi": Upstream("uwsgi", "--socket", Path("/etc/nginx/uwsgi_params"),
                      _UWSGI_PARAMS, keep_conn=False),
    "fastcgi": Upstream("fastcgi", "--fastcgi-socket", Path("/etc/nginx/fastcgi_params"),
                        _FASTCGI_PARAMS, keep_conn=True),
}


def nginx_config(tmp: Path, port: int, sock: Path, upstream: Upstream) -> str:
    """nginx in one process (no master), `<protocol>_pass` to `sock`, everything under tmp.

    The buffers keep a 64 KiB response and a 1 MiB request body in memory, so
    no cell writes nginx temp files to disk."""
    params = upstream.params
    if not params.exists():
        params = tmp / upstream.params.name
        params.write_text(upstream.params_fallback)
    p = upstream.protocol
    keepalive = f"\n        keepalive {NGINX_KEEPALIVE};" if upstream.keep_conn else ""
    keep_conn = f"\n            {p}_keep_conn on;" if upstream.keep_conn else ""
    return nginx_prologue.nginx_config(tmp, f"""\
    client_max_body_size 10m;
    client_body_buffer_size 2m;
    {p}_buffer_size 16k;
    {p}_buffers 8 16k;

    upstream app {{
        server unix:{sock};{keepalive}
    }}

    server {{
        listen {HOST}:{port};
        location / {{
            include {params};{keep_conn}
            {p}_pass app;
        }}
    }}""", connections=1024)


def nginx_version() -> str:
    binary = nginx_binary()
    if binary is None:
        return "nginx ?"
    try:
        out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "nginx ?"
    match = re.search(r"nginx/(\S+)", out.stdout + out.stderr)
    return f"nginx {match.group(1)}" if match else "nginx ?"


def check_response(workload: Workload, port: int) -> str | None:
    """One request checked by hand before the load: None when the reply is right."""
    # The upload workloads post what post_1mib.lua does; their apps answer its length.
    posts = workload.lua == "post_1mib.lua"
    expected = str(UPLOAD_BYTES).encode() if posts else {
        "hello": b"Hello, World!", "flask": b"Hello, World!", "big": b"x" * 65536,
        "static": b"x" * 4096}[workload.name]
    last = ""
    for _ in range(20):  # the port may accept before the app is loaded (granian)
        conn = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            if posts:
                conn.request("POST", "/", body=b"x" * UPLOAD_BYTES,
                             headers={"Content-Type": "application/octet-stream"})
            else:
                conn.request("GET", workload.path)
            resp = conn.getresponse()
            body = resp.read()
            if resp.status == 200 and body == expected:
                return None
            last = f"HTTP {resp.status}, {len(body)}-byte body {body[:40]!r}"
        except (OSError, http.client.HTTPException) as err:
            last = f"{type(err).__name__}: {err}"
        finally:
            conn.close()
        time.sleep(0.25)
    return f"bad response: {last}"


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def parse_duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not match:
        raise ValueError(text)
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> dict:
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    total = re.search(r"^\s+(\d+) requests in", output, re.M)
    kinds: dict[str, int] = {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     output)
    if sock:
        for kind, count in zip(("connect", "read", "write", "timeout"), sock.groups()):
            kinds[kind] = int(count)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        kinds["non-2xx"] = int(non2xx.group(1))
    errors = ", ".join(f"{n:,} {kind}" for kind, n in kinds.items() if n) or "0"
    if not rps or not p99:
        raise ValueError("could not parse wrk output")
    return {
        "rps": float(rps.group(1)),
        "p99_ms": parse_duration_ms(p99.group(1)),
        "requests": int(total.group(1)) if total else 0,
        "errors": errors,
    }


@dataclasses.dataclass
class Cell:
    server: Server
    threads: int | None  # None: not threaded
    workload: Workload
    rps: float | None = None
    p99_ms: float | None = None
    rss_mib: float | None = None
    errors: str | None = None
    requests: int = 0
    failure: str | None = None
    server_cmd: str = ""
    wrk_cmd: str = ""
    cpu: dict[str, float] = dataclasses.field(default_factory=dict)  # % of one core
    # One entry per successful run (--repeat): rps, p99_ms, rss_mib, errors,
    # requests, cpu. The fields above then hold the median run's.
    runs: list[dict] = dataclasses.field(default_factory=list)

    def record_run(self) -> None:
        self.runs.append({"rps": self.rps, "p99_ms": self.p99_ms, "rss_mib": self.rss_mib,
                          "errors": self.errors, "requests": self.requests,
                          "cpu": dict(self.cpu)})

    def settle(self) -> None:
        """Shows the median run (by requests/s): the ratios compare medians.
        p99 is the median of the runs' own: a run's tail moves with the
        machine's noise, not with its throughput."""
        if not self.runs:
            return
        ranked = sorted(self.runs, key=lambda run: run["rps"])
        median = ranked[(len(ranked) - 1) // 2]
        for field, value in median.items():
            setattr(self, field, value)
        tails = sorted(run["p99_ms"] for run in self.runs)
        self.p99_ms = tails[(len(tails) - 1) // 2]
        self.rss_mib = max(run["rss_mib"] for run in self.runs)

    def spread(self) -> str:
        """min–max requests/s over the runs, when there were several."""
        if len(self.runs) < 2:
            return ""
        rates = [run["rps"] for run in self.runs]
        return f"{min(rates):,.0f}–{max(rates):,.0f}"


CGROUP_ROOT = Path("/sys/fs/cgroup")
CPU_PERIOD_US = 10_000  # a short period keeps the throttling smooth


def cpu_cgroup_parent() -> Path | None:
    """Where a CPU-limited cgroup can be made: cgroup v2 with the cpu
    controller, or v1's cpu hierarchy; None if neither is writable."""
    v2 = CGROUP_ROOT / "cgroup.controllers"
    if v2.exists() and "cpu" in v2.read_text().split() and os.access(CGROUP_ROOT, os.W_OK):
        return CGROUP_ROOT
    v1 = CGROUP_ROOT / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists() and os.access(v1, os.W_OK):
        return v1
    return None


def limit_cpu(pid: int, percent: float) -> Path:
    """Moves `pid` (and so every process it starts later) into a new cgroup
    allowed `percent` % of one CPU; returns it for release_cgroup()."""
    parent = cpu_cgroup_parent()
    if parent is None:
        raise ValueError("--cpu-quota needs a writable cgroup cpu controller (run as root)")
    group = parent / f"rwsgi-bench-{os.getpid()}-{pid}"
    group.mkdir()
    quota = max(1000, int(CPU_PERIOD_US * percent / 100))
    if parent == CGROUP_ROOT:
        (group / "cpu.max").write_text(f"{quota} {CPU_PERIOD_US}")
    else:
        (group / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
    (group / "cgroup.procs").write_text(str(pid))
    return group


def release_cgroup(group: Path) -> None:
    """Removes the cgroup once its processes are gone."""
    for _ in range(50):
        try:
            group.rmdir()
            return
        except OSError:
            time.sleep(0.1)
    log(f"warning: could not remove {group}")


def pin(cpu: str, cmd: list[str], pinning: bool) -> list[str]:
    return ["taskset", "-c", cpu, *cmd] if pinning else cmd


def wrk_command(workload: Workload, port: int, seconds: float, pinning: bool) -> list[str]:
    cmd = ["wrk", f"-t{WRK_THREADS}", f"-c{CONNECTIONS}", f"-d{seconds:g}s",
           f"--timeout", WRK_TIMEOUT, "--latency"]
    if workload.lua:
        cmd += ["-s", str(APPS / workload.lua)]
    cmd.append(f"http://{HOST}:{port}{workload.path}")
    return pin(WRK_CPU, cmd, pinning)


def run_cell(cell: Cell, duration: float, pinning: bool, logdir: Path,
             cpu_quota: float | None = None, run: int | None = None) -> None:
    """One run of the cell; a success is added to `cell.runs`."""
    # Several workers are meant to use both cores; wrk shares them.
    pinning = pinning and cell.server.workers == 1
    port = free_port()  # wrk's target: the server, or nginx in front of it
    threads = cell.threads if cell.threads is not None else 1
    tmp = sock = None
    if cell.server.via_nginx:
        tmp = Path(tempfile.mkdtemp(prefix="rwsgi-bench-"))
        sock = tmp / "app.sock"
    cmd = pin(SERVER_CPU, server_command(cell.server.key, cell.workload, threads, port,
                                         str(sock) if sock else ""), pinning)
    cell.server_cmd = shlex.join(cmd)
    tag = f"{cell.server.key}-{cell.threads or 'x'}-{cell.workload.name}"
    if run is not None:
        tag += f"-run{run}"
    logfile = logdir / f"{tag}.log"
    nginx_log = logdir / f"{tag}.nginx.log"
    for stale in (nginx_log, logdir / f"{tag}.nginx-error.log"):
        stale.unlink(missing_ok=True)
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)  # rwsgi would load it; the apps need only the stdlib
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    log(f"--- {cell.server.label} threads={cell.threads or '-'} workload={cell.workload.name}"
        + (f" run {run}" if run is not None else ""))
    log(f"    server: {cell.server_cmd}")
    procs: list[subprocess.Popen] = []  # started in this order, stopped in reverse
    with open(logfile, "wb") as out:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                cwd=APPS, env=env, start_new_session=True)
        _live_groups.add(proc.pid)
        procs.append(proc)
        cgroup = None
        try:
            if cpu_quota is not None:
                cgroup = limit_cpu(proc.pid, cpu_quota)
            if sock is None:
                why = wait_ready(proc, port)
            else:
                why = wait_ready_unix(proc, sock)
                if not why:
                    (tmp / "nginx.conf").write_text(
                        nginx_config(tmp, port, sock, UPSTREAMS[cell.server.proxy]))
                    # nginx runs beside wrk on the load generator's core.
                    front = pin(WRK_CPU, [nginx_binary(), "-p", str(tmp), "-e",
                                          str(tmp / "nginx-error.log"), "-c",
                                          str(tmp / "nginx.conf")], pinning)
                    cell.server_cmd += "\n" + shlex.join(front)
                    log(f"    nginx:  {shlex.join(front)}")
                    with open(nginx_log, "wb") as nout:
                        nginx = subprocess.Popen(front, stdin=subprocess.DEVNULL, stdout=nout,
                                                 stderr=nout, cwd=tmp, start_new_session=True)
                    _live_groups.add(nginx.pid)
                    procs.append(nginx)
                    why = wait_ready(nginx, port)
                    if why:
                        why = "nginx " + why
            why = why or check_response(cell.workload, port)
            if why:
                cell.failure = why
                return
            sampler = RssSampler(proc.pid)  # the app server's tree only, never nginx
            sampler.start()
            try:
                warm = wrk_command(cell.workload, port, WARMUP_SECONDS, pinning)
                subprocess.run(warm, capture_output=True, text=True,
                               timeout=WARMUP_SECONDS + 60)
                wrk = wrk_command(cell.workload, port, duration, pinning)
                cell.wrk_cmd = shlex.join(wrk)
                log(f"    wrk:    {cell.wrk_cmd}")
                # CPU use during the measurement, in % of one core: which side
                # was the limit (the app server's core, or wrk's, shared with nginx)?
                watched = {"server": lambda: process_tree(proc.pid)}
                if len(procs) > 1:
                    watched["nginx"] = lambda: process_tree(procs[1].pid)
                before = {name: cpu_seconds(tree()) for name, tree in watched.items()}
                wrk_before, t0 = children_cpu_seconds(), time.monotonic()
                done = subprocess.run(wrk, capture_output=True, text=True,
                                      timeout=duration + 60)
                elapsed = max(time.monotonic() - t0, 1e-3)
                cell.cpu = {name: 100 * (cpu_seconds(tree()) - before[name]) / elapsed
                            for name, tree in watched.items()}
                cell.cpu["wrk"] = 100 * (children_cpu_seconds() - wrk_before) / elapsed
            finally:
                cell.rss_mib = sampler.stop()
            for p, what in zip(procs, ("server", "nginx")):
                if p.poll() is not None:
                    cell.failure = f"{what} exited with status {p.returncode} during the run"
                    return
            if done.returncode != 0:
                cell.failure = f"wrk exit {done.returncode}: {done.stderr.strip()[-200:]}"
                return
            (logdir / f"{tag}.wrk.txt").write_text(done.stdout)
            result = parse_wrk(done.stdout)
            cell.rps, cell.p99_ms = result["rps"], result["p99_ms"]
            cell.errors, cell.requests = result["errors"], result["requests"]
            cell.record_run()
            log(f"    {cell.rps:,.0f} req/s  p99 {fmt_ms(cell.p99_ms)}  "
                f"peak RSS {cell.rss_mib:.1f} MiB  errors {cell.errors}  CPU "
                + ", ".join(f"{name} {pct:.0f}%" for name, pct in cell.cpu.items()))
        except subprocess.TimeoutExpired:
            cell.failure = "wrk did not finish in time"
        except ValueError as err:
            cell.failure = str(err)
        finally:
            for p in reversed(procs):
                kill_group(p)
            if cgroup is not None:
                release_cgroup(cgroup)
            if tmp is not None:
                # The proxy cells' nginx logs to nginx-error.log, the
                # static cell's to error.log.
                for name in ("nginx-error.log", "error.log"):
                    if (tmp / name).exists():
                        shutil.copyfile(tmp / name, logdir / f"{tag}.nginx-error.log")
                shutil.rmtree(tmp, ignore_errors=True)
    if cell.failure:
        logs = [logfile]
        if tmp is not None:
            logs += [nginx_log, logdir / f"{tag}.nginx-error.log"]
        for path in logs:
            if not path.exists():
                continue
            tail = path.read_text(errors="replace").strip().splitlines()[-3:]
            if tail:
                cell.failure += f" | {path.name}: " + " / ".join(tail)


# --------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "—"
    if ms < 1:
        return f"{ms * 1000:.0f} µs"
    if ms < 100:
        return f"{ms:.2f} ms"
    return f"{ms:.0f} ms"


def ratio(a: Cell, b: Cell | None) -> str:
    if b is None or not a.rps or not b.rps:
        return "—"
    return f"{a.rps / b.rps:.2f}×"


def cpu_per_request(cell: Cell) -> str:
    """The server's CPU time (user and system, its whole process tree) per
    request in the median run: what the run cost it, whichever side was
    the limit."""
    if not cell.rps or "server" not in cell.cpu:
        return "—"
    return f"{1e4 * cell.cpu['server'] / cell.rps:.1f} µs"


def table(cells: list[Cell]) -> str:
    def find(key: str, cell: Cell) -> Cell | None:
        for other in cells:
            if (other.server.key == key and other.workload == cell.workload
                    and other.threads == cell.threads):
                return other
        return None

    runs = max((len(cell.runs) for cell in cells), default=0)
    spread = runs > 1  # --repeat: requests/s is the median run's; add the range
    rows = ["| server | threads | workload | requests/s | "
            + ("range over the runs | " if spread else "")
            + "p99 latency | server CPU per request | peak RSS (MiB) "
            "| errors | " + " | ".join(heading for heading, _, _ in RATIOS) + " |",
            "|---|---:|---|---:|" + ("---:|" if spread else "") + "---:|---:|---:|---:|"
            + "---:|" * len(RATIOS)]
    for cell in cells:
        threads = str(cell.threads) if cell.threads is not None else "-"
        if cell.failure:
            rows.append(f"| {cell.server.label} | {threads} | {cell.workload.name} "
                        f"| failed |" + (" — |" if spread else "") + " — | — | — | — |"
                        + " — |" * len(RATIOS))
            continue
        ratios = [ratio(cell, find(peer, cell)) if cell.server.key == mine else ""
                  for _, mine, peer in RATIOS]
        rows.append(f"| {cell.server.label} | {threads} | {cell.workload.name} "
                    f"| {cell.rps:,.0f} | " + (f"{cell.spread()} | " if spread else "")
                    + f"{fmt_ms(cell.p99_ms)} | {cpu_per_request(cell)} | {cell.rss_mib:.1f} "
                    f"| {cell.errors} | " + " | ".join(ratios) + " |")
    return "\n".join(rows)


def legend(args, workloads: list[Workload], pinning: bool, proxies: set[str]) -> str:
    """proxies: the nginx upstream protocols of the rows in the table."""
    lines = [
        f"Each cell: one worker process (plus gunicorn's arbiter and granian's main "
        f"process: RSS counts the whole tree), "
        f"{'pinned to CPU ' + SERVER_CPU + ' (taskset), wrk pinned to CPU ' + WRK_CPU if pinning else 'NOT pinned (fewer than 2 CPUs)'}; "
        f"{WARMUP_SECONDS} s warm-up, then `wrk -t{WRK_THREADS} -c{CONNECTIONS} "
        f"-d{args.duration:g}s --timeout {WRK_TIMEOUT} --latency` on loopback.",
        "Rows named `2 workers`: a master (arbiter) and two 1-thread workers, the app "
        "imported before the fork; nothing pinned, so the workers and wrk share both "
        "CPUs (compare them with each other, not with the pinned rows).",
        "Workloads: " + "; ".join(f"{w.name} = {w.description}" for w in workloads) + ".",
        "server CPU per request: the user and system time of the server's process tree "
        "(for nginx rows, the app server's alone) during the measured run, over the "
        "requests it answered: comparable whichever side (server or wrk) was the limit.",
        "peak RSS: max over samples (every 0.2 s) of the sum of VmHWM over the server's "
        "process tree (shared pages counted once per process).",
        "errors: wrk's socket errors (connect/read/write/timeout) and non-2xx responses, "
        "by kind. For uWSGI --http-socket the read errors are its connection closes: it "
        "answers HTTP/1.1 without `Connection: close` and then closes, so wrk counts one "
        "read error per request and reconnects.",
        "Ratios: rwsgi requests/s divided by the peer's, same workload and thread count.",
    ]
    if args.repeat > 1:
        lines.append(
            f"Each cell ran {args.repeat} times, in rounds (every cell once, then again): "
            "requests/s and the CPU figures are the median run's (by requests/s), p99 the "
            "median of the runs' p99, the range is the slowest and fastest run, peak RSS the "
            "largest; ratios compare medians.")
    if args.cpu_quota is not None:
        lines.append(
            f"CPU budget: each server's processes (the app server only, never nginx or wrk) "
            f"ran in a cgroup allowed {args.cpu_quota:g}% of one CPU ({CPU_PERIOD_US // 1000} "
            "ms period), so the server is the bottleneck and requests/s measure what it "
            "does with the same CPU: the ratios compare CPU efficiency.")
    lines += [
        "uWSGI --http-socket closes the connection after every response (no keep-alive): "
        "wrk reconnects for each request, which is what its users get. "
        "uWSGI --http11-socket is its keep-alive mode, run with 8 threads only; "
        "a thread holds one connection, so connections beyond 8 wait.",
        "bjoern is single-threaded (threads \"-\").",
    ]
    if proxies:
        lines.append(
            "nginx → … rows: wrk → nginx (one process, `master_process off`, "
            "`access_log off`) → a unix socket → the app server; per protocol the nginx "
            "config is identical for rwsgi and uWSGI. "
            + (f"The app server alone is pinned to CPU {SERVER_CPU}; nginx and wrk share "
               f"CPU {WRK_CPU}. " if pinning else "Nothing pinned. ")
            + "nginx keeps the client connections alive. Peak RSS is the app "
            "server's tree only, without nginx.")
    if "uwsgi" in proxies:
        lines.append(
            "`--socket` rows: `uwsgi_pass`, the app server speaks the uwsgi protocol; "
            "nginx opens one upstream connection per request (uwsgi_pass has no upstream "
            "keep-alive). "
            "rwsgi ÷ uWSGI (via nginx uwsgi_pass): `nginx → rwsgi --socket` requests/s "
            "over `nginx → uWSGI --socket`, same workload and thread count.")
    if "fastcgi" in proxies:
        lines.append(
            "`--fastcgi-socket` rows: `fastcgi_pass` (`include fastcgi_params`), "
            f"`fastcgi_keep_conn on` and `keepalive {NGINX_KEEPALIVE}` in the upstream "
            "block, for both app servers: nginx asks to keep the connection (FCGI_KEEP_CONN) "
            f"and caches up to {NGINX_KEEPALIVE} idle ones. rwsgi honours it and serves "
            "request after request on one connection; uWSGI ignores it and closes after "
            "every response, so nginx connects anew for each request to uWSGI. "
            "rwsgi ÷ uWSGI (via nginx fastcgi_pass): `nginx → rwsgi --fastcgi-socket` "
            "requests/s over `nginx → uWSGI --fastcgi-socket`, same workload and thread "
            "count.")
    return "\n".join(f"- {line}" for line in lines)


def wrk_version() -> str:
    try:
        out = subprocess.run(["wrk", "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return "wrk ?"
    match = re.search(r"wrk (\S+)", out.stdout + out.stderr)
    return f"wrk {match.group(1)}" if match else "wrk ?"


def machine_info() -> str:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}"


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def csv_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Load benchmark of rwsgi against its peers (see benches/README.md).")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 3 s per cell, hello workload only")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds of measured load per cell (default 10; 3 with --quick)")
    parser.add_argument("--servers", type=csv_list, default=list(SERVERS),
                        help="comma-separated, from: " + ",".join(SERVERS))
    parser.add_argument("--workloads", type=csv_list, default=None,
                        help="comma-separated, from: " + ",".join(WORKLOADS))
    parser.add_argument("--threads", type=lambda t: [int(x) for x in csv_list(t)],
                        default=[1, 8], help="thread counts (default 1,8)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per cell, in rounds; the table shows the median run "
                             "and the range (default 1)")
    parser.add_argument("--cpu-quota", type=float, default=None, metavar="PCT",
                        help="limit the server's processes to PCT%% of one CPU (a cgroup "
                             "CPU quota), so the server, not wrk or nginx, is the bottleneck")
    parser.add_argument("--install-deps", action="store_true",
                        help="as root, apt-get install the build dependencies (libev-dev)")
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 3.0 if args.quick else 10.0
    if args.workloads is None:
        args.workloads = ["hello"] if args.quick else list(WORKLOADS)
    for name in args.servers:
        if name not in SERVERS:
            parser.error(f"unknown server {name!r} (choose from {', '.join(SERVERS)})")
    for name in args.workloads:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r} (choose from {', '.join(WORKLOADS)})")
    if any(t < 1 for t in args.threads):
        parser.error("--threads: counts must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat: at least 1")
    if args.cpu_quota is not None:
        if not 1 <= args.cpu_quota <= 100:
            parser.error("--cpu-quota: a percentage of one CPU, from 1 to 100")
        if cpu_cgroup_parent() is None:
            parser.error("--cpu-quota needs a writable cgroup cpu controller (run as root)")
    if shutil.which("wrk") is None:
        log("wrk is not installed: `apt-get install -y wrk` (Debian/Ubuntu) or build it "
            "from https://github.com/wg/wrk")
        return 2

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"command: {command}", flush=True)

    ensure_rwsgi()
    install_failures = ensure_venv(args.install_deps)
    install_wheel()

    cpus = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    pinning = shutil.which("taskset") is not None and {0, 1} <= cpus
    if not pinning:
        log("warning: no pinning (needs taskset and CPUs 0 and 1)")

    servers, skipped = [], {}
    for key in args.servers:
        why = server_available(key)
        if why is None:
            servers.append(SERVERS[key])
        else:
            skipped[key] = install_failures.get(key, why)
            log(f"skipping {key}: {skipped[key]}")

    workloads = [WORKLOADS[w] for w in args.workloads]
    cells: list[Cell] = []
    for workload in workloads:
        for threads in args.threads:
            for server in servers:
                if not runs(server, workload):
                    continue
                if not server.threaded:
                    if threads != args.threads[0]:
                        continue
                    cells.append(Cell(server, None, workload))
                elif server.fixed_threads is not None:
                    if threads != args.threads[-1]:
                        continue
                    cells.append(Cell(server, server.fixed_threads, workload))
                else:
                    cells.append(Cell(server, threads, workload))
    # Rows sorted for reading: workload, then thread count ("-" last), in server order.
    order = {key: i for i, key in enumerate(SERVERS)}
    cells.sort(key=lambda c: (workloads.index(c.workload),
                              c.threads if c.threads is not None else 1 << 30,
                              order[c.server.key]))

    RESULTS.mkdir(parents=True, exist_ok=True)
    logdir = RESULTS / "logs"
    logdir.mkdir(exist_ok=True)
    versions = {s.key: server_version(s.key) for s in servers}
    load_before = loadavg()
    started = datetime.datetime.now().astimezone()

    def on_term(signum, frame):  # turn SIGTERM into the same cleanup as Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    interrupted = False
    try:
        # Rounds rather than a cell's runs back to back: a slow spell of the
        # machine then falls on every server alike.
        for round_ in range(args.repeat):
            for cell in cells:
                if cell.failure:
                    continue
                run_cell(cell, args.duration, pinning, logdir, args.cpu_quota,
                         round_ + 1 if args.repeat > 1 else None)
                if cell.failure:
                    log(f"    FAILED: {cell.failure}")
    except KeyboardInterrupt:
        interrupted = True
        log("interrupted: servers stopped; partial results follow")
    finally:
        for pgid in list(_live_groups):
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    load_after = loadavg()
    for cell in cells:
        cell.settle()

    done = [c for c in cells if c.rps is not None or c.failure]
    body = table(done)
    failures = [c for c in done if c.failure]
    notes = []
    for key, why in skipped.items():
        notes.append(f"- {key}: not run ({why})")
    for c in failures:
        notes.append(f"- {c.server.label} threads={c.threads or '-'} {c.workload.name}: "
                     f"{c.failure}")
    report = [
        f"# rwsgi load benchmark — {started:%Y-%m-%d %H:%M %Z}",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_info()}; load average before {load_before}, after {load_after}.",
        "",
        "Versions: " + "; ".join(dict.fromkeys(versions.values()))
        + (f"; {nginx_version()}" if any(s.via_nginx for s in servers) else "")
        + f"; {wrk_version()}.",
        "",
        body,
        "",
        legend(args, workloads, pinning, {c.server.proxy for c in done if c.server.via_nginx}),
    ]
    cpu_rows = [c for c in done if c.server.via_nginx and c.cpu and not c.failure]
    if cpu_rows:
        report += ["", "CPU during the measurement, nginx rows (% of one core; of the "
                   f"bench's processes the app server alone is on CPU {SERVER_CPU}, nginx and wrk "
                   f"share CPU {WRK_CPU}):", ""]
        for c in cpu_rows:
            per_request = 1e4 * c.cpu.get("server", 0) / c.rps  # µs of CPU per request
            every_run = ""
            if len(c.runs) > 1:
                each = ", ".join(f"{1e4 * run['cpu'].get('server', 0) / run['rps']:.0f}"
                                 for run in c.runs)
                every_run = f"; every run, in order: {each} µs"
            report.append(f"- {c.server.label}, threads {c.threads}, {c.workload.name}: "
                          f"app server {c.cpu.get('server', 0):.0f}% "
                          f"({per_request:.0f} µs CPU per request), "
                          f"nginx {c.cpu.get('nginx', 0):.0f}%, wrk {c.cpu.get('wrk', 0):.0f}%"
                          + every_run)
    if notes:
        report += ["", "Not measured:", *notes]
    if interrupted:
        report += ["", "**Interrupted: partial results.**"]
    commands = []
    for c in done:
        commands.append(f"# {c.server.label}, threads {c.threads or '-'}, {c.workload.name}")
        commands += [cmd for cmd in (c.server_cmd, c.wrk_cmd) if cmd]
    text = "\n".join(report) + "\n"
    print()
    print(text, flush=True)
    full = text + "\n<details><summary>Command lines</summary>\n\n```\n" + \
        "\n".join(commands) + "\n```\n</details>\n"
    out = RESULTS / ("interrupted.md" if interrupted else "latest.md")
    out.write_text(full)
    log(f"written to {out} (server logs and raw wrk output in {logdir})")
    if interrupted:
        return 130
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
