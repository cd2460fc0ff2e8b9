//! A request's body: read before the responder runs (so a slow client
//! never holds a responder's thread), in memory while it is small and into
//! a temporary file beyond `post-buffering`, as uWSGI does, up to
//! `post-buffering-disk`; what is left of a longer body, and any body with
//! `post-buffering = 0` or from a client waiting for `100 Continue`,
//! streams to the responder on demand.

use super::{Connection, State};
use crate::load::Connections;
use crate::stream::Stream;
use bytes::{Bytes, BytesMut};
use rwsgi_proto::{
    BodyLength, BodyMsg, BodySource, Frame, LentBody, ProtoError, RequestHead, Responder,
    ServerCodec, SpareFiles, SpoolFile,
};
use std::collections::VecDeque;
use std::io::{IoSlice, Seek, Write};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::timeout;

/// How often the spool files the worker kept are trimmed: one unused
/// for between one and two of these closes.
const SPARE_TRIM: Duration = Duration::from_secs(10);

/// Body pieces read ahead that are smaller than this are copied together
/// instead of kept as they came: a piece shares its read buffer, and a
/// client trickling a body a byte at a time must not pin a buffer a byte.
const COALESCE_BELOW: usize = 16 * 1024;

#[cfg(test)]
thread_local! {
    /// Bodies read ahead and handed over in pieces: the tests check that a
    /// body sent at once is not.
    pub(super) static BODIES_IN_PIECES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// How the connection serves the body the responder reads from its
/// [`BodySource`].
#[derive(Default)]
pub(super) struct BodyPlan {
    /// Where the responder's body reads are answered, for a streamed body.
    replies: Option<flume::Sender<BodyMsg>>,
    /// Pieces already read, handed out before reading more.
    read_ahead: VecDeque<Bytes>,
    /// The whole body is off the connection.
    pub(super) done: bool,
}

/// A planned body: what the responder reads, and how the connection serves it.
pub(super) type Planned = (BodySource, BodyPlan);

impl BodyPlan {
    /// The responder is done: its body reads are answered no more.
    pub(super) fn stop_answering(&mut self) {
        self.replies = None;
    }

    /// The whole body, read into memory.
    fn read_whole(body: BodySource) -> Planned {
        (body, BodyPlan::read())
    }

    /// The body in `file`, whole (`complete`) or its first `len` bytes.
    fn spooled(file: SpoolFile, len: u64, complete: bool) -> Planned {
        if complete {
            return (BodySource::Spooled { file, len, rest: None }, BodyPlan::read());
        }
        let (rest, plan) = BodyPlan::streaming(VecDeque::new());
        (BodySource::Spooled { file, len, rest: Some(rest) }, plan)
    }

    /// The whole body was read before the responder ran.
    fn read() -> BodyPlan {
        BodyPlan { replies: None, read_ahead: VecDeque::new(), done: true }
    }

    /// A body streamed on demand, after the `read_ahead` pieces.
    fn streamed(read_ahead: VecDeque<Bytes>) -> Planned {
        let (rest, plan) = BodyPlan::streaming(read_ahead);
        (BodySource::Streamed(rest), plan)
    }

    fn streaming(read_ahead: VecDeque<Bytes>) -> (flume::Receiver<BodyMsg>, BodyPlan) {
        let (tx, rx) = flume::bounded(1);
        (rx, BodyPlan { replies: Some(tx), read_ahead, done: false })
    }
}

/// How reading a request's body ahead ended, if not with a plan.
pub(super) enum BodyEnd {
    /// The peer abandoned the request (FastCGI `ABORT_REQUEST`).
    Aborted,
    /// The body could not be read.
    Failed(ProtoError),
}

/// What spooling a body found.
enum Spool {
    /// The body, whole (`complete`) or its first `len` bytes.
    Kept { file: SpoolFile, len: u64, complete: bool },
    /// The peer abandoned the request.
    Aborted,
}

/// What reading a body ahead found.
enum ReadAhead {
    /// The whole body: in one buffer, in pieces, or in memory the
    /// responder lent.
    Whole(BodySource),
    /// More than the limit, and the body goes on: these pieces first.
    Partial(VecDeque<Bytes>),
    /// The peer abandoned the request.
    Aborted,
}

/// How big the reads for a body are.
#[derive(Clone, Copy)]
enum Reads {
    /// From a few KiB, doubling while the client keeps them full, and small
    /// again after a wait: a connection waiting for a body holds little.
    Adaptive,
    /// All the kernel holds, up to a bulk size: the app waits for this
    /// body now, and takes what is read at once.
    Bulk,
}

/// The answer to one body read of the responder, and what it changed.
pub(super) enum BodyRead {
    Answered,
    /// The body was all read before the responder began: a read is its bug.
    NoBody,
    /// The peer abandoned the request.
    Aborted,
    /// The body failed; the responder was told.
    Failed(ProtoError),
}

impl<S: Stream, C: ServerCodec, R: Responder> Connection<S, C, R> {
    /// Decides how the body reaches the responder. With `post-buffering`
    /// (N > 0) it is read whole first: in memory up to N bytes (an empty
    /// body, one of known length within N, or one of unknown length —
    /// chunked; FastCGI without CONTENT_LENGTH, as nginx sends a GET —
    /// that ends within it), into a temporary file beyond. A body the
    /// client sends only after `100 Continue`, or any with
    /// `post-buffering = 0`, streams on demand: the responder decides.
    pub(super) async fn plan_body(&mut self, head: &mut C::Head) -> Result<Planned, BodyEnd> {
        let post_buffering = self.ctx.config.post_buffering;
        let spool_limit = self.ctx.config.spool_limit;
        let read_first = post_buffering > 0 && !head.expects_continue();
        // How much to keep in memory; `None`: the body is longer, to a file.
        let in_memory = match head.body_length() {
            BodyLength::Empty => Some(0),
            BodyLength::Known(n) if read_first && n <= post_buffering => Some(n),
            BodyLength::Known(_) if read_first && spool_limit > 0 => None,
            BodyLength::Known(_) if read_first => Some(post_buffering),
            BodyLength::Streamed if read_first => Some(post_buffering),
            BodyLength::Known(_) | BodyLength::Streamed => {
                return Ok(BodyPlan::streamed(VecDeque::new()));
            }
        };
        if in_memory.is_none_or(|limit| (self.wire.rbuf.len() as u64) < limit) {
            // The body is not all here: waiting for it must not pin the
            // buffer the head was read into.
            head.detach();
        }
        let pieces = match in_memory {
            Some(limit) => match self.read_ahead(limit, head.body_length()).await {
                Ok(ReadAhead::Whole(body)) => return Ok(BodyPlan::read_whole(body)),
                Ok(ReadAhead::Partial(pieces)) if spool_limit == 0 => {
                    return Ok(BodyPlan::streamed(pieces));
                }
                Ok(ReadAhead::Partial(pieces)) => pieces,
                Ok(ReadAhead::Aborted) => return Err(BodyEnd::Aborted),
                Err(err) => return Err(BodyEnd::Failed(err)),
            },
            None => VecDeque::new(),
        };
        match self.spool(pieces, spool_limit).await {
            Ok(Spool::Kept { file, len, complete }) => Ok(BodyPlan::spooled(file, len, complete)),
            Ok(Spool::Aborted) => Err(BodyEnd::Aborted),
            Err(err) => Err(BodyEnd::Failed(err)),
        }
    }

    /// [`Self::plan_body`] for a request without a body whose end the codec
    /// has at hand (HTTP, uwsgi; FastCGI once its empty STDIN record came),
    /// without a step that waits: most requests are such GETs. `None`: the
    /// body, or its end, is still to be read.
    pub(super) fn plan_no_body(&mut self, head: &C::Head) -> Option<Result<Planned, BodyEnd>> {
        if head.body_length() != BodyLength::Empty {
            return None;
        }
        Some(match self.decode() {
            Ok(None) => return None,
            Ok(Some(Frame::End)) => Ok(BodyPlan::read_whole(BodySource::Buffered(Bytes::new()))),
            Ok(Some(Frame::Abort)) => Err(BodyEnd::Aborted),
            Ok(Some(Frame::Data(_) | Frame::Head(_))) => {
                Err(BodyEnd::Failed(ProtoError::BadRequest("body in a request without one")))
            }
            Err(err) => Err(BodyEnd::Failed(err)),
        })
    }

    /// Reads a body longer than `post-buffering` into an unlinked
    /// temporary file, after the `pieces` read so far, until it ends or the
    /// file holds `limit` bytes (or a piece more). The file is written on
    /// this thread: into the page cache, as uWSGI does. The file is one an
    /// earlier body left, where the worker kept one ([`SpareFiles`]),
    /// overwritten from its start.
    async fn spool(&mut self, pieces: VecDeque<Bytes>, limit: u64) -> Result<Spool, ProtoError> {
        let spare = &self.ctx.spare_files;
        let file = match spare.take() {
            Some(file) => file,
            None => tempfile::tempfile().map_err(ProtoError::Spool)?,
        };
        let mut file = SpoolFile::new(file, spare.clone());
        file.rewind().map_err(ProtoError::Spool)?;
        let mut kept = write_pieces(&mut file, pieces)?;
        let complete = loop {
            if kept >= limit {
                break false;
            }
            // All a read brought goes to the file in one write, so a fast
            // client costs few reads and writes, and a slow one no bulk
            // buffer.
            let (pieces, stop) = self.bulk_pieces(limit - kept).await?;
            kept += write_pieces(&mut file, pieces.into_queue())?;
            match stop {
                None => {}
                Some(Stop::End) => break true,
                Some(Stop::Abort) => return Ok(Spool::Aborted),
                Some(Stop::Head) => return Err(head_inside_body()),
            }
        };
        file.rewind().map_err(ProtoError::Spool)?;
        Ok(Spool::Kept { file, len: kept, complete })
    }

    /// Reads the body before the responder runs, up to `limit` bytes. A
    /// longer body stops there: the pieces read so far go first, the rest
    /// streams. One of known `length` within the limit, from a client that
    /// keeps up, is read whole first, into memory the responder lends where
    /// it can, so that it needs no copying together.
    async fn read_ahead(
        &mut self,
        limit: u64,
        length: BodyLength,
    ) -> Result<ReadAhead, ProtoError> {
        let mut pieces = Pieces::default();
        let mut next = None;
        if let BodyLength::Known(len) = length
            && len <= limit
            && self.codec.body_in_place().is_some()
            && let Ok(size) = usize::try_from(len)
        {
            let responder = &self.ctx.responder;
            let gathered =
                self.wire.gather(&mut self.codec, size, |size| responder.lend_body(size)).await?;
            match gathered.lent {
                Some(lent) if lent.is_full() => return self.lent_whole(lent).await,
                Some(mut part) if part.written() > 0 => {
                    pieces.push(Bytes::from(part.copy_filled()));
                }
                _ => {}
            }
            next = gathered.frame;
        }
        loop {
            let frame = match next.take() {
                Some(frame) => frame,
                None => {
                    if self.wire.rbuf.is_empty() {
                        // The next piece must be read, perhaps waited for.
                        pieces.settle();
                    }
                    self.next_body_frame().await?
                }
            };
            match frame {
                Frame::Data(data) => {
                    pieces.push(data);
                    if pieces.total > limit {
                        return Ok(ReadAhead::Partial(pieces.into_queue()));
                    }
                }
                Frame::End => break,
                Frame::Abort => return Ok(ReadAhead::Aborted),
                Frame::Head(_) => return Err(head_inside_body()),
            }
        }
        let mut queue = pieces.into_queue();
        Ok(ReadAhead::Whole(match queue.len() {
            0 => BodySource::Buffered(Bytes::new()),
            1 => BodySource::Buffered(queue.pop_front().unwrap_or_default()),
            _ => {
                #[cfg(test)]
                BODIES_IN_PIECES.set(BODIES_IN_PIECES.get() + 1);
                BodySource::Pieces(queue.into())
            }
        }))
    }

    /// The whole body is in lent memory: what follows it on the wire is
    /// its end (FastCGI's empty STDIN record; nothing, unframed).
    async fn lent_whole(&mut self, lent: LentBody) -> Result<ReadAhead, ProtoError> {
        match self.next_body_frame().await? {
            Frame::End => Ok(ReadAhead::Whole(BodySource::Lent(lent))),
            Frame::Abort => Ok(ReadAhead::Aborted),
            Frame::Data(_) => Err(ProtoError::BadRequest("request body longer than its length")),
            Frame::Head(_) => Err(head_inside_body()),
        }
    }

    /// The next body frame, reading as needed within `socket-timeout`.
    async fn next_body_frame(&mut self) -> Result<Frame<C::Head>, ProtoError> {
        self.next_body_frame_reading(Reads::Adaptive).await
    }

    /// As [`Self::next_body_frame`], reading as `reads` says.
    async fn next_body_frame_reading(
        &mut self,
        reads: Reads,
    ) -> Result<Frame<C::Head>, ProtoError> {
        loop {
            if let Some(frame) = self.decode()? {
                return Ok(frame);
            }
            if !self.wire.out.is_empty() {
                self.wire.flush().await?;
            }
            let fill = async {
                match reads {
                    Reads::Adaptive => self.wire.fill().await,
                    Reads::Bulk => self.wire.fill_bulk().await,
                }
            };
            match timeout(self.ctx.config.socket_timeout, fill).await {
                Ok(Ok(0)) => {
                    if let Some(frame) = self.decode_eof()? {
                        return Ok(frame);
                    }
                    return Err(ProtoError::UnexpectedEof);
                }
                Ok(Ok(_)) => {}
                Ok(Err(err)) => return Err(err.into()),
                Err(_) => return Err(ProtoError::Timeout),
            }
        }
    }

    /// Answers one body read of the responder: a piece read ahead, the
    /// next piece off the wire, the end, or why there is none. The first
    /// read of a body the client holds back for `100 Continue` asks for it.
    pub(super) async fn answer_body_read(
        &mut self,
        plan: &mut BodyPlan,
        asked_continue: &mut bool,
        expects_continue: bool,
    ) -> BodyRead {
        let Some(replies) = plan.replies.clone() else {
            return BodyRead::NoBody;
        };
        if expects_continue && !*asked_continue {
            *asked_continue = true;
            self.codec.encode_continue(&mut self.wire.out);
            if let Err(err) = self.wire.flush().await {
                let _ = replies.send(BodyMsg::Failed(format!("request body: {err}")));
                return BodyRead::Failed(err.into());
            }
        }
        let (reply, read) = if !plan.read_ahead.is_empty() {
            (BodyMsg::Data(plan.read_ahead.drain(..).collect()), BodyRead::Answered)
        } else if plan.done {
            (BodyMsg::Eof, BodyRead::Answered)
        } else {
            self.body_pieces(plan).await
        };
        let _ = replies.send(reply);
        read
    }

    /// The next piece of a body the app waits for, read in bulk, and every
    /// further piece the read brought (FastCGI records, HTTP chunks): one
    /// answer for all, small pieces copied together as when read ahead. A
    /// failure among them is the answer: the body is lost either way.
    async fn body_pieces(&mut self, plan: &mut BodyPlan) -> (BodyMsg, BodyRead) {
        let pieces = match self.bulk_pieces(u64::MAX).await {
            Ok((pieces, None)) => pieces,
            Ok((pieces, Some(Stop::End))) => {
                plan.done = true;
                pieces
            }
            Ok((_, Some(Stop::Abort))) => {
                let why = "request aborted by the web server".into();
                return (BodyMsg::Failed(why), BodyRead::Aborted);
            }
            Ok((_, Some(Stop::Head))) => {
                let err = head_inside_body();
                return (BodyMsg::Failed(err.to_string()), BodyRead::Failed(err));
            }
            Err(err) => {
                return (BodyMsg::Failed(format!("request body: {err}")), BodyRead::Failed(err));
            }
        };
        let reply = match pieces.total {
            0 => BodyMsg::Eof,
            _ => BodyMsg::Data(pieces.into_queue().into()),
        };
        (reply, BodyRead::Answered)
    }

    /// The next piece of the body, read in bulk (as much as the kernel
    /// holds, small reads again after a wait), and every further piece the
    /// read buffer then holds, without reading, until they pass `limit`
    /// bytes: small ones copied together ([`Pieces`]). With what stopped
    /// them, if not the limit or the buffer's end.
    async fn bulk_pieces(&mut self, limit: u64) -> Result<(Pieces, Option<Stop>), ProtoError> {
        let mut pieces = Pieces::default();
        let mut next = Some(self.next_body_frame_reading(Reads::Bulk).await?);
        while let Some(frame) = next {
            match frame {
                Frame::Data(data) => pieces.push(data),
                Frame::End => return Ok((pieces, Some(Stop::End))),
                Frame::Abort => return Ok((pieces, Some(Stop::Abort))),
                Frame::Head(_) => return Ok((pieces, Some(Stop::Head))),
            }
            next = if pieces.total >= limit { None } else { self.decode()? };
        }
        Ok((pieces, None))
    }

    /// A body that could not be read: a peer that went away or stalled gets
    /// no answer, but the request it started is worth one log line.
    pub(super) fn body_failed(&self, head: &C::Head, err: ProtoError) -> State<C::Head> {
        if err.status().is_none() {
            tracing::warn!(
                "{} {} {}: request body incomplete: {err}",
                self.wire.info.peer,
                C::NAME,
                head.describe()
            );
        }
        State::Closing(super::Close::Answer(err))
    }
}

/// Most body pieces written to a spool file in one call (well within
/// `IOV_MAX`).
const WRITE_PIECES: usize = 64;

/// Why a run of body pieces stopped, other than at a limit or at what the
/// read buffer held.
enum Stop {
    /// The body's end.
    End,
    /// The peer abandoned the request (FastCGI `ABORT_REQUEST`).
    Abort,
    /// A request head where the body should be.
    Head,
}

/// A request head where the body should be: a broken request.
fn head_inside_body() -> ProtoError {
    ProtoError::BadRequest("request head inside a body")
}

/// Writes `pieces` to `file`, [`WRITE_PIECES`] to a vectored write (their
/// slices on the stack, as `flush` does): how many bytes.
fn write_pieces(file: &mut std::fs::File, pieces: VecDeque<Bytes>) -> Result<u64, ProtoError> {
    let mut next = pieces.iter();
    loop {
        let mut slices = [IoSlice::new(&[]); WRITE_PIECES];
        let mut n = 0;
        // The slots first: a piece is taken only when there is room for it.
        for (slot, piece) in slices.iter_mut().zip(next.by_ref()) {
            *slot = IoSlice::new(piece);
            n += 1;
        }
        if n == 0 {
            break;
        }
        let mut rest = &mut slices[..n];
        while !rest.is_empty() {
            match file.write_vectored(rest) {
                Ok(0) => return Err(ProtoError::Spool(std::io::ErrorKind::WriteZero.into())),
                Ok(written) => IoSlice::advance_slices(&mut rest, written),
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
                Err(err) => return Err(ProtoError::Spool(err)),
            }
        }
    }
    Ok(pieces.iter().map(|piece| piece.len() as u64).sum())
}

/// Trims the spool files the worker kept ([`SpareFiles::trim`]) every
/// [`SPARE_TRIM`], so that a worker done with uploads soon holds none of
/// their pages: a tick while any are kept, none otherwise until a
/// connection opens. Runs until the runtime ends.
pub(crate) async fn trim_spare_files(spare: Arc<SpareFiles>, connections: Arc<Connections>) {
    loop {
        if spare.is_empty() {
            connections.any_open().await;
        }
        tokio::time::sleep(SPARE_TRIM).await;
        spare.trim();
    }
}

/// Body pieces read ahead. Each piece that comes as it was read shares its
/// read buffer, so small ones are copied together (see [`COALESCE_BELOW`]):
/// what is held stays close to the bytes received, however they trickle
/// in. A body that arrives whole is kept as it came, without a copy.
#[derive(Default)]
struct Pieces {
    queue: VecDeque<Bytes>,
    small: BytesMut,
    total: u64,
}

impl Pieces {
    fn push(&mut self, data: Bytes) {
        self.total += data.len() as u64;
        if self.queue.is_empty() && self.small.is_empty() {
            // Perhaps the whole body: kept as it came until more follows.
            self.queue.push_back(data);
            return;
        }
        if let Some(last) = self.queue.pop_back() {
            if last.len() < COALESCE_BELOW {
                self.small.extend_from_slice(&last);
            } else {
                self.queue.push_back(last);
            }
        }
        if data.len() >= COALESCE_BELOW {
            self.seal();
            self.queue.push_back(data);
        } else {
            self.small.extend_from_slice(&data);
            if self.small.len() >= COALESCE_BELOW {
                self.seal();
            }
        }
    }

    /// Before a wait: a small first piece is copied out of the read buffer
    /// it shares, so the wait holds only its bytes.
    fn settle(&mut self) {
        if self.queue.len() == 1
            && self.small.is_empty()
            && let Some(first) = self.queue.pop_back()
        {
            if first.len() < COALESCE_BELOW {
                self.small.extend_from_slice(&first);
            } else {
                self.queue.push_back(first);
            }
        }
    }

    /// Moves the small pieces copied so far into the queue, in order.
    fn seal(&mut self) {
        if !self.small.is_empty() {
            self.queue.push_back(self.small.split().freeze());
        }
    }

    fn into_queue(mut self) -> VecDeque<Bytes> {
        self.seal();
        self.queue
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// More pieces than one write takes go to the file in order, whole.
    #[test]
    fn pieces_are_written_to_a_spool_file_in_order() {
        let pieces: VecDeque<Bytes> =
            (0..3 * WRITE_PIECES).map(|n| Bytes::from(vec![n as u8; n % 7 + 1])).collect();
        let all: Vec<u8> = pieces.iter().flat_map(|piece| piece.iter().copied()).collect();
        let mut file = tempfile::tempfile().unwrap();
        assert_eq!(write_pieces(&mut file, pieces).unwrap(), all.len() as u64);
        file.rewind().unwrap();
        let mut written = Vec::new();
        std::io::Read::read_to_end(&mut file, &mut written).unwrap();
        assert!(written == all);
    }

    /// A kept spool file closes once unused for a while, and the trimming
    /// goes on.
    #[test]
    fn kept_spool_files_close_once_unused_for_a_while() {
        super::super::tests::paused().block_on(async {
            let spare = Arc::new(SpareFiles::default());
            let connections = Arc::new(Connections::new(8));
            drop(SpoolFile::new(tempfile::tempfile().unwrap(), spare.clone()));
            let trimming = tokio::spawn(trim_spare_files(spare.clone(), connections));
            tokio::time::sleep(SPARE_TRIM + SPARE_TRIM / 2).await;
            assert!(!spare.is_empty(), "unused for less than two trims");
            tokio::time::sleep(SPARE_TRIM).await;
            assert!(spare.is_empty(), "unused for two trims");
            assert!(!trimming.is_finished());
        });
    }

    fn bodies(pieces: &[&[u8]]) -> (VecDeque<Bytes>, u64) {
        let mut collected = Pieces::default();
        for piece in pieces {
            collected.push(Bytes::copy_from_slice(piece));
        }
        let total = collected.total;
        (collected.into_queue(), total)
    }

    #[test]
    fn small_body_pieces_are_copied_together_and_large_ones_kept() {
        let (queue, total) = bodies(&[b"whole"]);
        assert_eq!((queue.len(), total), (1, 5));
        let trickle: Vec<&[u8]> = vec![b"a"; 40_000];
        let (queue, total) = bodies(&trickle);
        assert_eq!(total, 40_000);
        assert_eq!(queue.iter().map(Bytes::len).sum::<usize>(), 40_000);
        assert!(queue.len() <= 3, "{} pieces for a trickled body", queue.len());
        let big = vec![7u8; COALESCE_BELOW];
        let (queue, _) = bodies(&[b"x", &big, b"y", b"z"]);
        let lens: Vec<usize> = queue.iter().map(Bytes::len).collect();
        assert_eq!(lens, [1, COALESCE_BELOW, 2], "order kept, large piece as it came");
        let joined: Vec<u8> = queue.iter().flat_map(|b| b.iter().copied()).collect();
        assert_eq!(joined.first(), Some(&b'x'));
        assert_eq!(&joined[joined.len() - 2..], b"yz");
    }
}
