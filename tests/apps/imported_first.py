"""Imported by rwsgi before the app (`import = imported_first`): leaves a
mark the app can report (/env?key=IMPORTED_FIRST)."""

import os

os.environ["IMPORTED_FIRST"] = "yes"
