//! The `rwsgi` binary: the command line ([`rwsgi_cli`]) with the Python it
//! was built against embedded. (The Python package's `rwsgi` runs the same
//! command line inside the interpreter that starts it.)

/// Requests allocate on the I/O thread and free on a Python thread (and back);
/// mimalloc handles that cross-thread traffic far better than glibc's arenas
/// (measured: malloc fell from 7% of a hello-world profile). Built without
/// its transparent-huge-page advice (see the workspace `Cargo.toml`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let status = rwsgi_cli::main(std::env::args_os().collect(), rwsgi_cli::Launch::Binary);
    std::process::ExitCode::from(status)
}
