//! What the core and a responder say to each other about one request.
//!
//! The core hands a [`Responder`] a [`Request`] (its CGI variables and
//! where its body comes from) and reads the answer as an ordered stream of
//! [`Event`]s from [`Replies`]: body reads, the response head, body
//! pieces, a file to `sendfile`, the end. A responder may answer at once
//! on the calling thread (a static file, a redirect, a WSGI call run
//! inline) or hand the request to threads of its own (the Python pool);
//! either way the core writes what comes back at the client's pace.

use crate::{Environ, LentBody, ResponseHead, SpoolFile};
use bytes::Bytes;
use std::collections::VecDeque;
use std::sync::Arc;

/// One request handed to a responder.
#[derive(Debug)]
pub struct Request {
    /// The request's CGI variables.
    pub environ: Environ,
    /// Its body.
    pub body: BodySource,
}

/// Where the request body comes from.
#[derive(Debug)]
pub enum BodySource {
    /// The core read the whole body before handing the request over, so a
    /// slow client never holds a responder's thread.
    Buffered(Bytes),
    /// As [`BodySource::Buffered`], the body as the pieces it was read in
    /// (a framed body — FastCGI records, HTTP chunks — or one that came
    /// slowly), in order: the responder copies them once, where it wants
    /// them, instead of the core joining them first.
    Pieces(Vec<Bytes>),
    /// The core read the whole body into memory the responder lent it
    /// ([`Responder::lend_body`]): every byte of it is written.
    Lent(LentBody),
    /// The core read the body, longer than `post-buffering`, into an
    /// unlinked temporary file (as uWSGI does), positioned at its start:
    /// a slow client never holds a responder's thread, nor much memory.
    /// A body longer than `post-buffering-disk` is kept there only so far:
    /// its rest streams as [`BodySource::Streamed`] does.
    Spooled {
        /// The body, or its first `len` bytes, at the start of the file.
        file: SpoolFile,
        /// How many bytes the file holds.
        len: u64,
        /// The rest of a body longer than the file, read on demand.
        rest: Option<flume::Receiver<BodyMsg>>,
    },
    /// The body is read on demand (`post-buffering = 0`): the responder sends
    /// [`Event::ReadBody`] and waits for one [`BodyMsg`] here.
    Streamed(flume::Receiver<BodyMsg>),
}

/// The core's answer to [`Event::ReadBody`].
#[derive(Debug)]
pub enum BodyMsg {
    /// More body bytes, in the pieces they were read in (at least one,
    /// none empty): all the core had at hand, so that one round trip
    /// answers as many of the app's reads as it can.
    Data(Vec<Bytes>),
    /// The body is complete.
    Eof,
    /// The body cannot be completed (client gone, timeout, framing error).
    Failed(String),
}

/// What a responder tells the core, in order, for one request.
#[derive(Debug)]
pub enum Event {
    /// The responder needs more body bytes; the core answers with one
    /// [`BodyMsg`].
    ReadBody,
    /// The response head, with the first body pieces; more follow.
    Head {
        /// The validated head.
        head: ResponseHead,
        /// Body pieces to send right after it.
        body: Vec<Bytes>,
    },
    /// The whole response: head, body, and its end.
    Whole {
        /// The validated head.
        head: ResponseHead,
        /// The whole body.
        body: Vec<Bytes>,
        /// False when the body is shorter than its `Content-Length`, or was
        /// cut: the connection must not be reused.
        complete: bool,
    },
    /// A piece of body after the head.
    Data(Bytes),
    /// Send `len` bytes of this file from `offset`; the core uses
    /// `sendfile` where the protocol allows.
    File {
        /// An open file (the responder's own descriptor, or a duplicate).
        file: std::fs::File,
        /// Where to start.
        offset: u64,
        /// How many bytes.
        len: u64,
    },
    /// Text the app wrote to its error stream while serving this request,
    /// for peers whose protocol carries it (FastCGI `STDERR`).
    Stderr(Bytes),
    /// The response is over.
    End {
        /// See [`Event::Whole::complete`].
        complete: bool,
    },
}

impl Event {
    /// A complete response with `body` in one piece, its `Content-Length`
    /// set unless the status forbids a body.
    pub fn whole(mut head: ResponseHead, body: Bytes) -> Event {
        if !head.forbids_body() && head.content_length.is_none() {
            head.set_content_length(body.len() as u64);
        }
        let body = if body.is_empty() || head.forbids_body() { Vec::new() } else { vec![body] };
        Event::Whole { head, body, complete: true }
    }
}

/// Response events waiting between a responder's thread and the
/// connection: a full queue makes the responder wait for a slow client.
pub const EVENT_QUEUE: usize = 8;

