//! The hostile-input catalogue (request side): every case is rejected with
//! the right status, whatever the packet boundaries.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Event, assert_body_rejected, assert_rejected, check, head_of};

/// `POST` with `headers` and a small body: the framing under test.
fn post(headers: &str) -> Vec<u8> {
    format!("POST / HTTP/1.1\r\nHost: a\r\n{headers}\r\n\r\n0\r\n\r\nX").into_bytes()
}

fn get_with(header_lines: &[u8]) -> Vec<u8> {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    input.extend_from_slice(header_lines);
    input.extend_from_slice(b"\r\n");
    input
}

#[test]
fn cl_te_in_any_order_and_spelling() {
    for headers in [
        "Content-Length: 6\r\nTransfer-Encoding: chunked",
        "Transfer-Encoding: chunked\r\nContent-Length: 6",
        "tRANSFER-ENCODING: chunked\r\nContent-Length: 6",
        "Content-Length: 6\r\nTransfer-Encoding:\tchunked",
        "Content-Length: 6\r\nTransfer-Encoding: chunked\t",
        "content-length: 0\r\nTRANSFER-ENCODING: CHUNKED",
        "Content-Length: 6\r\nTransfer-Encoding: gzip, chunked",
        "Content-Length: 6\r\nTransfer-Encoding: identity",
    ] {
        assert_rejected(&post(headers), 400);
    }
    // Odd bytes around `chunked` are not whitespace: not chunked at all.
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: \xa0chunked\xa0\r\n\r\n".to_vec();
    input.extend_from_slice(b"0\r\n\r\nX");
    assert_rejected(&input, 400);
    assert_rejected(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x85chunked\r\n\r\n", 400);
    // Space before the colon: never read as Transfer-Encoding.
    assert_rejected(&post("Content-Length: 6\r\nTransfer-Encoding : chunked"), 400);
}

#[test]
fn transfer_encoding_values() {
    for value in [
        "chunked, identity",
        "identity",
        "identity, chunked",
        "xchunked",
        "chunked-false",
        ",chunked",
        "chunked,",
        "chunked, chunked",
        "chunked;q=1",
        "gzip",
        "blegh",
        "",
    ] {
        assert_rejected(&post(&format!("Transfer-Encoding: {value}")), 400);
    }
    assert_rejected(&post("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"), 400);
    assert_rejected(&post("Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked"), 400);
    assert_rejected(&post("Transfer-Encoding: gzip, chunked"), 501);
    assert_rejected(&post("Transfer-Encoding: blegh, chunked"), 501);
    // Legal spellings.
    for value in ["chunked", "CHUNKED", "Chunked", " chunked "] {
        let events = check(&post(&format!("Transfer-Encoding: {value}")));
        assert!(
            matches!(events[..], [Event::Head(_), Event::End, Event::Error(..)]),
            "{value}: {events:?}"
        );
    }
}

#[test]
fn transfer_encoding_in_http10_is_rejected() {
    assert_rejected(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400);
}

#[test]
fn content_length_values() {
    for value in [
        "+3",
        "-1",
        "3abc",
        "",
        "0x10",
        "1_0",
        "5, 5",
        "5,5",
        "5 5",
        "1Z",
        "18446744073709551616",
        "99999999999999999999999",
        "\u{a0}5",
        "٣",
    ] {
        assert_rejected(
            &format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {value}\r\n\r\nabc")
                .into_bytes(),
            400,
        );
    }
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 0\r\n\r\nx",
        400,
    );
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc",
        400,
    );
    assert_rejected(b"POST / HTTP/1.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", 400);
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut input = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    input.extend_from_slice(body);
    input
}

#[test]
fn chunk_size_lines() {
    for body in [
        &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
        b"+5\r\nhello\r\n0\r\n\r\n",
        b"-0\r\n\r\n",
        b"5_0\r\n",
        b"   0\r\n\r\n",
        b"0 \r\n\r\n",
        b"\r\n",
        b"FFFFFFFFFFFFFFFF1\r\n",
        b"00000000000000000\r\n\r\n",
        b"0_2e\r\n\r\n",
        b"5\r\r;ext\r\nhello\r\n0\r\n\r\n",
        b"5\nhello\r\n0\r\n\r\n",
        b"5\r\nhello\n0\r\n\r\n",
        b"5\r\nhelloX0\r\n\r\n",
        b"5\r\nhelloX\n0\r\n\r\n",
        b"5\r\nhello\rX0\r\n\r\n",
        b"5;a\rb\r\nhello\r\n0\r\n\r\n",
        b"5;a\x00\r\nhello\r\n0\r\n\r\n",
        b"5;a\nb\r\nhello\r\n0\r\n\r\n",
        b"g\r\n",
        b"5\r\nhello\r\n0\r\nX:1\n\r\n",
        b"5\r\nhello\r\n0\r\n\n",
    ] {
        assert_body_rejected(&chunked(body), 400);
    }
}

#[test]
fn chunk_extensions_and_trailers() {
    let mut long = b"1;".to_vec();
    long.extend(std::iter::repeat_n(b'e', 5000));
    long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
    assert_body_rejected(&chunked(&long), 400);
    let ok = check(&chunked(b"1;a=b;c=\"quoted;\\\"\"\t;d\r\nx\r\n0\r\n\r\n"));
    assert_eq!(ok[1], Event::Data(b"x".to_vec()));
    // Trailers are syntax-checked and discarded; even framing fields there
    // change nothing.
    let ok =
        check(&chunked(b"1\r\nx\r\n0\r\nContent-Length: 100\r\nTransfer-Encoding: x\r\n\r\nGET"));
    assert!(
        matches!(ok[..], [Event::Head(_), Event::Data(_), Event::End, Event::Error(None, _)]),
        "{ok:?}"
    );
    for bad in [
        &b"0\r\n: x\r\n\r\n"[..],
        b"0\r\nX : x\r\n\r\n",
        b"0\r\n x\r\n\r\n",
        b"0\r\nX: a\x00\r\n\r\n",
        b"0\r\n\rX",
    ] {
        assert_body_rejected(&chunked(bad), 400);
    }
}

