//! Helpers shared by the integration tests: build FastCGI records, drive a
//! codec over an input fed whole, split in two at every position, and one
//! byte at a time, and check the frames, errors and control output (the
//! records the codec sends on its own) are the same every way.

#![allow(dead_code, clippy::unwrap_used)]

use rwsgi_fastcgi::{FastCgiCodec, FastCgiHead, ManagementValues};
use rwsgi_proto::{ConnInfo, Environ, Limits, OutBuf, ResponseHead, ServerCodec};
use rwsgi_testkit::{
    assert_same_at_every_split, environ_of, expect_error_last, expect_head, one_byte_at_a_time,
    response_head,
};

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const STDERR: u8 = 7;
pub const DATA: u8 = 8;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

pub const RESPONDER: u16 = 1;
pub const KEEP_CONN: u8 = 1;

pub const REQUEST_COMPLETE: u8 = 0;
pub const CANT_MPX_CONN: u8 = 1;
pub const UNKNOWN_ROLE: u8 = 3;

// Not every test file uses each.
#[allow(unused_imports)]
pub use rwsgi_testkit::fastcgi::{begin, nv_len, params_with, record, request, stream};

/// A name-value block from pairs, with the shortest lengths.
pub fn params(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
    params_with(pairs, false)
}

/// A small deterministic random generator (xorshift).
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A whole stream of `kind` for `id`, cut into records of random sizes
/// (empty records only at the end) with random padding 0..=255.
pub fn random_stream(kind: u8, id: u16, content: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = content;
    while !rest.is_empty() {
        let n = (1 + rng.below(rest.len().min(40))).min(rest.len());
        let (piece, tail) = rest.split_at(n);
        out.extend(record(kind, id, piece, rng.below(256) as u8));
        rest = tail;
    }
    out.extend(record(kind, id, b"", rng.below(256) as u8));
    out
}

/// The params Debian's `/etc/nginx/fastcgi_params` makes nginx send for
/// `method uri` (`server_name example.com`, port 80), then the client's
/// own headers. `CONTENT_TYPE`/`CONTENT_LENGTH` are empty without a body;
/// `SCRIPT_NAME` is `$fastcgi_script_name`, the path; no `PATH_INFO`.
pub fn nginx_params<'a>(
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
        (b"SCRIPT_NAME", path),
        (b"REQUEST_URI", uri),
        (b"DOCUMENT_URI", path),
        (b"DOCUMENT_ROOT", b"/usr/share/nginx/html"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"REQUEST_SCHEME", b"http"),
        (b"GATEWAY_INTERFACE", b"CGI/1.1"),
        (b"SERVER_SOFTWARE", b"nginx/1.22.1"),
        (b"REMOTE_ADDR", b"203.0.113.9"),
        (b"REMOTE_PORT", b"40312"),
        (b"REMOTE_USER", b""),
        (b"SERVER_ADDR", b"10.0.0.1"),
        (b"SERVER_PORT", b"80"),
        (b"SERVER_NAME", b"example.com"),
        (b"REDIRECT_STATUS", b"200"),
        (b"HTTP_HOST", b"example.com"),
        (b"HTTP_USER_AGENT", b"curl/8.5.0"),
        (b"HTTP_ACCEPT", b"*/*"),
    ]
}

/// A GET with `REQUEST_METHOD` plus `extra` params, id 1, no KEEP_CONN.
pub fn get_with(extra: &[(&[u8], &[u8])]) -> Vec<u8> {
    let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
    pairs.extend_from_slice(extra);
    request(1, 0, &pairs, b"")
}

/// One observable result of decoding a FastCGI connection.
pub type Event = rwsgi_testkit::Event<FastCgiHead>;

/// Everything a run produced: the frames and errors in order, and the
/// control records (replies, refusals) concatenated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub events: Vec<Event>,
    pub control: Vec<u8>,
}

pub fn limits() -> Limits {
    Limits { max_head: 4096, max_headers: 100, max_body: None }
}

pub const VALUES: ManagementValues = ManagementValues { max_conns: 10, max_reqs: 250 };

pub fn codec(limits: Limits) -> FastCgiCodec {
    FastCgiCodec::new(limits, VALUES)
}

fn take(codec: &mut FastCgiCodec, control: &mut Vec<u8>) {
    let mut out = OutBuf::new();
    codec.take_control(&mut out);
    control.extend_from_slice(&out.take_contiguous());
}

/// Feeds `pieces` in turn to `codec`, decoding all it can after each (and
/// collecting its control output after every decode, as the core does);
/// then EOF when `eof`. After an error, the codec must stay silent: no
/// frame and no answer, even to a request or a management record.
pub fn drive(codec: &mut FastCgiCodec, pieces: &[&[u8]], eof: bool) -> Outcome {
    let mut control = Vec::new();
    let mut probe = get_with(&[]);
    probe.extend(record(GET_VALUES, 0, &params(&[]), 0));
    let events =
        rwsgi_testkit::drive(codec, pieces, eof, Some(&probe), |codec| take(codec, &mut control));
    if matches!(events.last(), Some(Event::Error(..))) {
        let mut out = OutBuf::new();
        codec.take_control(&mut out);
        assert!(out.is_empty(), "poisoned codec answered");
    }
    Outcome { events, control }
}

pub fn run_pieces_with(pieces: &[&[u8]], limits: Limits, eof: bool) -> Outcome {
    drive(&mut codec(limits), pieces, eof)
}

