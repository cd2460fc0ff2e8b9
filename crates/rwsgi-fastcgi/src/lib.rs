//! Sans-IO FastCGI 1.0 responder codec for rwsgi (`fastcgi-socket`,
//! behind nginx's `fastcgi_pass`), with its own record parser.
//!
//! # The protocol
//!
//! Everything travels in records: an 8-byte header (`version` 1, `type`,
//! `requestId` and `contentLength` as big-endian u16s, `paddingLength`, a
//! reserved byte), the content, the padding. A request is BEGIN_REQUEST
//! (role, `FCGI_KEEP_CONN` flag), the PARAMS stream (name-value pairs: the
//! CGI variables) and the STDIN stream (the body); a stream is records of
//! its type ended by an empty one. The response is a CGI response on the
//! STDOUT stream (`Status:` header, headers, blank line, body), then
//! END_REQUEST. Request id 0 carries management records (GET_VALUES).
//! nginx always uses request id 1, one PARAMS record, STDIN records of at
//! most 32 KiB and an empty STDIN record, even for a GET.
//!
//! # Better than uWSGI's
//!
//! uWSGI's `fastcgi-socket` accepts any version, needs no BEGIN_REQUEST,
//! parses each PARAMS record on its own (a pair that straddles two breaks
//! it), always closes (KEEP_CONN ignored), never answers GET_VALUES or an
//! unknown management type, hangs on ABORT_REQUEST and leaves a malformed
//! request unanswered. [`FastCgiCodec`]:
//!
//! - refuses a version other than 1 (the framing cannot be trusted; the
//!   connection closes);
//! - serves only requests begun with BEGIN_REQUEST for the RESPONDER role
//!   (END_REQUEST `FCGI_UNKNOWN_ROLE` otherwise) and ignores records for
//!   ids it is not serving (spec §3.3);
//! - serves one request at a time and says so: a second BEGIN_REQUEST for
//!   another id gets END_REQUEST `FCGI_CANT_MPX_CONN`, GET_VALUES reports
//!   `FCGI_MPXS_CONNS=0`; a BEGIN_REQUEST for the id already active is a
//!   protocol error;
//! - honours KEEP_CONN ([`ServerCodec::encode_end`] says whether the
//!   connection stays open);
//! - answers GET_VALUES (`FCGI_MAX_CONNS`, `FCGI_MAX_REQS`,
//!   `FCGI_MPXS_CONNS`) and UNKNOWN_TYPE at any time, even while the app
//!   runs ([`ServerCodec::READS_DURING_RESPONSE`]);
//! - parses the PARAMS stream as one block, whatever its record
//!   boundaries, and answers a malformed or oversized one with a
//!   `Status: 400`/`431` response and END_REQUEST;
//! - treats ABORT_REQUEST at once: a request whose head the core has not
//!   seen is dropped with END_REQUEST; otherwise [`Frame::Abort`] stops
//!   the app and the core ends the request.
//!
//! # The body
//!
//! The body is the STDIN stream, passed on record by record as it arrives
//! (views of the read buffer, no copy) and ended by the empty STDIN
//! record. `CONTENT_LENGTH` caps it: bytes past it are ignored, and a
//! stream that ends short is still the end (the client went away; the app
//! sees EOF). An absent or empty `CONTENT_LENGTH` (nginx with
//! `fastcgi_request_buffering off` and a chunked client) makes the body
//! [`BodyLength::Streamed`]. Every STDIN byte counts toward `limit-post`.
//!
//! Every response byte is framed in a STDOUT record, so there is no
//! `sendfile` ([`ServerCodec::raw_data_framing`] is `None`): file bodies go
//! through [`ServerCodec::encode_data`], still without copying.
//!
//! No input can make it panic, and nothing is allocated from a length on
//! the wire: a record's content is buffered only when it is at most 65535
//! bytes and needed whole (BEGIN_REQUEST, PARAMS within `buffer-size`,
//! GET_VALUES); ignored records and padding are skipped as they arrive.
//!
//! Layout, as in `rwsgi-uwsgi`: `record` has the record layer, `params`
//! the name-value pairs, [`FastCgiHead`] a decoded request, `environ` its
//! CGI variables and `encode` the response; this module is the
//! per-connection state machine.

