//! How each option is judged: implemented, always so, not yet, ignored,
//! refused; unknown keys and strict mode; uWSGI's reading of values.

use super::*;

#[test]
fn uwsgi_options_rwsgi_does_not_implement_warn_once_or_are_refused() {
    let (_dir, ini, loaded) = load_ini(
        "[uwsgi]\nplugins = python3\nplugin = http\nenable-threads = true\ncheaper = 1\n\
         processes = 4\nharakiri = 30\nmaster = false\ntouch-reload = /tmp/r\nuid = www-data\npy-autoreload = 2\n\
         thunder-lock\nsingle-interpreter = true\nplugins = python3,gevent\ncpu-affinity = 1\ncheaper = 2\n",
        &[],
    );
    let loaded = loaded.unwrap();
    assert_eq!(
        loaded.warnings,
        [
            format!(
                "{ini}:5: cheaper is not implemented yet: the number of workers stays fixed at processes"
            ),
            format!(
                "{ini}:11: py-autoreload has no effect in rwsgi: code changes are NOT picked up: touch a touch-reload file or send SIGHUP"
            ),
            format!(
                "{ini}:14: plugins = python3,gevent has no effect in rwsgi: accepted for uWSGI's sake: rwsgi has Python and HTTP built in"
            ),
            format!(
                "{ini}:15: cpu-affinity has no effect in rwsgi: workers are NOT pinned to CPUs: use taskset or systemd's CPUAffinity="
            ),
        ]
    );
    let cheaper: Vec<&str> = loaded.pending_values("cheaper").map(|s| s.value.as_str()).collect();
    assert_eq!(cheaper, ["1", "2"], "kept for when cheaper lands");
    let process = &loaded.config.process;
    assert_eq!(
        (process.processes, process.harakiri, process.uid.as_deref()),
        (4, 30, Some("www-data"))
    );
    assert_eq!(process.touch_reload, [PathBuf::from("/tmp/r")]);
    let printed = loaded.render();
    assert!(
        printed.contains(&format!("; cheaper = 1    ; {ini}:5 (not implemented yet)")),
        "{printed}"
    );

    let (_dir, ini, loaded) =
        load_ini("[uwsgi]\nhttps = :443,foo.crt,foo.key\nrack = config.ru\n", &[]);
    assert_eq!(
        loaded.unwrap_err().to_string(),
        format!(
            "{ini}:2: https is not supported: rwsgi does not terminate TLS: put nginx in front and use http-socket, socket or fastcgi-socket behind it\n\
             {ini}:3: rack is not supported: rwsgi serves Python WSGI apps only"
        )
    );
}

#[test]
fn always_so_options_warn_only_when_asked_otherwise() {
    let (_dir, ini, loaded) = load_ini("[uwsgi]\nenable-threads = false\nneed-app = true\n", &[]);
    assert_eq!(
        loaded.unwrap().warnings,
        [format!(
            "{ini}:2: enable-threads = false has no effect in rwsgi: Python threads are always enabled"
        )]
    );
}

#[test]
fn unknown_keys_warn_with_a_suggestion_unless_strict() {
    let text = "[uwsgi]\nvaccum = true\nguid = www-data\nprocess = 4\nhunder-lock\nproject = shop\n\
                chdir = /srv/%(project)\nunused-custom = 1\n";
    let (_dir, ini, loaded) = load_ini(text, &[]);
    let loaded = loaded.unwrap();
    assert_eq!(loaded.config.chdir, Some("/srv/shop".into()));
    assert_eq!(
        loaded.warnings,
        [
            format!("{ini}:2: vaccum is no option: did you mean vacuum? It has no effect"),
            format!("{ini}:3: guid is no option: did you mean gid? It has no effect"),
            format!("{ini}:4: process is no option: did you mean processes? It has no effect"),
            format!(
                "{ini}:5: hunder-lock is no option: did you mean thunder-lock? It has no effect"
            ),
            format!("{ini}:8: unused-custom is no option: it has no effect"),
        ]
    );
    for strict in ["--strict", "--strict=true"] {
        let (_dir, ini, loaded) = load_ini(text, &[strict]);
        let err = loaded.unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("{ini}:2: unknown option vaccum (did you mean vacuum?)\n")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 6, "every unknown key, the used custom one too: {err}");
        assert!(err.contains(&format!("{ini}:6: unknown option project")), "{err}");
    }
    // A placeholder declared as one is never an unknown option.
    let (_dir, _ini, loaded) =
        load_ini("[uwsgi]\nstrict\nset-ph = project=shop\nchdir = /srv/%(project)\n", &[]);
    assert_eq!(loaded.unwrap().config.chdir, Some("/srv/shop".into()));
}

#[test]
fn values_as_uwsgi_reads_them() {
    let (_dir, ini, loaded) =
        load_ini("[uwsgi]\nmaster = enabled\nthreads = 4 workers\nharakiri = true\n", &[]);
    let loaded = loaded.unwrap();
    assert!(loaded.config.process.master);
    assert_eq!((loaded.config.threads, loaded.config.process.harakiri), (4, 0));
    assert_eq!(
        loaded.warnings,
        [
            format!(
                "{ini}:2: master \"enabled\" is not a boolean: uWSGI reads it as true, and so does rwsgi"
            ),
            format!(
                "{ini}:3: threads: \"4 workers\" is not a number: uWSGI reads it as 4, and so does rwsgi"
            ),
            format!(
                "{ini}:4: harakiri: \"true\" is not a number: uWSGI reads it as 0, and so does rwsgi"
            ),
        ]
    );
}

#[test]
fn protocol_and_socket_options() {
    let (_dir, _ini, loaded) = load_ini(
        "[uwsgi]\nprotocol = http\nsocket = :8000\nhttp11-socket = :8001\nuwsgi-socket = :9000\nhttp = :8002\n",
        &[],
    );
    let config = loaded.unwrap().config;
    assert_eq!(config.protocol, "http");
    assert_eq!(config.socket, [":8000"]);
    assert_eq!(config.http_socket, [":8001", ":8002"]);
    assert_eq!(config.uwsgi_socket, [":9000"]);
    let (_dir, ini, loaded) = load_ini("[uwsgi]\nprotocol = scgi\n", &[]);
    assert_eq!(
        loaded.unwrap_err().to_string(),
        format!(
            "{ini}:2: protocol \"scgi\": want uwsgi, http (or http11) or fastcgi: rwsgi speaks no other"
        )
    );
}
