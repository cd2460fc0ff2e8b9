//! FastCGI (`--fastcgi-socket`), as nginx's `fastcgi_pass` speaks it: the
//! responder role (BEGIN_REQUEST, the PARAMS stream, STDIN, the CGI
//! response on STDOUT, END_REQUEST), `FCGI_KEEP_CONN`, management records
//! (GET_VALUES, UNKNOWN_TYPE), ABORT_REQUEST, refused multiplexing and
//! roles, hostile records (/work/shared/reference/hostile-inputs.md §3,
//! F1–F24), the listener options, Debian's `cgi-fcgi` as an independent
//! client, and a real nginx with `/etc/nginx/fastcgi_params` in front (over
//! TCP and a unix socket, with and without `fastcgi_keep_conn`).
//!
//! Protocol-level tests use raw sockets and hand-built records
//! ([`common::fcgi_record`] and friends); the nginx tests use curl.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Conn, FCGI_ABORT_REQUEST, FCGI_AUTHORIZER, FCGI_BEGIN_REQUEST, FCGI_CANT_MPX_CONN, FCGI_DATA,
    FCGI_END_REQUEST, FCGI_FILTER, FCGI_GET_VALUES, FCGI_GET_VALUES_RESULT, FCGI_KEEP_CONN,
    FCGI_PARAMS, FCGI_REQUEST_COMPLETE, FCGI_RESPONDER, FCGI_STDIN, FCGI_STDOUT, FCGI_UNKNOWN_ROLE,
    FCGI_UNKNOWN_TYPE, FcgiPairs, FcgiRecord, FcgiResponse, Frameworks, LOG_TIMEOUT, NGINX_COMMON,
    Nginx, Server, Signal, TempDir, add_var as add, as_post, assert_error_then_next,
    assert_file_through, assert_logged_once, assert_same_client_headers, assert_same_fields,
    assert_streams_through, curl, django_through, drop_var, environ_via, fcgi_begin, fcgi_length,
    fcgi_nginx_params, fcgi_pairs, fcgi_pairs_with, fcgi_params, fcgi_parse_pairs, fcgi_record,
    fcgi_record_with, fcgi_request, fcgi_stdin, fcgi_stream, flask_through, latin1, mentions,
    mode_of, nginx_tools as tools, pattern, post_file, set_var, wait_until, with_vars,
};
use serde_json::Value;
use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How soon an answer that needs no app work (END_REQUEST after an abort,
/// a refusal, a management reply) must come.
const PROMPT: Duration = Duration::from_secs(3);

/// The probe on one FastCGI socket (and nothing else) with extra options.
/// A request line naming the connection's peer (nginx's end, here) and
/// the protocol: the tests tell connections apart by it.
const PEER_LOG: &str = "%(peer) %(protocol) %(method) %(uri) => %(status) (%(rsize) bytes)";

fn fcgi_probe(extra: &[&str]) -> Server {
    let mut args = vec!["--fastcgi-socket", "127.0.0.1:0", "--log-format", PEER_LOG];
    args.extend_from_slice(extra);
    Server::probe(&args)
}

/// nginx's params for `method target` plus `extra`.
fn params_with(method: &str, target: &str, extra: &[(&str, &str)]) -> FcgiPairs {
    with_vars(fcgi_nginx_params(method, target), extra)
}

/// nginx's params for a POST with a body of `len` bytes.
fn post_params(target: &str, len: usize) -> FcgiPairs {
    as_post(fcgi_nginx_params("POST", target), len)
}

/// The records of one response are well formed: version 1, all for `id`,
/// STDOUT records non-empty up to one empty STDOUT that ends the stream
/// right before END_REQUEST (the last record), protocol status COMPLETE.
fn assert_well_formed(response: &FcgiResponse, id: u16, what: &str) {
    let records = &response.records;
    let kinds: Vec<(u8, u16, usize)> =
        records.iter().map(|r| (r.kind, r.id, r.content.len())).collect();
    assert!(records.iter().all(|r| r.version == 1), "{what}: version: {kinds:?}");
    assert!(records.iter().all(|r| r.id == id), "{what}: another id: {kinds:?}");
    let n = records.len();
    assert!(n >= 2, "{what}: {kinds:?}");
    assert_eq!(records[n - 1].kind, FCGI_END_REQUEST, "{what}: {kinds:?}");
    assert_eq!(
        (records[n - 2].kind, records[n - 2].content.len()),
        (FCGI_STDOUT, 0),
        "{what}: no empty STDOUT right before END_REQUEST: {kinds:?}"
    );
    for record in &records[..n - 2] {
        assert!(
            record.kind == FCGI_STDOUT && !record.content.is_empty()
                || record.kind == common::FCGI_STDERR,
            "{what}: unexpected record before the end: {kinds:?}"
        );
    }
    assert!(response.stdout_ended, "{what}");
    assert_eq!(response.protocol_status, FCGI_REQUEST_COMPLETE, "{what}: {kinds:?}");
    assert!(response.has_header("status"), "{what}: no Status header: {:?}", response.headers);
}

/// The server closes the connection, sending nothing more.
fn assert_closed(conn: &mut Conn, what: &str) {
    let (records, closed) = conn.read_records_until_close(Duration::from_secs(5));
    assert!(records.is_empty(), "{what}: records after the end: {records:?}");
    assert!(conn.pending().is_empty(), "{what}: bytes after the end: {:?}", conn.pending());
    assert!(closed, "{what}: the server did not close the connection");
}

/// Sends `bytes` on a new connection; request 1's response, checked to be
/// well formed and followed by the close (no KEEP_CONN).
fn exchange(server: &Server, bytes: &[u8], what: &str) -> FcgiResponse {
    let mut conn = server.fastcgi_conn();
    conn.send(bytes);
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, what);
    assert_closed(&mut conn, what);
    response
}

/// `exchange` for a request with `params` and `body`.
fn request(server: &Server, params: &FcgiPairs, body: &[u8], what: &str) -> FcgiResponse {
    exchange(server, &fcgi_request(1, 0, params, body), what)
}

/// The probe's environ for `params` (and `body`).
fn environ_of(server: &Server, params: &FcgiPairs, body: &[u8]) -> Value {
    let response = request(server, params, body, "/environ");
    assert_eq!(response.status, 200, "/environ: {:?}", latin1(&response.stdout));
    response.json()
}

/// The probe's `/read-record` and `/slow-stream` outcomes as `(tag, outcome)`.
fn read_records(server: &Server) -> Vec<(String, String)> {
    let response = server.fastcgi_get("/read-records");
    assert_eq!(response.status, 200, "{:?}", latin1(&response.stdout));
    response
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_str().unwrap().to_string()))
        .collect()
}

/// The outcomes recorded under `tag`.
fn outcomes(server: &Server, tag: &str) -> Vec<String> {
    read_records(server).into_iter().filter(|(t, _)| t == tag).map(|(_, o)| o).collect()
}

/// Waits (10 s at most) until `tag` has an outcome satisfying `pred`.
fn wait_outcome(server: &Server, tag: &str, pred: impl Fn(&str) -> bool) -> Vec<String> {
    let mut seen = Vec::new();
    wait_until(Duration::from_secs(10), || {
        seen = outcomes(server, tag);
        seen.iter().any(|o| pred(o))
    });
    seen
}

/// A valid request sent after every rejected one: it must never run.
fn smuggled() -> Vec<u8> {
    fcgi_request(1, 0, &fcgi_nginx_params("GET", "/read-record?tag=smuggled"), b"")
}

/// Sends `bytes` + [`smuggled`] on a new connection and asserts one
/// response for request 1 with `status`, END_REQUEST, then the close; and
/// one log line about this client naming the status.
fn assert_rejected(server: &Server, bytes: &[u8], status: u16, what: &str) -> FcgiResponse {
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(Duration::from_secs(5));
    let peer = conn.local_addr();
    let mut all = bytes.to_vec();
    all.extend_from_slice(&smuggled());
    // The server may close before reading everything: a failed write is fine.
    let _ = conn.try_send(&all);
    let response = conn.try_read_fcgi_response(1).unwrap_or_else(|(records, e)| {
        panic!("{what}: no END_REQUEST (eof={}): {records:?} {:?}", e.eof, latin1(&e.received))
    });
    assert_well_formed(&response, 1, what);
    assert_eq!(response.status, status, "{what}: {:?}", latin1(&response.stdout));
    assert_closed(&mut conn, what);
    assert_logged_once(server, "fastcgi", &peer, &format!("=> {status}"), what);
    response
}

/// The server still answers over FastCGI, and no smuggled request ran.
fn assert_still_serving(server: &Server) {
    let response = server.fastcgi_get("/closing");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
    let records = read_records(server);
    assert!(
        !records.iter().any(|(tag, _)| tag == "smuggled"),
        "a request after a rejected one reached the app: {records:?}"
    );
}

/// A GET_VALUES record asking for `names`.
fn get_values(names: &[&str]) -> Vec<u8> {
    let pairs: Vec<(&str, &str)> = names.iter().map(|n| (*n, "")).collect();
    fcgi_record(FCGI_GET_VALUES, 0, &fcgi_pairs(&pairs))
}

/// A GET_VALUES_RESULT's pairs as text.
fn values_of(record: &FcgiRecord) -> Vec<(String, String)> {
    assert_eq!((record.kind, record.id), (FCGI_GET_VALUES_RESULT, 0), "{record:?}");
    fcgi_parse_pairs(&record.content).iter().map(|(n, v)| (latin1(n), latin1(v))).collect()
}

fn abort(id: u16) -> Vec<u8> {
    fcgi_record(FCGI_ABORT_REQUEST, id, b"")
}

// ---------------------------------------------------------------------------
// The responder role
// ---------------------------------------------------------------------------

