//! Static files, served by the core with no Python involved: uWSGI's
//! `static-map`, `static-map2` and `check-static` with their siblings
//! (`static-index`, `static-skip-ext`, `static-safe`, `static-expires*`,
//! `static-gzip*`, `mimefile`).
//!
//! [`StaticFiles::serve`] looks a request up and, when a file answers it,
//! returns the response as [`Event`]s: the head (`Content-Type`,
//! `Last-Modified`, `ETag`, `Expires`, `Content-Encoding`), then the file
//! for the core to `sendfile`. Conditional requests get `304`, a single
//! byte range `206` (or `416`), `HEAD` the head alone. A request no file
//! answers (`None`) goes on to the app, as in uWSGI. No path ever leaves
//! its directory: every candidate is resolved (`..`, symlinks) and must
//! lie under the mapped directory or a `static-safe` one; directories are
//! never listed. Files are opened on the calling (I/O) thread, as nginx
//! does without `aio`: a stat and an open of a cached inode.

mod reply;
mod resolve;
mod rules;

use regex::Regex;
use resolve::Root;
use rules::{Expires, Gzip, MimeTypes};
use rwsgi_proto::{Environ, Event};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

pub use reply::Asked;

/// The options, as uWSGI spells their values.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `static-map = /PREFIX=DIR`: a path under PREFIX is the file DIR +
    /// the rest of the path (DIR may also be one file).
    pub maps: Vec<String>,
    /// `static-map2 = /PREFIX=DIR`: the file DIR + the whole path.
    pub maps2: Vec<String>,
    /// `check-static = DIR`: the file DIR + the path, for any path.
    pub check: Vec<String>,
    /// `static-index`: names tried, in order, for a directory.
    pub index: Vec<String>,
    /// `static-skip-ext`: paths and files ending so are never served.
    pub skip_ext: Vec<String>,
    /// `static-safe`: directories a file may resolve into (through a
    /// symlink) besides its own.
    pub safe: Vec<String>,
    /// `static-expires-type = TYPE=SECONDS` (and `-mtime`: from the
    /// file's modification time, not now).
    pub expires_type: Vec<String>,
    pub expires_type_mtime: Vec<String>,
    /// `static-expires = REGEX SECONDS` on the file name (and `-mtime`).
    pub expires_file: Vec<String>,
    pub expires_file_mtime: Vec<String>,
    /// `static-expires-uri = REGEX SECONDS` on REQUEST_URI (and `-mtime`).
    pub expires_uri: Vec<String>,
    pub expires_uri_mtime: Vec<String>,
    /// `static-expires-path-info = REGEX SECONDS` on PATH_INFO (and `-mtime`).
    pub expires_path_info: Vec<String>,
    pub expires_path_info_mtime: Vec<String>,
    /// `static-gzip = REGEX` on the file name: serve `FILE.br` or
    /// `FILE.gz` to clients that accept them.
    pub gzip: Vec<String>,
    /// `static-gzip-all`: for every file.
    pub gzip_all: bool,
    /// `static-gzip-dir` (`static-gzip-prefix`): for files under these.
    pub gzip_dirs: Vec<String>,
    /// `static-gzip-ext` (`static-gzip-suffix`): for files ending so.
    pub gzip_exts: Vec<String>,
    /// `mimefile`: `/etc/mime.types`-style files, over the built-in table.
    pub mime_files: Vec<String>,
}

impl Settings {
    /// Whether any option asks for static files.
    pub fn is_empty(&self) -> bool {
        self.maps.is_empty() && self.maps2.is_empty() && self.check.is_empty()
    }
}

/// A setting that cannot work, found at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StaticError {
    #[error("{option} = {value:?}: {reason}")]
    Invalid { option: &'static str, value: String, reason: String },
}

impl StaticError {
    fn invalid(option: &'static str, value: &str, reason: impl Into<String>) -> StaticError {
        StaticError::Invalid { option, value: value.to_string(), reason: reason.into() }
    }
}

/// Where a request path may find its file.
#[derive(Debug)]
enum Lookup {
    /// Any path, under this directory.
    Check(Root),
    /// Paths under `prefix`: the rest of the path under the root
    /// (`static-map`), or the whole path (`static-map2`). A root that is
    /// a file answers every such path.
    Map { prefix: String, root: Root, keep_prefix: bool },
}

/// Everything the static options configure, ready to answer requests
/// (the default serves nothing but what a route names).
#[derive(Debug, Default)]
pub struct StaticFiles {
    lookups: Vec<Lookup>,
    index: Vec<String>,
    skip_ext: Vec<String>,
    safe: Vec<Root>,
    expires: Expires,
    gzip: Gzip,
    mime: MimeTypes,
    /// Open beneath the directory with openat2 (else realpath only: for
    /// tests of that way).
    no_openat2: bool,
}

