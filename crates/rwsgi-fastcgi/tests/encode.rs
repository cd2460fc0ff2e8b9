//! Response encoding: the exact records for a response, record splitting,
//! END_REQUEST, KEEP_CONN, bodiless responses and error responses.

#![allow(clippy::unwrap_used)]

mod common;

use bytes::Bytes;
use common::*;
use rwsgi_proto::{Limits, OutBuf, ServerCodec};
use rwsgi_testkit::DATE;

fn get(id: u16, flags: u8, method: &[u8]) -> Vec<u8> {
    request(id, flags, &[(b"REQUEST_METHOD", method)], b"")
}

fn wire(out: &mut OutBuf) -> Vec<u8> {
    out.take_contiguous().to_vec()
}

/// The STDOUT stream of `recs` for `id`, concatenated, and whether it was
/// ended by an empty record.
fn stdout_of(recs: &[Rec], id: u16) -> (Vec<u8>, bool) {
    let mut text = Vec::new();
    let mut ended = false;
    for r in recs.iter().filter(|r| r.kind == STDOUT && r.id == id) {
        assert!(!ended, "STDOUT after its end");
        ended = r.content.is_empty();
        text.extend_from_slice(&r.content);
    }
    (text, ended)
}

#[test]
fn head_data_and_end_bytes_exactly() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[("Content-Type", "text/plain")]), DATE, &mut out);
    codec.encode_data(Bytes::from_static(b"hello"), &mut out);
    assert!(!codec.encode_end(true, &mut out));
    let text = b"Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhello";
    assert_eq!(text.len(), 49);
    let mut expected = b"\x01\x06\x00\x01\x00\x31\x07\x00".to_vec();
    expected.extend_from_slice(text);
    expected.extend_from_slice(&[0; 7]);
    expected.extend_from_slice(b"\x01\x06\x00\x01\x00\x00\x00\x00");
    expected.extend_from_slice(b"\x01\x03\x00\x01\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00");
    assert_eq!(wire(&mut out), expected);
}

#[test]
fn no_date_and_the_apps_headers_in_order() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    let head = response("404 Not Found", &[("X-B", "2"), ("Date", "app's"), ("X-A", "1")]);
    codec.encode_head(&head, DATE, &mut out);
    codec.encode_end(true, &mut out);
    let (text, ended) = stdout_of(&records(&wire(&mut out)), 1);
    assert!(ended);
    assert_eq!(text, b"Status: 404 Not Found\r\nX-B: 2\r\nDate: app's\r\nX-A: 1\r\n\r\n");
}

#[test]
fn a_response_without_body_pieces_still_sends_its_head() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    assert!(out.is_empty(), "the head waits for the first body bytes");
    codec.encode_end(true, &mut out);
    let recs = records(&wire(&mut out));
    assert_eq!(recs.len(), 3);
    assert_eq!(recs[0].content, b"Status: 200 OK\r\n\r\n");
    assert_eq!(recs[1].content, b"");
    assert_eq!(end_request_body(&recs[2]), (0, REQUEST_COMPLETE));
}

#[test]
fn an_empty_piece_sends_a_waiting_head_at_once() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(
        &response("200 OK", &[("Content-Type", "text/event-stream")]),
        DATE,
        &mut out,
    );
    codec.encode_data(Bytes::new(), &mut out);
    let recs = records(&wire(&mut out));
    assert_eq!(recs.len(), 1);
    assert!(recs[0].content.starts_with(b"Status: 200 OK\r\n"));
    codec.encode_data(Bytes::from_static(b"data: 1\n\n"), &mut out);
    let recs = records(&wire(&mut out));
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0].content, b"data: 1\n\n");
    codec.encode_data(Bytes::new(), &mut out);
    assert!(out.is_empty());
}

#[test]
fn a_200_kb_piece_is_split_into_records_of_at_most_65535_bytes() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let body = Bytes::from(body);
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[("Content-Length", "200000")]), DATE, &mut out);
    codec.encode_data(body.clone(), &mut out);
    // Zero-copy: the big parts of the output are views of the body.
    let mut slices = [std::io::IoSlice::new(&[]); 16];
    let n = out.io_slices(&mut slices);
    let range = body.as_ptr() as usize..body.as_ptr() as usize + body.len();
    let viewed: usize = slices[..n]
        .iter()
        .filter(|s| range.contains(&(s.as_ptr() as usize)))
        .map(|s| s.len())
        .sum();
    assert!(viewed >= 199_000, "body bytes were copied: {viewed} viewed");
    codec.encode_end(true, &mut out);
    let recs = records(&wire(&mut out));
    let stdout: Vec<&Rec> = recs.iter().filter(|r| r.kind == STDOUT).collect();
    assert!(stdout.iter().all(|r| r.content.len() <= 65535));
    assert_eq!(stdout.len(), 5, "4 records of body (head in the first), 1 empty");
    assert_eq!(stdout[0].content.len(), 65535);
    let (text, ended) = stdout_of(&recs, 1);
    assert!(ended);
    let head = b"Status: 200 OK\r\nContent-Length: 200000\r\n\r\n";
    assert_eq!(&text[..head.len()], head);
    assert_eq!(&text[head.len()..], &body[..]);
}

