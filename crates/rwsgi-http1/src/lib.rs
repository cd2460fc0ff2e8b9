//! Sans-IO HTTP/1.1 server codec for rwsgi (`http-socket`).
//!
//! httparse parses request heads quickly but leaves framing (Content-Length
//! against Transfer-Encoding, chunked bodies), hygiene (bare LF, repeated
//! fields, Host) and the CGI conversion to its user; that is exactly where
//! other Rust WSGI servers went wrong (request smuggling, desync on
//! pipelining, panics on odd bytes). [`Http1Codec`] does all of it strictly
//! and without I/O, so the core drives it with any transport and tests and
//! fuzzers feed it arbitrary byte splits.
//!
//! Layout, after hyper's `proto::h1`: [`head`](Http1Head) parses and
//! validates request heads, `body` decodes chunked bodies, `environ` builds
//! the CGI variables and `encode` writes responses; this module is the
//! per-connection state machine tying them together.
//!
//! Everything taken from the input is zero-copy: a head is frozen out of
//! the read buffer and its values are views of it; body data frames are
//! split off the read buffer.

#![forbid(unsafe_code)]

mod body;
mod encode;
mod environ;
mod head;

use std::mem::MaybeUninit;

use bytes::{Buf, Bytes, BytesMut};
use rwsgi_proto::{
    BodyLength, Frame, InPlace, Limits, OutBuf, ProtoError, ResponseHead, ServerCodec, UnframedBody,
};
use tokio_util::codec::Decoder;

pub use head::Http1Head;

use body::{Chunked, ChunkedDecoder};
use encode::{Framing, RequestCtx};

/// Header slots kept on the stack; more only when `max_headers` asks.
const STACK_HEADERS: usize = 100;

/// Empty lines tolerated before a request line (RFC 9112 §2.2: "at least
/// one"; some clients add a CRLF after a body).
const MAX_EMPTY_LINES: u8 = 4;

/// What the next bytes of the inbound stream are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ReadState {
    /// A request head (or nothing, between requests).
    Idle,
    /// This many bytes of a Content-Length body.
    Length(UnframedBody),
    /// A chunked body.
    Chunked(ChunkedDecoder),
    /// The body is read; `End` is the next frame.
    EndPending,
    /// The last request asked to close: later bytes are never parsed.
    Closed,
    /// A decode error happened: the connection is unusable.
    Poisoned,
}

/// The HTTP/1.x server side of one connection: a [`Decoder`] of request
/// frames and a [`ServerCodec`] encoder of responses.
///
/// The core must finish a response ([`ServerCodec::encode_end`]) before it
/// decodes the next request's head: the encoder answers the last decoded
/// request (its method, version and keep-alive).
#[derive(Debug)]
pub struct Http1Codec {
    limits: Limits,
    state: ReadState,
    /// Bytes of an incomplete head already looked at (0: a new head).
    scanned: usize,
    /// Empty lines skipped before the current request line.
    empty_lines: u8,
    /// Header slots when `max_headers` exceeds [`STACK_HEADERS`], kept
    /// across requests so they are allocated once per connection.
    heap_headers: Vec<MaybeUninit<httparse::Header<'static>>>,
    request: RequestCtx,
    framing: Framing,
    response_keep_alive: bool,
}

impl Http1Codec {
    /// A codec for a new connection.
    pub fn new(limits: Limits) -> Self {
        // A header line takes at least 4 bytes (`a:\r\n`): no more slots
        // than the head limit could ever fill.
        let slots = if limits.max_headers > STACK_HEADERS {
            limits.max_headers.min(limits.max_head / 4 + 1)
        } else {
            0
        };
        Http1Codec {
            limits,
            state: ReadState::Idle,
            scanned: 0,
            empty_lines: 0,
            heap_headers: std::iter::repeat_with(MaybeUninit::uninit).take(slots).collect(),
            request: RequestCtx::default(),
            framing: Framing::NoBody,
            response_keep_alive: false,
        }
    }

