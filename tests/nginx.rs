//! rwsgi behind a real nginx (`proxy_pass` over TCP, over a unix socket, and
//! through an `upstream` with keep-alive), with curl as the client.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    NGINX_COMMON as COMMON, Nginx, Server, TempDir, assert_error_then_next, assert_file_through,
    assert_same_fields, assert_streams_through, curl, django_options, environ_via, flask_options,
    nginx_tools as tools, pattern, post_file,
};
use serde_json::Value;
use std::process::Command;

/// nginx proxying everything to `upstream` (a `proxy_pass` URL) with
/// nginx's defaults (HTTP/1.0 to the upstream, request buffering on).
fn plain_proxy(upstream: &str) -> Nginx {
    Nginx::start(&format!(
        "server {{\nlisten 127.0.0.1:@PORT@;\n{COMMON}location / {{ proxy_pass {upstream}; }}\n}}\n"
    ))
}

/// nginx with an `upstream` block kept alive over HTTP/1.1; `/nobuf/`
/// streams request bodies (chunked stays chunked).
fn keepalive_proxy(addr: &str) -> Nginx {
    Nginx::start(&format!(
        "upstream rwsgi {{ server {addr}; keepalive 8; }}\n\
         server {{\nlisten 127.0.0.1:@PORT@;\n{COMMON}\
         location / {{ proxy_pass http://rwsgi; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n\
         location /nobuf/ {{ proxy_pass http://rwsgi/; proxy_http_version 1.1; proxy_set_header Connection \"\"; proxy_request_buffering off; }}\n\
         }}\n"
    ))
}

/// The fields a proxy must not change.
fn assert_same_request(direct: &Value, proxied: &Value) {
    let keys = [
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "REQUEST_URI",
        "HTTP_X_CUSTOM",
        "SCRIPT_NAME",
    ];
    assert_same_fields(direct, proxied, &keys);
}

