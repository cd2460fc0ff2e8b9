//! `rwsgi`'s command line. It speaks uWSGI's option names and reads its
//! ini, YAML and JSON files, so an existing `uwsgi ...` command line or
//! `uwsgi.ini` runs unchanged with `rwsgi ...`.
//!
//! Two front doors run it: the `rwsgi` binary, which embeds the Python it
//! was built against, and the Python package's console script (`pip
//! install rwsgi`), which runs inside the interpreter that started it.
//! [`Launch`] says which, so a reload starts the same way again.

mod allocator;
mod settings;

pub use allocator::Allocator;
use rwsgi_config::{Command, options};
pub use rwsgi_master::Launch;
use settings::Settings;
use std::ffi::OsString;
use std::sync::Arc;

/// Runs the command line `args` (the program's name first) to the end;
/// returns the exit status.
pub fn main(args: Vec<OsString>, launch: Launch) -> u8 {
    rwsgi_master::set_launch(launch);
    let invocation = match rwsgi_config::parse_args(args.into_iter().skip(1)) {
        Ok(Command::Run(invocation)) => invocation,
        Ok(Command::Help) => return print_and_succeed(&options::help_text()),
        Ok(Command::HelpOptions) => return print_and_succeed(&options::options_text()),
        Ok(Command::Version) => {
            return print_and_succeed(&format!("rwsgi {}\n", env!("CARGO_PKG_VERSION")));
        }
        Ok(Command::Signal { signal, pidfile }) => {
            return match rwsgi_master::signal_pidfile(&pidfile, signal == "reload") {
                Ok(pid) => print_and_succeed(&format!("rwsgi: sent {signal} to {pid}\n")),
                Err(err) => fail(&format!("--{signal}: {err}")),
            };
        }
        Err(err) => return fail(&err.to_string()),
    };
    let (print_config, check_config) = (invocation.print_config, invocation.check_config);
    // Variables that are not UTF-8 cannot name options or fill placeholders.
    let vars: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)))
        .collect();
    let loaded = match invocation.load(&vars, rwsgi_master::is_reexec()) {
        Ok(loaded) => loaded,
        Err(err) => return fail_config(err),
    };
    // Colours only on a terminal that stays one: not into a log file.
    let process = &loaded.config.process;
    let to_file = process.logto.is_some()
        || process.logto2.is_some()
        || process.daemonize.is_some()
        || process.logger.iter().any(|logger| logger != "stdio");
    init_logging(!to_file && std::io::IsTerminal::is_terminal(&std::io::stderr()));
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    // The config language's own output: `print`, then `exit` or `get`.
    for line in &loaded.prints {
        println!("{line}");
    }
    if let Some(code) = loaded.exit {
        return u8::try_from(code).unwrap_or(1);
    }
    if let Some(values) = &loaded.gets {
        return print_and_succeed(&values.iter().map(|v| format!("{v}\n")).collect::<String>());
    }
    if print_config {
        return print_and_succeed(&loaded.render());
    }
    let settings = match Settings::new(&loaded) {
        Ok(settings) => settings,
        Err(message) => return fail(&message),
    };
    if check_config {
        return match settings.check(&loaded) {
            Ok(()) => print_and_succeed("rwsgi: the config is valid\n"),
            Err(message) => fail(&message),
        };
    }
    match run(settings) {
        Ok(()) => 0,
        Err(message) => {
            tracing::error!("{message}");
            1
        }
    }
}

/// Prints `text` on stdout; a reader that went away (`| head`) is no error.
fn print_and_succeed(text: &str) -> u8 {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    0
}

/// A config that cannot be served, reported whole: its warnings, then
/// every problem found, the socket addresses' among them when the rest
/// could be read.
fn fail_config(err: rwsgi_config::ConfigError) -> u8 {
    let mut lines = err.lines();
    if let rwsgi_config::ConfigError::Invalid { warnings, partial, .. } = &err {
        for warning in warnings {
            eprintln!("rwsgi: warning: {warning}");
        }
        if let Some(Err(more)) = partial.as_deref().map(Settings::new) {
            lines.extend(more.lines().map(str::to_string));
        }
    }
    fail(&lines.join("\n"))
}

/// A config error: one line on stderr per problem, exit status 1.
fn fail(message: &str) -> u8 {
    for line in message.lines() {
        eprintln!("rwsgi: {line}");
    }
    1
}

/// Logs go to stderr, as uWSGI's do; `RUST_LOG` refines the level. A
/// line that cannot be written (stderr a pipe nobody reads any more) is
/// lost, never reported: the report would go to the same broken stderr
/// with `eprintln!`, which panics, and a panic in a stop would leave the
/// process behind.
fn init_logging(ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .log_internal_errors(false)
        .init();
}

fn run(settings: Settings) -> Result<(), String> {
    let Settings { server, app, pool, master, front, .. } = &settings;
    let front = Arc::clone(front);
    rwsgi_master::run(master.clone(), server.clone(), app.clone(), pool.clone(), front).map_err(
        |err| match &err {
            rwsgi_master::MasterError::Server(bind) => settings.describe_bind_error(bind),
            _ => err.to_string(),
        },
    )
}
