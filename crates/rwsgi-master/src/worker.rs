//! A worker: the Python threads and the tokio core serving the inherited
//! listeners, in a forked child or, without a master, in this process.

use crate::MasterOptions;
use crate::error::MasterError;
use crate::logfile::{self, LogFile};
use crate::recycle;
use crate::scoreboard::{Recycle, Scoreboard, VARS_BYTES, now_ms};
use crate::setup::{self, Start};
use nix::sys::signal::{SigHandler, SigSet, SigmaskHow, Signal, sigprocmask};
use nix::unistd::Pid;
use rwsgi_proto::{CgiVar, Environ};
use rwsgi_python::{App, AppSpec, PoolSettings, RequestObserver};
use rwsgi_route::Front;
use rwsgi_server::{Exits, Listener, ServerConfig};
use std::sync::Arc;
use std::time::Duration;

/// A worker's exit status when a lazy app fails to load: the master stops
/// with an error if no worker ever started (`need-app`).
pub(crate) const NO_APP_STATUS: i32 = 22;

/// The signal a worker answers by writing every thread's Python stack to
/// the log (harakiri sends it first; an operator may too).
pub(crate) const STACKS_SIGNAL: Signal = Signal::SIGUSR1;

/// Without a master: load the app, serve in this process until a stop
/// signal, clean up.
pub(crate) fn run_alone(
    options: &MasterOptions,
    mut start: Start,
    spec: &AppSpec,
    pool: PoolSettings,
    front: &Arc<Front>,
) -> Result<(), MasterError> {
    tune_glibc_malloc(&start.server);
    // Size rotation is the main log's, when there is one (first).
    let rotate_at = start
        .log
        .is_some()
        .then(|| options.log.maxsize.map(|size| (size, options.log.backup.clone())))
        .flatten();
    let logs: Vec<LogFile> = start.log.take().into_iter().chain(start.request_log.take()).collect();
    logfile::watch(logs, rotate_at);
    // The master's signals mean nothing here: they must not end the
    // process (SIGUSR2's default) or stop it (SIGTTIN's, SIGTTOU's). SIGHUP
    // and SIGUSR1 get their handlers once serving; until then, ignored.
    for signal in [Signal::SIGUSR2, Signal::SIGTTIN, Signal::SIGTTOU, Signal::SIGHUP, STACKS_SIGNAL]
    {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) }
            .map_err(MasterError::system("signal"))?;
    }
    // A board of its own: what is running, should a stop have to cut it.
    let who = Identity {
        id: 0,
        slot: 0,
        board: Scoreboard::new(1, pool.threads)?,
        master: nix::unistd::getpid(),
    };
    let result = rwsgi_python::load_app(spec).map_err(MasterError::from).and_then(|app| {
        // Said once the signals are handled too: a stop signal sent on
        // seeing this line never finds the process without its handlers.
        let listening = start.listening_lines();
        let listeners = std::mem::take(&mut start.listeners);
        let ready = || {
            listening();
            start.notify("READY=1\nSTATUS=serving");
        };
        let exits = Exits {
            last_listeners: Arc::new(|| true),
            report_stuck: report_stuck(who),
            clean_up: Box::new(start.on_quit()),
        };
        let pool = PoolSettings { observer: Some(Bookkeeping::observer(options, who)), ..pool };
        let server = ServerConfig { no_master: true, ..start.server.clone() };
        serve(listeners, app, pool, front, server, ready, exits)?;
        rwsgi_python::run_atexit();
        Ok(())
    });
    start.notify("STOPPING=1");
    start.finish();
    result
}

