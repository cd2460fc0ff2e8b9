//! The master's loop: signals from a signalfd, `waitpid`, and a 100 ms tick
//! for readiness, harakiri, recycling, mercy deadlines and touch files.

use crate::MasterOptions;
use crate::error::MasterError;
use crate::fifo::{Command, MasterFifo};
use crate::fork::{self, Side};
use crate::life::{Due, Life, Why};
use crate::logfile::LogFile;
use crate::recycle::Backoff;
use crate::reexec;
use crate::scoreboard::{Answer, AnsweredBy, Counters, DURATION_BUCKETS_US, PROTOCOLS};
use crate::scoreboard::{Recycle, Scoreboard, now_ms};
use crate::setup::{self, Start};
use crate::stats::{QueueChange, QueueWatch, StatsServer, memory_of, tcp_listen_overflows};
use crate::systemd;
use crate::worker::{self, AppSource, Identity, NO_APP_STATUS, STACKS_SIGNAL};
use nix::sys::signal::{SigSet, SigmaskHow, Signal, kill, sigprocmask};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;
use rwsgi_python::{App, AppSpec, PoolSettings};
use rwsgi_route::Front;
use rwsgi_server::ServerConfig;
use rwsgi_server::accept_queue;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How often the master looks at the scoreboard, the clock and touch files.
const TICK: Duration = Duration::from_millis(100);
/// How long harakiri waits between asking for the stacks and killing.
const STACKS_GRACE: Duration = Duration::from_millis(200);
/// How much longer than its mercy a worker's own stop watchdog waits.
const WORKER_BACKSTOP: Duration = Duration::from_secs(1);
/// How long an immediate stop (SIGQUIT) waits before SIGKILL.
const QUIT_GRACE: Duration = Duration::from_secs(1);
/// Workers `SIGTTIN` may add beyond `processes` (each needs two scoreboard
/// slots: during a recycle the old worker and its replacement both run).
const EXTRA_WORKERS: usize = 16;

const HANDLED: [Signal; 9] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGQUIT,
    Signal::SIGHUP,
    Signal::SIGUSR1,
    Signal::SIGUSR2,
    Signal::SIGTTIN,
    Signal::SIGTTOU,
    Signal::SIGCHLD,
];

/// Runs the master until it stops, or re-executes itself for a reload.
pub(crate) fn run(
    options: &MasterOptions,
    mut start: Start,
    spec: &AppSpec,
    pool: PoolSettings,
    front: Arc<Front>,
) -> Result<(), MasterError> {
    // Blocked from the start, so a signal during a long import waits for
    // the loop (rather than stopping the process, as SIGTTIN's default
    // would) and is read from the signalfd.
    let mut signals = SigSet::empty();
    for signal in HANDLED {
        signals.add(signal);
    }
    sigprocmask(SigmaskHow::SIG_BLOCK, Some(&signals), None)
        .map_err(MasterError::system("sigprocmask"))?;
    let handover = std::mem::take(&mut start.handover);
    let previous: Vec<Previous> =
        handover.workers.iter().map(|&pid| Previous { pid, life: Life::Serving }).collect();
    if !previous.is_empty() {
        tracing::info!(
            "reloaded: the {} workers of the previous code serve until the new ones are ready{}",
            previous.len(),
            if handover.chain { " (chain reload: one at a time)" } else { "" }
        );
    }
    let app = if options.lazy_apps {
        None
    } else {
        match rwsgi_python::load_app(spec) {
            Ok(app) => Some(app),
            Err(err) => {
                start.finish();
                return Err(err.into());
            }
        }
    };
    // The master enforces each mercy (reload or worker reload): a worker
    // never gives up on its requests first; its own watchdog is the
    // backstop should the master be gone.
    start.server.shutdown_timeout =
        options.reload_mercy.max(options.worker_reload_mercy) + WORKER_BACKSTOP;
    setup::set_title(&options.procname_prefix, "rwsgi master");
    start.log_listening();
    let signalfd = SignalFd::with_flags(&signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK)
        .map_err(MasterError::system("signalfd"))?;
    let processes = options.processes.max(1);
    // A chain reload with preload: worker 1 first, each next one once the
    // one before is ready (and an old worker retired).
    let staged = if handover.chain && !previous.is_empty() {
        (2..=processes).collect()
    } else {
        VecDeque::new()
    };
    let board = Scoreboard::new(2 * (processes + EXTRA_WORKERS), pool.threads)?;
    let stats = StatsServer::bind(&options.stats, start.server.chmod_socket)?;
    let fifo = options.master_fifo.as_deref().map(MasterFifo::create).transpose()?;
    let pool = PoolSettings { multiprocess: processes > 1, ..pool };
    let touch = options
        .touch_reload
        .iter()
        .map(|p| Touch::new(p, Touched::Reload))
        .chain(options.touch_chain_reload.iter().map(|p| Touch::new(p, Touched::ChainReload)))
        .chain(options.touch_logreopen.iter().map(|p| Touch::new(p, Touched::LogReopen)))
        .chain(options.touch_logrotate.iter().map(|p| Touch::new(p, Touched::LogRotate)))
        .collect();
    tracing::info!(
        "master (pid {}): {processes} worker(s), {} app",
        std::process::id(),
        if options.lazy_apps { "lazy-apps: each worker imports the" } else { "preloaded" }
    );
    let mut master = Master {
        options,
        start,
        app,
        spec,
        pool,
        front,
        board,
        signalfd: Some(signalfd),
        workers: Vec::new(),
        previous,
        target: processes,
        mode: Mode::Serving,
        reexec_chain: false,
        backoff: Backoff::default(),
        respawns: Vec::new(),
        chain: VecDeque::new(),
        chain_waiting: None,
        staged,
        ever_ready: false,
        settled: false,
        touch,
        me: nix::unistd::getpid(),
        stats,
        fifo,
        history: HashMap::new(),
        queues: Vec::new(),
        cut: false,
        started_at: SystemTime::now(),
    };
    master.queues = vec![QueueWatch::default(); master.start.listeners.len()];
    let result = master.run();
    if result.is_err() {
        master.start.finish();
    }
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Serving,
    /// The master re-executes itself at the end of this turn of the loop;
    /// its workers serve on until the new image's are ready.
    Reexec,
    /// Workers are stopping; then the master exits (with an error when
    /// `failed`: a lazy app could not load).
    Shutdown {
        failed: bool,
    },
}

