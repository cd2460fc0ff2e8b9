#![allow(clippy::unwrap_used)]

use super::*;
use rwsgi_proto::{CgiVar, Environ, Event};
use std::fs;
use std::os::unix::fs::symlink;
use std::path::PathBuf;

/// A site on disk: `public/` (mapped), with a secret beside it.
struct Site {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Site {
    fn new() -> Site {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let public = root.join("public");
        fs::create_dir_all(public.join("css")).unwrap();
        fs::create_dir_all(public.join("docs")).unwrap();
        fs::create_dir_all(public.join("empty-dir")).unwrap();
        fs::create_dir_all(root.join("public-secrets")).unwrap();
        fs::create_dir_all(root.join("shared")).unwrap();
        fs::write(public.join("hello.txt"), "hello static\n").unwrap();
        fs::write(public.join("css/site.css"), "body{}").unwrap();
        fs::write(public.join("docs/index.html"), "<h1>docs</h1>").unwrap();
        fs::write(public.join("app.py"), "secret code").unwrap();
        fs::write(public.join("big.js"), "x".repeat(1000)).unwrap();
        fs::write(public.join("big.js.gz"), "gzipped").unwrap();
        fs::write(public.join("big.js.br"), "brotli").unwrap();
        fs::write(public.join("empty.txt"), "").unwrap();
        fs::write(root.join("secret.txt"), "top secret").unwrap();
        fs::write(root.join("public-secrets/key"), "key").unwrap();
        fs::write(root.join("shared/logo.svg"), "<svg/>").unwrap();
        fs::write(root.join("favicon.ico"), "icon").unwrap();
        symlink(root.join("secret.txt"), public.join("link-out")).unwrap();
        symlink(root.join("shared"), public.join("shared")).unwrap();
        symlink(root.join("secret.txt"), public.join("hello.txt.gz")).unwrap();
        Site { _dir: dir, root }
    }

    fn public(&self) -> String {
        self.root.join("public").display().to_string()
    }

    fn files(&self, edit: impl FnOnce(&mut Settings)) -> StaticFiles {
        let mut settings =
            Settings { maps: vec![format!("/static={}", self.public())], ..Settings::default() };
        edit(&mut settings);
        StaticFiles::new(&settings).unwrap()
    }
}

fn request(method: &str, path: &[u8], headers: &[(&str, &str)]) -> Environ {
    let mut environ = Environ::with_capacity(8);
    environ.set(CgiVar::RequestMethod, method.to_string());
    environ.set(CgiVar::PathInfo, path.to_vec());
    environ.set(CgiVar::RequestUri, path.to_vec());
    for (name, value) in headers {
        environ.set_other(name.to_string(), value.to_string());
    }
    environ
}

/// What a response says: status, headers, body (read from the file event).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

fn answer(events: Vec<Event>) -> Answer {
    use std::io::{Read, Seek, SeekFrom};
    let mut out = Answer { status: 0, headers: Vec::new(), body: Vec::new() };
    let take_head = |head: rwsgi_proto::ResponseHead, out: &mut Answer| {
        out.status = head.status;
        out.headers = head
            .headers
            .iter()
            .map(|(n, v)| (String::from_utf8_lossy(n).into(), String::from_utf8_lossy(v).into()))
            .collect();
        if let Some(len) = head.content_length {
            out.headers.push(("Content-Length".into(), len.to_string()));
        }
    };
    for event in events {
        match event {
            Event::Whole { head, body, .. } | Event::Head { head, body } => {
                take_head(head, &mut out);
                body.iter().for_each(|b| out.body.extend_from_slice(b));
            }
            Event::File { mut file, offset, len } => {
                file.seek(SeekFrom::Start(offset)).unwrap();
                let mut buf = vec![0; len as usize];
                file.read_exact(&mut buf).unwrap();
                out.body.extend(buf);
            }
            Event::End { complete } => assert!(complete),
            other => panic!("unexpected {other:?}"),
        }
    }
    out
}

fn get(files: &StaticFiles, path: &str) -> Option<Answer> {
    files.serve(&request("GET", path.as_bytes(), &[])).map(answer)
}

#[test]
fn a_mapped_file_is_served_with_its_type_and_validators() {
    let site = Site::new();
    let files = site.files(|_| {});
    let got = get(&files, "/static/hello.txt").unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.body, b"hello static\n");
    assert_eq!(got.header("Content-Type"), Some("text/plain"));
    assert_eq!(got.header("Content-Length"), Some("13"));
    assert_eq!(got.header("Accept-Ranges"), Some("bytes"));
    assert!(got.header("Last-Modified").unwrap().ends_with(" GMT"));
    assert!(got.header("ETag").unwrap().starts_with('"'));
    assert_eq!(
        get(&files, "/static/css/site.css").unwrap().header("Content-Type"),
        Some("text/css")
    );
    assert_eq!(get(&files, "/static//css/./site.css").unwrap().body, b"body{}");
}

