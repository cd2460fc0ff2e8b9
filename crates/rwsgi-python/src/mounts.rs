//! Several apps in one process (`mount = /PREFIX=APP`): which app a
//! request goes to, and what its `SCRIPT_NAME` and `PATH_INFO` become.
//!
//! As in uWSGI, `SCRIPT_NAME` names the mount: the one the web server
//! sends (nginx's `uwsgi_param SCRIPT_NAME`), or, with
//! `manage-script-name`, the prefix the core in front already moved there
//! from `PATH_INFO` (`rwsgi-route`). A request no mount takes goes to the
//! default app: the one `wsgi-file`/`module` names, or a mount at `/` or
//! the empty prefix.

use rwsgi_proto::{CgiVar, Environ};

/// Where each app (by index) is mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MountTable {
    /// Served where no mount matches.
    default: Option<usize>,
    /// Prefixes without a trailing `/`, each with its app.
    mounts: Vec<(Vec<u8>, usize)>,
}

impl MountTable {
    /// One app for every request.
    pub(crate) fn single() -> MountTable {
        MountTable { default: Some(0), ..MountTable::default() }
    }

    /// `default`: the index of the unmounted app, if any; `mounts`: each
    /// prefix with its app's index, in the order given.
    pub(crate) fn new(
        default: Option<usize>,
        mounts: impl IntoIterator<Item = (String, usize)>,
    ) -> MountTable {
        let mut table = MountTable { default, mounts: Vec::new() };
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
        let script_name = environ.get(CgiVar::ScriptName.name()).cloned().unwrap_or_default();
        let script_name = script_name.strip_suffix(b"/").unwrap_or(&script_name);
        self.mounts
            .iter()
            .find(|(prefix, _)| prefix.as_slice() == script_name)
            .map(|(_, app)| *app)
            .or(self.default)
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
        let table = MountTable::new(None, [("/a".to_string(), 0), ("/b".to_string(), 1)]);
        assert_eq!(table.choose(&request("/b", "/x")), Some(1));
        assert_eq!(table.choose(&request("/a/", "/x")), Some(0));
        assert_eq!(table.choose(&request("", "/a/x")), None, "no default app");
        let with_root = MountTable::new(None, [("/a".to_string(), 0), ("".to_string(), 1)]);
        assert_eq!(
            with_root.choose(&request("", "/a/x")),
            Some(1),
            "a mount at the root is the default"
        );
        assert_eq!(MountTable::single().choose(&request("/z", "/")), Some(0));
    }
}
