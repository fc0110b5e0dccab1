//! One node's task: receive, process, forward; flush at end of input; report failures.

use super::metrics::NodeMetrics;
use super::{Item, Origin, SessionShared};
use crate::data::RuntimeData;
use crate::error::Error;
use crate::nodes::{NodeExecutor, Outputs};
use crate::runtime::now_nanos;
use crate::transport::TransportData;
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
    pub(crate) downstream: Vec<mpsc::Sender<Item>>,
    /// Set for sink nodes: their outputs go to the client.
    pub(crate) to_client: Option<mpsc::Sender<TransportData>>,
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
        let mut outputs = Outputs::new();
        // The origin of the input being processed, then of the last one (for the flush).
        let mut origin: Option<Arc<Origin>> = None;
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
                    origin = item.origin;
                    let mut cancel = self.cancel.clone();
                    let result = tokio::select! {
                        biased;
                        _ = cancelled(&mut cancel) => break,
                        r = self.process(item.data, &mut outputs) => r,
                    };
                    if let Err(error) = result {
                        self.metrics.record_error();
                        self.shared.fail(error);
                        break;
                    }
                    self.metrics
                        .record(now_nanos().saturating_sub(started), outputs.len());
                    if !self.forward(&mut outputs, &origin).await {
                        break;
                    }
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
                    match result {
                        Ok(()) => {
                            self.metrics.record_flush(outputs.len());
                            self.forward(&mut outputs, &origin).await;
                        }
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
        self.downstream.clear();
        self.to_client = None;
        self.shared.task_finished();
    }

    fn wrap_error(&self, error: Error, panicked: bool) -> Error {
        let message = match error {
            Error::Node(message) => message,
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

    /// Sends every output downstream (or to the client), each with `origin`. Returns
    /// false when the receiving side is gone, i.e. the session is ending.
    async fn forward(&mut self, outputs: &mut Outputs, origin: &Option<Arc<Origin>>) -> bool {
        for data in outputs.drain() {
            if let Some(client) = &self.to_client {
                self.shared.add_pending(1);
                let mut out = TransportData::new(data);
                out.sequence = Some(self.shared.next_sequence());
                out.node_id = Some(Arc::clone(&self.node_id));
                if let Some(origin) = origin {
                    out.input_sequence = origin.sequence;
                    out.metadata = origin.metadata.clone();
                }
                if client.send(out).await.is_err() {
                    return false;
                }
                self.shared.output_ready();
                continue;
            }
            let Some((last, others)) = self.downstream.split_last() else {
                continue;
            };
            for sender in others {
                self.shared.add_pending(1);
                let item = Item {
                    data: data.clone(),
                    origin: origin.clone(),
                };
                if sender.send(item).await.is_err() {
                    return false;
                }
            }
            self.shared.add_pending(1);
            let item = Item {
                data,
                origin: origin.clone(),
            };
            if last.send(item).await.is_err() {
                return false;
            }
        }
        true
    }
}
