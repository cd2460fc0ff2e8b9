//! What answers besides the app, against the real binary: static files,
//! route rules, response headers and mounts, on HTTP, uwsgi and FastCGI
//! directly, and behind a real nginx (`proxy_pass`, `uwsgi_pass`,
//! `fastcgi_pass`) with curl.

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
fn every_static_option_as_the_real_binary_reads_it() {
    let root = Docroot::new();
    let public = root.public();
    let base = root.dir.join("");
    // static-map2 keeps the prefix: /media/pic.png is public/media/pic.png.
    std::fs::create_dir_all(root.dir.join("public/media")).unwrap();
    std::fs::write(root.dir.join("public/media/pic.png"), "png bytes").unwrap();
    // check-static: any path, if the file is there.
    std::fs::create_dir_all(root.dir.join("checked")).unwrap();
    std::fs::write(root.dir.join("checked/robots.txt"), "User-agent: *\n").unwrap();
    // static-safe: a link out of the tree, into a directory declared safe.
    std::fs::create_dir_all(root.dir.join("shared")).unwrap();
    std::fs::write(root.dir.join("shared/logo.txt"), "shared logo").unwrap();
    std::os::unix::fs::symlink(root.dir.join("shared/logo.txt"), root.dir.join("public/logo.txt"))
        .unwrap();
    // static-gzip (a regex) and static-gzip-dir, with .br and .gz siblings.
    std::fs::create_dir_all(root.dir.join("public/js")).unwrap();
    std::fs::write(root.dir.join("public/js/app.min.js"), "plain js").unwrap();
    std::fs::write(root.dir.join("public/js/app.min.js.br"), "brotli js").unwrap();
    std::fs::write(root.dir.join("public/js/app.min.js.gz"), "gzip js").unwrap();
    std::fs::create_dir_all(root.dir.join("public/css")).unwrap();
    std::fs::write(root.dir.join("public/css/x.css"), "plain css").unwrap();
    std::fs::write(root.dir.join("public/css/x.css.gz"), "gzip css").unwrap();
    // mimefile: a type the built-in table does not know.
    std::fs::write(root.dir.join("public/data.rwsgitest"), "custom").unwrap();
    std::fs::write(root.dir.join("mime.types"), "# comment\napplication/x-rwsgi-test rwsgitest\n")
        .unwrap();
    // static-expires-mtime counts from the file's time: a fixed one.
    let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000);
    std::fs::File::options()
        .write(true)
        .open(root.dir.join("public/hello.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let map = format!("/static={public}");
    let map2 = format!("/media={public}");
    let gzip_dir = format!("{public}/css/");
    let server = Server::probe(&[
        "--check-static",
        &format!("{base}checked"),
        "--static-map",
        &map,
        "--static-map2",
        &map2,
        "--static-safe",
        &format!("{base}shared"),
        "--static-expires",
        r".*\.png 600",
        "--static-expires-uri",
        r"^/static/js/ 1200",
        "--static-expires-mtime",
        r".*hello\.txt 60",
        "--static-gzip",
        r"\.min\.js$",
        "--static-gzip-dir",
        &gzip_dir,
        "--mimefile",
        &format!("{base}mime.types"),
    ]);
    let robots = server.get("/robots.txt");
    assert_eq!((robots.status, robots.text().as_str()), (200, "User-agent: *\n"), "check-static");
    let pic = server.get("/media/pic.png");
    assert_eq!((pic.status, pic.text().as_str()), (200, "png bytes"), "static-map2");
    assert_eq!(pic.header("Content-Type"), Some("image/png"));
    let logo = server.get("/static/logo.txt");
    assert_eq!((logo.status, logo.text().as_str()), (200, "shared logo"), "static-safe");
    assert_eq!(server.get("/static/link-out").status, 404, "a link out, not into static-safe");
    // Expires: counted from now (within the test's own span), or from mtime.
    let expires_in = |response: &common::Response| {
        let at = httpdate::parse_http_date(response.header("Expires").unwrap()).unwrap();
        at.duration_since(std::time::SystemTime::now()).unwrap_or_default().as_secs()
    };
    assert!((590..=600).contains(&expires_in(&pic)), "static-expires by file name");
    let js = server.get("/static/js/app.min.js");
    assert!((1190..=1200).contains(&expires_in(&js)), "static-expires-uri");
    let hello = server.get("/static/hello.txt");
    assert_eq!(hello.header("Last-Modified"), Some("Sun, 09 Sep 2001 01:46:40 GMT"));
    assert_eq!(hello.header("Expires"), Some("Sun, 09 Sep 2001 01:47:40 GMT"), "-mtime");
    assert_eq!(js.text(), "plain js", "no Accept-Encoding, no sibling");
    let get_encoded = |target: &str, accept: &str| {
        server.request(format!(
            "GET {target} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept}\r\n\r\n"
        ))
    };
    let br = get_encoded("/static/js/app.min.js", "gzip, br");
    assert_eq!((br.header("Content-Encoding"), br.text().as_str()), (Some("br"), "brotli js"));
    assert_eq!(br.header("Content-Type"), Some("text/javascript"), "the file's type, not .br's");
    let gz = get_encoded("/static/js/app.min.js", "gzip, br;q=0");
    assert_eq!((gz.header("Content-Encoding"), gz.text().as_str()), (Some("gzip"), "gzip js"));
    let css = get_encoded("/static/css/x.css", "gzip");
    assert_eq!((css.header("Content-Encoding"), css.text().as_str()), (Some("gzip"), "gzip css"));
    let not_covered = get_encoded("/static/app.js", "gzip");
    assert_eq!(not_covered.header("Content-Encoding"), None, "app.js is under no gzip rule");
    let custom = server.get("/static/data.rwsgitest");
    assert_eq!(custom.header("Content-Type"), Some("application/x-rwsgi-test"), "mimefile");
}

#[test]
fn every_route_action_and_subject_as_the_real_binary_reads_them() {
    let root = Docroot::new();
    let robots = format!("^/robots.txt$ static:{}/hello.txt", root.public());
    let server = Server::probe(&[
        "--route",
        &robots,
        "--route",
        "^/go goto:later",
        "--route",
        "^/go break:500",
        "--route-label",
        "later",
        "--route",
        "^/go break:403",
        "--route",
        "^/team basicauth-next:Team,a:1",
        "--route",
        "^/team basicauth:Team,b:2",
        "--route",
        "^/r1$ rewrite-last:/environ",
        "--route",
        "^/r2$ rewrite:/environ",
        "--route",
        "^/environ$ addvar:ROUTED=yes",
        "--route",
        "^/plain delheader:Content-Type",
        "--route",
        "^/noted log:noted ${PATH_INFO}",
        "--route-host",
        r"^old\.example$ redirect:http://new.example${REQUEST_URI}",
        "--route-qs",
        "debug=1 break:403",
    ]);
    let file = server.get("/robots.txt");
    assert_eq!((file.status, file.text().as_str()), (200, "hello static\n"), "static:");
    assert_eq!(server.get("/go").status, 403, "goto skipped the rule before the label");
    let as_user = |credentials: &str| {
        server
            .request(format!(
                "GET /team/x HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {credentials}\r\n\r\n"
            ))
            .status
    };
    assert_eq!(as_user("YTox"), 404, "a:1, let in by the first rule");
    assert_eq!(as_user("Yjoy"), 404, "b:2, refused by the first, let in by the second");
    assert_eq!(as_user("YToy"), 401, "a:2");
    assert_eq!(as_user("Yzoz"), 401, "c:3");
    let last = server.get("/r1").json();
    assert_eq!((last["PATH_INFO"].as_str(), last.get("ROUTED")), (Some("/environ"), None));
    let on = server.get("/r2").json();
    assert_eq!(
        (on["PATH_INFO"].as_str(), on["ROUTED"].as_str()),
        (Some("/environ"), Some("yes")),
        "rewrite goes on through the rules, rewrite-last does not"
    );
    let plain = server.get("/plain");
    assert_eq!((plain.status, plain.header("Content-Type")), (404, None), "delheader:");
    assert_eq!(server.get("/noted").status, 404);
    assert!(server.log_contains("noted /noted"), "log: {}", server.log());
    let moved = server.request("GET /path?q=1 HTTP/1.1\r\nHost: old.example\r\n\r\n");
    assert_eq!(
        (moved.status, moved.header("Location")),
        (302, Some("http://new.example/path?q=1")),
        "route-host"
    );
    assert_eq!(server.get("/environ?debug=1").status, 403, "route-qs");
    assert_eq!(server.get("/environ?debug=0").status, 200);
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
                "Content-Type",
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
    assert_eq!(rewritten.header("Content-Type"), None, "del-header took the app's");
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

/// One app per mount, named by module: each answers with its own name
/// and what it was given.
fn write_named_apps(dir: &TempDir) {
    std::fs::write(
        dir.join("named_apps.py"),
        "def answer(name):\n\
         \x20   def app(environ, start_response):\n\
         \x20       start_response('200 OK', [('Content-Type', 'text/plain')])\n\
         \x20       return [('%s %s %s' % (name, environ['SCRIPT_NAME'], environ['PATH_INFO'])).encode()]\n\
         \x20   return app\n\
         shop = answer('shop')\n\
         blog = answer('blog')\n\
         application = answer('main')\n",
    )
    .unwrap();
}

#[test]
fn mounted_modules_are_apps_of_their_own_and_no_default_app_keeps_to_them() {
    let dir = TempDir::new("mounts");
    write_named_apps(&dir);
    let python_path = dir.join("");
    let mount_args = |extra: &[&'static str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--uwsgi-socket",
            "127.0.0.1:0",
            "--pythonpath",
            &python_path,
            "--module",
            "named_apps",
            "--mount",
            "/shop=named_apps:shop",
            "--mount",
            "/blog=named_apps:blog",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let answer = |server: &Server, script_name: &str| {
        let mut vars = common::nginx_vars("GET", &format!("{script_name}/page"));
        common::set_var(&mut vars, "SCRIPT_NAME", script_name);
        common::set_var(&mut vars, "PATH_INFO", "/page");
        let got = server.uwsgi(common::uwsgi_packet(&vars, b""));
        (got.status, got.text())
    };
    let args = mount_args(&[]);
    let server = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(answer(&server, "/shop"), (200, "shop /shop /page".into()));
    assert_eq!(answer(&server, "/blog"), (200, "blog /blog /page".into()));
    assert_eq!(answer(&server, ""), (200, "main  /page".into()));
    assert_eq!(
        answer(&server, "/elsewhere"),
        (200, "main /elsewhere /page".into()),
        "a SCRIPT_NAME no mount takes falls back to the default app, as in uWSGI"
    );
    let args = mount_args(&["--no-default-app"]);
    let strict = Server::start(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(answer(&strict, "/shop"), (200, "shop /shop /page".into()));
    assert_eq!(answer(&strict, ""), (200, "main  /page".into()), "the default app's own mount");
    assert_eq!(answer(&strict, "/elsewhere").0, 404);
    assert!(strict.log_contains("no app is mounted there"), "{}", strict.log());
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
fn static_files_routes_and_mounts_behind_nginx_on_every_pass() {
    if !tools() {
        return;
    }
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
                "--route",
                "^/old/(.*)$ redirect:/new/$1",
                "--route",
                "^/private basicauth:Private,u:p",
                "--mount",
                &format!("/shop={PROBE}"),
                "--manage-script-name",
            ],
        ]
        .concat(),
    );
    let passes = [
        format!(
            "proxy_pass http://{}; proxy_http_version 1.1; proxy_set_header Connection \"\";",
            server.http_addr(0)
        ),
        format!("include /etc/nginx/uwsgi_params; uwsgi_pass {};", server.uwsgi_addr(0)),
        format!("include /etc/nginx/fastcgi_params; fastcgi_pass {};", server.fastcgi_addr(0)),
    ];
    for pass in passes {
        let nginx = Nginx::start(&format!(
            "server {{\nlisten 127.0.0.1:@PORT@;\n{COMMON}location / {{ {pass} }}\n}}\n"
        ));
        let file = curl(&[&nginx.url("/static/hello.txt")]);
        assert_eq!((file.status, file.text().as_str()), (200, "hello static\n"), "{pass}");
        assert_eq!(file.header("Content-Type"), Some("text/plain"), "{pass}");
        let etag = file.header("ETag").unwrap().to_string();
        let cached =
            curl(&["-H", &format!("If-None-Match: {etag}"), &nginx.url("/static/hello.txt")]);
        assert_eq!(cached.status, 304, "{pass}");
        let part = curl(&["-H", "Range: bytes=0-4", &nginx.url("/static/hello.txt")]);
        assert_eq!((part.status, part.text().as_str()), (206, "hello"), "{pass}");
        let head = curl(&["-I", &nginx.url("/static/hello.txt")]);
        assert_eq!((head.status, head.header("Content-Length")), (200, Some("13")), "{pass}");
        let large = curl(&[&nginx.url("/static/app.js")]);
        assert_eq!((large.status, large.body.len()), (200, 4096), "{pass}");
        let redirect = curl(&[&nginx.url("/old/x")]);
        assert_eq!((redirect.status, redirect.header("Location")), (302, Some("/new/x")), "{pass}");
        assert_eq!(curl(&[&nginx.url("/private/x")]).status, 401, "{pass}");
        assert_eq!(
            curl(&["-u", "u:p", &nginx.url("/private/x")]).status,
            404,
            "{pass}: let through to the app"
        );
        let app = curl(&[&nginx.url("/static/missing.txt")]);
        assert!(app.text().starts_with("not found: "), "{pass}: fell through to the app");
        let mounted = curl(&[&nginx.url("/shop/environ")]).json();
        assert_eq!(
            (mounted["SCRIPT_NAME"].as_str(), mounted["PATH_INFO"].as_str()),
            (Some("/shop"), Some("/environ")),
            "{pass}"
        );
    }
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
