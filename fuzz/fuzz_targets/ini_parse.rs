//! Feeds arbitrary bytes to the ini parser and checks that it never panics
//! and that what it returns is well-formed: entries in file order, each
//! with a non-empty key without whitespace, in a section that was declared
//! (or none, before the first header).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(ini) = rwsgi_config::ini::parse_bytes(data) else { return };
    let mut last_line = 0;
    for entry in &ini.entries {
        assert!(entry.line > last_line, "entries out of order");
        last_line = entry.line;
        assert!(!entry.key.is_empty() && !entry.key.contains(char::is_whitespace));
        assert!(entry.section.is_empty() || ini.sections.contains(&entry.section));
    }
});
