//! The pool of Python threads, and [`Dispatch`], the app as the core's
//! [`Responder`].

use crate::crew::Crew;
use crate::environ::Interned;
use crate::lent::BytesMemory;
use crate::loader::App;
use crate::response::{self, Job};
use pyo3::prelude::*;
use rwsgi_proto::{BodySource, Environ, Event, LentBody, Replies, Request, Responder};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

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

/// The Python threads, fed from one queue (see [`crate::crew`]).
#[derive(Debug)]
pub struct PythonPool {
    dispatch: Dispatch,
}

/// What the pool threads are given.
#[derive(Debug)]
enum Work {
    /// A whole request.
    Job(Job),
    /// The iteration of a response whose app call ran inline.
    Continue(response::Continuation),
    /// Memory for a request body of this size ([`Responder::lend_body`]).
    Lend(usize, flume::Sender<Option<LentBody>>),
}

/// The app as the core's [`Responder`]: each request goes to the pool's
/// queue or, with `threads = 1` and the pool idle, runs on the calling
/// thread itself ([`Inline`]).
#[derive(Debug, Clone)]
pub struct Dispatch {
    jobs: Arc<Jobs>,
    /// Jobs queued or running in the pool.
    busy: Arc<AtomicUsize>,
    /// The pool's threads.
    threads: usize,
    inline: Option<Inline>,
}

/// The pool's queue; when the last [`Dispatch`] lets go of it, the threads
/// finish what is queued and end.
#[derive(Debug)]
struct Jobs(Arc<Crew<Work>>);

impl Drop for Jobs {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// One job counted in `busy`, until dropped.
struct Counted<'a>(&'a AtomicUsize);

impl Drop for Counted<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The pool is gone (its threads ended).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct PoolGone;

impl Responder for Dispatch {
    /// Inline when the dispatch allows it and the body is all here
    /// (nothing can then make the app wait for the client), otherwise on
    /// the pool. If the pool is gone, the replies end unanswered.
    async fn respond(&self, request: Request) -> Replies {
        if matches!(
            request.body,
            BodySource::Buffered(_)
                | BodySource::Pieces(_)
                | BodySource::Lent(_)
                | BodySource::Spooled { rest: None, .. }
        ) && let Some(inline) = self.inline_now()
        {
            // Unbounded: nobody reads this channel before the app returns.
            let (events, inline_events) = flume::unbounded();
            let Some(continuation) = inline.run(Job { request, events }) else {
                return Replies::drained(inline_events);
            };
            // The iteration goes to the pool; what the call sent comes first.
            let (events, rest) = flume::bounded(rwsgi_proto::EVENT_QUEUE);
            if self.resume(continuation, events).await.is_err() {
                return Replies::drained(inline_events);
            }
            return Replies::then(inline_events, rest);
        }
        let (events, replies) = Replies::channel();
        // A refused job drops its sender: the replies end unanswered.
        let _ = self.submit(Job { request, events }).await;
        replies
    }

    fn runs_inline(&self) -> bool {
        self.inline.is_some()
    }

    /// A new `bytes` object for the body: made here and now when nothing
    /// else runs Python (as a request runs inline), else by an idle pool
    /// thread; none when every thread has work (the core would only wait
    /// for it in vain).
    fn lend_body(&self, size: usize) -> impl Future<Output = Option<LentBody>> + Send {
        let now = self.inline_now().map(|_| Python::attach(|py| BytesMemory::lend(py, size)));
        let idle = self.busy.load(Ordering::Acquire) < self.threads;
        let later = (now.is_none() && idle).then(|| {
            let (lent, later) = flume::bounded(1);
            self.jobs.0.try_push_first(Work::Lend(size, lent)).ok().map(|()| later)
        });
        async move {
            match (now, later.flatten()) {
                (Some(now), _) => now,
                (None, Some(later)) => later.recv_async().await.ok().flatten(),
                (None, None) => None,
            }
        }
    }
}

impl Dispatch {
    /// Queues a job for the pool, waiting while the queue is full.
    async fn submit(&self, job: Job) -> Result<(), PoolGone> {
        self.send(Work::Job(job)).await
    }

