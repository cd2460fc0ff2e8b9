//! `wsgi.errors`: a text stream whose lines go to the server log.

use pyo3::prelude::*;
use std::sync::Mutex;

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
    fn write(&self, text: &str) -> usize {
        self.log_lines(text, false);
        text.chars().count()
    }

    fn writelines(&self, lines: &Bound<'_, PyAny>) -> PyResult<()> {
        for line in lines.try_iter()? {
            self.log_lines(&line?.extract::<String>()?, false);
        }
        Ok(())
    }

    fn flush(&self) {
        self.log_lines("", true);
    }
}
