//! No crowd of waiting clients stalls rwsgi, in any process shape: 1,000
//! connections of each kind that waits (a partial head, a stalled body
//! within `post-buffering` and one beyond it, a uwsgi header alone, a FastCGI BEGIN_REQUEST alone, idle keep-alive, a
//! client that never reads a large response) are open while a normal
//! request on each protocol is answered within 100 ms, and the same
//! workers serve on afterwards. Also: `worker-connections` closes the
//! oldest idle keep-alive connection first, and waits with none idle.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Conn, Server, fcgi_begin, fcgi_nginx_params, fcgi_request, nginx_vars, uwsgi_header,
    uwsgi_packet,
};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many connections of each kind.
const CROWD: usize = 1000;
/// The bound on a normal request's answer with the crowd waiting.
const PROMPT: Duration = Duration::from_millis(100);

/// One shape at a time: thousands of sockets each, and timing.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Room for the crowd's descriptors, here and in rwsgi (which inherits it).
fn raise_fd_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    // A socket each here; there, a socket each and a file for a spooled body.
    let needed = (CROWD * 3 + 256) as u64;
    assert!(hard >= needed, "ulimit -Hn is {hard}: these tests need {needed} descriptors");
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();
}

/// The kinds of clients that wait.
#[derive(Debug, Clone, Copy)]
enum Waiting {
    PartialHead,
    StalledBody,
    /// Longer than `post-buffering`: kept in a file as it comes.
    StalledUpload,
    UwsgiHeaderOnly,
    FastcgiBeginOnly,
    IdleKeepAlive,
    NeverReads,
}

const KINDS: [Waiting; 7] = [
    Waiting::PartialHead,
    Waiting::StalledBody,
    Waiting::StalledUpload,
    Waiting::UwsgiHeaderOnly,
    Waiting::FastcgiBeginOnly,
    Waiting::IdleKeepAlive,
    Waiting::NeverReads,
];

impl Waiting {
    /// Opens one such connection to `server`.
    fn open(self, server: &Server) -> TcpStream {
        let (addr, bytes): (&str, Vec<u8>) = match self {
            Waiting::PartialHead => {
                (server.http_addr(0), b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow:".to_vec())
            }
            Waiting::StalledBody => (
                server.http_addr(0),
                b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\n\r\nfirst bytes"
                    .to_vec(),
            ),
            Waiting::StalledUpload => (
                server.http_addr(0),
                b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000000\r\n\r\nfirst bytes"
                    .to_vec(),
            ),
            Waiting::UwsgiHeaderOnly => (server.uwsgi_addr(0), uwsgi_header(0, 200, 0).to_vec()),
            Waiting::FastcgiBeginOnly => (server.fastcgi_addr(0), fcgi_begin(1, 1, 1)),
            Waiting::IdleKeepAlive => {
                (server.http_addr(0), b"GET /head-aware HTTP/1.1\r\nHost: a\r\n\r\n".to_vec())
            }
            Waiting::NeverReads => {
                (server.http_addr(0), b"GET /big?size=262144 HTTP/1.1\r\nHost: a\r\n\r\n".to_vec())
            }
        };
        let mut stream = match self {
            // A small receive window, so the response stays mostly on
            // rwsgi's side, waiting for this client to read.
            Waiting::NeverReads => connect_with_small_window(addr),
            _ => TcpStream::connect(addr).unwrap(),
        };
        stream.write_all(&bytes).unwrap();
        // A request rwsgi answers is real work: wait until it has answered
        // (all of it, or the first bytes for a client that reads no more),
        // so only the waiting is left.
        let answered: &[u8] = match self {
            Waiting::IdleKeepAlive => b"hello",
            Waiting::NeverReads => b"HTTP/1.1 200 OK\r\n",
            _ => return stream,
        };
        let mut got = Vec::new();
        let mut byte = [0u8; 1];
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        while !got.ends_with(answered) {
            let n = stream.read(&mut byte).unwrap();
            assert!(n > 0, "closed before answering");
            got.push(byte[0]);
        }
        stream
    }
}

fn connect_with_small_window(addr: &str) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let socket = Socket::new(Domain::for_address(target), Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&target.into()).unwrap();
    TcpStream::from(socket)
}

/// A connection on each protocol for one normal request, opened before a
/// crowd comes: what is timed is rwsgi's answer, not the client's
/// `connect()` hunting for a free port among thousands just used (which
/// on a busy machine took longer than [`PROMPT`] by itself).
struct Probes {
    http: Conn,
    uwsgi: Conn,
    fastcgi: Conn,
}

impl Probes {
    fn open(server: &Server) -> Probes {
        Probes { http: server.conn(), uwsgi: server.uwsgi_conn(), fastcgi: server.fastcgi_conn() }
    }

    /// Each answered within [`PROMPT`].
    fn answered_promptly(self, while_waiting: &str) {
        self.answered_within(PROMPT, while_waiting);
    }

