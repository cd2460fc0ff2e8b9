//! The one table of every option rwsgi knows: the argv parser, the file
//! readers, the environment reader, `--help`, `--help-options` and the
//! README's option table are all driven by [`OPTIONS`].

/// What values an option takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `true/false`, `yes/no`, `on/off`, `1/0`; a bare key or flag is true.
    Flag,
    /// A whole number, at least 0.
    Number,
    /// One text value; the last one given wins.
    Text,
    /// Repeatable: every value given is kept, in order.
    List,
    /// Another config file (`file` or `file:section`), read where it is named.
    Include,
    /// Only on the command line: what to do instead of serving.
    Action,
}

/// What rwsgi does with an option today.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Takes effect.
    Implemented,
    /// Accepted, with a warning that it has no effect.
    Ignored,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Implemented => "implemented",
            Status::Ignored => "ignored (warns)",
        }
    }
}

/// Validates one value beyond its kind; the error says what is wanted.
pub type Check = fn(&str) -> Result<(), String>;

/// One option: its names, the values it takes, and what it does.
#[derive(Debug)]
pub struct OptionSpec {
    /// The name in files, flags (`--name`) and the environment (`UWSGI_NAME`).
    pub name: &'static str,
    /// Other names for the same option.
    pub aliases: &'static [&'static str],
    /// A one-letter flag (`-s`).
    pub short: Option<char>,
    pub kind: Kind,
    pub status: Status,
    /// What the value is, for help (`ADDR`, `N`); empty for flags.
    pub value_name: &'static str,
    /// The built-in default, as it would be written in a file; empty if none.
    pub default: &'static str,
    /// The value a bare key or a flag without a value stands for, for
    /// options that are not flags (`chmod-socket` alone means 666).
    pub bare: Option<&'static str>,
    /// One line of help; for ignored options, what their absence means.
    pub help: &'static str,
    /// Further validation of one value, beyond its kind.
    pub check: Option<Check>,
}

impl OptionSpec {
    /// Whether a value of this option lands in [`crate::Config`].
    pub fn is_setting(&self) -> bool {
        self.status != Status::Ignored && !matches!(self.kind, Kind::Include | Kind::Action)
    }

    /// Whether `name` is this option's name or one of its aliases.
    pub fn is_named(&self, name: &str) -> bool {
        self.name == name || self.aliases.contains(&name)
    }
}

const fn opt(
    name: &'static str,
    kind: Kind,
    status: Status,
    value_name: &'static str,
    help: &'static str,
) -> OptionSpec {
    OptionSpec {
        name,
        aliases: &[],
        short: None,
        kind,
        status,
        value_name,
        // A flag that is not given is off.
        default: if matches!(kind, Kind::Flag) && !matches!(status, Status::Ignored) {
            "false"
        } else {
            ""
        },
        bare: None,
        help,
        check: None,
    }
}

const fn implemented(
    name: &'static str,
    kind: Kind,
    value: &'static str,
    help: &'static str,
) -> OptionSpec {
    opt(name, kind, Status::Implemented, value, help)
}

/// An ignored flag: its value must still be a boolean.
const fn ignored_flag(name: &'static str, help: &'static str) -> OptionSpec {
    opt(name, Kind::Flag, Status::Ignored, "", help)
}

/// An ignored option with a value: any value, or none, is accepted.
const fn ignored_value(name: &'static str, help: &'static str) -> OptionSpec {
    opt(name, Kind::Text, Status::Ignored, "VALUE", help).bare("")
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

    const fn bare(mut self, bare: &'static str) -> Self {
        self.bare = Some(bare);
        self
    }

    const fn check(mut self, check: Check) -> Self {
        self.check = Some(check);
        self
    }
}

use Kind::{Action, Flag, Include, List, Number, Text};

