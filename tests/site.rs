//! What answers besides the app, against the real binary: static files,
//! route rules, response headers and mounts, on HTTP, uwsgi and FastCGI
//! directly, and behind a real nginx (`uwsgi_pass`) with curl.

#![allow(clippy::unwrap_used)]

mod common;

use common::{
    EVERY_PROTOCOL, NGINX_COMMON as COMMON, Nginx, PROBE, Server, TempDir, curl,
    nginx_tools as tools,
};

/// A document root: `public/` with a few files, a secret beside it.
struct Docroot {
    dir: TempDir,
}

impl Docroot {
    fn new() -> Docroot {
        let dir = TempDir::new("docroot");
        let public = dir.path().join("public");
        std::fs::create_dir_all(public.join("docs")).unwrap();
        std::fs::write(public.join("hello.txt"), "hello static\n").unwrap();
        std::fs::write(public.join("site.css"), "body { color: red }\n").unwrap();
        std::fs::write(public.join("app.js"), "x".repeat(4096)).unwrap();
        std::fs::write(public.join("app.js.gz"), "pretend-gzip").unwrap();
        std::fs::write(public.join("docs/index.html"), "<h1>docs</h1>").unwrap();
        std::fs::write(public.join("settings.py"), "SECRET_KEY = 'x'").unwrap();
        std::fs::write(dir.path().join("secret.txt"), "top secret").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret.txt"), public.join("link-out")).unwrap();
        Docroot { dir }
    }

    fn public(&self) -> String {
        self.dir.join("public")
    }
}

/// Every protocol's answer to GET `target`: (status, a header, body).
fn on_every_protocol(
    server: &Server,
    target: &str,
    header: &str,
) -> Vec<(u16, Option<String>, Vec<u8>)> {
    let http = server.get(target);
    let uwsgi = server.uwsgi_get(target);
    let fastcgi = server.fastcgi_get(target);
    vec![
        (http.status, http.header(header).map(str::to_string), http.body),
        (uwsgi.status, uwsgi.header(header).map(str::to_string), uwsgi.body),
        (fastcgi.status, fastcgi.header(header).map(str::to_string), fastcgi.body),
    ]
}