/// Changes to every response head a layer in front of the responder asks
/// for (`add-header`, `del-header`, a route's `addheader:`/`delheader:`).
/// Built from values known to be valid (see [`crate::check_header`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HeadEdit {
    /// Header names removed, in any case. `Content-Length` frames the
    /// response and is never removed.
    pub remove: Vec<Bytes>,
    /// Headers added, after the responder's.
    pub add: Vec<(Bytes, Bytes)>,
}

impl HeadEdit {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.add.is_empty()
    }

    /// Applies the edit to `head`.
    pub fn apply(&self, head: &mut ResponseHead) {
        if !self.remove.is_empty() {
            head.headers.retain(|(name, _)| {
                name.eq_ignore_ascii_case(b"content-length")
                    || !self.remove.iter().any(|gone| gone.eq_ignore_ascii_case(name))
            });
        }
        head.headers.extend(self.add.iter().cloned());
    }
}

/// Where a request's response events come from, in order: events a
/// responder produced before it returned (answered at once, or a call run
/// inline), then a channel its own threads feed.
#[derive(Debug, Default)]
pub struct Replies {
    ready: VecDeque<Event>,
    /// Complete: whoever sent into it has finished.
    first: Option<flume::Receiver<Event>>,
    rest: Option<flume::Receiver<Event>>,
    /// Applied to the response head as it passes.
    edit: Option<Arc<HeadEdit>>,
    /// The request is not logged (a route's `donotlog:`).
    quiet: bool,
    /// Who answered, for the counters.
    answerer: Answerer,
}

/// Who answered a request, for the stats (uWSGI's `static_requests`,
/// `routed_requests`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Answerer {
    /// The app (or whatever the responder in front passed it to).
    #[default]
    App,
    /// A static file.
    Static,
    /// A route rule's own answer (a redirect, a status, a `401`).
    Route,
}

/// The responder stopped without ending the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unanswered;

impl Replies {
    /// A bounded channel ([`EVENT_QUEUE`]) for a responder's thread to
    /// send the response into, and the replies reading it.
    pub fn channel() -> (flume::Sender<Event>, Replies) {
        let (tx, rx) = flume::bounded(EVENT_QUEUE);
        (tx, Replies { rest: Some(rx), ..Replies::default() })
    }

    /// A response already complete.
    pub fn ready(events: impl IntoIterator<Item = Event>) -> Replies {
        Replies { ready: events.into_iter().collect(), ..Replies::default() }
    }

    /// What `first` holds (its senders are gone), then what arrives on `rest`.
    pub fn then(first: flume::Receiver<Event>, rest: flume::Receiver<Event>) -> Replies {
        Replies { first: Some(first), rest: Some(rest), ..Replies::default() }
    }

    /// What `events` holds; its senders are gone.
    pub fn drained(events: flume::Receiver<Event>) -> Replies {
        Replies { first: Some(events), ..Replies::default() }
    }

    /// These replies with `edit` applied to the response head.
    pub fn edited(mut self, edit: Arc<HeadEdit>) -> Replies {
        self.edit = Some(edit);
        self
    }

    /// These replies for a request that is not logged.
    pub fn quiet(mut self) -> Replies {
        self.quiet = true;
        self
    }

    /// Whether the request is logged.
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// These replies, answered by `answerer`.
    pub fn answered_by(mut self, answerer: Answerer) -> Replies {
        self.answerer = answerer;
        self
    }

    pub fn answerer(&self) -> Answerer {
        self.answerer
    }

    /// The next event. Cancel-safe (for `select!`): an event is never lost.
    pub async fn recv(&mut self) -> Result<Event, Unanswered> {
        let mut event = self.next().await?;
        if let (Some(edit), Event::Head { head, .. } | Event::Whole { head, .. }) =
            (&self.edit, &mut event)
        {
            edit.apply(head);
        }
        Ok(event)
    }

    async fn next(&mut self) -> Result<Event, Unanswered> {
        if let Some(event) = self.ready.pop_front() {
            return Ok(event);
        }
        if let Some(first) = &self.first {
            match first.try_recv() {
                Ok(event) => return Ok(event),
                Err(_) => self.first = None,
            }
        }
        match &self.rest {
            Some(rest) => rest.recv_async().await.map_err(|_| Unanswered),
            None => Err(Unanswered),
        }
    }

    /// Whether no event is waiting now.
    pub fn is_empty(&self) -> bool {
        self.ready.is_empty()
            && self.first.as_ref().is_none_or(flume::Receiver::is_empty)
            && self.rest.as_ref().is_none_or(flume::Receiver::is_empty)
    }
}

