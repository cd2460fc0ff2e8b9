//! Every option rwsgi knows. [`OPTIONS`] is rwsgi's own table: what it
//! implements, with types, defaults and checks. Every other name uWSGI 2.0
//! defines comes from [`crate::catalogue`] with what rwsgi does instead.
//! The two form one registry ([`all`], [`lookup`]) that drives the argv
//! parser, the file readers, the environment reader, `--help`,
//! `--help-options` and the option tables of the README and `docs/`.

use crate::catalogue::{CATALOGUE, Disposition};
use std::collections::HashMap;
use std::sync::LazyLock;

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A boolean as uWSGI reads one: anything but `false/off/no/0` is true,
    /// and a bare key or flag is true.
    Flag,
    /// A whole number, at least 0.
    Number,
    /// One text value; the last one given wins.
    Text,
    /// Repeatable: every value given is kept, in order.
    List,
    /// Part of the config language, acted on while reading: includes,
    /// logic blocks, placeholders, `print`.
    Directive,
    /// Only on the command line: what to do instead of serving.
    Action,
}

/// Whether an option takes a value, for the command line (`--x value`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takes {
    /// `--flag` alone (or `--flag=value`).
    Nothing,
    /// `--option value`.
    Value,
    /// `--option` alone, or `--option value` when the next argument is
    /// not a flag.
    MaybeValue,
}

/// What rwsgi does with an option.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Takes effect.
    Implemented,
    /// rwsgi always behaves as the option asks: accepted silently, with a
    /// warning only when the value asks for something else.
    Always,
    /// Kept in the config for a later release; a warning says what
    /// happens meanwhile.
    Pending,
    /// Accepted, with a warning saying what happens instead.
    Ignored,
    /// rwsgi will not start: ignoring it would serve something else than
    /// the config asks for (TLS, access rules, another language).
    Refused,
}

impl Status {
    pub fn label(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Always => "always so",
            Status::Pending => "not yet (warns)",
            Status::Ignored => "ignored (warns)",
            Status::Refused => "refused",
        }
    }
}

/// Validates one value beyond its kind; the error says what is wanted.
pub type Check = fn(&str) -> Result<(), String>;

/// For an [`Status::Always`] option: whether a value asks for what rwsgi
/// does anyway (no warning) or for something else (a warning).
pub type Honoured = fn(&str) -> bool;

/// One option: its names, the values it takes, and what it does.
#[derive(Debug, Clone)]
pub struct OptionSpec {
    /// The name in files, flags (`--name`) and the environment (`UWSGI_NAME`).
    pub name: &'static str,
    /// Other names for the same option.
    pub aliases: &'static [&'static str],
    /// A one-letter flag (`-s`).
    pub short: Option<char>,
    pub kind: Kind,
    pub takes: Takes,
    pub status: Status,
    /// What the value is, for help (`ADDR`, `N`); empty for flags.
    pub value_name: &'static str,
    /// The built-in default, as it would be written in a file; empty if none.
    pub default: &'static str,
    /// The value a bare key or a flag without a value stands for, for
    /// options that are not flags (`chmod-socket` alone means 666).
    pub bare: Option<&'static str>,
    /// One line of help; for options rwsgi does not implement, what
    /// happens instead.
    pub help: &'static str,
    /// Further validation of one value, beyond its kind.
    pub check: Option<Check>,
    /// See [`Honoured`].
    pub honoured: Option<Honoured>,
    /// Where uWSGI 2.0 defines it (`core` or a plugin); `""` for an option
    /// only rwsgi has.
    pub origin: &'static str,
}

impl OptionSpec {
    /// Whether a value of this option lands in [`crate::Config`].
    pub fn is_setting(&self) -> bool {
        self.status == Status::Implemented && !matches!(self.kind, Kind::Directive | Kind::Action)
    }

    /// Whether `name` is this option's name or one of its aliases.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }

    /// Every name of this option.
    pub fn names(&self) -> impl Iterator<Item = &'static str> + use<> {
        std::iter::once(self.name).chain(self.aliases.iter().copied())
    }
}

const fn opt(
    name: &'static str,
    kind: Kind,
    value_name: &'static str,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        aliases: &[],
        short: None,
        kind,
        takes: match kind {
            Kind::Flag | Kind::Action => Takes::Nothing,
            _ => Takes::Value,
        },
        status: Status::Implemented,
        value_name,
        // A flag that is not given is off.
        default: if matches!(kind, Kind::Flag) { "false" } else { "" },
        bare: None,
        help,
        check: None,
        honoured: None,
        origin: "",
    }
}

impl OptionSpec {
    const fn aliases(mut self, aliases: &'static [&'static str]) -> Self {
        self.aliases = aliases;
        self
    }

    const fn short(mut self, short: char) -> Self {
        self.short = Some(short);
        self
    }

    const fn default(mut self, default: &'static str) -> Self {
        self.default = default;
        self
    }

    /// A bare key (or a flag without a value) stands for `bare`.
    const fn bare(mut self, bare: &'static str) -> Self {
        self.bare = Some(bare);
        self.takes = Takes::MaybeValue;
        self
    }

    const fn takes(mut self, takes: Takes) -> Self {
        self.takes = takes;
        self
    }

    const fn check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }

    /// rwsgi always does what the option asks when `honoured` says so.
    const fn always(mut self, honoured: Honoured) -> Self {
        self.status = Status::Always;
        self.honoured = Some(honoured);
        self
    }
}

