//! Loads arbitrary bytes as a config file of each format (the first byte
//! picks ini, YAML, JSON or XML) through the whole pipeline: the format's
//! reader, magic variables, logic blocks, placeholders, typing. It must
//! never panic; every problem is an error or a warning.
//!
//! Inputs that would run commands (`exec://`) or loop for long
//! (`for-times`, `for-glob`) are skipped: configs are the operator's, and
//! those do what they say.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, text)) = data.split_first() else { return };
    let lowered = String::from_utf8_lossy(text).to_ascii_lowercase();
    if ["exec:", "for-times", "for-glob", "for-readline"].iter().any(|s| lowered.contains(s)) {
        return;
    }
    let extension = ["ini", "yaml", "json", "xml"][usize::from(selector % 4)];
    let path = std::env::temp_dir().join(format!("rwsgi-fuzz-{}.{extension}", std::process::id()));
    if std::fs::write(&path, text).is_err() {
        return;
    }
    if let Ok(rwsgi_config::Command::Run(invocation)) =
        rwsgi_config::parse_args([path.clone().into_os_string()])
    {
        let _ = invocation.load(&[], false);
    }
});