#![forbid(unsafe_code)]

mod encode;
mod environ;
mod head;
mod params;
mod record;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use rwsgi_proto::{
    BodyLength, Frame, InPlace, Limits, OutBuf, ProtoError, ResponseHead, ServerCodec,
};
use tokio_util::codec::Decoder;

pub use head::FastCgiHead;

use record::{HEADER_LEN, ProtocolStatus, RecordHeader};

/// The answers to a GET_VALUES query, which the core knows from its
/// configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManagementValues {
    /// `FCGI_MAX_CONNS`: the most connections this server accepts at once.
    pub max_conns: u32,
    /// `FCGI_MAX_REQS`: the most requests it serves at once.
    pub max_reqs: u32,
}

/// Names read from one GET_VALUES query; the rest are ignored.
const MAX_QUERY_NAMES: usize = 32;

const fn bad(rule: &'static str) -> ProtoError {
    ProtoError::BadRequest(rule)
}

/// What the next bytes of the inbound stream are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    /// A record header.
    Header,
    /// The content of this record, needed whole; its padding follows.
    Content(RecordHeader),
    /// STDIN content of the active request, passed on as it arrives:
    /// `left` bytes, then `padding`.
    Stdin { left: usize, padding: usize },
    /// Bytes to discard: ignored content, padding.
    Skip(usize),
    /// A decode error happened: the connection is unusable.
    Poisoned,
}

/// The PARAMS stream received so far: the record nginx sends is kept as
/// it is; only a stream split over several records is copied together.
#[derive(Debug, Default)]
enum ParamsBlock {
    #[default]
    Empty,
    One(Bytes),
    Many(BytesMut),
}

impl ParamsBlock {
    fn len(&self) -> usize {
        match self {
            ParamsBlock::Empty => 0,
            ParamsBlock::One(bytes) => bytes.len(),
            ParamsBlock::Many(bytes) => bytes.len(),
        }
    }

    fn push(&mut self, content: Bytes) {
        *self = match std::mem::take(self) {
            ParamsBlock::Empty => ParamsBlock::One(content),
            ParamsBlock::One(first) => {
                let mut all = BytesMut::with_capacity(first.len() + content.len());
                all.put_slice(&first);
                all.put_slice(&content);
                ParamsBlock::Many(all)
            }
            ParamsBlock::Many(mut all) => {
                all.put_slice(&content);
                ParamsBlock::Many(all)
            }
        }
    }

    fn freeze(self) -> Bytes {
        match self {
            ParamsBlock::Empty => Bytes::new(),
            ParamsBlock::One(bytes) => bytes,
            ParamsBlock::Many(bytes) => bytes.freeze(),
        }
    }
}

/// [`Phase::Body`]'s `allowed` for a body of unknown length.
const STREAMED: u64 = u64::MAX;

/// Where the active request is.
#[derive(Debug)]
enum Phase {
    /// Receiving the PARAMS stream.
    Params(ParamsBlock),
    /// The head was yielded; receiving STDIN.
    Body {
        /// Body bytes still passed on (`CONTENT_LENGTH` minus what was).
        allowed: u64,
        /// Every STDIN byte announced so far, for `limit-post`.
        received: u64,
    },
    /// The body's end was yielded; the app runs. Later STDIN and PARAMS
    /// records are ignored.
    Done,
    /// [`Frame::Abort`] was yielded: every later record of this id is
    /// ignored until the core ends the request.
    Aborted,
}

/// The request being served.
#[derive(Debug)]
struct Request {
    id: u16,
    keep_conn: bool,
    phase: Phase,
    /// `REQUEST_METHOD` is HEAD: no body goes out.
    head_method: bool,
    /// The response may carry no body (HEAD, 1xx, 204, 304).
    no_body: bool,
    /// The response head, until the first body bytes can share its record.
    pending_head: Option<Bytes>,
    /// Some STDOUT record went out: an error page can no longer replace it.
    stdout_started: bool,
    /// Some STDERR record went out: the stream must be ended too.
    stderr_started: bool,
}