use Kind::{Action, Directive, Flag, List, Number, Text};

/// rwsgi's own options, in the order `--help` lists them.
pub static OPTIONS: &[OptionSpec] = &[
    // Config files.
    opt("ini", Directive, "FILE[:SECTION]", "read options from an ini file (section [uwsgi] unless named; :SECTION alone is another section of the current file)"),
    opt("yaml", Directive, "FILE[:SECTION]", "read options from the uwsgi: key (or SECTION) of a YAML file").aliases(&["yml"]).short('y'),
    opt("json", Directive, "FILE[:SECTION]", "read options from the \"uwsgi\" key (or SECTION) of a JSON file").aliases(&["js"]).short('j'),
    opt("xml", Directive, "FILE[:ID]", "read options from the <uwsgi> element (or the one with id=ID) of an XML file").aliases(&["xmlconfig"]).short('x'),
    opt("include", Directive, "FILE", "read another config file, its format by its extension (.ini, .yaml/.yml, .json/.js, .xml)").aliases(&["config"]),
    opt("inherit", Directive, "FILE", "the same as include"),
    // The config language (read while the files are read).
    opt("set", Directive, "KEY=VALUE", "set an option, or a custom placeholder %(KEY)").short('S'),
    opt("set-placeholder", Directive, "KEY=VALUE", "set a custom placeholder %(KEY) that is no option").aliases(&["set-ph"]),
    opt("declare-option", Directive, "NAME=OPT=VALUE[;OPT=VALUE]...", "declare a new option NAME that sets the options given, with $1, $2... its space-separated arguments").aliases(&["declare-option2"]),
    opt("resolve", Directive, "KEY=HOST", "set the placeholder %(KEY) to the first IPv4 address of HOST"),
    opt("print", Directive, "TEXT", "print TEXT on stdout when the config is read").aliases(&["iprint"]),
    opt("exit", Directive, "[CODE]", "stop reading and exit with CODE (default 1) once what was printed is out").bare("1"),
    opt("get", Directive, "KEY", "print the value of KEY (an option or placeholder) and exit 0; repeatable"),
    opt("strict", Flag, "", "an unknown key in a config file is an error, not a warning"),
    opt("mode", Text, "MODE", "read only the elements of an XML file whose mode attribute, if any, is MODE"),
    opt("for", Directive, "ITEMS", "repeat each line up to endfor once per space-separated item, as %(_)"),
    opt("for-glob", Directive, "PATTERN", "repeat each line up to endfor once per path matching PATTERN, as %(_)"),
    opt("for-times", Directive, "N", "repeat each line up to endfor for %(_) = 1..N"),
    opt("for-readline", Directive, "FILE", "repeat each line up to endfor once per line of FILE, as %(_)"),
    opt("endfor", Directive, "", "end a for block").aliases(&["end-for"]).takes(Takes::MaybeValue),
    opt("if-env", Directive, "VAR[=VALUE]", "read the lines up to endif only if VAR is set (to VALUE); %(_) is its value").aliases(&["ifenv"]),
    opt("if-not-env", Directive, "VAR[=VALUE]", "read the lines up to endif only if VAR is not set (to VALUE)"),
    opt("if-opt", Directive, "OPTION[=VALUE]", "read the lines up to endif only if OPTION was set before (to VALUE); %(_) is its value"),
    opt("if-not-opt", Directive, "OPTION[=VALUE]", "read the lines up to endif only if OPTION was not set before (to VALUE)"),
    opt("if-exists", Directive, "PATH", "read the lines up to endif only if PATH exists; %(_) is PATH").aliases(&["ifexists"]),
    opt("if-not-exists", Directive, "PATH", "read the lines up to endif only if PATH does not exist"),
    opt("if-file", Directive, "PATH", "read the lines up to endif only if PATH is a file; %(_) is PATH"),
    opt("if-not-file", Directive, "PATH", "read the lines up to endif only if PATH is not a file"),
    opt("if-dir", Directive, "PATH", "read the lines up to endif only if PATH is a directory; %(_) is PATH").aliases(&["ifdir", "if-directory"]),
    opt("if-not-dir", Directive, "PATH", "read the lines up to endif only if PATH is not a directory"),
    opt("if-reload", Directive, "", "read the lines up to endif only in a master re-executed by a reload").takes(Takes::MaybeValue),
    opt("if-not-reload", Directive, "", "read the lines up to endif only on a first start").takes(Takes::MaybeValue),
    opt("if-hostname", Directive, "NAME", "read the lines up to endif only on the host called NAME"),
    opt("if-not-hostname", Directive, "NAME", "read the lines up to endif only on any other host"),
    opt("if-hostname-match", Directive, "REGEX", "read the lines up to endif only if the host name matches REGEX"),
    opt("if-not-hostname-match", Directive, "REGEX", "read the lines up to endif only if the host name does not match REGEX"),
    opt("if-plugin", Directive, "NAME", "read the lines up to endif only if NAME is built in (python, http)").aliases(&["ifplugin"]),
    opt("if-not-plugin", Directive, "NAME", "read the lines up to endif only if NAME is not built in"),
    opt("endif", Directive, "", "end an if-* block").aliases(&["end-if"]).takes(Takes::MaybeValue),
    opt("blacklist", Directive, "OPTIONS", "forbid the space-separated options up to end-blacklist"),
    opt("end-blacklist", Directive, "", "end a blacklist block").takes(Takes::MaybeValue),
    opt("whitelist", Directive, "OPTIONS", "allow only the space-separated options up to end-whitelist"),
    opt("end-whitelist", Directive, "", "end a whitelist block").takes(Takes::MaybeValue),
    // What to do instead of serving.
    opt("print-config", Action, "", "print the resolved config, with where each value came from, and exit"),
    opt("check-config", Action, "", "validate the config and exit 0 (valid) or 1, without starting"),
    opt("help-options", Action, "", "list every option (uWSGI's too), what rwsgi does with it, and exit"),
    opt("help", Action, "", "print the usage and the options rwsgi implements, and exit").aliases(&["usage"]).short('h'),
    opt("version", Action, "", "print the version and exit").short('V'),
    opt("reload", Action, "PIDFILE", "reload the rwsgi whose master's pid is in PIDFILE (SIGHUP) and exit").takes(Takes::Value),
    opt("stop", Action, "PIDFILE", "stop the rwsgi whose master's pid is in PIDFILE (SIGINT) and exit").takes(Takes::Value),
    // Sockets.
    opt("http-socket", List, "ADDR", "serve HTTP/1.1 (with keep-alive) on ADDR; repeatable").aliases(&["http", "httprouter", "http11-socket"]),
    opt("socket", List, "ADDR", "serve the protocol named by protocol (default: uwsgi, for nginx uwsgi_pass) on ADDR; repeatable").short('s'),
    opt("uwsgi-socket", List, "ADDR", "serve the uwsgi protocol on ADDR, whatever protocol says; repeatable"),
    opt("fastcgi-socket", List, "ADDR", "serve FastCGI (nginx fastcgi_pass) on ADDR; repeatable"),
    opt("protocol", Text, "PROTO", "what socket entries speak: uwsgi, http (or http11) or fastcgi").aliases(&["socket-protocol"]).default("uwsgi").check(check_protocol),
    opt("fastcgi-stderr", Flag, "", "also send what a request writes to wsgi.errors to the web server as FastCGI STDERR"),
    opt("chmod-socket", Text, "MODE", "permissions of unix sockets, octal (bare: 666); default: the umask's").aliases(&["chmod"]).short('C').bare("666").check(check_mode),
    opt("chown-socket", Text, "USER[:GROUP]", "owner (and group) of unix sockets, names or numbers").check(check_not_empty),
    opt("umask", Text, "MASK", "the process umask, octal, set before anything is created").check(check_mode),
    opt("abstract-socket", Flag, "", "unix socket addresses are in the abstract namespace (also: ADDR starting with @)").short('a'),
    opt("vacuum", Flag, "", "remove unix socket files and pidfiles on exit"),
    opt("listen", Number, "N", "listen backlog").short('l').default("1024").check(check_u32),
    // The app.
    opt("wsgi-file", Text, "FILE", "load the WSGI app from this Python file").aliases(&["file"]),
    opt("module", Text, "MODULE[:CALLABLE]", "load the WSGI app from this module").aliases(&["wsgi"]).short('w'),
    opt("callable", Text, "NAME", "the name of the WSGI callable").default("application"),
    opt("chdir", Text, "DIR", "enter DIR before loading the app"),
    opt("pythonpath", List, "DIR", "prepend DIR to sys.path; repeatable").aliases(&["python-path", "pp"]),
    opt("import", List, "MODULE", "import MODULE before the app; repeatable").aliases(&["pyimport", "py-import", "python-import"]),
    opt("pyargv", Text, "ARGS", "sys.argv[1:] for the app, split at spaces"),
    opt("home", Text, "DIR", "the virtualenv to use (default: $VIRTUAL_ENV)").aliases(&["virtualenv", "venv", "pyhome"]).short('H'),
    opt("env", List, "KEY=VALUE", "set in os.environ before loading the app; repeatable").check(check_env),
    opt("threads", Number, "N", "Python threads serving requests").default("1"),
    opt("plugins", List, "NAMES", "accepted for uWSGI's sake: rwsgi has Python and HTTP built in").aliases(&["plugin", "need-plugins", "need-plugin"]).always(builtin_plugins),
    // Limits and timeouts.
    opt("buffer-size", Number, "BYTES", "largest request head (HTTP request line + headers, uwsgi vars, FastCGI params)").short('b').default("65535").check(check_buffer_size),
    opt("limit-post", Number, "BYTES", "largest request body; 0 = unlimited").default("0"),
    opt("post-buffering", Number, "BYTES", "bodies up to this size are read into memory before the app is called, longer ones into a temporary file; 0: every body streams to the app as it comes").default("1048576"),
    opt("post-buffering-disk", Number, "BYTES", "the most of a body kept in a temporary file before the app is called; the rest streams to the app as it comes; 0: nothing on disk").default("67108864"),
    opt("socket-timeout", Number, "SECONDS", "deadline for a request head, each body read and each write").short('z').default("30"),
    opt("http-keepalive-timeout", Number, "SECONDS", "idle time allowed between requests on a connection; 0 disables keep-alive").default("75"),
    opt("reload-mercy", Number, "SECONDS", "how long a graceful shutdown or reload waits for requests in flight before killing").default("30"),
    opt("worker-connections", Number, "N", "open connections per worker: at N the oldest idle keep-alive one closes, with none idle new ones wait in the listen queue; 0 = (ulimit -n - 128) / 2, at most 10000").default("0"),
    opt("max-fd", Number, "N", "set the open-files limit (RLIMIT_NOFILE) to N before serving; above the hard limit needs root; 0 = leave it").default("0"),
    opt("disable-logging", Flag, "", "no request lines, but for those a log-4xx/5xx/slow/big/zero/sendfile/ioerror condition picks").short('L'),
    opt("log-format", Text, "FORMAT", "the request line: text with uWSGI's %(variables) (see Operations); default: uWSGI's line").aliases(&["logformat"]),
    opt("log-format-json", Flag, "", "write each request line as one JSON object: log-format's variables (or a default set) as keys"),
    opt("log-format-strftime", Flag, "", "%(ftime) is written in log-date's strftime format").aliases(&["logformat-strftime"]),
    opt("log-date", Text, "[FORMAT]", "the strftime format of %(ftime) (other lines always carry a date)").aliases(&["logdate"]).takes(Takes::MaybeValue).bare("true"),
    opt("log-micros", Flag, "", "request times in microseconds (the default line's unit, and %(msecs) unchanged)"),
    opt("log-x-forwarded-for", Flag, "", "%(addr) is the X-Forwarded-For header when there is one"),
    opt("log-4xx", Flag, "", "log requests answered 4xx even with disable-logging"),
    opt("log-5xx", Flag, "", "log requests answered 5xx even with disable-logging"),
    opt("log-slow", Number, "MSECS", "log requests slower than this even with disable-logging; 0 = off").default("0"),
    opt("log-big", Number, "BYTES", "log responses of at least this many body bytes even with disable-logging; 0 = off").default("0"),
    opt("log-zero", Flag, "", "log responses without a body even with disable-logging"),
    opt("log-sendfile", Flag, "", "log responses sent with sendfile even with disable-logging"),
    opt("log-ioerror", Flag, "", "log requests with both a read and a write error even with disable-logging"),
    // The process model (rwsgi-master).
    opt("master", Flag, "", "run a master process that forks, supervises and reloads the workers").short('M'),
    opt("processes", Number, "N", "worker processes; more than 1 implies master").aliases(&["workers"]).short('p').default("1").check(check_at_least_one),
    opt("lazy-apps", Flag, "", "import the app in each worker after the fork, not in the master before it").aliases(&["lazy"]),
    opt("harakiri", Number, "SECONDS", "kill and replace a worker whose request runs longer; 0 = never").short('t').default("0"),
    opt("max-requests", Number, "N", "recycle a worker after N requests; 0 = never").short('R').default("0"),
    opt("max-requests-delta", Number, "N", "add worker id × N to max-requests, so workers recycle apart").default("0"),
    opt("max-requests-jitter", Number, "N", "add a random 0..=N to each worker's max-requests").default("0"),
    opt("reload-on-rss", Number, "MIB", "recycle a worker whose RSS exceeds this after a request; 0 = never").default("0"),
    opt("max-worker-lifetime", Number, "SECONDS", "recycle a worker after this long; 0 = never").default("0"),
    opt("worker-reload-mercy", Number, "SECONDS", "how long a recycled, chain-reloaded or removed worker may finish its requests").default("30"),
    opt("pidfile", Text, "FILE", "write the master's pid to FILE before dropping privileges; vacuum removes it"),
    opt("pidfile2", Text, "FILE", "write the master's pid to FILE after dropping privileges; vacuum removes it"),
    opt("safe-pidfile", Text, "FILE", "the same as pidfile, for a second file"),
    opt("safe-pidfile2", Text, "FILE", "the same as pidfile2, for a second file"),
    opt("uid", Text, "USER", "run as this user (name or number) once the sockets are bound").check(check_not_empty),
    opt("gid", Text, "GROUP", "run as this group (name or number) once the sockets are bound").check(check_not_empty),
    opt("procname-prefix", Text, "TEXT", "put TEXT before the process titles (rwsgi master, rwsgi worker N)"),
    opt("procname-prefix-spaced", Text, "TEXT", "put TEXT and a space before the process titles"),
    opt("touch-reload", List, "FILE", "reload gracefully when FILE is touched; repeatable"),
    opt("touch-chain-reload", List, "FILE", "reload the workers one by one when FILE is touched; repeatable"),
    // The stats server.
    opt("stats", Text, "ADDR", "serve uWSGI's stats document (uwsgitop, the Prometheus uwsgi exporter) on ADDR: HOST:PORT, :PORT or a unix socket path").aliases(&["stats-server"]),
    opt("stats-http", Flag, "", "answer HTTP on the stats socket: the JSON document, and GET /metrics in Prometheus' text format"),
    opt("stats-minified", Flag, "", "the stats document without indentation").aliases(&["stats-min"]),
    opt("stats-vars-unredacted", Flag, "", "show cookies and credentials among an in-flight request's vars in the stats document (hidden by default)"),
    opt("master-fifo", List, "PATH", "a FIFO the master reads one-letter commands from (r c q Q + - l L s: see Operations); one"),
    // The log file.
    opt("logto", Text, "FILE", "every process's log, the request lines and the app's stdout/stderr go to FILE (appended), opened before privileges are dropped"),
    opt("logto2", Text, "FILE", "the same, opened after privileges are dropped"),
    opt("daemonize", Text, "FILE", "detach from the terminal (and log to FILE, as logto)").aliases(&["daemonize2"]).short('d'),
    opt("logger", List, "file:FILE|syslog[:IDENT[,FACILITY]]|rsyslog:ADDR[,PREFIX[,PRI]]|stdio", "where log lines go: a file (as logto), syslog, or stderr; one"),
    opt("req-logger", List, "file:FILE|syslog[:IDENT[,FACILITY]]|rsyslog:ADDR[,PREFIX[,PRI]]|stdio", "where request lines go: a file or syslog of their own, or with the other lines; one").aliases(&["logger-req"]),
    opt("log-maxsize", Number, "BYTES", "rotate the log file once it is this big; 0 = never").default("0"),
    opt("log-backupname", Text, "FILE", "where a rotated log goes (default: the log's name and a timestamp)"),
    opt("touch-logreopen", List, "FILE", "open the log file again when FILE is touched; repeatable"),
    opt("touch-logrotate", List, "FILE", "rotate the log file when FILE is touched; repeatable"),
    // Static files (rwsgi-static).
    opt("static-map", List, "/PREFIX=DIR", "serve DIR + the rest of the path for paths under /PREFIX (DIR may be one file); no file: on to the app; repeatable"),
    opt("static-map2", List, "/PREFIX=DIR", "like static-map, with the whole path under DIR; repeatable"),
    opt("check-static", List, "DIR", "serve DIR + the path when that file exists, for any path; repeatable").aliases(&["static-check"]),
    opt("static-index", List, "NAME", "for a directory, serve the first of these files in it (never a listing); repeatable"),
    opt("static-skip-ext", List, "EXT", "never serve a static file whose path or name ends with EXT; repeatable"),
    opt("static-safe", List, "DIR", "a directory static files may resolve into (through symlinks) besides their own; repeatable"),
    opt("static-expires-type", List, "TYPE=SECONDS", "Expires: now + SECONDS for static files of this Content-Type; repeatable"),
    opt("static-expires-type-mtime", List, "TYPE=SECONDS", "Expires: the file's mtime + SECONDS, by Content-Type; repeatable"),
    opt("static-expires", List, "REGEX SECONDS", "Expires: now + SECONDS for static files whose name matches REGEX; repeatable"),
    opt("static-expires-mtime", List, "REGEX SECONDS", "Expires: the file's mtime + SECONDS, by file name; repeatable"),
    opt("static-expires-uri", List, "REGEX SECONDS", "Expires: now + SECONDS when REQUEST_URI matches REGEX; repeatable"),
    opt("static-expires-uri-mtime", List, "REGEX SECONDS", "Expires: the file's mtime + SECONDS, by REQUEST_URI; repeatable"),
    opt("static-expires-path-info", List, "REGEX SECONDS", "Expires: now + SECONDS when PATH_INFO matches REGEX; repeatable"),
    opt("static-expires-path-info-mtime", List, "REGEX SECONDS", "Expires: the file's mtime + SECONDS, by PATH_INFO; repeatable"),
    opt("static-gzip", List, "REGEX", "serve FILE.br or FILE.gz (when it exists and the client accepts it) for static files whose name matches REGEX; repeatable"),
    opt("static-gzip-all", Flag, "", "the same for every static file"),
    opt("static-gzip-dir", List, "DIR", "the same for static files under DIR; repeatable").aliases(&["static-gzip-prefix"]),
    opt("static-gzip-ext", List, "EXT", "the same for static files ending with EXT; repeatable").aliases(&["static-gzip-suffix"]),
    opt("mimefile", List, "FILE", "Content-Types by extension from FILE (/etc/mime.types format), over the built-in table; repeatable").aliases(&["mime-file"]),
    // Routes and response headers (rwsgi-route).
    opt("route", List, "REGEX ACTION", "run ACTION (see Routes) when PATH_INFO matches REGEX; rules run in order; repeatable"),
    opt("route-uri", List, "REGEX ACTION", "the same, on REQUEST_URI; repeatable"),
    opt("route-host", List, "REGEX ACTION", "the same, on HTTP_HOST; repeatable"),
    opt("route-qs", List, "REGEX ACTION", "the same, on QUERY_STRING; repeatable"),
    opt("route-remote-addr", List, "REGEX ACTION", "the same, on REMOTE_ADDR; repeatable"),
    opt("route-user-agent", List, "REGEX ACTION", "the same, on HTTP_USER_AGENT; repeatable"),
    opt("route-remote-user", List, "REGEX ACTION", "the same, on REMOTE_USER; repeatable"),
    opt("route-referer", List, "REGEX ACTION", "the same, on HTTP_REFERER; repeatable"),
    opt("route-if", List, "COND:ARGS ACTION", "run ACTION when the condition holds (see Routes); repeatable"),
    opt("route-if-not", List, "COND:ARGS ACTION", "run ACTION when the condition does not hold; repeatable"),
    opt("route-run", List, "ACTION", "run ACTION for every request; repeatable"),
    opt("route-label", List, "NAME", "a label a goto action jumps to; repeatable"),
    opt("add-header", List, "NAME: VALUE", "add this header to every response; repeatable"),
    opt("del-header", List, "NAME", "remove this header from every response (never Content-Length); repeatable").aliases(&["rem-header"]),
    // Several apps (mounts).
    opt("mount", List, "/PREFIX=APP", "serve APP (a .py file, or module[:callable]) for paths under /PREFIX; the longest prefix wins; repeatable"),
    opt("manage-script-name", Flag, "", "move a mount's prefix from PATH_INFO to SCRIPT_NAME"),
    opt("no-default-app", Flag, "", "a request whose SCRIPT_NAME names no mount gets 404 instead of the default app"),
];

