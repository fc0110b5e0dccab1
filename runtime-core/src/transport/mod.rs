//! The boundary between the runtime and the outside world.
//!
//! - [`TransportData`]: what crosses it — one [`RuntimeData`] plus a sequence number and
//!   string metadata (outputs carry the producing node's id).
//! - [`PipelineRunner`]: the engine a transport drives — validate a manifest, execute it
//!   once, or open a streaming session.
//! - [`PipelineTransport`] and [`StreamSession`]: the traits a transport implements so
//!   that code written against one transport works with every other.
//!
//! # Writing a transport
//!
//! A transport (gRPC, FFI, WebRTC, a console, ...) owns a [`PipelineRunner`] and maps its
//! own protocol onto two operations:
//!
//! 1. **Unary**: decode a manifest and one input, call
//!    [`PipelineRunner::execute_unary`] (or [`PipelineRunner::execute_unary_collect`] when
//!    the pipeline may emit several outputs), encode the result.
//! 2. **Streaming**: call [`PipelineRunner::create_stream_session`], then forward client
//!    frames with [`StreamSession::send_input`] and results with
//!    [`StreamSession::recv_output`] (or [`PipelineSession::next_output`] to forward outputs
//!    as they arrive from a concurrent task), and call [`StreamSession::close`] when the
//!    client is done.
//!
//! Map errors with [`Error::node_id`](crate::Error::node_id) and
//! [`Error::is_manifest_error`](crate::Error::is_manifest_error) to your protocol's codes.
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
pub use router::{SessionInfo, SessionRouter};
pub use runner::PipelineRunner;

use crate::data::RuntimeData;
use crate::manifest::Manifest;
use crate::Result;
use async_trait::async_trait;
use std::collections::HashMap;
use std::sync::Arc;

/// One item crossing a transport: the data, its sequence number and string metadata.
///
/// Outputs of a pipeline carry the id of the node that produced them under
/// [`TransportData::NODE_ID_KEY`] (read it with [`node_id`](TransportData::node_id)) and a
/// per-session sequence number in emission order.
#[derive(Debug, Clone, PartialEq)]
pub struct TransportData {
    /// The payload.
    pub data: RuntimeData,
    /// Position in the stream, when known.
    pub sequence: Option<u64>,
    /// Free-form string metadata.
    pub metadata: HashMap<String, String>,
}

impl TransportData {
    /// Metadata key holding the id of the node that produced an output.
    pub const NODE_ID_KEY: &'static str = "node_id";

    /// Wraps `data` with no sequence number and no metadata.
    pub fn new(data: RuntimeData) -> Self {
        Self {
            data,
            sequence: None,
            metadata: HashMap::new(),
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

    /// The id of the node that produced this output.
    pub fn node_id(&self) -> Option<&str> {
        self.metadata.get(Self::NODE_ID_KEY).map(String::as_str)
    }

    pub(crate) fn set_node_id(&mut self, node_id: &str) {
        self.metadata
            .insert(Self::NODE_ID_KEY.to_owned(), node_id.to_owned());
    }
}

impl From<RuntimeData> for TransportData {
    fn from(data: RuntimeData) -> Self {
        Self::new(data)
    }
}

/// A way for clients to run pipelines: gRPC, FFI, WebRTC, a console, ...
///
/// Implementations own a [`PipelineRunner`] and delegate to it; the trait lets code that
/// drives pipelines stay independent of the transport. Both methods validate the manifest
/// before anything runs and return errors that name the failing node.
#[async_trait]
pub trait PipelineTransport: Send + Sync {
    /// Runs the pipeline once on `input` and returns its single output
    /// (see [`PipelineRunner::execute_unary`] for the zero- and many-output cases).
    async fn execute(&self, manifest: Arc<Manifest>, input: TransportData)
        -> Result<TransportData>;

    /// Opens a streaming session.
    async fn stream(&self, manifest: Arc<Manifest>) -> Result<Box<dyn StreamSession>>;
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
/// - `close` ends the input (nodes flush) and is idempotent; `is_active` is false after it.
/// - A node failure is returned as an error naming the node, from `recv_output` and
///   `send_input`.
#[async_trait]
pub trait StreamSession: Send + Sync {
    /// The session's unique id.
    fn session_id(&self) -> &str;

    /// Sends one input.
    async fn send_input(&self, input: TransportData) -> Result<()>;

    /// Receives the next output, or `None` when the pipeline is quiescent or finished.
    async fn recv_output(&self) -> Result<Option<TransportData>>;

    /// Ends the input; idempotent.
    async fn close(&self) -> Result<()>;

    /// Whether the session still accepts input.
    fn is_active(&self) -> bool;
}
