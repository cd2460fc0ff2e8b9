//! Decoding valid requests: the nginx sequence, streams split into records
//! any way, the body rules, several requests on one connection, EOF. Every
//! input goes through `check`, which also feeds it split at every byte and
//! one byte at a time.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rwsgi_proto::{BodyLength, Limits, OutBuf, RequestHead, ServerCodec};
use rwsgi_testkit::{DATE, first_head};

fn data(bytes: &[u8]) -> Event {
    Event::Data(bytes.to_vec())
}

fn eof() -> Event {
    Event::Error(None, rwsgi_proto::ProtoError::UnexpectedEof.to_string())
}

#[test]
fn the_exact_nginx_sequence_for_a_get() {
    // As nginx 1.22 writes it: BEGIN_REQUEST (id 1, RESPONDER, no flags),
    // one PARAMS record padded to 8, the empty PARAMS record, the empty
    // STDIN record.
    let pairs = nginx_params(b"GET", b"/hello?x=1", b"/hello", b"x=1", b"", b"");
    let block = params(&pairs);
    let mut input = b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00".to_vec();
    let pad = (8 - block.len() % 8) % 8;
    input.extend_from_slice(&[1, 4, 0, 1]);
    input.extend_from_slice(&(block.len() as u16).to_be_bytes());
    input.extend_from_slice(&[pad as u8, 0]);
    input.extend_from_slice(&block);
    input.extend(std::iter::repeat_n(0, pad));
    input.extend_from_slice(b"\x01\x04\x00\x01\x00\x00\x00\x00\x01\x05\x00\x01\x00\x00\x00\x00");
    assert_eq!(input, request(1, 0, &pairs, b""));

    let events = check(&input);
    assert_eq!(events.len(), 2, "{events:?}");
    assert_eq!(events[1], Event::End);
    let head = first_head(&events);
    assert_eq!(head.request_id(), 1);
    assert!(!head.keep_conn());
    assert_eq!(head.method(), b"GET");
    assert_eq!(head.param(b"SCRIPT_NAME"), Some(&b"/hello"[..]));
    assert_eq!(head.param(b"CONTENT_LENGTH"), Some(&b""[..]));
    assert_eq!(head.param(b"PATH_INFO"), None);
    assert_eq!(head.param(b"script_name"), None);
    // An empty CONTENT_LENGTH: the STDIN stream decides (here: empty).
    assert_eq!(head.body_length(), BodyLength::Streamed);
    assert!(!head.expects_continue());
    assert_eq!(head.describe(), "GET /hello?x=1");
    let sent: Vec<(&[u8], &[u8])> = head.params().collect();
    assert_eq!(sent, pairs);
}

#[test]
fn an_nginx_post_with_a_body() {
    let body = b"name=value&other=thing";
    let pairs =
        nginx_params(b"POST", b"/form", b"/form", b"", b"application/x-www-form-urlencoded", b"22");
    let events = check(&request(1, KEEP_CONN, &pairs, body));
    assert_eq!(events.len(), 3, "{events:?}");
    let head = first_head(&events);
    assert!(head.keep_conn());
    assert_eq!(head.body_length(), BodyLength::Known(22));
    assert_eq!(head.describe(), "POST /form");
    assert_eq!(events[1], data(body));
    assert_eq!(events[2], Event::End);
}

#[test]
fn a_large_body_in_32k_stdin_records() {
    let body: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let len = body.len().to_string();
    let pairs =
        nginx_params(b"PUT", b"/up", b"/up", b"", b"application/octet-stream", len.as_bytes());
    let input = request(1, 0, &pairs, &body);
    let outcome = check_long(&input, limits(), true);
    assert!(outcome.control.is_empty());
    assert_eq!(outcome.events.len(), 3);
    assert_eq!(first_head(&outcome.events).body_length(), BodyLength::Known(100_000));
    assert_eq!(outcome.events[1], Event::Data(body));
    assert_eq!(outcome.events[2], Event::End);
}

