//! One node's task: receive, process, forward; flush at end of input; report failures.

use super::metrics::NodeMetrics;
use super::{Item, SessionShared};
use crate::data::RuntimeData;
use crate::error::Error;
use crate::nodes::{NodeExecutor, Outputs};
use crate::runtime::now_nanos;
use crate::Result;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::Instrument;

pub(crate) struct NodeTask {
    pub(crate) node_id: Arc<str>,
    pub(crate) node_type: String,
    pub(crate) executor: Box<dyn NodeExecutor>,
    pub(crate) input: mpsc::Receiver<Item>,
    /// Where the node's results go; connected to its downstream edges (or the client).
    pub(crate) outputs: Outputs,
    pub(crate) shared: Arc<SessionShared>,
    pub(crate) metrics: Arc<NodeMetrics>,
    pub(crate) cancel: watch::Receiver<bool>,
}

enum Step {
    Input(Item),
    EndOfInput,
    Cancelled,
}

/// Resolves once the session is cancelled (or its handle is gone).
async fn cancelled(cancel: &mut watch::Receiver<bool>) {
    let _ = cancel.wait_for(|c| *c).await;
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_owned()
    }
}

impl NodeTask {
    pub(crate) async fn run(self) {
        let span = tracing::debug_span!(
            "node",
            session_id = %self.shared.session_id,
            node_id = %self.node_id,
            node_type = %self.node_type,
        );
        self.run_inner().instrument(span).await
    }

    async fn run_inner(mut self) {
        let mut outputs = std::mem::take(&mut self.outputs);
        loop {
            let step = tokio::select! {
                biased;
                _ = cancelled(&mut self.cancel) => Step::Cancelled,
                item = self.input.recv() => match item {
                    Some(item) => Step::Input(item),
                    None => Step::EndOfInput,
                },
            };
            match step {
                Step::Cancelled => break,
                Step::Input(item) => {
                    let started = now_nanos();
                    // Its outputs carry its origin; the flush carries the last input's.
                    if let Some(forwarder) = outputs.forwarder_mut() {
                        forwarder.origin = item.origin;
                    }
                    let result = if self.executor.as_sync_node().is_some() {
                        // A synchronous node's call ends in the poll that starts it: there
                        // is nothing to cancel midway, only before.
                        if *self.cancel.borrow() {
                            break;
                        }
                        self.process(item.data, &mut outputs).await
                    } else {
                        let mut cancel = self.cancel.clone();
                        tokio::select! {
                            biased;
                            _ = cancelled(&mut cancel) => break,
                            r = self.process(item.data, &mut outputs) => r,
                        }
                    };
                    let result = match result {
                        Ok(()) => self.forward(&mut outputs).await,
                        Err(Error::SessionClosed { .. }) => Ok(false),
                        Err(error) => Err(error),
                    };
                    match result {
                        Ok(true) => {}
                        // The receiving side is gone: the session is ending.
                        Ok(false) => break,
                        Err(error) => {
                            self.metrics.record_error();
                            self.shared.fail(error);
                            break;
                        }
                    }
                    self.metrics
                        .record(now_nanos().saturating_sub(started), outputs.take_emitted());
                    // Released only after its outputs were counted: see the module docs.
                    self.shared.release_pending();
                }
                Step::EndOfInput => {
                    if self.shared.is_failed() {
                        break;
                    }
                    let mut cancel = self.cancel.clone();
                    let result = tokio::select! {
                        biased;
                        _ = cancelled(&mut cancel) => break,
                        r = self.flush(&mut outputs) => r,
                    };
                    let result = match result {
                        Ok(()) => self.forward(&mut outputs).await,
                        Err(Error::SessionClosed { .. }) => Ok(false),
                        Err(error) => Err(error),
                    };
                    match result {
                        Ok(_) => self.metrics.record_flush(outputs.take_emitted()),
                        Err(error) => {
                            self.metrics.record_error();
                            self.shared.fail(error);
                        }
                    }
                    break;
                }
            }
        }
        if let Err(error) = self.executor.cleanup().await {
            tracing::warn!(node_id = %self.node_id, %error, "node cleanup failed");
        }
        // Closing our senders lets downstream nodes see end of input.
        if let Some(forwarder) = outputs.forwarder_mut() {
            forwarder.close();
        }
        drop(outputs);
        // Everything the node owns (a worker process, shared memory) is released before
        // the session may count as finished: a process may exit right after.
        let NodeTask {
            executor, shared, ..
        } = self;
        drop(executor);
        shared.task_finished();
    }

    fn wrap_error(&self, error: Error, panicked: bool) -> Error {
        let message = match error {
            Error::Node(message) => message,
            // From `Outputs::emit`: they say what happened themselves.
            e @ (Error::WorkBudget { .. } | Error::SessionClosed { .. }) => return e,
            other => other.to_string(),
        };
        Error::NodeFailed {
            node_id: self.node_id.to_string(),
            node_type: self.node_type.clone(),
            message,
            panicked,
        }
    }

    async fn process(&mut self, item: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let result = if let Some(node) = self.executor.as_sync_node() {
            std::panic::catch_unwind(AssertUnwindSafe(|| node.process(item, outputs)))
        } else {
            AssertUnwindSafe(self.executor.process(item, outputs))
                .catch_unwind()
                .await
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.wrap_error(e, false)),
            Err(payload) => Err(self.wrap_error(Error::Node(panic_message(&*payload)), true)),
        }
    }

    async fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        let result = if let Some(node) = self.executor.as_sync_node() {
            std::panic::catch_unwind(AssertUnwindSafe(|| node.flush(outputs)))
        } else {
            AssertUnwindSafe(self.executor.flush(outputs))
                .catch_unwind()
                .await
        };
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.wrap_error(e, false)),
            Err(payload) => Err(self.wrap_error(Error::Node(panic_message(&*payload)), true)),
        }
    }

    /// Forwards what the node pushed during its call. `Ok(false)` when the receiving side
    /// is gone (the session is ending); an error (naming the node) when the work budget is
    /// spent.
    async fn forward(&mut self, outputs: &mut Outputs) -> Result<bool> {
        match outputs.forward_pushed().await {
            Ok(()) => Ok(true),
            Err(e @ Error::WorkBudget { .. }) => Err(e),
            Err(_) => Ok(false),
        }
    }
}
