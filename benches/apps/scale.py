"""The app of the scale-out run: which host and code version answered;
/slow takes 200 ms, so stops and reloads find requests in flight."""

import os
import time

VERSION = "v1"
HOST = os.environ.get("SCALE_HOST", "?")


def application(environ, start_response):
    if environ["PATH_INFO"].endswith("/slow"):
        time.sleep(0.2)
    body = f"{HOST} {VERSION}".encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
