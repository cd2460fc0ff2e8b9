"""Workload "big": a 64 KiB (65536-byte) body with an explicit Content-Length."""

BODY = b"x" * 65536
HEADERS = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(BODY)))]


def application(environ, start_response):
    start_response("200 OK", HEADERS)
    return [BODY]
