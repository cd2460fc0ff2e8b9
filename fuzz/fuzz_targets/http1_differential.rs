//! A differential target for HTTP/1.1 framing: every input is decided by
//! rwsgi's codec and by an independent reference written here from RFC
//! 9112 (with rwsgi's documented stricter choices, listed in
//! `fuzz/README.md`), and they must agree on where each request ends, what
//! its body is, and whether the stream is refused. A disagreement is a
//! smuggling risk (two parsers framing the same bytes differently) or a
//! request refused for no rule.
//!
//! Inputs are built from the fuzzer's bytes by a grammar that aims at
//! framing: a few requests whose request lines, header lines and bodies
//! are drawn from valid and broken variants (line endings, `Content-Length`
//! spellings, `Transfer-Encoding` lists, chunk sizes and extensions,
//! control bytes in values, obs-fold), so most inputs reach the rules that
//! matter instead of failing at the first byte.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::arbitrary::Unstructured;
use libfuzzer_sys::fuzz_target;
use rwsgi_http1::Http1Codec;
use rwsgi_proto::{Frame, Limits, OutBuf, ServerCodec};
use rwsgi_testkit::{DATE, response_head};
use tokio_util::codec::Decoder;

// ---------------------------------------------------------------------------
// The generator
// ---------------------------------------------------------------------------

fn pick<'a, T: ?Sized>(u: &mut Unstructured<'_>, items: &'a [&'a T]) -> &'a T {
    items[u.choose_index(items.len()).unwrap_or(0)]
}

