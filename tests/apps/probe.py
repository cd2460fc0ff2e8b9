"""The integration tests' app: each path exercises one part of PEP 3333.

Paths (see `application` at the bottom):
  /environ         the environ as JSON (non-str values as their type name)
  /echo            the body read with read(); /echo?via=readline|iter|readlines|chunks|parts|line-then-read
                   (chunks: read(1000) until empty; parts: read(20000), a size rwsgi lends bodies in)
                   (X-Length: its length; X-Transfer-Encoding: the request's, or none)
  /stream?n=N      a generator of N chunks, no Content-Length
  /sleep?s=S       sleeps S seconds (threads test); &mark=1 first logs
                   "sleep started" through wsgi.errors
  /spin?s=S        a tight pure-Python loop for S seconds; &mark=1 as /sleep
  /block-read?s=S  a blocking socket read nobody answers (S seconds at most);
                   &mark=1 as /sleep
  /gil-sleep?s=S   a C call that sleeps S seconds holding the GIL (ctypes'
                   PyDLL keeps it); &mark=1 as /sleep
  /write           uses the write() callable, then returns a list
  /file            wsgi.file_wrapper over a real file (sendfile); ?bytesio=1 over BytesIO
  /error-before    raises before start_response
  /error-after     raises after the first body chunk was sent
  /bad-header      a header value with CRLF (must become a 500)
  /hop             a hop-by-hop header (must become a 500)
  /unicode-header  a header value outside latin-1 (must become a 500)
  /str-body        yields str instead of bytes (must become a 500)
  /twice           start_response twice without exc_info (must become a 500)
  /exc-info        start_response replaced through exc_info before sending
  /cl-short        Content-Length 100, 10 bytes of body
  /cl-long         Content-Length 2, 12 bytes of body
  /endless         an endless generator; counts close() calls in /closes
  /closing-list    a list subclass with close(), counted in /closes
  /closes          how many response iterables had close() called
  /closing         "ab" from an iterable whose close() is counted
  /errors          writes two lines to wsgi.errors
  /status?code=N   an empty response with that status
  /print           prints a line to stdout and one to stderr (for logto)

More of PEP 3333, each checked by tests/http_protocol.rs or tests/pep3333.rs:
  /input-api       a fixed sequence of wsgi.input calls on the body, as JSON
  /lazy-start      a generator that calls start_response on its first next()
  /empty-chunks    a generator yielding empty bytestrings between "a" and "b"
  /late-exc-info   start_response(..., exc_info) after the head was sent; logs
                   whether it re-raised
  /close-raises    "ok" from an iterable whose close() raises
  /bad-status?k=K  an invalid status line (crlf, text, short, long, unicode, bytes)
  /none            returns None
  /no-start        returns a body without calling start_response
  /app-cl          Content-Length 6 declared, body from a generator
  /cl-zero         Content-Length 0 and an empty list
  /big-header      a valid 32 KiB response header
  /unicode-errors  non-ASCII text to wsgi.errors
  /write-only      the whole body through write(), then an empty list
  /204-body        status 204 with a body (which must not go out)
  /head-aware      "hello" with Content-Length 5; for HEAD the same headers and
                   an empty body (what Werkzeug and Django do); ?code=304: a 304
                   with that Content-Length and no body (RFC 9110 §8.6 allows it)

The process's state, for tests/uwsgi.rs (uWSGI's "magic" vars must be inert):
  /process?env=NAME&module=MOD
                   JSON: pid, cwd, os.environ[NAME] (null if unset), sys.prefix,
                   sys.executable, whether MOD is in sys.modules
  /read-record?tag=T
                   reads wsgi.input with read(), catching any exception, and
                   records [T, "read N bytes"] or [T, "OSError: ..."]
  /read-records    the records so far, as a JSON list

For tests/fastcgi.rs (what an aborted request did, recorded in /read-records):
  /slow-stream?n=N&delay=S&tag=T
                   N chunks "tick I\n", S seconds apart; close() records
                   [T, "closed after K of N"] (K chunks were produced)
  /read-lazy?tag=T an iterable that yields "reading\n", then reads wsgi.input
                   (recording [T, "read N bytes"] or [T, "OSError: ..."]) and
                   yields the outcome; close() records [T, "closed"]

For tests/slow_clients.rs:
  /big?size=K      one body of K bytes, as a list

For tests/inline.rs (where Python runs with threads = 1):
  /where?kind=list|gen
                   JSON {"call": thread ident during the app call, "iter":
                   thread ident while the body is iterated (gen only)}
  /errors-gen      "call" to wsgi.errors in the app call, "iter" and "end"
                   while its generator yields "a" and "b"
  /big-stream?n=N&size=K
                   a generator of N chunks of K bytes
  /overlap?kind=list|gen&s=S
                   counts requests in Python at once (app call to the end of
                   the iteration), sleeping S seconds in it; /overlap-max:
                   the most seen at once, and every wsgi.multithread seen
"""

