//! Protocol-neutral vocabulary shared by every rwsgi codec and the server core.
//!
//! Two conversations are spelled here, so that neither side of either
//! needs to know the other:
//!
//! - **Codec and core.** A codec (HTTP/1.1, uwsgi, FastCGI) turns inbound
//!   bytes into [`Frame`]s: one [`Frame::Head`] per request, whose type
//!   implements [`RequestHead`] (the CGI variables, the body framing,
//!   keep-alive), then the body as [`Frame::Data`] and [`Frame::End`]. It
//!   encodes the response through [`ServerCodec`] into an [`OutBuf`].
//!   Codecs do no I/O.
//! - **Core and responder.** The core (`rwsgi-server`) hands each request
//!   to a [`Responder`] as a [`Request`] (an [`Environ`] and a
//!   [`BodySource`]) and writes the [`Event`]s it reads from [`Replies`].
//!   The Python bridge (`rwsgi-python`) is one responder; the core knows
//!   no Python.
//!
//! Dependency direction: codecs → `rwsgi-proto` ← responders ← server ←
//! master ← binary.

mod app_head;
pub mod cgi;
mod conn;
mod environ;
mod error;
mod exchange;
mod lent;
mod outbuf;
mod response;
mod spool;
mod unframed;

pub use app_head::AppHead;
pub use cgi::{CgiVars, CgiVarsBuilder, PathRule};
pub use conn::{ConnInfo, SocketAddress};
pub use environ::{CgiVar, EnvKey, Environ, Scheme, Scratch, percent_decode};
pub use error::{Fault, ProtoError};
pub use exchange::{
    Answerer, BodyMsg, BodySource, EVENT_QUEUE, Event, HeadEdit, Replies, Request, Responder,
    Unanswered,
};
pub use lent::{BodyMemory, LentBody};
pub use outbuf::OutBuf;
pub use response::{ResponseHead, check_header, is_hop_by_hop, is_tchar, reason_phrase};
pub use spool::{SpareFiles, SpoolFile};
pub use unframed::{InPlace, UnframedBody};

use bytes::Bytes;
use tokio_util::codec::Decoder;

/// Size limits every codec enforces before it allocates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head in bytes (`buffer-size`): request line plus
    /// headers for HTTP, the vars block for uwsgi, the PARAMS stream for FastCGI.
    pub max_head: usize,
    /// Most header fields (or vars, or params) in one request.
    pub max_headers: usize,
    /// Largest request body in bytes (`limit-post`); `None` = unlimited.
    pub max_body: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { max_head: 65535, max_headers: 100, max_body: None }
    }
}

/// How the request body is delimited on the wire, as the head announced it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLength {
    /// No body at all.
    Empty,
    /// Exactly this many bytes follow.
    Known(u64),
    /// Delimited by the protocol (chunked, FastCGI STDIN stream): the length
    /// is known only at the end.
    Streamed,
}

/// One decoded unit of the inbound stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame<H> {
    /// A complete request head. Body frames for this request follow.
    Head(H),
    /// A piece of the (decoded) request body.
    Data(Bytes),
    /// The body of the current request is complete; the next frame, if any,
    /// is the next request's head.
    End,
    /// The peer abandoned the current request (FastCGI `ABORT_REQUEST`):
    /// stop the app and end the response at once with
    /// [`ServerCodec::encode_end`]`(false, …)`.
    Abort,
}

/// A parsed request head, seen through the eyes of a CGI gateway.
pub trait RequestHead {
    /// Appends this request's CGI variables (PEP 3333 "environ Variables") to
    /// `env`, and sets its URL scheme. Values are the raw bytes; the Python
    /// bridge decodes them as latin-1.
    fn write_environ(&self, conn: &ConnInfo, env: &mut Environ);
    /// How the body is delimited.
    fn body_length(&self) -> BodyLength;
    /// Whether the client asked for `100 Continue` before sending the body.
    fn expects_continue(&self) -> bool;
    /// A short description for log lines: method and target.
    fn describe(&self) -> String;
    /// Copies the head's bytes out of the connection's read buffer, which
    /// they share: a request that waits for its body then holds only its
    /// head, not the buffer it was read into.
    fn detach(&mut self);
}

