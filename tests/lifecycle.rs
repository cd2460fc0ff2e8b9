//! The signal table holds in every process shape: shapes × signals × what
//! the app is doing when the signal comes. Each case checks how long the
//! exit took, its status, what the log says and that no process is left.
//!
//! `reload-mercy` is 1 s: a graceful stop (SIGTERM, SIGINT) ends within it
//! and exits 0 when everything finished, or cuts what is still running at
//! the end of it (the request and its Python stack logged) and exits 1;
//! SIGQUIT ends at once, status 0.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, PROBE, Server, Signal, marked_processes, wait_until};
use std::time::{Duration, Instant};

const MERCY: &str = "1";

/// What the app is doing when the signal comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum App {
    Idle,
    /// A request that ends within the mercy: it must be answered.
    Finishing,
    /// Stuck in Python: sleeping (a C call that releases the GIL), in a
    /// tight loop, in a blocking socket read, in a C call that holds the
    /// GIL.
    Sleeping,
    Spinning,
    Reading,
    HoldingGil,
    /// Streaming a response to a client that does not read it.
    Unread,
}

impl App {
    fn target(self) -> Option<&'static str> {
        match self {
            App::Idle => None,
            App::Finishing => Some("/sleep?s=0.4"),
            App::Sleeping => Some("/sleep?s=60&mark=1"),
            App::Spinning => Some("/spin?s=60&mark=1"),
            App::Reading => Some("/block-read?s=60&mark=1"),
            App::HoldingGil => Some("/gil-sleep?s=60&mark=1"),
            App::Unread => Some("/big-stream?n=100000&size=65536"),
        }
    }

    fn stuck(self) -> bool {
        !matches!(self, App::Idle | App::Finishing)
    }
}

/// One row of the table: what a signal does to an app in some state.
struct Case {
    signal: Signal,
    app: App,
}

const CASES: &[Case] = &[
    Case { signal: Signal::SIGTERM, app: App::Idle },
    Case { signal: Signal::SIGTERM, app: App::Finishing },
    Case { signal: Signal::SIGTERM, app: App::Sleeping },
    Case { signal: Signal::SIGTERM, app: App::Spinning },
    Case { signal: Signal::SIGTERM, app: App::Reading },
    Case { signal: Signal::SIGTERM, app: App::HoldingGil },
    Case { signal: Signal::SIGTERM, app: App::Unread },
    Case { signal: Signal::SIGINT, app: App::Idle },
    Case { signal: Signal::SIGINT, app: App::Sleeping },
    Case { signal: Signal::SIGQUIT, app: App::Idle },
    Case { signal: Signal::SIGQUIT, app: App::Spinning },
];

/// Runs every case in one process shape (`args` besides the app's).
fn table(shape: &str, args: &[&str]) {
    let mut failures = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        if let Err(why) = run_case(shape, args, case, n) {
            failures.push(format!("{:?} with the app {:?}: {why}", case.signal, case.app));
        }
    }
    assert!(failures.is_empty(), "{shape}:\n{}", failures.join("\n\n"));
}

fn run_case(shape: &str, args: &[&str], case: &Case, n: usize) -> Result<(), String> {
    let mark = format!("lifecycle-{}-{shape}-{n}", std::process::id());
    let mut all =
        vec!["--wsgi-file", PROBE, "--reload-mercy", MERCY, "--worker-reload-mercy", MERCY];
    all.extend_from_slice(args);
    let mut server = Server::start_env(&all, &[("TEST_PROCESS_MARK", &mark)]);
    if args.contains(&"--master") {
        assert!(server.wait_log("worker(s) serving", Duration::from_secs(20)), "{}", server.log());
    }
    // The request, from a thread of its own: (status, body length) if it
    // was answered.
    let request = case.app.target().map(|target| {
        let mut conn = Conn::open(server.addr());
        conn.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        conn
    });
    // An unread response's connection is held open, never read.
    let mut _unread = None;
    let answer = match (case.app, request) {
        (App::Unread, Some(conn)) => {
            _unread = Some(conn);
            // The response fills the socket's buffers meanwhile.
            std::thread::sleep(Duration::from_millis(500));
            None
        }
        (_, Some(mut conn)) => Some(std::thread::spawn(move || {
            conn.set_timeout(Duration::from_secs(10));
            conn.try_read_response(false).ok().map(|r| (r.status, r.body.len()))
        })),
        (_, None) => None,
    };
    if case.app.stuck() && case.app != App::Unread {
        if !server.wait_log("sleep started", Duration::from_secs(5)) {
            return Err(format!("the request never started:\n{}", server.log()));
        }
    } else if case.app == App::Finishing {
        std::thread::sleep(Duration::from_millis(100));
    }
    let signalled = Instant::now();
    server.signal(case.signal);
    let status = server.wait_exit(Duration::from_secs(10));
    let took = signalled.elapsed();
    let log = server.log();
    let Some(status) = status else {
        return Err(format!("still running 10 s after the signal:\n{log}"));
    };
    let graceful = case.signal != Signal::SIGQUIT;
    let (bound, want) = match (graceful, case.app.stuck()) {
        // The mercy, the stacks' grace and a margin for a loaded machine.
        (true, true) => (Duration::from_millis(3000), Some(1)),
        (true, false) => (Duration::from_millis(1500), Some(0)),
        (false, _) => (Duration::from_millis(2000), Some(0)),
    };
    if took > bound {
        return Err(format!("exited after {took:?} (bound {bound:?}):\n{log}"));
    }
    if status.code() != want {
        return Err(format!("exit status {status} (want {want:?}):\n{log}"));
    }
    if graceful && case.app.stuck() && case.app != App::Unread {
        let path = case.app.target().unwrap().split('?').next().unwrap();
        if !log.contains(&format!("cut: GET {path}")) {
            return Err(format!("the cut request is not logged:\n{log}"));
        }
        if !log.contains("(most recent call first)") || !log.contains("probe.py") {
            return Err(format!("no Python stack in the log:\n{log}"));
        }
    }
    if let Some(answer) = answer {
        let got = answer.join().unwrap();
        if case.app == App::Finishing && graceful && got != Some((200, "slept".len())) {
            return Err(format!("the request in flight was not answered ({got:?}):\n{log}"));
        }
    }
    if !wait_until(Duration::from_secs(5), || marked_processes(&mark).is_empty()) {
        return Err(format!("processes left: {:?}", marked_processes(&mark)));
    }
    Ok(())
}

