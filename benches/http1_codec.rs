//! The HTTP/1.1 codec's hot paths: decoding a typical browser request into
//! a head and its CGI variables, and encoding a small response.

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use criterion::{Criterion, criterion_group, criterion_main};
use rwsgi_http1::Http1Codec;
use rwsgi_proto::{
    ConnInfo, Environ, Frame, Limits, OutBuf, RequestHead, ResponseHead, ServerCodec, SocketAddress,
};

/// What Chrome sends for a page load, cookie included (~800 bytes).
const CHROME_GET: &[u8] = b"GET /blog/2024/05/some-article?utm_source=feed&page=2 HTTP/1.1\r\n\
Host: www.example.com\r\n\
Connection: keep-alive\r\n\
Upgrade-Insecure-Requests: 1\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8\r\n\
Sec-Fetch-Site: same-origin\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-User: ?1\r\n\
Sec-Fetch-Dest: document\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Accept-Language: en-US,en;q=0.9,fr;q=0.8\r\n\
Cookie: sessionid=8f7a6c5e4d3b2a19087f6e5d4c3b2a19; csrftoken=Zx8Yw7Vu6Ts5Rq4Po3Nm2Lk1Jh0Gf9EdCbA; _ga=GA1.1.1234567890.1700000000; theme=dark; lang=en-US; consent=granted\r\n\
\r\n";

/// `Decoder::decode` through the `ServerCodec` bound (the root package
/// does not depend on tokio-util to name the trait).
fn decode_one<C: ServerCodec>(codec: &mut C, buf: &mut BytesMut) -> Option<Frame<C::Head>> {
    codec.decode(buf).ok().flatten()
}

fn conn() -> ConnInfo {
    ConnInfo::new(
        SocketAddress::Tcp("192.0.2.7:51234".parse().unwrap_or_else(|_| unreachable!())),
        SocketAddress::Tcp("10.0.0.1:8080".parse().unwrap_or_else(|_| unreachable!())),
    )
}

fn decode(c: &mut Criterion) {
    let limits = Limits::default();
    c.bench_function("http1_decode_chrome_get", |b| {
        let mut codec = Http1Codec::new(limits);
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.extend_from_slice(CHROME_GET);
            let Some(Frame::Head(head)) = decode_one(&mut codec, &mut buf) else {
                unreachable!("bench input is valid")
            };
            let end = decode_one(&mut codec, &mut buf);
            black_box((head, end))
        });
    });

    let conn = conn();
    c.bench_function("http1_decode_chrome_get_and_environ", |b| {
        let mut codec = Http1Codec::new(limits);
        let mut buf = BytesMut::with_capacity(4096);
        b.iter(|| {
            buf.extend_from_slice(CHROME_GET);
            let Some(Frame::Head(head)) = decode_one(&mut codec, &mut buf) else {
                unreachable!("bench input is valid")
            };
            let end = decode_one(&mut codec, &mut buf);
            let mut env = Environ::with_capacity(32);
            head.write_environ(&conn, &mut env);
            black_box((env, end))
        });
    });
}

fn encode(c: &mut Criterion) {
    let head = ResponseHead {
        status: 200,
        status_line: Bytes::from_static(b"200 OK"),
        headers: vec![
            (Bytes::from_static(b"Content-Type"), Bytes::from_static(b"text/plain; charset=utf-8")),
            (Bytes::from_static(b"Content-Length"), Bytes::from_static(b"13")),
        ],
        content_length: Some(13),
    };
    let body = Bytes::from_static(b"Hello, world!");
    let date = b"Sun, 06 Nov 1994 08:49:37 GMT";
    let mut codec = Http1Codec::new(Limits::default());
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..]);
    let _ = decode_one(&mut codec, &mut buf);
    let _ = decode_one(&mut codec, &mut buf);
    c.bench_function("http1_encode_response_13b", |b| {
        let mut out = OutBuf::new();
        b.iter(|| {
            codec.encode_head(black_box(&head), date, &mut out);
            codec.encode_data(body.clone(), &mut out);
            let reuse = codec.encode_end(true, &mut out);
            black_box(out.take_contiguous());
            black_box(reuse)
        });
    });
}

criterion_group!(benches, decode, encode);
criterion_main!(benches);
