//! Decoding valid requests: heads, bodies, pipelining, keep-alive, EOF,
//! limits. Every input goes through `check`, which also feeds it split at
//! every byte and one byte at a time.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::{Event, check, check_with, head_of, limits, run_pieces};
use rwsgi_http1::Http1Codec;
use rwsgi_proto::{BodyLength, Frame, Limits, ProtoError, RequestHead};
use tokio_util::codec::Decoder;

fn data(bytes: &[u8]) -> Event {
    Event::Data(bytes.to_vec())
}

fn heads(events: &[Event]) -> Vec<&rwsgi_http1::Http1Head> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Head(h) => Some(&**h),
            _ => None,
        })
        .collect()
}

#[test]
fn simple_get() {
    let events = check(b"GET /index.html?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], Event::End);
    let head = heads(&events)[0];
    assert_eq!(head.method(), b"GET");
    assert_eq!(head.target(), b"/index.html?x=1");
    assert_eq!(head.version(), 1);
    assert!(head.keep_alive());
    assert_eq!(head.header(b"HOST"), Some(&b"example.com"[..]));
    assert_eq!(head.header(b"accept"), Some(&b"*/*"[..]));
    assert_eq!(head.header(b"x-missing"), None);
    assert_eq!(head.body_length(), BodyLength::Empty);
    assert!(!head.expects_continue());
    assert_eq!(head.describe(), "GET /index.html?x=1");
}

#[test]
fn http10_without_host_is_fine() {
    let head = head_of(b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(head.version(), 0);
    assert!(!head.keep_alive());
}

#[test]
fn keep_alive_rules() {
    let cases: [(&[u8], bool); 11] = [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nConnection: close\r\n\r\n", false),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", true),
        (b"GET / HTTP/1.1\r\nHost: a\r\nConnection: closed\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: foo ,\tKeep-Alive\r\n\r\n", true),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: close, keep-alive\r\n\r\n", false),
        (b"GET / HTTP/1.0\r\nConnection: close\r\nConnection: keep-alive\r\n\r\n", false),
    ];
    for (input, keep_alive) in cases {
        assert_eq!(head_of(input).keep_alive(), keep_alive, "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn nothing_is_parsed_after_a_closing_request() {
    for first in [
        &b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"[..],
        b"GET / HTTP/1.0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
    ] {
        let mut input = first.to_vec();
        input.extend_from_slice(b"GET /second HTTP/1.1\r\nHost: a\r\n\r\nGARBAGE\x00");
        let events = check(&input);
        assert_eq!(heads(&events).len(), 1, "{events:?}");
        assert_eq!(events.last(), Some(&Event::End));
    }
}

#[test]
fn three_pipelined_requests_with_bodies() {
    let input = b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n\
POST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello\
POST /3 HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nworld\r\n0\r\n\r\n";
    let events = check(input);
    let targets: Vec<&[u8]> = heads(&events).iter().map(|h| h.target()).collect();
    assert_eq!(targets, [&b"/1"[..], b"/2", b"/3"]);
    let shape: Vec<Event> = events
        .iter()
        .map(|e| if let Event::Head(_) = e { Event::End } else { e.clone() })
        .collect();
    assert_eq!(
        shape,
        [
            Event::End,
            Event::End,
            Event::End,
            data(b"hello"),
            Event::End,
            Event::End,
            data(b"world"),
            Event::End
        ]
    );
    let bodies: Vec<BodyLength> = heads(&events).iter().map(|h| h.body_length()).collect();
    assert_eq!(bodies, [BodyLength::Empty, BodyLength::Known(5), BodyLength::Streamed]);
}

#[test]
fn a_body_that_looks_like_a_request_stays_a_body() {
    let body = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut input = format!("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len())
        .into_bytes();
    input.extend_from_slice(body);
    input.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n");
    let events = check(&input);
    assert_eq!(events.len(), 5);
    assert_eq!(events[1], data(body));
    assert_eq!(heads(&events)[1].target(), b"/next");
}

#[test]
fn a_head_after_a_content_length_zero_request() {
    let events = check(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(heads(&events).len(), 2);
    assert_eq!(heads(&events)[0].body_length(), BodyLength::Empty);
    assert_eq!(events.len(), 4);
}

#[test]
fn empty_body_ends_without_more_input() {
    let mut codec = Http1Codec::new(limits());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert!(buf.is_empty());
    assert!(codec.body_finished());
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::End))));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
}

#[test]
fn data_never_runs_past_the_body() {
    let mut codec = Http1Codec::new(limits());
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabcGET"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert!(!codec.body_finished());
    match codec.decode(&mut buf) {
        Ok(Some(Frame::Data(d))) => assert_eq!(&d[..], b"abc"),
        other => panic!("{other:?}"),
    }
    assert!(codec.body_finished());
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::End))));
    assert_eq!(&buf[..], b"GET");
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.decode_eof(&mut buf), Err(ProtoError::UnexpectedEof)));
}

