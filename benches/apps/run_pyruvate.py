"""Runs one bench app under pyruvate: python run_pyruvate.py MODULE HOST PORT THREADS.

pyruvate has no CLI; pyruvate.serve(app, "host:port", num_workers) blocks,
serving with num_workers threads in this one process.
"""

import importlib
import os
import sys

import pyruvate

module, host, port, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
app = importlib.import_module(module).application
pyruvate.serve(app, f"{host}:{port}", threads)
