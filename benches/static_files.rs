//! The static-file path without sockets: looking a request up under a
//! `static-map`, resolving and opening the file, building the head (the
//! work `make bench`'s `static` row does per request), and the same for a
//! revalidation answered `304`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use rwsgi_proto::{CgiVar, Environ, Event};
use rwsgi_static::{Settings, StaticFiles};

fn request(headers: &[(&str, &str)]) -> Environ {
    let mut environ = Environ::with_capacity(16);
    environ.set(CgiVar::RequestMethod, "GET");
    environ.set(CgiVar::PathInfo, "/static/css/4k.css");
    environ.set(CgiVar::RequestUri, "/static/css/4k.css");
    environ.set(CgiVar::QueryString, "");
    for (name, value) in headers {
        environ.set_other(name.to_string(), value.to_string());
    }
    environ
}

fn static_files(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("rwsgi-bench-static-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("css")).expect("temp dir");
    std::fs::write(dir.join("css/4k.css"), "x".repeat(4096)).expect("file");
    let files = StaticFiles::new(&Settings {
        maps: vec![format!("/static={}", dir.display())],
        ..Settings::default()
    })
    .expect("settings");
    let plain = request(&[("HTTP_ACCEPT_ENCODING", "gzip, deflate, br")]);
    let etag = match files.serve(&plain).as_deref() {
        Some([Event::Head { head, .. }, ..]) => head.header(b"etag").cloned().expect("etag"),
        other => panic!("not served: {other:?}"),
    };
    let revalidate = request(&[("HTTP_IF_NONE_MATCH", std::str::from_utf8(&etag).expect("ascii"))]);
    c.bench_function("static: 4 KiB file under a static-map", |b| {
        b.iter(|| black_box(files.serve(black_box(&plain))))
    });
    c.bench_function("static: If-None-Match revalidation (304)", |b| {
        b.iter(|| black_box(files.serve(black_box(&revalidate))))
    });
    let _ = std::fs::remove_dir_all(&dir);
}

criterion_group!(benches, static_files);
criterion_main!(benches);