#[test]
fn data_frames_are_views_of_the_read_buffer() {
    let body = vec![b'z'; 5000];
    let input = request(1, 0, &[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5000")], &body);
    let mut codec = codec(limits());
    let mut buf = bytes::BytesMut::from(&input[..]);
    let start = buf.as_ptr() as usize;
    let range = start..start + input.len();
    use tokio_util::codec::Decoder;
    let mut pieces = Vec::new();
    while let Some(frame) = codec.decode(&mut buf).unwrap() {
        if let rwsgi_proto::Frame::Data(data) = frame {
            assert!(range.contains(&(data.as_ptr() as usize)), "body data was copied");
            pieces.push(data);
        }
    }
    assert_eq!(pieces.concat(), body);
}

#[test]
fn a_pair_may_straddle_params_records() {
    // Cut the PARAMS stream inside a length, a name and a value.
    let pairs: Vec<(&[u8], &[u8])> =
        vec![(b"REQUEST_METHOD", b"GET"), (b"HTTP_X_LONG", &[b'v'; 300]), (b"A", b"b")];
    let block = params(&pairs);
    let reference = head_of(&request(1, 0, &pairs, b""));
    for cut in [1, 2, 5, 16, 17, 18, 19, 20, 100, block.len() - 1] {
        let mut input = begin(1, RESPONDER, 0);
        input.extend(record(PARAMS, 1, &block[..cut], 3));
        input.extend(record(PARAMS, 1, &block[cut..], 0));
        input.extend(record(PARAMS, 1, b"", 0));
        input.extend(record(STDIN, 1, b"", 0));
        assert_eq!(head_of(&input), reference, "cut at {cut}");
    }
}

#[test]
fn streams_cut_into_random_records_with_any_padding() {
    let cookie = vec![b'c'; 200];
    let pairs = {
        let mut p = nginx_params(b"POST", b"/r?q", b"/r", b"q", b"text/plain", b"1000");
        p.push((b"HTTP_COOKIE", &cookie));
        p
    };
    let body: Vec<u8> = (0..1000u32).map(|i| (i * 7) as u8).collect();
    // The head's block keeps the lengths as sent: compare what it says.
    type Summary = (Vec<(Vec<u8>, Vec<u8>)>, u16, bool, BodyLength, Vec<Event>);
    let summary = |outcome: Outcome| -> Summary {
        assert!(outcome.control.is_empty());
        let head = first_head(&outcome.events).clone();
        let params = head.params().map(|(n, v)| (n.to_vec(), v.to_vec())).collect();
        (
            params,
            head.request_id(),
            head.keep_conn(),
            head.body_length(),
            outcome.events[1..].to_vec(),
        )
    };
    let reference = summary(check_long(&request(3, KEEP_CONN, &pairs, &body), limits(), true));
    assert_eq!(reference.0.len(), pairs.len());
    assert_eq!(reference.4, [data(&body), Event::End]);
    for seed in 1..40u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let long = seed % 2 == 0;
        let mut input =
            record(BEGIN_REQUEST, 3, &[0, 1, KEEP_CONN, 0, 0, 0, 0, 0], rng.below(256) as u8);
        input.extend(random_stream(PARAMS, 3, &params_with(&pairs, long), &mut rng));
        input.extend(random_stream(STDIN, 3, &body, &mut rng));
        assert_eq!(summary(check_long(&input, limits(), true)), reference, "seed {seed}");
    }
}

#[test]
fn four_byte_lengths_for_short_strings_are_legal() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET"), (b"X", b"")];
    let short = head_of(&request(1, 0, &pairs, b""));
    let mut input = begin(1, RESPONDER, 0);
    input.extend(stream(PARAMS, 1, &params_with(&pairs, true), 65535));
    input.extend(stream(STDIN, 1, b"", 1));
    let long = head_of(&input);
    assert_eq!(long.params().collect::<Vec<_>>(), short.params().collect::<Vec<_>>());
    assert_eq!(long.param(b"X"), Some(&b""[..]));
}

#[test]
fn content_length_absent_or_empty_streams_until_the_empty_stdin() {
    for extra in [vec![], vec![(&b"CONTENT_LENGTH"[..], &b""[..])]] {
        let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST")];
        pairs.extend(extra);
        let events = check(&request(1, 0, &pairs, b"chunked client body"));
        assert_eq!(first_head(&events).body_length(), BodyLength::Streamed);
        assert_eq!(events[1..], [data(b"chunked client body"), Event::End]);
    }
}

