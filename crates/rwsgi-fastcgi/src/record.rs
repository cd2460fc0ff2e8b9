//! The record layer (FastCGI 1.0 §3.3, `include/fastcgi.h`): the 8-byte
//! header, the record types and protocol statuses, and the writers of the
//! records we send.
//!
//! Every record we write is padded to a multiple of 8 bytes, as nginx pads
//! its own (the spec recommends it; a receiver must accept any padding).

use bytes::{BufMut, BytesMut};
use rwsgi_proto::{OutBuf, ProtoError};

/// Length of a record header.
pub(crate) const HEADER_LEN: usize = 8;

/// `FCGI_VERSION_1`, the only version there is.
pub(crate) const VERSION_1: u8 = 1;

/// Most content bytes one record can carry (`contentLength` is a u16).
pub(crate) const MAX_CONTENT: usize = 0xffff;

/// The null request id: management records.
pub(crate) const MANAGEMENT_ID: u16 = 0;

/// Record types.
pub(crate) const BEGIN_REQUEST: u8 = 1;
pub(crate) const ABORT_REQUEST: u8 = 2;
pub(crate) const END_REQUEST: u8 = 3;
pub(crate) const PARAMS: u8 = 4;
pub(crate) const STDIN: u8 = 5;
pub(crate) const STDOUT: u8 = 6;
pub(crate) const STDERR: u8 = 7;
pub(crate) const GET_VALUES: u8 = 9;
pub(crate) const GET_VALUES_RESULT: u8 = 10;
pub(crate) const UNKNOWN_TYPE: u8 = 11;

/// `FCGI_RESPONDER`, the only role a WSGI server plays.
pub(crate) const ROLE_RESPONDER: u16 = 1;

/// `FCGI_KEEP_CONN`, the one BEGIN_REQUEST flag.
pub(crate) const KEEP_CONN: u8 = 1;

/// Length of a BEGIN_REQUEST body: role, flags, 5 reserved bytes.
pub(crate) const BEGIN_BODY_LEN: usize = 8;

/// The `protocolStatus` of an END_REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum ProtocolStatus {
    /// `FCGI_REQUEST_COMPLETE`: the request ran (or was aborted) normally.
    RequestComplete = 0,
    /// `FCGI_CANT_MPX_CONN`: a second concurrent request on a connection;
    /// we serve one at a time.
    CantMpxConn = 1,
    /// `FCGI_UNKNOWN_ROLE`: a role other than RESPONDER.
    UnknownRole = 3,
}

/// A parsed record header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecordHeader {
    pub(crate) kind: u8,
    pub(crate) id: u16,
    pub(crate) content_len: usize,
    pub(crate) padding: usize,
}

impl RecordHeader {
    /// The header at the start of `buf`, or `None` while fewer than 8
    /// bytes are there. Any version other than 1 is refused: nothing after
    /// it can be trusted to be framed as we think.
    pub(crate) fn parse(buf: &[u8]) -> Result<Option<RecordHeader>, ProtoError> {
        let Some(&[version, kind, id_hi, id_lo, len_hi, len_lo, padding, _reserved]) =
            buf.first_chunk::<HEADER_LEN>()
        else {
            return Ok(None);
        };
        if version != VERSION_1 {
            return Err(ProtoError::BadRequest("FastCGI version other than 1"));
        }
        Ok(Some(RecordHeader {
            kind,
            id: u16::from_be_bytes([id_hi, id_lo]),
            content_len: usize::from(u16::from_be_bytes([len_hi, len_lo])),
            padding: usize::from(padding),
        }))
    }

    /// The whole record's length after its header.
    pub(crate) fn body_len(&self) -> usize {
        self.content_len + self.padding
    }
}

/// Padding that brings `content_len` to a multiple of 8.
pub(crate) const fn padding_for(content_len: usize) -> usize {
    (8 - (content_len & 7)) & 7
}

/// The 8 header bytes of a record we send (`content_len` ≤ 65535).
pub(crate) fn header_bytes(kind: u8, id: u16, content_len: usize) -> [u8; HEADER_LEN] {
    let [id_hi, id_lo] = id.to_be_bytes();
    let len = u16::try_from(content_len).unwrap_or(u16::MAX);
    let [len_hi, len_lo] = len.to_be_bytes();
    let padding = padding_for(usize::from(len)) as u8;
    [VERSION_1, kind, id_hi, id_lo, len_hi, len_lo, padding, 0]
}

/// Zeros to pad with.
const ZEROS: [u8; 8] = [0; 8];

/// The padding after `content_len` bytes of content.
pub(crate) fn padding_bytes(content_len: usize) -> &'static [u8] {
    ZEROS.get(..padding_for(content_len)).unwrap_or_default()
}

