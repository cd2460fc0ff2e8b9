//! The process model: one master process that binds every socket, loads the
//! app (or not, with `lazy-apps`), forks `processes` workers that inherit
//! the sockets, and supervises them: respawn, harakiri, recycling, graceful
//! reload and shutdown, pidfile, privileges, systemd.
//!
//! The master stays single-threaded for its whole life, because it forks
//! again on every respawn and reload: no tokio runtime, no Python thread,
//! just a loop over a `signalfd`, `waitpid` and a 100 ms tick. Each worker
//! starts its own runtime and Python threads after the fork. Master and
//! workers share a scoreboard in anonymous shared memory.
//!
//! Without `master` (and with one process), the calling process is the one
//! worker, as before: the same setup, no fork.

mod error;
mod fifo;
mod fork;
mod handover;
mod life;
mod logfile;
mod logrelay;
mod master;
mod recycle;
mod reexec;
mod scoreboard;
mod setup;
mod stats;
mod systemd;
mod worker;

pub use error::MasterError;

pub use logfile::{LogSettings, LogTo};
pub use reexec::{Launch, set_launch};
use rwsgi_python::{AppSpec, PoolSettings};
pub use rwsgi_route::Front;
use rwsgi_server::ServerConfig;
pub use stats::StatsSettings;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The process options, in uWSGI's terms, already validated.
#[derive(Debug, Clone)]
pub struct MasterOptions {
    /// `master`: supervise worker processes.
    pub master: bool,
    /// `processes`/`workers`: worker processes (at least 1).
    pub processes: usize,
    /// `lazy-apps`: each worker imports the app after the fork, instead of
    /// the master before it.
    pub lazy_apps: bool,
    /// `harakiri`: kill a worker whose request runs longer than this.
    pub harakiri: Option<Duration>,
    /// `max-requests`: recycle a worker after this many requests.
    pub max_requests: Option<u64>,
    /// `max-requests-delta`: worker N recycles after `max-requests + N * delta`.
    pub max_requests_delta: u64,
    /// `max-requests-jitter`: plus a random 0..=jitter, drawn per worker.
    pub max_requests_jitter: u64,
    /// `reload-on-rss`: recycle a worker whose RSS exceeds this many MiB
    /// after a request.
    pub reload_on_rss: Option<u64>,
    /// `max-worker-lifetime`: recycle a worker after this long.
    pub max_worker_lifetime: Option<Duration>,
    /// `reload-mercy`: how long a shutdown or full reload waits for requests
    /// in flight before killing.
    pub reload_mercy: Duration,
    /// `worker-reload-mercy`: the same for one worker being recycled or
    /// chain-reloaded.
    pub worker_reload_mercy: Duration,
    /// `pidfile`, `safe-pidfile`: files for the master's pid, written
    /// before privileges are dropped.
    pub pidfiles: Vec<PathBuf>,
    /// `pidfile2`, `safe-pidfile2`: the same, written after.
    pub pidfiles_after_drop: Vec<PathBuf>,
    /// `umask`: set before anything is created.
    pub umask: Option<u32>,
    /// `max-fd`: the open-files limit to set before serving.
    pub max_fd: Option<u64>,
    /// `chdir`: entered before the sockets are bound (so relative unix
    /// socket paths are in it, as in uWSGI) and the app is loaded.
    pub chdir: Option<PathBuf>,
    /// `chown-socket`: `user[:group]` (names or numbers) for unix sockets.
    pub chown_socket: Option<String>,
    /// `uid`: a user name or number to run as, after binding.
    pub uid: Option<String>,
    /// `gid`: a group name or number to run as, after binding.
    pub gid: Option<String>,
    /// `procname-prefix` (and `-spaced`): put before process titles.
    pub procname_prefix: String,
    /// `touch-reload`: a graceful reload when one of these files is touched.
    pub touch_reload: Vec<PathBuf>,
    /// `touch-chain-reload`: a chain reload when one of these is touched.
    pub touch_chain_reload: Vec<PathBuf>,
    /// `logto`/`logto2`/`daemonize` (an absolute path: workers open it
    /// again after `chdir`), `log-maxsize`, `log-backupname`.
    pub log: LogSettings,
    /// `daemonize`: detach from the terminal first (logging to `log.path`).
    pub daemonize: bool,
    /// `touch-logreopen`, `touch-logrotate`.
    pub touch_logreopen: Vec<PathBuf>,
    pub touch_logrotate: Vec<PathBuf>,
    /// `stats`, `stats-http`, `stats-minified`.
    pub stats: StatsSettings,
    /// `master-fifo`.
    pub master_fifo: Option<PathBuf>,
}

