//! Values as uWSGI reads them, so a file means here what it meant there:
//! a boolean is true unless it says `false`, `off`, `no` or `0`; a number
//! is its leading digits (C's `atoi`). Where uWSGI's reading is surprising
//! (`master = enabled`, `threads = 4 workers`), rwsgi reads the same and
//! says so in a warning.

/// A flag's value and whether the text was a boolean word at all.
/// Empty (a bare key) is true, as uWSGI reads it.
pub fn flag(text: &str) -> (bool, bool) {
    match text.to_ascii_lowercase().as_str() {
        "false" | "off" | "no" | "0" => (false, true),
        "" | "true" | "on" | "yes" | "1" => (true, true),
        _ => (true, false),
    }
}

/// A whole number read as `atoi` reads it: leading blanks, then digits; a
/// text without digits is 0. `Ok((n, None))` when the text was exactly a
/// number, `Ok((n, Some(note)))` when something was dropped to get there;
/// `Err` for a negative number or one that does not fit, which uWSGI
/// refuses (or wraps) too.
pub fn number(text: &str) -> Result<(u64, Option<String>), String> {
    let trimmed = text.trim_start();
    let digits_end =
        trimmed.char_indices().find(|(_, c)| !c.is_ascii_digit()).map_or(trimmed.len(), |(i, _)| i);
    let digits = &trimmed[..digits_end];
    if trimmed.starts_with('-') && trimmed[1..].starts_with(|c: char| c.is_ascii_digit()) {
        return Err("want a whole number, at least 0".to_string());
    }
    if digits.is_empty() {
        return Ok((
            0,
            Some(format!("{text:?} is not a number: uWSGI reads it as 0, and so does rwsgi")),
        ));
    }
    let n = digits
        .parse::<u64>()
        .map_err(|_| "want a whole number that fits in 64 bits".to_string())?;
    let note = (digits.len() != text.len())
        .then(|| format!("{text:?} is not a number: uWSGI reads it as {n}, and so does rwsgi"));
    Ok((n, note))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn flags_as_uwsgi_reads_them() {
        for (text, want) in [
            ("true", (true, true)),
            ("YES", (true, true)),
            ("On", (true, true)),
            ("1", (true, true)),
            ("", (true, true)),
            ("false", (false, true)),
            ("Off", (false, true)),
            ("NO", (false, true)),
            ("0", (false, true)),
            ("enabled", (true, false)),
            ("00", (true, false)),
            ("disable", (true, false)),
        ] {
            assert_eq!(flag(text), want, "{text:?}");
        }
    }

    #[test]
    fn numbers_as_atoi_reads_them() {
        assert_eq!(number("4").unwrap(), (4, None));
        assert_eq!(number("0").unwrap(), (0, None));
        let (n, note) = number("4 # four threads").unwrap();
        assert_eq!(n, 4);
        assert!(note.unwrap().contains("reads it as 4"));
        let (n, note) = number("true").unwrap();
        assert_eq!(n, 0);
        assert!(note.unwrap().contains("\"true\" is not a number: uWSGI reads it as 0"));
        assert_eq!(number("").unwrap().0, 0);
        assert_eq!(number("  12").unwrap().0, 12);
        assert!(number("-1").is_err());
        assert!(number("99999999999999999999999").is_err());
    }
}
