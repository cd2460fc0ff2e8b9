//! The uwsgi and FastCGI codecs' hot path: decoding the request nginx sends
//! for a typical browser page load (its `uwsgi_params`/`fastcgi_params`
//! variables plus the client's headers), and building its CGI environ.

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, criterion_group, criterion_main};
use rwsgi_fastcgi::{FastCgiCodec, ManagementValues};
use rwsgi_proto::{
    ConnInfo, Environ, Frame, Limits, OutBuf, RequestHead, ServerCodec, SocketAddress,
};
use rwsgi_uwsgi::UwsgiCodec;

/// What nginx sends for Chrome's page load (the request of
/// `benches/http1_codec.rs`), as CGI variables.
const VARS: &[(&str, &str)] = &[
    ("QUERY_STRING", "utm_source=feed&page=2"),
    ("REQUEST_METHOD", "GET"),
    ("CONTENT_TYPE", ""),
    ("CONTENT_LENGTH", ""),
    ("REQUEST_URI", "/blog/2024/05/some-article?utm_source=feed&page=2"),
    ("PATH_INFO", "/blog/2024/05/some-article"),
    ("DOCUMENT_ROOT", "/usr/share/nginx/html"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
    ("REQUEST_SCHEME", "http"),
    ("REMOTE_ADDR", "192.0.2.7"),
    ("REMOTE_PORT", "51234"),
    ("SERVER_PORT", "80"),
    ("SERVER_NAME", "www.example.com"),
    ("HTTP_HOST", "www.example.com"),
    ("HTTP_CONNECTION", "keep-alive"),
    ("HTTP_UPGRADE_INSECURE_REQUESTS", "1"),
    (
        "HTTP_USER_AGENT",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    ),
    (
        "HTTP_ACCEPT",
        "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8",
    ),
    ("HTTP_SEC_FETCH_SITE", "same-origin"),
    ("HTTP_SEC_FETCH_MODE", "navigate"),
    ("HTTP_SEC_FETCH_USER", "?1"),
    ("HTTP_SEC_FETCH_DEST", "document"),
    ("HTTP_ACCEPT_ENCODING", "gzip, deflate, br, zstd"),
    ("HTTP_ACCEPT_LANGUAGE", "en-US,en;q=0.9,fr;q=0.8"),
    (
        "HTTP_COOKIE",
        "sessionid=8f7a6c5e4d3b2a19087f6e5d4c3b2a19; csrftoken=Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9EdCbA; _ga=GA1.1.1234567890.1700000000; theme=dark; lang=en-US; consent=granted",
    ),
];

/// The uwsgi packet: header (modifier1 0, datasize LE, modifier2 0), vars.
fn uwsgi_packet() -> Vec<u8> {
    let mut block = Vec::new();
    for (key, value) in VARS {
        for text in [key, value] {
            block.extend_from_slice(&(text.len() as u16).to_le_bytes());
            block.extend_from_slice(text.as_bytes());
        }
    }
    let mut packet = vec![0];
    packet.extend_from_slice(&(block.len() as u16).to_le_bytes());
    packet.push(0);
    packet.extend_from_slice(&block);
    packet
}

/// One FastCGI record, padded to 8 bytes as nginx pads them.
fn record(kind: u8, content: &[u8]) -> Vec<u8> {
    let padding = (8 - content.len() % 8) % 8;
    let mut out = vec![1, kind, 0, 1];
    out.extend_from_slice(&(content.len() as u16).to_be_bytes());
    out.extend_from_slice(&[padding as u8, 0]);
    out.extend_from_slice(content);
    out.extend(std::iter::repeat_n(0, padding));
    out
}

/// nginx's request with `fastcgi_keep_conn on`: BEGIN_REQUEST, one PARAMS
/// record, the empty PARAMS and STDIN records.
fn fastcgi_request() -> Vec<u8> {
    let mut params = Vec::new();
    for (key, value) in VARS {
        for text in [key, value] {
            let len = text.len() as u32;
            if len < 128 {
                params.push(len as u8);
            } else {
                params.extend_from_slice(&(len | 0x8000_0000).to_be_bytes());
            }
        }
        params.extend_from_slice(key.as_bytes());
        params.extend_from_slice(value.as_bytes());
    }
    let mut out = record(1, &[0, 1, 1, 0, 0, 0, 0, 0]);
    out.extend(record(4, &params));
    out.extend(record(4, b""));
    out.extend(record(5, b""));
    out
}

/// `Decoder::decode` through the `ServerCodec` bound (the root package
/// does not depend on tokio-util to name the trait).
fn decode_one<C: ServerCodec>(codec: &mut C, buf: &mut BytesMut) -> Option<Frame<C::Head>> {
    codec.decode(buf).ok().flatten()
}

fn conn() -> ConnInfo {
    ConnInfo::new(SocketAddress::Unix(None), SocketAddress::Unix(None))
}

/// Decodes one request (head and end of body), optionally with its environ.
fn decode_request<C: ServerCodec>(codec: &mut C, buf: &mut BytesMut, environ: bool) -> Environ {
    let Some(Frame::Head(head)) = decode_one(codec, buf) else {
        unreachable!("bench input is valid")
    };
    let end = decode_one(codec, buf);
    debug_assert!(matches!(end, Some(Frame::End)));
    let mut env = Environ::with_capacity(40);
    if environ {
        head.write_environ(&conn(), &mut env);
    }
    env
}

fn proxy_codecs(c: &mut Criterion) {
    let limits = Limits::default();
    let uwsgi = uwsgi_packet();
    let fastcgi = fastcgi_request();
    for environ in [false, true] {
        let suffix = if environ { "_and_environ" } else { "" };
        c.bench_function(&format!("uwsgi_decode_nginx_get{suffix}"), |b| {
            let mut buf = BytesMut::with_capacity(4096);
            b.iter(|| {
                // One request per connection: a codec per request.
                let mut codec = UwsgiCodec::new(limits);
                buf.extend_from_slice(&uwsgi);
                black_box(decode_request(&mut codec, &mut buf, environ))
            });
        });
        c.bench_function(&format!("fastcgi_decode_nginx_get{suffix}"), |b| {
            let values = ManagementValues { max_conns: 65, max_reqs: 1 };
            let mut codec = FastCgiCodec::new(limits, values);
            let mut buf = BytesMut::with_capacity(4096);
            let mut out = OutBuf::new();
            b.iter(|| {
                buf.extend_from_slice(&fastcgi);
                let env = decode_request(&mut codec, &mut buf, environ);
                // KEEP_CONN: end the request so the codec takes the next one.
                let keep = codec.encode_end(true, &mut out);
                out.advance(out.len());
                black_box((env, keep))
            });
        });
    }
}

criterion_group!(benches, proxy_codecs);
criterion_main!(benches);
