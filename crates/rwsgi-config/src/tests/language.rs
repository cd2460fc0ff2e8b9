//! uWSGI's config language: logic blocks, placeholders, magic variables,
//! `set`, `declare-option`, `print`/`exit`/`get`, black- and whitelists.

use super::*;

#[test]
fn if_blocks_read_their_lines_when_they_hold() {
    let dir = Dir::new();
    let existing = dir.file("exists.txt", "");
    let ini = dir.file(
        "app.ini",
        &format!(
            "[uwsgi]\nif-env = RWSGI_T_ON\nsocket = :%(_)\nendif =\n\
             if-env = RWSGI_T_MISSING\nsocket = :1\nendif =\n\
             if-not-env = RWSGI_T_MISSING\nsocket = :2\nend-if =\n\
             if-env = RWSGI_T_ON=9000\nsocket = :3\nendif =\n\
             if-env = RWSGI_T_ON=1\nsocket = :4\nendif =\n\
             if-exists = {existing}\nsocket = %(_).sock\nendif\n\
             if-not-file = {existing}\nsocket = :5\nendif\n\
             if-dir = %d\nsocket = :6\nendif\n\
             if-opt = socket\nsocket = :7\nendif\n\
             if-not-opt = threads\nthreads = 9\nendif\n\
             if-plugin = python3\nsocket = :8\nendif\n\
             if-hostname-match = .\nsocket = :10\nendif\n\
             if-not-reload\nsocket = :11\nendif\n\
             if-reload\nsocket = :12\nendif\n"
        ),
    );
    let loaded = load_env(&[&ini], &[("RWSGI_T_ON", "9000")]).unwrap();
    assert_eq!(
        loaded.config.socket,
        [":9000", ":2", ":3", &format!("{existing}.sock"), ":6", ":7", ":8", ":10", ":11"]
    );
    assert_eq!(loaded.config.threads, 9);
}

#[test]
fn for_blocks_repeat_each_line_in_turn() {
    let dir = Dir::new();
    dir.file("a.sock.d", "");
    let lines = dir.file("ports.txt", "7001\n7002\n");
    let ini = dir.file(
        "app.ini",
        &format!(
            "[uwsgi]\nfor = a b c\nsocket = /run/%(_).sock\nhttp-socket = /run/%(_)-http.sock\nendfor =\n\
             for-times = 2\nenv = N%(_)=%(_)\nend-for\n\
             for-readline = {lines}\nfastcgi-socket = :%(_)\nendfor\n\
             for-glob = %d*.d\npythonpath = %(_)\nendfor\n"
        ),
    );
    let config = load(&[&ini]).unwrap().config;
    assert_eq!(config.socket, ["/run/a.sock", "/run/b.sock", "/run/c.sock"]);
    assert_eq!(config.http_socket, ["/run/a-http.sock", "/run/b-http.sock", "/run/c-http.sock"]);
    assert_eq!(config.env, ["N1=1", "N2=2"]);
    assert_eq!(config.fastcgi_socket, [":7001", ":7002"]);
    assert_eq!(config.pythonpath, [dir.canonical().join("a.sock.d")]);
}

#[test]
fn a_for_times_beyond_reason_is_an_error() {
    let (_dir, ini, loaded) =
        load_ini("[uwsgi]\nfor-times = 999999999\nenv = N=%(_)\nendfor\n", &[]);
    assert_eq!(
        loaded.unwrap_err().to_string(),
        format!("{ini}:2: for-times \"999999999\": at most 65536")
    );
}