#[test]
fn content_length_zero_is_no_body_even_with_stdin() {
    for zero in [&b"0"[..], b"000"] {
        let pairs: Vec<(&[u8], &[u8])> =
            vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", zero)];
        let events = check(&request(1, 0, &pairs, b""));
        assert_eq!(first_head(&events).body_length(), BodyLength::Empty);
        assert_eq!(events[1..], [Event::End]);
        // Stray STDIN bytes are not the body.
        let events = check(&request(1, 0, &pairs, b"stray"));
        assert_eq!(events[1..], [Event::End]);
    }
}

#[test]
fn empty_content_waits_for_the_empty_stdin_record() {
    let mut input = begin(1, RESPONDER, 0);
    input.extend(stream(
        PARAMS,
        1,
        &params(&[(b"REQUEST_METHOD", b"GET"), (b"CONTENT_LENGTH", b"0")]),
        99,
    ));
    let events = check_eof(&input, limits(), false);
    assert_eq!(events.len(), 1, "End before the empty STDIN: {events:?}");
    input.extend(record(STDIN, 1, b"", 0));
    assert_eq!(check(&input)[1..], [Event::End]);
}

#[test]
fn stdin_longer_than_content_length_is_cut() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5")];
    let events = check(&request(1, 0, &pairs, b"helloEXTRA"));
    assert_eq!(events[1..], [data(b"hello"), Event::End]);
    // Across records: the cut falls inside the second.
    let mut input = begin(1, RESPONDER, 0);
    input.extend(stream(PARAMS, 1, &params(&pairs), 100));
    input.extend(record(STDIN, 1, b"hel", 5));
    input.extend(record(STDIN, 1, b"loEXTRA", 1));
    input.extend(record(STDIN, 1, b"MORE", 0));
    input.extend(record(STDIN, 1, b"", 0));
    assert_eq!(check(&input)[1..], [data(b"hello"), Event::End]);
}

#[test]
fn stdin_shorter_than_content_length_still_ends() {
    // The client went away; nginx ends the stream: the app sees EOF.
    let pairs: Vec<(&[u8], &[u8])> =
        vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"100")];
    let events = check(&request(1, 0, &pairs, b"short"));
    assert_eq!(first_head(&events).body_length(), BodyLength::Known(100));
    assert_eq!(events[1..], [data(b"short"), Event::End]);
}

#[test]
fn records_after_the_body_are_ignored() {
    let mut input = get_with(&[]);
    input.extend(record(STDIN, 1, b"late", 4));
    input.extend(record(STDIN, 1, b"", 0));
    input.extend(record(PARAMS, 1, &params(&[(b"X", b"1")]), 0));
    input.extend(record(PARAMS, 1, b"", 0));
    input.extend(record(DATA, 1, b"filter data", 0));
    input.extend(record(STDERR, 1, b"?", 0));
    input.extend(record(99, 1, b"unknown", 0));
    let events = check(&input);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1], Event::End);
}

#[test]
fn unknown_and_filter_records_for_the_active_id_are_ignored() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"4")];
    let mut input = begin(9, RESPONDER, 0);
    input.extend(record(DATA, 9, b"xx", 0));
    input.extend(record(PARAMS, 9, &params(&pairs), 0));
    input.extend(record(200, 9, b"what", 255));
    input.extend(record(PARAMS, 9, b"", 0));
    input.extend(record(DATA, 9, b"yy", 6));
    input.extend(record(STDIN, 9, b"body", 0));
    input.extend(record(END_REQUEST, 9, &[0; 8], 0));
    input.extend(record(STDIN, 9, b"", 0));
    let events = check(&input);
    assert_eq!(first_head(&events).request_id(), 9);
    assert_eq!(events[1..], [data(b"body"), Event::End]);
}

#[test]
fn any_request_id_is_served_and_echoed() {
    let mut codec = codec(limits());
    let outcome =
        drive(&mut codec, &[&request(0xfffe, 0, &[(b"REQUEST_METHOD", b"GET")], b"")], false);
    assert_eq!(first_head(&outcome.events).request_id(), 0xfffe);
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_end(true, &mut out);
    assert!(records(&out.take_contiguous()).iter().all(|r| r.id == 0xfffe));
}

