//! Calling the app and turning what it does into [`Event`]s (PEP 3333
//! "The start_response() Callable", "Specification Details").

use crate::environ::{self, Interned, KeyCache};
use crate::file_wrapper::FileWrapper;
use crate::input::InputStream;
use crate::loader::{format_traceback, summarize};
use crate::log_stream::ErrorStream;
use crate::pool::{Event, Job};
use bytes::Bytes;
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{PyTypeInfo, intern};
use rwsgi_proto::{ResponseHead, is_hop_by_hop};

/// What every request of the process shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) app: Py<PyAny>,
    pub(crate) interned: Interned,
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
    pub(crate) errors_to_peer: bool,
    pub(crate) observer: Option<std::sync::Arc<dyn crate::RequestObserver>>,
}

/// The peer went away: stop producing the response.
#[derive(Debug)]
pub(crate) struct ClientGone;

/// Sends an event, waiting without the GIL while the channel is full.
pub(crate) fn emit(
    py: Python<'_>,
    events: &flume::Sender<Event>,
    event: Event,
) -> Result<(), ClientGone> {
    match events.try_send(event) {
        Ok(()) => Ok(()),
        Err(flume::TrySendError::Full(event)) => {
            let events = events.clone();
            py.detach(move || events.send(event)).map_err(|_| ClientGone)
        }
        Err(flume::TrySendError::Disconnected(_)) => Err(ClientGone),
    }
}

/// Zero-copy view of a Python `bytes` object as [`Bytes`].
fn to_bytes(bytes: &Bound<'_, PyBytes>) -> Bytes {
    Bytes::from_owner(PyBackedBytes::from(bytes.clone()))
}

/// `start_response`, and the `write()` it returns.
#[pyclass(module = "rwsgi")]
#[derive(Debug)]
pub(crate) struct StartResponse {
    /// Set by the app, not yet sent.
    head: Option<ResponseHead>,
    /// The head went out: `exc_info` must now re-raise.
    sent: bool,
    /// Body bytes the declared `Content-Length` still allows.
    remaining: Option<u64>,
    /// The app broke its `Content-Length` promise by sending more.
    overflowed: bool,
    events: flume::Sender<Event>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = slf.py();
        {
            let mut this = slf.borrow_mut();
            match exc_info.filter(|e| !e.is_none()) {
                Some(exc_info) if this.sent => {
                    let value = exc_info.get_item(1)?;
                    return Err(PyErr::from_value(value));
                }
                Some(_) => {}
                None if this.head.is_some() || this.sent => {
                    return Err(PyAssertionError::new_err(
                        "start_response() called a second time without exc_info",
                    ));
                }
                None => {}
            }
            let head = validate_head(status, headers)?;
            this.remaining = head.content_length;
            this.head = Some(head);
        }
        slf.getattr(intern!(py, "write"))
    }

    /// PEP 3333 `write(body_data)`: the bytes go out before anything the
    /// returned iterable yields.
    fn write(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
        let data =
            data.cast::<PyBytes>().map_err(|_| PyTypeError::new_err("write() takes bytes"))?;
        if self.head.is_none() && !self.sent {
            return Err(PyAssertionError::new_err("write() called before start_response()"));
        }
        self.send_body(py, to_bytes(data))
            .map_err(|_| PyOSError::new_err("client disconnected"))?;
        if self.overflowed {
            return Err(PyValueError::new_err("write() past the declared Content-Length"));
        }
        Ok(())
    }
}

impl StartResponse {
    /// Sends a non-empty body piece, the head first if it is still pending,
    /// cutting it at the declared `Content-Length`.
    fn send_body(&mut self, py: Python<'_>, mut data: Bytes) -> Result<(), ClientGone> {
        if data.is_empty() {
            return Ok(());
        }
        if let Some(remaining) = &mut self.remaining {
            if data.len() as u64 > *remaining {
                self.overflowed = true;
                data.truncate(*remaining as usize);
            }
            *remaining -= data.len() as u64;
        }
        let event = match self.head.take() {
            Some(head) => {
                self.sent = true;
                Event::Head { head, body: vec![data] }
            }
            None if data.is_empty() => return Ok(()),
            None => Event::Data(data),
        };
        emit(py, &self.events, event)
    }

