//! Memory a responder lends the core for a request body, so that the body
//! reaches it with no copy after the kernel's: the Python bridge lends the
//! storage of the `bytes` object the app will read (or of several, one per
//! part the app is expected to read), and the core reads the body from the
//! socket straight into it.

#![allow(unsafe_code)]

use bytes::BufMut;
use bytes::buf::UninitSlice;
use std::any::Any;
use std::fmt;
use std::mem::MaybeUninit;

/// Memory of exactly a body's size, owned by a responder, in one part or
/// several that the body fills in order. It may be uninitialised; the core
/// writes it from the start and hands it back (as
/// [`crate::BodySource::Lent`]) only once it has written all of it.
///
/// # Safety
///
/// `part` must return the same bytes (address and length) for an index at
/// every call, the parts must not overlap, and nothing else may read or
/// write them while the core holds them: [`LentBody`] trusts what it wrote
/// to still be there.
pub unsafe trait BodyMemory: Any + Send + Sync {
    /// How many parts (at least one).
    fn parts(&self) -> usize;

    /// Part `index`, below [`BodyMemory::parts`].
    fn part(&mut self, index: usize) -> &mut [MaybeUninit<u8>];
}

/// Most slices [`LentBody::room`] gives: a body lent in parts of at least
/// 16 KiB is read at least 256 KiB at a time.
const ROOM_SLICES: usize = 16;

/// Lent memory and how much of it the core has written.
pub struct LentBody {
    memory: Box<dyn BodyMemory>,
    /// The memory's size, fixed.
    len: usize,
    filled: usize,
    /// The part being written, and how much of it is.
    part: usize,
    part_filled: usize,
}

impl fmt::Debug for LentBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LentBody")
            .field("len", &self.len)
            .field("filled", &self.filled)
            .finish_non_exhaustive()
    }
}

impl LentBody {
    /// Memory nothing has been written to yet.
    pub fn new(mut memory: Box<dyn BodyMemory>) -> Self {
        let len = (0..memory.parts()).map(|i| memory.part(i).len()).sum();
        let mut body = LentBody { memory, len, filled: 0, part: 0, part_filled: 0 };
        body.skip_full_parts();
        body
    }

    /// Moves on to the next part while the current one is full (or empty).
    fn skip_full_parts(&mut self) {
        while self.part + 1 < self.memory.parts()
            && self.part_filled == self.memory.part(self.part).len()
        {
            self.part += 1;
            self.part_filled = 0;
        }
    }

    /// The memory's size: the body's.
    pub fn size(&self) -> usize {
        self.len
    }

    /// How many bytes have been written.
    pub fn written(&self) -> usize {
        self.filled
    }

    /// Whether the whole body has been written.
    pub fn is_full(&self) -> bool {
        self.filled == self.len
    }

    /// The unwritten memory, up to `max` bytes from the current part on, as
    /// slices of consecutive parts (at most [`ROOM_SLICES`]): room for one
    /// vectored read, so that a body lent in parts takes no more reads
    /// than one lent whole. A reader that writes into it vouches for what
    /// it wrote with [`BufMut::advance_mut`], which may cross parts.
    pub fn room(&mut self, max: usize) -> Vec<&mut [MaybeUninit<u8>]> {
        let mut left = max.min(self.len - self.filled);
        let mut room = Vec::with_capacity(ROOM_SLICES.min(self.memory.parts() - self.part));
        let (mut index, mut at) = (self.part, self.part_filled);
        while left > 0 && index < self.memory.parts() && room.len() < ROOM_SLICES {
            let part = self.memory.part(index);
            let take = (part.len() - at).min(left);
            let start = part[at..].as_mut_ptr();
            // SAFETY: `take` bytes of part `index` from `at`, within it.
            // Parts do not overlap and stay put (`BodyMemory`'s contract),
            // so the slices do not alias one another, and they borrow
            // `self` mutably: nothing else reaches the memory meanwhile.
            room.push(unsafe { std::slice::from_raw_parts_mut(start, take) });
            left -= take;
            index += 1;
            at = 0;
        }
        room
    }

    /// A copy of the bytes written so far, in order.
    pub fn copy_filled(&mut self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.filled);
        for index in 0..=self.part {
            let written = if index < self.part { usize::MAX } else { self.part_filled };
            let part = self.memory.part(index);
            let part = &part[..written.min(part.len())];
            // SAFETY: the parts before the current one are full, and the
            // current one's first `part_filled` bytes were written, through
            // `put_slice` or a reader that vouched for them with
            // `advance_mut`; they are still there (`BodyMemory`'s contract).
            out.extend_from_slice(unsafe { &*(part as *const [MaybeUninit<u8>] as *const [u8]) });
        }
        out
    }

    /// The memory, once the whole body is in it (else `self` back): its
    /// owner may then read all of it as initialised.
    pub fn into_memory(self) -> Result<Box<dyn BodyMemory>, LentBody> {
        if self.is_full() { Ok(self.memory) } else { Err(self) }
    }
}

