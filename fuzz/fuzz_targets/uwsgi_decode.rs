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
use rwsgi_proto::{BodyLength, ConnInfo, Frame, Limits, OutBuf, RequestHead, ServerCodec};
use rwsgi_testkit::{
    DATE, assert_pep3333_environ, environ_of, limits_from_seed, push_error, push_frame,
    response_head, seeded_pieces, tcp_conn, unix_conn,
};
use rwsgi_uwsgi::{UwsgiCodec, UwsgiHead};
use tokio_util::codec::Decoder;

type Event = rwsgi_testkit::Event<UwsgiHead>;

fn conn(unix: bool) -> ConnInfo {
    if unix { unix_conn() } else { tcp_conn(3031) }
}

/// The environ of `head` must be a dict PEP 3333 accepts, with none of
/// the keys the codec promises to drop.
fn check_environ(head: &UwsgiHead, limits: Limits, unix: bool) {
    let n = assert_pep3333_environ(&environ_of(head, &conn(unix)));
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
    match &frame {
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
            check_environ(head, limits, framing.unix);
        }
        Frame::Data(data) => {
            assert!(framing.in_body, "data outside a body");
            framing.remaining =
                framing.remaining.checked_sub(data.len() as u64).expect("data past the body");
        }
        Frame::End => {
            assert!(framing.in_body, "end outside a body");
            assert!(framing.remaining == 0, "end before the body");
            framing.in_body = false;
        }
        Frame::Abort => panic!("a uwsgi request cannot be aborted"),
    }
    // Asserts the data is not empty and merges it with the previous piece.
    push_frame(events, frame);
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
                    push_error(&mut events, &err);
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
                push_error(&mut events, &err);
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
    codec.encode_error(status.unwrap_or(400), DATE, &mut out);
    assert!(out.take_contiguous().starts_with(b"HTTP/1.0 "));
}

fn respond(codec: &mut UwsgiCodec, had_head: bool) {
    let head = response_head(200, "200 OK", &[], None);
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
    let limits = limits_from_seed(*limit_seed, 16, 2);
    let unix = split_seed & 2 != 0;
    let whole = run(&[input], limits, unix);
    let pieces = seeded_pieces(input, *split_seed);
    assert_eq!(run(&pieces, limits, unix), whole, "pieces differ from the whole input");
});
