//! What the codec answers on its own (through `take_control`): management
//! records, refusals of requests it will not serve, aborts. Every input is
//! also fed split at every byte and one byte at a time, and must give the
//! same frames and the same control output.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rwsgi_proto::{OutBuf, ServerCodec};
use rwsgi_testkit::first_head;

fn get_values(names: &[&[u8]]) -> Vec<u8> {
    let pairs: Vec<(&[u8], &[u8])> = names.iter().map(|n| (*n, &b""[..])).collect();
    record(GET_VALUES, 0, &params(&pairs), 0)
}

/// The pairs of the one GET_VALUES_RESULT in `control`.
fn result_pairs(control: &[u8]) -> Vec<(String, String)> {
    let recs = records(control);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!((recs[0].kind, recs[0].id), (GET_VALUES_RESULT, 0));
    pairs_of(&recs[0].content)
        .into_iter()
        .map(|(n, v)| (String::from_utf8(n).unwrap(), String::from_utf8(v).unwrap()))
        .collect()
}

fn pair(name: &str, value: &str) -> (String, String) {
    (name.to_owned(), value.to_owned())
}

fn end_requests(control: &[u8]) -> Vec<(u16, u32, u8)> {
    records(control)
        .iter()
        .map(|r| {
            let (app, proto) = end_request_body(r);
            (r.id, app, proto)
        })
        .collect()
}

#[test]
fn get_values_at_idle_answers_the_known_names_in_order() {
    let input = get_values(&[b"FCGI_MPXS_CONNS", b"FCGI_MAX_CONNS", b"FCGI_MAX_REQS"]);
    let outcome = check_full(&input, limits(), true);
    assert_eq!(outcome.events, []);
    assert_eq!(
        result_pairs(&outcome.control),
        [pair("FCGI_MPXS_CONNS", "0"), pair("FCGI_MAX_CONNS", "10"), pair("FCGI_MAX_REQS", "250")]
    );
}

#[test]
fn get_values_result_bytes() {
    let outcome = check_full(&get_values(&[b"FCGI_MPXS_CONNS"]), limits(), true);
    // 15 + 1 + 2 = 18 bytes of content, 6 of padding.
    assert_eq!(
        outcome.control,
        b"\x01\x0a\x00\x00\x00\x12\x06\x00\x0f\x01FCGI_MPXS_CONNS0\0\0\0\0\0\0"
    );
}

#[test]
fn unknown_repeated_and_excess_names_are_left_out() {
    let outcome = check_full(
        &get_values(&[b"FCGI_MAX_REQS", b"NOPE", b"fcgi_max_reqs", b"FCGI_MAX_REQS", b""]),
        limits(),
        true,
    );
    assert_eq!(result_pairs(&outcome.control), [pair("FCGI_MAX_REQS", "250")]);
    // Nothing known: an empty result.
    let outcome = check_full(&get_values(&[b"X"]), limits(), true);
    assert_eq!(result_pairs(&outcome.control), []);
    let outcome = check_full(&record(GET_VALUES, 0, b"", 0), limits(), true);
    assert_eq!(result_pairs(&outcome.control), []);
    // Only the first 32 names are read.
    let mut names: Vec<&[u8]> = vec![b"UNKNOWN"; 31];
    names.push(b"FCGI_MAX_CONNS");
    names.push(b"FCGI_MAX_REQS");
    let outcome = check_long(&get_values(&names), limits(), true);
    assert_eq!(result_pairs(&outcome.control), [pair("FCGI_MAX_CONNS", "10")]);
}

#[test]
fn get_values_with_long_lengths_padding_and_a_broken_tail() {
    let mut content = params_with(&[(b"FCGI_MAX_CONNS", b""), (b"FCGI_MPXS_CONNS", b"")], true);
    content.extend_from_slice(b"\x0e\x00FCGI_MAX_");
    let outcome = check_full(&record(GET_VALUES, 0, &content, 201), limits(), true);
    assert_eq!(
        result_pairs(&outcome.control),
        [pair("FCGI_MAX_CONNS", "10"), pair("FCGI_MPXS_CONNS", "0")]
    );
}

