//! Request body decoding: the chunked transfer coding (RFC 9112 §7.1).
//! A Content-Length body needs no decoder of its own: the codec counts
//! down the remaining bytes.
//!
//! The chunked decoder is a byte-at-a-time state machine over the framing
//! and hands out chunk data without copying, so it resumes at any split of
//! the input and never buffers more than one byte of framing.

use bytes::{Buf, Bytes, BytesMut};
use rwsgi_proto::ProtoError;

use rwsgi_proto::is_tchar;

/// Longest chunk-size line (size, extensions, CRLF) we skip; long
/// extensions are a CPU and memory DoS elsewhere.
const MAX_CHUNK_LINE: usize = 4096;

/// At most 16 hex digits: a u64 cannot overflow.
const MAX_SIZE_DIGITS: u8 = 16;

/// Where in the chunked framing the decoder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size,
    /// Whitespace after the size, which must lead to `;`.
    SizeWs,
    /// A chunk extension, skipped up to CR.
    Ext,
    /// CR of the size line seen; LF must follow.
    SizeLf,
    /// Chunk data, `size` bytes left.
    Data,
    /// The CR after chunk data.
    DataCr,
    /// The LF after chunk data.
    DataLf,
    /// Start of a trailer line or of the final CRLF.
    TrailerStart,
    /// A trailer field name.
    TrailerName,
    /// A trailer field value, up to CR.
    TrailerValue,
    /// CR of a trailer line seen.
    TrailerLf,
    /// CR of the final empty line seen.
    EndLf,
    /// The body is complete.
    Done,
}

/// What one step of decoding produced.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Chunked {
    /// Decoded body bytes.
    Data(Bytes),
    /// The last chunk and the trailer section were read.
    Done,
}

/// Decoder of a chunked request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChunkedDecoder {
    state: State,
    /// Size of the current chunk while reading digits; bytes left in Data.
    size: u64,
    digits: u8,
    /// Bytes of the current size line.
    line_len: usize,
    /// Sum of the chunk sizes so far (checked against `max_body`).
    total: u64,
    /// Bytes and fields of the trailer section so far.
    trailer_len: usize,
    trailer_fields: usize,
    max_body: Option<u64>,
    max_trailer: usize,
    max_trailer_fields: usize,
}

const fn bad(rule: &'static str) -> ProtoError {
    ProtoError::BadRequest(rule)
}

impl ChunkedDecoder {
    /// A decoder for one body. Trailers count against the head limits.
    pub(crate) fn new(max_body: Option<u64>, max_head: usize, max_headers: usize) -> Self {
        ChunkedDecoder {
            state: State::Size,
            size: 0,
            digits: 0,
            line_len: 0,
            total: 0,
            trailer_len: 0,
            trailer_fields: 0,
            max_body,
            max_trailer: max_head,
            max_trailer_fields: max_headers,
        }
    }

    /// Consumes framing from `buf` until a piece of data or the end of the
    /// body is available. `Ok(None)`: `buf` is used up, more input needed.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunked>, ProtoError> {
        loop {
            match self.state {
                State::Done => return Ok(Some(Chunked::Done)),
                State::Data => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n =
                        usize::try_from(self.size).map_or(buf.len(), |size| size.min(buf.len()));
                    self.size -= n as u64;
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    return Ok(Some(Chunked::Data(buf.split_to(n).freeze())));
                }
                _ => {
                    let Some(&b) = buf.first() else { return Ok(None) };
                    buf.advance(1);
                    self.step(b)?;
                }
            }
        }
    }

    /// Advances the framing state machine by one byte.
    fn step(&mut self, b: u8) -> Result<(), ProtoError> {
        if matches!(self.state, State::Size | State::SizeWs | State::Ext | State::SizeLf) {
            self.line_len += 1;
            if self.line_len > MAX_CHUNK_LINE {
                return Err(bad("chunk size line too long"));
            }
        } else if matches!(
            self.state,
            State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::EndLf
        ) {
            self.trailer_len += 1;
            if self.trailer_len > self.max_trailer {
                return Err(ProtoError::HeadTooLarge { limit: self.max_trailer });
            }
        }
        self.state = match (self.state, b) {
            (State::Size, _) if b.is_ascii_hexdigit() => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(bad("chunk size longer than 16 hex digits"));
                }
                self.digits += 1;
                self.size = (self.size << 4) | u64::from(hex_value(b));
                State::Size
            }
            (State::Size, _) if self.digits == 0 => {
                return Err(bad("chunk size is not a hex number"));
            }
            (State::Size, b';') | (State::SizeWs, b';') => State::Ext,
            (State::Size | State::SizeWs, b' ' | b'\t') => State::SizeWs,
            (State::Size, b'\r') => State::SizeLf,
            (State::Size | State::SizeWs, _) => return Err(bad("chunk size is not a hex number")),
            (State::Ext, b'\r') => State::SizeLf,
            (State::Ext, b'\n') => return Err(bad("bare LF in chunk size line")),
            (State::Ext, _) if is_ctl(b) => return Err(bad("control byte in chunk extension")),
            (State::Ext, _) => State::Ext,
            (State::SizeLf, b'\n') => self.chunk_start()?,
            (State::SizeLf, _) => return Err(bad("bare CR in chunk size line")),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.size = 0;
                self.digits = 0;
                self.line_len = 0;
                State::Size
            }
            (State::DataCr | State::DataLf, _) => {
                return Err(bad("chunk data not followed by CRLF"));
            }
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, _) if is_tchar(b) => {
                self.trailer_fields += 1;
                if self.trailer_fields > self.max_trailer_fields {
                    return Err(ProtoError::HeadTooLarge { limit: self.max_trailer });
                }
                State::TrailerName
            }
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerStart | State::TrailerName, _) => {
                return Err(bad("invalid trailer field"));
            }
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, _) if b == b'\t' || !is_ctl(b) => State::TrailerValue,
            (State::TrailerValue, _) => return Err(bad("invalid byte in trailer field value")),
            (State::TrailerLf | State::EndLf, _) if b != b'\n' => {
                return Err(bad("bare CR in trailer section"));
            }
            (State::TrailerLf, _) => State::TrailerStart,
            (State::EndLf, _) => State::Done,
            (State::Data | State::Done, _) => self.state,
        };
        Ok(())
    }

    /// A size line ended: account for the chunk against `max_body`.
    fn chunk_start(&mut self) -> Result<State, ProtoError> {
        self.total =
            self.total.checked_add(self.size).ok_or(bad("chunked body length overflows"))?;
        match self.max_body {
            Some(limit) if self.total > limit => return Err(ProtoError::BodyTooLarge { limit }),
            _ => {}
        }
        Ok(if self.size == 0 { State::TrailerStart } else { State::Data })
    }
}

