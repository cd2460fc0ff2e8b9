//! Sans-IO uwsgi protocol server codec for rwsgi (`socket` /
//! `uwsgi-socket`, behind nginx's `uwsgi_pass`).
//!
//! # The protocol
//!
//! A request is one packet: a 4-byte header (`modifier1`, `datasize` as a
//! little-endian u16, `modifier2`), a vars block of exactly `datasize`
//! bytes (`u16 LE key length, key, u16 LE value length, value`, repeated),
//! then the body, exactly `CONTENT_LENGTH` bytes with no framing of its
//! own. The response is a plain HTTP/1.x response with no uwsgi header,
//! ended by closing the connection. A connection carries one request:
//! nginx never reuses a uwsgi upstream connection, and uWSGI closes after
//! the first response, so every byte after the body is ignored unread.
//!
//! # Strictness
//!
//! uWSGI answers a malformed packet by closing silently (nginx then says
//! 502, with the cause only in uWSGI's log) and reads `CONTENT_LENGTH` by
//! its leading digits. [`UwsgiCodec`] answers with a status instead, since
//! the reply channel is HTTP: `400` for HTTP text on the socket, malformed
//! blocks (lengths past the end, a zero-length key, no `REQUEST_METHOD`)
//! and a `CONTENT_LENGTH` that is not 1 to 20 plain digits; `431` for a
//! `datasize` above `buffer-size` (decided from the header alone) or too
//! many vars; `413` for a body above `limit-post` (decided before any body
//! byte is read); `501` for a `modifier1` other than 0. The block is
//! validated as it arrives, so each error comes as soon as it is certain,
//! whatever the packet boundaries. No input can make it panic, and
//! nothing is allocated from a length on the wire: a body is streamed as
//! it arrives.
//!
//! # uWSGI magic vars are inert
//!
//! uWSGI acts on vars such as `UWSGI_SETENV` (calls `setenv()` in the
//! worker), `UWSGI_POSTFILE` (opens a local file as the body),
//! `UWSGI_FILE`, `UWSGI_SCRIPT`, `UWSGI_MODULE`, `UWSGI_CALLABLE` (load
//! code, with `dynamic-apps`), `UWSGI_CHDIR`, `UWSGI_PYHOME`,
//! `UWSGI_APPID` and `UWSGI_TOUCH_RELOAD`: whoever can write to a uwsgi
//! socket can run code, which is why uWSGI's docs say never to expose one.
//! Here they are ordinary environ strings that nothing acts on, so an
//! exposed socket is no worse than an exposed HTTP port. Only the
//! `wsgi.url_scheme` vars are read (`UWSGI_SCHEME`, `HTTPS`,
//! `REQUEST_SCHEME`), and vars named `wsgi.*` or `uwsgi.*` are dropped:
//! those namespaces belong to the server.
//!
//! Layout, as in `rwsgi-http1`: `packet` checks the header and validates
//! the vars block, [`UwsgiHead`] holds a decoded request, `environ`
//! builds the CGI variables and `encode` writes responses; this module is
//! the per-connection state machine. Everything taken from the input is
//! zero-copy: the block is frozen out of the read buffer and values are
//! views of it; body data frames are split off the read buffer.

#![forbid(unsafe_code)]

mod encode;
mod environ;
mod head;
mod packet;

use bytes::{Bytes, BytesMut};
use rwsgi_proto::{
    BodyLength, Frame, InPlace, Limits, OutBuf, ProtoError, ResponseHead, ServerCodec, UnframedBody,
};
use tokio_util::codec::Decoder;

pub use head::UwsgiHead;

use encode::{Framing, RequestCtx};
use packet::{HEADER_LEN, Scanner};

/// What the next bytes of the inbound stream are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReadState {
    /// The packet header and vars block. Their bytes stay in the buffer
    /// until the block is complete, so the core sees a partial head as
    /// unread input (its read deadline applies, not its idle timeout).
    Head,
    /// This many bytes of body.
    Length(UnframedBody),
    /// The body is read; `End` is the next frame.
    EndPending,
    /// The request is complete: later bytes are never parsed.
    Done,
    /// A decode error happened: the connection is unusable.
    Poisoned,
}

/// The uwsgi server side of one connection: a [`Decoder`] of request
/// frames and a [`ServerCodec`] encoder of responses. One request per
/// connection; [`ServerCodec::encode_end`] always says to close.
#[derive(Debug)]
pub struct UwsgiCodec {
    limits: Limits,
    state: ReadState,
    scanner: Scanner,
    request: RequestCtx,
    framing: Framing,
}

