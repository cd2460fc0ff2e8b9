//! The storage of a new `bytes` object, lent to the core to read a request
//! body into ([`rwsgi_proto::BodyMemory`]): the app's `wsgi.input.read()`
//! then returns that very object, with no copy after the kernel's.

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

/// A `bytes` object nobody has seen yet, and where its bytes are.
#[derive(Debug)]
pub(crate) struct BytesMemory {
    object: Py<PyBytes>,
    data: NonNull<MaybeUninit<u8>>,
    len: usize,
}

// SAFETY: `data` points into the storage of `object`, which `object` keeps
// alive and which never moves. Until the core hands the body back, nothing
// else reaches the object (it is new, and no Python code has seen it), so
// it may be written from any thread, without the GIL.
unsafe impl Send for BytesMemory {}
// SAFETY: the bytes are written only through `&mut self`.
unsafe impl Sync for BytesMemory {}

impl BytesMemory {
    /// Memory for a body of `size` bytes, as [`rwsgi_proto::Responder::lend_body`] wants it.
    /// None for an empty body (CPython's `b''` is one shared object), or
    /// when Python has no memory: the core then reads into its own buffer.
    pub(crate) fn lend(py: Python<'_>, size: usize) -> Option<LentBody> {
        if size == 0 {
            return None;
        }
        BytesMemory::new(py, size).ok().map(|memory| LentBody::new(Box::new(memory)))
    }

    fn new(py: Python<'_>, size: usize) -> PyResult<BytesMemory> {
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
        Ok(BytesMemory { object, data, len: size })
    }

    /// The `bytes` object the core wrote `body` into, whole, and a view of
    /// its bytes; `None` for a body that is not (not whole, or not ours).
    pub(crate) fn take_back(py: Python<'_>, body: LentBody) -> Option<(Py<PyBytes>, Bytes)> {
        let memory = BytesMemory::written(body)?;
        let object = memory.object.clone_ref(py);
        Some((object, Bytes::from_owner(Written(*memory))))
    }

    /// A new `bytes` holding `pieces` one after the other: one copy, into
    /// memory that was never zeroed.
    pub(crate) fn concat<'py>(py: Python<'py>, pieces: &[Bytes]) -> PyResult<Bound<'py, PyBytes>> {
        let size = pieces.iter().map(Bytes::len).sum();
        let mut body = LentBody::new(Box::new(BytesMemory::new(py, size)?));
        for piece in pieces {
            body.put_slice(piece);
        }
        // Whole and ours, as written just above.
        let memory = BytesMemory::written(body)
            .ok_or_else(|| PySystemError::new_err("request body pieces lost"))?;
        Ok(memory.object.into_bound(py))
    }

    /// Ours, and written whole.
    fn written(body: LentBody) -> Option<Box<BytesMemory>> {
        let memory: Box<dyn Any> = body.into_memory().ok()?;
        memory.downcast::<BytesMemory>().ok()
    }
}

// SAFETY: always the object's storage, which never moves, and which only
// this value reaches until the core hands it back (see `Send` above).
unsafe impl BodyMemory for BytesMemory {
    fn memory(&mut self) -> &mut [MaybeUninit<u8>] {
        // SAFETY: the object's storage, `len` bytes (see `Send` above).
        unsafe { std::slice::from_raw_parts_mut(self.data.as_ptr(), self.len) }
    }
}

/// A [`BytesMemory`] the core wrote whole: its bytes, for reads that take
/// part of the body (the object keeps them alive).
struct Written(BytesMemory);

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
            let (object, view) = BytesMemory::take_back(py, body).unwrap();
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
