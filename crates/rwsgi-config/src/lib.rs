//! `rwsgi-config` owns every source of options and turns them into one
//! typed, validated [`Config`]: uWSGI's ini files (and its YAML, JSON and
//! XML files), `UWSGI_*`/`RWSGI_*` environment variables and the command
//! line, all spelled as uWSGI spells them. Every option of uWSGI 2.0 is
//! known ([`options`], [`catalogue`]): implemented, always so, kept for a
//! later release, ignored with a warning, or refused.
//!
//! Reading follows uWSGI: the environment, then the command line, config
//! files read where they are named ([`reader`]), with uWSGI's config
//! language (magic variables, `if-*`/`for` blocks, `set`, includes) acted
//! on as it goes; placeholders are resolved once everything is read
//! ([`placeholders`]). Precedence, lowest to highest: built-in defaults <
//! config files < environment < flags. List options (`socket`, `env`, ...)
//! accumulate across all of them; for any other option the highest source
//! wins (within one, the last line). Every value remembers where it came
//! from (file:line, `env UWSGI_X`, `flag --x`, default) for
//! `--print-config`, warnings and errors, and every error of a run is
//! reported, not only the first.
//!
//! The crate is pure: it knows nothing of sockets or Python. The binary maps
//! a [`Config`] onto the server and the bridge.

mod argv;
mod catalogue;
mod config;
mod entry;
mod env;
mod error;
mod formats;
pub mod ini;
mod magic;
pub mod options;
mod placeholders;
mod reader;
mod value;

pub use argv::{Command, Invocation, parse_args};
pub use config::{Config, Loaded, ProcessConfig, RequestLogConfig, Setting, SiteConfig};
pub use error::{ConfigError, Source};
pub use reader::{FileRef, Format};

#[cfg(test)]
mod tests;