// SAFETY: `chunk_mut` is the unwritten rest of the current part, which
// stays put (`BodyMemory`'s contract); `advance_mut` is only called by a
// writer that initialised that many bytes of it, or of
// [`LentBody::room`]'s slices, which follow on from it part after part
// (the trait's contract), and never past the memory's end (checked).
unsafe impl BufMut for LentBody {
    fn remaining_mut(&self) -> usize {
        self.len - self.filled
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining_mut(), "advance past the lent memory");
        let mut left = cnt;
        while left > 0 {
            let step = (self.memory.part(self.part).len() - self.part_filled).min(left);
            self.filled += step;
            self.part_filled += step;
            left -= step;
            self.skip_full_parts();
        }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let at = self.part_filled;
        UninitSlice::uninit(&mut self.memory.part(self.part)[at..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory as a responder would lend it: uninitialised, on the heap, in
    /// one part or several (as the Python bridge lends a body it expects
    /// the app to read in parts).
    struct Parts(Vec<Box<[MaybeUninit<u8>]>>);

    // SAFETY: the same boxed slices every time, owned by the value.
    unsafe impl BodyMemory for Parts {
        fn parts(&self) -> usize {
            self.0.len()
        }

        fn part(&mut self, index: usize) -> &mut [MaybeUninit<u8>] {
            &mut self.0[index]
        }
    }

    fn lent(size: usize) -> LentBody {
        LentBody::new(Box::new(Parts(vec![Box::new_uninit_slice(size)])))
    }

    /// Written across its parts, a body fills each in turn: a read never
    /// gets room beyond the current part, and the parts hold the body.
    #[test]
    fn memory_in_parts_is_filled_in_order() {
        let parts = [4, 3, 5].map(Box::new_uninit_slice).to_vec();
        let mut body = LentBody::new(Box::new(Parts(parts)));
        assert_eq!((body.size(), body.chunk_mut().len()), (12, 4));
        body.put_slice(b"ab");
        assert_eq!(body.chunk_mut().len(), 2, "the rest of the first part");
        body.put_slice(b"cdefghij");
        assert_eq!((body.chunk_mut().len(), body.remaining_mut()), (2, 2));
        assert_eq!(body.copy_filled(), b"abcdefghij");
        body.chunk_mut()[..2].copy_from_slice(b"kl");
        // SAFETY: two bytes were just written.
        unsafe { body.advance_mut(2) };
        assert!(body.is_full());
        assert_eq!(body.copy_filled(), b"abcdefghijkl");
        let mut memory = body.into_memory().unwrap_or_else(|_| panic!("full"));
        let part = |memory: &mut Box<dyn BodyMemory>, i| {
            // SAFETY: every part was written above.
            unsafe { (*(memory.part(i) as *const [MaybeUninit<u8>] as *const [u8])).to_vec() }
        };
        let all: Vec<Vec<u8>> = (0..3).map(|i| part(&mut memory, i)).collect();
        assert_eq!(all, [&b"abcd"[..], b"efg", b"hijkl"]);
    }

    /// One vectored read fills several parts: its room runs from the rest
    /// of the current part on, and its count crosses them.
    #[test]
    fn one_read_fills_the_parts_its_room_spans() {
        let parts = [4, 3, 5].map(Box::new_uninit_slice).to_vec();
        let mut body = LentBody::new(Box::new(Parts(parts)));
        body.put_slice(b"ab");
        let lens: Vec<usize> = body.room(usize::MAX).iter().map(|s| s.len()).collect();
        assert_eq!(lens, [2, 3, 5], "the rest of the current part, then the others");
        let lens: Vec<usize> = body.room(4).iter().map(|s| s.len()).collect();
        assert_eq!(lens, [2, 2], "no more than asked");
        // A read of 6 bytes across the first three slices.
        let mut room = body.room(usize::MAX);
        for (slice, bytes) in room.iter_mut().zip([&b"cd"[..], b"efg", b"h"]) {
            for (at, &byte) in bytes.iter().enumerate() {
                slice[at] = MaybeUninit::new(byte);
            }
        }
        // SAFETY: six bytes of the room were just written, in order.
        unsafe { body.advance_mut(6) };
        assert_eq!((body.written(), body.chunk_mut().len()), (8, 4), "into the third part");
        assert_eq!(body.copy_filled(), b"abcdefgh");
        let lens: Vec<usize> = body.room(usize::MAX).iter().map(|s| s.len()).collect();
        assert_eq!(lens, [4]);
        body.put_slice(b"ijkl");
        assert!(body.is_full() && body.room(usize::MAX).is_empty());
        assert_eq!(body.copy_filled(), b"abcdefghijkl");
        let many =
            LentBody::new(Box::new(Parts((0..40).map(|_| Box::new_uninit_slice(1)).collect())))
                .room(usize::MAX)
                .len();
        assert_eq!(many, ROOM_SLICES, "a read's slices are bounded");
    }

    #[test]
    fn written_in_pieces_it_is_handed_back_only_when_full() {
        let mut body = lent(10);
        assert_eq!(body.size(), 10);
        body.put_slice(b"head");
        assert_eq!(body.copy_filled(), b"head");
        assert_eq!(body.remaining_mut(), 6);
        // A reader writing straight into the rest, as a socket read does.
        let chunk = body.chunk_mut();
        assert_eq!(chunk.len(), 6);
        chunk[..3].copy_from_slice(b"-bo");
        // SAFETY: three bytes were just written.
        unsafe { body.advance_mut(3) };
        let Err(mut body) = body.into_memory() else { panic!("handed back short") };
        body.put_slice(b"dy!");
        assert!(body.is_full());
        assert_eq!(body.copy_filled(), b"head-body!");
        assert_eq!(body.chunk_mut().len(), 0, "no room past the body");
        let mut memory = body.into_memory().unwrap_or_else(|_| panic!("full"));
        // SAFETY: all of it was written above.
        let all = unsafe { &*(memory.part(0) as *const [MaybeUninit<u8>] as *const [u8]) };
        assert_eq!(all, b"head-body!");
    }

    #[test]
    #[should_panic(expected = "advance past the lent memory")]
    fn a_writer_cannot_claim_more_than_the_memory_holds() {
        let mut body = lent(4);
        // SAFETY: never reached past the check that panics.
        unsafe { body.advance_mut(5) };
    }

    #[test]
    #[should_panic]
    fn a_slice_longer_than_the_body_is_refused() {
        lent(2).put_slice(b"abc");
    }
}
