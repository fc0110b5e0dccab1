//! The boundary between the runtime and the outside world.
//!
//! - [`TransportData`]: what crosses it — one [`RuntimeData`] with typed fields: the
//!   sequence number and metadata a client gave an input, and on outputs the producing
//!   node, the emission order and the sequence/metadata of the input they came from.
//! - [`PipelineRunner`]: the engine every transport drives — validate a manifest once into
//!   a [`ValidatedPipeline`], execute it once, or open a streaming session. It is itself a
//!   [`PipelineTransport`].
//! - [`PipelineTransport`] and [`StreamSession`]: the traits transports implement **and
//!   use**: the gRPC service, the command line and the Python package hold sessions only as
//!   `dyn StreamSession`.
//!
//! # Writing a transport
//!
//! A transport (gRPC, FFI, WebRTC, a console, ...) owns a [`PipelineRunner`] and maps its
//! own protocol onto it:
//!
//! 1. **Validate** what the client sent with [`PipelineRunner::validate`] (or let
//!    [`PipelineTransport::stream`] do it) and report errors with
//!    [`Error::node_id`](crate::Error::node_id) /
//!    [`Error::is_manifest_error`](crate::Error::is_manifest_error) mapped to your codes.
//! 2. **Stream**: [`PipelineTransport::stream_pipeline`] (or `stream`) gives a
//!    `Box<dyn StreamSession>`; forward client frames with [`StreamSession::send_input`],
//!    and outputs either with [`StreamSession::recv_output`] after each input (request /
//!    response style) or with [`StreamSession::next_output`] from a concurrent task (live
//!    streams); call [`StreamSession::close`] when the client is done.
//! 3. **Unary**: [`PipelineTransport::execute`] runs one input and returns its single
//!    output; [`PipelineRunner::execute_collect`] returns every output of several inputs.
//!
//! ```
//! use async_trait::async_trait;
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::transport::{
//!     PipelineRunner, PipelineTransport, StreamSession, TransportData,
//! };
//! use remotemedia_runtime_core::Result;
//! use std::sync::Arc;
//!
//! struct Loopback {
//!     runner: PipelineRunner,
//! }
//!
//! #[async_trait]
//! impl PipelineTransport for Loopback {
//!     async fn execute(&self, manifest: Arc<Manifest>, input: TransportData) -> Result<TransportData> {
//!         self.runner.execute_unary(manifest, input).await
//!     }
//!     async fn stream(&self, manifest: Arc<Manifest>) -> Result<Box<dyn StreamSession>> {
//!         Ok(Box::new(self.runner.create_stream_session(manifest).await?))
//!     }
//! }
//! ```

mod router;
mod runner;

pub use crate::executor::{ExecutorConfig, NodeMetricsSnapshot, PipelineSession};
pub use crate::pipeline::ValidatedPipeline;
pub use router::{SessionInfo, SessionRouter};
pub use runner::{IntoPipeline, PipelineRunner};

use crate::data::RuntimeData;
use crate::manifest::Manifest;
use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;

/// One item crossing a transport.
///
/// On an **input**, a client may set [`sequence`](Self::sequence) and
/// [`metadata`](Self::metadata); both travel with the item through the graph. On an
/// **output**:
/// - [`node_id`](Self::node_id) names the node that produced it;
/// - [`sequence`](Self::sequence) is its position among the session's outputs (0, 1, ...);
/// - [`input_sequence`](Self::input_sequence) and [`metadata`](Self::metadata) are those of
///   the input it came from: the input a node was processing when it emitted the output,
///   or, for what a node emits when it flushes at end of stream, the last input it
///   processed.
///
/// ```
/// use remotemedia_runtime_core::data::RuntimeData;
/// use remotemedia_runtime_core::transport::TransportData;
///
/// let input = TransportData::new(RuntimeData::Text("hi".into()))
///     .with_sequence(7)
///     .with_metadata("utterance", "u-1");
/// assert_eq!(input.sequence, Some(7));
/// assert_eq!(input.metadata["utterance"], "u-1");
/// assert_eq!(input.node_id(), None);
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TransportData {
    /// The payload.
    pub data: RuntimeData,
    /// Inputs: the client's sequence number, if any. Outputs: emission order in the session.
    pub sequence: Option<u64>,
    /// Inputs: the client's metadata. Outputs: the metadata of the input they came from.
    pub metadata: HashMap<String, String>,
    /// Outputs: the id of the node that produced the item.
    pub node_id: Option<Arc<str>>,
    /// Outputs: the sequence number of the input they came from, if it had one.
    pub input_sequence: Option<u64>,
}

impl TransportData {
    /// Wraps `data` with no sequence number and no metadata.
    pub fn new(data: RuntimeData) -> Self {
        Self {
            data,
            sequence: None,
            metadata: HashMap::new(),
            node_id: None,
            input_sequence: None,
        }
    }

    /// Sets the sequence number (builder style).
    pub fn with_sequence(mut self, sequence: u64) -> Self {
        self.sequence = Some(sequence);
        self
    }

    /// Adds a metadata entry (builder style).
    pub fn with_metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata.insert(key.into(), value.into());
        self
    }

    /// Replaces the metadata (builder style).
    pub fn with_metadata_map(mut self, metadata: HashMap<String, String>) -> Self {
        self.metadata = metadata;
        self
    }

    /// The id of the node that produced this output.
    pub fn node_id(&self) -> Option<&str> {
        self.node_id.as_deref()
    }
}

