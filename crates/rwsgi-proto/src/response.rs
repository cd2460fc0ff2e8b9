//! A response head, validated where it was made ([`crate::AppHead`] for an
//! app's, [`check_header`] for a config file's).

use crate::{OutBuf, ProtoError};
use bytes::Bytes;

/// A response head: status and headers as the app gave them (validated:
/// no CR/LF/NUL, token names, latin-1, no hop-by-hop headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The numeric status code.
    pub status: u16,
    /// The whole status string, e.g. `200 OK`.
    pub status_line: Bytes,
    /// Header names and values, in the app's order.
    pub headers: Vec<(Bytes, Bytes)>,
    /// The app's `Content-Length`, parsed; the core enforces it.
    pub content_length: Option<u64>,
}

impl ResponseHead {
    /// A head with `status`, its standard reason phrase, and no headers.
    pub fn new(status: u16) -> ResponseHead {
        let status = if (100..=999).contains(&status) { status } else { 500 };
        let reason = reason_phrase(status);
        let mut status_line = Vec::with_capacity(4 + reason.len());
        status_line.extend_from_slice(status.to_string().as_bytes());
        status_line.push(b' ');
        status_line.extend_from_slice(reason.as_bytes());
        ResponseHead {
            status,
            status_line: Bytes::from(status_line),
            headers: Vec::new(),
            content_length: None,
        }
    }

    /// Adds a header the server itself chose (a name and value known to be
    /// valid: see [`check_header`] for anything that is not).
    pub fn push_header(&mut self, name: impl Into<Bytes>, value: impl Into<Bytes>) {
        self.headers.push((name.into(), value.into()));
    }

    /// Declares the body's length, as a header and for the core to enforce.
    pub fn set_content_length(&mut self, length: u64) {
        self.headers.retain(|(name, _)| !name.eq_ignore_ascii_case(b"content-length"));
        self.content_length = Some(length);
        self.push_header(Bytes::from_static(b"Content-Length"), Bytes::from(length.to_string()));
    }

    /// The head's size as HTTP text (`HTTP/1.1 ` + status line, each
    /// header line, the blank line): what the request log reports, the
    /// same whatever protocol carries it.
    pub fn text_len(&self) -> u64 {
        let lines: usize =
            self.headers.iter().map(|(name, value)| name.len() + value.len() + 4).sum();
        (9 + self.status_line.len() + 2 + lines + 2) as u64
    }

    /// Whether this status forbids a body (1xx, 204, 304).
    pub fn forbids_body(&self) -> bool {
        matches!(self.status, 100..=199 | 204 | 304)
    }

    /// The value of the first header named `name` (case-insensitively).
    pub fn header(&self, name: &[u8]) -> Option<&Bytes> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    /// Writes each header as `Name: value` CRLF, then `Date` when the app
    /// set none and the protocol sends one (`date`). Shared by every
    /// protocol whose response head is HTTP or CGI text.
    pub fn write_headers(&self, date: Option<&[u8]>, out: &mut OutBuf) {
        let mut has_date = false;
        for (name, value) in &self.headers {
            has_date |= name.eq_ignore_ascii_case(b"date");
            out.put_slice(name);
            out.put_slice(b": ");
            out.put_slice(value);
            out.put_slice(b"\r\n");
        }
        if let Some(date) = date.filter(|_| !has_date) {
            out.put_slice(b"Date: ");
            out.put_slice(date);
            out.put_slice(b"\r\n");
        }
    }

    /// The head of the server's own plain-text error page for `status`
    /// (a request the app never saw); its body is
    /// [`ResponseHead::write_plain_error_body`].
    pub fn plain_error(status: u16) -> ResponseHead {
        let mut head = ResponseHead::new(status);
        head.push_header(
            Bytes::from_static(b"Content-Type"),
            Bytes::from_static(b"text/plain; charset=utf-8"),
        );
        head.set_content_length(reason_phrase(head.status).len() as u64 + 1);
        head
    }

    /// The server's error page for `status` as a complete HTTP/1.x
    /// response (`version` is `HTTP/1.1` or `HTTP/1.0`) that closes the
    /// connection: what an HTTP-shaped protocol answers a request the app
    /// never saw.
    pub fn write_http_error(version: &[u8], status: u16, date: &[u8], out: &mut OutBuf) {
        let head = ResponseHead::plain_error(status);
        out.put_slice(version);
        out.put_slice(b" ");
        out.put_slice(&head.status_line);
        out.put_slice(b"\r\n");
        head.write_headers(Some(date), out);
        out.put_slice(b"Connection: close\r\n\r\n");
        head.write_plain_error_body(out);
    }