#[test]
fn get_is_a_cgi_response_on_stdout_then_end_request() {
    let server = fcgi_probe(&[]);
    let params = params_with(
        "GET",
        "/environ?a=1&b=%20x",
        &[("HTTP_X_CUSTOM", "custom value"), ("HTTP_USER_AGENT", "agent/1.0")],
    );
    let response = request(&server, &params, b"", "/environ");
    assert_eq!(response.status, 200);
    assert!(response.stdout.starts_with(b"Status: 200 OK\r\n"), "{:?}", latin1(&response.stdout));
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert_eq!(response.app_status, 0, "a complete response");
    // The connection is nginx's business: no hop-by-hop headers.
    assert!(!response.has_header("connection"), "{:?}", response.headers);
    assert!(!response.has_header("transfer-encoding"), "{:?}", response.headers);
    let env = response.json();
    for (key, want) in [
        ("REQUEST_METHOD", "GET"),
        ("REQUEST_URI", "/environ?a=1&b=%20x"),
        ("QUERY_STRING", "a=1&b=%20x"),
        // SCRIPT_NAME sent as the whole path (`include fastcgi_params;`).
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/environ"),
        ("DOCUMENT_URI", "/environ"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", "8080"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_SOFTWARE", "nginx/1.22.1"),
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        // The client nginx saw, not the connection's peer.
        ("REMOTE_ADDR", "192.0.2.7"),
        ("REMOTE_PORT", "40123"),
        ("HTTP_HOST", "localhost"),
        ("HTTP_X_CUSTOM", "custom value"),
        ("HTTP_USER_AGENT", "agent/1.0"),
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
    assert!(
        server.wait_log("fastcgi GET /environ?a=1&b=%20x => 200", LOG_TIMEOUT),
        "{}",
        server.log()
    );
}

#[test]
fn the_request_id_is_echoed() {
    let server = fcgi_probe(&[]);
    for id in [2_u16, 258, 65535] {
        let mut conn = server.fastcgi_conn();
        conn.send(fcgi_request(id, 0, &fcgi_nginx_params("GET", "/closing"), b""));
        let response = conn.read_fcgi_response(id);
        assert_well_formed(&response, id, &format!("id {id}"));
        assert_eq!((response.status, response.text().as_str()), (200, "ab"), "id {id}");
        assert_closed(&mut conn, "id");
    }
}

#[test]
fn script_name_and_path_info_rules() {
    let server = fcgi_probe(&[]);
    // (SCRIPT_NAME, PATH_INFO) for nginx's params for `GET target`, edited;
    // every case routes to the probe's /environ.
    let paths = |target: &str, edit: &dyn Fn(&mut FcgiPairs)| -> (String, String) {
        let mut params = fcgi_nginx_params("GET", target);
        edit(&mut params);
        let env = environ_of(&server, &params, b"");
        (env["SCRIPT_NAME"].as_str().unwrap().into(), env["PATH_INFO"].as_str().unwrap().into())
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    // Plain `include fastcgi_params;`: SCRIPT_NAME is the whole path.
    assert_eq!(paths("/environ?q=1", &|_| {}), s("", "/environ"));
    // A proper prefix at a `/` boundary stays; PATH_INFO is the rest.
    assert_eq!(
        paths("/mount/environ", &|p| set_var(p, "SCRIPT_NAME", "/mount")),
        s("/mount", "/environ")
    );
    assert_eq!(
        paths("/a/b/environ", &|p| set_var(p, "SCRIPT_NAME", "/a/b")),
        s("/a/b", "/environ")
    );
    // Not at a boundary, not a prefix, empty or absent: ''.
    for script in ["/env", "/other", "/environ/", "/environ/x", ""] {
        assert_eq!(
            paths("/environ", &|p| set_var(p, "SCRIPT_NAME", script)),
            s("", "/environ"),
            "{script:?}"
        );
    }
    assert_eq!(paths("/environ", &|p| drop_var(p, "SCRIPT_NAME")), s("", "/environ"));
    // A non-empty PATH_INFO (fastcgi_split_path_info) is taken as sent.
    let split = |p: &mut FcgiPairs| {
        set_var(p, "SCRIPT_NAME", "/app");
        set_var(p, "PATH_INFO", "/environ");
    };
    assert_eq!(paths("/app/environ", &split), s("/app", "/environ"));
    let odd = |p: &mut FcgiPairs| {
        set_var(p, "SCRIPT_NAME", "/not/a/prefix");
        set_var(p, "PATH_INFO", "/environ");
    };
    assert_eq!(paths("/app/environ", &odd), s("/not/a/prefix", "/environ"));
    // An empty PATH_INFO is derived like an absent one.
    assert_eq!(paths("/environ", &|p| set_var(p, "PATH_INFO", "")), s("", "/environ"));
    let empty_split = |p: &mut FcgiPairs| {
        set_var(p, "SCRIPT_NAME", "/app");
        set_var(p, "PATH_INFO", "");
    };
    assert_eq!(paths("/app/environ", &empty_split), s("/app", "/environ"));
    // No DOCUMENT_URI: REQUEST_URI's path, percent-decoded.
    let no_doc = |p: &mut FcgiPairs| {
        drop_var(p, "DOCUMENT_URI");
        drop_var(p, "SCRIPT_NAME");
    };
    assert_eq!(paths("/%65nviron?q=1", &no_doc), s("", "/environ"));
    let no_doc_mounted = |p: &mut FcgiPairs| {
        drop_var(p, "DOCUMENT_URI");
        set_var(p, "SCRIPT_NAME", "/m");
    };
    assert_eq!(paths("/m/%65nviron?q=1", &no_doc_mounted), s("/m", "/environ"));
    // DOCUMENT_URI wins over REQUEST_URI (nginx's internal rewrites).
    assert_eq!(
        paths("/front/page?q=1", &|p| {
            set_var(p, "DOCUMENT_URI", "/environ");
            set_var(p, "SCRIPT_NAME", "/environ");
        }),
        s("", "/environ")
    );
    // A path outside the app's routes: PATH_INFO is what the 404 names.
    let mut params = fcgi_nginx_params("GET", "/mount/x%20y/z");
    set_var(&mut params, "SCRIPT_NAME", "/mount");
    let response = request(&server, &params, b"", "404");
    assert_eq!((response.status, response.text().as_str()), (404, "not found: /x y/z"));

    // UTF-8 bytes in the path come back byte for byte (latin-1 both ways).
    let mut params = fcgi_nginx_params("GET", "/caf%C3%A9");
    assert_eq!(params.iter().find(|(k, _)| k == b"DOCUMENT_URI").unwrap().1, b"/caf\xc3\xa9");
    let response = request(&server, &params, b"", "utf-8 path");
    assert_eq!(response.body, b"not found: /caf\xc3\xa9");
    params = fcgi_nginx_params("GET", "/environ");
    add(&mut params, "HTTP_X_UTF8", b"caf\xc3\xa9 \xff");
    assert_eq!(environ_of(&server, &params, b"")["HTTP_X_UTF8"], "caf\u{c3}\u{a9} \u{ff}");
}

/// nginx sends a param twice when a location adds its own `fastcgi_param`
/// after `include fastcgi_params;` (the usual way to override one, as in the
/// `fastcgi_split_path_info` setup): the last one is meant, as PHP-FPM
/// reads it. Repeated client headers (older nginx) are joined instead.
#[test]
fn repeated_params_override_and_repeated_headers_join() {
    let server = fcgi_probe(&[]);
    // What nginx sends for `/app/environ` through the split location.
    let mut params = fcgi_nginx_params("GET", "/app/environ");
    set_var(&mut params, "SCRIPT_NAME", "/app");
    add(&mut params, "SCRIPT_NAME", "/app");
    add(&mut params, "PATH_INFO", "/environ");
    let env = environ_of(&server, &params, b"");
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        (Some("/app"), Some("/environ"))
    );
    // An override with another value: the last one.
    let mut params = fcgi_nginx_params("GET", "/app/environ");
    add(&mut params, "SCRIPT_NAME", "/app");
    let env = environ_of(&server, &params, b"");
    assert_eq!(
        (env["SCRIPT_NAME"].as_str(), env["PATH_INFO"].as_str()),
        (Some("/app"), Some("/environ"))
    );
    let mut params = fcgi_nginx_params("GET", "/environ");
    add(&mut params, "DOCUMENT_ROOT", "/srv/www");
    assert_eq!(environ_of(&server, &params, b"")["DOCUMENT_ROOT"], "/srv/www");
    // Client headers sent twice are joined.
    let extra =
        [("HTTP_X_A", "1"), ("HTTP_X_A", "2"), ("HTTP_COOKIE", "a=1"), ("HTTP_COOKIE", "b=2")];
    let env = environ_of(&server, &params_with("GET", "/environ", &extra), b"");
    assert_eq!(env["HTTP_X_A"], "1, 2");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
}

#[test]
fn post_bodies_come_from_stdin() {
    let server = fcgi_probe(&[]);
    let mut params = post_params("/echo", 10);
    set_var(&mut params, "CONTENT_TYPE", "text/plain");
    let response = request(&server, &params, b"hello body", "small");
    assert_eq!((response.status, response.text().as_str()), (200, "hello body"));
    assert_eq!(response.header("x-length"), Some("10"));

    let mut params = post_params("/environ?p=1", 5);
    set_var(&mut params, "CONTENT_TYPE", "text/plain; charset=utf-8");
    let env = environ_of(&server, &params, b"12345");
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(env["CONTENT_LENGTH"], "5");
    assert_eq!(env["CONTENT_TYPE"], "text/plain; charset=utf-8");
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none(), "{env}");

    // The body in odd-sized records, each with odd padding.
    let body = pattern(100_003);
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
    bytes.extend(fcgi_params(1, &post_params("/echo?via=chunks", body.len())));
    for (i, piece) in body.chunks(7_777).enumerate() {
        bytes.extend(fcgi_record_with(1, FCGI_STDIN, 1, piece, (i % 256) as u8));
    }
    bytes.extend(fcgi_record(FCGI_STDIN, 1, b""));
    let response = exchange(&server, &bytes, "odd records");
    assert_eq!(response.header("x-length"), Some("100003"));
    assert!(response.body == body, "odd-record body differs");

    // Over post-buffering (1 MiB), in slow pieces: kept in a file, then
    // read by the app.
    let body = pattern(3 * 1024 * 1024 + 7);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_params(1, &post_params("/echo", body.len())));
    let stdin = fcgi_stdin(1, &body);
    for piece in stdin.chunks(1 << 20) {
        conn.send(piece);
        std::thread::sleep(Duration::from_millis(50));
    }
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, "3 MiB");
    assert_eq!(response.header("x-length"), Some("3145735"));
    assert!(response.body == body, "3 MiB echo differs");
    assert_closed(&mut conn, "3 MiB");

    // Zero, empty and absent lengths with no body.
    for cl in [Some("0"), Some(""), None] {
        let mut params = post_params("/echo", 0);
        match cl {
            Some(cl) => set_var(&mut params, "CONTENT_LENGTH", cl),
            None => drop_var(&mut params, "CONTENT_LENGTH"),
        }
        let response = request(&server, &params, b"", "no body");
        assert_eq!((response.status, response.header("x-length")), (200, Some("0")), "{cl:?}");
    }
}

// F22: nginx with `fastcgi_request_buffering off` and a chunked client.
#[test]
fn empty_content_length_streams_until_the_empty_stdin_record() {
    let server = fcgi_probe(&[]);
    for (len, record) in [(100_000, 32 * 1024), (3 * 1024 * 1024, 8 * 1024)] {
        let body = pattern(len);
        let mut params = post_params("/echo", 0);
        set_var(&mut params, "CONTENT_LENGTH", "");
        add(&mut params, "HTTP_TRANSFER_ENCODING", "chunked");
        let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
        bytes.extend(fcgi_params(1, &params));
        bytes.extend(fcgi_stream(FCGI_STDIN, 1, &body, record));
        let response = exchange(&server, &bytes, "empty CONTENT_LENGTH");
        assert_eq!(response.status, 200);
        assert_eq!(response.header("x-length"), Some(len.to_string().as_str()));
        assert!(response.body == body, "{len} bytes until the empty STDIN differ");
    }
    // The app is told the input is terminated, and sees no CONTENT_LENGTH.
    let mut params = post_params("/environ", 0);
    set_var(&mut params, "CONTENT_LENGTH", "");
    let env = environ_of(&server, &params, b"some body");
    assert_eq!(env["wsgi.input_terminated"], true, "{env}");
    assert!(env.get("CONTENT_LENGTH").is_none(), "{env}");
}

// F17, F18
#[test]
fn stdin_beyond_or_short_of_content_length() {
    let server = fcgi_probe(&[]);
    // More STDIN than CONTENT_LENGTH: the app sees CONTENT_LENGTH bytes.
    let response = request(&server, &post_params("/echo", 5), b"12345EXTRA", "longer");
    assert_eq!((response.status, response.text().as_str()), (200, "12345"));
    let body = pattern(2_000_000);
    let response = request(&server, &post_params("/echo", 1_500_000), &body, "longer, streamed");
    assert_eq!(response.header("x-length"), Some("1500000"));
    assert!(response.body[..] == body[..1_500_000]);
    // Less, then the empty STDIN record: the stream's end is the body's end.
    let response = request(&server, &post_params("/echo", 10), b"12345", "shorter");
    assert_eq!((response.status, response.text().as_str()), (200, "12345"));
}