impl UwsgiCodec {
    /// A codec for a new connection.
    pub fn new(limits: Limits) -> Self {
        UwsgiCodec {
            limits,
            state: ReadState::Head,
            scanner: Scanner::new(&limits),
            request: RequestCtx::default(),
            framing: Framing::NoBody,
        }
    }

    fn decode_frame(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<UwsgiHead>>, ProtoError> {
        match &mut self.state {
            ReadState::Head => self.decode_head(buf),
            ReadState::Length(body) => {
                let Some((data, done)) = body.decode(buf) else { return Ok(None) };
                if done {
                    self.state = ReadState::EndPending;
                }
                Ok(Some(Frame::Data(data)))
            }
            ReadState::EndPending => {
                self.state = ReadState::Done;
                Ok(Some(Frame::End))
            }
            ReadState::Done | ReadState::Poisoned => {
                buf.clear();
                Ok(None)
            }
        }
    }

    fn decode_head(&mut self, buf: &mut BytesMut) -> Result<Option<Frame<UwsgiHead>>, ProtoError> {
        let Some(header) = packet::check_header(buf, &self.limits)? else { return Ok(None) };
        let block_end = HEADER_LEN + header.datasize;
        let received = buf.get(HEADER_LEN..).unwrap_or_default();
        let block = received.get(..header.datasize).unwrap_or(received);
        if !self.scanner.scan(block, header.datasize, &self.limits)? || buf.len() < block_end {
            return Ok(None);
        }
        let block = buf.split_to(block_end).freeze().split_off(HEADER_LEN);
        let head = UwsgiHead::new(self.scanner.finish(block)?, header);
        self.request = RequestCtx { head: head.is_head(), protocol: head.response_protocol() };
        self.state = match head.vars.body_length() {
            BodyLength::Known(n) => {
                UnframedBody::new(n).map_or(ReadState::EndPending, ReadState::Length)
            }
            _ => ReadState::EndPending,
        };
        Ok(Some(Frame::Head(head)))
    }
}

impl Decoder for UwsgiCodec {
    type Item = Frame<UwsgiHead>;
    type Error = ProtoError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        let result = self.decode_frame(buf);
        if result.is_err() {
            self.state = ReadState::Poisoned;
        }
        result
    }

    /// At EOF only a connection that sent nothing, or whose request is
    /// complete, ends cleanly; a close inside the header, the block or
    /// the body is [`ProtoError::UnexpectedEof`] (for a body, the app's
    /// `wsgi.input.read()` then fails rather than seeing a short body).
    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, Self::Error> {
        if let Some(frame) = self.decode(buf)? {
            return Ok(Some(frame));
        }
        match self.state {
            ReadState::Head if buf.is_empty() => Ok(None),
            ReadState::Done | ReadState::Poisoned => Ok(None),
            _ => {
                self.state = ReadState::Poisoned;
                Err(ProtoError::UnexpectedEof)
            }
        }
    }
}

impl ServerCodec for UwsgiCodec {
    type Head = UwsgiHead;

    const NAME: &'static str = "uwsgi";

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

    /// A packet still short of its `datasize` when `socket-timeout` ran
    /// out: only a proxy speaks uwsgi, and a proxy sends its packet at
    /// once, so the packet is malformed rather than slow (`400`).
    fn head_timeout(&self) -> ProtoError {
        ProtoError::BadRequest("uwsgi packet shorter than its datasize")
    }

    /// `<protocol> <status>`, where the protocol is the request's
    /// `SERVER_PROTOCOL` if it is `HTTP/1.0` or `HTTP/1.1`, else
    /// `HTTP/1.0`; the app's headers, `Date` unless the app set one, and
    /// `Connection: close`. The body, if the method and status allow one,
    /// goes out raw.
    fn encode_head(&mut self, head: &ResponseHead, date: &[u8], out: &mut OutBuf) {
        self.framing = encode::write_head(self.request, head, date, out);
    }

    fn encode_data(&mut self, data: Bytes, out: &mut OutBuf) {
        encode::write_data(self.framing, data, out);
    }

    /// Empty framing (the bytes go out as they are), or `None` when the
    /// response has no body.
    fn raw_data_framing(&mut self, _len: u64) -> Option<(Bytes, Bytes)> {
        encode::raw_framing(self.framing)
    }

    /// Nothing to write: the close ends the body. Never reusable.
    fn encode_end(&mut self, _complete: bool, _out: &mut OutBuf) -> bool {
        self.framing = Framing::NoBody;
        false
    }

    fn encode_error(&mut self, status: u16, date: &[u8], out: &mut OutBuf) {
        encode::write_error(status, date, out);
        self.state = ReadState::Poisoned;
    }
}
