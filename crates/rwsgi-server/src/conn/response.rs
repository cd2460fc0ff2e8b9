//! The responder's part of an exchange: the request handed over, its
//! events encoded and written as they come, its body reads answered in
//! between.

use super::body::BodyRead;
use super::{Connection, Exchange};
use crate::date::with_date;
use crate::stream::Stream;
use bytes::{Bytes, BytesMut};
use rwsgi_log::Captured;
use rwsgi_proto::{
    BodySource, Environ, Event, Frame, ProtoError, Request, RequestHead, Responder, ServerCodec,
};
use tokio::io::AsyncReadExt;

/// Flush the output once this much is queued, even if more is coming.
const FLUSH_AT: usize = 256 * 1024;

/// How the responder's part of an exchange ended: all the connection
/// needs to finish it and decide what comes next.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    /// The response status, once its head was encoded.
    pub(super) status: Option<u16>,
    /// Response body bytes.
    pub(super) bytes: u64,
    /// The codec allows another request after this response
    /// (`encode_end`'s answer); false when the response was cut short.
    pub(super) reusable: bool,
    /// A write failed: what is queued cannot go out.
    pub(super) unwritable: bool,
    /// The request body is off the connection (or forgotten by the codec).
    pub(super) body_done: bool,
    /// The client waits for `100 Continue` it never got: it sends no body.
    pub(super) continue_pending: bool,
    /// The request body failed; answered as a request error when no
    /// response head went out.
    pub(super) body_error: Option<ProtoError>,
    /// The peer abandoned the request.
    pub(super) aborted: bool,
    /// The responder saw the request (it gets a request log line, unless
    /// it asked for none).
    pub(super) responded: bool,
    /// No request log line (a route's `donotlog:`).
    pub(super) quiet: bool,
    /// Who answered, for the counters.
    pub(super) answerer: rwsgi_proto::Answerer,
    /// The response head's size and header count, for the request log.
    pub(super) head_bytes: u64,
    pub(super) headers: usize,
    /// The body went out with `sendfile`.
    pub(super) sendfile: bool,
}

impl Outcome {
    /// A request the peer abandoned before the responder saw it; the codec
    /// has ended it (`reusable`: its answer).
    pub(super) fn aborted(reusable: bool) -> Self {
        Outcome { reusable, body_done: true, aborted: true, ..Outcome::default() }
    }
}

impl<S: Stream, C: ServerCodec, R: Responder> Connection<S, C, R> {
    /// Hands the request to the responder and writes what it answers,
    /// until its last event (or a failure) ends the exchange.
    pub(super) async fn exchange(&mut self, exchange: &mut Exchange<C::Head>) {
        let Exchange { head, plan, source, outcome, captured, .. } = exchange;
        let expects_continue = head.expects_continue();
        // From here to its last event the request is the responder's work: it counts
        // toward the worker being full (`accept_limit`); waiting for its
        // head or body did not, and writing what is left will not.
        let working = self.ctx.enter();
        // Built once the body is in: a request waiting for it holds no environ.
        let mut environ = Environ::with_capacity(32);
        head.write_environ(&self.wire.info, &mut environ);
        // What the request line needs, kept before the app takes the environ.
        if let Some(log) = self.ctx.config.access_log.as_ref().filter(|log| log.logs_anything()) {
            *captured = Some(Box::new(Captured::from_environ(&environ, log.wanted_vars())));
        }
        let body = source.take().unwrap_or(BodySource::Buffered(Bytes::new()));
        let mut replies = self.ctx.responder.respond(Request { environ, body }).await;
        outcome.responded = true;
        outcome.quiet = replies.is_quiet();
        outcome.answerer = replies.answerer();
        let mut asked_continue = false;
        outcome.reusable = loop {
            let watch = C::READS_DURING_RESPONSE
                && plan.done
                && !outcome.aborted
                && self.wire.rbuf.len() < self.ctx.config.limits.max_head;
            let event = if watch {
                tokio::select! {
                    event = replies.recv() => event,
                    read = self.wire.fill() => match self.input_during_response(read).await {
                        Ok(false) => continue,
                        Ok(true) => {
                            outcome.aborted = true;
                            break self.codec.encode_end(false, &mut self.wire.out);
                        }
                        Err(err) => {
                            outcome.body_error = Some(err);
                            break false;
                        }
                    },
                }
            } else {
                replies.recv().await
            };
            let Ok(event) = event else {
                tracing::error!("{}: the responder ended without a response", head.describe());
                break false;
            };
            match event {
                Event::ReadBody => {
                    match self.answer_body_read(plan, &mut asked_continue, expects_continue).await {
                        BodyRead::Answered => {}
                        BodyRead::NoBody => break false,
                        BodyRead::Aborted => {
                            outcome.aborted = true;
                            break self.codec.encode_end(false, &mut self.wire.out);
                        }
                        // The responder was told; what it answers is not sent.
                        BodyRead::Failed(err) => outcome.body_error = Some(err),
                    }
                }
                // The client gets the protocol's answer to its broken body
                // instead of the responder's.
                Event::Head { .. } | Event::Whole { .. } if outcome.body_error.is_some() => {
                    break false;
                }
                Event::Head { head: response, body } => {
                    self.put_head(&response, plan.done, outcome);
                    self.put_body(body, outcome);
                }
                Event::Whole { head: response, body, complete } => {
                    self.put_head(&response, plan.done, outcome);
                    self.put_body(body, outcome);
                    break self.codec.encode_end(complete, &mut self.wire.out);
                }
                Event::Data(data) => self.put_body(vec![data], outcome),
                Event::File { file, offset, len } => {
                    match self.send_file(file, offset, len).await {
                        Ok(raw) => {
                            outcome.bytes += len;
                            outcome.sendfile |= raw;
                        }
                        Err(_) => {
                            outcome.unwritable = true;
                            break false;
                        }
                    }
                }
                Event::Stderr(text) => self.codec.encode_stderr(text, &mut self.wire.out),
                Event::End { complete } => {
                    break self.codec.encode_end(complete, &mut self.wire.out);
                }
            }
            if (self.wire.out.len() >= FLUSH_AT || replies.is_empty())
                && self.wire.flush().await.is_err()
            {
                outcome.unwritable = true;
                break false;
            }
        };
        // Dropping the channels tells a responder still at work that the
        // client is gone.
        drop(replies);
        plan.stop_answering();
        drop(working);
        outcome.body_done = plan.done || outcome.aborted;
        outcome.continue_pending = expects_continue && !asked_continue;
    }

