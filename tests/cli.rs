//! The command line: uWSGI-spelled options, startup failures (one line,
//! exit status 1), sockets, signals and interpreter settings.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, Server, Signal, TempDir, mode_of, repo_path, run_rwsgi, wait_until};
use std::time::{Duration, Instant};

const CLI_APP: &str = "tests/apps/cli_app.py";

/// Asserts a failed start: exit status 1 and exactly one line on stderr
/// containing every one of `needles`.
fn assert_one_line_failure(args: &[&str], needles: &[&str]) -> String {
    common::assert_one_line_failure(args, &[], needles)
}

#[test]
fn help_and_version_succeed() {
    let help = run_rwsgi(&["--help"], &[]);
    assert!(help.status.success(), "{help:?}");
    for option in ["--http-socket", "--wsgi-file", "--module", "--threads", "--buffer-size"] {
        assert!(help.stdout.contains(option), "--help lacks {option}: {}", help.stdout);
    }
    let version = run_rwsgi(&["--version"], &[]);
    assert!(version.status.success(), "{version:?}");
    assert_eq!(version.stdout.trim(), format!("rwsgi {}", env!("CARGO_PKG_VERSION")));
}

#[test]
fn unknown_flag_is_one_line_and_status_1() {
    assert_one_line_failure(&["--no-such-flag", "--wsgi-file", CLI_APP], &["--no-such-flag"]);
}

#[test]
fn bad_option_values_are_one_line_and_status_1() {
    assert_one_line_failure(&["--env", "NOEQUALS", "--wsgi-file", CLI_APP], &["NOEQUALS"]);
    assert_one_line_failure(&["--threads", "-1", "--wsgi-file", CLI_APP], &["\"-1\""]);
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", CLI_APP, "--chmod-socket=999"],
        &["999"],
    );
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:notaport", "--wsgi-file", CLI_APP],
        &["notaport"],
    );
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", CLI_APP, "--buffer-size", "100"],
        &["buffer-size"],
    );
}

#[test]
fn missing_wsgi_file_is_one_line_and_status_1() {
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", "tests/apps/no_such_app.py"],
        &["no_such_app.py"],
    );
}

#[test]
fn import_error_is_a_summary_without_traceback() {
    let line = assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", "tests/apps/broken_import.py"],
        &["ModuleNotFoundError", "module_that_does_not_exist", "broken_import.py"],
    );
    assert!(!line.contains("Traceback (most recent call last)"), "{line}");
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--module", "no_such_module_anywhere"],
        &["ModuleNotFoundError", "no_such_module_anywhere"],
    );
}

#[test]
fn non_callable_and_missing_callable_fail() {
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", "tests/apps/not_callable.py"],
        &["not callable"],
    );
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", CLI_APP, "--callable", "nope"],
        &["nope"],
    );
}

#[test]
fn no_app_or_no_socket_fails() {
    assert_one_line_failure(&["--http-socket", "127.0.0.1:0"], &["--wsgi-file"]);
    assert_one_line_failure(&["--wsgi-file", CLI_APP], &["--http-socket"]);
}

#[test]
fn port_only_binds_all_interfaces() {
    let server = Server::start(&["--http-socket", ":0", "--wsgi-file", CLI_APP]);
    let addr = server.addr().to_string();
    let port = addr.strip_prefix("0.0.0.0:").unwrap_or_else(|| panic!("logged {addr}"));
    assert_ne!(port, "0");
    let response = Conn::open(&format!("127.0.0.1:{port}"))
        .tap_send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        .read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "default callable"));
}

#[test]
fn http_alias_and_two_sockets_both_serve() {
    let server = Server::start(&[
        "--http",
        "127.0.0.1:0",
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        CLI_APP,
    ]);
    assert_eq!(server.addrs().len(), 2, "{:?}", server.addrs());
    assert_ne!(server.addrs()[0], server.addrs()[1]);
    for addr in server.addrs() {
        let response = Conn::open(addr)
            .tap_send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            .read_response();
        assert_eq!((response.status, response.text().as_str()), (200, "default callable"));
    }
}

#[test]
fn unix_socket_chmod_and_vacuum() {
    let dir = TempDir::new("unix");
    let path = dir.join("app.sock");
    let mut server = Server::start(&[
        "--http-socket",
        &path,
        "--chmod-socket=660",
        "--vacuum",
        "--wsgi-file",
        CLI_APP,
    ]);
    assert_eq!(server.unix_path(), Some(path.as_str()));
    assert_eq!(mode_of(&path), 0o660, "socket mode");
    let response = server.get("/");
    assert_eq!((response.status, response.text().as_str()), (200, "default callable"));
    let status = server.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(!std::path::Path::new(&path).exists(), "--vacuum left {path}");
}

