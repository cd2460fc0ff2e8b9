//! What operators look at, against the real binary: the log file
//! (`logto`, `daemonize`), its rotation (logrotate's `create` and
//! `copytruncate`, `log-maxsize`, `touch-logreopen`), and the request log
//! (`log-format` variables, JSON lines, the `log-*` conditions).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Conn, PROBE, Server, TempDir, free_port, root, rwsgi_bin, wait_until};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// rwsgi logging to a file: it says nothing on stderr, so the harness's
/// `Server` cannot watch it; this waits on the file instead.
struct Logged {
    child: Option<Child>,
    log: PathBuf,
    addr: String,
    dir: TempDir,
}

impl Logged {
    /// Starts rwsgi on a free port with `logto`-like `args`, which name
    /// the log file `log` in `dir`.
    fn start(dir: TempDir, log_option: &str, extra: &[&str]) -> Logged {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = dir.path().join("app.log");
        let log_text = log.display().to_string();
        let mut args = vec!["--http-socket", &addr, "--wsgi-file", PROBE, log_option, &log_text];
        args.extend_from_slice(extra);
        let child = Command::new(rwsgi_bin())
            .args(&args)
            .current_dir(root())
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let logged = Logged { child: Some(child), log, addr, dir };
        assert!(logged.wait_for("listening on"), "never listened:\n{}", logged.text());
        logged
    }

    fn text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, needle: &str) -> bool {
        wait_until(Duration::from_secs(20), || self.text().contains(needle))
    }

    fn get(&self, target: &str) -> common::Response {
        let mut conn = Conn::open(&self.addr);
        conn.send(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
        conn.read_response()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn stop(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
            let mut stderr = String::new();
            if let Some(mut err) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut err, &mut stderr);
            }
            return stderr;
        }
        String::new()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        let stderr = self.stop();
        if std::thread::panicking() {
            eprintln!("---- app.log ----\n{}---- stderr ----\n{stderr}", self.text());
        }
    }
}

fn request_lines(text: &str, target: &str) -> usize {
    text.lines().filter(|l| l.contains(&format!(" GET {target} => generated "))).count()
}

#[test]
fn logto_gets_every_line_of_every_process_and_the_apps_output() {
    let mut server =
        Logged::start(TempDir::new("logto"), "--logto", &["--master", "--processes", "2"]);
    assert!(server.wait_for("worker(s) serving"));
    assert_eq!(server.get("/print").text(), "printed");
    assert!(server.wait_for("GET /print => generated"), "{}", server.text());
    let text = server.text();
    for needle in [
        "master (pid",
        "http-socket listening on",
        "spawned worker 1",
        "printed to stdout by the app",
        "printed to stderr by the app",
    ] {
        assert!(text.contains(needle), "{needle:?} not in the log file:\n{text}");
    }
    let stderr = server.stop();
    assert!(!stderr.contains("listening on"), "the terminal got lines: {stderr}");
    assert!(server.text().contains("master stopped"), "the last lines too");
}

#[test]
fn a_log_renamed_by_logrotate_is_followed_by_every_process() {
    let server = Logged::start(TempDir::new("rot"), "--logto", &["--master", "--processes", "2"]);
    assert!(server.wait_for("worker(s) serving"));
    server.get("/before");
    assert!(server.wait_for("GET /before => generated"));
    // logrotate's `create`: move the file away, make a new one.
    let old = server.path("app.log.1");
    std::fs::rename(&server.log, &old).unwrap();
    std::fs::write(&server.log, "").unwrap();
    // Within a second or two every process writes to the new file.
    let moved = wait_until(Duration::from_secs(10), || {
        for _ in 0..4 {
            server.get("/after");
        }
        request_lines(&server.text(), "/after") >= 4
    });
    assert!(moved, "new lines never reached the new file:\n{}", server.text());
    assert_eq!(request_lines(&std::fs::read_to_string(&old).unwrap(), "/before"), 1);
}

