//! The request packet: the 4-byte header, the vars block and the checks
//! uWSGI's parser makes (`core/protocol.c: uwsgi_parse_vars`), made strict.
//!
//! The block is validated incrementally, var by var, as its bytes arrive:
//! every decision depends only on the bytes before the point where it is
//! taken and on `datasize`, so an error is reported as soon as it is
//! certain and is the same whatever the packet boundaries. The bytes stay
//! in the read buffer until the whole block is in; only then is it frozen
//! out, and the spans recorded here become views of it.

use bytes::Bytes;
use rwsgi_proto::{CgiVars, CgiVarsBuilder, Limits, ProtoError};

/// Length of the packet header: `modifier1`, `datasize` (u16 LE), `modifier2`.
pub(crate) const HEADER_LEN: usize = 4;

/// The first four bytes of an HTTP request (methods, truncated to four
/// bytes, and the HTTP/2 preface): a client speaking HTTP to a uwsgi
/// socket. uWSGI reads `GET ` as modifier1 71 and datasize 21573 and logs
/// a puzzling "invalid request block size"; we name the mistake instead.
const HTTP_MARKERS: [&[u8; 4]; 10] =
    [b"GET ", b"POST", b"PUT ", b"HEAD", b"DELE", b"OPTI", b"PATC", b"CONN", b"TRAC", b"PRI "];

const fn bad(rule: &'static str) -> ProtoError {
    ProtoError::BadRequest(rule)
}

/// Checks the packet header at the start of `buf` and returns it, or
/// `None` while more bytes are needed to decide. HTTP text is
/// recognised before `modifier1` is looked at (`G` would otherwise be
/// modifier 71), and a non-zero `modifier1` is refused as soon as the
/// bytes seen cannot begin HTTP text.
pub(crate) fn check_header(buf: &[u8], limits: &Limits) -> Result<Option<Header>, ProtoError> {
    let seen = buf.get(..HEADER_LEN).unwrap_or(buf);
    if seen.is_empty() {
        return Ok(None);
    }
    if HTTP_MARKERS.iter().any(|marker| marker.starts_with(seen)) {
        if seen.len() == HEADER_LEN {
            return Err(ProtoError::WrongProtocol(
                "HTTP request on a uwsgi socket — use http-socket",
            ));
        }
        return Ok(None);
    }
    if seen.first() != Some(&0) {
        // 5 PSGI, 7 Rack, 30 SCRIPT_NAME-stripping WSGI, 100 ping...: none
        // of them is a WSGI request we should guess at.
        return Err(ProtoError::NotImplemented("uwsgi modifier1 other than 0 (WSGI request)"));
    }
    let &[modifier1, lo, hi, modifier2] = seen else { return Ok(None) };
    let datasize = usize::from(u16::from_le_bytes([lo, hi]));
    // Refused before the block arrives: nothing is buffered for it.
    if datasize > limits.max_head {
        return Err(ProtoError::HeadTooLarge { limit: limits.max_head });
    }
    Ok(Some(Header { modifier1, modifier2, datasize }))
}

/// A checked packet header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) modifier1: u8,
    pub(crate) modifier2: u8,
    /// Size of the vars block (the body is not counted).
    pub(crate) datasize: usize,
}

/// The state of a vars block being validated as it arrives.
#[derive(Debug)]
pub(crate) struct Scanner {
    /// Offset in the block of the next var.
    pos: usize,
    vars: CgiVarsBuilder,
}

impl Scanner {
    pub(crate) fn new(limits: &Limits) -> Self {
        Scanner { pos: 0, vars: CgiVarsBuilder::new(limits) }
    }

    /// Validates the vars whose bytes are all in `block` (the part of the
    /// block received so far). Returns whether the whole block, exactly
    /// `datasize` bytes, has been read.
    pub(crate) fn scan(
        &mut self,
        block: &[u8],
        datasize: usize,
        limits: &Limits,
    ) -> Result<bool, ProtoError> {
        loop {
            let pos = self.pos;
            if pos == datasize {
                return Ok(true);
            }
            if datasize.saturating_sub(pos) < 2 {
                return Err(bad("uwsgi vars block ends inside a key length"));
            }
            if self.vars.is_full() {
                return Err(ProtoError::HeadTooLarge { limit: limits.max_head });
            }
            let Some(key_len) = read_u16(block, pos) else { return Ok(false) };
            if key_len == 0 {
                return Err(bad("zero-length key in the uwsgi vars block"));
            }
            let key = pos + 2..pos + 2 + key_len;
            if key.end > datasize {
                return Err(bad("uwsgi var key runs past the end of the vars block"));
            }
            if key.end + 2 > datasize {
                return Err(bad("uwsgi vars block ends inside a value length"));
            }
            let Some(value_len) = read_u16(block, key.end) else { return Ok(false) };
            let value = key.end + 2..key.end + 2 + value_len;
            if value.end > datasize {
                return Err(bad("uwsgi var value runs past the end of the vars block"));
            }
            if block.len() < value.end {
                return Ok(false);
            }
            self.pos = value.end;
            self.vars.push(block, key, value)?;
        }
    }