#[test]
fn head_and_body_are_views_of_the_read_buffer() {
    let mut codec = Http1Codec::new(limits());
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\nbody"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let Ok(Some(Frame::Head(head))) = codec.decode(&mut buf) else { panic!() };
    let Ok(Some(Frame::Data(body))) = codec.decode(&mut buf) else { panic!() };
    assert!(range.contains(&(head.method().as_ptr() as usize)));
    assert!(range.contains(&(head.header(b"host").unwrap().as_ptr() as usize)));
    assert!(range.contains(&(body.as_ptr() as usize)));
}

#[test]
fn chunked_body_with_extensions_and_trailers() {
    let input = b"POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n\
5;name=value;q=\"x y\"\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0;last\r\nX-Checksum: 1\r\nX-Other: 2\r\n\r\n";
    let events = check(input);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], data(b"helloabcdefghijklmnopqrstuvwxyz"));
    assert_eq!(events[2], Event::End);
    // Trailers are discarded, never merged into the head.
    assert_eq!(heads(&events)[0].header(b"x-checksum"), None);
}

#[test]
fn chunked_then_pipelined_request() {
    let events = check(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /n HTTP/1.1\r\nHost: a\r\n\r\n",
    );
    assert_eq!(events.len(), 5);
    assert_eq!(heads(&events)[1].target(), b"/n");
}