#[test]
fn a_head_larger_than_a_record_is_split_too() {
    let big: &'static str = Box::leak("v".repeat(70_000).into_boxed_str());
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[("X-Big", big)]), DATE, &mut out);
    codec.encode_data(Bytes::from_static(b"tail"), &mut out);
    codec.encode_end(true, &mut out);
    let recs = records(&wire(&mut out));
    assert!(recs.iter().all(|r| r.content.len() <= 65535));
    let (text, _) = stdout_of(&recs, 1);
    assert!(text.starts_with(b"Status: 200 OK\r\nX-Big: vvv"));
    assert!(text.ends_with(b"vvv\r\n\r\ntail"));
    assert_eq!(text.len(), 16 + 7 + 70_000 + 4 + 4);
}

#[test]
fn end_request_app_status_says_whether_the_response_was_complete() {
    for (complete, app_status) in [(true, 0), (false, 1)] {
        let mut codec = served(&get(0x0203, 0, b"GET"));
        let mut out = OutBuf::new();
        codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
        codec.encode_data(Bytes::from_static(b"partial"), &mut out);
        codec.encode_end(complete, &mut out);
        let recs = records(&wire(&mut out));
        let last = recs.last().unwrap();
        assert_eq!(last.id, 0x0203);
        assert_eq!(end_request_body(last), (app_status, REQUEST_COMPLETE));
        assert_eq!(stdout_of(&recs, 0x0203), (b"Status: 200 OK\r\n\r\npartial".to_vec(), true));
    }
}

#[test]
fn keep_conn_decides_whether_the_connection_stays() {
    let cases =
        [(KEEP_CONN, false, true), (KEEP_CONN, true, false), (0, false, false), (0, true, false)];
    for (flags, close, keep) in cases {
        let mut codec = served(&get(1, flags, b"GET"));
        let mut out = OutBuf::new();
        if close {
            codec.close_after_response();
        }
        codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
        assert_eq!(codec.encode_end(true, &mut out), keep, "flags {flags} close {close}");
    }
    // close_after_response is for one response only (whatever KEEP_CONN
    // said for that one).
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.close_after_response();
    assert!(!codec.encode_end(true, &mut out));
    let outcome = drive(&mut codec, &[&get(1, KEEP_CONN, b"GET")], false);
    assert_eq!(outcome.events.len(), 2);
    assert!(codec.encode_end(true, &mut out));
}

#[test]
fn bodiless_responses_drop_the_body_but_keep_the_head() {
    for (method, status) in [
        (&b"HEAD"[..], "200 OK"),
        (b"GET", "204 No Content"),
        (b"GET", "304 Not Modified"),
        (b"GET", "101 Switching Protocols"),
    ] {
        let mut codec = served(&get(1, 0, method));
        let mut out = OutBuf::new();
        codec.encode_head(&response(status, &[("Content-Length", "5")]), DATE, &mut out);
        codec.encode_data(Bytes::from_static(b"hello"), &mut out);
        codec.encode_data(Bytes::from_static(b"more"), &mut out);
        codec.encode_end(true, &mut out);
        let (text, ended) = stdout_of(&records(&wire(&mut out)), 1);
        assert!(ended);
        let expected = format!("Status: {status}\r\nContent-Length: 5\r\n\r\n");
        assert_eq!(String::from_utf8(text).unwrap(), expected, "{method:?} {status}");
    }
}

#[test]
fn raw_data_framing_is_refused() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    assert_eq!(codec.raw_data_framing(1000), None);
}

#[test]
fn encode_error_answers_the_request_being_received() {
    // PARAMS over the limit: the request id is known, the head never came.
    let limits = Limits { max_head: 16, ..limits() };
    let mut input = begin(5, RESPONDER, KEEP_CONN);
    input.extend(record(PARAMS, 5, &params(&[(b"REQUEST_METHOD", b"GET"), (b"X", b"y")]), 0));
    let mut codec = codec(limits);
    let outcome = drive(&mut codec, &[&input], false);
    assert_eq!(outcome.events, [Event::Error(Some(431), outcome_message(&outcome))]);
    let mut out = OutBuf::new();
    codec.close_after_response();
    codec.encode_error(431, DATE, &mut out);
    let recs = records(&wire(&mut out));
    let (text, ended) = stdout_of(&recs, 5);
    assert!(ended);
    assert_eq!(
        String::from_utf8(text).unwrap(),
        "Status: 431 Request Header Fields Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
         Content-Length: 32\r\n\r\nRequest Header Fields Too Large\n"
    );
    assert_eq!(recs.last().map(|r| r.id), Some(5));
    assert_eq!(end_request_body(recs.last().unwrap()), (1, REQUEST_COMPLETE));
    // Answered once; the codec is done.
    codec.encode_error(431, DATE, &mut out);
    assert!(out.is_empty());
    assert!(!codec.encode_end(false, &mut out));
    assert!(out.is_empty());

    fn outcome_message(outcome: &Outcome) -> String {
        match outcome.events.last() {
            Some(Event::Error(_, message)) => message.clone(),
            _ => String::new(),
        }
    }
}

