//! The CGI variables built from a uwsgi packet (PEP 3333, and the "From
//! uwsgi vars" derivations of protocols.md §c).

#![allow(clippy::unwrap_used)]

mod common;

use common::{environ, environ_with, get_with, head_of, nginx_vars, packet, tcp_conn};
use rwsgi_proto::{CgiVar, ConnInfo, EnvKey, Environ, RequestHead, Scheme, SocketAddress};
use rwsgi_testkit::{assert_unique_keys, keys, unix_conn, var};

fn v(s: &str) -> Option<Vec<u8>> {
    Some(s.as_bytes().to_vec())
}

#[test]
fn an_nginx_post() {
    let mut vars =
        nginx_vars(b"POST", b"/x?a=1", b"/x", b"a=1", b"application/x-www-form-urlencoded", b"11");
    vars.push((b"HTTP_CONTENT_TYPE", b"application/x-www-form-urlencoded"));
    vars.push((b"HTTP_CONTENT_LENGTH", b"11"));
    let env = environ(&packet(&vars, b"name=value&"));
    assert_eq!(var(&env, "REQUEST_METHOD"), v("POST"));
    assert_eq!(var(&env, "SCRIPT_NAME"), v(""));
    assert_eq!(var(&env, "PATH_INFO"), v("/x"));
    assert_eq!(var(&env, "QUERY_STRING"), v("a=1"));
    assert_eq!(var(&env, "REQUEST_URI"), v("/x?a=1"));
    assert_eq!(var(&env, "CONTENT_TYPE"), v("application/x-www-form-urlencoded"));
    assert_eq!(var(&env, "CONTENT_LENGTH"), v("11"));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), v("HTTP/1.1"));
    assert_eq!(var(&env, "SERVER_NAME"), v("example.com"));
    assert_eq!(var(&env, "SERVER_PORT"), v("80"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("203.0.113.9"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("40312"));
    assert_eq!(var(&env, "DOCUMENT_ROOT"), v("/usr/share/nginx/html"));
    assert_eq!(var(&env, "REQUEST_SCHEME"), v("http"));
    assert_eq!(var(&env, "HTTP_HOST"), v("example.com"));
    assert_eq!(var(&env, "HTTP_USER_AGENT"), v("curl/8.5.0"));
    assert_eq!(var(&env, "HTTP_ACCEPT"), v("*/*"));
    // CGI carries these as CONTENT_*; wsgiref.validate rejects the copies.
    assert_eq!(var(&env, "HTTP_CONTENT_TYPE"), None);
    assert_eq!(var(&env, "HTTP_CONTENT_LENGTH"), None);
    assert_eq!(env.scheme, Scheme::Http);
    assert_unique_keys(&env);
    // Exactly the vars sent (minus the two copies) plus SCRIPT_NAME.
    assert_eq!(env.vars.len(), vars.len() - 2 + 1, "{:?}", keys(&env));
    // Well-known keys are enum keys (interned by the bridge), others bytes.
    assert!(env.vars.iter().any(|(k, _)| *k == EnvKey::Cgi(CgiVar::PathInfo)));
    assert!(env.vars.iter().any(|(k, _)| *k == EnvKey::Cgi(CgiVar::DocumentRoot)));
    assert!(env.vars.iter().any(|(k, _)| *k == EnvKey::Other("HTTP_USER_AGENT".into())));
    assert!(!env.vars.iter().any(|(k, _)| *k == EnvKey::Other("PATH_INFO".into())));
}

#[test]
fn an_nginx_get_has_no_content_vars() {
    let vars = nginx_vars(b"GET", b"/", b"/", b"", b"", b"");
    let env = environ(&packet(&vars, b""));
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_eq!(var(&env, "QUERY_STRING"), v(""));
    assert_unique_keys(&env);
}

#[test]
fn values_are_views_of_the_block() {
    let head = head_of(&get_with(&[(b"HTTP_X_A", b"value"), (b"X_CUSTOM", b"other")]));
    let mut env = Environ::default();
    head.write_environ(&tcp_conn(), &mut env);
    for (key, value) in head.vars() {
        let key = std::str::from_utf8(key).unwrap();
        let got = env.get(key).unwrap();
        assert_eq!(got.as_ptr(), value.as_ptr(), "{key} was copied");
    }
}

#[test]
fn repeated_keys_become_one_entry_in_order() {
    let head = head_of(&get_with(&[
        (b"HTTP_ACCEPT", b"text/html"),
        (b"HTTP_COOKIE", b"a=1"),
        (b"HTTP_ACCEPT", b"*/*"),
        (b"HTTP_COOKIE", b"b=2"),
        (b"HTTP_COOKIE", b"c=3"),
        (b"SERVER_NAME", b"a"),
        (b"SERVER_NAME", b"b"),
    ]));
    let mut env = Environ::default();
    head.write_environ(&tcp_conn(), &mut env);
    assert_eq!(var(&env, "HTTP_ACCEPT"), v("text/html, */*"));
    assert_eq!(var(&env, "HTTP_COOKIE"), v("a=1; b=2; c=3"));
    // Not a header: a proxy's override, the last value wins.
    assert_eq!(var(&env, "SERVER_NAME"), v("b"));
    assert_unique_keys(&env);
    // The entry is at the first occurrence's place.
    let order = keys(&env);
    let at = |k: &str| order.iter().position(|x| x == k).unwrap();
    assert!(at("REQUEST_METHOD") < at("HTTP_ACCEPT"));
    assert!(at("HTTP_ACCEPT") < at("HTTP_COOKIE"));
    // The head itself keeps every occurrence; `var` is the last one.
    assert_eq!(head.var(b"HTTP_COOKIE"), Some(&b"c=3"[..]));
    assert_eq!(head.vars().filter(|(k, _)| *k == b"HTTP_COOKIE").count(), 3);
}

#[test]
fn content_vars() {
    let env = environ(&get_with(&[(b"CONTENT_TYPE", b""), (b"CONTENT_LENGTH", b"")]));
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    let env = environ(&get_with(&[(b"CONTENT_TYPE", b"text/plain"), (b"CONTENT_LENGTH", b"0")]));
    assert_eq!(var(&env, "CONTENT_TYPE"), v("text/plain"));
    assert_eq!(var(&env, "CONTENT_LENGTH"), v("0"));
    let env = environ(&get_with(&[
        (b"HTTP_CONTENT_TYPE", b"text/plain"),
        (b"HTTP_CONTENT_LENGTH", b"5"),
        (b"HTTP_CONTENT_MD5", b"x"),
    ]));
    assert_eq!(var(&env, "HTTP_CONTENT_TYPE"), None);
    assert_eq!(var(&env, "HTTP_CONTENT_LENGTH"), None);
    assert_eq!(var(&env, "CONTENT_TYPE"), None);
    assert_eq!(var(&env, "HTTP_CONTENT_MD5"), v("x"));
}

#[test]
fn defaults_for_what_was_not_sent() {
    let env = environ(&get_with(&[]));
    assert_eq!(var(&env, "SCRIPT_NAME"), v(""));
    assert_eq!(var(&env, "PATH_INFO"), v(""));
    assert_eq!(var(&env, "QUERY_STRING"), v(""));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), v("HTTP/1.0"));
    assert_eq!(var(&env, "SERVER_NAME"), v("10.0.0.1"));
    assert_eq!(var(&env, "SERVER_PORT"), v("3031"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("192.0.2.7"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("51234"));
    assert_eq!(var(&env, "REQUEST_URI"), None);
    assert_eq!(var(&env, "CONTENT_LENGTH"), None);
    assert_unique_keys(&env);
}

#[test]
fn sent_values_win_over_defaults() {
    let env = environ(&get_with(&[
        (b"SCRIPT_NAME", b"/app"),
        (b"PATH_INFO", b"/p"),
        (b"REQUEST_URI", b"/app/other"),
        (b"QUERY_STRING", b"q"),
        (b"SERVER_PROTOCOL", b"HTTP/1.1"),
        (b"SERVER_NAME", b"site"),
        (b"SERVER_PORT", b"8443"),
        (b"REMOTE_ADDR", b"unix:"),
        (b"REMOTE_PORT", b""),
    ]));
    assert_eq!(var(&env, "SCRIPT_NAME"), v("/app"));
    assert_eq!(var(&env, "PATH_INFO"), v("/p"));
    assert_eq!(var(&env, "QUERY_STRING"), v("q"));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), v("HTTP/1.1"));
    assert_eq!(var(&env, "SERVER_NAME"), v("site"));
    assert_eq!(var(&env, "SERVER_PORT"), v("8443"));
    // REMOTE_* are reported as sent, even empty.
    assert_eq!(var(&env, "REMOTE_ADDR"), v("unix:"));
    assert_eq!(var(&env, "REMOTE_PORT"), v(""));
    assert_unique_keys(&env);
}