#[test]
fn management_records_are_answered_at_any_time() {
    let query = get_values(&[b"FCGI_MPXS_CONNS"]);
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"6")];
    let block = params(&pairs);
    let mut input = query.clone();
    input.extend(begin(1, RESPONDER, KEEP_CONN));
    input.extend(&query);
    input.extend(record(PARAMS, 1, &block[..7], 0));
    input.extend(&query); // between two PARAMS records
    input.extend(record(PARAMS, 1, &block[7..], 0));
    input.extend(record(PARAMS, 1, b"", 0));
    input.extend(&query);
    input.extend(record(STDIN, 1, b"abc", 0));
    input.extend(&query); // mid-body
    input.extend(record(STDIN, 1, b"def", 0));
    input.extend(record(STDIN, 1, b"", 0));
    input.extend(&query); // while the app runs
    input.extend(record(42, 0, b"", 0));
    let outcome = check_full(&input, limits(), true);
    assert_eq!(outcome.events[1..], [Event::Data(b"abcdef".to_vec()), Event::End]);
    let recs = records(&outcome.control);
    assert_eq!(recs.len(), 7);
    assert!(recs[..6].iter().all(|r| r.kind == GET_VALUES_RESULT && r.id == 0));
    assert_eq!((recs[6].kind, recs[6].content[0]), (UNKNOWN_TYPE, 42));
}

#[test]
fn unknown_management_types_get_unknown_type() {
    for kind in [0u8, 1, 2, 3, 4, 5, 6, 8, 10, 11, 42, 255] {
        let input = [record(kind, 0, b"some content", 3), get_values(&[b"FCGI_MAX_REQS"])].concat();
        let outcome = check_full(&input, limits(), true);
        assert_eq!(outcome.events, [], "type {kind}");
        let recs = records(&outcome.control);
        assert_eq!(recs.len(), 2, "type {kind}");
        assert_eq!((recs[0].kind, recs[0].id), (UNKNOWN_TYPE, 0));
        assert_eq!(recs[0].content, [kind, 0, 0, 0, 0, 0, 0, 0]);
        // The content was skipped: the next record is read correctly.
        assert_eq!(recs[1].kind, GET_VALUES_RESULT);
    }
}

#[test]
fn a_role_other_than_responder_is_refused() {
    for role in [0u16, 2, 3, 99, 0x0100] {
        let mut input = begin(4, role, KEEP_CONN);
        // Its params and body are for an id nobody serves.
        input.extend(stream(PARAMS, 4, &params(&[(b"REQUEST_METHOD", b"GET")]), 100));
        input.extend(stream(STDIN, 4, b"x", 100));
        // The connection still serves a responder request afterwards.
        input.extend(request(5, 0, &[(b"REQUEST_METHOD", b"GET")], b""));
        let outcome = check_full(&input, limits(), true);
        assert_eq!(end_requests(&outcome.control), [(4, 0, UNKNOWN_ROLE)], "role {role}");
        assert_eq!(outcome.events.len(), 2);
        assert_eq!(first_head(&outcome.events).request_id(), 5);
    }
}

#[test]
fn a_second_concurrent_request_is_refused_with_cant_mpx_conn() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"4")];
    let mut input = begin(1, RESPONDER, KEEP_CONN);
    input.extend(record(PARAMS, 1, &params(&pairs), 0));
    input.extend(begin(2, RESPONDER, KEEP_CONN)); // mid-params
    input.extend(stream(PARAMS, 2, &params(&[(b"REQUEST_METHOD", b"DELETE")]), 100));
    input.extend(record(PARAMS, 1, b"", 0));
    input.extend(begin(3, RESPONDER, 0)); // mid-body
    input.extend(record(STDIN, 3, b"not ours", 0));
    input.extend(record(ABORT_REQUEST, 2, b"", 0));
    input.extend(record(STDIN, 1, b"body", 0));
    input.extend(record(STDIN, 1, b"", 0));
    input.extend(begin(4, 2, 0)); // while the app runs, and not even a responder
    let outcome = check_full(&input, limits(), true);
    assert_eq!(
        end_requests(&outcome.control),
        [(2, 0, CANT_MPX_CONN), (3, 0, CANT_MPX_CONN), (4, 0, CANT_MPX_CONN)]
    );
    assert_eq!(outcome.events[1..], [Event::Data(b"body".to_vec()), Event::End]);
    assert_eq!(first_head(&outcome.events).method(), b"POST");
}