// F20, F21
#[test]
fn responses_are_split_into_records_of_at_most_65535_bytes() {
    let server = fcgi_probe(&[]);
    let response = request(&server, &fcgi_nginx_params("GET", "/file"), b"", "file");
    assert_eq!(response.status, 200);
    assert_eq!(response.body.len(), 1 << 20);
    assert!(response.body.iter().enumerate().all(|(i, &b)| b == (i % 256) as u8));
    let records = response.stdout_records(1);
    assert!(records.len() >= 17, "1 MiB in {} records", records.len());
    assert!(records.iter().all(|r| r.content.len() <= 65535));

    // One 3 MB piece from the app.
    let body = pattern(3_000_000);
    let response = request(&server, &post_params("/echo", body.len()), &body, "3 MB echo");
    assert!(response.body == body);
    assert!(response.stdout_records(1).iter().all(|r| r.content.len() <= 65535));

    // A 32 KiB header, a generator, write(), a status without a body.
    let response = request(&server, &fcgi_nginx_params("GET", "/big-header"), b"", "big header");
    assert_eq!(response.header("x-big").map(str::len), Some(32768));
    assert_eq!(response.text(), "big");
    let response = request(&server, &fcgi_nginx_params("GET", "/stream?n=100"), b"", "stream");
    assert_eq!(response.text(), (0..100).map(|i| format!("chunk {i}\n")).collect::<String>());
    assert!(!response.has_header("transfer-encoding"), "{:?}", response.headers);
    let response = request(&server, &fcgi_nginx_params("GET", "/write"), b"", "write");
    assert_eq!(response.text(), "written;returned");
    for code in ["404", "418", "503"] {
        let target = format!("/status?code={code}");
        let response = request(&server, &fcgi_nginx_params("GET", &target), b"", "status");
        assert_eq!(response.header("status"), Some(format!("{code} Whatever").as_str()));
        assert!(response.stdout.starts_with(b"Status: "), "{:?}", latin1(&response.stdout));
    }
    // HEAD: the app's headers, no body.
    let response = request(&server, &fcgi_nginx_params("HEAD", "/head-aware"), b"", "HEAD");
    assert_eq!((response.status, response.header("content-length")), (200, Some("5")));
    assert!(response.body.is_empty(), "a body for HEAD: {:?}", latin1(&response.body));
    let response = request(&server, &fcgi_nginx_params("GET", "/204-body"), b"", "204");
    assert_eq!(response.status, 204);
    assert!(response.body.is_empty(), "a body for 204: {:?}", latin1(&response.body));
}

#[test]
fn app_errors_are_500_and_the_server_goes_on() {
    let server = fcgi_probe(&[]);
    let response = request(&server, &fcgi_nginx_params("GET", "/error-before"), b"", "error");
    assert_eq!((response.status, response.text().as_str()), (500, "Internal Server Error\n"));
    assert!(server.log_contains("failing before start_response"), "{}", server.log());

    // After the head went out: the response is cut short, and says so.
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/error-after"), b""));
    let response = conn.read_fcgi_response(1);
    assert_eq!((response.status, response.text().as_str()), (200, "first part;"));
    assert_eq!(response.protocol_status, FCGI_REQUEST_COMPLETE);
    assert_ne!(response.app_status, 0, "a response cut short ends with a non-zero appStatus");
    assert_closed(&mut conn, "error-after");
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------
// FCGI_KEEP_CONN (F7)
// ---------------------------------------------------------------------------

#[test]
fn keep_conn_serves_requests_in_turn_on_one_connection() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    let peer = conn.local_addr();
    let body = pattern(200_000);
    let requests: Vec<(u16, Vec<u8>)> = vec![
        (1, fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", "/closing?n=1"), b"")),
        (1, fcgi_request(1, FCGI_KEEP_CONN, &post_params("/echo?n=2", body.len()), &body)),
        (7, fcgi_request(7, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", "/stream?n=3"), b"")),
        (1, fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", "/file?n=4"), b"")),
    ];
    for (n, (id, bytes)) in requests.iter().enumerate() {
        conn.send(bytes);
        let response = conn.read_fcgi_response(*id);
        assert_well_formed(&response, *id, &format!("request {n}"));
        assert_eq!(response.status, 200, "request {n}");
        match n {
            0 => assert_eq!(response.text(), "ab"),
            1 => assert!(response.body == body, "the echo differs"),
            2 => assert_eq!(response.text(), "chunk 0\nchunk 1\nchunk 2\n"),
            _ => assert_eq!(response.body.len(), 1 << 20),
        }
        assert!(conn.pending().is_empty(), "bytes after END_REQUEST: {:?}", conn.pending());
    }
    // Still open, and idle.
    assert!(conn.still_open_after(Duration::from_millis(300)), "closed despite KEEP_CONN");
    assert!(conn.pending().is_empty());
    // The last request without KEEP_CONN: the server closes after it.
    conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing?n=5"), b""));
    assert_eq!(conn.read_fcgi_response(1).text(), "ab");
    assert_closed(&mut conn, "the last request");
    // All five came over the one connection.
    assert!(server.wait_log_count("fastcgi GET /closing?n=5 =>", 1, LOG_TIMEOUT));
    let lines = server.log_lines_with(" fastcgi ");
    assert_eq!(lines.len(), 5, "{lines:#?}");
    assert!(lines.iter().all(|l| mentions(l, &peer)), "another connection: {lines:#?}");
}

#[test]
fn without_keep_conn_the_server_closes_after_end_request() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b""));
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, "first");
    // A second request on it is not answered.
    let _ = conn.try_send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/read-record"), b""));
    assert_closed(&mut conn, "after END_REQUEST");
    assert!(read_records(&server).is_empty(), "a second request ran on a closed connection");
}

#[test]
fn keep_conn_with_keep_alive_disabled_still_closes() {
    let server = fcgi_probe(&["--http-keepalive-timeout", "0"]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", "/closing"), b""));
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, "keep-alive off");
    assert_eq!(response.text(), "ab");
    assert_closed(&mut conn, "keep-alive off");
}

// ---------------------------------------------------------------------------
// Management records (F8, F9)
// ---------------------------------------------------------------------------

#[test]
fn get_values_reports_what_this_server_does() {
    for (extra, conns, reqs) in [(&[][..], "65", "1"), (&["--threads", "4"][..], "260", "4")] {
        let server = fcgi_probe(extra);
        let mut conn = server.fastcgi_conn();
        conn.set_timeout(PROMPT);
        conn.send(get_values(&["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"]));
        let values = values_of(&conn.read_record());
        let want = [("FCGI_MAX_CONNS", conns), ("FCGI_MAX_REQS", reqs), ("FCGI_MPXS_CONNS", "0")];
        let want: Vec<(String, String)> =
            want.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
        assert_eq!(values, want, "{extra:?}");

        // Unknown names are left out; only what is asked is answered.
        conn.send(get_values(&["FCGI_MPXS_CONNS", "NO_SUCH_VALUE", "FCGI_MAX_REQS"]));
        let values = values_of(&conn.read_record());
        assert_eq!(values.len(), 2, "{values:?}");
        assert!(values.contains(&("FCGI_MPXS_CONNS".into(), "0".into())), "{values:?}");
        assert!(values.contains(&("FCGI_MAX_REQS".into(), reqs.into())), "{values:?}");
        conn.send(get_values(&["NO_SUCH_VALUE"]));
        assert_eq!(values_of(&conn.read_record()), vec![]);

        // The connection still serves a request afterwards.
        conn.set_timeout(Duration::from_secs(10));
        conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b""));
        let response = conn.read_fcgi_response(1);
        assert_well_formed(&response, 1, "after GET_VALUES");
        assert_eq!(response.text(), "ab");
        assert_closed(&mut conn, "after GET_VALUES");
    }
}

#[test]
fn get_values_is_answered_while_a_request_runs() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    let target = "/slow-stream?n=6&delay=0.1&tag=gv";
    conn.send(fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", target), b""));
    let first = conn.read_record();
    assert_eq!((first.kind, first.id), (FCGI_STDOUT, 1), "{first:?}");
    conn.send(get_values(&["FCGI_MPXS_CONNS"]));
    let response = conn.read_fcgi_response(1);
    let replies: Vec<&FcgiRecord> = response.records.iter().filter(|r| r.id == 0).collect();
    assert_eq!(replies.len(), 1, "{:?}", response.records);
    assert_eq!(values_of(replies[0]), vec![("FCGI_MPXS_CONNS".to_string(), "0".to_string())]);
    let mut stdout = first.content.clone();
    stdout.extend_from_slice(&response.stdout);
    assert!(latin1(&stdout).ends_with("tick 4\ntick 5\n"), "{:?}", latin1(&stdout));
    assert_eq!((response.app_status, response.protocol_status), (0, FCGI_REQUEST_COMPLETE));
}

#[test]
fn unknown_management_types_get_unknown_type() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(PROMPT);
    for kind in [42_u8, 0, 1, 255] {
        conn.send(fcgi_record(kind, 0, b"ignored content"));
        let reply = conn.read_record();
        assert_eq!(
            (reply.version, reply.kind, reply.id, reply.content.as_slice()),
            (1, FCGI_UNKNOWN_TYPE, 0, &[kind, 0, 0, 0, 0, 0, 0, 0][..]),
            "type {kind}"
        );
    }
    // And the connection goes on.
    conn.set_timeout(Duration::from_secs(10));
    conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b""));
    assert_eq!(conn.read_fcgi_response(1).text(), "ab");
    assert_closed(&mut conn, "after UNKNOWN_TYPE");
}

// ---------------------------------------------------------------------------
// ABORT_REQUEST (F19)
// ---------------------------------------------------------------------------

/// Reads request `id`'s END_REQUEST (within [`PROMPT`]) after an abort.
fn end_after_abort(conn: &mut Conn, id: u16, what: &str) -> FcgiResponse {
    conn.set_timeout(PROMPT);
    let started = Instant::now();
    let response = conn.try_read_fcgi_response(id).unwrap_or_else(|(records, e)| {
        panic!("{what}: no END_REQUEST after ABORT (eof={}): {records:?}", e.eof)
    });
    assert!(started.elapsed() < PROMPT, "{what}: END_REQUEST took {:?}", started.elapsed());
    assert_eq!(response.protocol_status, FCGI_REQUEST_COMPLETE, "{what}");
    conn.set_timeout(Duration::from_secs(10));
    response
}

/// The connection (KEEP_CONN) serves another request after an abort.
fn assert_serves_next(conn: &mut Conn, what: &str) {
    conn.send(fcgi_request(3, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", "/closing"), b""));
    let response = conn.read_fcgi_response(3);
    assert_well_formed(&response, 3, what);
    assert_eq!(response.text(), "ab", "{what}");
}

#[test]
fn abort_before_the_params_end_never_runs_the_app() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    let block = fcgi_pairs(&fcgi_nginx_params("GET", "/read-record?tag=params"));
    conn.send(fcgi_record(FCGI_PARAMS, 1, &block));
    conn.send(abort(1));
    let response = end_after_abort(&mut conn, 1, "abort in PARAMS");
    assert!(response.stdout.is_empty(), "{:?}", latin1(&response.stdout));
    // Its empty PARAMS record, arriving late, starts nothing.
    conn.send(fcgi_record(FCGI_PARAMS, 1, b""));
    conn.send(fcgi_record(FCGI_STDIN, 1, b""));
    assert_serves_next(&mut conn, "after abort in PARAMS");

    // A small body (read before the app runs) aborted half-way.
    conn.send(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    conn.send(fcgi_params(1, &post_params("/read-record?tag=buffered", 1000)));
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(300)));
    conn.send(abort(1));
    let response = end_after_abort(&mut conn, 1, "abort in a small body");
    assert!(response.stdout.is_empty(), "{:?}", latin1(&response.stdout));
    assert_serves_next(&mut conn, "after abort in a small body");
    // A body over post-buffering, aborted while it goes to its file.
    conn.send(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    conn.send(fcgi_params(1, &post_params("/read-record?tag=spooled", 2_000_000)));
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(30_000)));
    conn.send(abort(1));
    let response = end_after_abort(&mut conn, 1, "abort in a spooled body");
    assert!(response.stdout.is_empty(), "{:?}", latin1(&response.stdout));
    assert_serves_next(&mut conn, "after abort in a spooled body");
    let records = read_records(&server);
    assert!(records.is_empty(), "an aborted request reached the app: {records:?}");
}