#[test]
fn copytruncate_leaves_no_hole() {
    let server = Logged::start(TempDir::new("trunc"), "--logto", &[]);
    for _ in 0..20 {
        server.get("/before");
    }
    assert!(wait_until(Duration::from_secs(5), || request_lines(&server.text(), "/before") == 20));
    // logrotate's `copytruncate`: copy the file, then truncate it in place.
    std::fs::copy(&server.log, server.path("app.log.1")).unwrap();
    std::fs::OpenOptions::new().write(true).open(&server.log).unwrap().set_len(0).unwrap();
    server.get("/after");
    assert!(server.wait_for("GET /after => generated"));
    let bytes = std::fs::read(&server.log).unwrap();
    assert!(!bytes.contains(&0), "appends continue at the new end, no run of NULs before them");
    assert_eq!(request_lines(&String::from_utf8_lossy(&bytes), "/before"), 0);
}

#[test]
fn log_maxsize_rotates_and_touch_logreopen_reopens() {
    let dir = TempDir::new("maxsize");
    let backup = dir.join("app.log.old");
    let trigger = dir.write("reopen", "");
    let server = Logged::start(
        dir,
        "--logto",
        &[
            "--master",
            "--log-maxsize",
            "4000",
            "--log-backupname",
            &backup,
            "--touch-logreopen",
            &trigger,
        ],
    );
    assert!(server.wait_for("worker(s) serving"));
    let rotated = wait_until(Duration::from_secs(15), || {
        for _ in 0..10 {
            server.get("/fill");
        }
        Path::new(&backup).exists()
    });
    assert!(rotated, "no rotation:\n{}", server.text());
    assert!(wait_until(Duration::from_secs(5), || server.text().contains("log rotated")));
    // The log removed, then touch-logreopen: a new file at the path.
    std::fs::remove_file(&server.log).unwrap();
    std::thread::sleep(Duration::from_millis(1100));
    std::fs::write(&trigger, "touched").unwrap();
    assert!(wait_until(Duration::from_secs(10), || server.log.exists()), "not reopened");
    assert!(server.wait_for("log reopened"));
}

#[test]
fn daemonize_returns_and_keeps_serving() {
    let dir = TempDir::new("daemon");
    let log = dir.join("daemon.log");
    let pidfile = dir.join("rwsgi.pid");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let status = Command::new(rwsgi_bin())
        .args([
            "--http-socket",
            &addr,
            "--wsgi-file",
            PROBE,
            "--daemonize",
            &log,
            "--pidfile",
            &pidfile,
        ])
        .current_dir(root())
        .stdin(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "the command returns at once, status 0");
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(wait_until(Duration::from_secs(20), || text().contains("listening on")), "{}", text());
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let daemon = nix::unistd::Pid::from_raw(pid);
    let mut conn = Conn::open(&addr);
    conn.send("GET /closing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "ab");
    drop(conn);
    // Another session than ours: no terminal of ours can stop it.
    assert_ne!(nix::unistd::getsid(Some(daemon)).unwrap(), nix::unistd::getsid(None).unwrap());
    nix::sys::signal::kill(daemon, nix::sys::signal::Signal::SIGINT).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || nix::sys::signal::kill(daemon, None).is_err()),
        "the daemon did not stop"
    );
}

#[test]
fn log_format_variables_json_lines_and_conditions() {
    let server = Server::probe(&[
        "--log-format",
        "%(addr) %(method) %(uri) %(status) %(rsize) %(var.HTTP_X_REQUEST_ID) %(uagent)",
        "--log-x-forwarded-for",
    ]);
    server.request("GET /closing?a=1 HTTP/1.1\r\nHost: x\r\nX-Request-Id: r-42\r\nX-Forwarded-For: 203.0.113.5\r\nUser-Agent: probe/1\r\n\r\n");
    assert!(
        server.wait_log("203.0.113.5 GET /closing?a=1 200 2 r-42 probe/1", common::LOG_TIMEOUT),
        "{}",
        server.log()
    );
    let json = Server::probe(&[
        "--log-format-json",
        "--log-format",
        "%(method) %(uri) %(status) %(msecs) %(uagent)",
    ]);
    json.request("GET /environ HTTP/1.1\r\nHost: x\r\nUser-Agent: a \"quoted\" agent\r\n\r\n");
    assert!(json.wait_log("\"uri\":\"/environ\"", common::LOG_TIMEOUT), "{}", json.log());
    let line = json.log_lines_with("\"uri\":\"/environ\"").remove(0);
    let value: serde_json::Value = serde_json::from_str(line.trim()).unwrap();
    assert_eq!(value["status"], 200);
    assert_eq!(value["uagent"], "a \"quoted\" agent");
    assert!(value["msecs"].is_u64());
    let picky = Server::probe(&["--disable-logging", "--log-4xx", "--log-5xx"]);
    picky.get("/closing");
    picky.get("/missing");
    picky.get("/error-before");
    assert!(picky.wait_request_status("GET", "/missing", 404), "{}", picky.log());
    assert!(picky.wait_request_status("GET", "/error-before", 500), "{}", picky.log());
    assert!(!picky.log().contains("GET /closing => generated"), "a 200 with disable-logging");
    common::assert_one_line_failure(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", PROBE, "--log-format", "%(bogus)"],
        &[],
        &["%(bogus) is no request-log variable"],
    );
}

