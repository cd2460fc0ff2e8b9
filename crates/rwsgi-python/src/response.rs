//! Calling the app and turning what it does into [`Event`]s (PEP 3333
//! "The start_response() Callable", "Specification Details").

use crate::channel::{ClientGone, emit, to_bytes};
use crate::environ::{self, Interned, StrCache};
use crate::file_wrapper::FileWrapper;
use crate::input::InputStream;
use crate::loader::{format_traceback, summarize};
use crate::log_stream::ErrorStream;
use bytes::Bytes;
use pyo3::exceptions::{PyAssertionError, PyOSError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};
use pyo3::{PyTypeInfo, intern};
use rwsgi_proto::{AppHead, CgiVar, Event, ResponseHead};

/// What every request of the process shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) app: crate::App,
    pub(crate) interned: Interned,
    /// What each environ is copied from ([`Interned::template`]).
    pub(crate) template: Py<PyDict>,
    pub(crate) errors_to_peer: bool,
}

/// One request handed to a Python thread, and where its response goes.
#[derive(Debug)]
pub(crate) struct Job {
    pub(crate) request: rwsgi_proto::Request,
    /// In order. Bounded on the pool: a full channel makes the Python
    /// thread wait (without the GIL) for the client to catch up.
    pub(crate) events: flume::Sender<Event>,
}

/// What a Python thread keeps from one request to the next: the `str`s of
/// recent values, and the last request's `start_response` and `wsgi.input`
/// objects when nothing else holds them. Making and freeing those two
/// objects cost about 900 instructions of a hello-world request's 24,000.
#[derive(Debug, Default)]
pub(crate) struct Kept {
    pub(crate) strs: StrCache,
    start: Option<Py<StartResponse>>,
    input: Option<Py<InputStream>>,
}

impl Kept {
    /// A `start_response` for a request answered through `events`.
    fn start_response(
        &mut self,
        py: Python<'_>,
        events: flume::Sender<Event>,
    ) -> PyResult<Py<StartResponse>> {
        match self.start.take() {
            Some(start) => {
                *start.get().write.borrow_mut(py) = Write::new(events);
                Ok(start)
            }
            None => Py::new(py, StartResponse { write: Py::new(py, Write::new(events))? }),
        }
    }

    /// A `wsgi.input` for `body`.
    fn input<'py>(
        &mut self,
        py: Python<'py>,
        body: rwsgi_proto::BodySource,
        events: &flume::Sender<Event>,
    ) -> PyResult<Bound<'py, InputStream>> {
        match self.input.take() {
            Some(input) => {
                *input.borrow_mut(py) = InputStream::new(py, body, events);
                Ok(input.into_bound(py))
            }
            None => Bound::new(py, InputStream::new(py, body, events)),
        }
    }

    /// Keeps the objects of a request that is over, if nothing else holds
    /// them (the app may keep any of them, or the environ, past its
    /// request). The kept `write` lets go of the request's channel: the
    /// core sees the response end when the last sender is gone.
    fn keep(&mut self, py: Python<'_>, start: Py<StartResponse>, input: Py<InputStream>) {
        let write = &start.get().write;
        if held_only_here(py, &start) && held_only_here(py, write) {
            write.borrow_mut(py).events = no_channel();
            self.start = Some(start);
        }
        if held_only_here(py, &input) {
            self.input = Some(input);
        }
    }
}

#[cfg(test)]
impl Kept {
    /// Whether a `start_response` and a `wsgi.input` are kept.
    pub(crate) fn holds(&self) -> (bool, bool) {
        (self.start.is_some(), self.input.is_some())
    }
}

/// Whether the caller's reference is the only one to `object`.
#[allow(unsafe_code)]
fn held_only_here<T>(_: Python<'_>, object: &Py<T>) -> bool {
    // SAFETY: `object` is a live reference, and the GIL is held (the
    // `Python` token), so its count cannot change under us.
    unsafe { pyo3::ffi::Py_REFCNT(object.as_ptr()) == 1 }
}

/// A sender whose receiver is gone, for a kept `write` between requests.
fn no_channel() -> flume::Sender<Event> {
    thread_local! {
        static NONE: flume::Sender<Event> = flume::bounded(0).0;
    }
    NONE.with(Clone::clone)
}