#[test]
fn static_files_on_every_protocol_with_validators_ranges_and_fall_through() {
    let root = Docroot::new();
    let map = format!("/static={}", root.public());
    let server = Server::start(
        &[
            &EVERY_PROTOCOL[..],
            &[
                "--wsgi-file",
                PROBE,
                "--static-map",
                &map,
                "--static-index",
                "index.html",
                "--static-skip-ext",
                ".py",
                "--static-expires-type",
                "text/css=3600",
                "--static-gzip-ext",
                ".js",
            ],
        ]
        .concat(),
    );
    for (status, content_type, body) in
        on_every_protocol(&server, "/static/hello.txt", "Content-Type")
    {
        assert_eq!(
            (status, content_type.as_deref(), body.as_slice()),
            (200, Some("text/plain"), &b"hello static\n"[..])
        );
    }
    for (status, _, body) in on_every_protocol(&server, "/static/docs/", "Content-Type") {
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"<h1>docs</h1>"[..]),
            "the index, never a listing"
        );
    }
    // No file, a skipped extension, a path out of the directory: the app answers.
    for target in [
        "/static/missing.txt",
        "/static/settings.py",
        "/static/link-out",
        "/static/%2e%2e/secret.txt",
    ] {
        for (status, _, body) in on_every_protocol(&server, target, "Content-Type") {
            assert_eq!(status, 404, "{target}");
            assert!(
                body.starts_with(b"not found: "),
                "{target}: the app's answer, got {:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
    let css = server.get("/static/site.css");
    assert!(css.header("Expires").is_some());
    let etag = css.header("ETag").unwrap().to_string();
    let modified = css.header("Last-Modified").unwrap().to_string();
    let cached = server.request(format!(
        "GET /static/site.css HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n"
    ));
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    let cached = server.request(format!(
        "GET /static/site.css HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: {modified}\r\n\r\n"
    ));
    assert_eq!(cached.status, 304);
    let part =
        server.request("GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=6-11\r\n\r\n");
    assert_eq!((part.status, part.text().as_str()), (206, "static"));
    assert_eq!(part.header("Content-Range"), Some("bytes 6-11/13"));
    let beyond =
        server.request("GET /static/hello.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=99-\r\n\r\n");
    assert_eq!((beyond.status, beyond.header("Content-Range")), (416, Some("bytes */13")));
    let mut conn = server.conn();
    conn.send("HEAD /static/hello.txt HTTP/1.1\r\nHost: x\r\n\r\n");
    let head = conn.read_head_response();
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("13")));
    conn.send("GET /static/app.js HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
    let gz = conn.read_response();
    assert_eq!((gz.header("Content-Encoding"), gz.text().as_str()), (Some("gzip"), "pretend-gzip"));
    assert_eq!(gz.header("Vary"), Some("Accept-Encoding"));
    conn.send("GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        conn.read_response().body.len(),
        4096,
        "the same connection carries on after a file"
    );
    assert!(
        server.wait_request_logged("GET", "/static/app.js"),
        "static files are logged like any request"
    );
}

#[test]
fn hostile_paths_over_raw_http_never_leave_the_directory() {
    let root = Docroot::new();
    let map = format!("/static={}", root.public());
    let check = root.public();
    let server = Server::probe(&["--static-map", &map, "--check-static", &check]);
    for target in [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e/secret.txt",
        "/static/%2E%2E%2Fsecret.txt",
        "/static/..%5csecret.txt",
        "/static/link-out",
        "/static/hello.txt%00.png",
        "/..%2fsecret.txt",
        "/static//..//secret.txt",
        "/static/docs/../../secret.txt",
    ] {
        let got = server.request(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!got.text().contains("top secret"), "{target} served the secret");
    }
}

#[test]
fn routes_on_every_protocol() {
    let server = Server::start(
        &[
            &EVERY_PROTOCOL[..],
            &[
                "--wsgi-file",
                PROBE,
                "--route",
                "^/old/(.*)$ redirect-301:/new/$1",
                "--route",
                "^/admin basicauth:Staff,admin:s3cret",
                "--route",
                "^/forbidden break:403 Forbidden",
                "--route-if",
                "equal:${HTTP_X_BLOCK};yes return:429",
                "--route",
                "^/quiet donotlog:",
                "--route",
                "^/blog/(\\d+)$ rewrite:/environ?post=$1",
                "--route",
                "^/environ addheader:X-Routed: ${PATH_INFO}",
                "--add-header",
                "X-Frame-Options: DENY",
                "--del-header",
                "X-Probe",
            ],
        ]
        .concat(),
    );
    for (status, location, _) in on_every_protocol(&server, "/old/page", "Location") {
        assert_eq!((status, location.as_deref()), (301, Some("/new/page")));
    }
    for (status, realm, _) in on_every_protocol(&server, "/admin/x", "WWW-Authenticate") {
        assert_eq!((status, realm.as_deref()), (401, Some("Basic realm=\"Staff\"")));
    }
    for (status, frame, _) in on_every_protocol(&server, "/forbidden", "X-Frame-Options") {
        assert_eq!(
            (status, frame.as_deref()),
            (403, Some("DENY")),
            "add-header applies to route answers"
        );
    }
    let admin = server.request(
        "GET /admin/environ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46czNjcmV0\r\n\r\n",
    );
    assert_eq!(admin.status, 404, "through to the app, which has no /admin/environ");
    let wrong = server.request(
        "GET /admin/x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YWRtaW46bm9wZQ==\r\n\r\n",
    );
    assert_eq!(wrong.status, 401);
    let blocked = server.request("GET /environ HTTP/1.1\r\nHost: x\r\nX-Block: yes\r\n\r\n");
    assert_eq!((blocked.status, blocked.text().as_str()), (429, "Too Many Requests"));
    let rewritten = server.get("/blog/42?ref=home");
    let environ = rewritten.json();
    assert_eq!(environ["PATH_INFO"], "/environ");
    assert_eq!(environ["QUERY_STRING"], "post=42&ref=home");
    assert_eq!(rewritten.header("X-Routed"), Some("/environ"));
    assert_eq!(rewritten.header("X-Frame-Options"), Some("DENY"));
    server.get("/quiet");
    server.get("/environ");
    assert!(server.wait_request_logged("GET", "/environ"));
    assert!(!server.log().contains("/quiet"), "donotlog: {}", server.log());
    let uwsgi = server.uwsgi_get("/blog/7");
    assert_eq!(uwsgi.json()["QUERY_STRING"], "post=7");
}

#[test]
fn mounts_choose_the_app_by_prefix() {
    let server = Server::start(&[
        "--mount",
        &format!("/app={PROBE}"),
        "--mount",
        &format!("/app/admin={PROBE}"),
        "--manage-script-name",
        "--wsgi-file",
        PROBE,
    ]);
    for (target, script, path) in [
        ("/app/environ", "/app", "/environ"),
        ("/app/admin/environ", "/app/admin", "/environ"),
        ("/environ", "", "/environ"),
    ] {
        let environ = server.get(target).json();
        assert_eq!(
            (environ["SCRIPT_NAME"].as_str(), environ["PATH_INFO"].as_str()),
            (Some(script), Some(path)),
            "{target}"
        );
    }
    assert!(server.log_contains("mounted"), "{}", server.log());
    // Without manage-script-name the web server's SCRIPT_NAME picks the
    // mount; no default app: what no mount takes is a 404.
    let server =
        Server::start(&["--uwsgi-socket", "127.0.0.1:0", "--mount", &format!("/shop={PROBE}")]);
    let mut vars = common::nginx_vars("GET", "/shop/environ");
    common::set_var(&mut vars, "SCRIPT_NAME", "/shop");
    common::set_var(&mut vars, "PATH_INFO", "/environ");
    assert_eq!(server.uwsgi(common::uwsgi_packet(&vars, b"")).json()["SCRIPT_NAME"], "/shop");
    assert_eq!(server.uwsgi_get("/other").status, 404);
}

#[test]
fn what_cannot_work_stops_rwsgi_at_start_naming_it() {
    for (args, says) in [
        (
            vec!["--route", "^/x uwsgi:127.0.0.1:3031,0,0"],
            "the route action \"uwsgi\" is not implemented",
        ),
        (vec!["--route-if", "lord:x break:403"], "the route condition \"lord\""),
        (vec!["--static-map", "/static"], "want /PREFIX=DIR"),
        (vec!["--del-header", "Content-Length"], "Content-Length frames the response"),
        (vec!["--final-route", "^/ log:x"], "final-route is not supported"),
        (vec!["--mount", "/x"], "want /PREFIX=APP"),
    ] {
        let mut all = vec!["--http-socket", "127.0.0.1:0", "--wsgi-file", PROBE];
        all.extend(args.iter().copied());
        common::assert_one_line_failure(&all, &[], &[says]);
    }
}

#[test]
fn static_files_and_routes_behind_nginx_uwsgi_pass() {
    if !tools() {
        return;
    }
    let root = Docroot::new();
    let map = format!("/static={}", root.public());
    let server = Server::start(&[
        "--uwsgi-socket",
        "127.0.0.1:0",
        "--wsgi-file",
        PROBE,
        "--static-map",
        &map,
        "--route",
        "^/old/(.*)$ redirect:/new/$1",
        "--route",
        "^/private basicauth:Private,u:p",
        "--mount",
        &format!("/shop={PROBE}"),
        "--manage-script-name",
    ]);
    let nginx = Nginx::start(&format!(
        "server {{\nlisten 127.0.0.1:@PORT@;\n{COMMON}\
         location / {{ include /etc/nginx/uwsgi_params; uwsgi_pass {}; }}\n}}\n",
        server.uwsgi_addr(0)
    ));
    let file = curl(&[&nginx.url("/static/hello.txt")]);
    assert_eq!((file.status, file.text().as_str()), (200, "hello static\n"));
    assert_eq!(file.header("Content-Type"), Some("text/plain"));
    let etag = file.header("ETag").unwrap().to_string();
    let cached = curl(&["-H", &format!("If-None-Match: {etag}"), &nginx.url("/static/hello.txt")]);
    assert_eq!(cached.status, 304);
    let part = curl(&["-H", "Range: bytes=0-4", &nginx.url("/static/hello.txt")]);
    assert_eq!((part.status, part.text().as_str()), (206, "hello"));
    let head = curl(&["-I", &nginx.url("/static/hello.txt")]);
    assert_eq!((head.status, head.header("Content-Length")), (200, Some("13")));
    let redirect = curl(&[&nginx.url("/old/x")]);
    assert_eq!((redirect.status, redirect.header("Location")), (302, Some("/new/x")));
    assert_eq!(curl(&[&nginx.url("/private/x")]).status, 401);
    assert_eq!(
        curl(&["-u", "u:p", &nginx.url("/private/x")]).status,
        404,
        "let through to the app"
    );
    let app = curl(&[&nginx.url("/static/missing.txt")]);
    assert!(app.text().starts_with("not found: "), "fell through to the app");
    let mounted = curl(&[&nginx.url("/shop/environ")]).json();
    assert_eq!(
        (mounted["SCRIPT_NAME"].as_str(), mounted["PATH_INFO"].as_str()),
        (Some("/shop"), Some("/environ"))
    );
}

#[test]
fn htpasswd_checks_run_off_the_io_thread_and_answer() {
    let dir = TempDir::new("htpasswd");
    let file = dir.join("htpasswd");
    // {SHA} of "secret".
    std::fs::write(&file, "keeper:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
    let rule = format!("^/vault basicauth:Vault,{file}");
    let server = Server::probe(&["--route", &rule]);
    assert_eq!(server.get("/vault/x").status, 401);
    let wrong = server.request(
        "GET /vault/x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic a2VlcGVyOm5vcGU=\r\n\r\n",
    );
    assert_eq!(wrong.status, 401);
    let right = server.request("GET /vault/environ HTTP/1.1\r\nHost: x\r\nAuthorization: Basic a2VlcGVyOnNlY3JldA==\r\n\r\n");
    assert_eq!(right.status, 404, "let in, to the app (which has no /vault/environ)");
}
