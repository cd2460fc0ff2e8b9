//! `rwsgi`: the command line. It speaks uWSGI's option names, so an existing
//! `uwsgi ...` command line runs unchanged with `rwsgi ...`.

mod cli;

/// Requests allocate on the I/O thread and free on a Python thread (and back);
/// mimalloc handles that cross-thread traffic far better than glibc's arenas
/// (measured: malloc fell from 7% of a hello-world profile).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = match cli::Args::try_parse() {
        Ok(args) => args,
        Err(err) => return cli::report_parse_error(err),
    };
    cli::init_logging(&args);
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: cli::Args) -> Result<(), String> {
    let (server, app, pool, master) = args.into_configs()?;
    rwsgi_master::run(master, server, app, pool).map_err(|e| e.to_string())
}