/// CTL bytes (RFC 5234), except HTAB which callers allow where legal.
fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

fn hex_value(b: u8) -> u8 {
    match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        b'A'..=b'F' => b - b'A' + 10,
        _ => 0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], max_body: Option<u64>) -> Result<(Vec<u8>, usize), ProtoError> {
        let mut dec = ChunkedDecoder::new(max_body, 1024, 10);
        let mut buf = BytesMut::from(input);
        let mut body = Vec::new();
        loop {
            match dec.decode(&mut buf)? {
                Some(Chunked::Data(d)) => body.extend_from_slice(&d),
                Some(Chunked::Done) => return Ok((body, buf.len())),
                None => return Err(ProtoError::UnexpectedEof),
            }
        }
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let (body, left) = decode_all(
            b"5;a=b;c=\"d e\"\r\nhello\r\nA \t;x\r\n0123456789\r\n0\r\nX-T: 1\r\nY:\r\n\r\nNEXT",
            None,
        )
        .unwrap();
        assert_eq!(body, b"hello0123456789");
        assert_eq!(left, 4);
    }

    #[test]
    fn hex_sizes_upper_and_lower() {
        let (body, _) =
            decode_all(b"a\r\n0123456789\r\nB\r\n0123456789a\r\n00\r\n\r\n", None).unwrap();
        assert_eq!(body.len(), 21);
    }

    #[test]
    fn rejects_bad_size_lines() {
        for input in [
            &b"0x5\r\nhello\r\n0\r\n\r\n"[..],
            b"+5\r\nhello\r\n0\r\n\r\n",
            b"-0\r\n\r\n",
            b"5_0\r\n",
            b"   0\r\n\r\n",
            b"\r\n",
            b";ext\r\n",
            b"5 \r\nhello\r\n0\r\n\r\n",
            b"FFFFFFFFFFFFFFFF1\r\n",
            b"0_2e\r\n",
            b"5\r\r;ext\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\r\n0\r\n\r\n",
            b"5;a\nb\r\nhello\r\n0\r\n\r\n",
            b"5;a\x00b\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhelloX\n0\r\n\r\n",
            b"5\r\nhello\n0\r\n\r\n",
            b"0\r\n\n",
            b"0\r\nX: 1\n\r\n",
            b"0\r\nX : 1\r\n\r\n",
            b"0\r\n: 1\r\n\r\n",
            b"0\r\nX: a\x00b\r\n\r\n",
            b"0\r\n X: 1\r\n\r\n",
            b"0\r\n\rX",
        ] {
            assert!(
                matches!(decode_all(input, None), Err(ProtoError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn caps_extensions_and_trailers() {
        let mut long = b"1;".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_CHUNK_LINE));
        long.extend_from_slice(b"\r\nx\r\n0\r\n\r\n");
        assert!(matches!(decode_all(&long, None), Err(ProtoError::BadRequest(_))));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(std::iter::repeat_n(&b"X-Y: z\r\n"[..], 200).flatten());
        trailers.extend_from_slice(b"\r\n");
        assert!(matches!(decode_all(&trailers, None), Err(ProtoError::HeadTooLarge { .. })));
        let eleven = b"0\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\nA:1\r\n\r\n";
        assert!(matches!(decode_all(eleven, None), Err(ProtoError::HeadTooLarge { .. })));
    }

    #[test]
    fn limit_is_checked_on_the_running_total() {
        assert!(decode_all(b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", Some(10)).is_ok());
        assert!(matches!(
            decode_all(b"5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", Some(10)),
            Err(ProtoError::BodyTooLarge { limit: 10 })
        ));
        assert!(matches!(
            decode_all(b"FFFFFFFFFFFFFFFF\r\n", Some(10)),
            Err(ProtoError::BodyTooLarge { limit: 10 })
        ));
    }

    #[test]
    fn data_is_yielded_before_the_chunk_is_complete() {
        let mut dec = ChunkedDecoder::new(None, 1024, 10);
        let mut buf = BytesMut::from(&b"a\r\nhel"[..]);
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Chunked::Data(Bytes::from_static(b"hel"))));
        assert_eq!(dec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"lo12345\r\n0\r\n\r\n");
        assert_eq!(
            dec.decode(&mut buf).unwrap(),
            Some(Chunked::Data(Bytes::from_static(b"lo12345")))
        );
        assert_eq!(dec.decode(&mut buf).unwrap(), Some(Chunked::Done));
        assert!(buf.is_empty());
    }
}
