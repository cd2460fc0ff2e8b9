//! Command-line options, spelled as uWSGI spells them.

use clap::{ArgAction, Parser};
use rwsgi_master::MasterOptions;
use rwsgi_proto::Limits;
use rwsgi_python::{AppSpec, PoolSettings};
use rwsgi_server::{BindAddr, ManagementValues, Protocol, ServerConfig, SocketSpec};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// A fast, strict WSGI server: a drop-in successor to uWSGI.
#[derive(Debug, Parser)]
#[command(name = "rwsgi", version, about, max_term_width = 100)]
pub struct Args {
    /// Serve HTTP/1.1 on ADDR (host:port, :port, [::1]:port or a unix socket path); repeatable.
    #[arg(long = "http-socket", visible_alias = "http", value_name = "ADDR")]
    http_socket: Vec<String>,

    /// Serve the uwsgi protocol (nginx uwsgi_pass) on ADDR; repeatable.
    #[arg(long = "socket", short = 's', value_name = "ADDR")]
    socket: Vec<String>,

    /// Same as --socket.
    #[arg(long = "uwsgi-socket", value_name = "ADDR")]
    uwsgi_socket: Vec<String>,

    /// Serve FastCGI (nginx fastcgi_pass) on ADDR; repeatable.
    #[arg(long = "fastcgi-socket", value_name = "ADDR")]
    fastcgi_socket: Vec<String>,

    /// Also send what a request writes to wsgi.errors to the web server as FastCGI STDERR.
    #[arg(long = "fastcgi-stderr")]
    fastcgi_stderr: bool,

    /// Load the WSGI app from this Python file.
    #[arg(long = "wsgi-file", visible_alias = "file", value_name = "FILE")]
    wsgi_file: Option<PathBuf>,

    /// Load the WSGI app from this module: pkg.mod or pkg.mod:callable.
    #[arg(long, short = 'w', visible_alias = "wsgi", value_name = "MODULE")]
    module: Option<String>,

    /// Name of the WSGI callable in the file or module.
    #[arg(long, default_value = "application", value_name = "NAME")]
    callable: String,

    /// Change to this directory before loading the app.
    #[arg(long, value_name = "DIR")]
    chdir: Option<PathBuf>,

    /// Add a directory to sys.path; repeatable.
    #[arg(long, visible_aliases = ["python-path", "pp"], value_name = "DIR")]
    pythonpath: Vec<PathBuf>,

    /// Use this virtualenv (default: $VIRTUAL_ENV).
    #[arg(long, short = 'H', visible_aliases = ["virtualenv", "venv", "pyhome"], value_name = "DIR")]
    home: Option<PathBuf>,

    /// Set an environment variable before loading the app; repeatable.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,

    /// Python threads serving requests.
    #[arg(long, default_value_t = 1, value_name = "N")]
    threads: usize,

    /// Worker processes (more than one implies --master).
    #[arg(long, short = 'p', visible_alias = "workers", default_value_t = 1, value_name = "N")]
    processes: usize,

    /// Run a master process that forks, supervises and reloads the workers.
    #[arg(long, short = 'M')]
    master: bool,

    /// Import the app in each worker after the fork, not in the master before it.
    #[arg(long = "lazy-apps")]
    lazy_apps: bool,

    /// Kill (and replace) a worker whose request runs longer than SECONDS; 0 = off.
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    harakiri: u64,

    /// Log the Python stacks before a harakiri (accepted: it is always so).
    #[arg(long = "harakiri-verbose")]
    harakiri_verbose: bool,

    /// Recycle a worker after N requests; 0 = never.
    #[arg(long = "max-requests", short = 'R', default_value_t = 0, value_name = "N")]
    max_requests: u64,

    /// Worker K recycles after max-requests + K * N requests.
    #[arg(long = "max-requests-delta", default_value_t = 0, value_name = "N")]
    max_requests_delta: u64,

    /// Add a random 0..=N to each worker's max-requests.
    #[arg(long = "max-requests-jitter", default_value_t = 0, value_name = "N")]
    max_requests_jitter: u64,

    /// Recycle a worker whose resident memory exceeds MIB after a request; 0 = never.
    #[arg(long = "reload-on-rss", default_value_t = 0, value_name = "MIB")]
    reload_on_rss: u64,

    /// Recycle a worker after SECONDS; 0 = never.
    #[arg(long = "max-worker-lifetime", default_value_t = 0, value_name = "SECONDS")]
    max_worker_lifetime: u64,

