//! The typed result: every item read, its placeholders resolved, judged by
//! what rwsgi does with its option, then layered with figment (defaults,
//! files, environment, flags; lists accumulate, scalars are replaced) and
//! extracted into [`Config`], with where each value came from.

use crate::entry::Entry;
use crate::error::{ConfigError, Diagnostics, Source};
use crate::options::{self, Kind, Status};
use crate::placeholders::Resolver;
use crate::reader::{Item, canonical};
use figment::Figment;
use figment::value::Value;
use serde::Deserialize;
use std::collections::HashSet;
use std::path::PathBuf;

/// Every option that takes effect, with uWSGI's names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    /// `http-socket`, `http`, `http11-socket`: HTTP/1.1 with keep-alive.
    #[serde(default)]
    pub http_socket: Vec<String>,
    /// `socket`: the protocol `protocol` names (uwsgi by default).
    #[serde(default)]
    pub socket: Vec<String>,
    #[serde(default)]
    pub uwsgi_socket: Vec<String>,
    #[serde(default)]
    pub fastcgi_socket: Vec<String>,
    /// What `socket` entries speak: `uwsgi`, `http`, `http11` or `fastcgi`.
    pub protocol: String,
    pub fastcgi_stderr: bool,
    /// Octal text, checked by [`options::parse_mode`]: see [`Config::chmod_socket_mode`].
    pub chmod_socket: Option<String>,
    /// `USER[:GROUP]` for unix sockets.
    pub chown_socket: Option<String>,
    /// Octal text, checked: see [`Config::umask_mode`].
    pub umask: Option<String>,
    pub abstract_socket: bool,
    pub vacuum: bool,
    pub listen: u32,
    pub wsgi_file: Option<PathBuf>,
    pub module: Option<String>,
    pub callable: String,
    pub chdir: Option<PathBuf>,
    #[serde(default)]
    pub pythonpath: Vec<PathBuf>,
    /// Modules imported before the app.
    #[serde(default)]
    pub import: Vec<String>,
    /// `sys.argv[1:]`, space-separated.
    pub pyargv: Option<String>,
    pub home: Option<PathBuf>,
    /// `KEY=VALUE` each, checked: see [`Config::env_pairs`].
    #[serde(default)]
    pub env: Vec<String>,
    pub threads: usize,
    pub buffer_size: usize,
    pub limit_post: u64,
    pub post_buffering: u64,
    pub post_buffering_disk: u64,
    pub socket_timeout: u64,
    pub http_keepalive_timeout: u64,
    pub reload_mercy: u64,
    /// 0: from `ulimit -n`.
    pub worker_connections: u64,
    /// 0: leave the limit as it is.
    pub max_fd: u64,
    pub disable_logging: bool,
    /// The request log's format and conditions.
    #[serde(flatten)]
    pub request_log: RequestLogConfig,
    pub strict: bool,
    pub mode: Option<String>,
    /// The process model's options, taken whole by it.
    #[serde(flatten)]
    pub process: ProcessConfig,
    /// What answers besides the app: static files, response headers,
    /// mounts. (Routes are read in order from [`Loaded::routes`].)
    #[serde(flatten)]
    pub site: SiteConfig,
}

/// The request log, with uWSGI's names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct RequestLogConfig {
    pub log_format: Option<String>,
    pub log_format_json: bool,
    pub log_format_strftime: bool,
    pub log_date: Option<String>,
    pub log_micros: bool,
    pub log_x_forwarded_for: bool,
    pub log_4xx: bool,
    pub log_5xx: bool,
    /// Milliseconds; 0 = off.
    pub log_slow: u64,
    /// Bytes; 0 = off.
    pub log_big: u64,
    pub log_zero: bool,
    pub log_sendfile: bool,
    pub log_ioerror: bool,
}

