//! Helpers shared by the integration tests: build uwsgi packets, drive a
//! codec over an input fed whole, split in two at every position, and one
//! byte at a time, and check the frames and errors are the same.

#![allow(dead_code, clippy::unwrap_used)]

use bytes::BytesMut;
use rwsgi_proto::{ConnInfo, Environ, Frame, Limits, ProtoError, RequestHead, SocketAddress};
use rwsgi_uwsgi::{UwsgiCodec, UwsgiHead};
use tokio_util::codec::Decoder;

/// The 4-byte packet header for a vars block of `datasize` bytes.
pub fn header(modifier1: u8, datasize: u16, modifier2: u8) -> [u8; 4] {
    let [lo, hi] = datasize.to_le_bytes();
    [modifier1, lo, hi, modifier2]
}

/// A vars block from `(key, value)` pairs.
pub fn vars_block(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, value) in vars {
        out.extend_from_slice(&u16::try_from(key.len()).unwrap().to_le_bytes());
        out.extend_from_slice(key);
        out.extend_from_slice(&u16::try_from(value.len()).unwrap().to_le_bytes());
        out.extend_from_slice(value);
    }
    out
}

/// A whole request packet (modifier1 0): header, vars, `body`.
pub fn packet(vars: &[(&[u8], &[u8])], body: &[u8]) -> Vec<u8> {
    let block = vars_block(vars);
    let mut out = header(0, u16::try_from(block.len()).unwrap(), 0).to_vec();
    out.extend_from_slice(&block);
    out.extend_from_slice(body);
    out
}

/// A packet with a raw vars block (which may lie about itself).
pub fn raw_packet(block: &[u8], body: &[u8]) -> Vec<u8> {
    let mut out = header(0, u16::try_from(block.len()).unwrap(), 0).to_vec();
    out.extend_from_slice(block);
    out.extend_from_slice(body);
    out
}

/// The vars Debian's `/etc/nginx/uwsgi_params` makes nginx send for
/// `method target` on a TCP listener (`server_name example.com`, port
/// 80), before the client's own headers: `CONTENT_TYPE`/`CONTENT_LENGTH`
/// are empty when the request has no body, `HTTPS` only under TLS.
pub fn nginx_vars<'a>(
    method: &'a [u8],
    uri: &'a [u8],
    path: &'a [u8],
    query: &'a [u8],
    content_type: &'a [u8],
    content_length: &'a [u8],
) -> Vec<(&'a [u8], &'a [u8])> {
    vec![
        (b"QUERY_STRING", query),
        (b"REQUEST_METHOD", method),
        (b"CONTENT_TYPE", content_type),
        (b"CONTENT_LENGTH", content_length),
        (b"REQUEST_URI", uri),
        (b"PATH_INFO", path),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"REMOTE_ADDR", b"203.0.113.9"),
        (b"REMOTE_PORT", b"40312"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"HTTP_HOST", b"example.com"),
        (b"HTTP_USER_AGENT", b"curl/8.5.0"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
}

/// A minimal valid packet: `REQUEST_METHOD` plus `extra` vars.
pub fn get_with(extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut vars: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
    vars.extend_from_slice(extra);
    packet(&vars, b"")
}

/// One observable result of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Head(Box<UwsgiHead>),
    /// Body bytes; adjacent pieces are merged (their boundaries depend on
    /// the input split).
    Data(Vec<u8>),
    End,
    /// A decode error: its status and message.
    Error(Option<u16>, String),
}

pub fn limits() -> Limits {
    Limits { max_head: 4096, max_headers: 100, max_body: None }
}

fn push(events: &mut Vec<Event>, frame: Frame<UwsgiHead>) {
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
        Frame::Abort => panic!("a uwsgi request cannot be aborted"),
    }
}

fn error(events: &mut Vec<Event>, err: &ProtoError) {
    events.push(Event::Error(err.status(), err.to_string()));
}

/// Feeds `pieces` in turn, decoding all it can after each; then EOF when
/// `eof`. After an error, the codec must stay silent.
pub fn run_pieces_with(pieces: &[&[u8]], limits: Limits, eof: bool) -> Vec<Event> {
    let mut codec = UwsgiCodec::new(limits);
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
                    buf.extend_from_slice(&packet(&[(b"REQUEST_METHOD", b"GET")], b""));
                    assert!(matches!(codec.decode(&mut buf), Ok(None)), "poisoned codec decoded");
                    assert!(matches!(codec.decode_eof(&mut buf), Ok(None)), "poisoned at EOF");
                    return events;
                }
            }
        }
    }
    if !eof {
        return events;
    }
    loop {
        match codec.decode_eof(&mut buf) {
            Ok(Some(frame)) => push(&mut events, frame),
            Ok(None) => break,
            Err(err) => {
                error(&mut events, &err);
                break;
            }
        }
    }
    events
}

pub fn run_pieces(pieces: &[&[u8]], limits: Limits) -> Vec<Event> {
    run_pieces_with(pieces, limits, true)
}

/// Decodes `input` whole, split in two at every byte, and one byte at a
/// time (ending with EOF when `eof`); asserts every way gives the same
/// events and returns them.
pub fn check_eof(input: &[u8], limits: Limits, eof: bool) -> Vec<Event> {
    let whole = run_pieces_with(&[input], limits, eof);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        let split = run_pieces_with(&[a, b], limits, eof);
        assert_eq!(split, whole, "split at {i} of {input:?}");
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(run_pieces_with(&bytes, limits, eof), whole, "byte by byte: {input:?}");
    whole
}

pub fn check_with(input: &[u8], limits: Limits) -> Vec<Event> {
    check_eof(input, limits, true)
}

pub fn check(input: &[u8]) -> Vec<Event> {
    check_with(input, limits())
}

/// The head of `input`, which must decode without an error status (an
/// EOF inside a body that was left out is fine).
pub fn head_of(input: &[u8]) -> UwsgiHead {
    let events = check(input);
    assert!(
        !events.iter().any(|e| matches!(e, Event::Error(Some(_), _))),
        "unexpected error in {events:?} for {input:?}"
    );
    match events.into_iter().next() {
        Some(Event::Head(head)) => *head,
        other => panic!("no head: {other:?}"),
    }
}

/// The only event of `input` must be an error with `status` and a
/// message containing `message`.
pub fn assert_rejected_with(input: &[u8], limits: Limits, status: u16, message: &str) {
    let events = check_with(input, limits);
    match &events[..] {
        [Event::Error(Some(s), text)] if *s == status && text.contains(message) => {}
        other => panic!("{input:?}: expected {status} {message:?}, got {other:?}"),
    }
}

pub fn assert_rejected(input: &[u8], status: u16, message: &str) {
    assert_rejected_with(input, limits(), status, message);
}

pub fn tcp_conn() -> ConnInfo {
    ConnInfo {
        peer: SocketAddress::Tcp("192.0.2.7:51234".parse().unwrap()),
        local: SocketAddress::Tcp("10.0.0.1:3031".parse().unwrap()),
    }
}

pub fn unix_conn() -> ConnInfo {
    ConnInfo { peer: SocketAddress::Unix(None), local: SocketAddress::Unix(None) }
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

/// Every key of `env`, in order.
pub fn keys(env: &Environ) -> Vec<String> {
    env.vars.iter().map(|(k, _)| String::from_utf8_lossy(k.as_bytes()).into_owned()).collect()
}

/// Asserts no key appears twice (the environ is a dict; a codec that
/// relies on "the last one wins" is hiding something).
pub fn assert_unique_keys(env: &Environ) {
    let all = keys(env);
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), all.len(), "duplicate keys: {all:?}");
}