    /// Whether the current request's body has been read off the wire
    /// entirely (or there was none), so the next bytes are the next
    /// request. The core drains the body before reusing the connection.
    pub fn body_finished(&self) -> bool {
        matches!(self.state, ReadState::Idle | ReadState::EndPending | ReadState::Closed)
    }

    fn decode_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<Http1Head>>, ProtoError> {
        match &mut self.state {
            ReadState::Idle => self.decode_head(buf),
            ReadState::Length(body) => {
                let Some((data, done)) = body.decode(buf) else { return Ok(None) };
                if done {
                    self.state = ReadState::EndPending;
                }
                Ok(Some(Frame::Data(data)))
            }
            ReadState::Chunked(decoder) => match decoder.decode(buf)? {
                Some(Chunked::Data(data)) => Ok(Some(Frame::Data(data))),
                Some(Chunked::Done) => Ok(Some(self.end_body())),
                None => Ok(None),
            },
            ReadState::EndPending => Ok(Some(self.end_body())),
            ReadState::Closed | ReadState::Poisoned => {
                buf.clear();
                Ok(None)
            }
        }
    }

    /// The body is complete: `End`, then the next head or nothing more.
    fn end_body(&mut self) -> Frame<Http1Head> {
        self.state = if self.request.keep_alive { ReadState::Idle } else { ReadState::Closed };
        Frame::End
    }

    fn decode_head(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<Http1Head>>, ProtoError> {
        if self.scanned == 0 {
            while buf.starts_with(b"\r\n") {
                if self.empty_lines == MAX_EMPTY_LINES {
                    return Err(ProtoError::BadRequest(
                        "too many empty lines before the request line",
                    ));
                }
                self.empty_lines += 1;
                buf.advance(2);
            }
            match (buf.first(), buf.get(1)) {
                (None, _) | (Some(b'\r'), None) => return Ok(None),
                (Some(b'\n'), _) => {
                    return Err(ProtoError::BadRequest("bare LF line ending (CRLF required)"));
                }
                (Some(b'\r'), Some(_)) => {
                    return Err(ProtoError::BadRequest("bare CR before the request line"));
                }
                _ => {}
            }
        }
        let max_head = self.limits.max_head;
        let window_len = buf.len().min(max_head);
        let at_limit = buf.len() >= max_head;
        // Re-parse only when a line may have ended: parsing is from the
        // start, and a head dribbled byte by byte must not cost O(n²).
        let fresh = buf.get(self.scanned.min(window_len)..window_len).unwrap_or_default();
        if self.scanned != 0 && !at_limit && !fresh.contains(&b'\n') {
            self.scanned = window_len;
            return Ok(None);
        }
        let window = buf.get(..window_len).unwrap_or_default();
        let parsed = if self.limits.max_headers <= STACK_HEADERS {
            // Uninitialised slots: nothing to fill per request.
            let mut slots =
                [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
            let slots = slots.get_mut(..self.limits.max_headers).unwrap_or_default();
            head::parse(window, slots, max_head)
        } else {
            // Lend the kept slots a shorter lifetime; collecting in place
            // reuses the allocation both ways.
            let mut slots: Vec<MaybeUninit<httparse::Header<'_>>> =
                std::mem::take(&mut self.heap_headers)
                    .into_iter()
                    .map(|_| MaybeUninit::uninit())
                    .collect();
            let parsed = head::parse(window, &mut slots, max_head);
            self.heap_headers = slots.into_iter().map(|_| MaybeUninit::uninit()).collect();
            parsed
        };
        let Some((len, mut head)) = parsed? else {
            if at_limit {
                return Err(if window.contains(&b'\n') {
                    ProtoError::HeadTooLarge { limit: max_head }
                } else {
                    ProtoError::UriTooLong { limit: max_head }
                });
            }
            self.scanned = window_len;
            return Ok(None);
        };
        match (head.body, self.limits.max_body) {
            (BodyLength::Known(n), Some(limit)) if n > limit => {
                return Err(ProtoError::BodyTooLarge { limit });
            }
            _ => {}
        }
        head.bytes = buf.split_to(len).freeze();
        self.scanned = 0;
        self.empty_lines = 0;
        self.request =
            RequestCtx { head: head.is_head(), minor: head.version, keep_alive: head.keep_alive };
        self.state = match head.body {
            BodyLength::Empty => ReadState::EndPending,
            BodyLength::Known(n) => {
                UnframedBody::new(n).map_or(ReadState::EndPending, ReadState::Length)
            }
            BodyLength::Streamed => ReadState::Chunked(ChunkedDecoder::new(
                self.limits.max_body,
                self.limits.max_head,
                self.limits.max_headers,
            )),
        };
        Ok(Some(Frame::Head(head)))
    }
}

impl Decoder for Http1Codec {
    type Item = Frame<Http1Head>;
    type Error = ProtoError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        let result = self.decode_frame(buf);
        if result.is_err() {
            self.state = ReadState::Poisoned;
        }
        result
    }

    /// At EOF only a connection between requests ends cleanly; anything
    /// else is [`ProtoError::UnexpectedEof`].
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if matches!(self.state, ReadState::Idle) {
            // Parse a partial head once more even without a new line end,
            // so a malformed one gets its 4xx whatever the packet splits.
            self.scanned = 0;
        }
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match self.state {
            ReadState::Idle if buf.is_empty() && self.scanned == 0 => Ok(None),
            ReadState::Closed | ReadState::Poisoned => Ok(None),
            _ => {
                self.state = ReadState::Poisoned;
                Err(ProtoError::UnexpectedEof)
            }
        }
    }
}