    /// The vars of the whole block, once it is complete; the scanner is
    /// ready for another block.
    pub(crate) fn finish(&mut self, block: Bytes) -> Result<CgiVars, ProtoError> {
        self.pos = 0;
        self.vars.finish(block)
    }
}

/// Reads a little-endian u16 length at `at`, if both bytes are there.
fn read_u16(block: &[u8], at: usize) -> Option<usize> {
    match block.get(at..at.checked_add(2)?)? {
        &[lo, hi] => Some(usize::from(u16::from_le_bytes([lo, hi]))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_head: 4096, max_headers: 2, max_body: Some(100) }
    }

    /// A vars block from `(key, value)` pairs.
    fn block(vars: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (key, value) in vars {
            out.extend_from_slice(&(key.len() as u16).to_le_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&(value.len() as u16).to_le_bytes());
            out.extend_from_slice(value);
        }
        out
    }

    fn header(buf: &[u8]) -> Result<Option<Header>, ProtoError> {
        check_header(buf, &limits())
    }

    #[test]
    fn header_fields() {
        let h = header(&[0, 0x24, 0x01, 7]).ok().flatten();
        assert_eq!(h, Some(Header { modifier1: 0, modifier2: 7, datasize: 0x124 }));
        assert!(matches!(header(&[0, 0x24, 0x01, 7, 99, 99]), Ok(Some(_))));
        for partial in [&[][..], &[0], &[0, 1], &[0, 1, 0]] {
            assert!(matches!(header(partial), Ok(None)), "{partial:?}");
        }
    }

    #[test]
    fn datasize_over_the_limit_is_refused_from_the_header_alone() {
        // 4097 = 0x1001.
        assert!(matches!(
            header(&[0, 0x01, 0x10, 0]),
            Err(ProtoError::HeadTooLarge { limit: 4096 })
        ));
        assert!(matches!(header(&[0, 0x00, 0x10, 0]), Ok(Some(Header { datasize: 4096, .. }))));
    }

    #[test]
    fn http_text_is_recognised_before_modifier1() {
        for marker in HTTP_MARKERS {
            assert!(
                matches!(header(marker), Err(ProtoError::WrongProtocol(_))),
                "{:?}",
                String::from_utf8_lossy(marker)
            );
            // Any shorter prefix waits: it may still be HTTP.
            for n in 1..4 {
                assert!(matches!(header(&marker[..n]), Ok(None)), "{marker:?} {n}");
            }
        }
        // Not a method prefix: a plain unsupported modifier, at once.
        for bad in
            [&b"GETX"[..], b"GEX", b"get ", b"\x05", b"\xff\x00\x00\x00", b"X", b"H\x00\x00\x00"]
        {
            assert!(matches!(header(bad), Err(ProtoError::NotImplemented(_))), "{bad:?}");
        }
    }

    #[test]
    fn scanning_resumes_where_it_stopped() {
        let whole = block(&[(b"REQUEST_METHOD", b"GET"), (b"A", b"1")]);
        let mut scanner = Scanner::new(&limits());
        for n in 0..whole.len() {
            assert!(matches!(scanner.scan(&whole[..n], whole.len(), &limits()), Ok(false)), "{n}");
        }
        assert!(matches!(scanner.scan(&whole, whole.len(), &limits()), Ok(true)));
        let vars = scanner.finish(Bytes::from(whole)).ok();
        assert!(vars.is_some_and(|v| v.len() == 2 && v.var(b"A") == Some(&b"1"[..])));
        // Ready for the next block.
        assert_eq!(scanner.pos, 0);
    }

    #[test]
    fn the_var_count_is_capped_before_the_next_var_is_read() {
        let limits = Limits { max_headers: 0, ..limits() };
        let many: Vec<(&[u8], &[u8])> = std::iter::repeat_n((&b"K"[..], &b""[..]), 65).collect();
        let whole = block(&many);
        assert!(matches!(
            Scanner::new(&limits).scan(&whole, whole.len(), &limits),
            Err(ProtoError::HeadTooLarge { .. })
        ));
    }
    #[test]
    fn read_u16_is_little_endian_and_bounded() {
        assert_eq!(read_u16(&[0x34, 0x12], 0), Some(0x1234));
        assert_eq!(read_u16(&[0, 0x34, 0x12], 1), Some(0x1234));
        assert_eq!(read_u16(&[0x34], 0), None);
        assert_eq!(read_u16(&[0x34, 0x12], 1), None);
        assert_eq!(read_u16(&[0x34, 0x12], usize::MAX), None);
    }
}