/// A line ending: mostly right, sometimes not.
fn eol(u: &mut Unstructured<'_>) -> &'static str {
    match u.int_in_range(0u8..=19).unwrap_or(0) {
        0 => "\n",
        1 => "\r",
        2 => "\r\n ",
        _ => "\r\n",
    }
}

fn header(u: &mut Unstructured<'_>, out: &mut Vec<u8>) {
    const NAMES: &[&str] = &[
        "Host",
        "Content-Length",
        "Transfer-Encoding",
        "X-A",
        "Connection",
        "content-length",
        "transfer-encoding",
        "Content-Length ",
        "X-A\t",
    ];
    const LENGTHS: &[&str] = &[
        "0",
        "1",
        "5",
        "10",
        "+5",
        "05",
        "5, 5",
        "5,6",
        "0x5",
        "",
        "-1",
        " 5 ",
        "5 5",
        "18446744073709551616",
        "18446744073709551615",
        "3\t",
    ];
    const CODINGS: &[&str] = &[
        "chunked",
        "Chunked",
        "gzip, chunked",
        "chunked, gzip",
        "identity",
        " chunked",
        "chunked ",
        "chunked,",
        ",chunked",
        "chunked\tx",
        "",
    ];
    const HOSTS: &[&str] = &["a", "a:80", "", "a b", "a:", "[::1]:8", "user@a", "a:b"];
    const CONNECTIONS: &[&str] = &["close", "keep-alive", "Close", "x, close", "upgrade"];
    let name = pick(u, NAMES);
    let value: Vec<u8> = match name.trim().to_ascii_lowercase().as_str() {
        "content-length" => pick(u, LENGTHS).into(),
        "transfer-encoding" => pick(u, CODINGS).into(),
        "host" => pick(u, HOSTS).into(),
        "connection" => pick(u, CONNECTIONS).into(),
        _ => {
            let n = u.int_in_range(0usize..=6).unwrap_or(0);
            (0..n).map(|_| u.arbitrary::<u8>().unwrap_or(b'v')).collect()
        }
    };
    out.extend(name.as_bytes());
    out.push(b':');
    if u.ratio(3u8, 4).unwrap_or(true) {
        out.push(b' ');
    }
    out.extend(value);
    out.extend(eol(u).as_bytes());
}

fn chunked_body(u: &mut Unstructured<'_>, out: &mut Vec<u8>) {
    let chunks = u.int_in_range(0usize..=3).unwrap_or(0);
    for _ in 0..chunks {
        let len = u.int_in_range(1usize..=12).unwrap_or(1);
        let size = match u.int_in_range(0u8..=9).unwrap_or(0) {
            0 => format!("{len:X}"),
            1 => format!("0{len:x}"),
            2 => format!("+{len:x}"),
            3 => format!("{:x}", len + 1),
            4 => format!("{len:x} "),
            _ => format!("{len:x}"),
        };
        out.extend(size.as_bytes());
        match u.int_in_range(0u8..=7).unwrap_or(0) {
            0 => out.extend(b";a=b"),
            1 => out.extend(b";"),
            2 => out.extend(b"; a"),
            3 => out.extend(b";a=\"q\""),
            _ => {}
        }
        out.extend(eol(u).as_bytes());
        out.extend(std::iter::repeat_n(b'x', len));
        out.extend(eol(u).as_bytes());
    }
    out.extend(if u.ratio(1u8, 8).unwrap_or(false) { &b"00"[..] } else { b"0" });
    out.extend(eol(u).as_bytes());
    if u.ratio(1u8, 4).unwrap_or(false) {
        out.extend(b"T: v");
        out.extend(eol(u).as_bytes());
    }
    if u.ratio(7u8, 8).unwrap_or(true) {
        out.extend(eol(u).as_bytes());
    }
}

fn request(u: &mut Unstructured<'_>, out: &mut Vec<u8>) {
    const METHODS: &[&str] = &["GET", "POST", "PUT", "HEAD", "OPTIONS", "G T"];
    const TARGETS: &[&str] = &["/", "/a?b=c", "*", "http://h/x", "https://h:1/", "h:80"];
    const VERSIONS: &[&str] = &["HTTP/1.1", "HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 "];
    out.extend(
        format!("{} {} {}", pick(u, METHODS), pick(u, TARGETS), pick(u, VERSIONS)).as_bytes(),
    );
    out.extend(eol(u).as_bytes());
    let headers = u.int_in_range(0usize..=5).unwrap_or(0);
    let mut chunked = false;
    for _ in 0..headers {
        let start = out.len();
        header(u, out);
        chunked |= out[start..].to_ascii_lowercase().starts_with(b"transfer-encoding");
    }
    out.extend(eol(u).as_bytes());
    if chunked && u.ratio(3u8, 4).unwrap_or(true) {
        chunked_body(u, out);
    } else {
        let n = u.int_in_range(0usize..=12).unwrap_or(0);
        out.extend(std::iter::repeat_n(b'b', n));
    }
}

// ---------------------------------------------------------------------------
// The reference: RFC 9112 framing, written apart from rwsgi_http1
// ---------------------------------------------------------------------------

/// What a decoder made of a stream.
#[derive(Debug, PartialEq, Eq)]
struct Decision {
    /// The body of each complete request, in order.
    bodies: Vec<Vec<u8>>,
    /// How the stream ended after them.
    end: End,
}

#[derive(Debug, PartialEq, Eq, Clone, Copy)]
enum End {
    /// Every byte belonged to complete requests (or was after the last
    /// one the connection allows).
    Clean,
    /// A request was cut short by the end of the input.
    Incomplete,
    /// Refused: a rule was broken.
    Refused,
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// One CRLF-terminated line at `pos`: `Err(true)` for a bare CR or LF (a
/// rule broken), `Err(false)` when the input ends first.
fn line(input: &[u8], pos: usize) -> Result<(&[u8], usize), bool> {
    let rest = input.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        None => Err(false),
        Some(i) if rest[i] == b'\n' => Err(true),
        Some(i) => match rest.get(i + 1) {
            None => Err(false),
            Some(b'\n') => Ok((&rest[..i], pos + i + 2)),
            Some(_) => Err(true),
        },
    }
}

fn is_field_value(value: &[u8]) -> bool {
    value.iter().all(|&b| b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80)
}

fn valid_host(value: &[u8]) -> bool {
    let text = String::from_utf8_lossy(value);
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !text.starts_with('[') || host.ends_with(']') => (host, Some(port)),
        _ => (&*text, None),
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b == b':' || b.is_ascii_hexdigit()))
    } else {
        host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=%".contains(&b))
    };
    let port_ok = port.is_none_or(|p| {
        p.len() <= 5 && p.bytes().all(|b| b.is_ascii_digit()) && (!p.is_empty() || !host.is_empty())
    });
    host_ok && port_ok
}

