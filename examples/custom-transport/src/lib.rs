//! A console transport: the smallest complete [`PipelineTransport`], built the way the
//! project's own transports (gRPC, the Python package, the command line) are.
//!
//! It reads inputs as text lines, runs them through a pipeline with the runtime core and
//! prints every output with the node that produced it and the input it answers. Manifests
//! are validated once ([`ConsoleTransport::validate`]) and sessions are started from the
//! result and driven only through [`StreamSession`].

use async_trait::async_trait;
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{
    PipelineRunner, PipelineTransport, StreamSession, TransportData, ValidatedPipeline,
};
use remotemedia_runtime_core::Result;
use std::sync::Arc;

/// Runs pipelines for a console user.
#[derive(Debug)]
pub struct ConsoleTransport {
    runner: PipelineRunner,
}

impl ConsoleTransport {
    /// A transport with the built-in node catalog.
    pub fn new() -> Result<Self> {
        Ok(Self {
            runner: PipelineRunner::new()?,
        })
    }

    /// Checks a manifest once; sessions start from the result without checking again.
    pub fn validate(&self, manifest: &Manifest) -> Result<Arc<ValidatedPipeline>> {
        self.runner.validate(manifest).map(Arc::new)
    }
}

#[async_trait]
impl PipelineTransport for ConsoleTransport {
    async fn execute(
        &self,
        manifest: Arc<Manifest>,
        input: TransportData,
    ) -> Result<TransportData> {
        self.runner.execute_unary(manifest, input).await
    }

    async fn stream(&self, manifest: Arc<Manifest>) -> Result<Box<dyn StreamSession>> {
        Ok(Box::new(self.runner.create_stream_session(manifest).await?))
    }

    async fn stream_pipeline(
        &self,
        pipeline: Arc<ValidatedPipeline>,
    ) -> Result<Box<dyn StreamSession>> {
        Ok(Box::new(self.runner.create_stream_session(pipeline).await?))
    }
}

/// Turns a console line into pipeline input: JSON when it parses, text otherwise.
pub fn parse_line(line: &str) -> TransportData {
    let data = match serde_json::from_str(line) {
        Ok(value @ serde_json::Value::Object(_)) => RuntimeData::Json(value),
        _ => RuntimeData::Text(line.to_owned()),
    };
    TransportData::new(data)
}

/// Renders an output for the console: `[node] value`, plus `(input N)` when the input it
/// answers had a sequence number.
pub fn render(output: &TransportData) -> String {
    let value = match &output.data {
        RuntimeData::Text(text) => text.clone(),
        RuntimeData::Json(value) => value.to_string(),
        other => format!("<{} item, {} bytes>", other.type_name(), other.size_bytes()),
    };
    let input = output
        .input_sequence
        .map(|n| format!(" (input {n})"))
        .unwrap_or_default();
    format!("[{}] {value}{input}", output.node_id().unwrap_or("?"))
}
