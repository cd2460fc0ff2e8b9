//! Request heads: httparse checks the syntax, then this module applies the
//! framing and hygiene rules httparse leaves to its user (RFC 9112 §2–§7,
//! RFC 9110 §7.2 and §10.1.1) and records where everything is, as offsets
//! into the frozen head bytes.

use std::mem::MaybeUninit;

use bytes::Bytes;
use rwsgi_proto::{BodyLength, ProtoError, is_tchar};

/// A byte range of the head. Offsets, not slices, so a parsed head owns no
/// borrow and each value becomes a `Bytes` view only when it is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Where one header field's name and value are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Field {
    pub(crate) name: Span,
    pub(crate) value: Span,
    /// What the codec cares about in this field.
    pub(crate) kind: FieldKind,
    /// Whether a field with the same name came earlier (it was folded into
    /// that one's environ value).
    pub(crate) repeat: bool,
    /// A hash of the lower-cased name, so finding repeats stays linear in
    /// the head size even for many similar names.
    pub(crate) hash: u32,
}

/// The fields the codec interprets; everything else only goes to the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FieldKind {
    Other,
    /// Names containing `_`: dropped, so `X_Foo` cannot pose as `X-Foo`.
    Underscore,
    Host,
    ContentType,
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Cookie,
}

/// The host a request was addressed to: `host` keeps IPv6 brackets, `port`
/// is absent when the authority had none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Authority {
    pub(crate) whole: Span,
    pub(crate) host: Span,
    pub(crate) port: Option<Span>,
}

/// A parsed, validated HTTP/1.x request head.
///
/// It holds the head's bytes (a zero-copy slice of the connection buffer)
/// and offsets into them; accessors and [`rwsgi_proto::RequestHead`] hand
/// out views of those bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http1Head {
    pub(crate) bytes: Bytes,
    pub(crate) method: Span,
    pub(crate) target: Span,
    /// The path part of the target (`None`: absolute-form without a path,
    /// which means `/`).
    pub(crate) path: Option<Span>,
    pub(crate) query: Option<Span>,
    pub(crate) version: u8,
    pub(crate) fields: Vec<Field>,
    /// Host from an absolute-form target, else from a non-empty `Host`.
    pub(crate) authority: Option<Authority>,
    /// The authority came from an absolute-form target; it then replaces
    /// the `Host` field (RFC 9112 §3.2.2).
    pub(crate) authority_from_target: bool,
    /// The port to report when the authority has none.
    pub(crate) default_port: &'static [u8],
    pub(crate) body: BodyLength,
    pub(crate) keep_alive: bool,
    pub(crate) expect_continue: bool,
    /// Some field name occurs twice (environ values must be joined).
    pub(crate) has_repeats: bool,
}

impl Http1Head {
    /// The bytes of `span`, as a view of the head (never panics).
    pub(crate) fn slice(&self, span: Span) -> Bytes {
        if span.start <= span.end && span.end <= self.bytes.len() {
            self.bytes.slice(span.start..span.end)
        } else {
            Bytes::new()
        }
    }

    /// The bytes of `span`, borrowed.
    pub(crate) fn get(&self, span: Span) -> &[u8] {
        self.bytes.get(span.start..span.end).unwrap_or_default()
    }

    /// The request method, e.g. `GET` (case-sensitive, as sent).
    pub fn method(&self) -> &[u8] {
        self.get(self.method)
    }

    /// The request target exactly as sent, e.g. `/a%20b?x=1`.
    pub fn target(&self) -> &[u8] {
        self.get(self.target)
    }

    /// The minor version: 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub fn version(&self) -> u8 {
        self.version
    }

    /// Whether the client allows another request on this connection:
    /// HTTP/1.1 unless `Connection: close`, HTTP/1.0 only with
    /// `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// The value of the first field named `name` (case-insensitive).
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.fields
            .iter()
            .find(|f| self.get(f.name).eq_ignore_ascii_case(name))
            .map(|f| self.get(f.value))
    }

    /// Whether the method is `HEAD` (its response carries no body).
    pub(crate) fn is_head(&self) -> bool {
        self.method() == b"HEAD"
    }
}

/// Byte offset of `part` inside `whole`; `part` must be a subslice.
fn offset(whole: &[u8], part: &[u8]) -> usize {
    (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize)
}