    fn answered_within(mut self, bound: Duration, while_waiting: &str) {
        for protocol in ["http", "uwsgi", "fastcgi"] {
            let started = Instant::now();
            let text = match protocol {
                "http" => {
                    self.http
                        .send(b"GET /closing HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
                    self.http.read_response().text()
                }
                "uwsgi" => {
                    self.uwsgi.send(uwsgi_packet(&nginx_vars("GET", "/closing"), b""));
                    self.uwsgi.read_response().text()
                }
                _ => {
                    self.fastcgi.send(fcgi_request(
                        1,
                        0,
                        &fcgi_nginx_params("GET", "/closing"),
                        b"",
                    ));
                    self.fastcgi.read_fcgi_response(1).text()
                }
            };
            let took = started.elapsed();
            assert_eq!(text, "ab", "{protocol} with {while_waiting}");
            assert!(took < bound, "{protocol} took {took:?} with {while_waiting} waiting");
        }
    }
}

fn every_waiting_kind_leaves_normal_requests_prompt(shape: &[&str]) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    raise_fd_limit();
    let mut args = vec![
        "--wsgi-file",
        common::PROBE,
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--fastcgi-socket",
        "127.0.0.1:0",
        "--socket-timeout",
        "60",
        "--disable-logging",
    ];
    args.extend_from_slice(shape);
    let server = Server::start(&args);
    if shape.contains(&"--master") {
        assert!(server.wait_log("worker(s) serving", Duration::from_secs(10)), "{}", server.log());
    }
    let workers = server.log_lines_with("spawned worker").len();
    Probes::open(&server).answered_promptly("nothing");
    for kind in KINDS {
        let probes = Probes::open(&server);
        let crowd: Vec<TcpStream> = (0..CROWD).map(|_| kind.open(&server)).collect();
        // Let rwsgi read what they sent (and fill the slow readers' windows),
        // and take in the whole crowd: one request per protocol, untimed,
        // comes after it (a debug build on a busy machine may need more
        // than the pause to accept 1,000 connections and open 1,000
        // spool files).
        std::thread::sleep(Duration::from_millis(300));
        Probes::open(&server).answered_within(Duration::from_secs(10), "the crowd coming");
        probes.answered_promptly(&format!("{CROWD} × {kind:?}"));
        drop(crowd);
    }
    Probes::open(&server).answered_promptly("the crowds gone");
    assert_eq!(
        server.log_lines_with("spawned worker").len(),
        workers,
        "a worker was replaced:\n{}",
        server.log()
    );
}

#[test]
fn one_process_one_thread() {
    every_waiting_kind_leaves_normal_requests_prompt(&[]);
}

#[test]
fn one_process_four_threads() {
    every_waiting_kind_leaves_normal_requests_prompt(&["--threads", "4"]);
}

#[test]
fn two_processes_two_threads() {
    every_waiting_kind_leaves_normal_requests_prompt(&[
        "--master",
        "--processes",
        "2",
        "--threads",
        "2",
    ]);
}

#[test]
fn two_processes_four_threads() {
    every_waiting_kind_leaves_normal_requests_prompt(&[
        "--master",
        "--processes",
        "2",
        "--threads",
        "4",
    ]);
}

#[test]
fn at_worker_connections_the_oldest_idle_connection_makes_room() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = Server::probe(&["--worker-connections", "4", "--socket-timeout", "30"]);
    let idle: Vec<TcpStream> = (0..4).map(|_| Waiting::IdleKeepAlive.open(&server)).collect();
    // A fifth client: the oldest idle connection (the first) is closed for it.
    assert_eq!(server.get("/closing").text(), "ab");
    let mut oldest = idle.into_iter();
    let mut first = oldest.next().unwrap();
    first.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    assert_eq!(first.read(&mut [0u8; 16]).unwrap(), 0, "the oldest idle connection was closed");
    assert!(
        server.wait_log("worker-connections = 4 reached", Duration::from_secs(5)),
        "{}",
        server.log()
    );
    // The others were left alone.
    for mut other in oldest {
        other.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        other.write_all(b"GET /closing HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").unwrap();
        let mut answer = String::new();
        other.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    }
}

#[test]
fn at_worker_connections_with_none_idle_new_ones_wait_in_the_queue() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let server = Server::probe(&["--worker-connections", "3", "--socket-timeout", "30"]);
    let heads: Vec<TcpStream> = (0..3).map(|_| Waiting::PartialHead.open(&server)).collect();
    // The fourth waits in the listen queue until one of those closes.
    let started = Instant::now();
    let waiting = std::thread::spawn({
        let addr = server.http_addr(0).to_string();
        move || {
            let mut conn = common::Conn::open(&addr);
            conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
            (conn.read_response().text(), started.elapsed())
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    assert!(!waiting.is_finished(), "answered beyond worker-connections");
    drop(heads);
    let (text, took) = waiting.join().unwrap();
    assert_eq!(text, "ab");
    assert!(took >= Duration::from_millis(500), "{took:?}");
}
