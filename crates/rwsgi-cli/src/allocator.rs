//! The global allocator of both front doors: mimalloc.
//!
//! Requests allocate on the I/O thread and free on a Python thread (and
//! back); mimalloc handles that cross-thread traffic far better than
//! glibc's arenas (measured: malloc fell from 7 % of a hello-world
//! profile). It is built without its transparent-huge-page advice (see
//! the workspace `Cargo.toml`).
//!
//! The `mimalloc` crate's allocator passes every request to
//! `mi_malloc_aligned`, whose fast path only serves some sizes: most of
//! rwsgi's allocations per request (1 KiB and up, or sizes off a power of
//! two) took its slower, over-allocating aligned path. An alignment of at
//! most 16 that divides the size is what plain `mi_malloc` gives anyway
//! (its blocks of such sizes start 16-aligned and are multiples of the
//! alignment apart), so those go there: 2 % fewer instructions per uwsgi
//! request. Anything else keeps the aligned calls.

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

/// The largest alignment `mi_malloc` guarantees (`MI_MAX_ALIGN_SIZE`).
const MAX_NATURAL_ALIGN: usize = 16;

/// mimalloc, with plain calls where they give the alignment asked.
#[derive(Debug)]
pub struct Allocator;

/// Whether a block of `size` bytes from plain `mi_malloc` is aligned to
/// `align`.
fn natural(size: usize, align: usize) -> bool {
    align <= MAX_NATURAL_ALIGN && size.is_multiple_of(align)
}

/// A new block for `layout` from `plain` when it gives the alignment asked
/// (see [`natural`]), else from `aligned`. Inlined, so each caller calls
/// its pair directly.
///
/// # Safety
///
/// `plain` and `aligned` are one of mimalloc's pairs of allocating calls.
#[allow(unsafe_code)]
#[inline(always)]
unsafe fn pick(
    layout: Layout,
    plain: unsafe extern "C" fn(usize) -> *mut c_void,
    aligned: unsafe extern "C" fn(usize, usize) -> *mut c_void,
) -> *mut u8 {
    // SAFETY: plain C calls; any size and power-of-two alignment is valid.
    unsafe {
        if natural(layout.size(), layout.align()) {
            plain(layout.size()).cast()
        } else {
            aligned(layout.size(), layout.align()).cast()
        }
    }
}

// SAFETY: every call forwards to mimalloc, which returns null or a block of
// at least the size asked aligned as asked (the aligned calls by contract,
// the plain ones when `natural` holds, see the module's comment and the
// test below), and frees any block it returned with `mi_free`, whatever
// call made it.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `pick` requires.
        unsafe { pick(layout, libmimalloc_sys::mi_malloc, libmimalloc_sys::mi_malloc_aligned) }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as `pick` requires.
        unsafe { pick(layout, libmimalloc_sys::mi_zalloc, libmimalloc_sys::mi_zalloc_aligned) }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator (GlobalAlloc's contract).
        unsafe { libmimalloc_sys::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` came from this allocator with `layout`; the new block
        // keeps the alignment by the same rule as `alloc`.
        unsafe {
            if natural(new_size, layout.align()) {
                libmimalloc_sys::mi_realloc(ptr.cast(), new_size).cast()
            } else {
                libmimalloc_sys::mi_realloc_aligned(ptr.cast(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
#[allow(unsafe_code, clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Every size to 4 KiB and a few large ones, at every alignment to 4 KiB,
    /// allocated (plain, zeroed, grown and shrunk) many times each: each
    /// block is aligned as asked, writable whole, and zeroed when asked.
    #[test]
    fn every_block_is_aligned_as_asked() {
        let sizes = (1..=4096).chain([8191, 65_536, 65_537, 1 << 20, (1 << 20) + 24]);
        for size in sizes {
            for align in (0..=12).map(|shift| 1usize << shift) {
                let layout = Layout::from_size_align(size, align).unwrap();
                let mut blocks = Vec::new();
                for round in 0..4 {
                    // SAFETY: a non-zero size; each block is freed below with
                    // its layout.
                    unsafe {
                        let ptr = if round % 2 == 0 {
                            Allocator.alloc(layout)
                        } else {
                            let ptr = Allocator.alloc_zeroed(layout);
                            assert!(std::slice::from_raw_parts(ptr, size).iter().all(|&b| b == 0));
                            ptr
                        };
                        assert!(!ptr.is_null());
                        assert_eq!(ptr as usize % align, 0, "size {size}, align {align}");
                        ptr.write_bytes(0xa5, size);
                        blocks.push(ptr);
                    }
                }
                for ptr in blocks {
                    // SAFETY: `ptr` is a block of `layout` from above; it is
                    // grown, checked, shrunk and freed with its layouts.
                    unsafe {
                        let grown = Allocator.realloc(ptr, layout, size * 3);
                        assert_eq!(grown as usize % align, 0, "grown {size}, align {align}");
                        assert_eq!(*grown.add(size - 1), 0xa5, "kept");
                        let big = Layout::from_size_align(size * 3, align).unwrap();
                        let shrunk = Allocator.realloc(grown, big, size);
                        assert_eq!(shrunk as usize % align, 0, "shrunk {size}, align {align}");
                        Allocator.dealloc(shrunk, layout);
                    }
                }
            }
        }
    }
}
