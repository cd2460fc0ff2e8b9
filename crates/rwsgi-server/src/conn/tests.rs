//! The connection loop without Python: a fake responder, and a client on
//! the other end of a socket pair, in one runtime whose clock is paused
//! (so every timeout is crossed without waiting for it).

#![allow(clippy::unwrap_used)]

use super::*;
use crate::ServerConfig;
use crate::stream::LazyStream;
use bytes::Bytes;
use rwsgi_proto::{BodyMsg, BodySource, Event, LentBody, Limits, Replies, Request, ResponseHead};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// Answers by path, as a responder of any kind would: at once, streamed,
/// after reading the body on demand (on a thread of its own), or never.
/// With `lends`, it lends memory for bodies, as the Python bridge does.
#[derive(Debug, Default)]
struct Fake {
    lends: bool,
}

fn path(request: &Request) -> String {
    let path = request.environ.get("PATH_INFO").cloned().unwrap_or_default();
    String::from_utf8_lossy(&path).into_owned()
}

impl Responder for Fake {
    async fn respond(&self, request: Request) -> Replies {
        match path(&request).as_str() {
            "/hello" => Replies::ready([Event::whole(ResponseHead::new(200), "hello".into())]),
            "/stream" => Replies::ready([
                Event::Head { head: ResponseHead::new(200), body: vec!["str".into()] },
                Event::Data("eam".into()),
                Event::End { complete: true },
            ]),
            "/echo" => echo(request.body),
            // How the body came.
            "/source" => {
                Replies::ready([Event::whole(ResponseHead::new(200), source(&request.body).into())])
            }
            // Ends without a response.
            _ => Replies::default(),
        }
    }

    async fn lend_body(&self, size: usize) -> Option<LentBody> {
        self.lends.then(|| rwsgi_testkit::lent_heap(size))
    }
}

fn source(body: &BodySource) -> &'static str {
    match body {
        BodySource::Buffered(_) => "buffered",
        BodySource::Pieces(_) => "pieces",
        BodySource::Lent(_) => "lent",
        BodySource::Spooled { .. } => "spooled",
        BodySource::Streamed(_) => "streamed",
    }
}

/// How a body read on demand came.
struct Came {
    reads: usize,
    pieces: usize,
}

/// Reads a streamed body on to its end: how it came, `None` if it failed.
fn read_rest(
    events: &flume::Sender<Event>,
    rest: &flume::Receiver<BodyMsg>,
    body: &mut Vec<u8>,
) -> Option<Came> {
    let mut came = Came { reads: 0, pieces: 0 };
    loop {
        events.send(Event::ReadBody).unwrap();
        match rest.recv() {
            Ok(BodyMsg::Data(pieces)) => {
                came.reads += 1;
                came.pieces += pieces.len();
                pieces.iter().for_each(|piece| body.extend_from_slice(piece));
            }
            Ok(BodyMsg::Eof) => return Some(came),
            _ => return None,
        }
    }
}

/// The body back, read as a WSGI app reads it: piece by piece; how it
/// came in `X-Source` (see [`source`]), the size of a spooled body's file
/// in `X-Spool-File-Size`, and for a body read on demand, how many reads
/// brought it in `X-Reads`, in how many pieces in `X-Pieces`.
fn echo(body: BodySource) -> Replies {
    let (events, replies) = Replies::channel();
    let mut head = ResponseHead::new(200);
    head.push_header("X-Source", source(&body));
    if let BodySource::Spooled { file, .. } = &body {
        head.push_header("X-Spool-File-Size", file.metadata().unwrap().len().to_string());
    }
    std::thread::spawn(move || {
        let mut read_on_demand = |rest: Option<flume::Receiver<BodyMsg>>, body: &mut Vec<u8>| {
            let Some(rest) = rest else { return true };
            let Some(came) = read_rest(&events, &rest, body) else { return false };
            head.push_header("X-Reads", came.reads.to_string());
            head.push_header("X-Pieces", came.pieces.to_string());
            true
        };
        let body = match body {
            BodySource::Buffered(body) => body.to_vec(),
            BodySource::Pieces(pieces) => pieces.concat(),
            BodySource::Lent(mut body) => body.copy_filled(),
            BodySource::Spooled { mut file, len, rest } => {
                // The body is the file's first `len` bytes: an earlier
                // body's rest may follow.
                let mut body = Vec::new();
                std::io::Read::read_to_end(&mut std::io::Read::take(&mut *file, len), &mut body)
                    .unwrap();
                assert_eq!(body.len() as u64, len);
                if !read_on_demand(rest, &mut body) {
                    return;
                }
                body
            }
            BodySource::Streamed(rest) => {
                let mut body = Vec::new();
                if !read_on_demand(Some(rest), &mut body) {
                    return;
                }
                body
            }
        };
        let _ = events.send(Event::whole(head, Bytes::from(body)));
    });
    replies
}