/// The stats document, read as uwsgitop reads it: connect, read to EOF.
fn stats_of(path: &str) -> serde_json::Value {
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut stream, &mut text).unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// `GET target` on a `stats-http` socket.
fn stats_get(path: &str, target: &str) -> common::CurlResponse {
    common::curl(&["--max-time", "5", "--unix-socket", path, &format!("http://localhost{target}")])
}

/// A master with two workers of two threads on every protocol, and its
/// stats on a unix socket (a TCP port picked in advance could be taken by
/// the server's own sockets meanwhile).
fn stats_server(extra: &[&str]) -> (Server, String, TempDir) {
    let dir = TempDir::new("stats");
    let stats = dir.join("stats.sock");
    let mut args = common::EVERY_PROTOCOL.to_vec();
    args.extend([
        "--wsgi-file",
        PROBE,
        "--master",
        "--processes",
        "2",
        "--threads",
        "2",
        "--stats",
        &stats,
    ]);
    args.extend_from_slice(extra);
    let server = Server::start(&args);
    assert!(server.wait_log("2 worker(s) serving", Duration::from_secs(20)), "{}", server.log());
    (server, stats, dir)
}

#[test]
fn the_stats_document_is_uwsgis_and_counts_every_protocol() {
    let (server, stats, _dir) = stats_server(&[]);
    for _ in 0..5 {
        assert_eq!(server.get("/closing").text(), "ab");
        assert_eq!(server.uwsgi_get("/closing").text(), "ab");
        assert_eq!(server.fastcgi_get("/closing").text(), "ab");
    }
    // A request is counted once its response is out: the last may lag.
    let counted = |doc: &serde_json::Value| -> u64 {
        doc["workers"]
            .as_array()
            .map_or(0, |w| w.iter().map(|w| w["requests"].as_u64().unwrap_or(0)).sum())
    };
    assert!(wait_until(Duration::from_secs(5), || counted(&stats_of(&stats)) == 15));
    let doc = stats_of(&stats);
    for key in ["version", "cwd"] {
        assert!(doc[key].is_string(), "{key}: {doc}");
    }
    for key in ["listen_queue", "listen_queue_errors", "signal_queue", "load", "pid", "uid", "gid"]
    {
        assert!(doc[key].is_u64(), "{key} is an integer: {doc}");
    }
    assert_eq!(doc["pid"].as_u64(), Some(u64::from(server.pid())));
    let protos: Vec<&str> =
        doc["sockets"].as_array().unwrap().iter().map(|s| s["proto"].as_str().unwrap()).collect();
    assert_eq!(protos, ["http", "uwsgi", "fastcgi"]);
    let workers = doc["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 2);
    for worker in workers {
        for key in [
            "id",
            "pid",
            "accepting",
            "requests",
            "delta_requests",
            "exceptions",
            "harakiri_count",
            "signals",
            "signal_queue",
            "rss",
            "vsz",
            "running_time",
            "last_spawn",
            "respawn_count",
            "tx",
            "avg_rt",
        ] {
            assert!(worker[key].is_u64(), "worker {key} is an integer: {worker}");
        }
        assert!(["idle", "busy"].contains(&worker["status"].as_str().unwrap()), "{worker}");
        assert!(worker["rss"].as_u64().unwrap() > 1 << 20, "a real RSS: {worker}");
        let cores = worker["cores"].as_array().unwrap();
        assert_eq!(cores.len(), 2, "one per Python thread");
        assert!(cores.iter().all(|c| c["in_request"].is_u64() && c["requests"].is_u64()));
        assert_eq!(worker["apps"][0]["mountpoint"], "");
    }
    let total: u64 = workers.iter().map(|w| w["requests"].as_u64().unwrap()).sum();
    assert_eq!(total, 15, "every protocol's requests: {doc}");
    let tx: u64 = workers.iter().map(|w| w["tx"].as_u64().unwrap()).sum();
    assert_eq!(tx, 30, "2 body bytes each");
    let core_requests: u64 = workers
        .iter()
        .flat_map(|w| {
            w["cores"].as_array().unwrap().iter().map(|c| c["requests"].as_u64().unwrap())
        })
        .sum();
    assert_eq!(core_requests, 15, "each ran on a Python thread");
}

/// The running request's `vars` (uWSGI's `KEY=VALUE` list, ended by an
/// empty string) of the core that runs it, and when it started.
fn running_core(doc: &serde_json::Value) -> Option<serde_json::Value> {
    doc["workers"].as_array()?.iter().find_map(|w| {
        w["cores"]
            .as_array()?
            .iter()
            .find(|c| c["in_request"] == 1 && c["vars"] != json!([]))
            .cloned()
    })
}

#[test]
fn in_flight_requests_show_their_vars_but_not_their_secrets() {
    for unredacted in [false, true] {
        let extra: &[&str] = if unredacted { &["--stats-vars-unredacted"] } else { &[] };
        let (server, stats, _dir) = stats_server(extra);
        let addr = server.http_addr(0).to_string();
        let sleeper = std::thread::spawn(move || {
            let mut conn = Conn::open(&addr);
            conn.send(
                "GET /sleep?s=1.5 HTTP/1.1\r\nHost: x\r\nCookie: session=s3cret\r\n\
                 Authorization: Bearer t0ken\r\nConnection: close\r\n\r\n",
            );
            conn.read_response().status
        });
        let mut core = None;
        assert!(wait_until(Duration::from_secs(5), || {
            core = running_core(&stats_of(&stats));
            core.is_some()
        }));
        let core = core.unwrap();
        let vars: Vec<&str> =
            core["vars"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        assert_eq!(vars.last(), Some(&""), "uWSGI ends the list with an empty string: {vars:?}");
        assert!(
            vars.contains(&"PATH_INFO=/sleep") && vars.contains(&"QUERY_STRING=s=1.5"),
            "{vars:?}"
        );
        let (cookie, token) = if unredacted {
            ("HTTP_COOKIE=session=s3cret", "HTTP_AUTHORIZATION=Bearer t0ken")
        } else {
            ("HTTP_COOKIE=(redacted)", "HTTP_AUTHORIZATION=(redacted)")
        };
        assert!(vars.contains(&cookie) && vars.contains(&token), "{vars:?}");
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let start = core["req_info"]["request_start"].as_u64().unwrap();
        assert!(start <= now && now - start <= 3, "{start} vs {now}");
        assert_eq!(sleeper.join().unwrap(), 200);
        assert!(wait_until(Duration::from_secs(5), || running_core(&stats_of(&stats)).is_none()));
    }
}

#[test]
fn uwsgitop_shows_the_workers() {
    let Some(venv) = common::venv() else { return };
    let uwsgitop = venv.join("bin/uwsgitop");
    if !common::require(uwsgitop.exists() && which("tmux"), "uwsgitop (make venv) and tmux") {
        return;
    }
    let (server, stats, _dir) = stats_server(&[]);
    for _ in 0..3 {
        server.get("/closing");
    }
    let session = format!("rwsgi-uwsgitop-{}", std::process::id());
    let started = Command::new("tmux")
        .args(["new-session", "-d", "-s", &session, "-x", "200", "-y", "40"])
        .arg(format!("{} {stats}", uwsgitop.display()))
        .status()
        .unwrap();
    assert!(started.success());
    let screen = || {
        let out =
            Command::new("tmux").args(["capture-pane", "-p", "-t", &session]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = wait_until(Duration::from_secs(10), || {
        let text = screen();
        text.contains("WID")
            && text.contains("req: 3")
            && text.lines().filter(|l| l.contains("idle")).count() == 2
    });
    let text = screen();
    let _ = Command::new("tmux").args(["kill-session", "-t", &session]).status();
    assert!(shown, "uwsgitop's screen:\n{text}");
    assert!(text.contains(&format!("masterpid: {}", server.pid())), "{text}");
}

#[test]
fn stats_http_serves_json_and_prometheus_metrics() {
    let Some(venv) = common::venv() else { return };
    let (server, stats, _dir) = stats_server(&["--stats-http"]);
    for _ in 0..4 {
        server.get("/closing");
    }
    server.get("/missing");
    server.uwsgi_get("/closing");
    assert_eq!(server.get("/error-before").status, 500);
    let upload = vec![b'u'; 50_000];
    assert_eq!(server.post("/echo", &upload).body.len(), upload.len());
    let doc =
        || -> serde_json::Value { serde_json::from_slice(&stats_get(&stats, "/").body).unwrap() };
    let counted = |doc: serde_json::Value| -> u64 {
        doc["workers"]
            .as_array()
            .map_or(0, |w| w.iter().map(|w| w["requests"].as_u64().unwrap_or(0)).sum())
    };
    // A request is counted once its response is out: the last may lag.
    assert!(wait_until(Duration::from_secs(5), || counted(doc()) == 8));
    let workers = doc()["workers"].as_array().unwrap().clone();
    assert_eq!(workers.len(), 2);
    let exceptions: Vec<u64> = workers.iter().map(|w| w["exceptions"].as_u64().unwrap()).collect();
    assert_eq!(exceptions.iter().sum::<u64>(), 1, "{exceptions:?}");
    assert!(workers.iter().all(|w| w["apps"][0]["exceptions"] == w["exceptions"]));
    let metrics = stats_get(&stats, "/metrics");
    assert_eq!(metrics.status, 200);
    assert!(metrics.header("Content-Type").unwrap().starts_with("text/plain; version=0.0.4"));
    // prometheus_client's own parser reads it; the sums are checked there.
    let script = r#"
import sys
from prometheus_client.parser import text_string_to_metric_families
families = {f.name: f for f in text_string_to_metric_families(sys.stdin.read())}
def total(name, **labels):
    return sum(s.value for s in families[name].samples
               if all(s.labels.get(k) == v for k, v in labels.items()))
assert families["rwsgi_requests"].type == "counter", families["rwsgi_requests"].type
duration = families["rwsgi_request_duration_seconds"]
assert duration.type == "histogram", duration.type
count = sum(s.value for s in duration.samples if s.name.endswith("_count"))
inf = sum(s.value for s in duration.samples if s.labels.get("le") == "+Inf")
assert count == inf == 8, (count, inf)
assert families["rwsgi_worker_respawns"].type == "counter"
assert total("rwsgi_exceptions") == 1, total("rwsgi_exceptions")
# Every request's head and the upload, as read.
assert 50_000 + 7 * 30 < total("rwsgi_received_bytes") < 50_000 + 8 * 200, total("rwsgi_received_bytes")
assert families["rwsgi_listen_queue_full"].type == "counter"
assert total("rwsgi_listen_queue_full") == 0
assert families["rwsgi_tcp_listen_overflows"].type == "counter"
print(int(total("rwsgi_requests", protocol="http", status_class="2xx")),
      int(total("rwsgi_requests", protocol="http", status_class="4xx")),
      int(total("rwsgi_requests", protocol="http", status_class="5xx")),
      int(total("rwsgi_requests", protocol="uwsgi")),
      int(total("rwsgi_python_threads", state="idle")),
      int(total("rwsgi_response_bytes")))
"#;
    let mut python = Command::new(venv.join("bin/python"))
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut python.stdin.take().unwrap(), &metrics.body).unwrap();
    let out = python.wait_with_output().unwrap();
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), metrics.text());
    let figures = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let missing_len = "not found: /missing".len();
    let error_len = "Internal Server Error\n".len();
    assert_eq!(
        figures,
        format!("5 1 1 1 4 {}", 4 * 2 + missing_len + error_len + 50_000 + 2),
        "{}",
        metrics.text()
    );
}

/// A worker that stops taking connections (stopped here with SIGSTOP)
/// lets its socket's accept queue fill: the master says so once, counts
/// it in `listen_queue_errors`, and says when it drains.
#[test]
fn a_full_listen_queue_is_logged_and_counted() {
    let dir = TempDir::new("backlog");
    let stats = dir.join("stats.sock");
    let server = Server::start(&[
        "--http-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        PROBE,
        "--master",
        "--listen",
        "4",
        "--stats",
        &stats,
    ]);
    assert!(server.wait_log("1 worker(s) serving", Duration::from_secs(20)), "{}", server.log());
    let worker = nix::unistd::Pid::from_raw(
        i32::try_from(stats_of(&stats)["workers"][0]["pid"].as_i64().unwrap()).unwrap(),
    );
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGSTOP).unwrap();
    let addr: std::net::SocketAddr = server.addr().parse().unwrap();
    // The kernel completes backlog + 1 handshakes; the rest wait for room.
    let waiting: Vec<std::net::TcpStream> = (0..8)
        .filter_map(|_| {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()
        })
        .collect();
    let filled = server.wait_log("full !!! (", Duration::from_secs(5));
    let doc = stats_of(&stats);
    nix::sys::signal::kill(worker, nix::sys::signal::Signal::SIGCONT).unwrap();
    assert!(filled, "{} connected; {}", waiting.len(), server.log());
    let line = server.log_lines_with("full !!!").join("\n");
    assert!(line.contains(&format!("*** listen queue of socket \"{addr}\" (fd: ")), "{line}");
    assert!(doc["listen_queue_errors"].as_u64().unwrap() >= 1, "{doc}");
    let socket = &doc["sockets"][0];
    assert!(socket["queue"].as_u64() >= socket["max_queue"].as_u64(), "{socket}");
    assert_eq!(doc["load"], socket["queue"], "uWSGI's load: the longest queue");
    assert!(server.wait_log("no longer full", Duration::from_secs(5)), "{}", server.log());
    assert_eq!(server.log_lines_with("full !!!").len(), 1, "said once per episode");
    let mut conn = Conn::open(server.addr());
    conn.send("GET /closing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "ab", "the worker serves again");
    drop(waiting);
}

fn which(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn master_fifo_commands() {
    let dir = TempDir::new("fifo");
    let fifo = dir.join("master.fifo");
    let mut server = Server::probe(&["--master", "--master-fifo", &fifo]);
    assert!(server.wait_log("1 worker(s) serving", Duration::from_secs(20)));
    let send = |commands: &str| {
        let mut writer = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
        std::io::Write::write_all(&mut writer, commands.as_bytes()).unwrap();
    };
    send("+\n");
    assert!(server.wait_log("spawned worker 2", Duration::from_secs(10)), "{}", server.log());
    send("s");
    assert!(server.wait_log("stats: {", Duration::from_secs(10)), "{}", server.log());
    send("p");
    assert!(server.wait_log("master-fifo: 'p' is not supported", Duration::from_secs(10)));
    send("q");
    let status = server.wait_exit(Duration::from_secs(20)).expect("stopped by q");
    assert!(status.success());
    assert!(!Path::new(&fifo).exists(), "the FIFO goes with the master");
}

#[test]
fn silent_stats_clients_cannot_stall_the_master() {
    let (server, stats, _dir) = stats_server(&["--stats-http"]);
    // Clients that connect and say nothing, or a byte at a time.
    let silent: Vec<std::os::unix::net::UnixStream> =
        (0..20).map(|_| std::os::unix::net::UnixStream::connect(&stats).unwrap()).collect();
    let started = std::time::Instant::now();
    let doc = stats_get(&stats, "/");
    assert_eq!(doc.status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?} for a stats answer",
        started.elapsed()
    );
    // The master still supervises: a worker killed is replaced.
    let before = server.log_lines_with("spawned worker").len();
    let victim = serde_json::from_slice::<serde_json::Value>(&stats_get(&stats, "/").body).unwrap()
        ["workers"][0]["pid"]
        .as_i64()
        .unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(victim).unwrap()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || server.log_lines_with("spawned worker").len()
            > before),
        "{}",
        server.log()
    );
    drop(silent);
}

