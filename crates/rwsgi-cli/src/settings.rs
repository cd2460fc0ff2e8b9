//! The one place a [`Config`] becomes what the core, the bridge and the
//! pool take. Errors name the option and where its value came from.

use rwsgi_config::{Config, Loaded};
use rwsgi_log::AccessLog;
use rwsgi_log::syslog::Syslog;
use rwsgi_master::{Front, LogSettings, LogTo, MasterOptions, StatsSettings};
use rwsgi_proto::Limits;
use rwsgi_python::{AppSpec, PoolSettings};
use rwsgi_route::{RuleSpec, StaticSettings};
use rwsgi_server::{BindAddr, ManagementValues, Protocol, ServerConfig, SocketSpec};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// What the binary needs to serve, plus where each socket came from (for
/// bind errors).
#[derive(Debug)]
pub struct Settings {
    pub server: ServerConfig,
    pub app: AppSpec,
    pub pool: PoolSettings,
    pub master: MasterOptions,
    /// Routes, static files and response headers, in front of the app.
    pub front: Arc<Front>,
    /// The source of each of `server.sockets`, in the same order.
    pub socket_sources: Vec<String>,
}

/// The socket options: the protocol each speaks, and its addresses.
type SocketOption = (&'static str, fn(&Config) -> Protocol, fn(&Config) -> &[String]);
const SOCKET_OPTIONS: [SocketOption; 4] = [
    ("http-socket", |_| Protocol::Http, |c| &c.http_socket),
    ("socket", |c| socket_protocol(&c.protocol), |c| &c.socket),
    ("uwsgi-socket", |_| Protocol::Uwsgi, |c| &c.uwsgi_socket),
    ("fastcgi-socket", |_| Protocol::FastCgi, |c| &c.fastcgi_socket),
];

/// What `socket` entries speak: `protocol` (checked when read).
fn socket_protocol(protocol: &str) -> Protocol {
    match protocol {
        "http" | "http11" => Protocol::Http,
        "fastcgi" => Protocol::FastCgi,
        _ => Protocol::Uwsgi,
    }
}

impl Settings {
    /// Validates the addresses and splits the config into the core's, the
    /// app's and the pool's. Every bad address is reported, one per line.
    pub fn new(loaded: &Loaded) -> Result<Settings, String> {
        let config = &loaded.config;
        let mut sockets = Vec::new();
        let mut socket_sources = Vec::new();
        let mut errors = Vec::new();
        for (option, protocol, addresses) in SOCKET_OPTIONS {
            for (addr, at) in addresses(config).iter().zip(loaded.sources(option)) {
                match addr.parse::<BindAddr>() {
                    Ok(parsed) => {
                        let addr = match parsed {
                            // `abstract-socket`: every unix socket is abstract.
                            BindAddr::Unix(path) if config.abstract_socket => {
                                BindAddr::Abstract(path.to_string_lossy().into_owned())
                            }
                            other => other,
                        };
                        sockets.push(SocketSpec { addr, protocol: protocol(config) });
                        socket_sources.push(at);
                    }
                    Err(reason) => errors.push(format!("{at}: {option} {addr:?}: {reason}")),
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors.join("\n"));
        }
        let server = ServerConfig {
            sockets,
            limits: Limits {
                max_head: config.buffer_size,
                max_headers: Limits::default().max_headers,
                max_body: (config.limit_post > 0).then_some(config.limit_post),
            },
            socket_timeout: Duration::from_secs(config.socket_timeout.max(1)),
            keepalive_timeout: Duration::from_secs(config.http_keepalive_timeout),
            post_buffering: config.post_buffering,
            spool_limit: config.post_buffering_disk,
            chmod_socket: config.chmod_socket_mode(),
            // Resolved (names to numbers) by the master, before binding.
            chown_socket: None,
            vacuum: config.vacuum,
            listen_backlog: config.listen,
            access_log: access_log(config)?,
            // Each forked worker sets its own.
            worker_id: 0,
            on_answered: None,
            shutdown_timeout: Duration::from_secs(config.reload_mercy),
            fastcgi: fastcgi_values(config.threads),
            // Sibling workers share the sockets: a busy one leaves new
            // connections to the others.
            accept_limit: (config.process.processes > 1).then_some(config.threads.max(1)),
            // The process model says (a lone process, or a master's worker).
            no_master: false,
            max_connections: (config.worker_connections > 0)
                .then(|| usize::try_from(config.worker_connections).unwrap_or(usize::MAX)),
        };
        let app = AppSpec {
            wsgi_file: config.wsgi_file.clone(),
            module: config.module.clone(),
            callable: config.callable.clone(),
            pythonpath: config.pythonpath.clone(),
            home: config.home.clone(),
            env: config.env_pairs(),
            argv: config.pyargv_list(),
            imports: config.import.clone(),
            mounts: mounts(loaded)?,
            no_default_app: loaded.config.site.no_default_app,
        };
        let pool = PoolSettings {
            threads: config.threads.max(1),
            multiprocess: false,
            errors_to_peer: config.fastcgi_stderr,
            observer: None,
        };
        if config.process.master_fifo.len() > 1 {
            return Err(format!(
                "{}: master-fifo: rwsgi reads one FIFO (uWSGI's numbered FIFO slots are not supported)",
                loaded.sources("master-fifo").last().cloned().unwrap_or_default()
            ));
        }
        let loggers = loggers(loaded)?;
        let master = master_options(config, &loggers);
        let front = Front::new(&front_settings(loaded)).map_err(|errors| {
            errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
        })?;
        Ok(Settings { server, app, pool, master, front: Arc::new(front), socket_sources })
    }

    /// `--check-config`: what can be known without binding or starting
    /// Python: a socket and an app are given, and the app's files exist.
    pub fn check(&self, loaded: &Loaded) -> Result<(), String> {
        if self.server.sockets.is_empty() {
            return Err(rwsgi_server::ServerError::NoSockets.to_string());
        }
        let app = &self.app;
        let base = match &self.master.chdir {
            Some(dir) if !dir.is_dir() => {
                return Err(format!(
                    "{}: chdir {}: not a directory",
                    loaded.source("chdir"),
                    dir.display()
                ));
            }
            Some(dir) => dir.as_path(),
            None => Path::new("."),
        };
        match (&app.wsgi_file, &app.module) {
            (None, None) if app.mounts.is_empty() => {
                Err(rwsgi_python::BridgeError::NoApp.to_string())
            }
            (Some(file), _) if !base.join(file).is_file() => Err(format!(
                "{}: wsgi-file {}: no such file",
                loaded.source("wsgi-file"),
                file.display()
            )),
            _ => match &app.home {
                Some(home) if !home.is_dir() => Err(format!(
                    "{}: home {}: not a directory",
                    loaded.source("home"),
                    home.display()
                )),
                _ => Ok(()),
            },
        }
    }

    /// A bind error, with the source of the socket that failed.
    pub fn describe_bind_error(&self, err: &rwsgi_server::ServerError) -> String {
        let at = match err {
            rwsgi_server::ServerError::Bind { addr, .. } => self
                .server
                .sockets
                .iter()
                .zip(&self.socket_sources)
                .find(|(spec, _)| spec.addr.to_string() == *addr)
                .map(|(_, at)| format!("{at}: ")),
            _ => None,
        };
        format!("{}{err}", at.unwrap_or_default())
    }
}

/// Where `logger` and `req-logger` send (`stdio`: nowhere of their own).
#[derive(Debug, Default)]
struct Loggers {
    general: Option<LogTo>,
    requests: Option<LogTo>,
}

fn loggers(loaded: &Loaded) -> Result<Loggers, String> {
    let process = &loaded.config.process;
    let hostname = rwsgi_log::syslog::hostname();
    let logger = |option: &str, values: &[String]| -> Result<Option<LogTo>, String> {
        let at = loaded.sources(option).last().cloned().unwrap_or_default();
        let [value] = values else {
            return if values.is_empty() {
                Ok(None)
            } else {
                Err(format!(
                    "{at}: {option}: rwsgi takes one (named loggers for log-route are not supported)"
                ))
            };
        };
        let spec = value.trim();
        if spec == "stdio" {
            return Ok(None);
        }
        if let Some(syslog) = Syslog::from_spec(spec, &hostname) {
            return syslog
                .map(|s| Some(LogTo::Syslog(s)))
                .map_err(|e| format!("{at}: {option} = {spec}: {e}"));
        }
        match spec.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(Some(LogTo::File(path.into()))),
            _ => Err(format!(
                "{at}: {option} = {spec}: rwsgi logs to file:PATH, syslog[:IDENT[,FACILITY]], \
                 rsyslog:ADDR[,PREFIX[,PRIORITY]] or stdio (under systemd, stderr reaches the \
                 journal)"
            )),
        }
    };
    let general = logger("logger", &process.logger)?;
    if general.is_some() && (process.logto.is_some() || process.logto2.is_some()) {
        return Err(format!(
            "{}: logger and logto both say where the log goes: keep one",
            loaded.sources("logger").last().cloned().unwrap_or_default()
        ));
    }
    if matches!(general, Some(LogTo::File(_))) && process.daemonize.is_some() {
        return Err(format!(
            "{}: logger = file: and daemonize both name the log file: keep one",
            loaded.sources("logger").last().cloned().unwrap_or_default()
        ));
    }
    Ok(Loggers { general, requests: logger("req-logger", &process.req_logger)? })
}

/// The request log, unless nothing would ever be logged.
fn access_log(config: &Config) -> Result<Option<Arc<AccessLog>>, String> {
    let log = &config.request_log;
    let date = log
        .log_date
        .clone()
        .filter(|d| !["true", "1", "on", "yes"].iter().any(|word| d.eq_ignore_ascii_case(word)));
    let settings = rwsgi_log::Settings {
        disabled: config.disable_logging,
        format: log.log_format.clone(),
        json: log.log_format_json,
        format_strftime: log.log_format_strftime,
        date,
        micros: log.log_micros,
        x_forwarded_for: log.log_x_forwarded_for,
        log_4xx: log.log_4xx,
        log_5xx: log.log_5xx,
        slow: (log.log_slow > 0).then(|| Duration::from_millis(log.log_slow)),
        big: (log.log_big > 0).then_some(log.log_big),
        zero: log.log_zero,
        sendfile: log.log_sendfile,
        ioerror: log.log_ioerror,
    };
    let log = AccessLog::new(settings).map_err(|err| err.to_string())?;
    Ok(log.logs_anything().then(|| Arc::new(log)))
}

/// `mount = /PREFIX=APP` pairs.
fn mounts(loaded: &Loaded) -> Result<Vec<(String, String)>, String> {
    let site = &loaded.config.site;
    site.mount
        .iter()
        .zip(loaded.sources("mount"))
        .map(|(value, at)| match value.split_once('=') {
            Some((prefix, app)) if !app.trim().is_empty() => {
                Ok((prefix.trim().to_string(), app.trim().to_string()))
            }
            _ => Err(format!(
                "{at}: mount = {value}: want /PREFIX=APP (a .py file or module[:callable])"
            )),
        })
        .collect()
}

/// What goes in front of the app: the route rules (in the order given,
/// across their option names), static files and response headers.
fn front_settings(loaded: &Loaded) -> rwsgi_route::Settings {
    let site = &loaded.config.site;
    let routes = loaded
        .routes
        .iter()
        .map(|setting| RuleSpec {
            option: setting.option.to_string(),
            value: setting.value.clone(),
            at: setting.at.to_string(),
        })
        .collect();
    let statics = StaticSettings {
        maps: site.static_map.clone(),
        maps2: site.static_map2.clone(),
        check: site.check_static.clone(),
        index: site.static_index.clone(),
        skip_ext: site.static_skip_ext.clone(),
        safe: site.static_safe.clone(),
        expires_type: site.static_expires_type.clone(),
        expires_type_mtime: site.static_expires_type_mtime.clone(),
        expires_file: site.static_expires.clone(),
        expires_file_mtime: site.static_expires_mtime.clone(),
        expires_uri: site.static_expires_uri.clone(),
        expires_uri_mtime: site.static_expires_uri_mtime.clone(),
        expires_path_info: site.static_expires_path_info.clone(),
        expires_path_info_mtime: site.static_expires_path_info_mtime.clone(),
        gzip: site.static_gzip.clone(),
        gzip_all: site.static_gzip_all,
        gzip_dirs: site.static_gzip_dir.clone(),
        gzip_exts: site.static_gzip_ext.clone(),
        mime_files: site.mimefile.clone(),
    };
    rwsgi_route::Settings {
        routes,
        add_headers: site.add_header.clone(),
        del_headers: site.del_header.clone(),
        statics,
        mounts: site
            .mount
            .iter()
            .filter_map(|value| value.split_once('=').map(|(prefix, _)| prefix.trim().to_string()))
            .collect(),
        manage_script_name: site.manage_script_name,
    }
}

/// The process options, uWSGI's spelling to `MasterOptions` (0 = off).
fn master_options(config: &Config, loggers: &Loggers) -> MasterOptions {
    let process = &config.process;
    let seconds = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let procname_prefix = match (&process.procname_prefix, &process.procname_prefix_spaced) {
        (_, Some(spaced)) => format!("{spaced} "),
        (Some(prefix), None) => prefix.clone(),
        (None, None) => String::new(),
    };
    MasterOptions {
        master: process.master,
        processes: usize::try_from(process.processes).unwrap_or(usize::MAX).max(1),
        lazy_apps: process.lazy_apps,
        harakiri: seconds(process.harakiri),
        max_requests: (process.max_requests > 0).then_some(process.max_requests),
        max_requests_delta: process.max_requests_delta,
        max_requests_jitter: process.max_requests_jitter,
        reload_on_rss: (process.reload_on_rss > 0).then_some(process.reload_on_rss),
        max_worker_lifetime: seconds(process.max_worker_lifetime),
        reload_mercy: Duration::from_secs(config.reload_mercy),
        worker_reload_mercy: Duration::from_secs(process.worker_reload_mercy),
        pidfiles: [&process.pidfile, &process.safe_pidfile]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        pidfiles_after_drop: [&process.pidfile2, &process.safe_pidfile2]
            .into_iter()
            .flatten()
            .cloned()
            .collect(),
        umask: config.umask_mode(),
        max_fd: (config.max_fd > 0).then_some(config.max_fd),
        chdir: config.chdir.clone(),
        chown_socket: config.chown_socket.clone(),
        uid: process.uid.clone(),
        gid: process.gid.clone(),
        procname_prefix,
        touch_reload: process.touch_reload.clone(),
        touch_chain_reload: process.touch_chain_reload.clone(),
        log: LogSettings {
            // Relative to where rwsgi starts, as in uWSGI, whatever chdir does later.
            // A syslog logger takes every line: `daemonize` then only detaches.
            path: match &loggers.general {
                Some(LogTo::Syslog(_)) => None,
                Some(LogTo::File(path)) => Some(path.clone()),
                None => {
                    process.daemonize.clone().or(process.logto.clone()).or(process.logto2.clone())
                }
            }
            .map(|path| std::path::absolute(&path).unwrap_or(path)),
            syslog: match &loggers.general {
                Some(LogTo::Syslog(syslog)) => Some(syslog.clone()),
                _ => None,
            },
            requests: loggers.requests.clone().map(|to| match to {
                LogTo::File(path) => LogTo::File(std::path::absolute(&path).unwrap_or(path)),
                syslog => syslog,
            }),
            after_drop: process.daemonize.is_none()
                && process.logto.is_none()
                && process.logto2.is_some(),
            maxsize: (process.log_maxsize > 0).then_some(process.log_maxsize),
            backup: process.log_backupname.clone(),
        },
        daemonize: process.daemonize.is_some(),
        touch_logreopen: process.touch_logreopen.clone(),
        touch_logrotate: process.touch_logrotate.clone(),
        master_fifo: process
            .master_fifo
            .first()
            .map(|path| std::path::absolute(path).unwrap_or_else(|_| path.clone())),
        stats: StatsSettings {
            addr: process.stats.clone(),
            http: process.stats_http,
            minified: process.stats_minified,
            vars_unredacted: process.stats_vars_unredacted,
        },
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
