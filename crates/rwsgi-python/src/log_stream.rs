//! `wsgi.errors`: a text stream whose lines go to the server log, and, for
//! a request whose protocol carries it (`errors-to-peer`), to its peer.

use crate::channel::emit;
use bytes::Bytes;
use pyo3::prelude::*;
use rwsgi_proto::Event;
use std::sync::{Mutex, PoisonError};

/// `wsgi.errors`. Complete lines are logged; a partial line waits for its
/// newline, `flush()`, or the stream's end. The process shares one; a
/// request whose writes also go to its peer has its own.
#[pyclass(module = "rwsgi", frozen)]
#[derive(Debug, Default)]
pub(crate) struct ErrorStream {
    pending: Mutex<String>,
    /// The response channel of the request this stream belongs to.
    peer: Option<Mutex<flume::Sender<Event>>>,
}

impl ErrorStream {
    /// A request's own stream: what it writes also goes to `events`.
    pub(crate) fn for_peer(events: flume::Sender<Event>) -> ErrorStream {
        ErrorStream { pending: Mutex::default(), peer: Some(Mutex::new(events)) }
    }

    /// The request's response continues on `events` (an inline call's
    /// iteration moved to a pool thread).
    pub(crate) fn redirect(&self, events: flume::Sender<Event>) {
        if let Some(peer) = &self.peer {
            *peer.lock().unwrap_or_else(PoisonError::into_inner) = events;
        }
    }

    fn log_lines(&self, text: &str, flush: bool) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
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

impl Drop for ErrorStream {
    fn drop(&mut self) {
        self.log_lines("", true);
    }
}

#[pymethods]
impl ErrorStream {
    fn write(&self, py: Python<'_>, text: &str) -> usize {
        self.log_lines(text, false);
        if let Some(peer) = &self.peer
            && !text.is_empty()
        {
            let events = peer.lock().unwrap_or_else(PoisonError::into_inner).clone();
            // After its response, the request's peer is gone: only logged.
            let _ = emit(py, &events, Event::Stderr(Bytes::copy_from_slice(text.as_bytes())));
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
