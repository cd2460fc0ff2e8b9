"""rwsgi: a fast, strict WSGI server, a drop-in successor to uWSGI.

The server is native code (``rwsgi._rwsgi``); this package only starts it
inside the interpreter that runs it, so the app sees this interpreter's
virtualenv as its own. ``rwsgi ...`` (the console script) and
``python -m rwsgi ...`` take uWSGI's options and config files.
"""

from rwsgi._rwsgi import run as _run


def main() -> None:
    """The ``rwsgi`` command: runs until the server stops, then ends the
    process with its exit status (without finalising the interpreter, as
    the workers end)."""
    _run()
