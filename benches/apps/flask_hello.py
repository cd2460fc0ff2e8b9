"""Hello world through Flask: routing, a request context and a Response
object per request, the framework cost most real apps pay."""

import pathlib
import site

# Flask is installed in the peers' virtualenv (benches/.venv); servers that
# embed their own interpreter (rwsgi, uWSGI) find it here, so every server
# runs with the same command line as for the other workloads.
for packages in (pathlib.Path(__file__).resolve().parents[1] / ".venv" / "lib").glob(
    "python3*/site-packages"
):
    site.addsitedir(str(packages))

from flask import Flask  # noqa: E402

app = Flask(__name__)
application = app


@app.get("/")
def index():
    return "Hello, World!"
