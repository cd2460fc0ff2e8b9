//! Preparing the interpreter and importing the WSGI callable.
//!
//! The interpreter is the one that runs the Python package's `rwsgi`
//! command (a virtualenv's own, active as it is), or for the `rwsgi`
//! binary the one it was linked against. Another virtualenv (`home`, or
//! `VIRTUAL_ENV`) is activated the way its own
//! `activate_this.py` would: its site-packages go to the front of
//! `sys.path` and `sys.prefix` points at it. (Setting `PYTHONHOME` to a
//! `python -m venv` directory, as uWSGI does, loses the standard library.)

use crate::error::BridgeError;
use crate::mounts::MountTable;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTraceback};
use std::path::{Path, PathBuf};

/// Where the app comes from and how to prepare the interpreter for it.
#[derive(Debug, Clone, Default)]
pub struct AppSpec {
    /// `wsgi-file`: a Python file defining the callable.
    pub wsgi_file: Option<PathBuf>,
    /// `module`: `pkg.mod` or `pkg.mod:callable`.
    pub module: Option<String>,
    /// `callable`: the attribute name (default `application`).
    pub callable: String,
    /// `pythonpath`: directories prepended to `sys.path`, in order.
    pub pythonpath: Vec<PathBuf>,
    /// `home`/`virtualenv`/`venv`: a virtualenv to activate.
    pub home: Option<PathBuf>,
    /// `env`: variables set in `os.environ` before loading.
    pub env: Vec<(String, String)>,
    /// `pyargv`: `sys.argv[1:]`.
    pub argv: Vec<String>,
    /// `import`: modules imported, in order, before the app.
    pub imports: Vec<String>,
    /// `mount`: (prefix, app) pairs, the app a `.py`/`.wsgi` file or
    /// `module[:callable]`.
    pub mounts: Vec<(String, String)>,
    /// `no-default-app`: a request whose `SCRIPT_NAME` names no mount is
    /// not given to the default app.
    pub no_default_app: bool,
}

/// The loaded WSGI callables: the default app and the mounted ones.
#[derive(Debug)]
pub struct App {
    pub(crate) callables: Vec<Py<PyAny>>,
    pub(crate) table: MountTable,
}

impl App {
    /// One callable answering every request.
    pub fn single(callable: Py<PyAny>) -> App {
        App { callables: vec![callable], table: MountTable::single() }
    }

    /// Another reference to the same callables (for a forked worker).
    pub fn clone_ref(&self, py: Python<'_>) -> App {
        App {
            callables: self.callables.iter().map(|c| c.clone_ref(py)).collect(),
            table: self.table.clone(),
        }
    }
}

/// What a mount's target names: a Python file (`.py`, `.wsgi`, or a
/// path), else a module (`module[:callable]`).
fn mounted(spec: &AppSpec, target: &str) -> AppSpec {
    let is_file = target.ends_with(".py") || target.ends_with(".wsgi") || target.contains('/');
    AppSpec {
        wsgi_file: is_file.then(|| PathBuf::from(target)),
        module: (!is_file).then(|| target.to_string()),
        ..spec.clone()
    }
}

