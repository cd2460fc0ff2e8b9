"""The Django example, plus `/__collect__`: a full `gc.collect()` in the
worker that serves it, answered with the worker's pid. For benches/rss.py:
every long-running worker meets a full collection sooner or later, and
what it copies of the app the master loaded shows there."""

import gc
import os

from mysite.wsgi import application as django_app


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/__collect__":
        gc.collect()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    return django_app(environ, start_response)
