//! From a request path to a file that may be served: joined to a root,
//! resolved by the kernel (`..`, `.`, symlinks, repeated slashes), and
//! served only if the result lies under the root or a `static-safe`
//! directory, component by component.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// A configured directory (or file), resolved on first use.
#[derive(Debug)]
pub(crate) struct Root {
    given: PathBuf,
    resolved: OnceLock<Resolved>,
}

#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    is_file: bool,
}

impl Root {
    pub(crate) fn new(given: impl AsRef<Path>) -> Root {
        Root { given: given.as_ref().to_path_buf(), resolved: OnceLock::new() }
    }

    /// The real path, once it exists (retried until it does).
    fn resolved(&self) -> Option<&Resolved> {
        if let Some(resolved) = self.resolved.get() {
            return Some(resolved);
        }
        let path = std::fs::canonicalize(&self.given).ok()?;
        let is_file = std::fs::metadata(&path).is_ok_and(|m| m.is_file());
        Some(self.resolved.get_or_init(|| Resolved { path, is_file }))
    }

    /// Whether the root is one file (`static-map = /favicon.ico=FILE`).
    pub(crate) fn is_file(&self) -> bool {
        self.resolved().is_some_and(|r| r.is_file)
    }

    /// The root itself, when it is a file.
    pub(crate) fn whole(&self) -> Option<PathBuf> {
        self.resolved().filter(|r| r.is_file).map(|r| r.path.clone())
    }

    fn contains(&self, real: &Path) -> bool {
        self.resolved().is_some_and(|root| real.starts_with(&root.path))
    }

    /// The file for `rel` (a request path) under this directory: the file
    /// itself, or for a directory the first `index` name that is a file.
    pub(crate) fn find(&self, rel: &[u8], index: &[String], safe: &[Root]) -> Option<PathBuf> {
        let root = self.resolved()?;
        let mut joined = root.path.clone().into_os_string().into_vec();
        joined.push(b'/');
        joined.extend_from_slice(rel);
        let real = self.admit(Path::new(&OsString::from_vec(joined)), safe)?;
        let meta = std::fs::metadata(&real).ok()?;
        if meta.is_file() {
            return Some(real);
        }
        if !meta.is_dir() {
            return None;
        }
        index.iter().find_map(|name| {
            let real = self.admit(&real.join(name), safe)?;
            std::fs::metadata(&real).is_ok_and(|m| m.is_file()).then_some(real)
        })
    }

    /// The real path of `candidate`, if it exists and lies under this root
    /// or a safe directory.
    fn admit(&self, candidate: &Path, safe: &[Root]) -> Option<PathBuf> {
        let real = std::fs::canonicalize(candidate).ok()?;
        if self.contains(&real) || safe.iter().any(|dir| dir.contains(&real)) {
            return Some(real);
        }
        tracing::warn!(
            "static: {} resolves to {}, outside {} and every static-safe directory: not served",
            candidate.display(),
            real.display(),
            self.given.display()
        );
        None
    }

    /// The root as one file that must resolve to itself (or into a safe
    /// directory): a path built from the request (a route's `static:`)
    /// cannot climb out with `..` or a symlink.
    pub(crate) fn whole_checked(&self, safe: &[Root]) -> Option<PathBuf> {
        let real = std::fs::canonicalize(&self.given).ok()?;
        let admitted = real == self.given || safe.iter().any(|dir| dir.contains(&real));
        if !admitted {
            tracing::warn!(
                "static: {} resolves to {}: not served (a path must resolve to itself or into a \
                 static-safe directory)",
                self.given.display(),
                real.display()
            );
            return None;
        }
        std::fs::metadata(&real).is_ok_and(|m| m.is_file()).then_some(real)
    }
}

/// A sibling of `real` (its `.gz` or `.br`): it must resolve into the
/// same directory.
pub(crate) fn sibling(real: &Path, suffix: &str) -> Option<PathBuf> {
    let mut name = real.as_os_str().to_os_string();
    name.push(suffix);
    let sibling = std::fs::canonicalize(PathBuf::from(name)).ok()?;
    let beside = sibling.parent() == real.parent();
    (beside && std::fs::metadata(&sibling).is_ok_and(|m| m.is_file())).then_some(sibling)
}
