//! The integration tests' harness: an `rwsgi` child process per test, a raw
//! HTTP/1.1 client that never hangs (every read has a deadline), a response
//! parser that also reports how a response ended, a real nginx in front, and
//! curl as a real client.
//!
//! Each test binary uses a subset of this module.

#![allow(dead_code)]
#![allow(clippy::unwrap_used)]

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use nix::sys::signal::Signal;

/// How long any single read from a server may block.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to start listening.
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a log line may take to show up.
pub const LOG_TIMEOUT: Duration = Duration::from_secs(5);

/// The repository root: the working directory of every server.
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// An absolute path under the repository root.
pub fn repo_path(relative: &str) -> String {
    root().join(relative).to_string_lossy().into_owned()
}

/// The probe app's path, relative to the repository root.
pub const PROBE: &str = "tests/apps/probe.py";

/// One socket of each protocol, on free ports: `--http-socket`,
/// `--uwsgi-socket`, `--fastcgi-socket`.
pub const EVERY_PROTOCOL: [&str; 6] = [
    "--http-socket",
    "127.0.0.1:0",
    "--uwsgi-socket",
    "127.0.0.1:0",
    "--fastcgi-socket",
    "127.0.0.1:0",
];

/// Whether we run under CI, where a missing dependency is a failure.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A missing external dependency: a failure under `CI=true`, else a skip.
/// Returns false when the caller must skip.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if in_ci() {
        panic!("{what} is required when CI=true");
    }
    eprintln!("SKIPPED: {what} is not available (set CI=true to make this a failure)");
    false
}

// ---------------------------------------------------------------------------
// Temporary directories
// ---------------------------------------------------------------------------

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A fresh directory, removed with everything in it on drop. Short paths:
/// unix socket paths must stay under 108 bytes.
#[derive(Debug)]
pub struct TempDir {
    path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("rwsgi-t{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A path inside the directory, as a string.
    pub fn join(&self, name: &str) -> String {
        self.path.join(name).to_string_lossy().into_owned()
    }

    /// Writes a file `name` inside the directory; its path, as a string.
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

// ---------------------------------------------------------------------------
// Captured output of a child process
// ---------------------------------------------------------------------------

/// Lines a child wrote, shared with the threads that read its pipes.
#[derive(Debug, Default)]
struct LogBuf {
    text: Mutex<String>,
    changed: Condvar,
}

impl LogBuf {
    fn push_line(&self, line: &str) {
        let mut text = self.text.lock().unwrap();
        text.push_str(line);
        text.push('\n');
        self.changed.notify_all();
    }

    fn snapshot(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Waits until `pred` holds for the text, up to `timeout`.
    fn wait_for(&self, timeout: Duration, mut pred: impl FnMut(&str) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.text.lock().unwrap();
        loop {
            if pred(&text) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            text = self.changed.wait_timeout(text, deadline - now).unwrap().0;
        }
    }
}

fn pump(reader: impl Read + Send + 'static, log: Arc<LogBuf>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&line);
                    log.push_line(text.trim_end_matches(['\n', '\r']));
                }
            }
        }
    })
}

/// Waits for a child to exit, up to `timeout`.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn send_signal(child: &Child, signal: Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap());
    let _ = nix::sys::signal::kill(pid, signal);
}

// ---------------------------------------------------------------------------
// rwsgi
// ---------------------------------------------------------------------------

/// The rwsgi binary under test.
/// The rwsgi under test: the Python package's `rwsgi` command when
/// `TESTED_RWSGI` names it (`make test` installs the wheel into the
/// virtualenv and points there), else the workspace's binary.
pub fn rwsgi_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("TESTED_RWSGI").unwrap_or_else(|_| env!("CARGO_BIN_EXE_rwsgi").to_string())
    })
}

/// The processes whose environment holds `mark`: a run's own, even once
/// they are no longer the test's children.
pub fn marked_processes(mark: &str) -> Vec<String> {
    let needle = format!("TEST_PROCESS_MARK={mark}");
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|entry| {
            let pid = entry.ok()?.file_name().into_string().ok()?;
            pid.parse::<u32>().ok()?;
            let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
            environ.split(|&b| b == 0).any(|var| var == needle.as_bytes()).then_some(pid)
        })
        .collect()
}

/// The virtualenv the `rwsgi` under test is installed in (the wheel's
/// command), or `None` for the workspace's binary.
pub fn tested_venv() -> Option<PathBuf> {
    let command = std::env::var_os("TESTED_RWSGI")?;
    Some(Path::new(&command).parent()?.parent()?.to_path_buf())
}

/// For [`Server::start_with`]: the same command run by `program` (another
/// `rwsgi`, such as a virtualenv's) in `cwd`.
pub fn run_by(program: &Path, cwd: &Path) -> impl FnOnce(Command) -> Command {
    let (program, cwd) = (program.to_path_buf(), cwd.to_path_buf());
    move |given| {
        let mut command = Command::new(program);
        command.args(given.get_args()).current_dir(cwd).stdin(Stdio::null());
        for (key, value) in given.get_envs() {
            match value {
                Some(value) => command.env(key, value),
                None => command.env_remove(key),
            };
        }
        command
    }
}