/// The plugins rwsgi has built in, under the names uWSGI gives them.
fn builtin_plugins(names: &str) -> bool {
    names.split([',', ' ']).filter(|name| !name.is_empty()).all(|name| {
        let name = name.strip_suffix("_plugin.so").unwrap_or(name);
        name.starts_with("python")
            || matches!(
                name,
                "http"
                    | "0"
                    | "router_static"
                    | "router_basicauth"
                    | "router_redirect"
                    | "router_rewrite"
            )
    })
}

/// Every option (rwsgi's, then uWSGI's others) indexed by name and short.
struct Registry {
    specs: Vec<OptionSpec>,
    by_name: HashMap<&'static str, usize>,
    by_short: HashMap<char, usize>,
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let mut specs: Vec<OptionSpec> = OPTIONS.to_vec();
    for uwsgi in CATALOGUE.iter() {
        match uwsgi.disposition {
            Disposition::Rwsgi => {
                if let Some(spec) = specs.iter_mut().find(|spec| spec.is_named(uwsgi.name)) {
                    spec.origin = uwsgi.origin;
                }
            }
            Disposition::Other(status, reason) => specs.push(OptionSpec {
                name: uwsgi.name,
                aliases: &[],
                short: uwsgi.short,
                kind: uwsgi.kind,
                takes: uwsgi.takes,
                status,
                value_name: match uwsgi.takes {
                    Takes::Nothing => "",
                    Takes::Value => "VALUE",
                    Takes::MaybeValue => "[VALUE]",
                },
                default: "",
                bare: None,
                help: reason,
                check: None,
                honoured: (status == Status::Always).then_some(is_true),
                origin: uwsgi.origin,
            }),
        }
    }
    let mut by_name = HashMap::new();
    let mut by_short = HashMap::new();
    for (index, spec) in specs.iter().enumerate() {
        for name in spec.names() {
            by_name.entry(name).or_insert(index);
        }
        if let Some(short) = spec.short {
            // uWSGI gives some letters twice (-s socket, uwsgi-socket): the
            // first definition wins, as in its getopt table.
            by_short.entry(short).or_insert(index);
        }
    }
    Registry { specs, by_name, by_short }
});

