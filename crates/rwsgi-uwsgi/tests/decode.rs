//! Decoding valid packets: heads, bodies, one request per connection, EOF,
//! limits. Every input goes through `check`, which also feeds it split at
//! every byte and one byte at a time.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::BytesMut;
use common::{
    Event, check, check_eof, check_with, get_with, head_of, header, limits, nginx_vars, packet,
};
use rwsgi_proto::{BodyLength, Frame, Limits, ProtoError, RequestHead, ServerCodec};
use rwsgi_uwsgi::UwsgiCodec;
use tokio_util::codec::Decoder;

fn data(bytes: &[u8]) -> Event {
    Event::Data(bytes.to_vec())
}

fn only_head(events: &[Event]) -> &rwsgi_uwsgi::UwsgiHead {
    match events.first() {
        Some(Event::Head(head)) => head,
        other => panic!("no head: {other:?}"),
    }
}

#[test]
fn the_protocol_worked_example() {
    // protocols.md §a: REQUEST_METHOD=GET, PATH_INFO=/a, a 36-byte block.
    let input = b"\x00\x24\x00\x00\x0e\x00REQUEST_METHOD\x03\x00GET\x09\x00PATH_INFO\x02\x00/a";
    assert_eq!(&input[..], &packet(&[(b"REQUEST_METHOD", b"GET"), (b"PATH_INFO", b"/a")], b"")[..]);
    let events = check(input);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], Event::End);
    let head = only_head(&events);
    assert_eq!(head.method(), b"GET");
    assert_eq!(head.var(b"PATH_INFO"), Some(&b"/a"[..]));
    assert_eq!(head.var(b"path_info"), None);
    assert_eq!(head.var(b"QUERY_STRING"), None);
    assert_eq!(head.modifier1(), 0);
    assert_eq!(head.modifier2(), 0);
    assert_eq!(head.body_length(), BodyLength::Empty);
    assert!(!head.expects_continue());
    assert_eq!(head.describe(), "GET /a");
    let vars: Vec<(&[u8], &[u8])> = head.vars().collect();
    assert_eq!(vars, [(&b"REQUEST_METHOD"[..], &b"GET"[..]), (b"PATH_INFO", b"/a")]);
}

#[test]
fn an_nginx_post_with_a_body() {
    let vars =
        nginx_vars(b"POST", b"/x?a=1", b"/x", b"a=1", b"application/x-www-form-urlencoded", b"11");
    let events = check(&packet(&vars, b"name=value&"));
    assert_eq!(events.len(), 3, "{events:?}");
    let head = only_head(&events);
    assert_eq!(head.method(), b"POST");
    assert_eq!(head.body_length(), BodyLength::Known(11));
    assert_eq!(head.describe(), "POST /x?a=1");
    assert_eq!(head.vars().count(), vars.len());
    assert_eq!(events[1], data(b"name=value&"));
    assert_eq!(events[2], Event::End);
}

#[test]
fn an_nginx_get_sends_empty_content_vars() {
    let vars = nginx_vars(b"GET", b"/", b"/", b"", b"", b"");
    let events = check(&packet(&vars, b""));
    assert_eq!(events.len(), 2);
    let head = only_head(&events);
    assert_eq!(head.body_length(), BodyLength::Empty);
    assert_eq!(head.var(b"CONTENT_LENGTH"), Some(&b""[..]));
}

#[test]
fn content_length_zero_and_leading_zeros() {
    assert_eq!(head_of(&get_with(&[(b"CONTENT_LENGTH", b"0")])).body_length(), BodyLength::Empty);
    assert_eq!(head_of(&get_with(&[(b"CONTENT_LENGTH", b"000")])).body_length(), BodyLength::Empty);
    let events = check(&get_with(&[(b"CONTENT_LENGTH", b"003")]));
    let mut input = get_with(&[(b"CONTENT_LENGTH", b"003")]);
    input.extend_from_slice(b"abc");
    assert_eq!(events[1..], [Event::Error(None, ProtoError::UnexpectedEof.to_string())]);
    let events = check(&input);
    assert_eq!(only_head(&events).body_length(), BodyLength::Known(3));
    assert_eq!(events[1..], [data(b"abc"), Event::End]);
}

#[test]
fn the_body_is_streamed_as_it_arrives() {
    let mut codec = UwsgiCodec::new(limits());
    let mut buf = BytesMut::from(&get_with(&[(b"CONTENT_LENGTH", b"10")])[..]);
    buf.extend_from_slice(b"abc");
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    // The part already here comes out at once, without waiting for all 10.
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Data(d))) if d == "abc"));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    buf.extend_from_slice(b"defg");
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Data(d))) if d == "defg"));
    buf.extend_from_slice(b"hijEXTRA");
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Data(d))) if d == "hij"));
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::End))));
    // Bytes after the body are never parsed (a second request, garbage).
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
}

#[test]
fn a_huge_content_length_allocates_nothing() {
    // U11: 10^12 bytes announced; the codec reserves nothing for them.
    let mut codec = UwsgiCodec::new(limits());
    let mut buf = BytesMut::from(&get_with(&[(b"CONTENT_LENGTH", b"1000000000000")])[..]);
    let before = buf.capacity();
    let Ok(Some(Frame::Head(head))) = codec.decode(&mut buf) else { panic!("no head") };
    assert_eq!(head.body_length(), BodyLength::Known(1_000_000_000_000));
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    assert!(buf.capacity() <= before, "{} > {before}", buf.capacity());
    buf.extend_from_slice(b"x");
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Data(d))) if d == "x"));
    assert!(matches!(codec.decode_eof(&mut buf), Err(ProtoError::UnexpectedEof)));
}

