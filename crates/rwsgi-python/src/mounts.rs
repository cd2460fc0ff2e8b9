//! Several apps in one process (`mount = /PREFIX=APP`): which app a
//! request goes to, and what its `SCRIPT_NAME` and `PATH_INFO` become.
//!
//! As in uWSGI, `SCRIPT_NAME` names the mount: the one the web server
//! sends (nginx's `uwsgi_param SCRIPT_NAME`), or, with
//! `manage-script-name`, the prefix the core in front already moved there
//! from `PATH_INFO` (`rwsgi-route`). A request no mount takes goes to the
//! default app: the one `wsgi-file`/`module` names, or a mount at `/` or
//! the empty prefix. With `no-default-app` the default app answers only
//! requests whose `SCRIPT_NAME` is empty, as uWSGI's app lookup finds it
//! by its (empty) mount point.

use rwsgi_proto::{CgiVar, Environ};

/// Where each app (by index) is mounted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountTable {
    /// Served where no mount matches.
    default: Option<usize>,
    /// Prefixes without a trailing `/`, each with its app.
    mounts: Vec<(Vec<u8>, usize)>,
    /// A `SCRIPT_NAME` that names no mount falls back to the default app
    /// (uWSGI's behaviour unless `no-default-app`).
    fallback: bool,
}

impl MountTable {
    /// One app for every request.
    pub(crate) fn single() -> MountTable {
        MountTable { default: Some(0), mounts: Vec::new(), fallback: true }
    }

    /// `default`: the index of the unmounted app, if any; `mounts`: each
    /// prefix with its app's index, in the order given; `fallback`: see
    /// [`MountTable::fallback`].
    pub(crate) fn new(
        default: Option<usize>,
        mounts: impl IntoIterator<Item = (String, usize)>,
        fallback: bool,
    ) -> MountTable {
        let mut table = MountTable { default, mounts: Vec::new(), fallback };
        for (prefix, app) in mounts {
            let trimmed = prefix.trim_end_matches('/');
            if trimmed.is_empty() {
                table.default.get_or_insert(app);
            } else {
                table.mounts.push((trimmed.as_bytes().to_vec(), app));
            }
        }
        table
    }

    /// The app for this request; `None`: no app takes it.
    pub(crate) fn choose(&self, environ: &Environ) -> Option<usize> {
        if self.mounts.is_empty() {
            return self.default;
        }
        let script_name = environ.cgi(CgiVar::ScriptName).cloned().unwrap_or_default();
        let script_name = script_name.strip_suffix(b"/").unwrap_or(&script_name);
        if script_name.is_empty() {
            return self.default;
        }
        self.mounts
            .iter()
            .find(|(prefix, _)| prefix.as_slice() == script_name)
            .map(|(_, app)| *app)
            .or(self.default.filter(|_| self.fallback))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn request(script_name: &str, path: &str) -> Environ {
        let mut environ = Environ::with_capacity(2);
        environ.set(CgiVar::ScriptName, script_name.to_string());
        environ.set(CgiVar::PathInfo, path.to_string());
        environ
    }

    #[test]
    fn script_name_names_the_mount() {
        let table = MountTable::new(None, [("/a".to_string(), 0), ("/b".to_string(), 1)], true);
        assert_eq!(table.choose(&request("/b", "/x")), Some(1));
        assert_eq!(table.choose(&request("/a/", "/x")), Some(0));
        assert_eq!(table.choose(&request("", "/a/x")), None, "no default app");
        let with_root = MountTable::new(None, [("/a".to_string(), 0), ("".to_string(), 1)], true);
        assert_eq!(
            with_root.choose(&request("", "/a/x")),
            Some(1),
            "a mount at the root is the default"
        );
        assert_eq!(MountTable::single().choose(&request("/z", "/")), Some(0));
    }

    #[test]
    fn no_default_app_serves_the_default_only_at_the_empty_script_name() {
        let mounts = || [("/a".to_string(), 1)];
        let falls_back = MountTable::new(Some(0), mounts(), true);
        let strict = MountTable::new(Some(0), mounts(), false);
        for table in [&falls_back, &strict] {
            assert_eq!(table.choose(&request("/a", "/x")), Some(1));
            assert_eq!(table.choose(&request("", "/x")), Some(0));
            assert_eq!(table.choose(&request("/", "/x")), Some(0));
        }
        assert_eq!(falls_back.choose(&request("/elsewhere", "/x")), Some(0));
        assert_eq!(strict.choose(&request("/elsewhere", "/x")), None);
    }
}
