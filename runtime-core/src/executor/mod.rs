//! The pipeline executor: turns a validated manifest into running node tasks.
//!
//! Each node instance runs as its own task. Edges are bounded channels, so a slow node
//! backpressures everything upstream of it down to `send_input` — nothing is dropped.
//! Fan-out clones the item (a reference-count bump for audio and binary payloads), fan-in
//! interleaves the upstream channels into one. Closing the input lets every source drain,
//! flush and close its outputs, which cascades through the graph.
//!
//! Origins: every item on an edge carries the sequence number and metadata of the client
//! input it came from (shared, not copied, from hop to hop), so each output the client
//! receives says which input it answers.
//!
//! Quiescence: the session counts items in flight (queued on an edge, being processed, or
//! waiting for the client). An item a node consumes is released only after everything it
//! produced has been counted, so the count reaching zero means every input sent so far has
//! been fully processed and its outputs taken — what
//! [`PipelineSession::recv_output`] waits for.

mod metrics;
mod node_task;
mod session;

pub use metrics::NodeMetricsSnapshot;
pub use session::PipelineSession;

use crate::data::RuntimeData;
use crate::error::Error;
use crate::nodes::registry::{NodeSpec, ResolvedNode};
use crate::nodes::{NodeContext, NodeExecutor};
use crate::pipeline::ValidatedPipeline;
use crate::runtime::Spawner;
use crate::transport::TransportData;
use crate::Result;
use metrics::NodeMetrics;
use node_task::NodeTask;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, watch, Notify};

/// Tunables of the executor.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Capacity of every edge channel and of the output channel (items).
    pub channel_capacity: usize,
    /// The session's work budget: items its nodes may produce, over all edges, per input
    /// sent (plus one input's worth for what they emit on their own). A pipeline that
    /// multiplies what it is given — a dense graph doubling items at each level, a node
    /// emitting without end — fails with [`Error::WorkBudget`] naming the node, instead of
    /// running for hours. Default 1 000 000.
    pub max_items_per_input: u64,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            channel_capacity: 64,
            max_items_per_input: 1_000_000,
        }
    }
}

impl ExecutorConfig {
    /// The default settings with `channel_capacity` items per edge.
    pub fn with_channel_capacity(mut self, channel_capacity: usize) -> Self {
        self.channel_capacity = channel_capacity;
        self
    }

    /// The default settings with a work budget of `max_items_per_input`.
    pub fn with_max_items_per_input(mut self, max_items_per_input: u64) -> Self {
        self.max_items_per_input = max_items_per_input;
        self
    }
}

/// Where an item came from: the client input's sequence number and metadata.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct Origin {
    pub(crate) sequence: Option<u64>,
    pub(crate) metadata: HashMap<String, String>,
}

impl Origin {
    /// The origin of a client input; `None` when it carries neither sequence nor metadata
    /// (nothing to share along the graph).
    pub(crate) fn of(input: &mut TransportData) -> Option<Arc<Origin>> {
        if input.sequence.is_none() && input.metadata.is_empty() {
            return None;
        }
        Some(Arc::new(Origin {
            sequence: input.sequence,
            metadata: std::mem::take(&mut input.metadata),
        }))
    }
}

/// One item on an edge: the data and the client input it came from.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) data: RuntimeData,
    pub(crate) origin: Option<Arc<Origin>>,
}

#[derive(Debug, Default)]
struct SessionState {
    error: Option<Error>,
    input_closed: bool,
    finished: bool,
}

/// State shared by a session's handle and its node tasks.
pub(crate) struct SessionShared {
    pub(crate) session_id: String,
    /// Items in flight: on an edge, inside a node, or waiting in the output channel.
    pending: AtomicUsize,
    running_tasks: AtomicUsize,
    next_sequence: AtomicU64,
    changed: Notify,
    state: Mutex<SessionState>,
    /// Senders into the source nodes; `None` once input is closed.
    inputs: Mutex<Option<Vec<mpsc::Sender<Item>>>>,
    cancel: watch::Sender<bool>,
    metrics: Vec<Arc<NodeMetrics>>,
    /// Inputs sent so far, and items the nodes produced: the work budget's counters.
    inputs_sent: AtomicU64,
    items_produced: AtomicU64,
    max_items_per_input: u64,
}