#[test]
fn req_logger_takes_the_request_lines_and_logger_is_logto() {
    let dir = TempDir::new("reqlog");
    let access = dir.join("access.log");
    let log = dir.join("app.log");
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(rwsgi_bin())
        .args([
            "--http-socket",
            &addr,
            "--wsgi-file",
            PROBE,
            "--master",
            "--logger",
            &format!("file:{log}"),
            "--req-logger",
            &format!("file:{access}"),
        ])
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let text = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(20), || text(&log).contains("worker(s) serving")),
        "{}",
        text(&log)
    );
    let mut conn = Conn::open(&addr);
    conn.send("GET /closing HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "ab");
    assert!(
        wait_until(Duration::from_secs(5), || text(&access).contains("GET /closing => generated"))
    );
    assert!(
        !text(&log).contains("GET /closing => generated"),
        "request lines only in the access log"
    );
    assert!(!text(&access).contains("listening on"), "other lines only in the log");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    for (logger, said) in [
        ("zeromq:tcp://x", "rwsgi logs to file:PATH, syslog[:IDENT[,FACILITY]]"),
        ("syslog:app,nowhere", "no syslog facility \"nowhere\""),
        ("rsyslog:no-such-host.invalid", "syslog logger: no-such-host.invalid:514"),
    ] {
        common::assert_one_line_failure(
            &["--http-socket", "127.0.0.1:0", "--wsgi-file", PROBE, "--logger", logger],
            &[],
            &[said],
        );
    }
}

