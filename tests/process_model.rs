//! The process model, with the real binary, real processes and real
//! signals: the master, prefork workers, respawn, graceful reload and
//! shutdown, harakiri, recycling, systemd activation and notify.
//!
//! Every loop is bounded and every mercy short, so the suite stays quick.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Conn, NotifySocket, PROBE, Server, Signal, TempDir, fcgi_nginx_params, fcgi_request,
    nginx_vars, repo_path, run_rwsgi, uwsgi_packet, wait_until,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Short mercies: a test that fails must not leave workers behind for long.
const MERCY: [&str; 4] = ["--reload-mercy", "5", "--worker-reload-mercy", "5"];

/// `GET target` on a new connection; the status and body, or why not.
fn fetch(addr: &str, target: &str) -> Result<(u16, String), String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) =
        text.split_once("\r\n\r\n").ok_or_else(|| format!("no response: {text:?}"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head:?}"))?;
    Ok((status, body.to_string()))
}

/// The pid of the worker that served a request to the probe's `/process`.
fn served_by(addr: &str) -> Result<u32, String> {
    let (status, body) = fetch(addr, "/process")?;
    if status != 200 {
        return Err(format!("status {status}: {body}"));
    }
    let json: serde_json::Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
    json["pid"].as_u64().map(|p| p as u32).ok_or_else(|| format!("no pid in {body}"))
}

/// Requests running in a thread, one after the other, each on a new
/// connection, until [`Load::finish`].
struct Load<T> {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<Vec<Result<T, String>>>,
}

impl<T> Load<T> {
    /// Stops the requests; every outcome, in order.
    fn finish(self) -> Vec<Result<T, String>> {
        self.stop.store(true, Ordering::SeqCst);
        self.handle.join().unwrap()
    }
}

/// Starts requests one after the other (at most `max`), each on a new
/// connection.
fn request_loop<T: Send + 'static>(
    max: usize,
    request: impl Fn() -> Result<T, String> + Send + 'static,
) -> Load<T> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let handle = std::thread::spawn(move || {
        let mut outcomes = Vec::new();
        while outcomes.len() < max && !flag.load(Ordering::SeqCst) {
            outcomes.push(request());
            std::thread::sleep(Duration::from_millis(5));
        }
        outcomes
    });
    Load { stop, handle }
}

/// [`version_of`] requests to `addr` in a loop (at most `max`): the load
/// a reload must serve through.
fn version_load(addr: &str, max: usize) -> Load<(String, u32)> {
    let addr = addr.to_string();
    request_loop(max, move || version_of(&addr))
}

/// 200 ms into the load, the app in `dir` becomes "version-two" and the
/// master gets `signal` to reload it.
fn reload_version_two(server: &Server, dir: &TempDir, signal: Signal) {
    std::thread::sleep(Duration::from_millis(200));
    write_versioned_app(dir, "version-two");
    server.signal(signal);
}

fn failures<T>(outcomes: &[Result<T, String>]) -> Vec<&String> {
    outcomes.iter().filter_map(|o| o.as_ref().err()).collect()
}

/// The live children of `pid` (the workers of a master).
fn children(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(child) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else { continue };
        // pid (comm) state ppid ...: comm may hold spaces, so from the last ')'.
        let after = stat.rsplit_once(')').map(|(_, rest)| rest).unwrap_or_default();
        let fields: Vec<&str> = after.split_whitespace().collect();
        if fields.first() != Some(&"Z") && fields.get(1) == Some(&pid.to_string().as_str()) {
            found.push(child);
        }
    }
    found.sort_unstable();
    found
}

/// Waits until the master has `n` workers, all of them ready (as logged).
fn wait_workers(server: &Server, n: usize) -> Vec<u32> {
    let mut pids = Vec::new();
    let ok = wait_until(Duration::from_secs(15), || {
        pids = children(server.pid());
        pids.len() == n && pids.iter().all(|p| server.log().contains(&format!("(pid {p}) ready")))
    });
    assert!(ok, "want {n} ready workers, have {pids:?}; log:\n{}", server.log());
    pids
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default().trim().to_string()
}

/// A WSGI file that says which version of the code it is and which worker
/// runs it; `/grow` makes the worker's RSS grow by 200 MiB, `/sleep` takes
/// 2 s.
fn write_versioned_app(dir: &TempDir, version: &str) -> String {
    let path = dir.join("app.py");
    let code = format!(
        r#"import os, time
VERSION = "{version}"
_hog = []

def application(environ, start_response):
    if environ["PATH_INFO"] == "/grow":
        _hog.append(b"x" * (200 << 20))
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(2)
    body = ("%s %d" % (VERSION, os.getpid())).encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"#
    );
    std::fs::write(&path, code).unwrap();
    path
}

/// `(version, pid)` from the versioned app.
fn version_of(addr: &str) -> Result<(String, u32), String> {
    let (status, body) = fetch(addr, "/")?;
    let (version, pid) = body.split_once(' ').ok_or_else(|| format!("{status}: {body:?}"))?;
    Ok((version.to_string(), pid.parse().map_err(|_| body.clone())?))
}

