//! Sources, precedence and the command line.

use super::*;

#[test]
fn defaults_alone() {
    let loaded = load(&[]).unwrap();
    let config = &loaded.config;
    assert_eq!((config.threads, config.buffer_size, config.listen), (1, 65535, 1024));
    assert_eq!((config.callable.as_str(), config.post_buffering), ("application", 1 << 20));
    assert!(config.http_socket.is_empty() && config.chmod_socket.is_none());
    assert_eq!((config.process.processes, config.process.master), (1, false));
    assert_eq!(loaded.source("threads"), "default");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn repeated_keys_accumulate_in_order_and_scalars_take_the_last() {
    let dir = Dir::new();
    let ini = dir.file(
        "app.ini",
        "[uwsgi]\nsocket = :9000\nthreads = 2\nsocket = /tmp/a.sock\n\
         pp = /a\npython-path = /b\npythonpath = /c\nenv = A=B=C\nthreads = 3\n",
    );
    let loaded = load(&[&ini]).unwrap();
    let config = &loaded.config;
    assert_eq!(config.socket, [":9000", "/tmp/a.sock"]);
    assert_eq!(config.pythonpath, [PathBuf::from("/a"), "/b".into(), "/c".into()]);
    assert_eq!(config.env_pairs(), [("A".to_string(), "B=C".to_string())]);
    assert_eq!(config.threads, 3);
    assert_eq!(loaded.sources("socket"), [format!("{ini}:2"), format!("{ini}:4")]);
    assert_eq!(loaded.source("threads"), format!("{ini}:9"));
}

#[test]
fn precedence_file_then_env_then_flag() {
    let dir = Dir::new();
    let ini = dir.file(
        "app.ini",
        "[uwsgi]\nthreads = 2\nlisten = 10\nbuffer-size = 8192\nhttp-socket = :1\n",
    );
    let vars =
        [("UWSGI_LISTEN", "20"), ("RWSGI_BUFFER_SIZE", "16384"), ("UWSGI_HTTP_SOCKET", ":2")];
    let loaded =
        load_env(&["--ini", &ini, "--buffer-size", "32768", "--http", ":3"], &vars).unwrap();
    let config = &loaded.config;
    assert_eq!((config.threads, config.listen, config.buffer_size), (2, 20, 32768));
    assert_eq!(config.http_socket, [":1", ":2", ":3"], "lists accumulate across sources");
    assert_eq!(loaded.source("threads"), format!("{ini}:2"));
    assert_eq!(loaded.source("listen"), "env UWSGI_LISTEN");
    assert_eq!(loaded.source("buffer-size"), "flag --buffer-size");
    assert_eq!(
        loaded.sources("http-socket"),
        [format!("{ini}:5"), "env UWSGI_HTTP_SOCKET".into(), "flag --http".into()]
    );
    let printed = loaded.render();
    assert!(printed.starts_with("[uwsgi]\n"), "{printed}");
    for line in [
        format!("threads = 2    ; {ini}:2"),
        "listen = 20    ; env UWSGI_LISTEN".to_string(),
        "buffer-size = 32768    ; flag --buffer-size".to_string(),
        "callable = application    ; default".to_string(),
        "http-socket = :3    ; flag --http".to_string(),
    ] {
        assert!(printed.lines().any(|l| l == line), "{line:?} not in\n{printed}");
    }
}

#[test]
fn argv_forms() {
    let forms = [
        "-s",
        ":1",
        "-s:2",
        "--socket=:3",
        "--master",
        "--vacuum=false",
        "-p",
        "3",
        "--chmod-socket",
        "--threads=4",
        "--workers",
        "2",
    ];
    // `--disable-logging` takes no value: `yes` is a stray argument.
    let stray = load(&[&forms[..], &["-M", "--disable-logging", "yes"]].concat());
    assert!(
        matches!(stray, Err(ConfigError::UnexpectedArgument(ref arg)) if arg == "yes"),
        "{stray:?}"
    );
    let loaded = load(&forms).unwrap();
    let config = &loaded.config;
    assert_eq!(config.socket, [":1", ":2", ":3"]);
    assert!(config.process.master && !config.vacuum);
    assert_eq!((config.process.processes, config.threads), (2, 4));
    assert_eq!(config.chmod_socket_mode(), Some(0o666));
    assert_eq!(load(&["--chmod-socket", "660"]).unwrap().config.chmod_socket_mode(), Some(0o660));
    assert!(matches!(parse_args(["--help".into()]), Ok(Command::Help)));
    assert!(matches!(parse_args(["-V".into()]), Ok(Command::Version)));
    assert!(matches!(parse_args(["--help-options".into()]), Ok(Command::HelpOptions)));
    // An unknown flag, before or after, stops a signal from being sent.
    for args in [["--bogus", "--stop", "x.pid"], ["--stop", "x.pid", "--bogus"]] {
        let err = parse_args(args.iter().map(Into::into)).err().map(|e| e.to_string());
        assert_eq!(err.as_deref(), Some("unknown option --bogus"), "{args:?}");
    }
    let Ok(Command::Run(invocation)) =
        parse_args(["--print-config".into(), "--check-config".into()])
    else {
        panic!()
    };
    assert!(invocation.print_config && invocation.check_config);
}

#[test]
fn includes_read_in_place_and_cycles_fail() {
    let dir = Dir::new();
    dir.file("base.ini", "[uwsgi]\nsocket = :1\nthreads = 8\n[extra]\nsocket = :9\n");
    let main = dir.file("main.ini", "[uwsgi]\nsocket = :0\nini = %dbase.ini\nsocket = :2\nini = %dbase.ini:extra\nthreads = 2\n");
    let loaded = load(&[&main]).unwrap();
    assert_eq!(loaded.config.socket, [":0", ":1", ":2", ":9"]);
    assert_eq!(loaded.config.threads, 2);
    let base = format!("{}/base.ini", std::fs::canonicalize(&dir.0).unwrap().display());
    assert_eq!(
        loaded.sources("socket")[1],
        format!("{base}:2"),
        "an included line names its own file"
    );

    let a = dir.file("a.ini", "[uwsgi]\nini = %db.ini\n");
    dir.file("b.ini", "[uwsgi]\nthreads = 1\nini = %da.ini\n");
    let err = error(&[&a]);
    let canonical = std::fs::canonicalize(&dir.0).unwrap();
    let (ca, cb) = (canonical.join("a.ini"), canonical.join("b.ini"));
    assert_eq!(
        err,
        format!("{}:3: include cycle: {a} -> {} -> {}", cb.display(), cb.display(), ca.display())
    );
    // The same file twice in a row is not a cycle.
    let twice = dir.file("twice.ini", "[uwsgi]\nini = %dbase.ini\nini = %dbase.ini\n");
    assert_eq!(load(&[&twice]).unwrap().config.socket, [":1", ":1"]);
    // Several --ini, in order.
    assert_eq!(load(&["--ini", &main, "--ini", &twice]).unwrap().config.socket.len(), 6);
}

#[test]
fn uwsgi_ini_from_the_environment_is_read_before_argv_files() {
    let dir = Dir::new();
    let from_env = dir.file(
        "env.ini",
        "[uwsgi]
socket = :1
threads = 2
",
    );
    let from_argv = dir.file(
        "argv.ini",
        "[uwsgi]
socket = :2
threads = 3
",
    );
    let loaded = load_env(&[&from_argv], &[("UWSGI_INI", &from_env)]).unwrap();
    assert_eq!(
        (loaded.config.socket.as_slice(), loaded.config.threads),
        ([":1".to_string(), ":2".into()].as_slice(), 3)
    );
    let err = load_env(&[], &[("UWSGI_INI", "/no/such.ini")]).unwrap_err().to_string();
    assert!(err.starts_with("env UWSGI_INI: cannot read /no/such.ini"), "{err}");
}

#[test]
fn argv_errors_are_one_line_naming_the_flag() {
    assert_eq!(
        error(&["--proccesses", "2"]),
        "unknown option --proccesses (did you mean --processes?)"
    );
    assert_eq!(error(&["-k"]), "unknown option -k");
    assert_eq!(error(&["--threads"]), "flag --threads: threads needs a value");
    assert_eq!(error(&["-p", "-1"]), "flag -p: processes \"-1\": want a whole number, at least 0");
    assert!(error(&["app.txt"]).contains("unexpected argument \"app.txt\""));
    assert!(
        error(&["--ini", "/no/such.ini"]).starts_with("flag --ini: cannot read /no/such.ini: ")
    );
    assert!(error(&["/no/such.ini"]).starts_with("flag /no/such.ini: cannot read /no/such.ini: "));
}

#[test]
fn uwsgis_short_flags_and_actions() {
    let loaded = load(&["-t", "30", "-z", "5", "-L", "-C660", "-S", "threads=3", "-T"]).unwrap();
    let config = &loaded.config;
    assert_eq!((config.process.harakiri, config.socket_timeout, config.threads), (30, 5, 3));
    assert!(config.disable_logging);
    assert_eq!(config.chmod_socket_mode(), Some(0o660));
    assert!(loaded.warnings.is_empty(), "-T (enable-threads) is always so: {:?}", loaded.warnings);
    for (args, signal) in
        [(["--reload", "/run/app.pid"], "reload"), (["--stop", "/run/app.pid"], "stop")]
    {
        match parse_args(args.iter().map(Into::into)).unwrap() {
            Command::Signal { signal: got, pidfile } => {
                assert_eq!((got, pidfile), (signal, PathBuf::from("/run/app.pid")));
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(matches!(parse_args(["-h".into()]), Ok(Command::Help)));
    assert!(matches!(parse_args(["--usage".into()]), Ok(Command::Help)));
    assert!(matches!(parse_args(["--version".into()]), Ok(Command::Version)));
}

#[test]
fn environment() {
    let vars = [
        ("UWSGI_HTTP_SOCKET", ":1"),
        ("RWSGI_THREADS", "3"),
        ("UWSGI_MASTER", ""),
        ("UWSGI_ORIGINAL_PROC_NAME", "uwsgi"),
        ("UWSGI_NO_SUCH", "1"),
        ("UWSGI_PRINT_CONFIG", "1"),
        ("UWSGI_ENABLE_THREADS", "1"),
        ("PATH", "/bin"),
    ];
    let loaded = load_env(&[], &vars).unwrap();
    assert_eq!(loaded.config.http_socket, [":1"]);
    assert_eq!(loaded.config.threads, 3);
    assert!(loaded.config.process.master);
    assert_eq!(
        loaded.warnings,
        [
            "env UWSGI_PRINT_CONFIG: print-config is only a command-line flag; ignored",
            "env UWSGI_NO_SUCH: no-such is no option: it has no effect",
        ]
    );
    let err = load_env(&[], &[("UWSGI_PROCESSES", "none")]).unwrap_err().to_string();
    assert_eq!(err, "env UWSGI_PROCESSES: processes \"none\": at least 1");
    // As in uWSGI, a variable that names no option is a custom key.
    let dir = Dir::new();
    let ini = dir.file("app.ini", "[uwsgi]\nchdir = /srv/%(project)\n");
    let loaded = load_env(&[&ini], &[("UWSGI_PROJECT", "shop")]).unwrap();
    assert_eq!(loaded.config.chdir, Some("/srv/shop".into()));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
}

#[test]
fn every_problem_of_a_run_is_reported_at_once() {
    let (_dir, ini, loaded) = load_ini(
        "[uwsgi]\nthreads = -2\n[broken\nhttps-socket = :443,cert,key\nchmod-socket = 999\n\
         env = NOEQUALS\nsocket\nemperor = /etc/vassals\n",
        &["--listen", "-5", "--proccesses", "2", "--vaccum"],
    );
    let err = loaded.unwrap_err();
    let ConfigError::Invalid { partial, .. } = &err else { panic!("{err:?}") };
    let partial = partial.as_deref().expect("the rest of the config, for later checks");
    assert_eq!(partial.config.listen, 1024, "a bad value is left out");
    let err = err.to_string();
    let lines: Vec<&str> = err.lines().collect();
    let want = [
        "unknown option --proccesses (did you mean --processes?)".to_string(),
        "unknown option --vaccum (did you mean --vacuum?)".to_string(),
        format!("{ini}:3: a section header is [name]"),
        format!("{ini}:2: threads \"-2\": want a whole number, at least 0"),
        format!("{ini}:4: https-socket is not supported: rwsgi does not terminate TLS"),
        format!("{ini}:5: chmod-socket \"999\": want octal permissions such as 660"),
        format!("{ini}:6: env \"NOEQUALS\": want KEY=VALUE"),
        format!("{ini}:7: socket needs a value"),
        format!("{ini}:8: emperor is not supported: rwsgi has no Emperor"),
        "flag --listen: listen \"-5\": want a whole number, at least 0".to_string(),
    ];
    assert_eq!(lines.len(), want.len(), "{err}");
    for (line, want) in lines.iter().zip(&want) {
        assert!(line.starts_with(want.as_str()), "{line:?} does not start with {want:?}");
    }
}
