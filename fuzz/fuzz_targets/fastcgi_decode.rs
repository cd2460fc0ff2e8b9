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

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rwsgi_fastcgi::{FastCgiCodec, FastCgiHead, ManagementValues};
use rwsgi_proto::{
    BodyLength, ConnInfo, Environ, Frame, Limits, OutBuf, RequestHead, ResponseHead, ServerCodec,
    SocketAddress,
};
use tokio_util::codec::Decoder;

const VALUES: ManagementValues = ManagementValues { max_conns: 7, max_reqs: 4_000_000_000 };

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Head(Box<FastCgiHead>),
    Data(Vec<u8>),
    End,
    Abort,
    Error(Option<u16>, String),
}

/// Everything one run produced.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    events: Vec<Event>,
    /// What `take_control` handed out, concatenated.
    control: Vec<u8>,
    /// What the encoder wrote, concatenated.
    responses: Vec<u8>,
}

/// Small limits so the fuzzer reaches them too.
fn limits(seed: u8) -> Limits {
    Limits {
        max_head: 16 + usize::from(seed & 0x3f) * 16,
        max_headers: if seed & 0x40 != 0 { 2 } else { 100 },
        max_body: if seed & 0x80 != 0 { Some(32) } else { None },
    }
}

fn conn(unix: bool) -> ConnInfo {
    if unix {
        ConnInfo { peer: SocketAddress::Unix(None), local: SocketAddress::Unix(None) }
    } else {
        ConnInfo {
            peer: SocketAddress::Tcp(std::net::SocketAddr::from(([192, 0, 2, 1], 4000))),
            local: SocketAddress::Tcp(std::net::SocketAddr::from(([10, 0, 0, 1], 9000))),
        }
    }
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
    let mut env = Environ::default();
    head.write_environ(&conn(unix), &mut env);
    for name in ["REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"] {
        assert!(env.get(name).is_some_and(|v| !v.is_empty()), "{name} missing or empty");
    }
    for name in ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING"] {
        assert!(env.get(name).is_some(), "{name} missing");
    }
    for name in ["CONTENT_TYPE", "CONTENT_LENGTH"] {
        assert!(env.get(name).is_none_or(|v| !v.is_empty()), "empty {name}");
    }
    let script = env.get("SCRIPT_NAME").cloned().unwrap_or_default();
    assert!(script.is_empty() || script.starts_with(b"/"), "SCRIPT_NAME {script:?}");
    let mut keys: Vec<&[u8]> = env.vars.iter().map(|(k, _)| k.as_bytes()).collect();
    for key in &keys {
        let lower = key.to_ascii_lowercase();
        assert!(!lower.starts_with(b"wsgi.") && !lower.starts_with(b"uwsgi."), "{key:?} kept");
        assert!(*key != b"HTTP_CONTENT_TYPE" && *key != b"HTTP_CONTENT_LENGTH", "{key:?} kept");
        assert!(!key.is_empty(), "empty key");
    }
    keys.sort_unstable();
    let n = keys.len();
    keys.dedup();
    assert_eq!(keys.len(), n, "a key twice in the environ");
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
}

fn respond(codec: &mut FastCgiCodec, state: &mut State, complete: bool, out: &mut Vec<u8>) {
    let head = ResponseHead {
        status: 200,
        status_line: Bytes::from_static(b"200 OK"),
        headers: vec![(Bytes::from_static(b"X-A"), Bytes::from_static(b"1"))],
        content_length: None,
    };
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
    codec.encode_data(Bytes::from(vec![b'x'; 70_000]), &mut buf);
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
    let body = if state.head_method { 0 } else { 4 + 70_000 };
    assert_eq!(text.len(), 26 + body);
    assert!(stdout.last().is_some_and(|r| r.2.is_empty()));
    out.extend_from_slice(&wire);
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
    match frame {
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
            check_head(&head, state.limits, state.unix);
            outcome.events.push(Event::Head(Box::new(head)));
            if state.early {
                respond(codec, state, true, &mut outcome.responses);
            }
        }
        Frame::Data(data) => {
            assert!(state.in_body && !data.is_empty(), "bad data frame");
            if let Some(remaining) = &mut state.remaining {
                *remaining = remaining.checked_sub(data.len() as u64).expect("data past the body");
            }
            match outcome.events.last_mut() {
                Some(Event::Data(prev)) => prev.extend_from_slice(&data),
                _ => outcome.events.push(Event::Data(data.to_vec())),
            }
        }
        Frame::End => {
            assert!(state.in_body, "end outside a body");
            state.in_body = false;
            outcome.events.push(Event::End);
            respond(codec, state, true, &mut outcome.responses);
        }
        Frame::Abort => {
            assert!(state.active, "abort without a request");
            outcome.events.push(Event::Abort);
            respond(codec, state, false, &mut outcome.responses);
        }
    }
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

fn run(pieces: &[&[u8]], limits: Limits, unix: bool, early: bool) -> Outcome {
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
    };
    for piece in pieces {
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
                    outcome.events.push(Event::Error(err.status(), err.to_string()));
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
                outcome.events.push(Event::Error(err.status(), err.to_string()));
                break;
            }
        }
    }
    outcome
}

fn encode_error(codec: &mut FastCgiCodec, status: Option<u16>, state: &State, out: &mut Vec<u8>) {
    let mut buf = OutBuf::new();
    codec.close_after_response();
    codec.encode_error(status.unwrap_or(400), b"Sun, 06 Nov 1994 08:49:37 GMT", &mut buf);
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
    let limits = limits(*limit_seed);
    let unix = split_seed & 2 != 0;
    let early = split_seed & 8 != 0;
    let built;
    let input = if split_seed & 4 != 0 {
        built = structured(input);
        &built[..]
    } else {
        input
    };
    let whole = run(&[input], limits, unix, early);

    // Cut points from the split seed: a xorshift stream, pieces of 1..=16
    // bytes when the seed is odd, up to 256 otherwise.
    let mut state = u32::from(*split_seed) | 0x9e37_0000;
    let max_piece = if split_seed & 1 == 1 { 16 } else { 256 };
    let mut pieces = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % max_piece + 1).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        pieces.push(piece);
        rest = tail;
    }
    let split = run(&pieces, limits, unix, early);
    assert_eq!(split.events, whole.events, "pieces differ from the whole input");
    assert_eq!(split.control, whole.control, "control output differs");
    assert_eq!(split.responses, whole.responses, "responses differ");
});