impl Request {
    fn new(id: u16, keep_conn: bool) -> Self {
        Request {
            id,
            keep_conn,
            phase: Phase::Params(ParamsBlock::Empty),
            head_method: false,
            no_body: false,
            pending_head: None,
            stdout_started: false,
            stderr_started: false,
        }
    }

    /// Writes the response head, if it is still waiting for body bytes.
    fn flush_head(&mut self, out: &mut OutBuf) {
        if let Some(head) = self.pending_head.take() {
            encode::write_stdout(out, self.id, head, Bytes::new());
            self.stdout_started = true;
        }
    }
}

/// The FastCGI server side of one connection: a [`Decoder`] of request
/// frames and a [`ServerCodec`] encoder of responses, serving one request
/// at a time, as many in turn as KEEP_CONN allows.
#[derive(Debug)]
pub struct FastCgiCodec {
    limits: Limits,
    values: ManagementValues,
    input: Input,
    request: Option<Request>,
    /// Records produced on our own (management replies, refusals), until
    /// [`ServerCodec::take_control`] moves them out.
    control: BytesMut,
    /// [`ServerCodec::close_after_response`] was called.
    closing: bool,
    /// We ended a request ourselves (refused its role, or it was aborted
    /// before its head) and it had no KEEP_CONN: the connection ends.
    finished: bool,
}

impl FastCgiCodec {
    /// A codec for a new connection. `values` answers GET_VALUES.
    pub fn new(limits: Limits, values: ManagementValues) -> Self {
        FastCgiCodec {
            limits,
            values,
            input: Input::Header,
            request: None,
            control: BytesMut::new(),
            closing: false,
            finished: false,
        }
    }

    fn decode_frame(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<Frame<FastCgiHead>>, ProtoError> {
        loop {
            match self.input {
                Input::Poisoned => {
                    buf.clear();
                    return Ok(None);
                }
                Input::Skip(n) => {
                    let k = n.min(buf.len());
                    buf.advance(k);
                    if k < n {
                        self.input = Input::Skip(n - k);
                        return Ok(None);
                    }
                    self.input = Input::Header;
                }
                Input::Header => {
                    let Some(header) = RecordHeader::parse(buf)? else { return Ok(None) };
                    buf.advance(HEADER_LEN);
                    if let Some(frame) = self.on_header(header)? {
                        return Ok(Some(frame));
                    }
                }
                Input::Content(header) => {
                    if buf.len() < header.content_len {
                        return Ok(None);
                    }
                    let content = buf.split_to(header.content_len).freeze();
                    self.input = Input::Skip(header.padding);
                    if let Some(frame) = self.on_record(header, content)? {
                        return Ok(Some(frame));
                    }
                }
                Input::Stdin { left, padding } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = left.min(buf.len());
                    self.input = if n == left {
                        Input::Skip(padding)
                    } else {
                        Input::Stdin { left: left - n, padding }
                    };
                    if let Some(data) = self.body_data(buf, n) {
                        return Ok(Some(Frame::Data(data)));
                    }
                }
            }
        }
    }

