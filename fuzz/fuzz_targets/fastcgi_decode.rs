//! Feeds arbitrary bytes to the FastCGI decoder, whole and cut into pieces
//! chosen by the input, and checks that it never panics, that every frame
//! respects the framing (one request at a time, no empty data, no data
//! outside or past a body, an abort only inside a request), and that the
//! pieces give the same frames, errors, control records (management
//! replies, refusals) and responses as the whole input.
//!
//! The driver plays the core: after each body's end (or an abort) it
//! answers through the encoder and, if KEEP_CONN allows, goes on decoding;
//! on an error it calls `encode_error`. Every byte the codec writes must
//! parse as well-formed records. Each head also goes through
//! `write_environ` (whose result must be a well-formed PEP 3333 environ)
//! and `describe`.
//!
//! When the second seed byte's bit 2 is set, the input is first turned
//! into well-formed records (type, id, content, padding from the bytes),
//! so the fuzzer reaches deep request states quickly.
//!
//! The pieces are also fed as the core reads a body of known length in
//! place: at each piece whose start finds the buffer empty, the body bytes
//! the codec says come next (`body_in_place`) are taken off the piece
//! directly (`body_taken`), not decoded. That must change nothing.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rwsgi_fastcgi::{FastCgiCodec, FastCgiHead, ManagementValues};
use rwsgi_proto::{BodyLength, ConnInfo, Frame, Limits, OutBuf, RequestHead, ServerCodec};
use rwsgi_testkit::{
    DATE, assert_pep3333_environ, environ_of, limits_from_seed, push_error, push_frame,
    response_head, seeded_pieces, tcp_conn, unix_conn,
};
use tokio_util::codec::Decoder;

const VALUES: ManagementValues = ManagementValues { max_conns: 7, max_reqs: 4_000_000_000 };

type Event = rwsgi_testkit::Event<FastCgiHead>;

/// Everything one run produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    /// What `take_control` handed out, concatenated.
    control: Vec<u8>,
    /// What the encoder wrote, concatenated.
    responses: Vec<u8>,
}

fn conn(unix: bool) -> ConnInfo {
    if unix { unix_conn() } else { tcp_conn(9000) }
}

/// Turns `input` into well-formed records: each takes a type byte, an id
/// selector, a content length and a padding length, then that much
/// content (a BEGIN_REQUEST gets a proper 8-byte body).
fn structured(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = input;
    while let [kind, id, len, pad, tail @ ..] = rest {
        let kind = match kind % 16 {
            k @ 1..=11 => k,
            12 => 4,
            13 => 5,
            _ => *kind,
        };
        let id: u16 = match id % 4 {
            0 => 0,
            1 | 2 => 1,
            _ => 2,
        };
        let (content, tail): (Vec<u8>, &[u8]) = if kind == 1 {
            let role = if len % 8 == 0 { 2 } else { 1 };
            (vec![0, role, pad & 1, 0, 0, 0, 0, 0], tail)
        } else {
            let n = usize::from(*len % 64).min(tail.len());
            let (content, tail) = tail.split_at(n);
            (content.to_vec(), tail)
        };
        let padding = if kind == 1 { 0 } else { pad % 12 };
        out.extend_from_slice(&[1, kind]);
        out.extend_from_slice(&id.to_be_bytes());
        out.extend_from_slice(&(content.len() as u16).to_be_bytes());
        out.extend_from_slice(&[padding, 0]);
        out.extend_from_slice(&content);
        out.extend(std::iter::repeat_n(0u8, usize::from(padding)));
        rest = tail;
    }
    out
}

/// Splits `wire` into records, asserting each is well-formed and padded
/// to 8; returns (type, id, content) of each.
fn records(wire: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let [1, kind, id_hi, id_lo, len_hi, len_lo, pad, 0, tail @ ..] = rest else {
            panic!("malformed record header: {:?}", &rest[..rest.len().min(8)]);
        };
        let len = usize::from(u16::from_be_bytes([*len_hi, *len_lo]));
        let pad = usize::from(*pad);
        assert!((len + pad) % 8 == 0 && pad < 8, "record not padded to 8");
        assert!(tail.len() >= len + pad, "truncated record");
        out.push((*kind, u16::from_be_bytes([*id_hi, *id_lo]), tail[..len].to_vec()));
        rest = &tail[len + pad..];
    }
    out
}

