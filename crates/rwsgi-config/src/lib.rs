//! `rwsgi-config` owns every source of options and turns them into one
//! typed, validated [`Config`]: uWSGI's ini files (and its YAML and JSON
//! files), `UWSGI_*`/`RWSGI_*` environment variables and the command line,
//! all spelled as uWSGI spells them, all described by one table
//! ([`options::OPTIONS`]).
//!
//! Precedence, lowest to highest: built-in defaults < config files (in the
//! order given, includes read where they are named) < environment < flags.
//! List options (`socket`, `env`, `pythonpath`, ...) accumulate across all
//! of them; for any other option the highest source wins (within a file,
//! the last line). Every value remembers where it came from (file:line,
//! `env UWSGI_X`, `flag --x`, default) for `--print-config` and for errors.
//!
//! The crate is pure: it knows nothing of sockets or Python. The binary maps
//! a [`Config`] onto the server and the bridge.

mod argv;
mod config;
mod entry;
mod env;
mod error;
mod files;
pub mod ini;
pub mod options;

pub use argv::{Command, Invocation, parse_args};
pub use config::{Config, Loaded, ProcessConfig};
pub use error::{ConfigError, Source};
pub use files::{FileRef, Format};

#[cfg(test)]
mod tests;
