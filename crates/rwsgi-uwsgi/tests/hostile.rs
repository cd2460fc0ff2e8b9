//! The hostile-input catalogue for the uwsgi protocol (hostile-inputs.md
//! §2, U1–U20): every case a codec can decide gets the right reaction,
//! whatever the packet boundaries.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    Event, assert_rejected, assert_rejected_with, check, check_eof, check_with, environ, get_with,
    head_of, header, limits, packet, raw_packet, vars_block,
};
use rwsgi_proto::{BodyLength, Limits, ProtoError, RequestHead, ServerCodec};
use rwsgi_testkit::var;
use rwsgi_uwsgi::UwsgiCodec;

fn eof() -> Event {
    Event::Error(None, ProtoError::UnexpectedEof.to_string())
}

#[test]
fn u1_fewer_than_four_header_bytes_then_close_is_a_quiet_close() {
    // No status: there is nobody to answer a connection that said nothing
    // intelligible. (HTTP-looking prefixes too: "GE" may be anything.)
    for input in [&b"\x00"[..], b"\x00\x10", b"\x00\x10\x00", b"G", b"GE", b"PRI"] {
        assert_eq!(check(input), [eof()], "{input:?}");
    }
}

#[test]
fn u2_a_datasize_larger_than_what_arrives() {
    let mut input = header(0, 100, 0).to_vec();
    input.extend_from_slice(&vars_block(&[(b"REQUEST_METHOD", b"GET")]));
    // Idle: the codec waits (the core's read deadline ends it)...
    assert_eq!(check_eof(&input, limits(), false), []);
    // ...and that deadline answers 400, not 408: a proxy does not dawdle.
    let timeout = UwsgiCodec::new(limits()).head_timeout();
    assert_eq!(timeout.status(), Some(400));
    // Closed: a quiet close.
    assert_eq!(check(&input), [eof()]);
}

#[test]
fn u3_a_datasize_over_buffer_size_is_refused_from_the_header() {
    let limits = Limits { max_head: 4096, ..limits() };
    // Only the header is sent: the answer needs nothing more.
    assert_rejected_with(&header(0, 4097, 0), limits, 431, "buffer-size");
    assert_rejected_with(&header(0, 65535, 0), limits, 431, "buffer-size");
    let mut input = header(0, 4097, 0).to_vec();
    input.extend_from_slice(&vars_block(&[(b"REQUEST_METHOD", b"GET")]));
    assert_rejected_with(&input, limits, 431, "buffer-size");
}

#[test]
fn u4_lengths_running_past_the_block() {
    let get = vars_block(&[(b"REQUEST_METHOD", b"GET")]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Key length 20, but only 5 bytes left in the block.
        ([&get[..], b"\x14\x00ABCDE"].concat(), "key runs past"),
        // The value length says 9; 2 bytes left.
        ([&get[..], b"\x01\x00K\x09\x00ab"].concat(), "value runs past"),
        // One trailing byte: half a key length.
        ([&get[..], b"\x05"].concat(), "ends inside a key length"),
        // A key that ends the block, with no value length after it.
        ([&get[..], b"\x01\x00K"].concat(), "ends inside a value length"),
        ([&get[..], b"\x01\x00K\x00"].concat(), "ends inside a value length"),
        // The very first key runs past.
        (b"\xff\xff".to_vec(), "key runs past"),
        (b"\x0e\x00REQUEST_METHOD\x04\x00GET".to_vec(), "value runs past"),
    ];
    for (block, message) in cases {
        assert_rejected(&raw_packet(&block, b""), 400, message);
        // Bytes after the block (a body) change nothing.
        assert_rejected(&raw_packet(&block, b"\x03\x00GET"), 400, message);
    }
}

#[test]
fn u4_errors_come_before_the_rest_of_a_lying_block() {
    // datasize says 1000; the malformed var comes first: 400 without
    // waiting for the other 990 bytes, and without an EOF.
    let mut input = header(0, 1000, 0).to_vec();
    input.extend_from_slice(b"\x00\x00junk");
    let events = check_eof(&input, limits(), false);
    assert!(matches!(&events[..], [Event::Error(Some(400), m)] if m.contains("zero-length key")));
    let mut input = header(0, 1000, 0).to_vec();
    input.extend_from_slice(&vars_block(&[(b"CONTENT_LENGTH", b"-1")]));
    let events = check_eof(&input, limits(), false);
    assert!(matches!(&events[..], [Event::Error(Some(400), m)] if m.contains("CONTENT_LENGTH")));
}

