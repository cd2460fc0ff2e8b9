//! `wsgi.file_wrapper`: lets the core `sendfile` a real file.

use pyo3::prelude::*;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `environ['wsgi.file_wrapper'](filelike, block_size=8192)`. Iterating it
/// reads blocks, as PEP 3333 requires; the core recognises its own wrapper
/// and sends a real file with `sendfile` instead.
#[pyclass(module = "rwsgi")]
#[derive(Debug)]
pub(crate) struct FileWrapper {
    filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size = 8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        FileWrapper { filelike, block_size: block_size.max(1) }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        let block = self.filelike.bind(py).call_method1("read", (self.block_size,))?;
        Ok(if block.len()? == 0 { None } else { Some(block) })
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let filelike = self.filelike.bind(py);
        if filelike.hasattr("close")? {
            filelike.call_method0("close")?;
        }
        Ok(())
    }
}

/// A file the core can `sendfile` from: a duplicate of the descriptor, the
/// current position and the bytes left.
pub(crate) struct SendableFile {
    pub(crate) file: std::fs::File,
    pub(crate) offset: u64,
    pub(crate) remaining: u64,
}

impl FileWrapper {
    /// The wrapped object as a sendable file, if it is a regular file with a
    /// descriptor and a position; `None` means: iterate it instead.
    pub(crate) fn sendable(&self, py: Python<'_>) -> Option<SendableFile> {
        let filelike = self.filelike.bind(py);
        let fd: i32 = filelike.call_method0("fileno").ok()?.extract().ok()?;
        // `tell()` is the logical position, past whatever Python has buffered,
        // which is where the app expects the body to start.
        let offset: u64 = filelike.call_method0("tell").ok()?.extract().ok()?;
        if fd < 0 {
            return None;
        }
        #[allow(unsafe_code)]
        // SAFETY: `fd` comes from the file object's own `fileno()`, and that
        // object is alive and referenced (we hold it and the GIL) for this whole
        // scope, so the descriptor stays open while it is borrowed; we only
        // duplicate it.
        let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
        let file = std::fs::File::from(borrowed.try_clone_to_owned().ok()?);
        let meta = file.metadata().ok()?;
        if !meta.is_file() {
            return None;
        }
        debug_assert!(file.as_raw_fd() != fd);
        Some(SendableFile { file, offset, remaining: meta.len().saturating_sub(offset) })
    }
}
