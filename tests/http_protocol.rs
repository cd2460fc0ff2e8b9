//! HTTP/1.1 behaviour of `--http-socket` with well-formed clients:
//! connection reuse, pipelining, request bodies, `Expect`, response framing,
//! app errors, `close()`, `wsgi.file_wrapper`, threads and slow clients.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, Framing, Server, chunked, parallel, pattern, wait_until};
use std::time::{Duration, Instant};

const GET_CLOSING: &[u8] = b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n";

#[test]
fn http11_keeps_the_connection_alive() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    let mut ports = Vec::new();
    for _ in 0..3 {
        conn.send(b"GET /environ HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = conn.read_response();
        assert_eq!(response.status, 200);
        assert!(!response.says_close(), "{response:?}");
        ports.push(response.json()["REMOTE_PORT"].as_str().unwrap().to_string());
    }
    assert!(ports.windows(2).all(|w| w[0] == w[1]), "one connection: {ports:?}");
    assert!(conn.still_open_after(Duration::from_millis(300)));
}

#[test]
fn http10_closes_by_default() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /closing HTTP/1.0\r\n\r\n");
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
    assert!(response.says_close(), "{response:?}");
    conn.expect_closed();
}

#[test]
fn http10_with_keep_alive_is_reused() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    for _ in 0..2 {
        conn.send(b"GET /sleep?s=0 HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
        let response = conn.read_response();
        assert_eq!((response.status, response.text().as_str()), (200, "slept"));
        let connection = response.header("connection").map(str::to_ascii_lowercase);
        assert_eq!(connection.as_deref(), Some("keep-alive"));
        assert_eq!(response.header("content-length"), Some("5"));
    }
    // A streamed body on 1.0 can only be delimited by the close.
    conn.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.framing, Framing::Close);
    assert_eq!(response.text(), "chunk 0\nchunk 1\nchunk 2\n");
    assert!(response.says_close() && response.complete);
    assert!(!response.has_header("transfer-encoding"));
}

