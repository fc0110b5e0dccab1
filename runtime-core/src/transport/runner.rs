//! [`PipelineRunner`]: validate, execute once, or stream.

use super::router::{SessionInfo, SessionRouter};
use super::TransportData;
use crate::error::Error;
use crate::executor::{self, ExecutorConfig, PipelineSession};
use crate::manifest::Manifest;
use crate::nodes::registry::NodeRegistry;
use crate::runtime::{default_spawner, Spawner};
use crate::Result;
use std::sync::Arc;

/// The pipeline engine transports drive. Cheap to clone (clones share the registry and the
/// session table).
///
/// ```
/// use remotemedia_runtime_core::data::RuntimeData;
/// use remotemedia_runtime_core::manifest::Manifest;
/// use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
/// use std::sync::Arc;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> remotemedia_runtime_core::Result<()> {
/// let runner = PipelineRunner::new()?;
/// let manifest = Arc::new(Manifest::from_yaml(
///     "nodes: [{id: calc, node_type: CalculatorNode}]",
/// )?);
/// let request = serde_json::json!({"operation": "multiply", "operands": [6, 7]});
/// let output = runner.execute_unary(manifest, TransportData::new(RuntimeData::Json(request))).await?;
/// assert_eq!(output.data.as_json().unwrap()["result"], 42);
/// assert_eq!(output.node_id(), Some("calc"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PipelineRunner {
    registry: Arc<NodeRegistry>,
    spawner: Option<Arc<dyn Spawner>>,
    config: ExecutorConfig,
    router: Arc<SessionRouter>,
}

impl std::fmt::Debug for PipelineRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineRunner")
            .field("registry", &self.registry)
            .field("config", &self.config)
            .field("sessions", &self.router)
            .finish_non_exhaustive()
    }
}

impl PipelineRunner {
    /// A runner with the built-in node catalog.
    pub fn new() -> Result<Self> {
        Self::with_registry(NodeRegistry::with_builtins())
    }

    /// A runner that builds nodes from `registry` (the same registry validates manifests).
    pub fn with_registry(registry: NodeRegistry) -> Result<Self> {
        Ok(Self {
            registry: Arc::new(registry),
            spawner: default_spawner(),
            config: ExecutorConfig::default(),
            router: Arc::new(SessionRouter::default()),
        })
    }

    /// Replaces the task spawner (required on targets without the `native` feature).
    pub fn with_spawner(mut self, spawner: Arc<dyn Spawner>) -> Self {
        self.spawner = Some(spawner);
        self
    }

    /// Replaces the executor settings.
    pub fn with_config(mut self, config: ExecutorConfig) -> Self {
        self.config = config;
        self
    }

    /// The registry this runner uses.
    pub fn registry(&self) -> &NodeRegistry {
        &self.registry
    }

    /// The table of live sessions.
    pub fn sessions(&self) -> &SessionRouter {
        &self.router
    }

    /// Checks a manifest against this runner's registry without running anything.
    pub fn validate(&self, manifest: &Manifest) -> Result<()> {
        self.registry.validate(manifest)
    }

    /// Starts a streaming session. The manifest is validated and every node created and
    /// initialized first; any failure is returned here, naming the node.
    pub async fn create_stream_session(&self, manifest: Arc<Manifest>) -> Result<PipelineSession> {
        let spawner = self.spawner.as_ref().ok_or_else(|| {
            Error::NoSpawner(
                "this build has no default task spawner; use PipelineRunner::with_spawner"
                    .to_owned(),
            )
        })?;
        let session =
            executor::start_session(&self.registry, spawner, &self.config, &manifest).await?;
        self.router.insert(
            SessionInfo {
                session_id: session.session_id().to_owned(),
                pipeline_name: manifest.metadata.name.clone(),
                node_count: manifest.nodes.len(),
            },
            session.shared_weak(),
        );
        Ok(session)
    }

    /// Runs the pipeline on `inputs` (in order), ends the input, and returns every output
    /// in emission order, each tagged with its producing node. Flushed outputs count.
    pub async fn execute_collect(
        &self,
        manifest: Arc<Manifest>,
        inputs: Vec<TransportData>,
    ) -> Result<Vec<TransportData>> {
        let session = self.create_stream_session(manifest).await?;
        let mut outputs = Vec::new();
        for input in inputs {
            // Drain between inputs so a long input list cannot fill the output channel.
            session.send_input(input).await?;
            while let Some(output) = session.recv_output().await? {
                outputs.push(output);
            }
        }
        session.close().await?;
        while let Some(output) = session.recv_output().await? {
            outputs.push(output);
        }
        Ok(outputs)
    }

    /// Runs the pipeline once on `input` and returns all its outputs.
    pub async fn execute_unary_collect(
        &self,
        manifest: Arc<Manifest>,
        input: TransportData,
    ) -> Result<Vec<TransportData>> {
        self.execute_collect(manifest, vec![input]).await
    }

    /// Runs the pipeline once on `input` and returns its output.
    ///
    /// Returns promptly in every case:
    /// - exactly one output → that output;
    /// - no output → [`Error::NoOutput`];
    /// - several outputs → [`Error::MultipleOutputs`] (nothing is dropped silently; use
    ///   [`execute_unary_collect`](Self::execute_unary_collect) to receive them all);
    /// - a node failure → [`Error::NodeFailed`] naming the node.
    pub async fn execute_unary(
        &self,
        manifest: Arc<Manifest>,
        input: TransportData,
    ) -> Result<TransportData> {
        let mut outputs = self.execute_unary_collect(manifest, input).await?;
        match outputs.len() {
            0 => Err(Error::NoOutput),
            1 => Ok(outputs.remove(0)),
            count => {
                let mut nodes: Vec<&str> = Vec::new();
                for node in outputs.iter().filter_map(TransportData::node_id) {
                    if !nodes.contains(&node) {
                        nodes.push(node);
                    }
                }
                Err(Error::MultipleOutputs {
                    count,
                    nodes: nodes.join(", "),
                })
            }
        }
    }
}
