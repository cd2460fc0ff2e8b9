//! The uwsgi protocol (`--socket`, `-s`, `--uwsgi-socket`), as nginx's
//! `uwsgi_pass` speaks it: the packet, the environ built from its vars, the
//! response (plain HTTP, status line from `SERVER_PROTOCOL`, one request per
//! connection), hostile packets (/work/shared/reference/hostile-inputs.md §2,
//! U1–U20), the listener options, and a real nginx with Debian's
//! `/etc/nginx/uwsgi_params` in front (over TCP and a unix socket).
//!
//! Protocol-level tests use raw sockets and hand-built packets
//! ([`common::uwsgi_packet`]); the nginx tests use curl as the client.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Conn, Frameworks, LOG_TIMEOUT, NGINX_COMMON as COMMON, Nginx, Response, Server, Signal,
    TempDir, add_var as add, as_post, assert_error_then_next, assert_file_through,
    assert_logged_once, assert_same_client_headers, assert_same_fields, assert_streams_through,
    curl, django_through, drop_var, environ_via, flask_through, latin1, mentions, mode_of,
    nginx_tools as tools, nginx_vars, pattern, post_file, set_var, uwsgi_header, uwsgi_packet,
    uwsgi_packet_with, uwsgi_vars, wait_until, with_vars,
};
use serde_json::Value;
use std::time::{Duration, Instant};

type Vars = Vec<(Vec<u8>, Vec<u8>)>;

/// The probe on one uwsgi socket (and nothing else) with extra options.
fn uwsgi_probe(extra: &[&str]) -> Server {
    let mut args = vec!["--socket", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    Server::probe(&args)
}

/// nginx's vars for `method target` plus `extra`.
fn vars_with(method: &str, target: &str, extra: &[(&str, &str)]) -> Vars {
    with_vars(nginx_vars(method, target), extra)
}

/// nginx's vars for a request with a body of `len` bytes.
fn post_vars(target: &str, len: usize) -> Vars {
    as_post(nginx_vars("POST", target), len)
}

/// The response is announced and delimited as one request per connection
/// wants: `Connection: close`, complete, then the close with nothing more.
fn assert_closes(conn: &mut Conn, response: &Response, what: &str) {
    assert!(response.says_close(), "{what}: no `Connection: close`: {response:?}");
    assert!(response.complete, "{what}: incomplete: {response:?}");
    let (extra, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(extra.is_empty(), "{what}: bytes after the response: {:?}", latin1(&extra));
    assert!(closed, "{what}: the server did not close the connection");
}

/// Sends `packet` on a new uwsgi connection; the response, checked to be
/// the only one and followed by the close.
fn exchange(server: &Server, packet: &[u8], what: &str) -> Response {
    let mut conn = server.uwsgi_conn();
    conn.send(packet);
    let response = conn.read_response();
    assert_closes(&mut conn, &response, what);
    response
}

/// The probe's environ for `vars` (and `body`) over the uwsgi socket.
fn environ_of(server: &Server, vars: &Vars, body: &[u8]) -> Value {
    let response = exchange(server, &uwsgi_packet(vars, body), "/environ");
    assert_eq!(response.status, 200, "/environ: {response:?}");
    response.json()
}

/// A valid request sent after every rejected one: it must never reach the app.
fn smuggled() -> Vec<u8> {
    uwsgi_packet(&nginx_vars("GET", "/read-record?tag=smuggled"), b"")
}

/// Sends `bytes` + [`smuggled`] and asserts exactly one response, with
/// `status`, `Connection: close`, then the close; and one log line about
/// this client naming the status.
fn assert_rejected(server: &Server, bytes: &[u8], status: u16, what: &str) -> Response {
    let mut conn = server.uwsgi_conn();
    conn.set_timeout(Duration::from_secs(5));
    let peer = conn.local_addr();
    let mut all = bytes.to_vec();
    all.extend_from_slice(&smuggled());
    // The server may close before reading everything: a failed write is fine.
    let _ = conn.try_send(&all);
    let response = conn.try_read_response(false).unwrap_or_else(|e| {
        panic!(
            "{what}: no response (eof={}, timed out={}): got {:?}",
            e.eof,
            e.timed_out,
            latin1(&e.received)
        )
    });
    assert_eq!(response.status, status, "{what}: {response:?}");
    assert_closes(&mut conn, &response, what);
    assert_logged_once(server, "uwsgi", &peer, &format!("=> {status}"), what);
    response
}

/// The server still answers over uwsgi, and no smuggled request ran.
fn assert_still_serving(server: &Server) {
    let response = exchange(server, &uwsgi_packet(&nginx_vars("GET", "/closing"), b""), "after");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
    let records = read_records(server);
    assert!(
        !records.iter().any(|(tag, _)| tag == "smuggled"),
        "a request after a rejected one reached the app: {records:?}"
    );
}

/// The probe's `/read-record` outcomes as `(tag, outcome)`.
fn read_records(server: &Server) -> Vec<(String, String)> {
    let response = server.uwsgi_get("/read-records");
    assert_eq!(response.status, 200, "{response:?}");
    response
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string()))
        .collect()
}