fn span_of(whole: &[u8], part: &[u8]) -> Span {
    let start = offset(whole, part);
    Span { start, end: start + part.len() }
}

/// Shifts a span found inside `part` to be relative to the head.
fn shift(base: Span, inner: Span) -> Span {
    Span { start: base.start + inner.start, end: base.start + inner.end }
}

const fn bad(rule: &'static str) -> ProtoError {
    ProtoError::BadRequest(rule)
}

/// Parses the head at the start of `window` (the first `max_head` bytes of
/// the buffer, after any leading empty lines). `Ok(None)`: incomplete.
/// On success returns the head length and the head, whose `bytes` the
/// caller fills in with the frozen first `len` bytes.
pub(crate) fn parse<'b>(
    window: &'b [u8],
    slots: &mut [MaybeUninit<httparse::Header<'b>>],
    max_head: usize,
) -> Result<Option<(usize, Http1Head)>, ProtoError> {
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(window, slots) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(err) => return Err(parse_error(err, window, max_head)),
    };
    let head = window.get(..len).unwrap_or_default();
    // httparse accepts a bare LF as a line end; front-ends that don't can be
    // desynchronised by it (waitress CVE-2019-16785). httparse itself
    // rejects every bare CR.
    if !crlf_line_ends(head, req.headers) {
        return Err(bad("bare LF line ending (CRLF required)"));
    }
    let (Some(method), Some(target), Some(version)) = (req.method, req.path, req.version) else {
        return Err(bad("incomplete request line"));
    };
    let method_b = method.as_bytes();
    let target_b = target.as_bytes();
    let method_span = span_of(head, method_b);
    let target_span = span_of(head, target_b);

    let mut out = Http1Head {
        bytes: Bytes::new(),
        method: method_span,
        target: target_span,
        path: None,
        query: None,
        version,
        fields: Vec::with_capacity(req.headers.len()),
        authority: None,
        authority_from_target: false,
        default_port: b"80",
        body: BodyLength::Empty,
        keep_alive: false,
        expect_continue: false,
        has_repeats: false,
    };
    parse_target(method_b, target_b, target_span, &mut out)?;

    let mut hosts = 0usize;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut expect_continue = false;
    let mut seen = 0u64;
    let (mut close, mut keep_alive) = (false, false);
    for header in req.headers.iter() {
        let name = header.name.as_bytes();
        let value = header.value;
        let (hash, underscore) = scan_name(name);
        let kind = classify(name, underscore);
        match kind {
            FieldKind::Host => {
                hosts += 1;
                if hosts > 1 {
                    return Err(bad("more than one Host field"));
                }
                let span = span_of(head, value);
                let authority = parse_authority(value).ok_or(bad("invalid Host field value"))?;
                if !out.authority_from_target && !value.is_empty() {
                    out.authority = Some(Authority {
                        whole: span,
                        host: shift(span, authority.host),
                        port: authority.port.map(|p| shift(span, p)),
                    });
                }
            }
            FieldKind::ContentLength => {
                if content_length.is_some() {
                    return Err(bad("more than one Content-Length field"));
                }
                content_length = Some(parse_content_length(value)?);
            }
            FieldKind::TransferEncoding => {
                if transfer_encoding.is_some() {
                    return Err(bad("more than one Transfer-Encoding field"));
                }
                transfer_encoding = Some(value);
            }
            FieldKind::Connection => {
                for token in value.split(|&b| b == b',').map(trim_ows) {
                    close |= token.eq_ignore_ascii_case(b"close");
                    keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            FieldKind::Expect => {
                // RFC 9110 §10.1.1: 100-continue is the only expectation; a
                // server MUST ignore it in an HTTP/1.0 request.
                if !value.eq_ignore_ascii_case(b"100-continue") {
                    return Err(ProtoError::ExpectationFailed);
                }
                expect_continue = version == 1;
            }
            _ => {}
        }
        // A 64-bit Bloom filter of the names seen spares most scans.
        let bit = 1u64 << (hash & 63);
        let repeat = kind != FieldKind::Underscore
            && seen & bit != 0
            && out.fields.iter().any(|f| {
                f.hash == hash
                    && f.kind == kind
                    && head
                        .get(f.name.start..f.name.end)
                        .is_some_and(|n| n.eq_ignore_ascii_case(name))
            });
        if kind != FieldKind::Underscore {
            seen |= bit;
        }
        out.has_repeats |= repeat;
        out.fields.push(Field {
            name: span_of(head, name),
            value: span_of(head, value),
            kind,
            repeat,
            hash,
        });
    }
    if version == 1 && hosts == 0 {
        return Err(bad("HTTP/1.1 request without Host"));
    }
    // `close` wins over `keep-alive`, in any order (RFC 9112 §9.3).
    out.keep_alive = !close && (version == 1 || keep_alive);

    out.body = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(bad("both Content-Length and Transfer-Encoding")),
        (Some(_), None) if version == 0 => {
            return Err(bad("Transfer-Encoding in an HTTP/1.0 request"));
        }
        (Some(te), None) => {
            check_transfer_coding(te)?;
            BodyLength::Streamed
        }
        (None, Some(0)) | (None, None) => BodyLength::Empty,
        (None, Some(n)) => BodyLength::Known(n),
    };
    out.expect_continue = expect_continue && out.body != BodyLength::Empty;
    Ok(Some((len, out)))
}