/// For the stop watchdog, when a graceful stop runs out of time in this
/// process: each request still running (method, URI, for how long), then
/// every thread's Python stack (as harakiri logs them).
fn report_stuck(who: Identity) -> Box<dyn FnOnce() + Send> {
    Box::new(move || {
        let running = who.board.running_requests(who.slot);
        for (thread, request) in &running {
            let elapsed = now_ms().saturating_sub(request.started_ms);
            tracing::error!(
                "cut: {} running {:.1} s on thread {thread}",
                request.request,
                elapsed as f64 / 1000.0
            );
        }
        tracing::error!(
            "{} request(s) in the app (above; any other was a response still being written); \
             the Python stacks follow",
            running.len()
        );
        rwsgi_log::flush(Duration::from_millis(200));
        if nix::sys::signal::raise(STACKS_SIGNAL).is_ok() {
            // The stacks are written from the signal handler, at once.
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// The app a forked worker serves.
#[derive(Debug)]
pub(crate) enum AppSource<'a> {
    /// Loaded by the master before the fork (shared copy-on-write).
    Preloaded(&'a App),
    /// Imported by each worker after the fork (`lazy-apps`).
    Lazy(&'a AppSpec),
}

/// Who a forked worker is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    /// Its number, from 1, as logs and titles show it.
    pub(crate) id: usize,
    /// Its scoreboard slot.
    pub(crate) slot: usize,
    pub(crate) board: Scoreboard,
    pub(crate) master: Pid,
}

/// What a forked worker takes over from the master: the listening
/// sockets and the log files to follow.
#[derive(Debug)]
pub(crate) struct Inherited {
    pub(crate) listeners: Vec<Listener>,
    pub(crate) logs: Vec<LogFile>,
}

/// A forked worker's life. Never returns: the process exits.
pub(crate) fn run_forked(
    options: &MasterOptions,
    who: Identity,
    Inherited { listeners, logs }: Inherited,
    server: ServerConfig,
    app: AppSource<'_>,
    pool: PoolSettings,
    front: &Arc<Front>,
) -> ! {
    tune_glibc_malloc(&server);
    // Every line this worker's I/O thread logs (requests, errors) says which
    // worker it is.
    let _span = tracing::info_span!("worker", n = who.id).entered();
    if let Err(err) = become_worker(options, who) {
        tracing::error!("{err}");
        std::process::exit(1);
    }
    logfile::watch(logs, None);
    let app = match app {
        AppSource::Preloaded(app) => pyo3::Python::attach(|py| app.clone_ref(py)),
        AppSource::Lazy(spec) => match rwsgi_python::load_app(spec) {
            Ok(app) => app,
            Err(err) => {
                tracing::error!("{err}");
                std::process::exit(NO_APP_STATUS);
            }
        },
    };
    let pool = PoolSettings { observer: Some(Bookkeeping::observer(options, who)), ..pool };
    let ready = || {
        tracing::info!("worker {} (pid {}) ready", who.id, std::process::id());
        who.board.set_ready(who.slot);
    };
    // The master vacuums, and cuts a stop that runs out of mercy (this
    // worker's own watchdog is a second late, in case the master is gone).
    let exits = Exits {
        // A shutdown (the master let its copies go), or the master is gone.
        last_listeners: Arc::new(move || {
            who.board.listeners_released(who.slot) || nix::unistd::getppid() != who.master
        }),
        report_stuck: report_stuck(who),
        clean_up: Box::new(|| {}),
    };
    match serve(listeners, app, pool, front, server, ready, exits) {
        Ok(()) => {
            rwsgi_python::run_atexit();
            std::process::exit(0)
        }
        Err(err) => {
            tracing::error!("{err}");
            std::process::exit(1);
        }
    }
}

/// Undoes what the master set up for itself, and ties the worker's life to
/// the master's.
fn become_worker(options: &MasterOptions, who: Identity) -> Result<(), MasterError> {
    // The master reads its signals from a signalfd, so it blocks them; the
    // worker's runtime needs them delivered.
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(MasterError::system("sigprocmask"))?;
    // Reload and scaling signals are the master's business: a stray one
    // (a terminal's SIGHUP to the process group) must not kill a worker.
    // (Until the stack dumper is set up, STACKS_SIGNAL must not kill it.)
    for signal in [Signal::SIGHUP, Signal::SIGUSR2, Signal::SIGTTIN, Signal::SIGTTOU, STACKS_SIGNAL]
    {
        // SAFETY: SIG_IGN installs no handler code.
        unsafe { nix::sys::signal::signal(signal, SigHandler::SigIgn) }
            .map_err(MasterError::system("signal"))?;
    }
    // A master killed without a chance to stop its workers must not leave
    // them serving: they stop gracefully. If it died before this line, the
    // parent is already someone else.
    nix::sys::prctl::set_pdeathsig(Signal::SIGTERM).map_err(MasterError::system("prctl"))?;
    if nix::unistd::getppid() != who.master {
        std::process::exit(0);
    }
    setup::set_title(&options.procname_prefix, &format!("rwsgi worker {}", who.id));
    Ok(())
}

/// The part both kinds of worker share: stack dumps on [`STACKS_SIGNAL`],
/// the Python threads, the core.
fn serve(
    listeners: Vec<Listener>,
    app: App,
    pool: PoolSettings,
    front: &Arc<Front>,
    server: ServerConfig,
    ready: impl FnOnce() + Send,
    exits: Exits,
) -> Result<(), MasterError> {
    // Without it (no stderr to write to) the worker still serves.
    if let Err(err) = rwsgi_python::dump_stacks_on(STACKS_SIGNAL as i32) {
        tracing::warn!("no Python stacks on {STACKS_SIGNAL} or harakiri: {err}");
    }
    let pool = rwsgi_python::PythonPool::start(app, pool)?;
    // The runtime's thread keeps a Python thread state for its whole life,
    // so a request run inline only attaches to it.
    rwsgi_python::with_python_thread_state(|| {
        let site = Arc::clone(front).with(pool.dispatch());
        rwsgi_server::serve(listeners, site, server, ready, exits)
    })?;
    Ok(())
}

/// Request bodies are read into `bytes` objects that Python allocates
/// with `malloc` (see `rwsgi_python`'s `lent`), many alive at once, made
/// on one thread and freed on another. With glibc's defaults each Python
/// thread allocates from an arena of its own, and the moving thresholds
/// hand large freed blocks back to the kernel, so the next body faults in
/// fresh zeroed pages: 1 MiB uploads with 8 threads cost 598 µs of CPU and
/// 76 MiB of RSS. One arena (Python allocates under the GIL, so its
/// threads do not wait for one another; rwsgi's own code uses mimalloc)
/// and the thresholds fixed at the highest values glibc's own adjustment
/// reaches (blocks up to 32 MiB from the heap, kept until 64 MiB of it is
/// free): 160 µs and 63 MiB. Only where bodies are read ahead
/// (`post-buffering` > 0), and not when the operator tuned glibc
/// (`GLIBC_TUNABLES` with `glibc.malloc.*`, any `MALLOC_*` variable).
/// Called first thing in a worker, while it has no other thread.
fn tune_glibc_malloc(server: &ServerConfig) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if server.post_buffering > 0 && !malloc_tuned_by(std::env::vars_os()) {
            // SAFETY: mallopt sets allocator parameters, any value is
            // valid; it is not thread-safe, and no other thread runs yet.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, 1);
                libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
                libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
            }
        }
    }
}

/// Whether these environment variables tune glibc's `malloc`.
fn malloc_tuned_by(vars: impl Iterator<Item = (std::ffi::OsString, std::ffi::OsString)>) -> bool {
    vars.into_iter().any(|(name, value)| match name.to_str() {
        Some("GLIBC_TUNABLES") => value.to_string_lossy().contains("glibc.malloc."),
        Some(name) => name.starts_with("MALLOC_"),
        None => false,
    })
}

/// Which of a running request's variables the stats document shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ShownVars {
    /// No stats server: none are recorded.
    None,
    /// Cookies and credentials hidden.
    Redacted,
    /// `stats-vars-unredacted`.
    All,
}

