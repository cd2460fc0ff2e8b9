//! Helpers shared by the integration tests: build uwsgi packets, drive a
//! codec over an input fed whole, split in two at every position, and one
//! byte at a time, and check the frames and errors are the same.

#![allow(dead_code, clippy::unwrap_used)]

use rwsgi_proto::{ConnInfo, Environ, Limits};
use rwsgi_testkit::{
    assert_no_abort, assert_same_at_every_split, drive, environ_of, expect_error_last, expect_head,
};
use rwsgi_uwsgi::{UwsgiCodec, UwsgiHead};

/// The 4-byte packet header for a vars block of `datasize` bytes.
pub fn header(modifier1: u8, datasize: u16, modifier2: u8) -> [u8; 4] {
    let [lo, hi] = datasize.to_le_bytes();
    [modifier1, lo, hi, modifier2]
}

/// A vars block from `(key, value)` pairs.
pub fn vars_block(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in vars {
        out.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// A whole request packet (modifier1 0): header, vars, `body`.
pub fn packet(vars: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let block = vars_block(vars);
    let mut out = header(0, u16::try_from(block.len()).unwrap(), 0).to_vec();
    out.extend_from_slice(&block);
    out.extend_from_slice(body);
    out
}

/// A packet with a raw vars block (which may lie about itself).
pub fn raw_packet(block: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = header(0, u16::try_from(block.len()).unwrap(), 0).to_vec();
    out.extend_from_slice(block);
    out.extend_from_slice(body);
    out
}

/// The vars Debian's `/etc/nginx/uwsgi_params` makes nginx send for
/// `method target` on a TCP listener (`server_name example.com`, port
/// 80), before the client's own headers: `CONTENT_TYPE`/`CONTENT_LENGTH`
/// are empty when the request has no body, `HTTPS` only under TLS.
pub fn nginx_vars<'a>(
    method: &'a [u8],
    uri: &'a [u8],
    path: &'a [u8],
    query: &'a [u8],
    content_type: &'a [u8],
    content_length: &'a [u8],
) -> Vec<(&'a [u8], &'a [u8])> {
    vec![
        (b"QUERY_STRING", query),
        (b"REQUEST_METHOD", method),
        (b"CONTENT_TYPE", content_type),
        (b"CONTENT_LENGTH", content_length),
        (b"REQUEST_URI", uri),
        (b"PATH_INFO", path),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"203.0.113.9"),
        (b"REMOTE_PORT", b"40312"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"HTTP_HOST", b"example.com"),
        (b"HTTP_USER_AGENT", b"curl/8.5.0"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
}

/// A minimal valid packet: `REQUEST_METHOD` plus `extra` vars.
pub fn get_with(extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut vars: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
    vars.extend_from_slice(extra);
    packet(&vars, b"")
}

/// One observable result of decoding a uwsgi request.
pub type Event = rwsgi_testkit::Event<UwsgiHead>;

pub fn limits() -> Limits {
    Limits { max_head: 4096, max_headers: 100, max_body: None }
}

/// Feeds `pieces` in turn, decoding all it can after each; then EOF when
/// `eof`. After an error, the codec must stay silent.
pub fn run_pieces_with(pieces: &[&[u8]], limits: Limits, eof: bool) -> Vec<Event> {
    let probe = packet(&[(b"REQUEST_METHOD", b"GET")], b"");
    let events = drive(&mut UwsgiCodec::new(limits), pieces, eof, Some(&probe), |_| {});
    assert_no_abort(&events, "uwsgi");
    events
}

pub fn run_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Event> {
    run_pieces_with(pieces, limits, true)
}

/// Decodes `input` whole, split in two at every byte, and one byte at a
/// time (ending with EOF when `eof`); asserts every way gives the same
/// events and returns them.
pub fn check_eof(input: &[u8], limits: Limits, eof: bool) -> Vec<Event> {
    assert_same_at_every_split(input, |pieces| run_pieces_with(pieces, limits, eof))
}

pub fn check_with(input: &[u8], limits: Limits) -> Vec<Event> {
    check_eof(input, limits, true)
}

pub fn check(input: &[u8]) -> Vec<Event> {
    check_with(input, limits())
}

/// The head of `input`, which must decode without an error status (an
/// EOF inside a body that was left out is fine).
pub fn head_of(input: &[u8]) -> UwsgiHead {
    expect_head(check(input), input)
}

/// The only event of `input` must be an error with `status` and a
/// message containing `message`.
pub fn assert_rejected_with(input: &[u8], limits: Limits, status: u16, message: &str) {
    let before = expect_error_last(check_with(input, limits), status, message, input);
    assert!(before.is_empty(), "events before the error: {before:?}");
}

pub fn assert_rejected(input: &[u8], status: u16, message: &str) {
    assert_rejected_with(input, limits(), status, message);
}

pub fn tcp_conn() -> ConnInfo {
    rwsgi_testkit::tcp_conn(3031)
}

pub fn environ_with(input: &[u8], conn: &ConnInfo) -> Environ {
    environ_of(&head_of(input), conn)
}

pub fn environ(input: &[u8]) -> Environ {
    environ_with(input, &tcp_conn())
}