/// Prepares the interpreter (env, `sys.argv`, virtualenv, pythonpath),
/// imports the `import` modules and then the callable. (`chdir` happened
/// before: the master enters it before binding, as uWSGI does.) Errors are one line each; a Python traceback goes to the log.
pub fn load_app(spec: &AppSpec) -> Result<App, BridgeError> {
    for (key, value) in &spec.env {
        // SAFETY-free: set before any other thread of ours exists (the pool
        // and the runtime start after loading), so no concurrent getenv.
        set_env(key, value);
    }
    let home = spec.home.clone().or_else(|| std::env::var_os("VIRTUAL_ENV").map(PathBuf::from));
    Python::attach(|py| {
        // An interpreter started before (rwsgi run by `python`) read its
        // environment then: `os.environ` gets `env` too.
        if !spec.env.is_empty() {
            let environ = py
                .import("os")
                .and_then(|os| os.getattr("environ"))
                .map_err(|e| python_error(py, e))?;
            for (key, value) in &spec.env {
                environ.set_item(key, value).map_err(|e| python_error(py, e))?;
            }
        }
        let sys = py.import("sys").map_err(|e| python_error(py, e))?;
        let program = std::env::args().next().unwrap_or_else(|| "rwsgi".into());
        let argv: Vec<&str> =
            std::iter::once(program.as_str()).chain(spec.argv.iter().map(String::as_str)).collect();
        sys.setattr("argv", argv).map_err(|e| python_error(py, e))?;
        if let Some(home) = &home {
            activate_virtualenv(py, home)?;
        }
        let path = sys
            .getattr("path")
            .and_then(|p| Ok(p.cast_into::<PyList>()?))
            .map_err(|e| python_error(py, e))?;
        // Like `python -m`: the working directory first, then pythonpath.
        let mut front: Vec<String> = vec![cwd_string()];
        front.extend(spec.pythonpath.iter().map(|p| absolute(p).to_string_lossy().into_owned()));
        let mounts: Vec<AppSpec> =
            spec.mounts.iter().map(|(_, target)| mounted(spec, target)).collect();
        for file in std::iter::once(spec).chain(&mounts).filter_map(|s| s.wsgi_file.as_ref()) {
            if let Some(dir) = absolute(file).parent() {
                front.push(dir.to_string_lossy().into_owned());
            }
        }
        for entry in front.iter().rev() {
            if !path.contains(entry).unwrap_or(false) {
                path.insert(0, entry).map_err(|e| python_error(py, e))?;
            }
        }
        for module in &spec.imports {
            py.import(module.as_str()).map_err(|e| import_error(py, module, &e))?;
        }
        let mut callables = Vec::new();
        if spec.wsgi_file.is_some() || spec.module.is_some() {
            callables.push(import_callable(py, spec)?.unbind());
        }
        let default = (!callables.is_empty()).then_some(0);
        let mut table = Vec::new();
        for ((prefix, _), mount) in spec.mounts.iter().zip(&mounts) {
            callables.push(import_callable(py, mount)?.unbind());
            table.push((prefix.clone(), callables.len() - 1));
            tracing::info!(
                "mounted {} at {prefix:?}",
                mount.wsgi_file.as_ref().map_or_else(
                    || mount.module.clone().unwrap_or_default(),
                    |f| f.display().to_string()
                )
            );
        }
        if callables.is_empty() {
            return Err(BridgeError::NoApp);
        }
        Ok(App { callables, table: MountTable::new(default, table, !spec.no_default_app) })
    })
}

/// Runs the app's `atexit` handlers, as uWSGI does when a worker ends
/// gracefully (the interpreter itself is never finalised: workers and the
/// lone process end with `exit()`). Errors are logged.
pub fn run_atexit() {
    Python::attach(|py| {
        let ran = py.import("atexit").and_then(|atexit| atexit.call_method0("_run_exitfuncs"));
        if let Err(err) = ran {
            tracing::error!("atexit: {}", format_traceback(py, &err));
        }
    });
}

fn set_env(key: &str, value: &str) {
    #[allow(unsafe_code)]
    // SAFETY: called from `load_app`, before rwsgi starts its Python threads or
    // tokio runtime, while this is the only thread that reads the environment.
    unsafe {
        std::env::set_var(key, value)
    };
}

fn cwd_string() -> String {
    std::env::current_dir().map(|d| d.to_string_lossy().into_owned()).unwrap_or_else(|_| ".".into())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn activate_virtualenv(py: Python<'_>, home: &Path) -> Result<(), BridgeError> {
    let venv_error = |reason: String| BridgeError::Virtualenv { path: home.to_path_buf(), reason };
    if !home.is_dir() {
        return Err(venv_error("no such directory".into()));
    }
    // Run by the virtualenv's own interpreter (the Python package's `rwsgi`
    // in it): it is active already, `site` and all.
    let prefix: Option<PathBuf> =
        py.import("sys").and_then(|sys| sys.getattr("prefix")?.extract()).ok();
    if prefix.is_some_and(|prefix| same_dir(&prefix, home)) {
        return Ok(());
    }
    let (major, minor) = (py.version_info().major, py.version_info().minor);
    let site_packages = home.join(format!("lib/python{major}.{minor}/site-packages"));
    if !site_packages.is_dir() {
        return Err(venv_error(format!(
            "no lib/python{major}.{minor}/site-packages: it was made for another Python \
             (rwsgi embeds Python {major}.{minor})"
        )));
    }
    let home = absolute(home);
    let code = c"
import os, site, sys
before = list(sys.path)
site.addsitedir(site_packages)
sys.path[:] = [p for p in sys.path if p not in before] + before
sys.prefix = sys.exec_prefix = home
os.environ['VIRTUAL_ENV'] = home
";
    // One namespace for globals and locals: before Python 3.12 a
    // comprehension cannot see names bound only in a separate locals dict.
    let scope = PyDict::new(py);
    let set = |k: &str, v: &Path| scope.set_item(k, v.to_string_lossy());
    set("home", &home)
        .and(set("site_packages", &site_packages))
        .map_err(|e| python_error(py, e))?;
    py.run(code, Some(&scope), None).map_err(|e| venv_error(summarize(py, &e)))
}

fn import_callable<'py>(py: Python<'py>, spec: &AppSpec) -> Result<Bound<'py, PyAny>, BridgeError> {
    let (what, module, callable) = if let Some(file) = &spec.wsgi_file {
        let what = file.display().to_string();
        std::fs::metadata(file)
            .map_err(|source| BridgeError::WsgiFile { path: file.clone(), source })?;
        let module = load_file_module(py, file).map_err(|e| import_error(py, &what, &e))?;
        (what, module, spec.callable.clone())
    } else if let Some(target) = &spec.module {
        let (name, callable) = match target.split_once(':') {
            Some((name, callable)) => (name, callable.to_string()),
            None => (target.as_str(), spec.callable.clone()),
        };
        let module = py.import(name).map_err(|e| import_error(py, name, &e))?;
        (name.to_string(), module.into_any(), callable)
    } else {
        return Err(BridgeError::NoApp);
    };
    let app = match module.getattr(callable.as_str()) {
        Ok(app) => app,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => {
            return Err(BridgeError::NoCallable { what, callable });
        }
        Err(e) => return Err(import_error(py, &what, &e)),
    };
    if !app.is_callable() {
        let kind = app.get_type().name().map(|n| n.to_string()).unwrap_or_default();
        return Err(BridgeError::NotCallable { what, callable, kind });
    }
    Ok(app)
}

