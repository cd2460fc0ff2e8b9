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
use rwsgi_proto::{BodyLength, Frame, Limits, OutBuf, RequestHead, ServerCodec};
use rwsgi_testkit::{
    DATE, assert_required_vars, environ_of, limits_from_seed, push_error, push_frame,
    response_head, seeded_pieces, tcp_conn,
};
use tokio_util::codec::Decoder;

type Event = rwsgi_testkit::Event<Http1Head>;

/// Checks one frame against the body the last head announced.
struct Framing {
    /// Body bytes still expected (`None`: streamed; no body: `Some(0)`).
    remaining: Option<u64>,
    in_body: bool,
}

fn push(events: &mut Vec<Event>, framing: &mut Framing, frame: Frame<Http1Head>) {
    match &frame {
        Frame::Head(head) => {
            assert!(!framing.in_body, "head inside a body");
            framing.in_body = true;
            framing.remaining = match head.body_length() {
                BodyLength::Empty => Some(0),
                BodyLength::Known(n) => Some(n),
                BodyLength::Streamed => None,
            };
            assert_required_vars(&environ_of(head, &tcp_conn(8080)));
            let _ = head.describe();
        }
        Frame::Data(data) => {
            assert!(framing.in_body, "data outside a body");
            if let Some(remaining) = &mut framing.remaining {
                *remaining = remaining.checked_sub(data.len() as u64).expect("data past the body");
            }
        }
        Frame::End => {
            assert!(framing.in_body, "end outside a body");
            assert!(framing.remaining.unwrap_or(0) == 0, "end before the body");
            framing.in_body = false;
        }
        Frame::Abort => panic!("HTTP has no abort"),
    }
    // Asserts the data is not empty and merges it with the previous piece.
    push_frame(events, frame);
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
                    push_error(&mut events, &err);
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
                push_error(&mut events, &err);
                break;
            }
        }
    }
    respond(&mut codec);
    events
}

fn encode_error(codec: &mut Http1Codec, status: Option<u16>) {
    let mut out = OutBuf::new();
    codec.encode_error(status.unwrap_or(400), DATE, &mut out);
    assert!(out.take_contiguous().starts_with(b"HTTP/1.1 "));
}

fn respond(codec: &mut Http1Codec) {
    let head = response_head(200, "200 OK", &[], None);
    let mut out = OutBuf::new();
    codec.encode_continue(&mut out);
    codec.encode_head(&head, b"Thu, 01 Jan 1970 00:00:00 GMT", &mut out);
    codec.encode_data(Bytes::from_static(b"body"), &mut out);
    let _ = codec.raw_data_framing(4);
    let _ = codec.encode_end(true, &mut out);
}

fuzz_target!(|data: &[u8]| {
    let [limit_seed, split_seed, input @ ..] = data else { return };
    let limits = limits_from_seed(*limit_seed, 64, 4);
    let whole = run(&[input], limits);
    let pieces = seeded_pieces(input, *split_seed);
    assert_eq!(run(&pieces, limits), whole, "pieces differ from the whole input");
});