#[derive(Debug)]
struct Worker {
    id: usize,
    slot: usize,
    pid: Pid,
    spawned: Instant,
    life: Life,
    /// A replacement is starting; this one stops once it is ready.
    successor: Option<Pid>,
    /// No recycle before this instant (a replacement died young).
    recycle_after: Instant,
}

impl Worker {
    fn live(&self) -> bool {
        self.life.live()
    }
}

/// A worker of this master's previous image (before a preload reload,
/// see [`reexec`]): it serves until this image's workers are ready, then
/// stops gracefully. It has no scoreboard slot here.
#[derive(Debug)]
struct Previous {
    pid: Pid,
    life: Life,
}

/// What touching a file asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touched {
    Reload,
    ChainReload,
    LogReopen,
    LogRotate,
}

impl Touched {
    fn option(self) -> &'static str {
        match self {
            Touched::Reload => "touch-reload",
            Touched::ChainReload => "touch-chain-reload",
            Touched::LogReopen => "touch-logreopen",
            Touched::LogRotate => "touch-logrotate",
        }
    }
}

/// A `touch-*` file and the mtime last seen.
#[derive(Debug)]
struct Touch {
    path: PathBuf,
    seen: Option<SystemTime>,
    asks: Touched,
}

impl Touch {
    fn new(path: &std::path::Path, asks: Touched) -> Touch {
        Touch { path: path.to_path_buf(), seen: mtime(path), asks }
    }
}

fn mtime(path: &std::path::Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[derive(Debug)]
struct Master<'a> {
    options: &'a MasterOptions,
    start: Start,
    app: Option<App>,
    spec: &'a AppSpec,
    pool: PoolSettings,
    /// Routes, static files and headers, in front of the app.
    front: Arc<Front>,
    board: Scoreboard,
    /// `None` only in a forked child, which drops it.
    signalfd: Option<SignalFd>,
    workers: Vec<Worker>,
    previous: Vec<Previous>,
    /// How many workers should serve (`processes`, changed by TTIN/TTOU).
    target: usize,
    mode: Mode,
    /// The coming re-exec is for a chain reload.
    reexec_chain: bool,
    backoff: Backoff,
    /// Worker numbers to respawn, and when.
    respawns: Vec<(Instant, usize)>,
    /// Worker numbers a chain reload has yet to replace.
    chain: VecDeque<usize>,
    /// The replacement the chain reload waits for.
    chain_waiting: Option<Pid>,
    /// Worker numbers a preload chain reload has yet to start.
    staged: VecDeque<usize>,
    ever_ready: bool,
    /// Every worker wanted is ready and systemd was told.
    settled: bool,
    touch: Vec<Touch>,
    me: Pid,
    /// `stats`: the master answers it from its loop.
    stats: Option<StatsServer>,
    /// `master-fifo`: commands read in the same loop.
    fifo: Option<MasterFifo>,
    /// Per worker number, what the stats show of its past.
    history: HashMap<usize, History>,
    /// Per listener, whether its accept queue is full, and how often.
    queues: Vec<QueueWatch>,
    /// A stop's mercy ran out with requests still running.
    cut: bool,
    started_at: SystemTime,
}

/// What the stats server reports of a worker number's past.
#[derive(Debug, Default, Clone, Copy)]
struct History {
    /// Forks for this number; respawns are those after the first.
    spawns: u64,
    harakiris: u64,
    /// Seconds since the epoch of the last fork.
    last_spawn: u64,
    /// Why it was forked again, by [`Respawn`].
    respawns: [u64; Respawn::ALL.len()],
    /// The counters of its workers that are gone: the totals a stats
    /// reader sees never go back when a worker is replaced.
    carried: Counters,
}

/// Why a worker number is forked again, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Respawn {
    Crash,
    Harakiri,
    MaxRequests,
    Rss,
    Lifetime,
    Reload,
}

impl Respawn {
    const ALL: [Respawn; 6] = [
        Respawn::Crash,
        Respawn::Harakiri,
        Respawn::MaxRequests,
        Respawn::Rss,
        Respawn::Lifetime,
        Respawn::Reload,
    ];

    fn label(self) -> &'static str {
        match self {
            Respawn::Crash => "crash",
            Respawn::Harakiri => "harakiri",
            Respawn::MaxRequests => "max-requests",
            Respawn::Rss => "reload-on-rss",
            Respawn::Lifetime => "lifetime",
            Respawn::Reload => "reload",
        }
    }

    fn of(recycle: Recycle) -> Respawn {
        match recycle {
            Recycle::MaxRequests => Respawn::MaxRequests,
            Recycle::Rss => Respawn::Rss,
            Recycle::Lifetime => Respawn::Lifetime,
        }
    }
}