fn is_true(value: &str) -> bool {
    crate::value::flag(value).0
}

/// Every option: rwsgi's first, in `--help` order, then uWSGI's others.
pub fn all() -> &'static [OptionSpec] {
    &REGISTRY.specs
}

/// The option called `name` (or one of its aliases).
pub fn lookup(name: &str) -> Option<&'static OptionSpec> {
    REGISTRY.by_name.get(name).map(|&index| &REGISTRY.specs[index])
}

/// The option whose short flag is `short`.
pub fn lookup_short(short: char) -> Option<&'static OptionSpec> {
    REGISTRY.by_short.get(&short).map(|&index| &REGISTRY.specs[index])
}

/// The known name closest to `name`, if one is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    all()
        .iter()
        .flat_map(OptionSpec::names)
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

fn check_mode(text: &str) -> Result<(), String> {
    parse_mode(text).map(drop)
}

/// `chmod-socket`'s and `umask`'s value: octal permissions.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| "want octal permissions such as 660".to_string())
}

fn check_protocol(text: &str) -> Result<(), String> {
    match text {
        "uwsgi" | "http" | "http11" | "fastcgi" => Ok(()),
        "https" | "suwsgi" => {
            Err("rwsgi does not terminate TLS: put nginx in front and use http, uwsgi or fastcgi"
                .to_string())
        }
        _ => Err("want uwsgi, http (or http11) or fastcgi: rwsgi speaks no other".to_string()),
    }
}