/// The variables that carry secrets: their values never reach the stats
/// unless asked for.
const SECRET_VARS: [&[u8]; 3] =
    [b"HTTP_COOKIE", b"HTTP_AUTHORIZATION", b"HTTP_PROXY_AUTHORIZATION"];

/// `KEY=VALUE` entries, each ended by a NUL, appended to `out` as long as
/// they fit in `limit` bytes, whole; secrets' values hidden unless
/// `shown` is `All`.
fn pack_vars(environ: &Environ, shown: ShownVars, out: &mut Vec<u8>, limit: usize) {
    for (key, value) in &environ.vars {
        let key = key.as_bytes();
        let value: &[u8] = if shown != ShownVars::All && SECRET_VARS.contains(&key) {
            b"(redacted)"
        } else {
            value
        };
        if out.len() + key.len() + value.len() + 2 > limit {
            break;
        }
        for part in [key, b"=", value, b"\0"] {
            out.extend_from_slice(part);
        }
    }
}

/// A worker's scoreboard bookkeeping, on each Python thread: the running
/// request (for harakiri, the stats and a stop that has to cut it), the
/// requests served and the reasons to recycle.
#[derive(Debug)]
struct Bookkeeping {
    who: Identity,
    /// Which of its variables the stats show.
    vars: ShownVars,
    /// `max-requests` for this worker (with its stagger).
    request_limit: Option<u64>,
    /// `reload-on-rss`, in bytes.
    rss_limit: Option<u64>,
}