impl SessionShared {
    fn state(&self) -> std::sync::MutexGuard<'_, SessionState> {
        // A poisoned lock only means a panic elsewhere; the state itself stays consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn add_pending(&self, n: usize) {
        self.pending.fetch_add(n, Ordering::AcqRel);
    }

    pub(crate) fn release_pending(&self) {
        if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn output_ready(&self) {
        self.changed.notify_waiters();
    }

    pub(crate) fn next_sequence(&self) -> u64 {
        self.next_sequence.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn input_sent(&self) {
        self.inputs_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts `count` items produced by `node`; an error once the work budget is spent.
    fn items_produced(&self, count: u64, node_id: &str, node_type: &str) -> Result<()> {
        let produced = self.items_produced.fetch_add(count, Ordering::Relaxed) + count;
        let inputs = self.inputs_sent.load(Ordering::Relaxed) + 1;
        if produced > inputs.saturating_mul(self.max_items_per_input) {
            return Err(Error::WorkBudget {
                node_id: node_id.to_owned(),
                node_type: node_type.to_owned(),
                limit: self.max_items_per_input,
            });
        }
        Ok(())
    }

    pub(crate) fn is_finished(&self) -> bool {
        self.state().finished
    }

    /// Waits until every node task has finished (cleanup included).
    pub(crate) async fn wait_finished(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.is_finished() {
                return;
            }
            notified.await;
        }
    }

    pub(crate) fn is_failed(&self) -> bool {
        self.state().error.is_some()
    }

    /// Records the first failure, stops every task and closes the input.
    pub(crate) fn fail(&self, error: Error) {
        {
            let mut state = self.state();
            if state.error.is_none() {
                tracing::warn!(session_id = %self.session_id, %error, "session failed");
                state.error = Some(error);
            }
        }
        self.close_input();
        let _ = self.cancel.send(true);
        self.changed.notify_waiters();
    }

    pub(crate) fn close_input(&self) {
        let senders = self.inputs.lock().unwrap_or_else(|p| p.into_inner()).take();
        drop(senders);
        self.state().input_closed = true;
        self.changed.notify_waiters();
    }

    pub(crate) fn task_finished(&self) {
        if self.running_tasks.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state().finished = true;
            self.changed.notify_waiters();
        }
    }

    pub(crate) fn metrics_snapshot(&self) -> Vec<NodeMetricsSnapshot> {
        self.metrics.iter().map(|m| m.snapshot()).collect()
    }
}

static SESSION_COUNTER: AtomicU64 = AtomicU64::new(1);

fn new_session_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let n = SESSION_COUNTER.fetch_add(1, Ordering::Relaxed);
    // A per-process random salt keeps ids from different processes apart.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(n);
    format!("session-{n}-{:08x}", hasher.finish() as u32)
}