/// Static files, response headers and mounts, with uWSGI's names.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", default)]
pub struct SiteConfig {
    pub static_map: Vec<String>,
    pub static_map2: Vec<String>,
    pub check_static: Vec<String>,
    pub static_index: Vec<String>,
    pub static_skip_ext: Vec<String>,
    pub static_safe: Vec<String>,
    pub static_expires_type: Vec<String>,
    pub static_expires_type_mtime: Vec<String>,
    pub static_expires: Vec<String>,
    pub static_expires_mtime: Vec<String>,
    pub static_expires_uri: Vec<String>,
    pub static_expires_uri_mtime: Vec<String>,
    pub static_expires_path_info: Vec<String>,
    pub static_expires_path_info_mtime: Vec<String>,
    pub static_gzip: Vec<String>,
    pub static_gzip_all: bool,
    pub static_gzip_dir: Vec<String>,
    pub static_gzip_ext: Vec<String>,
    pub mimefile: Vec<String>,
    pub add_header: Vec<String>,
    pub del_header: Vec<String>,
    pub mount: Vec<String>,
    pub manage_script_name: bool,
    pub no_default_app: bool,
}

/// The process model's options (master, workers, recycling, privileges),
/// as `rwsgi-master` takes them (`MasterOptions`, filled by the binary).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ProcessConfig {
    pub master: bool,
    pub processes: u64,
    pub lazy_apps: bool,
    /// Seconds; 0 = never.
    pub harakiri: u64,
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub max_requests_jitter: u64,
    /// MiB; 0 = never.
    pub reload_on_rss: u64,
    /// Seconds; 0 = never.
    pub max_worker_lifetime: u64,
    /// Seconds a recycled or chain-reloaded worker may finish its requests.
    pub worker_reload_mercy: u64,
    /// Written before privileges are dropped.
    pub pidfile: Option<PathBuf>,
    /// Written after privileges are dropped.
    pub pidfile2: Option<PathBuf>,
    pub safe_pidfile: Option<PathBuf>,
    pub safe_pidfile2: Option<PathBuf>,
    /// A user name or number.
    pub uid: Option<String>,
    /// A group name or number.
    pub gid: Option<String>,
    pub procname_prefix: Option<String>,
    pub procname_prefix_spaced: Option<String>,
    #[serde(default)]
    pub touch_reload: Vec<PathBuf>,
    #[serde(default)]
    pub touch_chain_reload: Vec<PathBuf>,
    #[serde(default)]
    pub master_fifo: Vec<PathBuf>,
    pub stats: Option<String>,
    pub stats_http: bool,
    pub stats_minified: bool,
    pub stats_vars_unredacted: bool,
    #[serde(default)]
    pub logger: Vec<String>,
    #[serde(default)]
    pub req_logger: Vec<String>,
    pub logto: Option<PathBuf>,
    pub logto2: Option<PathBuf>,
    pub daemonize: Option<PathBuf>,
    /// Bytes; 0 = never.
    pub log_maxsize: u64,
    pub log_backupname: Option<PathBuf>,
    #[serde(default)]
    pub touch_logreopen: Vec<PathBuf>,
    #[serde(default)]
    pub touch_logrotate: Vec<PathBuf>,
}

impl Config {
    /// `chmod-socket` as a mode (already checked when read).
    pub fn chmod_socket_mode(&self) -> Option<u32> {
        self.chmod_socket.as_deref().and_then(|mode| options::parse_mode(mode).ok())
    }

    /// `umask` as a mode (already checked when read).
    pub fn umask_mode(&self) -> Option<u32> {
        self.umask.as_deref().and_then(|mode| options::parse_mode(mode).ok())
    }

    /// `env` as (key, value) pairs (each already checked to have a `=`).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }

    /// `pyargv` split as uWSGI splits it (at spaces and tabs).
    pub fn pyargv_list(&self) -> Vec<String> {
        self.pyargv
            .as_deref()
            .map(|args| {
                args.split([' ', '\t']).filter(|a| !a.is_empty()).map(str::to_string).collect()
            })
            .unwrap_or_default()
    }
}

/// One value of an option, in the order given: of an option rwsgi keeps
/// for a later release ([`Loaded::pending`]), or a route rule
/// ([`Loaded::routes`]), whose order across option names matters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub option: &'static str,
    /// The value, or what a bare key means (`true` for a flag).
    pub value: String,
    pub at: Source,
}

