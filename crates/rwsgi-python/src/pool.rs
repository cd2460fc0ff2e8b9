//! The pool of Python threads, and the messages between it and the core.

use crate::environ::{Interned, KeyCache};
use crate::loader::App;
use crate::response;
use bytes::Bytes;
use pyo3::prelude::*;
use rwsgi_proto::{Environ, ResponseHead};
use std::sync::Arc;

/// One request handed to a Python thread.
#[derive(Debug)]
pub struct Job {
    /// The request's CGI variables.
    pub environ: Environ,
    /// Its body.
    pub body: BodySource,
    /// Where the response goes, in order. Bounded: a full channel makes the
    /// Python thread wait (without the GIL) for the client to catch up.
    pub events: flume::Sender<Event>,
}

/// Where `wsgi.input` gets its bytes.
#[derive(Debug)]
pub enum BodySource {
    /// The core read the whole body before calling the app, so a slow client
    /// never holds a Python thread.
    Buffered(Bytes),
    /// The body is read on demand: `wsgi.input` sends [`Event::ReadBody`]
    /// and waits for one [`BodyMsg`] here.
    Streamed(flume::Receiver<BodyMsg>),
}

/// The core's answer to [`Event::ReadBody`].
#[derive(Debug)]
pub enum BodyMsg {
    /// More body bytes (never empty).
    Data(Bytes),
    /// The body is complete.
    Eof,
    /// The body cannot be completed (client gone, timeout, framing error):
    /// `wsgi.input.read()` raises `OSError` with this message.
    Failed(String),
}

/// What a Python thread tells the core, in order, for one request.
#[derive(Debug)]
pub enum Event {
    /// `wsgi.input` needs more bytes; answer with one [`BodyMsg`].
    ReadBody,
    /// The response head, with the first body pieces; more follow.
    Head {
        /// The validated head.
        head: ResponseHead,
        /// Body pieces to send right after it.
        body: Vec<Bytes>,
    },
    /// The whole response: head, body, and its end.
    Whole {
        /// The validated head.
        head: ResponseHead,
        /// The whole body.
        body: Vec<Bytes>,
        /// False when the body is shorter than its `Content-Length`, or was
        /// cut: the connection must not be reused.
        complete: bool,
    },
    /// A piece of body after the head.
    Data(Bytes),
    /// Send `len` bytes of this file from `offset` (`wsgi.file_wrapper`);
    /// the core uses `sendfile` where the protocol allows.
    File {
        /// A duplicate of the app's file descriptor.
        file: std::fs::File,
        /// Where to start.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// Text the app wrote to `wsgi.errors` while serving this request,
    /// for the peer ([`PoolSettings::errors_to_peer`]).
    Stderr(Bytes),
    /// The response is over.
    End {
        /// See [`Event::Whole::complete`].
        complete: bool,
    },
}

/// How the pool runs the app.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Python threads (`threads`).
    pub threads: usize,
    /// `wsgi.multiprocess`: more than one worker process serves the app.
    pub multiprocess: bool,
    /// Also send what a request writes to `wsgi.errors` to the peer, where
    /// its protocol can carry it (FastCGI STDERR); it is logged either way.
    pub errors_to_peer: bool,
    /// Told when each Python thread starts and ends a request (a process
    /// supervisor's bookkeeping); `None` costs nothing.
    pub observer: Option<Arc<dyn RequestObserver>>,
}

/// Watches the Python threads work, on the Python thread itself, without
/// the GIL's help: keep both calls short and free of Python.
pub trait RequestObserver: Send + Sync + std::fmt::Debug {
    /// Python thread `thread` (from 0) starts serving this request.
    fn request_started(&self, thread: usize, environ: &Environ);
    /// Python thread `thread` is done with its request (the response
    /// iterated and closed, or failed).
    fn request_finished(&self, thread: usize);
}

/// The Python threads, fed from one queue.
#[derive(Debug)]
pub struct PythonPool {
    jobs: flume::Sender<Job>,
}

/// Requests that may wait for each Python thread: enough to absorb a burst;
/// beyond it, connections wait in the core before being read further.
pub const QUEUED_PER_THREAD: usize = 64;

/// Python code may recurse deeply (Django templates); give its threads the
/// stack size of a main thread.
const PYTHON_THREAD_STACK: usize = 8 << 20;

impl PythonPool {
    /// Starts `settings.threads` threads running `app`.
    pub fn start(app: App, settings: PoolSettings) -> Result<PythonPool, crate::BridgeError> {
        let threads = settings.threads.max(1);
        let interned =
            Python::attach(Interned::new).map_err(|e| crate::BridgeError::Python(e.to_string()))?;
        let shared = Arc::new(response::Shared {
            app: app.callable,
            interned,
            multithread: threads > 1,
            multiprocess: settings.multiprocess,
            errors_to_peer: settings.errors_to_peer,
            observer: settings.observer,
        });
        let (jobs, queue) = flume::bounded::<Job>(threads * QUEUED_PER_THREAD);
        for index in 0..threads {
            let queue = queue.clone();
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("python-{index}"))
                .stack_size(PYTHON_THREAD_STACK)
                .spawn(move || Python::attach(|py| serve_jobs(py, index, &queue, &shared)))
                .map_err(|e| crate::BridgeError::Python(format!("cannot start a thread: {e}")))?;
        }
        Ok(PythonPool { jobs })
    }

    /// The queue to submit jobs to.
    pub fn jobs(&self) -> flume::Sender<Job> {
        self.jobs.clone()
    }
}

/// A Python thread's life: attached to the interpreter once (creating a
/// thread state per request would cost more than a small request), detached
/// only while it waits for the next job.
fn serve_jobs(
    py: Python<'_>,
    index: usize,
    queue: &flume::Receiver<Job>,
    shared: &response::Shared,
) {
    let mut cache = KeyCache::default();
    loop {
        let job = match queue.try_recv() {
            Ok(job) => job,
            Err(flume::TryRecvError::Empty) => match py.detach(|| queue.recv()) {
                Ok(job) => job,
                Err(_) => return,
            },
            Err(flume::TryRecvError::Disconnected) => return,
        };
        if let Some(observer) = &shared.observer {
            observer.request_started(index, &job.environ);
        }
        // A bug of ours must cost one request, not a thread of the pool: the
        // job's channel drops and its connection closes.
        let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            response::run(py, shared, &mut cache, job)
        }));
        if let Some(observer) = &shared.observer {
            observer.request_finished(index);
        }
        if served.is_err() {
            tracing::error!("python-{index}: a request panicked; the thread serves on");
        }
    }
}