#[test]
fn what_no_file_answers_goes_on_to_the_app() {
    let site = Site::new();
    let files = site.files(|_| {});
    for path in [
        "/static/missing.txt",
        "/elsewhere/hello.txt",
        "/staticky/hello.txt",
        "/static/docs",
        "/static/empty-dir/",
        "/static",
    ] {
        assert!(get(&files, path).is_none(), "{path}");
    }
    for method in ["POST", "PUT", "DELETE", "OPTIONS"] {
        assert!(files.serve(&request(method, b"/static/hello.txt", &[])).is_none(), "{method}");
    }
}

/// Hostile paths: none may serve a byte from outside `public/`.
#[test]
fn no_path_leaves_the_mapped_directory() {
    hostile_paths_are_refused(false);
}

/// The same the slow way (`realpath`), as on kernels without `openat2`.
#[test]
fn no_path_leaves_the_mapped_directory_without_openat2() {
    hostile_paths_are_refused(true);
}

fn hostile_paths_are_refused(no_openat2: bool) {
    let site = Site::new();
    let mut files = site.files(|s| s.check = vec![site.public()]);
    files.no_openat2 = no_openat2;
    let hostile: &[&[u8]] = &[
        b"/static/../secret.txt",
        b"/static/../../secret.txt",
        b"/static/css/../../secret.txt",
        b"/static/./../secret.txt",
        b"/static/..//secret.txt",
        b"/static//../secret.txt",
        b"/static/../public-secrets/key",
        b"/static/..",
        b"/static/../",
        b"/static/link-out",
        b"/static/shared/logo.svg",
        b"/static/hello.txt\0.png",
        b"/static/\0",
        b"/static/%2e%2e/secret.txt",
        b"/static/..%2fsecret.txt",
        b"/static/..\\secret.txt",
        b"/static/....//secret.txt",
        b"/static/.../secret.txt",
        b"/../secret.txt",
        b"/../../../../../../etc/passwd",
        b"/static/../../../../../../etc/passwd",
        b"/static/\xff/../../secret.txt",
        b"/static/css/../../public-secrets/key",
        b"/link-out",
        b"//etc/passwd",
    ];
    assert!(hostile.len() >= 20);
    for path in hostile {
        if let Some(events) = files.serve(&request("GET", path, &[])) {
            let got = answer(events);
            assert!(
                got.body != b"top secret"
                    && got.body != b"key"
                    && !got.body.starts_with(b"root:")
                    && got.body != b"<svg/>",
                "{} served {:?}",
                String::from_utf8_lossy(path),
                String::from_utf8_lossy(&got.body)
            );
        }
    }
    // A symlinked directory or file is served once its target is safe.
    let safe = site.files(|s| s.safe = vec![site.root.join("shared").display().to_string()]);
    assert_eq!(get(&safe, "/static/shared/logo.svg").unwrap().body, b"<svg/>");
    assert!(get(&safe, "/static/link-out").is_none(), "secret.txt is not under a safe directory");
}

#[test]
fn a_compressed_sibling_must_stay_beside_its_file() {
    let site = Site::new();
    let files = site.files(|s| s.gzip_all = true);
    let got = files
        .serve(&request("GET", b"/static/hello.txt", &[("HTTP_ACCEPT_ENCODING", "gzip")]))
        .map(answer)
        .unwrap();
    assert_eq!(got.body, b"hello static\n", "hello.txt.gz links outside: the plain file is served");
    assert_eq!(got.header("Content-Encoding"), None);
}

#[test]
fn directories_serve_their_index_and_are_never_listed() {
    let site = Site::new();
    let plain = site.files(|_| {});
    assert!(get(&plain, "/static/docs/").is_none());
    let files = site.files(|s| s.index = vec!["missing.html".into(), "index.html".into()]);
    for path in ["/static/docs/", "/static/docs"] {
        let got = get(&files, path).unwrap();
        assert_eq!(got.body, b"<h1>docs</h1>");
        assert_eq!(got.header("Content-Type"), Some("text/html"));
    }
    assert!(get(&files, "/static/empty-dir/").is_none());
}