    /// Write the master's pid to FILE (before dropping privileges).
    #[arg(long, value_name = "FILE")]
    pidfile: Option<PathBuf>,

    /// Run as this user (name or number) once the sockets are bound.
    #[arg(long, value_name = "USER")]
    uid: Option<String>,

    /// Run as this group (name or number) once the sockets are bound.
    #[arg(long, value_name = "GROUP")]
    gid: Option<String>,

    /// Exit with status 1 if the app cannot be loaded (always so; false is refused).
    #[arg(long = "need-app", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    need_app: Option<bool>,

    /// Put PREFIX before the process titles (rwsgi master, rwsgi worker N).
    #[arg(long = "procname-prefix", value_name = "PREFIX")]
    procname_prefix: Option<String>,

    /// Like --procname-prefix, followed by a space.
    #[arg(long = "procname-prefix-spaced", value_name = "PREFIX")]
    procname_prefix_spaced: Option<String>,

    /// Reload gracefully when FILE is touched; repeatable.
    #[arg(long = "touch-reload", value_name = "FILE")]
    touch_reload: Vec<PathBuf>,

    /// Chain-reload (one worker at a time) when FILE is touched; repeatable.
    #[arg(long = "touch-chain-reload", value_name = "FILE")]
    touch_chain_reload: Vec<PathBuf>,

    /// Exit on SIGTERM (accepted: it is always so).
    #[arg(long = "die-on-term")]
    die_on_term: bool,

    /// Remove unix socket files on exit.
    #[arg(long)]
    vacuum: bool,

    /// Permissions of unix sockets, octal (bare flag: 666).
    #[arg(long = "chmod-socket", value_name = "MODE", num_args = 0..=1, default_missing_value = "666")]
    chmod_socket: Option<String>,

    /// Largest request head in bytes.
    #[arg(long = "buffer-size", short = 'b', default_value_t = 65535, value_name = "BYTES")]
    buffer_size: usize,

    /// Largest request body in bytes; 0 = unlimited.
    #[arg(long = "limit-post", default_value_t = 0, value_name = "BYTES")]
    limit_post: u64,

    /// Bodies up to this size are read before the app is called.
    #[arg(long = "post-buffering", default_value_t = 1 << 20, value_name = "BYTES")]
    post_buffering: u64,

    /// Deadline in seconds for reading a request head, each body read and each write.
    #[arg(long = "socket-timeout", default_value_t = 30, value_name = "SECONDS")]
    socket_timeout: u64,

    /// Seconds an idle keep-alive connection is kept; 0 disables keep-alive.
    #[arg(long = "http-keepalive-timeout", default_value_t = 75, value_name = "SECONDS")]
    keepalive_timeout: u64,

    /// Listen queue size.
    #[arg(long, short = 'l', default_value_t = 1024, value_name = "N")]
    listen: u32,

    /// Seconds a graceful shutdown or reload waits for requests in flight.
    #[arg(long = "reload-mercy", default_value_t = 30, value_name = "SECONDS")]
    reload_mercy: u64,

    /// Seconds a recycled or chain-reloaded worker may finish its requests.
    #[arg(long = "worker-reload-mercy", default_value_t = 30, value_name = "SECONDS")]
    worker_reload_mercy: u64,

