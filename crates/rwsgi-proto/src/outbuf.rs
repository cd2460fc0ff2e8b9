//! A queue of outbound bytes, written with one vectored write.
//!
//! Framing bytes (status lines, chunk sizes, record headers) are copied into
//! a scratch buffer; body pieces are queued as they are, without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use std::collections::VecDeque;
use std::io::IoSlice;

/// Pieces smaller than this are copied into the scratch buffer instead of
/// being queued as their own slice: one more iovec costs more than a memcpy.
const COPY_BELOW: usize = 512;
/// Room the scratch buffer takes at once when it has none: a response
/// head and a small body, without growing a few bytes at a time.
const SCRATCH_ROOM: usize = 1024;

/// Outbound bytes waiting to be written.
#[derive(Debug, Default)]
pub struct OutBuf {
    scratch: BytesMut,
    queue: VecDeque<Bytes>,
}

impl OutBuf {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a copy of `bytes`.
    pub fn put_slice(&mut self, bytes: &[u8]) {
        if self.scratch.capacity() - self.scratch.len() < bytes.len() {
            self.scratch.reserve(bytes.len().max(SCRATCH_ROOM));
        }
        self.scratch.put_slice(bytes);
    }

    /// Appends `bytes` without copying when it is large.
    pub fn put_bytes(&mut self, bytes: Bytes) {
        if bytes.len() < COPY_BELOW {
            self.put_slice(&bytes);
        } else {
            self.seal();
            self.queue.push_back(bytes);
        }
    }

    /// Appends the decimal form of `n`.
    pub fn put_decimal(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.put_slice(&digits[i..]);
    }

    /// Appends the lower-case hexadecimal form of `n`.
    pub fn put_hex(&mut self, n: u64) {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        let mut n = n;
        loop {
            i -= 1;
            digits[i] = b"0123456789abcdef"[(n & 0xf) as usize];
            n >>= 4;
            if n == 0 {
                break;
            }
        }
        self.put_slice(&digits[i..]);
    }

    /// Moves the scratch bytes into the queue so later pieces keep order.
    fn seal(&mut self) {
        if !self.scratch.is_empty() {
            self.queue.push_back(self.scratch.split().freeze());
        }
    }

    /// Bytes of scratch room it holds, used or not.
    pub fn capacity(&self) -> usize {
        self.scratch.capacity()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.scratch.is_empty() && self.queue.is_empty()
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.scratch.len() + self.queue.iter().map(Bytes::len).sum::<usize>()
    }

    /// Fills `dst` with slices of the waiting bytes, in order; returns how
    /// many slices were filled.
    pub fn io_slices<'a>(&'a mut self, dst: &mut [IoSlice<'a>]) -> usize {
        self.seal();
        let mut n = 0;
        for (slot, piece) in dst.iter_mut().zip(self.queue.iter()) {
            *slot = IoSlice::new(piece);
            n += 1;
        }
        n
    }

    /// Drops the first `n` waiting bytes (after a partial write).
    pub fn advance(&mut self, mut n: usize) {
        self.seal();
        while n > 0 {
            let Some(front) = self.queue.front_mut() else { return };
            if n >= front.len() {
                n -= front.len();
                self.queue.pop_front();
            } else {
                front.advance(n);
                n = 0;
            }
        }
    }

    /// Takes everything waiting as one contiguous buffer (tests, small writes).
    pub fn take_contiguous(&mut self) -> Bytes {
        self.seal();
        match self.queue.len() {
            0 => Bytes::new(),
            1 => self.queue.pop_front().unwrap_or_default(),
            _ => {
                let mut all = BytesMut::with_capacity(self.len());
                for piece in self.queue.drain(..) {
                    all.put_slice(&piece);
                }
                all.freeze()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_across_copied_and_queued_pieces() {
        let mut out = OutBuf::new();
        out.put_slice(b"head:");
        out.put_bytes(Bytes::from(vec![b'x'; 600]));
        out.put_slice(b":tail");
        out.put_decimal(0);
        out.put_decimal(1234567890);
        out.put_hex(0);
        out.put_hex(0xbeef);
        let all = out.take_contiguous();
        assert_eq!(&all[..5], b"head:");
        assert_eq!(&all[5..605], &[b'x'; 600][..]);
        assert_eq!(&all[605..], b":tail012345678900beef");
        assert!(out.is_empty());
    }

    #[test]
    fn advance_drops_written_bytes_across_pieces() {
        let mut out = OutBuf::new();
        out.put_slice(b"abc");
        out.put_bytes(Bytes::from(vec![b'y'; 600]));
        out.put_slice(b"def");
        assert_eq!(out.len(), 606);
        out.advance(5);
        assert_eq!(out.len(), 601);
        let mut slices = [IoSlice::new(&[]); 4];
        let n = out.io_slices(&mut slices);
        assert_eq!(n, 2);
        assert_eq!(slices[0].len(), 598);
        out.advance(598);
        assert_eq!(&out.take_contiguous()[..], b"def");
    }
}
