//! Turning an [`Environ`] into the WSGI `environ` dict, fast.
//!
//! Every key that recurs across requests is a `str` created once: the CGI
//! names and `wsgi.*` keys at start-up ([`Interned`]), the `HTTP_*` names
//! on first sight in a per-thread cache ([`StrCache`]), which also keeps
//! each variable's last value. Values are decoded as latin-1, as PEP 3333
//! requires ("bytes as unicode").

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use rwsgi_proto::{CgiVar, EnvKey, Environ, Scheme};
use std::collections::HashMap;

/// Strings and objects shared by every request of the process.
#[derive(Debug)]
pub(crate) struct Interned {
    cgi: Vec<Py<PyString>>,
    wsgi_version: Py<PyString>,
    wsgi_url_scheme: Py<PyString>,
    wsgi_input: Py<PyString>,
    wsgi_errors: Py<PyString>,
    wsgi_multithread: Py<PyString>,
    wsgi_multiprocess: Py<PyString>,
    wsgi_run_once: Py<PyString>,
    wsgi_input_terminated: Py<PyString>,
    wsgi_file_wrapper: Py<PyString>,
    http: Py<PyString>,
    https: Py<PyString>,
    version: Py<PyTuple>,
}

impl Interned {
    pub(crate) fn new(py: Python<'_>) -> PyResult<Self> {
        let s = |text: &str| PyString::intern(py, text).unbind();
        Ok(Interned {
            cgi: CgiVar::ALL.iter().map(|v| s(v.name())).collect(),
            wsgi_version: s("wsgi.version"),
            wsgi_url_scheme: s("wsgi.url_scheme"),
            wsgi_input: s("wsgi.input"),
            wsgi_errors: s("wsgi.errors"),
            wsgi_multithread: s("wsgi.multithread"),
            wsgi_multiprocess: s("wsgi.multiprocess"),
            wsgi_run_once: s("wsgi.run_once"),
            wsgi_input_terminated: s("wsgi.input_terminated"),
            wsgi_file_wrapper: s("wsgi.file_wrapper"),
            http: s(Scheme::Http.as_str()),
            https: s(Scheme::Https.as_str()),
            version: PyTuple::new(py, [1, 0])?.unbind(),
        })
    }

    pub(crate) fn wsgi_input<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.wsgi_input.bind(py)
    }

    pub(crate) fn wsgi_errors<'py>(&self, py: Python<'py>) -> &Bound<'py, PyString> {
        self.wsgi_errors.bind(py)
    }

    pub(crate) fn scheme<'py>(&self, py: Python<'py>, scheme: Scheme) -> &Bound<'py, PyString> {
        match scheme {
            Scheme::Http => self.http.bind(py),
            Scheme::Https => self.https.bind(py),
        }
    }
}

/// The `str`s one Python thread made for recent requests, reused when the
/// same bytes come again: the `HTTP_*` names, and the last value of each
/// variable. Consecutive requests repeat most values (method, protocol,
/// server name and port, a keep-alive client's address, `Host`, a
/// browser's `Accept*` and `User-Agent`); reusing the `str` saves a
/// decode, an allocation and a free for each. Sharing one `str` between
/// requests is safe: it is immutable.
///
/// Names are looked up for every header of every request: hashed with
/// foldhash, a fraction of SipHash's cost; the bounds on names and value
/// lengths, not the hash, keep invented names from costing memory (at most
/// [`NAMES_MAX`] names and one value of at most [`VALUE_MAX`] bytes each:
/// under 200 KiB a thread). Everything kept is copied out of the request,
/// so no request's buffer is held by it.
#[derive(Debug)]
pub(crate) struct StrCache {
    cgi: Vec<Recent>,
    names: HashMap<Bytes, Named, foldhash::fast::RandomState>,
}

/// An `HTTP_*` name's `str`, and its last value.
#[derive(Debug)]
struct Named {
    key: Py<PyString>,
    value: Recent,
}

/// A variable's last value: its bytes and the `str` made of them.
#[derive(Debug, Default)]
struct Recent(Option<(Vec<u8>, Py<PyString>)>);

/// Enough for every header a real client sends, small enough that a client
/// inventing names cannot grow the cache without bound.
const NAMES_MAX: usize = 256;

/// Longer values (cookies, tokens) are rarely repeated byte for byte and
/// are not kept.
const VALUE_MAX: usize = 256;

impl Default for StrCache {
    fn default() -> Self {
        StrCache {
            cgi: CgiVar::ALL.iter().map(|_| Recent::default()).collect(),
            names: HashMap::default(),
        }
    }
}