/// Every option, in the order `--help` lists them.
pub static OPTIONS: &[OptionSpec] = &[
    // Config files and what to do.
    implemented("ini", Include, "FILE[:SECTION]", "read options from an ini file (section [uwsgi] unless named); repeatable"),
    implemented("yaml", Include, "FILE[:SECTION]", "read options from the `uwsgi:` key of a YAML file; repeatable").aliases(&["yml"]),
    implemented("json", Include, "FILE[:SECTION]", "read options from the `uwsgi` key of a JSON file; repeatable"),
    implemented("print-config", Action, "", "print the resolved config, with where each value came from, and exit"),
    implemented("check-config", Action, "", "validate the config and exit 0 (valid) or 1, without starting"),
    implemented("help-options", Action, "", "list every option, its status and meaning, and exit"),
    // Sockets.
    implemented("http-socket", List, "ADDR", "serve HTTP/1.1 on host:port, :port, [::1]:port or a unix socket path (anything with a /); repeatable").aliases(&["http"]),
    implemented("socket", List, "ADDR", "serve the uwsgi protocol (nginx uwsgi_pass) on ADDR; repeatable").short('s'),
    implemented("uwsgi-socket", List, "ADDR", "the same as socket; repeatable"),
    implemented("fastcgi-socket", List, "ADDR", "serve FastCGI (nginx fastcgi_pass) on ADDR; repeatable"),
    implemented("fastcgi-stderr", Flag, "", "also send what a request writes to wsgi.errors to the web server as FastCGI STDERR"),
    implemented("chmod-socket", Text, "MODE", "permissions of unix sockets, octal (bare: 666); default: the umask's").bare("666").check(check_mode),
    implemented("vacuum", Flag, "", "remove unix socket files on exit"),
    implemented("listen", Number, "N", "listen backlog").short('l').default("1024").check(check_u32),
    // The app.
    implemented("wsgi-file", Text, "FILE", "load the WSGI app from this Python file").aliases(&["file"]),
    implemented("module", Text, "MODULE[:CALLABLE]", "load the WSGI app from this module").aliases(&["wsgi"]).short('w'),
    implemented("callable", Text, "NAME", "the name of the WSGI callable").default("application"),
    implemented("chdir", Text, "DIR", "enter DIR before loading the app"),
    implemented("pythonpath", List, "DIR", "prepend DIR to sys.path; repeatable").aliases(&["python-path", "pp"]),
    implemented("home", Text, "DIR", "the virtualenv to use (default: $VIRTUAL_ENV)").aliases(&["virtualenv", "venv", "pyhome"]).short('H'),
    implemented("env", List, "KEY=VALUE", "set in os.environ before loading the app; repeatable").check(check_env),
    implemented("threads", Number, "N", "Python threads serving requests").default("1"),
    // Limits and timeouts.
    implemented("buffer-size", Number, "BYTES", "largest request head (HTTP request line + headers, uwsgi vars, FastCGI params)").short('b').default("65535").check(check_buffer_size),
    implemented("limit-post", Number, "BYTES", "largest request body; 0 = unlimited").default("0"),
    implemented("post-buffering", Number, "BYTES", "bodies up to this size are read before the app is called; longer ones stream").default("1048576"),
    implemented("socket-timeout", Number, "SECONDS", "deadline for a request head, each body read and each write").default("30"),
    implemented("http-keepalive-timeout", Number, "SECONDS", "idle time allowed between requests on a connection; 0 disables keep-alive").default("75"),
    implemented("reload-mercy", Number, "SECONDS", "how long a graceful shutdown or reload waits for requests in flight before killing").default("30"),
    implemented("die-on-term", Flag, "", "exit on SIGTERM (always so in rwsgi)"),
    implemented("disable-logging", Flag, "", "no per-request log line"),
    // The process model (rwsgi-master).
    implemented("master", Flag, "", "run a master process that forks, supervises and reloads the workers").short('M'),
    implemented("processes", Number, "N", "worker processes; more than 1 implies master").aliases(&["workers"]).short('p').default("1").check(check_at_least_one),
    implemented("lazy-apps", Flag, "", "import the app in each worker after the fork, not in the master before it"),
    implemented("harakiri", Number, "SECONDS", "kill and replace a worker whose request runs longer; 0 = never").default("0"),
    implemented("harakiri-verbose", Flag, "", "log the Python stacks before a harakiri (always so)").default("true"),
    implemented("max-requests", Number, "N", "recycle a worker after N requests; 0 = never").short('R').default("0"),
    implemented("max-requests-delta", Number, "N", "add worker id × N to max-requests, so workers recycle apart").default("0"),
    implemented("max-requests-jitter", Number, "N", "add a random 0..=N to each worker's max-requests").default("0"),
    implemented("reload-on-rss", Number, "MIB", "recycle a worker whose RSS exceeds this after a request; 0 = never").default("0"),
    implemented("max-worker-lifetime", Number, "SECONDS", "recycle a worker after this long; 0 = never").default("0"),
    implemented("worker-reload-mercy", Number, "SECONDS", "how long a recycled, chain-reloaded or removed worker may finish its requests").default("30"),
    implemented("pidfile", Text, "FILE", "write the master's pid to FILE (before dropping privileges); vacuum removes it"),
    implemented("uid", Text, "USER", "run as this user (name or number) once the sockets are bound").check(check_not_empty),
    implemented("gid", Text, "GROUP", "run as this group (name or number) once the sockets are bound").check(check_not_empty),
    implemented("need-app", Flag, "", "exit 1 if the app cannot be loaded (rwsgi always does)").default("true"),
    implemented("procname-prefix", Text, "TEXT", "put TEXT before the process titles (rwsgi master, rwsgi worker N)"),
    implemented("procname-prefix-spaced", Text, "TEXT", "put TEXT and a space before the process titles"),
    implemented("touch-reload", List, "FILE", "reload gracefully when FILE is touched; repeatable"),
    implemented("touch-chain-reload", List, "FILE", "reload the workers one by one when FILE is touched; repeatable"),
    // Found in real uWSGI files; no effect here.
    ignored_value("plugins", "rwsgi has Python built in").aliases(&["plugin"]),
    ignored_flag("enable-threads", "Python threads are always enabled"),
    ignored_flag("single-interpreter", "there is always one interpreter"),
    ignored_flag("thunder-lock", "no accept lock is needed"),
    ignored_flag("lazy", "see lazy-apps"),
    ignored_value("py-autoreload", "code changes are NOT picked up: restart rwsgi"),
    ignored_flag("memory-report", "no memory report is logged"),
    ignored_flag("strict", "rwsgi is always strict: unknown options are errors"),
    ignored_flag("auto-procname", "process titles are always set: rwsgi master, rwsgi worker N"),
    ignored_flag("log-date", "log lines always carry a timestamp"),
    ignored_value("logto", "logs still go to stderr, NOT to this file").aliases(&["logto2"]),
    ignored_value("daemonize", "rwsgi stays in the foreground and logs to stderr; use a service manager").aliases(&["daemonize2"]),
    ignored_flag("log-master", "logs go to stderr directly"),
    ignored_value("logformat", "the request log line has rwsgi's fixed format").aliases(&["log-format"]),
    ignored_flag("log-x-forwarded-for", "the request log shows the peer address"),
    ignored_flag("no-orphans", "there are no orphan workers"),
    ignored_flag("vhost", "one app per server"),
    ignored_value("optimize", "Python's optimisation level is not changed"),
    ignored_value("stats", "there is NO stats server"),
    ignored_value("static-map", "static files are NOT served: serve them from nginx"),
    ignored_value("offload-threads", "files are sent with sendfile(2) by the core"),
    ignored_flag("ignore-sigpipe", "SIGPIPE never kills rwsgi"),
    ignored_flag("ignore-write-errors", "write errors are never an app error"),
    ignored_flag("disable-write-exception", "write errors are never an app error"),
    ignored_value("cheaper", "the number of workers is fixed"),
    ignored_value("max-fd", "the file descriptor limit is not changed"),
    ignored_value("chown-socket", "unix socket ownership is NOT changed"),
    ignored_flag("show-config", "use rwsgi --print-config"),
    ignored_flag("log-reopen", "logs go to stderr"),
    ignored_value("logger", "logs go to stderr, NOT to this logger").aliases(&["req-logger"]),
    ignored_value("http-keepalive", "HTTP keep-alive is always on (see http-keepalive-timeout)"),
    ignored_flag("http-auto-chunked", "HTTP/1.1 responses of unknown length are always chunked"),
    ignored_flag("catch-exceptions", "tracebacks are logged, never sent to the client"),
    ignored_flag("py-tracebacker", "there is NO tracebacker socket"),
    ignored_value("limit-as", "the address space is NOT limited"),
    ignored_value("check-static", "static files are NOT served: serve them from nginx"),
    ignored_value("add-header", "this header is NOT added to responses"),
    ignored_value("master-fifo", "there is NO master fifo"),
];