#[test]
fn body_limit_is_inclusive() {
    let limits = Limits { max_body: Some(5), ..limits() };
    let mut input = get_with(&[(b"CONTENT_LENGTH", b"5")]);
    input.extend_from_slice(b"12345");
    let events = check_with(&input, limits);
    assert_eq!(events[1..], [data(b"12345"), Event::End]);
}

#[test]
fn one_request_per_connection() {
    // U15: a second packet, with or without a body first, is never parsed,
    // and neither is garbage after the body.
    let second = packet(&[(b"REQUEST_METHOD", b"DELETE"), (b"PATH_INFO", b"/2")], b"");
    for first in [
        get_with(&[]),
        packet(&[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"2")], b"hi"),
        packet(&[(b"REQUEST_METHOD", b"GET"), (b"CONTENT_LENGTH", b"")], b""),
    ] {
        for tail in [&second[..], b"GET / HTTP/1.1\r\n\r\n", b"\x05\xff\xff\xff", b"\x00"] {
            let mut input = first.clone();
            input.extend_from_slice(tail);
            let events = check(&input);
            let heads = events.iter().filter(|e| matches!(e, Event::Head(_))).count();
            assert_eq!(heads, 1, "{events:?}");
            assert_eq!(events.last(), Some(&Event::End), "{events:?}");
            assert!(!events.iter().any(|e| matches!(e, Event::Error(..))));
        }
    }
}

#[test]
fn the_body_is_not_mistaken_for_a_packet() {
    let body = packet(&[(b"REQUEST_METHOD", b"GET")], b"");
    let len = body.len().to_string();
    let input = packet(&[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", len.as_bytes())], &body);
    let events = check(&input);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], data(&body));
}

#[test]
fn eof_rules() {
    // Nothing sent: a clean close.
    assert_eq!(check(b""), []);
    let eof = Event::Error(None, ProtoError::UnexpectedEof.to_string());
    let whole = get_with(&[(b"PATH_INFO", b"/p")]);
    // Inside the header or the block: unexpected, whatever was sent.
    for cut in 1..whole.len() {
        assert_eq!(check(&whole[..cut]), std::slice::from_ref(&eof), "cut at {cut}");
    }
    // Inside the body: the head, the bytes that came, then the error.
    let mut input = get_with(&[(b"CONTENT_LENGTH", b"50")]);
    input.extend_from_slice(b"hello");
    let events = check(&input);
    assert_eq!(events[1..], [data(b"hello"), eof]);
}

#[test]
fn without_eof_a_partial_packet_waits() {
    let whole = get_with(&[(b"PATH_INFO", b"/p")]);
    for cut in 0..whole.len() {
        assert_eq!(check_eof(&whole[..cut], limits(), false), [], "cut at {cut}");
    }
}

#[test]
fn modifier2_is_ignored() {
    let mut input = get_with(&[]);
    input[3] = 0xa5;
    let events = check(&input);
    assert_eq!(only_head(&events).modifier2(), 0xa5);
    assert_eq!(events.len(), 2);
}

#[test]
fn a_datasize_at_the_limit_is_accepted() {
    let limits = Limits { max_head: 64, ..limits() };
    // 21 bytes of REQUEST_METHOD=GET, then one var filling the rest.
    let value = vec![b'v'; 64 - 21 - 5];
    let input = get_with(&[(b"X", &value)]);
    assert_eq!(input.len(), 4 + 64);
    let events = check_with(&input, limits);
    assert!(matches!(events[..], [Event::Head(_), Event::End]), "{events:?}");
    let too_big = get_with(&[(b"X", &[b'v'; 39])]);
    let events = check_with(&too_big, limits);
    assert!(matches!(&events[..], [Event::Error(Some(431), _)]), "{events:?}");
}

#[test]
fn the_largest_block_nginx_can_send() {
    let limits = Limits { max_head: 65535, ..limits() };
    let value = vec![b'c'; 65535 - 21 - 4 - 11];
    let input = get_with(&[(b"HTTP_COOKIE", &value)]);
    assert_eq!(&input[..4], &header(0, 65535, 0));
    let events = check_eof(&input, limits, true);
    assert!(matches!(events[..], [Event::Head(_), Event::End]), "{events:?}");
}

#[test]
fn head_timeout_calls_the_packet_malformed() {
    let codec = UwsgiCodec::new(limits());
    let err = codec.head_timeout();
    assert_eq!(err.status(), Some(400));
    assert_eq!(err.to_string(), "bad request: uwsgi packet shorter than its datasize");
    assert_eq!(UwsgiCodec::NAME, "uwsgi");
}

#[test]
fn data_frames_are_views_of_the_read_buffer() {
    let mut codec = UwsgiCodec::new(limits());
    let mut buf = BytesMut::from(&get_with(&[(b"CONTENT_LENGTH", b"4")])[..]);
    buf.extend_from_slice(b"body");
    let body_at = buf.as_ptr() as usize + buf.len() - 4;
    assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    let Ok(Some(Frame::Data(data))) = codec.decode(&mut buf) else { panic!("no data") };
    assert_eq!(data.as_ptr() as usize, body_at);
}

/// The core gathers a body the codec says comes unframed: a uwsgi body does.
#[test]
fn the_body_is_in_place() {
    let vars = nginx_vars(b"POST", b"/", b"/", b"", b"text/plain", b"10");
    rwsgi_testkit::assert_unframed_body_counts_down(
        || UwsgiCodec::new(limits()),
        &packet(&vars, b"0123"),
        10,
    );
}
