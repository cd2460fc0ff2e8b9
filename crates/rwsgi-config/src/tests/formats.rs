//! The file formats, read whole: ini's rules, YAML (valid and uWSGI's
//! lenient kind), JSON, XML, includes across formats.

use super::*;

#[test]
fn ini_values_are_the_whole_rest_of_the_line() {
    let (_dir, ini, loaded) = load_ini(
        "# comment\n[uwsgi]\n; comment\nmaster\nvacuum = off\nchmod-socket\n\
         socket = 127.0.0.1:9000   ; uwsgi protocol\nenv = A=b#c\n",
        &[],
    );
    let loaded = loaded.unwrap();
    let config = &loaded.config;
    assert!(config.process.master && !config.vacuum);
    assert_eq!(config.chmod_socket_mode(), Some(0o666));
    assert_eq!(config.socket, ["127.0.0.1:9000   ; uwsgi protocol"]);
    assert_eq!(config.env, ["A=b#c"]);
    assert_eq!(
        loaded.warnings,
        [format!(
            "{ini}:7: socket \"127.0.0.1:9000   ; uwsgi protocol\" holds what looks like a comment: \
             uWSGI keeps it as part of the value, and so does rwsgi (put comments on their own line)"
        )]
    );
}

#[test]
fn yaml_valid_and_lenient() {
    let dir = Dir::new();
    let yaml = dir.file(
        "app.yaml",
        "uwsgi:\n  http-socket: [\":1\", \":2\"]\n  threads: 4\n  master: true\n  vacuum:\n  chdir: '%dsrc'\n\
         \x20 socket: /tmp/a.sock\n  socket: /tmp/b.sock\nother:\n  threads: 9\n",
    );
    let loaded = load(&[&yaml]).unwrap();
    assert_eq!(loaded.config.http_socket, [":1", ":2"]);
    assert_eq!(loaded.config.socket, ["/tmp/a.sock", "/tmp/b.sock"], "repeated keys are kept");
    assert_eq!(loaded.config.threads, 4);
    assert!(loaded.config.process.master && loaded.config.vacuum);
    assert_eq!(loaded.config.chdir, Some(dir.canonical().join("src")));
    assert_eq!(loaded.source("threads"), format!("{yaml}:3"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(load(&["--yaml", &format!("{yaml}:other")]).unwrap().config.threads, 9);

    let lenient = dir.file(
        "lenient.yml",
        "uwsgi:\n  socket: 127.0.0.1:3031\n  log-format: %(addr) - %(user) [%(ltime)] \"%(method) %(uri)\"\n  processes: 2\n",
    );
    let loaded = load(&[&lenient]).unwrap();
    assert_eq!(
        (loaded.config.socket.as_slice(), loaded.config.process.processes),
        ([String::from("127.0.0.1:3031")].as_slice(), 2)
    );
    assert_eq!(
        loaded.config.request_log.log_format.as_deref(),
        Some("%(addr) - %(user) [%(ltime)] \"%(method) %(uri)\"")
    );
    assert!(
        loaded.warnings[0].starts_with(&format!("{lenient}:1: not valid YAML (")),
        "{:?}",
        loaded.warnings
    );
}

#[test]
fn json_and_xml() {
    let dir = Dir::new();
    let json = dir.file(
        "app.json",
        r#"{"uwsgi": {"socket": [":5", ":6"], "threads": "3", "processes": 2, "master": true}}"#,
    );
    let loaded = load(&["--json", &json]).unwrap();
    assert_eq!(
        (loaded.config.socket.as_slice(), loaded.config.threads),
        ([":5".to_string(), ":6".into()].as_slice(), 3)
    );
    assert_eq!(loaded.source("threads"), format!("{json} key uwsgi.threads"));
    let bad = dir.file("bad.json", r#"{"uwsgi": {"threads": "-3"}}"#);
    assert_eq!(
        error(&[&bad]),
        format!("{bad} key uwsgi.threads: threads \"-3\": want a whole number, at least 0")
    );
    let broken = dir.file("broken.json", "{\"uwsgi\": [");
    assert!(error(&[&broken]).starts_with(&format!("flag {broken}: {broken}: ")));

    let xml = dir.file(
        "app.xml",
        "<uwsgi>\n  <socket>:7</socket>\n  <master/>\n  <processes>4</processes>\n  <socket>%d%n.sock</socket>\n</uwsgi>\n",
    );
    let loaded = load(&[&xml]).unwrap();
    assert_eq!(
        loaded.config.socket,
        [":7".to_string(), format!("{}/app.sock", dir.canonical().display())]
    );
    assert!(loaded.config.process.master);
    assert_eq!(loaded.source("processes"), format!("{xml}:4"));
    let ids = dir.file(
        "ids.xml",
        "<all><uwsgi id=\"a\"><threads>2</threads></uwsgi><uwsgi id=\"b\"><threads>5</threads></uwsgi></all>",
    );
    assert_eq!(load(&["--xml", &format!("{ids}:b")]).unwrap().config.threads, 5);
    assert_eq!(load(&["-x", &format!("{ids}:a")]).unwrap().config.threads, 2);
}

#[test]
fn includes_across_formats_and_missing_sections() {
    let dir = Dir::new();
    dir.file("base.yaml", "uwsgi:\n  threads: 6\n");
    dir.file("base.xml", "<uwsgi><processes>2</processes></uwsgi>");
    let ini = dir.file("app.ini", "[uwsgi]\ninclude = %dbase.yaml\ninherit = %dbase.xml\n");
    let config = load(&[&ini]).unwrap().config;
    assert_eq!((config.threads, config.process.processes), (6, 2));
    let other = dir.file("other.ini", "[other]\nthreads = 2\n");
    assert_eq!(error(&[&other]), format!("flag {other}: {other} has no [uwsgi] section"));
    assert_eq!(load(&[&format!("{other}:other")]).unwrap().config.threads, 2);
}