impl Bookkeeping {
    fn observer(options: &MasterOptions, who: Identity) -> Arc<dyn RequestObserver> {
        let request_limit = options.max_requests.map(|max| {
            let (delta, jitter) = (options.max_requests_delta, options.max_requests_jitter);
            recycle::request_limit(max, delta, jitter, who.id, recycle::random_u64())
        });
        Arc::new(Bookkeeping {
            who,
            vars: match (&options.stats.addr, options.stats.vars_unredacted) {
                (None, _) => ShownVars::None,
                (Some(_), false) => ShownVars::Redacted,
                (Some(_), true) => ShownVars::All,
            },
            request_limit,
            rss_limit: options.reload_on_rss.map(|mib| mib.saturating_mul(1 << 20)),
        })
    }
}

impl RequestObserver for Bookkeeping {
    fn request_started(&self, thread: usize, environ: &Environ) {
        let mut text = [0u8; 128];
        let mut len = 0;
        let method = environ.cgi(CgiVar::RequestMethod).map_or(&b"?"[..], |m| &m[..]);
        let uri = environ
            .cgi(CgiVar::RequestUri)
            .or_else(|| environ.cgi(CgiVar::PathInfo))
            .map_or(&b""[..], |u| &u[..]);
        for part in [method, b" ", uri] {
            let n = part.len().min(text.len() - len);
            text[len..len + n].copy_from_slice(&part[..n]);
            len += n;
        }
        // Packed into a buffer each thread keeps: a fresh 4 KiB one would
        // be zeroed on every request.
        thread_local! {
            static VARS: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        VARS.with_borrow_mut(|vars| {
            vars.clear();
            if self.vars != ShownVars::None {
                pack_vars(environ, self.vars, vars, VARS_BYTES);
            }
            self.who.board.request_started(self.who.slot, thread, &text[..len], vars);
        });
    }

    fn request_finished(&self, thread: usize) {
        let (board, slot) = (self.who.board, self.who.slot);
        board.request_finished(slot, thread);
        board.set_exceptions(slot, rwsgi_python::exceptions());
        let served = board.count_request(slot);
        if self.request_limit.is_some_and(|limit| served >= limit) {
            board.request_recycle(slot, Recycle::MaxRequests);
        }
        if let Some(limit) = self.rss_limit
            && recycle::rss_bytes().is_some_and(|rss| rss > limit)
        {
            board.request_recycle(slot, Recycle::Rss);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_operator_who_tuned_malloc_keeps_the_tuning() {
        let tuned =
            |vars: &[(&str, &str)]| malloc_tuned_by(vars.iter().map(|(n, v)| (n.into(), v.into())));
        assert!(!tuned(&[("PATH", "/bin"), ("GLIBC_TUNABLES", "glibc.rtld.nns=2")]));
        assert!(tuned(&[("MALLOC_ARENA_MAX", "2")]));
        assert!(tuned(&[("MALLOC_TRIM_THRESHOLD_", "0")]));
        assert!(tuned(&[("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")]));
    }

    #[test]
    fn packed_vars_hide_secrets_and_keep_whole_entries() {
        let mut environ = Environ::default();
        environ.set_other("REQUEST_METHOD", "GET");
        environ.set_other("HTTP_COOKIE", "session=s3cret");
        environ.set_other("HTTP_AUTHORIZATION", "Basic dXNlcjpwYXNz");
        environ.set_other("PATH_INFO", "/x");
        let packed = |shown, limit| {
            let mut out = Vec::new();
            pack_vars(&environ, shown, &mut out, limit);
            out
        };
        assert_eq!(
            packed(ShownVars::Redacted, 256),
            b"REQUEST_METHOD=GET\0HTTP_COOKIE=(redacted)\0HTTP_AUTHORIZATION=(redacted)\0PATH_INFO=/x\0"
        );
        assert!(packed(ShownVars::All, 256).windows(7).any(|w| w == b"s3cret\0"));
        assert_eq!(packed(ShownVars::Redacted, 30), b"REQUEST_METHOD=GET\0", "only whole entries");
    }
}