/// The resolved config, with where each value came from, the warnings its
/// sources deserve, and what the config language asked to print.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// Values of options not implemented yet, in order.
    pub pending: Vec<Setting>,
    /// The route rules (`route`, `route-uri`, `route-if`, `route-label`...),
    /// in the order given, across their option names.
    pub routes: Vec<Setting>,
    /// One line each, to log before serving.
    pub warnings: Vec<String>,
    /// `print` lines, in reading order, for stdout.
    pub prints: Vec<String>,
    /// `get` answers: what to print instead of serving.
    pub gets: Option<Vec<String>>,
    /// `exit`: the status to exit with once `prints` are out.
    pub exit: Option<i32>,
    figment: Figment,
}

/// Resolves the placeholders of `items` (in reading order), then judges
/// and types every item and layers them into the config.
pub(crate) fn resolve(
    mut items: Vec<Item>,
    mut referenced: HashSet<String>,
    mut diag: Diagnostics,
    getenv: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigError> {
    // Stable: within a layer, reading order stands.
    items.sort_by_key(|item| item.layer);
    let values: Vec<Option<String>> = {
        let mut resolver = Resolver::new(&items, getenv, &mut referenced, &mut diag);
        items
            .iter()
            .enumerate()
            .map(|(place, item)| {
                let owner = Some((canonical(&item.key), place));
                item.value.as_ref().map(|v| resolver.expand(v, &item.at, owner))
            })
            .collect()
    };
    for (item, value) in items.iter_mut().zip(values) {
        item.value = value;
    }
    let strict = items
        .iter()
        .rev()
        .find(|item| canonical(&item.key) == "strict")
        .is_some_and(|item| crate::value::flag(item.value.as_deref().unwrap_or_default()).0);

    let mut prints = Vec::new();
    let mut gets: Option<Vec<String>> = None;
    let mut exit = None;
    let mut pending = Vec::new();
    let mut routes = Vec::new();
    let mut figment = Figment::new();
    let mut warned = HashSet::new();
    let defaults = options::all()
        .iter()
        .filter(|spec| spec.is_setting() && !spec.default.is_empty())
        .map(|spec| Entry { spec, value: Some(spec.default.to_string()), at: Source::Default });
    for entry in defaults {
        match entry.provider(&mut diag) {
            Ok(provider) => figment = figment.admerge(provider),
            Err(err) => diag.error(err),
        }
    }
    for item in &items {
        let Some(spec) = options::lookup(&item.key) else {
            // As in uWSGI, strict mode admits custom keys only through
            // set-placeholder; otherwise a key some %(...) uses is fine.
            if item.placeholder || (!strict && referenced.contains(&item.key)) {
                continue;
            }
            let suggestion = options::suggest(&item.key);
            if strict {
                diag.error(ConfigError::UnknownOption {
                    at: item.at.clone(),
                    name: item.key.clone(),
                    suggestion,
                });
            } else if warned.insert(item.key.clone()) {
                let effect = match suggestion {
                    Some(name) => format!("did you mean {name}? It has no effect"),
                    None => "it has no effect".to_string(),
                };
                diag.warn(&item.at, format!("{} is no option: {effect}", item.key));
            }
            continue;
        };
        let entry = Entry { spec, value: item.value.clone(), at: item.at.clone() };
        match (spec.status, spec.name) {
            (_, "print") => prints.push(entry.value.unwrap_or_default()),
            (_, "get") => {
                let key = entry.value.unwrap_or_default();
                let found =
                    items.iter().rev().find(|other| canonical(&other.key) == canonical(&key));
                let answers = gets.get_or_insert_with(Vec::new);
                if let Some(found) = found {
                    answers.push(found.value.clone().unwrap_or_default());
                }
            }
            (_, "exit") => {
                let code = entry.text().ok().and_then(|text| crate::value::number(text).ok());
                exit = Some(code.map_or(1, |(n, _)| i32::try_from(n).unwrap_or(1)));
            }
            (_, _) if spec.kind == Kind::Directive => {}
            (Status::Implemented, name) if name.starts_with("route") => routes.push(Setting {
                option: name,
                value: entry.value.clone().unwrap_or_default(),
                at: entry.at.clone(),
            }),
            (Status::Implemented, _) => match entry.provider(&mut diag) {
                Ok(provider) => figment = figment.admerge(provider),
                Err(err) => diag.error(err),
            },
            (Status::Always, name) => {
                let value = entry.value.clone().unwrap_or_default();
                if spec.honoured.is_some_and(|honoured| !honoured(&value)) {
                    diag.warn(
                        &entry.at,
                        format!("{name} = {value} has no effect in rwsgi: {}", spec.help),
                    );
                }
            }
            (Status::Pending, name) => {
                if warned.insert(name.to_string()) {
                    diag.warn(&entry.at, format!("{name} is not implemented yet: {}", spec.help));
                }
                match entry.typed(&mut diag) {
                    Ok(_) => pending.push(Setting {
                        option: name,
                        value: entry.text().map(str::to_string).unwrap_or_default(),
                        at: entry.at.clone(),
                    }),
                    Err(err) => diag.error(err),
                }
            }
            (Status::Ignored, name) => {
                if warned.insert(name.to_string()) {
                    diag.warn(&entry.at, format!("{name} has no effect in rwsgi: {}", spec.help));
                }
            }
            (Status::Refused, name) => {
                diag.error(ConfigError::Refused {
                    at: entry.at.clone(),
                    option: name,
                    reason: spec.help,
                });
            }
        }
    }
    // Built even when some values are bad (they are left out), so a later
    // check can add its own problems to the same report.
    let extracted = figment.extract::<Config>();
    let loaded = |config, warnings| Loaded {
        config,
        pending,
        routes,
        warnings,
        prints,
        gets,
        exit,
        figment,
    };
    match (diag.into_result(), extracted) {
        (Ok(warnings), Ok(config)) => Ok(loaded(config, warnings)),
        (Ok(_), Err(err)) => Err(ConfigError::Extract(extract_error(&err))),
        (Err(ConfigError::Invalid { errors, warnings, .. }), Ok(config)) => {
            Err(ConfigError::Invalid {
                errors,
                warnings,
                partial: Some(Box::new(loaded(config, Vec::new()))),
            })
        }
        (Err(invalid), _) => Err(invalid),
    }
}

/// figment's error, led by the source it names.
fn extract_error(err: &figment::Error) -> String {
    let at = err.metadata.as_ref().map_or_else(|| "config".to_string(), |m| m.name.to_string());
    let path = err.path.join(".");
    format!("{at}: {path}: {}", err.kind)
}

impl Loaded {
    /// Where the scalar `option` (its main name) came from.
    pub fn source(&self, option: &str) -> String {
        self.figment
            .find_metadata(option)
            .map_or_else(|| "default".to_string(), |m| m.name.to_string())
    }

    /// Where each value of the list `option` came from, in order.
    pub fn sources(&self, option: &str) -> Vec<String> {
        match self.figment.find_value(option) {
            Ok(Value::Array(_, items)) => items.iter().map(|item| self.tag_source(item)).collect(),
            _ => Vec::new(),
        }
    }

    fn tag_source(&self, value: &Value) -> String {
        self.figment
            .get_metadata(value.tag())
            .map_or_else(|| "default".to_string(), |m| m.name.to_string())
    }

    /// The values given to `option` (not implemented yet), in order.
    pub fn pending_values(&self, option: &str) -> impl Iterator<Item = &Setting> {
        self.pending.iter().filter(move |setting| setting.option == option)
    }

    /// Every value as an ini file, each with where it came from as a
    /// comment; options that are not set are left out. Values of options
    /// not implemented yet follow, commented out.
    pub fn render(&self) -> String {
        let mut text = String::from("[uwsgi]\n");
        for spec in options::all().iter().filter(|spec| spec.is_setting()) {
            let Ok(value) = self.figment.find_value(spec.name) else { continue };
            let items = match &value {
                Value::Array(_, items) => items.iter().collect(),
                single => vec![single],
            };
            for item in items {
                if let Some(shown) = value_text(item) {
                    text.push_str(&format!(
                        "{} = {shown}    ; {}\n",
                        spec.name,
                        self.tag_source(item)
                    ));
                }
            }
        }
        for setting in &self.routes {
            text.push_str(&format!("{} = {}    ; {}\n", setting.option, setting.value, setting.at));
        }
        for setting in &self.pending {
            text.push_str(&format!(
                "; {} = {}    ; {} (not implemented yet)\n",
                setting.option, setting.value, setting.at
            ));
        }
        text
    }
}

fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::String(_, text) => Some(text.clone()),
        Value::Bool(_, b) => Some(b.to_string()),
        Value::Num(..) => value.to_u128().map(|n| n.to_string()),
        _ => None,
    }
}