/// A syslog daemon's end: every datagram received on `socket`, as text.
struct SyslogSink {
    messages: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl SyslogSink {
    fn listen(mut recv: impl FnMut(&mut [u8]) -> std::io::Result<usize> + Send + 'static) -> Self {
        let messages = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let into = std::sync::Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 70_000];
            while let Ok(n) = recv(&mut buf) {
                into.lock().unwrap().push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        });
        SyslogSink { messages }
    }

    fn udp() -> (Self, String) {
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = socket.local_addr().unwrap().to_string();
        (SyslogSink::listen(move |buf| socket.recv(buf)), addr)
    }

    fn unix(path: &Path) -> Self {
        let socket = std::os::unix::net::UnixDatagram::bind(path).unwrap();
        SyslogSink::listen(move |buf| socket.recv(buf))
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn wait_for(&self, needle: &str) -> bool {
        wait_until(Duration::from_secs(20), || self.all().iter().any(|m| m.contains(needle)))
    }
}

/// `<PRI>Mmm dd hh:mm:ss TAG: text` (RFC 3164, as uWSGI sends it): the
/// text after the tag, if `message` is that with this priority and tag.
fn rfc3164<'m>(message: &'m str, priority: u8, tag: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(&format!("<{priority}>"))?;
    let (stamp, rest) = (rest.get(..15)?, rest.get(15..)?);
    let fields: Vec<&str> = stamp.split_whitespace().collect();
    let [month, day, clock] = fields[..] else { return None };
    let plausible = month.len() == 3
        && day.parse::<u8>().is_ok_and(|d| (1..=31).contains(&d))
        && clock.len() == 8
        && clock.split(':').all(|part| part.parse::<u8>().is_ok());
    plausible.then_some(())?;
    rest.strip_prefix(&format!(" {tag}: "))
}

