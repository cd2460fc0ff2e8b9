//! Options from the environment, as uWSGI reads them: `UWSGI_HTTP_SOCKET`
//! is `http-socket`; `RWSGI_` works the same. As in uWSGI, a variable that
//! names no option is a custom key (a placeholder `%(name)` may use it);
//! if nothing uses it, it is a warning, since the environment is shared.

use crate::error::Source;

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

/// The `UWSGI_*`/`RWSGI_*` variables as (key, value, where), in the order given.
pub(crate) fn options(
    vars: &[(String, String)],
) -> impl Iterator<Item = (String, String, Source)> + '_ {
    vars.iter().filter_map(|(var, value)| {
        let rest = var.strip_prefix("UWSGI_").or_else(|| var.strip_prefix("RWSGI_"))?;
        if UWSGI_OWN.contains(&var.as_str()) || rest.is_empty() {
            return None;
        }
        let key = rest.to_ascii_lowercase().replace('_', "-");
        Some((key, value.clone(), Source::Env(var.clone())))
    })
}
