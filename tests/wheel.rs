//! The Python package as users get it: the wheel `make test` built
//! (`TESTED_WHEEL`) installed with pip into a fresh virtualenv of every
//! CPython on the machine (pyenv's 3.10 to 3.13, Debian's 3.11). In each,
//! rwsgi runs inside that virtualenv's interpreter: the app sees its
//! `sys.executable` and `sys.prefix`, a `multiprocessing` spawn pool
//! started in a request runs that interpreter, `SIGHUP` reloads new code
//! (the master re-executes `sys.executable`), `SIGTERM` exits 0. Flask and
//! Django run from virtualenvs holding only rwsgi and the framework.

#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, TempDir, require, root, run_by};
use nix::sys::signal::Signal;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The wheel under test, or `None` (a skip; a failure under `CI=true`).
fn wheel() -> Option<PathBuf> {
    let wheel = std::env::var_os("TESTED_WHEEL").map(PathBuf::from).filter(|w| w.is_file());
    require(wheel.is_some(), "TESTED_WHEEL, the wheel to install (`make test` builds it)")
        .then(|| wheel.unwrap())
}

/// pyenv's CPython `minor` (3.MINOR), if installed.
fn pyenv_python(minor: u32) -> Option<PathBuf> {
    let versions = std::env::var_os("PYENV_ROOT")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".pyenv")))?
        .join("versions");
    let prefix = format!("3.{minor}.");
    let mut found: Vec<PathBuf> = std::fs::read_dir(versions)
        .ok()?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path().join(format!("bin/python3.{minor}")))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop()
}

/// A fresh virtualenv of `python` with the wheel and `packages` installed.
fn venv_with(python: &Path, wheel: &Path, packages: &[&str], dir: &TempDir) -> PathBuf {
    let venv = dir.path().join("venv");
    let made = Command::new(python).args(["-m", "venv"]).arg(&venv).output().unwrap();
    assert!(made.status.success(), "{python:?} -m venv: {made:?}");
    let pip = venv.join("bin/pip");
    let mut install = Command::new(&pip);
    install.args(["install", "--quiet", "--disable-pip-version-check"]).arg(wheel).args(packages);
    let out = install.output().unwrap();
    assert!(out.status.success(), "pip install: {}", String::from_utf8_lossy(&out.stderr));
    venv
}

const APP: &str = r#"
import json, multiprocessing, sys

VERSION = "v1"

def square(x):
    return x * x

def interpreter():
    return sys.executable

def application(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/env":
        body = json.dumps({"executable": sys.executable, "prefix": sys.prefix,
                           "version": sys.version_info[:2]})
    elif path == "/mp":
        with multiprocessing.get_context("spawn").Pool(2) as pool:
            body = json.dumps({"squares": pool.map(square, [1, 2, 3]),
                               "child": pool.apply(interpreter)})
    else:
        body = VERSION
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body.encode()]
"#;