/// A `Command` for rwsgi with a clean environment: cwd = repository root,
/// no inherited `VIRTUAL_ENV`/`RUST_LOG`, no inherited `UWSGI_*`/`RWSGI_*`
/// variables (rwsgi reads them as options, e.g. `RWSGI_TEST_VENV`), `TMPDIR`
/// in `tmp`.
fn rwsgi_command(args: &[&str], env: &[(&str, &str)], tmp: &Path) -> Command {
    let mut cmd = Command::new(rwsgi_bin());
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("UWSGI_") || key.starts_with("RWSGI_") {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.args(args)
        .current_dir(root())
        .env_remove("VIRTUAL_ENV")
        .env_remove("RUST_LOG")
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env("TMPDIR", tmp)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// What a short-lived rwsgi run printed.
#[derive(Debug)]
pub struct Outcome {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    /// stderr's non-empty lines.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }
}

/// Runs rwsgi expecting it to exit by itself (within 20 s).
pub fn run_rwsgi(args: &[&str], env: &[(&str, &str)]) -> Outcome {
    let tmp = TempDir::new("run");
    let mut child = rwsgi_command(args, env, tmp.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Arc::new(LogBuf::default());
    let err = Arc::new(LogBuf::default());
    let t1 = pump(child.stdout.take().unwrap(), Arc::clone(&out));
    let t2 = pump(child.stderr.take().unwrap(), Arc::clone(&err));
    let status = match wait_timeout(&mut child, Duration::from_secs(20)) {
        Some(status) => status,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rwsgi {args:?} did not exit within 20 s; stderr:\n{}", err.snapshot());
        }
    };
    let _ = t1.join();
    let _ = t2.join();
    Outcome { status, stdout: out.snapshot(), stderr: err.snapshot() }
}

/// Asserts a failed start: exit status 1 and exactly one line on stderr
/// containing every one of `needles`; returns the line.
pub fn assert_one_line_failure(args: &[&str], env: &[(&str, &str)], needles: &[&str]) -> String {
    let out = run_rwsgi(args, env);
    assert_eq!(out.status.code(), Some(1), "{args:?}: {out:?}");
    // Warnings the run deserved come first, each on its own line.
    let lines: Vec<&str> = out
        .stderr_lines()
        .into_iter()
        .filter(|line| !line.starts_with("rwsgi: warning: "))
        .collect();
    assert_eq!(lines.len(), 1, "{args:?}: want one error line on stderr, got {:?}", out.stderr);
    for needle in needles {
        assert!(lines[0].contains(needle), "{args:?}: {:?} lacks {needle:?}", lines[0]);
    }
    assert!(!out.stderr.contains("Traceback"), "{args:?}: {:?}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{args:?}: {:?}", out.stderr);
    lines[0].to_string()
}

/// A running rwsgi. Dropping it kills the process.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    log: Arc<LogBuf>,
    /// `(protocol, address)` of every listener, in the order logged; the
    /// protocol as the log names it (`http-socket`, `uwsgi-socket`,
    /// `fastcgi-socket`).
    listeners: Vec<(String, String)>,
    addrs: Vec<String>,
    pumps: Vec<JoinHandle<()>>,
    _tmp: TempDir,
}

/// The options that name a listening socket (each takes one address).
const SOCKET_OPTIONS: &[&str] =
    &["--http-socket", "--http", "--socket", "-s", "--uwsgi-socket", "--fastcgi-socket"];

/// Whether `arg` names a socket: `--socket ADDR` or `--socket=ADDR`.
fn is_socket_arg(arg: &str) -> bool {
    SOCKET_OPTIONS
        .iter()
        .any(|opt| arg == *opt || arg.strip_prefix(opt).is_some_and(|rest| rest.starts_with('=')))
}

/// Whether the command line names a socket itself.
fn has_socket_arg(args: &[&str]) -> bool {
    args.iter().any(|a| is_socket_arg(a))
}

fn socket_arg_count(args: &[&str]) -> usize {
    args.iter().filter(|a| is_socket_arg(a)).count()
}

impl Server {
    /// Starts rwsgi with `args` (plus `--http-socket 127.0.0.1:0` unless
    /// they name a socket) and waits until every socket is listening.
    pub fn start(args: &[&str]) -> Server {
        Server::start_env(args, &[])
    }

    /// The probe app with extra options.
    pub fn probe(extra: &[&str]) -> Server {
        let mut args = vec!["--wsgi-file", PROBE];
        args.extend_from_slice(extra);
        Server::start(&args)
    }

    /// [`Server::start`] with extra environment variables for the child.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_with(args, env, |command| command)
    }

    /// [`Server::start_env`], with a last word on the command: descriptors
    /// to pass, or another command wrapping it.
    pub fn start_with(
        args: &[&str],
        env: &[(&str, &str)],
        customize: impl FnOnce(Command) -> Command,
    ) -> Server {
        let mut all: Vec<&str> = Vec::new();
        if !has_socket_arg(args) {
            all.extend(["--http-socket", "127.0.0.1:0"]);
        }
        all.extend_from_slice(args);
        Server::spawn(&all, env, socket_arg_count(&all), customize)
    }

    /// Starts rwsgi with exactly `args` (sockets from a config file, say)
    /// and waits until `sockets` sockets are listening.
    pub fn start_listening(args: &[&str], env: &[(&str, &str)], sockets: usize) -> Server {
        Server::spawn(args, env, sockets, |command| command)
    }

    /// [`Server::start_listening`], with a last word on the command.
    pub fn start_listening_with(
        args: &[&str],
        env: &[(&str, &str)],
        sockets: usize,
        customize: impl FnOnce(Command) -> Command,
    ) -> Server {
        Server::spawn(args, env, sockets, customize)
    }

    fn spawn(
        all: &[&str],
        env: &[(&str, &str)],
        sockets: usize,
        customize: impl FnOnce(Command) -> Command,
    ) -> Server {
        let tmp = TempDir::new("srv");
        let mut command = customize(rwsgi_command(all, env, tmp.path()));
        let mut child = command.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let log = Arc::new(LogBuf::default());
        let pumps = vec![
            pump(child.stdout.take().unwrap(), Arc::clone(&log)),
            pump(child.stderr.take().unwrap(), Arc::clone(&log)),
        ];
        let mut server = Server {
            child: Some(child),
            log,
            listeners: Vec::new(),
            addrs: Vec::new(),
            pumps,
            _tmp: tmp,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let listeners = listening(&server.log.snapshot());
            if listeners.len() >= sockets {
                server.addrs = listeners.iter().map(|(_, addr)| addr.clone()).collect();
                server.listeners = listeners;
                break;
            }
            if let Some(status) = server.child.as_mut().unwrap().try_wait().unwrap() {
                panic!(
                    "rwsgi {all:?} exited ({status}) before listening; output:\n{}",
                    server.log.snapshot()
                );
            }
            if Instant::now() >= deadline {
                panic!(
                    "rwsgi {all:?} did not listen within {START_TIMEOUT:?}; output:\n{}",
                    server.log.snapshot()
                );
            }
            server.log.wait_for(Duration::from_millis(100), |t| listening(t).len() >= sockets);
        }
        server
    }

    /// The first HTTP listening address (else the first of any protocol):
    /// `127.0.0.1:PORT` or `unix:/path`. [`Server::get`] and friends use it.
    pub fn addr(&self) -> &str {
        self.listeners
            .iter()
            .find(|(protocol, _)| protocol == "http-socket")
            .map_or(&self.addrs[0], |(_, addr)| addr)
    }

    /// The address of the `n`th listener (from 0, in the order logged) that
    /// speaks `protocol` as the log names it (`http-socket`, `uwsgi-socket`,
    /// `fastcgi-socket`).
    pub fn addr_of(&self, protocol: &str, n: usize) -> &str {
        self.listeners
            .iter()
            .filter(|(p, _)| p == protocol)
            .nth(n)
            .map(|(_, addr)| addr.as_str())
            .unwrap_or_else(|| panic!("no {protocol} #{n} among {:?}", self.listeners))
    }

    /// The `n`th `http-socket` address.
    pub fn http_addr(&self, n: usize) -> &str {
        self.addr_of("http-socket", n)
    }

    /// The `n`th uwsgi socket address (`--socket`, `-s`, `--uwsgi-socket`).
    pub fn uwsgi_addr(&self, n: usize) -> &str {
        self.addr_of("uwsgi-socket", n)
    }

    /// The `n`th `--fastcgi-socket` address.
    pub fn fastcgi_addr(&self, n: usize) -> &str {
        self.addr_of("fastcgi-socket", n)
    }

    /// Every listener as `(protocol, address)`, in the order logged.
    pub fn listeners(&self) -> &[(String, String)] {
        &self.listeners
    }

    /// The unix socket path of the first address, if it is one.
    pub fn unix_path(&self) -> Option<&str> {
        self.addr().strip_prefix("unix:")
    }

    /// Every listening address, in the order logged.
    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The TCP port of the first address.
    pub fn port(&self) -> u16 {
        self.addr().rsplit_once(':').unwrap().1.parse().unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Everything the server printed so far.
    pub fn log(&self) -> String {
        self.log.snapshot()
    }

    /// Whether `needle` shows up in the log within [`LOG_TIMEOUT`].
    pub fn log_contains(&self, needle: &str) -> bool {
        self.wait_log(needle, LOG_TIMEOUT)
    }

    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.log.wait_for(timeout, |t| t.contains(needle))
    }

    /// Waits until `needle` occurs at least `count` times in the log.
    pub fn wait_log_count(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        self.log.wait_for(timeout, |t| t.matches(needle).count() >= count)
    }

    /// Waits until some line of the log satisfies `pred`.
    pub fn wait_log_line(&self, timeout: Duration, pred: impl Fn(&str) -> bool) -> bool {
        self.log.wait_for(timeout, |t| t.lines().any(&pred))
    }

    /// Waits until `pred` holds for the whole log text.
    pub fn wait_log_text(&self, timeout: Duration, pred: impl FnMut(&str) -> bool) -> bool {
        self.log.wait_for(timeout, pred)
    }

    /// The log lines that contain `needle`.
    pub fn log_lines_with(&self, needle: &str) -> Vec<String> {
        self.log().lines().filter(|l| l.contains(needle)).map(str::to_string).collect()
    }

    /// Waits for the request log line of `method target` (uWSGI's default
    /// line: `METHOD TARGET => generated ...`).
    pub fn wait_request_logged(&self, method: &str, target: &str) -> bool {
        let needle = format!(" {method} {target} => generated ");
        self.wait_log(&needle, LOG_TIMEOUT)
    }

    /// Waits for the request log line of `method target` answered `status`.
    pub fn wait_request_status(&self, method: &str, target: &str, status: u16) -> bool {
        let needle = format!(" {method} {target} => generated ");
        let status = format!(" {status}) ");
        self.wait_log_line(LOG_TIMEOUT, |line| line.contains(&needle) && line.contains(&status))
    }

    /// Sends `signal` without waiting.
    pub fn signal(&self, signal: Signal) {
        send_signal(self.child.as_ref().unwrap(), signal);
    }

    /// Sends `signal` and waits (up to 15 s) for the process to exit.
    pub fn stop(&mut self, signal: Signal) -> ExitStatus {
        self.signal(signal);
        self.wait_exit(Duration::from_secs(15))
            .unwrap_or_else(|| panic!("rwsgi did not exit after {signal}; log:\n{}", self.log()))
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let status = wait_timeout(self.child.as_mut().unwrap(), timeout)?;
        // The pipes are closed: collect the last lines.
        for pump in self.pumps.drain(..) {
            let _ = pump.join();
        }
        Some(status)
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().unwrap().try_wait().unwrap().is_none()
    }

    /// A new connection to the first address.
    pub fn conn(&self) -> Conn {
        Conn::open(self.addr())
    }

    /// `GET target` on a new connection (`Connection: close`).
    pub fn get(&self, target: &str) -> Response {
        self.request(format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"))
    }

    /// Sends raw bytes on a new connection and reads one response.
    pub fn request(&self, raw: impl AsRef<[u8]>) -> Response {
        let mut conn = self.conn();
        conn.send(raw.as_ref());
        conn.read_response()
    }

    /// `POST target` with `body` (Content-Length) on a new connection.
    pub fn post(&self, target: &str, body: &[u8]) -> Response {
        let mut raw = format!(
            "POST {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        self.request(raw)
    }

    /// The probe's `/environ` for a raw request.
    pub fn environ(&self, raw: impl AsRef<[u8]>) -> serde_json::Value {
        let response = self.request(raw);
        assert_eq!(response.status, 200, "/environ: {response:?}");
        response.json()
    }

    /// A new connection to the first uwsgi socket.
    pub fn uwsgi_conn(&self) -> Conn {
        Conn::open(self.uwsgi_addr(0))
    }

    /// Sends one uwsgi packet (see [`uwsgi_packet`]) on a new connection to
    /// the first uwsgi socket and reads the HTTP response.
    pub fn uwsgi(&self, packet: impl AsRef<[u8]>) -> Response {
        let mut conn = self.uwsgi_conn();
        conn.send(packet.as_ref());
        conn.read_response()
    }

    /// `GET target` over the first uwsgi socket, with nginx's vars.
    pub fn uwsgi_get(&self, target: &str) -> Response {
        self.uwsgi(uwsgi_packet(&nginx_vars("GET", target), b""))
    }

    /// A new connection to the first FastCGI socket.
    pub fn fastcgi_conn(&self) -> Conn {
        Conn::open(self.fastcgi_addr(0))
    }

    /// Sends one whole FastCGI request (id 1, no `FCGI_KEEP_CONN`) with
    /// `params` and `body` on a new connection to the first FastCGI socket
    /// and reads its response.
    pub fn fastcgi<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        params: &[(K, V)],
        body: &[u8],
    ) -> FcgiResponse {
        let mut conn = self.fastcgi_conn();
        conn.send(fcgi_request(1, 0, params, body));
        conn.read_fcgi_response(1)
    }

    /// `GET target` over the first FastCGI socket, with nginx's params.
    pub fn fastcgi_get(&self, target: &str) -> FcgiResponse {
        self.fastcgi(&fcgi_nginx_params("GET", target), b"")
    }

    /// The probe's `/closes` counter.
    pub fn closes(&self) -> u64 {
        let response = self.get("/closes");
        assert_eq!(response.status, 200);
        response.text().trim().parse().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if child.try_wait().ok().flatten().is_none() {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- rwsgi log ----\n{}---- end of rwsgi log ----", self.log.snapshot());
        }
    }
}

/// `(protocol, address)` from `... PROTOCOL listening on ADDR` lines.
fn listening(log: &str) -> Vec<(String, String)> {
    log.lines()
        .filter_map(|line| line.split_once(" listening on "))
        .map(|(before, addr)| {
            let protocol = before.split_whitespace().last().unwrap_or_default();
            (protocol.to_string(), addr.trim().to_string())
        })
        .collect()
}

// ---------------------------------------------------------------------------
// The uwsgi protocol (client side)
// ---------------------------------------------------------------------------

/// A systemd notify socket in the abstract namespace: what rwsgi sends to
/// `NOTIFY_SOCKET` arrives here.
pub struct NotifySocket {
    socket: std::os::unix::net::UnixDatagram,
    /// The `NOTIFY_SOCKET` value that reaches it (`@name`).
    pub target: String,
}

impl NotifySocket {
    pub fn new(tag: &str) -> NotifySocket {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("rwsgi-test-{tag}-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(&name).unwrap();
        let socket = std::os::unix::net::UnixDatagram::bind_addr(&addr).unwrap();
        socket.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        NotifySocket { socket, target: format!("@{name}") }
    }

    /// The next datagram; panics naming `expected` if none comes in time.
    pub fn next(&self, expected: &str) -> String {
        let mut buf = [0u8; 512];
        let n =
            self.socket.recv(&mut buf).unwrap_or_else(|e| panic!("no {expected} datagram: {e}"));
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }
}

/// A uwsgi vars block: per var, u16 LE key length, key, u16 LE value
/// length, value. Panics on a key or value over 65535 bytes.
pub fn uwsgi_vars<K: AsRef<[u8]>, V: AsRef<[u8]>>(vars: &[(K, V)]) -> Vec<u8> {
    let mut block = Vec::new();
    for (key, value) in vars {
        for part in [key.as_ref(), value.as_ref()] {
            let len = u16::try_from(part.len()).expect("a uwsgi var part over 65535 bytes");
            block.extend_from_slice(&len.to_le_bytes());
            block.extend_from_slice(part);
        }
    }
    block
}

/// A uwsgi packet header: modifier1, datasize (u16 LE), modifier2.
pub fn uwsgi_header(modifier1: u8, datasize: u16, modifier2: u8) -> [u8; 4] {
    let [lo, hi] = datasize.to_le_bytes();
    [modifier1, lo, hi, modifier2]
}

/// A whole request packet (modifier1 = modifier2 = 0) followed by `body`.
/// Panics if the vars block is over 65535 bytes.
pub fn uwsgi_packet<K: AsRef<[u8]>, V: AsRef<[u8]>>(vars: &[(K, V)], body: &[u8]) -> Vec<u8> {
    uwsgi_packet_with(0, 0, &uwsgi_vars(vars), body)
}

/// A packet with the given modifiers around an already-built vars block.
pub fn uwsgi_packet_with(modifier1: u8, modifier2: u8, block: &[u8], body: &[u8]) -> Vec<u8> {
    let datasize = u16::try_from(block.len()).expect("a uwsgi vars block over 65535 bytes");
    let mut packet = uwsgi_header(modifier1, datasize, modifier2).to_vec();
    packet.extend_from_slice(block);
    packet.extend_from_slice(body);
    packet
}

/// Percent-decoding as nginx does for `$document_uri` (bad escapes kept).
pub fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push(u8::try_from(h * 16 + l).unwrap());
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// The vars nginx sends with Debian's `/etc/nginx/uwsgi_params` for a
/// body-less `method target` over HTTP/1.1 with `Host: localhost`: the
/// query and the decoded path split out, `CONTENT_TYPE`/`CONTENT_LENGTH`
/// empty, `HTTP_HOST`. Push more (client headers as `HTTP_*`) as needed.
pub fn nginx_vars(method: &str, target: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let text = |pairs: &[(&str, &str)]| -> Vec<(Vec<u8>, Vec<u8>)> {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    };
    let mut vars = text(&[("QUERY_STRING", query), ("REQUEST_METHOD", method)]);
    vars.extend(text(&[("CONTENT_TYPE", ""), ("CONTENT_LENGTH", ""), ("REQUEST_URI", target)]));
    vars.push((b"PATH_INFO".to_vec(), percent_decode(path)));
    vars.extend(text(&[
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("REMOTE_PORT", "40123"),
        ("SERVER_PORT", "8080"),
        ("SERVER_NAME", "localhost"),
        ("HTTP_HOST", "localhost"),
    ]));
    vars
}

/// Sets `key` in `vars` (replacing every existing entry; appending if none).
pub fn set_var(vars: &mut Vec<(Vec<u8>, Vec<u8>)>, key: &str, value: impl AsRef<[u8]>) {
    vars.retain(|(k, _)| k != key.as_bytes());
    vars.push((key.as_bytes().to_vec(), value.as_ref().to_vec()));
}

/// Appends a variable (a repeated name stays repeated).
pub fn add_var(vars: &mut Vec<(Vec<u8>, Vec<u8>)>, key: &str, value: impl AsRef<[u8]>) {
    vars.push((key.as_bytes().to_vec(), value.as_ref().to_vec()));
}

/// `vars` with `extra` appended (uwsgi vars and FastCGI params alike).
pub fn with_vars(
    mut vars: Vec<(Vec<u8>, Vec<u8>)>,
    extra: &[(&str, &str)],
) -> Vec<(Vec<u8>, Vec<u8>)> {
    for (key, value) in extra {
        add_var(&mut vars, key, value);
    }
    vars
}

/// `vars` announcing a body of `len` bytes of `application/octet-stream`.
pub fn as_post(mut vars: Vec<(Vec<u8>, Vec<u8>)>, len: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    set_var(&mut vars, "CONTENT_TYPE", "application/octet-stream");
    set_var(&mut vars, "CONTENT_LENGTH", len.to_string());
    vars
}

/// Removes `key` from `vars`.
pub fn drop_var(vars: &mut Vec<(Vec<u8>, Vec<u8>)>, key: &str) {
    vars.retain(|(k, _)| k != key.as_bytes());
}

// ---------------------------------------------------------------------------
// FastCGI (client side)
// ---------------------------------------------------------------------------

/// Record types (FastCGI 1.0 §8, `include/fastcgi.h`).
pub const FCGI_BEGIN_REQUEST: u8 = 1;
pub const FCGI_ABORT_REQUEST: u8 = 2;
pub const FCGI_END_REQUEST: u8 = 3;
pub const FCGI_PARAMS: u8 = 4;
pub const FCGI_STDIN: u8 = 5;
pub const FCGI_STDOUT: u8 = 6;
pub const FCGI_STDERR: u8 = 7;
pub const FCGI_DATA: u8 = 8;
pub const FCGI_GET_VALUES: u8 = 9;
pub const FCGI_GET_VALUES_RESULT: u8 = 10;
pub const FCGI_UNKNOWN_TYPE: u8 = 11;
/// Roles.
pub const FCGI_RESPONDER: u16 = 1;
pub const FCGI_AUTHORIZER: u16 = 2;
pub const FCGI_FILTER: u16 = 3;
/// The BEGIN_REQUEST flag.
pub const FCGI_KEEP_CONN: u8 = 1;
/// END_REQUEST protocol statuses.
pub const FCGI_REQUEST_COMPLETE: u8 = 0;
pub const FCGI_CANT_MPX_CONN: u8 = 1;
pub const FCGI_OVERLOADED: u8 = 2;
pub const FCGI_UNKNOWN_ROLE: u8 = 3;

/// A FastCGI name-value list as params are built: `(name, value)` bytes.
pub type FcgiPairs = Vec<(Vec<u8>, Vec<u8>)>;

/// One record with any version and padding (padding bytes are zeros).
/// Panics if `content` is over 65535 bytes.
pub fn fcgi_record_with(version: u8, kind: u8, id: u16, content: &[u8], padding: u8) -> Vec<u8> {
    let len = u16::try_from(content.len()).expect("a FastCGI record over 65535 bytes");
    let mut record = vec![version, kind];
    record.extend_from_slice(&id.to_be_bytes());
    record.extend_from_slice(&len.to_be_bytes());
    record.extend_from_slice(&[padding, 0]);
    record.extend_from_slice(content);
    record.resize(record.len() + usize::from(padding), 0);
    record
}

/// One version-1 record, padded to a multiple of 8 bytes as nginx pads.
pub fn fcgi_record(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    let padding = u8::try_from((8 - content.len() % 8) % 8).unwrap();
    fcgi_record_with(1, kind, id, content, padding)
}

/// BEGIN_REQUEST for `id` with `role` and `flags`.
pub fn fcgi_begin(id: u16, role: u16, flags: u8) -> Vec<u8> {
    let [hi, lo] = role.to_be_bytes();
    fcgi_record(FCGI_BEGIN_REQUEST, id, &[hi, lo, flags, 0, 0, 0, 0, 0])
}

/// A name-value length: one byte below 128 unless `long`, else four bytes
/// big-endian with the high bit set.
pub fn fcgi_length(n: usize, long: bool) -> Vec<u8> {
    if n < 128 && !long {
        vec![u8::try_from(n).unwrap()]
    } else {
        (u32::try_from(n).unwrap() | 0x8000_0000).to_be_bytes().to_vec()
    }
}

/// Name-value pairs with the shortest lengths (1 byte below 128, else 4).
pub fn fcgi_pairs<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)]) -> Vec<u8> {
    fcgi_pairs_with(pairs, false)
}