fn valid_target(method: &[u8], target: &[u8]) -> bool {
    let chars_ok = target.iter().all(|&b| (0x21..=0x7e).contains(&b));
    if !chars_ok || target.is_empty() {
        return false;
    }
    if target == b"*" {
        return method == b"OPTIONS";
    }
    if target.starts_with(b"/") {
        return true;
    }
    let lower = target.to_ascii_lowercase();
    for scheme in [&b"http://"[..], b"https://"] {
        if let Some(rest) = lower.strip_prefix(scheme) {
            let end = rest.iter().position(|&b| b == b'/' || b == b'?').unwrap_or(rest.len());
            return end > 0
                && !rest[..end].contains(&b'@')
                && valid_host(&target[scheme.len()..scheme.len() + end]);
        }
    }
    false
}

/// The part of a line that has arrived, with no line end yet: broken
/// already (`Refused`, as a decoder that looks at each byte as it comes
/// says), or perhaps fine once the rest arrives (`Incomplete`).
fn prefix(input: &[u8], pos: usize, kind: Line) -> End {
    let fragment = input.get(pos..).unwrap_or_default();
    let fragment = fragment.strip_suffix(b"\r").unwrap_or(fragment);
    let broken = match kind {
        Line::Request => {
            let mut parts = fragment.split(|&b| b == b' ');
            let method = parts.next().unwrap_or_default();
            let target = parts.next();
            !method.iter().all(|&b| is_tchar(b))
                || (target.is_some() && method.is_empty())
                || target.is_some_and(|t| !t.iter().all(|&b| (0x21..=0x7e).contains(&b)))
                || parts.count() > 1
        }
        Line::Field => match fragment.first() {
            Some(b' ' | b'\t') => true,
            _ => match fragment.iter().position(|&b| b == b':') {
                Some(colon) => {
                    colon == 0
                        || !fragment[..colon].iter().all(|&b| is_tchar(b))
                        || !is_field_value(&fragment[colon + 1..])
                }
                None => !fragment.iter().all(|&b| is_tchar(b)),
            },
        },
        Line::ChunkSize => {
            let (size, ext) = match fragment.iter().position(|&b| b == b';') {
                Some(i) => (&fragment[..i], &fragment[i + 1..]),
                None => (fragment, &[][..]),
            };
            let digits = size.iter().take_while(|b| b.is_ascii_hexdigit()).count();
            // Hex digits, then perhaps BWS (before a ";" yet to come).
            !size[digits..].iter().all(|&b| b == b' ' || b == b'\t')
                || digits > 16
                || ext.iter().any(|&b| b < 0x20 || b == 0x7f)
        }
    };
    if broken { End::Refused } else { End::Incomplete }
}

#[derive(Clone, Copy)]
enum Line {
    Request,
    Field,
    ChunkSize,
}

/// Decides a whole stream.
fn reference(input: &[u8]) -> Decision {
    let mut bodies = Vec::new();
    let mut pos = 0;
    loop {
        // RFC 9112 §2.2: empty lines before a request line are ignored.
        while input.get(pos..pos + 2) == Some(b"\r\n") {
            pos += 2;
        }
        if pos == input.len() {
            return Decision { bodies, end: End::Clean };
        }
        match reference_request(input, pos) {
            Ok((body, next, keep_alive)) => {
                bodies.push(body);
                pos = next;
                if !keep_alive {
                    return Decision { bodies, end: End::Clean };
                }
            }
            Err(end) => return Decision { bodies, end },
        }
    }
}

