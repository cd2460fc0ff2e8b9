//! Points this crate's test binaries at the libpython they were built
//! against (an rpath), as the `rwsgi` binary's own build script does.
fn main() {
    pyo3_build_config::add_libpython_rpath_link_args();
}