fn config() -> ServerConfig {
    ServerConfig {
        socket_timeout: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(75),
        post_buffering: 8,
        access_log: None,
        on_answered: None,
        limits: Limits::default(),
        ..ServerConfig::default()
    }
}

/// Our end of a unix socket pair, as the accept loop hands it over, with
/// its addresses; and the client's end. Call inside a runtime.
pub(super) fn socket_pair() -> (LazyStream<UnixStream>, ConnInfo, UnixStream) {
    let (client, server) = std::os::unix::net::UnixStream::pair().unwrap();
    client.set_nonblocking(true).unwrap();
    server.set_nonblocking(true).unwrap();
    let socket = socket2::Socket::from(std::os::fd::OwnedFd::from(server));
    let unix = || rwsgi_proto::SocketAddress::Unix(None);
    let info = ConnInfo::new(unix(), unix());
    (LazyStream::new(socket), info, UnixStream::from_std(client).unwrap())
}

/// A connection served by the real loop; the client end, and the worker's
/// connections (to stop). Call inside a runtime.
fn connect<C: ServerCodec>(
    codec: C,
    config: ServerConfig,
) -> (UnixStream, Arc<Connections>, tokio::task::JoinHandle<()>) {
    connect_to(Fake::default(), codec, config)
}

/// [`connect`], to this responder.
fn connect_to<C: ServerCodec>(
    responder: Fake,
    codec: C,
    config: ServerConfig,
) -> (UnixStream, Arc<Connections>, tokio::task::JoinHandle<()>) {
    let (stream, info, client) = socket_pair();
    let ctx = Arc::new(Context::new(config, responder));
    let connections = Arc::clone(&ctx.connections);
    let open = ctx.connections.open();
    let conn = Connection::new(stream, codec, info, ctx, open);
    let task = tokio::spawn(conn.run());
    (client, connections, task)
}

pub(super) fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// `len` bytes of a pattern that shows a lost, repeated or moved piece.
pub(super) fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn http() -> rwsgi_http1::Http1Codec {
    rwsgi_http1::Http1Codec::new(Limits::default())
}

/// One HTTP response as the client reads it.
#[derive(Debug)]
struct Answer {
    status: u16,
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// The value of the header `name` (lowercase), if sent.
    fn header(&self, name: &str) -> Option<&str> {
        self.head.split("\r\n").find_map(|line| {
            let (key, value) = line.split_once(": ")?;
            key.eq_ignore_ascii_case(name).then_some(value)
        })
    }
}

