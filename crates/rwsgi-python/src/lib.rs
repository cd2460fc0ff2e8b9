//! The pyo3 bridge between rwsgi's core and a WSGI application (PEP 3333).
//!
//! It loads the app ([`load_app`]), and runs it on a pool of Python threads
//! ([`PythonPool`]). The core hands each request over as a [`Job`] — the
//! protocol-neutral [`rwsgi_proto::Environ`] plus the request body — and gets
//! back an ordered stream of [`Event`]s: body reads, the response head, body
//! pieces, a file to `sendfile`, the end. The GIL is held only while Python
//! runs: a thread waiting for a job, for body bytes, or for room to send a
//! response piece has detached from the interpreter.
//!
//! With one Python thread, the core may instead run a request on its own
//! thread ([`Dispatch::inline_now`], [`Inline::run`]); an iterable that is not
//! a plain list or tuple then continues on the pool thread
//! ([`Dispatch::resume`]).

#![deny(unsafe_code)]

mod environ;
mod error;
mod file_wrapper;
mod input;
mod loader;
mod log_stream;
mod pool;
mod response;

pub use error::BridgeError;
pub use loader::{App, AppSpec, dump_stacks_on, load_app};
pub use pool::{
    BodyMsg, BodySource, Continuation, Dispatch, Event, Inline, Job, PoolGone, PoolSettings,
    PythonPool, QUEUED_PER_THREAD, RequestObserver, with_python_thread_state,
};