#[test]
fn unix_socket_without_vacuum_stays_and_bare_chmod_is_666() {
    let dir = TempDir::new("unix");
    let path = dir.join("app.sock");
    let mut server =
        Server::start(&["--http-socket", &path, "--chmod-socket", "--wsgi-file", CLI_APP]);
    assert_eq!(mode_of(&path), 0o666, "socket mode for a bare --chmod-socket");
    assert_eq!(server.get("/").status, 200);
    assert!(server.stop(Signal::SIGTERM).success());
    assert!(std::path::Path::new(&path).exists(), "the socket file went without --vacuum");
}

/// A request in flight when `signal` arrives completes; new connections are
/// refused meanwhile; the exit status is 0.
fn graceful_stop(signal: Signal) {
    let mut server = Server::probe(&["--threads", "2"]);
    let addr = server.addr().to_string();
    let in_flight = std::thread::spawn(move || {
        let mut conn = Conn::open(&addr);
        conn.send(b"GET /sleep?s=2&mark=1 HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = conn.read_response();
        (response, Instant::now())
    });
    assert!(server.log_contains("sleep started"), "the request did not start");
    server.signal(signal);
    let port = server.port();
    let refused = wait_until(Duration::from_millis(1500), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err()
    });
    let (response, answered) = in_flight.join().unwrap();
    let status = server.wait_exit(Duration::from_secs(15)).expect("rwsgi did not exit");
    let exited = Instant::now();
    assert!(status.success(), "exit status after {signal}: {status}");
    assert_eq!((response.status, response.text().as_str()), (200, "slept"), "{response:?}");
    assert!(response.complete);
    assert!(answered <= exited);
    assert!(refused, "still accepting connections after {signal}");
    assert!(server.log().contains("shutting down"), "{}", server.log());
}

#[test]
fn sigterm_is_graceful() {
    graceful_stop(Signal::SIGTERM);
}

#[test]
fn sigint_is_graceful() {
    graceful_stop(Signal::SIGINT);
}

#[test]
fn sigquit_is_immediate() {
    let mut server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /sleep?s=30&mark=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(server.log_contains("sleep started"));
    let sent = Instant::now();
    server.signal(Signal::SIGQUIT);
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some(), "SIGQUIT did not stop rwsgi within 5 s (a 30 s request ran)");
    assert!(sent.elapsed() < Duration::from_secs(5));
    let (data, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed && data.is_empty(), "{data:?}");
}

#[test]
fn module_with_pythonpath() {
    for module in ["probe", "probe:application"] {
        let server = Server::start(&["--pythonpath", "tests/apps", "--module", module]);
        let response = server.get("/closing");
        assert_eq!((response.status, response.text().as_str()), (200, "ab"), "{module}");
    }
}

#[test]
fn callable_option_and_module_callable() {
    let server = Server::start(&["--wsgi-file", CLI_APP, "--callable", "custom"]);
    assert_eq!(server.get("/").text(), "custom callable");
    let server = Server::start(&["--pythonpath", "tests/apps", "--module", "cli_app:custom"]);
    assert_eq!(server.get("/").text(), "custom callable");
    let server = Server::start(&["--pythonpath", "tests/apps", "--module", "cli_app"]);
    assert_eq!(server.get("/").text(), "default callable");
}

#[test]
fn chdir_happens_before_loading() {
    // The file name is relative to the new directory: it loads only if the
    // chdir came first.
    let server = Server::start(&["--chdir", "tests/apps", "--wsgi-file", "cli_app.py"]);
    let cwd = server.get("/cwd").text();
    let want = std::fs::canonicalize(repo_path("tests/apps")).unwrap();
    assert_eq!(std::fs::canonicalize(&cwd).unwrap(), want);
}

#[test]
fn env_option_sets_os_environ() {
    let server = Server::start(&[
        "--wsgi-file",
        CLI_APP,
        "--env",
        "RWSGI_TEST_KEY=some value=with equals",
        "--env",
        "RWSGI_OTHER=2",
    ]);
    assert_eq!(server.get("/env?key=RWSGI_TEST_KEY").text(), "some value=with equals");
    assert_eq!(server.get("/env?key=RWSGI_OTHER").text(), "2");
    assert_eq!(server.get("/env?key=RWSGI_NOT_SET_ANYWHERE").text(), "<unset>");
}

/// Where `flask` comes from and `sys.prefix`, as the app sees them.
fn flask_origin(server: &Server) -> (Option<String>, String) {
    let report = server.get("/flask").json();
    (report["flask"].as_str().map(str::to_string), report["prefix"].as_str().unwrap().to_string())
}

/// The test virtualenv, canonical, and a check that a path lies inside it.
fn test_venv() -> Option<(String, impl Fn(&str) -> bool)> {
    let venv = common::venv()?;
    let venv_dir = std::fs::canonicalize(&venv).unwrap();
    let inside = move |p: &str| std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(&venv_dir));
    Some((venv.to_string_lossy().into_owned(), inside))
}

