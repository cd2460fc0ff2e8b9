#![allow(clippy::unwrap_used)]

use super::*;
use base64::Engine;
use rwsgi_proto::{BodySource, CgiVar, Environ, Event, ResponseHead};
use std::sync::Mutex;

/// An app that answers 200 with what it was asked, and remembers it.
#[derive(Debug, Default)]
struct App {
    seen: Mutex<Vec<Environ>>,
}

impl Responder for App {
    async fn respond(&self, request: Request) -> Replies {
        let path = request.environ.get("PATH_INFO").cloned().unwrap_or_default();
        self.seen.lock().unwrap().push(request.environ);
        let mut head = ResponseHead::new(200);
        head.push_header(Bytes::from_static(b"Server"), Bytes::from_static(b"app"));
        Replies::ready([Event::whole(head, path)])
    }
}

fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match future.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(out) => out,
        std::task::Poll::Pending => panic!("the fake app never waits"),
    }
}

fn rules(rules: &[(&str, &str)]) -> Settings {
    Settings {
        routes: rules
            .iter()
            .enumerate()
            .map(|(i, (option, value))| RuleSpec {
                option: option.to_string(),
                value: value.to_string(),
                at: format!("test.ini:{}", i + 1),
            })
            .collect(),
        ..Settings::default()
    }
}

/// What came back: status, headers, body, whether it is logged.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    quiet: bool,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

struct Served {
    site: Site<Shared>,
    app: Arc<App>,
}

/// The app, shared with the test that looks at what it saw.
#[derive(Debug)]
struct Shared(Arc<App>);

impl Responder for Shared {
    fn respond(&self, request: Request) -> impl Future<Output = Replies> + Send {
        self.0.respond(request)
    }
}

impl Served {
    fn new(settings: &Settings) -> Served {
        let app = Arc::new(App::default());
        let site = Arc::new(Front::new(settings).unwrap()).with(Shared(Arc::clone(&app)));
        Served { site, app }
    }

    fn ask(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut environ = Environ::with_capacity(8);
        let (path_info, query) = path.split_once('?').unwrap_or((path, ""));
        environ.set(CgiVar::RequestMethod, "GET");
        environ.set(CgiVar::PathInfo, path_info.to_string());
        environ.set(CgiVar::QueryString, query.to_string());
        environ.set(CgiVar::RequestUri, path.to_string());
        for (name, value) in headers {
            environ.set_other(name.to_string(), value.to_string());
        }
        let mut replies = block_on(
            self.site.respond(Request { environ, body: BodySource::Buffered(Bytes::new()) }),
        );
        let quiet = replies.is_quiet();
        match block_on(replies.recv()).unwrap() {
            Event::Whole { head, body, .. } => Answer {
                status: head.status,
                headers: head
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into())
                    })
                    .collect(),
                body: body.concat(),
                quiet,
            },
            Event::End { complete: false } => {
                Answer { status: 0, headers: vec![], body: vec![], quiet }
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn app_saw(&self, var: &str) -> Option<String> {
        let seen = self.app.seen.lock().unwrap();
        seen.last().and_then(|env| env.get(var)).map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn basic(user_pass: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass))
}

#[test]
fn with_nothing_set_the_app_answers_as_it_is() {
    let served = Served::new(&Settings::default());
    assert!(Front::new(&Settings::default()).unwrap().is_empty());
    let got = served.ask("/x", &[]);
    assert_eq!((got.status, got.body.as_slice(), got.quiet), (200, &b"/x"[..], false));
}

#[test]
fn redirects_with_groups_and_variables() {
    let served = Served::new(&rules(&[
        ("route", "^/old/(.*)$ redirect-301:/new/$1"),
        ("route-host", "^legacy\\.example$ redirect:https://example.com${REQUEST_URI}"),
    ]));
    let got = served.ask("/old/page", &[]);
    assert_eq!((got.status, got.header("Location")), (301, Some("/new/page")));
    let got = served.ask("/a?b=1", &[("HTTP_HOST", "legacy.example")]);
    assert_eq!((got.status, got.header("Location")), (302, Some("https://example.com/a?b=1")));
    assert_eq!(served.ask("/other", &[]).status, 200);
    let injected = served.ask("/old/x\rSet-Cookie: a=b", &[]);
    assert_eq!(injected.status, 400, "a line end from the request never reaches a header");
}