/// Which interpreted field `name` is (`underscore`: the name has a `_`).
/// The length switch keeps the common case to one comparison.
fn classify(name: &[u8], underscore: bool) -> FieldKind {
    let is = |lit: &[u8]| name.eq_ignore_ascii_case(lit);
    match name.len() {
        _ if underscore => FieldKind::Underscore,
        4 if is(b"host") => FieldKind::Host,
        6 if is(b"cookie") => FieldKind::Cookie,
        6 if is(b"expect") => FieldKind::Expect,
        10 if is(b"connection") => FieldKind::Connection,
        12 if is(b"content-type") => FieldKind::ContentType,
        14 if is(b"content-length") => FieldKind::ContentLength,
        17 if is(b"transfer-encoding") => FieldKind::TransferEncoding,
        _ => FieldKind::Other,
    }
}

/// A hash of the name that ignores ASCII case (`| 0x20` folds letters and
/// keeps equal names equal; collisions only cost a comparison), and
/// whether the name contains `_`. Eight bytes per step: it runs over every
/// field of every request.
fn scan_name(name: &[u8]) -> (u32, bool) {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    const UNDERSCORES: u64 = 0x5f5f_5f5f_5f5f_5f5f;
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = name.len() as u64;
    let mut underscore = false;
    let mut step = |word: [u8; 8]| {
        let w = u64::from_le_bytes(word);
        // SWAR "has a zero byte" on w ^ '_' finds an underscore; the zero
        // padding of the last word never matches.
        let x = w ^ UNDERSCORES;
        underscore |= x.wrapping_sub(LOW) & !x & HIGH != 0;
        h = ((h ^ (w | FOLD)).wrapping_mul(K)).rotate_left(29);
    };
    let mut chunks = name.chunks_exact(8);
    for chunk in &mut chunks {
        step(chunk.try_into().unwrap_or_default());
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        // Little-endian, zero-padded, without a memcpy call.
        let word = rest.iter().rev().fold(0u64, |w, &b| (w << 8) | u64::from(b));
        step(word.to_le_bytes());
    }
    ((h >> 32) as u32, underscore)
}

/// Whether every line of `head` ends in CRLF. httparse allows LF only as
/// a line end, so only the byte before each line start needs a look: the
/// header lines, the final empty line, and the end.
fn crlf_line_ends(head: &[u8], headers: &[httparse::Header<'_>]) -> bool {
    let cr_before = |line_start: usize| head.get(line_start.wrapping_sub(2)) == Some(&b'\r');
    let final_line = head.len().wrapping_sub(2);
    cr_before(head.len())
        && cr_before(final_line)
        && headers.iter().all(|h| cr_before(offset(head, h.name.as_bytes())))
}

/// Strips optional whitespace (SP and HTAB only: RFC 9110 §5.6.3; never
/// `\xa0` or `\x85`).
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// `1*DIGIT` that fits in a u64; no sign, no hex, no list (RFC 9112 §6.3:
/// anything else is an unrecoverable framing error).
fn parse_content_length(value: &[u8]) -> Result<u64, ProtoError> {
    if value.is_empty() {
        return Err(bad("empty Content-Length"));
    }
    value.iter().try_fold(0u64, |n, &b| {
        if !b.is_ascii_digit() {
            return Err(bad("Content-Length is not a decimal number"));
        }
        n.checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(b - b'0')))
            .ok_or(bad("Content-Length overflows"))
    })
}

