//! Node registration: the factory API and the macros, mixed in one registry, then used by
//! a runner.
//!
//! Run with `cargo run -p remotemedia-runtime-core --example node_registration_example`.

use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::{NodeFactory, NodeRegistry};
use remotemedia_runtime_core::nodes::schema::ParamsSchema;
use remotemedia_runtime_core::nodes::{
    AudioChunkerNode, Node, NodeExecutor, Outputs, PassThroughNode, RustNodeExecutor,
};
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use remotemedia_runtime_core::{
    register_python_node, register_python_nodes, register_rust_node, register_rust_node_default,
    Result, Value,
};
use std::sync::Arc;

/// Upper-cases text. Registered with the old factory API.
struct UppercaseNode;

impl Node for UppercaseNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        match input {
            RuntimeData::Text(text) => outputs.push(RuntimeData::Text(text.to_uppercase())),
            other => outputs.push(other),
        }
        Ok(())
    }
}

struct UppercaseFactory;

impl NodeFactory for UppercaseFactory {
    fn create(&self, _params: Value) -> Result<Box<dyn NodeExecutor>> {
        Ok(Box::new(RustNodeExecutor::new(
            "UppercaseNode",
            Box::new(UppercaseNode),
        )))
    }
    fn node_type(&self) -> &str {
        "UppercaseNode"
    }
}

/// Repeats text `times` times. Registered with a macro; declares a params schema.
#[derive(Default)]
struct RepeatNode {
    times: usize,
}

impl Node for RepeatNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        for _ in 0..self.times.max(1) {
            outputs.push(input.clone());
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(ParamsSchema::new().integer("times", Some(2), 1, 100, "how many copies to emit"))
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let mut registry = NodeRegistry::new();

    // Old API: a hand-written factory.
    registry.register_rust(Arc::new(UppercaseFactory));

    // New API: one line per node.
    register_rust_node_default!(registry, PassThroughNode);
    register_rust_node!(registry, RepeatNode, |params: Value| {
        let times = params.get("times")?.as_u64()? as usize;
        Ok(RepeatNode { times })
    });
    register_rust_node!(registry, AudioChunkerNode, |params: Value| {
        let chunk_size = params.get("chunk_size")?.as_u64()? as usize;
        Ok(AudioChunkerNode::new(chunk_size))
    });

    // Python nodes are registered by class name; they run through an executor backend.
    register_python_node!(registry, "OmniASRNode");
    register_python_nodes!(registry, ["KokoroTTSNode", "SimplePyTorchNode"]);

    println!("registered node types:");
    for info in registry.node_types() {
        println!("  {:<20} {:?}", info.node_type, info.kind);
    }

    let runner = PipelineRunner::with_registry(registry)?;
    let manifest = Arc::new(Manifest::from_yaml(
        r#"
version: v1
metadata: { name: registration-demo }
nodes:
  - { id: upper, node_type: UppercaseNode }
  - { id: repeat, node_type: RepeatNode, params: { times: 3 } }
  - { id: out, node_type: PassThroughNode }
"#,
    )?);
    let outputs = runner
        .execute_unary_collect(
            manifest,
            TransportData::new(RuntimeData::Text("hello".into())),
        )
        .await?;
    for output in &outputs {
        println!(
            "{} -> {:?}",
            output.node_id().unwrap_or("?"),
            output.data.as_text().unwrap_or_default()
        );
    }
    assert_eq!(outputs.len(), 3);
    Ok(())
}
