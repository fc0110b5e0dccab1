//! [`PipelineSession`]: the handle of one running streaming session.

use super::{Item, NodeMetricsSnapshot, Origin, SessionShared};
use crate::error::Error;
use crate::transport::{StreamSession, TransportData};
use crate::Result;
use async_trait::async_trait;
use std::sync::Arc;
use tokio::sync::{mpsc, Mutex};

/// A live pipeline session, created by
/// [`PipelineRunner::create_stream_session`](crate::transport::PipelineRunner::create_stream_session).
///
/// All methods take `&self`, so one task can send while another receives (wrap the session
/// in an `Arc` to share it).
///
/// - [`send_input`](Self::send_input) feeds every source node (waits when the pipeline is
///   backpressured).
/// - [`recv_output`](Self::recv_output) returns the next output, waiting while inputs
///   already sent are still being processed, and `Ok(None)` once the pipeline is quiescent
///   (or, after [`close`](Self::close), once every node has flushed and finished).
/// - [`next_output`](Self::next_output) waits for the next output however long it takes
///   and returns `Ok(None)` only when the session has ended — for clients that forward
///   outputs as they come.
/// - [`close`](Self::close) ends the input: every node drains and flushes; what the flush
///   produces stays receivable. Idempotent.
///
/// A node failure ends the session: outputs produced before it are still delivered, then
/// `recv_output` / `next_output` / `send_input` return the error naming the node.
/// Dropping the handle cancels the session's tasks.
pub struct PipelineSession {
    shared: Arc<SessionShared>,
    outputs: Mutex<mpsc::Receiver<TransportData>>,
}

impl std::fmt::Debug for PipelineSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineSession")
            .field("session_id", &self.shared.session_id)
            .field("active", &self.is_active())
            .finish_non_exhaustive()
    }
}

enum Wait {
    /// Return `None` when the graph is quiescent (README semantics).
    UntilQuiescent,
    /// Return `None` only when the session has ended.
    UntilEnded,
}

impl PipelineSession {
    pub(crate) fn new(shared: Arc<SessionShared>, outputs: mpsc::Receiver<TransportData>) -> Self {
        Self {
            shared,
            outputs: Mutex::new(outputs),
        }
    }

    pub(crate) fn shared_weak(&self) -> std::sync::Weak<SessionShared> {
        Arc::downgrade(&self.shared)
    }

    /// The session's unique id.
    pub fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// True until the session is closed, has failed or has finished.
    pub fn is_active(&self) -> bool {
        let state = self.shared.state();
        !(state.input_closed || state.finished || state.error.is_some())
    }

    /// Sends one input to every source node of the pipeline.
    ///
    /// Errors when the session is closed or has failed (the failure names the node).
    pub async fn send_input(&self, mut input: TransportData) -> Result<()> {
        let senders = {
            let state = self.shared.state();
            if let Some(error) = &state.error {
                return Err(error.clone());
            }
            let inputs = self.shared.inputs.lock().unwrap_or_else(|p| p.into_inner());
            match inputs.as_ref() {
                Some(senders) => senders.clone(),
                None => {
                    return Err(Error::SessionClosed {
                        session_id: self.shared.session_id.clone(),
                        reason: "input was closed with close()".to_owned(),
                    })
                }
            }
        };
        let origin = Origin::of(&mut input);
        let data = input.data;
        self.shared.input_sent();
        let Some((last, others)) = senders.split_last() else {
            return Ok(());
        };
        for sender in others {
            self.shared.add_pending(1);
            let item = Item {
                data: data.clone(),
                origin: origin.clone(),
            };
            if !super::send_or_wait(sender, item).await {
                return Err(self.ended_error());
            }
        }
        self.shared.add_pending(1);
        if !super::send_or_wait(last, Item { data, origin }).await {
            return Err(self.ended_error());
        }
        Ok(())
    }

    fn ended_error(&self) -> Error {
        match &self.shared.state().error {
            Some(error) => error.clone(),
            None => Error::SessionClosed {
                session_id: self.shared.session_id.clone(),
                reason: "the pipeline has ended".to_owned(),
            },
        }
    }

    /// The next output; `Ok(None)` when every input sent so far has been fully processed
    /// and its outputs taken, or — after `close()` — when the session has finished.
    pub async fn recv_output(&self) -> Result<Option<TransportData>> {
        self.receive(Wait::UntilQuiescent).await
    }

    /// The next output, waiting as long as the session runs; `Ok(None)` once it has
    /// ended (closed and drained) and every output was taken.
    pub async fn next_output(&self) -> Result<Option<TransportData>> {
        self.receive(Wait::UntilEnded).await
    }

    async fn receive(&self, wait: Wait) -> Result<Option<TransportData>> {
        let mut outputs = self.outputs.lock().await;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            if let Ok(item) = outputs.try_recv() {
                self.shared.release_pending();
                return Ok(Some(item));
            }
            let (error, finished, input_closed) = {
                let state = self.shared.state();
                (state.error.clone(), state.finished, state.input_closed)
            };
            if let Some(error) = error {
                return Err(error);
            }
            if finished {
                // Outputs sent just before the last task finished.
                if let Ok(item) = outputs.try_recv() {
                    self.shared.release_pending();
                    return Ok(Some(item));
                }
                return Ok(None);
            }
            if matches!(wait, Wait::UntilQuiescent)
                && !input_closed
                && self
                    .shared
                    .pending
                    .load(std::sync::atomic::Ordering::Acquire)
                    == 0
            {
                return Ok(None);
            }
            notified.await;
        }
    }

    /// Ends the input. Every node drains and flushes; flushed outputs stay receivable
    /// until `recv_output` returns `Ok(None)`. Calling it again does nothing.
    pub async fn close(&self) -> Result<()> {
        self.shared.close_input();
        Ok(())
    }

    /// Per-node metrics of this session so far.
    pub fn metrics(&self) -> Vec<NodeMetricsSnapshot> {
        self.shared.metrics_snapshot()
    }

    /// Stops the session now: the input ends and every node task is cancelled (what a
    /// dropped session does too). Outputs not yet taken are dropped.
    pub fn cancel(&self) {
        self.shared.close_input();
        let _ = self.shared.cancel.send(true);
    }

    /// Waits until the session has finished and released everything: every node task has
    /// ended and run its cleanup (worker processes stopped, shared memory removed). Call it
    /// after `close()`, after a failure, or after cancelling, before the process exits.
    pub async fn wait_finished(&self) {
        self.shared.wait_finished().await
    }
}

impl Drop for PipelineSession {
    fn drop(&mut self) {
        self.cancel();
    }
}

#[async_trait]
impl StreamSession for PipelineSession {
    fn session_id(&self) -> &str {
        PipelineSession::session_id(self)
    }

    async fn send_input(&self, input: TransportData) -> Result<()> {
        PipelineSession::send_input(self, input).await
    }

    async fn recv_output(&self) -> Result<Option<TransportData>> {
        PipelineSession::recv_output(self).await
    }

    async fn next_output(&self) -> Result<Option<TransportData>> {
        PipelineSession::next_output(self).await
    }

    async fn close(&self) -> Result<()> {
        PipelineSession::close(self).await
    }

    fn cancel(&self) {
        PipelineSession::cancel(self)
    }

    fn is_active(&self) -> bool {
        PipelineSession::is_active(self)
    }

    fn metrics(&self) -> Vec<NodeMetricsSnapshot> {
        PipelineSession::metrics(self)
    }

    async fn wait_finished(&self) {
        PipelineSession::wait_finished(self).await
    }
}
