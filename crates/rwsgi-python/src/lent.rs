//! The storage of new `bytes` objects, lent to the core to read a request
//! body into ([`rwsgi_proto::BodyMemory`]): the app's `wsgi.input.read()`
//! (or each `read(n)` of an app that reads in parts) then returns that very
//! object, with no copy after the kernel's.

#![allow(unsafe_code)]

use bytes::{BufMut, Bytes};
use pyo3::exceptions::{PyOverflowError, PySystemError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rwsgi_proto::{BodyMemory, LentBody};
use std::any::Any;
use std::mem::MaybeUninit;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A new `bytes` object nobody has seen yet, and where its bytes are.
#[derive(Debug)]
struct Part {
    object: Py<PyBytes>,
    data: NonNull<MaybeUninit<u8>>,
    len: usize,
}

// SAFETY: `data` points into the storage of `object`, which `object` keeps
// alive and which never moves. Until the core hands the body back, nothing
// else reaches the object (it is new, and no Python code has seen it), so
// it may be written from any thread, without the GIL.
unsafe impl Send for Part {}
// SAFETY: the bytes are written only through `&mut self`.
unsafe impl Sync for Part {}

impl Part {
    fn new(py: Python<'_>, size: usize) -> PyResult<Part> {
        let len = isize::try_from(size).map_err(|_| PyOverflowError::new_err("body too large"))?;
        // SAFETY: a null source asks for an object whose bytes are left to
        // the caller to write before anyone reads them: the C API's way of
        // building a `bytes` in place. The new reference is ours.
        let object = unsafe {
            Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
        };
        let object = object.cast_into::<PyBytes>()?.unbind();
        // SAFETY: a `bytes` object's storage holds its `len` bytes (and a NUL).
        let data = unsafe { ffi::PyBytes_AsString(object.as_ptr()) };
        let data = NonNull::new(data.cast()).ok_or_else(|| PyErr::fetch(py))?;
        Ok(Part { object, data, len: size })
    }
}

/// New `bytes` objects for a request body: one for all of it, or one per
/// part when the app read the last bodies in parts (see [`learn`]), so that
/// each `read(n)` of a part hands over an object the core wrote, with no
/// copy after the kernel's.
#[derive(Debug)]
pub(crate) struct BytesMemory {
    parts: Vec<Part>,
}

/// The size of the parts the app read its last body read ahead in (its
/// first `read(n)`), or 0: the whole body at once. Process-wide, as an
/// app reads every upload the same way (Django's and Werkzeug's form
/// parsers read 64 KiB at a time).
static PART_SIZE: AtomicUsize = AtomicUsize::new(0);

/// Smaller parts are not worth a `bytes` object each: they are copied out
/// of one.
const MIN_PART: usize = 16 * 1024;

/// Notes how the app first read a body of `size` bytes: `read(limit)`.
pub(crate) fn learn(limit: Option<usize>, size: usize) {
    let part = limit.filter(|&n| (MIN_PART..size).contains(&n)).unwrap_or(0);
    PART_SIZE.store(part, Ordering::Relaxed);
}

impl BytesMemory {
    /// Memory for a body of `size` bytes, as [`rwsgi_proto::Responder::lend_body`] wants it,
    /// in parts of the size the app read the last body in.
    /// None for an empty body (CPython's `b''` is one shared object), or
    /// when Python has no memory: the core then reads into its own buffer.
    pub(crate) fn lend(py: Python<'_>, size: usize) -> Option<LentBody> {
        let part = PART_SIZE.load(Ordering::Relaxed);
        BytesMemory::lend_in_parts(py, size, if part > 0 { part } else { size })
    }

    /// As [`BytesMemory::lend`], in parts of `part` bytes.
    pub(crate) fn lend_in_parts(py: Python<'_>, size: usize, part: usize) -> Option<LentBody> {
        if size == 0 {
            return None;
        }
        BytesMemory::new(py, size, part).ok().map(|memory| LentBody::new(Box::new(memory)))
    }

    /// `size` bytes in parts of `part` bytes, the last one shorter: at
    /// least one part, even for nothing.
    fn new(py: Python<'_>, size: usize, part: usize) -> PyResult<BytesMemory> {
        let part = part.max(1);
        let mut parts = Vec::with_capacity(size.div_ceil(part).max(1));
        let mut left = size;
        loop {
            let len = left.min(part);
            parts.push(Part::new(py, len)?);
            left -= len;
            if left == 0 {
                return Ok(BytesMemory { parts });
            }
        }
    }

    /// The `bytes` objects the core wrote `body` into, whole, each with a
    /// view of its bytes; `None` for a body that is not (not whole, or not
    /// ours).
    pub(crate) fn take_back(py: Python<'_>, body: LentBody) -> Option<Vec<(Py<PyBytes>, Bytes)>> {
        let memory = BytesMemory::written(body)?;
        let parts = memory.parts.into_iter().map(|part| {
            let object = part.object.clone_ref(py);
            (object, Bytes::from_owner(Written(part)))
        });
        Some(parts.collect())
    }

    /// A new `bytes` holding `pieces` one after the other: one copy, into
    /// memory that was never zeroed.
    pub(crate) fn concat<'py>(py: Python<'py>, pieces: &[Bytes]) -> PyResult<Bound<'py, PyBytes>> {
        let size = pieces.iter().map(Bytes::len).sum();
        BytesMemory::filled(py, size, |body| {
            for piece in pieces {
                body.put_slice(piece);
            }
            Ok(())
        })
    }

    /// A new `bytes` of `size` bytes, all of which `fill` writes into
    /// memory that was never zeroed.
    pub(crate) fn filled<'py>(
        py: Python<'py>,
        size: usize,
        fill: impl FnOnce(&mut LentBody) -> PyResult<()>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut body = LentBody::new(Box::new(BytesMemory::new(py, size, size)?));
        fill(&mut body)?;
        // Ours, in one part; `None` if `fill` left some of it unwritten.
        let memory = BytesMemory::written(body)
            .ok_or_else(|| PySystemError::new_err("request body not filled"))?;
        let part = memory.parts.into_iter().next();
        Ok(part.ok_or_else(|| PySystemError::new_err("request body lost"))?.object.into_bound(py))
    }

    /// Ours, and written whole.
    fn written(body: LentBody) -> Option<Box<BytesMemory>> {
        let memory: Box<dyn Any> = body.into_memory().ok()?;
        memory.downcast::<BytesMemory>().ok()
    }
}

