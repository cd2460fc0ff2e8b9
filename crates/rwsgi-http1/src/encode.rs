//! Response encoding: the status line, the app's headers, and the framing
//! headers the server owns (RFC 9112 §6, §9.6; PEP 3333 "Other HTTP
//! Features": Transfer-Encoding and Connection belong to the server).

use bytes::{BufMut, Bytes, BytesMut};
use rwsgi_proto::{OutBuf, ResponseHead};

/// What the codec remembers of the request a response answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RequestCtx {
    /// The method was HEAD: no body bytes, whatever the app yields.
    pub(crate) head: bool,
    /// Minor version of the request.
    pub(crate) minor: u8,
    /// The client allows another request afterwards.
    pub(crate) keep_alive: bool,
}

impl Default for RequestCtx {
    /// Before any request: answer as HTTP/1.1 and close.
    fn default() -> Self {
        RequestCtx { head: false, minor: 1, keep_alive: false }
    }
}

/// How the response body is delimited on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body may be sent (HEAD, 1xx, 204, 304): data is dropped.
    NoBody,
    /// The app declared a Content-Length: bytes go out as they are.
    Length,
    /// HTTP/1.1 without a length: chunked.
    Chunked,
    /// HTTP/1.0 without a length: the end of the body is the close.
    CloseDelimited,
}

/// Writes the response head for `req` and returns the body framing and
/// whether the connection stays open after this response.
pub(crate) fn write_head(
    req: RequestCtx,
    head: &ResponseHead,
    date: &[u8],
    out: &mut OutBuf,
) -> (Framing, bool) {
    out.put_slice(b"HTTP/1.1 ");
    out.put_slice(&head.status_line);
    out.put_slice(b"\r\n");
    head.write_headers(Some(date), out);
    let framing = if req.head || head.forbids_body() {
        Framing::NoBody
    } else if head.content_length.is_some() {
        Framing::Length
    } else if req.minor == 1 {
        out.put_slice(b"Transfer-Encoding: chunked\r\n");
        Framing::Chunked
    } else {
        Framing::CloseDelimited
    };
    // A 1xx as the final response leaves the client waiting for another:
    // do not reuse that connection.
    let keep_alive = req.keep_alive && framing != Framing::CloseDelimited && head.status >= 200;
    if !keep_alive {
        out.put_slice(b"Connection: close\r\n");
    } else if req.minor == 0 {
        out.put_slice(b"Connection: keep-alive\r\n");
    }
    out.put_slice(b"\r\n");
    (framing, keep_alive)
}

/// Writes one piece of body as `framing` requires.
pub(crate) fn write_data(framing: Framing, data: Bytes, out: &mut OutBuf) {
    match framing {
        Framing::NoBody => {}
        // An empty chunk would be the last-chunk: never write one here.
        Framing::Chunked if data.is_empty() => {}
        Framing::Chunked => {
            out.put_hex(data.len() as u64);
            out.put_slice(b"\r\n");
            out.put_bytes(data);
            out.put_slice(b"\r\n");
        }
        Framing::Length | Framing::CloseDelimited => out.put_bytes(data),
    }
}

/// The bytes around `len` body bytes sent by the core itself.
pub(crate) fn raw_framing(framing: Framing, len: u64) -> Option<(Bytes, Bytes)> {
    match framing {
        Framing::NoBody => None,
        Framing::Chunked if len > 0 => {
            let mut prefix = BytesMut::with_capacity(18);
            let digits = 16 - (len.leading_zeros() / 4) as usize;
            for shift in (0..digits).rev() {
                prefix.put_u8(b"0123456789abcdef"[((len >> (shift * 4)) & 0xf) as usize]);
            }
            prefix.put_slice(b"\r\n");
            Some((prefix.freeze(), Bytes::from_static(b"\r\n")))
        }
        Framing::Chunked | Framing::Length | Framing::CloseDelimited => {
            Some((Bytes::new(), Bytes::new()))
        }
    }
}

/// Writes a complete plain-text error response; the connection closes.
pub(crate) fn write_error(status: u16, date: &[u8], out: &mut OutBuf) {
    ResponseHead::write_http_error(b"HTTP/1.1", status, date, out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_chunk_prefix_is_lower_hex() {
        let prefix =
            |len| raw_framing(Framing::Chunked, len).map(|(p, s)| (p.to_vec(), s.to_vec()));
        assert_eq!(prefix(1), Some((b"1\r\n".to_vec(), b"\r\n".to_vec())));
        assert_eq!(prefix(0xbeef), Some((b"beef\r\n".to_vec(), b"\r\n".to_vec())));
        assert_eq!(prefix(u64::MAX), Some((b"ffffffffffffffff\r\n".to_vec(), b"\r\n".to_vec())));
        assert_eq!(prefix(0), Some((vec![], vec![])));
        assert_eq!(raw_framing(Framing::NoBody, 5), None);
        assert_eq!(raw_framing(Framing::Length, 5), Some((Bytes::new(), Bytes::new())));
    }

    #[test]
    fn error_statuses_out_of_range_become_500() {
        let mut out = OutBuf::new();
        write_error(7, b"D", &mut out);
        assert!(out.take_contiguous().starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
    }
}