#[test]
fn abort_mid_body_fails_the_apps_read() {
    // Without post-buffering: the app runs and reads the body itself.
    let server = fcgi_probe(&["--post-buffering", "0"]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    conn.send(fcgi_params(1, &post_params("/read-record?tag=mid", 2_000_000)));
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(30_000)));
    conn.send(abort(1));
    end_after_abort(&mut conn, 1, "abort mid-body");
    let seen = wait_outcome(&server, "mid", |o| o.starts_with("OSError"));
    assert!(seen.iter().any(|o| o.starts_with("OSError")), "the read did not fail: {seen:?}");
    // The rest of its body, arriving late, is ignored; the connection goes on.
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(1000)));
    assert_serves_next(&mut conn, "after abort mid-body");

    // An app that reads after its response started: the read fails and the
    // iterable's close() is called. (The body was left unread when the
    // response started, so the connection may close after END_REQUEST.)
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    conn.send(fcgi_params(1, &post_params("/read-lazy?tag=lazy", 2_000_000)));
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(1000)));
    let first = conn.read_record();
    assert_eq!((first.kind, first.id), (FCGI_STDOUT, 1), "{first:?}");
    assert!(latin1(&first.content).ends_with("\r\n\r\nreading\n"), "{first:?}");
    conn.send(abort(1));
    // END_REQUEST itself is checked by
    // abort_while_the_app_runs_always_sends_end_request; here, what the app saw.
    conn.set_timeout(PROMPT);
    let _ = conn.try_read_fcgi_response(1);
    let seen = wait_outcome(&server, "lazy", |o| o == "closed");
    assert!(seen.iter().any(|o| o.starts_with("OSError")), "the read did not fail: {seen:?}");
    assert_eq!(seen.last().map(String::as_str), Some("closed"), "close() not called: {seen:?}");
    assert!(server.log_contains("aborted by the peer"), "{}", server.log());
}

/// Sends `bytes`, waits for the first STDOUT record of request 1 if
/// `started`, aborts request 1 and expects END_REQUEST; then, if
/// `must_close`, the close.
fn abort_and_expect_end(
    server: &Server,
    bytes: &[u8],
    started: bool,
    must_close: bool,
    what: &str,
) {
    let mut conn = server.fastcgi_conn();
    conn.send(bytes);
    if started {
        let first = conn.read_record();
        assert_eq!((first.kind, first.id), (FCGI_STDOUT, 1), "{what}: {first:?}");
    }
    conn.send(abort(1));
    end_after_abort(&mut conn, 1, what);
    if must_close {
        // FastCGI 1.0 §5.1: without FCGI_KEEP_CONN the application closes
        // the connection after responding to the request.
        assert_closed(&mut conn, what);
    }
}

#[test]
fn abort_without_keep_conn_before_the_app_runs_ends_the_request_then_closes() {
    let server = fcgi_probe(&[]);
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
    bytes.extend(fcgi_params(1, &post_params("/read-record?tag=small", 1000)));
    bytes.extend(fcgi_record(FCGI_STDIN, 1, &pattern(300)));
    abort_and_expect_end(&server, &bytes, false, true, "abort in a small body");
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
    let block = fcgi_pairs(&fcgi_nginx_params("GET", "/read-record?tag=params"));
    bytes.extend(fcgi_record(FCGI_PARAMS, 1, &block));
    abort_and_expect_end(&server, &bytes, false, true, "abort in PARAMS");
    // No body (CONTENT_LENGTH 0), aborted before the empty STDIN record,
    // all in one write: the abort is found with the head.
    let mut conn = server.fastcgi_conn();
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
    bytes.extend(fcgi_params(1, &post_params("/read-record?tag=empty", 0)));
    bytes.extend(abort(1));
    conn.send(bytes);
    end_after_abort(&mut conn, 1, "abort with the head");
    assert_closed(&mut conn, "abort with the head");
    assert!(read_records(&server).is_empty());
}

#[test]
fn abort_while_the_app_runs_always_sends_end_request() {
    let server = fcgi_probe(&[]);
    // A streaming app, without KEEP_CONN: END_REQUEST, then the close.
    let target = "/slow-stream?n=200&delay=0.05&tag=slow";
    let bytes = fcgi_request(1, 0, &fcgi_nginx_params("GET", target), b"");
    abort_and_expect_end(&server, &bytes, true, true, "abort while streaming");
    let seen = wait_outcome(&server, "slow", |o| o.starts_with("closed after"));
    assert!(seen.iter().any(|o| o.starts_with("closed after")), "close() not called: {seen:?}");
    // An app reading a body that was not all read when its response started
    // (the connection may then close even with KEEP_CONN): END_REQUEST first.
    // Without post-buffering, so the app runs before its body is in.
    let server = fcgi_probe(&["--post-buffering", "0"]);
    for (flags, must_close) in [(FCGI_KEEP_CONN, false), (0, true)] {
        let mut bytes = fcgi_begin(1, FCGI_RESPONDER, flags);
        bytes.extend(fcgi_params(1, &post_params("/read-lazy?tag=lazy", 2_000_000)));
        bytes.extend(fcgi_record(FCGI_STDIN, 1, &pattern(1000)));
        let what = format!("abort while the app reads (flags {flags})");
        abort_and_expect_end(&server, &bytes, true, must_close, &what);
    }
}

#[test]
fn abort_while_the_app_streams_ends_the_request_and_closes_the_iterable() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    let target = "/slow-stream?n=200&delay=0.05&tag=slow";
    conn.send(fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", target), b""));
    let first = conn.read_record();
    assert_eq!((first.kind, first.id), (FCGI_STDOUT, 1), "{first:?}");
    assert!(latin1(&first.content).contains("tick 0\n"), "{first:?}");
    conn.send(abort(1));
    let response = end_after_abort(&mut conn, 1, "abort while streaming");
    assert!(
        !latin1(&response.stdout).contains("tick 199"),
        "the whole stream went out despite the abort"
    );
    let seen = wait_outcome(&server, "slow", |o| o.starts_with("closed after"));
    let closed = seen.iter().find(|o| o.starts_with("closed after")).unwrap_or_else(|| {
        panic!("close() was not called: {seen:?}");
    });
    assert_ne!(closed, "closed after 200 of 200", "the app ran to the end");
    assert_serves_next(&mut conn, "after abort while streaming");
}

#[test]
fn abort_for_another_id_is_ignored() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(abort(9));
    conn.send(fcgi_params(1, &fcgi_nginx_params("GET", "/closing")));
    conn.send(abort(0x0100));
    conn.send(fcgi_stdin(1, b""));
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, "ignored aborts");
    assert_eq!(response.text(), "ab");
    assert_closed(&mut conn, "ignored aborts");
}

// ---------------------------------------------------------------------------
// One request at a time, the responder role only (F3, F4, F5, F6, F10)
// ---------------------------------------------------------------------------

#[test]
fn a_second_request_id_gets_cant_mpx_conn() {
    let server = fcgi_probe(&["--threads", "2"]);
    // Interleaved with the first request's records.
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_begin(2, FCGI_RESPONDER, 0));
    conn.send(fcgi_params(2, &fcgi_nginx_params("GET", "/read-record?tag=second")));
    conn.send(fcgi_params(1, &post_params("/echo", 5)));
    conn.send(fcgi_stdin(2, b""));
    conn.send(fcgi_stdin(1, b"hello"));
    let response = conn.read_fcgi_response(1);
    let refusals: Vec<&FcgiRecord> = response.records.iter().filter(|r| r.id == 2).collect();
    assert_eq!(refusals.len(), 1, "{:?}", response.records);
    assert_eq!(refusals[0].end_request(), (0, FCGI_CANT_MPX_CONN));
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    assert_eq!((response.app_status, response.protocol_status), (0, FCGI_REQUEST_COMPLETE));
    assert_closed(&mut conn, "multiplexed");

    // While the first one's app runs.
    let mut conn = server.fastcgi_conn();
    let target = "/slow-stream?n=5&delay=0.1&tag=first";
    conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", target), b""));
    let first = conn.read_record();
    assert_eq!((first.kind, first.id), (FCGI_STDOUT, 1), "{first:?}");
    conn.send(fcgi_request(3, 0, &fcgi_nginx_params("GET", "/read-record?tag=third"), b""));
    conn.set_timeout(PROMPT);
    let refusal = conn.read_record();
    assert_eq!((refusal.kind, refusal.id), (FCGI_END_REQUEST, 3), "{refusal:?}");
    assert_eq!(refusal.end_request(), (0, FCGI_CANT_MPX_CONN));
    conn.set_timeout(Duration::from_secs(10));
    let response = conn.read_fcgi_response(1);
    let mut stdout = first.content.clone();
    stdout.extend_from_slice(&response.stdout);
    assert!(latin1(&stdout).ends_with("tick 3\ntick 4\n"), "{:?}", latin1(&stdout));
    assert!(response.records.iter().all(|r| r.id == 1), "{:?}", response.records);
    assert_eq!((response.app_status, response.protocol_status), (0, FCGI_REQUEST_COMPLETE));
    assert_closed(&mut conn, "multiplexed while running");
    let records = read_records(&server);
    assert_eq!(
        records,
        [("first".to_string(), "closed after 5 of 5".to_string())],
        "a refused request ran"
    );
}

#[test]
fn roles_other_than_responder_get_unknown_role() {
    let server = fcgi_probe(&[]);
    for role in [FCGI_AUTHORIZER, FCGI_FILTER, 0, 99, 0xffff] {
        // With KEEP_CONN the connection serves a responder request next.
        let mut conn = server.fastcgi_conn();
        conn.set_timeout(PROMPT);
        conn.send(fcgi_begin(5, role, FCGI_KEEP_CONN));
        conn.send(fcgi_params(5, &fcgi_nginx_params("GET", "/read-record?tag=role")));
        conn.send(fcgi_stdin(5, b""));
        let reply = conn.read_record();
        assert_eq!((reply.kind, reply.id), (FCGI_END_REQUEST, 5), "role {role}: {reply:?}");
        assert_eq!(reply.end_request().1, FCGI_UNKNOWN_ROLE, "role {role}");
        conn.set_timeout(Duration::from_secs(10));
        conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b""));
        let response = conn.read_fcgi_response(1);
        assert_well_formed(&response, 1, "after a refused role");
        assert_eq!(response.text(), "ab");
        assert_closed(&mut conn, "after a refused role");
    }
    assert!(read_records(&server).is_empty(), "a refused role reached the app");
}

#[test]
fn unknown_role_without_keep_conn_closes_after_end_request() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(PROMPT);
    conn.send(fcgi_begin(1, FCGI_AUTHORIZER, 0));
    conn.send(fcgi_params(1, &fcgi_nginx_params("GET", "/read-record?tag=role")));
    conn.send(fcgi_stdin(1, b""));
    let reply = conn.read_record();
    assert_eq!((reply.kind, reply.id), (FCGI_END_REQUEST, 1), "{reply:?}");
    assert_eq!(reply.end_request().1, FCGI_UNKNOWN_ROLE);
    // FastCGI 1.0 §5.1: without FCGI_KEEP_CONN the application closes the
    // connection after responding to the request.
    assert_closed(&mut conn, "UNKNOWN_ROLE without KEEP_CONN");
}