#[test]
fn u5_zero_length_keys() {
    assert_rejected(&packet(&[(b"", b"x")], b""), 400, "zero-length key");
    assert_rejected(&packet(&[(b"", b"")], b""), 400, "zero-length key");
    assert_rejected(&get_with(&[(b"", b"x")]), 400, "zero-length key");
    // An empty value is fine.
    assert_eq!(head_of(&get_with(&[(b"X", b"")])).var(b"X"), Some(&b""[..]));
}

#[test]
fn u6_modifier1_other_than_zero() {
    let block = vars_block(&[(b"REQUEST_METHOD", b"GET")]);
    for modifier1 in [1u8, 5, 7, 9, 14, 17, 30, 72, 100, 200, 255] {
        let mut input = header(modifier1, u16::try_from(block.len()).unwrap(), 0).to_vec();
        input.extend_from_slice(&block);
        assert_rejected(&input, 501, "modifier1");
        // Decided from the first byte alone, unless it may begin HTTP
        // text (72 is `H`: HEAD?).
        let events = check_eof(&[modifier1], limits(), false);
        if modifier1 == b'H' {
            assert_eq!(events, []);
        } else {
            assert!(matches!(&events[..], [Event::Error(Some(501), _)]), "{modifier1}: {events:?}");
        }
    }
}

#[test]
fn u7_http_text_on_the_uwsgi_socket() {
    for input in [
        &b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..],
        b"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx",
        b"PUT / HTTP/1.0\r\n\r\n",
        b"HEAD / HTTP/1.0\r\n\r\n",
        b"DELETE / HTTP/1.1\r\n\r\n",
        b"OPTIONS * HTTP/1.1\r\n\r\n",
        b"PATCH / HTTP/1.1\r\n\r\n",
        b"CONNECT a:443 HTTP/1.1\r\n\r\n",
        b"TRACE / HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET ",
    ] {
        assert_rejected(input, 400, "use http-socket");
        // Checked before modifier1: never a 501.
        let events = check(input);
        assert!(
            matches!(&events[..], [Event::Error(Some(400), m)] if m.contains("wrong protocol"))
        );
    }
    // Lower case or other bytes are no method: an unknown modifier.
    assert_rejected(b"get / HTTP/1.1\r\n\r\n", 501, "modifier1");
    assert_rejected(b"GETS / HTTP/1.1\r\n\r\n", 501, "modifier1");
}

#[test]
fn u8_content_length_values() {
    for value in [
        &b"+5"[..],
        b"-1",
        b"5xyz",
        b" 5",
        b"5 ",
        b"0x5",
        b"5.0",
        b"1e3",
        b"5,5",
        b"5\x00",
        b"\xd9\xa5",
        b"1234567890123456789012345",
        b"18446744073709551616",
        b"99999999999999999999",
    ] {
        let mut input = get_with(&[(b"CONTENT_LENGTH", value)]);
        input.extend_from_slice(b"12345");
        assert_rejected(&input, 400, "CONTENT_LENGTH");
    }
    // Empty: no body at all.
    let head = head_of(&get_with(&[(b"CONTENT_LENGTH", b"")]));
    assert_eq!(head.body_length(), BodyLength::Empty);
    // The largest u64 is a valid (if unreachable) length.
    let head = head_of(&get_with(&[(b"CONTENT_LENGTH", b"18446744073709551615")]));
    assert_eq!(head.body_length(), BodyLength::Known(u64::MAX));
}

#[test]
fn u8_content_length_sent_twice_is_ambiguous_unless_equal() {
    for (a, b) in [(&b"5"[..], &b"6"[..]), (b"", b"5"), (b"5", b"")] {
        let mut input = get_with(&[(b"CONTENT_LENGTH", a), (b"CONTENT_LENGTH", b)]);
        input.extend_from_slice(b"12345");
        assert_rejected(&input, 400, "CONTENT_LENGTH sent twice with different values");
    }
    // The same value twice (a uwsgi_param repeating the params file) frames one body.
    let head = head_of(&get_with(&[(b"CONTENT_LENGTH", b"5"), (b"CONTENT_LENGTH", b"5")]));
    assert_eq!(head.body_length(), BodyLength::Known(5));
    // HTTP_CONTENT_LENGTH is only a header copy: it frames nothing.
    let head = head_of(&get_with(&[(b"HTTP_CONTENT_LENGTH", b"99")]));
    assert_eq!(head.body_length(), BodyLength::Empty);
}