#[test]
fn syslog_loggers_get_every_line_until_the_last() {
    let dir = TempDir::new("rsyslog");
    let (general, udp) = SyslogSink::udp();
    let requests_path = dir.path().join("requests.sock");
    let requests = SyslogSink::unix(&requests_path);
    let mark = format!("rsyslog-{}", std::process::id());
    let addr = format!("127.0.0.1:{}", free_port());
    let mut child = Command::new(rwsgi_bin())
        .args(["--http-socket", &addr, "--wsgi-file", PROBE, "--master", "--processes", "2"])
        .args(["--logger", &format!("rsyslog:{udp},myapp,134")])
        .args(["--req-logger", &format!("rsyslog:{}", requests_path.display())])
        .env("TEST_PROCESS_MARK", &mark)
        .env_remove("RWSGI_TEST_VENV")
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(general.wait_for("worker(s) serving"), "{:?}", general.all());
    let mut conn = Conn::open(&addr);
    conn.send("GET /print HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(conn.read_response().text(), "printed");
    assert!(requests.wait_for("GET /print => generated"), "{:?}", requests.all());
    assert!(general.wait_for("printed to stderr by the app"), "{:?}", general.all());
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(child.wait().unwrap().success());
    assert!(general.wait_for("master stopped"), "the last line too: {:?}", general.all());
    assert!(
        wait_until(Duration::from_secs(5), || common::marked_processes(&mark).is_empty()),
        "left behind: {:?}",
        common::marked_processes(&mark)
    );
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.is_empty(), "the terminal got lines: {stderr}");
    let texts: Vec<String> = general.all();
    for needle in ["master (pid", "spawned worker 2", "printed to stdout by the app"] {
        assert!(texts.iter().any(|m| m.contains(needle)), "{needle:?} not in {texts:?}");
    }
    for message in &texts {
        let text = rfc3164(message, 134, "myapp");
        assert!(text.is_some_and(|t| !t.contains('\n')), "one line per message: {message:?}");
    }
    assert!(!texts.iter().any(|m| m.contains("=> generated")), "request lines apart");
    let lines = requests.all();
    let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
    assert!(
        lines.iter().all(|m| rfc3164(m, 29, &format!("{host} uwsgi")).is_some()),
        "uWSGI's rsyslog defaults: {lines:?}"
    );
}

