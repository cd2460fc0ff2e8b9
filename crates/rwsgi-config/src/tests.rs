//! The whole pipeline: argv + files + environment → [`Loaded`].

#![allow(clippy::unwrap_used)]

use crate::{Command, ConfigError, Loaded, parse_args};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh directory for one test's files.
struct Dir(PathBuf);

impl Dir {
    fn new() -> Dir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let path = std::env::temp_dir().join(format!("rwsgi-config-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    /// Writes `name` and returns its path.
    fn file(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn load_env(args: &[&str], vars: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
    let vars: Vec<(String, String)> =
        vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    match parse_args(args.iter().map(Into::into))? {
        Command::Run(invocation) => invocation.load(&vars),
        other => panic!("{other:?}"),
    }
}

fn load(args: &[&str]) -> Result<Loaded, ConfigError> {
    load_env(args, &[])
}

fn error(args: &[&str]) -> String {
    load(args).unwrap_err().to_string()
}

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
    let Ok(Command::Run(invocation)) =
        parse_args(["--print-config".into(), "--check-config".into()])
    else {
        panic!()
    };
    assert!(invocation.print_config && invocation.check_config);
}

#[test]
fn argv_errors_are_one_line_naming_the_flag() {
    assert_eq!(
        error(&["--proccesses", "2"]),
        "unknown option --proccesses (did you mean --processes?)"
    );
    assert_eq!(error(&["-x"]), "unknown option -x");
    assert_eq!(error(&["--threads"]), "flag --threads: threads needs a value");
    assert_eq!(
        error(&["--threads", "many"]),
        "flag --threads: threads \"many\": want a whole number"
    );
    assert_eq!(error(&["-p", "-1"]), "flag -p: processes \"-1\": want a whole number");
    assert_eq!(
        error(&["--master=perhaps"]),
        "flag --master: master \"perhaps\": want true/false, yes/no, on/off or 1/0"
    );
    assert!(error(&["app.txt"]).contains("unexpected argument \"app.txt\""));
    assert!(
        error(&["--ini", "/no/such.ini"]).starts_with("flag --ini: cannot read /no/such.ini: ")
    );
    assert!(error(&["/no/such.ini"]).starts_with("flag /no/such.ini: cannot read /no/such.ini: "));
}

#[test]
fn bare_keys_booleans_and_comments() {
    let dir = Dir::new();
    let ini = dir.file(
        "app.ini",
        "# comment\n[uwsgi]\n; comment\nmaster\nvacuum = off\ndie-on-term = YES\nchmod-socket\n\
         socket = 127.0.0.1:9000   ; uwsgi protocol\nhttp-socket=:8000 # http\n",
    );
    let config = load(&[&ini]).unwrap().config;
    assert!(config.process.master && !config.vacuum && config.die_on_term);
    assert_eq!(config.chmod_socket_mode(), Some(0o666));
    assert_eq!(config.socket, ["127.0.0.1:9000"]);
    assert_eq!(config.http_socket, [":8000"]);
}

#[test]
fn file_errors_name_the_file_and_line() {
    let dir = Dir::new();
    for (text, want) in [
        ("[uwsgi]\nthreads = lots\n", ":2: threads \"lots\": want a whole number"),
        ("[uwsgi]\n\nproccesses = 4\n", ":3: unknown option proccesses (did you mean processes?)"),
        ("[uwsgi]\n[oops\n", ":2: a section header must end with ]"),
        ("[uwsgi]\nsocket\n", ":2: socket needs a value"),
        ("[uwsgi]\nprint-config = true\n", ":2: print-config is only a command-line flag"),
        (
            "[uwsgi]\nchdir = %(nothing)/x\n",
            ":2: %(nothing): no option or key nothing is set before this line",
        ),
        ("[uwsgi]\nchdir = %x\n", ":2: unknown placeholder %x (write %% for a % sign)"),
        ("[uwsgi]\nchdir = %(chdir\n", ":2: %(chdir is not closed with )"),
        ("[uwsgi]\nchdir = 50%\n", ":2: a lone % at the end (write %% for a % sign)"),
        (
            "[uwsgi]\nchdir = $(RWSGI_SURELY_UNSET)\n",
            ":2: $(RWSGI_SURELY_UNSET): environment variable RWSGI_SURELY_UNSET is not set",
        ),
        (
            "[uwsgi]\nchmod-socket = 999\n",
            ":2: chmod-socket \"999\": want octal permissions such as 660",
        ),
        ("[uwsgi]\nbuffer-size = 100\n", ":2: buffer-size \"100\": at least 1024 bytes"),
        ("[uwsgi]\nenv = NOEQUALS\n", ":2: env \"NOEQUALS\": want KEY=VALUE"),
    ] {
        let ini = dir.file("bad.ini", text);
        assert_eq!(error(&[&ini]), format!("{ini}{want}"), "{text:?}");
    }
    let ini = dir.file("other.ini", "[other]\nthreads = 2\n");
    assert_eq!(error(&[&ini]), format!("flag {ini}: {ini} has no [uwsgi] section"));
    assert_eq!(load(&[&format!("{ini}:other")]).unwrap().config.threads, 2);
    assert_eq!(load(&["--ini", &format!("{ini}:other")]).unwrap().config.threads, 2);
}

#[test]
fn placeholders() {
    let dir = Dir::new();
    let ini = dir.file(
        "site.ini",
        "[uwsgi]\nbase = /srv/app\nchdir = %(base)/code\nhome = %(chdir)/venv\n\
         pythonpath = %d\npythonpath = %n-%c\npythonpath = %p\nenv = PCT=100%%\n\
         env = HOME_WAS=$(RWSGI_T_HOME)\nmodule = %(wsgi)\nwsgi-file = %(file)x\n",
    );
    let err = load_env(&[&ini], &[("RWSGI_T_HOME", "/home/me")]).unwrap_err().to_string();
    assert!(err.ends_with(":10: %(wsgi): no option or key wsgi is set before this line"), "{err}");
    let ini = dir.file(
        "site.ini",
        "[uwsgi]\nbase = /srv/app\nchdir = %(base)/code\nhome = %(chdir)/venv\n\
         pythonpath = %d\npythonpath = %n-%c\npythonpath = %p\nenv = PCT=100%%\n\
         env = HOME_WAS=$(RWSGI_T_HOME)\nfile = a.py\nmodule = %(wsgi-file)\n",
    );
    let config = load_env(&[&ini], &[("RWSGI_T_HOME", "/home/me")]).unwrap().config;
    let canonical = std::fs::canonicalize(&dir.0).unwrap();
    let dir_name = canonical.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(config.chdir, Some("/srv/app/code".into()));
    assert_eq!(config.home, Some("/srv/app/code/venv".into()));
    assert_eq!(
        config.pythonpath,
        [
            PathBuf::from(format!("{}/", canonical.display())),
            format!("site-{dir_name}").into(),
            canonical.join("site.ini")
        ]
    );
    assert_eq!(config.env, ["PCT=100%", "HOME_WAS=/home/me"]);
    assert_eq!(config.module.as_deref(), Some("a.py"), "an alias names the option");
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
fn custom_keys_need_a_reference() {
    let dir = Dir::new();
    let used = dir.file("used.ini", "[uwsgi]\nproject = shop\nchdir = /srv/%(project)\n");
    assert_eq!(load(&[&used]).unwrap().config.chdir, Some("/srv/shop".into()));
    let unused = dir.file("unused.ini", "[uwsgi]\nproject = shop\nmodule = x\n");
    assert_eq!(error(&[&unused]), format!("{unused}:2: unknown option project"));
}

#[test]
fn yaml_and_json() {
    let dir = Dir::new();
    let yaml = dir.file(
        "app.yaml",
        "uwsgi:\n  http-socket: [\":1\", \":2\"]\n  threads: 4\n  master: true\n  vacuum:\n  chdir: '%dsrc'\nother:\n  threads: 9\n",
    );
    let loaded = load(&[&yaml]).unwrap();
    let canonical = std::fs::canonicalize(&dir.0).unwrap();
    assert_eq!(loaded.config.http_socket, [":1", ":2"]);
    assert_eq!(loaded.config.threads, 4);
    assert!(loaded.config.process.master && loaded.config.vacuum);
    assert_eq!(loaded.config.chdir, Some(canonical.join("src")));
    assert_eq!(loaded.source("threads"), format!("{yaml} key uwsgi.threads"));
    assert_eq!(load(&["--yaml", &format!("{yaml}:other")]).unwrap().config.threads, 9);
    let json =
        dir.file("app.json", r#"{"uwsgi": {"socket": ":5", "threads": "3", "processes": 2}}"#);
    let loaded = load(&["--json", &json]).unwrap();
    assert_eq!(
        (loaded.config.socket.as_slice(), loaded.config.threads),
        ([":5".to_string()].as_slice(), 3)
    );
    let bad = dir.file("bad.json", r#"{"uwsgi": {"threads": "x"}}"#);
    assert_eq!(
        error(&[&bad]),
        format!("{bad} key uwsgi.threads: threads \"x\": want a whole number")
    );
    let broken = dir.file("broken.yaml", "uwsgi: [\n");
    assert!(error(&[&broken]).starts_with(&format!("flag {broken}: {broken}: ")));
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
        ("PATH", "/bin"),
    ];
    let loaded = load_env(&[], &vars).unwrap();
    assert_eq!(loaded.config.http_socket, [":1"]);
    assert_eq!(loaded.config.threads, 3);
    assert!(loaded.config.process.master);
    assert_eq!(
        loaded.warnings,
        [
            "env UWSGI_NO_SUCH: not an rwsgi option; ignored",
            "env UWSGI_PRINT_CONFIG: print-config is only a command-line flag; ignored",
        ]
    );
    let err = load_env(&[], &[("UWSGI_THREADS", "x")]).unwrap_err().to_string();
    assert_eq!(err, "env UWSGI_THREADS: threads \"x\": want a whole number");
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
fn ignored_options_warn_once_and_process_options_are_taken_silently() {
    let dir = Dir::new();
    let ini = dir.file(
        "app.ini",
        "[uwsgi]\nplugins = python3\nplugin = http\nenable-threads = true\nlogto = /var/log/app.log\n\
         processes = 4\nharakiri = 30\nmaster = false\ntouch-reload = /tmp/r\nuid = www-data\npy-autoreload\n",
    );
    let loaded = load(&[&ini]).unwrap();
    assert_eq!(
        loaded.warnings,
        [
            format!("{ini}:2: plugins has no effect in rwsgi: rwsgi has Python built in"),
            format!(
                "{ini}:4: enable-threads has no effect in rwsgi: Python threads are always enabled"
            ),
            format!(
                "{ini}:5: logto has no effect in rwsgi: logs still go to stderr, NOT to this file"
            ),
            format!(
                "{ini}:11: py-autoreload has no effect in rwsgi: code changes are NOT picked up: restart rwsgi"
            ),
        ]
    );
    let process = &loaded.config.process;
    assert_eq!(
        (process.processes, process.harakiri, process.uid.as_deref()),
        (4, 30, Some("www-data"))
    );
    assert_eq!(process.touch_reload, [PathBuf::from("/tmp/r")]);
}
