//! `wsgi.errors`: a text stream whose lines go to the server log.

use crate::pool::Event;
use crate::response::emit;
use bytes::Bytes;
use pyo3::prelude::*;
use std::cell::RefCell;
use std::sync::Mutex;

thread_local! {
    /// The response channel of the request this Python thread is serving,
    /// when `wsgi.errors` text also goes to the peer. Thread-local because
    /// `wsgi.errors` is one object: a write from a thread the app started
    /// itself belongs to no request and is only logged.
    static PEER: RefCell<Option<flume::Sender<Event>>> = const { RefCell::new(None) };
}

/// While alive, this thread's `wsgi.errors` writes also go to the peer of
/// the request being served.
pub(crate) struct PeerErrors;

impl PeerErrors {
    pub(crate) fn attach(events: &flume::Sender<Event>) -> PeerErrors {
        PEER.with_borrow_mut(|peer| *peer = Some(events.clone()));
        PeerErrors
    }
}

impl Drop for PeerErrors {
    fn drop(&mut self) {
        PEER.with_borrow_mut(|peer| *peer = None);
    }
}

/// `wsgi.errors`. One per process; complete lines are logged, a partial line
/// waits for its newline or `flush()`.
#[pyclass(module = "rwsgi", frozen)]
#[derive(Debug, Default)]
pub(crate) struct ErrorStream {
    pending: Mutex<String>,
}

impl ErrorStream {
    fn log_lines(&self, text: &str, flush: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        pending.push_str(text);
        while let Some(newline) = pending.find('\n') {
            tracing::warn!(target: "wsgi.errors", "{}", &pending[..newline]);
            pending.drain(..=newline);
        }
        if flush && !pending.is_empty() {
            tracing::warn!(target: "wsgi.errors", "{}", pending);
            pending.clear();
        }
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, py: Python<'_>, text: &str) -> usize {
        self.log_lines(text, false);
        if !text.is_empty() {
            let peer = PEER.with_borrow(Clone::clone);
            if let Some(events) = peer {
                let _ = emit(py, &events, Event::Stderr(Bytes::copy_from_slice(text.as_bytes())));
            }
        }
        text.chars().count()
    }

    fn writelines(&self, py: Python<'_>, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.write(py, &line?.extract::<String>()?);
        }
        Ok(())
    }

    fn flush(&self) {
        self.log_lines("", true);
    }
}