/// PEP 3333's `start_response`. It holds its `write` callable, which holds
/// the response's state: the one object returns the other on every call
/// without making a bound method each time, and neither refers back, so
/// both can be kept for the thread's next request ([`Kept`]).
#[pyclass(module = "rwsgi", frozen)]
#[derive(Debug)]
pub(crate) struct StartResponse {
    write: Py<Write>,
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info = None))]
    fn __call__<'py>(
        &self,
        py: Python<'py>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Py<Write>> {
        let mut this = self.write.borrow_mut(py);
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
        Ok(self.write.clone_ref(py))
    }
}

/// PEP 3333's `write(body_data)` callable, and the state of the response
/// both it and the returned iterable send.
#[pyclass(module = "rwsgi")]
#[derive(Debug)]
pub(crate) struct Write {
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
impl Write {
    /// The bytes go out before anything the returned iterable yields.
    fn __call__(&mut self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<()> {
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

impl Write {
    fn new(events: flume::Sender<Event>) -> Self {
        Write { head: None, sent: false, remaining: None, overflowed: false, events }
    }

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

/// Takes `start_response`'s arguments apart: a `str` status and a list (or
/// tuple) of `(str, str)` pairs, which [`AppHead`] encodes as latin-1 and
/// checks. A bad head raises here, while the app runs, so it never reaches
/// the wire.
fn validate_head(status: &Bound<'_, PyAny>, headers: &Bound<'_, PyAny>) -> PyResult<ResponseHead> {
    let status = status
        .cast::<PyString>()
        .map_err(|_| PyTypeError::new_err("status must be a str such as '200 OK'"))?;
    let (list, tuple) = (headers.cast::<PyList>().ok(), headers.cast::<PyTuple>().ok());
    let count = match (list, tuple) {
        (Some(list), _) => list.len(),
        (None, Some(tuple)) => tuple.len(),
        (None, None) => {
            return Err(PyTypeError::new_err(
                "response headers must be a list of (name, value) tuples",
            ));
        }
    };
    let mut head = AppHead::new(&status.to_cow()?, count).map_err(refused)?;
    if let Some(list) = list {
        list.iter().try_for_each(|item| add_header(&mut head, &item))?;
    } else if let Some(tuple) = tuple {
        tuple.iter().try_for_each(|item| add_header(&mut head, &item))?;
    }
    Ok(head.finish())
}

/// Adds a `(str, str)` header to `head`.
fn add_header(head: &mut AppHead, item: &Bound<'_, PyAny>) -> PyResult<()> {
    let not_a_pair =
        || PyTypeError::new_err(format!("response header {item} is not a (str, str) tuple"));
    let pair = item.cast::<PyTuple>().ok().filter(|pair| pair.len() == 2).ok_or_else(not_a_pair)?;
    let name = pair.get_borrowed_item(0)?;
    let value = pair.get_borrowed_item(1)?;
    let (Ok(name), Ok(value)) = (name.cast::<PyString>(), value.cast::<PyString>()) else {
        return Err(not_a_pair());
    };
    head.header(&name.to_cow()?, &value.to_cow()?).map_err(refused)
}

/// What the app gave cannot go out: a `ValueError` in the app.
fn refused(err: rwsgi_proto::ProtoError) -> PyErr {
    PyValueError::new_err(err.to_string())
}

/// Exceptions the app raised in this process: from its call, its
/// response's iteration or `close()` (not a client's broken request).
static EXCEPTIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many exceptions the app has raised in this process (the stats
/// server's `exceptions`).
pub fn exceptions() -> u64 {
    EXCEPTIONS.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_exception() {
    EXCEPTIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// Runs one request to the end on a pool thread. Every path ends with
/// exactly one `End` (or `Whole`) event unless the client is gone, and calls
/// the iterable's `close()` exactly once.
pub(crate) fn run(py: Python<'_>, shared: &Shared, kept: &mut Kept, job: Job) {
    if let Some(called) = call(py, shared, kept, job) {
        called.finish(py, kept);
    }
}

/// Runs one request's app call on the calling thread (the I/O thread, with
/// `threads = 1`). A plain list or tuple is answered here and then; any other
/// iterable (a generator may stream for long, to a slow reader) comes back
/// to be iterated on a pool thread, by [`Continuation::finish`].
pub(crate) fn run_inline(
    py: Python<'_>,
    shared: &Shared,
    kept: &mut Kept,
    job: Job,
) -> Option<Continuation> {
    let called = call(py, shared, kept, job)?;
    if called.is_plain(py) {
        called.finish(py, kept);
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
    input: Py<InputStream>,
    /// The request's own `wsgi.errors`, when it also writes to the peer.
    errors: Option<Py<ErrorStream>>,
}

impl Continuation {
    /// The response goes to `events` from now on (the events sent so far
    /// went to the previous channel).
    pub(crate) fn redirect(&self, py: Python<'_>, events: flume::Sender<Event>) {
        if let Some(errors) = &self.errors {
            errors.get().redirect(events.clone());
        }
        self.start.get().write.borrow_mut(py).events = events;
    }

    /// A plain list or tuple: its whole body is there, nothing can block.
    fn is_plain(&self, py: Python<'_>) -> bool {
        let result = self.result.bind(py);
        result.is_exact_instance_of::<PyList>() || result.is_exact_instance_of::<PyTuple>()
    }

    /// Iterates the result to the end, then closes it; `kept` may keep
    /// its objects for the thread's next request.
    pub(crate) fn finish(self, py: Python<'_>, kept: &mut Kept) {
        let events = self.start.get().write.borrow(py).events.clone();
        let plain = self.is_plain(py);
        let Continuation { start, result, what, input, .. } = self;
        let iterable = result.bind(py);
        let write = &start.get().write;
        let outcome = respond(py, write, iterable);
        // PEP 3333: close() on completion, on error and on disconnect alike.
        // A plain list or tuple has none, and asking costs an AttributeError.
        let closed = match if plain { Ok(None) } else { iterable.getattr_opt(intern!(py, "close")) }
        {
            Ok(Some(close)) => close.call0().map(drop),
            Ok(None) => Ok(()),
            Err(err) => Err(err),
        };
        match outcome {
            Ok(()) | Err(Failure::Gone) => {}
            Err(Failure::Python(err)) => {
                fail(py, &events, Some(write), &what, &err, body_failed(py, &input));
            }
        }
        if let Err(err) = closed {
            count_exception();
            tracing::error!(
                "{what}: the response's close() raised: {}",
                format_traceback(py, &err)
            );
        }
        release(py, &input);
        drop(result);
        kept.keep(py, start, input);
    }
}

/// The request is over: its body's file closes now, even if the app keeps
/// the environ (in a traceback, a cycle, a global).
fn release(py: Python<'_>, input: &Py<InputStream>) {
    if let Ok(mut input) = input.try_borrow_mut(py) {
        input.release();
    }
}

/// Whether the request's body could not be completed (the app may be
/// reading it from a thread of its own: then it has not failed yet).
fn body_failed(py: Python<'_>, input: &Py<InputStream>) -> bool {
    input.try_borrow(py).is_ok_and(|input| input.failed())
}

/// The call phase: builds the environ and calls the app. `None`: it failed,
/// and the failure was answered.
fn call(py: Python<'_>, shared: &Shared, kept: &mut Kept, job: Job) -> Option<Continuation> {
    let Job { request, events } = job;
    let what = describe(&request.environ);
    let Some(app) = shared.app.table.choose(&request.environ) else {
        tracing::warn!("{what}: no app is mounted there: 404");
        no_app(&events);
        return None;
    };
    let start = match kept.start_response(py, events.clone()) {
        Ok(start) => start,
        Err(err) => {
            fail(py, &events, None, &what, &err, false);
            return None;
        }
    };
    let built = build_environ(py, shared, kept, request, &events);
    let (env, input, errors) = match built {
        Ok(built) => built,
        Err(err) => {
            fail(py, &events, Some(&start.get().write), &what, &err, false);
            return None;
        }
    };
    match shared.app.callables[app].bind(py).call1((env, start.bind(py))) {
        Ok(result) => Some(Continuation { start, result: result.unbind(), what, input, errors }),
        Err(err) => {
            fail(py, &events, Some(&start.get().write), &what, &err, body_failed(py, &input));
            release(py, &input);
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

/// The environ dict, with the request's `wsgi.input` and, when what it
/// writes also goes to the peer, its own `wsgi.errors`.
type Built<'py> = (Bound<'py, PyDict>, Py<InputStream>, Option<Py<ErrorStream>>);

fn build_environ<'py>(
    py: Python<'py>,
    shared: &Shared,
    kept: &mut Kept,
    request: rwsgi_proto::Request,
    events: &flume::Sender<Event>,
) -> PyResult<Built<'py>> {
    let interned = &shared.interned;
    let template = shared.template.bind(py);
    let env = environ::request_dict(py, interned, template, &mut kept.strs, &request.environ)?;
    let input = kept.input(py, request.body, events)?;
    env.set_item(interned.wsgi_input(py), &input)?;
    let errors = match shared.errors_to_peer {
        true => Some(Bound::new(py, ErrorStream::for_peer(events.clone()))?),
        false => None,
    };
    if let Some(errors) = &errors {
        env.set_item(interned.wsgi_errors(py), errors)?;
    }
    Ok((env, input.unbind(), errors.map(Bound::unbind)))
}

/// The `wsgi.*` values every request shares.
pub(crate) fn constants(
    py: Python<'_>,
    multithread: bool,
    multiprocess: bool,
    errors_to_peer: bool,
) -> PyResult<environ::Constants<'_>> {
    let errors = match errors_to_peer {
        true => None,
        false => Some(error_stream(py)?.clone().into_any()),
    };
    let file_wrapper = FileWrapper::type_object(py).into_any();
    Ok(environ::Constants { multithread, multiprocess, errors, file_wrapper })
}

/// The process's `wsgi.errors` object, for requests whose writes are only logged.
fn error_stream(py: Python<'_>) -> PyResult<&Bound<'_, ErrorStream>> {
    static STREAM: pyo3::sync::PyOnceLock<Py<ErrorStream>> = pyo3::sync::PyOnceLock::new();
    STREAM.get_or_try_init(py, || Py::new(py, ErrorStream::default())).map(|s| s.bind(py))
}

/// Sends what the app returned.
fn respond(py: Python<'_>, write: &Py<Write>, result: &Bound<'_, PyAny>) -> Result<(), Failure> {
    if let Ok(list) = result.cast::<PyList>() {
        return respond_whole(py, write, list.iter());
    }
    if let Ok(tuple) = result.cast::<PyTuple>() {
        return respond_whole(py, write, tuple.iter());
    }
    if let Ok(wrapper) = result.cast::<FileWrapper>()
        && write.borrow(py).head.is_some()
        && let Some(file) = wrapper.borrow().sendable(py)
    {
        return respond_file(py, write, file);
    }
    for item in result.try_iter()? {
        let item = item?;
        let data = item.cast::<PyBytes>().map_err(|_| body_type_error(&item))?;
        write.borrow_mut(py).send_body(py, to_bytes(data))?;
    }
    finish(py, write)
}

fn body_type_error(item: &Bound<'_, PyAny>) -> PyErr {
    let kind = item.get_type().name().map(|n| n.to_string()).unwrap_or_default();
    PyTypeError::new_err(format!("the response body must yield bytes, not {kind}"))
}

/// Ends a streamed response: sends the head if no body piece carried it.
fn finish(py: Python<'_>, write: &Py<Write>) -> Result<(), Failure> {
    let mut this = write.borrow_mut(py);
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
    write: &Py<Write>,
    items: impl Iterator<Item = Bound<'py, PyAny>>,
) -> Result<(), Failure> {
    let mut body = Vec::with_capacity(items.size_hint().0);
    let mut total = 0u64;
    for item in items {
        let data = item.cast::<PyBytes>().map_err(|_| body_type_error(&item))?;
        if !data.as_bytes().is_empty() {
            total += data.as_bytes().len() as u64;
            body.push(to_bytes(data));
        }
    }
    let mut this = write.borrow_mut(py);
    let Some(mut head) = this.head.take() else {
        if this.sent {
            // The app used write() and returned a list: stream the rest.
            drop(this);
            for piece in body {
                write.borrow_mut(py).send_body(py, piece)?;
            }
            return finish(py, write);
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
                head.set_content_length(total);
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
    write: &Py<Write>,
    file: crate::file_wrapper::SendableFile,
) -> Result<(), Failure> {
    let mut this = write.borrow_mut(py);
    let Some(mut head) = this.head.take() else {
        return Err(
            PyAssertionError::new_err("the app returned without calling start_response()").into()
        );
    };
    this.sent = true;
    let len = match head.content_length {
        Some(declared) => declared.min(file.remaining),
        None => {
            head.set_content_length(file.remaining);
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
/// No app is mounted where the request goes: a plain 404.
fn no_app(events: &flume::Sender<Event>) {
    let head = ResponseHead::plain_error(404);
    let body = Bytes::from(format!("{}\n", rwsgi_proto::reason_phrase(404)));
    let _ = events.try_send(Event::Whole { head, body: vec![body], complete: true });
}

fn fail(
    py: Python<'_>,
    events: &flume::Sender<Event>,
    write: Option<&Py<Write>>,
    what: &Described,
    err: &PyErr,
    body_failed: bool,
) {
    let sent = write.is_some_and(|w| w.borrow(py).sent);
    // An OSError from a client that went away (or whose body broke) is the
    // client's doing: one line, no traceback; the core has logged the cause.
    if err.is_instance_of::<PyOSError>(py) && (events.is_disconnected() || body_failed) {
        tracing::info!("{what}: stopped, the client's request failed ({})", summarize(py, err));
    } else {
        count_exception();
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
    let get = |var| environ.cgi(var).cloned().unwrap_or_default();
    Described { method: get(CgiVar::RequestMethod), uri: get(CgiVar::RequestUri) }
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
    fn a_plain_head_passes_through() {
        Python::attach(|py| {
            let h =
                head(py, "200 OK", vec![("Content-Type", "text/plain"), ("Content-Length", "5")])
                    .unwrap();
            assert_eq!((h.status, &h.status_line[..]), (200, &b"200 OK"[..]));
            assert_eq!((h.content_length, h.headers.len()), (Some(5), 2));
        });
    }

    /// What the head says is `AppHead`'s to check (its own
    /// tests go through every rule); here, that a refusal raises
    /// `ValueError` and a wrong type `TypeError`.
    #[test]
    fn a_bad_head_raises_in_the_app() {
        Python::attach(|py| {
            let refused = head(py, "200 OK", vec![("X-A", "a\r\nX-Injected: evil")]).unwrap_err();
            assert!(refused.is_instance_of::<PyValueError>(py), "{refused}");
            let status = pyo3::types::PyInt::new(py, 200).into_any();
            let headers = PyList::empty(py).into_any();
            assert!(
                validate_head(&status, &headers).unwrap_err().is_instance_of::<PyTypeError>(py)
            );
            let status = PyString::new(py, "200 OK").into_any();
            let not_a_list = PyDict::new(py).into_any();
            let wrong = validate_head(&status, &not_a_list).unwrap_err();
            assert!(wrong.is_instance_of::<PyTypeError>(py));
        });
    }

    /// The headers may be a list or a tuple.
    #[test]
    fn headers_come_from_a_list_or_a_tuple() {
        Python::attach(|py| {
            let pairs = vec![("Content-Type", "text/plain"), ("X-A", "a")];
            let status = PyString::new(py, "200 OK").into_any();
            for headers in [
                pairs.clone().into_pyobject(py).unwrap().into_any(),
                PyTuple::new(py, &pairs).unwrap().into_any(),
            ] {
                let h = validate_head(&status, &headers).unwrap();
                let got: Vec<_> = h.headers.iter().map(|(n, v)| (&n[..], &v[..])).collect();
                let want: Vec<_> =
                    pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())).collect();
                assert_eq!(got, want);
            }
        });
    }

    #[test]
    fn a_header_that_is_not_a_pair_of_strs_is_a_type_error() {
        Python::attach(|py| {
            let status = PyString::new(py, "200 OK").into_any();
            for bad in [
                "[('X-A', 'a', 'b')]",
                "[['X-A', 'a']]",
                "[('X-A', 1)]",
                "[(b'X-A', 'a')]",
                "['X-A']",
            ] {
                let headers = py.eval(&std::ffi::CString::new(bad).unwrap(), None, None).unwrap();
                let err = validate_head(&status, &headers).unwrap_err();
                assert!(err.is_instance_of::<PyTypeError>(py), "{bad}: {err}");
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