impl StaticFiles {
    /// Checks and compiles the settings (regexes, numbers, mime files).
    /// Directories are resolved on first use, as uWSGI does, so one that
    /// appears after start-up is served.
    pub fn new(settings: &Settings) -> Result<StaticFiles, StaticError> {
        let mut lookups: Vec<Lookup> =
            settings.check.iter().map(|dir| Lookup::Check(Root::new(dir))).collect();
        for (option, values, keep_prefix) in
            [("static-map", &settings.maps, false), ("static-map2", &settings.maps2, true)]
        {
            for value in values {
                let Some((prefix, dir)) = value.split_once('=') else {
                    return Err(StaticError::invalid(option, value, "want /PREFIX=DIR"));
                };
                if dir.is_empty() {
                    return Err(StaticError::invalid(option, value, "no directory"));
                }
                lookups.push(Lookup::Map {
                    prefix: prefix.to_string(),
                    root: Root::new(dir),
                    keep_prefix,
                });
            }
        }
        Ok(StaticFiles {
            lookups,
            index: settings.index.clone(),
            skip_ext: settings.skip_ext.clone(),
            safe: settings.safe.iter().map(Root::new).collect(),
            expires: Expires::new(settings)?,
            gzip: Gzip::new(settings)?,
            mime: MimeTypes::new(&settings.mime_files)?,
            no_openat2: false,
        })
    }

    /// The response when a static file answers this request; `None` sends
    /// it on (to the app). Only `GET` and `HEAD` are answered.
    pub fn serve(&self, environ: &Environ) -> Option<Vec<Event>> {
        let asked = Asked::from_environ(environ);
        if !matches!(asked.method, b"GET" | b"HEAD") || self.skipped(asked.path_info) {
            return None;
        }
        let path = std::str::from_utf8(asked.path_info).ok();
        for lookup in &self.lookups {
            let found = match lookup {
                Lookup::Check(root) => {
                    root.find(asked.path_info, &self.index, &self.safe, !self.no_openat2)
                }
                Lookup::Map { prefix, root, keep_prefix } => {
                    let Some(rest) = path.and_then(|p| under_prefix(p, prefix)) else {
                        continue;
                    };
                    if root.is_file() {
                        root.whole()
                    } else {
                        let rel = if *keep_prefix { asked.path_info } else { rest.as_bytes() };
                        root.find(rel, &self.index, &self.safe, !self.no_openat2)
                    }
                }
            };
            if let Some(found) = found.filter(|f| !self.skipped(f.name.as_os_str().as_bytes())) {
                return Some(reply::file(found, &asked, self));
            }
        }
        None
    }

    /// The response serving exactly `path` (a route's `static:` action):
    /// it must resolve to itself, or into a `static-safe` directory, so a
    /// path built from the request cannot climb out with `..` or a
    /// symlink. `None` when it is no file to serve.
    pub fn serve_path(&self, path: &Path, environ: &Environ) -> Option<Vec<Event>> {
        let asked = Asked::from_environ(environ);
        if !matches!(asked.method, b"GET" | b"HEAD") {
            return None;
        }
        let found = Root::new(path).whole_checked(&self.safe)?;
        if self.skipped(found.name.as_os_str().as_bytes()) {
            return None;
        }
        Some(reply::file(found, &asked, self))
    }

    fn skipped(&self, path: &[u8]) -> bool {
        self.skip_ext.iter().any(|ext| path.ends_with(ext.as_bytes()))
    }
}

/// The rest of `path` after `prefix`, if the path is under it: the prefix
/// must end at a `/` of the path (or be the whole path), so `/static` maps
/// `/static/a.css` but not `/staticky`. (uWSGI compares raw prefixes.)
fn under_prefix<'p>(path: &'p str, prefix: &str) -> Option<&'p str> {
    let rest = path.strip_prefix(prefix)?;
    (prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// A regex option value `REGEX VALUE` (uWSGI splits at the first space).
fn regex_pair<'v>(option: &'static str, value: &'v str) -> Result<(Regex, &'v str), StaticError> {
    let Some((pattern, rest)) = value.split_once(' ') else {
        return Err(StaticError::invalid(option, value, "want REGEX VALUE"));
    };
    let regex =
        Regex::new(pattern).map_err(|err| StaticError::invalid(option, value, err.to_string()))?;
    Ok((regex, rest.trim()))
}
#[cfg(test)]
mod tests;
