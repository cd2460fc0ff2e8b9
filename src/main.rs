//! The `rwsgi` binary: the command line ([`rwsgi_cli`]) with the Python it
//! was built against embedded. (The Python package's `rwsgi` runs the same
//! command line inside the interpreter that starts it.)

/// mimalloc (see [`rwsgi_cli::Allocator`]).
#[global_allocator]
static ALLOCATOR: rwsgi_cli::Allocator = rwsgi_cli::Allocator;

fn main() -> std::process::ExitCode {
    let status = rwsgi_cli::main(std::env::args_os().collect(), rwsgi_cli::Launch::Binary);
    std::process::ExitCode::from(status)
}
