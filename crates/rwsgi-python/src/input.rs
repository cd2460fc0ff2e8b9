//! `wsgi.input`: the request body as a file-like object.

use crate::channel::emit;
use crate::lent::BytesMemory;
use bytes::{BufMut, Bytes, BytesMut};
use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;
use rwsgi_proto::{BodyMsg, BodySource, Event, SpoolFile};
use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};

/// How much of a spooled body a line-oriented read takes from its file
/// at a time.
const SPOOL_CHUNK: usize = 64 * 1024;

/// `wsgi.input`. Reads never go past the end of the body: at the end they
/// return `b''`, and a body that cannot be completed raises `OSError`.
#[pyclass(module = "rwsgi")]
#[derive(Debug)]
pub(crate) struct InputStream {
    buf: Bytes,
    /// Pieces of the body after `buf`, read before anything else.
    queued: VecDeque<Bytes>,
    /// The `bytes` object `buf` is the storage of (a body, or a part of
    /// one, the core read into memory we lent): a read of all of it
    /// returns the object itself.
    whole: Option<Py<PyBytes>>,
    /// The objects of the `queued` pieces, for a body lent in parts.
    lent: VecDeque<Py<PyBytes>>,
    /// A lent body's size until its first `read` (see [`crate::lent::learn`]).
    learn: Option<usize>,
    eof: bool,
    /// A body the core kept in a temporary file: what is left of it.
    spool: Option<Spool>,
    pipe: Option<Pipe>,
    /// The body could not be completed (the client went away, stalled, or
    /// sent a broken body): an `OSError` the app lets escape is then the
    /// client's doing, not the app's.
    failed: bool,
    /// The core handed over a body it had not read whole: reads fail.
    lost: bool,
}

#[derive(Debug)]
struct Spool {
    file: SpoolFile,
    left: u64,
}

impl Spool {
    /// Reads the next bytes of the body into all of `out`'s room (at most
    /// `left`), without the GIL: memory that was never zeroed, the read
    /// is its first write.
    fn read_into(&mut self, py: Python<'_>, out: &mut (impl BufMut + Send)) -> PyResult<()> {
        let want = out.remaining_mut();
        if want as u64 > self.left {
            return Err(PyOSError::new_err("request body: read past its end"));
        }
        let fd = self.file.as_raw_fd();
        py.detach(|| read_exact_uninit(fd, out))
            .map_err(|err| PyOSError::new_err(format!("request body: {err}")))?;
        self.left -= want as u64;
        Ok(())
    }
}