/// One request at `pos`: its body, where the next begins, and whether
/// the connection may go on.
fn reference_request(input: &[u8], pos: usize) -> Result<(Vec<u8>, usize, bool), End> {
    let cut = |at: usize, kind: Line| {
        move |broken: bool| if broken { End::Refused } else { prefix(input, at, kind) }
    };
    let (request_line, mut pos) = line(input, pos).map_err(cut(pos, Line::Request))?;
    let mut parts = request_line.split(|&b| b == b' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(End::Refused);
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) || !valid_target(method, target) {
        return Err(End::Refused);
    }
    let http11 = match version {
        b"HTTP/1.1" => true,
        b"HTTP/1.0" => false,
        _ => return Err(End::Refused),
    };
    let mut hosts = Vec::new();
    let mut lengths = Vec::new();
    let mut codings = Vec::new();
    // "close" anywhere wins; HTTP/1.0 closes unless it asks to keep alive.
    let (mut closes, mut keep_alive) = (false, false);
    loop {
        let (field, next) = line(input, pos).map_err(cut(pos, Line::Field))?;
        pos = next;
        if field.is_empty() {
            break;
        }
        if field[0] == b' ' || field[0] == b'\t' {
            return Err(End::Refused); // obs-fold
        }
        let colon = field.iter().position(|&b| b == b':').ok_or(End::Refused)?;
        let (name, value) = (&field[..colon], &field[colon + 1..]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) || !is_field_value(value) {
            return Err(End::Refused);
        }
        let value = value.trim_ascii();
        match name.to_ascii_lowercase().as_slice() {
            b"host" => hosts.push(value.to_vec()),
            b"content-length" => lengths.push(value.to_vec()),
            b"transfer-encoding" => codings
                .extend(value.split(|&b| b == b',').map(|c| c.trim_ascii().to_ascii_lowercase())),
            b"connection" => {
                for token in
                    value.split(|&b| b == b',').map(|t| t.trim_ascii().to_ascii_lowercase())
                {
                    match token.as_slice() {
                        b"close" => closes = true,
                        b"keep-alive" => keep_alive = true,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let close = closes || (!http11 && !keep_alive);
    // Host: once on HTTP/1.1, and well formed wherever it is.
    if (http11 && hosts.len() != 1) || hosts.len() > 1 || hosts.iter().any(|h| !valid_host(h)) {
        return Err(End::Refused);
    }
    let body_start = pos;
    if !codings.is_empty() {
        // Only a lone, final "chunked", on HTTP/1.1, without Content-Length.
        if !http11 || !lengths.is_empty() || codings.len() != 1 || codings[0] != b"chunked" {
            return Err(End::Refused);
        }
        let (body, next) = reference_chunked(input, body_start)?;
        return Ok((body, next, !close));
    }
    let length = match lengths.as_slice() {
        [] => 0,
        [one] if !one.is_empty() && one.iter().all(u8::is_ascii_digit) => {
            std::str::from_utf8(one).ok().and_then(|t| t.parse::<u64>().ok()).ok_or(End::Refused)?
        }
        _ => return Err(End::Refused),
    };
    let end = usize::try_from(length)
        .ok()
        .and_then(|n| body_start.checked_add(n))
        .ok_or(End::Incomplete)?;
    let body = input.get(body_start..end).ok_or(End::Incomplete)?;
    Ok((body.to_vec(), end, !close))
}

fn reference_chunked(input: &[u8], mut pos: usize) -> Result<(Vec<u8>, usize), End> {
    let cut = |at: usize, kind: Line| {
        move |broken: bool| if broken { End::Refused } else { prefix(input, at, kind) }
    };
    let mut body = Vec::new();
    loop {
        let (size_line, next) = line(input, pos).map_err(cut(pos, Line::ChunkSize))?;
        // BWS may precede a chunk extension's ";", and only then.
        let (size, ext) = match size_line.iter().position(|&b| b == b';') {
            Some(i) => (size_line[..i].trim_ascii_end(), Some(&size_line[i + 1..])),
            None => (size_line, None),
        };
        if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
            return Err(End::Refused);
        }
        // Extensions are skipped, as many servers do, but not control bytes.
        if ext.is_some_and(|ext| ext.iter().any(|&b| b < 0x20 || b == 0x7f)) {
            return Err(End::Refused);
        }
        let size = u64::from_str_radix(std::str::from_utf8(size).map_err(|_| End::Refused)?, 16)
            .map_err(|_| End::Refused)?;
        pos = next;
        if size == 0 {
            // Trailer fields, then the empty line.
            loop {
                let (field, next) = line(input, pos).map_err(cut(pos, Line::Field))?;
                pos = next;
                if field.is_empty() {
                    return Ok((body, pos));
                }
                let colon = field.iter().position(|&b| b == b':').ok_or(End::Refused)?;
                if colon == 0
                    || !field[..colon].iter().all(|&b| is_tchar(b))
                    || !field[colon + 1..].iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
                {
                    return Err(End::Refused);
                }
            }
        }
        let end =
            usize::try_from(size).ok().and_then(|n| pos.checked_add(n)).ok_or(End::Incomplete)?;
        let data = input.get(pos..end).ok_or(End::Incomplete)?;
        body.extend_from_slice(data);
        pos = end;
        match input.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            Some(_) => return Err(End::Refused),
            None if input.get(pos) == Some(&b'\r') || input.get(pos).is_none() => {
                return Err(End::Incomplete);
            }
            None => return Err(End::Refused),
        }
    }
}

// ---------------------------------------------------------------------------
// rwsgi's codec, seen the same way
// ---------------------------------------------------------------------------

fn rwsgi(input: &[u8]) -> Decision {
    let limits = Limits { max_head: 1 << 20, max_headers: 100, max_body: None };
    let mut codec = Http1Codec::new(limits);
    let mut buf = BytesMut::from(input);
    let mut bodies = Vec::new();
    let mut current: Option<Vec<u8>> = None;
    let mut eof = false;
    loop {
        let frame = if eof { codec.decode_eof(&mut buf) } else { codec.decode(&mut buf) };
        match frame {
            Ok(Some(Frame::Head(_))) => current = Some(Vec::new()),
            Ok(Some(Frame::Data(data))) => {
                current.get_or_insert_with(Vec::new).extend_from_slice(&data)
            }
            Ok(Some(Frame::End)) => {
                bodies.extend(current.take());
                // The core answers before it reads on; the answer says
                // whether the connection goes on (`Connection: close`, 1.0).
                let mut out = OutBuf::new();
                codec.encode_head(&response_head(200, "200 OK", &[], Some(0)), DATE, &mut out);
                if !codec.encode_end(true, &mut out) {
                    return Decision { bodies, end: End::Clean };
                }
            }
            Ok(Some(Frame::Abort)) => unreachable!("HTTP has no abort"),
            Ok(None) if !eof => eof = true,
            Ok(None) => {
                let end =
                    if current.is_some() || !buf.is_empty() { End::Incomplete } else { End::Clean };
                return Decision { bodies, end };
            }
            Err(err) => {
                // A request cut by the end of the input is no broken rule.
                let end = if eof && matches!(err, rwsgi_proto::ProtoError::UnexpectedEof) {
                    End::Incomplete
                } else {
                    End::Refused
                };
                return Decision { bodies, end };
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let mut input = Vec::new();
    let requests = u.int_in_range(1usize..=3).unwrap_or(1);
    for _ in 0..requests {
        request(&mut u, &mut input);
    }
    // Sometimes cut the stream short.
    if u.ratio(1u8, 5).unwrap_or(false) {
        let cut = u.int_in_range(0..=input.len()).unwrap_or(input.len());
        input.truncate(cut);
    }
    let expected = reference(&input);
    let got = rwsgi(&input);
    // The same requests with the same bodies, then the same kind of end.
    // Refused and Incomplete are one kind here: at the end of the input
    // neither serves another request, and a decoder may refuse a broken
    // line at its first bad byte or wait for its end (fuzz/README.md).
    let same_end = (got.end == End::Clean) == (expected.end == End::Clean);
    assert!(
        got.bodies == expected.bodies && same_end,
        "rwsgi and the reference disagree on {:?}:\n rwsgi:     {got:?}\n reference: {expected:?}",
        String::from_utf8_lossy(&input)
    );
});
