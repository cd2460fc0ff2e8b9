"""The part of an nginx config every harness here shares: one process in
the foreground (or a master and one worker, for a harness that reloads
nginx's config), its pid, error log and temporary files in a directory of
the run's own, and no access log."""

from __future__ import annotations

from pathlib import Path


def nginx_config(tmp: Path, http: str, connections: int = 4096, reloads: bool = False) -> str:
    """A whole config for `nginx -p tmp -c ...`, with `http` (upstreams,
    servers, tuning) inside its http block. `reloads`: with a master
    process, which reads the config again on SIGHUP."""
    return f"""\
daemon off;
master_process {"on" if reloads else "off"};
worker_processes 1;
error_log {tmp}/nginx-error.log warn;
pid {tmp}/nginx.pid;
events {{ worker_connections {connections}; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
{http}
}}
"""
