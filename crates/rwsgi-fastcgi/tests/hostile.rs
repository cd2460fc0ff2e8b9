//! The hostile-input catalogue for FastCGI (hostile-inputs.md §3, F1–F24):
//! every case a codec can decide gets the right reaction, whatever the
//! record and read boundaries.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use rwsgi_proto::{BodyLength, Limits, OutBuf, ProtoError, RequestHead, ServerCodec};
use rwsgi_testkit::{DATE, first_head};

fn eof() -> Event {
    Event::Error(None, ProtoError::UnexpectedEof.to_string())
}

fn post(content_length: &[u8]) -> Vec<(&[u8], &[u8])> {
    vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", content_length)]
}

/// The records `encode_error(status)` writes for a codec that decoded
/// `input` (up to its error).
fn error_answer(input: &[u8], limits: Limits, status: u16) -> Vec<Rec> {
    let mut codec = codec(limits);
    drive(&mut codec, &[input], false);
    let mut out = OutBuf::new();
    codec.close_after_response();
    codec.encode_error(status, DATE, &mut out);
    records(&out.take_contiguous())
}

/// `recs` is a complete error response for request `id` with `status`.
fn assert_error_response(recs: &[Rec], id: u16, status: &str) {
    assert_eq!(recs.len(), 3, "{recs:?}");
    assert_eq!((recs[0].kind, recs[0].id), (STDOUT, id));
    let text = String::from_utf8_lossy(&recs[0].content);
    assert!(text.starts_with(&format!("Status: {status}\r\n")), "{text}");
    assert_eq!((recs[1].kind, recs[1].id, recs[1].content.len()), (STDOUT, id, 0));
    assert_eq!(recs[2].id, id);
    assert_eq!(end_request_body(&recs[2]), (1, REQUEST_COMPLETE));
}

#[test]
fn f1_a_version_other_than_1_is_refused() {
    for version in [0u8, 2, 3, 0x47, 255] {
        let mut bad = begin(1, RESPONDER, 0);
        bad[0] = version;
        assert_rejected(&bad, 400, "FastCGI version other than 1");
        // HTTP text on a FastCGI socket: 'G' is version 71.
        assert_rejected(b"GET / HTTP/1.1\r\n\r\n", 400, "version");
        // In the middle of a request: what was decoded stands; the request
        // being served gets the error answer.
        let mut input = request(3, 0, &post(b"10"), b"");
        input.truncate(input.len() - 8);
        input.extend(record(STDIN, 3, b"abc", 0));
        let mut stray = record(STDIN, 3, b"def", 0);
        stray[0] = version;
        input.extend(stray);
        let events = assert_rejected(&input, 400, "version");
        assert_eq!(events[1..], [Event::Data(b"abc".to_vec())]);
        assert_error_response(&error_answer(&input, limits(), 400), 3, "400 Bad Request");
    }
}

#[test]
fn f2_any_request_id_is_tracked() {
    for id in [1u16, 2, 0x100, 0xffff] {
        let head = head_of(&request(id, 0, &post(b""), b""));
        assert_eq!(head.request_id(), id);
    }
}

#[test]
fn f3_records_for_an_id_without_begin_request_are_ignored() {
    let mut input = stream(PARAMS, 1, &params(&[(b"REQUEST_METHOD", b"GET")]), 100);
    input.extend(stream(STDIN, 1, b"body", 100));
    input.extend(record(ABORT_REQUEST, 1, b"", 0));
    assert_eq!(check(&input), []);
    // And the id then begins normally.
    input.extend(get_with(&[]));
    assert_eq!(check(&input).len(), 2);
}

#[test]
fn f4_begin_request_for_the_active_id_is_a_protocol_error() {
    let mut begun = begin(1, RESPONDER, KEEP_CONN);
    let mid_params = begun.len();
    begun.extend(record(PARAMS, 1, &params(&post(b"3")), 0));
    begun.extend(record(PARAMS, 1, b"", 0));
    begun.extend(record(STDIN, 1, b"abc", 5));
    let mid_body = begun.len();
    begun.extend(record(STDIN, 1, b"", 0));
    // Mid-params, mid-body, after the body.
    for (cut, events) in [(mid_params, 0), (mid_body, 2), (begun.len(), 3)] {
        let mut input = begun[..cut].to_vec();
        input.extend(begin(1, RESPONDER, KEEP_CONN));
        assert_eq!(assert_rejected(&input, 400, "already active").len(), events);
    }
}

#[test]
fn f4_a_begin_request_body_of_the_wrong_size_is_a_protocol_error() {
    for content in [&b""[..], b"\x00\x01", b"\x00\x01\x01\x00\x00\x00\x00", &[0; 9]] {
        assert_rejected(&record(BEGIN_REQUEST, 1, content, 0), 400, "not 8 bytes");
    }
}