/// Reads one response (`Content-Length`, chunked, or to the close);
/// `None` at a close before any byte of one.
async fn read_answer(
    client: &mut (impl tokio::io::AsyncRead + Unpin),
    pending: &mut Vec<u8>,
) -> Option<Answer> {
    let end = loop {
        if let Some(at) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if client.read_buf(pending).await.unwrap() == 0 {
            assert!(pending.is_empty(), "closed inside a head: {pending:?}");
            return None;
        }
    };
    let head = String::from_utf8(pending.drain(..end).collect()).unwrap();
    let status = head[9..12].parse().unwrap();
    let lower = head.to_ascii_lowercase();
    let mut body = Vec::new();
    if let Some(at) = lower.find("content-length: ") {
        let len: usize = lower[at + 16..].split("\r\n").next().unwrap().parse().unwrap();
        while pending.len() < len {
            assert!(client.read_buf(pending).await.unwrap() > 0, "closed inside a body");
        }
        body = pending.drain(..len).collect();
    } else if lower.contains("transfer-encoding: chunked") {
        loop {
            while !pending.windows(2).any(|w| w == b"\r\n") {
                assert!(client.read_buf(pending).await.unwrap() > 0);
            }
            let line_end = pending.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&pending[..line_end]).unwrap(), 16);
            let size = size.unwrap();
            while pending.len() < line_end + 2 + size + 2 {
                assert!(client.read_buf(pending).await.unwrap() > 0);
            }
            body.extend_from_slice(&pending[line_end + 2..line_end + 2 + size]);
            pending.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    } else if status != 100 {
        client.read_to_end(pending).await.unwrap();
        body = std::mem::take(pending);
    }
    Some(Answer { status, head, body })
}

/// True when the server closed the connection (with nothing more sent).
async fn closed(client: &mut UnixStream) -> bool {
    let mut rest = Vec::new();
    matches!(client.read_to_end(&mut rest).await, Ok(0))
}

const GET_HELLO: &[u8] = b"GET /hello HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn keep_alive_serves_request_after_request_until_the_client_closes() {
    paused().block_on(async {
        let (mut client, _stop, task) = connect(http(), config());
        let mut pending = Vec::new();
        for _ in 0..3 {
            client.write_all(GET_HELLO).await.unwrap();
            let answer = read_answer(&mut client, &mut pending).await.unwrap();
            assert_eq!((answer.status, &answer.body[..]), (200, &b"hello"[..]));
            assert!(!answer.head.to_ascii_lowercase().contains("connection: close"));
        }
        client.shutdown().await.unwrap();
        assert!(closed(&mut client).await);
        task.await.unwrap();
    });
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    paused().block_on(async {
        let (mut client, _stop, _task) = connect(http(), config());
        let requests = [
            GET_HELLO,
            b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping",
            GET_HELLO,
        ]
        .concat();
        client.write_all(&requests).await.unwrap();
        let mut pending = Vec::new();
        for expected in ["hello", "stream", "ping", "hello"] {
            let answer = read_answer(&mut client, &mut pending).await.unwrap();
            assert_eq!(String::from_utf8_lossy(&answer.body), expected);
        }
    });
}

/// A chunked body of 11 bytes to `/echo`, answered whole.
async fn echo_chunked(client: &mut UnixStream, pending: &mut Vec<u8>) {
    let chunked = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                    5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    client.write_all(chunked).await.unwrap();
    assert_eq!(read_answer(client, pending).await.unwrap().body, b"hello world");
}

/// Config with `post-buffering = 0`: every body streams on demand.
fn streaming() -> ServerConfig {
    ServerConfig { post_buffering: 0, ..config() }
}

