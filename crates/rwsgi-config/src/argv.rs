//! The command line, driven by the option registry: `--opt value`,
//! `--opt=value`, short flags (`-s ADDR`, `-sADDR`), `--flag` alone for
//! true, and a bare config file argument (`rwsgi app.ini`). Unknown flags
//! are errors, as in uWSGI.

use crate::error::{ConfigError, Source};
use crate::options::{self, Kind, OptionSpec, Takes};
use crate::reader::{Format, Layer, Reader};
use crate::{Loaded, config, env};
use std::ffi::OsString;
use std::path::PathBuf;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    HelpOptions,
    Version,
    /// `--reload PIDFILE` (`signal` = "reload") or `--stop PIDFILE` ("stop").
    Signal {
        signal: &'static str,
        pidfile: PathBuf,
    },
    Run(Invocation),
}

/// A command line that asks to serve (or check, or print) a config.
#[derive(Debug, Default)]
pub struct Invocation {
    /// Options and config files, in the order given.
    args: Vec<(String, Option<String>, Source)>,
    /// `--print-config`: print the resolved config and exit.
    pub print_config: bool,
    /// `--check-config`: validate and exit.
    pub check_config: bool,
    /// Unknown flags: reported with every other problem of the run.
    unknown: Vec<ConfigError>,
}

/// Parses the arguments after the program name.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Command, ConfigError> {
    let mut args = args
        .into_iter()
        .map(|arg| {
            arg.into_string().map_err(|arg| ConfigError::Syntax {
                at: Source::Flag(arg.to_string_lossy().into_owned()),
                reason: "not UTF-8".to_string(),
            })
        })
        .peekable();
    let mut invocation = Invocation::default();
    // `--help`, `--version`, `--stop`... once every argument is read: an
    // unknown flag anywhere stops them too.
    let mut instead: Option<Command> = None;
    while let Some(arg) = args.next() {
        let arg = arg?;
        let flag = match split_flag(&arg) {
            Err(unknown @ ConfigError::UnknownFlag { .. }) => {
                // Its value, if it has one, goes with it.
                if args.peek().is_some_and(|next| {
                    next.as_ref()
                        .is_ok_and(|next| !next.starts_with('-') && Format::of_path(next).is_none())
                }) {
                    args.next();
                }
                invocation.unknown.push(unknown);
                continue;
            }
            other => other?,
        };
        let Some((spec, typed, inline)) = flag else {
            let format = Format::of_path(&arg)
                .ok_or_else(|| ConfigError::UnexpectedArgument(arg.clone()))?;
            let option = match format {
                Format::Ini => "ini",
                Format::Yaml => "yaml",
                Format::Json => "json",
                Format::Xml => "xml",
            };
            invocation.args.push((option.to_string(), Some(arg.clone()), Source::Flag(arg)));
            continue;
        };
        let at = Source::Flag(typed.clone());
        let value =
            match (inline, spec.takes) {
                (Some(value), _) => Some(value),
                (None, Takes::Nothing) => None,
                (None, Takes::MaybeValue) => take_unless_flag(&mut args)?,
                (None, Takes::Value) => Some(args.next().transpose()?.ok_or_else(|| {
                    ConfigError::MissingValue { at: at.clone(), option: spec.name }
                })?),
            };
        if spec.kind == Kind::Action {
            match spec.name {
                "print-config" => invocation.print_config = true,
                "check-config" => invocation.check_config = true,
                "help" => _ = instead.get_or_insert(Command::Help),
                "help-options" => _ = instead.get_or_insert(Command::HelpOptions),
                "version" => _ = instead.get_or_insert(Command::Version),
                signal @ ("reload" | "stop") => {
                    let pidfile =
                        value.ok_or(ConfigError::MissingValue { at, option: spec.name })?;
                    instead.get_or_insert(Command::Signal { signal, pidfile: pidfile.into() });
                }
                other => unreachable!("action {other} has no handler"),
            }
            continue;
        }
        invocation.args.push((spec.name.to_string(), value, at));
    }
    match instead {
        Some(_) if !invocation.unknown.is_empty() => Err(ConfigError::Invalid {
            errors: invocation.unknown,
            warnings: Vec::new(),
            partial: None,
        }),
        Some(command) => Ok(command),
        None => Ok(Command::Run(invocation)),
    }
}

/// An option, the flag as typed, and a value given in the same argument.
type Flag = (&'static OptionSpec, String, Option<String>);

/// A flag and what it names: the option, the flag as typed (`--socket`,
/// `-s`) and a value given in the same argument; `None` for a positional.
fn split_flag(arg: &str) -> Result<Option<Flag>, ConfigError> {
    if let Some(long) = arg.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((name, value)) => (name, Some(value.to_string())),
            None => (long, None),
        };
        let spec = options::lookup(name).ok_or_else(|| ConfigError::UnknownFlag {
            flag: format!("--{name}"),
            suggestion: options::suggest(name),
        })?;
        return Ok(Some((spec, format!("--{name}"), inline)));
    }
    let mut chars = arg.chars();
    match (chars.next(), chars.next()) {
        (Some('-'), Some(short)) => {
            let spec = options::lookup_short(short).ok_or_else(|| ConfigError::UnknownFlag {
                flag: format!("-{short}"),
                suggestion: None,
            })?;
            let rest = chars.as_str();
            let inline = rest.strip_prefix('=').unwrap_or(rest);
            Ok(Some((spec, format!("-{short}"), (!inline.is_empty()).then(|| inline.to_string()))))
        }
        _ => Ok(None),
    }
}

/// The next argument as an optional value (`--chmod-socket 660`), unless it
/// is another flag (`--chmod-socket --vacuum`).
fn take_unless_flag(
    args: &mut std::iter::Peekable<impl Iterator<Item = Result<String, ConfigError>>>,
) -> Result<Option<String>, ConfigError> {
    match args.peek() {
        Some(Ok(next)) if !next.starts_with('-') => args.next().transpose(),
        _ => Ok(None),
    }
}

impl Invocation {
    /// Reads the environment (`UWSGI_*`/`RWSGI_*` options, `UWSGI_INI`
    /// files; and `vars` fill `$(VAR)` placeholders), then the command
    /// line in order, config files read where they are named, and resolves
    /// it all into one config. `reload`: this master was re-executed by a
    /// reload (`if-reload`).
    pub fn load(self, vars: &[(String, String)], reload: bool) -> Result<Loaded, ConfigError> {
        let getenv =
            |name: &str| vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let mut reader = Reader::new(&getenv, reload);
        for (key, value, at) in env::options(vars) {
            reader.feed(&key, Some(value), at, Layer::Env);
        }
        for (key, value, at) in self.args {
            reader.feed(&key, value, at, Layer::Flag);
        }
        let (items, referenced, mut diag) = reader.finish();
        diag.errors.splice(0..0, self.unknown);
        config::resolve(items, referenced, diag, &getenv)
    }
}