import json
import os
import sys
import tempfile
import threading
import time
from urllib.parse import parse_qs

_lock = threading.Lock()
_closes = {"count": 0}
_reads = []


class Closing:
    """An iterable whose close() is counted."""

    def __init__(self, chunks):
        self.chunks = chunks

    def __iter__(self):
        return iter(self.chunks)

    def close(self):
        with _lock:
            _closes["count"] += 1


class ClosingList(list):
    """A list subclass with close(): PEP 3333 still wants it called."""

    def close(self):
        with _lock:
            _closes["count"] += 1


def endless():
    try:
        while True:
            yield b"x" * 16384
            time.sleep(0.001)
    finally:
        with _lock:
            _closes["count"] += 1


def _environ_json(environ):
    out = {}
    for key, value in environ.items():
        out[key] = value if isinstance(value, str) else type(value).__name__
    out["wsgi.version"] = list(environ["wsgi.version"])
    out["wsgi.multithread"] = environ["wsgi.multithread"]
    out["wsgi.multiprocess"] = environ["wsgi.multiprocess"]
    out["wsgi.run_once"] = environ["wsgi.run_once"]
    out["wsgi.input_terminated"] = environ.get("wsgi.input_terminated")
    out["_is_dict"] = type(environ) is dict
    return json.dumps(out, sort_keys=True).encode()


def _read_body(environ, via):
    stream = environ["wsgi.input"]
    if via == "readline":
        parts = []
        while True:
            line = stream.readline()
            if not line:
                break
            parts.append(line)
        return b"".join(parts)
    if via == "iter":
        return b"".join(line for line in stream)
    if via == "readlines":
        return b"".join(stream.readlines())
    if via == "line-then-read":
        first = stream.readline()
        return first + stream.read()
    if via in ("chunks", "parts"):
        parts = []
        while True:
            chunk = stream.read(1000 if via == "chunks" else 20000)
            if not chunk:
                break
            parts.append(chunk)
        return b"".join(parts)
    return stream.read()


_FILE = os.path.join(tempfile.gettempdir(), "rwsgi-probe-file-%d.bin" % os.getpid())


