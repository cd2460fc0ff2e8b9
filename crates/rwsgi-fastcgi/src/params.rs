//! Name-value pairs (FastCGI 1.0 §3.4), as PARAMS and GET_VALUES carry
//! them: `nameLength`, `valueLength`, `nameData`, `valueData`, each length
//! one byte when below 128, else four bytes big-endian with the high bit
//! set (a 31-bit value).
//!
//! The PARAMS stream is parsed once it is complete, as one block: a pair
//! may straddle records (legal, and split by Apache's `mod_proxy_fcgi`),
//! and the block is at most `buffer-size` bytes. Every length is checked
//! against the bytes that remain before anything is sliced, so a
//! 0x7fffffff length costs nothing but the error. What the pairs mean
//! (which must be unique, the environ) is [`CgiVars`]'s business, shared
//! with uwsgi.

use std::ops::Range;

use bytes::Bytes;
use rwsgi_proto::{BodyLength, CgiVars, CgiVarsBuilder, Limits, ProtoError};

/// Where one pair's name and value are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pair {
    pub(crate) name: Range<usize>,
    pub(crate) value: Range<usize>,
}

/// Reads one length at `pos` of `block`: `Some((length, next position))`,
/// or `None` when its bytes run past the end of the block.
pub(crate) fn read_length(block: &[u8], pos: usize) -> Option<(usize, usize)> {
    let first = *block.get(pos)?;
    if first < 0x80 {
        return Some((usize::from(first), pos + 1));
    }
    let &[b0, b1, b2, b3] = block.get(pos..)?.first_chunk::<4>()?;
    let len = u32::from_be_bytes([b0 & 0x7f, b1, b2, b3]);
    Some((usize::try_from(len).ok()?, pos + 4))
}

/// Reads the pair at `pos`: its ranges, or `Err(rule)` when a length or
/// the bytes it announces run past the end of `block`.
pub(crate) fn read_pair(block: &[u8], pos: usize) -> Result<Pair, &'static str> {
    let (name_len, pos) =
        read_length(block, pos).ok_or("FastCGI name length runs past the end of the params")?;
    let (value_len, pos) =
        read_length(block, pos).ok_or("FastCGI value length runs past the end of the params")?;
    // Against what remains, before any arithmetic on the lengths.
    let remaining = block.len().saturating_sub(pos);
    if name_len > remaining {
        return Err("FastCGI param name runs past the end of the params");
    }
    if value_len > remaining - name_len {
        return Err("FastCGI param value runs past the end of the params");
    }
    let name = pos..pos + name_len;
    let value = name.end..name.end + value_len;
    Ok(Pair { name, value })
}

/// Parses and validates a complete PARAMS block: every pair inside it,
/// then [`CgiVarsBuilder`]'s rules (no empty name, at most
/// `max_headers + 64` pairs, exactly one non-empty `REQUEST_METHOD`, at
/// most one valid `CONTENT_LENGTH` within `limit-post`). Returns the
/// params and the body framing `CONTENT_LENGTH` announces: absent or
/// empty (nginx sends it empty for a GET, and for a chunked client body it
/// streams with `fastcgi_request_buffering off`), the STDIN stream
/// decides; `0`, no body; else that many bytes.
pub(crate) fn scan(block: Bytes, limits: &Limits) -> Result<(CgiVars, BodyLength), ProtoError> {
    let mut builder = CgiVarsBuilder::new(limits);
    let mut pos = 0;
    while pos < block.len() {
        if builder.is_full() {
            return Err(ProtoError::HeadTooLarge { limit: limits.max_head });
        }
        let pair = read_pair(&block, pos).map_err(ProtoError::BadRequest)?;
        pos = pair.value.end;
        builder.push(&block, pair.name, pair.value)?;
    }
    let vars = builder.finish(block)?;
    let body = match vars.content_length() {
        None => BodyLength::Streamed,
        Some(0) => BodyLength::Empty,
        Some(n) => BodyLength::Known(n),
    };
    Ok((vars, body))
}