/// A request's Transfer-Encoding must be exactly one final `chunked`, as we
/// decode no other coding (RFC 9112 §6.1, §6.3).
fn check_transfer_coding(value: &[u8]) -> Result<(), ProtoError> {
    let mut last: Option<&[u8]> = None;
    let mut other_coding = false;
    for item in value.split(|&b| b == b',').map(trim_ows) {
        if item.is_empty() {
            return Err(bad("empty element in Transfer-Encoding"));
        }
        if let Some(prev) = last {
            if prev.eq_ignore_ascii_case(b"chunked") {
                return Err(bad("chunked applied more than once"));
            }
            if prev.eq_ignore_ascii_case(b"identity") || !is_token(prev) {
                return Err(bad("invalid transfer coding"));
            }
            other_coding = true;
        }
        last = Some(item);
    }
    match last {
        Some(coding) if coding.eq_ignore_ascii_case(b"chunked") => {
            if other_coding {
                Err(ProtoError::NotImplemented("transfer coding other than chunked"))
            } else {
                Ok(())
            }
        }
        _ => Err(bad("chunked is not the final transfer coding")),
    }
}

/// A 256-entry membership table: one load per byte on hot paths.
const fn byte_table(extra: &[u8]) -> [bool; 256] {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
}

static HOST_CHAR: [bool; 256] = byte_table(b"-._~!$&'()*+,;=%");

fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

/// Classifies the request target (RFC 9112 §3.2) and records path, query
/// and, for absolute-form, the authority.
fn parse_target(
    method: &[u8],
    target: &[u8],
    span: Span,
    out: &mut Http1Head,
) -> Result<(), ProtoError> {
    if target.contains(&b'#') {
        return Err(bad("fragment in request target"));
    }
    if method == b"CONNECT" {
        return Err(ProtoError::NotImplemented("CONNECT"));
    }
    if target.first() == Some(&b'/') {
        split_path_query(target, span, out);
        return Ok(());
    }
    if target == b"*" {
        if method != b"OPTIONS" {
            return Err(bad("asterisk-form target outside OPTIONS"));
        }
        out.path = Some(span);
        return Ok(());
    }
    let Some(sep) = find(target, b"://") else {
        return Err(bad("authority-form or relative target outside CONNECT"));
    };
    let (scheme, rest) = target.split_at(sep);
    let rest = rest.get(3..).unwrap_or_default();
    if scheme.eq_ignore_ascii_case(b"https") {
        out.default_port = b"443";
    } else if !scheme.eq_ignore_ascii_case(b"http") {
        return Err(bad("absolute-form target with a scheme other than http(s)"));
    }
    let auth_len = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
    let (auth, path_query) = rest.split_at(auth_len);
    if auth.is_empty() || auth.contains(&b'@') {
        return Err(bad("absolute-form target without a valid authority"));
    }
    let parsed =
        parse_authority(auth).ok_or(bad("absolute-form target without a valid authority"))?;
    let auth_span = shift(span, span_of(target, auth));
    out.authority = Some(Authority {
        whole: auth_span,
        host: shift(auth_span, parsed.host),
        port: parsed.port.map(|p| shift(auth_span, p)),
    });
    out.authority_from_target = true;
    split_path_query(path_query, shift(span, span_of(target, path_query)), out);
    if path_query.first() != Some(&b'/') {
        out.path = None;
    }
    Ok(())
}