/// Something that answers requests: the WSGI app, a static file tree, a
/// route's action. The core calls it once the request's head (and, within
/// `post-buffering`, its body) has arrived, and writes what it answers.
pub trait Responder: Send + Sync + 'static {
    /// Starts answering `request`. The future waits only for room to
    /// queue the request with the responder's threads, never for the
    /// response itself. Replies that end without [`Event::End`] (or
    /// [`Event::Whole`]) close the connection unanswered.
    fn respond(&self, request: Request) -> impl Future<Output = Replies> + Send;

    /// Whether `respond` may run application code on the calling thread
    /// for a while (a WSGI call inline): the core's thread then cannot see
    /// signals until it returns.
    fn runs_inline(&self) -> bool {
        false
    }

    /// Memory for a body of `size` bytes that the responder would take as
    /// it is ([`BodySource::Lent`]), if it has any to lend: asked for a
    /// body the core is about to read whole, from a client that keeps up.
    /// The core waits a few milliseconds for it, then reads on into a
    /// buffer of its own while the future is pending, and copies what it
    /// read into the memory when it comes; it drops the memory unused if
    /// the body does not all come.
    fn lend_body(&self, size: usize) -> impl Future<Output = Option<LentBody>> + Send {
        let _ = size;
        std::future::ready(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn poll_now<F: Future>(future: F) -> Option<F::Output> {
        let mut future = std::pin::pin!(future);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        match future.as_mut().poll(&mut cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        }
    }

    fn data(text: &'static str) -> Event {
        Event::Data(Bytes::from_static(text.as_bytes()))
    }

    fn text(event: Option<Result<Event, Unanswered>>) -> Option<Bytes> {
        match event {
            Some(Ok(Event::Data(bytes))) => Some(bytes),
            _ => None,
        }
    }

    #[test]
    fn ready_then_first_then_rest_in_order() {
        let (first_tx, first) = flume::unbounded();
        first_tx.send(data("b")).ok();
        drop(first_tx);
        let (rest_tx, rest) = flume::bounded(1);
        let mut replies = Replies::then(first, rest);
        replies.ready.push_back(data("a"));
        assert!(!replies.is_empty());
        assert_eq!(text(poll_now(replies.recv())).as_deref(), Some(&b"a"[..]));
        assert_eq!(text(poll_now(replies.recv())).as_deref(), Some(&b"b"[..]));
        assert!(replies.is_empty());
        assert!(poll_now(replies.recv()).is_none(), "waits for the rest");
        rest_tx.send(data("c")).ok();
        assert_eq!(text(poll_now(replies.recv())).as_deref(), Some(&b"c"[..]));
        drop(rest_tx);
        assert!(matches!(poll_now(replies.recv()), Some(Err(Unanswered))));
    }

    #[test]
    fn ready_replies_end_after_their_events() {
        let mut replies = Replies::ready([data("x")]);
        assert!(text(poll_now(replies.recv())).is_some());
        assert!(matches!(poll_now(replies.recv()), Some(Err(Unanswered))));
        let (tx, mut replies) = Replies::channel();
        for _ in 0..EVENT_QUEUE {
            assert!(tx.try_send(data("y")).is_ok());
        }
        assert!(tx.try_send(data("z")).is_err(), "bounded at EVENT_QUEUE");
        assert!(text(poll_now(replies.recv())).is_some());
    }

    #[test]
    fn an_edit_changes_the_head_as_it_passes_and_keeps_the_framing() {
        let mut head = ResponseHead::new(200);
        head.push_header(Bytes::from_static(b"Server"), Bytes::from_static(b"app"));
        head.push_header(Bytes::from_static(b"X-Keep"), Bytes::from_static(b"1"));
        let edit = HeadEdit {
            remove: vec![Bytes::from_static(b"server"), Bytes::from_static(b"Content-Length")],
            add: vec![(Bytes::from_static(b"X-Frame-Options"), Bytes::from_static(b"DENY"))],
        };
        let replies =
            Replies::ready([Event::whole(head, Bytes::from_static(b"hi")), data("not a head")]);
        let mut replies = replies.edited(Arc::new(edit)).quiet();
        assert!(replies.is_quiet());
        let Some(Ok(Event::Whole { head, .. })) = poll_now(replies.recv()) else {
            panic!("not whole");
        };
        let names: Vec<&[u8]> = head.headers.iter().map(|(n, _)| &n[..]).collect();
        assert_eq!(names, [&b"X-Keep"[..], b"Content-Length", b"X-Frame-Options"]);
        assert_eq!(head.content_length, Some(2));
        assert!(text(poll_now(replies.recv())).is_some());
    }

    #[test]
    fn a_whole_response_gets_its_length_unless_its_status_forbids_a_body() {
        let Event::Whole { head, body, complete } =
            Event::whole(ResponseHead::new(200), Bytes::from_static(b"hello"))
        else {
            panic!("not whole");
        };
        assert!(complete);
        assert_eq!(head.content_length, Some(5));
        assert_eq!(body.len(), 1);
        let Event::Whole { head, body, .. } = Event::whole(ResponseHead::new(304), Bytes::new())
        else {
            panic!("not whole");
        };
        assert_eq!(head.content_length, None);
        assert!(body.is_empty());
    }
}