    /// Decides what to do with a record from its header alone: most
    /// decisions (limits, ignored records, the end of a stream, an abort)
    /// need nothing more, so no content is buffered for them.
    fn on_header(&mut self, h: RecordHeader) -> Result<Option<Frame<FastCgiHead>>, ProtoError> {
        let skip = Input::Skip(h.body_len());
        if h.id == record::MANAGEMENT_ID {
            if h.kind == record::GET_VALUES {
                self.input = Input::Content(h);
            } else {
                self.control.put_slice(&record::unknown_type(h.kind));
                self.input = skip;
            }
            return Ok(None);
        }
        if h.kind == record::BEGIN_REQUEST {
            if self.request.as_ref().is_some_and(|r| r.id == h.id) {
                return Err(bad("FastCGI BEGIN_REQUEST for a request id already active"));
            }
            if h.content_len != record::BEGIN_BODY_LEN {
                return Err(bad("FastCGI BEGIN_REQUEST body is not 8 bytes"));
            }
            self.input = Input::Content(h);
            return Ok(None);
        }
        // Unless decided otherwise below, the content and padding are
        // skipped (an empty record's padding too).
        self.input = skip;
        // Records of ids we are not serving are ignored (spec §3.3).
        let Some(req) = self.request.as_mut().filter(|r| r.id == h.id) else {
            return Ok(None);
        };
        match (h.kind, &mut req.phase) {
            (_, Phase::Aborted) => {}
            (record::ABORT_REQUEST, Phase::Params(_)) => {
                // The core never saw this request: nothing to stop.
                let end = record::end_request(h.id, 0, ProtocolStatus::RequestComplete);
                self.control.put_slice(&end);
                self.finished = !req.keep_conn;
                self.request = None;
            }
            (record::ABORT_REQUEST, _) => {
                req.phase = Phase::Aborted;
                return Ok(Some(Frame::Abort));
            }
            (record::PARAMS, Phase::Params(block)) => {
                if h.content_len == 0 {
                    return self.finish_params().map(Some);
                }
                if block.len() + h.content_len > self.limits.max_head {
                    return Err(ProtoError::HeadTooLarge { limit: self.limits.max_head });
                }
                self.input = Input::Content(h);
            }
            (record::STDIN, Phase::Params(_)) => {
                return Err(bad("FastCGI STDIN before the end of PARAMS"));
            }
            (record::STDIN, Phase::Body { received, .. }) => {
                if h.content_len == 0 {
                    req.phase = Phase::Done;
                    return Ok(Some(Frame::End));
                }
                *received += h.content_len as u64;
                if let Some(limit) = self.limits.max_body
                    && *received > limit
                {
                    return Err(ProtoError::BodyTooLarge { limit });
                }
                self.input = Input::Stdin { left: h.content_len, padding: h.padding };
            }
            // PARAMS or STDIN after their stream ended, FCGI_DATA (the
            // Filter role's), types we do not know (spec §4: ignore).
            _ => {}
        }
        Ok(None)
    }

    /// Handles a record whose whole content is in.
    fn on_record(
        &mut self,
        h: RecordHeader,
        content: Bytes,
    ) -> Result<Option<Frame<FastCgiHead>>, ProtoError> {
        match (h.id, h.kind) {
            (record::MANAGEMENT_ID, _) => self.answer_get_values(&content),
            (_, record::BEGIN_REQUEST) => self.begin(h.id, &content),
            (_, record::PARAMS) => {
                if let Some(Request { phase: Phase::Params(block), .. }) = &mut self.request {
                    block.push(content);
                }
            }
            _ => {}
        }
        Ok(None)
    }

    /// BEGIN_REQUEST for an id other than the active one's.
    fn begin(&mut self, id: u16, content: &[u8]) {
        let (role, flags) = match content {
            &[hi, lo, flags, ..] => (u16::from_be_bytes([hi, lo]), flags),
            _ => (0, 0),
        };
        let keep_conn = flags & record::KEEP_CONN != 0;
        let refusal = if self.request.is_some() {
            // The active request goes on: the connection stays.
            ProtocolStatus::CantMpxConn
        } else if role != record::ROLE_RESPONDER {
            self.finished = !keep_conn;
            ProtocolStatus::UnknownRole
        } else {
            self.request = Some(Request::new(id, keep_conn));
            return;
        };
        self.control.put_slice(&record::end_request(id, 0, refusal));
    }