#[test]
fn blocks_nest_and_an_include_inside_one_is_read_only_if_it_holds() {
    let dir = Dir::new();
    dir.file("extra.ini", "[uwsgi]\nhttp-socket = :8080\n");
    let ini = dir.file(
        "app.ini",
        "[uwsgi]\nfor = 1 2\nif-env = RWSGI_T_NEST\nsocket = :900%(_)\nendif\nendfor\n\
         if-env = RWSGI_T_NEST\nfor = x y\nenv = V=%(_)\nendfor\nif-env = RWSGI_T_NO\nenv = NEVER=1\nendif\nendif\n\
         if-env = RWSGI_T_NO\nini = %dextra.ini\nendif\nif-env = RWSGI_T_NEST\nini = %dextra.ini\nendif\n",
    );
    let config = load_env(&[&ini], &[("RWSGI_T_NEST", "on")]).unwrap().config;
    // The inner if's %(_) is the variable's value: `on`; the for only repeats.
    assert_eq!(config.socket, [":900on", ":900on"]);
    assert_eq!(config.env, ["V=x", "V=y"]);
    assert_eq!(config.http_socket, [":8080"]);
}

#[test]
fn an_unclosed_block_ends_with_its_file_and_a_stray_end_is_ignored() {
    let (_dir, ini, loaded) =
        load_ini("[uwsgi]\nendif\nif-env = RWSGI_T_NONE\nsocket = :1\n", &["--socket", ":2"]);
    let loaded = loaded.unwrap();
    assert_eq!(loaded.config.socket, [":2"]);
    assert_eq!(
        loaded.warnings,
        [
            format!("{ini}:2: endif with no block open: ignored"),
            format!("{ini}:3: if-env has no endif: it ends here, with its file"),
        ]
    );
    // And on the command line too.
    let config =
        load_env(&["--if-env", "RWSGI_T_ARGV", "--socket", ":3", "--endif", "--socket", ":4"], &[])
            .unwrap()
            .config;
    assert_eq!(config.socket, [":4"]);
}

#[test]
fn placeholders_resolve_after_everything_is_read() {
    let dir = Dir::new();
    let ini = dir.file(
        "site.ini",
        "[uwsgi]\nchdir = %(base)/code\nbase = /srv/%(project)\nhome = %(chdir)/venv\n\
         env = PCT=100%%\nenv = HOME_WAS=$(T_RWSGI_HOME)\nenv = UNSET=$(RWSGI_T_UNSET)\n\
         file = a.py\nmodule = %(wsgi-file)\nprocesses = %(2 * 2)\nlisten = %(processes * 16)\n\
         pythonpath = /lib\npythonpath = %(pythonpath)/more\n",
    );
    let loaded =
        load_env(&[&ini, "--set-ph", "project=shop"], &[("T_RWSGI_HOME", "/home/me")]).unwrap();
    let config = &loaded.config;
    assert_eq!(config.chdir, Some("/srv/shop/code".into()));
    assert_eq!(config.home, Some("/srv/shop/code/venv".into()));
    assert_eq!(config.env, ["PCT=100%", "HOME_WAS=/home/me", "UNSET=$(RWSGI_T_UNSET)"]);
    assert_eq!(config.module.as_deref(), Some("a.py"), "an alias names the option");
    assert_eq!((config.process.processes, config.listen), (4, 64));
    assert_eq!(config.pythonpath, [PathBuf::from("/lib"), "/lib/more".into()]);
    assert_eq!(
        loaded.warnings,
        [format!(
            "{ini}:7: $(RWSGI_T_UNSET): RWSGI_T_UNSET is not set: left as written, as uWSGI does"
        )]
    );
}

#[test]
fn a_placeholder_takes_the_value_in_effect() {
    let dir = Dir::new();
    let ini = dir.file("app.ini", "[uwsgi]\nport = 8000\nhttp-socket = :%(port)\n");
    let config = load_env(&[&ini, "--set", "port=9000"], &[]).unwrap().config;
    assert_eq!(config.http_socket, [":9000"], "a flag overrides the file's value");
    let config = load_env(&[&ini], &[("UWSGI_PORT", "7000")]).unwrap().config;
    assert_eq!(config.http_socket, [":7000"], "so does the environment");
}