    /// The response ends well only if it sent all it declared, and no more.
    fn complete(&self) -> bool {
        !self.overflowed && self.remaining.is_none_or(|r| r == 0)
    }
}

/// Validates `start_response`'s arguments (PEP 3333; RFC 9110 §5): a
/// `NNN reason` status and `(name, value)` pairs of latin-1 `str`, token
/// names, no control characters in values, no hop-by-hop headers. A bad
/// header raises here, while the app runs, so it never reaches the wire.
fn validate_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let status = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("status must be a str such as '200 OK'"))?;
    let status_line = latin1_bytes(&status.to_cow()?, "status")?;
    let code = match status_line.as_slice() {
        [a, b, c, rest @ ..]
            if [a, b, c].iter().all(|d| d.is_ascii_digit())
                && (rest.is_empty() || rest[0] == b' ')
                && rest.iter().all(|&ch| ch == b'\t' || !ch.is_ascii_control()) =>
        {
            u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0')
        }
        _ => {
            return Err(PyValueError::new_err(format!("invalid status {status:?}: want '200 OK'")));
        }
    };
    if code < 100 {
        return Err(PyValueError::new_err(format!("invalid status code {code}")));
    }
    let mut status_line = status_line;
    if status_line.len() == 3 {
        status_line.push(b' ');
    }
    if !headers.is_instance_of::<PyList>() && !headers.is_instance_of::<PyTuple>() {
        return Err(PyTypeError::new_err(
            "response headers must be a list of (name, value) tuples",
        ));
    }
    let mut parsed = Vec::with_capacity(headers.len()?);
    let mut content_length = None;
    for item in headers.try_iter()? {
        let item = item?;
        let (name, value): (Bound<'_, PyString>, Bound<'_, PyString>) =
            item.extract().map_err(|_| {
                PyTypeError::new_err(format!("response header {item} is not a (str, str) tuple"))
            })?;
        let name = latin1_bytes(&name.to_cow()?, "header name")?;
        let value = latin1_bytes(&value.to_cow()?, "header value")?;
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(PyValueError::new_err(format!(
                "invalid response header name {:?}",
                String::from_utf8_lossy(&name)
            )));
        }
        if value.iter().any(|&b| b != b'\t' && (b.is_ascii_control())) {
            return Err(PyValueError::new_err(format!(
                "control character in response header {}",
                String::from_utf8_lossy(&name)
            )));
        }
        if is_hop_by_hop(&name) {
            return Err(PyValueError::new_err(format!(
                "hop-by-hop header {} is the server's to set (PEP 3333)",
                String::from_utf8_lossy(&name)
            )));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            let digits = value.trim_ascii();
            let length = (!digits.is_empty() && digits.iter().all(u8::is_ascii_digit))
                .then(|| std::str::from_utf8(digits).ok()?.parse::<u64>().ok())
                .flatten()
                .ok_or_else(|| PyValueError::new_err("invalid Content-Length in the response"))?;
            if content_length.is_some_and(|l| l != length) {
                return Err(PyValueError::new_err("two different Content-Length headers"));
            }
            content_length = Some(length);
        }
        parsed.push((Bytes::from(name), Bytes::from(value)));
    }
    Ok(ResponseHead {
        status: code,
        status_line: Bytes::from(status_line),
        headers: parsed,
        content_length,
    })
}

fn latin1_bytes(text: &str, what: &str) -> PyResult<Vec<u8>> {
    if text.is_ascii() {
        return Ok(text.as_bytes().to_vec());
    }
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect::<Option<Vec<u8>>>()
        .ok_or_else(|| PyValueError::new_err(format!("{what} has characters outside latin-1")))
}

