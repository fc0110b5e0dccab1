//! [`PipelineRunner`]: validate, execute once, or stream.

use super::router::{SessionInfo, SessionRouter};
use super::{PipelineTransport, StreamSession, TransportData};
use crate::error::Error;
use crate::executor::{self, ExecutorConfig, PipelineSession};
use crate::manifest::Manifest;
use crate::nodes::registry::NodeRegistry;
use crate::pipeline::ValidatedPipeline;
use crate::runtime::{default_spawner, Spawner};
use crate::Result;
use async_trait::async_trait;
use std::sync::Arc;

/// What a session can start from: a manifest (validated on the way, against the runner's
/// registry) or a [`ValidatedPipeline`] (started as it is).
pub trait IntoPipeline: Send {
    /// The validated pipeline, validating against `registry` when needed.
    fn into_pipeline(self, registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>>;
}

impl IntoPipeline for Arc<Manifest> {
    fn into_pipeline(self, registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>> {
        registry.validate_arc(self).map(Arc::new)
    }
}

impl IntoPipeline for Manifest {
    fn into_pipeline(self, registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>> {
        registry.validate_arc(Arc::new(self)).map(Arc::new)
    }
}

impl IntoPipeline for &Manifest {
    fn into_pipeline(self, registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>> {
        registry.validate(self).map(Arc::new)
    }
}

impl IntoPipeline for ValidatedPipeline {
    fn into_pipeline(self, _registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>> {
        Ok(Arc::new(self))
    }
}

impl IntoPipeline for Arc<ValidatedPipeline> {
    fn into_pipeline(self, _registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>> {
        Ok(self)
    }
}

impl IntoPipeline for &Arc<ValidatedPipeline> {
    fn into_pipeline(self, _registry: &NodeRegistry) -> Result<Arc<ValidatedPipeline>> {
        Ok(Arc::clone(self))
    }
}

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

    /// Checks a manifest against this runner's registry without running anything, and
    /// returns it validated: structure, node types, params (normalized) and executor
    /// settings. Sessions started from the result check nothing again.
    pub fn validate(&self, manifest: &Manifest) -> Result<ValidatedPipeline> {
        self.registry.validate(manifest)
    }

    /// [`validate`](Self::validate) for a manifest from a client: `policy` is checked first
    /// (node types, executor settings), then everything `validate` checks.
    pub fn validate_client(
        &self,
        manifest: Arc<Manifest>,
        policy: &crate::policy::ExecutionPolicy,
    ) -> Result<ValidatedPipeline> {
        policy.check(&manifest, &self.registry)?;
        self.registry.validate_arc(manifest)
    }

    /// Starts a streaming session on a manifest (validated first) or a
    /// [`ValidatedPipeline`]. Every node is created and initialized before this returns;
    /// any failure is returned here, naming the node.
    pub async fn create_stream_session(
        &self,
        pipeline: impl IntoPipeline,
    ) -> Result<PipelineSession> {
        let pipeline = pipeline.into_pipeline(&self.registry)?;
        let spawner = self.spawner.as_ref().ok_or_else(|| {
            Error::NoSpawner(
                "this build has no default task spawner; use PipelineRunner::with_spawner"
                    .to_owned(),
            )
        })?;
        let session = executor::start_session(spawner, &self.config, &pipeline).await?;
        let manifest = pipeline.manifest();
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
        pipeline: impl IntoPipeline,
        inputs: Vec<TransportData>,
    ) -> Result<Vec<TransportData>> {
        let session = self.create_stream_session(pipeline).await?;
        let mut outputs = Vec::new();
        super::run_to_end(&session, inputs, |output| {
            outputs.push(output);
            Ok(())
        })
        .await?;
        Ok(outputs)
    }

    /// Runs the pipeline once on `input` and returns all its outputs.
    pub async fn execute_unary_collect(
        &self,
        pipeline: impl IntoPipeline,
        input: TransportData,
    ) -> Result<Vec<TransportData>> {
        self.execute_collect(pipeline, vec![input]).await
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
        pipeline: impl IntoPipeline,
        input: TransportData,
    ) -> Result<TransportData> {
        let mut outputs = self.execute_unary_collect(pipeline, input).await?;
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

/// The runner is the reference transport: what it does is what every transport maps its
/// protocol onto. Code written against `dyn PipelineTransport` can be handed the runner.
#[async_trait]
impl PipelineTransport for PipelineRunner {
    async fn execute(
        &self,
        manifest: Arc<Manifest>,
        input: TransportData,
    ) -> Result<TransportData> {
        self.execute_unary(manifest, input).await
    }

    async fn stream(&self, manifest: Arc<Manifest>) -> Result<Box<dyn StreamSession>> {
        Ok(Box::new(self.create_stream_session(manifest).await?))
    }

    async fn stream_pipeline(
        &self,
        pipeline: Arc<ValidatedPipeline>,
    ) -> Result<Box<dyn StreamSession>> {
        Ok(Box::new(self.create_stream_session(pipeline).await?))
    }
}
