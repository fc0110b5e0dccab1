//! The README's code snippets, verbatim, compiled and run.
//!
//! Each snippet sits in its own module with the `use` lines it needs above it. Where the
//! README elides something (`json`, `audio_chunks`, `RuntimeData::Audio { ... }`,
//! `process_output`), the module defines it; the snippet text itself is unchanged.
//! The ingestion snippets are covered in `ingestion_contract.rs`.
#![allow(unused_mut, non_upper_case_globals, dead_code)]

/// The manifest the README's `Manifest::from_json(json)` reads.
const json: &str = r#"{
    "version": "v1",
    "metadata": { "name": "readme" },
    "nodes": [ { "id": "echo", "node_type": "PassThrough" } ]
}"#;

mod direct_execution {
    use super::json;
    // --- README: "Direct Pipeline Execution" (verbatim) ---
    use remotemedia_runtime_core::data::RuntimeData;
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
    use std::sync::Arc;

    #[tokio::main]
    pub async fn main() -> Result<(), Box<dyn std::error::Error>> {
        let runner = PipelineRunner::new()?;

        let manifest = Arc::new(Manifest::from_json(json)?);
        let input = TransportData::new(RuntimeData::Text("hello".into()));

        let output = runner.execute_unary(manifest, input).await?;
        println!("Result: {:?}", output.data);
        Ok(())
    }
    // --- end ---
}

#[test]
fn readme_direct_execution_runs() {
    direct_execution::main().expect("the README's unary example succeeds");
}

mod streaming {
    use remotemedia_runtime_core::data::RuntimeData;
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    const json: &str = r#"{
        "version": "v1",
        "nodes": [
            { "id": "chunk", "node_type": "AudioChunkerNode", "params": { "chunk_size": 160 } },
            { "id": "echo", "node_type": "PassThrough" }
        ],
        "connections": [ { "from": "chunk", "to": "echo" } ]
    }"#;

    pub static OUTPUT_FRAMES: AtomicUsize = AtomicUsize::new(0);

    fn process_output(output: TransportData) {
        assert_eq!(output.node_id(), Some("echo"));
        let frames = output.data.audio_frames().expect("audio output");
        OUTPUT_FRAMES.fetch_add(frames, Ordering::SeqCst);
    }

    pub async fn run() -> Result<(), Box<dyn std::error::Error>> {
        // Ten 20 ms frames of 16 kHz mono, 320 samples each.
        let audio_chunks: Vec<Vec<f32>> = (0..10).map(|i| vec![i as f32 / 10.0; 320]).collect();

        // --- README: "Streaming Execution" (verbatim, `{ ... }` filled in) ---
        let runner = PipelineRunner::new()?;
        let manifest = Arc::new(Manifest::from_json(json)?);

        let mut session = runner.create_stream_session(manifest).await?;

        // Send inputs
        for chunk in audio_chunks {
            let data = TransportData::new(RuntimeData::Audio {
                samples: chunk.into(),
                sample_rate: 16_000,
                channels: 1,
                stream_id: None,
                timestamp_us: 0,
            });
            session.send_input(data).await?;

            // Receive outputs
            while let Some(output) = session.recv_output().await? {
                process_output(output);
            }
        }

        session.close().await?;
        // --- end ---
        Ok(())
    }
}

#[tokio::test]
async fn readme_streaming_loop_neither_hangs_nor_misses_outputs() {
    streaming::run()
        .await
        .expect("the README's streaming loop succeeds");
    // 10 x 320 frames re-chunked by 160, every chunk received inside the loop.
    assert_eq!(
        streaming::OUTPUT_FRAMES.load(std::sync::atomic::Ordering::SeqCst),
        3200
    );
}

mod custom_transport {
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::{PipelineRunner, StreamSession, TransportData};
    use remotemedia_runtime_core::Result;
    use std::sync::Arc;

    // --- README: "Creating a Custom Transport" (verbatim) ---
    use async_trait::async_trait;
    use remotemedia_runtime_core::transport::PipelineTransport;

    pub struct MyTransport {
        runner: PipelineRunner,
    }

    #[async_trait]
    impl PipelineTransport for MyTransport {
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
    }
    // --- end ---