/// Name-value pairs; `long`: every length in the 4-byte form.
pub fn fcgi_pairs_with<K: AsRef<[u8]>, V: AsRef<[u8]>>(pairs: &[(K, V)], long: bool) -> Vec<u8> {
    let mut block = Vec::new();
    for (name, value) in pairs {
        let (name, value) = (name.as_ref(), value.as_ref());
        block.extend(fcgi_length(name.len(), long));
        block.extend(fcgi_length(value.len(), long));
        block.extend_from_slice(name);
        block.extend_from_slice(value);
    }
    block
}

/// A stream: `data` in records of at most `record_size` bytes, then the
/// empty record that ends it.
pub fn fcgi_stream(kind: u8, id: u16, data: &[u8], record_size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in data.chunks(record_size.clamp(1, 65535)) {
        out.extend(fcgi_record(kind, id, piece));
    }
    out.extend(fcgi_record(kind, id, b""));
    out
}

/// The PARAMS stream of `pairs` (one record, as nginx sends it, if it fits).
pub fn fcgi_params<K: AsRef<[u8]>, V: AsRef<[u8]>>(id: u16, pairs: &[(K, V)]) -> Vec<u8> {
    fcgi_stream(FCGI_PARAMS, id, &fcgi_pairs(pairs), 65535)
}