    /// While the responder works, reads what the peer sends (for codecs
    /// that need it: an abort, a management record). `Ok(true)`: the
    /// request was aborted. An error or the peer's close ends the request.
    async fn input_during_response(
        &mut self,
        read: std::io::Result<usize>,
    ) -> Result<bool, ProtoError> {
        match read {
            Ok(0) => return Err(ProtoError::UnexpectedEof),
            Ok(_) => {}
            Err(err) => return Err(err.into()),
        }
        match self.decode()? {
            None => {}
            Some(Frame::Abort) => return Ok(true),
            Some(_) => return Err(ProtoError::BadRequest("request data after the request's end")),
        }
        if !self.wire.out.is_empty() {
            self.wire.flush().await?;
        }
        Ok(false)
    }

    fn put_head(
        &mut self,
        response: &rwsgi_proto::ResponseHead,
        body_done: bool,
        outcome: &mut Outcome,
    ) {
        outcome.status = Some(response.status);
        if self.reuse().announce_close(body_done) {
            self.codec.close_after_response();
        }
        with_date(|date| self.codec.encode_head(response, date, &mut self.wire.out));
        outcome.head_bytes = response.text_len();
        outcome.headers = response.headers.len();
    }

    fn put_body(&mut self, body: Vec<Bytes>, outcome: &mut Outcome) {
        for piece in body {
            outcome.bytes += piece.len() as u64;
            self.codec.encode_data(piece, &mut self.wire.out);
        }
    }

    /// Sends a file: with `sendfile` where the protocol can carry unframed
    /// bytes (`Ok(true)`), otherwise read through the codec's framing.
    async fn send_file(
        &mut self,
        file: std::fs::File,
        offset: u64,
        len: u64,
    ) -> std::io::Result<bool> {
        if let Some((prefix, suffix)) = self.codec.raw_data_framing(len) {
            self.wire.out.put_bytes(prefix);
            self.wire.send_file(&file, offset, len).await?;
            self.wire.out.put_bytes(suffix);
            return Ok(true);
        }
        let mut file = tokio::fs::File::from_std(file);
        tokio::io::AsyncSeekExt::seek(&mut file, std::io::SeekFrom::Start(offset)).await?;
        let mut left = len;
        while left > 0 {
            let mut chunk = BytesMut::with_capacity(left.min(64 * 1024) as usize);
            let n = file.read_buf(&mut chunk).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            chunk.truncate(n.min(left as usize));
            left -= chunk.len() as u64;
            self.codec.encode_data(chunk.freeze(), &mut self.wire.out);
            self.wire.flush().await?;
        }
        Ok(false)
    }
}