/// Fills `out`'s room from `fd`, `read(2)` writing straight into memory
/// that may be uninitialised (which a `&mut [u8]` may not be).
#[allow(unsafe_code)]
fn read_exact_uninit(fd: RawFd, out: &mut impl BufMut) -> std::io::Result<()> {
    while out.has_remaining_mut() {
        let room = out.chunk_mut();
        // SAFETY: `room` is valid for writes of its length, and read(2)
        // writes at most that many bytes into it.
        let n = unsafe { libc::read(fd, room.as_mut_ptr().cast(), room.len()) };
        match usize::try_from(n) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            // SAFETY: read(2) wrote `n` bytes at the start of `room`.
            Ok(n) => unsafe { out.advance_mut(n) },
            Err(_) => {
                let err = std::io::Error::last_os_error();
                if err.kind() != std::io::ErrorKind::Interrupted {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

#[derive(Debug)]
struct Pipe {
    events: flume::Sender<Event>,
    replies: flume::Receiver<BodyMsg>,
}

impl InputStream {
    pub(crate) fn new(py: Python<'_>, body: BodySource, events: &flume::Sender<Event>) -> Self {
        let stream = |eof, spool, pipe| InputStream {
            buf: Bytes::new(),
            queued: VecDeque::new(),
            whole: None,
            lent: VecDeque::new(),
            learn: None,
            eof,
            spool,
            pipe,
            failed: false,
            lost: false,
        };
        match body {
            BodySource::Buffered(buf) => InputStream { buf, ..stream(true, None, None) },
            BodySource::Pieces(pieces) => {
                InputStream { queued: pieces.into(), ..stream(true, None, None) }
            }
            BodySource::Lent(body) => match BytesMemory::take_back(py, body) {
                Some(parts) => {
                    let learn = Some(parts.iter().map(|(_, view)| view.len()).sum());
                    let (lent, queued) = parts.into_iter().unzip();
                    InputStream { queued, lent, learn, ..stream(true, None, None) }
                }
                // Not ours, or not whole: the core broke its word, and the
                // first read says so.
                None => InputStream { lost: true, ..stream(false, None, None) },
            },
            BodySource::Spooled { file, len, rest } => {
                let pipe = rest.map(|replies| Pipe { events: events.clone(), replies });
                stream(len == 0 && pipe.is_none(), Some(Spool { file, left: len }), pipe)
            }
            BodySource::Streamed(replies) => {
                stream(false, None, Some(Pipe { events: events.clone(), replies }))
            }
        }
    }

    /// The request is over: what is left of the body goes (its temporary
    /// file closes at once, whoever still holds the environ), and reads
    /// return `b''`.
    pub(crate) fn release(&mut self) {
        self.buf = Bytes::new();
        self.queued.clear();
        self.whole = None;
        self.lent.clear();
        self.eof = true;
        self.spool = None;
        self.pipe = None;
    }

    /// Whether reading the body failed (see [`InputStream::failed`]).
    pub(crate) fn failed(&self) -> bool {
        self.failed
    }

    /// The body could not be completed: reads end, and raise `why`.
    fn fail(&mut self, why: String) -> PyErr {
        self.lost = false;
        self.eof = true;
        self.spool = None;
        self.pipe = None;
        self.failed = true;
        PyOSError::new_err(why)
    }

    /// Makes sure `buf` holds bytes unless the body is over; false at the end.
    fn fill(&mut self, py: Python<'_>) -> PyResult<bool> {
        while self.buf.is_empty() {
            if let Some(next) = self.queued.pop_front() {
                self.buf = next;
                self.whole = self.lent.pop_front();
                continue;
            }
            if self.eof {
                return Ok(false);
            }
            if let Some(spool) = &mut self.spool {
                if spool.left == 0 {
                    // The file is done; the rest, if any, streams.
                    self.spool = None;
                    continue;
                }
                let size = spool.left.min(SPOOL_CHUNK as u64) as usize;
                let mut chunk = BytesMut::with_capacity(size);
                spool.read_into(py, &mut (&mut chunk).limit(size))?;
                self.eof = spool.left == 0 && self.pipe.is_none();
                self.buf = chunk.freeze();
                continue;
            }
            if self.lost {
                return Err(self.fail("request body lost".into()));
            }
            let Some(pipe) = &self.pipe else {
                self.eof = true;
                return Ok(false);
            };
            let replies = pipe.replies.clone();
            if emit(py, &pipe.events, Event::ReadBody).is_err() {
                return Err(self.fail("client disconnected".into()));
            }
            match py.detach(move || replies.recv()) {
                Ok(BodyMsg::Data(pieces)) => self.queued.extend(pieces),
                Ok(BodyMsg::Eof) => self.eof = true,
                Ok(BodyMsg::Failed(why)) => return Err(self.fail(why)),
                Err(_) => return Err(self.fail("client disconnected".into())),
            }
        }
        Ok(true)
    }

    /// Reads up to `limit` bytes (all with `None`), stopping after `until`
    /// when it is given: the pieces of the body they are, not copied yet,
    /// so that [`joined`] copies them once, into the `bytes` the app gets.
    fn read_until(
        &mut self,
        py: Python<'_>,
        limit: Option<usize>,
        until: Option<u8>,
    ) -> PyResult<Vec<Bytes>> {
        let mut pieces = Vec::new();
        let mut taken = 0;
        while limit.is_none_or(|limit| taken < limit) && self.fill(py)? {
            let room = limit.map_or(self.buf.len(), |limit| limit - taken);
            let mut take = room.min(self.buf.len());
            let mut done = false;
            if let Some(byte) = until
                && let Some(at) = self.buf[..take].iter().position(|&b| b == byte)
            {
                take = at + 1;
                done = true;
            }
            taken += take;
            pieces.push(self.buf.split_to(take));
            if done {
                break;
            }
        }
        Ok(pieces)
    }
}

/// One `bytes` of `pieces` one after the other: one copy.
fn joined<'py>(py: Python<'py>, pieces: &[Bytes]) -> PyResult<Bound<'py, PyBytes>> {
    match pieces {
        [] => Ok(PyBytes::new(py, b"")),
        [piece] => Ok(PyBytes::new(py, piece)),
        _ => BytesMemory::concat(py, pieces),
    }
}

/// Negative or missing sizes mean "no limit", as for Python files.
fn size_limit(size: Option<isize>) -> Option<usize> {
    size.and_then(|size| usize::try_from(size).ok())
}

#[pymethods]
impl InputStream {
    #[pyo3(signature = (size = None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> PyResult<Bound<'py, PyBytes>> {
        let limit = size_limit(size);
        if let Some(size) = self.learn.take() {
            crate::lent::learn(limit, size);
        }
        if self.buf.is_empty() && !self.queued.is_empty() {
            self.fill(py)?;
        }
        // A read of all that is left of a `bytes` we lent (the body, or the
        // next of its parts), none of it read yet: that object, no copy.
        if let Some(whole) = self.whole.take()
            && whole.bind(py).as_bytes().len() == self.buf.len()
            && match limit {
                None => self.queued.is_empty(),
                Some(l) => l == self.buf.len() || l > self.buf.len() && self.queued.is_empty(),
            }
        {
            self.buf.clear();
            return Ok(whole.into_bound(py));
        }
        // Whole-body read of a buffered body: one copy, straight from our
        // buffer or its pieces.
        if self.eof
            && limit.is_none_or(|l| {
                l >= self.buf.len() + self.queued.iter().map(Bytes::len).sum::<usize>()
            })
        {
            let first = std::mem::take(&mut self.buf);
            let pieces: Vec<Bytes> = std::iter::once(first)
                .filter(|first| !first.is_empty())
                .chain(self.queued.drain(..))
                .collect();
            self.lent.clear();
            return joined(py, &pieces);
        }
        // From a body whole in its file: one copy, from the file into the bytes.
        if self.buf.is_empty()
            && self.pipe.is_none()
            && let Some(spool) = &mut self.spool
        {
            let want = limit.map_or(spool.left, |l| spool.left.min(l as u64));
            let want = usize::try_from(want).map_err(|_| PyOSError::new_err("body too large"))?;
            let out = BytesMemory::filled(py, want, |body| spool.read_into(py, body))?;
            self.eof = spool.left == 0;
            return Ok(out);
        }
        // A sized read (`read(65536)` loops), or what is left: one copy,
        // from the pieces it spans.
        joined(py, &self.read_until(py, limit, None)?)
    }

    #[pyo3(signature = (size = None))]
    fn readline<'py>(
        &mut self,
        py: Python<'py>,
        size: Option<isize>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        joined(py, &self.read_until(py, size_limit(size), Some(b'\n'))?)
    }

    #[pyo3(signature = (hint = None))]
    fn readlines<'py>(
        &mut self,
        py: Python<'py>,
        hint: Option<isize>,
    ) -> PyResult<Vec<Bound<'py, PyBytes>>> {
        let hint = size_limit(hint).filter(|&h| h > 0);
        let mut lines = Vec::new();
        let mut total = 0;
        loop {
            let line = joined(py, &self.read_until(py, None, Some(b'\n'))?)?;
            if line.as_bytes().is_empty() {
                break;
            }
            total += line.as_bytes().len();
            lines.push(line);
            if hint.is_some_and(|h| total >= h) {
                break;
            }
        }
        Ok(lines)
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let line = joined(py, &self.read_until(py, None, Some(b'\n'))?)?;
        Ok((!line.as_bytes().is_empty()).then_some(line))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use pyo3::types::PyAnyMethods;

    /// `wsgi.input` over a body the core read into a `bytes` we lent.
    fn lent_input<'py>(py: Python<'py>, body: &[u8]) -> (Bound<'py, InputStream>, usize) {
        let mut lent = BytesMemory::lend(py, body.len()).unwrap();
        let at = lent.chunk_mut().as_mut_ptr() as usize;
        lent.put_slice(body);
        let (events, _) = flume::unbounded();
        (Bound::new(py, InputStream::new(py, BodySource::Lent(lent), &events)).unwrap(), at)
    }

    #[test]
    fn a_whole_read_of_a_lent_body_is_the_object_it_was_read_into() {
        Python::attach(|py| {
            let (input, at) = lent_input(py, b"name=value\nmore");
            let body = input.call_method0("read").unwrap().cast_into::<PyBytes>().unwrap();
            assert_eq!(body.as_bytes(), b"name=value\nmore");
            assert_eq!(body.as_bytes().as_ptr() as usize, at, "not a copy");
            assert_eq!(input.call_method0("read").unwrap().extract::<Vec<u8>>().unwrap(), b"");
        });
    }

    /// `wsgi.input` over a body the core read in pieces.
    fn pieces_input<'py>(py: Python<'py>, pieces: &[&'static [u8]]) -> Bound<'py, InputStream> {
        let (events, _) = flume::unbounded();
        let pieces = pieces.iter().map(|piece| Bytes::from_static(piece)).collect();
        Bound::new(py, InputStream::new(py, BodySource::Pieces(pieces), &events)).unwrap()
    }

    /// `wsgi.input` over a body the core spooled into a file that an
    /// earlier, longer body left: its rest follows this body's bytes.
    fn spooled_input<'py>(py: Python<'py>, pieces: &[&'static [u8]]) -> Bound<'py, InputStream> {
        let body = pieces.concat();
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &body).unwrap();
        std::io::Write::write_all(&mut file, b"\nthe rest of an earlier body").unwrap();
        std::io::Seek::rewind(&mut file).unwrap();
        let file = SpoolFile::new(file, std::sync::Arc::default());
        let spooled = BodySource::Spooled { file, len: body.len() as u64, rest: None };
        let (events, _) = flume::unbounded();
        Bound::new(py, InputStream::new(py, spooled, &events)).unwrap()
    }

    /// Read every way, a body in pieces reads as one, and a spooled one as
    /// its own bytes only.
    #[test]
    fn a_body_in_pieces_or_spooled_reads_as_one() {
        Python::attach(|py| {
            let read = |input: &Bound<'_, InputStream>, method: &str, arg: Option<isize>| {
                match arg {
                    Some(n) => input.call_method1(method, (n,)),
                    None => input.call_method0(method),
                }
                .unwrap()
                .extract::<Vec<u8>>()
                .unwrap()
            };
            for make in [pieces_input, spooled_input] {
                let input = make(py, &[b"name=", b"value\nmo", b"re"]);
                assert_eq!(read(&input, "read", None), b"name=value\nmore");
                assert_eq!(read(&input, "read", None), b"");
                let input = make(py, &[b"name=", b"value\nmo", b"re"]);
                assert_eq!(read(&input, "read", Some(3)), b"nam");
                assert_eq!(read(&input, "readline", None), b"e=value\n");
                assert_eq!(read(&input, "read", Some(100)), b"more");
                let input = make(py, &[b"a", b"b\nc"]);
                let lines: Vec<Vec<u8>> =
                    input.call_method0("readlines").unwrap().extract().unwrap();
                assert_eq!(lines, [b"ab\n".to_vec(), b"c".to_vec()]);
                // Sized reads and lines across pieces, with more of the body left.
                let input = make(py, &[b"name=", b"value\nmo", b"re"]);
                assert_eq!(read(&input, "read", Some(7)), b"name=va");
                let lines: Vec<Vec<u8>> = input
                    .try_iter()
                    .unwrap()
                    .map(|line| line.unwrap().extract().unwrap())
                    .collect();
                assert_eq!(lines, [b"lue\n".to_vec(), b"more".to_vec()]);
            }
        });
    }

    /// A body the core said it read whole but did not is an error to the
    /// app, not an empty body.
    #[test]
    fn a_lent_body_not_ours_to_take_back_fails_the_first_read() {
        Python::attach(|py| {
            let (events, _) = flume::unbounded();
            let mut foreign = rwsgi_testkit::lent_heap(3);
            foreign.put_slice(b"abc");
            let input =
                Bound::new(py, InputStream::new(py, BodySource::Lent(foreign), &events)).unwrap();
            let err = input.call_method0("read").unwrap_err();
            assert!(err.is_instance_of::<PyOSError>(py), "{err}");
            assert!(input.borrow().failed());
            assert_eq!(input.call_method0("read").unwrap().extract::<Vec<u8>>().unwrap(), b"");
        });
    }

    /// `wsgi.input` over a body of `size` bytes (`i % 251` at offset `i`)
    /// lent in parts of `part` bytes; where each part's object is.
    fn parted_input(
        py: Python<'_>,
        size: usize,
        part: usize,
    ) -> (Bound<'_, InputStream>, Vec<usize>) {
        let mut lent = BytesMemory::lend_in_parts(py, size, part).unwrap();
        lent.put_slice(&pattern(size));
        let (events, _) = flume::unbounded();
        let input = Bound::new(py, InputStream::new(py, BodySource::Lent(lent), &events)).unwrap();
        let at =
            input.borrow().lent.iter().map(|o| o.bind(py).as_bytes().as_ptr() as usize).collect();
        (input, at)
    }

    fn pattern(size: usize) -> Vec<u8> {
        (0..size).map(|i| (i % 251) as u8).collect()
    }

    fn read_bytes<'py>(
        input: &Bound<'py, InputStream>,
        size: Option<isize>,
    ) -> Bound<'py, PyBytes> {
        match size {
            Some(n) => input.call_method1("read", (n,)),
            None => input.call_method0("read"),
        }
        .unwrap()
        .cast_into::<PyBytes>()
        .unwrap()
    }

    /// A body lent in parts: a `read(n)` of exactly a part (or of more
    /// than the last one) is that part's object; any other read is a copy
    /// of the right bytes, and a whole read joins what is left.
    #[test]
    fn a_body_lent_in_parts_hands_each_part_over_without_a_copy() {
        Python::attach(|py| {
            let body = pattern(40);
            let (input, at) = parted_input(py, 40, 16);
            assert_eq!(at.len(), 3);
            for (i, limit) in [16, 16, 100].into_iter().enumerate() {
                let part = read_bytes(&input, Some(limit));
                assert_eq!(part.as_bytes(), &body[i * 16..(i * 16 + 16).min(40)]);
                assert_eq!(part.as_bytes().as_ptr() as usize, at[i], "part {i} copied");
            }
            assert_eq!(read_bytes(&input, Some(16)).as_bytes(), b"");

            let (input, at) = parted_input(py, 40, 16);
            assert_eq!(read_bytes(&input, Some(10)).as_bytes(), &body[..10]);
            assert_eq!(read_bytes(&input, Some(16)).as_bytes(), &body[10..26]);
            let part = read_bytes(&input, Some(16));
            assert_eq!(part.as_bytes(), &body[26..40]);
            assert_ne!(part.as_bytes().as_ptr() as usize, at[1], "not a whole part");

            let (input, _) = parted_input(py, 40, 16);
            assert_eq!(read_bytes(&input, None).as_bytes(), &body[..]);
            assert!(input.borrow().lent.is_empty(), "the parts let go");
            assert_eq!(read_bytes(&input, None).as_bytes(), b"");
        });
    }

    /// The first read of a lent body sets the parts of the next: `read(n)`
    /// of 16 KiB or more, less than the body, lends in parts of n; a
    /// whole read, or a small one, lends the body whole.
    #[test]
    fn the_first_read_of_a_body_sets_how_the_next_is_lent() {
        Python::attach(|py| {
            let first_part = |py| BytesMemory::lend(py, 200_000).unwrap().chunk_mut().len();
            let (input, _) = parted_input(py, 100_000, 100_000);
            read_bytes(&input, Some(65_536));
            assert_eq!(first_part(py), 65_536);
            let (input, _) = parted_input(py, 100_000, 100_000);
            read_bytes(&input, Some(1024));
            assert_eq!(first_part(py), 200_000);
            let (input, _) = parted_input(py, 100_000, 65_536);
            read_bytes(&input, Some(65_536));
            let (input, _) = parted_input(py, 100_000, 65_536);
            read_bytes(&input, None);
            assert_eq!(first_part(py), 200_000);
        });
    }

    #[test]
    fn a_lent_body_read_in_parts_gives_each_part_once() {
        Python::attach(|py| {
            let (input, _) = lent_input(py, b"name=value\nmore");
            let read = |method: &str, arg: Option<isize>| -> Vec<u8> {
                match arg {
                    Some(n) => input.call_method1(method, (n,)),
                    None => input.call_method0(method),
                }
                .unwrap()
                .extract()
                .unwrap()
            };
            assert_eq!(read("read", Some(4)), b"name");
            assert_eq!(read("readline", None), b"=value\n");
            // Not the whole object any more: what is left.
            assert_eq!(read("read", None), b"more");
            let (input, _) = lent_input(py, b"a\nb\n");
            let lines: Vec<Vec<u8>> = input.call_method0("readlines").unwrap().extract().unwrap();
            assert_eq!(lines, [b"a\n".to_vec(), b"b\n".to_vec()]);
        });
    }
}