#[test]
fn environ_through_nginx_over_tcp() {
    if !tools() {
        return;
    }
    let server = Server::probe(&[]);
    let nginx = plain_proxy(&format!("http://{}", server.addr()));
    let direct_url = format!("http://{}/environ?a=1&b=%20x", server.addr());
    let direct = environ_via(&direct_url, &[]);
    let proxied = environ_via(&nginx.url("/environ?a=1&b=%20x"), &[]);
    assert_same_request(&direct, &proxied);
    assert_eq!(direct["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(proxied["SERVER_PROTOCOL"], "HTTP/1.0", "nginx speaks 1.0 to upstreams by default");
    assert_eq!(proxied["REMOTE_ADDR"], "127.0.0.1");

    let post = ["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "hello body"];
    let direct = environ_via(&direct_url, &post);
    let proxied = environ_via(&nginx.url("/environ?a=1&b=%20x"), &post);
    assert_same_request(&direct, &proxied);
    assert_eq!(proxied["CONTENT_LENGTH"], "10");
    assert_eq!(proxied["CONTENT_TYPE"], "text/plain");

    // The percent-decoded path.
    let direct = curl(&[&format!("http://{}/a%20b/%C3%A9", server.addr())]);
    let proxied = curl(&[&nginx.url("/a%20b/%C3%A9")]);
    assert_eq!(direct.body, b"not found: /a b/\xc3\xa9");
    assert_eq!(proxied.body, direct.body);
}

#[test]
fn environ_through_nginx_over_a_unix_socket() {
    if !tools() {
        return;
    }
    let dir = TempDir::new("ngx");
    let sock = dir.join("rwsgi.sock");
    let server = Server::probe(&["--http-socket", &sock, "--chmod-socket=666"]);
    let nginx = plain_proxy(&format!("http://unix:{sock}:"));
    let proxied = environ_via(&nginx.url("/environ?q=unix"), &[]);
    assert_eq!(proxied["REQUEST_METHOD"], "GET");
    assert_eq!(proxied["PATH_INFO"], "/environ");
    assert_eq!(proxied["QUERY_STRING"], "q=unix");
    assert_eq!(proxied["HTTP_X_CUSTOM"], "custom value");
    assert_eq!(proxied["SERVER_PROTOCOL"], "HTTP/1.0");
    assert!(proxied.get("REMOTE_ADDR").is_none_or(|v| v == ""), "{proxied}");
    let body = pattern(300_000);
    let response = post_file(&nginx.url("/echo"), &body, &[]);
    assert_eq!(response.status, 200);
    assert!(response.body == body, "300 KB through the unix socket");
    assert!(server.wait_request_logged("POST", "/echo"));
}

#[test]
fn keepalive_upstream_speaks_http11_and_reuses_connections() {
    if !tools() {
        return;
    }
    let server = Server::probe(&[]);
    let nginx = keepalive_proxy(server.addr());
    let direct = environ_via(&format!("http://{}/environ?k=1", server.addr()), &[]);
    let first = environ_via(&nginx.url("/environ?k=1"), &[]);
    let second = environ_via(&nginx.url("/environ?k=1"), &[]);
    assert_same_request(&direct, &first);
    assert_eq!(first["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(
        first["REMOTE_PORT"], second["REMOTE_PORT"],
        "nginx's kept-alive upstream connection was not reused"
    );
    // A streamed (chunked) response on the kept-alive connection.
    let stream = curl(&[&nginx.url("/stream?n=100")]);
    let want: String = (0..100).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(stream.text(), want);
    let third = environ_via(&nginx.url("/environ?k=1"), &[]);
    assert_eq!(first["REMOTE_PORT"], third["REMOTE_PORT"], "not reused after a chunked response");
}

#[test]
fn large_and_chunked_uploads_through_nginx() {
    if !tools() {
        return;
    }
    let server = Server::probe(&["--threads", "2"]);
    let plain = plain_proxy(&format!("http://{}", server.addr()));
    let keepalive = keepalive_proxy(server.addr());
    let body = pattern(5 * 1024 * 1024);
    let response = post_file(&plain.url("/echo"), &body, &[]);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-length"), Some("5242880"));
    assert!(response.body == body, "5 MiB echo differs");

    let small = pattern(200_000);
    let chunked = ["-H", "Transfer-Encoding: chunked"];
    // Buffered by nginx (sent on with a Content-Length)…
    for url in [plain.url("/echo?via=chunks"), keepalive.url("/echo?via=readline")] {
        let response = post_file(&url, &small, &chunked);
        assert_eq!(response.status, 200, "{url}");
        assert_eq!(response.header("x-transfer-encoding"), Some("none"), "{url}");
        assert_eq!(response.header("x-length"), Some("200000"), "{url}");
        assert!(response.body == small, "{url}");
    }
    // …and streamed through as chunked.
    let response = post_file(&keepalive.url("/nobuf/echo"), &small, &chunked);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-transfer-encoding"), Some("chunked"), "nginx did not stream");
    assert_eq!(response.header("x-length"), Some("200000"));
    assert!(response.body == small);
}

#[test]
fn streaming_and_errors_through_nginx() {
    if !tools() {
        return;
    }
    let server = Server::probe(&[]);
    let nginx = plain_proxy(&format!("http://{}", server.addr()));
    assert_streams_through(&nginx, 50);
    assert_file_through(&nginx);
    assert_error_then_next(&nginx);
}

#[test]
fn truncated_response_is_not_passed_on_as_complete() {
    if !tools() {
        return;
    }
    // Over HTTP/1.1 the response is chunked, so nginx can tell that the
    // body was cut and must not hand it on as complete.
    let server = Server::probe(&[]);
    let nginx = keepalive_proxy(server.addr());
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "20", "-o", "/dev/null", &nginx.url("/error-after")])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "curl got a complete response for a failed body: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(nginx.error_log().contains("upstream prematurely closed"), "{}", nginx.error_log());
    let next = curl(&[&nginx.url("/closing")]);
    assert_eq!((next.status, next.text().as_str()), (200, "ab"));
}

#[test]
fn big_cookies_through_nginx() {
    if !tools() {
        return;
    }
    let server = Server::probe(&[]);
    let nginx = plain_proxy(&format!("http://{}", server.addr()));
    let cookies: String = (0..100).map(|i| format!("c{i:02}={}; ", "v".repeat(58))).collect();
    let cookies = cookies.trim_end_matches("; ").to_string();
    assert!(cookies.len() >= 6 * 1024);
    let header = format!("Cookie: {cookies}");
    let env = environ_via(&nginx.url("/environ"), &["-H", &header]);
    assert_eq!(env["HTTP_COOKIE"], cookies.as_str());
}

#[test]
fn flask_and_django_through_nginx() {
    if !tools() {
        return;
    }
    let Some(venv) = common::venv() else { return };
    let venv = venv.to_string_lossy().into_owned();
    let flask = Server::start(&flask_options(&venv));
    let django = Server::start(&django_options(&venv));
    let nginx = Nginx::start(&format!(
        "server {{\nlisten 127.0.0.1:@PORT@;\n{COMMON}\
         location /flask/ {{ proxy_pass http://{}/; proxy_set_header Host $http_host; }}\n\
         location /django/ {{ proxy_pass http://{}/; proxy_set_header Host $http_host; }}\n}}\n",
        flask.addr(),
        django.addr()
    ));
    let hello = curl(&[&nginx.url("/flask/")]);
    assert_eq!((hello.status, hello.text().as_str()), (200, "Hello from Flask\n"));
    let who = curl(&["-H", "Host: front.example", &nginx.url("/flask/whoami?z=9")]).json();
    assert_eq!(who["host"], "front.example");
    assert_eq!(who["query"], "z=9");
    assert_eq!(who["remote_addr"], "127.0.0.1");
    let echo = post_file(&nginx.url("/flask/echo"), &pattern(2_000_000), &[]);
    assert_eq!(echo.json()["length"], 2_000_000);
    assert_eq!(curl(&[&nginx.url("/flask/boom")]).status, 500);
    assert_eq!(curl(&[&nginx.url("/flask/")]).status, 200);

    let hello = curl(&[&nginx.url("/django/")]);
    assert_eq!((hello.status, hello.text().as_str()), (200, "Hello from Django\n"));
    let meta = curl(&["-b", "session=s1", &nginx.url("/django/meta?a=b")]).json();
    assert_eq!(meta["path"], "/meta");
    assert_eq!(meta["query"]["a"], "b");
    assert_eq!(meta["cookie"], "s1");
    let stream = curl(&[&nginx.url("/django/stream?n=3")]);
    assert_eq!(stream.text(), "line 0\nline 1\nline 2\n");
    let echo = curl(&[
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "{\"k\": 1}",
        &nginx.url("/django/echo"),
    ]);
    assert_eq!(echo.json()["json"]["k"], 1);
    assert_eq!(curl(&[&nginx.url("/django/boom")]).status, 500);
    assert_eq!(curl(&[&nginx.url("/django/")]).status, 200);
}
