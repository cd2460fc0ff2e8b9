"""Workload "upload-stream": reads the request body in 64 KiB parts, as
Django's and Werkzeug's form parsers do, and returns its length."""


def application(environ, start_response):
    stream = environ["wsgi.input"]
    total = 0
    while True:
        part = stream.read(65536)
        if not part:
            break
        total += len(part)
    reply = str(total).encode()
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))]
    )
    return [reply]