def _file_path():
    if not os.path.exists(_FILE):
        with open(_FILE, "wb") as f:
            f.write(bytes(range(256)) * 4096)  # 1 MiB
    return _FILE


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    text = [("Content-Type", "text/plain")]

    if path == "/environ":
        body = _environ_json(environ)
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/echo":
        body = _read_body(environ, query.get("via"))
        framing = environ.get("HTTP_TRANSFER_ENCODING", "none")
        start_response(
            "200 OK", text + [("X-Length", str(len(body))), ("X-Transfer-Encoding", framing)]
        )
        return [body]
    if path == "/stream":
        start_response("200 OK", text)
        return (b"chunk %d\n" % i for i in range(int(query.get("n", 3))))
    if path in ("/sleep", "/spin", "/block-read", "/gil-sleep"):
        if query.get("mark"):
            environ["wsgi.errors"].write("sleep started\n")
            environ["wsgi.errors"].flush()
        seconds = float(query.get("s", 1))
        if path == "/sleep":
            time.sleep(seconds)
        elif path == "/gil-sleep":
            import ctypes
            # sleep(3) returns early, with what is left, when a signal
            # lands on this thread: sleep that too, still holding the GIL.
            left = int(seconds)
            while left:
                left = ctypes.PyDLL(None).sleep(left)
        elif path == "/spin":
            until = time.monotonic() + seconds
            while time.monotonic() < until:
                pass
        else:
            import socket
            mine, theirs = socket.socketpair()
            mine.settimeout(seconds)
            try:
                mine.recv(1)
            except socket.timeout:
                pass
            finally:
                mine.close()
                theirs.close()
        start_response("200 OK", text)
        return [b"slept"]
    if path == "/write":
        write = start_response("200 OK", text)
        write(b"written;")
        return [b"returned"]
    if path == "/file":
        if query.get("bytesio"):
            import io

            filelike = io.BytesIO(b"from bytesio")
        else:
            filelike = open(_file_path(), "rb")
            filelike.seek(int(query.get("offset", 0)))
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](filelike, 65536)
    if path == "/error-before":
        raise RuntimeError("failing before start_response")
    if path == "/error-after":
        def failing():
            yield b"first part;"
            raise RuntimeError("failing after the head was sent")

        start_response("200 OK", text)
        return failing()
    if path == "/bad-header":
        start_response("200 OK", [("X-Bad", "a\r\nX-Injected: evil")])
        return [b"never"]
    if path == "/hop":
        start_response("200 OK", [("Connection", "close")])
        return [b"never"]
    if path == "/unicode-header":
        start_response("200 OK", [("X-Euro", "\u20ac")])
        return [b"never"]
    if path == "/str-body":
        start_response("200 OK", text)
        return ["not bytes"]
    if path == "/twice":
        start_response("200 OK", text)
        start_response("201 Created", text)
        return [b"never"]
    if path == "/exc-info":
        start_response("200 OK", text)
        try:
            raise ValueError("replaced")
        except ValueError:
            start_response("503 Service Unavailable", text, sys.exc_info())
        return [b"replaced"]
    if path == "/cl-short":
        start_response("200 OK", text + [("Content-Length", "100")])
        return [b"0123456789"]
    if path == "/cl-long":
        start_response("200 OK", text + [("Content-Length", "2")])
        return Closing([b"0123456789", b"ab"])
    if path == "/endless":
        start_response("200 OK", text)
        return endless()
    if path == "/closes":
        start_response("200 OK", text)
        return [str(_closes["count"]).encode()]
    if path == "/closing":
        start_response("200 OK", text)
        return Closing([b"a", b"b"])
    if path == "/closing-list":
        start_response("200 OK", text)
        return ClosingList([b"a", b"b"])
    if path == "/errors":
        environ["wsgi.errors"].write("first error line\nsecond ")
        environ["wsgi.errors"].writelines(["error line\n"])
        environ["wsgi.errors"].flush()
        start_response("200 OK", text)
        return [b"logged"]
    if path == "/print":
        print("printed to stdout by the app", flush=True)
        print("printed to stderr by the app", file=sys.stderr, flush=True)
        start_response("200 OK", text)
        return [b"printed"]
    if path == "/status":
        start_response("%s Whatever" % query.get("code", "200"), [])
        return []
    extra = _more(environ, start_response, path, query, text)
    if extra is not None:
        return extra
    start_response("404 Not Found", text)
    return [b"not found: " + path.encode("latin-1")]


def _record(tag, outcome):
    with _lock:
        _reads.append([tag, outcome])


