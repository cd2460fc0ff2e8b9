//! Turning an [`Environ`] into the WSGI `environ` dict, fast.
//!
//! Every key that recurs across requests is a `str` created once: the CGI
//! names and `wsgi.*` keys at start-up ([`Interned`]), the `HTTP_*` names
//! on first sight in a per-thread cache ([`KeyCache`]). Values are decoded
//! as latin-1, as PEP 3333 requires ("bytes as unicode").

use bytes::Bytes;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};
use rwsgi_proto::{CgiVar, EnvKey, Environ, Scheme};
use std::collections::HashMap;

/// Strings and objects shared by every request of the process.
#[derive(Debug)]
pub(crate) struct Interned {
    cgi: Vec<Py<PyString>>,
    pub(crate) wsgi_version: Py<PyString>,
    pub(crate) wsgi_url_scheme: Py<PyString>,
    pub(crate) wsgi_input: Py<PyString>,
    pub(crate) wsgi_errors: Py<PyString>,
    pub(crate) wsgi_multithread: Py<PyString>,
    pub(crate) wsgi_multiprocess: Py<PyString>,
    pub(crate) wsgi_run_once: Py<PyString>,
    pub(crate) wsgi_input_terminated: Py<PyString>,
    pub(crate) wsgi_file_wrapper: Py<PyString>,
    http: Py<PyString>,
    https: Py<PyString>,
    pub(crate) version: Py<PyTuple>,
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

    pub(crate) fn scheme<'py>(&self, py: Python<'py>, scheme: Scheme) -> &Bound<'py, PyString> {
        match scheme {
            Scheme::Http => self.http.bind(py),
            Scheme::Https => self.https.bind(py),
        }
    }
}

/// `HTTP_*` key strings seen by one Python thread, reused across requests.
/// Looked up for every header of every request: hashed with foldhash, a
/// fraction of SipHash's cost; the bound on its size, not the hash, is
/// what keeps invented names from costing memory.
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    keys: HashMap<Bytes, Py<PyString>, foldhash::fast::RandomState>,
}

/// Enough for every header a real client sends, small enough that a client
/// inventing names cannot grow it without bound.
const KEY_CACHE_MAX: usize = 256;

impl KeyCache {
    fn key<'py>(&mut self, py: Python<'py>, name: &Bytes) -> PyResult<Bound<'py, PyString>> {
        if let Some(key) = self.keys.get(name) {
            return Ok(key.bind(py).clone());
        }
        let key = latin1(py, name)?;
        if self.keys.len() < KEY_CACHE_MAX {
            self.keys.insert(name.clone(), key.clone().unbind());
        }
        Ok(key)
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

/// Builds the CGI part of the environ dict; the caller adds the `wsgi.*`
/// keys afterwards so no request variable can override them.
pub(crate) fn cgi_dict<'py>(
    py: Python<'py>,
    interned: &Interned,
    cache: &mut KeyCache,
    environ: &Environ,
) -> PyResult<Bound<'py, PyDict>> {
    let dict = PyDict::new(py);
    for (key, value) in &environ.vars {
        let value = latin1(py, value)?;
        match key {
            EnvKey::Cgi(var) => dict.set_item(interned.cgi[*var as usize].bind(py), value)?,
            EnvKey::Other(name) => dict.set_item(cache.key(py, name)?, value)?,
        }
    }
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

    #[test]
    fn dict_holds_cgi_and_header_vars_last_one_winning() {
        Python::attach(|py| {
            let interned = Interned::new(py).unwrap();
            let mut cache = KeyCache::default();
            let mut env = Environ::default();
            env.set(CgiVar::RequestMethod, "GET");
            env.set_other("HTTP_X_A", "1");
            env.set_other("HTTP_X_A", "2");
            let dict = cgi_dict(py, &interned, &mut cache, &env).unwrap();
            assert_eq!(dict.len(), 2);
            let get = |k: &str| dict.get_item(k).unwrap().unwrap().extract::<String>().unwrap();
            assert_eq!(get("REQUEST_METHOD"), "GET");
            assert_eq!(get("HTTP_X_A"), "2");
            assert_eq!(cache.keys.len(), 1);
        });
    }
}
