//! Points the binary at the libpython it was built against (an rpath), so
//! `rwsgi` runs without `LD_LIBRARY_PATH` and never picks up a different
//! Python that happens to be installed system-wide.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