#[test]
fn connection_close_is_honoured() {
    let server = Server::probe(&[]);
    for value in ["close", "Close", "keep-alive, close", "foo,  CLOSE"] {
        let mut conn = server.conn();
        conn.send(format!("GET /closing HTTP/1.1\r\nHost: a\r\nConnection: {value}\r\n\r\n"));
        let response = conn.read_response();
        assert_eq!(response.status, 200);
        assert!(response.says_close(), "Connection: {value}: {response:?}");
        conn.expect_closed();
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(
        b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n\
          POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world\
          GET /status?code=204 HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    let first = conn.read_response();
    assert_eq!((first.status, first.text().as_str()), (200, "ab"));
    let second = conn.read_response();
    assert_eq!((second.status, second.text().as_str()), (200, "hello world"));
    assert_eq!(second.header("x-length"), Some("11"));
    let third = conn.read_response();
    assert_eq!(third.status, 204);
    assert!(third.body.is_empty());
    // Still usable.
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn invalid_request_pipelined_after_a_valid_one() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n\r\n");
    let first = conn.read_response();
    assert_eq!((first.status, first.text().as_str()), (200, "ab"));
    let second = conn.read_response();
    assert_eq!(second.status, 400, "a 1.1 request without Host");
    assert!(second.says_close());
    conn.expect_closed();
}

/// Sends `body` chunked to `/echo?via=...` and returns the response.
fn echo_chunked(server: &Server, via: &str, framed: &[u8]) -> common::Response {
    let mut raw =
        format!("POST /echo?via={via} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
            .into_bytes();
    raw.extend_from_slice(framed);
    let mut conn = server.conn();
    conn.send(&raw);
    let response = conn.read_response();
    // The connection stays usable after a chunked body.
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab", "after a chunked body via={via}");
    response
}

#[test]
fn chunked_request_bodies_are_dechunked_for_every_read_method() {
    let server = Server::probe(&[]);
    let body = b"first line\nsecond line\n\nfourth line without newline";
    // Chunk boundaries that cut lines in odd places.
    let framed = chunked(&[&body[..3], &body[3..15], &body[15..16], &body[16..]]);
    for via in ["read", "readline", "iter", "readlines", "chunks"] {
        let response = echo_chunked(&server, via, &framed);
        assert_eq!(response.status, 200, "via={via}");
        assert_eq!(response.body, body, "via={via}");
        assert_eq!(response.header("x-length"), Some(body.len().to_string().as_str()));
    }
    // A bigger body, streamed in many chunks.
    let big = pattern(300_000);
    let pieces: Vec<&[u8]> = big.chunks(7_001).collect();
    let response = echo_chunked(&server, "chunks", &chunked(&pieces));
    assert_eq!(response.body.len(), big.len());
    assert!(response.body == big, "300 KB chunked body differs");
}

#[test]
fn chunk_extensions_and_trailers_are_accepted() {
    let server = Server::probe(&[]);
    let framed = b"5;ext=1\r\nhello\r\n6;q=\"a b\";flag\r\n world\r\n0;last\r\nX-Trailer: t\r\nX-Other: u\r\n\r\n";
    let response = echo_chunked(&server, "read", framed);
    assert_eq!((response.status, response.text().as_str()), (200, "hello world"));
}

/// Over `post-buffering` a body is kept in a temporary file before the
/// app runs, up to `post-buffering-disk` (the rest streams); with
/// `post-buffering = 0` it streams as it comes. Every way, every read
/// method gets it whole, framed by length or chunked.
#[test]
fn a_body_over_post_buffering_reads_alike_spooled_or_streamed() {
    let body = pattern(100_000);
    for (post_buffering, disk) in [("1024", "1000000"), ("1024", "4096"), ("0", "1000000")] {
        let server =
            Server::probe(&["--post-buffering", post_buffering, "--post-buffering-disk", disk]);
        for via in ["read", "chunks", "readline", "iter", "readlines", "line-then-read"] {
            let what = format!("post-buffering {post_buffering}, on disk {disk}, via={via}");
            let mut conn = server.conn();
            let head = format!(
                "POST /echo?via={via} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            conn.send(head.as_bytes());
            conn.send(&body);
            let response = conn.read_response();
            assert_eq!(response.status, 200, "{what}");
            assert_eq!(response.header("x-length"), Some("100000"), "{what}");
            assert!(response.body == body, "{what}: body differs");
            conn.send(GET_CLOSING);
            assert_eq!(conn.read_response().text(), "ab");
            let pieces: Vec<&[u8]> = body.chunks(7_001).collect();
            let response = echo_chunked(&server, via, &chunked(&pieces));
            assert!(response.body == body, "{what}, chunked: body differs");
        }
    }
}

/// After a response to a request whose body the app did not read, the
/// connection must either be announced closed (`Connection: close`, then
/// closed) or stay in sync: the rest of the body skipped and the next
/// request answered.
fn assert_closed_or_in_sync(conn: &mut Conn, response: &common::Response, what: &str) {
    if response.says_close() {
        conn.expect_closed();
        return;
    }
    let sent = conn.try_send(GET_CLOSING);
    let next = sent.map_err(|e| e.to_string()).and_then(|()| {
        conn.try_read_response(false).map_err(|e| format!("no response, eof={}", e.eof))
    });
    let next = next.unwrap_or_else(|e| {
        panic!(
            "{what}: the response kept the connection alive (no `Connection: close`) \
             but the next request on it failed ({e}): {response:?}"
        )
    });
    assert_eq!((next.status, next.text().as_str()), (200, "ab"), "{what}: {next:?}");
}

#[test]
fn unread_body_is_skipped_before_the_next_request() {
    // The app never reads the body: the server must skip it, not parse it
    // as the next request.
    let server = Server::probe(&["--post-buffering", "16"]);
    let mut conn = server.conn();
    let body = "GET /environ HTTP/1.1\r\nHost: smuggled\r\n\r\n";
    conn.send(format!(
        "POST /closing HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    ));
    let response = conn.read_response();
    assert_eq!(response.text(), "ab");
    assert_closed_or_in_sync(&mut conn, &response, "unread Content-Length body");
}

#[test]
fn unread_chunked_body_is_skipped_before_the_next_request() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    let mut raw =
        b"POST /closing HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend(chunked(&[b"GET /environ HTTP/1.1\r\nHost: smuggled\r\n\r\n"]));
    conn.send(&raw);
    let response = conn.read_response();
    assert_eq!(response.text(), "ab");
    assert_closed_or_in_sync(&mut conn, &response, "unread chunked body");
}

#[test]
fn expect_continue_is_sent_on_first_read() {
    let server = Server::probe(&[]);
    for len in [5usize, 3_000_000] {
        let body = pattern(len);
        let mut conn = server.conn();
        conn.send(format!(
            "POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: {len}\r\n\r\n"
        ));
        let interim = conn.read_response();
        assert_eq!((interim.status, interim.version), (100, 1), "{interim:?}");
        assert!(conn.pending().is_empty(), "more than the 100 before the body was sent");
        conn.send(&body);
        let response = conn.read_response();
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-length"), Some(len.to_string().as_str()));
        assert!(response.body == body);
        conn.send(GET_CLOSING);
        assert_eq!(conn.read_response().text(), "ab");
    }
}

#[test]
fn expect_continue_with_a_chunked_body() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert_eq!(conn.read_response().status, 100);
    conn.send(chunked(&[b"hel", b"lo"]));
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn expect_continue_with_the_body_already_sent() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(
        b"POST /echo HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello",
    );
    let first = conn.read_response();
    assert_eq!(first.status, 100);
    let second = conn.read_response();
    assert_eq!((second.status, second.text().as_str()), (200, "hello"));
}

#[test]
fn expect_continue_without_a_read_gets_no_100() {
    // A final status without reading the body: no 100. The client may then
    // send the body (its framing says so) or close; the server must either
    // announce the close or stay in sync.
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"POST /status?code=403 HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 403, "{response:?}");
    if !response.says_close() {
        // Checked below: the connection must then still be usable.
        let _ = conn.try_send(b"hello");
    }
    assert_closed_or_in_sync(&mut conn, &response, "Expect without a read");
}

#[test]
fn head_has_headers_but_no_body() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"HEAD /sleep?s=0 HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_head_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("5"), "the GET's length");
    assert_eq!(response.header("content-type"), Some("text/plain"));
    // Body bytes would corrupt the next response.
    conn.send(b"HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_head_response();
    assert_eq!(response.status, 200);
    conn.send(GET_CLOSING);
    let next = conn.read_response();
    assert_eq!((next.status, next.text().as_str()), (200, "ab"), "{next:?}");
}

#[test]
fn no_body_statuses() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    for code in [204, 304] {
        conn.send(format!("GET /status?code={code} HTTP/1.1\r\nHost: a\r\n\r\n"));
        let response = conn.read_response();
        assert_eq!(response.status, code);
        assert!(!response.has_header("transfer-encoding"), "{response:?}");
    }
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn generator_responses_are_chunked_on_http11() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /stream?n=50 HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    assert!(!response.has_header("content-length"));
    assert_eq!(response.framing, Framing::Chunked);
    assert!(response.complete, "no terminating chunk: {response:?}");
    let want: String = (0..50).map(|i| format!("chunk {i}\n")).collect();
    assert_eq!(response.text(), want);
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn list_responses_get_a_content_length_and_a_date() {
    let server = Server::probe(&[]);
    let response = server.get("/sleep?s=0");
    assert_eq!(response.text(), "slept");
    assert_eq!(response.header("content-length"), Some("5"));
    assert!(!response.has_header("transfer-encoding"));
    let date = response.header("date").expect("no Date header");
    assert!(date.ends_with(" GMT") && date.len() == 29, "Date {date:?}");
    assert_eq!(response.version, 1);
}

#[test]
fn write_callable_goes_before_the_iterable() {
    let server = Server::probe(&[]);
    let response = server.get("/write");
    assert_eq!((response.status, response.text().as_str()), (200, "written;returned"));
    assert!(response.complete);
}

#[test]
fn exc_info_replaces_the_status_before_sending() {
    let server = Server::probe(&[]);
    let response = server.get("/exc-info");
    assert_eq!((response.status, response.text().as_str()), (503, "replaced"));
}

#[test]
fn short_content_length_body_closes_the_connection() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /cl-short HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("100"));
    assert_eq!(response.body, b"0123456789");
    assert!(!response.complete && response.eof, "the connection must close: {response:?}");
}

#[test]
fn long_content_length_body_is_cut_and_closed() {
    let server = Server::probe(&[]);
    let before = server.closes();
    let mut conn = server.conn();
    conn.send(b"GET /cl-long HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"01");
    conn.expect_closed();
    assert_eq!(server.closes(), before + 1, "close() of the /cl-long iterable");
}

#[test]
fn close_of_a_list_subclass_is_called() {
    // A plain list has no close() and rwsgi does not look for one; a
    // subclass may define it, and PEP 3333 wants it called.
    let server = Server::probe(&[]);
    let before = server.closes();
    assert_eq!(server.get("/closing-list").text(), "ab");
    assert_eq!(server.closes(), before + 1);
    // /closes answers with a plain list: asking again changes nothing.
    assert_eq!(server.closes(), before + 1);
}

#[test]
fn error_before_start_response_is_a_clean_500() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /error-before HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 500);
    assert_eq!(response.body, b"Internal Server Error\n");
    let wire = format!("{:?}{}", response.headers, response.text());
    assert!(!wire.contains("Traceback") && !wire.contains("RuntimeError"), "{wire}");
    // The same connection keeps working.
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
    assert!(server.log_contains("failing before start_response"));
    assert!(
        server.log_contains("Traceback (most recent call last)"),
        "the app's traceback is not logged:\n{}",
        server.log()
    );
    assert!(server.log_contains("probe.py"), "the traceback names no frame:\n{}", server.log());
}

#[test]
fn error_after_the_head_truncates_the_response() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /error-after HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.framing, Framing::Chunked);
    assert_eq!(response.body, b"first part;");
    assert!(!response.complete, "a failed body must not look complete: {response:?}");
    assert!(response.eof, "the connection must close");
    assert!(server.log_contains("failing after the head was sent"));
    assert_eq!(server.get("/closing").text(), "ab");
}

