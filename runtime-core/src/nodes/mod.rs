//! Nodes: the units of work in a pipeline, and the built-in node catalog.
//!
//! # The node traits
//!
//! There are two levels, and every node in the runtime ends up behind the second:
//!
//! - [`Node`] — a native node written in Rust. Synchronous: it receives one
//!   [`RuntimeData`] at a time and pushes zero, one or many results into [`Outputs`]. It
//!   keeps whatever state it needs in `self` (one instance per session), and
//!   [`flush`](Node::flush) is called once at end of stream so buffering nodes emit their
//!   tail. Nodes that take params declare them with [`Node::params_schema`].
//! - [`NodeExecutor`] — what the executor drives: async, with `initialize` / `process` /
//!   `flush` / `cleanup`. [`RustNodeExecutor`] adapts a [`Node`]; out-of-process backends
//!   (Python in child processes, containers) implement it directly.
//!
//! ```
//! use remotemedia_runtime_core::data::RuntimeData;
//! use remotemedia_runtime_core::nodes::{Node, Outputs};
//!
//! /// Upper-cases text; passes other data through.
//! #[derive(Default)]
//! struct Shout;
//!
//! impl Node for Shout {
//!     fn process(&mut self, input: RuntimeData, out: &mut Outputs) -> remotemedia_runtime_core::Result<()> {
//!         match input {
//!             RuntimeData::Text(t) => out.push(RuntimeData::Text(t.to_uppercase())),
//!             other => out.push(other),
//!         }
//!         Ok(())
//!     }
//! }
//! ```
//!
//! Register node types with a [`registry::NodeRegistry`] (or the `register_*` macros) and
//! hand the registry to a [`PipelineRunner`](crate::transport::PipelineRunner).

pub mod audio;
mod builtin;
mod calculator;
mod filter;
pub mod params;
mod passthrough;
pub mod registry;
mod report;
pub mod schema;
mod text_collector;
pub mod video;

pub use audio::AudioChunkerNode;
pub use calculator::CalculatorNode;
pub use filter::{TypeFilterNode, TypeFilterParams};
pub use passthrough::PassThroughNode;
pub use report::ErrorReport;
pub use text_collector::{TextCollectorNode, TextCollectorParams};

use crate::data::RuntimeData;
use crate::Result;
use async_trait::async_trait;
use schema::ParamsSchema;

/// Where a node puts its results. The executor forwards them, in order, to every
/// downstream node (or to the client, for a sink node).
///
/// - [`push`](Self::push) buffers an item; the executor forwards the buffer when the call
///   (`process` or `flush`) returns. What synchronous nodes use.
/// - [`emit`](Self::emit) (async nodes) forwards the item at once and waits while the
///   receiving side is full: a node producing a long stream of items for one input (a
///   Python generator, say) streams them with backpressure instead of buffering them all.
///   Outside a session (a node called directly, as in tests) it buffers like `push`.
#[derive(Debug, Default)]
pub struct Outputs {
    items: Vec<RuntimeData>,
    forwarder: Option<crate::executor::Forwarder>,
    emitted: usize,
}

impl Outputs {
    /// An empty output buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A buffer whose `emit` forwards through `forwarder` (the executor's).
    pub(crate) fn connected(forwarder: crate::executor::Forwarder) -> Self {
        Self {
            items: Vec::new(),
            forwarder: Some(forwarder),
            emitted: 0,
        }
    }

    /// Emits one item.
    pub fn push(&mut self, data: RuntimeData) {
        self.items.push(data);
    }

    /// Emits one item now: in a session, it is forwarded before this returns (after what
    /// was pushed earlier), waiting while the receiving side is full.
    ///
    /// # Errors
    /// The session is ending (its receiving side is gone) or its work budget is spent;
    /// stop producing and return the error.
    pub async fn emit(&mut self, data: RuntimeData) -> Result<()> {
        if self.forwarder.is_none() {
            self.items.push(data);
            return Ok(());
        }
        self.forward_pushed().await?;
        self.send(data).await
    }

    async fn send(&mut self, data: RuntimeData) -> Result<()> {
        let Some(forwarder) = &mut self.forwarder else {
            self.items.push(data);
            return Ok(());
        };
        self.emitted += 1;
        if forwarder.send(data).await? {
            Ok(())
        } else {
            Err(crate::Error::SessionClosed {
                session_id: forwarder.session_id().to_owned(),
                reason: "the session is ending".to_owned(),
            })
        }
    }