impl Master<'_> {
    fn run(&mut self) -> Result<(), MasterError> {
        for id in 1..=self.target {
            if !self.staged.contains(&id) {
                self.spawn(id)?;
            }
        }
        loop {
            self.wait_for_signals()?;
            self.reap();
            self.tick();
            let all_gone = self.workers.is_empty() && self.previous.is_empty();
            match self.mode {
                Mode::Reexec => return Err(self.reexec()),
                Mode::Shutdown { failed } if all_gone => {
                    self.start.finish();
                    tracing::info!("master stopped");
                    return match (failed, self.cut) {
                        (true, _) => Err(MasterError::NoApp),
                        (false, true) => Err(MasterError::RequestsCut),
                        (false, false) => Ok(()),
                    };
                }
                _ => {}
            }
        }
    }

    /// Hands the sockets and the serving workers to a new image of the
    /// master. Only returns on failure.
    fn reexec(&mut self) -> MasterError {
        let workers = self.workers.iter().map(|w| w.pid);
        let pids: Vec<Pid> = workers.chain(self.previous.iter().map(|p| p.pid)).collect();
        tracing::info!(
            "reloading: re-executing the master with the listening sockets; \
             its {} workers serve until the new ones are ready",
            pids.len()
        );
        let handover = crate::handover::Handover { workers: pids, chain: self.reexec_chain };
        reexec::reexec(&self.start.listeners, &self.start.cwd, &handover)
    }

    fn wait_for_signals(&mut self) -> Result<(), MasterError> {
        use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
        let Some(signalfd) = &mut self.signalfd else { return Ok(()) };
        let mut fds = vec![PollFd::new(signalfd.as_fd(), PollFlags::POLLIN)];
        let stats_at = self.stats.as_ref().map(|stats| {
            fds.push(PollFd::new(stats.fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let fifo_at = self.fifo.as_ref().map(|fifo| {
            fds.push(PollFd::new(fifo.fd(), PollFlags::POLLIN));
            fds.len() - 1
        });
        let timeout = PollTimeout::try_from(TICK).unwrap_or(PollTimeout::MAX);
        match poll(&mut fds, timeout) {
            Ok(_) | Err(nix::Error::EINTR) => {}
            Err(err) => return Err(MasterError::System { call: "poll", source: err }),
        }
        let ready = |at: Option<usize>| {
            at.and_then(|i| fds.get(i))
                .and_then(PollFd::revents)
                .is_some_and(|r| r.contains(PollFlags::POLLIN))
        };
        let (stats_waiting, fifo_waiting) = (ready(stats_at), ready(fifo_at));
        drop(fds);
        if stats_waiting && let Some(stats) = &self.stats {
            stats.answer(|| self.stats_document(), || self.metrics());
        }
        if fifo_waiting {
            let commands = self.fifo.as_mut().map(MasterFifo::commands).unwrap_or_default();
            for command in commands {
                self.on_fifo(command);
            }
        }
        let Some(signalfd) = &mut self.signalfd else { return Ok(()) };
        let mut received = Vec::new();
        while let Ok(Some(info)) = signalfd.read_signal() {
            if let Ok(signal) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) {
                received.push(signal);
            }
        }
        for signal in received {
            self.on_signal(signal);
        }
        Ok(())
    }

    fn count_respawn(&mut self, id: usize, why: Respawn) {
        if let Some(index) = Respawn::ALL.iter().position(|r| *r == why) {
            self.history.entry(id).or_default().respawns[index] += 1;
        }
    }

    /// A `master-fifo` command, as uWSGI's master reads it.
    fn on_fifo(&mut self, command: Command) {
        tracing::info!("master-fifo: {command:?}");
        match command {
            Command::Reload => self.reload(false, "master-fifo"),
            Command::ChainReload => self.reload(true, "master-fifo"),
            Command::Stop => self.shut_down(true, false),
            Command::StopNow => self.shut_down(false, false),
            Command::AddWorker => self.add_worker(),
            Command::RemoveWorker => self.remove_worker(),
            Command::ReopenLog => {
                if let Some(log) = &mut self.start.log {
                    log.reopen();
                }
            }
            Command::RotateLog => {
                if let Some(log) = &mut self.start.log {
                    log.rotate(self.options.log.backup.as_deref());
                }
            }
            Command::PrintStats => tracing::info!("stats: {}", self.stats_document()),
            Command::Unsupported(byte) => {
                tracing::warn!(
                    "master-fifo: {:?} is not supported by rwsgi: ignored",
                    byte as char
                );
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::SIGTERM | Signal::SIGINT => self.shut_down(true, false),
            Signal::SIGQUIT => self.shut_down(false, false),
            Signal::SIGHUP => self.reload(false, "SIGHUP"),
            Signal::SIGUSR2 => self.reload(true, "SIGUSR2"),
            Signal::SIGTTIN => self.add_worker(),
            Signal::SIGTTOU => self.remove_worker(),
            Signal::SIGUSR1 => {
                let pids =
                    self.workers.iter().map(|w| w.pid).chain(self.previous.iter().map(|p| p.pid));
                for pid in pids {
                    let _ = kill(pid, STACKS_SIGNAL);
                }
            }
            _ => {}
        }
    }

    /// Graceful: workers finish their requests within `reload-mercy`.
    /// Immediate: SIGQUIT to the workers, SIGKILL a second later.
    fn shut_down(&mut self, graceful: bool, failed: bool) {
        if graceful && matches!(self.mode, Mode::Shutdown { .. }) {
            return;
        }
        self.mode = Mode::Shutdown { failed };
        self.start.notify("STOPPING=1");
        // The master's copies go now: once the workers close theirs, new
        // connections are refused instead of waiting in a dead backlog.
        // The workers' are the last: each takes what is queued first.
        self.start.listeners.clear();
        for worker in &self.workers {
            self.board.release_listeners(worker.slot);
        }
        self.respawns.clear();
        self.chain.clear();
        self.staged.clear();
        if graceful {
            let mercy = self.options.reload_mercy;
            tracing::info!("shutting down: workers finish requests in flight (up to {mercy:?})");
            for i in 0..self.workers.len() {
                self.stop(i, Signal::SIGTERM, mercy);
            }
            self.retire_previous(Signal::SIGTERM, mercy, usize::MAX);
        } else {
            tracing::info!("shutting down now");
            let kill_at = Instant::now() + QUIT_GRACE;
            for worker in &mut self.workers {
                if worker.life.stop(kill_at, true) {
                    let _ = kill(worker.pid, Signal::SIGQUIT);
                }
            }
            for previous in &mut self.previous {
                if previous.life.stop(kill_at, true) {
                    let _ = kill(previous.pid, Signal::SIGQUIT);
                }
            }
        }
    }

    /// Tells up to `count` of the previous image's workers to stop.
    fn retire_previous(&mut self, signal: Signal, mercy: Duration, count: usize) {
        let kill_at = Instant::now() + mercy;
        for previous in self.previous.iter_mut().filter(|p| p.life.live()).take(count) {
            tracing::info!("previous worker (pid {}) stops", previous.pid);
            previous.life.stop(kill_at, false);
            let _ = kill(previous.pid, signal);
        }
    }

    fn reload(&mut self, chain: bool, why: &str) {
        if self.mode != Mode::Serving {
            return;
        }
        if !self.options.lazy_apps
            && let Some(why) = reexec::unlaunchable()
        {
            tracing::error!("{why}: cannot re-execute the master to reload; serving on");
            return;
        }
        self.start.notify(&systemd::reloading_message());
        self.settled = false;
        if !self.options.lazy_apps {
            tracing::info!(
                "{why}: {} reload: the master re-executes itself to import the new code; \
                 the workers serve until new ones are ready, then finish their requests",
                if chain { "chain" } else { "graceful" }
            );
            self.mode = Mode::Reexec;
            self.reexec_chain = chain;
        } else if chain {
            let mut ids: Vec<usize> = self
                .workers
                .iter()
                .filter(|w| w.live() && w.successor.is_none())
                .map(|w| w.id)
                .collect();
            ids.sort_unstable();
            tracing::info!("{why}: chain reload of {} worker(s), one at a time", ids.len());
            self.chain = ids.into();
            self.advance_chain();
        } else {
            tracing::info!("{why}: graceful reload: new workers start, then the old ones stop");
            for i in 0..self.workers.len() {
                if self.workers[i].live() && self.workers[i].successor.is_none() {
                    self.replace(i, Respawn::Reload);
                }
            }
        }
    }

    /// Replaces the next worker of a chain reload, if any is left.
    fn advance_chain(&mut self) {
        self.chain_waiting = None;
        while let Some(id) = self.chain.pop_front() {
            if let Some(i) =
                self.workers.iter().position(|w| w.id == id && w.live() && w.successor.is_none())
            {
                self.chain_waiting = self.replace(i, Respawn::Reload);
                if self.chain_waiting.is_some() {
                    return;
                }
            }
        }
    }

    fn add_worker(&mut self) {
        if self.mode != Mode::Serving {
            return;
        }
        let limit = self.board.slots() / 2;
        if self.target >= limit {
            tracing::warn!("SIGTTIN: already {} workers, the most this master allows", self.target);
            return;
        }
        self.target += 1;
        tracing::info!("SIGTTIN: {} workers", self.target);
        if let Err(err) = self.spawn(self.target) {
            tracing::error!("{err}");
        }
    }

    fn remove_worker(&mut self) {
        if self.mode != Mode::Serving {
            return;
        }
        if self.target <= 1 {
            tracing::warn!("SIGTTOU: one worker left; keeping it");
            return;
        }
        let id = self.target;
        self.target -= 1;
        tracing::info!("SIGTTOU: {} workers", self.target);
        let mercy = self.options.worker_reload_mercy;
        for i in 0..self.workers.len() {
            if self.workers[i].id == id {
                self.stop(i, Signal::SIGTERM, mercy);
                if self.chain_waiting == Some(self.workers[i].pid) {
                    // A chain reload waited for it: on to the next.
                    self.advance_chain();
                }
            }
        }
    }

    /// Tells worker `i` to stop, and when it will be killed.
    fn stop(&mut self, i: usize, signal: Signal, mercy: Duration) {
        let worker = &mut self.workers[i];
        if worker.life.stop(Instant::now() + mercy, false) {
            let _ = kill(worker.pid, signal);
        }
    }

    /// Starts a replacement for worker `i`, which stops once it is ready.
    fn replace(&mut self, i: usize, why: Respawn) -> Option<Pid> {
        let id = self.workers[i].id;
        self.count_respawn(id, why);
        match self.spawn(id) {
            Ok(pid) => {
                self.workers[i].successor = pid;
                pid
            }
            Err(err) => {
                tracing::error!("{err}");
                None
            }
        }
    }

    /// Forks worker number `id`. `None` when no scoreboard slot is free.
    fn spawn(&mut self, id: usize) -> Result<Option<Pid>, MasterError> {
        let Some(slot) =
            (0..self.board.slots()).find(|s| self.workers.iter().all(|w| w.slot != *s))
        else {
            tracing::error!("worker {id}: no free scoreboard slot");
            return Ok(None);
        };
        self.board.clear(slot);
        match fork::fork()? {
            Side::Child => {
                self.signalfd = None;
                if let Some(stats) = self.stats.take() {
                    stats.close_in_child();
                }
                if let Some(fifo) = self.fifo.take() {
                    fifo.close_in_child();
                }
                let listeners = std::mem::take(&mut self.start.listeners);
                let who = Identity { id, slot, board: self.board, master: self.me };
                let app = match &self.app {
                    Some(app) => AppSource::Preloaded(app),
                    None => AppSource::Lazy(self.spec),
                };
                let logs: Vec<LogFile> = self
                    .start
                    .log
                    .iter()
                    .chain(&self.start.request_log)
                    .map(LogFile::inherited)
                    .collect();
                worker::run_forked(
                    self.options,
                    who,
                    worker::Inherited { listeners, logs },
                    ServerConfig {
                        worker_id: id,
                        on_answered: Some(counting(self.board, slot)),
                        ..self.start.server.clone()
                    },
                    app,
                    self.pool.clone(),
                    &self.front,
                )
            }
            Side::Parent(pid) => {
                tracing::info!("spawned worker {id} (pid {pid})");
                let history = self.history.entry(id).or_default();
                history.spawns += 1;
                history.last_spawn = unix_secs(SystemTime::now());
                let now = Instant::now();
                self.workers.push(Worker {
                    id,
                    slot,
                    pid,
                    spawned: now,
                    life: Life::Starting,
                    successor: None,
                    recycle_after: now,
                });
                Ok(Some(pid))
            }
        }
    }

    /// Collects every worker that exited, and decides what replaces it.
    fn reap(&mut self) {
        loop {
            let (pid, how, status) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    (pid, format!("exit status {code}"), Some(code))
                }
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    (pid, format!("killed by {signal}"), None)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if let Some(i) = self.workers.iter().position(|w| w.pid == pid) {
                let worker = self.workers.swap_remove(i);
                let gone = self.board.counters(worker.slot);
                self.history.entry(worker.id).or_default().carried.add(&gone);
                self.board.clear(worker.slot);
                self.on_exit(worker, &how, status);
            } else if let Some(i) = self.previous.iter().position(|p| p.pid == pid) {
                self.previous.swap_remove(i);
                tracing::info!("previous worker (pid {pid}) stopped ({how})");
            }
        }
    }

    fn on_exit(&mut self, worker: Worker, how: &str, status: Option<i32>) {
        let Worker { id, pid, .. } = worker;
        match worker.life.why() {
            Some(Why::Stopped | Why::Quit) => {
                tracing::info!("worker {id} (pid {pid}) stopped ({how})");
                return;
            }
            Some(Why::Harakiri) => self.history.entry(id).or_default().harakiris += 1,
            None => tracing::warn!("worker {id} (pid {pid}) died ({how})"),
        }
        let lived = worker.spawned.elapsed();
        // A replacement that died before it was ready: the old worker
        // serves on; a chain reload stops there.
        if let Some(old) = self.workers.iter_mut().find(|w| w.successor == Some(pid)) {
            old.successor = None;
            old.recycle_after = Instant::now() + self.backoff.died(lived);
            if self.chain_waiting == Some(pid) {
                tracing::error!(
                    "chain reload aborted: the new worker {id} died before it was ready; \
                     the other workers serve on"
                );
                self.chain.clear();
                self.chain_waiting = None;
            }
            return;
        }
        if status == Some(NO_APP_STATUS) && !self.ever_ready {
            tracing::error!("worker {id} could not load the app (need-app): stopping");
            self.shut_down(true, true);
            return;
        }
        let wanted = self.mode == Mode::Serving
            && id <= self.target
            && !self.workers.iter().any(|w| w.id == id && w.live());
        if !wanted {
            return;
        }
        let delay = match worker.life.why() {
            Some(Why::Harakiri) => Duration::ZERO,
            _ => self.backoff.died(lived),
        };
        if !delay.is_zero() {
            tracing::warn!("respawning too fast: worker {id} is respawned in {delay:?}");
        }
        let why = match worker.life.why() {
            Some(Why::Harakiri) => Respawn::Harakiri,
            _ => Respawn::Crash,
        };
        self.count_respawn(id, why);
        self.respawns.push((Instant::now() + delay, id));
    }

    fn tick(&mut self) {
        let now = Instant::now();
        self.respawn_due(now);
        for i in 0..self.workers.len() {
            self.check_ready(i);
            self.check_harakiri(i, now);
            self.check_deadline(i, now);
            self.check_recycle(i, now);
        }
        let shutting_down = matches!(self.mode, Mode::Shutdown { .. });
        for previous in &mut self.previous {
            match previous.life.due(now, STACKS_GRACE) {
                Due::Nothing => {}
                Due::Stacks => {
                    tracing::error!(
                        "previous worker (pid {}) still busy when its mercy ran out: killing it; \
                         its Python stacks follow",
                        previous.pid
                    );
                    let _ = kill(previous.pid, STACKS_SIGNAL);
                    self.cut |= shutting_down;
                }
                Due::Kill => {
                    let _ = kill(previous.pid, Signal::SIGKILL);
                }
            }
        }
        self.check_touch();
        self.check_log();
        self.check_listen_queues();
        self.check_settled();
    }

    /// Says when a listener's accept queue fills (the kernel then drops
    /// or refuses connections) and when it drains; counts the ticks.
    fn check_listen_queues(&mut self) {
        for (listener, watch) in self.start.listeners.iter().zip(&mut self.queues) {
            let Some((waiting, backlog)) = accept_queue(listener.as_fd()) else { continue };
            let name = socket_name(listener);
            match watch.observe(waiting, backlog) {
                Some(QueueChange::Filled) => tracing::warn!(
                    "*** listen queue of socket \"{name}\" (fd: {}) full !!! ({waiting}/{backlog}) ***",
                    std::os::fd::AsRawFd::as_raw_fd(&listener.as_fd())
                ),
                Some(QueueChange::Drained) => {
                    tracing::info!("listen queue of socket \"{name}\" no longer full")
                }
                None => {}
            }
        }
    }

    fn respawn_due(&mut self, now: Instant) {
        let (due, later): (Vec<_>, Vec<_>) =
            self.respawns.drain(..).partition(|(at, _)| *at <= now);
        self.respawns = later;
        for (_, id) in due {
            let wanted = self.mode == Mode::Serving
                && id <= self.target
                && !self.workers.iter().any(|w| w.id == id && w.live());
            if wanted && let Err(err) = self.spawn(id) {
                tracing::error!("respawning worker {id}: {err}");
            }
        }
    }

    fn check_ready(&mut self, i: usize) {
        let worker = &mut self.workers[i];
        if !self.board.is_ready(worker.slot) || !worker.life.ready() {
            return;
        }
        self.ever_ready = true;
        let (id, pid) = (worker.id, worker.pid);
        if let Some(old) = self.workers.iter().position(|w| w.successor == Some(pid)) {
            tracing::info!(
                "worker {id} (pid {}) replaced by pid {pid}: stopping it",
                self.workers[old].pid
            );
            self.stop(old, Signal::SIGTERM, self.options.worker_reload_mercy);
        }
        if self.chain_waiting == Some(pid) {
            self.advance_chain();
            if self.chain_waiting.is_none() {
                tracing::info!("chain reload done");
            }
        }
        if let Some(next) = self.staged.pop_front() {
            self.retire_previous(Signal::SIGTERM, self.options.reload_mercy, 1);
            if let Err(err) = self.spawn(next) {
                tracing::error!("chain reload: worker {next}: {err}");
            }
        }
    }

    fn check_harakiri(&mut self, i: usize, now: Instant) {
        let Some(limit) = self.options.harakiri else { return };
        let worker = &mut self.workers[i];
        let Some(running) = self.board.oldest_request(worker.slot) else { return };
        let elapsed = Duration::from_millis(now_ms().saturating_sub(running.started_ms));
        if elapsed <= limit || !worker.life.harakiri(now + STACKS_GRACE) {
            return;
        }
        let threads = self.pool.threads.max(1);
        let whole =
            if threads > 1 { "the whole worker is recycled" } else { "the worker is recycled" };
        tracing::error!(
            "harakiri: worker {} (pid {}) request {} running {:.1} s > {} s; killing the worker \
             (threads={threads}: {whole}); its Python stacks follow",
            worker.id,
            worker.pid,
            running.request,
            elapsed.as_secs_f64(),
            limit.as_secs_f64(),
        );
        let _ = kill(worker.pid, STACKS_SIGNAL);
    }

    fn check_deadline(&mut self, i: usize, now: Instant) {
        let worker = &mut self.workers[i];
        match worker.life.due(now, STACKS_GRACE) {
            Due::Nothing => {}
            Due::Stacks => {
                let running = self.board.running_requests(worker.slot);
                tracing::error!(
                    "worker {} (pid {}) still busy when its mercy ran out: killing it \
                     ({} request(s) in the app, listed below with the Python stacks; any \
                     other was a response still being written)",
                    worker.id,
                    worker.pid,
                    running.len()
                );
                for (thread, request) in &running {
                    let elapsed = now_ms().saturating_sub(request.started_ms);
                    tracing::error!(
                        "cut: {} running {:.1} s on worker {} thread {thread}",
                        request.request,
                        elapsed as f64 / 1000.0,
                        worker.id
                    );
                }
                let _ = kill(worker.pid, STACKS_SIGNAL);
                if matches!(self.mode, Mode::Shutdown { .. }) {
                    self.cut = true;
                }
            }
            Due::Kill => {
                let _ = kill(worker.pid, Signal::SIGKILL);
            }
        }
    }

    fn check_recycle(&mut self, i: usize, now: Instant) {
        let worker = &self.workers[i];
        if self.mode != Mode::Serving
            || worker.life != Life::Serving
            || worker.successor.is_some()
            || worker.recycle_after > now
        {
            return;
        }
        if self.options.max_worker_lifetime.is_some_and(|life| worker.spawned.elapsed() >= life) {
            self.board.request_recycle(worker.slot, Recycle::Lifetime);
        }
        let Some(reason) = self.board.recycle_reason(worker.slot) else { return };
        tracing::info!(
            "worker {} (pid {}) recycled: {} ({} requests served); starting its replacement",
            worker.id,
            worker.pid,
            reason.describe(),
            self.board.requests(worker.slot),
        );
        self.replace(i, Respawn::of(reason));
    }

    fn check_touch(&mut self) {
        let mut touched = Vec::new();
        for touch in &mut self.touch {
            let now = mtime(&touch.path);
            if now.is_some() && now != touch.seen {
                touched.push((touch.asks, touch.path.display().to_string()));
            }
            touch.seen = now;
        }
        for (asks, path) in touched {
            let why = format!("{} {path}", asks.option());
            match asks {
                Touched::Reload => self.reload(false, &why),
                Touched::ChainReload => self.reload(true, &why),
                Touched::LogReopen => {
                    if let Some(log) = &mut self.start.log {
                        log.reopen();
                        tracing::info!("{why}: log reopened");
                    }
                }
                Touched::LogRotate => {
                    if let Some(log) = &mut self.start.log {
                        log.rotate(self.options.log.backup.as_deref());
                    }
                }
            }
        }
    }

    /// The log file: rotated when full (`log-maxsize`), opened again when
    /// its path names another file (rotated by logrotate). Workers notice
    /// on their own within a second.
    fn check_log(&mut self) {
        if let Some(requests) = &mut self.start.request_log {
            requests.follow();
        }
        let Some(log) = &mut self.start.log else { return };
        if let Some(maxsize) = self.options.log.maxsize
            && log.full(maxsize)
        {
            log.rotate(self.options.log.backup.as_deref());
        }
        log.follow();
    }

    /// Once every wanted worker is ready (at start, after a reload), tells
    /// systemd and the log.
    fn check_settled(&mut self) {
        if self.settled || self.mode != Mode::Serving || !self.chain.is_empty() {
            return;
        }
        let serving = self.workers.iter().filter(|w| w.life == Life::Serving).count();
        let pending = self.workers.iter().any(|w| {
            w.life == Life::Starting || (w.life == Life::Serving && w.successor.is_some())
        });
        if serving >= self.target && !pending {
            self.settled = true;
            tracing::info!("{serving} worker(s) serving");
            self.retire_previous(Signal::SIGTERM, self.options.reload_mercy, usize::MAX);
            self.start.notify(&format!("READY=1\nSTATUS={serving} workers serving"));
        }
    }
}

/// The hook a worker's core calls for each answered request: counts it
/// in the worker's scoreboard slot.
fn counting(board: Scoreboard, slot: usize) -> rwsgi_server::AnsweredHook {
    rwsgi_server::AnsweredHook(Arc::new(move |answered: &rwsgi_server::Answered| {
        let micros = u64::try_from(answered.duration.as_micros()).unwrap_or(u64::MAX);
        let by = match answered.answerer {
            rwsgi_proto::Answerer::App => AnsweredBy::App,
            rwsgi_proto::Answerer::Static => AnsweredBy::Static,
            rwsgi_proto::Answerer::Route => AnsweredBy::Route,
        };
        board.count_answered(
            slot,
            &Answer {
                protocol: answered.protocol,
                status: answered.status,
                sent: answered.bytes,
                received: answered.received,
                micros,
                by,
            },
        );
    }))
}

/// A socket's name as uWSGI's stats give it: `HOST:PORT`, or the path.
fn socket_name(listener: &rwsgi_server::Listener) -> String {
    let name = listener.local().to_string();
    name.strip_prefix("unix:").map_or(name.clone(), str::to_string)
}

/// A Prometheus label value, escaped (`\\`, `\"`, `\n`).
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn unix_secs(when: SystemTime) -> u64 {
    when.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Master<'_> {
    /// uWSGI's stats document, field for field (`uwsgi_stats`): what
    /// uwsgitop and the Prometheus uwsgi exporter read. Times in
    /// microseconds, sizes in bytes, as uWSGI reports them.
    fn stats_document(&self) -> Value {
        let sockets: Vec<Value> = self
            .start
            .listeners
            .iter()
            .map(|listener| {
                let (queue, max_queue) = accept_queue(listener.as_fd()).unwrap_or((0, 0));
                json!({
                    "name": socket_name(listener),
                    "proto": listener.protocol().option().trim_end_matches("-socket"),
                    "queue": queue,
                    "max_queue": max_queue,
                    "shared": 0,
                    "can_offload": 0,
                })
            })
            .collect();
        let queues = sockets.iter().map(|s| s["queue"].as_u64().unwrap_or(0));
        let listen_queue: u64 = queues.clone().sum();
        let listen_queue_errors: u64 = self.queues.iter().map(|q| q.full_ticks).sum();
        let workers: Vec<Value> = self
            .by_number()
            .into_iter()
            .map(|(w, total)| self.worker_document(w, &total))
            .collect();
        json!({
            "version": format!("{}-rwsgi", env!("CARGO_PKG_VERSION")),
            "listen_queue": listen_queue,
            "listen_queue_errors": listen_queue_errors,
            "signal_queue": 0,
            // As uWSGI's: the longest accept queue.
            "load": queues.max().unwrap_or(0),
            "pid": self.me.as_raw(),
            "uid": nix::unistd::getuid().as_raw(),
            "gid": nix::unistd::getgid().as_raw(),
            "cwd": std::env::current_dir().map(|d| d.display().to_string()).unwrap_or_default(),
            "locks": [],
            "sockets": sockets,
            "workers": workers,
        })
    }

    /// One entry per worker number, as uWSGI has one per slot: the worker
    /// serving it (a replacement once ready), with the number's totals
    /// (workers gone, and both while one replaces the other).
    fn by_number(&self) -> Vec<(&Worker, Counters)> {
        let mut ids: Vec<usize> = self.workers.iter().filter(|w| w.live()).map(|w| w.id).collect();
        ids.sort_unstable();
        ids.dedup();
        ids.into_iter()
            .filter_map(|id| {
                let live: Vec<&Worker> =
                    self.workers.iter().filter(|w| w.id == id && w.live()).collect();
                let current = live
                    .iter()
                    .find(|w| w.life == Life::Serving && w.successor.is_none())
                    .or_else(|| live.iter().find(|w| w.life == Life::Serving))
                    .or_else(|| live.first())?;
                let mut total = self.history.get(&id).map(|h| h.carried).unwrap_or_default();
                for worker in &live {
                    total.add(&self.board.counters(worker.slot));
                }
                Some((*current, total))
            })
            .collect()
    }

    fn worker_document(&self, worker: &Worker, total: &Counters) -> Value {
        let counters = self.board.counters(worker.slot);
        let history = self.history.get(&worker.id).copied().unwrap_or_default();
        let (vsz, rss) = memory_of(worker.pid.as_raw());
        let threads = self.board.threads(worker.slot);
        let busy = threads.iter().any(|(_, running)| *running);
        let cores: Vec<Value> = threads
            .iter()
            .enumerate()
            .map(|(id, (requests, running))| {
                // uWSGI's: the running request's `KEY=VALUE` strings, then
                // an empty one; when it started.
                let (vars, req_info) = match self.board.running_vars(worker.slot, id) {
                    Some((started_ms, vars)) => {
                        let mut list: Vec<Value> = vars
                            .split(|&b| b == 0)
                            .filter(|entry| !entry.is_empty())
                            .map(|entry| Value::from(String::from_utf8_lossy(entry)))
                            .collect();
                        list.push(Value::from(""));
                        let ago = Duration::from_millis(now_ms().saturating_sub(started_ms));
                        let start = unix_secs(
                            SystemTime::now().checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH),
                        );
                        (list, json!({ "request_start": start }))
                    }
                    None => (Vec::new(), json!({})),
                };
                // Static files and route answers come from the I/O
                // thread, shown as the first core.
                let (statics, routed) =
                    if id == 0 { (total.static_requests, total.routed_requests) } else { (0, 0) };
                json!({
                    "id": id,
                    "requests": requests,
                    "static_requests": statics,
                    "routed_requests": routed,
                    "offloaded_requests": 0,
                    "write_errors": 0,
                    "read_errors": 0,
                    "in_request": u8::from(*running),
                    "vars": vars,
                    "req_info": req_info,
                })
            })
            .collect();
        let avg_rt = total.micros.checked_div(total.answered).unwrap_or(0);
        json!({
            "id": worker.id,
            "pid": worker.pid.as_raw(),
            "accepting": u8::from(worker.life == Life::Serving),
            "requests": total.answered,
            "delta_requests": counters.answered,
            "exceptions": total.exceptions,
            "harakiri_count": history.harakiris,
            "signals": 0,
            "signal_queue": 0,
            "status": if worker.life == Life::Starting { "cheap" } else if busy { "busy" } else { "idle" },
            "rss": rss,
            "vsz": vsz,
            "running_time": total.micros,
            "last_spawn": history.last_spawn,
            "respawn_count": history.spawns.saturating_sub(1),
            "tx": total.tx,
            "avg_rt": avg_rt,
            "apps": [{
                "id": 0,
                "modifier1": 0,
                "mountpoint": "",
                "startup_time": 0,
                "requests": total.answered,
                "exceptions": total.exceptions,
                "chdir": "",
            }],
            "cores": cores,
        })
    }

    /// The Prometheus text exposition (`stats-http`, `GET /metrics`).
    fn metrics(&self) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };
        let numbers = self.by_number();
        family(
            &mut out,
            "rwsgi_requests_total",
            "counter",
            "Requests answered, by protocol and status class.",
        );
        for (worker, counters) in &numbers {
            for (protocol, classes) in PROTOCOLS.iter().zip(counters.by_protocol_class) {
                for (class, count) in classes.iter().enumerate() {
                    let _ = writeln!(
                        out,
                        "rwsgi_requests_total{{worker=\"{}\",protocol=\"{protocol}\",status_class=\"{}xx\"}} {count}",
                        worker.id,
                        class + 1
                    );
                }
            }
        }
        let per_worker = |out: &mut String, name: &str, help: &str, value: fn(&Counters) -> u64| {
            family(out, name, "counter", help);
            for (worker, counters) in &numbers {
                let _ = writeln!(out, "{name}{{worker=\"{}\"}} {}", worker.id, value(counters));
            }
        };
        per_worker(&mut out, "rwsgi_response_bytes_total", "Response body bytes sent.", |c| c.tx);
        per_worker(
            &mut out,
            "rwsgi_received_bytes_total",
            "Request bytes read (heads and bodies, as on the wire).",
            |c| c.rx,
        );
        per_worker(&mut out, "rwsgi_exceptions_total", "Exceptions the app raised.", |c| {
            c.exceptions
        });
        family(
            &mut out,
            "rwsgi_request_duration_seconds",
            "histogram",
            "Time spent answering requests.",
        );
        for (worker, counters) in &numbers {
            let mut cumulative = 0;
            for (bound, count) in DURATION_BUCKETS_US.iter().zip(counters.by_duration) {
                cumulative += count;
                let _ = writeln!(
                    out,
                    "rwsgi_request_duration_seconds_bucket{{worker=\"{}\",le=\"{}\"}} {cumulative}",
                    worker.id,
                    *bound as f64 / 1e6
                );
            }
            let id = worker.id;
            // Read at other moments than the buckets: never below them.
            let total = counters.answered.max(cumulative);
            let _ = writeln!(
                out,
                "rwsgi_request_duration_seconds_bucket{{worker=\"{id}\",le=\"+Inf\"}} {total}"
            );
            let seconds = counters.micros as f64 / 1e6;
            let _ =
                writeln!(out, "rwsgi_request_duration_seconds_sum{{worker=\"{id}\"}} {seconds}");
            let _ =
                writeln!(out, "rwsgi_request_duration_seconds_count{{worker=\"{id}\"}} {total}");
        }
        per_worker(
            &mut out,
            "rwsgi_static_requests_total",
            "Requests a static file answered.",
            |c| c.static_requests,
        );
        per_worker(
            &mut out,
            "rwsgi_routed_requests_total",
            "Requests a route rule answered.",
            |c| c.routed_requests,
        );
        family(&mut out, "rwsgi_python_threads", "gauge", "Python threads, busy or idle.");
        for (worker, _) in &numbers {
            let threads = self.board.threads(worker.slot);
            let busy = threads.iter().filter(|(_, running)| *running).count();
            let _ = writeln!(
                out,
                "rwsgi_python_threads{{worker=\"{}\",state=\"busy\"}} {busy}",
                worker.id
            );
            let _ = writeln!(
                out,
                "rwsgi_python_threads{{worker=\"{}\",state=\"idle\"}} {}",
                worker.id,
                threads.len() - busy
            );
        }
        family(
            &mut out,
            "rwsgi_worker_resident_memory_bytes",
            "gauge",
            "Resident memory of each worker.",
        );
        for (worker, _) in &numbers {
            let (_, rss) = memory_of(worker.pid.as_raw());
            let _ = writeln!(
                out,
                "rwsgi_worker_resident_memory_bytes{{worker=\"{}\"}} {rss}",
                worker.id
            );
        }
        let mut ids: Vec<(&usize, &History)> = self.history.iter().collect();
        ids.sort_by_key(|(id, _)| **id);
        family(
            &mut out,
            "rwsgi_worker_respawns_total",
            "counter",
            "Workers forked again, by reason.",
        );
        for (id, history) in &ids {
            for (reason, count) in Respawn::ALL.iter().zip(history.respawns) {
                let _ = writeln!(
                    out,
                    "rwsgi_worker_respawns_total{{worker=\"{id}\",reason=\"{}\"}} {count}",
                    reason.label()
                );
            }
        }
        family(&mut out, "rwsgi_harakiri_total", "counter", "Workers killed by harakiri.");
        for (id, history) in &ids {
            let _ = writeln!(out, "rwsgi_harakiri_total{{worker=\"{id}\"}} {}", history.harakiris);
        }
        family(
            &mut out,
            "rwsgi_listen_queue",
            "gauge",
            "Connections waiting in each listening socket's accept queue.",
        );
        for listener in &self.start.listeners {
            let queue = accept_queue(listener.as_fd()).map_or(0, |(queue, _)| queue);
            let name = label(&socket_name(listener));
            let _ = writeln!(out, "rwsgi_listen_queue{{socket=\"{name}\"}} {queue}");
        }
        family(
            &mut out,
            "rwsgi_listen_queue_full_total",
            "counter",
            "Master checks (one a second) that found a socket's accept queue full.",
        );
        for (listener, watch) in self.start.listeners.iter().zip(&self.queues) {
            let name = label(&socket_name(listener));
            let _ = writeln!(
                out,
                "rwsgi_listen_queue_full_total{{socket=\"{name}\"}} {}",
                watch.full_ticks
            );
        }
        if let Some(overflows) = tcp_listen_overflows() {
            family(
                &mut out,
                "rwsgi_tcp_listen_overflows_total",
                "counter",
                "TCP connections the kernel dropped at a full listen queue (the network namespace's count, every listener's).",
            );
            let _ = writeln!(out, "rwsgi_tcp_listen_overflows_total {overflows}");
        }
        family(
            &mut out,
            "rwsgi_start_time_seconds",
            "gauge",
            "When the master started, since the epoch.",
        );
        let _ = writeln!(out, "rwsgi_start_time_seconds {}", unix_secs(self.started_at));
        out
    }
}
