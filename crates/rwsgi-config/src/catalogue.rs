//! Every option uWSGI 2.0 knows (its core and all its plugins, read from
//! its source: `uwsgi/options-2.0.tsv`), and what rwsgi does with each one
//! it does not implement itself: always does it anyway, keeps it for a
//! later release, ignores it, or refuses to start. A uWSGI config file
//! therefore never meets an "unknown option" here; only typos do.
//!
//! The file is data, read once; the reasons below are the sentences users
//! see, one per group of options.

use crate::options::{Kind, Status, Takes};
use std::sync::LazyLock;

/// One of uWSGI's options, as its source defines it.
#[derive(Debug, Clone)]
pub(crate) struct UwsgiOption {
    pub name: &'static str,
    pub takes: Takes,
    pub short: Option<char>,
    pub kind: Kind,
    /// `core`, or the plugin that defines it.
    pub origin: &'static str,
    pub disposition: Disposition,
}

/// What rwsgi does with a uWSGI option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Disposition {
    /// `options::OPTIONS` defines it (implemented, or an alias).
    Rwsgi,
    /// Anything else, with the reason users are told.
    Other(Status, &'static str),
}

static TABLE: &str = include_str!("../uwsgi/options-2.0.tsv");

/// The catalogue, parsed once. The file ships with the crate and a test
/// parses it whole, so a malformed row is a build-time failure.
pub(crate) static CATALOGUE: LazyLock<Vec<UwsgiOption>> = LazyLock::new(|| {
    TABLE
        .lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .map(|line| {
            parse_row(line).unwrap_or_else(|err| panic!("options-2.0.tsv: {line:?}: {err}"))
        })
        .collect()
});

fn parse_row(line: &'static str) -> Result<UwsgiOption, String> {
    let fields: Vec<&'static str> = line.split('\t').collect();
    let [name, takes, short, kind, origin, disposition] = fields[..] else {
        return Err("want 6 tab-separated fields".into());
    };
    let takes = match takes {
        "none" => Takes::Nothing,
        "required" => Takes::Value,
        "optional" => Takes::MaybeValue,
        other => return Err(format!("value {other:?}")),
    };
    let kind = match kind {
        "flag" => Kind::Flag,
        "number" => Kind::Number,
        "list" => Kind::List,
        "text" => Kind::Text,
        "logic" => Kind::Directive,
        other => return Err(format!("kind {other:?}")),
    };
    let disposition = match disposition.split_once(' ') {
        None if disposition == "rwsgi" => Disposition::Rwsgi,
        Some((status, reason_id)) => {
            let status = match status {
                "always" => Status::Always,
                "pending" => Status::Pending,
                "ignored" => Status::Ignored,
                "refused" => Status::Refused,
                other => return Err(format!("status {other:?}")),
            };
            Disposition::Other(status, reason(reason_id).ok_or(format!("reason {reason_id:?}"))?)
        }
        None => return Err(format!("disposition {disposition:?}")),
    };
    Ok(UwsgiOption { name, takes, short: short.chars().next(), kind, origin, disposition })
}

/// The sentence for a reason id.
fn reason(id: &str) -> Option<&'static str> {
    REASONS.iter().find(|(reason, _)| *reason == id).map(|(_, text)| *text)
}

