//! From a request path to an open file that may be served.
//!
//! A directory root is opened once; each request path is opened relative
//! to it with `openat2(RESOLVE_BENEATH)`, so the kernel resolves `..`,
//! `.`, `//` and symlinks and refuses anything that leaves the directory,
//! in one system call and with no window between checking a path and
//! opening it. A path the kernel refuses that way (a symlink out of the
//! tree, an absolute symlink) or a kernel without `openat2` takes the
//! slow way: resolved with `realpath`, served only if the result lies,
//! component by component, under the root or a `static-safe` directory.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use std::ffi::{OsStr, OsString};
use std::fs::{File, Metadata};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once `openat2` turned out to be missing (an old kernel, a seccomp
/// filter): every lookup takes the slow way from then on.
pub(crate) static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// A configured directory (or file), resolved on first use.
#[derive(Debug)]
pub(crate) struct Root {
    given: PathBuf,
    resolved: OnceLock<Resolved>,
}

#[derive(Debug)]
struct Resolved {
    path: PathBuf,
    /// The open directory, or `None` for a file root.
    dir: Option<OwnedFd>,
}

/// A file found for a request: open, with its metadata and name.
#[derive(Debug)]
pub(crate) struct Found<'r> {
    pub(crate) file: File,
    pub(crate) meta: Metadata,
    /// Its path, for the rules that look at names (content type, expires,
    /// compressed siblings).
    pub(crate) name: PathBuf,
    /// How a sibling (`FILE.gz`) is opened the same safe way.
    via: Via<'r>,
}

#[derive(Debug)]
enum Via<'r> {
    /// Beneath this directory, at this relative path.
    Beneath(&'r OwnedFd, Vec<u8>),
    /// By its real path.
    Real(PathBuf),
}

/// Opens `rel` beneath `dir` without following it out. `O_NONBLOCK`: a
/// FIFO in the tree must not block the opener (it is then refused as no
/// regular file).
fn open_beneath(dir: &OwnedFd, rel: &[u8]) -> Result<File, Errno> {
    let rel = if rel.is_empty() { OsStr::new(".") } else { OsStr::from_bytes(rel) };
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC | OFlag::O_NONBLOCK | OFlag::O_NOCTTY)
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    nix::fcntl::openat2(dir, rel, how).map(File::from)
}

fn open_real(path: &Path) -> Option<(File, Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    Some((file, meta))
}

/// `rel` without its leading slashes (the kernel resolves everything
/// else: a `..` is refused if it climbs out, `file/` and `file/.` fail as
/// they would anywhere). Nothing is cleaned by hand: a path the
/// filesystem would refuse must not be served, or a route rule anchored
/// on the raw path could be stepped around (`/secret.pdf/`).
fn beneath(rel: &[u8]) -> &[u8] {
    let start = rel.iter().position(|&b| b != b'/').unwrap_or(rel.len());
    &rel[start..]
}

/// The real path of an open file, for the rules that look at names: a
/// link in the tree is judged by what it points at, as uWSGI's `realpath`
/// judges it.
fn real_name(file: &File) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()
}

impl Root {
    pub(crate) fn new(given: impl AsRef<Path>) -> Root {
        Root { given: given.as_ref().to_path_buf(), resolved: OnceLock::new() }
    }

    /// The real path and open directory, once it exists (retried until it
    /// does, so a directory made after start-up is served).
    fn resolved(&self) -> Option<&Resolved> {
        if let Some(resolved) = self.resolved.get() {
            return Some(resolved);
        }
        let path = std::fs::canonicalize(&self.given).ok()?;
        let dir = match std::fs::metadata(&path).ok()? {
            meta if meta.is_dir() => Some(OwnedFd::from(File::open(&path).ok()?)),
            meta if meta.is_file() => None,
            _ => return None,
        };
        Some(self.resolved.get_or_init(|| Resolved { path, dir }))
    }

    /// Whether the root is one file (`static-map = /favicon.ico=FILE`).
    pub(crate) fn is_file(&self) -> bool {
        self.resolved().is_some_and(|r| r.dir.is_none())
    }