/// The probe's `/process` over uwsgi with `extra` vars.
fn process(server: &Server, extra: &[(&str, &str)]) -> Value {
    let vars = vars_with("GET", "/process?env=RWSGI_PWNED&module=rwsgi_evil", extra);
    let response = exchange(server, &uwsgi_packet(&vars, b""), "/process");
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

// ---------------------------------------------------------------------------
// The environ from the vars
// ---------------------------------------------------------------------------

#[test]
fn environ_comes_from_the_vars() {
    let server = uwsgi_probe(&[]);
    let vars = vars_with(
        "GET",
        "/environ?a=1&b=%20x",
        &[("HTTP_X_CUSTOM", "custom value"), ("HTTP_USER_AGENT", "agent/1.0")],
    );
    let mut conn = server.uwsgi_conn();
    conn.send(uwsgi_packet(&vars, b""));
    let response = conn.read_response();
    assert_eq!(response.status, 200, "{response:?}");
    assert_eq!(response.version, 1, "SERVER_PROTOCOL was HTTP/1.1");
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_closes(&mut conn, &response, "/environ");
    let env = response.json();
    for (key, want) in [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/environ?a=1&b=%20x"),
        ("QUERY_STRING", "a=1&b=%20x"),
        ("PATH_INFO", "/environ"),
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "8080"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        // The client nginx saw, not the connection's peer.
        ("REMOTE_ADDR", "192.0.2.7"),
        ("REMOTE_PORT", "40123"),
        ("HTTP_HOST", "localhost"),
        ("HTTP_X_CUSTOM", "custom value"),
        ("HTTP_USER_AGENT", "agent/1.0"),
        ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
        ("REQUEST_SCHEME", "http"),
        ("wsgi.url_scheme", "http"),
    ] {
        assert_eq!(env[key], want, "{key}: {env}");
    }
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(env["_is_dict"], true);
    // nginx sends CONTENT_TYPE and CONTENT_LENGTH empty for a GET: absent.
    for key in ["CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        assert!(env.get(key).is_none(), "{key} present: {env}");
    }
}

#[test]
fn path_info_is_taken_as_sent_and_bytes_are_latin1() {
    let server = uwsgi_probe(&[]);
    // Already decoded by nginx: "%41" in it is a literal, not to decode again.
    let mut vars = nginx_vars("GET", "/a%20b/%2541");
    assert_eq!(vars.iter().find(|(k, _)| k == b"PATH_INFO").unwrap().1, b"/a b/%41");
    let response = exchange(&server, &uwsgi_packet(&vars, b""), "decoded path");
    assert_eq!((response.status, response.body.as_slice()), (404, &b"not found: /a b/%41"[..]));

    // UTF-8 bytes in the path come back byte for byte (latin-1 both ways).
    set_var(&mut vars, "PATH_INFO", b"/caf\xc3\xa9");
    set_var(&mut vars, "REQUEST_URI", "/caf%C3%A9");
    let response = exchange(&server, &uwsgi_packet(&vars, b""), "utf-8 path");
    assert_eq!(response.body, b"not found: /caf\xc3\xa9");

    let mut vars = nginx_vars("GET", "/environ");
    add(&mut vars, "HTTP_X_UTF8", b"caf\xc3\xa9 \xff");
    let env = environ_of(&server, &vars, b"");
    assert_eq!(env["HTTP_X_UTF8"], "caf\u{c3}\u{a9} \u{ff}");
}

#[test]
fn status_line_follows_server_protocol() {
    let server = uwsgi_probe(&[]);
    for (protocol, minor) in [
        (Some("HTTP/1.1"), 1),
        (Some("HTTP/1.0"), 0),
        (None, 0),
        (Some(""), 0),
        (Some("HTTP/2.0"), 0),
        (Some("http/1.1"), 0),
        (Some("HTTP/1.1 "), 0),
        (Some("HTTP/1.10"), 0),
    ] {
        let mut vars = nginx_vars("GET", "/closing");
        match protocol {
            Some(p) => set_var(&mut vars, "SERVER_PROTOCOL", p),
            None => drop_var(&mut vars, "SERVER_PROTOCOL"),
        }
        let what = format!("SERVER_PROTOCOL {protocol:?}");
        let response = exchange(&server, &uwsgi_packet(&vars, b""), &what);
        assert_eq!((response.status, response.text().as_str()), (200, "ab"), "{what}");
        assert_eq!(response.version, minor, "{what}: {response:?}");
    }
}

#[test]
fn responses_are_plain_http_and_end_with_the_close() {
    let server = uwsgi_probe(&[]);
    // A generator: no chunked encoding, the close delimits it.
    let response = exchange(&server, &uwsgi_packet(&nginx_vars("GET", "/stream?n=50"), b""), "s");
    assert_eq!(response.status, 200);
    assert!(!response.has_header("transfer-encoding"), "chunked over uwsgi: {response:?}");
    assert_eq!(response.text(), (0..50).map(|i| format!("chunk {i}\n")).collect::<String>());

    // wsgi.file_wrapper (1 MiB).
    let response = exchange(&server, &uwsgi_packet(&nginx_vars("GET", "/file"), b""), "file");
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 1 << 20);
    assert!(response.body.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8));

    // write() then a list.
    let response = exchange(&server, &uwsgi_packet(&nginx_vars("GET", "/write"), b""), "write");
    assert_eq!(response.text(), "written;returned");

    // HEAD: the app's headers, no body.
    let mut conn = server.uwsgi_conn();
    conn.send(uwsgi_packet(&nginx_vars("HEAD", "/head-aware"), b""));
    let response = conn.read_head_response();
    assert_eq!((response.status, response.header("content-length")), (200, Some("5")));
    assert_closes(&mut conn, &response, "HEAD");

    // An app error before start_response.
    let vars = nginx_vars("GET", "/error-before");
    let response = exchange(&server, &uwsgi_packet(&vars, b""), "error");
    assert_eq!((response.status, response.text().as_str()), (500, "Internal Server Error\n"));
    assert!(server.log_contains("failing before start_response"), "{}", server.log());
    assert_still_serving(&server);
}

#[test]
fn one_request_per_connection() {
    let server = uwsgi_probe(&[]);
    // Two packets in one write: the first is answered, the second ignored.
    let mut both = uwsgi_packet(&nginx_vars("GET", "/closing"), b"");
    both.extend_from_slice(&uwsgi_packet(&nginx_vars("GET", "/read-record?tag=second"), b""));
    let response = exchange(&server, &both, "two packets");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));

    // The second packet after the first response: nobody answers it.
    let mut conn = server.uwsgi_conn();
    conn.send(uwsgi_packet(&nginx_vars("GET", "/closing"), b""));
    assert_eq!(conn.read_response().text(), "ab");
    let _ = conn.try_send(uwsgi_packet(&nginx_vars("GET", "/read-record?tag=later"), b""));
    let (extra, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(extra.is_empty() && closed, "{:?}", latin1(&extra));

    // A body followed by more bytes than CONTENT_LENGTH: the rest is not a request.
    let mut vars = post_vars("/echo", 5);
    set_var(&mut vars, "CONTENT_TYPE", "text/plain");
    let mut packet = uwsgi_packet(&vars, b"hello");
    packet.extend_from_slice(&uwsgi_packet(&nginx_vars("GET", "/read-record?tag=third"), b""));
    let response = exchange(&server, &packet, "body then a packet");
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));

    let records = read_records(&server);
    assert!(records.is_empty(), "a second packet on a connection ran: {records:?}");
}

