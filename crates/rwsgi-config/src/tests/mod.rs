//! The whole pipeline, argv + files + environment → [`Loaded`], one
//! module per concern: the basics (sources, precedence, argv), the config
//! language (logic, placeholders, magic), the file formats, and how
//! options are judged (warnings, refusals, errors).

#![allow(clippy::unwrap_used)]

mod basics;
mod formats;
mod judged;
mod language;

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

    /// The directory's canonical path.
    fn canonical(&self) -> PathBuf {
        std::fs::canonicalize(&self.0).unwrap()
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
        Command::Run(invocation) => invocation.load(&vars, false),
        other => panic!("{other:?}"),
    }
}

fn load(args: &[&str]) -> Result<Loaded, ConfigError> {
    load_env(args, &[])
}

fn error(args: &[&str]) -> String {
    load(args).unwrap_err().to_string()
}

/// Loads one ini file holding `text`, with `args` after it.
fn load_ini(text: &str, args: &[&str]) -> (Dir, String, Result<Loaded, ConfigError>) {
    let dir = Dir::new();
    let ini = dir.file("app.ini", text);
    let loaded = load(&[&[ini.as_str()][..], args].concat());
    (dir, ini, loaded)
}