/// The STDIN stream of `body` in records of 32 KiB (nginx's size).
pub fn fcgi_stdin(id: u16, body: &[u8]) -> Vec<u8> {
    fcgi_stream(FCGI_STDIN, id, body, 32 * 1024)
}

/// A whole responder request: BEGIN_REQUEST, PARAMS, STDIN.
pub fn fcgi_request<K: AsRef<[u8]>, V: AsRef<[u8]>>(
    id: u16,
    flags: u8,
    params: &[(K, V)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = fcgi_begin(id, FCGI_RESPONDER, flags);
    out.extend(fcgi_params(id, params));
    out.extend(fcgi_stdin(id, body));
    out
}

/// The params nginx sends with Debian's `/etc/nginx/fastcgi_params` for a
/// body-less `method target` over HTTP/1.1 with `Host: localhost`:
/// `SCRIPT_NAME` and `DOCUMENT_URI` the decoded path (no `PATH_INFO`),
/// `CONTENT_TYPE`/`CONTENT_LENGTH` empty. Push client headers as `HTTP_*`.
pub fn fcgi_nginx_params(method: &str, target: &str) -> FcgiPairs {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let decoded = percent_decode(path);
    let text = |pairs: &[(&str, &str)]| -> FcgiPairs {
        pairs.iter().map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec())).collect()
    };
    let mut params = text(&[
        ("QUERY_STRING", query),
        ("REQUEST_METHOD", method),
        ("CONTENT_TYPE", ""),
        ("CONTENT_LENGTH", ""),
    ]);
    params.push((b"SCRIPT_NAME".to_vec(), decoded.clone()));
    params.push((b"REQUEST_URI".to_vec(), target.as_bytes().to_vec()));
    params.push((b"DOCUMENT_URI".to_vec(), decoded));
    params.extend(text(&[
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("REQUEST_SCHEME", "http"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("REMOTE_ADDR", "192.0.2.7"),
        ("REMOTE_PORT", "40123"),
        ("REMOTE_USER", ""),
        ("SERVER_ADDR", "127.0.0.1"),
        ("SERVER_PORT", "8080"),
        ("SERVER_NAME", "localhost"),
        ("REDIRECT_STATUS", "200"),
        ("HTTP_HOST", "localhost"),
    ]));
    params
}

/// A record as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FcgiRecord {
    pub version: u8,
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
    pub padding: u8,
}

impl FcgiRecord {
    /// `(appStatus, protocolStatus)` of an END_REQUEST (panics otherwise).
    pub fn end_request(&self) -> (u32, u8) {
        assert_eq!(self.kind, FCGI_END_REQUEST, "not an END_REQUEST: {self:?}");
        assert_eq!(self.content.len(), 8, "END_REQUEST body is not 8 bytes: {self:?}");
        let app = u32::from_be_bytes(self.content[..4].try_into().unwrap());
        (app, self.content[4])
    }
}