#[test]
fn a_body_beyond_post_buffering_is_kept_in_a_file_before_the_responder_runs() {
    paused().block_on(async {
        let (mut client, _stop, _task) = connect(http(), config());
        let mut pending = Vec::new();
        let body = b"0123456789abcdefghij";
        for target in ["/source", "/echo"] {
            let head =
                format!("POST {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
            client.write_all(head.as_bytes()).await.unwrap();
            client.write_all(&body[..5]).await.unwrap();
            tokio::time::sleep(Duration::from_secs(1)).await;
            let mut byte = [0; 1];
            assert!(
                matches!(client.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
                "the responder waits for the whole body"
            );
            client.write_all(&body[5..]).await.unwrap();
            let answer = read_answer(&mut client, &mut pending).await.unwrap();
            let want: &[u8] = if target == "/source" { b"spooled" } else { body };
            assert_eq!(answer.body, want);
        }
        // Chunked, longer than post-buffering, and the connection still serves.
        echo_chunked(&mut client, &mut pending).await;
        // Within post-buffering: in memory.
        client.write_all(b"POST /source HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").await.unwrap();
        assert_eq!(read_answer(&mut client, &mut pending).await.unwrap().body, b"buffered");
    });
}

/// A body sent at once is read into one buffer (the responder's, if it
/// lends one), one that stalls in pieces; both arrive intact, and so does
/// the request behind each.
#[test]
fn a_body_sent_at_once_is_read_whole_and_one_that_stalls_in_pieces_both_intact() {
    use super::body::BODIES_IN_PIECES;
    for lends in [false, true] {
        let at_once = if lends { "lent" } else { "buffered" };
        BODIES_IN_PIECES.set(0);
        paused().block_on(async {
            let config = ServerConfig { post_buffering: 1 << 20, ..config() };
            let body = pattern(300 * 1024);
            let head =
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
            let (client, _stop, _task) = connect_to(Fake { lends }, http(), config.clone());
            let (mut reader, mut writer) = client.into_split();
            let mut pending = Vec::new();
            // All at once, with the next request behind it (more than the
            // socket holds: written while the server reads).
            let request = [head.as_bytes(), &body, GET_HELLO].concat();
            let sending = tokio::spawn(async move {
                writer.write_all(&request).await.unwrap();
                writer
            });
            let answer = read_answer(&mut reader, &mut pending).await.unwrap();
            assert!(answer.body == body, "a body of {} bytes came back", answer.body.len());
            assert!(answer.head.contains(&format!("X-Source: {at_once}")), "{}", answer.head);
            assert_eq!(BODIES_IN_PIECES.get(), 0, "the body sent at once came in pieces");
            assert_eq!(read_answer(&mut reader, &mut pending).await.unwrap().body, b"hello");
            // A fast start, a stall longer than rwsgi gathers for, the rest.
            let mut writer = sending.await.unwrap();
            writer.write_all(&[head.as_bytes(), &body[..100 * 1024]].concat()).await.unwrap();
            tokio::time::sleep(Duration::from_secs(3)).await;
            writer.write_all(&[&body[100 * 1024..], GET_HELLO].concat()).await.unwrap();
            let answer = read_answer(&mut reader, &mut pending).await.unwrap();
            assert!(answer.body == body, "a body of {} bytes came back", answer.body.len());
            assert!(answer.head.contains("X-Source: pieces"), "{}", answer.head);
            assert_eq!(BODIES_IN_PIECES.get(), 1, "the stalled body was read in pieces");
            assert_eq!(read_answer(&mut reader, &mut pending).await.unwrap().body, b"hello");
            // Over uwsgi, the body at once.
            let (client, _stop, _task) = connect_to(
                Fake { lends },
                rwsgi_uwsgi::UwsgiCodec::new(Limits::default()),
                config.clone(),
            );
            let length = body.len().to_string();
            let vars =
                [("REQUEST_METHOD", "POST"), ("PATH_INFO", "/echo"), ("CONTENT_LENGTH", &length)];
            let request = uwsgi_request(&vars, &body);
            let (mut reader, mut writer) = client.into_split();
            tokio::spawn(async move { writer.write_all(&request).await.unwrap() });
            let mut response = Vec::new();
            reader.read_to_end(&mut response).await.unwrap();
            assert!(response.ends_with(&body), "the uwsgi body came back whole");
            let source = format!("X-Source: {at_once}");
            assert!(response.windows(source.len()).any(|w| w == source.as_bytes()));
            assert_eq!(BODIES_IN_PIECES.get(), 1, "the uwsgi body came in pieces");
            // Over FastCGI, in nginx's records of 32 KiB, at once: the
            // records' content is read into the lent memory (see the
            // transport's tests); without, the body comes as its pieces.
            let values = rwsgi_fastcgi::ManagementValues { max_conns: 1, max_reqs: 1 };
            let codec = rwsgi_fastcgi::FastCgiCodec::new(Limits::default(), values);
            let (client, _stop, _task) = connect_to(Fake { lends }, codec, config);
            let vars: [(&[u8], &[u8]); 3] = [
                (b"REQUEST_METHOD", b"POST"),
                (b"PATH_INFO", b"/echo"),
                (b"CONTENT_LENGTH", length.as_bytes()),
            ];
            let request = rwsgi_testkit::fastcgi::request(1, 0, &vars, &body);
            let (mut reader, mut writer) = client.into_split();
            // Open until the answer is in, as nginx keeps it: a FastCGI
            // peer that closes its side abandons the request.
            let sending = tokio::spawn(async move {
                writer.write_all(&request).await.unwrap();
                writer
            });
            let mut response = Vec::new();
            reader.read_to_end(&mut response).await.unwrap();
            drop(sending.await.unwrap());
            let stdout = fastcgi_stdout(&response);
            assert!(stdout.ends_with(&body), "the FastCGI body came back whole");
            let source = if lends { "X-Source: lent" } else { "X-Source: pieces" };
            assert!(stdout.windows(source.len()).any(|w| w == source.as_bytes()));
        });
    }
}

/// A spool file goes back to the worker when the responder drops it, and
/// the next body spooled overwrites it from the start: each body comes
/// back as sent, a shorter one without the longer one's rest, which its
/// file still holds.
#[test]
fn a_spool_file_is_reused_for_the_next_body() {
    paused().block_on(async {
        let (mut client, _stop, _task) = connect(http(), config());
        let mut pending = Vec::new();
        let mut file_sizes = Vec::new();
        for body in [pattern(100_000), b"a shorter body".to_vec(), pattern(50_000)] {
            let head =
                format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
            client.write_all(head.as_bytes()).await.unwrap();
            client.write_all(&body).await.unwrap();
            let answer = read_answer(&mut client, &mut pending).await.unwrap();
            assert!(answer.body == body, "a body of {} bytes came back changed", body.len());
            assert_eq!(answer.header("x-source"), Some("spooled"));
            file_sizes.extend(answer.header("x-spool-file-size").map(str::to_owned));
        }
        assert_eq!(file_sizes, ["100000"; 3], "the first body's file, each time");
    });
}

#[test]
fn past_post_buffering_disk_the_rest_of_a_body_streams() {
    paused().block_on(async {
        let (mut client, _stop, _task) =
            connect(http(), ServerConfig { spool_limit: 12, ..config() });
        let mut pending = Vec::new();
        let body = b"0123456789abcdefghijklmnopqrstuvwxyz";
        let head =
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
        client.write_all(head.as_bytes()).await.unwrap();
        for piece in body.chunks(5) {
            client.write_all(piece).await.unwrap();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(read_answer(&mut client, &mut pending).await.unwrap().body, body);
        echo_chunked(&mut client, &mut pending).await;
    });
}

#[test]
fn with_post_buffering_0_a_body_streams_to_the_responder_on_demand() {
    paused().block_on(async {
        let (mut client, _stop, _task) = connect(http(), streaming());
        let mut pending = Vec::new();
        let body = b"0123456789abcdefghij";
        let head =
            format!("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", body.len());
        client.write_all(head.as_bytes()).await.unwrap();
        client.write_all(&body[..5]).await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
        client.write_all(&body[5..]).await.unwrap();
        let answer = read_answer(&mut client, &mut pending).await.unwrap();
        assert_eq!(answer.body, body);
        echo_chunked(&mut client, &mut pending).await;
        client
            .write_all(b"POST /source HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n")
            .await
            .unwrap();
        assert_eq!(read_answer(&mut client, &mut pending).await.unwrap().body, b"streamed");
    });
}

/// `/echo`'s answer to `head` and `body` (chunked when `chunk` is given),
/// all in the socket before the server reads the head, with
/// `post-buffering = 0`: the body read on demand.
fn echoed_on_demand(head: &str, body: &[u8], chunk: Option<usize>) -> Answer {
    paused().block_on(async {
        let (mut client, _stop, _task) = connect(http(), streaming());
        let mut request = format!("POST /echo HTTP/1.1\r\nHost: x\r\n{head}\r\n").into_bytes();
        match chunk {
            None => request.extend_from_slice(body),
            Some(size) => {
                let chunks: Vec<&[u8]> = body.chunks(size).collect();
                request.extend(rwsgi_testkit::chunked(&chunks));
            }
        }
        client.write_all(&request).await.unwrap();
        let answer = read_answer(&mut client, &mut Vec::new()).await.unwrap();
        assert_eq!(answer.body, body);
        answer
    })
}

/// A body the app waits for is read in bulk: what the kernel holds comes
/// in one read, not in reads of a few KiB growing from the head's size.
#[test]
fn a_body_read_on_demand_comes_in_as_few_reads_as_the_kernel_allows() {
    let body = pattern(150_000);
    let answer = echoed_on_demand(&format!("Content-Length: {}\r\n", body.len()), &body, None);
    // What the head's read took of the body, then the rest at once.
    assert!(answer.head.contains("X-Reads: 2\r\n"), "{}", answer.head);
}

/// So is a framed one, and every frame a read brought goes in one answer.
#[test]
fn a_chunked_body_read_on_demand_comes_in_as_few_reads_as_the_kernel_allows() {
    let answer = echoed_on_demand("Transfer-Encoding: chunked\r\n", &pattern(20_000), Some(100));
    // The chunks the head's read took, then the rest: 200 chunks in 2,
    // copied together into one piece each (at least 16 KiB, but the last).
    assert!(answer.head.contains("X-Reads: 2\r\n"), "{}", answer.head);
    assert!(answer.head.contains("X-Pieces: 2\r\n"), "{}", answer.head);
}

#[test]
fn expect_100_continue_is_answered_when_the_responder_first_reads() {
    paused().block_on(async {
        let (mut client, _stop, _task) = connect(http(), config());
        let mut pending = Vec::new();
        let head =
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n";
        client.write_all(head).await.unwrap();
        let interim = read_answer(&mut client, &mut pending).await.unwrap();
        assert_eq!(interim.status, 100);
        client.write_all(b"ok").await.unwrap();
        assert_eq!(read_answer(&mut client, &mut pending).await.unwrap().body, b"ok");
    });
}

#[test]
fn a_body_the_responder_leaves_unread_closes_the_connection_and_says_so() {
    paused().block_on(async {
        let (mut client, _stop, task) = connect(http(), streaming());
        let mut pending = Vec::new();
        client
            .write_all(b"POST /hello HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
            .await
            .unwrap();
        let answer = read_answer(&mut client, &mut pending).await.unwrap();
        assert_eq!(answer.status, 200);
        assert!(answer.head.to_ascii_lowercase().contains("connection: close"), "{}", answer.head);
        // A lingering close: it reads what still comes, then closes.
        client.write_all(&[b'x'; 90]).await.unwrap();
        assert!(closed(&mut client).await);
        task.await.unwrap();
    });
}

#[test]
fn a_malformed_head_is_answered_400_and_the_connection_closes() {
    paused().block_on(async {
        let (mut client, _stop, task) = connect(http(), config());
        let mut pending = Vec::new();
        client.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n").await.unwrap();
        let answer = read_answer(&mut client, &mut pending).await.unwrap();
        assert_eq!(answer.status, 400);
        assert!(answer.head.to_ascii_lowercase().contains("connection: close"));
        task.await.unwrap();
    });
}

#[test]
fn a_responder_that_ends_without_a_response_closes_the_connection() {
    paused().block_on(async {
        let (mut client, _stop, task) = connect(http(), config());
        client.write_all(b"GET /nothing HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        assert!(closed(&mut client).await);
        task.await.unwrap();
    });
}

#[test]
fn every_wait_has_its_deadline() {
    paused().block_on(async {
        let config = config();
        let (socket_timeout, keepalive) = (config.socket_timeout, config.keepalive_timeout);

        // Nothing sent on a fresh connection: closed after socket-timeout.
        let (mut client, _stop, _task) = connect(http(), config.clone());
        let start = tokio::time::Instant::now();
        assert!(closed(&mut client).await);
        assert_eq!(start.elapsed(), socket_timeout);

        // A head begun and never finished: 408 socket-timeout after its first byte.
        let (mut client, _stop, _task) = connect(http(), config.clone());
        client.write_all(b"GET /hello HT").await.unwrap();
        let start = tokio::time::Instant::now();
        let answer = read_answer(&mut client, &mut Vec::new()).await.unwrap();
        assert_eq!((answer.status, start.elapsed()), (408, socket_timeout));

        // A body that stops: 408 socket-timeout after the last byte.
        let (mut client, _stop, _task) = connect(http(), config.clone());
        client
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\np")
            .await
            .unwrap();
        let start = tokio::time::Instant::now();
        let answer = read_answer(&mut client, &mut Vec::new()).await.unwrap();
        assert_eq!((answer.status, start.elapsed()), (408, socket_timeout));

        // Idle after a request: closed after the keep-alive time.
        let (mut client, _stop, _task) = connect(http(), config);
        client.write_all(GET_HELLO).await.unwrap();
        read_answer(&mut client, &mut Vec::new()).await.unwrap();
        let start = tokio::time::Instant::now();
        assert!(closed(&mut client).await);
        assert_eq!(start.elapsed(), keepalive);
    });
}

/// Each wait between requests has the whole keep-alive time, from its
/// own start: not from the connection's first wait (set for
/// socket-timeout), nor from an earlier wait.
#[test]
fn each_wait_between_requests_counts_from_its_own_start() {
    paused().block_on(async {
        let keepalive = Duration::from_secs(2);
        let config = ServerConfig { keepalive_timeout: keepalive, ..config() };
        let (mut client, _stop, _task) = connect(http(), config);
        let mut pending = Vec::new();
        // The first request after a wait of its own (socket-timeout, 30 s).
        tokio::time::sleep(Duration::from_secs(1)).await;
        for _ in 0..3 {
            client.write_all(GET_HELLO).await.unwrap();
            assert_eq!(read_answer(&mut client, &mut pending).await.unwrap().status, 200);
            // Three quarters of the keep-alive time, three times: the
            // connection lives on past the first wait's keep-alive time.
            tokio::time::sleep(keepalive * 3 / 4).await;
        }
        client.write_all(GET_HELLO).await.unwrap();
        assert_eq!(read_answer(&mut client, &mut pending).await.unwrap().status, 200);
        let start = tokio::time::Instant::now();
        assert!(closed(&mut client).await);
        assert_eq!(start.elapsed(), keepalive);
    });
}

#[test]
fn a_stopping_server_announces_the_close_and_waits_briefly_for_a_request_on_its_way() {
    paused().block_on(async {
        let (mut client, stop, task) = connect(http(), config());
        let mut pending = Vec::new();
        client.write_all(GET_HELLO).await.unwrap();
        read_answer(&mut client, &mut pending).await.unwrap();
        stop.stop();
        // Sent before the client could know: still served, and told.
        client.write_all(GET_HELLO).await.unwrap();
        let answer = read_answer(&mut client, &mut pending).await.unwrap();
        assert!(answer.head.to_ascii_lowercase().contains("connection: close"), "{}", answer.head);
        assert!(closed(&mut client).await);
        task.await.unwrap();

        let (mut client, stop, _task) = connect(http(), config());
        client.write_all(GET_HELLO).await.unwrap();
        read_answer(&mut client, &mut pending).await.unwrap();
        stop.stop();
        let start = tokio::time::Instant::now();
        assert!(closed(&mut client).await);
        assert_eq!(start.elapsed(), REQUEST_ON_ITS_WAY);
    });
}

/// The content of a FastCGI response's STDOUT records, joined.
fn fastcgi_stdout(response: &[u8]) -> Vec<u8> {
    let mut stdout = Vec::new();
    let mut rest = response;
    while let [_, kind, _, _, hi, lo, padding, _, tail @ ..] = rest {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        if *kind == 6 {
            stdout.extend_from_slice(&tail[..len]);
        }
        rest = &tail[len + usize::from(*padding)..];
    }
    stdout
}

/// A uwsgi request packet: the vars, then the body.
fn uwsgi_request(vars: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut packet = Vec::new();
    for (key, value) in vars {
        packet.extend_from_slice(&(key.len() as u16).to_le_bytes());
        packet.extend_from_slice(key.as_bytes());
        packet.extend_from_slice(&(value.len() as u16).to_le_bytes());
        packet.extend_from_slice(value.as_bytes());
    }
    let mut request = vec![0u8];
    request.extend_from_slice(&(packet.len() as u16).to_le_bytes());
    request.push(0);
    request.extend_from_slice(&packet);
    request.extend_from_slice(body);
    request
}

#[test]
fn uwsgi_serves_one_request_per_connection() {
    paused().block_on(async {
        let (mut client, _stop, task) =
            connect(rwsgi_uwsgi::UwsgiCodec::new(Limits::default()), config());
        let request = uwsgi_request(&[("REQUEST_METHOD", "GET"), ("PATH_INFO", "/hello")], b"");
        client.write_all(&request).await.unwrap();
        let mut response = Vec::new();
        client.read_to_end(&mut response).await.unwrap();
        let text = String::from_utf8_lossy(&response);
        assert!(text.contains(" 200 OK\r\n") && text.ends_with("hello"), "{text}");
        task.await.unwrap();
    });
}

/// The decisions [`Reuse`] makes, one row each.
#[test]
fn reuse_decides_keep_alive_in_one_place() {
    let open = Reuse { keepalive: true, stopping: false };
    assert!(!open.announce_close(true));
    assert!(open.announce_close(false), "a body left unread");
    assert!(Reuse { keepalive: false, stopping: false }.announce_close(true));
    assert!(Reuse { keepalive: true, stopping: true }.announce_close(true));

    let ended = |status: Option<u16>, body_done: bool| Outcome {
        status,
        reusable: true,
        body_done,
        responded: true,
        ..Outcome::default()
    };
    let kind = |close: Option<Close>| match close {
        None => "keep-alive",
        Some(Close::Now) => "close",
        Some(Close::Linger) => "linger",
        Some(Close::Answer(_)) => "answer",
    };
    assert_eq!(kind(open.after(&mut ended(Some(200), true), true)), "keep-alive");
    assert_eq!(kind(open.after(&mut ended(Some(200), true), false)), "close", "not flushed");
    let stopping = Reuse { keepalive: true, stopping: true };
    assert_eq!(kind(stopping.after(&mut ended(Some(200), true), true)), "close");
    assert_eq!(kind(open.after(&mut ended(Some(200), false), true)), "linger");
    let mut waiting = ended(Some(417), false);
    waiting.continue_pending = true;
    assert_eq!(kind(open.after(&mut waiting, true)), "close", "no body is coming");
    let mut cut = ended(Some(200), true);
    cut.reusable = false;
    assert_eq!(kind(open.after(&mut cut, true)), "close");
    let mut broken = ended(None, false);
    broken.body_error = Some(ProtoError::Timeout);
    assert_eq!(kind(open.after(&mut broken, true)), "answer");
    let mut broken_late = ended(Some(200), true);
    broken_late.body_error = Some(ProtoError::Timeout);
    assert_eq!(kind(open.after(&mut broken_late, true)), "close", "a response was under way");
}

/// The size of what `make` returns, without making one.
fn size_of_output<T>(_: impl FnOnce() -> T) -> usize {
    std::mem::size_of::<T>()
}

/// A connection's task is what a waiting connection costs (its buffers
/// are released while it waits): the steps that hold most are boxed, so
/// the task stays small. `benches/idle.py` measures the whole.
#[test]
fn a_waiting_connection_task_stays_small() {
    type Tcp = LazyStream<tokio::net::TcpStream>;
    fn http() -> Connection<Tcp, rwsgi_http1::Http1Codec, Fake> {
        unreachable!("only its type is used")
    }
    fn uwsgi() -> Connection<Tcp, rwsgi_uwsgi::UwsgiCodec, Fake> {
        unreachable!("only its type is used")
    }
    fn fastcgi() -> Connection<Tcp, rwsgi_fastcgi::FastCgiCodec, Fake> {
        unreachable!("only its type is used")
    }
    for (protocol, size) in [
        ("http", size_of_output(|| http().run())),
        ("uwsgi", size_of_output(|| uwsgi().run())),
        ("fastcgi", size_of_output(|| fastcgi().run())),
    ] {
        assert!(size <= 1536, "{protocol}: a connection's future is {size} bytes");
    }
}