#[test]
fn line_endings() {
    assert_rejected(b"GET / HTTP/1.1\nHost: a\n\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\n\rX\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400);
    assert_rejected(b"GET /\r HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400);
    assert_rejected(b"GET /\nfoo HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn obs_fold_is_rejected() {
    assert_rejected(&get_with(b"X: a\r\n b\r\n"), 400);
    assert_rejected(&get_with(b"X: a\r\n\tb\r\n"), 400);
    // Leading whitespace on the first header line (Garden #4).
    assert_rejected(b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400);
}

#[test]
fn header_names() {
    for line in [
        &b"Content-Length : 3\r\n"[..],
        b"X\t: y\r\n",
        b": x\r\n",
        b"NoColon\r\n",
        b"X(Y: z\r\n",
        b"X\"Y: z\r\n",
        b"X/Y: z\r\n",
        b"X\x00Y: z\r\n",
        b"X\x01: z\r\n",
        b"X\xe9: z\r\n",
        b"X Y: z\r\n",
        b"X\r\n: z\r\n",
    ] {
        assert_rejected(&get_with(line), 400);
    }
}

#[test]
fn header_values() {
    for line in [
        &b"X: a\x00b\r\n"[..],
        b"X: a\x7fb\r\n",
        b"X: a\x01b\r\n",
        b"X: \x1b[31m\r\n",
        b"X: a\x0bb\r\n",
    ] {
        assert_rejected(&get_with(line), 400);
    }
    // HTAB and obs-text are legal.
    let head = head_of(&get_with(b"X: a\tb\xff\r\n"));
    assert_eq!(head.header(b"x"), Some(&b"a\tb\xff"[..]));
}

#[test]
fn host_rules() {
    assert_rejected(b"GET / HTTP/1.1\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400);
    for host in ["a b", "a/b", "a@b", "a:b", ":80", "a:123456", "[::1", "[::1]x", "a\"b"] {
        assert_rejected(&format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes(), 400);
    }
    // An empty Host is allowed (RFC 9112 §3.2), as is Host_ (dropped).
    head_of(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
    assert_rejected(b"GET / HTTP/1.1\r\nHost_: a\r\n\r\n", 400);
}

#[test]
fn request_targets() {
    assert_rejected(b"GET a.com:80 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET ! HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET index.html HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"OPTIONS *x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET ftp://a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET http://user@a/x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET http://a b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET /caf\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"CONNECT a.com:443 HTTP/1.1\r\nHost: a.com:443\r\n\r\n", 501);
    // Absolute-form still needs Host in HTTP/1.1.
    assert_rejected(b"GET http://a/x HTTP/1.1\r\n\r\n", 400);
    head_of(b"GET http://a/x HTTP/1.0\r\n\r\n");
}

#[test]
fn request_lines() {
    assert_rejected(b"G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.32\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET / http/1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/\r\r1.1\r\nHost: a\r\n\r\n", 400);
    assert_rejected(b"GET /\r\n\r\n", 400);
    assert_rejected(b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505);
    assert_rejected(b"GET / HTTP/4294967295.255\r\nHost: a\r\n\r\n", 505);
    assert_rejected(b"GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505);
    assert_rejected(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505);
    assert_rejected(b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn tls_on_a_plaintext_port_fails_at_once() {
    // A ClientHello prefix: no line end ever comes, yet the answer is
    // immediate (the client would wait for a ServerHello).
    assert_rejected(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400);
}

#[test]
fn a_malformed_partial_head_is_rejected_at_eof() {
    // Found by the fuzzer: without a line end the head is parsed again only
    // at EOF; the answer must not depend on the packet splits.
    assert_rejected(b"OPTIONS * HTTP/1.\x00", 400);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nX\x00", 400);
}

#[test]
fn expectations_other_than_100_continue() {
    assert_rejected(
        b"POST / HTTP/1.1\r\nHost: a\r\nExpect: foo\r\nContent-Length: 1\r\n\r\nx",
        417,
    );
    assert_rejected(b"POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue, foo\r\n\r\n", 417);
    assert_rejected(b"POST / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n", 417);
    assert_rejected(b"GET / HTTP/1.1\r\nHost: a\r\nExpect:\r\n\r\n", 417);
}

#[test]
fn size_limits() {
    let big_header = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "x".repeat(8200));
    assert_eq!(
        common::run_pieces(&[big_header.as_bytes()], common::limits())[0].status(),
        Some(431)
    );
    let big_line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(8200));
    assert_eq!(common::run_pieces(&[big_line.as_bytes()], common::limits())[0].status(), Some(414));
}

#[test]
fn an_invalid_request_after_a_valid_one_keeps_the_valid_one() {
    let events =
        check(b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\nGET /bad HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n");
    assert!(
        matches!(events[..], [Event::Head(_), Event::End, Event::Error(Some(400), _)]),
        "{events:?}"
    );
}

#[test]
fn nothing_after_a_framing_error_is_parsed() {
    let events = check(&post(
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\nGET / HTTP/1.1\r\nHost: a",
    ));
    assert_eq!(events.len(), 1);
}

#[test]
fn upgrade_requests_are_ordinary_requests() {
    let head = head_of(
        b"GET /ws HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Protocol: \xe2\x98\x83\r\n\r\n",
    );
    assert_eq!(head.header(b"upgrade"), Some(&b"websocket"[..]));
}