#[test]
fn request_bodies_follow_the_vars() {
    let server = uwsgi_probe(&[]);
    let mut vars = post_vars("/echo", 10);
    set_var(&mut vars, "CONTENT_TYPE", "text/plain");
    let response = exchange(&server, &uwsgi_packet(&vars, b"hello body"), "small");
    assert_eq!((response.status, response.text().as_str()), (200, "hello body"));
    assert_eq!(response.header("x-length"), Some("10"));
    assert_eq!(response.header("x-transfer-encoding"), Some("none"));

    // The environ of a POST.
    let mut vars = post_vars("/environ?p=1", 5);
    set_var(&mut vars, "CONTENT_TYPE", "text/plain; charset=utf-8");
    let env = environ_of(&server, &vars, b"12345");
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["CONTENT_LENGTH"], "5");
    assert_eq!(env["CONTENT_TYPE"], "text/plain; charset=utf-8");

    // The body in slow pieces, after the vars.
    let body = pattern(30_000);
    let mut conn = server.uwsgi_conn();
    conn.send(uwsgi_packet(&post_vars("/echo?via=chunks", body.len()), b""));
    for piece in body.chunks(10_000) {
        std::thread::sleep(Duration::from_millis(100));
        conn.send(piece);
    }
    let response = conn.read_response();
    assert_eq!(response.header("x-length"), Some("30000"));
    assert!(response.body == body, "slow body differs");
    assert_closes(&mut conn, &response, "slow body");

    // Over post-buffering (1 MiB): streamed to the app.
    let body = pattern(3 * 1024 * 1024 + 7);
    let response = exchange(&server, &uwsgi_packet(&post_vars("/echo", body.len()), &body), "3M");
    assert_eq!(response.header("x-length"), Some("3145735"));
    assert!(response.body == body, "3 MiB echo differs");

    // Empty and zero lengths.
    for cl in ["", "0"] {
        let mut vars = post_vars("/echo", 0);
        set_var(&mut vars, "CONTENT_LENGTH", cl);
        let response = exchange(&server, &uwsgi_packet(&vars, b""), cl);
        assert_eq!((response.status, response.header("x-length")), (200, Some("0")), "CL {cl:?}");
    }
}

#[test]
fn http_content_type_and_length_vars_are_dropped() {
    let server = uwsgi_probe(&[]);
    let mut vars = post_vars("/environ", 5);
    set_var(&mut vars, "CONTENT_TYPE", "text/plain");
    add(&mut vars, "HTTP_CONTENT_TYPE", "evil/type");
    add(&mut vars, "HTTP_CONTENT_LENGTH", "99");
    let env = environ_of(&server, &vars, b"12345");
    assert!(env.get("HTTP_CONTENT_TYPE").is_none(), "{env}");
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none(), "{env}");
    assert_eq!(
        (env["CONTENT_TYPE"].as_str(), env["CONTENT_LENGTH"].as_str()),
        (Some("text/plain"), Some("5"))
    );
    // And the body is CONTENT_LENGTH's, not HTTP_CONTENT_LENGTH's.
    let mut vars = post_vars("/echo", 5);
    add(&mut vars, "HTTP_CONTENT_LENGTH", "2");
    let response = exchange(&server, &uwsgi_packet(&vars, b"12345"), "echo");
    assert_eq!(response.text(), "12345");
}

#[test]
fn url_scheme_from_https_and_uwsgi_scheme() {
    let server = uwsgi_probe(&[]);
    for (extra, want) in [
        (vec![], "http"),
        (vec![("HTTPS", "on")], "https"),
        (vec![("HTTPS", "off")], "http"),
        (vec![("HTTPS", "")], "http"),
        (vec![("UWSGI_SCHEME", "https")], "https"),
        (vec![("UWSGI_SCHEME", "http")], "http"),
    ] {
        let env = environ_of(&server, &vars_with("GET", "/environ", &extra), b"");
        assert_eq!(env["wsgi.url_scheme"], want, "{extra:?}");
    }
}

#[test]
fn wsgi_and_uwsgi_vars_do_not_override_the_server() {
    let server = uwsgi_probe(&[]);
    let extra = [
        ("wsgi.url_scheme", "https"),
        ("wsgi.input", "evil"),
        ("wsgi.errors", "evil"),
        ("wsgi.version", "9"),
        ("wsgi.multithread", "evil"),
        ("wsgi.run_once", "evil"),
        ("wsgi.file_wrapper", "evil"),
        ("wsgi.extra", "evil"),
        ("uwsgi.node", "evil"),
        ("uwsgi.version", "evil"),
    ];
    let env = environ_of(&server, &vars_with("GET", "/environ", &extra), b"");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert_eq!(env["wsgi.version"], serde_json::json!([1, 0]));
    assert_eq!(env["wsgi.run_once"], false);
    assert!(env["wsgi.multithread"].is_boolean(), "{env}");
    for key in ["wsgi.input", "wsgi.errors", "wsgi.file_wrapper"] {
        assert!(env[key].is_string() && env[key] != "evil" && env[key] != "str", "{key}: {env}");
    }
    for key in ["wsgi.extra", "uwsgi.node", "uwsgi.version"] {
        assert!(env.get(key).is_none_or(|v| v != "evil"), "{key} came from a var: {env}");
    }
    assert!(env.get("wsgi.extra").is_none(), "{env}");
    // wsgi.input is still the body.
    let mut vars = post_vars("/echo", 5);
    add(&mut vars, "wsgi.input", "evil");
    let response = exchange(&server, &uwsgi_packet(&vars, b"12345"), "echo");
    assert_eq!((response.status, response.text().as_str()), (200, "12345"));
}

