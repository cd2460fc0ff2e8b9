//! Feeds arbitrary request fields (method, path, query, cookie, the
//! conditional, range, encoding and authorization headers) to a `Site`
//! with route rules (basicauth, rewrite and redirect built from the
//! request, a regexp condition) and a static map over a small tree with a
//! secret beside it and a symlink out. Checks that nothing panics, that
//! no byte of the secret is ever served, that every response header is
//! valid (nothing from the request splits a header), and that a `206`
//! stays inside its file.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use rwsgi_proto::{
    BodySource, CgiVar, Environ, Event, Replies, Request, Responder, ResponseHead, check_header,
};
use rwsgi_route::{Front, RuleSpec, Settings, Site, StaticSettings};
use std::io::Read;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

const SECRET: &[u8] = b"TOP-SECRET-BYTES";

/// An app that answers 200 with nothing.
#[derive(Debug)]
struct App;

impl Responder for App {
    async fn respond(&self, _request: Request) -> Replies {
        Replies::ready([Event::whole(ResponseHead::new(200), Bytes::new())])
    }
}

fn site() -> &'static Site<App> {
    static SITE: OnceLock<(PathBuf, Site<App>)> = OnceLock::new();
    &SITE
        .get_or_init(|| {
            let root = std::env::temp_dir().join(format!("rwsgi-fuzz-site-{}", std::process::id()));
            let public = root.join("public");
            std::fs::create_dir_all(public.join("docs")).expect("dirs");
            std::fs::write(root.join("secret.txt"), SECRET).expect("secret");
            std::fs::write(public.join("a.txt"), "0123456789").expect("file");
            std::fs::write(public.join("a.txt.gz"), "gz").expect("file");
            std::fs::write(public.join("docs/index.html"), "<p>").expect("file");
            let _ = std::os::unix::fs::symlink(root.join("secret.txt"), public.join("out"));
            let _ = std::os::unix::fs::symlink(root.join("secret.txt"), public.join("b.txt.gz"));
            let rule = |option: &str, value: &str| RuleSpec {
                option: option.into(),
                value: value.into(),
                at: "fuzz".into(),
            };
            let public_text = public.display().to_string();
            let settings = Settings {
                routes: vec![
                    rule("route", "^/admin basicauth-next:Realm,user:pass"),
                    rule("route", "^/admin basicauth:Realm,"),
                    rule("route", "^/r/(.*)$ rewrite:/static/$1?q=${qs[a]}&c=${cookie[b]}"),
                    rule("route", "^/go/(.*)$ redirect:/to/$1?${QUERY_STRING}"),
                    rule("route", &format!("^/f/(.*)$ static-next:{public_text}/$1")),
                    rule("route-if", "regexp:${HTTP_X};^(a+)+(.*)$ addheader:X-M: $2"),
                    rule("route-if", "equal:${REQUEST_METHOD};PURGE break:405"),
                ],
                add_headers: vec!["X-Frame-Options: DENY".into()],
                del_headers: vec!["Server".into()],
                statics: StaticSettings {
                    maps: vec![format!("/static={public_text}")],
                    index: vec!["index.html".into()],
                    gzip_all: true,
                    ..StaticSettings::default()
                },
                mounts: vec!["/mnt=app.py".into()],
                manage_script_name: true,
            };
            let front = Front::new(&settings).expect("valid settings");
            (root, Arc::new(front).with(App))
        })
        .1
}

fn poll<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("nothing here waits"),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut fields = data.split(|&b| b == b'\n');
    let mut next = || Bytes::copy_from_slice(fields.next().unwrap_or_default());
    let mut environ = Environ::with_capacity(16);
    environ.set(CgiVar::RequestMethod, next());
    let path = next();
    environ.set(CgiVar::PathInfo, path.clone());
    environ.set(CgiVar::RequestUri, path);
    environ.set(CgiVar::QueryString, next());
    for name in [
        "HTTP_COOKIE",
        "HTTP_RANGE",
        "HTTP_IF_RANGE",
        "HTTP_IF_NONE_MATCH",
        "HTTP_IF_MODIFIED_SINCE",
        "HTTP_ACCEPT_ENCODING",
        "HTTP_AUTHORIZATION",
        "HTTP_X",
    ] {
        environ.set_other(name, next());
    }
    let request = Request { environ, body: BodySource::Buffered(Bytes::new()) };
    let mut replies = poll(site().respond(request));
    let mut size_of_part = None;
    while let Ok(event) = poll(replies.recv()) {
        match event {
            Event::Head { head, .. } | Event::Whole { head, .. } => {
                for (name, value) in &head.headers {
                    assert!(check_header(name, value).is_ok(), "{name:?}: {value:?}");
                }
                if head.status == 206 {
                    size_of_part = head.content_length;
                }
            }
            Event::File { mut file, offset, len } => {
                let mut all = Vec::new();
                file.read_to_end(&mut all).expect("read");
                assert!(!all.windows(SECRET.len()).any(|w| w == SECRET), "the secret was served");
                assert!(
                    offset.checked_add(len).is_some_and(|end| end <= all.len() as u64),
                    "a range past the file"
                );
                if let Some(part) = size_of_part {
                    assert_eq!(part, len);
                }
            }
            Event::End { .. } => break,
            _ => {}
        }
    }
});