#[test]
fn leading_empty_lines_are_tolerated_up_to_a_few() {
    let events = check(b"\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(events.len(), 2);
    // After a body, too (some clients add a CRLF after a POST body).
    let events = check(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(heads(&events).len(), 2);
    common::assert_rejected(b"\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    common::assert_rejected(b"\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
    common::assert_rejected(b"\r\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400);
}

#[test]
fn eof_between_requests_is_clean() {
    assert_eq!(check(b""), []);
    assert_eq!(check(b"\r\n").len(), 0);
    assert_eq!(check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").last(), Some(&Event::End));
}

#[test]
fn eof_inside_a_message_is_an_error() {
    let eof = Event::Error(None, ProtoError::UnexpectedEof.to_string());
    for partial in [&b"GET / HTTP/1.1\r\nHost: a\r\n"[..], b"G", b"\r"] {
        assert_eq!(check(partial), std::slice::from_ref(&eof));
    }
    let events = check(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nhello");
    assert_eq!(events[1..], [data(b"hello"), eof.clone()]);
    let events =
        check(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
    assert_eq!(events[1..], [data(b"hello"), eof.clone()]);
    let events = check(b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r");
    assert_eq!(events[1..], [eof]);
}

#[test]
fn a_huge_content_length_without_a_body_allocates_nothing() {
    let events = check(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999\r\n\r\nabc");
    assert_eq!(heads(&events)[0].body_length(), BodyLength::Known(99_999_999_999));
    assert_eq!(events[1], data(b"abc"));
    assert_eq!(events[2].status(), None);
}

#[test]
fn the_codec_is_poisoned_after_an_error() {
    let mut codec = Http1Codec::new(limits());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
    assert!(matches!(codec.decode(&mut buf), Err(ProtoError::BadRequest(_))));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
    assert!(!codec.body_finished());
}

#[test]
fn expect_100_continue() {
    let head =
        head_of(b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n");
    assert!(head.expects_continue());
    let head = head_of(
        b"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n",
    );
    assert!(head.expects_continue());
    // No body: nothing to wait for.
    assert!(
        !head_of(b"GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n").expects_continue()
    );
    // RFC 9110 §10.1.1: ignored in HTTP/1.0.
    assert!(
        !head_of(b"PUT / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
            .expects_continue()
    );
    assert!(!head_of(b"PUT / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n").expects_continue());
}

#[test]
fn content_length_forms() {
    assert_eq!(
        head_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 010\r\n\r\n").body_length(),
        BodyLength::Known(10)
    );
    assert_eq!(
        head_of(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:  5 \t\r\n\r\n").body_length(),
        BodyLength::Known(5)
    );
    assert_eq!(
        head_of(b"POST / HTTP/1.1\r\nHost: a\r\ncontent-LENGTH: 0\r\n\r\n").body_length(),
        BodyLength::Empty
    );
    assert_eq!(head_of(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n").body_length(), BodyLength::Empty);
}

#[test]
fn describe_truncates_long_targets() {
    let long = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "x".repeat(500));
    let described = head_of(long.as_bytes()).describe();
    assert!(described.starts_with("GET /xxx"));
    assert!(described.chars().count() < 210, "{described}");
    assert!(described.ends_with('…'));
    assert_eq!(head_of(b"get /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n").describe(), "get /café");
}

fn with_limits(max_head: usize, max_headers: usize, max_body: Option<u64>) -> Limits {
    Limits { max_head, max_headers, max_body }
}

#[test]
fn head_size_limit() {
    let head = b"GET / HTTP/1.1\r\nHost: a\r\nX: 12345\r\n\r\n";
    let exact = with_limits(head.len(), 100, None);
    assert!(matches!(check_with(head, exact).first(), Some(Event::Head(_))));
    let short = with_limits(head.len() - 1, 100, None);
    assert_eq!(check_with(head, short)[0].status(), Some(431));
    // A large header in a default-size head.
    let big = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}\r\n\r\n", "v".repeat(9000));
    assert_eq!(run_pieces(&[big.as_bytes()], limits())[0].status(), Some(431));
    // Never complete, but over the limit: reject without waiting.
    let endless = format!("GET / HTTP/1.1\r\nHost: a\r\nX: {}", "v".repeat(9000));
    let mut codec = Http1Codec::new(limits());
    let mut buf = BytesMut::from(endless.as_bytes());
    assert!(matches!(codec.decode(&mut buf), Err(ProtoError::HeadTooLarge { limit: 8192 })));
}

#[test]
fn request_line_limit_is_414() {
    let line = format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "a".repeat(100));
    assert_eq!(check_with(line.as_bytes(), with_limits(64, 100, None))[0].status(), Some(414));
    let mut codec = Http1Codec::new(limits());
    let mut buf = BytesMut::from(format!("GET /{}", "a".repeat(9000)).as_bytes());
    assert!(matches!(codec.decode(&mut buf), Err(ProtoError::UriTooLong { limit: 8192 })));
}

fn with_headers(n: usize) -> Vec<u8> {
    let mut input = b"GET / HTTP/1.1\r\nHost: a\r\n".to_vec();
    for i in 1..n {
        input.extend_from_slice(format!("X-H{i}: {i}\r\n").as_bytes());
    }
    input.extend_from_slice(b"\r\n");
    input
}

#[test]
fn header_count_limit() {
    let ok = run_pieces(&[&with_headers(100)], limits());
    assert!(matches!(ok[0], Event::Head(_)), "{ok:?}");
    assert_eq!(run_pieces(&[&with_headers(101)], limits())[0].status(), Some(431));
    let three = with_limits(8192, 3, None);
    assert!(matches!(check_with(&with_headers(3), three)[0], Event::Head(_)));
    assert_eq!(check_with(&with_headers(4), three)[0].status(), Some(431));
    // Above the stack slots: kept on the heap, reused across requests.
    let many = with_limits(65535, 150, None);
    let mut two = with_headers(150);
    two.extend_from_slice(&with_headers(150));
    let events = run_pieces(&[&two], many);
    assert_eq!(heads(&events).len(), 2);
    assert_eq!(heads(&events)[1].header(b"x-h149"), Some(&b"149"[..]));
    assert_eq!(run_pieces(&[&with_headers(151)], many)[0].status(), Some(431));
    assert_eq!(check_with(&with_headers(1), with_limits(8192, 0, None))[0].status(), Some(431));
}

#[test]
fn content_length_over_the_limit_is_413_before_the_body() {
    let limit = with_limits(8192, 100, Some(10));
    assert!(matches!(
        check_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", limit)[..],
        [Event::Head(_), Event::Data(_), Event::End]
    ));
    let events = check_with(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", limit);
    assert_eq!(
        events,
        [Event::Error(Some(413), ProtoError::BodyTooLarge { limit: 10 }.to_string())]
    );
}

#[test]
fn chunked_over_the_limit_is_413_when_the_total_crosses_it() {
    let limit = with_limits(8192, 100, Some(10));
    let ok = check_with(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n",
        limit,
    );
    assert_eq!(ok.len(), 3);
    let events = check_with(
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n",
        limit,
    );
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], data(b"hello"));
    assert_eq!(events[2].status(), Some(413));
}

#[test]
fn trailers_count_against_the_head_limits() {
    let mut input =
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n".to_vec();
    input.extend_from_slice(format!("X-T: {}\r\n\r\n", "t".repeat(300)).as_bytes());
    let events = check_with(&input, with_limits(256, 100, None));
    assert_eq!(events.last().and_then(Event::status), Some(431));
}

#[test]
fn body_finished_tracks_the_wire() {
    let mut codec = Http1Codec::new(limits());
    let mut buf = BytesMut::from(
        &b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n"[..],
    );
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert!(!codec.body_finished());
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Data(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(!codec.body_finished());
    buf.extend_from_slice(b"0\r\n\r\n");
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::End))));
    assert!(codec.body_finished());
}

#[test]
fn absolute_and_asterisk_forms_are_accepted() {
    let head = head_of(b"GET http://example.com/x?y HTTP/1.1\r\nHost: other\r\n\r\n");
    assert_eq!(head.target(), b"http://example.com/x?y");
    let head = head_of(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(head.target(), b"*");
}

#[test]
fn methods_are_case_sensitive_tokens() {
    assert_eq!(head_of(b"get / HTTP/1.1\r\nHost: a\r\n\r\n").method(), b"get");
    assert_eq!(head_of(b"M-SEARCH / HTTP/1.1\r\nHost: a\r\n\r\n").method(), b"M-SEARCH");
}

#[test]
fn obs_text_in_values_is_kept() {
    let head = head_of(b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9 \xa0\r\n\r\n");
    assert_eq!(head.header(b"x"), Some(&b"caf\xc3\xa9 \xa0"[..]));
}

/// The core gathers a body the codec says comes unframed: only a
/// `Content-Length` body does.
#[test]
fn a_content_length_body_only_is_in_place() {
    let head = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123";
    rwsgi_testkit::assert_unframed_body_counts_down(|| Http1Codec::new(limits()), head, 10);
    let mut codec = Http1Codec::new(limits());
    let mut buf =
        BytesMut::from(&b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"[..]);
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert_eq!(rwsgi_proto::ServerCodec::body_in_place(&codec), None, "a chunked body is framed");
}