/// Instantiates, initializes and starts a validated pipeline's nodes; returns the session
/// handle. Nothing is validated again: the pipeline carries resolved nodes and params.
pub(crate) async fn start_session(
    spawner: &Arc<dyn Spawner>,
    config: &ExecutorConfig,
    pipeline: &ValidatedPipeline,
) -> Result<PipelineSession> {
    let manifest = pipeline.manifest();
    let graph = pipeline.graph();
    let session_id = new_session_id();
    let n = manifest.nodes.len();

    // Create every instance before starting any, so a bad node fails the whole start.
    let mut executors: Vec<Box<dyn NodeExecutor>> = Vec::with_capacity(n);
    let mut contexts: Vec<NodeContext> = Vec::with_capacity(n);
    for (node, resolved) in manifest.nodes.iter().zip(pipeline.nodes()) {
        let executor = match resolved {
            ResolvedNode::Rust { factory, params } => factory
                .create(params.clone())
                .map_err(|e| init_error(e, &node.id, &node.node_type))?,
            ResolvedNode::Backend {
                backend,
                params,
                settings,
            } => {
                let mut spec_node = node.clone();
                spec_node.params = params.clone();
                let spec = NodeSpec {
                    session_id: session_id.clone(),
                    node: spec_node,
                    settings: settings.clone(),
                };
                backend
                    .create_node(spec)
                    .await
                    .map_err(|e| init_error(e, &node.id, &node.node_type))?
            }
        };
        executors.push(executor);
        contexts.push(NodeContext {
            node_id: node.id.clone(),
            node_type: node.node_type.clone(),
            session_id: session_id.clone(),
            params: resolved.params().clone(),
        });
    }
    for i in 0..n {
        if let Err(e) = executors[i].initialize(&contexts[i]).await {
            for executor in executors.iter_mut().take(i) {
                let _ = executor.cleanup().await;
            }
            return Err(init_error(e, &contexts[i].node_id, &contexts[i].node_type));
        }
    }

    let capacity = config.channel_capacity.max(1);
    let mut senders = Vec::with_capacity(n);
    let mut receivers = Vec::with_capacity(n);
    for _ in 0..n {
        let (tx, rx) = mpsc::channel::<Item>(capacity);
        senders.push(tx);
        receivers.push(Some(rx));
    }
    let (output_tx, output_rx) = mpsc::channel::<TransportData>(capacity);
    let (cancel, _) = watch::channel(false);
    let metrics: Vec<Arc<NodeMetrics>> = contexts
        .iter()
        .map(|c| Arc::new(NodeMetrics::new(&c.node_id, &c.node_type)))
        .collect();
    let inputs: Vec<mpsc::Sender<Item>> =
        graph.sources.iter().map(|&s| senders[s].clone()).collect();

    let shared = Arc::new(SessionShared {
        session_id: session_id.clone(),
        pending: AtomicUsize::new(0),
        running_tasks: AtomicUsize::new(n),
        next_sequence: AtomicU64::new(0),
        changed: Notify::new(),
        state: Mutex::new(SessionState::default()),
        inputs: Mutex::new(Some(inputs)),
        cancel,
        metrics: metrics.clone(),
        inputs_sent: AtomicU64::new(0),
        items_produced: AtomicU64::new(0),
        max_items_per_input: config.max_items_per_input.max(1),
    });

    let mut tasks = Vec::with_capacity(n);
    for (i, executor) in executors.into_iter().enumerate() {
        let downstream: Vec<mpsc::Sender<Item>> = graph.downstream[i]
            .iter()
            .map(|&d| senders[d].clone())
            .collect();
        let to_client = downstream.is_empty().then(|| output_tx.clone());
        let Some(input) = receivers[i].take() else {
            continue;
        };
        let forwarder = Forwarder {
            node_id: Arc::from(contexts[i].node_id.as_str()),
            node_type: Arc::from(contexts[i].node_type.as_str()),
            downstream,
            to_client,
            shared: Arc::clone(&shared),
            origin: None,
            uncounted: 0,
        };
        tasks.push(NodeTask {
            node_id: Arc::from(contexts[i].node_id.as_str()),
            node_type: contexts[i].node_type.clone(),
            executor,
            input,
            outputs: crate::nodes::Outputs::connected(forwarder),
            shared: Arc::clone(&shared),
            metrics: Arc::clone(&metrics[i]),
            cancel: shared.cancel.subscribe(),
        });
    }
    drop(senders);
    drop(output_tx);

    for task in tasks {
        if let Err(e) = spawner.spawn(Box::pin(task.run())) {
            shared.fail(e.clone());
            return Err(e);
        }
    }
    tracing::debug!(%session_id, nodes = n, "session started");
    Ok(PipelineSession::new(shared, output_rx))
}