/// The option called `name` (or one of its aliases).
pub fn lookup(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.is_named(name))
}

/// The option whose short flag is `short`.
pub fn lookup_short(short: char) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|spec| spec.short == Some(short))
}

/// The known name closest to `name`, if one is close enough to be a typo.
pub fn suggest(name: &str) -> Option<&'static str> {
    OPTIONS
        .iter()
        .flat_map(|spec| std::iter::once(spec.name).chain(spec.aliases.iter().copied()))
        .map(|candidate| (strsim::jaro_winkler(name, candidate), candidate))
        .filter(|(score, _)| *score >= 0.85)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

fn check_mode(text: &str) -> Result<(), String> {
    parse_mode(text).map(drop)
}

/// `chmod-socket`'s value: octal permissions.
pub fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
        .ok_or_else(|| "want octal permissions such as 660".to_string())
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
    let names = std::iter::once(spec.name).chain(spec.aliases.iter().copied());
    let mut spelled: Vec<String> = names.map(|name| format!("--{name}")).collect();
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
         \x20      (CONFIG-FILE: app.ini, app.yaml or app.json, as with --ini/--yaml/--json)\n\n\
         Options (each is also a config-file key and a UWSGI_/RWSGI_ environment variable):\n",
    );
    for spec in OPTIONS.iter().filter(|spec| spec.status != Status::Ignored) {
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
        "  -h, --help\n          print this help\n  -V, --version\n          print the version\n\n\
         Options from uWSGI that rwsgi accepts but ignores: rwsgi --help-options\n",
    );
    text
}

