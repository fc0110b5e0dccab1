//! [`ValidatedPipeline`]: a manifest checked against a node registry, ready to start.
//!
//! Validation runs once: [`NodeRegistry::validate`](crate::nodes::registry::NodeRegistry::validate)
//! (or [`PipelineRunner::validate`](crate::transport::PipelineRunner::validate)) checks the
//! structure, resolves every node to its factory or executor backend and validates and
//! normalizes its params; starting a session from the result creates the nodes without
//! checking anything again. A validated pipeline carries the factories and backends it
//! resolved, so it can start any number of sessions.
//!
//! ```
//! use remotemedia_runtime_core::manifest::Manifest;
//! use remotemedia_runtime_core::transport::PipelineRunner;
//!
//! let runner = PipelineRunner::new()?;
//! let manifest = Manifest::from_yaml(
//!     "nodes: [{id: chunk, node_type: AudioChunkerNode, params: {chunkSize: 320}}]",
//! )?;
//! let pipeline = runner.validate(&manifest)?;
//! assert_eq!(pipeline.node_params("chunk").unwrap()["chunk_size"], 320);
//! # Ok::<(), remotemedia_runtime_core::Error>(())
//! ```

use crate::manifest::{Manifest, PipelineGraph};
use crate::nodes::registry::ResolvedNode;
use std::sync::Arc;

/// A manifest with its graph, and every node resolved with normalized params.
#[derive(Clone)]
pub struct ValidatedPipeline {
    manifest: Arc<Manifest>,
    graph: PipelineGraph,
    nodes: Vec<ResolvedNode>,
}

impl std::fmt::Debug for ValidatedPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValidatedPipeline")
            .field("name", &self.manifest.metadata.name)
            .field("nodes", &self.manifest.nodes.len())
            .finish_non_exhaustive()
    }
}

impl ValidatedPipeline {
    pub(crate) fn new(
        manifest: Arc<Manifest>,
        graph: PipelineGraph,
        nodes: Vec<ResolvedNode>,
    ) -> Self {
        Self {
            manifest,
            graph,
            nodes,
        }
    }

    /// The manifest as written.
    pub fn manifest(&self) -> &Arc<Manifest> {
        &self.manifest
    }

    /// The node graph: edges, sources, sinks, a topological order.
    pub fn graph(&self) -> &PipelineGraph {
        &self.graph
    }

    /// How each node (in manifest order) runs, with its normalized params.
    pub fn nodes(&self) -> &[ResolvedNode] {
        &self.nodes
    }

    /// The normalized params of the node `id` (snake_case keys, defaults filled in).
    pub fn node_params(&self, id: &str) -> Option<&serde_json::Value> {
        let index = self.manifest.nodes.iter().position(|n| n.id == id)?;
        Some(self.nodes[index].params())
    }
}