#[test]
fn basicauth_guards_and_tells_the_app_who_came_in() {
    let served = Served::new(&rules(&[
        ("route", "^/admin basicauth-next:Staff,alice:wonder"),
        ("route", "^/admin basicauth:Staff,bob:builder"),
    ]));
    let denied = served.ask("/admin/x", &[]);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("WWW-Authenticate"), Some("Basic realm=\"Staff\""));
    assert_eq!(served.ask("/admin/x", &[("HTTP_AUTHORIZATION", &basic("alice:nope"))]).status, 401);
    for user in ["alice:wonder", "bob:builder"] {
        let got = served.ask("/admin/x", &[("HTTP_AUTHORIZATION", &basic(user))]);
        assert_eq!(got.status, 200, "{user}");
        assert_eq!(served.app_saw("REMOTE_USER").as_deref(), user.split(':').next());
    }
    assert_eq!(served.ask("/public", &[]).status, 200);
}

#[test]
fn break_return_goto_and_conditions() {
    let served = Served::new(&rules(&[
        ("route", "^/gone break:410 Gone Away"),
        ("route", "^/missing return:404"),
        ("route", "^/skip goto:later"),
        ("route", "^/skip break:500"),
        ("route-label", "later"),
        ("route-if", "equal:${HTTP_X_BLOCK};yes break:403"),
        ("route-if-not", "startswith:${PATH_INFO};/ok break:400"),
        ("route-run", "addvar:ROUTED=1"),
    ]));
    let gone = served.ask("/gone", &[]);
    assert_eq!((gone.status, gone.body.len()), (410, 0));
    let missing = served.ask("/missing", &[]);
    assert_eq!((missing.status, missing.body.as_slice()), (404, &b"Not Found"[..]));
    assert_eq!(served.ask("/skip", &[]).status, 400, "jumped over break:500 to the if-not");
    assert_eq!(served.ask("/ok", &[("HTTP_X_BLOCK", "yes")]).status, 403);
    assert_eq!(served.ask("/ok", &[]).status, 200);
    assert_eq!(served.app_saw("ROUTED").as_deref(), Some("1"));
    let served = Served::new(&rules(&[("route", "^/drop break:")]));
    assert_eq!(served.ask("/drop", &[]).status, 0, "break alone: no response at all");
}

#[test]
fn rewrite_then_continue_to_the_app() {
    let served = Served::new(&rules(&[
        ("route", "^/blog/(\\d+)$ rewrite:/post%2Fview?id=$1"),
        ("route", "^/post/view$ addvar:SEEN_REWRITE=yes"),
        ("route", "^/last rewrite-last:/final"),
        ("route", "^/final break:500"),
    ]));
    let got = served.ask("/blog/42?ref=home", &[]);
    assert_eq!(got.body, b"/post/view");
    assert_eq!(served.app_saw("QUERY_STRING").as_deref(), Some("id=42&ref=home"));
    assert_eq!(served.app_saw("SEEN_REWRITE").as_deref(), Some("yes"));
    assert_eq!(served.ask("/last", &[]).body, b"/final", "rewrite-last stops the rules");
}

#[test]
fn headers_from_options_and_rules_apply_to_every_answer() {
    let mut settings = rules(&[
        ("route", "^/api addheader:X-Api: ${PATH_INFO}"),
        ("route", "^/api delheader:X-Frame-Options"),
        ("route", "^/quiet donotlog:"),
        ("route", "^/denied break:403"),
    ]);
    settings.add_headers = vec!["X-Frame-Options: DENY".into()];
    settings.del_headers = vec!["Server".into()];
    let served = Served::new(&settings);
    let page = served.ask("/page", &[]);
    assert_eq!(page.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(page.header("Server"), None);
    let api = served.ask("/api/v1", &[]);
    assert_eq!(api.header("X-Api"), Some("/api/v1"));
    assert_eq!(
        api.header("X-Frame-Options"),
        None,
        "a rule's delheader removes the option's header"
    );
    assert!(served.ask("/quiet", &[]).quiet);
    assert!(!page.quiet);
    assert_eq!(served.ask("/denied", &[]).header("X-Frame-Options"), Some("DENY"));
}

#[test]
fn static_routes_and_static_maps_answer_before_the_app() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("robots.txt"), "User-agent: *\n").unwrap();
    std::fs::write(dir.path().join("style.css"), "b{}").unwrap();
    let root = dir.path().display().to_string();
    let mut settings = rules(&[
        ("route", "^/robots\\.txt$ static:ROOT/robots.txt".replace("ROOT", &root).leak()),
        ("route", "^/maybe/(.*)$ static-next:ROOT/$1".replace("ROOT", &root).leak()),
        ("route", "^/must/(.*)$ static:ROOT/$1".replace("ROOT", &root).leak()),
        ("route", "^/assets/(.*)$ rewrite:/s/$1"),
    ]);
    settings.statics.maps = vec![format!("/s={root}")];
    let served = Served::new(&settings);
    let served_file = |path: &str| -> (u16, Vec<u8>) {
        let mut environ = Environ::with_capacity(4);
        environ.set(CgiVar::RequestMethod, "GET");
        environ.set(CgiVar::PathInfo, path.to_string());
        let mut replies = block_on(
            served.site.respond(Request { environ, body: BodySource::Buffered(Bytes::new()) }),
        );
        match block_on(replies.recv()).unwrap() {
            Event::Head { head, .. } => {
                let Ok(Event::File { len, .. }) = block_on(replies.recv()) else {
                    panic!("no file")
                };
                (head.status, len.to_string().into_bytes())
            }
            Event::Whole { head, body, .. } => (head.status, body.concat()),
            other => panic!("{other:?}"),
        }
    };
    assert_eq!(served_file("/robots.txt"), (200, b"14".to_vec()));
    assert_eq!(served_file("/assets/style.css"), (200, b"3".to_vec()), "rewritten into the map");
    assert_eq!(served_file("/maybe/none.txt").1, b"/maybe/none.txt", "static-next: on to the app");
    assert_eq!(served_file("/must/none.txt").0, 404);
    assert_eq!(
        served_file("/must/../../etc/passwd").0,
        404,
        "a path built from the request stays put"
    );
}

