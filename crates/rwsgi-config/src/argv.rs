//! The command line, driven by the option table: `--opt value`,
//! `--opt=value`, short flags (`-s ADDR`, `-sADDR`), `--flag` alone for
//! true, and a bare config file argument (`rwsgi app.ini`).

use crate::entry::Entry;
use crate::env;
use crate::error::{ConfigError, Source};
use crate::files::{FileReader, FileRef, Format};
use crate::options::{self, Kind, OptionSpec};
use crate::{Loaded, config};
use std::ffi::OsString;

/// What the command line asks for.
#[derive(Debug)]
pub enum Command {
    Help,
    HelpOptions,
    Version,
    Run(Invocation),
}

/// A command line that asks to serve (or check, or print) a config.
#[derive(Debug, Default)]
pub struct Invocation {
    /// `--ini`, `--yaml`, `--json` and bare file arguments, in order.
    pub files: Vec<FileRef>,
    flags: Vec<Entry>,
    /// `--print-config`: print the resolved config and exit.
    pub print_config: bool,
    /// `--check-config`: validate and exit.
    pub check_config: bool,
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
    while let Some(arg) = args.next() {
        let arg = arg?;
        let (spec, typed, inline) = match arg.as_str() {
            "-h" | "--help" => return Ok(Command::Help),
            "-V" | "--version" => return Ok(Command::Version),
            "--help-options" => return Ok(Command::HelpOptions),
            _ => match split_flag(&arg)? {
                Some(found) => found,
                None => {
                    let format = Format::of_path(&arg)
                        .ok_or_else(|| ConfigError::UnexpectedArgument(arg.clone()))?;
                    invocation.files.push(FileRef::new(&arg, format, Source::Flag(arg.clone())));
                    continue;
                }
            },
        };
        let at = Source::Flag(typed.clone());
        let value =
            match inline {
                Some(value) => Some(value),
                None if spec.kind == Kind::Flag || spec.kind == Kind::Action => None,
                None if spec.bare.is_some() => take_unless_flag(&mut args)?,
                None => Some(args.next().transpose()?.ok_or_else(|| {
                    ConfigError::MissingValue { at: at.clone(), option: spec.name }
                })?),
            };
        match (spec.name, spec.kind) {
            ("print-config", _) => invocation.print_config = true,
            ("check-config", _) => invocation.check_config = true,
            (name, Kind::Include) => {
                let value = value
                    .ok_or_else(|| ConfigError::MissingValue { at: at.clone(), option: name })?;
                invocation.files.push(FileRef::new(&value, Format::of_option(name), at));
            }
            _ => invocation.flags.push(Entry { spec, value, at }),
        }
    }
    Ok(Command::Run(invocation))
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
    /// Reads the files (those named by `UWSGI_INI` and friends first), then
    /// `vars` (the environment, for `UWSGI_*` and `RWSGI_*` options and
    /// `$(VAR)` placeholders), then the flags, and resolves them into one
    /// config.
    pub fn load(self, vars: &[(String, String)]) -> Result<Loaded, ConfigError> {
        let getenv =
            |name: &str| vars.iter().find(|(key, _)| key == name).map(|(_, value)| value.clone());
        let from_env = env::read(vars);
        let mut reader = FileReader::new(&getenv);
        // uWSGI reads the environment before argv: UWSGI_INI comes first.
        for file in from_env.files.iter().chain(&self.files) {
            reader.read(file)?;
        }
        let mut entries = reader.finish()?;
        entries.extend(from_env.entries);
        entries.extend(self.flags);
        config::resolve(entries, from_env.warnings)
    }
}