/// A protocol's server side: a decoder of request frames plus an encoder of
/// responses. One instance per connection; it carries the per-request state
/// (method, version, chosen body framing) between the calls.
///
/// The core calls, per request: `decode` until `Head`, then optionally
/// [`ServerCodec::encode_continue`], `decode` until `End` while the app reads,
/// [`ServerCodec::encode_head`], [`ServerCodec::encode_data`]* and finally
/// [`ServerCodec::encode_end`], whose answer says whether the connection
/// may carry another request.
pub trait ServerCodec:
    Decoder<Item = Frame<Self::Head>, Error = ProtoError> + Send + 'static
{
    /// The request head this protocol yields.
    type Head: RequestHead + Send + Sync + 'static;

    /// Short protocol name for logs ("http", "uwsgi", "fastcgi").
    const NAME: &'static str;

    /// Whether the core keeps reading while the app runs (once the request
    /// body is read), so that [`Frame::Abort`] and management records are
    /// seen at once. While a request is active such a codec never yields
    /// [`Frame::Head`] (a second request is its to refuse). Off for
    /// protocols where the next bytes can only be the next request.
    const READS_DURING_RESPONSE: bool = false;

    /// Whether the codec has ended the conversation on its own (a FastCGI
    /// request it refused or that was aborted before the app saw it,
    /// without KEEP_CONN): once its control output is written, the core
    /// closes the connection.
    fn is_finished(&self) -> bool {
        false
    }

    /// Moves into `out` what the codec produced on its own while decoding
    /// (FastCGI management replies, refusals of requests it will not
    /// serve). The core calls it after every `decode`.
    fn take_control(&mut self, _out: &mut OutBuf) {}

    /// The error for a request head that did not arrive within
    /// `socket-timeout`: HTTP answers `408`; a protocol spoken only by a
    /// proxy may rather call the truncated packet malformed.
    fn head_timeout(&self) -> ProtoError {
        ProtoError::Timeout
    }

    /// Where the current request's body, of known length, stands on the
    /// wire: the core may read [`InPlace::body`] bytes straight into memory
    /// of its own (a responder's `bytes`), count them with
    /// [`Self::body_taken`], and read the framing after them into its
    /// buffer for the codec, so that the body is not copied out of the
    /// read buffer. `None` between bodies and for a body of unknown length.
    fn body_in_place(&self) -> Option<InPlace> {
        None
    }

    /// The core took `n` body bytes off the wire itself, at most
    /// [`Self::body_in_place`]'s `body`: the codec counts them as decoded.
    fn body_taken(&mut self, n: u64) {
        debug_assert_eq!(n, 0, "{} has no body in place", Self::NAME);
    }

    /// Writes an interim `100 Continue`, where the protocol has one.
    fn encode_continue(&mut self, _out: &mut OutBuf) {}

    /// The core will close the connection after this response (the request
    /// body was left unread, keep-alive is off, the server is stopping); the
    /// response head must say so where the protocol can. Called before
    /// [`Self::encode_head`].
    fn close_after_response(&mut self) {}

    /// Writes the response head and fixes the body framing for the response.
    /// `date` is the current IMF-fixdate, for protocols that send `Date`.
    fn encode_head(&mut self, head: &ResponseHead, date: &[u8], out: &mut OutBuf);

    /// Writes one piece of response body, framed as [`Self::encode_head`] chose.
    /// The core never passes more bytes than a declared `Content-Length`.
    fn encode_data(&mut self, data: Bytes, out: &mut OutBuf);

    /// Frames `len` bytes of body that the core will send itself (sendfile)
    /// between `prefix` and `suffix`; `None` when the protocol cannot carry
    /// unframed bytes and the core must fall back to [`Self::encode_data`].
    fn raw_data_framing(&mut self, _len: u64) -> Option<(Bytes, Bytes)> {
        None
    }

    /// Passes on text the app wrote to `wsgi.errors`, where the protocol
    /// has a channel for it (FastCGI `STDERR`, which nginx logs). Called
    /// only when the server is configured so.
    fn encode_stderr(&mut self, _text: Bytes, _out: &mut OutBuf) {}

    /// Ends the response. `complete` is false when the body was cut short
    /// (app error, a Content-Length the app did not honour). Returns whether
    /// the connection may serve another request afterwards.
    fn encode_end(&mut self, complete: bool, out: &mut OutBuf) -> bool;

    /// Writes a complete error response for a request that failed before the
    /// app saw it (the status comes from [`ProtoError::status`]), with the
    /// server's plain-text page ([`ResponseHead::plain_error`]). The
    /// connection is closed afterwards.
    fn encode_error(&mut self, status: u16, date: &[u8], out: &mut OutBuf);
}