// SAFETY: always the objects' storage, which never moves, and which only
// this value reaches until the core hands it back (see `Send` on `Part`);
// each part is its own object, so they never overlap.
unsafe impl BodyMemory for BytesMemory {
    fn parts(&self) -> usize {
        self.parts.len()
    }

    fn part(&mut self, index: usize) -> &mut [MaybeUninit<u8>] {
        let part = &self.parts[index];
        // SAFETY: the object's storage, `len` bytes (see `Send` on `Part`).
        unsafe { std::slice::from_raw_parts_mut(part.data.as_ptr(), part.len) }
    }
}

/// A [`Part`] the core wrote whole: its bytes, for reads that take part of
/// it (the object keeps them alive).
struct Written(Part);

impl AsRef<[u8]> for Written {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: every byte was written (`LentBody::into_memory` hands back
        // only a full body), and a `bytes` object is never written again.
        unsafe { std::slice::from_raw_parts(self.0.data.as_ptr().cast(), self.0.len) }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_app_gets_the_very_object_the_core_wrote_the_body_into() {
        Python::attach(|py| {
            let mut body = BytesMemory::lend(py, 11).unwrap();
            // Written without the GIL, as the core does.
            let body = py.detach(move || {
                body.put_slice(b"hello ");
                body.put_slice(b"world");
                body
            });
            let (object, view) = BytesMemory::take_back(py, body).unwrap().pop().unwrap();
            let object = object.into_bound(py);
            assert_eq!(object.as_bytes(), b"hello world");
            assert_eq!(&view[..], b"hello world");
            assert_eq!(view.as_ptr(), object.as_bytes().as_ptr(), "one storage, no copy");
            // It is an ordinary bytes object to Python.
            let hashed = object.hash().unwrap();
            assert_eq!(hashed, PyBytes::new(py, b"hello world").hash().unwrap());
            // The view outlives the app's reference.
            drop(object);
            assert_eq!(&view[5..], b" world");
        });
    }

    #[test]
    fn a_body_not_written_whole_is_not_taken_back() {
        Python::attach(|py| {
            let mut body = BytesMemory::lend(py, 4).unwrap();
            body.put_slice(b"abc");
            assert!(BytesMemory::take_back(py, body).is_none());
            // Someone else's memory is not ours to take.
            let mut other = rwsgi_testkit::lent_heap(1);
            other.put_slice(b"x");
            assert!(BytesMemory::take_back(py, other).is_none());
        });
    }
}
