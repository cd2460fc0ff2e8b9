//! Feeds arbitrary bytes to the HTTP/1.1 decoder, whole and cut into
//! pieces chosen by the input, and checks that it never panics, that every
//! frame respects the framing (no empty data, no data outside a body), and
//! that the pieces give the same frames and errors as the whole input.
//! Each head also goes through `write_environ`, `describe` and the
//! response encoder.

#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use rwsgi_http1::{Http1Codec, Http1Head};
use rwsgi_proto::{
    BodyLength, ConnInfo, Environ, Frame, Limits, OutBuf, RequestHead, ResponseHead, ServerCodec,
    SocketAddress,
};
use tokio_util::codec::Decoder;

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Head(Box<Http1Head>),
    Data(Vec<u8>),
    End,
    Error(Option<u16>, String),
}

/// Small limits so the fuzzer reaches them too.
fn limits(seed: u8) -> Limits {
    Limits {
        max_head: 64 + usize::from(seed & 0x3f) * 16,
        max_headers: if seed & 0x40 != 0 { 4 } else { 100 },
        max_body: if seed & 0x80 != 0 { Some(32) } else { None },
    }
}

fn conn() -> ConnInfo {
    ConnInfo {
        peer: SocketAddress::Tcp(std::net::SocketAddr::from(([192, 0, 2, 1], 4000))),
        local: SocketAddress::Tcp(std::net::SocketAddr::from(([10, 0, 0, 1], 8080))),
    }
}

/// Checks one frame against the body the last head announced.
struct Framing {
    /// Body bytes still expected (`None`: streamed; no body: `Some(0)`).
    remaining: Option<u64>,
    in_body: bool,
}

fn push(events: &mut Vec<Event>, framing: &mut Framing, frame: Frame<Http1Head>) {
    match frame {
        Frame::Head(head) => {
            assert!(!framing.in_body, "head inside a body");
            framing.in_body = true;
            framing.remaining = match head.body_length() {
                BodyLength::Empty => Some(0),
                BodyLength::Known(n) => Some(n),
                BodyLength::Streamed => None,
            };
            let mut env = Environ::default();
            head.write_environ(&conn(), &mut env);
            for name in ["REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"] {
                assert!(env.get(name).is_some_and(|v| !v.is_empty()), "{name} missing");
            }
            let _ = head.describe();
            events.push(Event::Head(Box::new(head)));
        }
        Frame::Data(data) => {
            assert!(framing.in_body && !data.is_empty(), "bad data frame");
            if let Some(remaining) = &mut framing.remaining {
                *remaining = remaining.checked_sub(data.len() as u64).expect("data past the body");
            }
            match events.last_mut() {
                Some(Event::Data(prev)) => prev.extend_from_slice(&data),
                _ => events.push(Event::Data(data.to_vec())),
            }
        }
        Frame::End => {
            assert!(framing.in_body, "end outside a body");
            assert!(framing.remaining.unwrap_or(0) == 0, "end before the body");
            framing.in_body = false;
            events.push(Event::End);
        }
        Frame::Abort => panic!("HTTP has no abort"),
    }
}

fn run(pieces: &[&[u8]], limits: Limits) -> Vec<Event> {
    let mut codec = Http1Codec::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    let mut framing = Framing { remaining: None, in_body: false };
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
                events.push(Event::Error(err.status(), err.to_string()));
                break;
            }
        }
    }
    respond(&mut codec);
    events
}

fn encode_error(codec: &mut Http1Codec, status: Option<u16>) {
    let mut out = OutBuf::new();
    codec.encode_error(status.unwrap_or(400), b"Sun, 06 Nov 1994 08:49:37 GMT", &mut out);
    assert!(out.take_contiguous().starts_with(b"HTTP/1.1 "));
}

fn respond(codec: &mut Http1Codec) {
    let head = ResponseHead {
        status: 200,
        status_line: Bytes::from_static(b"200 OK"),
        headers: Vec::new(),
        content_length: None,
    };
    let mut out = OutBuf::new();
    codec.encode_continue(&mut out);
    codec.encode_head(&head, b"Thu, 01 Jan 1970 00:00:00 GMT", &mut out);
    codec.encode_data(Bytes::from_static(b"body"), &mut out);
    let _ = codec.raw_data_framing(4);
    let _ = codec.encode_end(true, &mut out);
}

fuzz_target!(|data: &[u8]| {
    let [limit_seed, split_seed, input @ ..] = data else { return };
    let limits = limits(*limit_seed);
    let whole = run(&[input], limits);

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
    assert_eq!(run(&pieces, limits), whole, "pieces differ from the whole input");
});
