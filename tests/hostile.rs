//! Hostile and malformed requests: every applicable row of
//! /work/shared/reference/hostile-inputs.md §1.1 (rows 1–18) and item of
//! §1.2 (1–17), limits, timeouts and floods.
//!
//! A rejected request must get exactly one error response with
//! `Connection: close`, then the close; a request pipelined after it must
//! never reach the app; and the server must keep serving.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, Server, assert_logged_once, chunked, latin1, wait_until};
use std::io::Write;
use std::time::{Duration, Instant};

/// Pipelined after every rejected request: it must never be processed.
const SMUGGLED: &[u8] = b"GET /environ?smuggled HTTP/1.1\r\nHost: a\r\n\r\n";

/// Sends `raw` + [`SMUGGLED`] and asserts one response whose status is in
/// `statuses`, announced and actual close, nothing else, and one log line
/// naming the client and the status.
fn assert_rejected_any(server: &Server, raw: &[u8], statuses: &[u16], what: &str) -> u16 {
    let mut conn = server.conn();
    let peer = conn.local_addr();
    let mut bytes = raw.to_vec();
    bytes.extend_from_slice(SMUGGLED);
    // The server may close before reading everything: a failed write is fine.
    let _ = conn.try_send(&bytes);
    let response = conn.try_read_response(false).unwrap_or_else(|e| {
        panic!("{what}: no response (eof={}): got {:?}", e.eof, latin1(&e.received))
    });
    assert!(
        statuses.contains(&response.status),
        "{what}: status {} not in {statuses:?}: {response:?}",
        response.status
    );
    assert_eq!(response.version, 1, "{what}: the status line must say HTTP/1.1");
    assert!(response.says_close(), "{what}: no `Connection: close`: {response:?}");
    let (extra, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(extra.is_empty(), "{what}: more after the rejection: {:?}", latin1(&extra));
    assert!(closed, "{what}: the connection stayed open");
    assert_logged_once(server, "http", &peer, &format!("=> {}", response.status), what);
    response.status
}

fn assert_rejected(server: &Server, raw: &[u8], status: u16, what: &str) {
    assert_rejected_any(server, raw, &[status], what);
}

/// Sends `raw` and expects a 200 (the request was valid).
fn assert_accepted(server: &Server, raw: &[u8], what: &str) -> common::Response {
    let mut conn = server.conn();
    conn.send(raw);
    let response = conn.read_response();
    assert_eq!(response.status, 200, "{what}: {response:?}");
    response
}

/// The server still answers, and nothing smuggled reached the app.
fn assert_still_serving(server: &Server) {
    let response = server.get("/closing");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
    assert!(server.wait_request_logged("GET", "/closing"));
    let log = server.log();
    assert!(!log.contains("smuggled"), "a request after a rejected one was processed:\n{log}");
}

/// The bytes of `text` with every char up to U+00FF as one byte, so
/// "\u{a0}" stands for the raw byte 0xA0.
fn raw_bytes(text: &str) -> Vec<u8> {
    text.chars().map(|c| u8::try_from(u32::from(c)).expect("a latin-1 char")).collect()
}

fn post_echo_with(headers: &str, body: &[u8]) -> Vec<u8> {
    let mut raw = raw_bytes(&format!("POST /echo HTTP/1.1\r\nHost: a\r\n{headers}\r\n"));
    raw.extend_from_slice(body);
    raw
}

fn chunked_post(body: &[u8]) -> Vec<u8> {
    post_echo_with("Transfer-Encoding: chunked\r\n", body)
}

// §1.1 row 1, §1.2 item 1: Content-Length and Transfer-Encoding together.
#[test]
fn cl_and_te_together_are_rejected() {
    let server = Server::probe(&[]);
    let body = b"0\r\n\r\nX";
    for headers in [
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
        "Content-Length: 6\r\ntRANSFER-ENCODING: chunked\r\n",
        "Content-Length: 6\r\nTransfer-Encoding:\tchunked\r\n",
        "Content-Length: 6\r\nTransfer-Encoding: chunked\t\r\n",
        "Content-Length: 6\r\nTransfer-Encoding: \u{a0}chunked\u{a0}\r\n",
        "Content-Length: 6\r\nTransfer-Encoding : chunked\r\n",
        "Content-Length: 6\r\nTransfer-Encoding: identity\r\n",
        "Content-Length: 6\r\nTransfer-Encoding: \u{85}chunked\r\n",
    ] {
        assert_rejected(&server, &post_echo_with(headers, body), 400, headers);
    }
    // Raw 0x85 (NEL) around chunked, not its UTF-8 form.
    let mut raw = b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: \x85chunked\r\n\r\n".to_vec();
    raw.extend_from_slice(body);
    assert_rejected(&server, &raw, 400, "TE \\x85chunked");
    // The brief's exact example: one 400 and nothing else.
    assert_rejected(
        &server,
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        "GET with CL+TE",
    );
    assert_still_serving(&server);
}

// §1.1 row 2 and legal spellings of chunked.
#[test]
fn chunked_bodies_are_decoded() {
    let server = Server::probe(&[]);
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    for headers in [
        "Transfer-Encoding: chunked\r\n",
        "Transfer-Encoding: CHUNKED\r\n",
        "tRANSFER-ENCODING: chunked\r\n",
        "Transfer-Encoding:\tchunked\t\r\n",
    ] {
        let response = assert_accepted(&server, &post_echo_with(headers, body), headers);
        assert_eq!(response.text(), "hello", "{headers}");
    }
    assert_still_serving(&server);
}

// §1.2 item 2: Transfer-Encoding values.
#[test]
fn transfer_encoding_values() {
    let server = Server::probe(&[]);
    let body = b"5\r\nhello\r\n0\r\n\r\n";
    // chunked not final (or not there): the length cannot be determined (400).
    for te in [
        "chunked, identity",
        "identity",
        "identity, chunked",
        "xchunked",
        "chunked-false",
        ",chunked",
        "chunked,",
        "chunked, chunked",
        "gzip",
        "blegh",
        "\u{a0}chunked\u{a0}",
        "",
    ] {
        let headers = format!("Transfer-Encoding: {te}\r\n");
        assert_rejected(&server, &post_echo_with(&headers, body), 400, &headers);
    }
    assert_rejected(
        &server,
        &post_echo_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", body),
        400,
        "two TE fields",
    );
    // A coding we do not implement before chunked: 501.
    for te in ["gzip, chunked", "blegh, chunked", "deflate,chunked"] {
        let headers = format!("Transfer-Encoding: {te}\r\n");
        assert_rejected(&server, &post_echo_with(&headers, body), 501, &headers);
    }
    // TE in an HTTP/1.0 request is faulty framing.
    assert_rejected(
        &server,
        b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
        "TE in HTTP/1.0",
    );
    assert_still_serving(&server);
}

// §1.1 rows 3–5, §1.2 item 3: Content-Length values.
#[test]
fn content_length_values() {
    let server = Server::probe(&[]);
    for value in [
        "1\r\nContent-Length: 0",
        "5\r\nContent-Length: 5",
        "5, 5",
        "+3",
        "-1",
        "0x10",
        "1_0",
        "3abc",
        "1Z",
        "",
        "5 5",
        "99999999999999999999999",
        "18446744073709551616",
        "\u{a0}5",
    ] {
        let headers = format!("Content-Length: {value}\r\n");
        assert_rejected(&server, &post_echo_with(&headers, b"hello"), 400, &headers);
    }
    // Legal forms: OWS around the value, leading zeros.
    for (value, body) in [
        ("5", "hello"),
        (" 5", "hello"),
        ("5 ", "hello"),
        ("\t5\t", "hello"),
        ("010", "0123456789"),
    ] {
        let headers = format!("Content-Length:{value}\r\n");
        let response =
            assert_accepted(&server, &post_echo_with(&headers, body.as_bytes()), &headers);
        assert_eq!(response.text(), body, "{headers:?}");
    }
    assert_still_serving(&server);
}

// §1.2 item 4: chunk-size lines. The app reads the body, so the error
// surfaces while it runs; the client must still get a 400 and a close.
#[test]
fn chunk_size_lines() {
    let server = Server::probe(&[]);
    for body in [
        &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-0\r\n\r\n",
        b"5_0\r\nhello\r\n0\r\n\r\n",
        b"   0\r\n\r\n",
        b"\r\nhello\r\n0\r\n\r\n",
        b"FFFFFFFFFFFFFFFF1\r\n",
        b"0_2e\r\n\r\n",
        b"5\r\r;ext\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0\r\n\r\n",
        b"5\r\nhelloX\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhello\r\n0\r\n\n",
        b"g\r\n",
    ] {
        assert_rejected(&server, &chunked_post(body), 400, &latin1(body));
    }
    // A body the app does not read: the response may already be out, but
    // the connection must close without processing what follows.
    let mut conn = server.conn();
    let mut raw = b"POST /closing HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n".to_vec();
    raw.extend_from_slice(SMUGGLED);
    conn.send(&raw);
    let first = conn.read_response();
    assert!(first.status == 200 || first.status == 400, "{first:?}");
    let (extra, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed && extra.is_empty(), "after a bad unread chunked body: {:?}", latin1(&extra));
    assert_still_serving(&server);
}

// §1.2 item 5: chunk extensions.
#[test]
fn chunk_extensions() {
    let server = Server::probe(&[]);
    for body in [
        &b"5;name=value\r\nhello\r\n0\r\n\r\n"[..],
        b"5;name=\"quoted; value\"\r\nhello\r\n0\r\n\r\n",
        b"5 ;a;b=c\r\nhello\r\n0;x=y\r\n\r\n",
    ] {
        let response = assert_accepted(&server, &chunked_post(body), &latin1(body));
        assert_eq!(response.text(), "hello");
    }
    let mut long = b"5;".to_vec();
    long.extend(std::iter::repeat_n(b'x', 8000));
    long.extend_from_slice(b"\r\nhello\r\n0\r\n\r\n");
    assert_rejected(&server, &chunked_post(&long), 400, "8000-byte chunk extension");
    for body in [
        &b"5;a\rb\r\nhello\r\n0\r\n\r\n"[..],
        b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",
    ] {
        assert_rejected(&server, &chunked_post(body), 400, &latin1(body));
    }
    assert_still_serving(&server);
}

// §1.2 item 6: trailers.
#[test]
fn trailers() {
    let server = Server::probe(&["--buffer-size", "4096"]);
    // Framing fields in the trailer section must not change anything:
    // either rejected (400) or ignored with the connection in sync.
    let mut raw = chunked_post(
        b"5\r\nhello\r\n0\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\nHost: evil\r\n\r\n",
    );
    raw.extend_from_slice(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut conn = server.conn();
    conn.send(&raw);
    let response = conn.read_response();
    if response.status == 400 {
        assert!(response.says_close());
        conn.expect_closed();
    } else {
        assert_eq!((response.status, response.text().as_str()), (200, "hello"));
        let next = conn.read_response();
        assert_eq!((next.status, next.text().as_str()), (200, "ab"), "desync after trailers");
    }
    // A trailer section larger than buffer-size: 431.
    let mut body = b"5\r\nhello\r\n0\r\n".to_vec();
    for i in 0..300 {
        body.extend_from_slice(format!("X-Trailer-{i}: value\r\n").as_bytes());
    }
    body.extend_from_slice(b"\r\n");
    assert_rejected(&server, &chunked_post(&body), 431, "huge trailer section");
    // Missing final CRLF: the next request is not a trailer.
    assert_rejected(&server, &chunked_post(b"5\r\nhello\r\n0\r\n"), 400, "no final CRLF");
    for body in [
        &b"5\r\nhello\r\n0\r\nX : y\r\n\r\n"[..],
        b"5\r\nhello\r\n0\r\nX: a\x00b\r\n\r\n",
        b"5\r\nhello\r\n0\r\n X: y\r\n\r\n",
    ] {
        assert_rejected(&server, &chunked_post(body), 400, &latin1(body));
    }
    assert_still_serving(&server);
}

// §1.1 rows 8–9, §1.2 item 7: line endings, obs-fold, bare CR.
#[test]
fn line_endings_and_obs_fold() {
    let server = Server::probe(&[]);
    for raw in [
        &b"GET /closing HTTP/1.1\nHost: a\n\n"[..],
        b"GET /closing HTTP/1.1\r\nHost: a\n\r\n",
        b"GET /closing HTTP/1.1\nHost: a\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n",
        b"GET /closing HTTP/1.1\rHost: a\r\n\r\n",
        b"\nGET /closing HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(&server, raw, 400, &latin1(raw));
    }
    // Empty lines before the request line are allowed (RFC 9112 §2.2).
    let response = assert_accepted(
        &server,
        b"\r\n\r\nGET /closing HTTP/1.1\r\nHost: a\r\n\r\n",
        "leading CRLFs",
    );
    assert_eq!(response.text(), "ab");
    assert_still_serving(&server);
}

// §1.1 row 14, §1.2 item 8: header names.
#[test]
fn header_name_hygiene() {
    let server = Server::probe(&[]);
    assert_rejected(
        &server,
        &post_echo_with("Content-Length : 3\r\n", b"abc"),
        400,
        "space before colon",
    );
    for line in [
        " Host2: a",
        ": x",
        "X-NoColon",
        "X\"Q: 1",
        "X(Q: 1",
        "X/Q: 1",
        "X@Q: 1",
        "X[Q: 1",
        "X{Q: 1",
        "X=Q: 1",
        "X Q: 1",
        "X\tQ: 1",
        "X-Long\r\n-Name: v",
    ] {
        let raw = format!("GET /closing HTTP/1.1\r\nHost: a\r\n{line}\r\n\r\n");
        assert_rejected(&server, raw.as_bytes(), 400, &format!("{line:?}"));
    }
    for byte in [0x00u8, 0x01, 0x7f, 0x80, 0xff] {
        let mut raw = b"GET /closing HTTP/1.1\r\nHost: a\r\nX".to_vec();
        raw.push(byte);
        raw.extend_from_slice(b"Q: 1\r\n\r\n");
        assert_rejected(&server, &raw, 400, &format!("name byte {byte:#x}"));
    }
    // Whitespace before the first header line.
    assert_rejected(&server, b"GET /closing HTTP/1.1\r\n Host: a\r\n\r\n", 400, "leading SP");
    assert_still_serving(&server);
}

// §1.1 rows 11 and 18, §1.2 item 9: header values.
#[test]
fn header_value_hygiene() {
    let server = Server::probe(&[]);
    for byte in [0x00u8, 0x01, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f] {
        let mut raw = b"GET /closing HTTP/1.1\r\nHost: a\r\nX-V: a".to_vec();
        raw.push(byte);
        raw.extend_from_slice(b"b\r\n\r\n");
        assert_rejected(&server, &raw, 400, &format!("value byte {byte:#x}"));
    }
    // obs-text is legal and reaches the app as latin-1; \xa0 and \x85 are
    // not whitespace; HTAB inside a value is legal.
    let env = server.environ(
        b"GET /environ HTTP/1.1\r\nHost: a\r\nX-Cafe: caf\xc3\xa9\r\nX-Nbsp: \xa0v\x85\r\nX-Tab: a\tb\r\n\r\n",
    );
    assert_eq!(env["HTTP_X_CAFE"], "caf\u{c3}\u{a9}", "UTF-8 bytes as latin-1: 'cafÃ©'");
    assert_eq!(env["HTTP_X_NBSP"], "\u{a0}v\u{85}");
    assert_eq!(env["HTTP_X_TAB"], "a\tb");
    assert_still_serving(&server);
}

// §1.1 row 17, §1.2 item 10: underscores in names.
#[test]
fn underscore_headers_are_dropped() {
    let server = Server::probe(&[]);
    let env =
        server.environ(b"GET /environ HTTP/1.1\r\nHost: a\r\nX-Foo: bar\r\nX_Foo: under\r\n\r\n");
    assert_eq!(env["HTTP_X_FOO"], "bar");
    let env =
        server.environ(b"GET /environ HTTP/1.1\r\nHost: a\r\nX_Foo: under\r\nX-Foo: bar\r\n\r\n");
    assert_eq!(env["HTTP_X_FOO"], "bar");
    let env =
        server.environ(b"GET /environ HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 6.6.6.6\r\n\r\n");
    let keys: Vec<&String> = env.as_object().unwrap().keys().collect();
    assert!(keys.iter().all(|k| !k.contains("FORWARDED")), "{keys:?}");
    // Content_Length must not frame anything nor become CONTENT_LENGTH.
    let mut conn = server.conn();
    conn.send(b"GET /environ HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\nGET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
    let env = conn.read_response().json();
    assert!(
        env.get("CONTENT_LENGTH").is_none() && env.get("HTTP_CONTENT_LENGTH").is_none(),
        "{env}"
    );
    let next = conn.read_response();
    assert_eq!((next.status, next.text().as_str()), (200, "ab"));
    let response = assert_accepted(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent_Length: 10\r\nContent-Length: 3\r\n\r\nabc",
        "Content_Length beside Content-Length",
    );
    assert_eq!(response.text(), "abc");
    assert_still_serving(&server);
}

// §1.1 rows 15–16, §1.2 item 11: Host.
#[test]
fn host_rules() {
    let server = Server::probe(&[]);
    for raw in [
        &b"GET /closing HTTP/1.1\r\n\r\n"[..],
        b"GET /closing HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a b\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a/b\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a:99999999\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: a:b\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: user@a\r\n\r\n",
        b"GET /closing HTTP/1.1\r\nHost: [::1\r\n\r\n",
    ] {
        assert_rejected(&server, raw, 400, &latin1(raw));
    }
    // HTTP/1.0 needs no Host; an empty Host is legal.
    assert_eq!(assert_accepted(&server, b"GET /closing HTTP/1.0\r\n\r\n", "1.0").text(), "ab");
    let env = server.environ(b"GET /environ HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(env["SERVER_NAME"], "127.0.0.1");
    // Absolute form: the target's path and authority (RFC 9112 §3.2.2).
    let response = server.request(b"GET http://evil/x HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((response.status, response.text().as_str()), (404, "not found: /x"));
    let env = server.environ(b"GET https://secure.example/environ HTTP/1.1\r\nHost: a\r\n\r\n");
    let port = server.port().to_string();
    assert_eq!(
        (env["SERVER_NAME"].as_str(), env["SERVER_PORT"].as_str()),
        (Some("secure.example"), Some(port.as_str())),
        "no port in the target: the port the request arrived on"
    );
    for raw in [
        &b"GET ftp://evil/x HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET http://user@evil/x HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(&server, raw, 400, &latin1(raw));
    }
    assert_still_serving(&server);
}

// §1.1 rows 12–13, §1.2 item 12: request lines.
#[test]
fn request_lines() {
    let server = Server::probe(&[]);
    for raw in [
        &b"G(T /closing HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"GET /closing HTTP/1.32\r\nHost: a\r\n\r\n",
        b"GET /closing HTTP/\r\r1.1\r\nHost: a\r\n\r\n",
        b"GET /closing\r\n\r\n",
        b"GET ! HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a /b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET  /closing HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a#b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\nb HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET a.example:80 HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /closing http/1.1\r\nHost: a\r\n\r\n",
        b"GET /closing HTTP/1.1 \r\nHost: a\r\n\r\n",
        b"/closing HTTP/1.1\r\nHost: a\r\n\r\n",
    ] {
        assert_rejected(&server, raw, 400, &latin1(raw));
    }
    for raw in [
        &b"GET /closing HTTP/2.0\r\nHost: a\r\n\r\n"[..],
        b"GET /closing HTTP/4294967295.255\r\nHost: a\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert_rejected_any(&server, raw, &[400, 505], &latin1(raw));
    }
    assert_rejected_any(
        &server,
        b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
        &[400, 405, 501],
        "CONNECT",
    );
    // Methods are case-sensitive tokens: passed to the app as they are.
    let env = server.environ(b"get /environ HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(env["REQUEST_METHOD"], "get");
    let env = server.environ(b"M-SEARCH /environ HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(env["REQUEST_METHOD"], "M-SEARCH");
    // Bytes >= 0x80 in the target: rejected, or passed on as latin-1.
    let response =
        server.request(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
    if response.status != 400 {
        assert_eq!(
            (response.status, response.body.as_slice()),
            (404, &b"not found: /caf\xc3\xa9"[..])
        );
    }
    // OPTIONS * reaches the app with PATH_INFO '*'.
    let response = server.request(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!((response.status, response.text().as_str()), (404, "not found: *"));
    assert_still_serving(&server);
}

#[test]
fn non_http_bytes() {
    let server = Server::probe(&[]);
    // A TLS 1.2 ClientHello (record header, handshake header, version, random…).
    let mut hello = vec![0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03];
    hello.extend((0u8..32).map(|i| i.wrapping_mul(37)));
    hello.extend_from_slice(&[0x00, 0x00, 0x20, 0xc0, 0x2b, 0xc0, 0x2f, 0x00, 0x9e, 0x13, 0x01]);
    assert_rejected(&server, &hello, 400, "TLS ClientHello");
    let garbage: Vec<u8> = common::pattern(300);
    assert_rejected(&server, &garbage, 400, "random bytes");
    assert_rejected(&server, b"\x00\x00\x00\x00\r\n\r\n", 400, "NULs");
    assert_rejected(
        &server,
        b"\r\n\r\n\r\n\r\n\r\n\r\nGET /closing HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
        "many empty lines",
    );
    assert_still_serving(&server);
}

// §1.1 row 10, §1.2 item 13: pipelining.
#[test]
fn pipelining() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(
        b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\nGET /sleep?s=0 HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n\
          GET /closing HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let texts: Vec<String> = (0..4).map(|_| conn.read_response().text()).collect();
    assert_eq!(texts, ["ab", "slept", "", "ab"]);
    // After Connection: close nothing more is processed.
    let mut conn = server.conn();
    let mut raw = b"GET /closing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n".to_vec();
    raw.extend_from_slice(SMUGGLED);
    conn.send(&raw);
    let response = conn.read_response();
    assert_eq!(response.text(), "ab");
    conn.expect_closed();
    // An HTTP/1.0 request (close by default) followed by another.
    let mut conn = server.conn();
    let mut raw = b"GET /closing HTTP/1.0\r\n\r\n".to_vec();
    raw.extend_from_slice(SMUGGLED);
    conn.send(&raw);
    assert_eq!(conn.read_response().text(), "ab");
    conn.expect_closed();
    assert_still_serving(&server);
}

#[test]
fn thousand_pipelined_requests_in_one_write() {
    let server = Server::probe(&[]);
    let conn = server.conn();
    let mut writer = conn.try_clone_tcp();
    let mut raw = Vec::new();
    for i in 0..1000 {
        raw.extend_from_slice(format!("GET /n{i} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
    }
    let sender = std::thread::spawn(move || writer.write_all(&raw));
    let mut conn = conn;
    let started = Instant::now();
    for i in 0..1000 {
        let response = conn.read_response();
        assert_eq!(response.status, 404);
        assert_eq!(response.text(), format!("not found: /n{i}"), "out of order");
    }
    sender.join().unwrap().unwrap();
    assert!(started.elapsed() < Duration::from_secs(60));
    assert!(conn.still_open_after(Duration::from_millis(100)));
}

// §1.1 row 7, §1.2 item 14: size limits.
#[test]
fn buffer_size_limits_the_head() {
    let server = Server::probe(&["--buffer-size", "4096"]);
    let big = "x".repeat(5000);
    assert_rejected(
        &server,
        format!("GET /closing HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
        431,
        "5000-byte header",
    );
    let fits = "x".repeat(4000);
    let response = assert_accepted(
        &server,
        format!("GET /closing HTTP/1.1\r\nHost: a\r\nX-Big: {fits}\r\n\r\n").as_bytes(),
        "4000-byte header",
    );
    assert_eq!(response.text(), "ab");
    // Many small headers adding up.
    let many: String = (0..90).map(|i| format!("X-H{i}: {}\r\n", "y".repeat(50))).collect();
    assert_rejected(
        &server,
        format!("GET /closing HTTP/1.1\r\nHost: a\r\n{many}\r\n").as_bytes(),
        431,
        "90 × 60 bytes",
    );
    // A request line alone over the limit: 414.
    let long_target = format!("/{}", "a".repeat(5000));
    assert_rejected(
        &server,
        format!("GET {long_target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        414,
        "5000-byte target",
    );
    assert_still_serving(&server);
}

#[test]
fn default_buffer_size() {
    let server = Server::probe(&[]);
    // 6 KiB of cookies: fine by default (uWSGI's 4096 default would fail).
    let cookies: String = (0..100).map(|i| format!("c{i:02}={}; ", "v".repeat(58))).collect();
    let cookies = cookies.trim_end_matches("; ");
    assert!(cookies.len() >= 6 * 1024);
    let env =
        server.environ(format!("GET /environ HTTP/1.1\r\nHost: a\r\nCookie: {cookies}\r\n\r\n"));
    assert_eq!(env["HTTP_COOKIE"], cookies);
    // 70 KB in one header: over the 65535 default.
    let huge = "z".repeat(70_000);
    assert_rejected(
        &server,
        format!("GET /closing HTTP/1.1\r\nHost: a\r\nX-Huge: {huge}\r\n\r\n").as_bytes(),
        431,
        "70 KB header",
    );
    let long_target = format!("/{}", "a".repeat(70_000));
    assert_rejected(
        &server,
        format!("GET {long_target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes(),
        414,
        "70 KB target",
    );
    // 100 fields are fine, 101 are too many.
    let fields = |n: usize| -> String { (1..n).map(|i| format!("X-F{i}: v\r\n")).collect() };
    let response = assert_accepted(
        &server,
        format!("GET /closing HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(100)).as_bytes(),
        "100 fields",
    );
    assert_eq!(response.text(), "ab");
    assert_rejected(
        &server,
        format!("GET /closing HTTP/1.1\r\nHost: a\r\n{}\r\n", fields(101)).as_bytes(),
        431,
        "101 fields",
    );
    assert_still_serving(&server);
}

#[test]
fn limit_post() {
    let server = Server::probe(&["--limit-post", "1000"]);
    // Rejected on the Content-Length alone, without sending the body.
    let mut conn = server.conn();
    conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 1001\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 413);
    assert!(response.says_close());
    conn.expect_closed();
    let body = common::pattern(1000);
    let response =
        assert_accepted(&server, &post_echo_with("Content-Length: 1000\r\n", &body), "1000 bytes");
    assert!(response.body == body);
    // Chunked: when the running total crosses the limit.
    let ok = chunked(&[&body[..500], &body[500..]]);
    let response = assert_accepted(&server, &chunked_post(&ok), "1000 chunked");
    assert!(response.body == body);
    let over = common::pattern(1001);
    assert_rejected(
        &server,
        &chunked_post(&chunked(&[&over[..500], &over[500..]])),
        413,
        "1001 chunked",
    );
    assert_rejected(&server, &chunked_post(b"3e9\r\n"), 413, "one 1001-byte chunk announced");
    assert_rejected(
        &server,
        &post_echo_with("Content-Length: 99999999999\r\n", b""),
        413,
        "huge CL",
    );
    // With Expect: the 413 comes instead of a 100.
    assert_rejected(
        &server,
        &post_echo_with("Expect: 100-continue\r\nContent-Length: 5000\r\n", b""),
        413,
        "Expect over the limit",
    );
    assert_still_serving(&server);
}

#[test]
fn huge_content_length_is_not_preallocated() {
    let server = Server::probe(&[]);
    for cl in ["99999999999", "18446744073709551615"] {
        let mut conn = server.conn();
        conn.send(format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {cl}\r\n\r\nsome"));
        // The app waits for more; the client goes away.
        assert!(conn.still_open_after(Duration::from_millis(300)));
        drop(conn);
    }
    assert_still_serving(&server);
}

// §1.2 item 15: slow clients and timeouts.
#[test]
fn partial_head_times_out_with_408() {
    let server = Server::probe(&["--socket-timeout", "1"]);
    let mut conn = server.conn();
    let started = Instant::now();
    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n");
    let response = conn.read_response();
    let elapsed = started.elapsed();
    assert_eq!(response.status, 408);
    assert!(response.says_close());
    conn.expect_closed();
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
    assert_still_serving(&server);
}

#[test]
fn slowloris_head_drip_times_out_as_a_whole() {
    let server = Server::probe(&["--socket-timeout", "1"]);
    let conn = server.conn();
    let mut writer = conn.try_clone_tcp();
    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        let head = b"GET /closing HTTP/1.1\r\nHost: a\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
        for byte in head.iter() {
            if writer.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(6) {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    });
    let mut conn = conn;
    let response = conn.read_response();
    let elapsed = started.elapsed();
    assert_eq!(response.status, 408, "{response:?}");
    assert!(
        elapsed < Duration::from_millis(2500),
        "the head deadline is per head, not per byte: {elapsed:?}"
    );
    let (_, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed);
    dripper.join().unwrap();
    assert_still_serving(&server);
}

#[test]
fn stalled_prebuffered_body_times_out() {
    // Under post-buffering: the server reads the body before the app runs.
    let server = Server::probe(&["--socket-timeout", "1"]);
    let mut conn = server.conn();
    conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    let started = Instant::now();
    let response = conn.try_read_response(false);
    if let Ok(response) = &response {
        assert_eq!(response.status, 408, "{response:?}");
        assert!(response.says_close());
    }
    let (_, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed, "the connection stayed open");
    assert!(started.elapsed() < Duration::from_secs(4));
    assert_still_serving(&server);
    assert!(
        !server
            .log()
            .lines()
            .any(|l| l.contains(" POST /echo => generated ") && l.contains(" 200) ")),
        "{}",
        server.log()
    );
}

#[test]
fn stalled_streamed_body_fails_the_apps_read() {
    let server = Server::probe(&["--socket-timeout", "1", "--post-buffering", "0"]);
    let mut conn = server.conn();
    conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n0123456789");
    let response = conn.try_read_response(false);
    if let Ok(response) = &response {
        assert_ne!(response.status, 200, "a stalled body cannot be echoed: {response:?}");
        assert!(response.says_close());
    }
    let (_, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed, "the connection stayed open");
    // The app saw its read fail.
    assert!(server.log_contains("OSError"), "{}", server.log());
    assert_still_serving(&server);
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let server = Server::probe(&["--http-keepalive-timeout", "1"]);
    let mut conn = server.conn();
    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(conn.read_response().text(), "ab");
    let idle = Instant::now();
    let (extra, closed) = conn.read_until_close(Duration::from_secs(5));
    let elapsed = idle.elapsed();
    assert!(closed && extra.is_empty(), "{extra:?}");
    assert!(
        elapsed >= Duration::from_millis(800) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[test]
fn a_client_that_never_reads_does_not_block_the_server() {
    let server = Server::probe(&["--threads", "1", "--socket-timeout", "1"]);
    let before = server.closes();
    let mut conn = server.conn();
    conn.send(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n");
    // Never read: the write deadline must free the only Python thread.
    assert!(
        wait_until(Duration::from_secs(15), || server.closes() > before),
        "the endless response's close() was never called"
    );
    drop(conn);
    assert_still_serving(&server);
}

#[test]
fn silent_and_vanishing_clients() {
    let server = Server::probe(&[]);
    let silent = server.conn();
    let silent_peer = silent.local_addr();
    drop(silent);
    let mut partial = server.conn();
    let partial_peer = partial.local_addr();
    partial.send(b"GET /closing HTTP/1.1\r\nHo");
    partial.shutdown_write();
    let (data, closed) = partial.read_until_close(Duration::from_secs(5));
    assert!(closed && data.is_empty(), "nobody to answer: {:?}", latin1(&data));
    assert_still_serving(&server);
    let log = server.log();
    for peer in [silent_peer, partial_peer] {
        assert!(
            !log.lines().any(|l| l.contains(&peer) && l.contains("=> 4")),
            "{peer} got an error logged:\n{log}"
        );
    }
}

// §1.1 row 6, §1.2 item 16: Expect.
#[test]
fn expectations() {
    let server = Server::probe(&[]);
    assert_rejected(
        &server,
        &post_echo_with("Expect: something-else\r\nContent-Length: 5\r\n", b"hello"),
        417,
        "Expect: other",
    );
    // 100-continue with the body withheld: the 100 comes.
    let mut conn = server.conn();
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    );
    assert_eq!(conn.read_response().status, 100);
    conn.send(b"hello");
    assert_eq!(conn.read_response().text(), "hello");
    // HTTP/1.0 ignores Expect: no 100.
    let mut conn = server.conn();
    conn.send(b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello");
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    assert_still_serving(&server);
}

// §1.2 item 17: upgrades are served as plain requests.
#[test]
fn upgrade_requests_are_plain_requests() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(
        b"GET /environ HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: \xff\xfe caf\xc3\xa9\r\n\r\n",
    );
    let response = conn.read_response();
    assert_eq!(response.status, 200, "no 101 from a WSGI server");
    let env = response.json();
    assert_eq!(env["HTTP_SEC_WEBSOCKET_PROTOCOL"], "\u{ff}\u{fe} caf\u{c3}\u{a9}");
    assert_eq!(env["HTTP_UPGRADE"], "websocket");
    conn.send(
        b"GET /closing HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
    );
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
    // Still HTTP/1.1 on this connection.
    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(conn.read_response().text(), "ab");
    assert_still_serving(&server);
}

#[test]
fn server_survives_a_connection_storm() {
    let server = Server::probe(&["--threads", "2"]);
    let addr = server.addr().to_string();
    let results = common::parallel(8, move |i| {
        let mut ok = 0;
        for j in 0..20 {
            let mut conn = Conn::open(&addr);
            match (i + j) % 4 {
                0 => {
                    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
                    if conn.read_response().text() == "ab" {
                        ok += 1;
                    }
                }
                1 => {
                    let _ = conn.try_send(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n");
                    if conn.read_response().status == 400 {
                        ok += 1;
                    }
                }
                2 => {
                    let _ = conn.try_send(
                        b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
                    );
                    ok += 1;
                }
                _ => ok += 1,
            }
        }
        ok
    });
    assert_eq!(results.iter().sum::<usize>(), 160);
    assert_still_serving(&server);
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn pipelining_flood_without_reading_is_bounded() {
    // A client pipelines 24 MB of requests (more than the kernel's socket
    // buffers hold) and never reads: the server must push back (not buffer
    // them all), give up at the write deadline, and keep serving others.
    let server = Server::probe(&["--socket-timeout", "1", "--threads", "2"]);
    let before = rss_kib(server.pid());
    let conn = server.conn();
    let mut writer = conn.try_clone_tcp();
    let request = b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n";
    let flood: Vec<u8> = request.iter().copied().cycle().take(24 << 20).collect();
    let started = Instant::now();
    let sender = std::thread::spawn(move || writer.write_all(&flood));
    // Others are served meanwhile.
    let response = server.get("/closing");
    assert_eq!(response.text(), "ab");
    let result = sender.join().unwrap();
    assert!(
        result.is_err(),
        "the server took 24 MB of requests without their responses being read"
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    drop(conn);
    let grown = rss_kib(server.pid()).saturating_sub(before);
    assert!(grown < 100 * 1024, "the server grew by {grown} KiB");
    assert_still_serving(&server);
}