#[test]
fn magic_vars_are_inert() {
    let server = uwsgi_probe(&[]);
    let dir = TempDir::new("magic");
    let marker = dir.join("loaded.marker");
    let evil = dir.write(
        "rwsgi_evil.py",
        format!(
            "open({marker:?}, 'w').write('x')\n\
             def application(environ, start_response):\n    \
             start_response('200 OK', [])\n    return [b'evil app']\n"
        ),
    );
    let secret = dir.write("secret.txt", "TOP SECRET");
    let magic = [
        ("UWSGI_SETENV", "RWSGI_PWNED=1"),
        ("UWSGI_CHDIR", dir.path().to_str().unwrap()),
        ("UWSGI_PYHOME", dir.path().to_str().unwrap()),
        ("UWSGI_FILE", evil.as_str()),
        ("UWSGI_SCRIPT", "rwsgi_evil"),
        ("UWSGI_MODULE", "rwsgi_evil"),
        ("UWSGI_CALLABLE", "application"),
        ("UWSGI_APPID", "evil"),
        ("UWSGI_POSTFILE", secret.as_str()),
        ("UWSGI_TOUCH_RELOAD", secret.as_str()),
    ];
    let before = process(&server, &[]);
    assert!(before["env"].is_null(), "{before}");
    assert_eq!(before["module_loaded"], false);

    let during = process(&server, &magic);
    let after = process(&server, &[]);
    for state in [&during, &after] {
        assert!(state["env"].is_null(), "UWSGI_SETENV changed os.environ: {state}");
        assert_eq!(state["cwd"], before["cwd"], "UWSGI_CHDIR changed the cwd");
        assert_ne!(state["cwd"], dir.path().to_str().unwrap());
        assert_eq!(state["prefix"], before["prefix"], "UWSGI_PYHOME changed sys.prefix");
        assert_eq!(state["module_loaded"], false, "a magic var imported rwsgi_evil");
        assert_eq!(state["pid"], before["pid"]);
    }
    // UWSGI_POSTFILE does not become the body.
    let vars = vars_with("POST", "/echo", &magic);
    let response = exchange(&server, &uwsgi_packet(&vars, b""), "postfile");
    assert_eq!((response.status, response.text().as_str()), (200, ""), "{response:?}");
    // No dynamic app answers instead of the probe.
    let response = exchange(&server, &uwsgi_packet(&vars_with("GET", "/", &magic), b""), "/");
    assert_eq!((response.status, response.text().as_str()), (404, "not found: /"));
    assert!(!std::path::Path::new(&marker).exists(), "{evil} was executed");
    assert!(std::fs::read_to_string(&secret).unwrap() == "TOP SECRET");
}

#[test]
fn repeated_keys_are_joined() {
    let server = uwsgi_probe(&[]);
    let extra = [
        ("HTTP_X_A", "1"),
        ("HTTP_X_A", "2"),
        ("HTTP_X_B", "x"),
        ("HTTP_X_B", "y"),
        ("HTTP_X_B", "z"),
        ("HTTP_COOKIE", "a=1"),
        ("HTTP_COOKIE", "b=2"),
    ];
    let env = environ_of(&server, &vars_with("GET", "/environ", &extra), b"");
    assert_eq!(env["HTTP_X_A"], "1, 2");
    assert_eq!(env["HTTP_X_B"], "x, y, z");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
}

// ---------------------------------------------------------------------------
// Hostile and malformed packets (hostile-inputs.md §2)
// ---------------------------------------------------------------------------

/// nginx's vars for `GET /closing`, padded with an `HTTP_X_PAD` var so the
/// whole vars block is exactly `size` bytes.
fn vars_of_size(size: usize) -> Vars {
    let mut vars = nginx_vars("GET", "/closing");
    let base = uwsgi_vars(&vars).len() + 4 + "HTTP_X_PAD".len();
    add(&mut vars, "HTTP_X_PAD", "p".repeat(size - base));
    assert_eq!(uwsgi_vars(&vars).len(), size);
    vars
}

// U3
#[test]
fn vars_block_over_buffer_size_is_431() {
    let server = uwsgi_probe(&["--buffer-size", "4096"]);
    let response = exchange(&server, &uwsgi_packet(&vars_of_size(4096), b""), "4096");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"), "exactly buffer-size");
    for size in [4097, 5000, 65535] {
        assert_rejected(&server, &uwsgi_packet(&vars_of_size(size), b""), 431, &format!("{size}"));
    }
    // The header alone decides: no need to wait for the block.
    let mut conn = server.uwsgi_conn();
    conn.set_timeout(Duration::from_secs(5));
    conn.send(uwsgi_header(0, 5000, 0));
    let response = conn.read_response();
    assert_eq!(response.status, 431, "{response:?}");
    assert!(response.says_close());
    assert_still_serving(&server);
}

#[test]
fn default_buffer_size_takes_big_vars() {
    let server = uwsgi_probe(&[]);
    // 6 KiB of cookies (uWSGI's 4096 default fails them with a 502).
    let cookies: String = (0..100).map(|i| format!("c{i:02}={}; ", "v".repeat(58))).collect();
    let cookies = cookies.trim_end_matches("; ");
    assert!(cookies.len() >= 6 * 1024);
    let env = environ_of(&server, &vars_with("GET", "/environ", &[("HTTP_COOKIE", cookies)]), b"");
    assert_eq!(env["HTTP_COOKIE"], cookies);
    // The largest block the u16 datasize can announce.
    let response = exchange(&server, &uwsgi_packet(&vars_of_size(65535), b""), "65535");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
}

// U4, U5, U16
#[test]
fn malformed_vars_blocks_are_400() {
    let server = uwsgi_probe(&[]);
    let valid = uwsgi_vars(&nginx_vars("GET", "/closing"));
    let with_tail = |tail: &[u8]| {
        let mut block = valid.clone();
        block.extend_from_slice(tail);
        uwsgi_packet_with(0, 0, &block, b"")
    };
    let cases: [(&str, Vec<u8>); 6] = [
        ("key length past the end", with_tail(b"\x14\x00ABC")),
        ("value length past the end", with_tail(b"\x06\x00HTTP_X\x32\x00short")),
        ("half a key length", with_tail(b"\x05")),
        ("key without a value length", with_tail(b"\x06\x00HTTP_X")),
        ("zero-length key", with_tail(b"\x00\x00\x01\x00x")),
        ("empty vars block", uwsgi_packet_with(0, 0, b"", b"")),
    ];
    for (what, packet) in cases {
        assert_rejected(&server, &packet, 400, what);
    }
    assert_still_serving(&server);
}