#[test]
fn file_contents_and_command_output() {
    let dir = Dir::new();
    let somaxconn = dir.file("somaxconn", "4096\n");
    let ini = dir.file(
        "app.ini",
        &format!("[uwsgi]\nlisten = @({somaxconn})\nprocname-prefix = @(exec://echo app-)\n"),
    );
    let config = load(&[&ini]).unwrap().config;
    assert_eq!(config.listen, 4096);
    assert_eq!(config.process.procname_prefix.as_deref(), Some("app-"));
    let bad = dir.file("bad.ini", "[uwsgi]\nlisten = @(/no/such/file)\n");
    assert!(error(&[&bad]).starts_with(&format!("{bad}:2: @(/no/such/file): ")));
}

#[test]
fn magic_variables() {
    let dir = Dir::new();
    let ini = dir.file(
        "site.ini",
        "[uwsgi]\npythonpath = %d\npythonpath = %n-%c.%e\npythonpath = %p\nenv = CPUS=%k\nenv = HOST=%h\n\
         env = USER=%U\nenv = X=%x\nenv = ODD=a%zb\n",
    );
    let loaded = load(&[&ini]).unwrap();
    let canonical = dir.canonical();
    let dir_name = canonical.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        loaded.config.pythonpath,
        [
            PathBuf::from(format!("{}/", canonical.display())),
            format!("site-{dir_name}.ini").into(),
            canonical.join("site.ini")
        ]
    );
    let env = loaded.config.env_pairs();
    let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone()).unwrap();
    assert!(get("CPUS").parse::<usize>().unwrap() >= 1);
    assert_eq!(get("HOST"), nix::unistd::gethostname().unwrap().to_string_lossy());
    assert!(!get("USER").is_empty());
    assert_eq!((get("X").as_str(), get("ODD").as_str()), ("uwsgi", "ab"));
    assert_eq!(
        loaded.warnings,
        [format!(
            "{ini}:9: %z is no magic variable: uWSGI replaces it with nothing, and so does rwsgi (write %% for a %)"
        )]
    );
}

#[test]
fn set_declare_option_and_sections_of_the_same_file() {
    let dir = Dir::new();
    let ini = dir.file(
        "app.ini",
        "[uwsgi]\nset = threads=4\ndeclare-option = listen-on=http-socket=$1;env=PORT=$2\n\
         listen-on = :8000 8000\nini = :extra\n[extra]\nprocesses = 3\n",
    );
    let config = load(&[&ini]).unwrap().config;
    assert_eq!((config.threads, config.process.processes), (4, 3));
    assert_eq!(config.http_socket, [":8000"]);
    assert_eq!(config.env, ["PORT=8000"]);
    let err = error(&[&dir.file("bad.ini", "[uwsgi]\nset-placeholder = threads=4\n")]);
    assert!(err.contains("threads is an option: set it with set = threads=..."), "{err}");
}

#[test]
fn print_exit_and_get() {
    let (_dir, _ini, loaded) = load_ini(
        "[uwsgi]\nprint = starting %(project)\nproject = shop\nif-not-env = RWSGI_T_DB\n\
         print = RWSGI_T_DB is not set\nexit = 3\nendif\nsocket = :never\n",
        &[],
    );
    let loaded = loaded.unwrap();
    assert_eq!(loaded.prints, ["starting shop", "RWSGI_T_DB is not set"]);
    assert_eq!(loaded.exit, Some(3));
    assert!(loaded.config.socket.is_empty(), "nothing after exit is read");
    let (_dir, _ini, loaded) =
        load_ini("[uwsgi]\nthreads = 8\n", &["--get", "threads", "--get", "nothing"]);
    assert_eq!(loaded.unwrap().gets, Some(vec!["8".to_string()]));
}

#[test]
fn black_and_white_lists() {
    let (_dir, ini, loaded) = load_ini(
        "[uwsgi]\nblacklist = uid gid\nthreads = 2\nuid = root\nend-blacklist\nuid = www-data\n\
         whitelist = socket\nsocket = :1\nthreads = 3\nend-whitelist\n",
        &[],
    );
    let err = loaded.unwrap_err().to_string();
    assert_eq!(
        err.lines().collect::<Vec<_>>(),
        [
            format!("{ini}:4: uid is forbidden here by the blacklist at {ini}:2"),
            format!("{ini}:9: threads is forbidden here by the whitelist at {ini}:7"),
        ]
    );
}
