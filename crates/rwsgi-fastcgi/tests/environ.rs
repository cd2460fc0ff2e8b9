//! The environ of a FastCGI request: nginx's `fastcgi_params` as sent,
//! the FastCGI `SCRIPT_NAME`/`PATH_INFO` rule, the rules shared with uwsgi
//! (through `rwsgi_proto::CgiVars`), whatever the record boundaries.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use rwsgi_proto::{Environ, RequestHead, Scheme};
use rwsgi_testkit::{assert_unique_keys, unix_conn, var};

fn nginx_get(uri: &[u8], path: &[u8], query: &[u8]) -> Vec<u8> {
    request(1, 0, &nginx_params(b"GET", uri, path, query, b"", b""), b"")
}

fn paths(env: &Environ) -> (String, String) {
    let get = |k| String::from_utf8(var(env, k).unwrap()).unwrap();
    (get("SCRIPT_NAME"), get("PATH_INFO"))
}

fn s(a: &str, b: &str) -> (String, String) {
    (a.to_owned(), b.to_owned())
}

#[test]
fn a_plain_include_fastcgi_params_request() {
    let env = environ(&nginx_get(b"/hello/world?x=1&y", b"/hello/world", b"x=1&y"));
    assert_unique_keys(&env);
    // SCRIPT_NAME is $fastcgi_script_name, the whole path: it becomes the
    // PATH_INFO of an app mounted at the root.
    assert_eq!(paths(&env), s("", "/hello/world"));
    assert_eq!(var(&env, "REQUEST_METHOD").unwrap(), b"GET");
    assert_eq!(var(&env, "QUERY_STRING").unwrap(), b"x=1&y");
    assert_eq!(var(&env, "REQUEST_URI").unwrap(), b"/hello/world?x=1&y");
    assert_eq!(var(&env, "DOCUMENT_URI").unwrap(), b"/hello/world");
    assert_eq!(var(&env, "SERVER_NAME").unwrap(), b"example.com");
    assert_eq!(var(&env, "SERVER_PORT").unwrap(), b"80");
    assert_eq!(var(&env, "SERVER_PROTOCOL").unwrap(), b"HTTP/1.1");
    assert_eq!(var(&env, "REMOTE_ADDR").unwrap(), b"203.0.113.9");
    assert_eq!(var(&env, "REMOTE_PORT").unwrap(), b"40312");
    assert_eq!(var(&env, "GATEWAY_INTERFACE").unwrap(), b"CGI/1.1");
    assert_eq!(var(&env, "HTTP_HOST").unwrap(), b"example.com");
    assert_eq!(var(&env, "HTTP_USER_AGENT").unwrap(), b"curl/8.5.0");
    assert_eq!(var(&env, "REDIRECT_STATUS").unwrap(), b"200");
    // Sent empty for a GET: left out.
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(env.scheme, Scheme::Http);
}

#[test]
fn the_root_path() {
    let env = environ(&nginx_get(b"/", b"/", b""));
    assert_eq!(paths(&env), s("", "/"));
    assert_eq!(var(&env, "QUERY_STRING").unwrap(), b"");
}

#[test]
fn document_uri_is_the_decoded_path() {
    // nginx's $document_uri is already percent-decoded and normalised.
    let env = environ(&nginx_get(b"/caf%C3%A9/a%20b?q", b"/caf\xc3\xa9/a b", b"q"));
    assert_eq!(var(&env, "PATH_INFO").unwrap(), b"/caf\xc3\xa9/a b");
    assert_eq!(var(&env, "SCRIPT_NAME").unwrap(), b"");
}

#[test]
fn split_path_info_is_honoured() {
    // fastcgi_split_path_info ^(/app)(/.*)$ with PATH_INFO passed.
    let input = get_with(&[
        (b"SCRIPT_NAME", b"/app"),
        (b"PATH_INFO", b"/x/y"),
        (b"DOCUMENT_URI", b"/app/x/y"),
    ]);
    assert_eq!(paths(&environ(&input)), s("/app", "/x/y"));
    // Split, but no PATH_INFO param: the rest of the path.
    let input = get_with(&[(b"SCRIPT_NAME", b"/app"), (b"DOCUMENT_URI", b"/app/x/y")]);
    assert_eq!(paths(&environ(&input)), s("/app", "/x/y"));
    // An empty PATH_INFO is as good as none.
    let input =
        get_with(&[(b"SCRIPT_NAME", b"/app/x"), (b"PATH_INFO", b""), (b"DOCUMENT_URI", b"/app/x")]);
    assert_eq!(paths(&environ(&input)), s("", "/app/x"));
}

#[test]
fn a_script_name_unrelated_to_the_path_is_dropped() {
    let input = get_with(&[(b"SCRIPT_NAME", b"/index.php"), (b"DOCUMENT_URI", b"/a/b")]);
    assert_eq!(paths(&environ(&input)), s("", "/a/b"));
    let input = get_with(&[(b"SCRIPT_NAME", b"/ap"), (b"DOCUMENT_URI", b"/app")]);
    assert_eq!(paths(&environ(&input)), s("", "/app"));
}