#[test]
fn map2_keeps_the_prefix_check_static_takes_any_path_and_a_map_may_name_one_file() {
    let site = Site::new();
    let root = site.root.display().to_string();
    let files = StaticFiles::new(&Settings {
        maps2: vec![format!("/public={root}")],
        maps: vec![format!("/favicon.ico={root}/favicon.ico")],
        check: vec![format!("{root}/shared")],
        ..Settings::default()
    })
    .unwrap();
    assert_eq!(get(&files, "/public/hello.txt").unwrap().body, b"hello static\n");
    assert_eq!(get(&files, "/logo.svg").unwrap().body, b"<svg/>");
    assert_eq!(get(&files, "/favicon.ico").unwrap().body, b"icon");
    assert_eq!(get(&files, "/favicon.ico").unwrap().header("Content-Type"), Some("image/x-icon"));
}

#[test]
fn skipped_extensions_go_to_the_app() {
    let site = Site::new();
    let files = site.files(|s| s.skip_ext = vec![".py".into(), ".txt".into()]);
    assert!(get(&files, "/static/app.py").is_none());
    assert!(get(&files, "/static/hello.txt").is_none());
    assert!(get(&files, "/static/css/site.css").is_some());
}

#[test]
fn head_conditional_and_range_requests() {
    let site = Site::new();
    let files = site.files(|_| {});
    let head = files.serve(&request("HEAD", b"/static/hello.txt", &[])).map(answer).unwrap();
    assert_eq!((head.status, head.body.len()), (200, 0));
    assert_eq!(head.header("Content-Length"), Some("13"));
    let full = get(&files, "/static/hello.txt").unwrap();
    let etag = full.header("ETag").unwrap().to_string();
    let last_modified = full.header("Last-Modified").unwrap().to_string();
    let ask = |headers: &[(&str, &str)]| {
        files.serve(&request("GET", b"/static/hello.txt", headers)).map(answer).unwrap()
    };
    let cached = ask(&[("HTTP_IF_NONE_MATCH", &etag)]);
    assert_eq!((cached.status, cached.body.len()), (304, 0));
    assert_eq!(cached.header("ETag"), Some(etag.as_str()));
    assert_eq!(ask(&[("HTTP_IF_MODIFIED_SINCE", &last_modified)]).status, 304);
    assert_eq!(ask(&[("HTTP_IF_NONE_MATCH", "\"other\"")]).status, 200);
    let part = ask(&[("HTTP_RANGE", "bytes=0-4")]);
    assert_eq!((part.status, part.body.as_slice()), (206, &b"hello"[..]));
    assert_eq!(part.header("Content-Range"), Some("bytes 0-4/13"));
    assert_eq!(part.header("Content-Length"), Some("5"));
    let tail = ask(&[("HTTP_RANGE", "bytes=-7")]);
    assert_eq!(tail.body, b"static\n");
    let beyond = ask(&[("HTTP_RANGE", "bytes=13-")]);
    assert_eq!(beyond.status, 416);
    assert_eq!(beyond.header("Content-Range"), Some("bytes */13"));
    let stale = ask(&[("HTTP_RANGE", "bytes=0-4"), ("HTTP_IF_RANGE", "\"stale\"")]);
    assert_eq!((stale.status, stale.body.len()), (200, 13));
    let empty = get(&files, "/static/empty.txt").unwrap();
    assert_eq!((empty.status, empty.header("Content-Length")), (200, Some("0")));
}

#[test]
fn compressed_siblings_by_what_the_client_accepts() {
    let site = Site::new();
    let files = site.files(|s| s.gzip_exts = vec![".js".into()]);
    let with = |accept: &str| {
        files
            .serve(&request("GET", b"/static/big.js", &[("HTTP_ACCEPT_ENCODING", accept)]))
            .map(answer)
            .unwrap()
    };
    let br = with("gzip, br");
    assert_eq!((br.body.as_slice(), br.header("Content-Encoding")), (&b"brotli"[..], Some("br")));
    assert_eq!(br.header("Content-Type"), Some("text/javascript"));
    assert_eq!(br.header("Vary"), Some("Accept-Encoding"));
    let gz = with("gzip");
    assert_eq!(
        (gz.body.as_slice(), gz.header("Content-Encoding")),
        (&b"gzipped"[..], Some("gzip"))
    );
    assert_ne!(gz.header("ETag"), br.header("ETag"), "each representation its own tag");
    let plain = with("identity");
    assert_eq!((plain.body.len(), plain.header("Content-Encoding")), (1000, None));
    assert_eq!(plain.header("Vary"), Some("Accept-Encoding"));
    let by_regex = site.files(|s| s.gzip = vec![r"\.js$".into()]);
    let got = by_regex
        .serve(&request("GET", b"/static/big.js", &[("HTTP_ACCEPT_ENCODING", "gzip")]))
        .map(answer)
        .unwrap();
    assert_eq!(got.header("Content-Encoding"), Some("gzip"));
}

