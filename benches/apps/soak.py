"""The soak run's app (benches/soak.py): hello world, a 64 KiB response, a
1 MiB upload read whole and hashed, and a Flask app, behind one callable.

Routes are taken from REQUEST_URI (every protocol sends it; nginx's
fastcgi_params send no PATH_INFO), after a one-letter protocol prefix
nginx puts in front (/h/, /u/, /f/):
  /            "Hello, World!"
  /big         65536 bytes
  /upload      the SHA-256 of the body, read whole
  /flask/NAME  Flask's answer: "hello NAME"
"""

import hashlib

from flask import Flask

flask_app = Flask(__name__)


@flask_app.route("/flask/<name>")
def hello(name):
    return f"hello {name}"


BIG = b"x" * 65536


def _reply(start_response, body, content_type=b"text/plain"):
    start_response("200 OK", [("Content-Type", content_type.decode()), ("Content-Length", str(len(body)))])
    return [body]


def application(environ, start_response):
    uri = environ.get("REQUEST_URI", "/").split("?", 1)[0]
    if len(uri) > 2 and uri[2] == "/" and uri[1] in "huf":
        uri = uri[2:]
    if uri == "/big":
        return _reply(start_response, BIG)
    if uri == "/upload":
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length)
        return _reply(start_response, hashlib.sha256(body).hexdigest().encode())
    if uri.startswith("/flask/"):
        environ = dict(environ, PATH_INFO=uri, SCRIPT_NAME="")
        return flask_app(environ, start_response)
    return _reply(start_response, b"Hello, World!")
