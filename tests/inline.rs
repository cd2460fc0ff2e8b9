//! `threads = 1`: most requests run their Python on the I/O thread itself
//! (inline); a response that is not a plain list or tuple is iterated on the
//! pool thread, and requests never run Python at the same time.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    FCGI_KEEP_CONN, NotifySocket, PROBE, Server, TempDir, fcgi_nginx_params, fcgi_request, parallel,
};
use nix::sys::signal::Signal;
use std::time::{Duration, Instant};

fn get(target: &str) -> Vec<u8> {
    format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes()
}

#[test]
fn lists_run_inline_generators_on_the_pool_thread_in_order() {
    let server = Server::probe(&["--threads", "1"]);
    let mut conn = server.conn();
    // Pipelined on one keep-alive connection: answers come back in order.
    let mut all = Vec::new();
    for target in ["/where?kind=list", "/where?kind=gen", "/stream?n=3", "/where?kind=list"] {
        all.extend(get(target));
    }
    conn.send(all);
    let list = conn.read_response().json();
    let generator = conn.read_response().json();
    let stream = conn.read_response();
    let list_again = conn.read_response().json();
    assert_eq!(stream.text(), "chunk 0\nchunk 1\nchunk 2\n");
    // Both app calls ran on the I/O thread; the generator was iterated on
    // the pool thread.
    assert_eq!(list["call"], generator["call"], "{list} {generator}");
    assert_eq!(list["call"], list_again["call"]);
    assert_ne!(generator["call"], generator["iter"], "{generator}");
    assert!(conn.still_open_after(Duration::from_millis(100)));
}

#[test]
fn more_threads_keep_every_request_on_the_pool() {
    let server = Server::probe(&["--threads", "2"]);
    let generator = server.get("/where?kind=gen").json();
    assert_eq!(generator["call"], generator["iter"], "{generator}");
    assert_eq!(server.get("/environ").json()["wsgi.multithread"], true);
}