#[test]
fn invalid_responses_become_500() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    for path in ["/bad-header", "/hop", "/unicode-header", "/str-body", "/twice"] {
        conn.send(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n"));
        let response = conn.read_response();
        assert_eq!(response.status, 500, "{path}: {response:?}");
        assert_eq!(response.body, b"Internal Server Error\n", "{path}");
        assert!(!response.has_header("x-injected"), "{path}: {response:?}");
        assert!(!response.has_header("x-bad") && !response.has_header("x-euro"), "{path}");
        assert!(!response.text().contains("never") && !response.text().contains("not bytes"));
    }
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn close_is_called_exactly_once() {
    let server = Server::probe(&["--threads", "1"]);
    let before = server.closes();
    for round in 1..=3 {
        assert_eq!(server.get("/closing").text(), "ab");
        assert_eq!(server.closes(), before + round);
    }
}

#[test]
fn close_is_called_when_the_client_disconnects() {
    let server = Server::probe(&["--threads", "1"]);
    let before = server.closes();
    let mut conn = server.conn();
    conn.send(b"GET /endless HTTP/1.1\r\nHost: a\r\n\r\n");
    // Read half a second of the endless body, then hang up.
    conn.set_timeout(Duration::from_millis(500));
    let partial = conn.read_response();
    assert_eq!(partial.status, 200);
    assert!(!partial.body.is_empty() && !partial.complete, "{} bytes", partial.body.len());
    drop(conn);
    assert!(
        wait_until(Duration::from_secs(10), || server.closes() > before),
        "close() was not called after the client went away"
    );
    assert_eq!(server.closes(), before + 1, "close() more than once");
    // The only Python thread is free again.
    assert_eq!(server.get("/closing").text(), "ab");
}

#[test]
fn file_wrapper_sends_files() {
    let server = Server::probe(&[]);
    let whole: Vec<u8> = (0..=255u8).cycle().take(256 * 4096).collect();
    let mut conn = server.conn();
    conn.send(b"GET /file HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("content-length"), Some("1048576"));
    assert!(response.body == whole, "1 MiB file differs ({} bytes)", response.body.len());
    conn.send(b"GET /file?offset=1000 HTTP/1.1\r\nHost: a\r\n\r\n");
    let tail = conn.read_response();
    assert_eq!(tail.header("content-length"), Some((whole.len() - 1000).to_string().as_str()));
    assert!(tail.body == whole[1000..], "the tail differs");
    conn.send(b"GET /file?bytesio=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    let bytesio = conn.read_response();
    assert_eq!((bytesio.status, bytesio.text().as_str()), (200, "from bytesio"));
    assert!(bytesio.complete);
    // HEAD of a file: headers only.
    conn.send(b"HEAD /file HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!(head.header("content-length"), Some("1048576"));
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn file_over_http10_is_close_delimited_or_sized() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /file?offset=1048000 HTTP/1.0\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.body.len(), 576);
    assert!(response.complete);
}

#[test]
fn wsgi_errors_lines_are_logged() {
    let server = Server::probe(&[]);
    assert_eq!(server.get("/errors").text(), "logged");
    assert!(server.log_contains("first error line"));
    assert!(server.log_contains("second error line"), "{}", server.log());
}

#[test]
fn requests_are_logged() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /closing?x=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(conn.read_response().status, 200);
    assert!(server.wait_request_logged("GET", "/closing?x=1"), "{}", server.log());
    // uWSGI's default line, field for field.
    let line = server.log_lines_with(" GET /closing?x=1 => generated ").remove(0);
    let prefix = format!("[pid: {}|app: 0|req: 1/1] 127.0.0.1 () {{", server.pid());
    assert!(line.starts_with(&prefix), "{line}");
    let (vars, rest) = line[prefix.len()..].split_once(" vars in ").unwrap();
    assert!(vars.parse::<u32>().unwrap() > 10, "{line}");
    let (bytes, rest) = rest.split_once(" bytes} [").unwrap();
    assert!(bytes.parse::<u32>().unwrap() > 100, "{line}");
    let (date, rest) = rest.split_once("] ").unwrap();
    assert_eq!(date.len(), 24, "ctime: {date:?}");
    let (millis, rest) = rest
        .strip_prefix("GET /closing?x=1 => generated 2 bytes in ")
        .and_then(|r| r.split_once(" msecs (HTTP/1.1 200) "))
        .unwrap();
    assert!(millis.parse::<u32>().is_ok(), "{line}");
    let (headers, rest) = rest.split_once(" headers in ").unwrap();
    assert!(headers.parse::<u32>().unwrap() >= 1, "{line}");
    assert!(rest.ends_with(" bytes (1 switches on core 0)"), "{line}");
}

fn four_sleeps(threads: &str) -> Duration {
    let server = Server::probe(&["--threads", threads]);
    let addr = server.addr().to_string();
    let started = Instant::now();
    let results = parallel(4, move |_| {
        let mut conn = Conn::open(&addr);
        conn.send(b"GET /sleep?s=1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let response = conn.read_response();
        (response.status, response.text())
    });
    let elapsed = started.elapsed();
    for result in results {
        assert_eq!(result, (200, "slept".to_string()));
    }
    elapsed
}

#[test]
fn threads_serve_requests_concurrently() {
    let elapsed = four_sleeps("4");
    assert!(elapsed < Duration::from_millis(1900), "4 threads took {elapsed:?}");
}

#[test]
fn one_thread_serves_requests_one_at_a_time() {
    let elapsed = four_sleeps("1");
    assert!(elapsed >= Duration::from_millis(3500), "1 thread took {elapsed:?}");
}

#[test]
fn a_slow_small_body_does_not_hold_the_python_thread() {
    let server = Server::probe(&["--threads", "1"]);
    let body = pattern(10_240);
    let mut slow = server.conn();
    slow.send(format!("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len()));
    let mut sent = 0;
    let drip_until = Instant::now() + Duration::from_secs(1);
    let mut fast_times = Vec::new();
    while Instant::now() < drip_until {
        slow.send(&body[sent..=sent]);
        sent += 1;
        std::thread::sleep(Duration::from_millis(50));
        if sent % 5 == 0 {
            let t = Instant::now();
            let response = server.get("/closing");
            assert_eq!(response.text(), "ab");
            fast_times.push(t.elapsed());
        }
    }
    assert!(!fast_times.is_empty());
    for t in &fast_times {
        assert!(*t < Duration::from_millis(500), "a GET waited {t:?} behind a slow body");
    }
    slow.send(&body[sent..]);
    let response = slow.read_response();
    assert_eq!(response.status, 200);
    assert!(response.body == body);
}

#[test]
fn start_response_may_come_from_the_first_iteration() {
    let server = Server::probe(&[]);
    let response = server.get("/lazy-start");
    assert_eq!((response.status, response.text().as_str()), (200, "lazy body"));
    assert!(response.complete);
}

#[test]
fn empty_bytestrings_do_not_end_a_chunked_body() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /empty-chunks HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.framing, Framing::Chunked);
    assert_eq!(response.text(), "ab");
    assert!(response.complete);
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab", "an empty chunk desynchronised the connection");
}

#[test]
fn exc_info_after_the_head_reraises_and_cuts_the_response() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /late-exc-info HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.body, b"part;");
    assert!(!response.complete && response.eof, "{response:?}");
    assert!(server.log_contains("start_response re-raised the exc_info"), "{}", server.log());
    assert!(!server.log().contains("start_response did not raise"));
}

#[test]
fn a_raising_close_is_logged_and_harmless() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /close-raises HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "ok"));
    assert!(server.log_contains("close failed on purpose"));
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn invalid_statuses_and_results_become_500() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    let targets = [
        "/bad-status?k=crlf",
        "/bad-status?k=text",
        "/bad-status?k=short",
        "/bad-status?k=long",
        "/bad-status?k=unicode",
        "/bad-status?k=bytes",
        "/none",
        "/no-start",
    ];
    for target in targets {
        conn.send(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n"));
        let response = conn.read_response();
        assert_eq!(response.status, 500, "{target}: {response:?}");
        assert_eq!(response.body, b"Internal Server Error\n", "{target}");
        assert!(!response.has_header("x-injected"), "{target}");
    }
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn app_content_length_frames_a_generator() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /app-cl HTTP/1.1\r\nHost: a\r\n\r\nGET /cl-zero HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.framing, Framing::Length(6));
    assert!(!response.has_header("transfer-encoding"));
    assert_eq!(response.header_count("content-length"), 1);
    assert_eq!(response.text(), "abcdef");
    let zero = conn.read_response();
    assert_eq!((zero.status, zero.framing), (200, Framing::Length(0)));
    assert_eq!(zero.header_count("content-length"), 1);
    conn.send(GET_CLOSING);
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn write_only_bodies_and_big_headers() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /write-only HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.text(), "one;two;three");
    assert!(response.complete);
    conn.send(b"GET /big-header HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-big").map(str::len), Some(32768));
    assert_eq!(response.text(), "big");
}