/// Without `home`, the app runs in the interpreter rwsgi runs in: the
/// binary's embedded one (not the test virtualenv), or the virtualenv the
/// wheel's `rwsgi` is installed in.
#[test]
fn without_home_the_app_runs_in_rwsgis_own_interpreter() {
    let Some((_, in_venv)) = test_venv() else { return };
    let plain = Server::start(&["--wsgi-file", CLI_APP]);
    let (flask, prefix) = flask_origin(&plain);
    match common::tested_venv() {
        Some(own) => {
            let own = std::fs::canonicalize(own).unwrap();
            assert_eq!(std::fs::canonicalize(&prefix).unwrap(), own, "sys.prefix");
            let inside = |p: &str| std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(&own));
            assert!(flask.as_deref().is_none_or(inside), "{flask:?}");
        }
        None => {
            // flask may be importable from the system Python, not from the venv.
            assert!(!in_venv(&prefix), "sys.prefix {prefix} without --home");
            assert!(flask.as_deref().is_none_or(|f| !in_venv(f)), "{flask:?}");
        }
    }
}

#[test]
fn home_activates_the_virtualenv() {
    let Some((venv, in_venv)) = test_venv() else { return };
    for option in ["--home", "--virtualenv", "--venv"] {
        let server = Server::start(&["--wsgi-file", CLI_APP, option, &venv]);
        let (flask, prefix) = flask_origin(&server);
        let flask = flask.unwrap_or_else(|| panic!("{option}: flask not importable"));
        assert!(in_venv(&flask), "{option}: flask from {flask}");
        assert!(in_venv(&prefix), "{option}: sys.prefix {prefix}");
    }
}

#[test]
fn virtual_env_variable_activates_it() {
    let Some((venv, in_venv)) = test_venv() else { return };
    let server = Server::start_env(&["--wsgi-file", CLI_APP], &[("VIRTUAL_ENV", &venv)]);
    let (flask, prefix) = flask_origin(&server);
    assert!(flask.as_deref().is_some_and(&in_venv), "VIRTUAL_ENV: flask from {flask:?}");
    assert!(in_venv(&prefix), "VIRTUAL_ENV: sys.prefix {prefix}");
}

#[test]
fn nonexistent_home_fails() {
    assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", CLI_APP, "--home", "/no/such/venv"],
        &["/no/such/venv"],
    );
}

/// Sends on a fresh connection and returns it, for one-liners.
trait TapSend {
    fn tap_send(self, data: &[u8]) -> Self;
}

impl TapSend for Conn {
    fn tap_send(mut self, data: &[u8]) -> Self {
        self.send(data);
        self
    }
}

#[test]
fn ipv6_loopback_socket() {
    let server = Server::start(&["--http-socket", "[::1]:0", "--wsgi-file", CLI_APP]);
    assert!(server.addr().starts_with("[::1]:"), "{}", server.addr());
    assert_eq!(server.get("/").text(), "default callable");
}

#[test]
fn uwsgi_options_are_accepted() {
    let server = Server::start(&[
        "--wsgi-file",
        CLI_APP,
        "--master",
        "--processes",
        "2",
        "--die-on-term",
        "--listen",
        "64",
        "--buffer-size",
        "32768",
        "--post-buffering",
        "4096",
        "--reload-mercy",
        "5",
    ]);
    assert_eq!(server.get("/").text(), "default callable");
}

#[test]
fn disable_logging_drops_request_lines() {
    let server = Server::probe(&["--disable-logging"]);
    assert_eq!(server.get("/closing").text(), "ab");
    assert_eq!(server.get("/errors").text(), "logged");
    // wsgi.errors still reaches the log; request lines do not.
    assert!(server.log_contains("second error line"));
    assert!(!server.log().contains(" GET /closing => generated"), "{}", server.log());
}

#[test]
fn sigterm_closes_idle_keep_alive_connections() {
    let mut server = Server::probe(&[]);
    let mut conn = server.conn();
    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(conn.read_response().text(), "ab");
    let sent = Instant::now();
    let status = server.stop(Signal::SIGTERM);
    assert!(status.success());
    assert!(sent.elapsed() < Duration::from_secs(3), "an idle connection delayed the exit");
    let (data, closed) = conn.read_until_close(Duration::from_secs(2));
    assert!(closed && data.is_empty());
}

#[test]
fn reload_mercy_bounds_the_graceful_wait() {
    let mut server = Server::probe(&["--reload-mercy", "1", "--threads", "2"]);
    let mut conn = server.conn();
    conn.send(b"GET /sleep?s=20&mark=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert!(server.log_contains("sleep started"));
    let sent = Instant::now();
    server.signal(Signal::SIGTERM);
    let status = server.wait_exit(Duration::from_secs(8));
    let elapsed = sent.elapsed();
    assert!(status.is_some(), "still running {elapsed:?} after SIGTERM with --reload-mercy 1");
    assert!(elapsed >= Duration::from_millis(900), "did not wait for the request: {elapsed:?}");
    let (data, closed) = conn.read_until_close(Duration::from_secs(2));
    assert!(closed, "{data:?}");
}