/// The names of a GET_VALUES body, leniently: at most `max` of them, and
/// none after a pair that runs past the end (a management query is
/// answered with what could be read, never refused).
pub(crate) fn query_names(content: &[u8], max: usize) -> impl Iterator<Item = &[u8]> {
    let mut pos = 0;
    std::iter::from_fn(move || {
        let pair = read_pair(content, pos).ok()?;
        pos = pair.value.end;
        content.get(pair.name)
    })
    .take(max)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits { max_head: 4096, max_headers: 2, max_body: Some(100) }
    }

    fn len(n: usize) -> Vec<u8> {
        if n < 128 { vec![n as u8] } else { (n as u32 | 0x8000_0000).to_be_bytes().to_vec() }
    }

    fn block(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, value) in pairs {
            out.extend(len(name.len()));
            out.extend(len(value.len()));
            out.extend_from_slice(name);
            out.extend_from_slice(value);
        }
        out
    }

    fn scan_with(block: &[u8], limits: &Limits) -> Result<(CgiVars, BodyLength), ProtoError> {
        scan(Bytes::copy_from_slice(block), limits)
    }

    fn rejected(block: &[u8]) -> String {
        match scan_with(block, &limits()) {
            Err(err) => err.to_string(),
            Ok(s) => panic!("accepted: {s:?}"),
        }
    }

    fn body(pairs: &[(&[u8], &[u8])], limits: &Limits) -> Result<BodyLength, ProtoError> {
        let mut all: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"POST")];
        all.extend_from_slice(pairs);
        scan_with(&block(&all), limits).map(|(_, body)| body)
    }

    #[test]
    fn lengths_in_both_forms() {
        assert_eq!(read_length(&[0x7f], 0), Some((127, 1)));
        assert_eq!(read_length(&[0, 0x05], 1), Some((5, 2)));
        assert_eq!(read_length(&[0x80, 0, 0, 0x80], 0), Some((128, 4)));
        assert_eq!(read_length(&[0x80, 0, 0, 0], 0), Some((0, 4)));
        assert_eq!(read_length(&[0xff, 0xff, 0xff, 0xff], 0), Some((0x7fff_ffff, 4)));
        assert_eq!(read_length(&[0x80, 0, 0], 0), None);
        assert_eq!(read_length(&[], 0), None);
        assert_eq!(read_length(&[1], 1), None);
        assert_eq!(read_length(&[1], usize::MAX), None);
    }

    #[test]
    fn the_spec_examples() {
        // protocols.md §b: SCRIPT_NAME=/x; HTTP_COOKIE with a 4-byte length.
        let example = b"\x0b\x02SCRIPT_NAME/x";
        assert_eq!(&example[..], &block(&[(b"SCRIPT_NAME", b"/x")])[..]);
        let cookie = vec![b'c'; 200];
        let two = [&example[..], b"\x0b\x80\x00\x00\xc8HTTP_COOKIE", &cookie].concat();
        let mut with_method = block(&[(b"REQUEST_METHOD", b"GET")]);
        with_method.extend_from_slice(&two);
        let (vars, body) = scan_with(&with_method, &limits()).unwrap_or_else(|e| panic!("{e}"));
        let pairs: Vec<(&[u8], &[u8])> = vars.iter().collect();
        assert_eq!(
            pairs,
            [
                (&b"REQUEST_METHOD"[..], &b"GET"[..]),
                (b"SCRIPT_NAME", b"/x"),
                (b"HTTP_COOKIE", &cookie)
            ]
        );
        assert_eq!(body, BodyLength::Streamed);
    }

    #[test]
    fn overrunning_lengths_are_refused_before_slicing() {
        let get = block(&[(b"REQUEST_METHOD", b"GET")]);
        for (tail, rule) in [
            (&b"\x05"[..], "value length"),
            (b"\x85\x00\x00", "name length"),
            (b"\x01\x80\x00", "value length"),
            (b"\x05\x00ab", "name runs past"),
            (b"\x01\x05Kab", "value runs past"),
            (b"\x02\x02ABc", "value runs past"),
            (b"\xff\xff\xff\xff\x00", "name runs past"),
            (b"\x01\xff\xff\xff\xffK", "value runs past"),
            (b"\x00\x00", "zero-length"),
            (b"\x00\x01v", "zero-length"),
        ] {
            let input = [&get[..], tail].concat();
            let message = rejected(&input);
            assert!(message.contains(rule), "{tail:?}: {message}");
        }
    }

    #[test]
    fn method_and_content_length_rules() {
        assert!(rejected(&block(&[(b"A", b"1")])).contains("without REQUEST_METHOD"));
        assert!(rejected(&block(&[(b"REQUEST_METHOD", b"")])).contains("empty REQUEST_METHOD"));
        assert!(
            rejected(&block(&[(b"REQUEST_METHOD", b"GET"), (b"REQUEST_METHOD", b"POST")]))
                .contains("different values")
        );
        assert!(
            rejected(&block(&[
                (b"REQUEST_METHOD", b"GET"),
                (b"CONTENT_LENGTH", b"1"),
                (b"CONTENT_LENGTH", b"2")
            ]))
            .contains("different values")
        );
        assert!(rejected(&[]).contains("without"));
    }

    #[test]
    fn pair_count_cap_is_max_headers_plus_64() {
        let mut pairs: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
        pairs.extend(std::iter::repeat_n((&b"K"[..], &b""[..]), 65));
        assert!(scan_with(&block(&pairs), &limits()).is_ok());
        pairs.push((b"K", b""));
        assert!(matches!(
            scan_with(&block(&pairs), &limits()),
            Err(ProtoError::HeadTooLarge { limit: 4096 })
        ));
        // Decided before the next pair is read: even a broken one.
        let mut broken = block(&pairs[..66]);
        broken.push(0x7f);
        assert!(matches!(scan_with(&broken, &limits()), Err(ProtoError::HeadTooLarge { .. })));
    }

    #[test]
    fn content_length_decides_the_body() {
        let l = limits();
        let unlimited = Limits { max_body: None, ..l };
        assert_eq!(body(&[], &l).ok(), Some(BodyLength::Streamed));
        assert_eq!(body(&[(b"CONTENT_LENGTH", b"")], &l).ok(), Some(BodyLength::Streamed));
        assert_eq!(body(&[(b"CONTENT_LENGTH", b"0")], &l).ok(), Some(BodyLength::Empty));
        assert_eq!(body(&[(b"CONTENT_LENGTH", b"000")], &l).ok(), Some(BodyLength::Empty));
        assert_eq!(body(&[(b"CONTENT_LENGTH", b"007")], &l).ok(), Some(BodyLength::Known(7)));
        assert_eq!(body(&[(b"CONTENT_LENGTH", b"100")], &l).ok(), Some(BodyLength::Known(100)));
        assert!(matches!(
            body(&[(b"CONTENT_LENGTH", b"101")], &l),
            Err(ProtoError::BodyTooLarge { limit: 100 })
        ));
        assert_eq!(
            body(&[(b"CONTENT_LENGTH", b"18446744073709551615")], &unlimited).ok(),
            Some(BodyLength::Known(u64::MAX))
        );
        for garbage in [
            &b"+5"[..],
            b"-1",
            b"5x",
            b" 5",
            b"0x10",
            b"18446744073709551616",
            b"000000000000000000001",
        ] {
            assert!(
                matches!(
                    body(&[(b"CONTENT_LENGTH", garbage)], &unlimited),
                    Err(ProtoError::BadRequest(_))
                ),
                "{garbage:?}"
            );
        }
    }

    #[test]
    fn query_names_are_capped_and_lenient() {
        let content = block(&[(b"FCGI_MAX_CONNS", b""), (b"X", b""), (b"FCGI_MPXS_CONNS", b"")]);
        let names: Vec<&[u8]> = query_names(&content, 32).collect();
        assert_eq!(names, [&b"FCGI_MAX_CONNS"[..], b"X", b"FCGI_MPXS_CONNS"]);
        assert_eq!(query_names(&content, 2).count(), 2);
        let broken = [&content[..], b"\x20\x00abc"].concat();
        assert_eq!(query_names(&broken, 32).count(), 3);
        assert_eq!(query_names(b"", 32).count(), 0);
        // A zero-length name is just not a name we know.
        assert_eq!(query_names(b"\x00\x00", 32).collect::<Vec<_>>(), [&b""[..]]);
    }
}