/// RFC 9110 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Runs one request to the end on a pool thread. Every path ends with
/// exactly one `End` (or `Whole`) event unless the client is gone, and calls
/// the iterable's `close()` exactly once.
pub(crate) fn run(py: Python<'_>, shared: &Shared, cache: &mut KeyCache, job: Job) {
    if let Some(called) = call(py, shared, cache, job) {
        called.finish(py);
    }
}

/// Runs one request's app call on the calling thread (the I/O thread, with
/// `threads = 1`). A plain list or tuple is answered here and then; any other
/// iterable (a generator may stream for long, to a slow reader) comes back
/// to be iterated on a pool thread, by [`Continuation::finish`].
pub(crate) fn run_inline(
    py: Python<'_>,
    shared: &Shared,
    cache: &mut KeyCache,
    job: Job,
) -> Option<Continuation> {
    let called = call(py, shared, cache, job)?;
    if called.is_plain(py) {
        called.finish(py);
        return None;
    }
    Some(called)
}

/// An app call that returned: the rest of the request is iterating its
/// result, sending what it yields and closing it.
#[derive(Debug)]
pub(crate) struct Continuation {
    start: Py<StartResponse>,
    result: Py<PyAny>,
    what: Described,
    /// `wsgi.errors` text also goes to the peer.
    errors_to_peer: bool,
}

impl Continuation {
    /// The response goes to `events` from now on (the events sent so far
    /// went to the previous channel).
    pub(crate) fn redirect(&self, py: Python<'_>, events: flume::Sender<Event>) {
        self.start.borrow_mut(py).events = events;
    }

    /// A plain list or tuple: its whole body is there, nothing can block.
    fn is_plain(&self, py: Python<'_>) -> bool {
        let result = self.result.bind(py);
        result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>()
    }

    /// Iterates the result to the end, then closes it.
    pub(crate) fn finish(self, py: Python<'_>) {
        let events = self.start.borrow(py).events.clone();
        let _errors = self.errors_to_peer.then(|| crate::log_stream::PeerErrors::attach(&events));
        let plain = self.is_plain(py);
        let Continuation { start, result, what, .. } = self;
        let result = result.bind(py);
        let outcome = respond(py, &start, result);
        // PEP 3333: close() on completion, on error and on disconnect alike.
        // A plain list or tuple has none, and asking costs an AttributeError.
        let closed = match if plain { Ok(None) } else { result.getattr_opt(intern!(py, "close")) } {
            Ok(Some(close)) => close.call0().map(drop),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) | Err(Failure::Gone) => {}
            Err(Failure::Python(err)) => fail(py, &events, Some(&start), &what, &err),
        }
        if let Err(err) = closed {
            tracing::error!(
                "{what}: the response's close() raised: {}",
                format_traceback(py, &err)
            );
        }
    }
}

/// The call phase: builds the environ and calls the app. `None`: it failed,
/// and the failure was answered. What the app writes to `wsgi.errors`
/// meanwhile reaches the peer too (with `errors_to_peer`); the iteration
/// attaches its own channel, on whichever thread runs it.
fn call(py: Python<'_>, shared: &Shared, cache: &mut KeyCache, job: Job) -> Option<Continuation> {
    let _errors = shared.errors_to_peer.then(|| crate::log_stream::PeerErrors::attach(&job.events));
    crate::input::take_body_failed();
    let Job { environ, body, events } = job;
    let what = describe(&environ);
    let start = match Py::new(
        py,
        StartResponse {
            head: None,
            sent: false,
            remaining: None,
            overflowed: false,
            events: events.clone(),
        },
    ) {
        Ok(start) => start,
        Err(err) => {
            fail(py, &events, None, &what, &err);
            return None;
        }
    };
    let env = match build_environ(py, shared, cache, &environ, body, &events) {
        Ok(env) => env,
        Err(err) => {
            fail(py, &events, Some(&start), &what, &err);
            return None;
        }
    };
    match shared.app.bind(py).call1((env, start.bind(py))) {
        Ok(result) => Some(Continuation {
            start,
            result: result.unbind(),
            what,
            errors_to_peer: shared.errors_to_peer,
        }),
        Err(err) => {
            fail(py, &events, Some(&start), &what, &err);
            None
        }
    }
}