#[test]
fn f5_f6_refusals() {
    let mut input = begin(1, RESPONDER, 0);
    input.extend(begin(2, RESPONDER, 0));
    input.extend(record(ABORT_REQUEST, 1, b"", 0));
    input.extend(begin(3, 3, 0));
    let outcome = check_full(&input, limits(), true);
    let ends: Vec<(u16, (u32, u8))> =
        records(&outcome.control).iter().map(|r| (r.id, end_request_body(r))).collect();
    assert_eq!(ends, [(2, (0, CANT_MPX_CONN)), (1, (0, REQUEST_COMPLETE)), (3, (0, UNKNOWN_ROLE))]);
}

#[test]
fn f11_f12_lengths_past_the_end_of_the_params_get_a_400_answer() {
    let get = params(&[(b"REQUEST_METHOD", b"GET")]);
    for tail in [
        &b"\x05"[..],
        b"\x80\x00",
        b"\x01\x85",
        b"\x05\x00ab",
        b"\x01\x09Kab",
        b"\xff\xff\xff\xff\x00",
        b"\x01\xff\xff\xff\xffK",
        b"\x80\x00\x01\x00\x80\x00\x00\x01",
    ] {
        let mut input = begin(2, RESPONDER, 0);
        input.extend(stream(PARAMS, 2, &[&get[..], tail].concat(), 7));
        input.extend(stream(STDIN, 2, b"", 1));
        let events = assert_rejected(&input, 400, "past the end");
        assert_eq!(events, [], "{tail:?}");
        assert_error_response(&error_answer(&input, limits(), 400), 2, "400 Bad Request");
    }
}

#[test]
fn f12_a_zero_length_name_is_refused() {
    let input = request(1, 0, &[(b"REQUEST_METHOD", b"GET"), (b"", b"value")], b"");
    assert_rejected(&input, 400, "zero-length");
}

#[test]
fn f14_unterminated_streams_wait_for_the_deadline() {
    let mut input = begin(1, RESPONDER, 0);
    input.extend(record(PARAMS, 1, &params(&[(b"REQUEST_METHOD", b"GET")]), 0));
    assert_eq!(check_eof(&input, limits(), false), []);
    assert_eq!(check(&input), [eof()]);
    let codec = codec(limits());
    assert!(matches!(codec.head_timeout(), ProtoError::Timeout));
    // The core's 408 goes to the request being received.
    assert_error_response(&error_answer(&input, limits(), 408), 1, "408 Request Timeout");
}

#[test]
fn f15_params_over_buffer_size_are_refused_from_the_record_header() {
    let limits = Limits { max_head: 100, ..limits() };
    // One record too large: only its header is needed.
    let mut input = begin(1, RESPONDER, 0);
    input.extend_from_slice(&[1, PARAMS, 0, 1, 0, 101, 0, 0]);
    assert_rejected_with(&input, limits, 431, "buffer-size");
    // Exactly the limit is fine.
    let block = params(&[(b"REQUEST_METHOD", b"GET"), (b"X", &[b'x'; 78])]);
    assert_eq!(block.len(), 100);
    let mut input = begin(1, RESPONDER, 0);
    input.extend(stream(PARAMS, 1, &block, 30));
    input.extend(stream(STDIN, 1, b"", 1));
    assert_eq!(check_with(&input, limits).len(), 2);
    // One byte more, over several records.
    let block = params(&[(b"REQUEST_METHOD", b"GET"), (b"X", &[b'x'; 79])]);
    let mut input = begin(1, RESPONDER, 0);
    input.extend(stream(PARAMS, 1, &block, 30));
    assert_rejected_with(&input, limits, 431, "buffer-size");
    assert_error_response(
        &error_answer(&input, limits, 431),
        1,
        "431 Request Header Fields Too Large",
    );
}

#[test]
fn f15_too_many_params_are_refused() {
    let limits = Limits { max_headers: 3, ..limits() };
    let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
    pairs.extend(std::iter::repeat_n((&b"K"[..], &b"v"[..]), 66));
    assert_eq!(check_with(&request(1, 0, &pairs, b""), limits).len(), 2);
    pairs.push((b"K", b"v"));
    assert_rejected_with(&request(1, 0, &pairs, b""), limits, 431, "too many");
}

#[test]
fn f16_padding_and_empty_records_are_skipped_whatever_their_number() {
    let mut input = Vec::new();
    for _ in 0..50 {
        input.extend(record(DATA, 1, b"", 255));
        input.extend(record(STDERR, 9, b"", 255));
    }
    input.extend(begin(1, RESPONDER, 0));
    for _ in 0..50 {
        input.extend(record(DATA, 1, b"", 255));
    }
    input.extend(stream(PARAMS, 1, &params(&[(b"REQUEST_METHOD", b"GET")]), 100));
    input.extend(record(STDIN, 1, b"", 255));
    let outcome = check_long(&input, limits(), true);
    assert!(outcome.control.is_empty());
    assert_eq!(outcome.events.len(), 2);
}