fn check_u32(text: &str) -> Result<(), String> {
    text.parse::<u32>().map(drop).map_err(|_| format!("at most {}", u32::MAX))
}

fn check_env(text: &str) -> Result<(), String> {
    match text.split_once('=') {
        Some((key, _)) if !key.is_empty() => Ok(()),
        _ => Err("want KEY=VALUE".to_string()),
    }
}

fn check_buffer_size(text: &str) -> Result<(), String> {
    match text.parse::<u64>() {
        Ok(size) if size < 1024 => Err("at least 1024 bytes".to_string()),
        _ => Ok(()),
    }
}

fn check_at_least_one(text: &str) -> Result<(), String> {
    match text.parse::<u64>() {
        Ok(0) => Err("at least 1".to_string()),
        _ => Ok(()),
    }
}

fn check_not_empty(text: &str) -> Result<(), String> {
    if text.is_empty() { Err("want a name or a number".to_string()) } else { Ok(()) }
}

/// The names a user may type for `spec`: `--name`, `--alias`, `-s`.
fn spellings(spec: &OptionSpec) -> String {
    let mut spelled: Vec<String> = spec.names().map(|name| format!("--{name}")).collect();
    if let Some(short) = spec.short {
        spelled.push(format!("-{short}"));
    }
    spelled.join(", ")
}