impl Default for MasterOptions {
    fn default() -> Self {
        MasterOptions {
            master: false,
            processes: 1,
            lazy_apps: false,
            harakiri: None,
            max_requests: None,
            max_requests_delta: 0,
            max_requests_jitter: 0,
            reload_on_rss: None,
            max_worker_lifetime: None,
            reload_mercy: Duration::from_secs(30),
            worker_reload_mercy: Duration::from_secs(30),
            pidfiles: Vec::new(),
            pidfiles_after_drop: Vec::new(),
            umask: None,
            max_fd: None,
            chdir: None,
            chown_socket: None,
            uid: None,
            gid: None,
            procname_prefix: String::new(),
            touch_reload: Vec::new(),
            touch_chain_reload: Vec::new(),
            log: LogSettings::default(),
            daemonize: false,
            touch_logreopen: Vec::new(),
            touch_logrotate: Vec::new(),
            stats: StatsSettings::default(),
            master_fifo: None,
        }
    }
}

impl MasterOptions {
    /// Whether a master process is needed: asked for, or implied by an
    /// option only a master can honour (more than one process, harakiri,
    /// recycling, touch-reload).
    pub fn needs_master(&self) -> bool {
        self.master
            || self.processes > 1
            || self.harakiri.is_some()
            || self.max_requests.is_some()
            || self.reload_on_rss.is_some()
            || self.max_worker_lifetime.is_some()
            || !self.touch_reload.is_empty()
            || !self.touch_chain_reload.is_empty()
            || !self.touch_logreopen.is_empty()
            || !self.touch_logrotate.is_empty()
            || self.stats.addr.is_some()
            || self.master_fifo.is_some()
    }
}

/// Whether this process is a master re-executed by a reload (uWSGI's
/// `if-reload` asks).
pub fn is_reexec() -> bool {
    handover::is_reexec()
}

/// `--reload PIDFILE` (SIGHUP) and `--stop PIDFILE` (SIGINT): signals the
/// master whose pid the file holds, as `uwsgi --reload` does.
pub fn signal_pidfile(pidfile: &std::path::Path, reload: bool) -> Result<i32, MasterError> {
    use nix::sys::signal::{Signal, kill};
    let error = |reason: String| MasterError::Pidfile {
        path: pidfile.to_path_buf(),
        source: std::io::Error::other(reason),
    };
    let text = std::fs::read_to_string(pidfile)
        .map_err(|source| MasterError::Pidfile { path: pidfile.to_path_buf(), source })?;
    let pid: i32 =
        text.trim().parse().map_err(|_| error(format!("{:?} is not a pid", text.trim())))?;
    if pid <= 0 {
        return Err(error(format!("{pid} is not a pid")));
    }
    let signal = if reload { Signal::SIGHUP } else { Signal::SIGINT };
    kill(nix::unistd::Pid::from_raw(pid), signal)
        .map_err(|err| error(format!("kill({pid}): {err}")))?;
    Ok(pid)
}

/// Runs the server: binds (or inherits) the sockets, writes the pidfile,
/// drops privileges, loads the app unless `lazy-apps`, then serves with a
/// master and workers, or in this process alone. Returns when the server
/// has stopped; an error is one line for the operator (exit status 1).
pub fn run(
    options: MasterOptions,
    server: ServerConfig,
    app: AppSpec,
    pool: PoolSettings,
    front: Arc<Front>,
) -> Result<(), MasterError> {
    let start = setup::Start::prepare(&options, server)?;
    if options.needs_master() {
        master::run(&options, start, &app, pool, front)
    } else {
        worker::run_alone(&options, start, &app, pool, &front)
    }
}