/// An END_REQUEST record: `appStatus` (u32 BE), `protocolStatus`, 3
/// reserved bytes.
pub(crate) fn end_request(id: u16, app_status: u32, status: ProtocolStatus) -> [u8; 16] {
    let h = header_bytes(END_REQUEST, id, 8);
    let [a, b, c, d] = app_status.to_be_bytes();
    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], a, b, c, d, status as u8, 0, 0, 0]
}

/// An empty STDOUT record: the end of the response stream.
pub(crate) fn end_of_stdout(id: u16) -> [u8; HEADER_LEN] {
    header_bytes(STDOUT, id, 0)
}

/// An UNKNOWN_TYPE record naming `kind`.
pub(crate) fn unknown_type(kind: u8) -> [u8; 16] {
    let h = header_bytes(UNKNOWN_TYPE, MANAGEMENT_ID, 8);
    [h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7], kind, 0, 0, 0, 0, 0, 0, 0]
}

/// Appends a whole record (header, `content`, padding) to `out`; for the
/// small records we make up ourselves. `content` must be ≤ 65535 bytes.
pub(crate) fn put_record(out: &mut BytesMut, kind: u8, id: u16, content: &[u8]) {
    out.put_slice(&header_bytes(kind, id, content.len()));
    out.put_slice(content);
    out.put_slice(padding_bytes(content.len()));
}

/// Writes `parts` (at most 65535 bytes together) as one STDOUT record,
/// copying none of them: the header and padding go through the scratch
/// buffer, large parts are queued as they are.
pub(crate) fn put_stdout(out: &mut OutBuf, id: u16, parts: &[&bytes::Bytes]) {
    put_stream(out, STDOUT, id, parts);
}

/// Writes `parts` (at most 65535 bytes together) as one record of stream
/// `kind` (STDOUT or STDERR), without copying them.
pub(crate) fn put_stream(out: &mut OutBuf, kind: u8, id: u16, parts: &[&bytes::Bytes]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    out.put_slice(&header_bytes(kind, id, len));
    for part in parts {
        out.put_bytes((*part).clone());
    }
    out.put_slice(padding_bytes(len));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_parsing() {
        let h = RecordHeader::parse(&[1, 5, 0x12, 0x34, 0xab, 0xcd, 7, 9, 99]);
        assert_eq!(
            h.ok().flatten(),
            Some(RecordHeader { kind: 5, id: 0x1234, content_len: 0xabcd, padding: 7 })
        );
        for n in 0..HEADER_LEN {
            assert!(matches!(RecordHeader::parse(&[1; 8][..n]), Ok(None)), "{n}");
        }
        for version in [0, 2, 0x47, 255] {
            let err = RecordHeader::parse(&[version, 1, 0, 1, 0, 8, 0, 0]);
            assert!(matches!(err, Err(ProtoError::BadRequest("FastCGI version other than 1"))));
        }
    }

    #[test]
    fn the_spec_examples() {
        // protocols.md §b: END_REQUEST id 1, appStatus 0, COMPLETE.
        assert_eq!(
            end_request(1, 0, ProtocolStatus::RequestComplete),
            [1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        assert_eq!(
            end_request(0x0102, 0x0a0b0c0d, ProtocolStatus::UnknownRole),
            [1, 3, 1, 2, 0, 8, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 3, 0, 0, 0]
        );
        assert_eq!(end_of_stdout(7), [1, 6, 0, 7, 0, 0, 0, 0]);
        assert_eq!(unknown_type(42), [1, 11, 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn padding_rounds_up_to_eight() {
        for (len, pad) in [(0, 0), (1, 7), (7, 1), (8, 0), (9, 7), (65535, 1), (65528, 0)] {
            assert_eq!(padding_for(len), pad, "{len}");
            assert_eq!(padding_bytes(len).len(), pad);
            assert_eq!(header_bytes(STDOUT, 1, len)[6] as usize, pad);
        }
        let mut out = BytesMut::new();
        put_record(&mut out, GET_VALUES_RESULT, 0, b"abc");
        assert_eq!(&out[..], b"\x01\x0a\x00\x00\x00\x03\x05\x00abc\0\0\0\0\0");
    }

    #[test]
    fn stdout_parts_make_one_record() {
        let mut out = OutBuf::new();
        let a = bytes::Bytes::from_static(b"Status: 200 OK\r\n\r\n");
        let b = bytes::Bytes::from(vec![b'x'; 600]);
        put_stdout(&mut out, 3, &[&a, &b]);
        let wire = out.take_contiguous();
        assert_eq!(wire.len(), 8 + 618 + 6);
        assert_eq!(&wire[..8], &[1, 6, 0, 3, 0x02, 0x6a, 6, 0]);
        assert_eq!(&wire[8..26], &a[..]);
        assert_eq!(&wire[26..626], &b[..]);
        assert_eq!(&wire[626..], &[0; 6]);
    }
}