/// `--help`: usage and the options that do something.
pub fn help_text() -> String {
    let mut text = String::from(
        "rwsgi: a fast, strict WSGI server, a drop-in successor to uWSGI\n\n\
         Usage: rwsgi [CONFIG-FILE] [--option value]...\n\
         \x20      (CONFIG-FILE: app.ini, app.yaml, app.json or app.xml, as with --ini/--yaml/--json/--xml)\n\n\
         Options (each is also a config-file key and a UWSGI_/RWSGI_ environment variable):\n",
    );
    for spec in OPTIONS.iter().filter(|spec| spec.status == Status::Implemented) {
        let mut left = spellings(spec);
        if !spec.value_name.is_empty() {
            left = format!("{left} {}", spec.value_name);
        }
        let mut help = spec.help.to_string();
        if !spec.default.is_empty() && spec.kind != Kind::Flag {
            help = format!("{help} [default: {}]", spec.default);
        }
        text.push_str(&format!("  {left}\n          {help}\n"));
    }
    text.push_str(
        "\nuWSGI's other options are accepted, warned about or refused: rwsgi --help-options\n",
    );
    text
}

/// The columns of an option's row, shared by the plain and Markdown tables.
fn row(spec: &OptionSpec) -> [String; 5] {
    let mut names = spellings(spec);
    if !spec.value_name.is_empty() {
        names = format!("{names} {}", spec.value_name);
    }
    let origin = if spec.origin.is_empty() { "rwsgi" } else { spec.origin };
    [
        names,
        spec.status.label().to_string(),
        origin.to_string(),
        spec.default.to_string(),
        spec.help.to_string(),
    ]
}

