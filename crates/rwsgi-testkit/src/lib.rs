//! Dev-only test kit: the protocol-neutral scaffolding that the codec
//! crates' integration tests (a `[dev-dependencies]` entry) and the fuzz
//! targets (`fuzz/`, a path dependency) would otherwise each write again.
//!
//! A decoder's output must not depend on how its input is cut into reads,
//! so the heart of it is a driver that decodes an input fed in pieces into
//! comparable [`Event`]s, and checks that feeding it whole, split in two at
//! every position and one byte at a time all give the same events. Around
//! it: environ lookups and connection fixtures, response heads for the
//! encoders, and the fuzz targets' seeded cutting and environ invariants.
//!
//! Each protocol's own builders (HTTP requests, uwsgi packets) stay in
//! that crate's `tests/common`, except FastCGI's records ([`fastcgi`])
//! and HTTP chunks ([`chunked`]), which the core's tests write too. Never published, and it depends on
//! no codec crate, so every codec can use it.

#![allow(clippy::unwrap_used)]

pub mod fastcgi;

use std::fmt::Debug;

use bytes::{Bytes, BytesMut};
use rwsgi_proto::{
    ConnInfo, Environ, Frame, Limits, ProtoError, RequestHead, ResponseHead, ServerCodec,
    SocketAddress,
};
use tokio_util::codec::Decoder;

/// One observable result of decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<H> {
    Head(Box<H>),
    /// Body bytes; adjacent pieces are merged (their boundaries depend on
    /// the input split).
    Data(Vec<u8>),
    End,
    /// Only FastCGI has it; the other protocols refuse it with
    /// [`assert_no_abort`].
    Abort,
    /// A decode error: its status and message.
    Error(Option<u16>, String),
}

impl<H> Event<H> {
    /// The status of an error, `None` for anything else.
    pub fn status(&self) -> Option<u16> {
        match self {
            Event::Error(status, _) => *status,
            _ => None,
        }
    }
}

/// Appends `frame` to `events`, merging body bytes into the previous
/// `Data`; a codec must never yield an empty `Data` frame.
pub fn push_frame<H>(events: &mut Vec<Event<H>>, frame: Frame<H>) {
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
        Frame::Abort => events.push(Event::Abort),
    }
}

/// Appends a decode error: what the core would answer and log.
pub fn push_error<H>(events: &mut Vec<Event<H>>, err: &ProtoError) {
    events.push(Event::Error(err.status(), err.to_string()));
}

/// Panics if `events` has an `Abort`: `protocol` has no way to send one.
pub fn assert_no_abort<H: Debug>(events: &[Event<H>], protocol: &str) {
    assert!(
        !events.iter().any(|e| matches!(e, Event::Abort)),
        "{protocol} has no abort: {events:?}"
    );
}

/// Feeds `pieces` to `codec` in turn, decoding all it can after each and
/// calling `after_decode` after every decode (FastCGI collects its control
/// output there, as the core does); then decodes to EOF when `eof`. Stops
/// at the first error. With a `poison_probe`, that input is appended after
/// the error and the codec must still yield nothing: a failed connection
/// must not go on to serve a request.
pub fn drive<C, H>(
    codec: &mut C,
    pieces: &[&[u8]],
    eof: bool,
    poison_probe: Option<&[u8]>,
    mut after_decode: impl FnMut(&mut C),
) -> Vec<Event<H>>
where
    C: Decoder<Item = Frame<H>, Error = ProtoError>,
{
    let mut buf = BytesMut::new();
    let mut events = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        if !decode_available(codec, &mut buf, false, &mut events, &mut after_decode) {
            if let Some(probe) = poison_probe {
                buf.extend_from_slice(probe);
                assert!(matches!(codec.decode(&mut buf), Ok(None)), "poisoned codec decoded");
                assert!(matches!(codec.decode_eof(&mut buf), Ok(None)), "poisoned at EOF");
            }
            return events;
        }
    }
    if eof {
        decode_available(codec, &mut buf, true, &mut events, &mut after_decode);
    }
    events
}