#[test]
fn a_204_never_carries_a_body() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /204-body HTTP/1.1\r\nHost: a\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 204);
    assert!(!response.has_header("content-length") && !response.has_header("transfer-encoding"));
    conn.send(GET_CLOSING);
    let next = conn.read_response();
    assert_eq!((next.status, next.text().as_str()), (200, "ab"), "body bytes after a 204");
}

#[test]
fn wsgi_errors_accepts_any_unicode() {
    let server = Server::probe(&[]);
    assert_eq!(server.get("/unicode-errors").text(), "logged");
    assert!(server.log_contains("unicode caf\u{e9} \u{20ac} \u{2713}"), "{}", server.log());
}

#[test]
fn keepalive_timeout_zero_disables_keep_alive() {
    let server = Server::probe(&["--http-keepalive-timeout", "0"]);
    let mut conn = server.conn();
    conn.send(GET_CLOSING);
    let response = conn.read_response();
    assert_eq!(response.text(), "ab");
    assert!(
        response.says_close(),
        "keep-alive is off but the response does not say so: {response:?}"
    );
    conn.expect_closed();
}

#[test]
fn socket_timeout_does_not_limit_the_app() {
    let server = Server::probe(&["--socket-timeout", "1"]);
    let response = server.get("/sleep?s=2");
    assert_eq!((response.status, response.text().as_str()), (200, "slept"));
}

