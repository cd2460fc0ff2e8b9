//! `manage-script-name`: the longest `mount` prefix of `PATH_INFO`
//! (ending at a `/` or at the end) moves to `SCRIPT_NAME`, before routes
//! and static files look at the path, as uWSGI does it while parsing the
//! request. The Python bridge then picks the app by `SCRIPT_NAME`.

use rwsgi_proto::{CgiVar, Environ};

#[derive(Debug, Default)]
pub(crate) struct ScriptNames {
    /// Mount prefixes without a trailing `/` (a mount at the root is
    /// none: it takes what no other does).
    prefixes: Vec<Vec<u8>>,
}

impl ScriptNames {
    /// `None` unless `manage-script-name` is on and something is mounted.
    pub(crate) fn new(mounts: &[String], manage: bool) -> Option<ScriptNames> {
        let prefixes: Vec<Vec<u8>> = mounts
            .iter()
            .map(|prefix| prefix.trim_end_matches('/').as_bytes().to_vec())
            .filter(|prefix| !prefix.is_empty())
            .collect();
        (manage && !prefixes.is_empty()).then_some(ScriptNames { prefixes })
    }

    pub(crate) fn apply(&self, environ: &mut Environ) {
        let path = environ.cgi(CgiVar::PathInfo).cloned().unwrap_or_default();
        let best = self
            .prefixes
            .iter()
            .filter(|prefix| {
                path.starts_with(prefix) && matches!(path.get(prefix.len()), None | Some(b'/'))
            })
            .max_by_key(|prefix| prefix.len());
        if let Some(prefix) = best {
            environ.set(CgiVar::ScriptName, prefix.clone());
            environ.set(CgiVar::PathInfo, path.slice(prefix.len()..));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_prefix_moves_to_script_name() {
        let names =
            ScriptNames::new(&["/app".into(), "/app/admin/".into(), "/".into()], true).unwrap();
        for (path, script, rest) in [
            ("/app/x", "/app", "/x"),
            ("/app", "/app", ""),
            ("/app/admin/users", "/app/admin", "/users"),
            ("/application", "", "/application"),
            ("/other", "", "/other"),
        ] {
            let mut environ = Environ::with_capacity(2);
            environ.set(CgiVar::ScriptName, "");
            environ.set(CgiVar::PathInfo, path.to_string());
            names.apply(&mut environ);
            let get =
                |var: CgiVar| String::from_utf8(environ.get(var.name()).unwrap().to_vec()).unwrap();
            assert_eq!(
                (get(CgiVar::ScriptName), get(CgiVar::PathInfo)),
                (script.into(), rest.into()),
                "{path}"
            );
        }
        assert!(ScriptNames::new(&["/app".into()], false).is_none());
        assert!(ScriptNames::new(&["/".into()], true).is_none());
    }
}