class SlowStream:
    """N chunks, `delay` seconds apart; close() records how many went."""

    def __init__(self, n, delay, tag):
        self.n, self.delay, self.tag, self.sent = n, delay, tag, 0

    def __iter__(self):
        for i in range(self.n):
            if i:
                time.sleep(self.delay)
            self.sent += 1
            yield b"tick %d\n" % i

    def close(self):
        _record(self.tag, "closed after %d of %d" % (self.sent, self.n))


class ReadLazy:
    """Reads the body only after the response has started."""

    def __init__(self, stream, tag):
        self.stream, self.tag = stream, tag

    def __iter__(self):
        yield b"reading\n"
        try:
            outcome = "read %d bytes" % len(self.stream.read())
        except Exception as exc:  # recorded, not re-raised: the test reads it
            outcome = "%s: %s" % (type(exc).__name__, exc)
        _record(self.tag, outcome)
        yield outcome.encode()

    def close(self):
        _record(self.tag, "closed")


class CloseRaises:
    def __iter__(self):
        return iter([b"ok"])

    def close(self):
        raise RuntimeError("close failed on purpose")


_BAD_STATUS = {
    "crlf": "200 OK\r\nX-Injected: evil",
    "text": "OK",
    "short": "20 OK",
    "long": "2000 OK",
    "unicode": "200 \u20ac",
    "bytes": b"200 OK",
}


_overlaps = {"active": 0, "max": 0, "multithread": []}


def _overlap(environ, start_response, query):
    delay = float(query.get("s", 0.01))
    with _lock:
        _overlaps["active"] += 1
        _overlaps["max"] = max(_overlaps["max"], _overlaps["active"])
        if environ["wsgi.multithread"] not in _overlaps["multithread"]:
            _overlaps["multithread"].append(environ["wsgi.multithread"])

    def leave():
        with _lock:
            _overlaps["active"] -= 1

    time.sleep(delay)
    start_response("200 OK", [("Content-Type", "text/plain")])
    if query.get("kind") != "gen":
        leave()
        return [b"list"]

    def gen():
        try:
            for piece in (b"g", b"e", b"n"):
                time.sleep(delay)
                yield piece
        finally:
            leave()

    return gen()


def _input_api(stream):
    """Each call's result: bytes as latin-1 str, lists as lists."""
    def show(value):
        if isinstance(value, list):
            return [show(v) for v in value]
        if not isinstance(value, bytes):
            return "not bytes: %s" % type(value).__name__
        return value.decode("latin-1")

    calls = [
        ("read(0)", lambda: stream.read(0)),
        ("readline(3)", lambda: stream.readline(3)),
        ("readline()", lambda: stream.readline()),
        ("read(2)", lambda: stream.read(2)),
        ("readline(-1)", lambda: stream.readline(-1)),
        ("readlines(1)", lambda: stream.readlines(1)),
        ("next", lambda: next(iter(stream), b"<eof>")),
        ("readlines()", lambda: stream.readlines()),
        ("read()", lambda: stream.read()),
        ("read(10)", lambda: stream.read(10)),
        ("readline()", lambda: stream.readline()),
        ("list", lambda: list(stream)),
    ]
    return [[name, show(call())] for name, call in calls]