// U2
#[test]
fn vars_block_shorter_than_datasize_times_out_with_400() {
    let server = uwsgi_probe(&["--socket-timeout", "1"]);
    let packet = uwsgi_packet(&nginx_vars("GET", "/closing"), b"");
    let mut conn = server.uwsgi_conn();
    conn.set_timeout(Duration::from_secs(8));
    let peer = conn.local_addr();
    let started = Instant::now();
    conn.send(&packet[..packet.len() - 20]);
    let response = conn.read_response();
    let elapsed = started.elapsed();
    assert_eq!(response.status, 400, "{response:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    assert_closes(&mut conn, &response, "truncated block");
    assert_logged_once(&server, "uwsgi", &peer, "=> 400", "truncated block");
    assert_still_serving(&server);
}

// U20
#[test]
fn slow_drip_of_the_vars_times_out_as_a_whole() {
    let server = uwsgi_probe(&["--socket-timeout", "1"]);
    let conn = server.uwsgi_conn();
    let mut writer = conn.try_clone_tcp();
    let packet = uwsgi_packet(&nginx_vars("GET", "/closing"), b"");
    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        use std::io::Write;
        for byte in packet {
            if writer.write_all(&[byte]).is_err() || started.elapsed() > Duration::from_secs(6) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut conn = conn;
    let response = conn.read_response();
    let elapsed = started.elapsed();
    assert_eq!(response.status, 400, "{response:?}");
    assert!(elapsed < Duration::from_millis(2500), "the deadline is per packet: {elapsed:?}");
    let (_, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed);
    dripper.join().unwrap();
    assert_still_serving(&server);
}

// U8
#[test]
fn bad_content_length_is_400() {
    let server = uwsgi_probe(&[]);
    for cl in ["abc", "+5", "-1", "5xyz", " 5", "5 ", "0x5", "5,5", "99999999999999999999999"] {
        let mut vars = post_vars("/echo", 0);
        set_var(&mut vars, "CONTENT_LENGTH", cl);
        assert_rejected(&server, &uwsgi_packet(&vars, b"hello"), 400, &format!("CL {cl:?}"));
    }
    // Two different lengths: ambiguous framing.
    let mut vars = post_vars("/echo", 5);
    add(&mut vars, "CONTENT_LENGTH", "10");
    assert_rejected(&server, &uwsgi_packet(&vars, b"hello"), 400, "CL 5 and 10");
    assert_still_serving(&server);
}

// U10, U11
#[test]
fn content_length_over_limit_post_is_413_before_the_body() {
    let server = uwsgi_probe(&["--limit-post", "1000"]);
    for cl in [1001_u64, 1_000_000_000_000] {
        let mut conn = server.uwsgi_conn();
        conn.set_timeout(Duration::from_secs(5));
        let peer = conn.local_addr();
        let mut vars = post_vars("/read-record?tag=over", 0);
        set_var(&mut vars, "CONTENT_LENGTH", cl.to_string());
        // No body is sent: the answer must not wait for it.
        conn.send(uwsgi_packet(&vars, b""));
        let response = conn.read_response();
        assert_eq!(response.status, 413, "CL {cl}: {response:?}");
        assert_closes(&mut conn, &response, "413");
        assert_logged_once(&server, "uwsgi", &peer, "=> 413", "413");
    }
    let body = pattern(1000);
    let response = exchange(&server, &uwsgi_packet(&post_vars("/echo", 1000), &body), "1000 bytes");
    assert_eq!(response.status, 200);
    assert!(response.body == body);
    let records = read_records(&server);
    assert!(records.is_empty(), "the app ran for a body over limit-post: {records:?}");
}

// U11 without a limit: kept in a file as it comes (nothing allocated up
// front), and the app never sees a body that did not arrive.
#[test]
fn huge_content_length_is_spooled_as_it_comes_and_never_reaches_the_app() {
    let server = uwsgi_probe(&[]);
    let mut conn = server.uwsgi_conn();
    let mut vars = post_vars("/read-record?tag=huge", 0);
    set_var(&mut vars, "CONTENT_LENGTH", "1000000000000");
    conn.send(uwsgi_packet(&vars, b"some"));
    assert!(conn.still_open_after(Duration::from_millis(300)));
    drop(conn);
    assert_still_serving(&server);
    // Streamed, the app would have run on the first bytes and recorded
    // its failed read by now.
    std::thread::sleep(Duration::from_millis(300));
    assert!(read_records(&server).iter().all(|(tag, _)| tag != "huge"), "the app ran");
}

// U11 without a limit and without post-buffering: streamed, nothing
// allocated up front.
#[test]
fn huge_content_length_is_streamed_without_post_buffering() {
    let server = uwsgi_probe(&["--post-buffering", "0"]);
    let mut conn = server.uwsgi_conn();
    let mut vars = post_vars("/read-record?tag=huge", 0);
    set_var(&mut vars, "CONTENT_LENGTH", "1000000000000");
    conn.send(uwsgi_packet(&vars, b"some"));
    // The app waits for more; the client goes away.
    assert!(conn.still_open_after(Duration::from_millis(300)));
    drop(conn);
    assert!(
        wait_until(Duration::from_secs(10), || read_records(&server)
            .iter()
            .any(|(tag, outcome)| tag == "huge" && outcome.starts_with("OSError"))),
        "{:?}",
        read_records(&server)
    );
    assert_still_serving(&server);
}

// U6
#[test]
fn unknown_modifier1_is_501() {
    let server = uwsgi_probe(&[]);
    let block = uwsgi_vars(&nginx_vars("GET", "/read-record?tag=modifier"));
    for modifier1 in [5_u8, 255] {
        let packet = uwsgi_packet_with(modifier1, 0, &block, b"");
        assert_rejected(&server, &packet, 501, &format!("modifier1 {modifier1}"));
    }
    assert!(read_records(&server).is_empty());
    assert_still_serving(&server);
}

// U7
#[test]
fn http_on_a_uwsgi_socket_is_400_with_a_hint() {
    let server = uwsgi_probe(&[]);
    for (what, raw) in [
        ("GET", &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]),
        ("POST", &b"POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi"[..]),
    ] {
        assert_rejected(&server, raw, 400, what);
    }
    let hint =
        |l: &str| l.contains("HTTP request on a uwsgi socket") && l.contains("use http-socket");
    assert!(server.wait_log_line(LOG_TIMEOUT, hint), "no hint in the log:\n{}", server.log());
    assert_still_serving(&server);
}

// U1
#[test]
fn fewer_than_four_bytes_then_close_is_a_quiet_close() {
    let server = uwsgi_probe(&[]);
    let mut peers = Vec::new();
    for bytes in [&b""[..], b"\x00", b"\x00\x10", b"\x00\x10\x00"] {
        let mut conn = server.uwsgi_conn();
        peers.push(conn.local_addr());
        conn.send(bytes);
        conn.shutdown_write();
        let (data, closed) = conn.read_until_close(Duration::from_secs(5));
        assert!(data.is_empty(), "{bytes:?}: nobody to answer: {:?}", latin1(&data));
        assert!(closed, "{bytes:?}: the connection stayed open");
    }
    assert_still_serving(&server);
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
    for peer in peers {
        assert!(
            !log.lines().any(|l| mentions(l, &peer) && l.contains("=> ")),
            "{peer} got a response logged:\n{log}"
        );
    }
}

/// Whether `line` says why a request's body never completed.
fn says_client_left(line: &str) -> bool {
    let line = line.to_ascii_lowercase();
    ["closed", "disconnect", "eof", "incomplete", "truncated"].iter().any(|w| line.contains(w))
}

/// Sends a packet for `target` announcing `content_length` bytes, sends
/// five, and closes. Returns the client's address as the server logs it.
fn send_part_and_close(server: &Server, target: &str, content_length: usize) -> String {
    let mut conn = server.uwsgi_conn();
    let peer = conn.local_addr();
    conn.send(uwsgi_packet(&post_vars(target, content_length), b"12345"));
    drop(conn);
    peer
}

// U9
#[test]
fn client_closing_mid_body_fails_the_apps_read() {
    // Without post-buffering, so the app runs and reads the body itself.
    let server = uwsgi_probe(&["--post-buffering", "0"]);
    let peer = send_part_and_close(&server, "/read-record?tag=early", 2_000_000);
    let outcome = || read_records(&server).into_iter().find(|(tag, _)| tag == "early");
    assert!(wait_until(Duration::from_secs(10), || outcome().is_some()), "the app never ran");
    let (_, outcome) = outcome().unwrap();
    assert!(outcome.starts_with("OSError"), "the truncated body was not an error: {outcome}");

    // An app that does not catch it: its OSError is logged.
    let reported = |l: &str| l.contains("OSError") || l.contains("client disconnected");
    let before = server.log().lines().filter(|l| reported(l)).count();
    send_part_and_close(&server, "/echo", 2_000_000);
    assert!(
        server.wait_log_text(LOG_TIMEOUT, |t| t.lines().filter(|l| reported(l)).count() > before),
        "{}",
        server.log()
    );
    // A client's disappearance is not the app's bug: one line, no traceback.
    assert!(!server.log().contains("Traceback"), "{}", server.log());
    assert_still_serving(&server);

    // The server's own line about the first request says what happened
    // (the app caught the error, so nothing else would tell).
    assert!(
        server.wait_log_line(LOG_TIMEOUT, |l| mentions(l, &peer) && says_client_left(l)),
        "no log line says {peer} closed in the middle of its body:\n{}",
        server.log()
    );
}

// U9 under post-buffering: the server reads the body before the app runs.
#[test]
fn client_closing_mid_buffered_body_is_logged_and_never_reaches_the_app() {
    let server = uwsgi_probe(&[]);
    let peer = send_part_and_close(&server, "/read-record?tag=buffered", 50);
    let logged = server.wait_log_line(LOG_TIMEOUT, |l| mentions(l, &peer) && says_client_left(l));
    assert_still_serving(&server);
    let records = read_records(&server);
    assert!(
        !records.iter().any(|(tag, outcome)| tag == "buffered" && outcome.starts_with("read")),
        "a truncated body reached the app as complete: {records:?}"
    );
    assert!(logged, "no log line about {peer}, whose body never came:\n{}", server.log());
}

// U19
#[test]
fn thousands_of_vars_are_431() {
    let server = uwsgi_probe(&[]);
    let mut vars = nginx_vars("GET", "/read-record?tag=many");
    for i in 0..3000 {
        add(&mut vars, &format!("HTTP_X_{i}"), "v");
    }
    assert!(uwsgi_vars(&vars).len() <= 65535);
    assert_rejected(&server, &uwsgi_packet(&vars, b""), 431, "3000 vars");
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------
// Listener options
// ---------------------------------------------------------------------------

#[test]
fn socket_option_spellings() {
    for args in [
        &["--socket", "127.0.0.1:0"][..],
        &["--uwsgi-socket", "127.0.0.1:0"],
        &["-s", "127.0.0.1:0"],
        &["--socket=127.0.0.1:0"],
        &["--uwsgi-socket=127.0.0.1:0"],
    ] {
        let server = Server::probe(args);
        let listeners = server.listeners();
        assert_eq!(listeners.len(), 1, "{args:?}: {listeners:?}");
        assert_eq!(listeners[0].0, "uwsgi-socket", "{args:?}: {listeners:?}");
        assert!(listeners[0].1.starts_with("127.0.0.1:"), "{args:?}: {listeners:?}");
        let response = exchange(&server, &uwsgi_packet(&nginx_vars("GET", "/closing"), b""), "");
        assert_eq!((response.status, response.text().as_str()), (200, "ab"), "{args:?}");
    }
}

#[test]
fn several_uwsgi_sockets_all_serve() {
    let server = Server::probe(&["-s", "127.0.0.1:0", "--socket", "127.0.0.1:0"]);
    assert_eq!(server.listeners().len(), 2, "{:?}", server.listeners());
    assert_ne!(server.uwsgi_addr(0), server.uwsgi_addr(1));
    for n in 0..2 {
        let mut conn = Conn::open(server.uwsgi_addr(n));
        conn.send(uwsgi_packet(&nginx_vars("GET", "/closing"), b""));
        let response = conn.read_response();
        assert_eq!((response.status, response.text().as_str()), (200, "ab"), "socket {n}");
        assert_closes(&mut conn, &response, "socket");
    }
}

#[test]
fn uwsgi_unix_socket_chmod_and_vacuum() {
    let dir = TempDir::new("usock");
    let path = dir.join("uwsgi.sock");
    let mut server = Server::probe(&["--socket", &path, "--chmod-socket=660", "--vacuum"]);
    assert_eq!(server.listeners(), &[("uwsgi-socket".to_string(), format!("unix:{path}"))]);
    assert_eq!(mode_of(&path), 0o660, "socket mode");
    let env = environ_of(&server, &nginx_vars("GET", "/environ?u=1"), b"");
    assert_eq!(env["QUERY_STRING"], "u=1");
    assert_eq!(env["REMOTE_ADDR"], "192.0.2.7", "REMOTE_ADDR comes from the vars");
    let body = pattern(200_000);
    let response = exchange(&server, &uwsgi_packet(&post_vars("/echo", body.len()), &body), "e");
    assert!(response.body == body);
    let status = server.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(!std::path::Path::new(&path).exists(), "--vacuum left {path}");
}

#[test]
fn http_and_uwsgi_listeners_serve_one_app() {
    let dir = TempDir::new("mixed");
    let path = dir.join("mixed.sock");
    let server = Server::probe(&[
        "--http-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--uwsgi-socket",
        &path,
        "--threads",
        "2",
    ]);
    assert_eq!(server.listeners().len(), 3, "{:?}", server.listeners());
    assert_eq!(server.uwsgi_addr(1), format!("unix:{path}"));
    let pid = server.pid().to_string();

    // Over HTTP…
    let response = server.post("/read-record?tag=via-http", b"abc");
    assert_eq!((response.status, response.text().as_str()), (200, "read 3 bytes"));
    let http_pid = server.get("/process").json()["pid"].to_string();
    // …and over both uwsgi sockets: one process, one app.
    for n in 0..2 {
        let mut conn = Conn::open(server.uwsgi_addr(n));
        let tag = format!("/read-record?tag=via-uwsgi-{n}");
        conn.send(uwsgi_packet(&post_vars(&tag, 4), b"abcd"));
        let response = conn.read_response();
        assert_eq!((response.status, response.text().as_str()), (200, "read 4 bytes"));
        assert_closes(&mut conn, &response, "uwsgi");
        let mut conn = Conn::open(server.uwsgi_addr(n));
        conn.send(uwsgi_packet(&nginx_vars("GET", "/process"), b""));
        assert_eq!(conn.read_response().json()["pid"].to_string(), pid);
    }
    assert_eq!(http_pid, pid);
    let mut conn = Conn::open(server.uwsgi_addr(1));
    conn.send(uwsgi_packet(&nginx_vars("GET", "/read-records"), b""));
    let tags: Vec<String> = conn
        .read_response()
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap().to_string())
        .collect();
    assert_eq!(tags, ["via-http", "via-uwsgi-0", "via-uwsgi-1"]);

    // Each listener speaks its own protocol only.
    let response = server.request(uwsgi_packet(&nginx_vars("GET", "/closing"), b""));
    assert_eq!(response.status, 400, "a uwsgi packet on the http-socket: {response:?}");
    let mut conn = server.uwsgi_conn();
    conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(conn.read_response().status, 400, "HTTP on the uwsgi socket");
    // Keep-alive still works on the HTTP listener.
    let mut conn = server.conn();
    for _ in 0..2 {
        conn.send(b"GET /closing HTTP/1.1\r\nHost: a\r\n\r\n");
        let response = conn.read_response();
        assert_eq!(response.text(), "ab");
        assert!(!response.says_close());
    }
}

// ---------------------------------------------------------------------------
// nginx uwsgi_pass
// ---------------------------------------------------------------------------

/// nginx passing everything to `pass` (`127.0.0.1:PORT` or `unix:/path`)
/// with Debian's uwsgi_params; `/nobuf/…` is `/…` with request buffering off.
fn uwsgi_nginx(pass: &str, extra: &str) -> Nginx {
    Nginx::start(&format!(
        "server {{\nlisten 127.0.0.1:@PORT@;\n{COMMON}{extra}\n\
         location / {{ include /etc/nginx/uwsgi_params; uwsgi_pass {pass}; }}\n\
         location /nobuf/ {{ rewrite ^/nobuf(/.*)$ $1 break; include /etc/nginx/uwsgi_params; \
         uwsgi_pass {pass}; uwsgi_request_buffering off; }}\n\
         location /secure/ {{ rewrite ^/secure(/.*)$ $1 break; include /etc/nginx/uwsgi_params; \
         uwsgi_param HTTPS on; uwsgi_pass {pass}; }}\n\
         }}\n"
    ))
}

/// The `HTTP_*` and request fields nginx must pass on unchanged (except
/// `HTTP_HOST`, which Debian's params set to `$host`).
fn assert_same_request(direct: &Value, proxied: &Value) {
    let keys = [
        "REQUEST_METHOD",
        "PATH_INFO",
        "QUERY_STRING",
        "REQUEST_URI",
        "SCRIPT_NAME",
        "SERVER_PROTOCOL",
        "HTTP_X_CUSTOM",
        "HTTP_USER_AGENT",
        "wsgi.url_scheme",
    ];
    assert_same_fields(direct, proxied, &keys);
    assert_same_client_headers(direct, proxied);
    assert_eq!(proxied["wsgi.url_scheme"], "http");
}

#[test]
fn environ_through_nginx_uwsgi_pass_matches_http_socket() {
    if !tools() {
        return;
    }
    let server = Server::probe(&["--http-socket", "127.0.0.1:0", "--socket", "127.0.0.1:0"]);
    let nginx = uwsgi_nginx(server.uwsgi_addr(0), "");
    let direct_url = format!("http://{}/environ?a=1&b=%20x", server.http_addr(0));
    let proxied_url = nginx.url("/environ?a=1&b=%20x");

    let direct = environ_via(&direct_url, &[]);
    let proxied = environ_via(&proxied_url, &[]);
    assert_same_request(&direct, &proxied);
    assert_eq!(proxied["SERVER_PROTOCOL"], "HTTP/1.1", "nginx passes the client's protocol");
    assert_eq!(proxied["HTTP_HOST"], "127.0.0.1", "Debian's uwsgi_params: HTTP_HOST = $host");
    assert_eq!(direct["HTTP_HOST"], format!("{}", server.http_addr(0)));
    assert_eq!(proxied["REMOTE_ADDR"], "127.0.0.1");
    assert!(proxied["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok(), "{proxied}");
    assert_eq!(proxied["SERVER_PORT"], nginx.port.to_string());
    assert_eq!(proxied["REQUEST_SCHEME"], "http");
    assert!(proxied.get("CONTENT_LENGTH").is_none(), "empty CONTENT_LENGTH kept: {proxied}");

    let post = ["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "hello body"];
    let direct = environ_via(&direct_url, &post);
    let proxied = environ_via(&proxied_url, &post);
    assert_same_request(&direct, &proxied);
    assert_eq!(proxied["CONTENT_LENGTH"], "10");
    assert_eq!(proxied["CONTENT_TYPE"], "text/plain");

    let direct = environ_via(&direct_url, &["--http1.0"]);
    let proxied = environ_via(&proxied_url, &["--http1.0"]);
    assert_same_request(&direct, &proxied);
    assert_eq!(proxied["SERVER_PROTOCOL"], "HTTP/1.0");

    // The percent-decoded path.
    let direct = curl(&[&format!("http://{}/a%20b/%C3%A9", server.http_addr(0))]);
    let proxied = curl(&[&nginx.url("/a%20b/%C3%A9")]);
    assert_eq!(direct.body, b"not found: /a b/\xc3\xa9");
    assert_eq!((proxied.status, &proxied.body), (404, &direct.body));
}

#[test]
fn environ_through_nginx_over_a_unix_socket() {
    if !tools() {
        return;
    }
    let dir = TempDir::new("ngxu");
    let sock = dir.join("uwsgi.sock");
    let server = Server::probe(&["--socket", &sock, "--chmod-socket=666"]);
    let nginx = uwsgi_nginx(&format!("unix:{sock}"), "");
    let env = environ_via(&nginx.url("/environ?q=unix"), &[]);
    assert_eq!(env["REQUEST_METHOD"], "GET");
    assert_eq!(env["PATH_INFO"], "/environ");
    assert_eq!(env["QUERY_STRING"], "q=unix");
    assert_eq!(env["REQUEST_URI"], "/environ?q=unix");
    assert_eq!(env["HTTP_X_CUSTOM"], "custom value");
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "the client's address, from nginx");
    assert_eq!(env["SCRIPT_NAME"], "");
    let body = pattern(300_000);
    let response = post_file(&nginx.url("/echo"), &body, &[]);
    assert_eq!(response.status, 200);
    assert!(response.body == body, "300 KB through the unix socket");
    let secure = environ_via(&nginx.url("/secure/environ"), &[]);
    assert_eq!(secure["wsgi.url_scheme"], "https", "HTTPS=on from nginx");
    assert_eq!(secure["PATH_INFO"], "/environ");
    assert_eq!(secure["REQUEST_URI"], "/secure/environ");
    assert!(server.wait_request_status("POST", "/echo", 200), "{}", server.log());
}

#[test]
fn large_and_chunked_uploads_through_nginx() {
    if !tools() {
        return;
    }
    let server = uwsgi_probe(&["--threads", "2"]);
    let nginx = uwsgi_nginx(server.uwsgi_addr(0), "");
    let body = pattern(10 * 1024 * 1024);
    // Streamed by nginx as it arrives (uwsgi_request_buffering off)…
    let response = post_file(&nginx.url("/nobuf/echo?via=chunks"), &body, &[]);
    assert_eq!(response.status, 200, "{}", nginx.error_log());
    assert_eq!(response.header("x-length"), Some("10485760"));
    assert!(response.body == body, "10 MiB echo differs (unbuffered)");
    // …and buffered first.
    let response = post_file(&nginx.url("/echo"), &body, &[]);
    assert_eq!(response.header("x-length"), Some("10485760"));
    assert!(response.body == body, "10 MiB echo differs (buffered)");

    // A chunked client body: nginx buffers it and sends CONTENT_LENGTH.
    let chunked = ["-H", "Transfer-Encoding: chunked"];
    for (url, len) in
        [(nginx.url("/echo?via=readline"), 200_000), (nginx.url("/nobuf/echo"), 3 * 1024 * 1024)]
    {
        let body = pattern(len);
        let response = post_file(&url, &body, &chunked);
        assert_eq!(response.status, 200, "{url}");
        assert_eq!(response.header("x-length"), Some(len.to_string().as_str()), "{url}");
        assert!(response.body == body, "{url}");
    }
    let body = pattern(100_000);
    let env = post_file(&nginx.url("/environ"), &body, &chunked).json();
    assert_eq!(env["CONTENT_LENGTH"], "100000", "{env}");
    // nginx passes the client's Transfer-Encoding on as a var too; Werkzeug
    // then ignores CONTENT_LENGTH and reads the body only if the server says
    // wsgi.input is terminated (the Flask test below checks it end to end).
    if env.get("HTTP_TRANSFER_ENCODING").is_some() {
        assert_eq!(env["wsgi.input_terminated"], true, "{env}");
    }
}

#[test]
fn streaming_and_errors_through_nginx() {
    if !tools() {
        return;
    }
    let server = uwsgi_probe(&[]);
    let nginx = uwsgi_nginx(server.uwsgi_addr(0), "");
    assert_streams_through(&nginx, 100);
    assert_file_through(&nginx);
    assert_error_then_next(&nginx);
    let status = curl(&[&nginx.url("/status?code=418")]);
    assert_eq!(status.status, 418);
    assert!(!nginx.error_log().contains("upstream prematurely closed"), "{}", nginx.error_log());
}

#[test]
fn big_cookies_through_nginx() {
    if !tools() {
        return;
    }
    let cookies: String = (0..100).map(|i| format!("c{i:02}={}; ", "v".repeat(58))).collect();
    let cookies = cookies.trim_end_matches("; ").to_string();
    assert!(cookies.len() >= 6 * 1024);
    let header = format!("Cookie: {cookies}");

    // rwsgi's default buffer-size takes them.
    let server = uwsgi_probe(&[]);
    let nginx = uwsgi_nginx(server.uwsgi_addr(0), "");
    let env = environ_via(&nginx.url("/environ"), &["-H", &header]);
    assert_eq!(env["HTTP_COOKIE"], cookies.as_str());

    // With uWSGI's 4096: a 431 the client sees (uWSGI's silent close is a 502).
    let small = uwsgi_probe(&["--buffer-size", "4096"]);
    let nginx = uwsgi_nginx(small.uwsgi_addr(0), "");
    let response = curl(&["-H", &header, &nginx.url("/environ")]);
    assert_eq!(response.status, 431, "{}", nginx.error_log());
    assert_eq!(curl(&[&nginx.url("/closing")]).status, 200);
}

#[test]
fn flask_and_django_through_nginx_uwsgi_pass() {
    if !tools() {
        return;
    }
    let Some(apps) = Frameworks::start("--socket") else { return };
    let flask_nginx = uwsgi_nginx(&format!("unix:{}", apps.flask_sock), "");
    let django_nginx = uwsgi_nginx(apps.django.uwsgi_addr(0), "");

    flask_through(&flask_nginx, "/echo");
    django_through(&django_nginx);
    apps.assert_booms_logged();
}
