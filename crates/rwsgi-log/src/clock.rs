//! Dates as uWSGI writes them: `ctime(3)` in the default request line,
//! `strftime(3)` in local time for `ltime`, `ftime` and `log-date`. The C
//! library's own functions, so every format and the local time zone
//! (`TZ`, `/etc/localtime`) behave as they did under uWSGI.

use std::ffi::CString;

/// `strftime(format)` of `unix_secs` in local time; empty when the format
/// cannot be used (a NUL in it) or produces nothing.
pub(crate) fn strftime(format: &str, unix_secs: i64) -> String {
    let Ok(format) = CString::new(format) else { return String::new() };
    let Some(tm) = local(unix_secs) else { return String::new() };
    let mut buf = [0u8; 256];
    // SAFETY: `buf` is writable for its length, `format` is a valid C
    // string and `tm` a valid `struct tm` filled by localtime_r; strftime
    // writes at most `buf.len()` bytes and returns how many (0: too long).
    let n = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), format.as_ptr(), &tm) };
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// `ctime(3)` without its newline: `Fri Dec  4 17:32:03 2026`. Made
/// once per second per thread: every request line of the default format
/// carries it.
pub(crate) fn ctime(unix_secs: i64) -> String {
    thread_local! {
        static LAST: std::cell::RefCell<(i64, String)> = const { std::cell::RefCell::new((i64::MIN, String::new())) };
    }
    LAST.with_borrow_mut(|(secs, text)| {
        if *secs != unix_secs {
            *text = strftime("%a %b %e %H:%M:%S %Y", unix_secs);
            *secs = unix_secs;
        }
        text.clone()
    })
}

fn local(unix_secs: i64) -> Option<libc::tm> {
    let time: libc::time_t = unix_secs;
    // SAFETY: an all-zero `tm` is a valid value for localtime_r to
    // overwrite; `time` and `tm` are valid for the call, and localtime_r
    // (unlike localtime) keeps no shared state that another thread could
    // change under us.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let done = unsafe { libc::localtime_r(&time, &mut tm) };
    (!done.is_null()).then_some(tm)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-06-15 12:00:00 UTC: the same month and year in every zone.
    const MID_JUNE: i64 = 1_781_524_800;

    #[test]
    fn formats_in_local_time() {
        assert_eq!(strftime("%b %Y", MID_JUNE), "Jun 2026");
        let ctime = ctime(MID_JUNE);
        assert_eq!(ctime.len(), 24, "{ctime}");
        assert!(ctime.ends_with(" 2026") && ctime[4..7] == *"Jun", "{ctime}");
        assert_eq!(ctime, strftime("%a %b %e %H:%M:%S %Y", MID_JUNE));
        assert_eq!(strftime("bad\0format", 0), "");
        assert_eq!(strftime("", 0), "");
    }
}
