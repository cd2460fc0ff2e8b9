//! The environ as PEP 3333 and CGI define it, field by field, and the probe
//! app behind `wsgiref.validate` (every warning an error).

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, TempDir, chunked};
use serde_json::{Value, json};

fn get_environ(server: &Server, target: &str, extra_headers: &str) -> Value {
    server
        .environ(format!("GET {target} HTTP/1.1\r\nHost: example.com:8080\r\n{extra_headers}\r\n"))
}

fn str_of<'a>(env: &'a Value, key: &str) -> &'a str {
    env[key].as_str().unwrap_or_else(|| panic!("{key} missing or not a str: {env}"))
}

#[test]
fn request_line_fields() {
    let server = Server::probe(&[]);
    let env = get_environ(&server, "/environ?a=1&b=%20x+y&&c", "");
    assert_eq!(str_of(&env, "REQUEST_METHOD"), "GET");
    assert_eq!(str_of(&env, "SCRIPT_NAME"), "");
    assert_eq!(str_of(&env, "PATH_INFO"), "/environ");
    assert_eq!(str_of(&env, "QUERY_STRING"), "a=1&b=%20x+y&&c", "raw, undecoded");
    assert_eq!(str_of(&env, "REQUEST_URI"), "/environ?a=1&b=%20x+y&&c");
    assert_eq!(str_of(&env, "SERVER_PROTOCOL"), "HTTP/1.1");
    // An empty query is present and empty.
    let env = get_environ(&server, "/environ", "");
    assert_eq!(str_of(&env, "QUERY_STRING"), "");
    let env = get_environ(&server, "/environ?", "");
    assert_eq!(str_of(&env, "QUERY_STRING"), "");
    assert_eq!(str_of(&env, "REQUEST_URI"), "/environ?");
}

#[test]
fn path_info_is_percent_decoded_as_latin1() {
    // The probe answers /environ only, so look at the 404 body instead for
    // other paths: it echoes PATH_INFO encoded as latin-1.
    let server = Server::probe(&[]);
    let response = server.get("/a%20b/%C3%A9");
    assert_eq!(response.status, 404);
    assert_eq!(response.body, b"not found: /a b/\xc3\xa9");
    // In the environ: the str is the latin-1 decoding of the bytes.
    let env = get_environ(&server, "/%65nviron", "");
    assert_eq!(str_of(&env, "PATH_INFO"), "/environ");
    assert_eq!(str_of(&env, "REQUEST_URI"), "/%65nviron", "REQUEST_URI stays raw");
    let response = server.get("/x%2Fy%zz%4");
    assert_eq!(response.body, b"not found: /x/y%zz%4", "invalid escapes stay as they are");
}

#[test]
fn header_bytes_are_latin1() {
    let server = Server::probe(&[]);
    let env = get_environ(&server, "/environ", "X-Path: /a b/\u{e9}\r\n");
    // The UTF-8 bytes of é (C3 A9) arrive as two latin-1 characters.
    assert_eq!(str_of(&env, "HTTP_X_PATH"), "/a b/\u{c3}\u{a9}");
}