impl StrCache {
    /// The key and value `str`s of an `HTTP_*` (or other non-CGI) variable.
    fn named<'py>(
        &mut self,
        py: Python<'py>,
        name: &Bytes,
        value: &[u8],
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyString>)> {
        if let Some(named) = self.names.get_mut(name) {
            return Ok((named.key.bind(py).clone(), named.value.get(py, value)?));
        }
        let key = latin1(py, name)?;
        if self.names.len() >= NAMES_MAX {
            return Ok((key, latin1(py, value)?));
        }
        let mut named = Named { key: key.clone().unbind(), value: Recent::default() };
        let value = named.value.get(py, value)?;
        self.names.insert(Bytes::copy_from_slice(name), named);
        Ok((key, value))
    }

    /// The value `str` of a CGI variable.
    fn cgi<'py>(
        &mut self,
        py: Python<'py>,
        var: CgiVar,
        value: &[u8],
    ) -> PyResult<Bound<'py, PyString>> {
        self.cgi[var as usize].get(py, value)
    }
}

impl Recent {
    /// `value` as a `str`: the kept one if the bytes are the same, else a
    /// new one, kept in its place if short enough.
    fn get<'py>(&mut self, py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyString>> {
        if let Some((bytes, text)) = &self.0
            && bytes.as_slice() == value
        {
            return Ok(text.bind(py).clone());
        }
        let text = latin1(py, value)?;
        if value.len() <= VALUE_MAX {
            match &mut self.0 {
                Some((bytes, kept)) => {
                    bytes.clear();
                    bytes.extend_from_slice(value);
                    *kept = text.clone().unbind();
                }
                None => self.0 = Some((value.to_vec(), text.clone().unbind())),
            }
        }
        Ok(text)
    }
}

/// Decodes bytes as latin-1 into a `str`, in one pass, with CPython's own
/// decoder (every byte is a valid latin-1 code point, so it cannot fail but
/// for memory).
#[allow(unsafe_code)]
pub(crate) fn latin1<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyString>> {
    let len = pyo3::ffi::Py_ssize_t::try_from(bytes.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("value too long"))?;
    // SAFETY: the pointer and length describe `bytes`, alive and unmodified for
    // the call; a null `errors` selects the default ("strict") handler; the
    // result is a new reference or null with an exception set, which
    // `from_owned_ptr_or_err` takes over, and it is a `str` on success.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_DecodeLatin1(bytes.as_ptr().cast(), len, std::ptr::null());
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked::<PyString>())
    }
}

/// The CGI variables every environ has: PEP 3333 requires them, and each
/// protocol's `write_environ` supplies those the web server left out.
const ALWAYS: [CgiVar; 7] = [
    CgiVar::RequestMethod,
    CgiVar::ScriptName,
    CgiVar::PathInfo,
    CgiVar::QueryString,
    CgiVar::ServerName,
    CgiVar::ServerPort,
    CgiVar::ServerProtocol,
];

/// The `wsgi.*` values that are the same for every request of the process.
pub(crate) struct Constants<'py> {
    pub(crate) multithread: bool,
    pub(crate) multiprocess: bool,
    /// `wsgi.errors`, unless each request gets its own.
    pub(crate) errors: Option<Bound<'py, PyAny>>,
    pub(crate) file_wrapper: Bound<'py, PyAny>,
}

impl Interned {
    /// The dict every request's environ is copied from ([`request_dict`]):
    /// a copy is one allocation and a copy of the table, where a new dict
    /// grown by inserts is resized two or three times on the way. It holds
    /// the constant `wsgi.*` entries, and placeholders, which each
    /// request's values replace in place, for [`ALWAYS`] and the per-request
    /// `wsgi.*` entries.
    pub(crate) fn template<'py>(
        &self,
        py: Python<'py>,
        constants: Constants<'py>,
    ) -> PyResult<Py<PyDict>> {
        let dict = PyDict::new(py);
        let none = py.None();
        for var in ALWAYS {
            dict.set_item(self.cgi[var as usize].bind(py), &none)?;
        }
        dict.set_item(self.wsgi_version.bind(py), self.version.bind(py))?;
        dict.set_item(self.wsgi_url_scheme.bind(py), self.http.bind(py))?;
        dict.set_item(self.wsgi_input.bind(py), &none)?;
        match constants.errors {
            Some(errors) => dict.set_item(self.wsgi_errors.bind(py), errors)?,
            None => dict.set_item(self.wsgi_errors.bind(py), &none)?,
        }
        dict.set_item(self.wsgi_multithread.bind(py), constants.multithread)?;
        dict.set_item(self.wsgi_multiprocess.bind(py), constants.multiprocess)?;
        dict.set_item(self.wsgi_run_once.bind(py), false)?;
        dict.set_item(self.wsgi_input_terminated.bind(py), true)?;
        dict.set_item(self.wsgi_file_wrapper.bind(py), constants.file_wrapper)?;
        make_room(&dict)?;
        Ok(dict.unbind())
    }
}

