//! A response head as an application gives it: text, checked as it is
//! copied in.

use crate::response::{check_name, control_in, is_control, parse_length};
use crate::{ProtoError, ResponseHead};
use bytes::{BufMut, Bytes, BytesMut};

/// Builds the [`ResponseHead`] an app gives as a status line and `(name,
/// value)` pairs of text (a WSGI app's `str`s). Each piece is encoded as
/// latin-1 and checked (PEP 3333; RFC 9110 §5) as it is copied into one
/// buffer the head's pieces share: `NNN reason` with a code from 100 and no
/// control characters; token names; values without control characters
/// (tab aside); no hop-by-hop header; at most one `Content-Length` value,
/// of digits. Whatever passes cannot split or corrupt a response on any
/// protocol.
#[derive(Debug)]
pub struct AppHead {
    text: BytesMut,
    head: ResponseHead,
}

impl AppHead {
    /// Starts with the status line, before `headers` headers.
    pub fn new(status: &str, headers: usize) -> Result<AppHead, ProtoError> {
        let invalid =
            || ProtoError::BadResponse(format!("invalid status {status:?}: want '200 OK'"));
        let mut text = BytesMut::with_capacity(256);
        let status_line = match COMMON_STATUS.iter().find(|line| **line == status) {
            Some(line) => Bytes::from_static(line.as_bytes()),
            None => {
                push_text(&mut text, status).map_err(|_| invalid())?;
                if text.len() == 3 {
                    text.put_u8(b' ');
                }
                text.split().freeze()
            }
        };
        let code = match &status_line[..] {
            [a, b, c, b' ', ..] if [a, b, c].iter().all(|d| d.is_ascii_digit()) => {
                u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
            }
            _ => return Err(invalid()),
        };
        if code < 100 {
            return Err(ProtoError::BadResponse(format!("invalid status code {code}")));
        }
        // Room for the Content-Length the server adds when the app sent none.
        let headers = Vec::with_capacity(headers + 1);
        let head = ResponseHead { status: code, status_line, headers, content_length: None };
        Ok(AppHead { text, head })
    }

    /// Adds one header.
    pub fn header(&mut self, name: &str, value: &str) -> Result<(), ProtoError> {
        // Token characters are ASCII: a name that passes is its own latin-1.
        let name = name.as_bytes();
        check_name(name)?;
        let is_length = name.eq_ignore_ascii_case(b"content-length");
        let name = match common_name(name) {
            Some(name) => Bytes::from_static(name),
            None => {
                self.text.extend_from_slice(name);
                self.text.split().freeze()
            }
        };
        push_text(&mut self.text, value).map_err(|refused| match refused {
            Refused::Control => control_in(&name),
            Refused::NotLatin1 => ProtoError::BadResponse(format!(
                "response header {} is not latin-1",
                String::from_utf8_lossy(&name)
            )),
        })?;
        let value = self.text.split().freeze();
        if is_length {
            let length = parse_length(&value).ok_or_else(|| {
                ProtoError::BadResponse("invalid Content-Length in the response".into())
            })?;
            if self.head.content_length.is_some_and(|l| l != length) {
                return Err(ProtoError::BadResponse("two different Content-Length headers".into()));
            }
            self.head.content_length = Some(length);
        }
        self.head.headers.push((name, value));
        Ok(())
    }

    /// The head, every piece checked.
    pub fn finish(self) -> ResponseHead {
        self.head
    }
}

/// The status lines apps send most, as static pieces: no copy, no
/// reference count, no free.
static COMMON_STATUS: [&str; 10] = [
    "200 OK",
    "201 Created",
    "204 No Content",
    "301 Moved Permanently",
    "302 Found",
    "304 Not Modified",
    "400 Bad Request",
    "403 Forbidden",
    "404 Not Found",
    "500 Internal Server Error",
];

/// The header names apps send most (as Flask and Django spell them), as
/// static pieces. Found by length first: most lengths have one name.
fn common_name(name: &[u8]) -> Option<&'static [u8]> {
    let known: &[&'static [u8]] = match name.len() {
        4 => &[b"Vary", b"ETag", b"Date"],
        6 => &[b"Server"],
        7 => &[b"Expires"],
        8 => &[b"Location"],
        10 => &[b"Set-Cookie"],
        12 => &[b"Content-Type"],
        13 => &[b"Cache-Control", b"Last-Modified"],
        14 => &[b"Content-Length"],
        15 => &[b"X-Frame-Options", b"Referrer-Policy"],
        16 => &[b"Content-Encoding", b"Content-Language"],
        19 => &[b"Content-Disposition"],
        22 => &[b"X-Content-Type-Options"],
        26 => &[b"Cross-Origin-Opener-Policy"],
        _ => return None,
    };
    known.iter().copied().find(|known| *known == name)
}

/// Why a piece of text was refused.
enum Refused {
    Control,
    NotLatin1,
}

