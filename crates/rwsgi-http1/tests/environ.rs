//! The CGI variables built from a request head (PEP 3333, and the "From
//! raw HTTP" derivations).

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;

use common::{environ, environ_with, head_of};
use rwsgi_proto::{CgiVar, ConnInfo, EnvKey, Environ, RequestHead, Scheme, SocketAddress};
use rwsgi_testkit::var;

fn v(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

fn keys(env: &Environ) -> Vec<String> {
    env.vars.iter().map(|(k, _)| String::from_utf8_lossy(k.as_bytes()).into_owned()).collect()
}

#[test]
fn a_browser_request() {
    let env = environ(
        b"GET /caf%C3%A9/a%20b?q=%20x&y HTTP/1.1\r\n\
Host: example.com:8000\r\n\
User-Agent: Mozilla/5.0\r\n\
Accept: text/html\r\n\
Accept-Language: en\r\n\
X-Custom-Thing: 42\r\n\
\r\n",
    );
    assert_eq!(var(&env, "REQUEST_METHOD"), v("GET"));
    assert_eq!(var(&env, "SCRIPT_NAME"), v(""));
    assert_eq!(var(&env, "PATH_INFO"), Some(b"/caf\xc3\xa9/a b".to_vec()));
    assert_eq!(var(&env, "QUERY_STRING"), v("q=%20x&y"));
    assert_eq!(var(&env, "REQUEST_URI"), v("/caf%C3%A9/a%20b?q=%20x&y"));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), v("HTTP/1.1"));
    assert_eq!(var(&env, "SERVER_NAME"), v("example.com"));
    assert_eq!(var(&env, "SERVER_PORT"), v("8000"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("192.0.2.7"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("51234"));
    assert_eq!(var(&env, "HTTP_HOST"), v("example.com:8000"));
    assert_eq!(var(&env, "HTTP_USER_AGENT"), v("Mozilla/5.0"));
    assert_eq!(var(&env, "HTTP_ACCEPT"), v("text/html"));
    assert_eq!(var(&env, "HTTP_ACCEPT_LANGUAGE"), v("en"));
    assert_eq!(var(&env, "HTTP_X_CUSTOM_THING"), v("42"));
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(env.scheme, Scheme::Http);
    // Well-known variables use their enum keys (interned by the bridge).
    assert!(env.vars.iter().any(|(k, _)| *k == EnvKey::Cgi(CgiVar::PathInfo)));
    let all = keys(&env);
    assert_eq!(all.len(), all.iter().collect::<HashSet<_>>().len(), "duplicate keys: {all:?}");
}

#[test]
fn query_string_forms() {
    let query = |target: &str| {
        let env = environ(format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes());
        (var(&env, "PATH_INFO").unwrap(), var(&env, "QUERY_STRING").unwrap())
    };
    assert_eq!(query("/"), (b"/".to_vec(), b"".to_vec()));
    assert_eq!(query("/a?"), (b"/a".to_vec(), b"".to_vec()));
    assert_eq!(query("/a?b?c=%41"), (b"/a".to_vec(), b"b?c=%41".to_vec()));
    assert_eq!(query("/%3F?x"), (b"/?".to_vec(), b"x".to_vec()));
    assert_eq!(query("/%zz%2"), (b"/%zz%2".to_vec(), b"".to_vec()));
    assert_eq!(query("/a%2Fb%00"), (b"/a/b\x00".to_vec(), b"".to_vec()));
}

#[test]
fn underscore_headers_are_dropped() {
    let env = environ(
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Foo: bar\r\nX_Foo: under\r\nContent_Length: 5\r\n\r\n",
    );
    assert_eq!(var(&env, "HTTP_X_FOO"), v("bar"));
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(var(&env, "HTTP_CONTENT_LENGTH"), None);
    let env = environ(b"GET / HTTP/1.1\r\nHost: a\r\nX_Forwarded_For: 1.2.3.4\r\n\r\n");
    assert_eq!(var(&env, "HTTP_X_FORWARDED_FOR"), None);
}

#[test]
fn repeated_headers_are_joined_in_order() {
    let env = environ(
        b"GET / HTTP/1.1\r\nHost: a\r\nAccept: a/b\r\nX-Forwarded-For: 1.1.1.1\r\nCookie: a=1\r\naccept: c/d\r\n\
COOKIE: b=2\r\nx-forwarded-for: 2.2.2.2, 3.3.3.3\r\nCookie: c=3\r\nX-Once: 1\r\n\r\n",
    );
    assert_eq!(var(&env, "HTTP_ACCEPT"), v("a/b, c/d"));
    assert_eq!(var(&env, "HTTP_X_FORWARDED_FOR"), v("1.1.1.1, 2.2.2.2, 3.3.3.3"));
    assert_eq!(var(&env, "HTTP_COOKIE"), v("a=1; b=2; c=3"));
    assert_eq!(var(&env, "HTTP_X_ONCE"), v("1"));
    let all = keys(&env);
    assert_eq!(all.len(), all.iter().collect::<HashSet<_>>().len(), "duplicate keys: {all:?}");
    // Empty values are still joined.
    let env = environ(b"GET / HTTP/1.1\r\nHost: a\r\nX-E:\r\nX-E: b\r\n\r\n");
    assert_eq!(var(&env, "HTTP_X_E"), v(", b"));
}

#[test]
fn content_headers_are_not_duplicated_as_http() {
    let env = environ(
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!(var(&env, "CONTENT_TYPE"), v("text/plain"));
    assert_eq!(var(&env, "CONTENT_LENGTH"), v("3"));
    assert_eq!(var(&env, "HTTP_CONTENT_TYPE"), None);
    assert_eq!(var(&env, "HTTP_CONTENT_LENGTH"), None);
    let env = environ(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(var(&env, "CONTENT_LENGTH"), v("0"));
    let env = environ(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Type: a/b\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(var(&env, "CONTENT_TYPE"), v("a/b"));
    assert_eq!(var(&env, "HTTP_TRANSFER_ENCODING"), v("chunked"));
}

#[test]
fn server_name_and_port_from_host() {
    let server = |host: &str| {
        let env = environ(format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes());
        (
            String::from_utf8(var(&env, "SERVER_NAME").unwrap()).unwrap(),
            String::from_utf8(var(&env, "SERVER_PORT").unwrap()).unwrap(),
        )
    };
    // Without a port in Host, the port the request arrived on (8080 here),
    // as uWSGI and CGI servers report it.
    assert_eq!(server("example.com"), ("example.com".into(), "8080".into()));
    assert_eq!(server("Example.COM:8081"), ("Example.COM".into(), "8081".into()));
    assert_eq!(server("[::1]:8000"), ("[::1]".into(), "8000".into()));
    assert_eq!(server("[2001:db8::1]"), ("[2001:db8::1]".into(), "8080".into()));
    assert_eq!(server("127.0.0.1:"), ("127.0.0.1".into(), "8080".into()));
    // Empty Host: the listening address.
    assert_eq!(server(""), ("10.0.0.1".into(), "8080".into()));
}

fn conn(peer: SocketAddress, local: SocketAddress) -> ConnInfo {
    ConnInfo::new(peer, local)
}

#[test]
fn server_name_falls_back_to_the_listener() {
    let tcp = |s: &str| SocketAddress::Tcp(s.parse().unwrap());
    let unix = SocketAddress::Unix(None);
    let http10 = b"GET / HTTP/1.0\r\n\r\n";

    let env = environ_with(http10, &conn(tcp("192.0.2.1:1000"), tcp("10.0.0.1:8080")));
    assert_eq!(var(&env, "SERVER_NAME"), v("10.0.0.1"));
    assert_eq!(var(&env, "SERVER_PORT"), v("8080"));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), v("HTTP/1.0"));

    let env = environ_with(http10, &conn(tcp("[::ffff:192.0.2.1]:1000"), tcp("[::1]:9000")));
    assert_eq!(var(&env, "SERVER_NAME"), v("[::1]"));
    assert_eq!(var(&env, "SERVER_PORT"), v("9000"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("192.0.2.1"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("1000"));

    let env = environ_with(http10, &conn(tcp("[2001:db8::5]:1000"), tcp("[::1]:9000")));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("2001:db8::5"));

    let env = environ_with(
        http10,
        &conn(unix.clone(), SocketAddress::Unix(Some(std::sync::Arc::new("/run/app.sock".into())))),
    );
    assert_eq!(var(&env, "SERVER_NAME"), v("localhost"));
    assert_eq!(var(&env, "SERVER_PORT"), v("0"));
    assert_eq!(var(&env, "REMOTE_ADDR"), None);
    assert_eq!(var(&env, "REMOTE_PORT"), None);

    // Host wins over the listener, on a unix socket too; with no port
    // there, a unix socket has none to give: the scheme's.
    let env =
        environ_with(b"GET / HTTP/1.1\r\nHost: site:81\r\n\r\n", &conn(unix.clone(), unix.clone()));
    assert_eq!(var(&env, "SERVER_NAME"), v("site"));
    assert_eq!(var(&env, "SERVER_PORT"), v("81"));
    let env =
        environ_with(b"GET / HTTP/1.1\r\nHost: site\r\n\r\n", &conn(unix.clone(), unix.clone()));
    assert_eq!(var(&env, "SERVER_PORT"), v("80"));
    let env = environ_with(
        b"GET https://site/ HTTP/1.1\r\nHost: site\r\n\r\n",
        &conn(unix.clone(), unix),
    );
    assert_eq!(var(&env, "SERVER_PORT"), v("443"));
}

#[test]
fn absolute_form_takes_the_host_from_the_target() {
    let env =
        environ(b"GET http://evil.example:8081/x/%41?q=1 HTTP/1.1\r\nHost: good.example\r\n\r\n");
    assert_eq!(var(&env, "PATH_INFO"), v("/x/A"));
    assert_eq!(var(&env, "QUERY_STRING"), v("q=1"));
    assert_eq!(var(&env, "REQUEST_URI"), v("http://evil.example:8081/x/%41?q=1"));
    assert_eq!(var(&env, "SERVER_NAME"), v("evil.example"));
    assert_eq!(var(&env, "SERVER_PORT"), v("8081"));
    assert_eq!(var(&env, "HTTP_HOST"), v("evil.example:8081"));
    assert_eq!(env.vars.iter().filter(|(k, _)| k.as_bytes() == b"HTTP_HOST").count(), 1);

    let env = environ(b"GET HTTPS://h HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(var(&env, "PATH_INFO"), v("/"));
    assert_eq!(var(&env, "SERVER_PORT"), v("8080"), "the port it arrived on");
    let env = environ(b"GET http://h?x=1 HTTP/1.0\r\n\r\n");
    assert_eq!(var(&env, "PATH_INFO"), v("/"));
    assert_eq!(var(&env, "QUERY_STRING"), v("x=1"));
    assert_eq!(var(&env, "HTTP_HOST"), v("h"));
}

#[test]
fn asterisk_form() {
    let env = environ(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
    assert_eq!(var(&env, "PATH_INFO"), v("*"));
    assert_eq!(var(&env, "REQUEST_URI"), v("*"));
    assert_eq!(var(&env, "QUERY_STRING"), v(""));
}

#[test]
fn values_are_raw_bytes() {
    let env = environ(b"GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9\r\nReferer: \xff\r\n\r\n");
    assert_eq!(var(&env, "HTTP_X_NAME"), Some(b"caf\xc3\xa9".to_vec()));
    assert_eq!(var(&env, "HTTP_REFERER"), Some(b"\xff".to_vec()));
}

#[test]
fn keys_of_long_and_odd_names() {
    let name = format!("X-{}", "Long-Name".repeat(10));
    let env = environ(
        format!("GET / HTTP/1.1\r\nHost: a\r\n{name}: 1\r\nx-lower.dot~tilde!: 2\r\n\r\n")
            .as_bytes(),
    );
    let key = format!("HTTP_{}", name.to_uppercase().replace('-', "_"));
    assert_eq!(var(&env, &key), v("1"));
    assert_eq!(var(&env, "HTTP_X_LOWER.DOT~TILDE!"), v("2"));
}

#[test]
fn header_order_is_kept() {
    let env = environ(b"GET / HTTP/1.1\r\nHost: a\r\nB: 1\r\nA: 2\r\nC: 3\r\n\r\n");
    let http: Vec<String> = keys(&env).into_iter().filter(|k| k.starts_with("HTTP_")).collect();
    assert_eq!(http, ["HTTP_HOST", "HTTP_B", "HTTP_A", "HTTP_C"]);
}

#[test]
fn write_environ_appends() {
    let head = head_of(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
    let mut env = Environ::default();
    env.set_other("wsgi.marker", "1");
    head.write_environ(&common::tcp_conn(), &mut env);
    assert_eq!(var(&env, "wsgi.marker"), v("1"));
    assert_eq!(var(&env, "REQUEST_METHOD"), v("GET"));
}
