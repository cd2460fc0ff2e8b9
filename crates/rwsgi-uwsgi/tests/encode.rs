//! Response encoding: a plain HTTP/1.x response ended by the close; the
//! status line's protocol, HEAD and bodiless statuses, error responses.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use common::{get_with, limits, packet};
use rwsgi_proto::{OutBuf, ProtoError, ResponseHead, ServerCodec, reason_phrase};
use rwsgi_testkit::{DATE, decoded_through_end, response_head as response};
use rwsgi_uwsgi::UwsgiCodec;
use tokio_util::codec::Decoder;

/// A codec that has decoded `request` entirely (head and body).
fn after(request: &[u8]) -> UwsgiCodec {
    decoded_through_end(UwsgiCodec::new(limits()), request)
}

fn with_protocol(protocol: &[u8]) -> Vec<u8> {
    get_with(&[(b"SERVER_PROTOCOL", protocol)])
}

/// Encodes a whole response; returns the bytes and `encode_end`'s answer.
fn respond(
    codec: &mut UwsgiCodec,
    head: &ResponseHead,
    body: &[&'static [u8]],
    complete: bool,
) -> (String, bool) {
    let mut out = OutBuf::new();
    codec.encode_continue(&mut out);
    assert!(out.is_empty(), "no 100 Continue on uwsgi");
    codec.encode_head(head, DATE, &mut out);
    for piece in body {
        codec.encode_data(Bytes::from_static(piece), &mut out);
    }
    let before_end = out.len();
    let reuse = codec.encode_end(complete, &mut out);
    assert_eq!(out.len(), before_end, "encode_end wrote something");
    (String::from_utf8(out.take_contiguous().to_vec()).unwrap(), reuse)
}

#[test]
fn an_http11_response() {
    let head = response(
        200,
        "200 OK",
        &[("Content-Type", "text/plain"), ("Content-Length", "13")],
        Some(13),
    );
    let mut codec = after(&with_protocol(b"HTTP/1.1"));
    let (wire, reuse) = respond(&mut codec, &head, &[b"Hello, ", b"world!"], true);
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\
Date: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\nHello, world!"
    );
    assert!(!reuse);
}

#[test]
fn without_a_length_the_body_is_raw_never_chunked() {
    let head = response(200, "200 OK", &[], None);
    let mut codec = after(&with_protocol(b"HTTP/1.1"));
    let (wire, reuse) = respond(&mut codec, &head, &[b"abc", b"", b"def"], true);
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\nabcdef"
    );
    assert!(!reuse);
    assert_eq!(codec.raw_data_framing(10), None, "after encode_end nothing more goes out");
}

#[test]
fn the_status_line_protocol() {
    let head = response(404, "404 Not Found", &[], None);
    let cases: [(Option<&[u8]>, &str); 9] = [
        (Some(b"HTTP/1.1"), "HTTP/1.1"),
        (Some(b"HTTP/1.0"), "HTTP/1.0"),
        (None, "HTTP/1.0"),
        (Some(b""), "HTTP/1.0"),
        (Some(b"HTTP/2.0"), "HTTP/1.0"),
        (Some(b"HTTP/3"), "HTTP/1.0"),
        (Some(b"http/1.1"), "HTTP/1.0"),
        (Some(b"HTTP/1.1 "), "HTTP/1.0"),
        (Some(b"HTTP/1.1\r\nX-Evil: 1"), "HTTP/1.0"),
    ];
    for (protocol, expected) in cases {
        let request = match protocol {
            Some(p) => with_protocol(p),
            None => get_with(&[]),
        };
        let (wire, _) = respond(&mut after(&request), &head, &[], true);
        assert!(wire.starts_with(&format!("{expected} 404 Not Found\r\n")), "{protocol:?}: {wire}");
        assert!(!wire.contains("Evil"));
    }
}