#[test]
fn head_with_an_empty_body_and_the_get_length_keeps_the_connection() {
    // Frameworks answer HEAD with the GET's Content-Length and no body
    // (RFC 9110 §9.3.2), and may send a 304 with the representation's
    // Content-Length (§8.6): those responses are complete, not cut short.
    let server = Server::probe(&[]);
    for (request, status) in [
        ("HEAD /head-aware HTTP/1.1\r\nHost: a\r\n\r\n", 200),
        ("GET /head-aware?code=304 HTTP/1.1\r\nHost: a\r\n\r\n", 304),
    ] {
        let mut conn = server.conn();
        conn.send(request);
        let head = conn.read_head_response();
        assert_eq!((head.status, head.header("content-length")), (status, Some("5")));
        assert!(!head.says_close(), "{head:?}");
        let sent = conn.try_send(GET_CLOSING);
        let next = sent.ok().and_then(|()| conn.try_read_response(false).ok());
        let next = next.unwrap_or_else(|| {
            panic!("{request:?}: the connection closed after a complete response (no Connection: close)")
        });
        assert_eq!(next.text(), "ab");
    }
    let get = server.get("/head-aware");
    assert_eq!((get.status, get.text().as_str()), (200, "hello"));
}

#[test]
fn a_request_sent_one_byte_at_a_time() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    let mut raw =
        b"POST /echo?via=readline HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    raw.extend(chunked(&[b"one\n", b"two\r\n", b"three"]));
    raw.extend_from_slice(b"\r\n");
    raw.extend_from_slice(GET_CLOSING);
    for byte in &raw {
        conn.send([*byte]);
        std::thread::sleep(Duration::from_millis(1));
    }
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "one\ntwo\r\nthree"));
    assert_eq!(conn.read_response().text(), "ab");
}