/// Grows `dict`'s table one step, so that its copies take a request's
/// variables beyond [`ALWAYS`] (a browser's dozen headers too) without a
/// resize: filler keys are inserted until the table grows (its
/// `sys.getsizeof` does), then deleted. CPython's `dict.copy()` clones a
/// table as it is, size and all, while at most a third of its entries are
/// deleted ones, so at most half as many fillers as entries are used.
/// Only speed hangs on this: a CPython that copies otherwise is as correct.
fn make_room(dict: &Bound<'_, PyDict>) -> PyResult<()> {
    let getsizeof = dict.py().import("sys")?.getattr("getsizeof")?;
    let size = || getsizeof.call1((dict,))?.extract::<usize>();
    let before = size()?;
    let mut fillers = Vec::new();
    while size()? == before && fillers.len() < dict.len() / 2 {
        let filler = format!("rwsgi.room.{}", fillers.len());
        dict.set_item(&filler, ())?;
        fillers.push(filler);
    }
    for filler in fillers {
        dict.del_item(filler)?;
    }
    Ok(())
}

/// A request's environ dict: a copy of `template` with the request's CGI
/// variables and `wsgi.url_scheme` set; the caller sets `wsgi.input` (and
/// `wsgi.errors` when each request has its own). No request variable can
/// set a `wsgi.*` key: the codecs drop those names.
pub(crate) fn request_dict<'py>(
    py: Python<'py>,
    interned: &Interned,
    template: &Bound<'py, PyDict>,
    cache: &mut StrCache,
    environ: &Environ,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = template.copy()?;
    let mut set = 0u64;
    for (key, value) in &environ.vars {
        match key {
            EnvKey::Cgi(var) => {
                set |= 1 << *var as u32;
                dict.set_item(interned.cgi[*var as usize].bind(py), cache.cgi(py, *var, value)?)?;
            }
            EnvKey::Other(name) => {
                let (key, value) = cache.named(py, name, value)?;
                dict.set_item(key, value)?;
            }
        }
    }
    // A placeholder no value replaced (a responder's own environ may lack
    // one) must not reach the app.
    for var in ALWAYS.into_iter().filter(|&var| set & 1 << var as u32 == 0) {
        dict.del_item(interned.cgi[var as usize].bind(py))?;
    }
    dict.set_item(interned.wsgi_url_scheme.bind(py), interned.scheme(py, environ.scheme))?;
    Ok(dict)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn latin1_maps_every_byte_to_its_code_point() {
        Python::attach(|py| {
            let all: Vec<u8> = (0..=255).collect();
            let s: String = latin1(py, &all).unwrap().extract().unwrap();
            assert_eq!(
                s.chars().map(|c| c as u32).collect::<Vec<_>>(),
                (0..=255).collect::<Vec<u32>>()
            );
            let cafe: String = latin1(py, "café".as_bytes()).unwrap().extract().unwrap();
            assert_eq!(cafe, "cafÃ©");
        });
    }

    /// The interned names and a template of them, as a pool makes them.
    fn template(py: Python<'_>) -> (Interned, Bound<'_, PyDict>) {
        let interned = Interned::new(py).unwrap();
        let errors = Some(PyString::new(py, "errors").into_any());
        let file_wrapper = PyString::new(py, "wrapper").into_any();
        let constants = Constants { multithread: true, multiprocess: false, errors, file_wrapper };
        let template = interned.template(py, constants).unwrap().into_bound(py);
        (interned, template)
    }

    fn keys(dict: &Bound<'_, PyDict>) -> Vec<String> {
        let mut keys: Vec<String> = dict.keys().extract().unwrap();
        keys.sort();
        keys
    }

    #[test]
    fn dict_holds_cgi_and_header_vars_last_one_winning_and_no_placeholder() {
        Python::attach(|py| {
            let (interned, template) = template(py);
            let template = &template;
            let before = keys(template);
            let mut cache = StrCache::default();
            let mut env = Environ::default();
            env.set(CgiVar::RequestMethod, "GET");
            env.set_other("HTTP_X_A", "1");
            env.set_other("HTTP_X_A", "2");
            env.scheme = Scheme::Https;
            let dict = request_dict(py, &interned, template, &mut cache, &env).unwrap();
            let get = |k: &str| dict.get_item(k).unwrap().unwrap().extract::<String>().unwrap();
            assert_eq!(get("REQUEST_METHOD"), "GET");
            assert_eq!(get("HTTP_X_A"), "2");
            assert_eq!(get("wsgi.url_scheme"), "https");
            assert_eq!(get("wsgi.errors"), "errors");
            assert_eq!(get("wsgi.file_wrapper"), "wrapper");
            assert!(dict.get_item("wsgi.multithread").unwrap().unwrap().extract::<bool>().unwrap());
            // The required vars this environ lacks are not left as placeholders.
            let cgi: Vec<String> =
                keys(&dict).into_iter().filter(|k| !k.starts_with("wsgi.")).collect();
            assert_eq!(cgi, ["HTTP_X_A", "REQUEST_METHOD"]);
            assert_eq!(cache.names.len(), 1);
            assert_eq!(keys(template), before, "the template is unchanged");
        });
    }

    /// Consecutive requests share the `str` of a repeated value and never
    /// get a stale one when it changes; long values are not kept, and what
    /// is kept is a copy, not the request's buffer.
    #[test]
    fn repeated_values_reuse_their_str_and_changed_ones_do_not() {
        Python::attach(|py| {
            let (interned, template) = template(py);
            let mut cache = StrCache::default();
            let long = "x".repeat(VALUE_MAX + 1);
            let buffer = Bytes::from(b"HTTP_USER_AGENT and more of the request".to_vec());
            let mut request = |method: &'static str, agent: &'static str| {
                let mut env = Environ::default();
                env.set(CgiVar::RequestMethod, method);
                env.set_other(buffer.slice(..15), agent);
                env.set_other("HTTP_COOKIE", long.clone());
                request_dict(py, &interned, &template, &mut cache, &env).unwrap()
            };
            fn item<'py>(dict: &Bound<'py, PyDict>, key: &str) -> Bound<'py, PyAny> {
                dict.get_item(key).unwrap().unwrap()
            }
            let (first, second) = (request("GET", "curl"), request("GET", "curl"));
            for key in ["REQUEST_METHOD", "HTTP_USER_AGENT"] {
                assert!(item(&first, key).is(item(&second, key)), "{key}");
            }
            assert!(!item(&first, "HTTP_COOKIE").is(item(&second, "HTTP_COOKIE")));
            assert_eq!(item(&second, "HTTP_COOKIE").extract::<String>().unwrap(), long);
            for (method, agent) in [("POST", "wget"), ("GET", "curl")] {
                let dict = request(method, agent);
                assert_eq!(item(&dict, "REQUEST_METHOD").extract::<String>().unwrap(), method);
                assert_eq!(item(&dict, "HTTP_USER_AGENT").extract::<String>().unwrap(), agent);
            }
            assert!(buffer.is_unique(), "the cache holds the request's buffer");
        });
    }

    /// A request with the required variables only replaces values: its
    /// dict has the template's keys, in the template's order.
    #[test]
    fn required_vars_replace_the_placeholders_in_place() {
        Python::attach(|py| {
            let (interned, template) = template(py);
            let template = &template;
            let mut env = Environ::default();
            for var in ALWAYS.into_iter().rev() {
                env.set(var, var.name());
            }
            let dict =
                request_dict(py, &interned, template, &mut StrCache::default(), &env).unwrap();
            let order = |d: &Bound<'_, PyDict>| d.keys().extract::<Vec<String>>().unwrap();
            assert_eq!(order(&dict), order(template));
            for var in ALWAYS {
                let value = dict.get_item(var.name()).unwrap().unwrap();
                assert_eq!(value.extract::<String>().unwrap(), var.name());
            }
            assert!(template.get_item("PATH_INFO").unwrap().unwrap().is_none());
        });
    }

    /// The template's table has room beyond its entries: a copy takes a
    /// dozen more keys without growing.
    #[test]
    fn a_copy_of_the_template_takes_a_dozen_headers_without_a_resize() {
        Python::attach(|py| {
            let (_, template) = template(py);
            let getsizeof = py.import("sys").unwrap().getattr("getsizeof").unwrap();
            let size =
                |d: &Bound<'_, PyDict>| getsizeof.call1((d,)).unwrap().extract::<usize>().unwrap();
            let copy = template.copy().unwrap();
            let empty = size(&copy);
            for n in 0..12 {
                copy.set_item(format!("HTTP_X_{n}"), "v").unwrap();
            }
            assert_eq!(size(&copy), empty, "the copy's table grew");
            assert!(!copy.keys().iter().any(|k| k.to_string().starts_with("rwsgi.")));
        });
    }
}