    /// The body of [`ResponseHead::plain_error`]: the reason phrase and a newline.
    pub fn write_plain_error_body(&self, out: &mut OutBuf) {
        out.put_slice(reason_phrase(self.status).as_bytes());
        out.put_slice(b"\n");
    }
}

/// The standard reason phrase of `status` (RFC 9110 §15), or
/// `"Unknown Status"`.
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        421 => "Misdirected Request",
        422 => "Unprocessable Content",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "Unknown Status",
    }
}

/// Checks one header a config file (or a route) sets: a token name, not
/// hop-by-hop, and a value without control characters (tab aside). An
/// app's headers are checked by [`crate::AppHead`], by the same rules.
pub fn check_header(name: &[u8], value: &[u8]) -> Result<(), ProtoError> {
    check_name(name)?;
    if value.iter().any(|&b| is_control(b)) {
        return Err(control_in(name));
    }
    Ok(())
}

/// A response header's name: a token, and not hop-by-hop.
pub(crate) fn check_name(name: &[u8]) -> Result<(), ProtoError> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(ProtoError::BadResponse(format!("invalid response header name {:?}", shown())));
    }
    if is_hop_by_hop(name) {
        return Err(ProtoError::BadResponse(format!(
            "hop-by-hop header {} is the server's to set (PEP 3333)",
            shown()
        )));
    }
    Ok(())
}

/// The control characters a header value or a status line must not hold:
/// all of them but tab.
pub(crate) fn is_control(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// The refusal of a value of header `name` that holds a control character.
pub(crate) fn control_in(name: &[u8]) -> ProtoError {
    ProtoError::BadResponse(format!(
        "control character in response header {}",
        String::from_utf8_lossy(name)
    ))
}

/// RFC 9110 §5.6.2 token characters, one lookup per byte.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"!#$%&'*+-.^_`|~";
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// Whether `b` may appear in a token (a header name, a method).
pub fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// A `Content-Length` value: digits, optionally surrounded by whitespace.
pub(crate) fn parse_length(value: &[u8]) -> Option<u64> {
    let digits = value.trim_ascii();
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Headers that belong to one connection, which a WSGI app must not set
/// (PEP 3333 "Other HTTP Features"). `name` is compared case-insensitively.
pub fn is_hop_by_hop(name: &[u8]) -> bool {
    const HOP_BY_HOP: [&[u8]; 9] = [
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
    ];
    HOP_BY_HOP.iter().any(|h| h.eq_ignore_ascii_case(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_is_case_insensitive_and_exact() {
        assert!(is_hop_by_hop(b"Connection"));
        assert!(is_hop_by_hop(b"TRANSFER-ENCODING"));
        assert!(!is_hop_by_hop(b"Content-Length"));
        assert!(!is_hop_by_hop(b"Connections"));
    }

    #[test]
    fn headers_get_a_date_only_when_the_app_set_none() {
        let mut head = ResponseHead::plain_error(404);
        let mut out = OutBuf::new();
        head.write_headers(Some(b"D"), &mut out);
        head.write_plain_error_body(&mut out);
        assert_eq!(
            &out.take_contiguous()[..],
            b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: 10\r\nDate: D\r\nNot Found\n"
        );
        assert_eq!(&head.status_line[..], b"404 Not Found");
        head.headers.push((Bytes::from_static(b"date"), Bytes::from_static(b"app's")));
        head.write_headers(Some(b"D"), &mut out);
        head.write_headers(None, &mut out);
        let text = out.take_contiguous();
        assert!(!text.windows(7).any(|w| w == b"Date: D"));
        assert_eq!(ResponseHead::plain_error(7).status, 500);
    }

    #[test]
    fn a_declared_length_replaces_any_other() {
        let mut head = ResponseHead::new(200);
        head.push_header(Bytes::from_static(b"content-length"), Bytes::from_static(b"9"));
        head.set_content_length(3);
        assert_eq!(head.content_length, Some(3));
        let lengths: Vec<_> = head.headers.iter().map(|(_, v)| v.clone()).collect();
        assert_eq!(lengths, [Bytes::from_static(b"3")]);
        assert_eq!(&ResponseHead::new(404).status_line[..], b"404 Not Found");
        assert_eq!(ResponseHead::new(42).status, 500);
    }

    #[test]
    fn bodiless_statuses() {
        let head = |status| ResponseHead {
            status,
            status_line: Bytes::new(),
            headers: vec![],
            content_length: None,
        };
        assert!(head(204).forbids_body());
        assert!(head(304).forbids_body());
        assert!(head(101).forbids_body());
        assert!(!head(200).forbids_body());
    }
}