    /// The root itself, when it is a file.
    pub(crate) fn whole(&self) -> Option<Found<'_>> {
        let root = self.resolved().filter(|r| r.dir.is_none())?;
        found_real(root.path.clone())
    }

    fn contains(&self, real: &Path) -> bool {
        self.resolved().is_some_and(|root| real.starts_with(&root.path))
    }

    /// The file for `rel` (a request path) under this directory: the file
    /// itself, or for a directory the first `index` name that is a file.
    /// `openat2`: open beneath the directory (else the `realpath` way).
    pub(crate) fn find(
        &self,
        rel: &[u8],
        index: &[String],
        safe: &[Root],
        openat2: bool,
    ) -> Option<Found<'_>> {
        let root = self.resolved()?;
        let dir = root.dir.as_ref()?;
        let rel = beneath(rel).to_vec();
        if rel.contains(&0) {
            return None;
        }
        if !openat2 || NO_OPENAT2.load(Ordering::Relaxed) {
            return self.find_real(&root.path, &rel, index, safe);
        }
        let opened = match open_beneath(dir, &rel) {
            Ok(file) => file,
            // Out of the tree (a symlink, maybe into a safe directory), or
            // refused by a security module for this one path: the slow way
            // decides.
            Err(Errno::EXDEV | Errno::ELOOP | Errno::EPERM) => {
                return self.find_real(&root.path, &rel, index, safe);
            }
            // No openat2 in this kernel (or behind this seccomp filter).
            Err(Errno::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
                return self.find_real(&root.path, &rel, index, safe);
            }
            Err(_) => return None,
        };
        let meta = opened.metadata().ok()?;
        let name = |file: &File, rel: &[u8]| {
            real_name(file).unwrap_or_else(|| {
                let mut name = root.path.clone().into_os_string().into_vec();
                name.push(b'/');
                name.extend_from_slice(rel);
                PathBuf::from(OsString::from_vec(name))
            })
        };
        if meta.is_file() {
            let name = name(&opened, &rel);
            return Some(Found { file: opened, meta, name, via: Via::Beneath(dir, rel) });
        }
        if !meta.is_dir() {
            return None;
        }
        index.iter().find_map(|index| {
            let mut rel = rel.clone();
            if !rel.is_empty() && !rel.ends_with(b"/") {
                rel.push(b'/');
            }
            rel.extend_from_slice(index.as_bytes());
            let file = open_beneath(dir, &rel).ok()?;
            let meta = file.metadata().ok().filter(Metadata::is_file)?;
            let name = name(&file, &rel);
            Some(Found { file, meta, name, via: Via::Beneath(dir, rel) })
        })
    }

    /// The slow way: `realpath`, then the containment check.
    fn find_real(
        &self,
        base: &Path,
        rel: &[u8],
        index: &[String],
        safe: &[Root],
    ) -> Option<Found<'_>> {
        let mut joined = base.as_os_str().as_bytes().to_vec();
        joined.push(b'/');
        joined.extend_from_slice(rel);
        let real = self.admit(Path::new(OsStr::from_bytes(&joined)), safe)?;
        let meta = std::fs::metadata(&real).ok()?;
        if meta.is_file() {
            return found_real(real);
        }
        if !meta.is_dir() {
            return None;
        }
        index.iter().find_map(|name| found_real(self.admit(&real.join(name), safe)?))
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
    pub(crate) fn whole_checked(&self, safe: &[Root]) -> Option<Found<'static>> {
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
        found_real(real)
    }
}

/// A regular file at a real (resolved and admitted) path.
fn found_real<'r>(real: PathBuf) -> Option<Found<'r>> {
    let (file, meta) = open_real(&real)?;
    meta.is_file().then(|| Found { file, meta, name: real.clone(), via: Via::Real(real) })
}

impl Found<'_> {
    /// Its sibling with `suffix` (`.gz`, `.br`), opened the same safe way;
    /// by real path it must resolve into the same directory.
    pub(crate) fn sibling(&self, suffix: &str) -> Option<(File, Metadata)> {
        let (file, meta) = match &self.via {
            Via::Beneath(dir, rel) => {
                let mut rel = rel.clone();
                rel.extend_from_slice(suffix.as_bytes());
                let file = open_beneath(dir, &rel).ok()?;
                let meta = file.metadata().ok()?;
                (file, meta)
            }
            Via::Real(real) => {
                let mut name = real.as_os_str().to_os_string();
                name.push(suffix);
                let sibling = std::fs::canonicalize(PathBuf::from(name)).ok()?;
                if sibling.parent() != real.parent() {
                    return None;
                }
                open_real(&sibling)?
            }
        };
        meta.is_file().then_some((file, meta))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leading_slashes_go() {
        assert_eq!(beneath(b"//a//b/./c"), b"a//b/./c");
        assert_eq!(beneath(b"/"), b"");
        assert_eq!(beneath(b"a/../b/"), b"a/../b/");
    }
}
