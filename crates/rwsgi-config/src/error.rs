//! Where a value came from, and everything that can be wrong with one.

use crate::config::Loaded;
use std::fmt;
use std::path::PathBuf;

/// Where a value came from: every value and every error carries one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The built-in default.
    Default,
    /// A line of an ini file.
    Line { file: PathBuf, line: usize },
    /// A key of a YAML or JSON file (they have no line numbers here).
    Key { file: PathBuf, key: String },
    /// An environment variable.
    Env(String),
    /// A command-line flag or argument, as typed.
    Flag(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Default => f.write_str("default"),
            Source::Line { file, line } => write!(f, "{}:{line}", file.display()),
            Source::Key { file, key } => write!(f, "{} key {key}", file.display()),
            Source::Env(var) => write!(f, "env {var}"),
            Source::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// A config that cannot be used. Each displays as one line that starts
/// with where the problem is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{at}: {reason}")]
    Syntax { at: Source, reason: String },
    #[error("{at}: unknown option {name}{}", did_you_mean(*suggestion))]
    UnknownOption { at: Source, name: String, suggestion: Option<&'static str> },
    #[error("unknown option {flag}{}", did_you_mean(suggestion.map(|name| format!("--{name}")).as_deref()))]
    UnknownFlag { flag: String, suggestion: Option<&'static str> },
    #[error("{at}: {option} {value:?}: {reason}")]
    BadValue { at: Source, option: &'static str, value: String, reason: String },
    #[error("{at}: {option} needs a value")]
    MissingValue { at: Source, option: &'static str },
    #[error("{at}: {option} is only a command-line flag")]
    NotInFile { at: Source, option: &'static str },
    #[error("{at}: {reason}")]
    Placeholder { at: Source, reason: String },
    #[error("{at}: cannot read {}: {error}", path.display())]
    Read { at: Source, path: PathBuf, error: std::io::Error },
    #[error("{at}: {}: {reason}", path.display())]
    Format { at: Source, path: PathBuf, reason: String },
    #[error("{at}: {} has no [{section}] section", path.display())]
    MissingSection { at: Source, path: PathBuf, section: String },
    #[error("{at}: include cycle: {chain}")]
    IncludeCycle { at: Source, chain: String },
    #[error("{at}: {option} is not supported: {reason}")]
    Refused { at: Source, option: &'static str, reason: &'static str },
    #[error("{at}: {option} is forbidden here by the {list} at {list_at}")]
    Forbidden { at: Source, option: String, list: &'static str, list_at: Box<Source> },
    #[error(
        "unexpected argument {0:?}: a config file ends in .ini, .yaml, .yml, .json, .js or .xml"
    )]
    UnexpectedArgument(String),
    #[error("{0}")]
    Extract(String),
    /// Every problem found in one run, one per line; with the warnings
    /// the run deserved, and the config as read without the bad values
    /// (when one could be built), so a later check (the socket addresses)
    /// can add its problems to the same report.
    #[error("{}", errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid { errors: Vec<ConfigError>, warnings: Vec<String>, partial: Option<Box<Loaded>> },
}

impl ConfigError {
    /// Each problem, one line each (an [`ConfigError::Invalid`] holds several).
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid { errors, .. } => errors.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// What reading a config found: errors (all of them, not only the first)
/// and warnings, each one line naming where.
#[derive(Debug, Default)]
pub(crate) struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<String>,
}

impl Diagnostics {
    pub(crate) fn error(&mut self, error: ConfigError) {
        self.errors.push(error);
    }

    pub(crate) fn warn(&mut self, at: &Source, text: impl fmt::Display) {
        self.warnings.push(format!("{at}: {text}"));
    }

    /// `Ok` with the warnings if nothing was wrong; else every error.
    pub(crate) fn into_result(self) -> Result<Vec<String>, ConfigError> {
        if self.errors.is_empty() {
            return Ok(self.warnings);
        }
        Err(ConfigError::Invalid { errors: self.errors, warnings: self.warnings, partial: None })
    }
}

fn did_you_mean(suggestion: Option<&str>) -> String {
    suggestion.map(|name| format!(" (did you mean {name}?)")).unwrap_or_default()
}