/// Everything the issue asks of one interpreter.
fn serves_from_its_own_virtualenv(python: Option<PathBuf>, what: &str) {
    let Some(wheel) = wheel() else { return };
    if !require(python.is_some(), what) {
        return;
    }
    let python = python.unwrap();
    let dir = TempDir::new("wheel");
    let venv = venv_with(&python, &wheel, &[], &dir);
    let app_dir = dir.path().join("app");
    std::fs::create_dir(&app_dir).unwrap();
    std::fs::write(app_dir.join("venvapp.py"), APP).unwrap();
    let rwsgi = venv.join("bin/rwsgi");
    let mut server = Server::start_with(
        &["--module", "venvapp", "--master", "--processes", "2"],
        &[],
        run_by(&rwsgi, &app_dir),
    );
    assert!(server.wait_log("2 worker(s) serving", Duration::from_secs(20)), "{}", server.log());
    let env = server.get("/env").json();
    let venv_python = |path: &serde_json::Value| {
        let path = PathBuf::from(path.as_str().unwrap());
        path.starts_with(&venv) && path.file_name().unwrap().to_string_lossy().starts_with("python")
    };
    assert!(venv_python(&env["executable"]), "{env} (venv {})", venv.display());
    assert_eq!(env["prefix"].as_str().map(PathBuf::from), Some(venv.clone()), "{env}");
    let pool = server.get("/mp");
    assert_eq!(pool.status, 200, "{}", server.log());
    let pool = pool.json();
    assert_eq!(pool["squares"], serde_json::json!([1, 4, 9]), "{pool}");
    assert!(venv_python(&pool["child"]), "the spawned interpreter: {pool}");
    // New code, then SIGHUP: the master runs sys.executable again.
    let code = APP.replace("VERSION = \"v1\"", "VERSION = \"v2\"");
    std::fs::write(app_dir.join("venvapp.py"), code).unwrap();
    server.signal(Signal::SIGHUP);
    assert!(
        common::wait_until(Duration::from_secs(20), || server.get("/").text() == "v2"),
        "{}",
        server.log()
    );
    // The re-executed master (and its new workers) still run in the
    // virtualenv: the interpreter the kernel runs, and what the app sees.
    let exe = std::fs::read_link(format!("/proc/{}/exe", server.pid())).unwrap();
    let base = std::fs::canonicalize(venv.join("bin/python")).unwrap();
    assert_eq!(exe, base, "the master re-executed another interpreter");
    let env = server.get("/env").json();
    assert!(venv_python(&env["executable"]), "after the reload: {env}");
    assert_eq!(env["prefix"].as_str().map(PathBuf::from), Some(venv.clone()), "{env}");
    let status = server.stop(Signal::SIGTERM);
    assert_eq!(status.code(), Some(0), "{}", server.log());
}

#[test]
fn cpython_3_10() {
    serves_from_its_own_virtualenv(pyenv_python(10), "pyenv's CPython 3.10");
}

#[test]
fn cpython_3_11() {
    serves_from_its_own_virtualenv(pyenv_python(11), "pyenv's CPython 3.11");
}

#[test]
fn cpython_3_12() {
    serves_from_its_own_virtualenv(pyenv_python(12), "pyenv's CPython 3.12");
}

#[test]
fn cpython_3_13() {
    serves_from_its_own_virtualenv(pyenv_python(13), "pyenv's CPython 3.13");
}

#[test]
fn debian_cpython_3_11() {
    let debian = PathBuf::from("/usr/bin/python3.11");
    serves_from_its_own_virtualenv(debian.is_file().then_some(debian), "Debian's python3.11");
}

/// `pip install rwsgi flask` and `pip install rwsgi django`: the examples
/// run from virtualenvs with nothing else in them.
#[test]
fn flask_and_django_from_their_own_virtualenvs() {
    let Some(wheel) = wheel() else { return };
    let python = PathBuf::from("/usr/bin/python3.11");
    let python = if python.is_file() { Some(python) } else { pyenv_python(11) };
    if !require(python.is_some(), "a CPython 3.11") {
        return;
    }
    let python = python.unwrap();
    let examples = root().join("examples");
    for (framework, args, path, needle) in [
        ("flask>=3,<4", vec!["--wsgi-file", "app.py"], "flask", "Hello from Flask"),
        ("django>=5.1,<6", vec!["--module", "mysite.wsgi"], "django", "Django"),
    ] {
        let dir = TempDir::new("framework");
        let venv = venv_with(&python, &wheel, &[framework], &dir);
        let mut server =
            Server::start_with(&args, &[], run_by(&venv.join("bin/rwsgi"), &examples.join(path)));
        let answer = server.get("/");
        assert_eq!(answer.status, 200, "{framework}: {}", server.log());
        assert!(answer.text().contains(needle), "{framework}: {}", answer.text());
        assert_eq!(server.stop(Signal::SIGTERM).code(), Some(0));
    }
}
