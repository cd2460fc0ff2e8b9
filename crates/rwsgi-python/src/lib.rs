//! The pyo3 bridge between rwsgi's core and a WSGI application (PEP 3333).
//!
//! It loads the app ([`load_app`]), and runs it on a pool of Python threads
//! ([`PythonPool`]). [`Dispatch`] is the app as a
//! [`rwsgi_proto::Responder`]: the core hands it each request (the
//! protocol-neutral [`rwsgi_proto::Environ`] plus the request body) and
//! reads back an ordered stream of [`rwsgi_proto::Event`]s: body reads, the
//! response head, body pieces, a file to `sendfile`, the end. The GIL is
//! held only while Python runs: a thread waiting for a job, for body bytes,
//! or for room to send a response piece has detached from the interpreter.
//! The bridge knows no protocol.
//!
//! With one Python thread, a request may instead run on the core's own
//! thread (inline); an iterable that is not a plain list or tuple then
//! continues on the pool thread.
//!
//! Modules, each importing only those listed before it: `channel` (sending
//! events without the GIL), `environ`, `lent` (the `bytes` a body is read
//! into), `input` (`wsgi.input`), `log_stream`
//! (`wsgi.errors`), `file_wrapper`, `loader`, `response` (one request's
//! call and iteration), `crew` (which thread takes the next job), `pool`
//! (threads and dispatch).

#![deny(unsafe_code)]

mod channel;
mod crew;
mod environ;
mod error;
mod file_wrapper;
mod input;
mod lent;
mod loader;
mod log_stream;
mod mounts;
mod pool;
mod response;

pub use error::BridgeError;
pub use loader::{App, AppSpec, dump_stacks_on, load_app, run_atexit};
pub use pool::{
    Dispatch, PoolSettings, PythonPool, QUEUED_PER_THREAD, RequestObserver,
    with_python_thread_state,
};
pub use response::exceptions;