#[test]
fn keep_conn_serves_requests_back_to_back() {
    let mut codec = codec(limits());
    for (i, method) in [&b"GET"[..], b"POST", b"DELETE"].into_iter().enumerate() {
        let body = if method == b"POST" { &b"abc"[..] } else { b"" };
        let input =
            request(1, KEEP_CONN, &[(b"REQUEST_METHOD", method), (b"CONTENT_LENGTH", b"3")], body);
        let outcome = drive(&mut codec, &[&input], false);
        assert!(outcome.control.is_empty());
        assert_eq!(first_head(&outcome.events).method(), method, "request {i}");
        assert_eq!(outcome.events.last(), Some(&Event::End));
        let mut out = OutBuf::new();
        codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
        codec.encode_data("ok".into(), &mut out);
        assert!(codec.encode_end(true, &mut out), "KEEP_CONN: the connection stays");
    }
}

#[test]
fn without_keep_conn_the_connection_closes_after_the_response() {
    let mut codec = codec(limits());
    drive(&mut codec, &[&get_with(&[])], false);
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    assert!(!codec.encode_end(true, &mut out));
}

#[test]
fn two_requests_in_one_read_come_out_one_at_a_time() {
    // A web server that sends the next request only after END_REQUEST
    // may still have it arrive in the same read as a late record.
    let mut input = request(1, KEEP_CONN, &[(b"REQUEST_METHOD", b"GET")], b"");
    let first = check(&input);
    assert_eq!(first.len(), 2);
    let mut codec = codec(limits());
    input.extend(request(2, KEEP_CONN, &[(b"REQUEST_METHOD", b"HEAD")], b""));
    let mut buf = bytes::BytesMut::from(&input[..]);
    use tokio_util::codec::Decoder;
    assert!(matches!(codec.decode(&mut buf), Ok(Some(rwsgi_proto::Frame::Head(_)))));
    assert!(matches!(codec.decode(&mut buf), Ok(Some(rwsgi_proto::Frame::End))));
    // While request 1 is active, request 2's BEGIN is refused, not served.
    assert!(matches!(codec.decode(&mut buf), Ok(None)));
    let mut out = OutBuf::new();
    codec.take_control(&mut out);
    let refusal = records(&out.take_contiguous());
    assert_eq!(refusal.len(), 1);
    assert_eq!((refusal[0].id, end_request_body(&refusal[0])), (2, (0, CANT_MPX_CONN)));
}

#[test]
fn padding_of_any_size_is_skipped() {
    for padding in [0u8, 1, 7, 8, 100, 255] {
        let mut input = record(BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0], padding);
        input.extend(record(PARAMS, 1, &params(&[(b"REQUEST_METHOD", b"PUT")]), padding));
        input.extend(record(PARAMS, 1, b"", padding));
        input.extend(record(STDIN, 1, b"abc", padding));
        input.extend(record(STDIN, 1, b"", padding));
        let events = check(&input);
        assert_eq!(first_head(&events).method(), b"PUT", "padding {padding}");
        assert_eq!(events[1..], [data(b"abc"), Event::End], "padding {padding}");
    }
}

#[test]
fn eof_is_clean_only_between_requests() {
    // Nothing sent; or a whole request answered (the app runs).
    assert_eq!(check(b""), []);
    assert_eq!(check(&get_with(&[])).len(), 2);
    // Inside a record header, BEGIN_REQUEST, PARAMS, or the body.
    let full = request(1, 0, &[(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"3")], b"abc");
    assert_eq!(check(&full[..3]), [eof()]);
    assert_eq!(check(&full[..12]), [eof()]);
    assert_eq!(check(&full[..16]), [eof()], "after BEGIN_REQUEST");
    assert_eq!(check(&full[..30]), [eof()], "inside PARAMS");
    let events = check(&full[..full.len() - 8]);
    assert_eq!(events[1..], [data(b"abc"), eof()], "before the empty STDIN");
    // Inside the padding of the last record: the request was complete.
    let mut padded = get_with(&[]);
    let n = padded.len();
    padded[n - 2] = 4;
    padded.extend_from_slice(&[0, 0]);
    let events = check(&padded);
    assert_eq!(events[1..], [Event::End, eof()]);
}

#[test]
fn a_codec_waits_without_eof() {
    let full = request(1, 0, &[(b"REQUEST_METHOD", b"GET")], b"");
    for n in [0, 3, 16, 30, full.len() - 8] {
        assert!(
            !check_eof(&full[..n], limits(), false).iter().any(|e| matches!(e, Event::Error(..))),
            "{n}"
        );
    }
}