/// Decodes `input` whole, split in two at every byte, and one byte at a
/// time (ending with EOF when `eof`); asserts every way gives the same
/// outcome and returns it.
pub fn check_full(input: &[u8], limits: Limits, eof: bool) -> Outcome {
    assert_same_at_every_split(input, |pieces| run_pieces_with(pieces, limits, eof))
}

/// [`check_full`] for inputs too long to split at every byte: whole, in
/// random pieces, and byte by byte.
pub fn check_long(input: &[u8], limits: Limits, eof: bool) -> Outcome {
    let whole = run_pieces_with(&[input], limits, eof);
    let mut rng = Rng(0x2545_f491_4f6c_dd1d ^ input.len() as u64);
    for _ in 0..8 {
        let mut pieces = Vec::new();
        let mut rest = input;
        while !rest.is_empty() {
            let n = (1 + rng.below(3000)).min(rest.len());
            pieces.push(&rest[..n]);
            rest = &rest[n..];
        }
        assert_eq!(run_pieces_with(&pieces, limits, eof), whole, "random pieces");
    }
    assert_eq!(run_pieces_with(&one_byte_at_a_time(input), limits, eof), whole, "byte by byte");
    whole
}

pub fn check_eof(input: &[u8], limits: Limits, eof: bool) -> Vec<Event> {
    let outcome = check_full(input, limits, eof);
    assert!(outcome.control.is_empty(), "unexpected control output: {:?}", outcome.control);
    outcome.events
}

pub fn check_with(input: &[u8], limits: Limits) -> Vec<Event> {
    check_eof(input, limits, true)
}

/// The events of `input` (checked every way), which must produce no
/// control output.
pub fn check(input: &[u8]) -> Vec<Event> {
    check_with(input, limits())
}

/// The head of `input`, which must decode without an error status.
pub fn head_of(input: &[u8]) -> FastCgiHead {
    expect_head(check(input), input)
}

/// The last event of `input` must be an error with `status` and a
/// message containing `message`; returns the events before it.
pub fn assert_rejected_with(
    input: &[u8],
    limits: Limits,
    status: u16,
    message: &str,
) -> Vec<Event> {
    expect_error_last(check_with(input, limits), status, message, input)
}

pub fn assert_rejected(input: &[u8], status: u16, message: &str) -> Vec<Event> {
    assert_rejected_with(input, limits(), status, message)
}

/// A parsed record of the codec's output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rec {
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// Splits the codec's output into records, checking each: version 1,
/// padding to a multiple of 8 made of zeros, nothing left over.
pub fn records(wire: &[u8]) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        assert!(rest.len() >= 8, "a partial record header: {rest:?}");
        assert_eq!(rest[0], 1, "version");
        assert_eq!(rest[7], 0, "reserved");
        let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        let pad = usize::from(rest[6]);
        assert_eq!((len + pad) % 8, 0, "record not padded to 8");
        assert!(pad < 8, "more padding than needed");
        assert!(rest.len() >= 8 + len + pad, "a partial record");
        assert!(rest[8 + len..8 + len + pad].iter().all(|&b| b == 0), "padding not zeros");
        out.push(Rec {
            kind: rest[1],
            id: u16::from_be_bytes([rest[2], rest[3]]),
            content: rest[8..8 + len].to_vec(),
        });
        rest = &rest[8 + len + pad..];
    }
    out
}

/// The content of an END_REQUEST: (appStatus, protocolStatus).
pub fn end_request_body(rec: &Rec) -> (u32, u8) {
    assert_eq!(rec.kind, END_REQUEST);
    assert_eq!(rec.content.len(), 8);
    assert_eq!(&rec.content[5..], &[0, 0, 0]);
    let c = &rec.content;
    (u32::from_be_bytes([c[0], c[1], c[2], c[3]]), c[4])
}

/// The name-value pairs of a record's content.
pub fn pairs_of(content: &[u8]) -> Vec<(Vec<u8>, Vec<u8>)> {
    fn len(c: &[u8], pos: &mut usize) -> usize {
        if c[*pos] < 0x80 {
            *pos += 1;
            usize::from(c[*pos - 1])
        } else {
            let n = u32::from_be_bytes([c[*pos] & 0x7f, c[*pos + 1], c[*pos + 2], c[*pos + 3]]);
            *pos += 4;
            n as usize
        }
    }
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < content.len() {
        let n = len(content, &mut pos);
        let v = len(content, &mut pos);
        out.push((content[pos..pos + n].to_vec(), content[pos + n..pos + n + v].to_vec()));
        pos += n + v;
    }
    out
}

/// A response head with `headers` and no declared length.
pub fn response(
    status_line: &'static str,
    headers: &[(&'static str, &'static str)],
) -> ResponseHead {
    response_head(status_line[..3].parse().unwrap(), status_line, headers, None)
}

/// A codec that has decoded `input` up to and including the body's end
/// (or an abort), as the core leaves it while the app runs.
pub fn served(input: &[u8]) -> FastCgiCodec {
    let mut codec = codec(limits());
    let outcome = drive(&mut codec, &[input], false);
    assert!(
        matches!(outcome.events.last(), Some(Event::End | Event::Abort)),
        "{:?}",
        outcome.events
    );
    codec
}

pub fn tcp_conn() -> ConnInfo {
    rwsgi_testkit::tcp_conn(9000)
}

pub fn environ_with(input: &[u8], conn: &ConnInfo) -> Environ {
    environ_of(&head_of(input), conn)
}

pub fn environ(input: &[u8]) -> Environ {
    environ_with(input, &tcp_conn())
}
