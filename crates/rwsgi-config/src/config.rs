//! The typed result: every source layered with figment (defaults, files,
//! environment, flags; lists accumulate, scalars are replaced) and
//! extracted into [`Config`], with where each value came from.

use crate::entry::Entry;
use crate::error::{ConfigError, Source};
use crate::options::{self, OPTIONS, Status};
use figment::Figment;
use figment::value::Value;
use serde::Deserialize;
use std::path::PathBuf;

/// Every option that takes effect, with uWSGI's names.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Config {
    #[serde(default)]
    pub http_socket: Vec<String>,
    /// `socket` and `uwsgi-socket` both speak the uwsgi protocol.
    #[serde(default)]
    pub socket: Vec<String>,
    #[serde(default)]
    pub uwsgi_socket: Vec<String>,
    #[serde(default)]
    pub fastcgi_socket: Vec<String>,
    pub fastcgi_stderr: bool,
    /// Octal text, checked by [`options::parse_mode`]: see [`Config::chmod_socket_mode`].
    pub chmod_socket: Option<String>,
    pub vacuum: bool,
    pub listen: u32,
    pub wsgi_file: Option<PathBuf>,
    pub module: Option<String>,
    pub callable: String,
    pub chdir: Option<PathBuf>,
    #[serde(default)]
    pub pythonpath: Vec<PathBuf>,
    pub home: Option<PathBuf>,
    /// `KEY=VALUE` each, checked: see [`Config::env_pairs`].
    #[serde(default)]
    pub env: Vec<String>,
    pub threads: usize,
    pub buffer_size: usize,
    pub limit_post: u64,
    pub post_buffering: u64,
    pub socket_timeout: u64,
    pub http_keepalive_timeout: u64,
    pub reload_mercy: u64,
    pub die_on_term: bool,
    pub disable_logging: bool,
    /// The process model's options, taken whole by it.
    #[serde(flatten)]
    pub process: ProcessConfig,
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
    pub harakiri_verbose: bool,
    pub max_requests: u64,
    pub max_requests_delta: u64,
    pub max_requests_jitter: u64,
    /// MiB; 0 = never.
    pub reload_on_rss: u64,
    /// Seconds; 0 = never.
    pub max_worker_lifetime: u64,
    /// Seconds a recycled or chain-reloaded worker may finish its requests.
    pub worker_reload_mercy: u64,
    pub pidfile: Option<PathBuf>,
    /// A user name or number.
    pub uid: Option<String>,
    /// A group name or number.
    pub gid: Option<String>,
    pub need_app: bool,
    pub procname_prefix: Option<String>,
    pub procname_prefix_spaced: Option<String>,
    #[serde(default)]
    pub touch_reload: Vec<PathBuf>,
    #[serde(default)]
    pub touch_chain_reload: Vec<PathBuf>,
}

impl Config {
    /// `chmod-socket` as a mode (already checked when read).
    pub fn chmod_socket_mode(&self) -> Option<u32> {
        self.chmod_socket.as_deref().and_then(|mode| options::parse_mode(mode).ok())
    }

    /// `env` as (key, value) pairs (each already checked to have a `=`).
    pub fn env_pairs(&self) -> Vec<(String, String)> {
        self.env
            .iter()
            .filter_map(|pair| pair.split_once('='))
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect()
    }
}

/// The resolved config, with where each value came from and the warnings
/// its sources deserve.
#[derive(Debug)]
pub struct Loaded {
    pub config: Config,
    /// One line each, to log before serving.
    pub warnings: Vec<String>,
    figment: Figment,
}

/// Layers defaults and `entries` (files, then environment, then flags, in
/// that order) and extracts the typed config.
pub(crate) fn resolve(
    entries: Vec<Entry>,
    mut warnings: Vec<String>,
) -> Result<Loaded, ConfigError> {
    let defaults = OPTIONS
        .iter()
        .filter(|spec| spec.is_setting() && !spec.default.is_empty())
        .map(|spec| Entry { spec, value: Some(spec.default.to_string()), at: Source::Default });
    let mut figment = Figment::new();
    let mut warned = Vec::new();
    for entry in defaults.chain(entries) {
        // Checked even when ignored: a bad value is an error either way.
        let provider = entry.provider()?;
        if entry.spec.status == Status::Ignored {
            if !warned.contains(&entry.spec.name) {
                warned.push(entry.spec.name);
                warnings.push(format!(
                    "{}: {} has no effect in rwsgi: {}",
                    entry.at, entry.spec.name, entry.spec.help
                ));
            }
            continue;
        }
        figment = figment.admerge(provider);
    }
    let config: Config =
        figment.extract().map_err(|err| ConfigError::Extract(extract_error(&err)))?;
    Ok(Loaded { config, warnings, figment })
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

    /// Every value as an ini file, each with where it came from as a
    /// comment; options that are not set are left out.
    pub fn render(&self) -> String {
        let mut text = String::from("[uwsgi]\n");
        for spec in OPTIONS.iter().filter(|spec| spec.is_setting()) {
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