// F3
#[test]
fn records_for_inactive_ids_are_ignored() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    // PARAMS and STDIN with no BEGIN_REQUEST: nothing runs.
    conn.send(fcgi_params(4, &fcgi_nginx_params("GET", "/read-record?tag=nobegin")));
    conn.send(fcgi_stdin(4, b"body"));
    conn.send(fcgi_record(FCGI_END_REQUEST, 4, &[0; 8]));
    conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b""));
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, "after stray records");
    assert_eq!(response.text(), "ab");
    assert_closed(&mut conn, "stray records");
    assert!(read_records(&server).is_empty(), "a request without BEGIN_REQUEST ran");
}

// F4
#[test]
fn begin_request_for_the_active_id_is_a_protocol_error() {
    let server = fcgi_probe(&[]);
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    bytes.extend(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    bytes.extend(fcgi_params(1, &fcgi_nginx_params("GET", "/read-record?tag=twice")));
    bytes.extend(fcgi_stdin(1, b""));
    assert_rejected(&server, &bytes, 400, "BEGIN_REQUEST twice");
    // A BEGIN_REQUEST body that is not 8 bytes.
    let mut bytes = fcgi_record(FCGI_BEGIN_REQUEST, 1, &[0, 1, 0]);
    bytes.extend(fcgi_params(1, &fcgi_nginx_params("GET", "/read-record?tag=short")));
    bytes.extend(fcgi_stdin(1, b""));
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(Duration::from_secs(5));
    let _ = conn.try_send(&bytes);
    let (records, closed) = conn.read_records_until_close(Duration::from_secs(5));
    assert!(closed, "a short BEGIN_REQUEST body left the connection open: {records:?}");
    assert!(
        !records
            .iter()
            .any(|r| r.kind == FCGI_STDOUT && latin1(&r.content).contains("Status: 200")),
        "{records:?}"
    );
    assert!(read_records(&server).is_empty(), "a malformed BEGIN_REQUEST ran the app");
    assert_still_serving(&server);
}

// F10
#[test]
fn unknown_record_types_for_the_active_id_are_ignored() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_record(77, 1, b"what is this"));
    conn.send(fcgi_params(1, &post_params("/echo", 5)));
    conn.send(fcgi_record(FCGI_DATA, 1, b"filter data"));
    conn.send(fcgi_record(FCGI_DATA, 1, b""));
    conn.send(fcgi_record(200, 1, b""));
    conn.send(fcgi_stdin(1, b"hello"));
    let response = conn.read_fcgi_response(1);
    assert_well_formed(&response, 1, "unknown types");
    assert_eq!((response.status, response.text().as_str()), (200, "hello"));
    assert_closed(&mut conn, "unknown types");
}

// ---------------------------------------------------------------------------
// Hostile and malformed records (hostile-inputs.md §3)
// ---------------------------------------------------------------------------

// F1
#[test]
fn a_version_other_than_1_closes_the_connection() {
    let server = fcgi_probe(&[]);
    for version in [0_u8, 2, 255] {
        let mut conn = server.fastcgi_conn();
        let peer = conn.local_addr();
        let mut bytes =
            fcgi_record_with(version, FCGI_BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0], 0);
        bytes.extend(fcgi_params(1, &fcgi_nginx_params("GET", "/read-record?tag=version")));
        bytes.extend(fcgi_stdin(1, b""));
        let _ = conn.try_send(&bytes);
        let (data, closed) = conn.read_until_close(Duration::from_secs(5));
        assert!(data.is_empty(), "version {version}: answered {:?}", latin1(&data));
        assert!(closed, "version {version}: the connection stayed open");
        assert_logged_once(&server, "fastcgi", &peer, "version", &format!("version {version}"));
    }
    // In the middle of a request: nothing more is trusted, the connection closes.
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, FCGI_KEEP_CONN));
    let block = fcgi_pairs(&fcgi_nginx_params("GET", "/read-record?tag=version"));
    let _ = conn.try_send(fcgi_record_with(2, FCGI_PARAMS, 1, &block, 0));
    let _ = conn.try_send(fcgi_record(FCGI_PARAMS, 1, b""));
    let _ = conn.try_send(fcgi_stdin(1, b""));
    let (records, closed) = conn.read_records_until_close(Duration::from_secs(5));
    assert!(closed, "a version-2 record mid-request left the connection open: {records:?}");
    assert!(!records.iter().any(|r| latin1(&r.content).contains("Status: 200")), "{records:?}");
    assert_still_serving(&server);
    assert!(read_records(&server).is_empty());
}

#[test]
fn http_on_a_fastcgi_socket_is_closed() {
    let server = fcgi_probe(&[]);
    let mut conn = server.fastcgi_conn();
    let peer = conn.local_addr();
    let _ = conn.try_send(b"GET /read-record?tag=http HTTP/1.1\r\nHost: a\r\n\r\n");
    let (data, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(data.is_empty(), "HTTP got an answer: {:?}", latin1(&data));
    assert!(closed);
    assert_logged_once(&server, "fastcgi", &peer, "fastcgi", "HTTP on a FastCGI socket");
    assert_still_serving(&server);
}

/// nginx's params for `GET /closing`, padded with `HTTP_X_PAD` so the
/// params block is exactly `size` bytes.
fn params_of_size(size: usize) -> FcgiPairs {
    let mut params = fcgi_nginx_params("GET", "/closing");
    let base = fcgi_pairs(&params).len() + 1 + 4 + "HTTP_X_PAD".len();
    add(&mut params, "HTTP_X_PAD", "p".repeat(size - base));
    assert_eq!(fcgi_pairs(&params).len(), size);
    params
}

/// BEGIN_REQUEST, `block` as one PARAMS record (or several of `record`
/// bytes), the end of PARAMS, an empty STDIN.
fn with_block(block: &[u8], record: usize) -> Vec<u8> {
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
    bytes.extend(fcgi_stream(FCGI_PARAMS, 1, block, record));
    bytes.extend(fcgi_stdin(1, b""));
    bytes
}

// F11, F12
#[test]
fn malformed_params_are_400() {
    let server = fcgi_probe(&[]);
    let valid = fcgi_pairs(&fcgi_nginx_params("GET", "/read-record?tag=malformed"));
    let with_tail = |tail: &[u8]| {
        let mut block = valid.clone();
        block.extend_from_slice(tail);
        block
    };
    let mut long_name = fcgi_length(6, true);
    long_name.extend(fcgi_length(0x7fff_ffff, true));
    long_name.extend_from_slice(b"HTTP_X");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("1-byte name length past the end", with_tail(b"\x14\x00ABC")),
        ("1-byte value length past the end", with_tail(b"\x06\x32HTTP_Xshort")),
        ("4-byte name length past the end", with_tail(&[0x80, 0, 1, 0, 1, b'A'])),
        ("4-byte value length past the end", with_tail(&[6, 0x80, 0, 0, 200, b'H', b'T'])),
        ("0x7fffffff value length", with_tail(&long_name)),
        ("0x7fffffff name length", with_tail(&[0xff, 0xff, 0xff, 0xff, 0])),
        ("half a 4-byte length", with_tail(&[0x80, 0])),
        ("a name length and nothing more", with_tail(&[5])),
        ("zero-length name", with_tail(&[0, 1, b'x'])),
        (
            "no REQUEST_METHOD",
            fcgi_pairs(&[("SCRIPT_NAME", "/x"), ("REQUEST_URI", "/read-record?tag=malformed")]),
        ),
        ("empty PARAMS", Vec::new()),
        ("REQUEST_METHOD twice", with_tail(&fcgi_pairs(&[("REQUEST_METHOD", "POST")]))),
    ];
    for (what, block) in cases {
        assert_rejected(&server, &with_block(&block, 65535), 400, what);
    }
    // The same, split over small records: still one stream, still a 400.
    assert_rejected(&server, &with_block(&with_tail(b"\x14\x00ABC"), 3), 400, "split");
    assert_still_serving(&server);
    assert!(read_records(&server).is_empty());
}

// F13: a pair may straddle records.
#[test]
fn params_split_anywhere_across_records() {
    let server = fcgi_probe(&[]);
    let mut params = fcgi_nginx_params("GET", "/environ?split=1");
    add(&mut params, "HTTP_X_LONG", "L".repeat(300));
    add(&mut params, "HTTP_X_SHORT", "s");
    for long in [false, true] {
        let block = fcgi_pairs_with(&params, long);
        for record in [1, 2, 3, 5, 7, 64, 1000] {
            let response = exchange(&server, &with_block(&block, record), "split");
            assert_eq!(response.status, 200, "records of {record}, long {long}");
            let env = response.json();
            assert_eq!(env["QUERY_STRING"], "split=1");
            assert_eq!(env["HTTP_X_LONG"].as_str().map(str::len), Some(300));
            assert_eq!(env["HTTP_X_SHORT"], "s");
            assert_eq!(env["PATH_INFO"], "/environ");
        }
    }
    // A 4-byte length for a short value and a 1-byte one for a long name.
    let mut block = fcgi_pairs(&fcgi_nginx_params("GET", "/environ"));
    block.extend(fcgi_length(11, true));
    block.extend(fcgi_length(3, true));
    block.extend_from_slice(b"HTTP_X_FOURabc");
    let env = exchange(&server, &with_block(&block, 65535), "4-byte lengths").json();
    assert_eq!(env["HTTP_X_FOUR"], "abc");
}

// F16
#[test]
fn padding_is_skipped_whatever_it_is() {
    let server = fcgi_probe(&[]);
    let mut bytes = fcgi_record_with(1, FCGI_BEGIN_REQUEST, 1, &[0, 1, 0, 0, 0, 0, 0, 0], 255);
    // Empty records of unknown types with the most padding, before and after.
    for _ in 0..50 {
        bytes.extend(fcgi_record_with(1, 77, 1, b"", 255));
    }
    let block = fcgi_pairs(&post_params("/echo", 11));
    bytes.extend(fcgi_record_with(1, FCGI_PARAMS, 1, &block, 255));
    bytes.extend(fcgi_record_with(1, FCGI_PARAMS, 1, b"", 255));
    bytes.extend(fcgi_record_with(1, FCGI_STDIN, 1, b"hello", 255));
    bytes.extend(fcgi_record_with(1, FCGI_STDIN, 1, b" world", 3));
    bytes.extend(fcgi_record_with(1, FCGI_STDIN, 1, b"", 255));
    let response = exchange(&server, &bytes, "padding");
    assert_eq!((response.status, response.text().as_str()), (200, "hello world"));
}

// F15
#[test]
fn params_over_buffer_size_are_431() {
    let server = fcgi_probe(&["--buffer-size", "4096"]);
    let response =
        exchange(&server, &with_block(&fcgi_pairs(&params_of_size(4096)), 65535), "4096");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"), "exactly buffer-size");
    for size in [4097, 5000, 65535] {
        let block = fcgi_pairs(&params_of_size(size));
        assert_rejected(&server, &with_block(&block, 65535), 431, &format!("{size}"));
    }
    // Split over many small records: the total counts.
    let block = fcgi_pairs(&params_of_size(6000));
    assert_rejected(&server, &with_block(&block, 500), 431, "6000 in records of 500");
    // Far more PARAMS than fit: answered without waiting for the end.
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(Duration::from_secs(5));
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    let _ = conn.try_send(fcgi_record(FCGI_PARAMS, 1, &vec![b'x'; 5000]));
    let response = conn.read_fcgi_response(1);
    assert_eq!(response.status, 431, "{:?}", latin1(&response.stdout));
    assert_closed(&mut conn, "431 before the end of PARAMS");
    assert_still_serving(&server);
}