/// Parses name-value pairs (a GET_VALUES_RESULT body); panics if malformed.
pub fn fcgi_parse_pairs(content: &[u8]) -> FcgiPairs {
    let mut pairs = Vec::new();
    let mut pos = 0;
    let length = |pos: &mut usize| -> usize {
        let first = content[*pos];
        if first < 0x80 {
            *pos += 1;
            usize::from(first)
        } else {
            let bytes: [u8; 4] = content[*pos..*pos + 4].try_into().unwrap();
            *pos += 4;
            usize::try_from(u32::from_be_bytes(bytes) & 0x7fff_ffff).unwrap()
        }
    };
    while pos < content.len() {
        let name_len = length(&mut pos);
        let value_len = length(&mut pos);
        let name = content[pos..pos + name_len].to_vec();
        pos += name_len;
        let value = content[pos..pos + value_len].to_vec();
        pos += value_len;
        pairs.push((name, value));
    }
    pairs
}

/// One request's answer: every record read up to and including its
/// END_REQUEST, and the CGI response on its STDOUT stream.
#[derive(Debug, Clone)]
pub struct FcgiResponse {
    /// Every record read, in order (other ids' and management ones too).
    pub records: Vec<FcgiRecord>,
    /// The STDOUT stream's bytes for this id.
    pub stdout: Vec<u8>,
    /// The STDERR stream's bytes for this id.
    pub stderr: Vec<u8>,
    /// END_REQUEST's `appStatus` and `protocolStatus`.
    pub app_status: u32,
    pub protocol_status: u8,
    /// The `Status:` header's code (0 if there is none or no head).
    pub status: u16,
    /// The CGI headers (names as sent, values latin-1).
    pub headers: Vec<(String, String)>,
    /// What follows the blank line.
    pub body: Vec<u8>,
    /// The STDOUT stream was ended by an empty STDOUT record.
    pub stdout_ended: bool,
}

impl FcgiResponse {
    /// Builds the response of `id` from `records` (the last is its
    /// END_REQUEST).
    fn from_records(id: u16, records: Vec<FcgiRecord>) -> FcgiResponse {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut stdout_ended = false;
        for record in records.iter().filter(|r| r.id == id) {
            match record.kind {
                FCGI_STDOUT if record.content.is_empty() => stdout_ended = true,
                FCGI_STDOUT => {
                    assert!(!stdout_ended, "STDOUT data after the empty STDOUT: {records:?}");
                    stdout.extend_from_slice(&record.content);
                }
                FCGI_STDERR => stderr.extend_from_slice(&record.content),
                _ => {}
            }
        }
        let (app_status, protocol_status) = records.last().unwrap().end_request();
        let (headers, body) = match stdout.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => {
                let headers = latin1(&stdout[..i])
                    .split("\r\n")
                    .filter_map(|l| l.split_once(':'))
                    .map(|(n, v)| (n.to_string(), v.trim().to_string()))
                    .collect();
                (headers, stdout[i + 4..].to_vec())
            }
            None => (Vec::new(), Vec::new()),
        };
        let mut response = FcgiResponse {
            records,
            stdout,
            stderr,
            app_status,
            protocol_status,
            status: 0,
            headers,
            body,
            stdout_ended,
        };
        response.status = response
            .header("status")
            .and_then(|s| s.split_whitespace().next())
            .and_then(|code| code.parse().ok())
            .unwrap_or(0);
        response
    }

    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", latin1(&self.stdout)))
    }

    /// This id's STDOUT records.
    pub fn stdout_records(&self, id: u16) -> Vec<&FcgiRecord> {
        self.records.iter().filter(|r| r.id == id && r.kind == FCGI_STDOUT).collect()
    }
}

// ---------------------------------------------------------------------------
// Raw client
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Sock {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Sock {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.set_read_timeout(t),
            Sock::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        match self {
            Sock::Tcp(s) => s.shutdown(how),
            Sock::Unix(s) => s.shutdown(how),
        }
    }
}

impl Read for Sock {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.read(buf),
            Sock::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Sock {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sock::Tcp(s) => s.write(buf),
            Sock::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// What one read attempt found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fill {
    Data,
    Eof,
    Timeout,
}

/// One client connection with a read buffer, so several pipelined
/// responses can be parsed from it.
#[derive(Debug)]
pub struct Conn {
    sock: Sock,
    buf: Vec<u8>,
    eof: bool,
    /// The peer reset the connection (counts as closed).
    pub reset: bool,
    timeout: Duration,
}

/// How a response's body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body allowed (HEAD, 1xx, 204, 304).
    None,
    Length(u64),
    Chunked,
    /// Delimited by the close.
    Close,
}

/// A parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    /// The minor version of the status line.
    pub version: u8,
    /// Names as sent; values latin-1 decoded.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub framing: Framing,
    /// The body was delimited as announced: Content-Length met, the chunked
    /// last-chunk and trailer section read, or EOF for close-delimited.
    pub complete: bool,
    /// The peer closed the connection while this response was read.
    pub eof: bool,
    /// A read timed out while this response was read.
    pub timed_out: bool,
}

impl Response {
    /// The first header named `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn header_count(&self, name: &str) -> usize {
        self.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case(name)).count()
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }

    /// Whether the response says the connection closes after it.
    pub fn says_close(&self) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("close")))
    }
}

/// Why no response could be read.
#[derive(Debug)]
pub struct NoResponse {
    pub received: Vec<u8>,
    pub eof: bool,
    pub timed_out: bool,
    pub error: Option<String>,
}

