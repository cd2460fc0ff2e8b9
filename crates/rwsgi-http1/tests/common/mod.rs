//! Helpers shared by the integration tests: drive a codec over an input
//! fed whole, split in two at every position, and one byte at a time, and
//! check the frames and errors are the same.

#![allow(dead_code, clippy::unwrap_used)]

use bytes::BytesMut;
use rwsgi_http1::{Http1Codec, Http1Head};
use rwsgi_proto::{ConnInfo, Environ, Frame, Limits, ProtoError, RequestHead, SocketAddress};
use tokio_util::codec::Decoder;

/// One observable result of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Head(Box<Http1Head>),
    /// Body bytes; adjacent pieces are merged (their boundaries depend on
    /// the input split).
    Data(Vec<u8>),
    End,
    /// A decode error: its status and message.
    Error(Option<u16>, String),
}

impl Event {
    pub fn status(&self) -> Option<u16> {
        match self {
            Event::Error(status, _) => *status,
            _ => None,
        }
    }
}

pub fn limits() -> Limits {
    Limits { max_head: 8192, max_headers: 100, max_body: None }
}

fn push(events: &mut Vec<Event>, frame: Frame<Http1Head>) {
    match frame {
        Frame::Head(head) => events.push(Event::Head(Box::new(head))),
        Frame::Data(data) => {
            assert!(!data.is_empty(), "empty Data frame");
            if let Some(Event::Data(prev)) = events.last_mut() {
                prev.extend_from_slice(&data);
            } else {
                events.push(Event::Data(data.to_vec()));
            }
        }
        Frame::End => events.push(Event::End),
        Frame::Abort => panic!("HTTP has no abort"),
    }
}

fn error(events: &mut Vec<Event>, err: &ProtoError) {
    events.push(Event::Error(err.status(), err.to_string()));
}

/// Feeds `pieces` in turn, decoding all it can after each, then EOF.
pub fn run_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Event> {
    let mut codec = Http1Codec::new(limits);
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(frame)) => push(&mut events, frame),
                Ok(None) => break,
                Err(err) => {
                    error(&mut events, &err);
                    return events;
                }
            }
        }
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => push(&mut events, frame),
            Ok(None) => return events,
            Err(err) => {
                error(&mut events, &err);
                return events;
            }
        }
    }
}

/// Decodes `input` whole, split in two at every byte, and one byte at a
/// time; asserts every way gives the same events and returns them.
pub fn check_with(input: &[u8], limits: Limits) -> Vec<Event> {
    let whole = run_pieces(&[input], limits);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        let split = run_pieces(&[a, b], limits);
        assert_eq!(split, whole, "split at {i} of {:?}", String::from_utf8_lossy(input));
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        run_pieces(&bytes, limits),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(input)
    );
    whole
}

pub fn check(input: &[u8]) -> Vec<Event> {
    check_with(input, limits())
}

/// The first head of `input`, which must decode without an error status
/// (an EOF inside a body that was left out is fine).
pub fn head_of(input: &[u8]) -> Http1Head {
    let events = check(input);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Error(Some(_), _))),
        "unexpected error in {events:?} for {:?}",
        String::from_utf8_lossy(input)
    );
    match events.into_iter().next() {
        Some(Event::Head(head)) => *head,
        other => panic!("no head: {other:?}"),
    }
}

/// The first event of `input` must be an error with `status`.
pub fn assert_rejected(input: &[u8], status: u16) {
    let events = check(input);
    match events.first() {
        Some(Event::Error(Some(s), _)) if *s == status => {}
        other => panic!("{:?}: expected {status}, got {other:?}", String::from_utf8_lossy(input)),
    }
    assert_eq!(events.len(), 1);
}

/// The head is accepted, then the body fails with `status`.
pub fn assert_body_rejected(input: &[u8], status: u16) {
    let events = check(input);
    assert!(matches!(events.first(), Some(Event::Head(_))), "{events:?}");
    match events.last() {
        Some(Event::Error(Some(s), _)) if *s == status => {}
        other => panic!("{:?}: expected {status}, got {other:?}", String::from_utf8_lossy(input)),
    }
}

pub fn tcp_conn() -> ConnInfo {
    ConnInfo {
        peer: SocketAddress::Tcp("192.0.2.7:51234".parse().unwrap()),
        local: SocketAddress::Tcp("10.0.0.1:8080".parse().unwrap()),
    }
}

pub fn environ_with(input: &[u8], conn: &ConnInfo) -> Environ {
    let head = head_of(input);
    let mut env = Environ::default();
    head.write_environ(conn, &mut env);
    env
}

pub fn environ(input: &[u8]) -> Environ {
    environ_with(input, &tcp_conn())
}

/// The value of `key`, as a byte vector, if set.
pub fn var(env: &Environ, key: &str) -> Option<Vec<u8>> {
    env.get(key).map(|v| v.to_vec())
}