impl From<RuntimeData> for TransportData {
    fn from(data: RuntimeData) -> Self {
        Self::new(data)
    }
}

/// A way for clients to run pipelines: gRPC, FFI, WebRTC, a console, ...
///
/// [`PipelineRunner`] implements it, so a transport can be written over "something that
/// runs pipelines" and be handed the runner itself or a wrapper of it. Both required
/// methods validate the manifest before anything runs and return errors that name the
/// failing node.
///
/// # Provided methods
///
/// [`stream_pipeline`](Self::stream_pipeline) starts a session from a manifest that was
/// already validated; its default validates again through [`stream`](Self::stream).
/// Override it when the implementation can start a [`ValidatedPipeline`] directly (the
/// runner does), so validation runs once per request.
#[async_trait]
pub trait PipelineTransport: Send + Sync {
    /// Runs the pipeline once on `input` and returns its single output
    /// (see [`PipelineRunner::execute_unary`] for the zero- and many-output cases).
    async fn execute(&self, manifest: Arc<Manifest>, input: TransportData)
        -> Result<TransportData>;

    /// Opens a streaming session.
    async fn stream(&self, manifest: Arc<Manifest>) -> Result<Box<dyn StreamSession>>;

    /// Opens a streaming session on an already validated pipeline.
    async fn stream_pipeline(
        &self,
        pipeline: Arc<ValidatedPipeline>,
    ) -> Result<Box<dyn StreamSession>> {
        self.stream(Arc::clone(pipeline.manifest())).await
    }
}

