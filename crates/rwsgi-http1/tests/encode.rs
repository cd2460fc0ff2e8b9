//! Response encoding: framing, Connection, Date, HEAD and bodiless
//! statuses, error responses.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::{Bytes, BytesMut};
use rwsgi_http1::Http1Codec;
use rwsgi_proto::reason_phrase;
use rwsgi_proto::{Frame, OutBuf, ResponseHead, ServerCodec};
use rwsgi_testkit::{DATE, decoded_through_end, response_head as response};
use tokio_util::codec::Decoder;

/// A codec that has decoded `request` entirely (head and body).
fn after(request: &[u8]) -> Http1Codec {
    decoded_through_end(Http1Codec::new(common::limits()), request)
}

/// Encodes a whole response; returns the bytes and `encode_end`'s answer.
fn respond(
    codec: &mut Http1Codec,
    head: &ResponseHead,
    body: &[&'static [u8]],
    complete: bool,
) -> (String, bool) {
    let mut out = OutBuf::new();
    codec.encode_head(head, DATE, &mut out);
    for piece in body {
        codec.encode_data(Bytes::from_static(piece), &mut out);
    }
    let reuse = codec.encode_end(complete, &mut out);
    (String::from_utf8(out.take_contiguous().to_vec()).unwrap(), reuse)
}

const GET11: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
const GET10: &[u8] = b"GET / HTTP/1.0\r\n\r\n";
const GET10_KA: &[u8] = b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";

#[test]
fn content_length_response() {
    let head = response(
        200,
        "200 OK",
        &[("Content-Type", "text/plain"), ("Content-Length", "13")],
        Some(13),
    );
    let (wire, reuse) = respond(&mut after(GET11), &head, &[b"Hello, ", b"world!"], true);
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\
Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\nHello, world!"
    );
    assert!(reuse);
}

#[test]
fn chunked_response_for_http11() {
    let head = response(200, "200 OK", &[("Content-Type", "text/plain")], None);
    let (wire, reuse) =
        respond(&mut after(GET11), &head, &[b"Hello", b"", b", world! and more bytes"], true);
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\
Transfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n17\r\n, world! and more bytes\r\n0\r\n\r\n"
    );
    assert!(reuse);
}

#[test]
fn an_incomplete_chunked_body_gets_no_last_chunk() {
    let head = response(200, "200 OK", &[], None);
    let (wire, reuse) = respond(&mut after(GET11), &head, &[b"part"], false);
    assert!(wire.ends_with("4\r\npart\r\n"), "{wire}");
    assert!(!reuse);
    let head = response(200, "200 OK", &[("Content-Length", "10")], Some(10));
    let (_, reuse) = respond(&mut after(GET11), &head, &[b"part"], false);
    assert!(!reuse);
}

#[test]
fn http10_without_length_is_close_delimited() {
    let head = response(200, "200 OK", &[], None);
    for request in [GET10, GET10_KA] {
        let mut codec = after(request);
        let (wire, reuse) = respond(&mut codec, &head, &[b"abc", b"def"], true);
        assert_eq!(
            wire,
            "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\nabcdef"
        );
        assert!(!reuse);
    }
}

#[test]
fn http10_keep_alive_with_length() {
    let head = response(200, "200 OK", &[("Content-Length", "2")], Some(2));
    let (wire, reuse) = respond(&mut after(GET10_KA), &head, &[b"ok"], true);
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: keep-alive\r\n\r\nok"
    );
    assert!(reuse);
    let (wire, reuse) = respond(&mut after(GET10), &head, &[b"ok"], true);
    assert!(wire.contains("\r\nConnection: close\r\n"), "{wire}");
    assert!(!reuse);
}

