//! Feeds arbitrary bytes to the ini parser and checks that it never panics
//! and that what it returns is well-formed: entries in file order, each in
//! a section that was declared (or none, before the first header), and
//! every line with an error a real line.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let ini = rwsgi_config::ini::parse_bytes(data);
    let lines = data.split(|&b| b == b'\n').count();
    let mut last_line = 0;
    for entry in &ini.entries {
        assert!(entry.line > last_line && entry.line <= lines, "entries out of order");
        last_line = entry.line;
        assert!(entry.section.is_empty() || ini.sections.contains(&entry.section));
    }
    for error in &ini.errors {
        assert!(error.line >= 1 && error.line <= lines);
    }
});