impl Conn {
    /// Connects to `127.0.0.1:PORT`-style addresses or `unix:/path`.
    pub fn open(addr: &str) -> Conn {
        let sock = if let Some(path) = addr.strip_prefix("unix:") {
            let stream = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    let abstract_name =
                        std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
                    UnixStream::connect_addr(&abstract_name)
                }
                None => UnixStream::connect(path),
            }
            .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            Sock::Unix(stream)
        } else {
            let target = addr.to_socket_addrs().unwrap().next().unwrap();
            let stream = TcpStream::connect_timeout(&target, Duration::from_secs(5))
                .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
            stream.set_nodelay(true).unwrap();
            stream.set_write_timeout(Some(READ_TIMEOUT)).unwrap();
            Sock::Tcp(stream)
        };
        Conn { sock, buf: Vec::new(), eof: false, reset: false, timeout: READ_TIMEOUT }
    }

    /// Changes the per-response read deadline (default [`READ_TIMEOUT`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }

    /// A second handle on the same TCP socket (for a writer thread).
    pub fn try_clone_tcp(&self) -> TcpStream {
        match &self.sock {
            Sock::Tcp(s) => s.try_clone().unwrap(),
            Sock::Unix(_) => panic!("not a TCP connection"),
        }
    }

    /// The client side's address, as the server logs it as the peer.
    pub fn local_addr(&self) -> String {
        match &self.sock {
            Sock::Tcp(s) => s.local_addr().unwrap().to_string(),
            Sock::Unix(_) => "unix".into(),
        }
    }

    /// Writes all of `data`; panics on failure.
    pub fn send(&mut self, data: impl AsRef<[u8]>) {
        self.sock.write_all(data.as_ref()).unwrap_or_else(|e| panic!("send: {e}"));
    }

    /// Writes all of `data`, returning the error (the peer may have closed).
    pub fn try_send(&mut self, data: impl AsRef<[u8]>) -> io::Result<()> {
        self.sock.write_all(data.as_ref())
    }

    /// Half-closes the sending side.
    pub fn shutdown_write(&self) {
        let _ = self.sock.shutdown(Shutdown::Write);
    }

    /// Bytes received but not yet parsed.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        if self.eof {
            return Fill::Eof;
        }
        let now = Instant::now();
        if now >= deadline {
            return Fill::Timeout;
        }
        self.sock.set_read_timeout(Some(deadline - now)).unwrap();
        let mut chunk = [0u8; 64 * 1024];
        match self.sock.read(&mut chunk) {
            Ok(0) => {
                self.eof = true;
                Fill::Eof
            }
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Fill::Data
            }
            Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {
                Fill::Timeout
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Fill::Data,
            Err(_) => {
                self.eof = true;
                self.reset = true;
                Fill::Eof
            }
        }
    }

    /// Reads one response; panics (showing what arrived) if there is none.
    pub fn read_response(&mut self) -> Response {
        self.try_read_response(false).unwrap_or_else(|e| {
            panic!(
                "no response (eof={}, timed_out={}, error={:?}); received {:?}",
                e.eof,
                e.timed_out,
                e.error,
                String::from_utf8_lossy(&e.received)
            )
        })
    }

    /// Reads the response to a HEAD request (no body).
    pub fn read_head_response(&mut self) -> Response {
        self.try_read_response(true).unwrap_or_else(|e| {
            panic!("no response to HEAD: {:?}", String::from_utf8_lossy(&e.received))
        })
    }

    /// Reads one response. `to_head`: it answers a HEAD request.
    pub fn try_read_response(&mut self, to_head: bool) -> Result<Response, NoResponse> {
        let deadline = Instant::now() + self.timeout;
        let mut timed_out = false;
        let (head_len, status, reason, version, headers) = loop {
            let mut slots = [httparse::EMPTY_HEADER; 128];
            let mut parsed = httparse::Response::new(&mut slots);
            match parsed.parse(&self.buf) {
                Ok(httparse::Status::Complete(len)) => {
                    let headers = parsed
                        .headers
                        .iter()
                        .map(|h| (h.name.to_string(), latin1(h.value)))
                        .collect::<Vec<_>>();
                    break (
                        len,
                        parsed.code.unwrap(),
                        parsed.reason.unwrap_or_default().to_string(),
                        parsed.version.unwrap(),
                        headers,
                    );
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => {
                    return Err(NoResponse {
                        received: std::mem::take(&mut self.buf),
                        eof: self.eof,
                        timed_out,
                        error: Some(e.to_string()),
                    });
                }
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof | Fill::Timeout => {
                    timed_out = !self.eof;
                    return Err(NoResponse {
                        received: std::mem::take(&mut self.buf),
                        eof: self.eof,
                        timed_out,
                        error: None,
                    });
                }
            }
        };
        self.buf.drain(..head_len);
        let header = |name: &str| {
            headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.clone())
        };
        let framing = if to_head || (100..200).contains(&status) || status == 204 || status == 304 {
            Framing::None
        } else if header("transfer-encoding")
            .is_some_and(|v| v.trim().to_ascii_lowercase().ends_with("chunked"))
        {
            Framing::Chunked
        } else if let Some(cl) = header("content-length") {
            Framing::Length(cl.trim().parse().unwrap())
        } else {
            Framing::Close
        };
        let mut response = Response {
            status,
            reason,
            version,
            headers,
            body: Vec::new(),
            framing,
            complete: false,
            eof: false,
            timed_out: false,
        };
        match framing {
            Framing::None => response.complete = true,
            Framing::Length(n) => {
                let n = usize::try_from(n).unwrap();
                while self.buf.len() < n {
                    if self.fill(deadline) != Fill::Data {
                        break;
                    }
                }
                let take = n.min(self.buf.len());
                response.body = self.buf.drain(..take).collect();
                response.complete = take == n;
            }
            Framing::Close => {
                while self.fill(deadline) == Fill::Data {}
                response.body = std::mem::take(&mut self.buf);
                response.complete = self.eof;
            }
            Framing::Chunked => response.complete = self.read_chunked(deadline, &mut response.body),
        }
        response.eof = self.eof;
        response.timed_out = !response.complete && !self.eof;
        Ok(response)
    }

    /// Index just past the next CRLF in the buffer at or after `from`.
    fn line_end(&mut self, from: usize, deadline: Instant) -> Option<usize> {
        loop {
            if let Some(i) = self.buf[from..].windows(2).position(|w| w == b"\r\n") {
                return Some(from + i + 2);
            }
            if self.fill(deadline) != Fill::Data {
                return None;
            }
        }
    }

    /// Decodes a chunked body into `body`; true if the last-chunk and the
    /// trailer section arrived.
    fn read_chunked(&mut self, deadline: Instant, body: &mut Vec<u8>) -> bool {
        loop {
            let Some(end) = self.line_end(0, deadline) else { return false };
            let line = String::from_utf8_lossy(&self.buf[..end - 2]).into_owned();
            let size_text = line.split(';').next().unwrap().trim();
            let Ok(size) = usize::from_str_radix(size_text, 16) else {
                panic!("bad chunk size line {line:?}");
            };
            self.buf.drain(..end);
            if size == 0 {
                // Trailer section: lines until an empty one.
                loop {
                    let Some(end) = self.line_end(0, deadline) else { return false };
                    let empty = end == 2;
                    self.buf.drain(..end);
                    if empty {
                        return true;
                    }
                }
            }
            while self.buf.len() < size + 2 {
                if self.fill(deadline) != Fill::Data {
                    let take = size.min(self.buf.len());
                    body.extend(self.buf.drain(..take));
                    return false;
                }
            }
            body.extend(self.buf.drain(..size));
            assert_eq!(&self.buf[..2], b"\r\n", "chunk data not followed by CRLF");
            self.buf.drain(..2);
        }
    }

    /// Reads until the peer closes or `timeout` passes; returns what came
    /// (including anything already buffered) and whether the peer closed.
    pub fn read_until_close(&mut self, timeout: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + timeout;
        while self.fill(deadline) == Fill::Data {}
        (std::mem::take(&mut self.buf), self.eof)
    }

    /// Asserts the peer closes within 5 s without sending anything more.
    pub fn expect_closed(&mut self) {
        let (extra, closed) = self.read_until_close(Duration::from_secs(5));
        assert!(extra.is_empty(), "unexpected bytes after the response: {:?}", latin1(&extra));
        assert!(closed, "the server did not close the connection");
    }

    /// Whether the connection is still open (no EOF) after waiting `wait`.
    /// Data that arrives meanwhile stays buffered.
    pub fn still_open_after(&mut self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        while self.fill(deadline) == Fill::Data {}
        !self.eof
    }

    /// Reads one FastCGI record, waiting up to the connection's timeout.
    /// On failure the bytes received stay buffered (see [`Conn::pending`]).
    pub fn try_read_record(&mut self) -> Result<FcgiRecord, NoResponse> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(head) = self.buf.first_chunk::<8>() {
                let len = usize::from(u16::from_be_bytes([head[4], head[5]]));
                let padding = head[6];
                let total = 8 + len + usize::from(padding);
                if self.buf.len() >= total {
                    let record = FcgiRecord {
                        version: head[0],
                        kind: head[1],
                        id: u16::from_be_bytes([head[2], head[3]]),
                        content: self.buf[8..8 + len].to_vec(),
                        padding,
                    };
                    self.buf.drain(..total);
                    return Ok(record);
                }
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Eof | Fill::Timeout => {
                    return Err(NoResponse {
                        received: self.buf.clone(),
                        eof: self.eof,
                        timed_out: !self.eof,
                        error: None,
                    });
                }
            }
        }
    }

    /// Reads one FastCGI record; panics (showing what arrived) if none does.
    pub fn read_record(&mut self) -> FcgiRecord {
        self.try_read_record().unwrap_or_else(|e| {
            panic!(
                "no FastCGI record (eof={}, timed_out={}); pending {:?}",
                e.eof,
                e.timed_out,
                latin1(&e.received)
            )
        })
    }

    /// Reads records up to and including request `id`'s END_REQUEST (each
    /// within the connection's timeout). Err: what came before the peer
    /// closed or a read timed out.
    pub fn try_read_fcgi_response(
        &mut self,
        id: u16,
    ) -> Result<FcgiResponse, (Vec<FcgiRecord>, NoResponse)> {
        let mut records = Vec::new();
        loop {
            match self.try_read_record() {
                Ok(record) => {
                    let end = record.kind == FCGI_END_REQUEST && record.id == id;
                    records.push(record);
                    if end {
                        return Ok(FcgiResponse::from_records(id, records));
                    }
                }
                Err(e) => return Err((records, e)),
            }
        }
    }

    /// Reads request `id`'s response; panics if its END_REQUEST never comes.
    pub fn read_fcgi_response(&mut self, id: u16) -> FcgiResponse {
        self.try_read_fcgi_response(id).unwrap_or_else(|(records, e)| {
            let stdout: Vec<u8> = records
                .iter()
                .filter(|r| r.kind == FCGI_STDOUT)
                .flat_map(|r| r.content.iter().copied())
                .collect();
            panic!(
                "no END_REQUEST for id {id} (eof={}, timed_out={}); {} records {:?}; stdout {:?}; \
                 pending {:?}",
                e.eof,
                e.timed_out,
                records.len(),
                records.iter().map(|r| (r.kind, r.id, r.content.len())).collect::<Vec<_>>(),
                latin1(&stdout),
                latin1(&e.received)
            )
        })
    }

    /// Reads records until the peer closes or `timeout` passes: the records
    /// and whether the peer closed. A partial record left is returned as
    /// [`Conn::pending`].
    pub fn read_records_until_close(&mut self, timeout: Duration) -> (Vec<FcgiRecord>, bool) {
        let saved = self.timeout;
        let deadline = Instant::now() + timeout;
        let mut records = Vec::new();
        loop {
            self.timeout = deadline.saturating_duration_since(Instant::now());
            match self.try_read_record() {
                Ok(record) => records.push(record),
                Err(_) => break,
            }
        }
        self.timeout = saved;
        (records, self.eof)
    }
}