#[test]
fn connection_close_is_announced() {
    let head = response(200, "200 OK", &[("Content-Length", "0")], Some(0));
    let (wire, reuse) = respond(
        &mut after(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"),
        &head,
        &[],
        true,
    );
    assert_eq!(
        wire,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n"
    );
    assert!(!reuse);
    // A keep-alive HTTP/1.1 response carries no Connection header.
    let (wire, _) = respond(&mut after(GET11), &head, &[], true);
    assert!(!wire.contains("Connection"), "{wire}");
}

#[test]
fn head_responses_have_no_body() {
    let mut codec = after(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n");
    let head = response(200, "200 OK", &[("Content-Length", "13")], Some(13));
    let mut out = OutBuf::new();
    codec.encode_head(&head, DATE, &mut out);
    assert_eq!(codec.raw_data_framing(13), None);
    codec.encode_data(Bytes::from_static(b"Hello, world!"), &mut out);
    assert!(codec.encode_end(true, &mut out));
    let wire = out.take_contiguous();
    assert_eq!(
        &wire[..],
        b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
    );
    // Without a length: still no chunked framing, no body.
    let head = response(200, "200 OK", &[], None);
    let (wire, reuse) =
        respond(&mut after(b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"), &head, &[b"x"], true);
    assert_eq!(wire, "HTTP/1.1 200 OK\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n");
    assert!(reuse);
}

#[test]
fn bodiless_statuses() {
    for (status, line) in [(204, "204 No Content"), (304, "304 Not Modified")] {
        let head = response(status, line, &[("ETag", "\"x\"")], None);
        let (wire, reuse) = respond(&mut after(GET11), &head, &[b"dropped"], true);
        assert_eq!(
            wire,
            format!(
                "HTTP/1.1 {line}\r\nETag: \"x\"\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n"
            )
        );
        assert!(reuse);
    }
}

#[test]
fn a_final_1xx_closes_the_connection() {
    let head = response(103, "103 Early Hints", &[], None);
    let (wire, reuse) = respond(&mut after(GET11), &head, &[b"dropped"], true);
    assert_eq!(
        wire,
        "HTTP/1.1 103 Early Hints\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nConnection: close\r\n\r\n"
    );
    assert!(!reuse);
}

#[test]
fn the_apps_date_is_kept() {
    let head = response(
        200,
        "200 OK",
        &[("date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Content-Length", "0")],
        Some(0),
    );
    let (wire, _) = respond(&mut after(GET11), &head, &[], true);
    assert_eq!(wire.matches("ate: ").count(), 1, "{wire}");
    assert!(wire.contains("date: Mon, 01 Jan 2024"));
}

#[test]
fn status_line_is_always_http11() {
    let head = response(404, "404 Not Found", &[("Content-Length", "0")], Some(0));
    let (wire, _) = respond(&mut after(GET10), &head, &[], true);
    assert!(wire.starts_with("HTTP/1.1 404 Not Found\r\n"));
}

#[test]
fn raw_data_framing() {
    let mut codec = after(GET11);
    let mut out = OutBuf::new();
    codec.encode_head(&response(200, "200 OK", &[], None), DATE, &mut out);
    assert_eq!(
        codec.raw_data_framing(0x1234),
        Some((Bytes::from_static(b"1234\r\n"), Bytes::from_static(b"\r\n")))
    );
    assert_eq!(codec.raw_data_framing(0), Some((Bytes::new(), Bytes::new())));

    let mut codec = after(GET11);
    codec.encode_head(
        &response(200, "200 OK", &[("Content-Length", "5")], Some(5)),
        DATE,
        &mut out,
    );
    assert_eq!(codec.raw_data_framing(5), Some((Bytes::new(), Bytes::new())));

    let mut codec = after(GET10);
    codec.encode_head(&response(200, "200 OK", &[], None), DATE, &mut out);
    assert_eq!(codec.raw_data_framing(5), Some((Bytes::new(), Bytes::new())));

    let mut codec = after(GET11);
    codec.encode_head(&response(304, "304 Not Modified", &[], None), DATE, &mut out);
    assert_eq!(codec.raw_data_framing(5), None);
}

#[test]
fn continue_interim_response() {
    let mut out = OutBuf::new();
    after(GET11).encode_continue(&mut out);
    assert_eq!(&out.take_contiguous()[..], b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[test]
fn an_announced_close_is_in_the_head_and_ends_the_connection() {
    // The core announces the close when the app left the body unread.
    let mut codec = Http1Codec::new(common::limits());
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    let head = response(200, "200 OK", &[("Content-Length", "0")], Some(0));
    codec.close_after_response();
    let (wire, reuse) = respond(&mut codec, &head, &[], true);
    assert!(!reuse, "announced close");
    assert!(wire.contains("\r\nConnection: close\r\n"), "{wire}");

    // Without the announcement the same exchange keeps the connection.
    let mut codec = Http1Codec::new(common::limits());
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Data(_)))));
    let (wire, reuse) = respond(&mut codec, &head, &[], true);
    assert!(reuse, "body read, keep-alive promised");
    assert!(!wire.contains("Connection: close"), "{wire}");
}

#[test]
fn a_bodiless_response_is_complete_whatever_its_content_length() {
    // HEAD with the GET's Content-Length and no body: nothing is missing.
    let mut codec = Http1Codec::new(common::limits());
    let mut buf = BytesMut::from(&b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::End))));
    let head = response(200, "200 OK", &[("Content-Length", "5")], Some(5));
    let (wire, reuse) = respond(&mut codec, &head, &[], false);
    assert!(reuse, "HEAD response is whole");
    assert!(wire.ends_with("\r\n\r\n"), "{wire}");
}

#[test]
fn error_responses() {
    for (status, reason) in [
        (400, "Bad Request"),
        (408, "Request Timeout"),
        (413, "Content Too Large"),
        (414, "URI Too Long"),
        (417, "Expectation Failed"),
        (431, "Request Header Fields Too Large"),
        (500, "Internal Server Error"),
        (501, "Not Implemented"),
        (503, "Service Unavailable"),
        (504, "Gateway Timeout"),
        (505, "HTTP Version Not Supported"),
    ] {
        assert_eq!(reason_phrase(status), reason);
        let mut codec = Http1Codec::new(common::limits());
        let mut out = OutBuf::new();
        codec.encode_error(status, DATE, &mut out);
        let wire = String::from_utf8(out.take_contiguous().to_vec()).unwrap();
        assert_eq!(
            wire,
            format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\
Date: {}\r\nConnection: close\r\n\r\n{reason}\n",
                reason.len() + 1,
                String::from_utf8_lossy(DATE)
            )
        );
        // Nothing is decoded after an error response.
        let mut buf = BytesMut::from(GET11);
        assert!(matches!(codec.decode(&mut buf), Ok(None)));
    }
}

#[test]
fn reason_phrases() {
    assert_eq!(reason_phrase(200), "OK");
    assert_eq!(reason_phrase(404), "Not Found");
    assert_eq!(reason_phrase(599), "Unknown Status");
}