    /// Forwards what was pushed (the executor calls it after each call of the node).
    pub(crate) async fn forward_pushed(&mut self) -> Result<()> {
        if self.forwarder.is_none() || self.items.is_empty() {
            return Ok(());
        }
        let mut items = std::mem::take(&mut self.items);
        for data in items.drain(..) {
            self.send(data).await?;
        }
        // The buffer's capacity serves the next call.
        self.items = items;
        Ok(())
    }

    /// Items forwarded by [`emit`](Self::emit) or after a call since the last
    /// [`take_emitted`](Self::take_emitted) (for the node's metrics).
    pub(crate) fn take_emitted(&mut self) -> usize {
        std::mem::take(&mut self.emitted)
    }

    /// The forwarder, to set the origin of the next call or close the edges.
    pub(crate) fn forwarder_mut(&mut self) -> Option<&mut crate::executor::Forwarder> {
        self.forwarder.as_mut()
    }

    /// Number of items emitted so far.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether nothing has been emitted.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Takes the emitted items out, leaving the buffer empty (and its capacity for reuse).
    pub fn drain(&mut self) -> std::vec::Drain<'_, RuntimeData> {
        self.items.drain(..)
    }

    /// Discards the emitted items, keeping the capacity.
    pub fn clear(&mut self) {
        self.items.clear();
    }

    /// Consumes the buffer into its items.
    pub fn into_vec(self) -> Vec<RuntimeData> {
        self.items
    }
}

/// A native node: synchronous, one instance per session.
///
/// The executor calls [`process`](Node::process) for every input in arrival order and
/// [`flush`](Node::flush) exactly once after the last input (end of stream). A returned
/// error (or a panic) ends the session with an error naming the node. Data types a node
/// does not handle should be pushed through unchanged.
pub trait Node: Send + 'static {
    /// Handles one input, pushing any number of results.
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()>;

    /// Called once at end of stream: push whatever is still buffered.
    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        let _ = outputs;
        Ok(())
    }

    /// The params this node type takes; `None` accepts any params unchecked.
    fn params_schema() -> Option<ParamsSchema>
    where
        Self: Sized,
    {
        None
    }
}

/// Where and as what a node instance runs; handed to [`NodeExecutor::initialize`].
#[derive(Debug, Clone)]
pub struct NodeContext {
    /// The node's id in the manifest.
    pub node_id: String,
    /// The node's type.
    pub node_type: String,
    /// The session the instance belongs to.
    pub session_id: String,
    /// The node's (normalized) params.
    pub params: serde_json::Value,
}

/// A node as the executor drives it. Implement this directly for nodes that are async or
/// live outside the process; wrap a [`Node`] in [`RustNodeExecutor`] otherwise.
///
/// Lifecycle per session: `initialize` once → `process` per input → `flush` once at end of
/// stream → `cleanup` once (also after a failure, when possible).
#[async_trait]
pub trait NodeExecutor: Send {
    /// The node's type name.
    fn node_type(&self) -> &str;

    /// Prepares the instance (load a model, start a process). Errors abort session start.
    async fn initialize(&mut self, ctx: &NodeContext) -> Result<()> {
        let _ = ctx;
        Ok(())
    }

    /// Handles one input.
    async fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()>;

    /// End of stream: emit what is buffered.
    async fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        let _ = outputs;
        Ok(())
    }

    /// Releases resources.
    async fn cleanup(&mut self) -> Result<()> {
        Ok(())
    }

    /// The synchronous node behind this executor, if there is one. The executor calls it
    /// directly, skipping the async machinery on the hot path.
    fn as_sync_node(&mut self) -> Option<&mut dyn Node> {
        None
    }
}

/// Adapts a native [`Node`] to [`NodeExecutor`].
pub struct RustNodeExecutor {
    node_type: String,
    handler: Box<dyn Node>,
}

impl RustNodeExecutor {
    /// Wraps `handler` as a node of type `node_type`.
    pub fn new(node_type: impl Into<String>, handler: Box<dyn Node>) -> Self {
        Self {
            node_type: node_type.into(),
            handler,
        }
    }
}

impl std::fmt::Debug for RustNodeExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustNodeExecutor")
            .field("node_type", &self.node_type)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl NodeExecutor for RustNodeExecutor {
    fn node_type(&self) -> &str {
        &self.node_type
    }

    async fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        self.handler.process(input, outputs)
    }

    async fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        self.handler.flush(outputs)
    }

    fn as_sync_node(&mut self) -> Option<&mut dyn Node> {
        Some(self.handler.as_mut())
    }
}
