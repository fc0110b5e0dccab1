//! One budget for the bytes of partly received messages, over every stream of every
//! connection.
//!
//! tonic buffers a message until all of it has arrived. A client that opens many streams
//! and sends most of a large message on each, then stalls, would make the server hold all
//! of them: 50 streams of 15 MB on one connection held 720 MiB, indefinitely. Every request
//! body is wrapped in a [`BudgetedBody`] that follows the gRPC framing (a 5-byte prefix
//! with the length, then the message) and holds one permit per byte of the message still
//! arriving:
//!
//! - When the budget is spent, further bytes wait (the stream's flow-control window is not
//!   released, so the sender is held back) — at most until the message's deadline.
//! - Each message must arrive in full within the message timeout of its first byte; a
//!   message that does not, or that waited for the budget that long, fails the call with
//!   RESOURCE_EXHAUSTED and its bytes are released.
//! - A complete message's permits are released as tonic takes it; what the handlers keep
//!   is bounded by the session limit and the message size limit.
//! - A message whose prefix declares more than the message size limit fails the call at
//!   once with RESOURCE_EXHAUSTED naming that limit, before any of it is buffered.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;
use tonic::Status;

/// The shared budget and the time a message may take to arrive.
#[derive(Debug)]
pub(crate) struct MessageBudget {
    permits: Arc<Semaphore>,
    bytes: usize,
    timeout: Duration,
    /// The largest message a client may send (`--max-message-bytes`).
    max_message: u64,
}

impl MessageBudget {
    /// A budget of `bytes` (at most `Semaphore::MAX_PERMITS`) for messages of at most
    /// `max_message` bytes that must arrive within `timeout`.
    pub(crate) fn new(bytes: usize, timeout: Duration, max_message: usize) -> Arc<Self> {
        let bytes = bytes.clamp(1, Semaphore::MAX_PERMITS);
        Arc::new(Self {
            permits: Arc::new(Semaphore::new(bytes)),
            bytes,
            timeout,
            max_message: max_message as u64,
        })
    }

    /// Wraps one request body.
    pub(crate) fn wrap(self: &Arc<Self>, body: tonic::body::Body) -> tonic::body::Body {
        tonic::body::Body::new(BudgetedBody {
            inner: body,
            budget: Arc::clone(self),
            framing: Framing::default(),
            held: None,
            held_bytes: 0,
            waiting: None,
            deadline: None,
        })
    }

    /// Bytes of partly received messages held now.
    #[cfg(test)]
    fn in_use(&self) -> usize {
        self.bytes - self.permits.available_permits()
    }

    fn exhausted(&self, waited: bool) -> Status {
        let secs = self.timeout.as_secs_f64();
        if waited {
            Status::resource_exhausted(format!(
                "the server is holding its limit of {} MiB of partly received messages; this message could not be received within {secs} s (--max-pending-message-bytes, --message-timeout-secs)",
                self.bytes >> 20
            ))
        } else {
            Status::resource_exhausted(format!(
                "a message did not arrive in full within {secs} s of its first byte (--message-timeout-secs)"
            ))
        }
    }
}

/// Where the byte stream is in the gRPC framing: each message is a 1-byte compression
/// flag, a 4-byte big-endian length, then that many bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Framing {
    /// Prefix bytes of the current message seen (0..=5).
    prefix_seen: usize,
    /// The length being read from the prefix.
    length: u32,
    /// Message bytes still to come once the prefix is complete.
    remaining: u64,
    /// Bytes of the current, incomplete message seen so far (prefix included).
    progress: u64,
}

/// What one chunk did to the framing.
#[derive(Debug, PartialEq, Eq)]
struct Advance {
    /// A message that was incomplete before the chunk completed in it.
    completed_earlier: bool,
    /// Bytes of the message left incomplete after the chunk (0: none is).
    incomplete: u64,
    /// The largest length a prefix completed in the chunk declared.
    largest_declared: u32,
}

impl Framing {
    fn in_message(&self) -> bool {
        self.prefix_seen > 0 || self.remaining > 0
    }