#[test]
fn u9_a_body_shorter_than_content_length() {
    let mut input = get_with(&[(b"CONTENT_LENGTH", b"50")]);
    input.extend_from_slice(b"only this");
    let events = check(&input);
    assert_eq!(events[1..], [Event::Data(b"only this".to_vec()), eof()]);
    // Idle rather than closed: the frames so far, then a wait.
    let events = check_eof(&input, limits(), false);
    assert_eq!(events[1..], [Event::Data(b"only this".to_vec())]);
}

#[test]
fn u10_u11_content_length_over_limit_post() {
    let limits = Limits { max_body: Some(1000), ..limits() };
    for value in [&b"1001"[..], b"1000000000000", b"18446744073709551615"] {
        // Refused at head time: no head, no body byte read.
        let mut input = get_with(&[(b"CONTENT_LENGTH", value)]);
        assert_rejected_with(&input, limits, 413, "limit-post");
        input.extend_from_slice(&[b'x'; 2000]);
        assert_rejected_with(&input, limits, 413, "limit-post");
    }
}

#[test]
fn u12_duplicate_keys_are_joined() {
    let env = environ(&get_with(&[
        (b"HTTP_COOKIE", b"a=1"),
        (b"HTTP_X_A", b"1"),
        (b"HTTP_COOKIE", b"b=2"),
        (b"HTTP_X_A", b"2"),
        (b"HTTP_X_A", b""),
    ]));
    assert_eq!(var(&env, "HTTP_COOKIE"), Some(b"a=1; b=2".to_vec()));
    assert_eq!(var(&env, "HTTP_X_A"), Some(b"1, 2, ".to_vec()));
    rwsgi_testkit::assert_unique_keys(&env);
    // REQUEST_METHOD twice: which one would the app see? Neither.
    assert_rejected(
        &packet(&[(b"REQUEST_METHOD", b"GET"), (b"REQUEST_METHOD", b"POST")], b""),
        400,
        "REQUEST_METHOD sent twice with different values",
    );
}

#[test]
fn u13_wsgi_keys_are_dropped() {
    let env = environ(&get_with(&[
        (b"wsgi.input", b"evil"),
        (b"wsgi.url_scheme", b"https"),
        (b"wsgi.multithread", b"1"),
        (b"WSGI.errors", b"x"),
        (b"uwsgi.version", b"9"),
        (b"uwsgi.core", b"0"),
    ]));
    assert!(
        !env.vars.iter().any(|(k, _)| {
            let k = k.as_bytes().to_ascii_lowercase();
            k.starts_with(b"wsgi.") || k.starts_with(b"uwsgi.")
        }),
        "{:?}",
        rwsgi_testkit::keys(&env)
    );
    assert_eq!(env.scheme, rwsgi_proto::Scheme::Http);
}

#[test]
fn u14_magic_vars_are_inert() {
    let magic: [(&[u8], &[u8]); 11] = [
        (b"UWSGI_SETENV", b"RWSGI_TEST_MAGIC=pwned"),
        (b"UWSGI_POSTFILE", b"/etc/passwd"),
        (b"UWSGI_FILE", b"/tmp/evil.py"),
        (b"UWSGI_SCRIPT", b"evil"),
        (b"UWSGI_MODULE", b"evil"),
        (b"UWSGI_CALLABLE", b"app"),
        (b"UWSGI_CHDIR", b"/"),
        (b"UWSGI_PYHOME", b"/tmp/venv"),
        (b"UWSGI_APPID", b"other"),
        (b"UWSGI_TOUCH_RELOAD", b"/tmp/reload"),
        (b"UWSGI_CACHE_GET", b"key"),
    ];
    let head = head_of(&get_with(&magic));
    // No body from a local file, no environment change, no directory change.
    assert_eq!(head.body_length(), BodyLength::Empty);
    let cwd = std::env::current_dir().unwrap();
    let mut env = rwsgi_proto::Environ::default();
    head.write_environ(&common::tcp_conn(), &mut env);
    assert_eq!(std::env::var_os("RWSGI_TEST_MAGIC"), None);
    assert_eq!(std::env::current_dir().unwrap(), cwd);
    // Passed on as plain strings, nothing more.
    for (key, value) in magic {
        let key = std::str::from_utf8(key).unwrap();
        assert_eq!(var(&env, key), Some(value.to_vec()), "{key}");
    }
    assert_eq!(head.describe(), "GET ");
}

