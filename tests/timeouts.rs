//! The README's timeout table, crossed row by row on every protocol: a
//! client that stops at each phase (before its request, inside its head,
//! inside its body, while its response is written, idle between requests)
//! is let go after the timeout of that phase, not sooner, not much later,
//! and the server serves on. What each protocol answers on the way out
//! (408, 400, END_REQUEST) is checked in hostile.rs, uwsgi.rs and
//! fastcgi.rs; this is about the clocks.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, fcgi_begin, fcgi_record, uwsgi_header};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// `socket-timeout` and `http-keepalive-timeout` here: distinct, so each
/// row shows which one applies.
const SOCKET_TIMEOUT: u64 = 1;
const KEEPALIVE_TIMEOUT: u64 = 3;

#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Connected, sent nothing.
    Fresh,
    /// Part of a request head.
    Head,
    /// A whole head, part of its body.
    Body,
    /// A request whose large response is never read.
    Write,
    /// One request served, then nothing (keep-alive protocols only).
    Idle,
}

#[derive(Debug, Clone, Copy)]
enum Proto {
    Http,
    Uwsgi,
    FastCgi,
}

/// What the client sends to stop in `phase` (and whether it reads one
/// response first).
fn opening(proto: Proto, phase: Phase) -> (Vec<u8>, bool) {
    let fcgi_params = |params: &[(&str, &str)]| {
        let mut body = Vec::new();
        for (k, v) in params {
            body.extend([k.len() as u8, v.len() as u8]);
            body.extend(k.as_bytes());
            body.extend(v.as_bytes());
        }
        body
    };
    let fcgi_request = |uri: &str, length: &str| {
        let params = fcgi_params(&[
            ("REQUEST_METHOD", if length == "0" { "GET" } else { "POST" }),
            ("REQUEST_URI", uri),
            ("SCRIPT_NAME", ""),
            ("PATH_INFO", uri.split('?').next().unwrap()),
            ("QUERY_STRING", uri.split_once('?').map_or("", |(_, q)| q)),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "a"),
            ("SERVER_PORT", "80"),
            ("CONTENT_LENGTH", length),
        ]);
        let mut bytes = fcgi_begin(1, 1, 1);
        bytes.extend(fcgi_record(4, 1, &params));
        bytes.extend(fcgi_record(4, 1, b""));
        bytes
    };
    let uwsgi_request = |uri: &str, length: &str| {
        let vars = [
            ("REQUEST_METHOD", if length == "0" { "GET" } else { "POST" }),
            ("REQUEST_URI", uri),
            ("PATH_INFO", uri.split('?').next().unwrap()),
            ("QUERY_STRING", uri.split_once('?').map_or("", |(_, q)| q)),
            ("SERVER_PROTOCOL", "HTTP/1.1"),
            ("SERVER_NAME", "a"),
            ("SERVER_PORT", "80"),
            ("CONTENT_LENGTH", length),
        ];
        common::uwsgi_packet(&vars, b"")
    };
    let big = "/big?size=8388608";
    match (proto, phase) {
        (_, Phase::Fresh) => (Vec::new(), false),
        (Proto::Http, Phase::Head) => (b"GET / HTTP/1.1\r\nHost: a\r\nX-Half:".to_vec(), false),
        (Proto::Http, Phase::Body) => {
            (b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc".to_vec(), false)
        }
        (Proto::Http, Phase::Write) => {
            (format!("GET {big} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes(), false)
        }
        (Proto::Http, Phase::Idle) => {
            (b"GET /head-aware HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), true)
        }
        (Proto::Uwsgi, Phase::Head) => (uwsgi_header(0, 300, 0).to_vec(), false),
        (Proto::Uwsgi, Phase::Body) => {
            let mut bytes = uwsgi_request("/echo", "10");
            bytes.extend(b"abc");
            (bytes, false)
        }
        (Proto::Uwsgi, Phase::Write) => (uwsgi_request(big, "0"), false),
        (Proto::Uwsgi, Phase::Idle) => unreachable!("uwsgi has one request per connection"),
        (Proto::FastCgi, Phase::Head) => (fcgi_begin(1, 1, 1), false),
        (Proto::FastCgi, Phase::Body) => {
            let mut bytes = fcgi_request("/echo", "10");
            bytes.extend(fcgi_record(5, 1, b"abc"));
            (bytes, false)
        }
        (Proto::FastCgi, Phase::Write) => {
            let mut bytes = fcgi_request(big, "0");
            bytes.extend(fcgi_record(5, 1, b""));
            (bytes, false)
        }
        (Proto::FastCgi, Phase::Idle) => {
            let mut bytes = fcgi_request("/head-aware", "0");
            bytes.extend(fcgi_record(5, 1, b""));
            (bytes, true)
        }
    }
}

fn connect(server: &Server, proto: Proto, phase: Phase) -> TcpStream {
    let addr = match proto {
        Proto::Http => server.http_addr(0),
        Proto::Uwsgi => server.uwsgi_addr(0),
        Proto::FastCgi => server.fastcgi_addr(0),
    };
    let target: std::net::SocketAddr = addr.parse().unwrap();
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    if let Phase::Write = phase {
        // A small window: the response stays on rwsgi's side.
        socket.set_recv_buffer_size(4096).unwrap();
    }
    socket.connect(&target.into()).unwrap();
    TcpStream::from(socket)
}

/// Runs one row: how long until rwsgi lets the client go.
fn let_go_after(server: &Server, proto: Proto, phase: Phase) -> Duration {
    let mut stream = connect(server, proto, phase);
    let (bytes, read_response) = opening(proto, phase);
    stream.write_all(&bytes).unwrap();
    let mut buf = vec![0u8; 65536];
    if read_response {
        // Until the response is complete (`hello` ends both bodies).
        let mut got = Vec::new();
        while !got.windows(5).any(|w| w == b"hello") {
            let n = stream.read(&mut buf).unwrap();
            assert!(n > 0, "{proto:?} {phase:?}: closed before answering");
            got.extend_from_slice(&buf[..n]);
        }
        if let Proto::FastCgi = proto {
            // The END_REQUEST record follows the body.
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let started = Instant::now();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if let Phase::Write = phase {
        // Not a byte read until the server gives up writing.
        wait_for_reset_or_close(&stream);
        return started.elapsed();
    }
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

/// For a client that reads nothing: the moment the server closes, seen as
/// a FIN in the socket's state (without reading the data queued before it).
fn wait_for_reset_or_close(stream: &TcpStream) {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    use std::os::fd::AsFd;
    // POLLRDHUP: the peer closed, whatever data is still queued before it.
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::from_bits_retain(libc::POLLRDHUP))];
    let closed = poll(&mut fds, PollTimeout::from(20_000u16)).unwrap();
    assert_eq!(closed, 1, "the server never gave up writing to a client that does not read");
}

#[test]
fn every_phase_of_every_protocol_times_out_as_the_table_says() {
    let socket_timeout = SOCKET_TIMEOUT.to_string();
    let keepalive = KEEPALIVE_TIMEOUT.to_string();
    let server = Server::start(&[
        "--wsgi-file",
        common::PROBE,
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--fastcgi-socket",
        "127.0.0.1:0",
        "--socket-timeout",
        &socket_timeout,
        "--http-keepalive-timeout",
        &keepalive,
        "--threads",
        "4",
    ]);
    let rows: Vec<(Proto, Phase, u64)> = vec![
        (Proto::Http, Phase::Fresh, SOCKET_TIMEOUT),
        (Proto::Http, Phase::Head, SOCKET_TIMEOUT),
        (Proto::Http, Phase::Body, SOCKET_TIMEOUT),
        (Proto::Http, Phase::Write, SOCKET_TIMEOUT),
        (Proto::Http, Phase::Idle, KEEPALIVE_TIMEOUT),
        (Proto::Uwsgi, Phase::Fresh, SOCKET_TIMEOUT),
        (Proto::Uwsgi, Phase::Head, SOCKET_TIMEOUT),
        (Proto::Uwsgi, Phase::Body, SOCKET_TIMEOUT),
        (Proto::Uwsgi, Phase::Write, SOCKET_TIMEOUT),
        (Proto::FastCgi, Phase::Fresh, SOCKET_TIMEOUT),
        (Proto::FastCgi, Phase::Head, SOCKET_TIMEOUT),
        (Proto::FastCgi, Phase::Body, SOCKET_TIMEOUT),
        (Proto::FastCgi, Phase::Write, SOCKET_TIMEOUT),
        (Proto::FastCgi, Phase::Idle, KEEPALIVE_TIMEOUT),
    ];
    let results: Vec<(Proto, Phase, u64, Duration)> = std::thread::scope(|scope| {
        let running: Vec<_> = rows
            .iter()
            .map(|&(proto, phase, seconds)| {
                let server = &server;
                scope.spawn(move || (proto, phase, seconds, let_go_after(server, proto, phase)))
            })
            .collect();
        running.into_iter().map(|row| row.join().unwrap()).collect()
    });
    for (proto, phase, seconds, took) in results {
        let timeout = Duration::from_secs(seconds);
        assert!(
            took >= timeout.mul_f64(0.8) && took <= timeout + Duration::from_millis(1500),
            "{proto:?} {phase:?}: let go after {took:?}, the timeout is {timeout:?}"
        );
    }
    assert_eq!(server.get("/closing").text(), "ab", "still serving");
}