#[test]
fn fastcgi_keep_alive_mixes_lists_and_generators() {
    let server = Server::probe(&["--threads", "1", "--fastcgi-socket", "127.0.0.1:0"]);
    let mut conn = server.fastcgi_conn();
    for round in 0..3 {
        for (target, body) in [
            ("/closing", &b"ab"[..]),
            ("/stream?n=2", b"chunk 0\nchunk 1\n"),
            ("/write", b"written;returned"),
            ("/closing-list", b"ab"),
        ] {
            conn.send(fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", target), b""));
            let response = conn.read_fcgi_response(1);
            assert_eq!((response.status, &response.body[..]), (200, body), "{target} #{round}");
        }
    }
}

#[test]
fn wsgi_errors_reach_the_peer_from_both_phases_in_order() {
    let server =
        Server::probe(&["--threads", "1", "--fastcgi-socket", "127.0.0.1:0", "--fastcgi-stderr"]);
    let mut conn = server.fastcgi_conn();
    for target in ["/errors-gen", "/errors"] {
        conn.send(fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", target), b""));
        let response = conn.read_fcgi_response(1);
        assert_eq!(response.status, 200, "{target}");
        let stderr = String::from_utf8_lossy(&response.stderr).into_owned();
        if target == "/errors-gen" {
            assert_eq!((&response.body[..], stderr.as_str()), (&b"ab"[..], "call\niter\nend\n"));
        } else {
            assert_eq!(stderr, "first error line\nsecond error line\n");
        }
    }
}

#[test]
fn a_generator_to_a_slow_reader_leaves_the_io_thread_free() {
    let server = Server::probe(&["--threads", "1"]);
    // 256 MiB the client does not read: the pool thread waits for room in
    // the response queue, the I/O thread for the socket.
    let mut stalled = server.conn();
    stalled.send(get("/big-stream?n=4096&size=65536"));
    std::thread::sleep(Duration::from_millis(300));
    // The I/O thread still answers at once: a request it can answer alone,
    // and an idle keep-alive connection still works. (A request for Python
    // waits for the one Python thread, as it always did with threads = 1.)
    let started = Instant::now();
    let bad = server.request(b"BAD\r\n\r\n");
    assert_eq!(bad.status, 400);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    // The stalled client goes: its generator is dropped and the thread serves on.
    drop(stalled);
    let started = Instant::now();
    assert_eq!(server.get("/where?kind=list").status, 200);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[test]
fn write_callable_responses_work_inline() {
    let server = Server::probe(&["--threads", "1"]);
    let mut conn = server.conn();
    for (target, body) in [("/write", "written;returned"), ("/write-only", "one;two;three")] {
        conn.send(get(target));
        let response = conn.read_response();
        assert_eq!((response.status, response.text().as_str()), (200, body), "{target}");
    }
}

#[test]
fn app_errors_cost_one_request_inline() {
    let server = Server::probe(&["--threads", "1"]);
    let mut conn = server.conn();
    conn.send(get("/error-before"));
    assert_eq!(conn.read_response().status, 500);
    conn.send(get("/where?kind=list"));
    assert_eq!(conn.read_response().status, 200);
    // After the head went out (from a generator, on the pool thread): cut.
    let mut cut = server.conn();
    cut.send(get("/error-after"));
    let (data, closed) = cut.read_until_close(Duration::from_secs(5));
    assert!(closed && data.starts_with(b"HTTP/1.1 200"), "{data:?}");
    for target in ["/none", "/no-start", "/str-body", "/bad-header"] {
        assert_eq!(server.get(target).status, 500, "{target}");
    }
    assert_eq!(server.get("/where?kind=gen").status, 200);
}

#[test]
fn requests_never_run_python_at_once() {
    let server = Server::probe(&["--threads", "1"]);
    let addr = server.addr().to_string();
    let statuses = parallel(8, move |i| {
        let mut conn = common::Conn::open(&addr);
        (0..6)
            .map(|round| {
                let kind = if (i + round) % 2 == 0 { "gen" } else { "list" };
                conn.send(get(&format!("/overlap?kind={kind}&s=0.005")));
                let response = conn.read_response();
                (response.status, response.text())
            })
            .collect::<Vec<_>>()
    });
    for (status, text) in statuses.into_iter().flatten() {
        assert!(status == 200 && (text == "list" || text == "gen"), "{status} {text}");
    }
    let seen = server.get("/overlap-max").json();
    assert_eq!(seen["max"], 1, "{seen}");
    assert_eq!(seen["multithread"], serde_json::json!([false]), "{seen}");
}

#[test]
fn sigquit_cuts_an_inline_request_at_once() {
    let dir = TempDir::new("inline-quit");
    let sock = dir.join("http.sock");
    // systemd hears STOPPING=1 from the watchdog's exit too.
    let notify = NotifySocket::new("inline-quit");
    let mut server = Server::start_env(
        &[
            "--wsgi-file",
            PROBE,
            "--threads",
            "1",
            "--http-socket",
            "127.0.0.1:0",
            "--http-socket",
            &sock,
            "--vacuum",
        ],
        &[("NOTIFY_SOCKET", &notify.target)],
    );
    let ready = notify.next("READY=1");
    assert!(ready.starts_with("READY=1"), "{ready:?}");
    let mut conn = server.conn();
    conn.send(get("/sleep?s=30&mark=1"));
    assert!(server.wait_log("sleep started", Duration::from_secs(5)));
    let sent = Instant::now();
    server.signal(Signal::SIGQUIT);
    let status = server.wait_exit(Duration::from_secs(5)).expect("SIGQUIT did not stop rwsgi");
    assert!(sent.elapsed() < Duration::from_secs(1), "{:?}", sent.elapsed());
    assert_eq!(status.code(), Some(0));
    let (data, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed && data.is_empty(), "{data:?}");
    // The exit came from the watchdog thread, and still vacuumed.
    assert!(server.log_contains("the request running inline is cut"), "{}", server.log());
    assert!(!std::path::Path::new(&sock).exists(), "--vacuum left {sock}");
    assert_eq!(notify.next("STOPPING=1"), "STOPPING=1");
}

#[test]
fn sigterm_finishes_the_inline_request_first() {
    let mut server = Server::probe(&["--threads", "1"]);
    let mut conn = server.conn();
    conn.send(get("/sleep?s=1&mark=1"));
    assert!(server.wait_log("sleep started", Duration::from_secs(5)));
    let status = server.stop(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0));
    let response = conn.read_response();
    assert_eq!((response.status, response.text().as_str()), (200, "slept"));
}