#[test]
fn empty_server_vars_count_as_not_sent() {
    let env = environ(&get_with(&[
        (b"SERVER_NAME", b""),
        (b"SERVER_PORT", b""),
        (b"SERVER_PROTOCOL", b""),
    ]));
    assert_eq!(var(&env, "SERVER_NAME"), v("10.0.0.1"));
    assert_eq!(var(&env, "SERVER_PORT"), v("3031"));
    assert_eq!(var(&env, "SERVER_PROTOCOL"), v("HTTP/1.0"));
    assert_unique_keys(&env);
}

#[test]
fn only_the_missing_half_of_a_pair_is_filled_in() {
    let env = environ(&get_with(&[(b"SERVER_NAME", b"site"), (b"REMOTE_ADDR", b"198.51.100.1")]));
    assert_eq!(var(&env, "SERVER_NAME"), v("site"));
    assert_eq!(var(&env, "SERVER_PORT"), v("3031"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("198.51.100.1"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("51234"));
    assert_unique_keys(&env);
    let env = environ(&get_with(&[(b"SERVER_PORT", b"81"), (b"REMOTE_PORT", b"9")]));
    assert_eq!(var(&env, "SERVER_NAME"), v("10.0.0.1"));
    assert_eq!(var(&env, "SERVER_PORT"), v("81"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("192.0.2.7"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("9"));
    assert_unique_keys(&env);
}

#[test]
fn socket_fallbacks_on_unix_and_ipv6() {
    let env = environ_with(&get_with(&[]), &unix_conn());
    assert_eq!(var(&env, "SERVER_NAME"), v("localhost"));
    assert_eq!(var(&env, "SERVER_PORT"), v("0"));
    assert_eq!(var(&env, "REMOTE_ADDR"), None);
    assert_eq!(var(&env, "REMOTE_PORT"), None);
    let v6 = ConnInfo::new(
        SocketAddress::Tcp("[2001:db8::7]:4000".parse().unwrap()),
        SocketAddress::Tcp("[::1]:3031".parse().unwrap()),
    );
    let env = environ_with(&get_with(&[]), &v6);
    assert_eq!(var(&env, "SERVER_NAME"), v("[::1]"));
    assert_eq!(var(&env, "REMOTE_ADDR"), v("2001:db8::7"));
    assert_eq!(var(&env, "REMOTE_PORT"), v("4000"));
}

#[test]
fn path_info_from_request_uri() {
    let cases: [(&[u8], &[u8]); 8] = [
        (b"/caf%C3%A9/a%20b?x=%20", b"/caf\xc3\xa9/a b"),
        (b"/plain?x", b"/plain"),
        (b"/", b"/"),
        (b"?only=query", b""),
        (b"", b""),
        (b"http://example.com/abs%2Fpath?q", b"/abs/path"),
        (b"/bad%zz%4", b"/bad%zz%4"),
        (b"/a?b?c", b"/a"),
    ];
    for (uri, path) in cases {
        let env = environ(&get_with(&[(b"REQUEST_URI", uri)]));
        assert_eq!(var(&env, "PATH_INFO"), Some(path.to_vec()), "{uri:?}");
        // QUERY_STRING is never derived: it is the proxy's to send.
        assert_eq!(var(&env, "QUERY_STRING"), v(""));
        assert_unique_keys(&env);
    }
    // PATH_INFO sent, even empty, wins over REQUEST_URI.
    let env = environ(&get_with(&[(b"REQUEST_URI", b"/from/uri"), (b"PATH_INFO", b"")]));
    assert_eq!(var(&env, "PATH_INFO"), v(""));
}

#[test]
fn scheme_rules() {
    type Vars<'a> = &'a [(&'a [u8], &'a [u8])];
    let cases: [(Vars<'_>, Scheme); 18] = [
        (&[], Scheme::Http),
        (&[(b"UWSGI_SCHEME", b"https")], Scheme::Https),
        (&[(b"UWSGI_SCHEME", b"HTTPS")], Scheme::Https),
        (&[(b"UWSGI_SCHEME", b"http"), (b"HTTPS", b"on")], Scheme::Http),
        (&[(b"UWSGI_SCHEME", b"ftp"), (b"REQUEST_SCHEME", b"https")], Scheme::Http),
        (&[(b"UWSGI_SCHEME", b""), (b"HTTPS", b"on")], Scheme::Http),
        (&[(b"HTTPS", b"on")], Scheme::Https),
        (&[(b"HTTPS", b"ON")], Scheme::Https),
        (&[(b"HTTPS", b"On")], Scheme::Https),
        (&[(b"HTTPS", b"1")], Scheme::Https),
        (&[(b"HTTPS", b"1yes")], Scheme::Https),
        (&[(b"HTTPS", b"off")], Scheme::Http),
        (&[(b"HTTPS", b"")], Scheme::Http),
        (&[(b"HTTPS", b"0")], Scheme::Http),
        (&[(b"HTTPS", b"off"), (b"REQUEST_SCHEME", b"https")], Scheme::Https),
        (&[(b"REQUEST_SCHEME", b"https")], Scheme::Https),
        (&[(b"REQUEST_SCHEME", b"http")], Scheme::Http),
        (&[(b"HTTP_X_FORWARDED_PROTO", b"https"), (b"HTTP_X_FORWARDED_SSL", b"on")], Scheme::Http),
    ];
    for (vars, scheme) in cases {
        let env = environ(&get_with(vars));
        assert_eq!(env.scheme, scheme, "{vars:?}");
    }
}

#[test]
fn describe_for_logs() {
    let head = head_of(&get_with(&[(b"REQUEST_URI", b"/a?b"), (b"PATH_INFO", b"/a")]));
    assert_eq!(head.describe(), "GET /a?b");
    let head = head_of(&get_with(&[(b"PATH_INFO", b"/p")]));
    assert_eq!(head.describe(), "GET /p");
    let head = head_of(&packet(&[(b"REQUEST_METHOD", b"M\xff"), (b"PATH_INFO", b"/\xe9")], b""));
    assert_eq!(head.describe(), "M\u{fffd} /\u{fffd}");
    let long = [b'x'; 500];
    let head = head_of(&get_with(&[(b"REQUEST_URI", &long)]));
    let described = head.describe();
    assert_eq!(described, format!("GET {}…", "x".repeat(200)));
}

#[test]
fn unknown_vars_pass_through_as_sent() {
    let env = environ(&get_with(&[
        (b"DOCUMENT_ROOT", b"/srv"),
        (b"MY_VAR", b"mine"),
        (b"lower_case", b"kept"),
        (b"HTTP_X_FORWARDED_FOR", b"1.2.3.4"),
    ]));
    assert_eq!(var(&env, "DOCUMENT_ROOT"), v("/srv"));
    assert_eq!(var(&env, "MY_VAR"), v("mine"));
    assert_eq!(var(&env, "lower_case"), v("kept"));
    assert_eq!(var(&env, "HTTP_X_FORWARDED_FOR"), v("1.2.3.4"));
}