/// Latin-1 decoding (every byte one char), as WSGI does.
pub fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| char::from(b)).collect()
}

/// A chunked encoding of `pieces` (no trailers). Not every test binary
/// sends chunks.
#[allow(unused_imports)]
pub use rwsgi_testkit::chunked;

/// Deterministic, non-repeating-looking test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    let mut x: u32 = 0x1234_5678;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

/// Runs `f` on `n` threads at once and returns their results in order.
pub fn parallel<T: Send + 'static>(
    n: usize,
    f: impl Fn(usize) -> T + Send + Sync + 'static,
) -> Vec<T> {
    let f = Arc::new(f);
    let barrier = Arc::new(std::sync::Barrier::new(n));
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let f = Arc::clone(&f);
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                f(i)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

/// Polls `cond` every 20 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The unix permission bits of `path`.
pub fn mode_of(path: &str) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

// ---------------------------------------------------------------------------
// The virtualenv with Flask and Django
// ---------------------------------------------------------------------------

/// The test virtualenv (`RWSGI_TEST_VENV`, else `<repo>/.venv`) if it has
/// Flask and Django; `None` (a skip, or a failure under `CI=true`) if not.
pub fn venv() -> Option<PathBuf> {
    let (path, explicit) = match std::env::var_os("RWSGI_TEST_VENV") {
        Some(p) if !p.is_empty() => (PathBuf::from(p), true),
        _ => (root().join(".venv"), false),
    };
    let ok = venv_has(&path, "flask") && venv_has(&path, "django");
    if !ok && explicit {
        panic!("RWSGI_TEST_VENV={} has no Flask and Django (run `make venv`)", path.display());
    }
    require(ok, "the test virtualenv with Flask and Django (`make venv`)").then_some(path)
}

fn venv_has(venv: &Path, package: &str) -> bool {
    let Ok(entries) = std::fs::read_dir(venv.join("lib")) else { return false };
    entries
        .flatten()
        .any(|e| e.path().join("site-packages").join(package).join("__init__.py").is_file())
}

// ---------------------------------------------------------------------------
// nginx and curl
// ---------------------------------------------------------------------------

pub const NGINX: &str = "/usr/sbin/nginx";

/// Whether nginx can be used; `false` means skip (a failure under `CI=true`).
pub fn nginx_available() -> bool {
    require(Path::new(NGINX).is_file(), "nginx (/usr/sbin/nginx)")
}

/// Whether curl can be used (same rule as nginx).
pub fn curl_available() -> bool {
    let ok = Command::new("curl")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    require(ok, "curl")
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running nginx (one process, no daemon). Dropping it kills it.
#[derive(Debug)]
pub struct Nginx {
    child: Option<Child>,
    pub port: u16,
    dir: TempDir,
}

impl Nginx {
    /// Starts nginx with `servers` (the `server {}` blocks and any other
    /// `http {}` content) where `@PORT@` is replaced by the listening port.
    pub fn start(servers: &str) -> Nginx {
        let dir = TempDir::new("nginx");
        for attempt in 0..5 {
            let port = free_port();
            let conf = format!(
                "daemon off;\n\
                 master_process off;\n\
                 worker_processes 1;\n\
                 pid {tmp}/nginx.pid;\n\
                 error_log {tmp}/error.log info;\n\
                 events {{ worker_connections 256; }}\n\
                 http {{\n\
                 access_log off;\n\
                 client_body_temp_path {tmp}/client_body;\n\
                 proxy_temp_path {tmp}/proxy;\n\
                 fastcgi_temp_path {tmp}/fastcgi;\n\
                 uwsgi_temp_path {tmp}/uwsgi;\n\
                 scgi_temp_path {tmp}/scgi;\n\
                 {servers}\n\
                 }}\n",
                tmp = dir.path().display(),
                servers = servers.replace("@PORT@", &port.to_string()),
            );
            let conf_path = dir.join("nginx.conf");
            std::fs::write(&conf_path, conf).unwrap();
            let mut child = Command::new(NGINX)
                .args(["-p", &dir.join(""), "-e", &dir.join("error.log"), "-c", &conf_path])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let up = wait_until(Duration::from_secs(10), || {
                if child.try_wait().unwrap().is_some() {
                    return true;
                }
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            });
            if up && child.try_wait().unwrap().is_none() {
                return Nginx { child: Some(child), port, dir };
            }
            let _ = child.kill();
            let _ = child.wait();
            let log = std::fs::read_to_string(dir.join("error.log")).unwrap_or_default();
            if attempt == 4 || !log.contains("Address already in use") {
                panic!("nginx did not start; error.log:\n{log}");
            }
        }
        unreachable!()
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// nginx's error log so far.
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("error.log")).unwrap_or_default()
    }

    /// A scratch directory that lives as long as this nginx.
    pub fn dir(&self) -> &TempDir {
        &self.dir
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- nginx error.log ----\n{}---- end ----", self.error_log());
        }
    }
}

/// What curl got.
#[derive(Debug)]
pub struct CurlResponse {
    pub status: u16,
    /// Headers of the final response (after any `100 Continue`).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl CurlResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text()))
    }
}

