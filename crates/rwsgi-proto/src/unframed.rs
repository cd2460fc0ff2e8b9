//! A body of known length that comes as it is on the wire (HTTP with
//! `Content-Length`, uwsgi): what is left of it, whether the codec decodes
//! it or the core takes it off the wire itself.

use bytes::{Bytes, BytesMut};

/// Where a body stands on the wire, for a core that reads it straight into
/// memory of its own (see [`crate::ServerCodec::body_in_place`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InPlace {
    /// Body bytes that come next, as they are.
    pub body: u64,
    /// Framing bytes after them, for the codec (FastCGI: the record's
    /// padding and the next record's header): read in the same read, so
    /// that a body in records costs one read per record.
    pub framing: usize,
}

/// What is still to come of an unframed body; never zero (the codec moves
/// on once it is done).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnframedBody {
    left: u64,
}

impl UnframedBody {
    /// A body of `len` bytes, none of it read; `None` for an empty one.
    pub fn new(len: u64) -> Option<UnframedBody> {
        (len > 0).then_some(UnframedBody { left: len })
    }

    /// Bytes still to come.
    pub fn left(self) -> u64 {
        self.left
    }

    /// All of them, with nothing after: the body is not framed.
    pub fn in_place(self) -> InPlace {
        InPlace { body: self.left, framing: 0 }
    }

    /// Splits off `buf` the next piece of the body, if `buf` holds any;
    /// with whether the body is then complete.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Option<(Bytes, bool)> {
        if buf.is_empty() {
            return None;
        }
        let n = usize::try_from(self.left).map_or(buf.len(), |left| left.min(buf.len()));
        Some((buf.split_to(n).freeze(), self.take(n as u64)))
    }

    /// Counts `n` bytes as read (at most [`Self::left`]); whether the body
    /// is then complete.
    pub fn take(&mut self, n: u64) -> bool {
        self.left = self.left.saturating_sub(n);
        self.left == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_down_what_is_decoded_and_what_is_taken() {
        assert_eq!(UnframedBody::new(0), None);
        let mut body = UnframedBody::new(10).unwrap_or_else(|| panic!("not empty"));
        let mut buf = BytesMut::from(&b"0123"[..]);
        assert_eq!(body.decode(&mut buf), Some((Bytes::from_static(b"0123"), false)));
        assert_eq!(body.decode(&mut buf), None, "nothing buffered");
        assert!(!body.take(5));
        assert_eq!(body.left(), 1);
        let mut buf = BytesMut::from(&b"9GET /"[..]);
        assert_eq!(body.decode(&mut buf), Some((Bytes::from_static(b"9"), true)));
        assert_eq!(&buf[..], b"GET /", "the next request stays");
    }
}