    /// The PARAMS stream ended: the request head.
    fn finish_params(&mut self) -> Result<Frame<FastCgiHead>, ProtoError> {
        let Some(req) = self.request.as_mut() else {
            return Err(bad("FastCGI PARAMS without a request"));
        };
        let Phase::Params(block) = std::mem::replace(&mut req.phase, Phase::Done) else {
            return Err(bad("FastCGI PARAMS without a request"));
        };
        let (vars, body) = params::scan(block.freeze(), &self.limits)?;
        let head = FastCgiHead { vars, body, request_id: req.id, keep_conn: req.keep_conn };
        req.head_method = head.method() == b"HEAD";
        let allowed = match body {
            BodyLength::Empty => 0,
            BodyLength::Known(n) => n,
            BodyLength::Streamed => STREAMED,
        };
        req.phase = Phase::Body { allowed, received: 0 };
        Ok(Frame::Head(head))
    }

    /// Takes the next `n` STDIN bytes off `buf`: what `CONTENT_LENGTH`
    /// still allows is returned, the rest dropped.
    fn body_data(&mut self, buf: &mut BytesMut, n: usize) -> Option<Bytes> {
        let keep = match &mut self.request {
            Some(Request { phase: Phase::Body { allowed, .. }, .. }) => {
                let keep = usize::try_from(*allowed).map_or(n, |a| a.min(n));
                *allowed -= keep as u64;
                keep
            }
            // The core ended the request in the middle of a record.
            _ => 0,
        };
        let data = buf.split_to(keep).freeze();
        buf.advance(n - keep);
        (keep > 0).then_some(data)
    }

    /// GET_VALUES_RESULT for the names we know among the first 32 asked,
    /// each once, in the order asked.
    fn answer_get_values(&mut self, content: &[u8]) {
        let mut reply = Vec::new();
        let mut answered = [false; 3];
        for name in params::query_names(content, MAX_QUERY_NAMES) {
            let (i, value) = match name {
                b"FCGI_MAX_CONNS" => (0, self.values.max_conns),
                b"FCGI_MAX_REQS" => (1, self.values.max_reqs),
                b"FCGI_MPXS_CONNS" => (2, 0),
                _ => continue,
            };
            if let Some(done) = answered.get_mut(i)
                && !*done
            {
                *done = true;
                let value = value.to_string();
                // Names and values are short: one-byte lengths.
                reply.extend_from_slice(&[name.len() as u8, value.len() as u8]);
                reply.extend_from_slice(name);
                reply.extend_from_slice(value.as_bytes());
            }
        }
        record::put_record(
            &mut self.control,
            record::GET_VALUES_RESULT,
            record::MANAGEMENT_ID,
            &reply,
        );
    }
}

impl Decoder for FastCgiCodec {
    type Item = Frame<FastCgiHead>;
    type Error = ProtoError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        let result = self.decode_frame(buf);
        if result.is_err() {
            self.input = Input::Poisoned;
        }
        result
    }

    /// At EOF the connection ends cleanly between records when no request
    /// is being received (idle, or the app is running); a close inside a
    /// record, the PARAMS stream or the body is
    /// [`ProtoError::UnexpectedEof`] (for a body, the app's
    /// `wsgi.input.read()` then fails rather than seeing a short body).
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        let receiving = self
            .request
            .as_ref()
            .is_some_and(|r| matches!(r.phase, Phase::Params(_) | Phase::Body { .. }));
        match self.input {
            Input::Poisoned => Ok(None),
            Input::Header if buf.is_empty() && !receiving => Ok(None),
            _ => {
                self.input = Input::Poisoned;
                Err(ProtoError::UnexpectedEof)
            }
        }
    }
}

impl ServerCodec for FastCgiCodec {
    type Head = FastCgiHead;

    const NAME: &'static str = "fastcgi";

    /// ABORT_REQUEST and management records may come while the app runs.
    const READS_DURING_RESPONSE: bool = true;

    fn is_finished(&self) -> bool {
        self.finished
    }