#[test]
fn head_requests_get_no_body() {
    let request = packet(&[(b"REQUEST_METHOD", b"HEAD"), (b"SERVER_PROTOCOL", b"HTTP/1.1")], b"");
    let mut codec = after(&request);
    let head = response(200, "200 OK", &[("Content-Length", "13")], Some(13));
    let mut out = OutBuf::new();
    codec.encode_head(&head, DATE, &mut out);
    assert_eq!(codec.raw_data_framing(13), None);
    codec.encode_data(Bytes::from_static(b"Hello, world!"), &mut out);
    assert!(!codec.encode_end(true, &mut out));
    assert_eq!(
        &out.take_contiguous()[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
Connection: close\r\n\r\n"
    );
    // Only HEAD exactly: a lower-case method is some other method.
    let mut codec = after(&packet(&[(b"REQUEST_METHOD", b"head")], b""));
    codec.encode_head(&head, DATE, &mut out);
    assert!(codec.raw_data_framing(13).is_some());
}

#[test]
fn bodiless_statuses() {
    for (status, line) in [(204, "204 No Content"), (304, "304 Not Modified"), (101, "101 X")] {
        let mut codec = after(&with_protocol(b"HTTP/1.1"));
        let head = response(status, line, &[], None);
        let mut out = OutBuf::new();
        codec.encode_head(&head, DATE, &mut out);
        assert_eq!(codec.raw_data_framing(4), None, "{status}");
        let (wire, reuse) = respond(&mut codec, &head, &[b"body"], true);
        assert!(wire.ends_with("Connection: close\r\n\r\n"), "{status}: {wire}");
        assert!(!reuse);
    }
}

#[test]
fn raw_framing_is_empty_for_a_body() {
    let mut codec = after(&with_protocol(b"HTTP/1.1"));
    let mut out = OutBuf::new();
    codec.encode_head(&response(200, "200 OK", &[], Some(5)), DATE, &mut out);
    assert_eq!(codec.raw_data_framing(5), Some((Bytes::new(), Bytes::new())));
    assert_eq!(codec.raw_data_framing(0), Some((Bytes::new(), Bytes::new())));
}

#[test]
fn the_apps_date_is_kept_and_close_after_response_changes_nothing() {
    let head = response(200, "200 OK", &[("Date", "app's own")], None);
    let mut plain = after(&with_protocol(b"HTTP/1.1"));
    let mut closing = after(&with_protocol(b"HTTP/1.1"));
    closing.close_after_response();
    let (a, reuse_a) = respond(&mut plain, &head, &[b"x"], true);
    let (b, reuse_b) = respond(&mut closing, &head, &[b"x"], false);
    assert_eq!(a, b);
    assert!(!reuse_a && !reuse_b);
    assert_eq!(a, "HTTP/1.1 200 OK\r\nDate: app's own\r\nConnection: close\r\n\r\nx");
}

#[test]
fn error_responses() {
    for status in [400u16, 413, 431, 501, 500] {
        let mut codec = UwsgiCodec::new(limits());
        let mut out = OutBuf::new();
        codec.encode_error(status, DATE, &mut out);
        let reason = reason_phrase(status);
        let expected = format!(
            "HTTP/1.0 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\n\
Content-Length: {}\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n{reason}\n",
            reason.len() + 1
        );
        assert_eq!(String::from_utf8(out.take_contiguous().to_vec()).unwrap(), expected);
        // The connection is done: nothing more is decoded.
        let mut buf = BytesMut::from(&get_with(&[])[..]);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }
}

#[test]
fn an_error_after_a_decode_failure_uses_its_status() {
    let mut codec = UwsgiCodec::new(limits());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\n"[..]);
    let err = codec.decode(&mut buf).unwrap_err();
    assert!(matches!(err, ProtoError::WrongProtocol(_)));
    let mut out = OutBuf::new();
    codec.encode_error(err.status().unwrap(), DATE, &mut out);
    assert!(out.take_contiguous().starts_with(b"HTTP/1.0 400 Bad Request\r\n"));
}