/// Runs `inputs` through `session` to the end, the way every unary call does: sends each
/// input and takes what it produced before the next (so a long input list cannot fill the
/// output queue), ends the input, takes what the flush produced. Each output goes to
/// `on_output` as it arrives; an error from it stops the run (the session is closed).
///
/// ```
/// use remotemedia_runtime_core::manifest::Manifest;
/// use remotemedia_runtime_core::transport::{run_to_end, PipelineRunner, PipelineTransport, TransportData};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> remotemedia_runtime_core::Result<()> {
/// let runner = PipelineRunner::new()?;
/// let manifest = Arc::new(Manifest::from_yaml("nodes: [{id: s, node_type: TextCollectorNode}]")?);
/// let session = runner.stream(manifest).await?;
/// let mut sentences = Vec::new();
/// let inputs = ["One. Tw", "o."].map(|t| TransportData::new(t.into())).to_vec();
/// run_to_end(&*session, inputs, |out| {
///     sentences.push(out.data.as_text().unwrap_or_default().to_owned());
///     Ok(())
/// })
/// .await?;
/// assert_eq!(sentences, ["One.", "Two."]);
/// # Ok(()) }
/// ```
pub async fn run_to_end(
    session: &dyn StreamSession,
    inputs: impl IntoIterator<Item = TransportData>,
    mut on_output: impl FnMut(TransportData) -> Result<()> + Send,
) -> Result<()> {
    let outcome = async {
        for input in inputs {
            session.send_input(input).await?;
            while let Some(output) = session.recv_output().await? {
                on_output(output)?;
            }
        }
        session.close().await?;
        while let Some(output) = session.recv_output().await? {
            on_output(output)?;
        }
        Ok(())
    }
    .await;
    if outcome.is_err() {
        let _ = session.close().await;
    }
    outcome
}

/// One streaming session, whatever transport created it.
///
/// The contract, which every implementation keeps:
/// - `send_input` feeds one item to the pipeline; it waits under backpressure and fails
///   after `close()` or after the session failed.
/// - `recv_output` returns `Ok(Some(_))` while outputs are ready or still being produced
///   for inputs already sent, and `Ok(None)` once everything sent so far is processed and
///   taken — so "send, then drain with `while let Some(o) = recv_output().await?`" neither
///   hangs nor misses outputs. After `close()` it keeps returning flushed outputs until the
///   session has finished.
/// - `next_output` waits for the next output however long it takes (outputs a node emits
///   on its own, a slow model) and returns `Ok(None)` only once the session has ended and
///   every output was taken: what a task forwarding a live stream's outputs uses.
/// - `close` ends the input (nodes flush) and is idempotent; `is_active` is false after it.
/// - A node failure is returned as an error naming the node, from `recv_output`,
///   `next_output` and `send_input`, after the outputs produced before it.
///
/// Use one receiving style per session at a time: `recv_output` and `next_output` take
/// outputs from the same queue.
///
/// # Provided methods
///
/// [`metrics`](Self::metrics) returns no metrics by default; sessions that measure their
/// nodes (the runner's do) override it. [`wait_finished`](Self::wait_finished) returns at
/// once by default, which is right for sessions that hold nothing outside the process;
/// sessions whose nodes own processes or shared memory (the runner's) override it.
#[async_trait]
pub trait StreamSession: Send + Sync {
    /// The session's unique id.
    fn session_id(&self) -> &str;

    /// Sends one input.
    async fn send_input(&self, input: TransportData) -> Result<()>;

    /// Receives the next output, or `None` when the pipeline is quiescent or finished.
    async fn recv_output(&self) -> Result<Option<TransportData>>;

    /// Receives the next output, waiting as long as the session runs; `None` once it has
    /// ended and every output was taken.
    async fn next_output(&self) -> Result<Option<TransportData>>;

    /// Ends the input; idempotent.
    async fn close(&self) -> Result<()>;

    /// Stops the session now: the input ends and every node is cancelled (a Python
    /// worker busy on a call is killed); outputs not yet taken are dropped. Use it when the
    /// client is gone or its side failed; `close` is the orderly end. `wait_finished`
    /// returns once the nodes are released.
    fn cancel(&self);

    /// Whether the session still accepts input.
    fn is_active(&self) -> bool;

    /// Per-node metrics of the session so far (count, latency percentiles, errors).
    fn metrics(&self) -> Vec<NodeMetricsSnapshot> {
        Vec::new()
    }

    /// Waits until the session has finished and released everything it holds (node
    /// cleanup done: worker processes stopped, shared memory removed) — after `close()`, a
    /// failure or a cancellation, before a process exits.
    async fn wait_finished(&self) {}
}