    /// Within a STDIN record, the rest of its content (what
    /// `CONTENT_LENGTH` still allows), then its padding and the next
    /// record's header; between records, what is left of the record in
    /// hand and the next header. Only for a body of known length.
    fn body_in_place(&self) -> Option<InPlace> {
        let Some(Request { phase: Phase::Body { allowed, .. }, .. }) = &self.request else {
            return None;
        };
        if *allowed == 0 || *allowed == STREAMED {
            return None;
        }
        let (body, framing) = match self.input {
            Input::Stdin { left, padding } => {
                let body = usize::try_from(*allowed).map_or(left, |allowed| allowed.min(left));
                (body, left - body + padding)
            }
            Input::Skip(n) => (0, n),
            Input::Content(header) => (0, header.body_len()),
            Input::Header => (0, 0),
            Input::Poisoned => return None,
        };
        Some(InPlace { body: body as u64, framing: framing + HEADER_LEN })
    }

    fn body_taken(&mut self, n: u64) {
        let (
            Input::Stdin { left, padding },
            Some(Request { phase: Phase::Body { allowed, .. }, .. }),
        ) = (self.input, &mut self.request)
        else {
            debug_assert_eq!(n, 0, "body taken outside a STDIN record");
            return;
        };
        let n = usize::try_from(n).map_or(left, |n| n.min(left));
        *allowed = allowed.saturating_sub(n as u64);
        self.input =
            if n == left { Input::Skip(padding) } else { Input::Stdin { left: left - n, padding } };
    }

    fn take_control(&mut self, out: &mut OutBuf) {
        if !self.control.is_empty() {
            out.put_bytes(self.control.split().freeze());
        }
    }

    /// The connection closes after this response: END_REQUEST is the last
    /// record, whatever KEEP_CONN said.
    fn close_after_response(&mut self) {
        self.closing = true;
    }

    /// `Status: <status line>`, the app's headers and a blank line, on
    /// STDOUT. It waits in the codec for the first body bytes, to share
    /// their record; any later call writes it.
    fn encode_head(&mut self, head: &ResponseHead, _date: &[u8], _out: &mut OutBuf) {
        let Some(req) = self.request.as_mut() else { return };
        req.no_body = req.head_method || head.forbids_body();
        req.pending_head = Some(encode::head_text(head));
    }

    /// STDOUT records of at most 65535 bytes, the first one shared with the
    /// head if it is still waiting. Dropped when the response may have no
    /// body; an empty piece writes a waiting head (the app's way to say
    /// "send the headers now").
    fn encode_data(&mut self, data: Bytes, out: &mut OutBuf) {
        let Some(req) = self.request.as_mut() else { return };
        if req.no_body || data.is_empty() {
            req.flush_head(out);
            return;
        }
        let head = req.pending_head.take().unwrap_or_default();
        encode::write_stdout(out, req.id, head, data);
        req.stdout_started = true;
    }

    /// STDERR records for the request being served; nginx logs them
    /// ("FastCGI sent in stderr").
    fn encode_stderr(&mut self, text: Bytes, out: &mut OutBuf) {
        let Some(req) = self.request.as_mut() else { return };
        if !text.is_empty() {
            encode::write_stderr(out, req.id, text);
            req.stderr_started = true;
        }
    }

    /// The empty STDOUT record and END_REQUEST (`appStatus` 1 when the
    /// response was cut short or the request aborted). The request id is
    /// free again; whether the connection is too is KEEP_CONN's say.
    fn encode_end(&mut self, complete: bool, out: &mut OutBuf) -> bool {
        let Some(mut req) = self.request.take() else { return false };
        req.flush_head(out);
        encode::write_end(out, req.id, complete, req.stderr_started);
        let closing = std::mem::take(&mut self.closing);
        req.keep_conn && !closing
    }

    /// For the request being received or served: the plain-text error page
    /// as its response (or, if STDOUT already carries the app's response,
    /// just its end), and END_REQUEST with `appStatus` 1. With no request,
    /// nothing: the connection just closes.
    fn encode_error(&mut self, status: u16, _date: &[u8], out: &mut OutBuf) {
        self.input = Input::Poisoned;
        let Some(req) = self.request.take() else { return };
        if !req.stdout_started {
            encode::write_stdout(
                out,
                req.id,
                encode::error_text(status, !req.head_method),
                Bytes::new(),
            );
        }
        encode::write_end(out, req.id, false, req.stderr_started);
    }
}