fn split_path_query(path_query: &[u8], span: Span, out: &mut Http1Head) {
    match path_query.iter().position(|&b| b == b'?') {
        Some(q) => {
            out.path = Some(Span { start: span.start, end: span.start + q });
            out.query = Some(Span { start: span.start + q + 1, end: span.end });
        }
        None => out.path = Some(span),
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Spans (relative to the authority) of host and port.
struct HostPort {
    host: Span,
    port: Option<Span>,
}

/// Parses `uri-host [":" port]` (RFC 3986 §3.2.2) strictly enough that the
/// values are safe to use as `SERVER_NAME`/`SERVER_PORT`. An empty value
/// is valid in `Host` (RFC 9112 §3.2) and gives an empty host.
fn parse_authority(value: &[u8]) -> Option<HostPort> {
    let (host_len, rest) = if value.first() == Some(&b'[') {
        let close = value.iter().position(|&b| b == b']')?;
        let inner = value.get(1..close)?;
        let ok = !inner.is_empty() && inner.iter().all(|&b| b == b':' || HOST_CHAR[usize::from(b)]);
        if !ok {
            return None;
        }
        (close + 1, value.get(close + 1..)?)
    } else {
        let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
        let host = value.get(..end)?;
        if !host.iter().all(|&b| HOST_CHAR[usize::from(b)]) {
            return None;
        }
        (end, value.get(end..)?)
    };
    let host = Span { start: 0, end: host_len };
    match rest {
        [] => Some(HostPort { host, port: None }),
        [b':', digits @ ..] => {
            if host_len == 0 || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let port =
                (!digits.is_empty()).then_some(Span { start: host_len + 1, end: value.len() });
            Some(HostPort { host, port })
        }
        _ => None,
    }
}

/// Turns an httparse error into a status with a message naming the rule.
/// Only bytes up to the failing one are looked at, so the answer does not
/// depend on how much of the head has arrived.
fn parse_error(err: httparse::Error, window: &[u8], max_head: usize) -> ProtoError {
    match err {
        httparse::Error::Version => classify_version(window),
        httparse::Error::TooManyHeaders => ProtoError::HeadTooLarge { limit: max_head },
        httparse::Error::Token => bad("invalid method or request target"),
        httparse::Error::HeaderName => classify_name_error(window),
        httparse::Error::HeaderValue => {
            bad("invalid byte in header field value (CTL, NUL or bare CR)")
        }
        httparse::Error::NewLine => bad("invalid line ending (bare CR)"),
        httparse::Error::Status => bad("malformed request line"),
    }
}

/// `HTTP/<d>` with a major version other than 1 is a version we do not
/// speak (505, e.g. the HTTP/2 preface); anything else is malformed (400).
fn classify_version(window: &[u8]) -> ProtoError {
    let line_end = window.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(window.len());
    let line = window.get(..line_end).unwrap_or_default();
    let mut parts = line.splitn(3, |&b| b == b' ');
    let version = parts.nth(2).unwrap_or_default();
    match version {
        [b'H', b'T', b'T', b'P', b'/', major, ..] if major.is_ascii_digit() && *major != b'1' => {
            ProtoError::VersionNotSupported
        }
        _ => bad("invalid HTTP version"),
    }
}

/// Names what is wrong with the first header line httparse refused.
fn classify_name_error(window: &[u8]) -> ProtoError {
    let after_request_line =
        window.iter().position(|&b| b == b'\n').map_or(window.len(), |i| i + 1);
    let mut rest = window.get(after_request_line..).unwrap_or_default();
    loop {
        let name_len = rest.iter().position(|&b| !is_tchar(b)).unwrap_or(rest.len());
        match rest.get(name_len) {
            Some(b':') if name_len > 0 => {
                // A valid `name:`; the failure is on a later line.
                let Some(eol) = rest.iter().position(|&b| b == b'\n') else {
                    return bad("invalid header field name");
                };
                rest = rest.get(eol + 1..).unwrap_or_default();
            }
            Some(b' ' | b'\t') if name_len == 0 => {
                return bad("obs-fold or whitespace at the start of a header line");
            }
            Some(b' ' | b'\t') => return bad("whitespace between header field name and colon"),
            Some(b':') => return bad("empty header field name"),
            Some(b'\r' | b'\n') if name_len > 0 => return bad("header line without a colon"),
            _ => return bad("invalid byte in header field name"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crlf(head: &[u8]) -> bool {
        let mut slots = [const { MaybeUninit::uninit() }; 8];
        let mut req = httparse::Request::new(&mut []);
        assert!(matches!(
            req.parse_with_uninit_headers(head, &mut slots),
            Ok(httparse::Status::Complete(_))
        ));
        crlf_line_ends(head, req.headers)
    }

    #[test]
    fn bare_lf_detection() {
        assert!(crlf(b"GET / HTTP/1.1\r\nHost: a\r\nX:\r\n\r\n"));
        assert!(crlf(b"GET / HTTP/1.0\r\n\r\n"));
        assert!(!crlf(b"GET / HTTP/1.0\n\r\n"));
        assert!(!crlf(b"GET / HTTP/1.0\r\n\n"));
        assert!(!crlf(b"GET / HTTP/1.1\nHost: a\r\n\r\n"));
        assert!(!crlf(b"GET / HTTP/1.1\r\nHost: a\n\r\n"));
        assert!(!crlf(b"GET / HTTP/1.1\r\nHost: a\r\n\n"));
        assert!(!crlf(b"GET / HTTP/1.1\r\nHost: a\r\nX:\nY: b\r\n\r\n"));
        assert!(!crlf(b"GET / HTTP/1.1\r\nHost: a \t\nY: b\r\n\r\n"));
        assert!(!crlf(b"GET / HTTP/1.1\r\nHost: a\r\nY: b\t\n\r\n"));
    }

    #[test]
    fn ows_is_only_space_and_tab() {
        assert_eq!(trim_ows(b" \t a b\t "), b"a b");
        assert_eq!(trim_ows(b"\xa0chunked\xa0"), b"\xa0chunked\xa0");
        assert_eq!(trim_ows(b"   "), b"");
    }

    #[test]
    fn content_length_grammar() {
        assert_eq!(parse_content_length(b"0").ok(), Some(0));
        assert_eq!(parse_content_length(b"010").ok(), Some(10));
        assert_eq!(parse_content_length(b"18446744073709551615").ok(), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"+3",
            b"-1",
            b"3abc",
            b"0x10",
            b"1_0",
            b"5, 5",
            b"5 5",
            b"18446744073709551616",
        ] {
            assert!(parse_content_length(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn transfer_coding_rules() {
        assert!(check_transfer_coding(b"chunked").is_ok());
        assert!(check_transfer_coding(b"CHUNKED").is_ok());
        assert!(matches!(
            check_transfer_coding(b"gzip, chunked"),
            Err(ProtoError::NotImplemented(_))
        ));
        assert!(matches!(
            check_transfer_coding(b"blegh ,chunked"),
            Err(ProtoError::NotImplemented(_))
        ));
        for value in [
            &b"chunked, chunked"[..],
            b",chunked",
            b"chunked,",
            b"identity",
            b"identity, chunked",
            b"chunked, identity",
            b"xchunked",
            b"chunked-false",
            b"gzip",
            b"\xa0chunked",
            b"",
            b"ch unked, chunked",
        ] {
            assert!(
                matches!(check_transfer_coding(value), Err(ProtoError::BadRequest(_))),
                "{value:?}"
            );
        }
    }

    #[test]
    fn authority_grammar() {
        let hp = |v: &[u8]| parse_authority(v).map(|a| (a.host, a.port));
        let s = |start, end| Span { start, end };
        assert_eq!(hp(b"example.com"), Some((s(0, 11), None)));
        assert_eq!(hp(b"example.com:8080"), Some((s(0, 11), Some(s(12, 16)))));
        assert_eq!(hp(b"[::1]:8000"), Some((s(0, 5), Some(s(6, 10)))));
        assert_eq!(hp(b"[::1]"), Some((s(0, 5), None)));
        assert_eq!(hp(b"a:"), Some((s(0, 1), None)));
        assert_eq!(hp(b""), Some((s(0, 0), None)));
        for bad in [
            &b":80"[..],
            b"a:b",
            b"a:123456",
            b"a/b",
            b"a b",
            b"[::1",
            b"[]",
            b"[::1]x",
            b"a@b",
            b"a:1:2",
        ] {
            assert!(parse_authority(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn versions() {
        assert!(matches!(classify_version(b"PRI * HTTP/2.0\r\n"), ProtoError::VersionNotSupported));
        assert!(matches!(classify_version(b"GET / HTTP/3"), ProtoError::VersionNotSupported));
        assert!(matches!(classify_version(b"GET / HTTP/1.32\r\n"), ProtoError::BadRequest(_)));
        assert!(matches!(classify_version(b"GET / HTTX"), ProtoError::BadRequest(_)));
    }
}