#[test]
fn default_buffer_size_takes_big_params() {
    let server = fcgi_probe(&[]);
    // 6 KiB of cookies, as in the uwsgi tests (uWSGI's 4096 fails them).
    let cookies: String = (0..100).map(|i| format!("c{i:02}={}; ", "v".repeat(58))).collect();
    let cookies = cookies.trim_end_matches("; ");
    let env =
        environ_of(&server, &params_with("GET", "/environ", &[("HTTP_COOKIE", cookies)]), b"");
    assert_eq!(env["HTTP_COOKIE"], cookies);
    // The most one PARAMS record holds, nginx's limit.
    let response =
        exchange(&server, &with_block(&fcgi_pairs(&params_of_size(65535)), 65535), "64K");
    assert_eq!((response.status, response.text().as_str()), (200, "ab"));
}

// F23
#[test]
fn bad_content_length_is_400() {
    let server = fcgi_probe(&[]);
    for cl in ["abc", "+5", "-1", "5xyz", " 5", "5 ", "0x5", "5,5", "99999999999999999999999"] {
        let mut params = post_params("/read-record?tag=badcl", 0);
        set_var(&mut params, "CONTENT_LENGTH", cl);
        let bytes = fcgi_request(1, 0, &params, b"hello");
        assert_rejected(&server, &bytes, 400, &format!("CONTENT_LENGTH {cl:?}"));
    }
    let mut params = post_params("/read-record?tag=badcl", 5);
    add(&mut params, "CONTENT_LENGTH", "10");
    assert_rejected(&server, &fcgi_request(1, 0, &params, b"hello"), 400, "CONTENT_LENGTH twice");
    assert_still_serving(&server);
    assert!(read_records(&server).is_empty());
}

// F23, F24
#[test]
fn content_length_over_limit_post_is_413_before_the_body() {
    let server = fcgi_probe(&["--limit-post", "1000"]);
    for cl in [1001_u64, 1_000_000_000_000_000] {
        let mut conn = server.fastcgi_conn();
        conn.set_timeout(Duration::from_secs(5));
        let peer = conn.local_addr();
        // No STDIN is sent: the answer must not wait for it.
        conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
        conn.send(fcgi_params(
            1,
            &post_params("/read-record?tag=over", usize::try_from(cl).unwrap()),
        ));
        let response = conn.read_fcgi_response(1);
        assert_well_formed(&response, 1, "413");
        assert_eq!(response.status, 413, "CONTENT_LENGTH {cl}: {:?}", latin1(&response.stdout));
        assert_closed(&mut conn, "413");
        assert_logged_once(&server, "fastcgi", &peer, "=> 413", "413");
    }
    let body = pattern(1000);
    let response = request(&server, &post_params("/echo", 1000), &body, "1000 bytes");
    assert_eq!(response.status, 200);
    assert!(response.body == body);
    assert!(read_records(&server).is_empty(), "the app ran for a body over limit-post");
}

// F24
#[test]
fn a_streamed_body_over_limit_post_is_413() {
    let server = fcgi_probe(&["--limit-post", "100000"]);
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(Duration::from_secs(5));
    let peer = conn.local_addr();
    let mut params = post_params("/echo", 0);
    set_var(&mut params, "CONTENT_LENGTH", "");
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_params(1, &params));
    // 65535-byte STDIN records, past the limit, and no end (no more than
    // the server drains after its answer, so the answer is not lost to a
    // reset).
    let record = fcgi_record(FCGI_STDIN, 1, &pattern(65535));
    for _ in 0..3 {
        if conn.try_send(&record).is_err() {
            break;
        }
    }
    let response = conn.read_fcgi_response(1);
    conn.shutdown_write();
    assert_eq!(response.status, 413, "{:?}", latin1(&response.stdout));
    assert_eq!(response.protocol_status, FCGI_REQUEST_COMPLETE);
    let (_, closed) = conn.read_records_until_close(Duration::from_secs(5));
    assert!(closed, "the connection stayed open after the 413");
    assert!(
        server.wait_log_line(LOG_TIMEOUT, |l| mentions(l, &peer) && l.contains("413")),
        "no log line about {peer} and its 413:\n{}",
        server.log()
    );
    // The same with a known length under the limit but more STDIN than it.
    let body = pattern(100_000);
    let response = request(&server, &post_params("/echo", body.len()), &body, "at the limit");
    assert!(response.body == body);
    assert_still_serving(&server);
}

// F14
#[test]
fn params_never_ended_time_out() {
    let server = fcgi_probe(&["--socket-timeout", "1"]);
    let mut conn = server.fastcgi_conn();
    conn.set_timeout(Duration::from_secs(8));
    let peer = conn.local_addr();
    let started = Instant::now();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_record(FCGI_PARAMS, 1, &fcgi_pairs(&fcgi_nginx_params("GET", "/closing"))));
    let (records, closed) = conn.read_records_until_close(Duration::from_secs(8));
    let elapsed = started.elapsed();
    assert!(closed, "never closed: {records:?}");
    assert!(
        elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(4),
        "{elapsed:?}"
    );
    // Whatever it says, it ends request 1 and says no more.
    if let Some(end) = records.iter().position(|r| r.kind == FCGI_END_REQUEST) {
        assert_eq!(end, records.len() - 1, "{records:?}");
    }
    assert!(
        server.wait_log_line(LOG_TIMEOUT, |l| mentions(l, &peer) && l.contains("timed out")),
        "no log line about {peer} timing out:\n{}",
        server.log()
    );
    assert_still_serving(&server);
}

// F14: the head's deadline counts from its first byte, so params dripped
// a byte at a time (each byte well within socket-timeout) still end there.
#[test]
fn a_slow_drip_of_params_times_out_as_a_whole() {
    let server = fcgi_probe(&["--socket-timeout", "1"]);
    let conn = server.fastcgi_conn();
    let peer = conn.local_addr();
    let mut writer = conn.try_clone_tcp();
    let mut bytes = fcgi_begin(1, FCGI_RESPONDER, 0);
    bytes.extend(fcgi_params(1, &fcgi_nginx_params("GET", "/closing")));
    let started = Instant::now();
    let dripper = std::thread::spawn(move || {
        for byte in bytes {
            if writer.write_all(&[byte]).is_err() || started.elapsed() > Duration::from_secs(6) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let mut conn = conn;
    let (records, closed) = conn.read_records_until_close(Duration::from_secs(8));
    let elapsed = started.elapsed();
    assert!(closed, "never closed: {records:?}");
    assert!(elapsed < Duration::from_millis(2500), "the deadline is per head: {elapsed:?}");
    assert!(records.iter().all(|r| r.kind != FCGI_STDOUT), "it was served: {records:?}");
    dripper.join().unwrap();
    assert!(
        server.wait_log_line(LOG_TIMEOUT, |l| mentions(l, &peer) && l.contains("timed out")),
        "no log line about {peer} timing out:\n{}",
        server.log()
    );
    assert_still_serving(&server);
}

// F14, F18
#[test]
fn stdin_never_ended_times_out_and_the_app_does_not_see_it_complete() {
    let server = fcgi_probe(&["--socket-timeout", "1"]);
    let mut conn = server.fastcgi_conn();
    let peer = conn.local_addr();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_params(1, &post_params("/read-record?tag=stall", 100)));
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(50)));
    let (_, closed) = conn.read_records_until_close(Duration::from_secs(8));
    assert!(closed, "a stalled body kept the connection open");
    assert!(
        server.wait_log_line(LOG_TIMEOUT, |l| mentions(l, &peer) && l.contains("fastcgi")),
        "no log line about {peer}:\n{}",
        server.log()
    );
    assert_still_serving(&server);
    let records = read_records(&server);
    assert!(
        !records.iter().any(|(tag, outcome)| tag == "stall" && outcome.starts_with("read")),
        "a stalled body reached the app as complete: {records:?}"
    );
}

#[test]
fn client_closing_mid_body_fails_the_apps_read() {
    let server = fcgi_probe(&["--post-buffering", "0"]);
    let mut conn = server.fastcgi_conn();
    conn.send(fcgi_begin(1, FCGI_RESPONDER, 0));
    conn.send(fcgi_params(1, &post_params("/read-record?tag=gone", 2_000_000)));
    conn.send(fcgi_record(FCGI_STDIN, 1, &pattern(1000)));
    drop(conn);
    let seen = wait_outcome(&server, "gone", |o| o.starts_with("OSError"));
    assert!(seen.iter().any(|o| o.starts_with("OSError")), "{seen:?}");
    assert_still_serving(&server);
}

// ---------------------------------------------------------------------------
// Listener options
// ---------------------------------------------------------------------------

#[test]
fn fastcgi_socket_spellings_and_several_sockets() {
    for args in [&["--fastcgi-socket", "127.0.0.1:0"][..], &["--fastcgi-socket=127.0.0.1:0"]] {
        let server = Server::probe(args);
        let listeners = server.listeners();
        assert_eq!(listeners.len(), 1, "{args:?}: {listeners:?}");
        assert_eq!(listeners[0].0, "fastcgi-socket", "{args:?}: {listeners:?}");
        assert!(listeners[0].1.starts_with("127.0.0.1:"), "{args:?}: {listeners:?}");
        assert_eq!(server.fastcgi_get("/closing").text(), "ab", "{args:?}");
    }
    let server =
        Server::probe(&["--fastcgi-socket", "127.0.0.1:0", "--fastcgi-socket", "127.0.0.1:0"]);
    assert_eq!(server.listeners().len(), 2, "{:?}", server.listeners());
    assert_ne!(server.fastcgi_addr(0), server.fastcgi_addr(1));
    for n in 0..2 {
        let mut conn = Conn::open(server.fastcgi_addr(n));
        conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b""));
        assert_eq!(conn.read_fcgi_response(1).text(), "ab", "socket {n}");
        assert_closed(&mut conn, "socket");
    }
}

#[test]
fn fastcgi_unix_socket_chmod_and_vacuum() {
    let dir = TempDir::new("fsock");
    let path = dir.join("fcgi.sock");
    let mut server = Server::probe(&["--fastcgi-socket", &path, "--chmod-socket=660", "--vacuum"]);
    assert_eq!(server.listeners(), &[("fastcgi-socket".to_string(), format!("unix:{path}"))]);
    assert_eq!(mode_of(&path), 0o660, "socket mode");
    let env = environ_of(&server, &fcgi_nginx_params("GET", "/environ?u=1"), b"");
    assert_eq!(env["QUERY_STRING"], "u=1");
    assert_eq!(env["REMOTE_ADDR"], "192.0.2.7", "REMOTE_ADDR comes from the params");
    let body = pattern(200_000);
    let response = request(&server, &post_params("/echo", body.len()), &body, "unix echo");
    assert!(response.body == body);
    // KEEP_CONN over a unix socket too.
    let mut conn = server.fastcgi_conn();
    for _ in 0..2 {
        conn.send(fcgi_request(1, FCGI_KEEP_CONN, &fcgi_nginx_params("GET", "/closing"), b""));
        assert_eq!(conn.read_fcgi_response(1).text(), "ab");
    }
    assert!(conn.still_open_after(Duration::from_millis(200)));
    drop(conn);
    let status = server.stop(Signal::SIGTERM);
    assert!(status.success(), "{status}");
    assert!(!std::path::Path::new(&path).exists(), "--vacuum left {path}");
}

