//! uWSGI config files start rwsgi unchanged and mean what they meant
//! there: the files in `tests/uwsgi-configs/` (shaped like real
//! deployments') through the real binary, serving through the sockets they
//! configure; uWSGI's socket options, `protocol`, the config language at
//! run time, and the options that act on the process (`umask`,
//! `chown-socket`, pidfiles, `pyargv`, `import`, `print`, `--reload`).

#![allow(clippy::unwrap_used)]

mod common;

use common::{LOG_TIMEOUT, Server, TempDir, repo_path, run_rwsgi};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::Duration;

/// A corpus file, with `$(APP_DIR)` and `$(RUN_DIR)` for it.
struct Corpus {
    file: String,
    run: TempDir,
}

impl Corpus {
    fn new(name: &str) -> Corpus {
        Corpus { file: repo_path(&format!("tests/uwsgi-configs/{name}")), run: TempDir::new("cfg") }
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("APP_DIR", repo_path("tests/apps")),
            ("RUN_DIR", self.run.path().display().to_string()),
        ]
    }

    /// Starts rwsgi on the file (`extra` args after it), waiting for `sockets`.
    fn serve(&self, extra: &[&str], env: &[(&str, &str)], sockets: usize) -> Server {
        let mut args = vec![self.file.as_str()];
        args.extend_from_slice(extra);
        let mut all_env = self.env();
        all_env.extend(env.iter().map(|(k, v)| (*k, v.to_string())));
        let env: Vec<(&str, &str)> = all_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let dir = self.run.path().to_path_buf();
        Server::start_listening_with(&args, &env, sockets, |mut command| {
            command.current_dir(dir);
            command
        })
    }

    fn run(&self, extra: &[&str]) -> common::Outcome {
        let mut args = vec![self.file.as_str()];
        args.extend_from_slice(extra);
        let env = self.env();
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        run_rwsgi(&args, &env)
    }

    fn path(&self, name: &str) -> String {
        self.run.join(name)
    }
}

#[test]
fn every_corpus_file_but_the_refused_one_checks_clean() {
    for name in [
        "django-tutorial.ini",
        "django-static.ini",
        "docker-django.ini",
        "flask-nginx.ini",
        "logic.ini",
        "app.yaml",
        "app.json",
        "app.xml:production",
        "protocol-http.ini",
        "typos.ini",
    ] {
        let out = Corpus::new(name).run(&["--check-config"]);
        assert_eq!(out.status.code(), Some(0), "{name}: {out:?}");
        assert!(out.stdout.contains("the config is valid"), "{name}: {out:?}");
    }
}

#[test]
fn the_django_tutorial_file_serves_on_its_socket_in_chdir() {
    let corpus = Corpus::new("django-tutorial.ini");
    let mut server = corpus.serve(&[], &[], 1);
    // `socket = mysite.sock` is relative to chdir (the app's directory),
    // where uWSGI makes it too.
    let socket = repo_path("tests/apps/mysite.sock");
    assert_eq!(server.addrs(), [format!("unix:{socket}")]);
    assert_eq!(server.uwsgi_get("/").text(), "default callable");
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o664);
    assert!(server.stop(nix::sys::signal::Signal::SIGTERM).success());
    assert!(!std::path::Path::new(&socket).exists(), "vacuum removed it");
}

#[test]
fn the_docker_file_serves_and_says_what_it_does_not_do_yet() {
    let corpus = Corpus::new("docker-django.ini");
    let server = corpus.serve(&[], &[], 1);
    assert_eq!(server.get("/env?key=DJANGO_SETTINGS_MODULE").text(), "mysite.settings.production");
    let cpus = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        server.wait_log(&format!("{} worker(s) serving", cpus + 1), Duration::from_secs(10)),
        "%(%k + 1) workers"
    );
    let warning = "memory-report is not implemented yet";
    assert!(server.log_contains(warning), "{warning:?} not in\n{}", server.log());
    for quiet in
        ["enable-threads", "thunder-lock", "die-on-term", "ignore-sigpipe", "py-call-osafterfork"]
    {
        assert!(
            !server.log().contains(quiet),
            "{quiet:?} is always so, not worth a line:\n{}",
            server.log()
        );
    }
    let pid: u32 =
        std::fs::read_to_string(corpus.path("master.pid")).unwrap().trim().parse().unwrap();
    assert_eq!(pid, server.pid());
}