#[test]
fn without_document_uri_the_request_uri_path_is_decoded() {
    let input = get_with(&[(b"REQUEST_URI", b"/a%20b/c?x=%20")]);
    assert_eq!(paths(&environ(&input)), s("", "/a b/c"));
    // Nothing at all: both empty (PEP 3333 allows an empty PATH_INFO).
    assert_eq!(paths(&environ(&get_with(&[]))), s("", ""));
}

#[test]
fn a_post_keeps_its_content_vars() {
    let pairs = nginx_params(b"POST", b"/f", b"/f", b"", b"application/json", b"2");
    let env = environ(&request(1, 0, &pairs, b"{}"));
    assert_eq!(var(&env, "CONTENT_TYPE").unwrap(), b"application/json");
    assert_eq!(var(&env, "CONTENT_LENGTH").unwrap(), b"2");
}

#[test]
fn the_scheme_comes_from_https_or_request_scheme() {
    let https = |extra: &[(&[u8], &[u8])]| environ(&get_with(extra)).scheme;
    assert_eq!(https(&[(b"HTTPS", b"on")]), Scheme::Https);
    assert_eq!(https(&[(b"REQUEST_SCHEME", b"https")]), Scheme::Https);
    assert_eq!(https(&[(b"REQUEST_SCHEME", b"http")]), Scheme::Http);
    assert_eq!(https(&[]), Scheme::Http);
}

#[test]
fn server_only_keys_and_content_headers_never_reach_the_environ() {
    let env = environ(&get_with(&[
        (b"wsgi.input", b"x"),
        (b"uwsgi.node", b"x"),
        (b"HTTP_CONTENT_TYPE", b"text/plain"),
        (b"HTTP_CONTENT_LENGTH", b"5"),
        (b"HTTP_X", b"1"),
        (b"HTTP_X", b"2"),
        (b"HTTP_COOKIE", b"a=1"),
        (b"HTTP_COOKIE", b"b=2"),
    ]));
    assert_unique_keys(&env);
    for gone in ["wsgi.input", "uwsgi.node", "HTTP_CONTENT_TYPE", "HTTP_CONTENT_LENGTH"] {
        assert_eq!(var(&env, gone), None, "{gone}");
    }
    assert_eq!(var(&env, "HTTP_X").unwrap(), b"1, 2");
    assert_eq!(var(&env, "HTTP_COOKIE").unwrap(), b"a=1; b=2");
}

#[test]
fn missing_server_and_remote_vars_come_from_the_sockets() {
    let env = environ_with(&get_with(&[]), &tcp_conn());
    assert_eq!(var(&env, "SERVER_NAME").unwrap(), b"10.0.0.1");
    assert_eq!(var(&env, "SERVER_PORT").unwrap(), b"9000");
    assert_eq!(var(&env, "REMOTE_ADDR").unwrap(), b"192.0.2.7");
    assert_eq!(var(&env, "REMOTE_PORT").unwrap(), b"51234");
    assert_eq!(var(&env, "SERVER_PROTOCOL").unwrap(), b"HTTP/1.0");
    let env = environ_with(&get_with(&[]), &unix_conn());
    assert_eq!(var(&env, "SERVER_NAME").unwrap(), b"localhost");
    assert_eq!(var(&env, "SERVER_PORT").unwrap(), b"0");
    assert_eq!(var(&env, "REMOTE_ADDR"), None);
}

#[test]
fn the_environ_does_not_depend_on_record_boundaries() {
    let pairs = nginx_params(b"GET", b"/p/q?r", b"/p/q", b"r", b"", b"");
    let reference = environ(&request(1, 0, &pairs, b""));
    for seed in 1..20u64 {
        let mut rng = Rng(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1);
        let mut input = begin(1, RESPONDER, 0);
        input.extend(random_stream(PARAMS, 1, &params_with(&pairs, seed % 3 == 0), &mut rng));
        input.extend(random_stream(STDIN, 1, b"", &mut rng));
        assert_eq!(environ(&input), reference, "seed {seed}");
    }
}

#[test]
fn values_are_views_of_the_params_record() {
    // One PARAMS record, as nginx sends it: the environ values point into
    // the connection's read buffer.
    use tokio_util::codec::Decoder;
    let input = nginx_get(b"/v?w", b"/v", b"w");
    let mut buf = bytes::BytesMut::from(&input[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + input.len();
    let mut codec = codec(limits());
    let Ok(Some(rwsgi_proto::Frame::Head(head))) = codec.decode(&mut buf) else {
        panic!("no head")
    };
    let mut env = Environ::default();
    head.write_environ(&tcp_conn(), &mut env);
    let value = env.get("HTTP_USER_AGENT").unwrap();
    assert!(range.contains(&(value.as_ptr() as usize)), "the value was copied");
    assert_eq!(head.cgi_vars().method(), b"GET");
}