/// `--help-options`: every option with its status, as a plain table.
pub fn options_text() -> String {
    let rows: Vec<[String; 5]> = all().iter().map(row).collect();
    let width = |column: usize| rows.iter().map(|row| row[column].len()).max().unwrap_or(0);
    let (w0, w1, w2, w3) = (width(0), width(1), width(2), width(3));
    let mut text = format!(
        "{:w0$}  {:w1$}  {:w2$}  {:w3$}  {}\n",
        "option", "status", "from", "default", "meaning"
    );
    for [names, status, origin, default, help] in rows {
        text.push_str(&format!("{names:w0$}  {status:w1$}  {origin:w2$}  {default:w3$}  {help}\n"));
    }
    text
}

/// An option table in Markdown, of the options `keep` selects.
pub fn markdown_table(keep: impl Fn(&OptionSpec) -> bool) -> String {
    let mut text = String::from(
        "| option | status | from | default | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for spec in all().iter().filter(|spec| keep(spec)) {
        let [names, status, origin, default, help] = row(spec);
        let code = |text: &str| if text.is_empty() { String::new() } else { format!("`{text}`") };
        text.push_str(&format!(
            "| {} | {status} | {origin} | {} | {} |\n",
            code(&names),
            code(&default),
            help.replace('|', "\\|")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::catalogue::CATALOGUE;

    #[test]
    fn names_aliases_and_shorts_are_unique_among_rwsgis_own() {
        let mut seen = std::collections::HashSet::new();
        for spec in OPTIONS {
            for name in spec.names() {
                assert!(seen.insert(name.to_string()), "{name} twice");
                assert_eq!(name, name.to_lowercase(), "{name}: names are lower case");
            }
            if let Some(short) = spec.short {
                assert!(seen.insert(format!("-{short}")), "-{short} twice");
            }
        }
    }

    #[test]
    fn every_uwsgi_option_is_known_and_rwsgi_rows_name_our_options() {
        for uwsgi in CATALOGUE.iter() {
            let spec = lookup(uwsgi.name).unwrap_or_else(|| panic!("{} unknown", uwsgi.name));
            match uwsgi.disposition {
                Disposition::Rwsgi => {
                    assert!(OPTIONS.iter().any(|own| own.is_named(uwsgi.name)), "{}", uwsgi.name);
                }
                Disposition::Other(status, _) => {
                    assert_eq!(spec.status, status, "{}", uwsgi.name);
                    assert!(
                        !OPTIONS.iter().any(|own| own.is_named(uwsgi.name)),
                        "{} is both ours and classified in options-2.0.tsv",
                        uwsgi.name
                    );
                }
            }
        }
        // And ours that uWSGI also has are marked so in the catalogue.
        for spec in OPTIONS {
            for name in spec.names() {
                if let Some(uwsgi) = CATALOGUE.iter().find(|u| u.name == name) {
                    assert_eq!(uwsgi.disposition, Disposition::Rwsgi, "{name}");
                }
            }
        }
    }

    #[test]
    fn defaults_pass_their_own_checks() {
        for spec in OPTIONS.iter().filter(|spec| !spec.default.is_empty()) {
            if let Some(check) = spec.check {
                assert_eq!(check(spec.default), Ok(()), "{}", spec.name);
            }
        }
    }

    #[test]
    fn aliases_and_shorts_resolve_as_uwsgi_spells_them() {
        for (alias, name) in [
            ("http", "http-socket"),
            ("http11-socket", "http-socket"),
            ("workers", "processes"),
            ("file", "wsgi-file"),
            ("wsgi", "module"),
            ("virtualenv", "home"),
            ("venv", "home"),
            ("pyhome", "home"),
            ("pp", "pythonpath"),
            ("python-path", "pythonpath"),
            ("plugin", "plugins"),
            ("chmod", "chmod-socket"),
            ("socket-protocol", "protocol"),
            ("lazy", "lazy-apps"),
            ("set-ph", "set-placeholder"),
            ("xmlconfig", "xml"),
        ] {
            assert_eq!(lookup(alias).map(|s| s.name), Some(name), "{alias}");
        }
        for (short, name) in [
            ('s', "socket"),
            ('w', "module"),
            ('p', "processes"),
            ('R', "max-requests"),
            ('M', "master"),
            ('H', "home"),
            ('b', "buffer-size"),
            ('l', "listen"),
            ('t', "harakiri"),
            ('z', "socket-timeout"),
            ('L', "disable-logging"),
            ('C', "chmod-socket"),
            ('S', "set"),
            ('x', "xml"),
            ('d', "daemonize"),
            ('T', "enable-threads"),
        ] {
            assert_eq!(lookup_short(short).map(|s| s.name), Some(name), "-{short}");
        }
    }

    #[test]
    fn uwsgi_options_carry_their_disposition() {
        let status = |name| lookup(name).unwrap().status;
        assert_eq!(status("enable-threads"), Status::Always);
        assert_eq!(status("cheaper"), Status::Pending);
        assert_eq!(status("memory-report"), Status::Pending);
        assert_eq!(status("cpu-affinity"), Status::Ignored);
        assert_eq!(status("https-socket"), Status::Refused);
        assert_eq!(status("emperor"), Status::Refused);
        assert_eq!(status("php-ini"), Status::Refused);
        assert_eq!(lookup("php-ini").unwrap().origin, "php");
        assert_eq!(lookup("socket").unwrap().origin, "core");
        assert_eq!(lookup("http-keepalive-timeout").unwrap().origin, "");
    }

    #[test]
    fn typos_get_a_suggestion() {
        for (typo, meant) in [
            ("proccesses", "processes"),
            ("wsgi_file", "wsgi-file"),
            ("http-sockets", "http-socket"),
            ("vaccum", "vacuum"),
            ("process", "processes"),
            ("hunder-lock", "thunder-lock"),
        ] {
            assert_eq!(suggest(typo), Some(meant), "{typo}");
        }
        assert_eq!(suggest("zzzzzz"), None);
    }

    #[test]
    fn builtin_plugins_are_honoured() {
        for names in ["python3", "python", "python311", "http,python3", "python3_plugin.so", ""] {
            assert!(builtin_plugins(names), "{names}");
        }
        assert!(builtin_plugins("python3,router_static,router_basicauth"));
        for names in ["php", "python3,router_cache", "gevent"] {
            assert!(!builtin_plugins(names), "{names}");
        }
    }

    #[test]
    fn checks() {
        assert_eq!(parse_mode("660"), Ok(0o660));
        assert!(parse_mode("999").is_err());
        assert!(parse_mode("17777").is_err());
        assert!(check_env("A=B=C").is_ok());
        assert!(check_env("=B").is_err());
        assert!(check_env("AB").is_err());
        assert!(check_buffer_size("100").is_err());
        assert!(check_buffer_size("1024").is_ok());
        assert!(check_u32("4294967296").is_err());
        assert!(check_protocol("http11").is_ok());
        assert!(check_protocol("https").unwrap_err().contains("TLS"));
        assert!(check_protocol("scgi").is_err());
    }

    /// The README's and docs' tables are the code's, so they cannot drift
    /// apart. `RWSGI_BLESS=1 cargo test -p rwsgi-config tables` rewrites them.
    #[test]
    fn tables_in_the_docs_match_the_code() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../");
        let ours = markdown_table(|spec| OPTIONS.iter().any(|o| o.name == spec.name));
        let theirs = markdown_table(|spec| !OPTIONS.iter().any(|o| o.name == spec.name));
        for (file, marker, table) in [
            ("README.md", "options table", ours),
            ("docs/uwsgi-options.md", "uwsgi options table", theirs),
        ] {
            let path = format!("{root}{file}");
            let text = std::fs::read_to_string(&path).unwrap();
            let begin = format!("<!-- {marker}: generated from crates/rwsgi-config -->\n");
            let start =
                text.find(&begin).unwrap_or_else(|| panic!("{file}: {begin}")) + begin.len();
            let end = start + text[start..].find(&format!("<!-- end of {marker} -->")).unwrap();
            if std::env::var_os("RWSGI_BLESS").is_some() {
                std::fs::write(&path, format!("{}{table}{}", &text[..start], &text[end..]))
                    .unwrap();
                continue;
            }
            assert_eq!(
                text[start..end],
                table,
                "{file}'s {marker} is stale: RWSGI_BLESS=1 cargo test -p rwsgi-config tables"
            );
        }
    }
}