#[test]
fn sigkilled_worker_is_respawned_within_a_second_and_the_other_serves_on() {
    let mut args = vec!["--wsgi-file", PROBE, "--master", "--processes", "2"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let before = wait_workers(&server, 2);
    let addr = server.addr().to_string();
    let load = request_loop(2000, move || served_by(&addr));
    std::thread::sleep(Duration::from_millis(200));
    let victim = before[0];
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(victim as i32), Signal::SIGKILL).unwrap();
    let killed_at = Instant::now();
    let respawned = wait_until(Duration::from_secs(1), || {
        let now = children(server.pid());
        now.len() == 2 && !now.contains(&victim)
    });
    let took = killed_at.elapsed();
    std::thread::sleep(Duration::from_millis(300));
    let outcomes = load.finish();
    assert!(respawned, "no new worker within 1 s ({took:?}); log:\n{}", server.log());
    // The one request the killed worker may have accepted can fail;
    // nothing else may.
    let failed = failures(&outcomes);
    assert!(failed.len() <= 1, "failed requests: {failed:?}");
    let survivor = before[1];
    assert!(outcomes.iter().any(|o| o == &Ok(survivor)), "the survivor served nothing");
    assert!(server.log_contains(&format!("worker 1 (pid {victim}) died (killed by SIGKILL)")));
}