#[test]
fn expires_rules_in_uwsgi_order() {
    let site = Site::new();
    let files = site.files(|s| {
        s.expires_type = vec!["text/css=3600".into()];
        s.expires_uri = vec![r"^/nothing 60".into()];
        s.expires_file_mtime = vec![r"hello\.txt$ 0".into()];
    });
    let css = get(&files, "/static/css/site.css").unwrap();
    let expires = httpdate::parse_http_date(css.header("Expires").unwrap()).unwrap();
    let ahead = expires.duration_since(std::time::SystemTime::now()).unwrap().as_secs();
    assert!((3590..=3600).contains(&ahead), "{ahead}");
    let hello = get(&files, "/static/hello.txt").unwrap();
    assert_eq!(hello.header("Expires"), hello.header("Last-Modified"), "mtime + 0");
    assert!(get(&files, "/static/big.js").unwrap().header("Expires").is_none());
}

#[test]
fn bad_settings_are_start_up_errors() {
    for settings in [
        Settings { maps: vec!["/static".into()], ..Settings::default() },
        Settings { maps: vec!["/static=".into()], ..Settings::default() },
        Settings { expires_file: vec!["(unclosed 60".into()], ..Settings::default() },
        Settings { expires_uri: vec!["^/x".into()], ..Settings::default() },
        Settings { expires_type: vec!["text/css=soon".into()], ..Settings::default() },
        Settings { gzip: vec!["(".into()], ..Settings::default() },
    ] {
        assert!(StaticFiles::new(&settings).is_err(), "{settings:?}");
    }
}

#[test]
fn a_route_file_must_resolve_to_itself() {
    let site = Site::new();
    let files = site.files(|_| {});
    let environ = request("GET", b"/anything", &[]);
    let public = site.root.join("public");
    assert!(files.serve_path(&public.join("hello.txt"), &environ).is_some());
    assert!(files.serve_path(&public.join("../secret.txt"), &environ).is_none());
    assert!(files.serve_path(&public.join("link-out"), &environ).is_none());
    assert!(files.serve_path(&public.join("docs"), &environ).is_none());
    assert!(files.serve_path(&public.join("missing"), &environ).is_none());
}

/// Paths the filesystem refuses are never served, however a hand-made
/// clean-up would read them: a route rule anchored on the raw path must
/// not be stepped around.
#[test]
fn paths_the_filesystem_refuses_are_not_served() {
    let site = Site::new();
    for no_openat2 in [false, true] {
        let mut files = site.files(|_| {});
        files.no_openat2 = no_openat2;
        for path in [
            "/static/hello.txt/",
            "/static/hello.txt/.",
            "/static/hello.txt/..",
            "/static/nowhere/../hello.txt",
            "/static/\n/../hello.txt",
            "/static/\u{ff}/../hello.txt",
        ] {
            assert!(get(&files, path).is_none(), "{path:?} (openat2 off: {no_openat2})");
        }
        assert!(
            get(&files, "/static/css/../hello.txt").is_some(),
            "a real directory may be climbed"
        );
    }
}

/// Names are judged by what a link points at, as uWSGI's realpath does.
#[test]
fn links_are_judged_by_their_target() {
    let site = Site::new();
    let public = site.root.join("public");
    symlink(public.join("app.py"), public.join("notes.txt")).unwrap();
    symlink(public.join("hello.txt"), public.join("page.html")).unwrap();
    let files = site.files(|s| s.skip_ext = vec![".py".into()]);
    assert!(get(&files, "/static/notes.txt").is_none(), "a .py behind a .txt name");
    assert_eq!(
        get(&files, "/static/page.html").unwrap().header("Content-Type"),
        Some("text/plain")
    );
    let environ = request("GET", b"/x", &[]);
    assert!(files.serve_path(&public.join("app.py"), &environ).is_none(), "static: skips too");
}

#[test]
fn a_file_dated_past_year_9999_is_served_without_a_panic() {
    let site = Site::new();
    let path = site.root.join("public/hello.txt");
    let far = std::time::UNIX_EPOCH + std::time::Duration::from_secs(300_000_000_000);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(far).unwrap();
    let files = site.files(|s| s.expires_type = vec!["text/plain=400000000000".into()]);
    let got = get(&files, "/static/hello.txt").unwrap();
    // (Filesystems cap mtimes differently: ext4 at 2446, tmpfs not at all.)
    assert!(got.header("Last-Modified").unwrap().ends_with(" GMT"));
    assert_eq!(got.header("Expires"), Some("Fri, 31 Dec 9999 23:59:59 GMT"));
}
