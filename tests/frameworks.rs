//! Flask and Django (examples/) served by rwsgi from the test virtualenv
//! (`--home $RWSGI_TEST_VENV`; see `make venv`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, chunked, django_options, flask_options, pattern};
use serde_json::json;
use std::path::Path;

fn flask(venv: &Path) -> Server {
    let venv = venv.to_string_lossy().into_owned();
    Server::start(&[&flask_options(&venv)[..], &["--threads", "2"]].concat())
}

fn django(venv: &Path) -> Server {
    let venv = venv.to_string_lossy().into_owned();
    Server::start(&[&django_options(&venv)[..], &["--threads", "2"]].concat())
}

/// A hand-built multipart/form-data body.
fn multipart(boundary: &str, field: (&str, &str), file: (&str, &str, &[u8])) -> Vec<u8> {
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\n{}\r\n",
        field.0, field.1
    )
    .into_bytes();
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{}\"; filename=\"{}\"\r\n\
             Content-Type: application/octet-stream\r\n\r\n",
            file.0, file.1
        )
        .as_bytes(),
    );
    body.extend_from_slice(file.2);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

fn post(server: &Server, target: &str, content_type: &str, body: &[u8]) -> common::Response {
    let mut raw = format!(
        "POST {target} HTTP/1.1\r\nHost: test\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body);
    server.request(raw)
}

#[test]
fn flask_app() {
    let Some(venv) = common::venv() else { return };
    let server = flask(&venv);

    let response = server.get("/");
    assert_eq!((response.status, response.text().as_str()), (200, "Hello from Flask\n"));

    // A 200 KB JSON body (over nothing: under post-buffering, read up front).
    let payload = format!("{{\"data\": \"{}\"}}", "x".repeat(200_000));
    let response = post(&server, "/echo", "application/json", payload.as_bytes());
    assert_eq!(response.status, 200);
    let echo = response.json();
    assert_eq!(echo["length"], json!(payload.len()));
    assert_eq!(echo["content_type"], "application/json");
    assert_eq!(echo["head"], payload[..64]);

    // The same body chunked: Werkzeug reads to EOF thanks to
    // wsgi.input_terminated.
    let bytes = payload.as_bytes();
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend(chunked(&bytes.chunks(16_384).collect::<Vec<_>>()));
    let response = server.request(raw);
    assert_eq!(response.json()["length"], json!(payload.len()), "chunked upload");

    // A multipart upload with a file.
    let file = pattern(50_000);
    let boundary = "----rwsgiBoundary7MA4YWxkTrZu0gW";
    let body = multipart(boundary, ("title", "hello form"), ("file", "data.bin", &file));
    let response =
        post(&server, "/form", &format!("multipart/form-data; boundary={boundary}"), &body);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.json(),
        json!({"fields": {"title": "hello form"}, "file_name": "data.bin", "file_size": 50_000})
    );

    let response = server.get("/stream?n=4");
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert_eq!(response.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert!(response.complete);

    let who = server
        .request(
            "GET /whoami?x=1 HTTP/1.1\r\nHost: app.example:8443\r\nUser-Agent: rwsgi-test\r\nConnection: close\r\n\r\n",
        )
        .json();
    assert_eq!(who["remote_addr"], "127.0.0.1");
    assert_eq!(who["scheme"], "http");
    assert_eq!(who["host"], "app.example:8443");
    assert_eq!(who["path"], "/whoami");
    assert_eq!(who["query"], "x=1");
    assert_eq!(who["user_agent"], "rwsgi-test");

    let mut conn = server.conn();
    conn.send(b"GET /boom HTTP/1.1\r\nHost: test\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 500);
    assert!(!response.text().contains("boom from flask"), "error details on the wire");
    conn.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(conn.read_response().text(), "Hello from Flask\n");
    assert!(server.log_contains("boom from flask"), "{}", server.log());
}

#[test]
fn django_app() {
    let Some(venv) = common::venv() else { return };
    let server = django(&venv);

    let response = server.get("/");
    assert_eq!((response.status, response.text().as_str()), (200, "Hello from Django\n"));

    let body = br#"{"a": [1, 2, 3], "s": "caf\u00e9"}"#;
    let response = post(&server, "/echo", "application/json", body);
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(
        response.json(),
        json!({"method": "POST", "length": body.len(), "json": {"a": [1, 2, 3], "s": "café"}})
    );

    let meta = server
        .request(
            "GET /meta?x=1&y=two HTTP/1.1\r\nHost: site.example:8080\r\nCookie: other=1; session=abc123\r\nConnection: close\r\n\r\n",
        )
        .json();
    assert_eq!(
        meta,
        json!({
            "path": "/meta",
            "path_info": "/meta",
            "script_name": "",
            "query": {"x": "1", "y": "two"},
            "host": "site.example:8080",
            "secure": false,
            "cookie": "abc123",
        })
    );

    let response = server.get("/stream?n=5");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "line 0\nline 1\nline 2\nline 3\nline 4\n");
    assert!(response.complete);

    let mut conn = server.conn();
    conn.send(b"GET /boom HTTP/1.1\r\nHost: test\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 500);
    assert!(!response.text().contains("boom from django"), "error details on the wire");
    conn.send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    assert_eq!(conn.read_response().text(), "Hello from Django\n");
    assert!(server.log_contains("boom from django"), "{}", server.log());
}

#[test]
fn flask_head_keeps_the_connection() {
    let Some(venv) = common::venv() else { return };
    let server = flask(&venv);
    let mut conn = server.conn();
    conn.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!((head.status, head.header("content-length")), (200, Some("17")));
    let sent = conn.try_send(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n");
    let next = sent.ok().and_then(|()| conn.try_read_response(false).ok());
    let next = next.expect("the connection closed after Flask's HEAD response");
    assert_eq!(next.text(), "Hello from Flask\n");
}
