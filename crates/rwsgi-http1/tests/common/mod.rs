//! Helpers shared by the integration tests: drive a codec over an input
//! fed whole, split in two at every position, and one byte at a time, and
//! check the frames and errors are the same.

#![allow(dead_code)]

use rwsgi_http1::{Http1Codec, Http1Head};
use rwsgi_proto::{ConnInfo, Environ, Limits};
use rwsgi_testkit::{
    assert_no_abort, assert_same_at_every_split, drive, environ_of, expect_error_last, expect_head,
};

/// One observable result of decoding an HTTP request.
pub type Event = rwsgi_testkit::Event<Http1Head>;

pub fn limits() -> Limits {
    Limits { max_head: 8192, max_headers: 100, max_body: None }
}

/// Feeds `pieces` in turn, decoding all it can after each, then EOF.
pub fn run_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Event> {
    let events = drive(&mut Http1Codec::new(limits), pieces, true, None, |_| {});
    assert_no_abort(&events, "HTTP");
    events
}

/// Decodes `input` whole, split in two at every byte, and one byte at a
/// time; asserts every way gives the same events and returns them.
pub fn check_with(input: &[u8], limits: Limits) -> Vec<Event> {
    assert_same_at_every_split(input, |pieces| run_pieces(pieces, limits))
}

pub fn check(input: &[u8]) -> Vec<Event> {
    check_with(input, limits())
}

/// The first head of `input`, which must decode without an error status
/// (an EOF inside a body that was left out is fine).
pub fn head_of(input: &[u8]) -> Http1Head {
    expect_head(check(input), input)
}

/// The only event of `input` must be an error with `status`.
pub fn assert_rejected(input: &[u8], status: u16) {
    let before = expect_error_last(check(input), status, "", input);
    assert!(before.is_empty(), "events before the error: {before:?}");
}

/// The head is accepted, then the body fails with `status`.
pub fn assert_body_rejected(input: &[u8], status: u16) {
    let before = expect_error_last(check(input), status, "", input);
    assert!(matches!(before.first(), Some(Event::Head(_))), "{before:?}");
}

pub fn tcp_conn() -> ConnInfo {
    rwsgi_testkit::tcp_conn(8080)
}

pub fn environ_with(input: &[u8], conn: &ConnInfo) -> Environ {
    environ_of(&head_of(input), conn)
}

pub fn environ(input: &[u8]) -> Environ {
    environ_with(input, &tcp_conn())
}
