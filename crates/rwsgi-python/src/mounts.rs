//! Several apps in one process (`mount = /PREFIX=APP`): which app a
//! request goes to, and what its `SCRIPT_NAME` and `PATH_INFO` become.
//!
//! As in uWSGI: with `manage-script-name` the longest mount prefix of
//! `PATH_INFO` (ending at a `/` or at the end) chooses the app and moves
//! from `PATH_INFO` to `SCRIPT_NAME`; without it, the `SCRIPT_NAME` the
//! web server sends (nginx's `uwsgi_param SCRIPT_NAME`) must name a mount
//! exactly. A request no mount takes goes to the default app: the one
//! `wsgi-file`/`module` names, or a mount at `/` or the empty prefix.

use rwsgi_proto::{CgiVar, Environ};

/// Where each app (by index) is mounted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MountTable {
    /// Served where no mount matches.
    default: Option<usize>,
    /// Prefixes without a trailing `/`, each with its app.
    mounts: Vec<(Vec<u8>, usize)>,
    manage_script_name: bool,
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
        manage_script_name: bool,
    ) -> MountTable {
        let mut table = MountTable { default, mounts: Vec::new(), manage_script_name };
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

    /// The app for this request, its environ adjusted; `None`: no app
    /// takes it.
    pub(crate) fn choose(&self, environ: &mut Environ) -> Option<usize> {
        if self.mounts.is_empty() {
            return self.default;
        }
        if self.manage_script_name {
            let path = environ.get(CgiVar::PathInfo.name()).cloned().unwrap_or_default();
            let best = self
                .mounts
                .iter()
                .filter(|(prefix, _)| {
                    path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
                })
                .max_by_key(|(prefix, _)| prefix.len());
            if let Some((prefix, app)) = best {
                environ.set(CgiVar::ScriptName, prefix.clone());
                environ.set(CgiVar::PathInfo, path.slice(prefix.len()..));
                return Some(*app);
            }
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

    fn seen(environ: &Environ) -> (String, String) {
        let get =
            |var: CgiVar| String::from_utf8(environ.get(var.name()).unwrap().to_vec()).unwrap();
        (get(CgiVar::ScriptName), get(CgiVar::PathInfo))
    }

    #[test]
    fn the_longest_prefix_moves_to_script_name() {
        let table = MountTable::new(
            Some(0),
            [("/app".to_string(), 1), ("/app/admin/".to_string(), 2), ("/".to_string(), 3)],
            true,
        );
        for (path, app, script, rest) in [
            ("/app/x", Some(1), "/app", "/x"),
            ("/app", Some(1), "/app", ""),
            ("/app/admin/users", Some(2), "/app/admin", "/users"),
            ("/application", Some(0), "", "/application"),
            ("/other", Some(0), "", "/other"),
        ] {
            let mut environ = request("", path);
            assert_eq!(table.choose(&mut environ), app, "{path}");
            assert_eq!(seen(&environ), (script.to_string(), rest.to_string()), "{path}");
        }
    }

    #[test]
    fn without_management_script_name_names_the_mount() {
        let table = MountTable::new(None, [("/a".to_string(), 0), ("/b".to_string(), 1)], false);
        assert_eq!(table.choose(&mut request("/b", "/x")), Some(1));
        assert_eq!(table.choose(&mut request("/a/", "/x")), Some(0));
        assert_eq!(table.choose(&mut request("", "/a/x")), None, "no default app");
        let with_root = MountTable::new(None, [("/a".to_string(), 0), ("".to_string(), 1)], false);
        assert_eq!(
            with_root.choose(&mut request("", "/a/x")),
            Some(1),
            "a mount at the root is the default"
        );
        assert_eq!(MountTable::single().choose(&mut request("/z", "/")), Some(0));
    }
}