/// Executes a file as a module, as uWSGI's `wsgi-file` does, under a name
/// derived from its path so two files never share a module.
fn load_file_module<'py>(py: Python<'py>, file: &Path) -> PyResult<Bound<'py, PyAny>> {
    let path = absolute(file).to_string_lossy().into_owned();
    let name: String =
        path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
    let name = format!("uwsgi_file_{name}");
    let util = py.import("importlib.util")?;
    let spec = util.call_method1("spec_from_file_location", (&name, &path))?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?.getattr("modules")?.set_item(&name, &module)?;
    spec.getattr("loader")?.call_method1("exec_module", (&module,))?;
    Ok(module)
}

fn import_error(py: Python<'_>, what: &str, err: &PyErr) -> BridgeError {
    // The one-line summary is the error; the whole traceback is for `RUST_LOG=debug`.
    tracing::debug!("loading {what}: {}", format_traceback(py, err));
    BridgeError::Import { what: what.to_string(), summary: summarize(py, err) }
}

fn python_error(py: Python<'_>, err: PyErr) -> BridgeError {
    BridgeError::Python(summarize(py, &err))
}

/// One line: `Type: message (file:line)` of the innermost frame.
pub(crate) fn summarize(py: Python<'_>, err: &PyErr) -> String {
    let kind =
        err.get_type(py).name().map(|n| n.to_string()).unwrap_or_else(|_| "Exception".into());
    let message = err.value(py).str().map(|s| s.to_string()).unwrap_or_default();
    let mut line = if message.is_empty() { kind } else { format!("{kind}: {message}") };
    if let Some(at) = err.traceback(py).and_then(|tb| innermost_frame(&tb)) {
        line.push_str(&format!(" ({at})"));
    }
    line
}

fn innermost_frame(tb: &Bound<'_, PyTraceback>) -> Option<String> {
    let mut tb = tb.clone().into_any();
    while let Ok(next) = tb.getattr("tb_next") {
        if next.is_none() {
            break;
        }
        tb = next;
    }
    let line: u32 = tb.getattr("tb_lineno").ok()?.extract().ok()?;
    let file: String = tb
        .getattr("tb_frame")
        .ok()?
        .getattr("f_code")
        .ok()?
        .getattr("co_filename")
        .ok()?
        .extract()
        .ok()?;
    Some(format!("{file}:{line}"))
}

/// The full Python traceback of `err`, as `traceback.format_exception` gives it.
pub(crate) fn format_traceback(py: Python<'_>, err: &PyErr) -> String {
    // Type, value and traceback apart: on 3.11 the value alone may not carry
    // its `__traceback__` yet.
    py.import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>())
        .map(|lines| lines.concat().trim_end().to_string())
        .unwrap_or_else(|_| summarize(py, err))
}

/// Makes `signal` write the Python stack of every thread to the process's
/// stderr (`faulthandler`, so it works even while a thread holds the GIL
/// in a loop or sleeps in C): how a supervisor shows what a stuck request
/// was doing before it kills the process.
pub fn dump_stacks_on(signal: i32) -> Result<(), BridgeError> {
    Python::attach(|py| {
        let faulthandler = py.import("faulthandler")?;
        let stderr = py.import("sys")?.getattr("__stderr__")?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("file", stderr)?;
        kwargs.set_item("all_threads", true)?;
        kwargs.set_item("chain", false)?;
        faulthandler.call_method("register", (signal,), Some(&kwargs)).map(drop)
    })
    .map_err(|e| Python::attach(|py| python_error(py, e)))
}