    /// Do not log each request.
    #[arg(long = "disable-logging", action = ArgAction::SetTrue)]
    disable_logging: bool,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

impl Args {
    /// Splits the options into the core's, the app's, the pool's and the
    /// process model's.
    pub fn into_configs(
        self,
    ) -> Result<(ServerConfig, AppSpec, PoolSettings, MasterOptions), String> {
        let master = self.master_options()?;
        let declared = [
            ("http-socket", Protocol::Http, &self.http_socket),
            ("socket", Protocol::Uwsgi, &self.socket),
            ("uwsgi-socket", Protocol::Uwsgi, &self.uwsgi_socket),
            ("fastcgi-socket", Protocol::FastCgi, &self.fastcgi_socket),
        ];
        let sockets = declared
            .into_iter()
            .flat_map(|(option, protocol, addrs)| addrs.iter().map(move |a| (option, protocol, a)))
            .map(|(option, protocol, addr)| {
                addr.parse::<BindAddr>()
                    .map(|addr| SocketSpec { addr, protocol })
                    .map_err(|reason| format!("{option} {addr:?}: {reason}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let chmod_socket = self
            .chmod_socket
            .map(|mode| {
                u32::from_str_radix(&mode, 8).ok().filter(|m| *m <= 0o7777).ok_or_else(|| {
                    format!("chmod-socket {mode:?}: want octal permissions such as 660")
                })
            })
            .transpose()?;
        if self.buffer_size < 1024 {
            return Err(format!("buffer-size {}: at least 1024 bytes", self.buffer_size));
        }
        let server = ServerConfig {
            sockets,
            limits: Limits {
                max_head: self.buffer_size,
                max_headers: Limits::default().max_headers,
                max_body: (self.limit_post > 0).then_some(self.limit_post),
            },
            socket_timeout: Duration::from_secs(self.socket_timeout.max(1)),
            keepalive_timeout: Duration::from_secs(self.keepalive_timeout),
            post_buffering: self.post_buffering,
            chmod_socket,
            vacuum: self.vacuum,
            listen_backlog: self.listen,
            log_requests: !self.disable_logging,
            shutdown_timeout: master.reload_mercy,
            fastcgi: fastcgi_values(self.threads),
        };
        let app = AppSpec {
            wsgi_file: self.wsgi_file,
            module: self.module,
            callable: self.callable,
            chdir: self.chdir,
            pythonpath: self.pythonpath,
            home: self.home,
            env: self.env,
        };
        let pool = PoolSettings {
            threads: self.threads.max(1),
            multiprocess: false,
            errors_to_peer: self.fastcgi_stderr,
            observer: None,
        };
        Ok((server, app, pool, master))
    }

    /// The process options, uWSGI's spelling to `MasterOptions` (0 = off).
    fn master_options(&self) -> Result<MasterOptions, String> {
        if self.need_app == Some(false) {
            return Err("need-app = false: rwsgi always exits when the app cannot be loaded".into());
        }
        if self.processes == 0 {
            return Err("processes 0: at least 1".into());
        }
        let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
        let procname_prefix = match (&self.procname_prefix, &self.procname_prefix_spaced) {
            (_, Some(spaced)) => format!("{spaced} "),
            (Some(prefix), None) => prefix.clone(),
            (None, None) => String::new(),
        };
        Ok(MasterOptions {
            master: self.master,
            processes: self.processes,
            lazy_apps: self.lazy_apps,
            harakiri: seconds(self.harakiri),
            max_requests: (self.max_requests > 0).then_some(self.max_requests),
            max_requests_delta: self.max_requests_delta,
            max_requests_jitter: self.max_requests_jitter,
            reload_on_rss: (self.reload_on_rss > 0).then_some(self.reload_on_rss),
            max_worker_lifetime: seconds(self.max_worker_lifetime),
            reload_mercy: Duration::from_secs(self.reload_mercy),
            worker_reload_mercy: Duration::from_secs(self.worker_reload_mercy),
            pidfile: self.pidfile.clone(),
            uid: self.uid.clone(),
            gid: self.gid.clone(),
            procname_prefix,
            touch_reload: self.touch_reload.clone(),
            touch_chain_reload: self.touch_chain_reload.clone(),
        })
    }
}

/// What FastCGI `GET_VALUES` answers, true for this configuration: the
/// Python threads serve `threads` requests at once, and a worker holds
/// [`rwsgi_python::QUEUED_PER_THREAD`] more per thread waiting for one;
/// connections beyond that wait to be read.
fn fastcgi_values(threads: usize) -> ManagementValues {
    let reqs = threads.max(1);
    let conns = reqs.saturating_mul(rwsgi_python::QUEUED_PER_THREAD + 1);
    let to_u32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    ManagementValues { max_conns: to_u32(conns), max_reqs: to_u32(reqs) }
}

/// `--help` and `--version` print and succeed; anything else is one line
/// on stderr and exit status 1.
pub fn report_parse_error(err: clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ErrorKind};
    match err.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = err.print();
            ExitCode::SUCCESS
        }
        ErrorKind::UnknownArgument => {
            let arg = err.get(ContextKind::InvalidArg).map(|a| a.to_string()).unwrap_or_default();
            eprintln!("rwsgi: unknown option {arg} (see rwsgi --help)");
            ExitCode::FAILURE
        }
        _ => {
            let text = err.kind().as_str().unwrap_or("invalid command line");
            let detail = err.render().to_string();
            let line = detail.lines().next().unwrap_or(text).trim_start_matches("error: ");
            eprintln!("rwsgi: {line}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr, as uWSGI's do; `RUST_LOG` refines the level.
pub fn init_logging(_args: &Args) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