/// Appends `text` as latin-1, refusing control characters (tab aside). One
/// pass over the UTF-8 finds both those and any non-ASCII character; only
/// text with the latter is walked again, character by character.
fn push_text(out: &mut BytesMut, text: &str) -> Result<(), Refused> {
    let (mut control, mut wide) = (false, false);
    for &b in text.as_bytes() {
        control |= is_control(b);
        wide |= b >= 0x80;
    }
    if control {
        return Err(Refused::Control);
    }
    if !wide {
        out.extend_from_slice(text.as_bytes());
        return Ok(());
    }
    for c in text.chars() {
        out.put_u8(u8::try_from(u32::from(c)).map_err(|_| Refused::NotLatin1)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from_app(status: &str, headers: &[(&str, &str)]) -> Result<ResponseHead, ProtoError> {
        let mut head = AppHead::new(status, headers.len())?;
        for (name, value) in headers {
            head.header(name, value)?;
        }
        Ok(head.finish())
    }

    #[test]
    fn an_app_head_is_taken_as_given() {
        let head = from_app("200 OK", &[("Content-Type", "text/plain"), ("Content-Length", "5")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((head.status, &head.status_line[..]), (200, &b"200 OK"[..]));
        assert_eq!(head.content_length, Some(5));
        assert_eq!(head.headers.len(), 2);
        assert_eq!(head.header(b"content-type").map(|v| &v[..]), Some(&b"text/plain"[..]));
        let bare = from_app("204", &[]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&bare.status_line[..], b"204 ");
        let same_twice = from_app("200 OK", &[("Content-Length", "5"), ("content-length", " 5 ")]);
        assert_eq!(same_twice.map(|h| h.content_length).ok(), Some(Some(5)));
    }

    #[test]
    fn latin1_text_becomes_one_byte_per_character() {
        let head = from_app("200 Très bien", &[("X-Name", "café"), ("X-C1", "\u{85}")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&head.status_line[..], b"200 Tr\xe8s bien");
        assert_eq!(&head.headers[0].1[..], b"caf\xe9");
        assert_eq!(&head.headers[1].1[..], b"\x85");
        assert!(from_app("200 OK", &[("X-Euro", "\u{20ac}")]).is_err());
        assert!(from_app("200 \u{20ac}", &[]).is_err());
        assert!(from_app("200 OK", &[("X-Caf\u{e9}", "a")]).is_err(), "names are tokens");
    }

    #[test]
    fn an_app_head_that_could_split_or_corrupt_a_response_is_refused() {
        for (status, headers) in [
            ("200 OK\r\nX: y", vec![]),
            ("200 OK\x7f", vec![]),
            ("OK", vec![]),
            ("20 OK", vec![]),
            ("099 Low", vec![]),
            ("200OK", vec![]),
            ("200 OK", vec![("X-A", "a\r\nX-Injected: evil")]),
            ("200 OK", vec![("X-A", "a\nb")]),
            ("200 OK", vec![("X-A", "a\0b")]),
            ("200 OK", vec![("X-A", "caf\u{e9}\r\n")]),
            ("200 OK", vec![("X Bad", "a")]),
            ("200 OK", vec![("", "a")]),
            ("200 OK", vec![("X-A:", "a")]),
            ("200 OK", vec![("Connection", "close")]),
            ("200 OK", vec![("transfer-encoding", "chunked")]),
            ("200 OK", vec![("Content-Length", "+5")]),
            ("200 OK", vec![("Content-Length", "")]),
            ("200 OK", vec![("Content-Length", "5"), ("Content-Length", "6")]),
        ] {
            let refused = from_app(status, &headers);
            assert!(
                matches!(refused, Err(ProtoError::BadResponse(_))),
                "{status:?} {headers:?}: {refused:?}"
            );
        }
        assert!(from_app("200 OK", &[("X-Tab", "a\tb")]).is_ok());
        assert!(from_app("200 Tab\tOK", &[]).is_ok());
    }

    /// The commonest status lines and names are static pieces, equal to
    /// what the app gave; any other spelling is copied as given.
    #[test]
    fn common_pieces_are_static_and_the_same_bytes() {
        let head = from_app("200 OK", &[("Content-Type", "text/plain"), ("content-type", "a")])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((head.status, &head.status_line[..]), (200, &b"200 OK"[..]));
        assert_eq!(head.status_line.as_ptr(), COMMON_STATUS[0].as_ptr());
        let (typed, lower) = (&head.headers[0].0, &head.headers[1].0);
        assert_eq!((&typed[..], &lower[..]), (&b"Content-Type"[..], &b"content-type"[..]));
        assert_eq!(Some(typed.as_ptr()), common_name(b"Content-Type").map(<[u8]>::as_ptr));
        assert_eq!(common_name(b"content-type"), None);
        for (status, code) in [("404 Not Found", 404), ("404 Gone Fishing", 404), ("599", 599)] {
            let head = from_app(status, &[]).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(head.status, code);
            assert_eq!(head.status_line.trim_ascii_end(), status.as_bytes());
        }
    }

    /// The pieces share one buffer, and a head longer than its first
    /// allocation keeps every piece intact.
    #[test]
    fn a_long_head_keeps_every_piece() {
        let values: Vec<String> = (0..40).map(|i| format!("{i:0>20}")).collect();
        let mut head = AppHead::new("200 OK", values.len()).unwrap_or_else(|e| panic!("{e}"));
        for value in &values {
            head.header("X-Long", value).unwrap_or_else(|e| panic!("{e}"));
        }
        let head = head.finish();
        assert_eq!(&head.status_line[..], b"200 OK");
        let got: Vec<_> = head.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
        let want: Vec<_> = values.iter().map(|v| (&b"X-Long"[..], v.as_bytes())).collect();
        assert_eq!(got, want);
    }
}
