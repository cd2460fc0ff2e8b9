//! Response encoding. A uwsgi response is a plain HTTP/1.x response with
//! no uwsgi header (`proto/base.c`); nginx parses it like an HTTP
//! upstream's. The connection carries one request, so the close ends the
//! body: no chunking, and the app's `Content-Length`, if any, is already
//! among its headers.

use bytes::Bytes;
use rwsgi_proto::{OutBuf, ResponseHead};

/// What the codec remembers of the request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestCtx {
    /// The method was HEAD: no body bytes, whatever the app yields.
    pub(crate) head: bool,
    /// The protocol of the status line.
    pub(crate) protocol: &'static [u8],
}

impl Default for RequestCtx {
    /// Before any request (an error response): uWSGI's default protocol.
    fn default() -> Self {
        RequestCtx { head: false, protocol: b"HTTP/1.0" }
    }
}

/// How the response body goes out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body may be sent (HEAD, 1xx, 204, 304): data is dropped.
    NoBody,
    /// Bytes go out as they are; the close ends them.
    Raw,
}

/// Writes the response head for `req` and returns the body framing.
pub(crate) fn write_head(
    req: RequestCtx,
    head: &ResponseHead,
    date: &[u8],
    out: &mut OutBuf,
) -> Framing {
    out.put_slice(req.protocol);
    out.put_slice(b" ");
    out.put_slice(&head.status_line);
    out.put_slice(b"\r\n");
    head.write_headers(Some(date), out);
    out.put_slice(b"Connection: close\r\n\r\n");
    if req.head || head.forbids_body() { Framing::NoBody } else { Framing::Raw }
}

/// Writes one piece of body as `framing` allows.
pub(crate) fn write_data(framing: Framing, data: Bytes, out: &mut OutBuf) {
    if framing == Framing::Raw {
        out.put_bytes(data);
    }
}

/// The (empty) bytes around body bytes the core sends itself, or `None`
/// when the response has no body.
pub(crate) fn raw_framing(framing: Framing) -> Option<(Bytes, Bytes)> {
    match framing {
        Framing::NoBody => None,
        Framing::Raw => Some((Bytes::new(), Bytes::new())),
    }
}

/// Writes a complete plain-text error response; the connection closes.
/// `HTTP/1.0`: the request, if any, was not understood, so its
/// `SERVER_PROTOCOL` is not trusted either.
pub(crate) fn write_error(status: u16, date: &[u8], out: &mut OutBuf) {
    ResponseHead::write_http_error(b"HTTP/1.0", status, date, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(status: u16) -> ResponseHead {
        ResponseHead {
            status,
            status_line: Bytes::from(format!("{status} Whatever")),
            headers: vec![(Bytes::from_static(b"X-A"), Bytes::from_static(b"1"))],
            content_length: None,
        }
    }

    #[test]
    fn framing_follows_method_and_status() {
        let get = RequestCtx::default();
        let head_req = RequestCtx { head: true, ..get };
        let mut out = OutBuf::new();
        assert_eq!(write_head(get, &head(200), b"D", &mut out), Framing::Raw);
        assert_eq!(write_head(get, &head(204), b"D", &mut out), Framing::NoBody);
        assert_eq!(write_head(get, &head(304), b"D", &mut out), Framing::NoBody);
        assert_eq!(write_head(get, &head(101), b"D", &mut out), Framing::NoBody);
        assert_eq!(write_head(head_req, &head(200), b"D", &mut out), Framing::NoBody);
        assert_eq!(raw_framing(Framing::NoBody), None);
        assert_eq!(raw_framing(Framing::Raw), Some((Bytes::new(), Bytes::new())));
    }

    #[test]
    fn data_is_dropped_without_a_body() {
        let mut out = OutBuf::new();
        write_data(Framing::NoBody, Bytes::from_static(b"nope"), &mut out);
        assert!(out.is_empty());
        write_data(Framing::Raw, Bytes::from_static(b"yes"), &mut out);
        assert_eq!(&out.take_contiguous()[..], b"yes");
    }

    #[test]
    fn error_statuses_out_of_range_become_500() {
        let mut out = OutBuf::new();
        write_error(7, b"D", &mut out);
        assert!(out.take_contiguous().starts_with(b"HTTP/1.0 500 Internal Server Error\r\n"));
    }
}