#[test]
fn a_socket_name_without_a_directory_is_made_in_the_working_directory() {
    let corpus = Corpus::new("flask-nginx.ini");
    let server = corpus.serve(&[], &[], 1);
    assert_eq!(server.addrs(), [format!("unix:{}", corpus.path("myproject.sock"))]);
    assert_eq!(server.uwsgi_get("/").text(), "default callable");
    let mode =
        std::fs::metadata(corpus.path("myproject.sock")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

#[test]
fn logic_blocks_make_sockets_and_settings_from_the_environment() {
    let corpus = Corpus::new("logic.ini");
    let server = corpus.serve(&[], &[], 2);
    assert_eq!(
        server.addrs(),
        [
            format!("unix:{}", corpus.path("shop-web.sock")),
            format!("unix:{}", corpus.path("shop-api.sock"))
        ]
    );
    assert_eq!(server.get("/").text(), "default callable");
    drop(server);
    // `if-env` adds a FastCGI socket; `if-exists` reads local overrides.
    let fastcgi = corpus.path("extra.sock");
    std::fs::write(corpus.path("local.ini"), "[uwsgi]\nhttp-socket = %doverridden.sock\n").unwrap();
    let server = corpus.serve(&[], &[("EXTRA_FASTCGI", &fastcgi), ("THREADS", "3")], 4);
    assert_eq!(server.listeners().iter().filter(|(p, _)| p == "fastcgi-socket").count(), 1);
    assert_eq!(server.fastcgi_get("/").text(), "default callable");
    assert!(
        server.addrs().contains(&format!("unix:{}", corpus.path("overridden.sock"))),
        "{:?}",
        server.addrs()
    );
    let printed = corpus.run(&["--print-config"]);
    assert!(printed.stdout.contains("threads = 2"), "{}", printed.stdout);
}

#[test]
fn yaml_json_and_xml_files_serve() {
    let yaml = Corpus::new("app.yaml");
    let server = yaml.serve(&[], &[], 1);
    assert_eq!(server.uwsgi_get("/").text(), "default callable");
    assert!(server.log_contains("not valid YAML"), "{}", server.log());
    // Its log-format is the request line (an Apache-style one).
    assert!(server.wait_log("\"GET / HTTP/1.1\" 200 ", LOG_TIMEOUT), "{}", server.log());
    drop(server);

    let json = Corpus::new("app.json");
    let server = json.serve(&[], &[], 1);
    assert_eq!(server.fastcgi_get("/").text(), "custom callable");
    drop(server);

    let xml = Corpus::new("app.xml:production");
    let server = xml.serve(&[], &[], 1);
    assert_eq!(server.addrs(), [format!("unix:{}", xml.path("xml.sock"))]);
    assert_eq!(server.get("/").text(), "default callable");
}

#[test]
fn protocol_http_makes_socket_speak_http_and_http11_socket_keeps_alive() {
    let corpus = Corpus::new("protocol-http.ini");
    let server = corpus.serve(&[], &[], 2);
    let plain = format!("unix:{}", corpus.path("plain.sock"));
    let keepalive = format!("unix:{}", corpus.path("keepalive.sock"));
    assert!(
        server.listeners().iter().all(|(protocol, _)| protocol == "http-socket"),
        "{:?}",
        server.listeners()
    );
    for addr in [&plain, &keepalive] {
        let mut conn = common::Conn::open(addr);
        for _ in 0..2 {
            conn.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(
                conn.read_response().text(),
                "default callable",
                "{addr}: two requests, one connection"
            );
        }
    }
}

#[test]
fn typos_warn_and_strict_refuses_them_all() {
    let corpus = Corpus::new("typos.ini");
    let server = corpus.serve(&[], &[], 1);
    assert_eq!(server.get("/").text(), "default callable");
    for warning in [
        "typos.ini:6: vaccum is no option: did you mean vacuum? It has no effect",
        "typos.ini:7: hunder-lock is no option: did you mean thunder-lock? It has no effect",
        "typos.ini:8: process is no option: did you mean processes? It has no effect",
        "typos.ini:9: guid is no option: did you mean gid? It has no effect",
    ] {
        assert!(server.log_contains(warning), "{warning:?} not in\n{}", server.log());
    }
    drop(server);
    let out = corpus.run(&["--strict"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("rwsgi: ")).collect();
    assert_eq!(errors.len(), 4, "every typo in one run: {}", out.stderr);
    assert!(
        errors[0].ends_with("typos.ini:6: unknown option vaccum (did you mean vacuum?)"),
        "{errors:?}"
    );
}

#[test]
fn the_static_files_file_serves_assets_routes_headers_and_a_mount() {
    let corpus = Corpus::new("django-static.ini");
    std::fs::create_dir_all(corpus.path("collected/css")).unwrap();
    std::fs::create_dir_all(corpus.path("uploads")).unwrap();
    std::fs::write(corpus.path("collected/css/site.css"), "body{}").unwrap();
    std::fs::write(corpus.path("collected/css/site.css.gz"), "gz-bytes").unwrap();
    std::fs::write(corpus.path("collected/favicon.ico"), "ico").unwrap();
    std::fs::write(corpus.path("uploads/avatar.png"), "png").unwrap();
    let server = corpus.serve(&[], &[], 2);
    let css = server.get("/static/css/site.css");
    assert_eq!((css.status, css.text().as_str()), (200, "body{}"));
    assert_eq!(css.header("Content-Type"), Some("text/css"));
    assert!(css.header("Expires").is_some());
    assert_eq!(css.header("X-Content-Type-Options"), Some("nosniff"));
    let gz = server
        .request("GET /static/css/site.css HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n");
    assert_eq!((gz.header("Content-Encoding"), gz.text().as_str()), (Some("gzip"), "gz-bytes"));
    assert_eq!(server.get("/media/avatar.png").header("Content-Type"), Some("image/png"));
    assert_eq!(server.get("/favicon.ico").text(), "ico");
    assert_eq!(server.get("/static/missing.css").text(), "default callable", "on to the app");
    let admin = server.get("/admin/");
    assert_eq!((admin.status, admin.header("Referrer-Policy")), (401, Some("same-origin")));
    let redirect = server.get("/blog/12/hello");
    assert_eq!((redirect.status, redirect.header("Location")), (301, Some("/posts/12-hello")));
    let api = server.get("/api/environ").json();
    assert_eq!(
        (api["SCRIPT_NAME"].as_str(), api["PATH_INFO"].as_str()),
        (Some("/api"), Some("/environ"))
    );
    assert_eq!(server.get("/healthz").text(), "OK");
    let over_uwsgi = server.uwsgi_get("/static/css/site.css");
    assert_eq!(over_uwsgi.text(), "body{}", "the same on the uwsgi socket");
    assert!(server.wait_request_logged("GET", "/api/environ"));
    assert!(!server.log().contains("/healthz"), "donotlog");
}

#[test]
fn refused_options_stop_rwsgi_with_every_reason_at_once() {
    let out = Corpus::new("refused.ini").run(&[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let errors: Vec<&str> = out.stderr.lines().filter(|l| l.starts_with("rwsgi: ")).collect();
    assert_eq!(errors.len(), 2, "{}", out.stderr);
    assert!(
        errors[0].contains("refused.ini:3: https is not supported: rwsgi does not terminate TLS"),
        "{errors:?}"
    );
    assert!(
        errors[1].contains("refused.ini:5: emperor is not supported: rwsgi has no Emperor"),
        "{errors:?}"
    );
}

#[test]
fn umask_chown_socket_pidfiles_pyargv_and_import() {
    let dir = TempDir::new("proc");
    let (uid, gid) = (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw());
    // As root (CI), hand the socket to nobody; else to ourselves.
    let owner = if uid == 0 { "nobody:nogroup".to_string() } else { format!("{uid}:{gid}") };
    let (socket, pid1, pid2, safe) =
        (dir.join("app.sock"), dir.join("one.pid"), dir.join("two.pid"), dir.join("safe.pid"));
    let server = Server::start_listening(
        &[
            "--http-socket",
            &socket,
            "--wsgi-file",
            &repo_path("tests/apps/cli_app.py"),
            "--umask",
            "027",
            "--chown-socket",
            &owner,
            "--pidfile",
            &pid1,
            "--pidfile2",
            &pid2,
            "--safe-pidfile",
            &safe,
            "--pyargv",
            "--verbose  -x 1",
            "--import",
            "imported_first",
            "--master",
        ],
        &[],
        1,
    );
    let meta = std::fs::metadata(&socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o750, "umask 027 on a fresh socket");
    if uid == 0 {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(meta.uid(), nobody.uid.as_raw());
    } else {
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    }
    for pidfile in [&pid1, &pid2, &safe] {
        assert_eq!(
            std::fs::read_to_string(pidfile).unwrap().trim(),
            server.pid().to_string(),
            "{pidfile}"
        );
    }
    let argv: Vec<String> = serde_json::from_str(&server.get("/argv").text()).unwrap();
    assert_eq!(argv[1..], ["--verbose", "-x", "1"]);
    assert_eq!(server.get("/env?key=IMPORTED_FIRST").text(), "yes");
    assert_eq!(server.get("/modules?name=imported_first").text(), "yes");
}

#[test]
fn no_socket_leaks_into_a_process_the_app_starts() {
    let server =
        Server::start(&["--wsgi-file", &repo_path("tests/apps/cli_app.py"), "--close-on-exec"]);
    let mut conn = common::Conn::open(server.addr());
    conn.send(b"GET /child-fds HTTP/1.1\r\nHost: a\r\n\r\n");
    let inherited: Vec<String> = serde_json::from_str(&conn.read_response().text()).unwrap();
    assert!(inherited.is_empty(), "a child process inherited sockets {inherited:?}");
    assert!(!server.log().contains("close-on-exec"), "always so: {}", server.log());
}

#[test]
fn an_abstract_socket_needs_no_file() {
    let name = format!("rwsgi-test-{}", std::process::id());
    let server = Server::start(&[
        "--wsgi-file",
        &repo_path("tests/apps/cli_app.py"),
        "--http-socket",
        &format!("@{name}"),
    ]);
    assert_eq!(server.addrs(), [format!("unix:@{name}")]);
    assert_eq!(server.get("/").text(), "default callable");
}

#[test]
fn print_exit_and_get_answer_without_serving() {
    let dir = TempDir::new("lang");
    let ini = dir.write(
        "app.ini",
        "[uwsgi]\nproject = shop\nprint = starting %(project)\nif-not-env = DATABASE_URL\n\
         print = DATABASE_URL is not set\nexit = 2\nendif\nhttp-socket = :0\n",
    );
    let out = run_rwsgi(&[&ini], &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert_eq!(out.stdout, "starting shop\nDATABASE_URL is not set\n");
    let out = run_rwsgi(&[&ini, "--get", "project"], &[("DATABASE_URL", "postgres://")]);
    assert_eq!(
        (out.status.code(), out.stdout.as_str()),
        (Some(0), "starting shop\nshop\n"),
        "{out:?}"
    );
}

#[test]
fn reload_and_stop_by_pidfile_as_uwsgi_does() {
    let dir = TempDir::new("sig");
    let pidfile = dir.join("master.pid");
    let mut server = Server::start(&[
        "--wsgi-file",
        &repo_path("tests/apps/cli_app.py"),
        "--master",
        "--pidfile",
        &pidfile,
    ]);
    assert!(server.wait_log("worker(s) serving", Duration::from_secs(10)), "{}", server.log());
    let out = run_rwsgi(&["--reload", &pidfile], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        server.wait_log("SIGHUP: graceful reload", Duration::from_secs(10)),
        "{}",
        server.log()
    );
    // The re-executed master serves again before it is asked to stop.
    assert!(
        server.wait_log_count("worker(s) serving", 2, Duration::from_secs(20)),
        "{}",
        server.log()
    );
    let out = run_rwsgi(&["--stop", &pidfile], &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let status = server.wait_exit(Duration::from_secs(15)).expect("--stop stopped it");
    assert!(status.success(), "{status:?}");
    let out = run_rwsgi(&["--stop", &dir.join("none.pid")], &[]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(out.stderr.contains("none.pid"), "{out:?}");
}