/// Where one node's outputs go: its downstream edges, or the client for a sink, each item
/// with the origin of the input being processed.
pub(crate) struct Forwarder {
    node_id: Arc<str>,
    node_type: Arc<str>,
    downstream: Vec<mpsc::Sender<Item>>,
    /// Set for sink nodes: their outputs go to the client.
    to_client: Option<mpsc::Sender<TransportData>>,
    shared: Arc<SessionShared>,
    pub(crate) origin: Option<Arc<Origin>>,
    /// Items sent but not yet added to the session's work-budget counter: it is charged
    /// in batches, which keeps a shared atomic off the per-item path.
    uncounted: u64,
}

/// Sends `item`, waiting only when the channel is full: with room (the usual case) no send
/// future is built. False when the receiver is gone.
pub(crate) async fn send_or_wait<T>(sender: &mpsc::Sender<T>, item: T) -> bool {
    match sender.try_send(item) {
        Ok(()) => true,
        Err(mpsc::error::TrySendError::Full(item)) => sender.send(item).await.is_ok(),
        Err(mpsc::error::TrySendError::Closed(_)) => false,
    }
}

/// Items a forwarder sends between two charges of the work budget: far below any budget
/// (the default allows a million items per input), so the limit stays exact enough.
const BUDGET_BATCH: u64 = 64;

impl std::fmt::Debug for Forwarder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Forwarder")
            .field("node_id", &self.node_id)
            .field("downstream", &self.downstream.len())
            .finish_non_exhaustive()
    }
}

impl Forwarder {
    /// Adds the items sent since the last charge to the session's work budget.
    fn charge_budget(&mut self) -> Result<()> {
        let count = std::mem::take(&mut self.uncounted);
        if count == 0 {
            return Ok(());
        }
        self.shared
            .items_produced(count, &self.node_id, &self.node_type)
    }

    /// Sends one item on (waiting while the receiving side is full). `Ok(false)` when the
    /// receiving side is gone (the session is ending); an error when the session's work
    /// budget is spent.
    pub(crate) async fn send(&mut self, data: RuntimeData) -> Result<bool> {
        self.uncounted += 1;
        if self.uncounted >= BUDGET_BATCH {
            self.charge_budget()?;
        }
        if let Some(client) = &self.to_client {
            self.shared.add_pending(1);
            let mut out = TransportData::new(data);
            out.sequence = Some(self.shared.next_sequence());
            out.node_id = Some(Arc::clone(&self.node_id));
            if let Some(origin) = &self.origin {
                out.input_sequence = origin.sequence;
                out.metadata = origin.metadata.clone();
            }
            if !send_or_wait(client, out).await {
                return Ok(false);
            }
            self.shared.output_ready();
            return Ok(true);
        }
        let Some((last, others)) = self.downstream.split_last() else {
            return Ok(true);
        };
        for sender in others {
            self.shared.add_pending(1);
            let item = Item {
                data: data.clone(),
                origin: self.origin.clone(),
            };
            if !send_or_wait(sender, item).await {
                return Ok(false);
            }
        }
        self.shared.add_pending(1);
        let item = Item {
            data,
            origin: self.origin.clone(),
        };
        Ok(send_or_wait(last, item).await)
    }

    /// The session's id.
    pub(crate) fn session_id(&self) -> &str {
        &self.shared.session_id
    }

    /// Closes the node's edges: downstream nodes see end of input.
    pub(crate) fn close(&mut self) {
        self.downstream.clear();
        self.to_client = None;
    }
}

/// Attaches the node id to errors raised while creating or initializing a node.
fn init_error(error: Error, node_id: &str, node_type: &str) -> Error {
    match error {
        Error::InvalidParam {
            node_id: id,
            node_type: t,
            param,
            problem,
        } => Error::InvalidParam {
            node_id: if id.is_empty() {
                node_id.to_owned()
            } else {
                id
            },
            node_type: if t.is_empty() {
                node_type.to_owned()
            } else {
                t
            },
            param,
            problem,
        },
        e @ (Error::NodeInit { .. }
        | Error::NoExecutorBackend { .. }
        | Error::UnknownNodeType { .. }
        | Error::AtCapacity { .. }) => e,
        other => Error::NodeInit {
            node_id: node_id.to_owned(),
            node_type: node_type.to_owned(),
            message: other.to_string(),
        },
    }
}