#[test]
fn fastcgi_http_and_uwsgi_listeners_serve_one_app() {
    let dir = TempDir::new("fmix");
    let path = dir.join("mixed.sock");
    let server = Server::probe(&[
        "--http-socket",
        "127.0.0.1:0",
        "--fastcgi-socket",
        "127.0.0.1:0",
        "--socket",
        "127.0.0.1:0",
        "--fastcgi-socket",
        &path,
        "--threads",
        "2",
    ]);
    assert_eq!(server.listeners().len(), 4, "{:?}", server.listeners());
    assert_eq!(server.fastcgi_addr(1), format!("unix:{path}"));
    let pid = serde_json::json!(server.pid());

    let response = server.post("/read-record?tag=via-http", b"abc");
    assert_eq!((response.status, response.text().as_str()), (200, "read 3 bytes"));
    assert_eq!(server.get("/process").json()["pid"], pid);
    let response = server
        .uwsgi(common::uwsgi_packet(&common::nginx_vars("GET", "/read-record?tag=via-uwsgi"), b""));
    assert_eq!((response.status, response.text().as_str()), (200, "read 0 bytes"));
    for n in 0..2 {
        let mut conn = Conn::open(server.fastcgi_addr(n));
        let target = format!("/read-record?tag=via-fastcgi-{n}");
        conn.send(fcgi_request(1, 0, &post_params(&target, 4), b"abcd"));
        let response = conn.read_fcgi_response(1);
        assert_eq!((response.status, response.text().as_str()), (200, "read 4 bytes"));
        assert_closed(&mut conn, "fastcgi");
        let mut conn = Conn::open(server.fastcgi_addr(n));
        conn.send(fcgi_request(1, 0, &fcgi_nginx_params("GET", "/process"), b""));
        assert_eq!(conn.read_fcgi_response(1).json()["pid"], pid);
    }
    let tags: Vec<String> = read_records(&server).into_iter().map(|(tag, _)| tag).collect();
    assert_eq!(tags, ["via-http", "via-uwsgi", "via-fastcgi-0", "via-fastcgi-1"]);

    // Each listener speaks its own protocol only.
    let fcgi = fcgi_request(1, 0, &fcgi_nginx_params("GET", "/closing"), b"");
    let response = server.request(&fcgi);
    assert_eq!(response.status, 400, "FastCGI on the http-socket: {response:?}");
    let mut conn = Conn::open(server.uwsgi_addr(0));
    let _ = conn.try_send(&fcgi);
    let (data, closed) = conn.read_until_close(Duration::from_secs(5));
    assert!(closed, "FastCGI on the uwsgi socket left it open");
    assert!(!latin1(&data).contains("200 OK"), "FastCGI on the uwsgi socket: {:?}", latin1(&data));
}

// ---------------------------------------------------------------------------
// cgi-fcgi (Debian's libfcgi-bin): an independent client
// ---------------------------------------------------------------------------

const CGI_FCGI: &str = "/usr/bin/cgi-fcgi";

/// Runs `cgi-fcgi -bind -connect ADDR` with exactly `env` and `stdin`;
/// its stdout (the CGI response) parsed into (status, headers, body).
fn cgi_fcgi(
    addr: &str,
    env: &[(&str, &str)],
    stdin: &[u8],
) -> (u16, HashMap<String, String>, Vec<u8>) {
    let mut child = Command::new(CGI_FCGI)
        .args(["-bind", "-connect", addr])
        .env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = input.write_all(&stdin);
    });
    let read_all = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = pipe.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = read_all(Box::new(child.stdout.take().unwrap()));
    let stderr = read_all(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cgi-fcgi {addr} did not finish within 20 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    writer.join().unwrap();
    let out = stdout.join().unwrap();
    let err = stderr.join().unwrap();
    assert!(status.success(), "cgi-fcgi failed ({status}): {}", String::from_utf8_lossy(&err));
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or_else(|| {
        panic!("no CGI head in cgi-fcgi's output: {:?}", latin1(&out));
    });
    let headers: HashMap<String, String> = latin1(&out[..split])
        .split("\r\n")
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let status = headers["status"].split_whitespace().next().unwrap().parse().unwrap();
    (status, headers, out[split + 4..].to_vec())
}