#[test]
fn abort_before_the_head_drops_the_request() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
    let mut input = begin(7, RESPONDER, KEEP_CONN);
    input.extend(record(PARAMS, 7, &params(&pairs), 0));
    input.extend(record(ABORT_REQUEST, 7, b"", 5));
    // The rest of its records are for an inactive id.
    input.extend(record(PARAMS, 7, b"", 0));
    input.extend(stream(STDIN, 7, b"abc", 100));
    let outcome = check_full(&input, limits(), true);
    assert_eq!(outcome.events, []);
    assert_eq!(end_requests(&outcome.control), [(7, 0, REQUEST_COMPLETE)]);
    // The connection is idle again: the id can be reused.
    input.extend(request(7, 0, &pairs, b""));
    let outcome = check_full(&input, limits(), true);
    assert_eq!(outcome.events.len(), 2);
    assert_eq!(end_requests(&outcome.control), [(7, 0, REQUEST_COMPLETE)]);
}

#[test]
fn abort_after_the_head_stops_the_app() {
    let pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST"), (b"CONTENT_LENGTH", b"10")];
    // Mid-body.
    let mut input = begin(1, RESPONDER, KEEP_CONN);
    input.extend(stream(PARAMS, 1, &params(&pairs), 100));
    input.extend(record(STDIN, 1, b"abc", 0));
    input.extend(record(ABORT_REQUEST, 1, b"", 0));
    input.extend(record(STDIN, 1, b"def", 0));
    input.extend(record(ABORT_REQUEST, 1, b"", 0));
    input.extend(record(STDIN, 1, b"", 0));
    let outcome = check_full(&input, limits(), true);
    assert!(outcome.control.is_empty());
    assert_eq!(outcome.events[1..], [Event::Data(b"abc".to_vec()), Event::Abort]);

    // After the body, while the app runs: the core ends the request with
    // encode_end(false): END_REQUEST with appStatus 1.
    let mut input = request(1, KEEP_CONN, &pairs, b"0123456789");
    input.extend(record(ABORT_REQUEST, 1, b"", 0));
    let outcome = check_full(&input, limits(), true);
    assert_eq!(outcome.events.last(), Some(&Event::Abort));
    let mut codec = served(&input);
    let mut out = OutBuf::new();
    assert!(codec.encode_end(false, &mut out));
    let recs = records(&out.take_contiguous());
    assert_eq!(recs.len(), 2);
    assert_eq!((recs[0].kind, recs[0].id, recs[0].content.len()), (STDOUT, 1, 0));
    assert_eq!(end_request_body(&recs[1]), (1, REQUEST_COMPLETE));
}

#[test]
fn abort_for_an_inactive_id_is_ignored() {
    let mut input = record(ABORT_REQUEST, 1, b"", 0);
    input.extend(get_with(&[]));
    input.extend(record(ABORT_REQUEST, 2, b"", 0));
    let outcome = check_full(&input, limits(), true);
    assert!(outcome.control.is_empty());
    assert_eq!(outcome.events.len(), 2);
    assert_eq!(outcome.events[1], Event::End);
}

#[test]
fn control_output_comes_out_once() {
    let mut codec = codec(limits());
    drive(&mut codec, &[&get_values(&[b"FCGI_MAX_CONNS"])], false);
    let mut out = OutBuf::new();
    codec.take_control(&mut out);
    assert!(out.is_empty(), "drive already took it");
    let outcome = drive(&mut codec, &[&get_values(&[b"FCGI_MAX_CONNS"])], false);
    assert_eq!(result_pairs(&outcome.control), [pair("FCGI_MAX_CONNS", "10")]);
}