#[test]
fn no_master_one_thread() {
    table("no master, 1 thread (requests run inline)", &[]);
}

#[test]
fn no_master_two_threads() {
    table("no master, 2 threads", &["--threads", "2"]);
}

#[test]
fn master_one_worker() {
    table("master, 1 worker", &["--master"]);
}

#[test]
fn master_two_workers_of_two_threads() {
    table("master, 2 workers of 2 threads", &["--master", "--processes", "2", "--threads", "2"]);
}

/// Without a master, SIGHUP says it reloads nothing, and the process
/// serves on; with one, it reloads (tests/process_model.rs).
#[test]
fn sighup_without_a_master_says_so_and_serves_on() {
    let server = Server::probe(&[]);
    server.signal(Signal::SIGHUP);
    assert!(
        server.wait_log("SIGHUP: without a master", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    assert_eq!(server.get("/closing").text(), "ab");
}

/// A stop whose log has nowhere to go (stderr a pipe nobody reads any
/// more: a dead `| tee`, a restarted collector) still ends every process
/// in time: writing a line fails quietly, and a cut still ends the stop.
#[test]
fn a_stop_with_stderr_gone_still_ends_every_process() {
    use std::io::BufRead;
    for shape in [&[][..], &["--master", "--processes", "2"][..]] {
        let mark = format!("lifecycle-{}-stderr-{}", std::process::id(), shape.len());
        let port = common::free_port();
        let mut child = std::process::Command::new(common::rwsgi_bin())
            .args(["--wsgi-file", PROBE, "--http-socket", &format!("127.0.0.1:{port}")])
            .args(["--reload-mercy", MERCY, "--worker-reload-mercy", MERCY, "--threads", "2"])
            .args(shape)
            .env("TEST_PROCESS_MARK", &mark)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // stderr is read line by line until the request is running, then
        // closed: from then on every line rwsgi writes fails.
        let (lines, seen) = std::sync::mpsc::channel();
        let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let reader = std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                let started = line.contains("sleep started");
                let _ = lines.send(line);
                if started {
                    return;
                }
            }
        });
        let ready = if shape.is_empty() { "listening on" } else { "worker(s) serving" };
        let wait_for = |needle: &str| loop {
            match seen.recv_timeout(Duration::from_secs(20)) {
                Ok(line) if line.contains(needle) => break,
                Ok(_) => {}
                Err(_) => panic!("{shape:?}: no {needle:?} on stderr"),
            }
        };
        wait_for(ready);
        let mut conn = Conn::open(&format!("127.0.0.1:{port}"));
        conn.send("GET /sleep?s=30&mark=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        wait_for("sleep started");
        reader.join().unwrap();
        let signalled = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
            Signal::SIGTERM,
        )
        .unwrap();
        let exited = wait_until(Duration::from_secs(10), || child.try_wait().unwrap().is_some());
        assert!(exited, "{shape:?}: still running 10 s after SIGTERM");
        assert_eq!(child.wait().unwrap().code(), Some(1), "{shape:?}: a cut stop exits 1");
        assert!(
            wait_until(Duration::from_secs(5), || marked_processes(&mark).is_empty()),
            "{shape:?}: processes left {:?} after {:?}",
            marked_processes(&mark),
            signalled.elapsed()
        );
        drop(conn);
    }
}
