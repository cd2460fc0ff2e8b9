"""Workload "upload": reads the whole request body and returns its length."""


def application(environ, start_response):
    body = environ["wsgi.input"].read()
    reply = str(len(body)).encode()
    start_response(
        "200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(reply)))]
    )
    return [reply]