    impl MyTransport {
        pub fn new() -> Self {
            Self {
                runner: PipelineRunner::new().expect("runner"),
            }
        }
    }
}

#[tokio::test]
async fn readme_custom_transport_executes_and_streams() {
    use remotemedia_runtime_core::data::RuntimeData;
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::{PipelineTransport, TransportData};
    use std::sync::Arc;

    let transport = custom_transport::MyTransport::new();
    let manifest = Arc::new(Manifest::from_json(json).expect("valid manifest"));
    let out = transport
        .execute(
            Arc::clone(&manifest),
            TransportData::new(RuntimeData::Text("hi".into())),
        )
        .await
        .expect("unary");
    assert_eq!(out.data, RuntimeData::Text("hi".into()));

    let session = transport.stream(manifest).await.expect("stream");
    assert!(session.is_active());
    session
        .send_input(TransportData::new(RuntimeData::Text("one".into())))
        .await
        .expect("send");
    let got = session
        .recv_output()
        .await
        .expect("recv")
        .expect("an output");
    assert_eq!(got.data, RuntimeData::Text("one".into()));
    assert!(session.recv_output().await.expect("recv").is_none());
    session.close().await.expect("close");
    session.close().await.expect("close is idempotent");
    assert!(!session.is_active());
    assert!(session
        .send_input(TransportData::new(RuntimeData::Text("late".into())))
        .await
        .is_err());
}

mod registration {
    use remotemedia_runtime_core::nodes::AudioChunkerNode;
    use remotemedia_runtime_core::nodes::PassThroughNode;
    use serde_json::Value;

    pub fn build() -> remotemedia_runtime_core::nodes::registry::NodeRegistry {
        // --- README: "Ergonomic Node Registration" (verbatim) ---
        use remotemedia_runtime_core::nodes::registry::NodeRegistry;
        use remotemedia_runtime_core::{register_python_node, register_python_nodes};

        let mut registry = NodeRegistry::new();

        // Register single Python node (1 line vs 40!)
        register_python_node!(registry, "OmniASRNode");

        // Register multiple Python nodes in batch
        register_python_nodes!(
            registry,
            ["KokoroTTSNode", "SimplePyTorchNode", "AudioEnhancerNode",]
        );

        // Register Rust node with Default trait
        use remotemedia_runtime_core::register_rust_node_default;
        register_rust_node_default!(registry, PassThroughNode);

        // Register Rust node with custom initialization
        use remotemedia_runtime_core::register_rust_node;
        register_rust_node!(registry, AudioChunkerNode, |params: Value| {
            let chunk_size = params.get("chunk_size")?.as_u64()? as usize;
            Ok(AudioChunkerNode::new(chunk_size))
        });
        // --- end ---
        registry
    }
}

#[tokio::test]
async fn readme_registration_fills_the_registry_the_runner_uses() {
    use remotemedia_runtime_core::data::RuntimeData;
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
    use std::sync::Arc;

    let registry = registration::build();
    for name in [
        "OmniASRNode",
        "KokoroTTSNode",
        "SimplePyTorchNode",
        "AudioEnhancerNode",
        "PassThroughNode",
        "AudioChunkerNode",
    ] {
        assert!(registry.contains(name), "{name} is registered");
    }
    let runner = PipelineRunner::with_registry(registry).expect("runner");
    let manifest = Arc::new(
        Manifest::from_yaml(
            "nodes:\n  - {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 4}}\n  - {id: pass, node_type: PassThroughNode}\n",
        )
        .expect("valid"),
    );
    let outputs = runner
        .execute_unary_collect(
            manifest,
            TransportData::new(RuntimeData::audio(vec![0.5f32; 10], 16_000, 1)),
        )
        .await
        .expect("runs");
    let frames: Vec<usize> = outputs
        .iter()
        .filter_map(|o| o.data.audio_frames())
        .collect();
    assert_eq!(frames, [4, 4, 2]);

    // Python types resolve through a backend; none is registered here.
    let python =
        Arc::new(Manifest::from_yaml("nodes: [{id: asr, node_type: OmniASRNode}]").expect("valid"));
    let err = runner
        .execute_unary(python, TransportData::new(RuntimeData::Text("x".into())))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("node 'asr' (OmniASRNode) needs the 'multiprocess' executor"),
        "{err}"
    );
}