enum Failure {
    Gone,
    Python(PyErr),
}

impl From<PyErr> for Failure {
    fn from(err: PyErr) -> Self {
        Failure::Python(err)
    }
}

impl From<ClientGone> for Failure {
    fn from(_: ClientGone) -> Self {
        Failure::Gone
    }
}

fn build_environ<'py>(
    py: Python<'py>,
    shared: &Shared,
    cache: &mut KeyCache,
    environ: &rwsgi_proto::Environ,
    body: crate::pool::BodySource,
    events: &flume::Sender<Event>,
) -> PyResult<Bound<'py, PyDict>> {
    let interned = &shared.interned;
    let env = environ::cgi_dict(py, interned, cache, environ)?;
    let input = Bound::new(py, InputStream::new(body, events))?;
    env.set_item(interned.wsgi_version.bind(py), interned.version.bind(py))?;
    env.set_item(interned.wsgi_url_scheme.bind(py), interned.scheme(py, environ.scheme))?;
    env.set_item(interned.wsgi_input.bind(py), input)?;
    env.set_item(interned.wsgi_errors.bind(py), error_stream(py)?)?;
    env.set_item(interned.wsgi_multithread.bind(py), shared.multithread)?;
    env.set_item(interned.wsgi_multiprocess.bind(py), shared.multiprocess)?;
    env.set_item(interned.wsgi_run_once.bind(py), false)?;
    env.set_item(interned.wsgi_input_terminated.bind(py), true)?;
    env.set_item(interned.wsgi_file_wrapper.bind(py), FileWrapper::type_object(py))?;
    Ok(env)
}