def _more(environ, start_response, path, query, text):
    if path == "/input-api":
        body = json.dumps(_input_api(environ["wsgi.input"])).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/lazy-start":
        def lazy():
            start_response("200 OK", text)
            yield b"lazy"
            yield b" body"

        return lazy()
    if path == "/empty-chunks":
        start_response("200 OK", text)
        return (c for c in [b"", b"a", b"", b"", b"b", b""])
    if path == "/late-exc-info":
        def late():
            yield b"part;"
            try:
                raise ValueError("late failure")
            except ValueError:
                try:
                    start_response("500 Internal Server Error", text, sys.exc_info())
                except ValueError:
                    environ["wsgi.errors"].write("start_response re-raised the exc_info\n")
                    environ["wsgi.errors"].flush()
                    raise
                environ["wsgi.errors"].write("start_response did not raise\n")
                environ["wsgi.errors"].flush()
            yield b"never"

        start_response("200 OK", text)
        return late()
    if path == "/close-raises":
        start_response("200 OK", text)
        return CloseRaises()
    if path == "/bad-status":
        start_response(_BAD_STATUS[query.get("k", "crlf")], text)
        return [b"never"]
    if path == "/none":
        start_response("200 OK", text)
        return None
    if path == "/no-start":
        return [b"never"]
    if path == "/app-cl":
        start_response("200 OK", text + [("Content-Length", "6")])
        return (c for c in [b"abc", b"def"])
    if path == "/cl-zero":
        start_response("200 OK", text + [("Content-Length", "0")])
        return []
    if path == "/big-header":
        start_response("200 OK", text + [("X-Big", "b" * 32768)])
        return [b"big"]
    if path == "/unicode-errors":
        environ["wsgi.errors"].write("unicode caf\u00e9 \u20ac \u2713\n")
        environ["wsgi.errors"].flush()
        start_response("200 OK", text)
        return [b"logged"]
    if path == "/write-only":
        write = start_response("200 OK", text)
        for part in (b"one;", b"two;", b"three"):
            write(part)
        return []
    if path == "/head-aware":
        if query.get("code") == "304":
            start_response("304 Not Modified", [("Content-Length", "5")])
            return []
        start_response("200 OK", text + [("Content-Length", "5")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"hello"]
    if path == "/process":
        module = query.get("module")
        body = json.dumps(
            {
                "pid": os.getpid(),
                "cwd": os.getcwd(),
                "env": os.environ.get(query.get("env", "RWSGI_PWNED")),
                "prefix": sys.prefix,
                "base_prefix": sys.base_prefix,
                "executable": sys.executable,
                "module_loaded": (module in sys.modules) if module else None,
            }
        ).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/read-record":
        try:
            outcome = "read %d bytes" % len(environ["wsgi.input"].read())
        except Exception as exc:  # recorded, not re-raised: the test reads it
            outcome = "%s: %s" % (type(exc).__name__, exc)
        with _lock:
            _reads.append([query.get("tag", ""), outcome])
        start_response("200 OK", text)
        return [outcome.encode()]
    if path == "/read-records":
        with _lock:
            body = json.dumps(_reads).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/slow-stream":
        start_response("200 OK", text)
        return SlowStream(
            int(query.get("n", 10)), float(query.get("delay", 0.05)), query.get("tag", "")
        )
    if path == "/read-lazy":
        start_response("200 OK", text)
        return ReadLazy(environ["wsgi.input"], query.get("tag", ""))
    if path == "/where":
        call = threading.get_ident()
        start_response("200 OK", [("Content-Type", "application/json")])
        if query.get("kind") == "gen":
            return (json.dumps({"call": call, "iter": threading.get_ident()}).encode() for _ in [1])
        return [json.dumps({"call": call}).encode()]
    if path == "/errors-gen":
        errors = environ["wsgi.errors"]
        errors.write("call\n")
        start_response("200 OK", text)

        def gen():
            errors.write("iter\n")
            yield b"a"
            errors.write("end\n")
            yield b"b"

        return gen()
    if path == "/big":
        # One body of SIZE bytes, as a list: Python is done with it at once.
        start_response("200 OK", text)
        return [b"x" * int(query.get("size", 65536))]
    if path == "/big-stream":
        start_response("200 OK", text)
        chunk = b"x" * int(query.get("size", 65536))
        return (chunk for _ in range(int(query.get("n", 10))))
    if path == "/overlap":
        return _overlap(environ, start_response, query)
    if path == "/overlap-max":
        with _lock:
            body = json.dumps(_overlaps).encode()
        start_response("200 OK", [("Content-Type", "application/json")])
        return [body]
    if path == "/204-body":
        start_response("204 No Content", [])
        return [b"must not be sent"]
    return None