/// The environ of `head` must be a dict PEP 3333 accepts, with none of
/// the keys the codec promises to drop.
fn check_head(head: &FastCgiHead, limits: Limits, unix: bool) {
    let env = environ_of(head, &conn(unix));
    let n = assert_pep3333_environ(&env);
    let script = env.get("SCRIPT_NAME").cloned().unwrap_or_default();
    assert!(script.is_empty() || script.starts_with(b"/"), "SCRIPT_NAME {script:?}");
    assert!(n <= head.params().count() + 8);
    assert!(head.params().count() <= limits.max_headers + 64);
    assert_eq!(head.param(b"REQUEST_METHOD"), Some(head.method()));
    assert!(!head.expects_continue());
    match head.body_length() {
        BodyLength::Known(n) => {
            assert!(n > 0, "Known(0) instead of Empty");
            assert!(limits.max_body.is_none_or(|max| n <= max), "body over the limit");
        }
        BodyLength::Empty | BodyLength::Streamed => {}
    }
    let _ = head.describe();
}

/// Where the driver is, as the core would be.
struct State {
    limits: Limits,
    unix: bool,
    /// Answer at the head, before the body (an app that does not read it).
    early: bool,
    /// A head was yielded and not yet answered.
    active: bool,
    in_body: bool,
    /// Body bytes still allowed (`None`: streamed).
    remaining: Option<u64>,
    /// The active request's method is HEAD.
    head_method: bool,
    /// The connection is over (the encoder said to close).
    closed: bool,
    /// Responses written so far.
    answered: usize,
}

fn respond(codec: &mut FastCgiCodec, state: &mut State, complete: bool, out: &mut Vec<u8>) {
    let head = response_head(200, "200 OK", &[("X-A", "1")], None);
    let mut buf = OutBuf::new();
    if state.early {
        codec.close_after_response();
    }
    codec.encode_continue(&mut buf);
    assert!(buf.is_empty());
    codec.encode_head(&head, b"Thu, 01 Jan 1970 00:00:00 GMT", &mut buf);
    assert_eq!(codec.raw_data_framing(4), None);
    codec.encode_data(Bytes::from_static(b"body"), &mut buf);
    codec.encode_data(Bytes::new(), &mut buf);
    // One response per run crosses a record's 65535-byte limit; the rest
    // stay small so that inputs with many requests run fast.
    let big = if state.answered == 0 { 70_000 } else { 8 };
    codec.encode_data(Bytes::from(vec![b'x'; big]), &mut buf);
    let keep = codec.encode_end(complete, &mut buf);
    let wire = buf.take_contiguous();
    let recs = records(&wire);
    let (last, stdout) = recs.split_last().expect("no END_REQUEST");
    assert_eq!(last.0, 3, "the response does not end with END_REQUEST");
    assert_eq!(&last.2[..4], &(if complete { [0; 4] } else { [0, 0, 0, 1] }));
    let text: Vec<u8> = stdout
        .iter()
        .inspect(|r| assert!(r.0 == 6 && r.1 == last.1 && r.2.len() <= 65535))
        .flat_map(|r| r.2.clone())
        .collect();
    assert!(text.starts_with(b"Status: 200 OK\r\nX-A: 1\r\n\r\n"));
    let body = if state.head_method { 0 } else { 4 + big };
    assert_eq!(text.len(), 26 + body);
    assert!(stdout.last().is_some_and(|r| r.2.is_empty()));
    out.extend_from_slice(&wire);
    state.answered += 1;
    state.active = false;
    state.in_body = false;
    if state.early {
        assert!(!keep, "close_after_response was ignored");
    }
    state.closed = !keep;
}

fn push(
    codec: &mut FastCgiCodec,
    state: &mut State,
    frame: Frame<FastCgiHead>,
    outcome: &mut Outcome,
) {
    match &frame {
        Frame::Head(head) => {
            assert!(!state.active, "a head while a request is active");
            state.active = true;
            state.in_body = true;
            state.head_method = head.method() == b"HEAD";
            state.remaining = match head.body_length() {
                BodyLength::Empty => Some(0),
                BodyLength::Known(n) => Some(n),
                BodyLength::Streamed => None,
            };
            check_head(head, state.limits, state.unix);
            if state.early {
                respond(codec, state, true, &mut outcome.responses);
            }
        }
        Frame::Data(data) => {
            assert!(state.in_body, "data outside a body");
            if let Some(remaining) = &mut state.remaining {
                *remaining = remaining.checked_sub(data.len() as u64).expect("data past the body");
            }
        }
        Frame::End => {
            assert!(state.in_body, "end outside a body");
            state.in_body = false;
            respond(codec, state, true, &mut outcome.responses);
        }
        Frame::Abort => {
            assert!(state.active, "abort without a request");
            respond(codec, state, false, &mut outcome.responses);
        }
    }
    // Asserts the data is not empty and merges it with the previous piece.
    push_frame(&mut outcome.events, frame);
}