#[test]
fn sighup_reloads_new_code_preloaded_at_once_with_zero_failed_requests() {
    let dir = TempDir::new("hup");
    let app = write_versioned_app(&dir, "v1");
    // Two threads: the slow request must not hold up the others its worker accepts.
    let mut args = vec!["--wsgi-file", &app, "--master", "--processes", "2", "--threads", "2"];
    args.extend(MERCY);
    let mut server = Server::start(&args);
    wait_workers(&server, 2);
    let addr = server.addr().to_string();
    assert_eq!(version_of(&addr).unwrap().0, "v1");
    let load = version_load(&addr, 3000);
    // A long request in flight: it finishes on the old code, and does not
    // hold up the new code meanwhile.
    let slow_addr = addr.clone();
    let slow = std::thread::spawn(move || fetch(&slow_addr, "/sleep"));
    reload_version_two(&server, &dir, Signal::SIGHUP);
    let sent = Instant::now();
    let reloaded = wait_until(Duration::from_secs(15), || {
        version_of(&addr).is_ok_and(|(v, _)| v == "version-two")
    });
    let took = sent.elapsed();
    std::thread::sleep(Duration::from_millis(200));
    let outcomes = load.finish();
    assert!(reloaded, "the new code is not served; log:\n{}", server.log());
    assert!(took < Duration::from_millis(1500), "new code after {took:?}: the reload waited");
    assert_eq!(failures(&outcomes), Vec::<&String>::new());
    let (status, body) = slow.join().unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(body.starts_with("v1 "), "{body}");
    assert!(server.log_contains("re-executing the master"));
    assert!(server.wait_log("previous worker (pid", Duration::from_secs(5)));
    assert!(!server.log().contains("WARN"), "{}", server.log());
    assert_eq!(server.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn chain_reload_with_preload_replaces_workers_one_at_a_time_with_zero_failed_requests() {
    let dir = TempDir::new("pchain");
    let app = write_versioned_app(&dir, "v1");
    let mut args = vec!["--wsgi-file", &app, "--master", "--processes", "2"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let old = wait_workers(&server, 2);
    let addr = server.addr().to_string();
    let load = version_load(&addr, 4000);
    reload_version_two(&server, &dir, Signal::SIGUSR2);
    let new = wait_until(Duration::from_secs(15), || {
        let now = children(server.pid());
        now.len() == 2 && now.iter().all(|p| !old.contains(p))
    });
    std::thread::sleep(Duration::from_millis(200));
    let outcomes = load.finish();
    assert!(new, "the old workers were not replaced; log:\n{}", server.log());
    assert_eq!(failures(&outcomes), Vec::<&String>::new());
    assert_eq!(version_of(&addr).unwrap().0, "version-two");
    // One at a time: new worker 1 ready, then an old one stops, then new worker 2 starts.
    let log = server.log();
    let chain = &log[log.find("(chain reload: one at a time)").unwrap()..];
    let at = |needle: &str| chain.find(needle).unwrap_or_else(|| panic!("{needle:?}: {chain}"));
    let (ready, retired, second) =
        (at("worker 1 (pid"), at("previous worker (pid"), at("spawned worker 2"));
    assert!(at(") ready") > ready && at(") ready") < retired && retired < second, "{chain}");
}

#[test]
fn lazy_apps_chain_and_full_reloads_serve_new_code_with_zero_failed_requests() {
    let dir = TempDir::new("chain");
    let app = write_versioned_app(&dir, "v1");
    let trigger = dir.join("reload-me");
    let mut args = vec![
        "--wsgi-file",
        &app,
        "--master",
        "--processes",
        "2",
        "--lazy-apps",
        "--touch-chain-reload",
        &trigger,
    ];
    args.extend(MERCY);
    let server = Server::start(&args);
    let first = wait_workers(&server, 2);
    let addr = server.addr().to_string();
    let load = version_load(&addr, 4000);
    reload_version_two(&server, &dir, Signal::SIGUSR2);
    assert!(server.wait_log("chain reload done", Duration::from_secs(15)), "{}", server.log());
    let second = wait_workers(&server, 2);
    assert!(second.iter().all(|p| !first.contains(p)), "{first:?} -> {second:?}");
    assert_eq!(version_of(&addr).unwrap().0, "version-two");
    // Now through the touch file, with a third version.
    write_versioned_app(&dir, "three");
    std::fs::write(&trigger, "").unwrap();
    assert!(
        server.wait_log_count("chain reload done", 2, Duration::from_secs(15)),
        "{}",
        server.log()
    );
    assert_eq!(version_of(&addr).unwrap().0, "three");
    // And a full reload (SIGHUP): with lazy-apps, all new workers start
    // at once, each old one stops once its replacement is ready.
    write_versioned_app(&dir, "four");
    let before_hup = children(server.pid());
    server.signal(Signal::SIGHUP);
    assert!(
        wait_until(Duration::from_secs(15), || {
            let now = children(server.pid());
            now.len() == 2 && now.iter().all(|p| !before_hup.contains(p))
        }),
        "{}",
        server.log()
    );
    let outcomes = load.finish();
    assert_eq!(failures(&outcomes), Vec::<&String>::new());
    assert_eq!(version_of(&addr).unwrap().0, "four");
    // One at a time: the second replacement started only after the first was ready.
    let log = server.log();
    let chain = &log[log.find("SIGUSR2: chain reload").unwrap()..];
    let spawned: Vec<usize> =
        chain.match_indices("spawned worker").map(|(i, _)| i).take(2).collect();
    let first_ready = chain.find(") ready").unwrap();
    assert!(spawned[0] < first_ready && first_ready < spawned[1], "{chain}");
}

#[test]
fn sigterm_finishes_the_request_in_flight_refuses_new_ones_and_vacuums() {
    let dir = TempDir::new("term");
    let sock = dir.join("http.sock");
    let pidfile = dir.join("rwsgi.pid");
    let mut args = vec![
        "--http-socket",
        "127.0.0.1:0",
        "--http-socket",
        &sock,
        "--wsgi-file",
        PROBE,
        "--master",
        "--processes",
        "2",
        // With one thread the request runs on the I/O thread, which sees
        // SIGTERM (and closes its listeners) only once the request is over:
        // connections made meanwhile wait in the backlog. Two threads keep
        // the I/O thread free to stop accepting at once.
        "--threads",
        "2",
        "--vacuum",
        "--pidfile",
        &pidfile,
    ];
    args.extend(MERCY);
    let mut server = Server::start(&args);
    wait_workers(&server, 2);
    let written: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(written, server.pid());
    let addr = server.addr().to_string();
    let slow = std::thread::spawn(move || fetch(&addr, "/sleep?s=2&mark=1"));
    assert!(server.log_contains("sleep started"));
    server.signal(Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(500));
    let refused = TcpStream::connect(server.addr());
    assert!(refused.is_err(), "a new TCP connection was accepted during shutdown");
    assert!(std::os::unix::net::UnixStream::connect(&sock).is_err(), "unix socket accepted");
    let (status, body) = slow.join().unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, "slept"), "the request in flight");
    let exit = server.wait_exit(Duration::from_secs(10)).unwrap();
    assert_eq!(exit.code(), Some(0), "{}", server.log());
    assert!(!std::path::Path::new(&sock).exists(), "vacuum left the socket");
    assert!(!std::path::Path::new(&pidfile).exists(), "vacuum left the pidfile");
}

#[test]
fn sigquit_stops_master_and_workers_at_once() {
    let mut server = Server::start(&["--wsgi-file", PROBE, "--master", "--processes", "2"]);
    let workers = wait_workers(&server, 2);
    let addr = server.addr().to_string();
    let slow = std::thread::spawn(move || fetch(&addr, "/sleep?s=10"));
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    server.signal(Signal::SIGQUIT);
    server.wait_exit(Duration::from_secs(5)).expect("did not stop at once");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(slow.join().unwrap().is_err(), "the sleeping request was not cut");
    assert!(wait_until(Duration::from_secs(2), || workers.iter().all(|p| !std::path::Path::new(
        &format!("/proc/{p}")
    )
    .exists()
        || comm(*p).is_empty())));
}

#[test]
fn harakiri_kills_a_stuck_worker_logs_its_python_stack_and_serves_on() {
    harakiri_kills_a_stuck_worker(2, "threads=2: the whole worker is recycled");
}

/// With one thread the stuck request runs on the worker's I/O thread
/// (inline): the master's watch and the stack dump must not depend on it.
#[test]
fn harakiri_kills_a_worker_stuck_in_an_inline_request() {
    harakiri_kills_a_stuck_worker(1, "threads=1: the worker is recycled");
}

fn harakiri_kills_a_stuck_worker(threads: usize, recycled: &str) {
    let threads = threads.to_string();
    let mut args = vec![
        "--wsgi-file",
        PROBE,
        "--master",
        "--processes",
        "1",
        "--threads",
        &threads,
        "--harakiri",
        "2",
    ];
    args.extend(MERCY);
    let server = Server::start(&args);
    let before = wait_workers(&server, 1);
    let addr = server.addr().to_string();
    let started = Instant::now();
    let stuck = std::thread::spawn(move || fetch(&addr, "/sleep?s=10"));
    let outcome = stuck.join().unwrap();
    let took = started.elapsed();
    assert!(outcome.is_err(), "the stuck request completed: {outcome:?}");
    assert!(took < Duration::from_secs(4), "killed after {took:?}");
    assert!(server.log_contains("harakiri: worker 1"));
    let line = server.log_lines_with("harakiri:").remove(0);
    assert!(line.contains("request GET /sleep?s=10 running 2."), "{line}");
    assert!(line.contains(recycled), "{line}");
    // faulthandler's dump: the sleeping frame of the probe.
    assert!(
        server.wait_log_text(Duration::from_secs(5), |t| t.contains("Most recent call first")
            || t.contains("most recent call first")),
        "{}",
        server.log()
    );
    assert!(server.log().contains("probe.py\", line"), "{}", server.log());
    let after = wait_workers(&server, 1);
    assert_ne!(before, after);
    assert_eq!(served_by(server.addr()).unwrap(), after[0]);
}

#[test]
fn max_requests_recycles_the_worker_after_five_requests_without_failures() {
    let mut args =
        vec!["--wsgi-file", PROBE, "--master", "--processes", "1", "--max-requests", "5"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let first = wait_workers(&server, 1)[0];
    let addr = server.addr();
    let mut served = Vec::new();
    for _ in 0..5 {
        served.push(served_by(addr).unwrap());
    }
    assert!(served.iter().all(|p| *p == first), "{served:?}");
    assert!(server.log_contains("max-requests reached (5 requests served)"), "{}", server.log());
    let second = wait_until(Duration::from_secs(10), || {
        served_by(addr).map(|p| p != first).unwrap_or_else(|e| panic!("failed request: {e}"))
    });
    assert!(second, "the worker was not replaced; log:\n{}", server.log());
    assert!(server.wait_log(&format!("worker 1 (pid {first}) stopped"), Duration::from_secs(5)));
}

#[test]
fn reload_on_rss_recycles_a_worker_that_allocated_200_mib() {
    let dir = TempDir::new("rss");
    let app = write_versioned_app(&dir, "v1");
    let mut args =
        vec!["--wsgi-file", &app, "--master", "--processes", "1", "--reload-on-rss", "150"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let first = wait_workers(&server, 1)[0];
    let addr = server.addr();
    assert_eq!(version_of(addr).unwrap().1, first);
    assert!(server.log().contains("ready") && !server.log().contains("recycled"));
    let (status, _) = fetch(addr, "/grow").unwrap();
    assert_eq!(status, 200);
    assert!(server.log_contains("reload-on-rss exceeded"), "{}", server.log());
    assert!(
        wait_until(Duration::from_secs(10), || version_of(addr).unwrap().1 != first),
        "{}",
        server.log()
    );
}

/// A preloaded app's objects stay shared with the master through a full
/// collection in the worker: the master froze them before the fork, so
/// the collector does not write to their headers and copy their pages.
#[test]
fn a_full_collection_in_a_worker_leaves_the_preloaded_objects_shared() {
    let dir = TempDir::new("freeze");
    // 300,000 lists: about 25 MiB of objects the collector tracks.
    let app = dir.write(
        "app.py",
        r#"import gc, json
KEPT = [[i] for i in range(300_000)]

def private_dirty_kib():
    with open("/proc/self/smaps_rollup") as f:
        return int(f.read().split("Private_Dirty:")[1].split()[0])

def application(environ, start_response):
    before = private_dirty_kib()
    gc.collect()
    body = json.dumps({"grown_kib": private_dirty_kib() - before,
                       "frozen": gc.get_freeze_count()}).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [body]
"#,
    );
    let mut args = vec!["--wsgi-file", &app, "--master", "--processes", "1"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let (status, body) = fetch(server.addr(), "/").unwrap();
    assert_eq!(status, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(seen["frozen"].as_u64().unwrap() > 300_000, "{seen}");
    // Unfrozen, the collection dirties every page of the lists (about
    // 25 MiB); frozen, only the collector's own work.
    assert!(seen["grown_kib"].as_i64().unwrap() < 4096, "{seen}");
}

#[test]
fn max_worker_lifetime_recycles_a_worker() {
    let mut args =
        vec!["--wsgi-file", PROBE, "--master", "--processes", "1", "--max-worker-lifetime", "1"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let first = wait_workers(&server, 1)[0];
    assert!(server.wait_log("max-worker-lifetime reached", Duration::from_secs(5)));
    assert!(wait_until(Duration::from_secs(10), || served_by(server.addr()).unwrap() != first));
}

#[test]
fn ttin_adds_a_worker_and_ttou_removes_one() {
    let mut args = vec!["--wsgi-file", PROBE, "--master", "--processes", "2"];
    args.extend(MERCY);
    let server = Server::start(&args);
    wait_workers(&server, 2);
    server.signal(Signal::SIGTTIN);
    let three = wait_workers(&server, 3);
    // One at a time: the kernel merges a signal sent while one is pending.
    server.signal(Signal::SIGTTOU);
    wait_workers(&server, 2);
    server.signal(Signal::SIGTTOU);
    let one = wait_workers(&server, 1);
    assert!(three.contains(&one[0]));
    server.signal(Signal::SIGTTOU);
    assert!(server.log_contains("one worker left; keeping it"));
    assert_eq!(children(server.pid()).len(), 1);
}

#[test]
fn workers_say_multiprocess_and_carry_process_titles() {
    let mut args = vec![
        "--wsgi-file",
        PROBE,
        "--master",
        "--processes",
        "2",
        "--procname-prefix-spaced",
        "app",
    ];
    args.extend(MERCY);
    let server = Server::start(&args);
    let workers = wait_workers(&server, 2);
    let environ = server.environ("GET /environ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(environ["wsgi.multiprocess"], serde_json::json!(true));
    assert_eq!(comm(server.pid()), "app rwsgi maste");
    let mut titles: Vec<String> = workers.iter().map(|p| comm(*p)).collect();
    titles.sort();
    assert_eq!(titles, ["app rwsgi worke", "app rwsgi worke"]);
    let single = Server::start(&["--wsgi-file", PROBE, "--master"]);
    wait_workers(&single, 1);
    assert_eq!(comm(single.pid()), "rwsgi master");
    let worker = children(single.pid())[0];
    assert_eq!(comm(worker), "rwsgi worker 1");
    let environ = single.environ("GET /environ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert_eq!(environ["wsgi.multiprocess"], serde_json::json!(false));
}

#[test]
fn an_app_that_cannot_load_exits_1_with_master_preloaded_or_lazy() {
    for lazy in [false, true] {
        let mut args = vec![
            "--http-socket",
            "127.0.0.1:0",
            "--wsgi-file",
            "tests/apps/broken_import.py",
            "--master",
            "--processes",
            "2",
        ];
        if lazy {
            args.push("--lazy-apps");
        }
        let out = run_rwsgi(&args, &[]);
        assert_eq!(out.status.code(), Some(1), "lazy={lazy}: {out:?}");
        assert!(out.stderr.contains("ModuleNotFoundError"), "lazy={lazy}: {}", out.stderr);
        assert!(!out.stderr.contains("respawning"), "lazy={lazy}: {}", out.stderr);
    }
}

/// Whether `uid` can read `path` (the embedded Python may live under a
/// root-only home directory).
fn readable_by(uid: u32, path: &str) -> bool {
    use std::os::unix::process::CommandExt;
    Command::new("sh")
        .args(["-c", "test -r \"$0\"", path])
        .uid(uid)
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts the probe as `uid`/`gid` and checks both ids of master and
/// worker, and that the only supplementary group is `gid`; returns the
/// probe's `/process`.
fn serve_as(uid: &str, gid: &str) -> serde_json::Value {
    let dir = TempDir::new("uid");
    let pidfile = dir.join("rwsgi.pid");
    let mut args =
        vec!["--wsgi-file", PROBE, "--master", "--pidfile", &pidfile, "--uid", uid, "--gid", gid];
    args.extend(MERCY);
    let server = Server::start(&args);
    let worker = wait_workers(&server, 1)[0];
    assert!(std::path::Path::new(&pidfile).exists(), "pidfile written before the drop");
    for pid in [server.pid(), worker] {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let line = |key: &str| status.lines().find(|l| l.starts_with(key)).unwrap().to_string();
        assert!(line("Uid:").split_whitespace().skip(1).all(|u| u == uid), "{}", line("Uid:"));
        assert!(line("Gid:").split_whitespace().skip(1).all(|g| g == gid), "{}", line("Gid:"));
        assert_eq!(line("Groups:").split_whitespace().skip(1).collect::<Vec<_>>(), [gid]);
    }
    let (_, body) = fetch(server.addr(), "/process").unwrap();
    serde_json::from_str(&body).unwrap()
}

#[test]
fn uid_and_gid_are_dropped_after_binding_and_pidfile() {
    let root = nix::unistd::Uid::effective().is_root();
    let nobody = nix::unistd::User::from_name("nobody").ok().flatten();
    let (true, Some(nobody)) = (root, nobody) else {
        eprintln!("SKIPPED: needs root and a `nobody` user");
        return;
    };
    let gid = nobody.gid.to_string();
    let process = serve_as("0", &gid);
    // The standard library's home (a virtualenv's base interpreter's).
    let prefix = process["base_prefix"].as_str().unwrap();
    if readable_by(nobody.uid.as_raw(), &format!("{prefix}/lib")) {
        serve_as(&nobody.uid.to_string(), &gid);
    } else {
        eprintln!("{prefix} is not readable by nobody: uid tested as 0 only");
    }
    let out = run_rwsgi(
        &["--http-socket", "127.0.0.1:0", "--wsgi-file", PROBE, "--uid", "no-such-user-x"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stderr.contains("uid no-such-user-x"), "{}", out.stderr);
}

/// Runs rwsgi as systemd would with these sockets: descriptors 3, 4, ...
/// and `LISTEN_PID` its pid (`sh` sets it to its own, which `exec` keeps).
fn activated(fds: Vec<std::os::fd::RawFd>) -> impl FnOnce(Command) -> Command {
    use std::os::unix::process::CommandExt;
    move |rwsgi: Command| {
        let mut sh = Command::new("sh");
        sh.arg("-c").arg("export LISTEN_PID=$$; exec \"$0\" \"$@\"");
        sh.arg(rwsgi.get_program()).args(rwsgi.get_args());
        for (key, value) in rwsgi.get_envs() {
            match value {
                Some(value) => sh.env(key, value),
                None => sh.env_remove(key),
            };
        }
        sh.current_dir(rwsgi.get_current_dir().unwrap());
        // SAFETY: fcntl and dup2 are async-signal-safe; the descriptors are
        // open (the caller keeps its sockets until the server has started).
        // They move above 100 first, so that none is overwritten before it
        // is copied to its place from 3 (and none keeps CLOEXEC there).
        unsafe {
            sh.pre_exec(move || {
                let mut high = Vec::with_capacity(fds.len());
                for fd in &fds {
                    let copy = libc::fcntl(*fd, libc::F_DUPFD, 100);
                    if copy < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    high.push(copy);
                }
                for (target, fd) in (3..).zip(high) {
                    if libc::dup2(fd, target) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
        sh
    }
}

#[test]
fn systemd_socket_activation_and_notify() {
    use std::os::fd::AsRawFd;
    let dir = TempDir::new("sd");
    let notify_path = dir.join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let wrap = activated(vec![listener.as_raw_fd()]);
    let env = [("LISTEN_FDS", "1"), ("NOTIFY_SOCKET", notify_path.as_str())];
    let mut server = Server::start_with(&["--wsgi-file", PROBE, "--master"], &env, wrap);
    drop(listener);
    assert_eq!(server.addr(), format!("127.0.0.1:{port}"), "{}", server.log());
    assert!(server.log_contains("socket activation: 1 inherited socket(s)"));
    let mut buf = [0u8; 512];
    let n = notify.recv(&mut buf).expect("no READY=1 datagram");
    let message = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(message.starts_with("READY=1\nSTATUS=1 workers serving"), "{message:?}");
    served_by(server.addr()).unwrap();
    server.signal(Signal::SIGHUP);
    let n = notify.recv(&mut buf).expect("no RELOADING=1 datagram");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("RELOADING=1\nMONOTONIC_USEC="));
    let n = notify.recv(&mut buf).expect("no READY=1 after the reload");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("READY=1"));
    served_by(server.addr()).unwrap();
    server.signal(Signal::SIGTERM);
    let n = notify.recv(&mut buf).expect("no STOPPING=1 datagram");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert_eq!(server.wait_exit(Duration::from_secs(10)).unwrap().code(), Some(0));
}

/// A request over `protocol` to `addr`; the probe's `/process` answer.
fn process_over(protocol: &str, addr: &str) -> String {
    let mut conn = Conn::open(addr);
    match protocol {
        "http-socket" => {
            conn.send("GET /process HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
            conn.read_response().text()
        }
        "uwsgi-socket" => {
            conn.send(uwsgi_packet(&nginx_vars("GET", "/process"), b""));
            conn.read_response().text()
        }
        _ => {
            conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/process"), b""));
            conn.read_fcgi_response(1).text()
        }
    }
}

#[test]
fn the_seed_ini_serves_on_every_socket_of_every_protocol() {
    // conf/seed.ini as it is, its fixed addresses moved into a temporary
    // directory (and to a free port) so that tests can run side by side.
    let dir = TempDir::new("seed");
    let seed = std::fs::read_to_string(repo_path("conf/seed.ini")).unwrap();
    let ini = seed
        .replace("/tmp/rwsgi_demo", &dir.join("demo"))
        .replace("127.0.0.1:9000", "127.0.0.1:0")
        .replace("%d../examples/hello/", &repo_path("examples/hello/"))
        .replace("wsgi-file = app.py", &format!("wsgi-file = {}", repo_path(PROBE)));
    assert!(ini.contains("processes = 4") && ini.contains("master = true"), "{ini}");
    let path = dir.write("seed.ini", ini);
    let server = Server::start_listening(&[&path], &[], 5);
    let workers = wait_workers(&server, 4);
    for (protocol, addr) in server.listeners() {
        let body = process_over(protocol, addr);
        assert!(body.contains("\"pid\""), "{protocol} at {addr}: {body}");
        let pid: u32 = serde_json::from_str::<serde_json::Value>(&body).unwrap()["pid"]
            .as_u64()
            .unwrap() as u32;
        assert!(workers.contains(&pid), "{pid} is not one of {workers:?}");
    }
}

#[test]
fn a_production_uwsgi_ini_runs_unchanged() {
    let dir = TempDir::new("prod");
    let sock = dir.join("app.sock");
    let pidfile = dir.join("app.pid");
    // As root (CI), the group drop is real; nobody's uid may not be able to
    // read the embedded Python (see uid_and_gid_are_dropped_...).
    let privileges = match nix::unistd::Group::from_name("nogroup").ok().flatten() {
        Some(group) if nix::unistd::Uid::effective().is_root() => {
            format!("uid = 0\ngid = {}\n", group.gid)
        }
        _ => String::new(),
    };
    let ini = format!(
        "[uwsgi]
; what a production uWSGI file holds
module = probe
pythonpath = {apps}
master = true
processes = 2
threads = 2
enable-threads = true
http-socket = 127.0.0.1:0
socket = {sock}
chmod-socket = 660
vacuum = true
pidfile = {pidfile}
harakiri = 30
max-requests = 1000
max-requests-delta = 10
reload-on-rss = 512
die-on-term = true
need-app = true
listen = 1000000
{privileges}",
        apps = repo_path("tests/apps"),
    );
    let path = dir.write("app.ini", ini);
    let mut server = Server::start_listening(&[&path], &[], 2);
    wait_workers(&server, 2);
    assert!(server.log_contains("listen = 1000000 exceeds net.core.somaxconn"), "{}", server.log());
    for (protocol, addr) in server.listeners() {
        assert!(process_over(protocol, addr).contains("\"pid\""), "{protocol} at {addr}");
    }
    assert_eq!(common::mode_of(&sock) & 0o777, 0o660);
    let written: u32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    assert_eq!(written, server.pid());
    assert_eq!(server.stop(Signal::SIGTERM).code(), Some(0), "{}", server.log());
    for path in [&sock, &pidfile] {
        assert!(!std::path::Path::new(path).exists(), "{path} left behind");
    }
}

#[test]
fn a_worker_that_calls_os_exit_is_replaced_and_the_other_serves_on() {
    let dir = TempDir::new("exit");
    let app = dir.write(
        "app.py",
        "import os\n\
         def application(environ, start_response):\n    \
             if environ['PATH_INFO'] == '/exit':\n        os._exit(3)\n    \
             body = str(os.getpid()).encode()\n    \
             start_response('200 OK', [('Content-Length', str(len(body)))])\n    \
             return [body]\n",
    );
    let mut args = vec!["--wsgi-file", &app, "--master", "--processes", "2"];
    args.extend(MERCY);
    let server = Server::start(&args);
    let before = wait_workers(&server, 2);
    assert!(fetch(server.addr(), "/exit").is_err(), "os._exit answered");
    assert!(server.log_contains("died (exit status 3)"), "{}", server.log());
    let after = wait_workers(&server, 2);
    assert_eq!(after.iter().filter(|p| before.contains(p)).count(), 1, "{before:?} {after:?}");
    for _ in 0..10 {
        let (status, body) = fetch(server.addr(), "/").unwrap();
        assert_eq!(status, 200);
        assert!(after.contains(&body.parse().unwrap()));
    }
}

#[test]
fn workers_dying_young_in_a_loop_are_respawned_with_a_back_off() {
    let dir = TempDir::new("loop");
    // Each worker imports this (lazy-apps), starts serving, and dies 100 ms later.
    let app = dir.write(
        "app.py",
        "import os, threading\n\
         threading.Timer(0.1, os._exit, (3,)).start()\n\
         def application(environ, start_response):\n    \
             start_response('200 OK', [])\n    \
             return [b'']\n",
    );
    let mut args = vec!["--wsgi-file", &app, "--master", "--lazy-apps"];
    args.extend(MERCY);
    let mut server = Server::start(&args);
    assert!(server.wait_log("respawning too fast", Duration::from_secs(10)), "{}", server.log());
    let spawned_at_first = server.log().matches("spawned worker 1").count();
    std::thread::sleep(Duration::from_secs(2));
    let spawned = server.log().matches("spawned worker 1").count() - spawned_at_first;
    // Without a back-off it would be about one every 100 ms: 20 in 2 s.
    assert!(spawned <= 4, "{spawned} respawns in 2 s; log:\n{}", server.log());
    assert!(server.running(), "the master gave up");
    assert_eq!(server.stop(Signal::SIGTERM).code(), Some(0));
}

#[test]
fn a_connection_accepted_just_before_a_graceful_stop_is_still_served() {
    // The race a reload runs into: the worker accepted the connection, the
    // stop came before the request's bytes did.
    let mut server = Server::probe(&[]);
    let mut conn = Conn::open(server.addr());
    assert!(server.wait_log("listening on", Duration::from_secs(1)));
    std::thread::sleep(Duration::from_millis(100));
    server.signal(Signal::SIGTERM);
    assert!(server.log_contains("shutting down"));
    std::thread::sleep(Duration::from_millis(200));
    conn.send("GET /process HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let response = conn.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(server.wait_exit(Duration::from_secs(5)).unwrap().code(), Some(0));
}

#[test]
fn recycling_under_keep_alive_clients_fails_no_request() {
    // Two clients, each on one keep-alive connection until the server says
    // `Connection: close`; the worker is recycled every 20 requests.
    let mut args = vec!["--wsgi-file", PROBE, "--master", "--max-requests", "20"];
    args.extend(MERCY);
    let server = Server::start(&args);
    wait_workers(&server, 1);
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let addr = server.addr().to_string();
            std::thread::spawn(move || {
                let (mut served, mut failed, mut closes) = (0, Vec::new(), 0);
                let mut conn = Conn::open(&addr);
                while served + failed.len() < 200 {
                    std::thread::sleep(Duration::from_millis(5));
                    conn.send("GET /process HTTP/1.1\r\nHost: t\r\n\r\n");
                    match conn.try_read_response(false) {
                        Ok(response) if response.status == 200 => {
                            served += 1;
                            if response.says_close() {
                                closes += 1;
                                conn = Conn::open(&addr);
                            }
                        }
                        outcome => {
                            failed.push(format!("{outcome:?}"));
                            conn = Conn::open(&addr);
                        }
                    }
                }
                (served, failed, closes)
            })
        })
        .collect();
    for client in clients {
        let (served, failed, closes) = client.join().unwrap();
        assert_eq!(failed, Vec::<String>::new(), "after {served} served");
        assert!(closes > 0, "no recycle announced a close");
    }
    assert!(server.log_contains("max-requests reached"));
}

#[test]
fn named_activated_sockets_take_the_places_of_their_protocols_sockets() {
    use std::os::fd::AsRawFd;
    let uwsgi = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let wrap = activated(vec![uwsgi.as_raw_fd(), http.as_raw_fd()]);
    let env = [("LISTEN_FDS", "2"), ("LISTEN_FDNAMES", "socket:http-socket")];
    // Configured: an HTTP socket, then a uwsgi one (the opposite order).
    let args = ["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0", "--wsgi-file", PROBE];
    let server = Server::start_with(&args, &env, wrap);
    let (http_addr, uwsgi_addr) = (http.local_addr().unwrap(), uwsgi.local_addr().unwrap());
    drop((http, uwsgi));
    assert_eq!(server.http_addr(0), http_addr.to_string(), "{}", server.log());
    assert_eq!(server.uwsgi_addr(0), uwsgi_addr.to_string(), "{}", server.log());
    assert!(process_over("http-socket", server.http_addr(0)).contains("\"pid\""));
    assert!(process_over("uwsgi-socket", server.uwsgi_addr(0)).contains("\"pid\""));
}

#[test]
fn notify_reaches_an_abstract_socket_without_a_master_too() {
    let notify = NotifySocket::new("notify");
    let mut server =
        Server::start_env(&["--wsgi-file", PROBE], &[("NOTIFY_SOCKET", &notify.target)]);
    let ready = notify.next("READY=1");
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    assert_eq!(server.stop(Signal::SIGTERM).code(), Some(0));
    assert_eq!(notify.next("STOPPING=1"), "STOPPING=1");
}

#[test]
fn a_busy_worker_leaves_new_connections_to_its_idle_sibling() {
    let mut args = vec!["--wsgi-file", PROBE, "--master", "--processes", "2"];
    args.extend(MERCY);
    let server = Server::start(&args);
    wait_workers(&server, 2);
    let addr = server.addr().to_string();
    let slow = {
        let addr = addr.clone();
        std::thread::spawn(move || fetch(&addr, "/sleep?s=3"))
    };
    // Let one worker take the slow request and start sleeping.
    std::thread::sleep(Duration::from_millis(300));
    // With one worker asleep, every quick request must go to the other
    // one, not wait its turn behind the sleeper.
    for n in 0..20 {
        let started = Instant::now();
        let outcome = fetch(&addr, "/process");
        let took = started.elapsed();
        assert!(matches!(outcome, Ok((200, _))), "request {n}: {outcome:?}");
        assert!(took < Duration::from_secs(1), "request {n} waited {took:?} behind the sleeper");
    }
    assert!(matches!(slow.join().unwrap(), Ok((200, _))));
}

/// A load balancer's view of a graceful stop: connections the kernel had
/// queued when SIGTERM came (their requests sent) are answered, not reset;
/// after the stop, connections are refused, so nginx moves on at once.
#[test]
fn sigterm_answers_what_was_queued_then_refuses() {
    let mut args = vec!["--wsgi-file", PROBE, "--master", "--processes", "1"];
    args.extend(MERCY);
    let mut server = Server::start(&args);
    let worker = wait_workers(&server, 1)[0];
    let worker = nix::unistd::Pid::from_raw(i32::try_from(worker).unwrap());
    // A stopped worker takes nothing: these wait in the listen queue.
    nix::sys::signal::kill(worker, Signal::SIGSTOP).unwrap();
    let queued: Vec<Conn> = (0..3)
        .map(|_| {
            let mut conn = Conn::open(server.addr());
            conn.send("GET /closing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            conn
        })
        .collect();
    server.signal(Signal::SIGTERM);
    assert!(server.wait_log("shutting down", Duration::from_secs(5)), "{}", server.log());
    nix::sys::signal::kill(worker, Signal::SIGCONT).unwrap();
    for mut conn in queued {
        assert_eq!(conn.read_response().text(), "ab", "{}", server.log());
    }
    assert_eq!(server.wait_exit(Duration::from_secs(10)).and_then(|s| s.code()), Some(0));
    let refused = TcpStream::connect(server.addr());
    assert!(refused.is_err(), "connections after the stop are refused");
}