mod migration {
    use remotemedia_runtime_core::data::RuntimeData;
    use remotemedia_runtime_core::nodes::registry::{NodeFactory, NodeRegistry};
    use remotemedia_runtime_core::nodes::{Node, NodeExecutor, Outputs, RustNodeExecutor};
    use remotemedia_runtime_core::Result;
    use serde_json::Value;
    use std::sync::Arc;

    /// Appends a suffix to text (`!` by default).
    pub struct MyNode {
        suffix: String,
    }

    impl Default for MyNode {
        fn default() -> Self {
            Self {
                suffix: "!".to_owned(),
            }
        }
    }

    impl MyNode {
        fn new(params: Value) -> Result<Self> {
            Ok(Self {
                suffix: params
                    .get("suffix")
                    .and_then(Value::as_str)
                    .unwrap_or("!")
                    .to_owned(),
            })
        }
    }

    impl Node for MyNode {
        fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
            match input {
                RuntimeData::Text(t) => outputs.push(RuntimeData::Text(t + &self.suffix)),
                other => outputs.push(other),
            }
            Ok(())
        }
    }

    // --- README: "Migration Guide", old API (verbatim) ---
    struct MyNodeFactory;
    impl NodeFactory for MyNodeFactory {
        fn create(&self, params: Value) -> Result<Box<dyn NodeExecutor>> {
            let handler = MyNode::new(params)?;
            Ok(Box::new(RustNodeExecutor::new("MyNode", Box::new(handler))))
        }
        fn node_type(&self) -> &str {
            "MyNode"
        }
    }
    // --- end ---

    pub fn old_api() -> NodeRegistry {
        let mut registry = NodeRegistry::with_builtins();
        registry.register_rust(Arc::new(MyNodeFactory));
        registry
    }

    pub fn new_api() -> NodeRegistry {
        let mut registry = NodeRegistry::with_builtins();
        // --- README: "Migration Guide", new API (verbatim) ---
        use remotemedia_runtime_core::register_rust_node_default;
        register_rust_node_default!(registry, MyNode);
        // --- end ---
        registry
    }
}

#[tokio::test]
async fn readme_old_and_new_registration_apis_build_the_same_node() {
    use remotemedia_runtime_core::data::RuntimeData;
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
    use std::sync::Arc;

    let manifest = Arc::new(
        Manifest::from_yaml(
            "nodes: [{id: my, node_type: MyNode}, {id: pass, node_type: PassThrough}]",
        )
        .expect("valid"),
    );
    for registry in [migration::old_api(), migration::new_api()] {
        let runner = PipelineRunner::with_registry(registry).expect("runner");
        let out = runner
            .execute_unary(
                Arc::clone(&manifest),
                TransportData::new(RuntimeData::Text("hey".into())),
            )
            .await
            .expect("runs");
        assert_eq!(out.data, RuntimeData::Text("hey!".into()));
        assert_eq!(out.node_id(), Some("pass"));
    }
}

#[tokio::test]
async fn readme_docker_manifest_parses_and_needs_the_docker_backend() {
    use remotemedia_runtime_core::manifest::Manifest;
    use remotemedia_runtime_core::transport::PipelineRunner;

    // --- README: "Docker Executor" quick example (verbatim) ---
    let yaml = r#"
nodes:
  - id: ml_node
    node_type: MyMLNode
    docker:
      python_version: "3.10"
      python_packages: ["iceoryx2", "torch>=2.0"]
      resource_limits:
        memory_mb: 4096
        cpu_cores: 2.0
"#;
    // --- end ---
    let manifest = Manifest::from_yaml(yaml).expect("the README's docker manifest parses");
    assert_eq!(manifest.nodes[0].requested_executor(), Some("docker"));
    let err = PipelineRunner::new()
        .expect("runner")
        .validate(&manifest)
        .unwrap_err();
    assert!(
        err.to_string()
            .starts_with("node 'ml_node' (MyMLNode) needs the 'docker' executor"),
        "{err}"
    );
}