/// Why rwsgi treats a group of uWSGI options as it does: for options it
/// always honours, what it always does; for pending ones, what happens
/// until they are implemented; for ignored ones, what happens instead; for
/// refused ones, what to use instead.
const REASONS: &[(&str, &str)] = &[
    // Always so.
    ("accept-lock", "the kernel wakes one worker per connection; no accept lock is needed"),
    ("cloexec", "every socket is close-on-exec, so processes the app starts inherit none"),
    ("die-on-term", "SIGTERM always stops rwsgi gracefully"),
    ("harakiri-verbose", "a harakiri always logs the request and the Python stacks"),
    ("log-reopen", "a reloaded master always opens its log file again"),
    ("honour-range", "a byte range of a static file is always honoured (206, or 416)"),
    ("http-chunked", "chunked request and response bodies are always handled"),
    ("http-expect", "Expect: 100-continue is always answered"),
    ("http-keepalive", "HTTP/1.1 keep-alive is always on (see http-keepalive-timeout)"),
    ("log-master", "every process writes its own lines to the same place"),
    ("need-app", "rwsgi always exits 1 when the app cannot be loaded"),
    ("no-orphans", "workers always exit when their master dies"),
    ("nodelay", "TCP_NODELAY is always set on TCP connections"),
    ("one-interpreter", "there is always one Python interpreter per process"),
    ("osafterfork", "a new worker always runs Python's after-fork handlers"),
    ("procname", "process titles are always set (rwsgi master, rwsgi worker N)"),
    ("reaper", "the master always reaps its children"),
    ("sigpipe", "SIGPIPE never kills rwsgi"),
    ("threaded-logger", "log lines are always written without blocking requests"),
    ("threads-on", "Python threads are always enabled"),
    ("write-errors", "a client that goes away is never an app error"),
    // Pending: parsed and kept, not yet in effect.
    ("attach-daemon", "the daemon is NOT started: run it as its own service"),
    ("cache", "NO cache is created"),
    ("cheaper", "the number of workers stays fixed at processes"),
    ("cron", "the command is NOT run on schedule"),
    ("error-pages", "error responses keep rwsgi's own body"),
    ("headers", "response headers are NOT collected or pulled (add-header and del-header work)"),
    ("hooks", "the hook is NOT run"),
    ("logger", "every line goes to stderr or the logto file"),
    ("logging", "lines go to stderr or the logto file, request lines as log-format says"),
    ("memory-report", "no memory report is logged"),
    ("metrics", "NO metrics are collected"),
    ("mount", "every mount is served by every worker, with SCRIPT_NAME as the web server sends it"),
    (
        "static",
        "static files are served by rwsgi itself (see static-map), never through a header for the web server",
    ),
    (
        "stats",
        "the stats document has every core, and no metrics subsystem (see /metrics with stats-http)",
    ),
    // Ignored, with what happens instead.
    ("accept-buffer", "the app gets the body as rwsgi buffers it (see post-buffering)"),
    ("add-gid", "no supplementary group is added: use gid"),
    ("alarm", "NO alarm is raised"),
    ("atexit", "Python's atexit handlers run at exit"),
    ("autoreload", "code changes are NOT picked up: touch a touch-reload file or send SIGHUP"),
    ("backtrace", "no C backtrace is logged"),
    ("binary-path", "a reload re-executes rwsgi itself"),
    ("binsh", "commands run with /bin/sh"),
    ("body-read-warning", "no warning is logged for large bodies (see limit-post)"),
    ("catch-exceptions", "tracebacks are logged, never sent to the client"),
    ("cgi-mode", "responses are always framed by the protocol"),
    ("chdir2", "use chdir"),
    ("check-interval", "the master checks its workers every 100 ms"),
    ("chunked-input", "chunked bodies are limited by limit-post and socket-timeout"),
    ("clock", "rwsgi uses the monotonic clock"),
    ("drop-after", "privileges are dropped once the sockets are bound"),
    ("dump-options", "use rwsgi --help-options"),
    ("env-behaviour", "each request gets a fresh environ"),
    (
        "envdir",
        "the directory is NOT read into the environment: use env or systemd's EnvironmentFile=",
    ),
    ("evil-reload", "the master does not watch memory: use reload-on-rss"),
    ("exit-on-reload", "SIGHUP reloads"),
    ("fallback-config", "a failed start is not retried with another config"),
    ("fd-passing", "no file descriptors are passed"),
    ("file-wrapper", "wsgi.file_wrapper is always offered"),
    ("file-write", "the file is NOT written"),
    ("flock", "no lock file is taken: use systemd to run one instance"),
    ("force-cwd", "the working directory is the one rwsgi starts in (see chdir)"),
    ("force-gateway", "rwsgi has no gateways"),
    ("forkbomb", "respawns back off up to 5 s on their own"),
    ("freebind", "sockets bind only to addresses the host has"),
    ("fs-reload", "file changes are NOT watched: use touch-reload"),
    ("geoip", "no GeoIP variables are set"),
    ("gzip", "responses are NOT compressed: enable gzip in nginx"),
    ("harakiri-arh", "harakiri covers the request only"),
    ("harakiri-graceful", "a harakiri kills the worker at once (SIGKILL) and logs its stacks"),
    ("harakiri-queue", "harakiri does not look at the listen queue"),
    ("heartbeat", "rwsgi has no Emperor to send heartbeats to"),
    ("honour-stdin", "stdin is left as rwsgi was given it"),
    ("http-raw-body", "the body is read as HTTP/1.1 frames it"),
    ("http-router-tuning", "rwsgi serves HTTP itself, with no router process to tune"),
    ("initgroups", "supplementary groups follow uid"),
    ("ksm", "memory pages are NOT merged"),
    (
        "limits",
        "resource limits are NOT set: use systemd (LimitAS=, LimitNPROC=, LimitNOFILE=) or ulimit",
    ),
    ("locks", "rwsgi needs no user locks"),
    ("log-master-tuning", "every process writes its own lines"),
    ("loop-engine", "requests run on Python threads: set threads for concurrency"),
    ("map-socket", "every worker serves every socket"),
    ("master-as-root", "the master drops privileges too"),
    ("max-apps", "there is one app per process"),
    ("max-vars", "request heads are limited by buffer-size"),
    ("max-worker-lifetime-delta", "workers recycle at max-worker-lifetime"),
    ("metrics-push", "NO metrics are pushed"),
    ("min-worker-lifetime", "a worker may be recycled at any age"),
    ("modifiers", "uwsgi modifiers are not used: every request goes to the WSGI app"),
    ("mountpoint", "mount points are NOT checked"),
    ("never-swap", "memory may be swapped"),
    ("no-site", "Python imports site as usual"),
    ("notfound", "requests without an app get rwsgi's own answer"),
    ("notify-socket", "rwsgi notifies systemd through NOTIFY_SOCKET only"),
    (
        "offload",
        "static files and file_wrapper responses are sent with sendfile(2) by the I/O thread: no offload threads are needed",
    ),
    ("optimize", "Python's optimisation level is not changed: set PYTHONOPTIMIZE"),
    ("pcre-jit", "rwsgi uses its own regex engine"),
    ("plugins", "rwsgi has no plugins"),
    ("post-buffering-bufsize", "bodies are read in rwsgi's own chunk size"),
    ("prio", "the scheduling priority is NOT changed: use nice or systemd's Nice="),
    ("procname-custom", "process titles are rwsgi master and rwsgi worker N (see procname-prefix)"),
    ("profiler", "NO profiler runs"),
    ("cpu-affinity", "workers are NOT pinned to CPUs: use taskset or systemd's CPUAffinity="),
    ("propagate-touch", "touch-reload files are not propagated"),
    ("py-executable", "sys.executable is the python3 found on PATH"),
    ("py-programname", "Python's program name is rwsgi's"),
    ("pymodule-alias", "modules are NOT aliased"),
    ("reload-on-as", "the address space is NOT watched: use reload-on-rss"),
    ("reload-on-exception", "a worker is NOT recycled after an exception"),
    ("reload-on-fd", "file descriptors are NOT watched"),
    ("reload-os-env", "os.environ is read once at start"),
    ("response-headers-limit", "response heads are limited only by memory"),
    ("router-list", "rwsgi has no router plugins"),
    ("safe-fd", "rwsgi keeps no descriptors it was given"),
    ("sendfile", "files are always sent with sendfile(2)"),
    (
        "shared-import",
        "use import: modules are imported before the app, in each process that loads it",
    ),
    ("show-config", "use rwsgi --print-config"),
    ("static-cache-paths", "static paths are resolved on every request, as the kernel caches them"),
    ("skip-zero", "fd 0 is not checked"),
    ("snmp", "there is NO SNMP server"),
    ("sockopt", "sockets keep rwsgi's options (TCP_NODELAY on, default buffers)"),
    ("stacksize", "Python threads get the default stack size"),
    ("start-response-nodelay", "headers are sent with the first body bytes"),
    ("threads-wait", "shutdown waits for requests up to reload-mercy"),
    ("touch-exec", "NO command is run when the file is touched"),
    ("touch-workers-reload", "use touch-chain-reload"),
    ("tracebacker", "there is NO tracebacker socket: harakiri logs the stacks"),
    ("udp", "there is NO UDP server"),
    ("unenv", "the variable stays set"),
    ("upload-progress", "NO progress files are written"),
    ("use-abort", "crashes are not turned into abort()"),
    ("uwsgi-module", "rwsgi has no uwsgi Python module and no fork hooks to call"),
    ("uwsgi-signals", "rwsgi has no uwsgi signal framework (no uwsgi Python module)"),
    ("vhost", "one app serves every host"),
    ("wait-for", "rwsgi does not wait: order services with systemd (After=, Requires=)"),
    ("websockets", "WebSocket upgrades are not supported"),
    ("weight", "rwsgi does not subscribe to routers"),
    ("write-errors-tolerance", "a client that goes away only ends its own request"),
    ("wsgi-strict", "rwsgi is always strict about PEP 3333"),
    // Refused, with what to use instead.
    ("app-interface", "rwsgi loads WSGI apps only: use wsgi-file or module"),
    ("auth", "rwsgi does not authenticate requests: authenticate in nginx or the app"),
    ("binary-patch", "rwsgi does not patch its binary"),
    ("build", "rwsgi is not built from config options"),
    (
        "routes-phase",
        "rwsgi runs request routes only (route, route-if, route-run...): a final, error or response \
         route would be skipped; do it in nginx or the app",
    ),
    ("check-mode", "rwsgi has no check mode: use rwsgi --check-config"),
    ("config-source", "rwsgi reads ini, YAML, JSON and XML files and UWSGI_ variables only"),
    ("connect-and-read", "rwsgi reads its config from files, flags and the environment only"),
    ("dlopen", "rwsgi loads no shared libraries"),
    (
        "emperor",
        "rwsgi has no Emperor: run one rwsgi per app under systemd (see Deploying with systemd)",
    ),
    ("extract", "rwsgi does not extract archives"),
    (
        "http-router-routing",
        "rwsgi serves HTTP itself and routes nowhere: put nginx or HAProxy in front",
    ),
    ("immediate-uid", "rwsgi drops privileges once its sockets are bound: use uid and gid"),
    ("inject", "rwsgi does not inject config text: use include"),
    (
        "jail",
        "rwsgi does not jail, chroot or unshare itself: use systemd's sandboxing (RootDirectory=, ProtectSystem=, PrivateTmp=)",
    ),
    ("language", "rwsgi serves Python WSGI apps only"),
    ("legion", "rwsgi has no Legion clustering: run rwsgi on each host behind a load balancer"),
    ("mules", "rwsgi has no mules: run the script as its own service"),
    ("no-server", "rwsgi always serves"),
    (
        "paste",
        "rwsgi does not read PasteDeploy files: load the app in a wsgi.py (paste.deploy.loadapp) and use wsgi-file",
    ),
    ("pause", "rwsgi cannot be paused: stop it, or reload it with --reload"),
    (
        "protocol",
        "rwsgi speaks HTTP/1.1, uwsgi and FastCGI only: use http-socket, socket or fastcgi-socket",
    ),
    (
        "proxy-protocol",
        "rwsgi does not read the PROXY protocol: let nginx pass the client address (X-Forwarded-For, uwsgi_param or fastcgi_param REMOTE_ADDR)",
    ),
    ("pty", "rwsgi has no pseudo-terminals"),
    ("pyrun", "rwsgi serves WSGI apps; run scripts with python3"),
    ("router", "rwsgi has no uWSGI routers: put nginx or HAProxy in front"),
    (
        "shared-socket",
        "rwsgi binds each socket itself: use socket, http-socket or fastcgi-socket (or systemd socket activation)",
    ),
    ("shell", "rwsgi has no interactive shell"),
    ("spooler", "rwsgi has no spooler: use a task queue (Celery, RQ, ...)"),
    ("storage", "rwsgi mounts no storage"),
    ("subscription", "rwsgi does not subscribe to uWSGI routers: point nginx at rwsgi's sockets"),
    ("symbols", "rwsgi calls no C symbols"),
    (
        "tls",
        "rwsgi does not terminate TLS: put nginx in front and use http-socket, socket or fastcgi-socket behind it",
    ),
    (
        "uwsgi-api",
        "rwsgi has no uwsgi Python module, so no shared areas or queues: use an external store",
    ),
    ("webdav", "rwsgi is no WebDAV server"),
    ("worker-exec", "rwsgi workers run the WSGI app"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn every_row_parses_and_every_name_is_unique() {
        assert!(CATALOGUE.len() > 1200, "{}", CATALOGUE.len());
        let mut names = HashSet::new();
        for option in CATALOGUE.iter() {
            assert!(names.insert(option.name), "{} twice", option.name);
        }
    }

    #[test]
    fn every_reason_is_used_and_said_once() {
        let mut ids = HashSet::new();
        for (id, text) in REASONS {
            assert!(ids.insert(*id), "reason {id} twice");
            assert!(!text.ends_with('.'), "{id}: reasons are clauses, not sentences");
        }
        let used: HashSet<&str> = CATALOGUE
            .iter()
            .filter_map(|option| match option.disposition {
                Disposition::Other(_, text) => Some(text),
                Disposition::Rwsgi => None,
            })
            .collect();
        for (id, text) in REASONS {
            assert!(used.contains(text), "reason {id} is used by no option");
        }
    }
}
