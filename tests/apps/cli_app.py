"""The command-line tests' app: which callable, module and interpreter
settings rwsgi applied.

Paths of `application`:
  /              "default callable"
  /env?key=K     os.environ[K], or "<unset>"
  /cwd           os.getcwd()
  /flask         JSON: where `flask` is imported from (or null) and sys.prefix
  /argv          JSON: sys.argv
  /modules?name=M  "yes" if module M is imported, else "no"
  /child-fds     JSON: the sockets a child process inherits (what
                 `ls -l /proc/self/fd` shows it), for close-on-exec
`custom` is a second callable (for --callable and --module mod:callable).
"""

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs


def _reply(start_response, body, content_type="text/plain"):
    start_response("200 OK", [("Content-Type", content_type)])
    return [body.encode("utf-8") if isinstance(body, str) else body]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/env":
        return _reply(start_response, os.environ.get(query.get("key", ""), "<unset>"))
    if path == "/cwd":
        return _reply(start_response, os.getcwd())
    if path == "/flask":
        try:
            import flask

            where = flask.__file__
        except ImportError:
            where = None
        body = json.dumps({"flask": where, "prefix": sys.prefix})
        return _reply(start_response, body, "application/json")
    if path == "/argv":
        return _reply(start_response, json.dumps(sys.argv), "application/json")
    if path == "/modules":
        return _reply(start_response, "yes" if query.get("name") in sys.modules else "no")
    if path == "/child-fds":
        # close_fds=False: the child keeps every descriptor not close-on-exec.
        listing = subprocess.run(
            ["ls", "-l", "/proc/self/fd"], close_fds=False, capture_output=True, text=True
        ).stdout
        sockets = [line.split()[-3] for line in listing.splitlines() if "socket:" in line]
        return _reply(start_response, json.dumps(sockets), "application/json")
    return _reply(start_response, "default callable")


def custom(environ, start_response):
    return _reply(start_response, "custom callable")