#[test]
fn pipelined_after_a_streamed_body() {
    let server = Server::probe(&["--post-buffering", "1024"]);
    let body = pattern(100_000);
    let mut raw = format!(
        "POST /echo?via=chunks HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(&body);
    raw.extend_from_slice(GET_CLOSING);
    let mut conn = server.conn();
    let mut writer = conn.try_clone_tcp();
    let sender = std::thread::spawn(move || std::io::Write::write_all(&mut writer, &raw));
    let response = conn.read_response();
    assert!(response.body == body);
    assert_eq!(conn.read_response().text(), "ab");
    sender.join().unwrap().unwrap();
}

/// An app that reads bodies in 20,000-byte parts gets its next bodies
/// lent in parts of that size (one `bytes` each, handed over as read);
/// reads of other sizes, or of the whole, still get every byte in order.
#[test]
fn bodies_read_in_parts_and_whole_on_one_connection_arrive_intact() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    for (n, via) in ["parts", "parts", "read", "parts", "chunks", "parts"].into_iter().enumerate() {
        echoes(&mut conn, via, &pattern(150_000 + n), &format!("request {n}"));
    }
}

/// POSTs `body` to `/echo?via={via}` (how the app reads it) on `conn`: it
/// must come back as sent.
fn echoes(conn: &mut Conn, via: &str, body: &[u8], what: &str) {
    conn.send(format!(
        "POST /echo?via={via} HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n",
        body.len()
    ));
    conn.send(body);
    let response = conn.read_response();
    assert_eq!(response.status, 200, "{what} ({via})");
    assert!(response.body == body, "{what} ({via}): the body changed");
}

/// Bodies past `post-buffering` are spooled into a file the worker keeps
/// for the next one: a shorter body after a longer one is read, every way
/// `wsgi.input` reads, as exactly its own bytes, never the longer one's
/// rest that the file still holds.
#[test]
fn spooled_bodies_in_a_reused_file_arrive_intact() {
    let server = Server::probe(&["--post-buffering", "1024"]);
    let mut conn = server.conn();
    let vias = ["read", "readline", "chunks", "iter", "parts", "readlines", "line-then-read"];
    for (n, via) in vias.into_iter().enumerate() {
        // Longest first, each shorter than the one before.
        let mut body = pattern(300_000 / (n + 1));
        body.extend_from_slice(format!("\nend of body {n}\n").as_bytes());
        echoes(&mut conn, via, &body, &format!("request {n}"));
    }
}

#[test]
fn empty_chunked_body() {
    let server = Server::probe(&[]);
    let response = echo_chunked(&server, "read", b"0\r\n\r\n");
    assert_eq!((response.status, response.header("x-length")), (200, Some("0")));
    assert!(response.body.is_empty());
}