/// Decodes every frame `buf` holds (with `decode_eof` when `at_eof`) into
/// `events`; false once an error is pushed.
fn decode_available<C, H>(
    codec: &mut C,
    buf: &mut BytesMut,
    at_eof: bool,
    events: &mut Vec<Event<H>>,
    after_decode: &mut impl FnMut(&mut C),
) -> bool
where
    C: Decoder<Item = Frame<H>, Error = ProtoError>,
{
    loop {
        let result = if at_eof { codec.decode_eof(buf) } else { codec.decode(buf) };
        after_decode(codec);
        match result {
            Ok(Some(frame)) => push_frame(events, frame),
            Ok(None) => return true,
            Err(err) => {
                push_error(events, &err);
                return false;
            }
        }
    }
}

/// `input` as one-byte pieces: the most reads a decoder can be given.
pub fn one_byte_at_a_time(input: &[u8]) -> Vec<&[u8]> {
    input.chunks(1).collect()
}

/// Runs `run` over `input` fed whole, split in two at every byte, and one
/// byte at a time; asserts every way gives the same result and returns it.
pub fn assert_same_at_every_split<T, F>(input: &[u8], run: F) -> T
where
    T: PartialEq + Debug,
    F: Fn(&[&[u8]]) -> T,
{
    let whole = run(&[input]);
    for i in 0..=input.len() {
        let (a, b) = input.split_at(i);
        assert_eq!(run(&[a, b]), whole, "split at {i} of {:?}", String::from_utf8_lossy(input));
    }
    assert_eq!(
        run(&one_byte_at_a_time(input)),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(input)
    );
    whole
}