#[test]
fn u16_empty_block_or_no_method() {
    assert_rejected(&raw_packet(b"", b""), 400, "request without CGI variables");
    assert_rejected(
        &raw_packet(b"", b"GET / HTTP/1.1\r\n\r\n"),
        400,
        "request without CGI variables",
    );
    assert_rejected(&packet(&[(b"PATH_INFO", b"/")], b""), 400, "without REQUEST_METHOD");
    assert_rejected(&packet(&[(b"request_method", b"GET")], b""), 400, "without REQUEST_METHOD");
    assert_rejected(&packet(&[(b"REQUEST_METHOD", b"")], b""), 400, "empty REQUEST_METHOD");
}

#[test]
fn u17_high_bytes_and_nul_pass_through_unchanged() {
    let env = environ(&get_with(&[
        (b"HTTP_X_LATIN", b"caf\xc3\xa9 \xff\x80"),
        (b"HTTP_X_NUL", b"a\x00b"),
        (b"X_\xe9", b"key with a high byte"),
        (b"PATH_INFO", b"/caf\xc3\xa9\x00"),
    ]));
    assert_eq!(var(&env, "HTTP_X_LATIN"), Some(b"caf\xc3\xa9 \xff\x80".to_vec()));
    assert_eq!(var(&env, "HTTP_X_NUL"), Some(b"a\x00b".to_vec()));
    assert_eq!(var(&env, "PATH_INFO"), Some(b"/caf\xc3\xa9\x00".to_vec()));
    assert!(env.vars.iter().any(|(k, _)| k.as_bytes() == b"X_\xe9"));
}

#[test]
fn u18_odd_paths_are_passed_as_sent() {
    for path in [&b"relative"[..], b"/../../etc/passwd", b"/a%00b", b"/a%2Fb", b"", b"//x"] {
        let env = environ(&get_with(&[(b"PATH_INFO", path)]));
        // nginx sends $document_uri already decoded: never decode again.
        assert_eq!(var(&env, "PATH_INFO"), Some(path.to_vec()));
    }
}

#[test]
fn u19_thousands_of_tiny_vars() {
    // max_headers 100: up to 164 vars.
    let keys: Vec<Vec<u8>> = (0..1000).map(|i| format!("K{i}").into_bytes()).collect();
    let vars = |n: usize| -> Vec<u8> {
        let mut vars: Vec<(&[u8], &[u8])> = vec![(b"REQUEST_METHOD", b"GET")];
        vars.extend(keys.iter().take(n - 1).map(|k| (&k[..], &b""[..])));
        packet(&vars, b"")
    };
    let big = Limits { max_head: 65535, ..limits() };
    let events = check_with(&vars(164), big);
    assert!(matches!(events[..], [Event::Head(_), Event::End]), "{events:?}");
    assert_rejected_with(&vars(165), big, 431, "too many fields");
    assert_rejected_with(&vars(1000), big, 431, "too many fields");
    // Empty keys and values cost 4 bytes each: the count cap, not the
    // size, stops them.
    let mut block = vars_block(&[(b"REQUEST_METHOD", b"GET")]);
    for _ in 0..1000 {
        block.extend_from_slice(b"\x01\x00K\x00\x00");
    }
    assert_rejected_with(&raw_packet(&block, b""), big, 431, "too many fields");
}

#[test]
fn u20_a_slow_drip_gives_the_same_result() {
    // `check` feeds every packet one byte at a time as well; here a large
    // block and body dripped byte by byte.
    let value = vec![b'v'; 3000];
    let mut input = get_with(&[(b"HTTP_X_BIG", &value), (b"CONTENT_LENGTH", b"2000")]);
    input.extend_from_slice(&[b'b'; 2000]);
    let events = check(&input);
    assert_eq!(events.len(), 3);
    assert_eq!(events[1], Event::Data(vec![b'b'; 2000]));
}