/// `logger = syslog:IDENT,FACILITY` sends to the local socket, `/dev/log`.
/// The test listens there: where no syslog daemon does (CI), as root, by
/// binding it; where one does, from a private mount namespace with the
/// test's socket mounted over it.
#[test]
fn syslog_logger_writes_to_the_local_socket() {
    let dir = TempDir::new("syslog");
    let sink_path = dir.path().join("log.sock");
    let sink = SyslogSink::unix(&sink_path);
    let addr = format!("127.0.0.1:{}", free_port());
    let rwsgi = [
        rwsgi_bin().to_string(),
        "--http-socket".into(),
        addr.clone(),
        "--wsgi-file".into(),
        PROBE.into(),
        "--logger".into(),
        "syslog:webapp,local2".into(),
    ];
    let dev_log = Path::new("/dev/log");
    if !common::require(nix::unistd::Uid::effective().is_root(), "root (to listen on /dev/log)") {
        return;
    }
    let mut command = if dev_log.exists() {
        let mut unshare = Command::new("unshare");
        unshare
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!("mount --bind {} /dev/log && exec \"$@\"", sink_path.display()));
        unshare.arg("sh").args(&rwsgi);
        unshare
    } else {
        std::os::unix::fs::symlink(&sink_path, dev_log).unwrap();
        let mut direct = Command::new(&rwsgi[0]);
        direct.args(&rwsgi[1..]);
        direct
    };
    let mut child = command
        .current_dir(root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let listening = sink.wait_for("listening on");
    let mut conn = Conn::open(&addr);
    conn.send("GET /print HTTP/1.1\r\nHost: x\r\n\r\n");
    let answer = conn.read_response().text();
    let logged = sink.wait_for("GET /print => generated");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap()),
        nix::sys::signal::Signal::SIGINT,
    );
    let _ = child.wait();
    if !dev_log.exists() || std::fs::read_link(dev_log).is_ok_and(|to| to == sink_path) {
        let _ = std::fs::remove_file(dev_log);
    }
    assert!(listening && logged && answer == "printed", "{:?}", sink.all());
    // local2 = 18; info = 6.
    let messages = sink.all();
    assert!(messages.iter().all(|m| rfc3164(m, 18 * 8 + 6, "webapp").is_some()), "{messages:?}");
    assert!(messages.iter().any(|m| m.ends_with("printed to stdout by the app")), "{messages:?}");
}

#[test]
fn static_files_and_route_answers_are_counted_apart() {
    let apps = root().join("tests/apps").display().to_string();
    let (server, stats, _dir) =
        stats_server(&["--static-map", &format!("/s={apps}"), "--route", "^/gone break:410"]);
    assert_eq!(server.get("/s/probe.py").status, 200);
    assert_eq!(server.get("/gone").status, 410);
    assert_eq!(server.get("/closing").text(), "ab");
    let sum = |doc: &serde_json::Value, key: &str| -> u64 {
        doc["workers"].as_array().map_or(0, |workers| {
            workers
                .iter()
                .flat_map(|w| w["cores"].as_array().cloned().unwrap_or_default())
                .map(|c| c[key].as_u64().unwrap_or(0))
                .sum()
        })
    };
    assert!(
        wait_until(Duration::from_secs(5), || {
            let doc = stats_of(&stats);
            (sum(&doc, "static_requests"), sum(&doc, "routed_requests")) == (1, 1)
        }),
        "{}",
        stats_of(&stats)
    );
}
