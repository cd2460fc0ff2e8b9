//! Configuration through the real binary: ini/YAML files serving, the bare
//! file argument, precedence shown by `--print-config`, `--check-config`,
//! and every config error as one line naming its source.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, TempDir, assert_one_line_failure, repo_path, run_rwsgi};

/// Writes `text` as `name` in `dir`; returns its path.
fn write(dir: &TempDir, name: &str, text: &str) -> String {
    dir.write(name, text)
}

/// An ini file serving the CLI test app, plus `extra` lines.
fn app_ini(dir: &TempDir, extra: &str) -> String {
    let app = repo_path("tests/apps/cli_app.py");
    write(dir, "app.ini", &format!("[uwsgi]\nwsgi-file = {app}\n{extra}"))
}

#[test]
fn two_http_sockets_from_an_ini_file_both_serve() {
    let dir = TempDir::new("cfg");
    let ini = app_ini(&dir, "http-socket = 127.0.0.1:0\n; the second\nhttp-socket = 127.0.0.1:0\n");
    let server = Server::start_listening(&["--ini", &ini], &[], 2);
    assert_eq!(server.addrs().len(), 2, "{:?}", server.addrs());
    assert_ne!(server.http_addr(0), server.http_addr(1));
    for n in 0..2 {
        let mut conn = common::Conn::open(server.http_addr(n));
        conn.send(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n");
        let response = conn.read_response();
        assert_eq!((response.status, response.text().as_str()), (200, "default callable"));
    }
}

#[test]
fn a_bare_ini_argument_serves_all_three_protocols() {
    let dir = TempDir::new("cfg");
    let ini = app_ini(
        &dir,
        "http-socket = 127.0.0.1:0\nsocket = 127.0.0.1:0\nfastcgi-socket = 127.0.0.1:0\nthreads = 2\n",
    );
    let server = Server::start_listening(&[&ini], &[], 3);
    assert_eq!(server.get("/").text(), "default callable");
    assert_eq!(server.uwsgi_get("/").text(), "default callable");
    assert_eq!(server.fastcgi_get("/").text(), "default callable");
}

#[test]
fn a_yaml_file_serves() {
    let dir = TempDir::new("cfg");
    let app = repo_path("tests/apps/cli_app.py");
    let yaml = write(
        &dir,
        "app.yaml",
        &format!("uwsgi:\n  http-socket: 127.0.0.1:0\n  wsgi-file: {app}\n  callable: custom\n"),
    );
    let server = Server::start_listening(&[&yaml], &[], 1);
    assert_eq!(server.get("/").text(), "custom callable");
}

#[test]
fn print_config_shows_file_env_flag_precedence() {
    let dir = TempDir::new("cfg");
    let ini = app_ini(&dir, "http-socket = :8000\nthreads = 2\nlisten = 10\nbuffer-size = 8192\n");
    let out = run_rwsgi(
        &["--print-config", &ini, "--buffer-size", "16384"],
        &[("UWSGI_LISTEN", "20"), ("UWSGI_BUFFER_SIZE", "4096"), ("RWSGI_HTTP_SOCKET", ":8001")],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(out.stderr.trim().is_empty(), "{}", out.stderr);
    let lines: Vec<&str> = out.stdout.lines().collect();
    for want in [
        format!("threads = 2    ; {ini}:4"),
        "listen = 20    ; env UWSGI_LISTEN".to_string(),
        "buffer-size = 16384    ; flag --buffer-size".to_string(),
        format!("http-socket = :8000    ; {ini}:3"),
        "http-socket = :8001    ; env RWSGI_HTTP_SOCKET".to_string(),
        "callable = application    ; default".to_string(),
    ] {
        assert!(lines.contains(&want.as_str()), "{want:?} not in\n{}", out.stdout);
    }
}

#[test]
fn check_config_exits_0_or_1_without_starting() {
    for file in ["conf/seed.ini", "conf/rwsgi.ini"] {
        let out = run_rwsgi(&["--check-config", file], &[]);
        assert_eq!(out.status.code(), Some(0), "{file}: {out:?}");
    }
    let dir = TempDir::new("cfg");
    let ini = write(&dir, "nofile.ini", "[uwsgi]\nhttp-socket = :0\nwsgi-file = nope.py\n");
    assert_one_line_failure(&["--check-config", &ini], &[], &[&format!("{ini}:3"), "nope.py"]);
    let ini = app_ini(&dir, "");
    assert_one_line_failure(&["--check-config", &ini], &[], &["no socket"]);
}

#[test]
fn config_errors_are_one_line_naming_the_source() {
    let dir = TempDir::new("cfg");
    for (extra, needles) in [
        ("threads = -1\n", &[":3", "threads", "-1"][..]),
        ("strict\nproccesses = 4\n", &[":4", "proccesses", "did you mean processes"]),
        ("http-socket = 127.0.0.1:99999\n", &[":3", "http-socket", "99999"]),
        ("chdir = @(/no/such/file)\n", &[":3", "@(/no/such/file)"]),
        ("https-socket = :443,a.crt,a.key\n", &[":3", "https-socket", "does not terminate TLS"]),
        ("ini = %dself.ini\n", &["include cycle"]),
    ] {
        let ini = app_ini(&dir, extra);
        if extra.starts_with("ini =") {
            std::fs::rename(&ini, dir.join("self.ini")).unwrap();
            assert_one_line_failure(&[&dir.join("self.ini")], &[], needles);
        } else {
            assert_one_line_failure(&[&ini], &[], &[&[ini.as_str()][..], needles].concat());
        }
    }
    let ini = app_ini(&dir, "http-socket = :0\n");
    assert_one_line_failure(&["--ini", "/no/such.ini"], &[], &["flag --ini", "/no/such.ini"]);
    assert_one_line_failure(&[&format!("{ini}:other")], &[], &["[other]"]);
    assert_one_line_failure(
        &[&ini],
        &[("UWSGI_PROCESSES", "x")],
        &["env UWSGI_PROCESSES", "\"x\""],
    );
    assert_one_line_failure(&[&ini, "--listen", "-5"], &[], &["flag --listen", "-5"]);
    assert_one_line_failure(
        &["--proccesses", "2"],
        &[],
        &["--proccesses", "did you mean --processes"],
    );
}

/// The README's example: problems of every kind, from a file, the
/// environment and flags, all in one run, after the warnings.
#[test]
fn every_problem_of_a_run_is_reported_at_once() {
    let dir = TempDir::new("cfg");
    let ini = write(
        &dir,
        "app.ini",
        "[uwsgi]\nsocket = :99999\nlisten = -3\nvaccum = true\n[broken\nthreads = -2\n\
         https-socket = :443\n",
    );
    let out = run_rwsgi(
        &["--ini", &ini, "--http-socket", "127.0.0.1:99999", "--proccesses", "2"],
        &[("UWSGI_LISTEN", "99999999999")],
    );
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = out.stderr_lines();
    let expected = [
        format!("rwsgi: warning: {ini}:4: vaccum is no option: did you mean vacuum?"),
        "rwsgi: unknown option --proccesses (did you mean --processes?)".to_string(),
        format!("rwsgi: {ini}:5: a section header is [name]"),
        format!("rwsgi: {ini}:3: listen \"-3\": want a whole number"),
        format!("rwsgi: {ini}:6: threads \"-2\": want a whole number"),
        format!("rwsgi: {ini}:7: https-socket is not supported"),
        "rwsgi: env UWSGI_LISTEN: listen \"99999999999\": at most 4294967295".to_string(),
        "rwsgi: flag --http-socket: http-socket \"127.0.0.1:99999\": port \"99999\"".to_string(),
        format!("rwsgi: {ini}:2: socket \":99999\": port \"99999\" is not a number"),
    ];
    assert_eq!(lines.len(), expected.len(), "{}", out.stderr);
    for (line, start) in lines.iter().zip(&expected) {
        assert!(line.starts_with(start.as_str()), "{line:?} should start {start:?}");
    }
}

#[test]
fn an_address_that_cannot_be_bound_names_option_address_and_line() {
    let dir = TempDir::new("cfg");
    let ini = app_ini(&dir, "http-socket = /no/such/dir/app.sock\n");
    assert_one_line_failure(
        &[&ini],
        &[],
        &[&format!("{ini}:3"), "http-socket", "/no/such/dir/app.sock", "cannot bind"],
    );
}

#[test]
fn ignored_options_warn_and_process_options_take_effect() {
    let dir = TempDir::new("cfg");
    let ini = app_ini(
        &dir,
        "http-socket = 127.0.0.1:0\nplugins = python3\nenable-threads = true\nprocesses = 4\nmaster = true\n\
         cpu-affinity = 1\ncheaper = 1\n",
    );
    let server = Server::start_listening(&[&ini], &[], 1);
    assert_eq!(server.get("/").text(), "default callable");
    for warning in [
        "cpu-affinity has no effect in rwsgi",
        "cheaper is not implemented yet: the number of workers stays fixed at processes",
        "4 worker(s) serving",
    ] {
        assert!(server.log_contains(warning), "{warning:?} not in\n{}", server.log());
    }
    // What rwsgi always does is not worth a warning.
    for quiet in ["plugins", "enable-threads", "process model"] {
        assert!(!server.log().contains(quiet), "{quiet:?} in\n{}", server.log());
    }
}

#[test]
fn help_options_lists_the_table() {
    let out = run_rwsgi(&["--help-options"], &[]);
    assert!(out.status.success(), "{out:?}");
    for needle in
        ["--processes, --workers, -p N", "implemented", "--enable-threads", "ignored", "--ini"]
    {
        assert!(out.stdout.contains(needle), "{needle:?} not in\n{}", out.stdout);
    }
}