impl ServerCodec for Http1Codec {
    type Head = Http1Head;

    const NAME: &'static str = "http";

    fn body_in_place(&self) -> Option<InPlace> {
        match self.state {
            ReadState::Length(body) => Some(body.in_place()),
            _ => None,
        }
    }

    fn body_taken(&mut self, n: u64) {
        if let ReadState::Length(body) = &mut self.state
            && body.take(n)
        {
            self.state = ReadState::EndPending;
        }
    }

    fn encode_continue(&mut self, out: &mut OutBuf) {
        out.put_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
    }

    /// Always answers `HTTP/1.1` (RFC 9110 §2.5: a server sends its own
    /// highest version), adds `Date` unless the app set one, and chooses
    /// the framing: none for HEAD/1xx/204/304, the app's Content-Length,
    /// else chunked for HTTP/1.1 and close-delimited for HTTP/1.0.
    /// The head will carry `Connection: close`.
    fn close_after_response(&mut self) {
        self.request.keep_alive = false;
    }

    fn encode_head(&mut self, head: &ResponseHead, date: &[u8], out: &mut OutBuf) {
        let (framing, keep_alive) = encode::write_head(self.request, head, date, out);
        self.framing = framing;
        self.response_keep_alive = keep_alive;
    }

    fn encode_data(&mut self, data: Bytes, out: &mut OutBuf) {
        encode::write_data(self.framing, data, out);
    }

    /// `None` when the response has no body (nothing may be sent).
    fn raw_data_framing(&mut self, len: u64) -> Option<(Bytes, Bytes)> {
        encode::raw_framing(self.framing, len)
    }

    /// Writes the last-chunk of a complete chunked body. A cut-short body
    /// gets nothing more: the close tells the client. A response without a
    /// body (HEAD, 204, 304) cannot be cut short, whatever the app's
    /// `Content-Length` says. The connection is reusable only if the
    /// response was complete and delimited and its head promised
    /// keep-alive: a request body left unread is the core's to announce
    /// ([`ServerCodec::close_after_response`]) before the head goes out.
    fn encode_end(&mut self, complete: bool, out: &mut OutBuf) -> bool {
        let complete = complete || self.framing == Framing::NoBody;
        if complete && self.framing == Framing::Chunked {
            out.put_slice(b"0\r\n\r\n");
        }
        let reuse = complete && self.response_keep_alive;
        self.framing = Framing::NoBody;
        self.response_keep_alive = false;
        reuse
    }

    fn encode_error(&mut self, status: u16, date: &[u8], out: &mut OutBuf) {
        encode::write_error(status, date, out);
        self.state = ReadState::Poisoned;
    }
}
