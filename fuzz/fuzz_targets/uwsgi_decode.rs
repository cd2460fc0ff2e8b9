//! Feeds arbitrary bytes to the uwsgi decoder, whole and cut into pieces
//! chosen by the input, and checks that it never panics, that every frame
//! respects the framing (one head per connection, no empty data, no data
//! outside or past the body), and that the pieces give the same frames and
//! errors as the whole input. Each head also goes through `write_environ`
//! (whose result must be a well-formed PEP 3333 environ), `describe` and
//! the response encoder.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rwsgi_proto::{
    BodyLength, ConnInfo, Environ, Frame, Limits, OutBuf, RequestHead, ResponseHead, ServerCodec,
    SocketAddress,
};
use rwsgi_uwsgi::{UwsgiCodec, UwsgiHead};
use tokio_util::codec::Decoder;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Head(Box<UwsgiHead>),
    Data(Vec<u8>),
    End,
    Error(Option<u16>, String),
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
    if !unix {
        ConnInfo {
            peer: SocketAddress::Tcp(std::net::SocketAddr::from(([192, 0, 2, 1], 4000))),
            local: SocketAddress::Tcp(std::net::SocketAddr::from(([10, 0, 0, 1], 3031))),
        }
    } else {
        ConnInfo { peer: SocketAddress::Unix(None), local: SocketAddress::Unix(None) }
    }
}

/// The environ of `head` must be a dict PEP 3333 accepts, with none of
/// the keys the codec promises to drop.
fn check_environ(head: &UwsgiHead, limits: Limits, unix: bool) {
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
    // Every var the environ has came from the packet or a fallback.
    assert!(n <= head.vars().count() + 8);
    assert!(head.vars().count() <= limits.max_headers + 64);
    assert_eq!(head.modifier1(), 0);
    assert_eq!(head.var(b"REQUEST_METHOD"), Some(head.method()));
    assert!(!head.expects_continue());
    let _ = head.describe();
}

struct Framing {
    /// Body bytes still expected.
    remaining: u64,
    in_body: bool,
    heads: usize,
    limits: Limits,
    /// Build environs for a unix-socket connection.
    unix: bool,
}

fn push(events: &mut Vec<Event>, framing: &mut Framing, frame: Frame<UwsgiHead>) {
    let limits = framing.limits;
    match frame {
        Frame::Head(head) => {
            assert!(framing.heads == 0, "a second head on one connection");
            framing.heads += 1;
            framing.in_body = true;
            framing.remaining = match head.body_length() {
                BodyLength::Empty => 0,
                BodyLength::Known(n) => {
                    assert!(n > 0, "Known(0) instead of Empty");
                    assert!(limits.max_body.is_none_or(|max| n <= max), "body over the limit");
                    n
                }
                BodyLength::Streamed => panic!("a uwsgi body is never streamed"),
            };
            check_environ(&head, limits, framing.unix);
            events.push(Event::Head(Box::new(head)));
        }
        Frame::Data(data) => {
            assert!(framing.in_body && !data.is_empty(), "bad data frame");
            framing.remaining =
                framing.remaining.checked_sub(data.len() as u64).expect("data past the body");
            match events.last_mut() {
                Some(Event::Data(prev)) => prev.extend_from_slice(&data),
                _ => events.push(Event::Data(data.to_vec())),
            }
        }
        Frame::End => {
            assert!(framing.in_body, "end outside a body");
            assert!(framing.remaining == 0, "end before the body");
            framing.in_body = false;
            events.push(Event::End);
        }
        Frame::Abort => panic!("a uwsgi request cannot be aborted"),
    }
}

fn run(pieces: &[&[u8]], limits: Limits, unix: bool) -> Vec<Event> {
    let mut codec = UwsgiCodec::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut framing = Framing { remaining: 0, in_body: false, heads: 0, limits, unix };
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => push(&mut events, &mut framing, frame),
                Ok(None) => break,
                Err(err) => {
                    events.push(Event::Error(err.status(), err.to_string()));
                    // Poisoned: nothing more comes out.
                    assert!(matches!(codec.decode(&mut buf), Ok(None)));
                    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)));
                    encode_error(&mut codec, err.status());
                    return events;
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => push(&mut events, &mut framing, frame),
            Ok(None) => break,
            Err(err) => {
                // Only a truncated packet, never a malformed one, is
                // found at EOF that was not found before.
                assert!(err.status().is_none(), "{err}");
                events.push(Event::Error(err.status(), err.to_string()));
                break;
            }
        }
    }
    // After EOF the request is either whole or abandoned.
    assert!(!framing.in_body || matches!(events.last(), Some(Event::Error(None, _))));
    respond(&mut codec, framing.heads > 0);
    events
}

fn encode_error(codec: &mut UwsgiCodec, status: Option<u16>) {
    let mut out = OutBuf::new();
    codec.encode_error(status.unwrap_or(400), b"Sun, 06 Nov 1994 08:49:37 GMT", &mut out);
    assert!(out.take_contiguous().starts_with(b"HTTP/1.0 "));
}

fn respond(codec: &mut UwsgiCodec, had_head: bool) {
    let head = ResponseHead {
        status: 200,
        status_line: Bytes::from_static(b"200 OK"),
        headers: Vec::new(),
        content_length: None,
    };
    let mut out = OutBuf::new();
    codec.encode_continue(&mut out);
    assert!(out.is_empty());
    codec.close_after_response();
    codec.encode_head(&head, b"Thu, 01 Jan 1970 00:00:00 GMT", &mut out);
    codec.encode_data(Bytes::from_static(b"body"), &mut out);
    let framing = codec.raw_data_framing(4);
    assert!(framing.is_none_or(|(p, s)| p.is_empty() && s.is_empty()));
    assert!(!codec.encode_end(true, &mut out), "a uwsgi connection is never reused");
    let wire = out.take_contiguous();
    assert!(wire.starts_with(b"HTTP/1.0 200 OK\r\n") || wire.starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert!(had_head || wire.starts_with(b"HTTP/1.0 "));
    let end = wire.windows(4).position(|w| w == b"\r\n\r\n").expect("no end of head");
    assert!(wire[..end].ends_with(b"Connection: close"));
}

fuzz_target!(|data: &[u8]| {
    let [limit_seed, split_seed, input @ ..] = data else { return };
    let limits = limits(*limit_seed);
    let unix = split_seed & 2 != 0;
    let whole = run(&[input], limits, unix);

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
    assert_eq!(run(&pieces, limits, unix), whole, "pieces differ from the whole input");
});