#[test]
fn f17_stdin_past_content_length_is_ignored() {
    let events = check(&request(1, 0, &post(b"4"), b"1234567890"));
    assert_eq!(events[1..], [Event::Data(b"1234".to_vec()), Event::End]);
}

#[test]
fn f18_stdin_shorter_than_content_length_ends_at_the_empty_record() {
    let events = check(&request(1, 0, &post(b"4000"), b"12"));
    assert_eq!(events[1..], [Event::Data(b"12".to_vec()), Event::End]);
}

#[test]
fn f19_abort_mid_request() {
    let mut input = request(1, 0, &post(b"10"), b"");
    input.truncate(input.len() - 8);
    input.extend(record(STDIN, 1, b"12345", 0));
    input.extend(record(ABORT_REQUEST, 1, b"", 0));
    let events = check(&input);
    assert_eq!(events[1..], [Event::Data(b"12345".to_vec()), Event::Abort]);
}

#[test]
fn f20_f21_status_is_always_sent_and_records_stay_small() {
    let mut codec = served(&get_with(&[]));
    let mut out = OutBuf::new();
    codec.encode_head(&response("302 Found", &[("Location", "/elsewhere")]), DATE, &mut out);
    codec.encode_data(Bytes::from(vec![b'x'; 300_000]), &mut out);
    codec.encode_end(true, &mut out);
    let recs = records(&out.take_contiguous());
    assert!(recs.iter().all(|r| r.content.len() <= 65535));
    assert!(recs[0].content.starts_with(b"Status: 302 Found\r\nLocation: /elsewhere\r\n\r\nxxx"));
}

#[test]
fn f22_an_empty_content_length_streams_the_body() {
    let mut input = begin(1, RESPONDER, 0);
    input.extend(stream(PARAMS, 1, &params(&post(b"")), 100));
    input.extend(record(STDIN, 1, b"chunk one,", 6));
    input.extend(record(STDIN, 1, b"chunk two", 0));
    input.extend(record(STDIN, 1, b"", 0));
    let events = check(&input);
    assert_eq!(first_head(&events).body_length(), BodyLength::Streamed);
    assert_eq!(events[1..], [Event::Data(b"chunk one,chunk two".to_vec()), Event::End]);
}

#[test]
fn f23_content_length_values() {
    let limited = Limits { max_body: Some(1000), ..limits() };
    for garbage in [&b"-1"[..], b"+5", b"abc", b"5 ", b"0x10", b"1,1", b"99999999999999999999999"] {
        assert_rejected(&request(1, 0, &post(garbage), b""), 400, "CONTENT_LENGTH");
    }
    assert_rejected_with(&request(1, 0, &post(b"1001"), b""), limited, 413, "limit-post");
    assert_error_response(
        &error_answer(&request(1, 0, &post(b"1001"), b""), limited, 413),
        1,
        "413 Content Too Large",
    );
    // Without a limit, a huge announced length is fine: nothing is reserved.
    let head = head_of(&request(1, 0, &post(b"1000000000000000"), b""));
    assert_eq!(head.body_length(), BodyLength::Known(1_000_000_000_000_000));
}

#[test]
fn f24_stdin_far_beyond_the_limit_is_stopped() {
    let limits = Limits { max_body: Some(100), ..limits() };
    for content_length in [&b"50"[..], b""] {
        let mut input = begin(1, RESPONDER, 0);
        input.extend(stream(PARAMS, 1, &params(&post(content_length)), 100));
        input.extend(record(STDIN, 1, &[b'a'; 60], 0));
        // The header of the record that would pass the limit is enough.
        input.extend_from_slice(&[1, STDIN, 0, 1, 0xff, 0xff, 0, 0]);
        let events = assert_rejected_with(&input, limits, 413, "limit-post");
        let expected = if content_length.is_empty() { 60 } else { 50 };
        assert_eq!(events[1..], [Event::Data(vec![b'a'; expected])]);
    }
    // Exactly the limit is fine; one byte more is not.
    let input = request(1, 0, &post(b""), &[b'b'; 100]);
    assert_eq!(check_with(&input, limits)[1..], [Event::Data(vec![b'b'; 100]), Event::End]);
    let mut input = request(1, 0, &post(b""), &[b'b'; 100]);
    input.truncate(input.len() - 8);
    input.extend(record(STDIN, 1, b"c", 0));
    let events = assert_rejected_with(&input, limits, 413, "limit-post");
    assert_eq!(events[1..], [Event::Data(vec![b'b'; 100])]);
}

#[test]
fn stdin_before_the_end_of_params_is_a_protocol_error() {
    let mut input = begin(1, RESPONDER, 0);
    input.extend(record(PARAMS, 1, &params(&post(b"3")), 0));
    input.extend(record(STDIN, 1, b"abc", 0));
    assert_rejected(&input, 400, "STDIN before the end of PARAMS");
    // Even the empty one.
    let mut input = begin(1, RESPONDER, 0);
    input.extend(record(STDIN, 1, b"", 0));
    assert_rejected(&input, 400, "STDIN before the end of PARAMS");
}
