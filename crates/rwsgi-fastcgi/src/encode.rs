//! Response encoding. A FastCGI responder answers with a CGI response on
//! the STDOUT stream (spec §6.2): `Status:` and the app's header lines, a
//! blank line, the body; then an empty STDOUT record and END_REQUEST.
//!
//! There is no `Date` (nginx adds its own) and no `Connection` header (the
//! connection belongs to nginx: KEEP_CONN says who closes it). Body bytes
//! are never copied: each record's header and padding go through the
//! scratch buffer and the content is queued as a view of the app's bytes.

use bytes::Bytes;
use rwsgi_proto::{OutBuf, ResponseHead};

use crate::record::{self, MAX_CONTENT, ProtocolStatus};

/// The CGI response head: `Status: <status line>`, the app's headers, a
/// blank line.
pub(crate) fn head_text(head: &ResponseHead) -> Bytes {
    let mut text = OutBuf::new();
    text.put_slice(b"Status: ");
    text.put_slice(&head.status_line);
    text.put_slice(b"\r\n");
    head.write_headers(None, &mut text);
    text.put_slice(b"\r\n");
    text.take_contiguous()
}

/// The server's own plain-text error response, as CGI text; without its
/// body when the request was `HEAD`.
pub(crate) fn error_text(status: u16, with_body: bool) -> Bytes {
    let head = ResponseHead::plain_error(status);
    let mut text = OutBuf::new();
    text.put_slice(b"Status: ");
    text.put_slice(&head.status_line);
    text.put_slice(b"\r\n");
    head.write_headers(None, &mut text);
    text.put_slice(b"\r\n");
    if with_body {
        head.write_plain_error_body(&mut text);
    }
    text.take_contiguous()
}

/// Writes `head` (response text still in the codec, possibly empty) then
/// `data` as STDOUT records of at most 65535 content bytes. The head shares
/// its record with the first data bytes: one record, not two, for the
/// usual response.
pub(crate) fn write_stdout(out: &mut OutBuf, id: u16, mut head: Bytes, mut data: Bytes) {
    while head.len() >= MAX_CONTENT {
        let part = head.split_to(MAX_CONTENT);
        record::put_stdout(out, id, &[&part]);
    }
    if !head.is_empty() {
        let first = data.split_to(data.len().min(MAX_CONTENT - head.len()));
        record::put_stdout(out, id, &[&head, &first]);
    }
    while !data.is_empty() {
        let piece = data.split_to(data.len().min(MAX_CONTENT));
        record::put_stdout(out, id, &[&piece]);
    }
}

/// Writes `text` as STDERR records of at most 65535 bytes.
pub(crate) fn write_stderr(out: &mut OutBuf, id: u16, mut text: Bytes) {
    while !text.is_empty() {
        let piece = text.split_to(text.len().min(MAX_CONTENT));
        record::put_stream(out, record::STDERR, id, &[&piece]);
    }
}

/// Ends request `id`: the empty STDOUT record that closes the stream (and
/// an empty STDERR record when STDERR was used), then
/// END_REQUEST with `appStatus` 0 for a complete response, 1 for one cut
/// short (nginx logs a non-zero status; the protocol status is still
/// "complete": the request ran).
pub(crate) fn write_end(out: &mut OutBuf, id: u16, complete: bool, stderr: bool) {
    out.put_slice(&record::end_of_stdout(id));
    if stderr {
        // A stream that was used is ended like STDOUT (spec §6.1).
        out.put_slice(&record::header_bytes(record::STDERR, id, 0));
    }
    let app_status = if complete { 0 } else { 1 };
    out.put_slice(&record::end_request(id, app_status, ProtocolStatus::RequestComplete));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stdout_records(wire: &[u8]) -> Vec<(usize, usize)> {
        let mut records = Vec::new();
        let mut rest = wire;
        while let [1, 6, _, _, hi, lo, pad, 0, tail @ ..] = rest {
            let len = usize::from(u16::from_be_bytes([*hi, *lo]));
            records.push((len, usize::from(*pad)));
            rest = &tail[len + usize::from(*pad)..];
        }
        assert!(rest.is_empty(), "trailing bytes");
        records
    }

    #[test]
    fn head_and_first_data_share_a_record() {
        let mut out = OutBuf::new();
        write_stdout(&mut out, 1, Bytes::from_static(b"Status: 200 OK\r\n\r\n"), "hi".into());
        let wire = out.take_contiguous();
        assert_eq!(&wire[..], b"\x01\x06\x00\x01\x00\x14\x04\x00Status: 200 OK\r\n\r\nhi\0\0\0\0");
    }

    #[test]
    fn large_pieces_are_split() {
        for (head, data) in
            [(0, 200_000), (100, 200_000), (65535, 3), (70_000, 65_535), (65_534, 1)]
        {
            let mut out = OutBuf::new();
            write_stdout(&mut out, 1, Bytes::from(vec![b'h'; head]), Bytes::from(vec![b'd'; data]));
            let wire = out.take_contiguous();
            let records = stdout_records(&wire);
            assert!(
                records.iter().all(|&(len, pad)| len > 0 && len <= 65535 && (len + pad) % 8 == 0)
            );
            assert_eq!(records.iter().map(|r| r.0).sum::<usize>(), head + data, "{head} {data}");
            let expected = (head + data).div_ceil(65535);
            assert!(records.len() <= expected + 1, "{head} {data}: {records:?}");
        }
        let mut out = OutBuf::new();
        write_stdout(&mut out, 1, Bytes::new(), Bytes::new());
        assert!(out.is_empty());
    }

    #[test]
    fn error_text_has_status_headers_and_body() {
        let text = error_text(413, true);
        assert_eq!(
            &text[..],
            b"Status: 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 18\r\n\r\nContent Too Large\n"
        );
        assert!(error_text(413, false).ends_with(b"\r\n\r\n"));
    }
}
