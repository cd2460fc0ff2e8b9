#![allow(clippy::unwrap_used)]

use super::*;
use crate::{AccessLog, Captured};
use bytes::Bytes;
use std::time::{Duration, UNIX_EPOCH};

fn facts() -> Facts {
    Facts {
        request: Captured {
            addr: Bytes::from_static(b"192.0.2.7"),
            forwarded_for: Some(Bytes::from_static(b"203.0.113.9")),
            user: Bytes::new(),
            method: Bytes::from_static(b"GET"),
            uri: Bytes::from_static(b"/shop?page=2"),
            proto: Bytes::from_static(b"HTTP/1.1"),
            host: Bytes::from_static(b"example.com"),
            referer: Bytes::new(),
            uagent: Bytes::from_static(b"curl/8.5.0"),
            content_length: 12,
            vars: 23,
            vars_bytes: 612,
            wanted: vec![Some(Bytes::from_static(b"abc")), None],
        },
        status: 200,
        body_bytes: 1234,
        head_bytes: 87,
        headers: 3,
        started: UNIX_EPOCH + Duration::from_micros(1_781_524_800_123_456),
        duration: Duration::from_micros(4_321),
        pid: 4242,
        worker: 2,
        core: 0,
        requests: 17,
        sendfile: false,
        read_errors: 0,
        write_errors: 1,
        peer: "127.0.0.1:50123".into(),
        protocol: "uwsgi",
    }
}

fn line(settings: Settings) -> String {
    let log = AccessLog::new(settings).unwrap();
    String::from_utf8(log.line(&facts())).unwrap()
}

#[test]
fn the_default_line_is_uwsgis() {
    let got = line(Settings::default());
    let ctime = crate::clock::ctime(1_781_524_800);
    assert_eq!(
        got,
        format!(
            "[pid: 4242|app: 0|req: 17/17] 192.0.2.7 () {{23 vars in 612 bytes}} [{ctime}] GET \
             /shop?page=2 => generated 1234 bytes in 4 msecs (HTTP/1.1 200) 3 headers in 87 bytes \
             (1 switches on core 0)\n"
        )
    );
    let micros = line(Settings { micros: true, ..Settings::default() });
    assert!(micros.contains("in 4321 micros (HTTP/1.1 200)"), "{micros}");
    let log = AccessLog::new(Settings::default()).unwrap();
    let sent = String::from_utf8(log.line(&Facts { sendfile: true, ..facts() })).unwrap();
    assert!(sent.contains("in 4 msecs via sendfile() (HTTP/1.1 200)"), "{sent}");
}

#[test]
fn every_variable_renders() {
    for (name, _) in NAMES {
        let got = line(Settings { format: Some(format!("<%({name})>")), ..Settings::default() });
        assert!(got.starts_with('<') && got.ends_with(">\n") && got.len() > 3, "{name}: {got:?}");
    }
    let got = line(Settings {
        format: Some("%(addr) %(user) \"%(method) %(uri) %(proto)\" %(status) %(size) %(rsize) %(hsize) %(cl) %(msecs) %(micros) %(headers) %(vars) %(pktsize) %(wid) %(pid) %(ioerr) %(var.X_ONE) %(var.X_TWO) %(time) %(tmsecs)".into()),
        ..Settings::default()
    });
    assert_eq!(
        got,
        "192.0.2.7 - \"GET /shop?page=2 HTTP/1.1\" 200 1321 1234 87 12 4 4321 3 23 612 2 4242 1 abc - 1781524800 1781524800123\n"
    );
    let forwarded = line(Settings {
        format: Some("%(addr)".into()),
        x_forwarded_for: true,
        ..Settings::default()
    });
    assert_eq!(forwarded, "203.0.113.9\n");
    let ours = line(Settings { format: Some("%(peer) %(protocol)".into()), ..Settings::default() });
    assert_eq!(ours, "127.0.0.1:50123 uwsgi\n");
    let stamped = line(Settings {
        format: Some("%(ftime) %Y %(uri)".into()),
        date: Some("%Y".into()),
        format_strftime: true,
        ..Settings::default()
    });
    assert_eq!(
        stamped, "2026 %Y /shop?page=2\n",
        "ftime is log-date's format; the rest is left alone"
    );
    assert_eq!(
        line(Settings { format: Some("100%(status".into()), ..Settings::default() }),
        "100%(status\n"
    );
}

#[test]
fn json_lines_are_typed_objects() {
    let got = line(Settings {
        format: Some("%(addr) %(status) %(msecs) %(uagent) %(var.X_ONE)".into()),
        json: true,
        ..Settings::default()
    });
    let value: serde_json::Value = serde_json::from_str(got.trim_end()).unwrap();
    assert_eq!(value["addr"], "192.0.2.7");
    assert_eq!(value["status"], 200);
    assert_eq!(value["msecs"], 4);
    assert_eq!(value["var.X_ONE"], "abc");
    let default: serde_json::Value =
        serde_json::from_str(line(Settings { json: true, ..Settings::default() }).trim_end())
            .unwrap();
    assert_eq!(default["uri"], "/shop?page=2");
    assert_eq!(default["wid"], 2);
    let mut odd = facts();
    odd.request.uagent = Bytes::from_static(b"a \"quoted\"\n\x01 agent");
    let log = AccessLog::new(Settings { json: true, ..Settings::default() }).unwrap();
    let text = String::from_utf8(log.line(&odd)).unwrap();
    assert_eq!(text.matches('\n').count(), 1, "one line whatever the request holds");
    let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    assert_eq!(value["uagent"], "a \"quoted\"\n\u{1} agent");
}

#[test]
fn unknown_variables_are_start_up_errors() {
    assert_eq!(Format::parse("%(nope)", false).unwrap_err(), FormatError::Unknown("nope".into()));
    assert!(matches!(Format::parse("%(metric.core.requests)", false), Err(FormatError::Metric(_))));
}

#[test]
fn which_requests_are_logged() {
    let quiet = |extra: Settings| AccessLog::new(Settings { disabled: true, ..extra }).unwrap();
    let f = facts();
    assert!(AccessLog::new(Settings::default()).unwrap().wants(&f));
    assert!(!quiet(Settings::default()).wants(&f));
    assert!(!quiet(Settings::default()).logs_anything());
    assert!(
        quiet(Settings { log_4xx: true, ..Settings::default() })
            .wants(&Facts { status: 404, ..facts() })
    );
    assert!(!quiet(Settings { log_4xx: true, ..Settings::default() }).wants(&f));
    assert!(
        quiet(Settings { log_5xx: true, ..Settings::default() })
            .wants(&Facts { status: 502, ..facts() })
    );
    assert!(
        quiet(Settings { slow: Some(Duration::from_millis(4)), ..Settings::default() }).wants(&f)
    );
    assert!(
        !quiet(Settings { slow: Some(Duration::from_millis(5)), ..Settings::default() }).wants(&f)
    );
    assert!(quiet(Settings { big: Some(1000), ..Settings::default() }).wants(&f));
    assert!(
        quiet(Settings { zero: true, ..Settings::default() })
            .wants(&Facts { body_bytes: 0, ..facts() })
    );
    assert!(
        quiet(Settings { sendfile: true, ..Settings::default() })
            .wants(&Facts { sendfile: true, ..facts() })
    );
}
