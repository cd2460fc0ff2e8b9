//! Options from the environment, as uWSGI reads them: `UWSGI_HTTP_SOCKET`
//! is `http-socket`; `RWSGI_` works the same. The environment is shared
//! with other software, so an unknown variable is a warning, not an error.

use crate::entry::Entry;
use crate::error::Source;
use crate::files::{FileRef, Format};
use crate::options::{self, Kind};

/// Variables uWSGI sets for itself (in its children, or on reload): never options.
const UWSGI_OWN: &[&str] = &[
    "UWSGI_ORIGINAL_PROC_NAME",
    "UWSGI_RELOADS",
    "UWSGI_EMPEROR_FD",
    "UWSGI_EMPEROR_FD_CONFIG",
    "UWSGI_EMPEROR_PROXY",
    "UWSGI_VASSAL_NAME",
    "UWSGI_JAIL_PID",
    "UWSGI_FIFO",
];

/// What the environment says: options, config files (`UWSGI_INI`, as
/// container images use it) and a warning for each `UWSGI_*`/`RWSGI_*`
/// variable that is not an option.
#[derive(Debug, Default)]
pub(crate) struct FromEnv {
    pub entries: Vec<Entry>,
    pub files: Vec<FileRef>,
    pub warnings: Vec<String>,
}

pub(crate) fn read(vars: &[(String, String)]) -> FromEnv {
    let mut found = FromEnv::default();
    for (var, value) in vars {
        let Some(rest) = var.strip_prefix("UWSGI_").or_else(|| var.strip_prefix("RWSGI_")) else {
            continue;
        };
        if UWSGI_OWN.contains(&var.as_str()) {
            continue;
        }
        let name = rest.to_ascii_lowercase().replace('_', "-");
        let at = Source::Env(var.clone());
        match options::lookup(&name) {
            Some(spec) if spec.kind == Kind::Action => {
                let warning =
                    format!("env {var}: {} is only a command-line flag; ignored", spec.name);
                found.warnings.push(warning);
            }
            Some(spec) if spec.kind == Kind::Include => {
                found.files.push(FileRef::new(value, Format::of_option(spec.name), at));
            }
            Some(spec) => found.entries.push(Entry { spec, value: Some(value.clone()), at }),
            None => found.warnings.push(format!("env {var}: not an rwsgi option; ignored")),
        }
    }
    found
}