#[test]
fn limits_are_per_request_not_per_connection() {
    let limits = Limits { max_head: 64, max_headers: 1, max_body: Some(4) };
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"X", &[b'x'; 40])];
    let mut codec = codec(limits);
    for _ in 0..5 {
        let outcome = drive(&mut codec, &[&request(1, KEEP_CONN, &pairs, b"1234")], false);
        assert_eq!(outcome.events.len(), 3, "{:?}", outcome.events);
        let mut out = OutBuf::new();
        codec.encode_head(&response("204 No Content", &[]), DATE, &mut out);
        assert!(codec.encode_end(true, &mut out));
    }
}

/// The core may read a STDIN record's content straight into the body's
/// memory: the codec says how much comes next in place (what
/// `CONTENT_LENGTH` still allows) and how much framing follows (padding
/// and the next header), and counts what the core took as decoded.
#[test]
fn a_body_of_known_length_is_in_place_record_by_record() {
    use bytes::{Buf, BytesMut};
    use rwsgi_proto::{Frame, InPlace};
    use tokio_util::codec::Decoder;
    let in_place = |body, framing| Some(InPlace { body, framing });
    let pairs: Vec<(&[u8], &[u8])> =
        vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"70001")];
    let mut head = begin(1, RESPONDER, 0);
    head.extend(stream(PARAMS, 1, &params(&pairs), 65535));
    let mut fcgi = codec(limits());
    assert_eq!(fcgi.body_in_place(), None, "before the head");
    let mut buf = BytesMut::from(&head[..]);
    assert!(matches!(fcgi.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert_eq!(fcgi.body_in_place(), in_place(0, 8), "a record header first");
    // Records of 32 KiB, 32 KiB, and 4465 bytes padded by 7.
    let body = vec![b'b'; 70_001];
    let records = stream(STDIN, 1, &body, 32768);
    buf.extend_from_slice(&records[..8 + 1000]);
    let Ok(Some(Frame::Data(first))) = fcgi.decode(&mut buf) else { panic!("no body piece") };
    assert_eq!(first.len(), 1000);
    assert_eq!(fcgi.body_in_place(), in_place(31_768, 8), "the record's rest, the next header");
    fcgi.body_taken(31_768);
    assert_eq!(fcgi.body_in_place(), in_place(0, 8));
    buf.extend_from_slice(&records[8 + 32768..][..8]);
    assert!(matches!(fcgi.decode(&mut buf), Ok(None)));
    assert_eq!(fcgi.body_in_place(), in_place(32_768, 8));
    fcgi.body_taken(32_768);
    buf.extend_from_slice(&records[2 * (8 + 32768)..][..8]);
    assert!(matches!(fcgi.decode(&mut buf), Ok(None)));
    assert_eq!(fcgi.body_in_place(), in_place(4465, 7 + 8), "padding, then the next header");
    fcgi.body_taken(4000);
    assert_eq!(fcgi.body_in_place(), in_place(465, 7 + 8));
    fcgi.body_taken(465);
    assert_eq!(fcgi.body_in_place(), None, "the whole body is taken");
    buf.extend_from_slice(&records[2 * (8 + 32768) + 8 + 4465..]);
    assert!(matches!(fcgi.decode(&mut buf), Ok(Some(Frame::End))), "padding skipped");

    // STDIN past CONTENT_LENGTH is framing: read, and dropped.
    let short: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"5")];
    let mut fcgi = codec(limits());
    let mut buf = BytesMut::from(&request(1, 0, &short, b"helloEXTRA")[..]);
    assert!(matches!(fcgi.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    let header = buf.split_to(8);
    assert!(matches!(fcgi.decode(&mut BytesMut::from(&header[..])), Ok(None)));
    assert_eq!(fcgi.body_in_place(), in_place(5, 5 + 6 + 8), "EXTRA, padding, header");
    fcgi.body_taken(5);
    assert_eq!(fcgi.body_in_place(), None);
    buf.advance(5);
    assert!(matches!(fcgi.decode(&mut buf), Ok(Some(Frame::End))), "EXTRA dropped");

    // A body of unknown length is not in place.
    let mut fcgi = codec(limits());
    let streamed: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST")];
    let mut buf = BytesMut::from(&request(1, 0, &streamed, b"hello")[..]);
    assert!(matches!(fcgi.decode(&mut buf), Ok(Some(Frame::Head(_)))));
    assert_eq!(fcgi.body_in_place(), None);
}