/// `--help-options`: every option with its status, as a plain table.
pub fn options_text() -> String {
    let rows: Vec<[String; 4]> = OPTIONS
        .iter()
        .map(|spec| {
            let mut names = spellings(spec);
            if !spec.value_name.is_empty() {
                names = format!("{names} {}", spec.value_name);
            }
            [
                names,
                spec.status.label().to_string(),
                spec.default.to_string(),
                spec.help.to_string(),
            ]
        })
        .collect();
    let width = |column: usize| rows.iter().map(|row| row[column].len()).max().unwrap_or(0);
    let (w0, w1, w2) = (width(0), width(1), width(2));
    let mut text =
        format!("{:w0$}  {:w1$}  {:w2$}  {}\n", "option", "status", "default", "meaning");
    for [names, status, default, help] in rows {
        text.push_str(&format!("{names:w0$}  {status:w1$}  {default:w2$}  {help}\n"));
    }
    text
}

/// The README's option table (checked against the README by a test).
pub fn markdown_table() -> String {
    let mut text = String::from(
        "| option | value | status | default | meaning |\n| --- | --- | --- | --- | --- |\n",
    );
    for spec in OPTIONS {
        let names =
            spellings(spec).split(", ").map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", ");
        let value = if spec.value_name.is_empty() {
            String::new()
        } else {
            format!("`{}`", spec.value_name)
        };
        let default =
            if spec.default.is_empty() { String::new() } else { format!("`{}`", spec.default) };
        text.push_str(&format!(
            "| {names} | {value} | {} | {default} | {} |\n",
            spec.status.label(),
            spec.help.replace('|', "\\|")
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_aliases_and_shorts_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for spec in OPTIONS {
            for name in std::iter::once(spec.name).chain(spec.aliases.iter().copied()) {
                assert!(seen.insert(name.to_string()), "{name} twice");
                assert_eq!(name, name.to_lowercase(), "{name}: names are lower case");
            }
            if let Some(short) = spec.short {
                assert!(seen.insert(format!("-{short}")), "-{short} twice");
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
    fn aliases_resolve_to_their_option() {
        for (alias, name) in [
            ("http", "http-socket"),
            ("workers", "processes"),
            ("file", "wsgi-file"),
            ("wsgi", "module"),
            ("virtualenv", "home"),
            ("venv", "home"),
            ("pyhome", "home"),
            ("pp", "pythonpath"),
            ("python-path", "pythonpath"),
            ("plugin", "plugins"),
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
        ] {
            assert_eq!(lookup_short(short).map(|s| s.name), Some(name), "-{short}");
        }
    }

    #[test]
    fn typos_get_a_suggestion() {
        assert_eq!(suggest("proccesses"), Some("processes"));
        assert_eq!(suggest("wsgi_file"), Some("wsgi-file"));
        assert_eq!(suggest("http-sockets"), Some("http-socket"));
        assert_eq!(suggest("zzzzzz"), None);
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
    }

    /// The README's table is the code's, so they cannot drift apart.
    /// `RWSGI_BLESS=1 cargo test -p rwsgi-config readme` rewrites it.
    #[test]
    fn readme_table_matches_the_code() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md");
        let readme = std::fs::read_to_string(path).unwrap();
        let begin = "<!-- options table: generated from crates/rwsgi-config/src/options.rs -->\n";
        let start = readme.find(begin).unwrap() + begin.len();
        let end = start + readme[start..].find("<!-- end of options table -->").unwrap();
        if std::env::var_os("RWSGI_BLESS").is_some() {
            let blessed = format!("{}{}{}", &readme[..start], markdown_table(), &readme[end..]);
            std::fs::write(path, blessed).unwrap();
            return;
        }
        assert_eq!(
            readme[start..end],
            markdown_table(),
            "the README's option table is stale: RWSGI_BLESS=1 cargo test -p rwsgi-config readme"
        );
    }
}