#[test]
fn cgi_fcgi_is_served() {
    let available = std::path::Path::new(CGI_FCGI).is_file();
    if !common::require(available, "cgi-fcgi (Debian's libfcgi-bin)") {
        return;
    }
    let dir = TempDir::new("cgifcgi");
    let sock = dir.join("fcgi.sock");
    let server = Server::probe(&["--fastcgi-socket", "127.0.0.1:0", "--fastcgi-socket", &sock]);
    let base = [
        ("SCRIPT_NAME", ""),
        ("SERVER_NAME", "cgi.example"),
        ("SERVER_PORT", "8081"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
    ];
    let tcp = server.fastcgi_addr(0);
    let mut env = base.to_vec();
    env.extend([
        ("REQUEST_METHOD", "GET"),
        ("PATH_INFO", "/environ"),
        ("QUERY_STRING", "x=1&y=%20"),
        ("HTTP_X_CUSTOM", "from cgi-fcgi"),
    ]);
    let (status, headers, body) = cgi_fcgi(tcp, &env, b"");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    let env: Value = serde_json::from_slice(&body).unwrap();
    for (key, want) in [
        ("REQUEST_METHOD", "GET"),
        ("SCRIPT_NAME", ""),
        ("PATH_INFO", "/environ"),
        ("QUERY_STRING", "x=1&y=%20"),
        ("SERVER_NAME", "cgi.example"),
        ("SERVER_PORT", "8081"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("HTTP_X_CUSTOM", "from cgi-fcgi"),
        ("wsgi.url_scheme", "http"),
    ] {
        assert_eq!(env[key], want, "{key}: {env}");
    }

    // A POST body on cgi-fcgi's stdin, over both sockets.
    let body = pattern(300_000);
    let len = body.len().to_string();
    for addr in [tcp, sock.as_str()] {
        let mut env = base.to_vec();
        env.extend([
            ("REQUEST_METHOD", "POST"),
            ("PATH_INFO", "/echo"),
            ("QUERY_STRING", ""),
            ("CONTENT_TYPE", "application/octet-stream"),
            ("CONTENT_LENGTH", len.as_str()),
        ]);
        let (status, headers, echoed) = cgi_fcgi(addr, &env, &body);
        assert_eq!(status, 200, "{addr}");
        assert_eq!(headers["x-length"], "300000", "{addr}");
        assert!(echoed == body, "{addr}: the echo differs");
    }
    let mut env = base.to_vec();
    env.extend([("REQUEST_METHOD", "GET"), ("PATH_INFO", "/status"), ("QUERY_STRING", "code=404")]);
    let (status, _, body) = cgi_fcgi(tcp, &env, b"");
    assert_eq!((status, body.len()), (404, 0));
    // cgi-fcgi sends no REQUEST_URI: uWSGI's line shows none either.
    assert!(server.wait_request_status("POST", "", 200), "{}", server.log());
}

// ---------------------------------------------------------------------------
// nginx fastcgi_pass
// ---------------------------------------------------------------------------

/// nginx settings for every test besides [`NGINX_COMMON`]:
/// `fastcgi_buffer_size` is raised from its 4 KiB default so a 32 KiB
/// response head fits.
const FASTCGI_BUFFERS: &str =
    "fastcgi_buffer_size 64k;\nfastcgi_buffers 8 64k;\nfastcgi_busy_buffers_size 128k;\n";

/// nginx passing everything to `pass` (`127.0.0.1:PORT` or `unix:/path`)
/// with Debian's fastcgi_params. `keep`: through an upstream with
/// `keepalive 4` and `fastcgi_keep_conn on`. `/nobuf/…` is `/…` with
/// request buffering off, `/secure/…` with `HTTPS on`, `/app/…` split with
/// `fastcgi_split_path_info` into SCRIPT_NAME `/app` and PATH_INFO the rest.
fn fcgi_nginx(pass: &str, keep: bool) -> Nginx {
    let (upstream, target, keep_conn) = if keep {
        (
            format!("upstream rwsgi {{ server {pass}; keepalive 4; }}\n"),
            "rwsgi",
            "fastcgi_keep_conn on;",
        )
    } else {
        (String::new(), pass, "")
    };
    let fcgi = format!("include /etc/nginx/fastcgi_params; fastcgi_pass {target}; {keep_conn}");
    Nginx::start(&format!(
        "{upstream}server {{\nlisten 127.0.0.1:@PORT@;\n{NGINX_COMMON}{FASTCGI_BUFFERS}\n\
         location / {{ {fcgi} }}\n\
         location /nobuf/ {{ rewrite ^/nobuf(/.*)$ $1 break; {fcgi} \
         fastcgi_request_buffering off; }}\n\
         location /secure/ {{ rewrite ^/secure(/.*)$ $1 break; {fcgi} fastcgi_param HTTPS on; }}\n\
         location /app/ {{ fastcgi_split_path_info ^(/app)(/.*)$; {fcgi} \
         fastcgi_param SCRIPT_NAME $fastcgi_script_name; \
         fastcgi_param PATH_INFO $fastcgi_path_info; }}\n\
         }}\n"
    ))
}

/// The request fields nginx must pass on unchanged (`HTTP_HOST` aside,
/// which Debian's params set to `$host`).
fn assert_same_request(direct: &Value, proxied: &Value) {
    let keys = [
        "REQUEST_METHOD",
        "PATH_INFO",
        "SCRIPT_NAME",
        "QUERY_STRING",
        "REQUEST_URI",
        "SERVER_PROTOCOL",
        "HTTP_X_CUSTOM",
        "HTTP_USER_AGENT",
        "wsgi.url_scheme",
    ];
    assert_same_fields(direct, proxied, &keys);
    assert_same_client_headers(direct, proxied);
    assert_eq!(proxied["SCRIPT_NAME"], "");
    assert_eq!(proxied["wsgi.url_scheme"], "http");
}

#[test]
fn environ_through_nginx_fastcgi_pass_matches_http_socket() {
    if !tools() {
        return;
    }
    let server =
        Server::probe(&["--http-socket", "127.0.0.1:0", "--fastcgi-socket", "127.0.0.1:0"]);
    let direct_url = format!("http://{}/environ?a=1&b=%20x", server.http_addr(0));
    let direct = environ_via(&direct_url, &[]);
    let post = ["-X", "POST", "-H", "Content-Type: text/plain", "--data-binary", "hello body"];
    let direct_post = environ_via(&direct_url, &post);
    for keep in [false, true] {
        let nginx = fcgi_nginx(server.fastcgi_addr(0), keep);
        let proxied_url = nginx.url("/environ?a=1&b=%20x");
        let proxied = environ_via(&proxied_url, &[]);
        assert_same_request(&direct, &proxied);
        assert_eq!(proxied["SERVER_PROTOCOL"], "HTTP/1.1", "keep {keep}");
        assert_eq!(proxied["HTTP_HOST"], "127.0.0.1", "Debian's fastcgi_params: HTTP_HOST = $host");
        assert_eq!(proxied["REMOTE_ADDR"], "127.0.0.1");
        assert!(proxied["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok(), "{proxied}");
        assert_eq!(proxied["SERVER_PORT"], nginx.port.to_string());
        assert_eq!(proxied["DOCUMENT_URI"], "/environ");
        assert_eq!(proxied["GATEWAY_INTERFACE"], "CGI/1.1");
        assert!(proxied.get("CONTENT_LENGTH").is_none(), "empty CONTENT_LENGTH kept: {proxied}");

        let proxied = environ_via(&proxied_url, &post);
        assert_same_request(&direct_post, &proxied);
        assert_eq!(proxied["CONTENT_LENGTH"], "10");
        assert_eq!(proxied["CONTENT_TYPE"], "text/plain");

        let proxied = environ_via(&proxied_url, &["--http1.0"]);
        assert_eq!(proxied["SERVER_PROTOCOL"], "HTTP/1.0");

        // The percent-decoded path.
        let direct = curl(&[&format!("http://{}/a%20b/%C3%A9", server.http_addr(0))]);
        let proxied = curl(&[&nginx.url("/a%20b/%C3%A9")]);
        assert_eq!(direct.body, b"not found: /a b/\xc3\xa9");
        assert_eq!((proxied.status, &proxied.body), (404, &direct.body), "keep {keep}");

        let secure = environ_via(&nginx.url("/secure/environ"), &[]);
        assert_eq!(secure["wsgi.url_scheme"], "https", "HTTPS=on from nginx");
        assert_eq!(secure["PATH_INFO"], "/environ");
        assert_eq!(secure["SCRIPT_NAME"], "");
        assert_eq!(secure["REQUEST_URI"], "/secure/environ");
    }
}

#[test]
fn split_path_info_through_nginx() {
    if !tools() {
        return;
    }
    let server = fcgi_probe(&[]);
    let nginx = fcgi_nginx(server.fastcgi_addr(0), false);
    // The app routes on PATH_INFO.
    let response = curl(&[&nginx.url("/app/deeper/path")]);
    assert_eq!((response.status, response.text().as_str()), (404, "not found: /deeper/path"));
    for keep in [false, true] {
        let nginx = fcgi_nginx(server.fastcgi_addr(0), keep);
        let env = environ_via(&nginx.url("/app/environ?s=1"), &[]);
        assert_eq!(env["PATH_INFO"], "/environ", "{env}");
        assert_eq!(env["QUERY_STRING"], "s=1");
        assert_eq!(env["REQUEST_URI"], "/app/environ?s=1");
        // nginx sends SCRIPT_NAME twice here (fastcgi_params' and the
        // location's): one value, "/app", is meant.
        assert_eq!(env["SCRIPT_NAME"], "/app", "keep {keep}: {env}");
    }
}

#[test]
fn environ_through_nginx_over_a_unix_socket() {
    if !tools() {
        return;
    }
    let dir = TempDir::new("ngxf");
    let sock = dir.join("fcgi.sock");
    let server = Server::probe(&["--fastcgi-socket", &sock, "--chmod-socket=666"]);
    for keep in [false, true] {
        let nginx = fcgi_nginx(&format!("unix:{sock}"), keep);
        let env = environ_via(&nginx.url("/environ?q=unix"), &[]);
        assert_eq!(env["REQUEST_METHOD"], "GET");
        assert_eq!(env["PATH_INFO"], "/environ");
        assert_eq!(env["SCRIPT_NAME"], "");
        assert_eq!(env["QUERY_STRING"], "q=unix");
        assert_eq!(env["REQUEST_URI"], "/environ?q=unix");
        assert_eq!(env["HTTP_X_CUSTOM"], "custom value");
        assert_eq!(env["HTTP_USER_AGENT"], "rwsgi-test/1.0");
        assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
        assert_eq!(env["REMOTE_ADDR"], "127.0.0.1", "the client's address, from nginx");
        let body = pattern(300_000);
        let response = post_file(&nginx.url("/echo"), &body, &[]);
        assert_eq!(response.status, 200, "keep {keep}: {}", nginx.error_log());
        assert!(response.body == body, "300 KB through the unix socket (keep {keep})");
        let stream = curl(&[&nginx.url("/stream?n=50")]);
        assert_eq!(stream.text(), (0..50).map(|i| format!("chunk {i}\n")).collect::<String>());
    }
    assert!(server.wait_request_status("POST", "/echo", 200), "{}", server.log());
}

/// The rwsgi log's peer (nginx's end of the connection) for each request
/// line whose target is one of `targets`, waiting for them all.
fn peers_of(server: &Server, targets: &[String]) -> Vec<String> {
    let needles: Vec<String> = targets.iter().map(|t| format!(" fastcgi GET {t} =>")).collect();
    let all_logged = server.wait_log_text(LOG_TIMEOUT, |text| {
        needles.iter().all(|n| text.lines().any(|l| l.contains(n.as_str())))
    });
    assert!(all_logged, "not every request was logged:\n{}", server.log());
    let log = server.log();
    needles
        .iter()
        .map(|needle| {
            let line = log.lines().find(|l| l.contains(needle.as_str())).unwrap();
            let before = &line[..line.find(needle.as_str()).unwrap()];
            before.split_whitespace().last().unwrap().to_string()
        })
        .collect()
}

#[test]
fn nginx_keep_conn_reuses_one_connection() {
    if !tools() {
        return;
    }
    let server = fcgi_probe(&[]);
    // With fastcgi_keep_conn and an upstream keepalive: one connection.
    let nginx = fcgi_nginx(server.fastcgi_addr(0), true);
    let mut targets = Vec::new();
    for i in 0..6 {
        let target = format!("/closing?keep={i}");
        let response = curl(&[&nginx.url(&target)]);
        assert_eq!((response.status, response.text().as_str()), (200, "ab"));
        targets.push(target);
        // Other kinds of responses in between, on the same connection.
        match i {
            1 => assert_eq!(curl(&[&nginx.url("/stream?n=20")]).text().lines().count(), 20),
            2 => {
                let response = post_file(&nginx.url("/echo"), &pattern(100_000), &[]);
                assert_eq!(response.header("x-length"), Some("100000"));
            }
            3 => assert_eq!(curl(&[&nginx.url("/error-before")]).status, 500),
            // Not a response with a Content-Length whose END_REQUEST comes in a
            // later write (wsgi.file_wrapper): curl may close before nginx reads
            // that END_REQUEST, and nginx then drops the upstream connection.
            4 => assert_eq!(curl(&[&nginx.url("/write")]).text(), "written;returned"),
            _ => {}
        }
    }
    let peers = peers_of(&server, &targets);
    assert!(peers[0].starts_with("127.0.0.1:"), "{peers:?}");
    assert!(peers.iter().all(|p| *p == peers[0]), "nginx's connection was not reused: {peers:?}");
    assert!(!nginx.error_log().contains("upstream prematurely closed"), "{}", nginx.error_log());

    // Without: a connection per request, closed by rwsgi.
    let nginx = fcgi_nginx(server.fastcgi_addr(0), false);
    let targets: Vec<String> = (0..4).map(|i| format!("/closing?nokeep={i}")).collect();
    for target in &targets {
        assert_eq!(curl(&[&nginx.url(target)]).text(), "ab");
    }
    let mut peers = peers_of(&server, &targets);
    peers.sort();
    peers.dedup();
    assert_eq!(peers.len(), 4, "a connection was reused without keep_conn: {peers:?}");
}

#[test]
fn large_and_chunked_uploads_through_nginx() {
    if !tools() {
        return;
    }
    let server = fcgi_probe(&["--threads", "2"]);
    for keep in [false, true] {
        let nginx = fcgi_nginx(server.fastcgi_addr(0), keep);
        let body = pattern(10 * 1024 * 1024);
        // Buffered by nginx first…
        let response = post_file(&nginx.url("/echo"), &body, &[]);
        assert_eq!(response.status, 200, "{}", nginx.error_log());
        assert_eq!(response.header("x-length"), Some("10485760"));
        assert!(response.body == body, "10 MiB echo differs (buffered, keep {keep})");
        // …and streamed as it arrives.
        let response = post_file(&nginx.url("/nobuf/echo?via=chunks"), &body, &[]);
        assert_eq!(response.status, 200, "{}", nginx.error_log());
        assert_eq!(response.header("x-length"), Some("10485760"));
        assert!(response.body == body, "10 MiB echo differs (unbuffered, keep {keep})");

        // A chunked client body, streamed: no CONTENT_LENGTH, the body runs
        // until the empty STDIN record.
        let chunked = ["-H", "Transfer-Encoding: chunked"];
        let body = pattern(3 * 1024 * 1024 + 5);
        let response = post_file(&nginx.url("/nobuf/echo"), &body, &chunked);
        assert_eq!(response.status, 200, "{}", nginx.error_log());
        assert_eq!(response.header("x-length"), Some("3145733"));
        assert!(response.body == body, "chunked upload differs (keep {keep})");
        let env = post_file(&nginx.url("/nobuf/environ"), &pattern(100_000), &chunked).json();
        assert!(env.get("CONTENT_LENGTH").is_none(), "CONTENT_LENGTH for a streamed body: {env}");
        assert_eq!(env["wsgi.input_terminated"], true, "{env}");
        // Buffered by nginx, the chunked body gets a CONTENT_LENGTH.
        let env = post_file(&nginx.url("/environ"), &pattern(100_000), &chunked).json();
        assert_eq!(env["CONTENT_LENGTH"], "100000", "{env}");
        let response = post_file(&nginx.url("/echo?via=readline"), &pattern(200_000), &chunked);
        assert_eq!(response.header("x-length"), Some("200000"));
    }
}

#[test]
fn streaming_and_errors_through_nginx() {
    if !tools() {
        return;
    }
    let server = fcgi_probe(&[]);
    for keep in [false, true] {
        let nginx = fcgi_nginx(server.fastcgi_addr(0), keep);
        assert_streams_through(&nginx, 100);
        let slow = curl(&[&nginx.url("/slow-stream?n=5&delay=0.05&tag=ngx")]);
        assert_eq!(slow.text(), "tick 0\ntick 1\ntick 2\ntick 3\ntick 4\n");
        assert_file_through(&nginx);
        let big = curl(&[&nginx.url("/big-header")]);
        assert_eq!(big.header("x-big").map(str::len), Some(32768), "keep {keep}");

        assert_error_then_next(&nginx);
        let status = curl(&[&nginx.url("/status?code=418")]);
        assert_eq!(status.status, 418);
        let head = curl(&["-I", &nginx.url("/head-aware")]);
        assert_eq!((head.status, head.header("content-length")), (200, Some("5")));
        let log = nginx.error_log();
        assert!(!log.contains("upstream prematurely closed"), "keep {keep}: {log}");
        assert!(!log.contains("upstream sent"), "keep {keep}: {log}");
    }
}

#[test]
fn flask_and_django_through_nginx_fastcgi_pass() {
    if !tools() {
        return;
    }
    let Some(apps) = Frameworks::start("--fastcgi-socket") else { return };
    let flask_nginx = fcgi_nginx(&format!("unix:{}", apps.flask_sock), true);
    let django_nginx = fcgi_nginx(apps.django.fastcgi_addr(0), false);

    flask_through(&flask_nginx, "/nobuf/echo");
    django_through(&django_nginx);
    apps.assert_booms_logged();
    // Mounted under /app with fastcgi_split_path_info.
    let mounted = curl(&[&django_nginx.url("/app/meta")]).json();
    assert_eq!(mounted["script_name"], "/app", "{mounted}");
    assert_eq!(mounted["path_info"], "/meta", "{mounted}");
    assert_eq!(mounted["path"], "/app/meta", "{mounted}");
}

#[test]
fn wsgi_errors_reach_the_web_server_as_stderr_only_when_asked() {
    let on = fcgi_probe(&["--fastcgi-stderr"]);
    let response = on.fastcgi_get("/errors");
    assert_eq!(response.status, 200);
    assert_eq!(String::from_utf8_lossy(&response.stderr), "first error line\nsecond error line\n");
    let stderr: Vec<&FcgiRecord> =
        response.records.iter().filter(|r| r.kind == common::FCGI_STDERR).collect();
    assert!(stderr.last().is_some_and(|r| r.content.is_empty()), "STDERR is ended");
    let end = response.records.iter().position(|r| r.kind == FCGI_END_REQUEST);
    let last_stderr = response.records.iter().rposition(|r| r.kind == common::FCGI_STDERR);
    assert!(last_stderr < end, "STDERR ends before END_REQUEST");
    assert!(on.log_contains("second error line"), "logged too: {}", on.log());

    let off = fcgi_probe(&[]);
    let response = off.fastcgi_get("/errors");
    assert_eq!(response.status, 200);
    assert!(response.stderr.is_empty());
    assert!(response.records.iter().all(|r| r.kind != common::FCGI_STDERR));
    assert!(off.log_contains("first error line"), "{}", off.log());
}
