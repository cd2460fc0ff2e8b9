"""Runs one bench app under bjoern: python run_bjoern.py MODULE HOST PORT.

bjoern has no CLI; it is a single-threaded C server started from Python.
"""

import importlib
import os
import sys

import bjoern

module, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
app = importlib.import_module(module).application
bjoern.run(app, host, port)