    async fn send(&self, work: Work) -> Result<(), PoolGone> {
        self.busy.fetch_add(1, Ordering::AcqRel);
        // Uncounted again if refused, or given up while the queue is full.
        let counted = Counted(&self.busy);
        self.jobs.0.push(work).await.map_err(|_| PoolGone)?;
        std::mem::forget(counted);
        Ok(())
    }

    /// The inline runner, when a request may run on the calling thread now:
    /// with `threads = 1`, and only while the pool has nothing queued or
    /// running, so that two requests never run Python at once.
    fn inline_now(&self) -> Option<&Inline> {
        self.inline.as_ref().filter(|_| self.busy.load(Ordering::Acquire) == 0)
    }

    /// Hands the rest of an inline request to the pool: the events it
    /// produces from now on go to `events`.
    async fn resume(
        &self,
        continuation: response::Continuation,
        events: flume::Sender<Event>,
    ) -> Result<(), PoolGone> {
        Python::attach(|py| continuation.redirect(py, events));
        self.send(Work::Continue(continuation)).await
    }
}

/// Runs requests on the calling thread, which must hold a Python thread
/// state ([`with_python_thread_state`]) so that each request only attaches.
/// A response whose result is not a plain list or tuple comes back as a
/// [`response::Continuation`] for a pool thread to iterate
/// ([`Dispatch::resume`]), so a slow generator or a slow reader never
/// holds the I/O thread.
#[derive(Debug, Clone)]
struct Inline {
    serving: Arc<Serving>,
    /// What the calling thread keeps between requests (only one thread
    /// runs inline).
    kept: Arc<Mutex<response::Kept>>,
}

/// What the pool's threads and the inline runner share.
#[derive(Debug)]
struct Serving {
    app: response::Shared,
    observer: Option<Arc<dyn RequestObserver>>,
}

impl Inline {
    /// Runs `job` here: the app call, and for a plain list or tuple the
    /// whole response. Its events must go to an unbounded channel, since
    /// nobody reads them until this returns.
    fn run(&self, job: Job) -> Option<response::Continuation> {
        let serving = &*self.serving;
        if let Some(observer) = &serving.observer {
            observer.request_started(0, &job.request.environ);
        }
        let continuation = Python::attach(|py| {
            let mut kept = self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            serve_one("inline", || response::run_inline(py, &serving.app, &mut kept, job))
        })
        .flatten();
        // A continuation is finished on the pool, which tells the observer.
        if continuation.is_none()
            && let Some(observer) = &serving.observer
        {
            observer.request_finished(0);
        }
        continuation
    }
}

/// Gives the calling thread a Python thread state for as long as `f` runs,
/// detached from the interpreter: the [`Inline`] requests `f` runs then
/// attach cheaply, to that same thread state.
pub fn with_python_thread_state<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    Python::attach(|py| py.detach(f))
}

/// Runs one request's Python; a bug of ours must cost one request, not a
/// thread: the request's channel drops and its connection closes.
fn serve_one<R>(who: &str, f: impl FnOnce() -> R) -> Option<R> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(done) => Some(done),
        Err(_) => {
            tracing::error!("{who}: a request panicked; the thread serves on");
            None
        }
    }
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
        let errors_to_peer = settings.errors_to_peer;
        let (interned, template) = Python::attach(|py| {
            let interned = Interned::new(py)?;
            let constants =
                response::constants(py, threads > 1, settings.multiprocess, errors_to_peer)?;
            let template = interned.template(py, constants)?;
            PyResult::Ok((interned, template))
        })
        .map_err(|e| crate::BridgeError::Python(e.to_string()))?;
        let app = response::Shared { app, interned, template, errors_to_peer };
        let serving = Arc::new(Serving { app, observer: settings.observer });
        let crew = Arc::new(Crew::new(threads, threads * QUEUED_PER_THREAD));
        // Made first: if a thread cannot start, those started end with it.
        let jobs = Arc::new(Jobs(Arc::clone(&crew)));
        let busy = Arc::new(AtomicUsize::new(0));
        for index in 0..threads {
            let crew = Arc::clone(&crew);
            let serving = Arc::clone(&serving);
            let busy = Arc::clone(&busy);
            std::thread::Builder::new()
                .name(format!("python-{index}"))
                .stack_size(PYTHON_THREAD_STACK)
                .spawn(move || Python::attach(|py| serve_jobs(py, index, &crew, &serving, &busy)))
                .map_err(|e| crate::BridgeError::Python(format!("cannot start a thread: {e}")))?;
        }
        // With one Python thread, wsgi.multithread is false: a request runs
        // inline only while that thread has nothing to do.
        let inline = (threads == 1).then(|| Inline { serving, kept: Arc::default() });
        Ok(PythonPool { dispatch: Dispatch { jobs, busy, threads, inline } })
    }

    /// How the core hands requests over.
    pub fn dispatch(&self) -> Dispatch {
        self.dispatch.clone()
    }
}