    fn advance(&mut self, mut chunk: &[u8]) -> Advance {
        let mut completed_earlier = false;
        let mut largest_declared = 0;
        let was_in_message = self.in_message();
        let mut first = true;
        while !chunk.is_empty() {
            if self.remaining == 0 {
                // In (or at the start of) a prefix.
                let take = (5 - self.prefix_seen).min(chunk.len());
                for &b in &chunk[..take] {
                    if self.prefix_seen >= 1 {
                        self.length = (self.length << 8) | u32::from(b);
                    }
                    self.prefix_seen += 1;
                }
                self.progress += take as u64;
                chunk = &chunk[take..];
                if self.prefix_seen == 5 {
                    largest_declared = largest_declared.max(self.length);
                    self.remaining = u64::from(self.length);
                    self.prefix_seen = 0;
                    self.length = 0;
                    if self.remaining == 0 {
                        completed_earlier |= first && was_in_message;
                        first = false;
                        self.progress = 0;
                    }
                }
            } else {
                let take = (self.remaining.min(chunk.len() as u64)) as usize;
                self.remaining -= take as u64;
                self.progress += take as u64;
                chunk = &chunk[take..];
                if self.remaining == 0 {
                    completed_earlier |= first && was_in_message;
                    first = false;
                    self.progress = 0;
                }
            }
        }
        Advance {
            completed_earlier,
            incomplete: if self.in_message() { self.progress } else { 0 },
            largest_declared,
        }
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// A request body that holds budget for the bytes of its incomplete message.
struct BudgetedBody {
    inner: tonic::body::Body,
    budget: Arc<MessageBudget>,
    framing: Framing,
    /// Permits for the bytes of the incomplete message.
    held: Option<OwnedSemaphorePermit>,
    held_bytes: u64,
    /// A chunk waiting for budget, and the acquisition it waits on.
    waiting: Option<(Bytes, Acquire)>,
    /// When the incomplete message must be complete.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl BudgetedBody {
    fn hold(&mut self, permit: OwnedSemaphorePermit, bytes: u64) {
        match &mut self.held {
            Some(held) => held.merge(permit),
            None => self.held = Some(permit),
        }
        self.held_bytes += bytes;
    }

    fn release(&mut self) {
        self.held = None;
        self.held_bytes = 0;
    }

    /// Accounts for a data chunk: returns the permits it still needs (0: none), or the
    /// error for a message declared larger than the limit.
    fn account(&mut self, chunk: &[u8]) -> Result<u64, Status> {
        let advance = self.framing.advance(chunk);
        if u64::from(advance.largest_declared) > self.budget.max_message {
            self.release();
            self.deadline = None;
            return Err(crate::service::too_large(
                "a request message",
                advance.largest_declared as usize,
                self.budget.max_message as usize,
            ));
        }
        if advance.completed_earlier || advance.incomplete == 0 {
            self.release();
        }
        if advance.incomplete == 0 {
            self.deadline = None;
            return Ok(0);
        }
        if advance.completed_earlier || self.deadline.is_none() {
            // A new message has started: its own time to arrive.
            self.deadline = Some(Box::pin(tokio::time::sleep(self.budget.timeout)));
        }
        Ok(advance.incomplete.saturating_sub(self.held_bytes))
    }
}

impl Body for BudgetedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        loop {
            if let Some((_, acquire)) = &mut this.waiting {
                match acquire.as_mut().poll(cx) {
                    Poll::Ready(Ok(permit)) => {
                        let (chunk, _) = this.waiting.take().expect("waiting");
                        let bytes = permit.num_permits() as u64;
                        this.hold(permit, bytes);
                        return Poll::Ready(Some(Ok(Frame::data(chunk))));
                    }
                    Poll::Ready(Err(_)) => {
                        return Poll::Ready(Some(Err(this.budget.exhausted(true))))
                    }
                    Poll::Pending => {
                        if let Some(deadline) = &mut this.deadline {
                            if deadline.as_mut().poll(cx).is_ready() {
                                this.waiting = None;
                                this.release();
                                return Poll::Ready(Some(Err(this.budget.exhausted(true))));
                            }
                        }
                        return Poll::Pending;
                    }
                }
            }
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if let Some(deadline) = &mut this.deadline {
                        if deadline.as_mut().poll(cx).is_ready() {
                            this.release();
                            this.deadline = None;
                            return Poll::Ready(Some(Err(this.budget.exhausted(false))));
                        }
                    }
                    return Poll::Pending;
                }
                Poll::Ready(None) => {
                    this.release();
                    this.deadline = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Some(Err(e))) => {
                    this.release();
                    return Poll::Ready(Some(Err(e)));
                }
                Poll::Ready(Some(Ok(frame))) => {
                    let frame = match frame.into_data() {
                        Ok(chunk) => chunk,
                        Err(frame) => return Poll::Ready(Some(Ok(frame))),
                    };
                    let need = match this.account(&frame) {
                        Ok(need) => need,
                        Err(status) => return Poll::Ready(Some(Err(status))),
                    };
                    if this.deadline.as_ref().is_some_and(|d| d.is_elapsed()) {
                        // A message trickling in byte by byte runs out of time too.
                        this.release();
                        this.deadline = None;
                        return Poll::Ready(Some(Err(this.budget.exhausted(false))));
                    }
                    if need == 0 {
                        return Poll::Ready(Some(Ok(Frame::data(frame))));
                    }
                    // A chunk is one HTTP/2 DATA frame, far below the budget; a budget
                    // smaller than one is still honoured as all of it.
                    let need = need.min(this.budget.bytes as u64) as u32;
                    match Arc::clone(&this.budget.permits).try_acquire_many_owned(need) {
                        Ok(permit) => {
                            this.hold(permit, u64::from(need));
                            return Poll::Ready(Some(Ok(Frame::data(frame))));
                        }
                        Err(_) => {
                            let permits = Arc::clone(&this.budget.permits);
                            this.waiting =
                                Some((frame, Box::pin(permits.acquire_many_owned(need))));
                            // Poll the acquisition (and the deadline) at the top.
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.waiting.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(len: u32) -> Vec<u8> {
        let mut bytes = vec![0u8];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7u8, len as usize));
        bytes
    }

    #[test]
    fn the_framing_follows_messages_across_chunk_boundaries() {
        let mut framing = Framing::default();
        let message = framed(10);
        assert_eq!(
            framing.advance(&message[..3]),
            Advance {
                completed_earlier: false,
                incomplete: 3,
                largest_declared: 0,
            }
        );
        assert_eq!(
            framing.advance(&message[3..9]),
            Advance {
                completed_earlier: false,
                incomplete: 9,
                largest_declared: 10,
            }
        );
        // The rest of the first message, a whole second one and 2 bytes of a third.
        let mut rest = message[9..].to_vec();
        rest.extend(framed(4));
        rest.extend(&framed(100)[..2]);
        assert_eq!(
            framing.advance(&rest),
            Advance {
                completed_earlier: true,
                incomplete: 2,
                largest_declared: 4,
            }
        );
        // Empty messages complete with their prefix.
        let mut framing = Framing::default();
        assert_eq!(
            framing.advance(&framed(0)),
            Advance {
                completed_earlier: false,
                incomplete: 0,
                largest_declared: 0,
            }
        );
        assert!(!framing.in_message());
    }

    struct Chunks(std::collections::VecDeque<Bytes>, bool);

    impl Body for Chunks {
        type Data = Bytes;
        type Error = Status;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
            match self.0.pop_front() {
                Some(chunk) => Poll::Ready(Some(Ok(Frame::data(chunk)))),
                // `stall`: the client stops sending without ending the stream.
                None if self.1 => Poll::Pending,
                None => Poll::Ready(None),
            }
        }
    }

    fn body(chunks: Vec<Vec<u8>>, stall: bool) -> tonic::body::Body {
        tonic::body::Body::new(Chunks(chunks.into_iter().map(Bytes::from).collect(), stall))
    }

    async fn next(body: &mut tonic::body::Body) -> Option<Result<Bytes, Status>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx))
            .await
            .map(|frame| frame.map(|f| f.into_data().expect("data")))
    }

    #[tokio::test]
    async fn a_partly_sent_message_holds_its_bytes_until_it_times_out() {
        let timeout = Duration::from_millis(200);
        let budget = MessageBudget::new(900, timeout, 1 << 20);
        let message = framed(600);
        let mut stalled = budget.wrap(body(vec![message[..400].to_vec()], true));
        assert_eq!(next(&mut stalled).await.unwrap().unwrap().len(), 400);
        assert_eq!(budget.in_use(), 400);
        // A second stream may take the rest of the budget, then waits.
        let mut second = budget.wrap(body(vec![message[..600].to_vec()], true));
        let waited = tokio::time::Instant::now();
        let err = next(&mut second).await.unwrap().unwrap_err();
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(
            err.message().contains("holding its limit"),
            "{}",
            err.message()
        );
        assert!(waited.elapsed() >= timeout, "{:?}", waited.elapsed());
        // The stalled one ran out of time as well and gave its bytes back.
        let err = next(&mut stalled).await.unwrap().unwrap_err();
        assert!(
            err.message()
                .starts_with("a message did not arrive in full within 0.2 s"),
            "{}",
            err.message()
        );
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn complete_messages_release_their_bytes_and_waiters_proceed() {
        let budget = MessageBudget::new(1000, Duration::from_secs(30), 1 << 20);
        let message = framed(700);
        let mut first = budget.wrap(body(
            vec![message[..500].to_vec(), message[500..].to_vec()],
            false,
        ));
        assert_eq!(next(&mut first).await.unwrap().unwrap().len(), 500);
        let mut second = budget.wrap(body(vec![message[..600].to_vec()], false));
        let waiting = tokio::spawn(async move {
            let got = next(&mut second).await.map(|r| r.map(|b| b.len()));
            (second, got)
        });
        tokio::task::yield_now().await;
        assert!(
            !waiting.is_finished(),
            "the budget is spent: the chunk waits"
        );
        // The first message completes: its bytes go back and the second proceeds.
        assert_eq!(next(&mut first).await.unwrap().unwrap().len(), 205);
        let (_second, got) = waiting.await.unwrap();
        assert_eq!(got.unwrap().unwrap(), 600);
        assert!(next(&mut first).await.is_none());
        drop(first);
        assert_eq!(budget.in_use(), 600);
    }

    #[tokio::test]
    async fn a_dropped_stream_gives_its_bytes_back() {
        let budget = MessageBudget::new(1000, Duration::from_secs(30), 1 << 20);
        let mut stalled = budget.wrap(body(vec![framed(900)[..800].to_vec()], true));
        next(&mut stalled).await.unwrap().unwrap();
        assert_eq!(budget.in_use(), 800);
        drop(stalled);
        assert_eq!(budget.in_use(), 0);
    }
}
