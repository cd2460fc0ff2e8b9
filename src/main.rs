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
    let (server, app, pool) = args.into_configs()?;
    // Before any other thread exists, so the runtime and the Python threads
    // (and the app's own) inherit it.
    rwsgi_server::prefer_batching();
    let listeners = rwsgi_server::bind(&server).map_err(|e| e.to_string())?;
    let unix_paths: Vec<_> =
        listeners.iter().filter_map(|l| l.unix_path().map(ToOwned::to_owned)).collect();
    let vacuum = server.vacuum;
    let result = rwsgi_python::load_app(&app)
        .and_then(|app| rwsgi_python::PythonPool::start(app, pool))
        .map_err(|e| e.to_string())
        .and_then(|pool| {
            rwsgi_server::serve(listeners, pool.jobs(), server).map_err(|e| e.to_string())
        });
    if vacuum {
        for path in unix_paths {
            let _ = std::fs::remove_file(path);
        }
    }
    result
}