#[test]
fn what_cannot_work_is_a_start_up_error_naming_where() {
    for (option, value, says) in [
        ("route", "^/x uwsgi:127.0.0.1:3031,0,0", "the route action \"uwsgi\" is not implemented"),
        ("route", "^/x", "want SUBJECT ACTION"),
        ("route", "^/x( break:403", "regex"),
        ("route-if", "lord:x break:403", "the route condition \"lord\" is not implemented"),
        ("route", "^/x goto:nowhere", "no route-label nowhere"),
        ("route", "^/x return:99", "no HTTP status"),
        ("route", "^/x addheader:Bad Header: v", "header"),
        ("route", "^/x redirect:${time[unix]}", "not supported"),
        ("route", "^/x basicauth:realm-only", "basicauth wants"),
    ] {
        let err = Front::new(&rules(&[(option, value)])).unwrap_err();
        assert_eq!(err.len(), 1);
        let text = err[0].to_string();
        assert!(text.starts_with(&format!("test.ini:1: {option} = {value}: ")), "{text}");
        assert!(text.contains(says), "{text}");
    }
    let backward =
        Front::new(&rules(&[("route-label", "top"), ("route", "^/ goto:top")])).unwrap_err();
    assert!(backward[0].to_string().contains("only jumps forward"));
    let settings = Settings {
        add_headers: vec!["NoColon".into()],
        del_headers: vec!["Content-Length".into()],
        ..Settings::default()
    };
    assert_eq!(Front::new(&settings).unwrap_err().len(), 2, "every problem at once");
}

#[test]
fn regexes_match_bytes_as_uwsgis_pcre_does() {
    let served = Served::new(&rules(&[("route", "^/admin/.*$ break:403")]));
    let mut environ = Environ::with_capacity(4);
    environ.set(CgiVar::RequestMethod, "GET");
    environ.set(CgiVar::PathInfo, Bytes::from_static(b"/admin/\xff"));
    let mut replies = block_on(
        served.site.respond(Request { environ, body: BodySource::Buffered(Bytes::new()) }),
    );
    let Ok(Event::Whole { head, .. }) = block_on(replies.recv()) else { panic!("no answer") };
    assert_eq!(head.status, 403, "invalid UTF-8 cannot slip past an anchored rule");
}

#[test]
fn basicauth_next_still_asks_when_the_credentials_are_malformed() {
    let served = Served::new(&rules(&[
        ("route", "^/a basicauth-next:R,u:p"),
        ("route", "^/b basicauth-next:R,"),
    ]));
    assert_eq!(served.ask("/a", &[("HTTP_AUTHORIZATION", "Bearer token")]).status, 401);
    assert_eq!(served.ask("/a", &[]).status, 401);
    assert_eq!(
        served.ask("/a", &[("HTTP_AUTHORIZATION", &basic("u:wrong"))]).status,
        200,
        "next rule"
    );
    assert_eq!(served.ask("/b", &[("HTTP_AUTHORIZATION", &basic("u:p"))]).status, 401);
}

#[test]
fn manage_script_name_comes_before_the_rules() {
    let mut settings = rules(&[("route", "^/admin break:403")]);
    settings.mounts = vec!["/api".into()];
    settings.manage_script_name = true;
    let served = Served::new(&settings);
    assert_eq!(served.ask("/api/admin", &[]).status, 403, "the rule sees /admin");
    let got = served.ask("/api/users", &[]);
    assert_eq!((got.status, got.body.as_slice()), (200, &b"/users"[..]));
    assert_eq!(served.app_saw("SCRIPT_NAME").as_deref(), Some("/api"));
}
