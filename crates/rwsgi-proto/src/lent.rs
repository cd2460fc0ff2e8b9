//! Memory a responder lends the core for a request body, so that the body
//! reaches it with no copy after the kernel's: the Python bridge lends the
//! storage of the `bytes` object the app will read, and the core reads the
//! body from the socket straight into it.

#![allow(unsafe_code)]

use bytes::BufMut;
use bytes::buf::UninitSlice;
use std::any::Any;
use std::fmt;
use std::mem::MaybeUninit;

/// Memory of exactly a body's size, owned by a responder. It may be
/// uninitialised; the core writes it from the start and hands it back
/// (as [`crate::BodySource::Lent`]) only once it has written all of it.
///
/// # Safety
///
/// `memory` must return the same bytes (address and length) at every
/// call, and nothing else may read or write them while the core holds
/// them: [`LentBody`] trusts what it wrote to still be there.
pub unsafe trait BodyMemory: Any + Send + Sync {
    /// The whole memory.
    fn memory(&mut self) -> &mut [MaybeUninit<u8>];
}

/// Lent memory and how much of it the core has written.
pub struct LentBody {
    memory: Box<dyn BodyMemory>,
    /// The memory's size, fixed.
    len: usize,
    filled: usize,
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
        let len = memory.memory().len();
        LentBody { memory, len, filled: 0 }
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

    /// The bytes written so far.
    pub fn filled(&mut self) -> &[u8] {
        let filled = self.filled;
        let written = &self.memory.memory()[..filled];
        // SAFETY: the first `filled` bytes were written, through `put_slice`
        // or a reader that vouched for them with `advance_mut`, and they are
        // still there (`BodyMemory`'s contract).
        unsafe { &*(written as *const [MaybeUninit<u8>] as *const [u8]) }
    }

    /// The memory, once the whole body is in it (else `self` back): its
    /// owner may then read all of it as initialised.
    pub fn into_memory(self) -> Result<Box<dyn BodyMemory>, LentBody> {
        if self.is_full() { Ok(self.memory) } else { Err(self) }
    }
}

// SAFETY: `chunk_mut` is the unwritten rest of the memory, which stays put
// (`BodyMemory`'s contract); `advance_mut` is only
// called by a writer that initialised that many bytes of it (the trait's
// contract), and never past its end (checked).
unsafe impl BufMut for LentBody {
    fn remaining_mut(&self) -> usize {
        self.len - self.filled
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        assert!(cnt <= self.remaining_mut(), "advance past the lent memory");
        self.filled += cnt;
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        let filled = self.filled;
        UninitSlice::uninit(&mut self.memory.memory()[filled..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Memory as a responder would lend it: uninitialised, on the heap.
    struct Heap(Box<[MaybeUninit<u8>]>);

    // SAFETY: the same boxed slice every time, owned by the value.
    unsafe impl BodyMemory for Heap {
        fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
            &mut self.0
        }
    }

    fn lent(size: usize) -> LentBody {
        LentBody::new(Box::new(Heap(Box::new_uninit_slice(size))))
    }

    #[test]
    fn written_in_pieces_it_is_handed_back_only_when_full() {
        let mut body = lent(10);
        assert_eq!(body.size(), 10);
        body.put_slice(b"head");
        assert_eq!(body.filled(), b"head");
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
        assert_eq!(body.filled(), b"head-body!");
        assert_eq!(body.chunk_mut().len(), 0, "no room past the body");
        let mut memory = body.into_memory().unwrap_or_else(|_| panic!("full"));
        // SAFETY: all of it was written above.
        let all = unsafe { &*(memory.memory() as *const [MaybeUninit<u8>] as *const [u8]) };
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