#[test]
fn encode_error_without_a_request_writes_nothing() {
    for input in [&b""[..], b"\x01\x01\x00", &record(GET_VALUES, 0, b"", 0)] {
        let mut codec = codec(limits());
        drive(&mut codec, &[input], false);
        let mut out = OutBuf::new();
        codec.encode_error(408, DATE, &mut out);
        assert!(out.is_empty());
    }
    // After the request was ended, nothing either.
    let mut codec = served(&get(1, KEEP_CONN, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_end(true, &mut out);
    out.take_contiguous();
    codec.encode_error(400, DATE, &mut out);
    assert!(out.is_empty());
}

#[test]
fn encode_error_after_the_apps_head_went_out_only_ends_the_request() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_data(Bytes::from_static(b"half"), &mut out);
    codec.encode_error(400, DATE, &mut out);
    let recs = records(&wire(&mut out));
    assert_eq!(stdout_of(&recs, 1), (b"Status: 200 OK\r\n\r\nhalf".to_vec(), true));
    assert_eq!(end_request_body(recs.last().unwrap()), (1, REQUEST_COMPLETE));
}

#[test]
fn encode_error_replaces_a_head_that_has_not_gone_out() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_error(413, DATE, &mut out);
    let (text, ended) = stdout_of(&records(&wire(&mut out)), 1);
    assert!(ended);
    assert!(text.starts_with(b"Status: 413 Content Too Large\r\n"), "{text:?}");
    assert!(text.ends_with(b"\r\n\r\nContent Too Large\n"));
}

#[test]
fn an_error_page_for_a_head_request_has_no_body() {
    let mut codec = served(&get(1, 0, b"HEAD"));
    let mut out = OutBuf::new();
    codec.encode_error(408, DATE, &mut out);
    let (text, _) = stdout_of(&records(&wire(&mut out)), 1);
    assert!(text.starts_with(b"Status: 408 Request Timeout\r\n"));
    assert!(text.ends_with(b"Content-Length: 16\r\n\r\n"));
}

#[test]
fn encoding_without_a_request_writes_nothing() {
    let mut codec = codec(limits());
    let mut out = OutBuf::new();
    codec.encode_continue(&mut out);
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_data(Bytes::from_static(b"x"), &mut out);
    assert!(!codec.encode_end(true, &mut out));
    assert!(out.is_empty());
}

#[test]
fn the_response_interleaves_cleanly_with_control_records() {
    // A GET_VALUES while the app runs: its reply is a whole record between
    // two whole STDOUT records.
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_data(Bytes::from_static(b"one"), &mut out);
    let outcome =
        drive(&mut codec, &[&record(GET_VALUES, 0, &params(&[(b"FCGI_MAX_REQS", b"")]), 0)], false);
    out.put_slice(&outcome.control);
    codec.encode_data(Bytes::from_static(b"two"), &mut out);
    codec.encode_end(true, &mut out);
    let recs = records(&wire(&mut out));
    let kinds: Vec<u8> = recs.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, [STDOUT, GET_VALUES_RESULT, STDOUT, STDOUT, END_REQUEST]);
    assert_eq!(stdout_of(&recs, 1), (b"Status: 200 OK\r\n\r\nonetwo".to_vec(), true));
}

#[test]
fn stderr_text_goes_in_stderr_records_ended_before_end_request() {
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_stderr(Bytes::from_static(b"warning: x\n"), &mut out);
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_stderr(Bytes::from(vec![b'e'; 70_000]), &mut out);
    codec.encode_data(Bytes::from_static(b"ok"), &mut out);
    codec.encode_end(true, &mut out);
    let recs = records(&wire(&mut out));
    let stderr: Vec<&Rec> = recs.iter().filter(|r| r.kind == STDERR).collect();
    // Two pieces, the second split at 65535, then the empty end record.
    let sizes: Vec<usize> = stderr.iter().map(|r| r.content.len()).collect();
    assert_eq!(sizes, [11, 65535, 70_000 - 65535, 0]);
    assert_eq!(&stderr[0].content[..], b"warning: x\n");
    assert!(stderr.iter().all(|r| r.id == 1));
    assert_eq!(stdout_of(&recs, 1), (b"Status: 200 OK\r\n\r\nok".to_vec(), true));
    let end = recs.iter().position(|r| r.kind == END_REQUEST).unwrap();
    let last_stderr = recs.iter().rposition(|r| r.kind == STDERR).unwrap();
    assert!(last_stderr < end && end == recs.len() - 1);

    // No STDERR at all: no empty STDERR record either.
    let mut codec = served(&get(1, 0, b"GET"));
    let mut out = OutBuf::new();
    codec.encode_head(&response("200 OK", &[]), DATE, &mut out);
    codec.encode_end(true, &mut out);
    assert!(records(&wire(&mut out)).iter().all(|r| r.kind != STDERR));
}