/// A Python thread's life: attached to the interpreter once (creating a
/// thread state per request would cost more than a small request), detached
/// only while it waits for the next job.
fn serve_jobs(
    py: Python<'_>,
    index: usize,
    crew: &Crew<Work>,
    serving: &Serving,
    busy: &AtomicUsize,
) {
    let mut kept = response::Kept::default();
    let who = format!("python-{index}");
    let mut finished = false;
    loop {
        let work = match crew.take(index, std::mem::take(&mut finished)) {
            Some(work) => work,
            None => match py.detach(|| crew.wait(index)) {
                Some(work) => work,
                None => return,
            },
        };
        finished = true;
        let request = !matches!(work, Work::Lend(..));
        serve_one(&who, || match work {
            Work::Job(job) => {
                if let Some(observer) = &serving.observer {
                    observer.request_started(index, &job.request.environ);
                }
                response::run(py, &serving.app, &mut kept, job);
            }
            // Started inline, as thread 0 (there is only one): the observer
            // was told then.
            Work::Continue(continuation) => continuation.finish(py, &mut kept),
            // Not a request: nothing to count. Unless the core has read the
            // body meanwhile and stopped waiting.
            Work::Lend(size, lent) => {
                if !lent.is_disconnected() {
                    let _ = lent.send(BytesMemory::lend(py, size));
                }
            }
        });
        if request {
            if let Some(observer) = &serving.observer {
                serve_one(&who, || observer.request_finished(index));
            }
            busy.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use rwsgi_proto::CgiVar;
    use std::future::Future;
    use std::time::Duration;

    const APP: &std::ffi::CStr = c"
import threading

KEPT = []

def app(environ, start_response):
    if environ['PATH_INFO'] == '/echo':
        start_response('200 OK', [])
        return [environ['wsgi.input'].read()]
    if environ['PATH_INFO'] == '/keep':
        KEPT.append((start_response, environ))
    if environ['PATH_INFO'] == '/write':
        write = start_response('200 OK', [])
        write(b'%d' % id(write))
        return []
    if environ['PATH_INFO'] == '/keep-write':
        KEPT.append(start_response('200 OK', []))
        return [b'kept']
    if environ['PATH_INFO'] == '/late-write':
        try:
            KEPT[-1](b'late')
        except OSError:
            pass
    start_response('200 OK', [('X-Thread', str(threading.get_ident()))])
    environ['wsgi.errors'].write('called\\n')
    if environ['PATH_INFO'] == '/gen':
        return (b'%d' % threading.get_ident() for _ in [1])
    if environ['PATH_INFO'] == '/boom':
        raise RuntimeError('boom')
    return [b'list']
";

    fn pool(threads: usize) -> PythonPool {
        let callable = Python::attach(|py| {
            let module = PyModule::from_code(py, APP, c"inline_app.py", c"inline_app").unwrap();
            module.getattr("app").unwrap().unbind()
        });
        let settings =
            PoolSettings { threads, multiprocess: false, errors_to_peer: true, observer: None };
        PythonPool::start(App::single(callable), settings).unwrap()
    }

    fn job(path: &str, events: flume::Sender<Event>) -> Job {
        let mut environ = Environ::default();
        environ.set(CgiVar::RequestMethod, "GET");
        environ.set(CgiVar::PathInfo, path.to_string());
        Job { request: Request { environ, body: BodySource::Buffered(Bytes::new()) }, events }
    }

    /// Polls a future that completes without waiting for a wake-up.
    fn ready<F: Future>(future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        loop {
            if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
            std::thread::yield_now();
        }
    }

    fn kinds(events: &flume::Receiver<Event>) -> Vec<&'static str> {
        events
            .try_iter()
            .map(|event| match event {
                Event::Whole { .. } => "whole",
                Event::Head { .. } => "head",
                Event::Data(_) => "data",
                Event::Stderr(_) => "stderr",
                Event::End { .. } => "end",
                _ => "other",
            })
            .collect()
    }

    #[test]
    fn only_one_thread_runs_inline_and_only_while_the_pool_is_idle() {
        assert!(pool(2).dispatch().inline_now().is_none());
        let dispatch = pool(1).dispatch();
        assert!(dispatch.inline_now().is_some());
        // A job in the pool: the next request must wait its turn there.
        let (tx, rx) = flume::bounded(8);
        dispatch.busy.fetch_add(1, Ordering::AcqRel);
        assert!(dispatch.inline_now().is_none());
        dispatch.busy.fetch_sub(1, Ordering::AcqRel);
        ready(dispatch.submit(job("/list", tx))).unwrap();
        assert!(matches!(rx.recv_timeout(Duration::from_secs(5)), Ok(Event::Stderr(_))));
        assert!(matches!(rx.recv_timeout(Duration::from_secs(5)), Ok(Event::Whole { .. })));
        let idle = std::time::Instant::now();
        while dispatch.inline_now().is_none() {
            assert!(idle.elapsed() < Duration::from_secs(5), "the pool stayed busy");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_list_is_answered_inline_a_generator_continues_on_the_pool() {
        let dispatch = pool(1).dispatch();
        with_python_thread_state(|| {
            let (tx, inline_events) = flume::unbounded();
            assert!(dispatch.inline_now().unwrap().run(job("/list", tx)).is_none());
            assert_eq!(kinds(&inline_events), ["stderr", "whole"]);
            assert!(inline_events.is_disconnected());

            let (tx, inline_events) = flume::unbounded();
            let continuation = dispatch.inline_now().unwrap().run(job("/gen", tx)).unwrap();
            // The call phase is over: its wsgi.errors line is there, the
            // head waits for the first body piece.
            assert_eq!(kinds(&inline_events), ["stderr"]);
            // Room for one event: the pool thread cannot finish before the
            // head is taken.
            let (tx, events) = flume::bounded(1);
            ready(dispatch.resume(continuation, tx)).unwrap();
            assert!(dispatch.inline_now().is_none(), "a continuation counts as pool work");
            let Ok(Event::Head { head, body }) = events.recv_timeout(Duration::from_secs(5)) else {
                panic!("no head");
            };
            let call_thread = head.headers.iter().find(|(n, _)| &n[..] == b"X-Thread").unwrap();
            assert_ne!(body[0], call_thread.1, "iterated on the pool thread");
            assert!(matches!(events.recv_timeout(Duration::from_secs(5)), Ok(Event::End { .. })));
            assert!(inline_events.is_disconnected(), "the inline channel was let go");
        });
    }

    /// Through the trait the core uses: a list answered inline, a
    /// generator's first events from the inline call, then the pool's.
    #[test]
    fn as_a_responder_every_response_arrives_whole_and_in_order() {
        let dispatch = pool(1).dispatch();
        assert!(dispatch.runs_inline());
        assert!(!pool(2).dispatch().runs_inline());
        with_python_thread_state(|| {
            for (path, expected) in
                [("/list", &["stderr", "whole"][..]), ("/gen", &["stderr", "head", "end"][..])]
            {
                let (tx, _) = flume::unbounded();
                let Job { request, .. } = job(path, tx);
                let mut replies = ready(dispatch.respond(request));
                let mut seen = Vec::new();
                while let Ok(event) = ready(replies.recv()) {
                    let (tx, rx) = flume::unbounded();
                    tx.send(event).unwrap();
                    seen.extend(kinds(&rx));
                }
                assert_eq!(seen, expected, "{path}");
            }
        });
    }

    /// Memory for a body: made on the calling thread while the pool is idle
    /// with one thread, by a pool thread otherwise.
    #[test]
    fn a_body_is_lent_a_new_bytes_here_or_by_the_pool() {
        for threads in [1, 2] {
            let dispatch = pool(threads).dispatch();
            with_python_thread_state(|| {
                let mut lent = ready(dispatch.lend_body(5)).unwrap();
                assert_eq!(lent.size(), 5);
                bytes::BufMut::put_slice(&mut lent, b"hello");
                Python::attach(|py| {
                    let (object, _) = BytesMemory::take_back(py, lent).unwrap().pop().unwrap();
                    assert_eq!(object.bind(py).as_bytes(), b"hello");
                });
                // Every thread has work: none, at once.
                dispatch.busy.fetch_add(threads, Ordering::AcqRel);
                assert!(ready(dispatch.lend_body(5)).is_none());
                dispatch.busy.fetch_sub(threads, Ordering::AcqRel);
            });
        }
    }

    /// A request's `start_response` and `wsgi.input` serve the thread's
    /// next request when nothing else holds them, each time as new.
    #[test]
    fn the_objects_of_a_request_serve_the_next_unless_the_app_keeps_them() {
        let dispatch = pool(1).dispatch();
        let inline = dispatch.inline_now().unwrap();
        let echo = |body: &'static [u8]| {
            let (tx, events) = flume::unbounded();
            let mut job = job("/echo", tx);
            job.request.body = BodySource::Buffered(Bytes::from_static(body));
            assert!(inline.run(job).is_none());
            let Ok(Event::Whole { body, .. }) = events.try_recv() else { panic!("no response") };
            assert!(events.is_disconnected(), "the kept start_response let go of the channel");
            body.concat()
        };
        let holds = || inline.kept.lock().unwrap().holds();
        with_python_thread_state(|| {
            assert_eq!(echo(b"one"), b"one");
            assert_eq!(holds(), (true, true));
            assert_eq!(echo(b"two"), b"two", "the kept wsgi.input reads the new body");
            let (tx, _events) = flume::unbounded();
            assert!(inline.run(job("/keep", tx)).is_none());
            assert_eq!(holds(), (false, false), "the app holds them");
            assert_eq!(echo(b"three"), b"three");
            assert_eq!(holds(), (true, true));
        });
    }

    /// `start_response` returns the same `write` on every call, kept with
    /// it for the thread's next request unless the app holds it; a `write`
    /// the app holds past its request cannot reach a later response.
    #[test]
    fn the_write_callable_is_kept_unless_the_app_holds_it() {
        let dispatch = pool(1).dispatch();
        let inline = dispatch.inline_now().unwrap();
        let body = |path: &str| {
            let (tx, events) = flume::unbounded();
            assert!(inline.run(job(path, tx)).is_none());
            let held = path == "/keep-write";
            assert_eq!(events.is_disconnected(), !held, "only a held write keeps the channel");
            let mut body = Vec::new();
            for event in events.try_iter() {
                match event {
                    Event::Whole { body: pieces, .. } | Event::Head { body: pieces, .. } => {
                        pieces.iter().for_each(|piece| body.extend_from_slice(piece));
                    }
                    Event::Data(piece) => body.extend_from_slice(&piece),
                    _ => {}
                }
            }
            String::from_utf8(body).unwrap()
        };
        let holds = || inline.kept.lock().unwrap().holds();
        with_python_thread_state(|| {
            let first = body("/write");
            assert_eq!(body("/write"), first, "the same write serves the next request");
            assert_eq!(body("/keep-write"), "kept");
            assert_eq!(holds(), (false, true), "the app holds its write");
            let fresh = body("/write");
            assert_ne!(fresh, first, "a new write, as the app still holds the old one");
            assert_eq!(holds(), (true, true));
            assert_eq!(body("/late-write"), "list", "the held write does not reach this response");
            assert_eq!(body("/write"), fresh);
        });
    }

    #[test]
    fn an_inline_app_error_is_a_500() {
        let dispatch = pool(1).dispatch();
        let (tx, events) = flume::unbounded();
        assert!(dispatch.inline_now().unwrap().run(job("/boom", tx)).is_none());
        let last = events.try_iter().last().unwrap();
        assert!(matches!(last, Event::Whole { head, .. } if head.status == 500));
    }
}