#[test]
fn server_name_and_port_come_from_host() {
    let server = Server::probe(&[]);
    let env = get_environ(&server, "/environ", "");
    assert_eq!((str_of(&env, "SERVER_NAME"), str_of(&env, "SERVER_PORT")), ("example.com", "8080"));
    assert_eq!(str_of(&env, "HTTP_HOST"), "example.com:8080");

    // No port in Host: the port the request arrived on, as uWSGI reports it.
    let env = server.environ("GET /environ HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let port = server.port().to_string();
    assert_eq!(
        (str_of(&env, "SERVER_NAME"), str_of(&env, "SERVER_PORT")),
        ("example.com", port.as_str())
    );

    let env = server.environ("GET /environ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_eq!((str_of(&env, "SERVER_NAME"), str_of(&env, "SERVER_PORT")), ("[::1]", "8080"));
    assert_eq!(str_of(&env, "HTTP_HOST"), "[::1]:8080");

    // No Host (HTTP/1.0): the listening address.
    let env = server.environ("GET /environ HTTP/1.0\r\n\r\n");
    assert_eq!(str_of(&env, "SERVER_NAME"), "127.0.0.1");
    assert_eq!(str_of(&env, "SERVER_PORT"), server.port().to_string());
    assert_eq!(str_of(&env, "SERVER_PROTOCOL"), "HTTP/1.0");
    assert!(env.get("HTTP_HOST").is_none());
}

#[test]
fn remote_address_and_port() {
    let server = Server::probe(&[]);
    let mut conn = server.conn();
    let local = conn.local_addr();
    conn.send(b"GET /environ HTTP/1.1\r\nHost: a\r\n\r\n");
    let env = conn.read_response().json();
    assert_eq!(str_of(&env, "REMOTE_ADDR"), "127.0.0.1");
    assert_eq!(format!("127.0.0.1:{}", str_of(&env, "REMOTE_PORT")), local);
}

#[test]
fn ipv6_peer_and_listener() {
    let server = Server::probe(&["--http-socket", "[::1]:0"]);
    let env = server.environ("GET /environ HTTP/1.0\r\n\r\n");
    assert_eq!(str_of(&env, "REMOTE_ADDR"), "::1");
    assert!(str_of(&env, "REMOTE_PORT").parse::<u16>().is_ok());
    assert_eq!(str_of(&env, "SERVER_NAME"), "[::1]");
    assert_eq!(str_of(&env, "SERVER_PORT"), server.port().to_string());
}

#[test]
fn unix_socket_peers_have_no_remote_addr() {
    let dir = TempDir::new("pep");
    let path = dir.join("s.sock");
    let server = Server::probe(&["--http-socket", &path]);
    let env = server.environ("GET /environ HTTP/1.1\r\nHost: a:1\r\n\r\n");
    assert!(env.get("REMOTE_ADDR").is_none_or(|v| v == ""), "{env}");
    assert_eq!(str_of(&env, "SERVER_NAME"), "a");
    let env = server.environ("GET /environ HTTP/1.0\r\n\r\n");
    assert!(!str_of(&env, "SERVER_NAME").is_empty() && !str_of(&env, "SERVER_PORT").is_empty());
}

#[test]
fn content_type_and_length_presence() {
    let server = Server::probe(&[]);
    let env = get_environ(&server, "/environ", "");
    for key in ["CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        assert!(env.get(key).is_none(), "{key} without the header: {env}");
    }
    let env = server.environ(
        "POST /environ HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(str_of(&env, "CONTENT_TYPE"), "text/plain; charset=utf-8");
    assert_eq!(str_of(&env, "CONTENT_LENGTH"), "3");
    assert_eq!(str_of(&env, "REQUEST_METHOD"), "POST");
    assert!(env.get("HTTP_CONTENT_TYPE").is_none() && env.get("HTTP_CONTENT_LENGTH").is_none());

    let env = server.environ("POST /environ HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(str_of(&env, "CONTENT_LENGTH"), "0");

    // Chunked: no CONTENT_LENGTH (the length is unknown).
    let mut raw = b"POST /environ HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
    raw.extend(chunked(&[b"{}"]));
    let env = server.environ(raw);
    assert_eq!(str_of(&env, "CONTENT_TYPE"), "application/json");
    assert!(env.get("CONTENT_LENGTH").is_none(), "{env}");
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none());
    assert_eq!(str_of(&env, "HTTP_TRANSFER_ENCODING"), "chunked");
}

#[test]
fn http_headers_are_converted_and_joined() {
    let server = Server::probe(&[]);
    let env = get_environ(
        &server,
        "/environ",
        "X-Multi: a\r\nx-mixed-CASE: v\r\nCookie: a=1\r\nX-Multi: b\r\nCookie: b=2\r\nx-multi: c\r\nUser-Agent: t/1\r\nX-Empty:\r\nX-Spaces:   padded value  \r\n",
    );
    assert_eq!(str_of(&env, "HTTP_X_MULTI"), "a, b, c");
    assert_eq!(str_of(&env, "HTTP_COOKIE"), "a=1; b=2");
    assert_eq!(str_of(&env, "HTTP_X_MIXED_CASE"), "v");
    assert_eq!(str_of(&env, "HTTP_USER_AGENT"), "t/1");
    assert_eq!(str_of(&env, "HTTP_X_EMPTY"), "");
    assert_eq!(str_of(&env, "HTTP_X_SPACES"), "padded value");
}

#[test]
fn wsgi_keys_single_thread() {
    let server = Server::probe(&["--threads", "1"]);
    let env = get_environ(&server, "/environ", "");
    assert_eq!(env["wsgi.version"], json!([1, 0]));
    assert_eq!(str_of(&env, "wsgi.url_scheme"), "http");
    assert_eq!(env["wsgi.multithread"], json!(false));
    assert_eq!(env["wsgi.multiprocess"], json!(false));
    assert_eq!(env["wsgi.run_once"], json!(false));
    assert_eq!(env["wsgi.input_terminated"], json!(true));
    assert_eq!(env["_is_dict"], json!(true), "environ must be a plain dict");
    for key in ["wsgi.input", "wsgi.errors", "wsgi.file_wrapper"] {
        assert!(env.get(key).is_some(), "{key} missing");
    }
    // Every CGI value is a str (the probe reports other types by name).
    let obj = env.as_object().unwrap();
    for (key, value) in obj {
        if !key.contains('.') && key != "_is_dict" {
            assert!(value.is_string(), "{key} = {value}");
        }
    }
    for key in ["REQUEST_METHOD", "SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL"] {
        assert!(!str_of(&env, key).is_empty(), "{key} empty");
    }
}

#[test]
fn wsgi_multithread_with_threads() {
    let server = Server::probe(&["--threads", "2"]);
    let env = get_environ(&server, "/environ", "");
    assert_eq!(env["wsgi.multithread"], json!(true));
    assert_eq!(env["wsgi.multiprocess"], json!(false));
}

#[test]
fn absolute_form_target() {
    let server = Server::probe(&[]);
    let env = server.environ("GET http://other.example:81/environ?q=1 HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(str_of(&env, "PATH_INFO"), "/environ");
    assert_eq!(str_of(&env, "QUERY_STRING"), "q=1");
    assert_eq!(str_of(&env, "SERVER_NAME"), "other.example");
    assert_eq!(str_of(&env, "SERVER_PORT"), "81");
    assert_eq!(str_of(&env, "HTTP_HOST"), "other.example:81", "the target's authority wins");
}

/// The validated app: non-500 for a battery of requests and a clean log.
#[test]
fn validated_app_battery() {
    let server = Server::start(&["--wsgi-file", "tests/apps/validated.py", "--threads", "2"]);
    let mut conn = server.conn();
    let mut check = |raw: Vec<u8>, head: bool, what: &str| {
        conn.send(&raw);
        let response = if head { conn.read_head_response() } else { conn.read_response() };
        assert!(response.status < 500, "{what}: {response:?}");
        response
    };
    let response = check(
        b"GET /environ?x=1 HTTP/1.1\r\nHost: a\r\nX-Foo: b\r\n\r\n".to_vec(),
        false,
        "environ",
    );
    assert_eq!(response.status, 200);
    let body = b"line one\nline two\nthree";
    for via in ["chunks", "readline", "iter", "readlines"] {
        let mut raw = format!(
            "POST /echo?via={via} HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        raw.extend_from_slice(body);
        let response = check(raw, false, via);
        assert_eq!(response.body, body, "via={via}");
        let mut raw = format!(
            "POST /echo?via={via} HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        .into_bytes();
        raw.extend(chunked(&[&body[..5], &body[5..]]));
        let response = check(raw, false, via);
        assert_eq!(response.body, body, "chunked via={via}");
    }
    let response = check(b"HEAD /environ HTTP/1.1\r\nHost: a\r\n\r\n".to_vec(), true, "HEAD");
    assert_eq!(response.status, 200);
    for path in ["/stream", "/write", "/file", "/file?bytesio=1", "/closing", "/status?code=204"] {
        let response =
            check(format!("GET {path} HTTP/1.1\r\nHost: a\r\n\r\n").into_bytes(), false, path);
        assert!(response.status == 200 || response.status == 204, "{path}: {response:?}");
        assert!(response.complete, "{path}");
    }
    // HTTP/1.0 and a request without a query string.
    let response =
        check(b"GET /environ HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".to_vec(), false, "1.0");
    assert_eq!(response.status, 200);
    // Every request was logged, so the validator's checks ran.
    assert!(server.wait_request_logged("GET", "/status?code=204"));
    let log = server.log();
    for bad in ["Traceback", "AssertionError", "Warning", " 500) "] {
        assert!(!log.contains(bad), "{bad} in the log:\n{log}");
    }
}

/// The probe's `/input-api` sequence for `body` sent as `framing`.
fn input_api(server: &Server, body: &[u8], chunked_body: bool) -> Value {
    let mut raw = if chunked_body {
        b"POST /input-api HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec()
    } else {
        format!("POST /input-api HTTP/1.1\r\nHost: a\r\nContent-Length: {}\r\n\r\n", body.len())
            .into_bytes()
    };
    if chunked_body {
        let pieces: Vec<&[u8]> = body.chunks(4).collect();
        raw.extend(chunked(&pieces));
    } else {
        raw.extend_from_slice(body);
    }
    let response = server.request(raw);
    assert_eq!(response.status, 200, "{response:?}");
    response.json()
}

#[test]
fn wsgi_input_methods() {
    let body = b"line1\nline2\nline3\nline4\nend";
    let want = json!([
        ["read(0)", ""],
        ["readline(3)", "lin"],
        ["readline()", "e1\n"],
        ["read(2)", "li"],
        ["readline(-1)", "ne2\n"],
        ["readlines(1)", ["line3\n"]],
        ["next", "line4\n"],
        ["readlines()", ["end"]],
        ["read()", ""],
        ["read(10)", ""],
        ["readline()", ""],
        ["list", []],
    ]);
    // Buffered before the app runs, streamed on demand, and chunked.
    let buffered = Server::probe(&[]);
    assert_eq!(input_api(&buffered, body, false), want, "buffered body");
    let streamed = Server::probe(&["--post-buffering", "0"]);
    assert_eq!(input_api(&streamed, body, false), want, "streamed body");
    assert_eq!(input_api(&streamed, body, true), want, "chunked body");
    // No body at all: everything is empty.
    let empty = input_api(&buffered, b"", false);
    for call in empty.as_array().unwrap() {
        let want = match call[0].as_str().unwrap() {
            "next" => json!("<eof>"),
            name if name.starts_with("readlines") || name == "list" => json!([]),
            _ => json!(""),
        };
        assert_eq!(call[1], want, "{call} on an empty body");
    }
}