/// The head that `events` (decoded from `input`) start with; no event may
/// be an error with a status (an EOF inside a body that a test left out,
/// an error without one, is fine).
pub fn expect_head<H: Debug>(events: Vec<Event<H>>, input: &[u8]) -> H {
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

/// The first head among `events`.
pub fn first_head<H: Debug>(events: &[Event<H>]) -> &H {
    match events.iter().find(|e| matches!(e, Event::Head(_))) {
        Some(Event::Head(head)) => head,
        _ => panic!("no head in {events:?}"),
    }
}

/// The last of `events` (decoded from `input`) must be an error with
/// `status` and a message containing `message`; returns the events before
/// it.
pub fn expect_error_last<H: Debug>(
    mut events: Vec<Event<H>>,
    status: u16,
    message: &str,
    input: &[u8],
) -> Vec<Event<H>> {
    match events.pop() {
        Some(Event::Error(Some(s), text)) if s == status && text.contains(message) => events,
        other => panic!(
            "{:?}: expected {status} {message:?}, got {other:?} after {events:?}",
            String::from_utf8_lossy(input)
        ),
    }
}

/// A TCP connection from a documentation address to a listener on
/// `10.0.0.1:local_port` (each protocol's usual port).
pub fn tcp_conn(local_port: u16) -> ConnInfo {
    ConnInfo::new(
        SocketAddress::Tcp("192.0.2.7:51234".parse().unwrap()),
        SocketAddress::Tcp(std::net::SocketAddr::from(([10, 0, 0, 1], local_port))),
    )
}

/// A connection on an unnamed unix socket, as nginx's are.
pub fn unix_conn() -> ConnInfo {
    ConnInfo::new(SocketAddress::Unix(None), SocketAddress::Unix(None))
}

/// The environ `head` writes for a request on `conn`.
pub fn environ_of<H: RequestHead>(head: &H, conn: &ConnInfo) -> Environ {
    let mut env = Environ::default();
    head.write_environ(conn, &mut env);
    env
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

/// A fixed `Date`, so encoded responses compare byte for byte.
pub const DATE: &[u8] = b"Sun, 06 Nov 1994 08:49:37 GMT";

/// A response head as an app's `start_response` would give it.
pub fn response_head(
    status: u16,
    status_line: &'static str,
    headers: &[(&'static str, &'static str)],
    content_length: Option<u64>,
) -> ResponseHead {
    ResponseHead {
        status,
        status_line: Bytes::from_static(status_line.as_bytes()),
        headers: headers
            .iter()
            .map(|(n, v)| (Bytes::from_static(n.as_bytes()), Bytes::from_static(v.as_bytes())))
            .collect(),
        content_length,
    }
}

/// `codec` once it has decoded `request` through the body's end, ready to
/// encode the response; any error or a missing end panics.
pub fn decoded_through_end<C, H>(mut codec: C, request: &[u8]) -> C
where
    C: Decoder<Item = Frame<H>, Error = ProtoError>,
    H: Debug,
{
    let mut buf = BytesMut::from(request);
    loop {
        match codec.decode(&mut buf) {
            Ok(Some(Frame::End)) => return codec,
            Ok(Some(_)) => {}
            other => panic!("{other:?}"),
        }
    }
}

/// `request` is a head declaring a body of `declared` bytes followed by
/// part of it, sent unframed: as `codec` decodes the body,
/// [`ServerCodec::body_in_place`] counts down what is still to come, with
/// no framing after it, and says `None` once it is all decoded (as before
/// the head). Bytes the core takes off the wire itself
/// ([`ServerCodec::body_taken`]) count as decoded: once the rest is taken
/// so, the body ends without another byte.
pub fn assert_unframed_body_counts_down<C: ServerCodec>(
    codec: impl Fn() -> C,
    request: &[u8],
    declared: u64,
) {
    let in_place = |body| Some(rwsgi_proto::InPlace { body, framing: 0 });
    // Decodes the head and the body piece that came with it.
    let started = || {
        let mut codec = codec();
        assert_eq!(codec.body_in_place(), None, "before the head");
        let mut buf = BytesMut::from(request);
        assert!(matches!(codec.decode(&mut buf), Ok(Some(Frame::Head(_)))));
        assert_eq!(codec.body_in_place(), in_place(declared));
        let Ok(Some(Frame::Data(first))) = codec.decode(&mut buf) else { panic!("no body piece") };
        let rest = declared - first.len() as u64;
        assert!(rest > 1, "the request must hold part of the body only");
        assert_eq!(codec.body_in_place(), in_place(rest));
        (codec, buf, rest)
    };

    let (mut codec, mut buf, rest) = started();
    buf.extend(std::iter::repeat_n(b'x', rest as usize));
    let Ok(Some(Frame::Data(last))) = codec.decode(&mut buf) else { panic!("no body piece") };
    assert_eq!(last.len() as u64, rest);
    assert_eq!(codec.body_in_place(), None, "the body is all decoded");

    let (mut codec, _, rest) = started();
    codec.body_taken(rest - 1);
    assert_eq!(codec.body_in_place(), in_place(1));
    codec.body_taken(1);
    assert_eq!(codec.body_in_place(), None, "the body is all taken");
    assert!(matches!(codec.decode(&mut BytesMut::new()), Ok(Some(Frame::End))));
}

/// Fuzzing limits from a seed byte, small so the fuzzer reaches them too:
/// a head of `min_head` plus up to 63 × 16 bytes, `few_headers` headers
/// when bit 6 is set, a 32-byte body when bit 7 is.
pub fn limits_from_seed(seed: u8, min_head: usize, few_headers: usize) -> Limits {
    Limits {
        max_head: min_head + usize::from(seed & 0x3f) * 16,
        max_headers: if seed & 0x40 != 0 { few_headers } else { 100 },
        max_body: if seed & 0x80 != 0 { Some(32) } else { None },
    }
}

/// `input` cut at points drawn from `split_seed` (a xorshift stream):
/// pieces of 1..=16 bytes when the seed is odd, up to 256 otherwise, so a
/// fuzz input chooses its own reads.
pub fn seeded_pieces(input: &[u8], split_seed: u8) -> Vec<&[u8]> {
    let mut state = u32::from(split_seed) | 0x9e37_0000;
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
    pieces
}

/// The variables PEP 3333 requires to be present and non-empty.
pub fn assert_required_vars(env: &Environ) {
    for name in ["REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"] {
        assert!(env.get(name).is_some_and(|v| !v.is_empty()), "{name} missing or empty");
    }
}

/// `env` must be a dict PEP 3333 accepts, built from a proxy's CGI
/// variables: the required ones, none of the keys the codecs promise to
/// drop (server-only `wsgi.`/`uwsgi.` keys, `HTTP_CONTENT_*` copies), no
/// key twice. Returns the number of keys.
pub fn assert_pep3333_environ(env: &Environ) -> usize {
    assert_required_vars(env);
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
    n
}

/// Uninitialised memory on the heap, in parts (at least one).
struct HeapParts(Vec<Box<[std::mem::MaybeUninit<u8>]>>);

// SAFETY: the same boxed slices every time, owned by the value, apart.
unsafe impl rwsgi_proto::BodyMemory for HeapParts {
    fn parts(&self) -> usize {
        self.0.len()
    }

    fn part(&mut self, index: usize) -> &mut [std::mem::MaybeUninit<u8>] {
        &mut self.0[index]
    }
}

/// A chunked encoding of `pieces` (no trailers): HTTP bodies the core's
/// tests and the integration tests send.
pub fn chunked(pieces: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces {
        if piece.is_empty() {
            continue;
        }
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Memory for a body of `size` bytes, as a responder lends it
/// ([`rwsgi_proto::Responder::lend_body`]).
pub fn lent_heap(size: usize) -> rwsgi_proto::LentBody {
    lent_heap_in_parts(size, size)
}

/// Memory for a body of `size` bytes in parts of `part` bytes (the last
/// one shorter), as the Python bridge lends a body its app reads in parts.
pub fn lent_heap_in_parts(size: usize, part: usize) -> rwsgi_proto::LentBody {
    let starts = (0..size.max(1)).step_by(part.max(1));
    let parts = starts.map(|at| Box::new_uninit_slice(part.min(size - at))).collect();
    rwsgi_proto::LentBody::new(Box::new(HeapParts(parts)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields whatever is buffered as one `Data` frame, then `End` at EOF:
    /// its frames depend on the reads, its merged events must not.
    #[derive(Default)]
    struct Echo {
        ended: bool,
    }

    impl Decoder for Echo {
        type Item = Frame<usize>;
        type Error = ProtoError;

        fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<usize>>, ProtoError> {
            Ok((!buf.is_empty()).then(|| Frame::Data(buf.split().freeze())))
        }

        fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<usize>>, ProtoError> {
            match self.decode(buf)? {
                Some(frame) => Ok(Some(frame)),
                None if self.ended => Ok(None),
                None => {
                    self.ended = true;
                    Ok(Some(Frame::End))
                }
            }
        }
    }

    /// Yields the size of its first read as a head: a decoder whose output
    /// depends on the split, which the harness must catch.
    #[derive(Default)]
    struct FirstReadSize {
        done: bool,
    }

    impl Decoder for FirstReadSize {
        type Item = Frame<usize>;
        type Error = ProtoError;

        fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<usize>>, ProtoError> {
            if self.done || buf.is_empty() {
                return Ok(None);
            }
            self.done = true;
            Ok(Some(Frame::Head(buf.split().len())))
        }
    }

    #[test]
    fn data_is_merged_whatever_the_reads() {
        let events = assert_same_at_every_split(b"hello", |pieces| {
            drive(&mut Echo::default(), pieces, true, None, |_| {})
        });
        assert_eq!(events, vec![Event::Data(b"hello".to_vec()), Event::End]);
    }

    #[test]
    #[should_panic(expected = "split at")]
    fn a_split_dependent_decoder_is_caught() {
        assert_same_at_every_split(b"abc", |pieces| {
            drive(&mut FirstReadSize::default(), pieces, true, None, |_| {})
        });
    }

    #[test]
    fn seeded_pieces_cover_the_input_in_bounded_pieces() {
        let input: Vec<u8> = (0..=255).cycle().take(5000).collect();
        for seed in [0, 1, 2, 255] {
            let pieces = seeded_pieces(&input, seed);
            let max = if seed & 1 == 1 { 16 } else { 256 };
            assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= max));
            assert_eq!(pieces.concat(), input);
        }
    }
}