/// The process's one `wsgi.errors` object.
fn error_stream(py: Python<'_>) -> PyResult<&Bound<'_, ErrorStream>> {
    static STREAM: pyo3::sync::PyOnceLock<Py<ErrorStream>> = pyo3::sync::PyOnceLock::new();
    STREAM.get_or_try_init(py, || Py::new(py, ErrorStream::default())).map(|s| s.bind(py))
}

/// Sends what the app returned.
fn respond(
    py: Python<'_>,
    start: &Py<StartResponse>,
    result: &Bound<'_, PyAny>,
) -> Result<(), Failure> {
    if let Ok(list) = result.cast::<PyList>() {
        return respond_whole(py, start, list.iter());
    }
    if let Ok(tuple) = result.cast::<PyTuple>() {
        return respond_whole(py, start, tuple.iter());
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>()
        && start.borrow(py).head.is_some()
        && let Some(file) = wrapper.borrow().sendable(py)
    {
        return respond_file(py, start, file);
    }
    for item in result.try_iter()? {
        let item = item?;
        let data = item.cast::<PyBytes>().map_err(|_| body_type_error(&item))?;
        start.borrow_mut(py).send_body(py, to_bytes(data))?;
    }
    finish(py, start)
}

fn body_type_error(item: &Bound<'_, PyAny>) -> PyErr {
    let kind = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!("the response body must yield bytes, not {kind}"))
}

/// Ends a streamed response: sends the head if no body piece carried it.
fn finish(py: Python<'_>, start: &Py<StartResponse>) -> Result<(), Failure> {
    let mut this = start.borrow_mut(py);
    let complete = this.complete();
    let event = match this.head.take() {
        Some(head) => {
            this.sent = true;
            Event::Whole { head, body: Vec::new(), complete }
        }
        None if this.sent => Event::End { complete },
        None => {
            return Err(PyAssertionError::new_err(
                "the app returned without calling start_response()",
            )
            .into());
        }
    };
    Ok(emit(py, &this.events, event)?)
}

/// A list or tuple: the whole body is known, so it goes out in one event,
/// with a `Content-Length` computed when the app gave none.
fn respond_whole<'py>(
    py: Python<'py>,
    start: &Py<StartResponse>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> Result<(), Failure> {
    let mut body = Vec::new();
    let mut total = 0u64;
    for item in items {
        let data = item.cast::<PyBytes>().map_err(|_| body_type_error(&item))?;
        if !data.as_bytes().is_empty() {
            total += data.as_bytes().len() as u64;
            body.push(to_bytes(data));
        }
    }
    let mut this = start.borrow_mut(py);
    let Some(mut head) = this.head.take() else {
        if this.sent {
            // The app used write() and returned a list: stream the rest.
            drop(this);
            for piece in body {
                start.borrow_mut(py).send_body(py, piece)?;
            }
            return finish(py, start);
        }
        return Err(
            PyAssertionError::new_err("the app returned without calling start_response()").into()
        );
    };
    this.sent = true;
    let complete = match head.content_length {
        Some(declared) if declared < total => {
            truncate(&mut body, declared);
            tracing::error!(
                "the app sent {total} bytes with Content-Length: {declared}; the body was cut"
            );
            false
        }
        Some(declared) => declared == total,
        None => {
            if !head.forbids_body() {
                head.content_length = Some(total);
                head.headers
                    .push((Bytes::from_static(b"Content-Length"), Bytes::from(total.to_string())));
            }
            true
        }
    };
    Ok(emit(py, &this.events, Event::Whole { head, body, complete })?)
}

fn truncate(body: &mut Vec<Bytes>, mut keep: u64) {
    body.retain_mut(|piece| {
        let take = (piece.len() as u64).min(keep);
        piece.truncate(take as usize);
        keep -= take;
        !piece.is_empty()
    });
}

/// A `wsgi.file_wrapper` over a real file: the core sends it with `sendfile`.
fn respond_file(
    py: Python<'_>,
    start: &Py<StartResponse>,
    file: crate::file_wrapper::SendableFile,
) -> Result<(), Failure> {
    let mut this = start.borrow_mut(py);
    let Some(mut head) = this.head.take() else {
        return Err(
            PyAssertionError::new_err("the app returned without calling start_response()").into()
        );
    };
    this.sent = true;
    let len = match head.content_length {
        Some(declared) => declared.min(file.remaining),
        None => {
            head.content_length = Some(file.remaining);
            head.headers.push((
                Bytes::from_static(b"Content-Length"),
                Bytes::from(file.remaining.to_string()),
            ));
            file.remaining
        }
    };
    let complete = head.content_length == Some(len);
    emit(py, &this.events, Event::Head { head, body: Vec::new() })?;
    if len > 0 {
        emit(py, &this.events, Event::File { file: file.file, offset: file.offset, len })?;
    }
    Ok(emit(py, &this.events, Event::End { complete })?)
}

/// The app failed. Before the head went out the client gets a plain 500;
/// after, the response is cut so the client cannot take it for complete.
fn fail(
    py: Python<'_>,
    events: &flume::Sender<Event>,
    start: Option<&Py<StartResponse>>,
    what: &Described,
    err: &PyErr,
) {
    let sent = start.is_some_and(|s| s.borrow(py).sent);
    // An OSError from a client that went away (or whose body broke) is the
    // client's doing: one line, no traceback; the core has logged the cause.
    let body_failed = crate::input::take_body_failed();
    if err.is_instance_of::<PyOSError>(py) && (events.is_disconnected() || body_failed) {
        tracing::info!("{what}: stopped, the client's request failed ({})", summarize(py, err));
    } else {
        tracing::error!("{what}: {}", format_traceback(py, err));
    }
    if events.is_disconnected() {
        return;
    }
    let event = if sent {
        Event::End { complete: false }
    } else {
        let head = ResponseHead::plain_error(500);
        let body = Bytes::from(format!("{}\n", rwsgi_proto::reason_phrase(500)));
        Event::Whole { head, body: vec![body], complete: true }
    };
    let _ = emit(py, events, event);
}

/// `METHOD URI` for log lines, kept as views of the request and only
/// formatted if a line is written.
#[derive(Debug)]
pub(crate) struct Described {
    method: Bytes,
    uri: Bytes,
}

fn describe(environ: &rwsgi_proto::Environ) -> Described {
    let get = |k| environ.get(k).cloned().unwrap_or_default();
    Described { method: get("REQUEST_METHOD"), uri: get("REQUEST_URI") }
}

impl std::fmt::Display for Described {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (method, uri) =
            (String::from_utf8_lossy(&self.method), String::from_utf8_lossy(&self.uri));
        write!(f, "{method} {uri}")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head(py: Python<'_>, status: &str, headers: Vec<(&str, &str)>) -> PyResult<ResponseHead> {
        validate_head(&PyString::new(py, status).into_any(), &headers.into_pyobject(py)?.into_any())
    }

    #[test]
    fn accepts_a_plain_head() {
        Python::attach(|py| {
            let h =
                head(py, "200 OK", vec![("Content-Type", "text/plain"), ("Content-Length", "5")])
                    .unwrap();
            assert_eq!(h.status, 200);
            assert_eq!(&h.status_line[..], b"200 OK");
            assert_eq!(h.content_length, Some(5));
            assert_eq!(h.headers.len(), 2);
            assert_eq!(&head(py, "204", vec![]).unwrap().status_line[..], b"204 ");
        });
    }

    #[test]
    fn latin1_text_becomes_one_byte_per_character() {
        Python::attach(|py| {
            let h = head(py, "200 Très bien", vec![("X-Name", "café")]).unwrap();
            assert_eq!(&h.status_line[..], b"200 Tr\xe8s bien");
            assert_eq!(&h.headers[0].1[..], b"caf\xe9");
            assert!(head(py, "200 OK", vec![("X-Euro", "\u{20ac}")]).is_err());
        });
    }

    #[test]
    fn rejects_what_could_split_or_corrupt_the_response() {
        Python::attach(|py| {
            for (status, headers) in [
                ("200 OK\r\nX: y", vec![]),
                ("OK", vec![]),
                ("20 OK", vec![]),
                ("200 OK", vec![("X-A", "a\r\nX-Injected: evil")]),
                ("200 OK", vec![("X-A", "a\nb")]),
                ("200 OK", vec![("X-A", "a\0b")]),
                ("200 OK", vec![("X Bad", "a")]),
                ("200 OK", vec![("", "a")]),
                ("200 OK", vec![("X-A:", "a")]),
                ("200 OK", vec![("Connection", "close")]),
                ("200 OK", vec![("transfer-encoding", "chunked")]),
                ("200 OK", vec![("Content-Length", "+5")]),
                ("200 OK", vec![("Content-Length", "5"), ("Content-Length", "6")]),
                ("200 OK", vec![("X-Euro", "\u{20ac}")]),
                ("200 \u{20ac}", vec![]),
            ] {
                assert!(head(py, status, headers.clone()).is_err(), "{status:?} {headers:?}");
            }
        });
    }

    #[test]
    fn truncate_keeps_exactly_the_declared_bytes() {
        let mut body = vec![Bytes::from_static(b"hello"), Bytes::from_static(b"world")];
        truncate(&mut body, 7);
        assert_eq!(body, vec![Bytes::from_static(b"hello"), Bytes::from_static(b"wo")]);
        truncate(&mut body, 0);
        assert!(body.is_empty());
    }
}