/// Runs `curl -sS --max-time 30 ARGS URL`.
pub fn curl(args: &[&str]) -> CurlResponse {
    let dir = TempDir::new("curl");
    let (head_file, body_file) = (dir.join("head"), dir.join("body"));
    let output = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-D", &head_file, "-o", &body_file])
        .args(["-w", "%{http_code}"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "curl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let status = String::from_utf8_lossy(&output.stdout).trim().parse().unwrap();
    let head = std::fs::read(&head_file).unwrap_or_default();
    let head = latin1(&head);
    let last_block = head.trim_end().rsplit("\r\n\r\n").next().unwrap_or_default().to_string();
    let headers = last_block
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let body = std::fs::read(&body_file).unwrap_or_default();
    CurlResponse { status, headers, body }
}

/// The example Flask app (`examples/flask`) served through `nginx`, which
/// routes `/secure/` with `HTTPS on` and takes chunked uploads at
/// `chunked_path`: the same checks for every protocol nginx can speak.
pub fn flask_through(nginx: &Nginx, chunked_path: &str) {
    let hello = curl(&[&nginx.url("/")]);
    assert_eq!((hello.status, hello.text().as_str()), (200, "Hello from Flask\n"));
    let who = curl(&["-H", "Host: front.example", "-A", "ua/2", &nginx.url("/whoami?z=9")]).json();
    assert_eq!(who["host"], "front.example");
    assert_eq!(who["path"], "/whoami");
    assert_eq!(who["query"], "z=9");
    assert_eq!(who["scheme"], "http");
    assert_eq!(who["remote_addr"], "127.0.0.1");
    assert_eq!(who["user_agent"], "ua/2");
    let secure = curl(&[&nginx.url("/secure/whoami")]).json();
    assert_eq!(secure["scheme"], "https");
    let echo = post_file(&nginx.url("/echo"), &pattern(2_000_000), &[]);
    assert_eq!(echo.json()["length"], 2_000_000);
    assert_eq!(echo.json()["content_type"], "application/octet-stream");
    let chunked = ["-H", "Transfer-Encoding: chunked"];
    let echo = post_file(&nginx.url(chunked_path), &pattern(300_000), &chunked);
    assert_eq!(echo.json()["length"], 300_000, "a chunked upload through nginx");
    let stream = curl(&[&nginx.url("/stream?n=4")]);
    assert_eq!(stream.text(), "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
    assert_eq!(curl(&[&nginx.url("/boom")]).status, 500);
    assert_eq!(curl(&[&nginx.url("/")]).status, 200);
}

/// The example Django project (`examples/django`) served through `nginx`
/// (with `/secure/` as for [`flask_through`]).
pub fn django_through(nginx: &Nginx) {
    let hello = curl(&[&nginx.url("/")]);
    assert_eq!((hello.status, hello.text().as_str()), (200, "Hello from Django\n"));
    let meta = curl(&["-b", "session=s1", &nginx.url("/meta?a=b")]).json();
    assert_eq!(meta["path"], "/meta");
    assert_eq!(meta["path_info"], "/meta");
    assert_eq!(meta["script_name"], "");
    assert_eq!(meta["query"]["a"], "b");
    assert_eq!(meta["cookie"], "s1");
    assert_eq!(meta["secure"], false);
    assert_eq!(meta["host"], "127.0.0.1");
    let secure = curl(&[&nginx.url("/secure/meta")]).json();
    assert_eq!(secure["secure"], true, "HTTPS=on through nginx: {secure}");
    let stream = curl(&[&nginx.url("/stream?n=3")]);
    assert_eq!(stream.text(), "line 0\nline 1\nline 2\n");
    let echo = curl(&[
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        "{\"k\": 1}",
        &nginx.url("/echo"),
    ]);
    assert_eq!(echo.json()["json"]["k"], 1);
    assert_eq!(echo.json()["method"], "POST");
    assert_eq!(curl(&[&nginx.url("/boom")]).status, 500);
    assert_eq!(curl(&[&nginx.url("/")]).status, 200);
}

/// POSTs `body` from a file with curl.
pub fn post_file(url: &str, body: &[u8], extra: &[&str]) -> CurlResponse {
    let dir = TempDir::new("body");
    let file = dir.join("body.bin");
    std::fs::write(&file, body).unwrap();
    let data = format!("@{file}");
    let mut args = vec!["-H", "Content-Type: application/octet-stream", "--data-binary", &data];
    args.extend_from_slice(extra);
    args.push(url);
    curl(&args)
}

/// Whether nginx and curl are here (else skip, or fail under CI=true).
pub fn nginx_tools() -> bool {
    nginx_available() && curl_available()
}

/// The nginx settings every nginx-fronted suite starts from.
pub const NGINX_COMMON: &str = "client_max_body_size 64m;\nlarge_client_header_buffers 4 16k;\n";

/// The probe's environ for a curl request to `url` (with `extra` options),
/// which always sends `X-Custom` and a known user agent, so that the
/// suites can compare them between a direct and a proxied request.
pub fn environ_via(url: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["-H", "X-Custom: custom value", "-A", "rwsgi-test/1.0"];
    args.extend_from_slice(extra);
    args.push(url);
    let response = curl(&args);
    assert_eq!(response.status, 200, "{url}: {}", response.text());
    response.json()
}

/// Asserts that each of `keys` is a string in `direct` and the same in
/// `proxied`, and that the body's CONTENT_TYPE and CONTENT_LENGTH match
/// (or are both absent): each suite names the fields its proxy must keep.
pub fn assert_same_fields(direct: &serde_json::Value, proxied: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(direct[key].is_string(), "{key} missing: {direct}");
        assert_eq!(direct[key], proxied[key], "{key}: direct {direct}\nproxied {proxied}");
    }
    for key in ["CONTENT_TYPE", "CONTENT_LENGTH"] {
        assert_eq!(direct.get(key), proxied.get(key), "{key}: direct {direct}\nproxied {proxied}");
    }
}

/// Asserts that the client's `HTTP_*` fields reach the app unchanged
/// through nginx, except `HTTP_HOST`, which Debian's params set to `$host`.
pub fn assert_same_client_headers(direct: &serde_json::Value, proxied: &serde_json::Value) {
    let http = |env: &serde_json::Value| -> Vec<(String, serde_json::Value)> {
        env.as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("HTTP_") && *k != "HTTP_HOST")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    assert_eq!(http(direct), http(proxied), "the client's headers");
}

/// The options that serve the example Flask app from `venv`.
pub fn flask_options(venv: &str) -> [&str; 4] {
    ["--wsgi-file", "examples/flask/app.py", "--home", venv]
}

/// The options that serve the example Django project from `venv`.
pub fn django_options(venv: &str) -> [&str; 6] {
    ["--chdir", "examples/django", "--module", "mysite.wsgi", "--home", venv]
}

/// The example Flask app on a unix socket and the Django project on TCP,
/// both from the test virtualenv and listening with one protocol, to be
/// put behind nginx.
pub struct Frameworks {
    pub flask: Server,
    pub flask_sock: String,
    pub django: Server,
    /// Holds Flask's socket; dropped last.
    _dir: TempDir,
}

impl Frameworks {
    /// Both apps on `socket_option` (`--socket`, `--fastcgi-socket`); None
    /// without the test virtualenv (skip).
    pub fn start(socket_option: &str) -> Option<Frameworks> {
        let venv = venv()?.to_string_lossy().into_owned();
        let dir = TempDir::new("fw");
        let flask_sock = dir.join("flask.sock");
        let listen = [socket_option, flask_sock.as_str(), "--chmod-socket=666"];
        let flask = Server::start(&[&listen[..], &flask_options(&venv)].concat());
        let listen = [socket_option, "127.0.0.1:0"];
        let django = Server::start(&[&listen[..], &django_options(&venv)].concat());
        Some(Frameworks { flask, flask_sock, django, _dir: dir })
    }

    /// Asserts that each app logged the exception its `/boom` raised.
    pub fn assert_booms_logged(&self) {
        let (flask, django) = (&self.flask, &self.django);
        assert!(flask.log_contains("boom from flask"), "{}", flask.log());
        assert!(django.log_contains("boom from django"), "{}", django.log());
    }
}

/// Whether `line` names the client address `peer` (and not a longer port).
pub fn mentions(line: &str, peer: &str) -> bool {
    line.match_indices(peer)
        .any(|(i, _)| !line[i + peer.len()..].starts_with(|c: char| c.is_ascii_digit()))
}

/// The log names `peer` on exactly one line, a `protocol` line (`uwsgi`,
/// `fastcgi`) with `needle`.
pub fn assert_logged_once(server: &Server, protocol: &str, peer: &str, needle: &str, what: &str) {
    let found = server.wait_log_line(LOG_TIMEOUT, |line| {
        mentions(line, peer) && line.contains(protocol) && line.contains(needle)
    });
    assert!(found, "{what}: no log line with {peer} and {needle:?}:\n{}", server.log());
    // Give a second line (if any is coming) a moment to show up.
    std::thread::sleep(Duration::from_millis(100));
    let lines: Vec<String> =
        server.log().lines().filter(|l| mentions(l, peer)).map(str::to_string).collect();
    assert_eq!(lines.len(), 1, "{what}: want one log line about {peer}: {lines:#?}");
}

/// The probe's `/stream?n=N` through `nginx`: a 200 with every chunk.
pub fn assert_streams_through(nginx: &Nginx, n: usize) {
    let stream = curl(&[&nginx.url(&format!("/stream?n={n}"))]);
    assert_eq!(stream.status, 200);
    assert_eq!(stream.text(), (0..n).map(|i| format!("chunk {i}\n")).collect::<String>());
}

/// The probe's 1 MiB `/file` through `nginx`, byte for byte.
pub fn assert_file_through(nginx: &Nginx) {
    let file = curl(&[&nginx.url("/file")]);
    assert_eq!(file.body.len(), 1 << 20);
    assert!(file.body.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8));
}

/// An app exception through `nginx`: nginx shows the 500, and the next
/// request works.
pub fn assert_error_then_next(nginx: &Nginx) {
    let error = curl(&[&nginx.url("/error-before")]);
    assert_eq!(error.status, 500);
    assert_eq!(error.body, b"Internal Server Error\n");
    let next = curl(&[&nginx.url("/closing")]);
    assert_eq!((next.status, next.text().as_str()), (200, "ab"));
}