fn take_control(codec: &mut FastCgiCodec, control: &mut Vec<u8>) {
    let mut out = OutBuf::new();
    codec.take_control(&mut out);
    let wire = out.take_contiguous();
    for (kind, id, content) in records(&wire) {
        match kind {
            3 => assert!(id != 0 && content.len() == 8 && content[4] != 2),
            10 | 11 => assert_eq!(id, 0),
            _ => panic!("control record of type {kind}"),
        }
    }
    control.extend_from_slice(&wire);
}

fn run(pieces: &[&[u8]], limits: Limits, unix: bool, early: bool, in_place: bool) -> Outcome {
    let mut codec = FastCgiCodec::new(limits, VALUES);
    let mut buf = BytesMut::new();
    let mut outcome = Outcome { events: Vec::new(), control: Vec::new(), responses: Vec::new() };
    let mut state = State {
        limits,
        unix,
        early,
        active: false,
        in_body: false,
        remaining: None,
        head_method: false,
        closed: false,
        answered: 0,
    };
    for piece in pieces {
        let mut piece: &[u8] = piece;
        if let Some(place) = codec.body_in_place().filter(|_| in_place && buf.is_empty()) {
            assert!(place.framing >= 8, "no room for the next record header");
            let n = usize::try_from(place.body).map_or(piece.len(), |body| body.min(piece.len()));
            if n > 0 {
                codec.body_taken(n as u64);
                let data = Frame::Data(Bytes::copy_from_slice(&piece[..n]));
                push(&mut codec, &mut state, data, &mut outcome);
                piece = &piece[n..];
            }
        }
        buf.extend_from_slice(piece);
        loop {
            let result = codec.decode(&mut buf);
            take_control(&mut codec, &mut outcome.control);
            match result {
                Ok(Some(frame)) => {
                    push(&mut codec, &mut state, frame, &mut outcome);
                    if state.closed {
                        return outcome;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    push_error(&mut outcome.events, &err);
                    // Poisoned: nothing more comes out.
                    assert!(matches!(codec.decode(&mut buf), Ok(None)));
                    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
                    take_control(&mut codec, &mut outcome.control);
                    encode_error(&mut codec, err.status(), &state, &mut outcome.responses);
                    return outcome;
                }
            }
        }
    }
    loop {
        let result = codec.decode_eof(&mut buf);
        take_control(&mut codec, &mut outcome.control);
        match result {
            Ok(Some(frame)) => {
                push(&mut codec, &mut state, frame, &mut outcome);
                if state.closed {
                    return outcome;
                }
            }
            Ok(None) => break,
            Err(err) => {
                // Only a truncation, never a malformed record, is found at
                // EOF that was not found before.
                assert!(err.status().is_none(), "{err}");
                push_error(&mut outcome.events, &err);
                break;
            }
        }
    }
    outcome
}

fn encode_error(codec: &mut FastCgiCodec, status: Option<u16>, state: &State, out: &mut Vec<u8>) {
    let mut buf = OutBuf::new();
    codec.close_after_response();
    codec.encode_error(status.unwrap_or(400), DATE, &mut buf);
    let wire = buf.take_contiguous();
    let recs = records(&wire);
    if state.active {
        let (last, stdout) = recs.split_last().expect("an active request was not answered");
        assert_eq!(last.0, 3);
        assert_eq!(&last.2[..5], &[0, 0, 0, 1, 0]);
        assert!(stdout.iter().all(|r| r.0 == 6 && r.1 == last.1 && r.2.len() <= 65535));
    }
    out.extend_from_slice(&wire);
}

fuzz_target!(|data: &[u8]| {
    let [limit_seed, split_seed, input @ ..] = data else { return };
    let limits = limits_from_seed(*limit_seed, 16, 2);
    let unix = split_seed & 2 != 0;
    let early = split_seed & 8 != 0;
    let built;
    let input = if split_seed & 4 != 0 {
        built = structured(input);
        &built[..]
    } else {
        input
    };
    let whole = run(&[input], limits, unix, early, false);

    let pieces = seeded_pieces(input, *split_seed);
    for in_place in [false, true] {
        let split = run(&pieces, limits, unix, early, in_place);
        assert_eq!(split.events, whole.events, "pieces differ from the whole input ({in_place})");
        assert_eq!(split.control, whole.control, "control output differs ({in_place})");
        assert_eq!(split.responses, whole.responses, "responses differ ({in_place})");
    }
});
